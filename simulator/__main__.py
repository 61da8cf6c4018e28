"""python -m simulator --api-url URL --fleet FILE [--speed N|instant]"""

import argparse
import asyncio
import json
import logging

from simulator.fleet import parse_speed, run_fleet


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description="Play robots through the robot API.")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--fleet", required=True, help="JSON file with robots and their device credentials")
    parser.add_argument("--speed", default="10", help="multiple of real time, or 'instant' (default 10)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll: the robots' own lines matter
    robots = json.loads(open(args.fleet).read())["robots"]
    try:
        asyncio.run(run_fleet(args.api_url, robots, parse_speed(args.speed)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
