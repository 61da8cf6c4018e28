"""What a full garbage collection costs in our processes, before and after `core.heap.settle_heap`.

    python -m bench.heap [--rounds 5] [--output FILE]
    python -m bench.heap FILE        # the table of a report written before

Each kind of process (the API, the worker) is loaded in a fresh interpreter as it is at start-up: its modules
imported and, for the API, its app built. There the bench counts the objects the collector tracks, times a full
collection (`gc.collect()`, the median of `--rounds`), settles the heap as the processes do once started, and
times a full collection again. A full collection is a pause for everything on the process's event loop.
"""

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.reports import print_and_keep, print_saved, report_parser
from core.heap import settle_heap

KINDS = {
    "api": "from api.app import create_app; from core.settings import load_settings; create_app(load_settings())",
    "worker": "import worker, workflows, activities.registry",  # the planner (scipy) loads at its first round
}
REPO_ROOT = Path(__file__).resolve().parent.parent


def _full_collection_ms(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 1)


def measure(kind: str, rounds: int) -> dict:
    """In this interpreter: load `kind`, then time full collections before and after settling the heap."""

    exec(KINDS[kind], {})
    before = {"tracked_objects": len(gc.get_objects()), "full_collection_ms": _full_collection_ms(rounds)}
    settle_heap()
    after = {"tracked_objects": len(gc.get_objects()), "frozen_objects": gc.get_freeze_count(),
             "full_collection_ms": _full_collection_ms(rounds)}
    return {"before": before, "settled": after}


def table(report: dict) -> list[str]:
    lines = ["| process | objects tracked | full collection, ms | after `settle_heap`: tracked / frozen | "
             "full collection, ms |", "|---|---|---|---|---|"]
    for kind, found in report["processes"].items():
        before, after = found["before"], found["settled"]
        lines.append(f"| {kind} | {before['tracked_objects']:,} | {before['full_collection_ms']} | "
                     f"{after['tracked_objects']:,} / {after['frozen_objects']:,} | {after['full_collection_ms']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = report_parser("bench.heap", __doc__)
    parser.add_argument("--rounds", type=int, default=5, help="full collections timed each way (median)")
    parser.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args(argv)
    if args.kind:
        print(json.dumps(measure(args.kind, args.rounds)))
        return 0
    if args.report:
        return print_saved("bench.heap", args.report, table)
    report = {"command": " ".join(["python -m bench.heap", *(argv if argv is not None else sys.argv[1:])]),
              "rounds": args.rounds, "processes": {}}
    for kind in KINDS:
        child = subprocess.run([sys.executable, "-m", "bench.heap", "--kind", kind, "--rounds", str(args.rounds)],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        if child.returncode != 0:
            print(f"bench.heap: loading the {kind} failed:\n{child.stderr}", file=sys.stderr)
            return 1
        report["processes"][kind] = json.loads(child.stdout.splitlines()[-1])
    return print_and_keep(report, table(report), args.output)


if __name__ == "__main__":
    sys.exit(main())
