"""`deliveryctl bench`: how many deliveries per second the real stack carries, against a bare Temporal baseline.

1. Starts `deliveryctl up` (same interpreter) on a fresh temp data dir and free ports, with the simulator left
   to the bench (`DELIVERY_SIMULATOR=false`, `DELIVERY_SIM_SPEED=instant`; lifecycle timers at their defaults).
2. Seeds a bench partner whose webhook is a receiver in this process (Standard Webhooks signatures verified),
   the demo market's stores for it, and `--robots` more robots with enough pilots on shift; one simulator
   subprocess plays the demo robots and the bench's at speed `instant`.
3. For each concurrency C: N deliveries through `POST /v1/deliveries`, closed loop (C clients, each creates a
   delivery, waits for its `delivered` callback, creates the next) until N or `--run-seconds`, then the
   deliveries in flight finish. Measures throughput (first POST to last delivered callback), lifecycle latency
   (201 to the callback), POST latency, and CPU seconds and peak RSS of every process (psutil, every 0.5 s).
4. Counts one delivered workflow's activities per task queue and its updates from its Temporal history, and
   runs the bare baseline (`bench/bare.py`) of that shape against the same Temporal server: no-op activities
   on `bare-<queue>`, one worker process per queue, N workflows at the same concurrency, the same updates.
5. Prints both and the ratio ours/bare; `--json` for machine-readable output, `--plot FILE` for a PNG.

`--rate R` (or `--rate-fractions 0.5,0.8` of the maximum throughput, which the closed loop measures first) runs
an open loop instead of 3-5: deliveries created at a fixed rate, whatever the stack answers (`bench/open_loop.py`).
The bench's partner is not rate-limited unless DELIVERY_API_RATE_LIMIT_* are set; a 429 is counted, not a failure.

The stack is always stopped at the end (SIGINT, then its process group killed), on error and Ctrl-C too.
"""

import argparse
import asyncio


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deliveries", type=int, help="deliveries per run at most (default 200; --quick 50)")
    parser.add_argument("--concurrency", help="comma list, one run each (default 10,25,50; --quick 10)")
    parser.add_argument("--run-seconds", type=float, default=20,
                        help="stop creating deliveries after this many seconds of a run, then wait for those in "
                             "flight (default 20, so the default bench takes about 5 minutes; 0: no limit)")
    parser.add_argument("--robots", type=int, help="robots the bench deploys besides the demo market's 12, with "
                                                   "pilots for them (default: enough for 10 more than the top "
                                                   "concurrency)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 deliveries at concurrency 10")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured deliveries (and bare workflows) first")
    parser.add_argument("--workers-per-queue", type=int, default=1,
                        help="worker processes on --scale-queue, for ours and for bare (default 1)")
    parser.add_argument("--scale-queue", default="delivery-workflows",
                        help="the queue --workers-per-queue applies to (default delivery-workflows)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds one delivery may take (default 180)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (progress goes to stderr)")
    parser.add_argument("--output", help="write the JSON report to this file")
    parser.add_argument("--plot", help="write a PNG of throughput and p95 latency vs concurrency (needs .[bench])")
    parser.add_argument("--keep-data", action="store_true", help="keep the temp data dir (logs) afterwards")
    parser.add_argument("--rate", metavar="R[,R...]",
                        help="open loop instead: create deliveries at R per second (comma list: one run each) for "
                             "--run-seconds, on a schedule independent of completions; POST and lifecycle p50/p99")
    parser.add_argument("--rate-fractions", metavar="F[,F...]",
                        help="open loop at these fractions of the maximum throughput (e.g. 0.5,0.8), measured first "
                             "with the closed loop at --concurrency (default 25) unless --max-throughput is given")
    parser.add_argument("--max-throughput", type=float, metavar="X",
                        help="deliveries per second taken as the maximum for --rate-fractions, instead of measuring it")
    parser.add_argument("--arrivals", default="poisson",
                        help="open loop arrivals: poisson (default) or uniform (one every 1/R seconds)")
    parser.add_argument("--idle-robots", type=int, metavar="N",
                        help="instead: N idle robots on their streams (heartbeats every 5 s): CPU of every process, "
                             "and commit → robot delay of new assignments (bench/idle_fleet.py); --output FILE")
    parser.add_argument("--idle-seconds", type=float, default=30, help="with --idle-robots: seconds sampled idle")
    parser.add_argument("--push-samples", type=int, default=60,
                        help="with --idle-robots: deliveries made one at a time to time their push (default 60)")
    parser.add_argument("--in-flight", type=int, metavar="N",
                        help="instead: memory and CPU of every process with N deliveries open at once (robots that "
                             "never move); --output FILE keeps the JSON")


async def run_bench(args, settings) -> int:
    from bench.runner import BenchOptions, Say, run
    from bench.stack import BenchError
    from cli.errors import CommandError

    if args.idle_robots is not None:
        from bench import idle_fleet

        if args.idle_robots < 1 or args.push_samples < 1 or args.idle_seconds <= 0:
            raise CommandError("--idle-robots, --push-samples and --idle-seconds must be positive")
        try:
            report = await idle_fleet.run_idle_fleet(args.idle_robots, settings, Say(to_stderr=False),
                                                     args.idle_seconds, args.push_samples)
        except asyncio.CancelledError:
            raise CommandError("interrupted; the stack was stopped") from None
        except BenchError as exc:
            raise CommandError(str(exc)) from None
        idle_fleet.write(report, args.output)
        print(idle_fleet.summary(report))
        return 0 if all(report["met"].values()) else 1
    if args.in_flight is not None:
        from bench import inflight

        if args.in_flight < 1:
            raise CommandError("--in-flight must be at least 1")
        try:
            report = await inflight.run_in_flight(args.in_flight, settings, Say(to_stderr=False))
        except asyncio.CancelledError:
            raise CommandError("interrupted; the stack was stopped") from None
        inflight.write(report, args.output)
        print(inflight.summary(report))
        return 0 if report["in_flight"] >= args.in_flight else 1
    try:
        options = BenchOptions.from_args(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:
        return await run(options, settings)
    except BenchError as exc:
        raise CommandError(str(exc)) from None
