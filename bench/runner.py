"""The bench run itself: stack up, seed, load ours, count the shape, load bare, report, stack down."""

import asyncio
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.bare import BARE_WORKFLOW_QUEUE, BareDeliveryWorkflow, BareScript, bare_queue
from bench.history import BACKGROUND_QUEUES, bare_script, codec_cost, delivery_shape
from bench.inflight import temporal_counters
from bench.open_loop import ARRIVALS, LATE_SECONDS, RATE_LIMITED, Probes, create_and_follow, drive_open
from bench.receiver import Receiver
from bench.sampler import Sampler, TransactionCounter
from bench.seed import seed_bench
from bench.stack import (
    REPO_ROOT,
    BenchError,
    Process,
    Stack,
    child_environment,
    free_ports,
    stack_settings,
)
from bench.stats import stats
from core.children import cpu_split
from core.services import Service, TaskQueue
from core.settings import Settings
from core.temporal import connect
from simulator.demo_market import PILOT_NAMES, ROBOT_COUNT, demo_file, order_body
from workflows.delivery import workflow_id

# Deliveries per run and the concurrencies, when the command line does not say: the full bench and `--quick`.
DEFAULTS = {"deliveries": 200, "concurrency": "10,25,50"}
QUICK = {"deliveries": 50, "concurrency": "10"}
MAX_THROUGHPUT_CONCURRENCY = "25"  # the closed loop that measures the maximum for --rate-fractions
ROBOT_SECONDS = 15  # open loop: a delivery holds its robot about this long at speed instant, so rate × this in use
DEMO_ROBOTS = ROBOT_COUNT  # the demo market's robots, which the bench's simulator plays too
ROBOT_MARGIN = 10
IDLE_SECONDS = 5


@dataclass
class BenchOptions:
    deliveries: int
    concurrency: list[int]
    robots: int
    warmup: int = 5
    run_seconds: float | None = 20
    workers_per_queue: int = 1
    scale_queue: str = TaskQueue.DELIVERY_WORKFLOWS.value
    timeout: float = 180
    json: bool = False
    output: str | None = None
    plot: str | None = None
    keep_data: bool = False
    quick: bool = False
    rates: list[float] | None = None
    rate_fractions: list[float] | None = None
    max_throughput: float | None = None
    arrivals: str = "poisson"

    @property
    def open_loop(self) -> bool:
        return bool(self.rates or self.rate_fractions)

    @property
    def measures_max(self) -> bool:
        """The open loop's fractions need the maximum throughput, measured first with the closed loop."""
        return bool(self.rate_fractions) and self.max_throughput is None

    @classmethod
    def from_args(cls, args) -> "BenchOptions":
        preset = QUICK if args.quick else DEFAULTS
        rates, fractions = positive_list(args.rate, "--rate"), positive_list(args.rate_fractions, "--rate-fractions")
        if args.max_throughput is not None and (args.max_throughput <= 0 or not fractions):
            raise ValueError("--max-throughput must be positive, and is used with --rate-fractions")
        if args.arrivals not in ARRIVALS:
            raise ValueError(f"--arrivals must be one of {', '.join(ARRIVALS)}")
        if (rates or fractions) and not args.run_seconds:
            raise ValueError("--rate and --rate-fractions need --run-seconds: how long deliveries arrive")
        if fractions and args.concurrency is None:
            preset = {**preset, "concurrency": MAX_THROUGHPUT_CONCURRENCY}
        deliveries = args.deliveries if args.deliveries is not None else preset["deliveries"]
        text = args.concurrency if args.concurrency is not None else preset["concurrency"]
        try:
            concurrency = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--concurrency must be a comma list of integers, not {text!r}") from None
        if not concurrency or min(concurrency) < 1:
            raise ValueError("--concurrency needs at least one positive integer")
        # Closed loop: C deliveries in flight need C robots, and a few more while robots are being released; open
        # loop: the rate times how long a delivery holds its robot. Fractions of the maximum stay below the closed
        # loop's need.
        closed = (not rates and not fractions) or (fractions and args.max_throughput is None)
        in_use = max(concurrency) if closed else 0
        if rates:
            in_use = max(in_use, math.ceil(max(rates) * ROBOT_SECONDS))
        if fractions and args.max_throughput is not None:
            in_use = max(in_use, math.ceil(args.max_throughput * max(fractions) * ROBOT_SECONDS))
        robots = args.robots if args.robots is not None else max(in_use + ROBOT_MARGIN - DEMO_ROBOTS, 0)
        if deliveries < 1 or robots < 0 or args.warmup < 0 or args.workers_per_queue < 1:
            raise ValueError("--deliveries and --workers-per-queue must be positive, "
                             "--robots and --warmup not negative")
        if args.scale_queue not in {q.value for q in TaskQueue}:
            raise ValueError(f"--scale-queue must be one of {', '.join(q.value for q in TaskQueue)}")
        if args.run_seconds < 0:
            raise ValueError("--run-seconds must not be negative")
        return cls(deliveries=deliveries, concurrency=concurrency, robots=robots, warmup=args.warmup,
                   run_seconds=args.run_seconds or None,
                   workers_per_queue=args.workers_per_queue, scale_queue=args.scale_queue, timeout=args.timeout,
                   json=args.json, output=args.output, plot=args.plot, keep_data=args.keep_data, quick=args.quick,
                   rates=rates, rate_fractions=fractions, max_throughput=args.max_throughput, arrivals=args.arrivals)


def positive_list(text: str | None, flag: str) -> list[float] | None:
    """A comma list of positive numbers from the command line, or None when the flag was not given."""
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{flag} must be a comma list of numbers, not {text!r}") from None
    if not values or min(values) <= 0:
        raise ValueError(f"{flag} needs at least one positive number")
    return values


class Say:
    """Progress lines: on stdout, or on stderr when stdout carries the JSON report."""

    def __init__(self, to_stderr: bool):
        self.stream = sys.stderr if to_stderr else sys.stdout

    def __call__(self, message: str) -> None:
        print(f"[bench] {message}", file=self.stream, flush=True)


def throughput(firsts: list[float], lasts: list[float]) -> dict:
    """Wall time from the first start to the last finish, and finished runs per second over it."""
    duration = (max(lasts) - min(firsts)) if lasts else None
    return {"duration_seconds": round(duration, 3) if duration else None,
            "throughput_per_second": round(len(lasts) / duration, 3) if duration else 0.0}


def source_commit() -> str | None:
    """The commit the stack runs, `+changes` when the working tree differs from it; None outside a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if dirty else "")


def machine() -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


# ---- ours -----------------------------------------------------------------------------------------------------


def order(rng: random.Random, fleet: dict, tag: str, number: int) -> dict:
    return order_body(rng, fleet, number, tag, prefix="bench")


def numbered(count: int, budget: float | None):
    """1..count, but none handed out once `budget` seconds have passed since the first."""
    deadline = time.monotonic() + budget if budget else None
    for number in range(1, count + 1):
        if deadline is not None and time.monotonic() > deadline:
            return
        yield number


async def drive_ours(http: httpx.AsyncClient, receiver: Receiver, fleet: dict, count: int, concurrency: int,
                     timeout: float, tag: str, budget: float | None = None) -> dict:
    """Up to `count` deliveries, `concurrency` in flight: POST, wait for the terminal callback, next.

    With a `budget`, no delivery is created after that many seconds; those in flight are still awaited.
    """
    rng = random.Random(tag)
    numbers = numbered(count, budget)
    api, lifecycle, firsts, lasts, delivered_ids, slowest = [], [], [], [], [], []
    outcomes: Counter[str] = Counter()

    async def client() -> None:
        for number in numbers:
            started = time.monotonic()
            firsts.append(started)
            followed = await create_and_follow(http, receiver, order(rng, fleet, tag, number), timeout, outcomes)
            if followed.created is not None:
                api.append(followed.created - started)
            if followed.status == "delivered":
                lifecycle.append(followed.received - followed.created)
                lasts.append(followed.received)
                delivered_ids.append(followed.delivery_id)
                slowest.append((followed.received - followed.created, followed.delivery_id))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return {
        "deliveries": len(firsts), "delivered": outcomes.get("delivered", 0), "outcomes": dict(outcomes),
        "rate_limited": outcomes.get(RATE_LIMITED, 0),
        **throughput(firsts, lasts), "latency_seconds": stats(lifecycle), "api_post_seconds": stats(api),
        "sample_workflow_id": workflow_id(delivered_ids[0]) if delivered_ids else None,
        "slowest": [{"workflow_id": workflow_id(d), "seconds": round(t, 3)} for t, d in sorted(slowest)[-3:][::-1]],
    }


# ---- bare -----------------------------------------------------------------------------------------------------


def bare_processes(settings: Settings, activity_queues: list[str]) -> list[list[str]]:
    """The bare worker processes, laid out as `up` lays out the real ones (`DELIVERY_WORKERS`)."""
    if settings.workers == "per-queue":
        return [[queue] for queue in [*activity_queues, BARE_WORKFLOW_QUEUE]]
    if settings.workers == "single":
        return [[*activity_queues, BARE_WORKFLOW_QUEUE]]
    return [list(activity_queues), [BARE_WORKFLOW_QUEUE]]


async def drive_bare(client: Client, script: BareScript, count: int, concurrency: int, timeout: float,
                     tag: str, budget: float | None = None) -> dict:
    """Up to `count` bare workflows, `concurrency` in flight: start, send the updates in turn, await the result."""
    numbers = numbered(count, budget)
    starts, lifecycle, firsts, lasts = [], [], [], []
    outcomes: Counter[str] = Counter()

    async def one(number: int) -> float:
        began = time.monotonic()
        firsts.append(began)
        handle = await client.start_workflow(BareDeliveryWorkflow.run, script, id=f"bare-{tag}-{number:05d}",
                                             task_queue=BARE_WORKFLOW_QUEUE)
        started = time.monotonic()
        starts.append(started - began)
        for n in range(script.updates):
            await handle.execute_update(BareDeliveryWorkflow.event, n)
        await handle.result()
        return started

    async def driver() -> None:
        for number in numbers:
            try:
                started = await asyncio.wait_for(one(number), timeout)
            except Exception as exc:  # a baseline that fails is reported, not fatal
                outcomes[f"failed: {type(exc).__name__}"] += 1
                continue
            done = time.monotonic()
            outcomes["completed"] += 1
            lifecycle.append(done - started)
            lasts.append(done)

    await asyncio.gather(*(driver() for _ in range(concurrency)))
    return {
        "workflows": len(firsts), "completed": outcomes.get("completed", 0), "outcomes": dict(outcomes),
        **throughput(firsts, lasts), "latency_seconds": stats(lifecycle), "start_workflow_seconds": stats(starts),
    }


# ---- processes ------------------------------------------------------------------------------------------------


async def wait_for_pollers(client: Client, wanted: dict[str, tuple[int, int]], timeout: float = 60) -> None:
    """Wait until each queue has at least the wanted number of pollers: {queue: (TaskQueueType, count)}."""
    deadline = time.monotonic() + timeout
    missing = dict(wanted)
    while missing:
        for queue, (kind, count) in list(missing.items()):
            described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueueRef(name=queue), task_queue_type=kind))
            if len({poller.identity for poller in described.pollers}) >= count:
                del missing[queue]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"no worker polls {', '.join(missing)} after {timeout:.0f}s")
        await asyncio.sleep(0.5)


def queue_kind(queue: str) -> int:
    workflows = (TaskQueue.DELIVERY_WORKFLOWS.value, BARE_WORKFLOW_QUEUE)
    return TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW if queue in workflows else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


GROUPS = ("workers", "bare workers", "api", "temporal", "postgres", "simulator", "bench")


def cpu_per_completed(resources: dict, completed: int) -> dict:
    """CPU seconds per completed delivery (or bare workflow), per group of processes; `platform` sums the
    servers (workers, API, Temporal, Postgres), leaving out the robots' simulator and the bench itself."""
    if not completed:
        return {}
    per = {g: round(resources[g]["cpu_seconds"] / completed, 3) for g in GROUPS if g in resources}
    per["platform"] = round(sum(v for g, v in per.items() if g not in ("simulator", "bench")), 3)
    return per


TEMPORAL_METRICS_LAG = 2.0  # the Temporal server publishes its counters about once a second


async def temporal_requests_since(url: str, first: dict[str, float], completed: int) -> dict[str, float]:
    """Temporal's requests (`<counter> <service> <operation>`, as `temporal_counters` keys them) per completed
    delivery or bare workflow since its counters read `first`, most first; read once the last ones are out."""
    await asyncio.sleep(TEMPORAL_METRICS_LAG)
    last = await temporal_counters(url)
    if not completed:
        return {}
    per = {key: round((value - first.get(key, 0)) / completed, 2) for key, value in last.items()}
    return dict(sorted(((key, value) for key, value in per.items() if value > 0), key=lambda item: -item[1]))


def budget_text(options: BenchOptions) -> str:
    return f" or {options.run_seconds:g}s of creating" if options.run_seconds else ""


def resource_line(resources: dict, machine: dict | None = None) -> str:
    groups = [g for g in ("workers", "bare workers", "api", "temporal", "postgres", "simulator", "bench")
              if g in resources]
    cpu = ", ".join(f"{g} {resources[g]['cpu_seconds']:.1f}" for g in groups)
    rss = ", ".join(f"{g} {resources[g]['peak_rss_mb']:.0f}" for g in groups)
    line = f"CPU s: {cpu} | peak RSS MB: {rss}"
    if machine:
        line += (f" | machine {100 * machine['utilisation']:.0f}% busy, "
                 f"{machine['other_cpu_seconds']:.1f} CPU s by other processes")
    return line


def fmt(value: float | None, unit: str = "s", scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.{0 if unit == 'ms' else 2}f}{unit}"


# ---- open loop ------------------------------------------------------------------------------------------------

CLOSED_LOOP = "closed loop: C clients, each creates a delivery (or starts a bare workflow) and waits for it to finish " \
              "before the next"
OPEN_LOOP = ("open loop: deliveries created at a fixed rate on a schedule drawn before the run (Poisson or uniform "
             "arrivals), whatever the stack answers; latency from the time each create was due")
OPEN_LOOP_CONNECTIONS = 1000


async def closed_loop_run(options: BenchOptions, http: httpx.AsyncClient, receiver: Receiver, fleet: dict,
                          sampler: Sampler, transactions: TransactionCounter, concurrency: int,
                          metrics_url: str) -> dict:
    """One closed-loop run of ours at `concurrency`, with its resources, its databases' transactions and the
    requests Temporal served meanwhile (its metrics at `metrics_url`)."""
    await transactions.start()
    temporal_before = await temporal_counters(metrics_url)
    sampler.start()
    ours = await drive_ours(http, receiver, fleet, options.deliveries, concurrency, options.timeout,
                            f"c{concurrency}-{int(time.time())}", options.run_seconds)
    ours["resources"] = await sampler.stop()
    ours["temporal_requests_per_delivery"] = await temporal_requests_since(metrics_url, temporal_before,
                                                                          ours["delivered"])
    ours["machine"] = sampler.machine
    ours["load_average"] = [round(v, 2) for v in os.getloadavg()]
    ours["cpu_seconds_per_delivery"] = cpu_per_completed(ours["resources"], ours["delivered"])
    ours["transactions_per_delivery"] = await transactions.stop(ours["delivered"])
    return ours


async def open_loop(options: BenchOptions, http: httpx.AsyncClient, receiver: Receiver, fleet: dict,
                    sampler: Sampler, transactions: TransactionCounter, say: Say, probes: Probes, logs: Path,
                    metrics_url: str) -> dict:
    """The maximum throughput (measured with the closed loop, or given), then one open-loop run per rate."""
    result: dict = {"late_after_seconds": LATE_SECONDS}
    planned = [(rate, None) for rate in options.rates or []]
    if options.rate_fractions:
        maximum = options.max_throughput
        if maximum is None:
            measured = []
            for concurrency in options.concurrency:
                say(f"maximum throughput: closed loop at concurrency {concurrency}, up to {options.deliveries} "
                    f"deliveries{budget_text(options)} ...")
                ours = await closed_loop_run(options, http, receiver, fleet, sampler, transactions, concurrency,
                                             metrics_url)
                say(f"  {ours['delivered']}/{ours['deliveries']} delivered = {ours['throughput_per_second']:.2f}/s; "
                    f"POST p50 {fmt(ours['api_post_seconds']['p50'], 'ms', 1000)} "
                    f"p99 {fmt(ours['api_post_seconds']['p99'], 'ms', 1000)}")
                measured.append({"concurrency": concurrency, "ours": ours})
            maximum = max(run["ours"]["throughput_per_second"] for run in measured)
            result["max_throughput"] = {"per_second": maximum, "measured": True, "closed_loop_runs": measured}
        else:
            result["max_throughput"] = {"per_second": maximum, "measured": False}
        if not maximum:
            raise BenchError("the closed loop delivered nothing: no maximum throughput to take fractions of")
        planned += [(round(fraction * maximum, 3), fraction) for fraction in options.rate_fractions]
    runs = []
    for index, (rate, fraction) in enumerate(planned, 1):
        of_max = f" ({fraction:g} of the maximum {result['max_throughput']['per_second']:.2f}/s)" if fraction else ""
        say(f"open loop {index}/{len(planned)}: {rate:g} deliveries/s{of_max}, {options.arrivals} arrivals for "
            f"{options.run_seconds:g}s ...")
        sampler.start()
        probes.starts, probes.round_trips = [], []
        run = await drive_open(http, receiver, fleet, rate, options.run_seconds, options.arrivals, options.timeout,
                               f"r{rate:g}-{int(time.time())}", options.deliveries, probes, logs)
        run["resources"] = await sampler.stop()
        run["machine"] = sampler.machine
        run["load_average"] = [round(v, 2) for v in os.getloadavg()]
        run["cpu_seconds_per_delivery"] = cpu_per_completed(run["resources"], run["delivered"])
        run["fraction_of_max"] = fraction
        say(f"  {run['delivered']}/{run['deliveries']} delivered; POST p50 "
            f"{fmt(run['api_post_seconds']['p50'], 'ms', 1000)} p99 {fmt(run['api_post_seconds']['p99'], 'ms', 1000)}; "
            f"lifecycle p50 {fmt(run['latency_seconds']['p50'])} p99 {fmt(run['latency_seconds']['p99'])}; "
            f"{run['late']} sent late, {run['rate_limited']} answered 429")
        say(f"  {resource_line(run['resources'], run['machine'])}")
        runs.append(run)
    result["runs"] = runs
    return result


def finish_open_loop(report: dict, options: BenchOptions, receiver: Receiver, say: Say) -> int:
    """Summary, the JSON report, and the exit status: non-zero only if a delivery created did not finish."""
    report["load_average"]["end"] = [round(v, 2) for v in os.getloadavg()]
    report["webhooks"] = {"bad_signatures": receiver.bad_signatures, "duplicates": receiver.duplicates,
                          "statuses": dict(receiver.statuses)}
    for line in open_loop_table(report):
        say(line)
    if options.json or options.output:
        text = json.dumps(report, indent=2)
        if options.output:
            Path(options.output).write_text(text + "\n")
            say(f"report written to {options.output}")
        else:
            print(text, flush=True)
    result = report["open_loop"]
    runs = [*result["runs"], *(run["ours"] for run in result.get("max_throughput", {}).get("closed_loop_runs", []))]
    failed = sum(run["deliveries"] - run["delivered"] - run["rate_limited"] for run in runs)
    return 1 if failed or report["webhooks"]["bad_signatures"] else 0


def open_loop_table(report: dict) -> list[str]:
    """The open-loop runs as a Markdown table, from the report alone (`python -m bench.runner REPORT.json`)."""
    result = report["open_loop"]
    maximum = result.get("max_throughput")
    lines = []
    if maximum:
        how = ("measured: closed loop, best of concurrency "
               + ", ".join(str(run["concurrency"]) for run in maximum["closed_loop_runs"])
               if maximum["measured"] else "given")
        lines.append(f"maximum throughput {maximum['per_second']:g} deliveries/s ({how})")
    lines += ["| rate /s | of max | created | delivered | POST p50 / p99 ms | lifecycle p50 / p99 s | sent late | "
              "429 | load avg (1 min) |", "|---|---|---|---|---|---|---|---|---|"]
    ms = lambda v: "-" if v is None else f"{v * 1000:.0f}"
    sec = lambda v: "-" if v is None else f"{v:.2f}"
    tenths = lambda v: "-" if v is None else f"{v:.1f}"
    for run in result["runs"]:
        post, life = run["api_post_seconds"], run["latency_seconds"]
        share = "-" if run["fraction_of_max"] is None else f"{run['fraction_of_max']:g}"
        lines.append(f"| {run['rate_per_second']:g} | {share} | {run['deliveries']} | {run['delivered']} | "
                     f"{ms(post['p50'])} / {ms(post['p99'])} | {sec(life['p50'])} / {sec(life['p99'])} | "
                     f"{run['late']} | {run['rate_limited']} | {run['load_average'][0]:.2f} |")
    probed = [run for run in result["runs"] if "probes" in run]
    if probed:
        lines += ["", "| rate /s | POST p50 / p99 ms | the API's own p50 / p99 / max ms | Temporal start_workflow "
                      "p50 / p99 ms | Postgres round trip p50 / p99 ms | API CPU ms per delivery | API CPU s / its event "
                      "loop waiting for a core s | CPU s by other processes | machine busy |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for run in probed:
        post, start = run["api_post_seconds"], run["probes"]["temporal_start_workflow_seconds"]
        trip, cpu = run["probes"]["postgres_round_trip_seconds"], run.get("cpu_seconds_per_delivery", {})
        own, api = run.get("api_own_post_seconds", {}), run["resources"].get("api", {})
        lines.append(f"| {run['rate_per_second']:g} | {ms(post['p50'])} / {ms(post['p99'])} | "
                     f"{ms(own.get('p50'))} / {ms(own.get('p99'))} / {ms(own.get('max'))} | "
                     f"{ms(start['p50'])} / {ms(start['p99'])} | {trip['p50'] * 1000:.1f} / {trip['p99'] * 1000:.1f} | "
                     f"{ms(cpu.get('api'))} | {tenths(api.get('cpu_seconds'))} / "
                     f"{tenths(api.get('main_thread_wait_seconds'))} | "
                     f"{run['machine']['other_cpu_seconds']:.0f} | "
                     f"{100 * run['machine']['utilisation']:.0f}% |")
    return lines


# ---- the run --------------------------------------------------------------------------------------------------


async def run(options: BenchOptions, base: Settings) -> int:
    to_stderr = options.json and not options.output
    say = Say(to_stderr)
    main, loop = asyncio.current_task(), asyncio.get_running_loop()
    stopping: list[str] = []

    def on_signal(signum: int) -> None:  # Ctrl-C or SIGTERM: unwind, and the `finally` stops everything
        if not stopping:
            stopping.append(signal.Signals(signum).name)
            say(f"{stopping[0]} received, stopping")
            main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    data_dir = Path(tempfile.mkdtemp(prefix="deliveryctl-bench-"))
    settings = stack_settings(base, data_dir)
    env = child_environment(settings)
    logs = data_dir / "logs"
    stack: Stack | None = None
    children: list[Process] = []
    receiver = Receiver()
    report: dict = {
        "machine": machine(),
        "command": " ".join(["deliveryctl bench", *(sys.argv[sys.argv.index("bench") + 1:] if "bench" in sys.argv
                                                     else [])]),
        "parameters": {**asdict(options), "mode": OPEN_LOOP if options.open_loop else CLOSED_LOOP},
        "load_average": {"start": [round(v, 2) for v in os.getloadavg()]},
        "commit": source_commit(),
    }
    try:
        say(f"starting deliveryctl up (data {data_dir}, API port {settings.api_port}, "
            f"Temporal {settings.temporal_address}, Postgres port {settings.postgres_port})")
        stack = Stack(settings)
        await asyncio.to_thread(stack.wait_ready)
        try:  # the simulator and bare's workers run where `up` runs its workers
            background_cpus = cpu_split(settings.api_cpus).others
        except ValueError as exc:
            raise BenchError(f"DELIVERY_API_CPUS: {exc}") from None
        report["stack"] = {"api_url": settings.api_url, "temporal_address": settings.temporal_address,
                           "temporal_ui_url": settings.temporal_ui_url, "data_dir": str(data_dir),
                           "background_niceness": settings.background_niceness, "api_cpus": settings.api_cpus}
        say(f"stack up at {settings.api_url} (Temporal {settings.temporal_address}, "
            f"UI {settings.temporal_ui_url}), pid {stack.pid}")

        await receiver.start(free_ports(1)[0])
        fleet = await seed_bench(settings, options.robots, receiver.url)
        receiver.secret = fleet["partner"]["webhook_secret"]
        demo = json.loads(demo_file(settings).read_text())
        robots = demo["robots"] + fleet["robots"]
        fleet_path = data_dir / "bench" / "fleet.json"
        fleet_path.parent.mkdir(parents=True, exist_ok=True)
        fleet_path.write_text(json.dumps({"robots": robots}))
        fleet_path.chmod(0o600)
        pilots = fleet["pilots"] + len(PILOT_NAMES)
        report["parameters"].update(robots_total=len(robots), pilots_total=pilots)
        say(f"seeded bench partner (webhook {receiver.url}), {len(fleet['stores'])} stores, "
            f"{options.robots} robots + {fleet['pilots']} pilots; fleet {len(robots)} robots, {pilots} pilots")

        simulator = Process("simulator", [sys.executable, "-m", "simulator", "--api-url", settings.api_url,
                                          "--fleet", str(fleet_path), "--speed", "instant"],
                            logs / "bench-simulator.log", env, niceness=settings.background_niceness,
                            cpus=background_cpus)
        children.append(simulator)
        extra = []
        for n in range(options.workers_per_queue - 1):
            extra.append(Process(f"worker {options.scale_queue} #{n + 2}",
                                 [sys.executable, str(REPO_ROOT / "worker.py"), "--queue", options.scale_queue],
                                 logs / f"bench-worker-{options.scale_queue}-{n + 2}.log", env,
                                 niceness=settings.background_niceness, cpus=background_cpus))
        children.extend(extra)
        client = await connect(settings)
        await wait_for_pollers(client, {q.value: (queue_kind(q.value),
                                                  options.workers_per_queue if q.value == options.scale_queue else 1)
                                        for q in TaskQueue})
        say(f"simulator playing {len(robots)} robots at speed instant (pid {simulator.pid}); "
            f"{len(TaskQueue)} queues polled, {options.workers_per_queue} worker process(es) on {options.scale_queue}")

        sampler = Sampler([stack.pid, os.getpid()])
        transactions = TransactionCounter(settings)
        runs = []
        connections = OPEN_LOOP_CONNECTIONS if options.open_loop else max(options.concurrency) + 10
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"authorization": f"Bearer {fleet['partner']['api_key']}"}
        async with httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=60, limits=limits) as http:
            if options.warmup:
                say(f"warm-up: {options.warmup} deliveries (not measured)")
                await drive_ours(http, receiver, fleet, options.warmup, min(options.warmup, 5), options.timeout,
                                 f"warmup-{int(time.time())}")
            sampler.start()  # what the stack costs doing nothing: idle robots on their streams, heartbeats
            await asyncio.sleep(IDLE_SECONDS)
            idle = await sampler.stop()
            report["idle"] = {"seconds": IDLE_SECONDS, "machine": sampler.machine,
                              "cpu_percent": {label: round(100 * v["cpu_seconds"] / IDLE_SECONDS, 1)
                                              for label, v in idle.items()}}
            say(f"idle for {IDLE_SECONDS}s with {len(robots)} robots connected: CPU % "
                + ", ".join(f"{g} {report['idle']['cpu_percent'][g]:.0f}"
                            for g in ("workers", "api", "temporal", "postgres", "simulator")
                            if g in report["idle"]["cpu_percent"]))
            if options.open_loop:
                probes = Probes(client, settings.database_dsn(Service.INTEGRATIONS))
                report["open_loop"] = await open_loop(options, http, receiver, fleet, sampler, transactions, say,
                                                      probes, logs, settings.temporal_metrics_url)
            for index, concurrency in enumerate([] if options.open_loop else options.concurrency, 1):
                say(f"run {index}/{len(options.concurrency)}: concurrency {concurrency}, up to {options.deliveries} "
                    f"deliveries{budget_text(options)} through POST /v1/deliveries ...")
                ours = await closed_loop_run(options, http, receiver, fleet, sampler, transactions, concurrency,
                                             settings.temporal_metrics_url)
                say(f"  ours: {ours['delivered']}/{ours['deliveries']} delivered in {fmt(ours['duration_seconds'])} "
                    f"= {ours['throughput_per_second']:.2f}/s; lifecycle p50 {fmt(ours['latency_seconds']['p50'])} "
                    f"p95 {fmt(ours['latency_seconds']['p95'])} p99 {fmt(ours['latency_seconds']['p99'])}; "
                    f"POST p50 {fmt(ours['api_post_seconds']['p50'], 'ms', 1000)} "
                    f"p99 {fmt(ours['api_post_seconds']['p99'], 'ms', 1000)}")
                say(f"  ours {resource_line(ours['resources'], ours['machine'])}")
                if per := ours["transactions_per_delivery"]:
                    say(f"  database transactions per delivery: {per['total']:g} ("
                        + ", ".join(f"{service} {count:g}" for service, count in per.items() if service != "total")
                        + ")")
                if ours["delivered"] < ours["deliveries"]:
                    say(f"  not delivered: {ours['outcomes']}")
                if ours["rate_limited"]:
                    say(f"  {ours['rate_limited']} POSTs answered 429 (the bench partner's rate limit)")
                runs.append({"concurrency": concurrency, "ours": ours})

        if options.open_loop:
            return finish_open_loop(report, options, receiver, say)
        sample = next((run["ours"]["sample_workflow_id"] for run in runs if run["ours"]["sample_workflow_id"]), None)
        if sample is None:
            raise BenchError("no delivery reached delivered: nothing to measure or to count; see the logs in "
                             f"{logs} (run with --keep-data to keep them)")
        shape = await delivery_shape(client, sample)
        script = bare_script(shape)
        report["history"] = {**shape, "bare_background_queues": list(BACKGROUND_QUEUES)}
        say(f"history of {sample}: {shape['activities']} activities "
            f"({', '.join(f'{q} {n}' for q, n in shape['activities_per_queue'].items())}), "
            f"{shape['updates']} updates, {shape['events']} events")
        report["codec"] = await codec_cost(client, sample, client.data_converter.payload_codec)
        say(f"payload codec: {report['codec']['payloads']} payloads ({report['codec']['bytes']} bytes) per delivery, "
            f"sealed and opened in {report['codec']['cpu_ms_per_delivery']:.2f} CPU ms")
        others = [run["ours"]["sample_workflow_id"] for run in runs[1:] if run["ours"]["sample_workflow_id"]]
        report["history"]["other_runs"] = {}
        for other in others:  # one delivered workflow of every other run: the same shape?
            counted = await delivery_shape(client, other)
            report["history"]["other_runs"][other] = {"activities_per_queue": counted["activities_per_queue"],
                                                      "updates": counted["updates"]}

        # The baseline runs alone: the robots stop polling the API, the extra real workers go.
        for child in [simulator, *extra]:
            child.stop()
        bare_queues = [*script.activity_queues, BARE_WORKFLOW_QUEUE]
        scaled = bare_queue(options.scale_queue)
        processes = bare_processes(settings, script.activity_queues)
        processes += [[scaled]] * (options.workers_per_queue - 1)
        for n, queues in enumerate(processes, 1):
            argv = [sys.executable, "-m", "bench.bare", *(arg for queue in queues for arg in ("--queue", queue))]
            children.append(Process(f"bare worker {','.join(queues)}", argv, logs / f"bench-bare-{n}.log", env,
                                    niceness=settings.background_niceness, cpus=background_cpus))  # as ours
        await wait_for_pollers(client, {q: (queue_kind(q), options.workers_per_queue if q == scaled else 1)
                                        for q in bare_queues})
        layout = {"per-queue": "one process per bare queue", "single": "one process for every bare queue"}.get(
            settings.workers, "one process for the bare workflows, one for every bare activity queue")
        report["bare_workers"] = (f"{layout} ({len(processes)} processes: {', '.join(bare_queues)}), "
                                  f"{options.workers_per_queue} on {scaled}; no-op activities, "
                                  "max_concurrent_activities=100 as the real workers")
        say(f"bare baseline: {len(processes)} worker processes started, laid out as ours (DELIVERY_WORKERS="
            f"{settings.workers})")
        if options.warmup:
            await drive_bare(client, script, options.warmup, min(options.warmup, 5), options.timeout,
                             f"warmup-{int(time.time())}")
        for index, run in enumerate(runs, 1):
            concurrency = run["concurrency"]
            say(f"bare run {index}/{len(runs)}: concurrency {concurrency}, up to {options.deliveries} workflows"
                f"{budget_text(options)} of {shape['activities']} no-op activities + {shape['updates']} updates ...")
            temporal_before = await temporal_counters(settings.temporal_metrics_url)
            sampler.start()
            bare = await drive_bare(client, script, options.deliveries, concurrency, options.timeout,
                                    f"c{concurrency}-{int(time.time())}", options.run_seconds)
            bare["resources"] = await sampler.stop()
            bare["temporal_requests_per_workflow"] = await temporal_requests_since(
                settings.temporal_metrics_url, temporal_before, bare["completed"])
            bare["machine"] = sampler.machine
            bare["cpu_seconds_per_workflow"] = cpu_per_completed(bare["resources"], bare["completed"])
            run["bare"] = bare
            ours = run["ours"]
            run["ratio"] = {
                "throughput": round(ours["throughput_per_second"] / bare["throughput_per_second"], 3)
                if bare["throughput_per_second"] else None,
                **{f"latency_{p}": round(ours["latency_seconds"][p] / bare["latency_seconds"][p], 3)
                   if ours["latency_seconds"][p] and bare["latency_seconds"][p] else None
                   for p in ("p50", "p95", "p99")},
            }
            say(f"  bare: {bare['completed']}/{bare['workflows']} in {fmt(bare['duration_seconds'])} "
                f"= {bare['throughput_per_second']:.2f}/s; p50 {fmt(bare['latency_seconds']['p50'])} "
                f"p95 {fmt(bare['latency_seconds']['p95'])} p99 {fmt(bare['latency_seconds']['p99'])}")
            say(f"  bare {resource_line(bare['resources'], bare['machine'])}")
        report["runs"] = runs
        report["codec"]["share_of_platform_cpu"] = {
            str(run["concurrency"]): round(report["codec"]["cpu_ms_per_delivery"] / 1000
                                           / run["ours"]["cpu_seconds_per_delivery"]["platform"], 4)
            for run in runs if run["ours"].get("cpu_seconds_per_delivery", {}).get("platform")}
        report["webhooks"] = {"bad_signatures": receiver.bad_signatures, "duplicates": receiver.duplicates,
                              "statuses": dict(receiver.statuses)}
        print_summary(report, say)
        if options.json or options.output:
            text = json.dumps(report, indent=2)
            if options.output:
                Path(options.output).write_text(text + "\n")
                say(f"report written to {options.output}")
            else:
                print(text, flush=True)
        if options.plot:
            from bench.plot import plot

            try:
                plot(report, Path(options.plot))
            except RuntimeError as exc:
                raise BenchError(str(exc)) from None
            say(f"plot written to {options.plot}")
        # The bench partner's 429s are counted and shown, never a failure by themselves.
        failed = sum(run["ours"]["deliveries"] - run["ours"]["delivered"] - run["ours"]["rate_limited"]
                     + run["bare"]["workflows"] - run["bare"]["completed"] for run in runs)
        return 1 if failed else 0
    except asyncio.CancelledError:
        if stopping:
            return 130
        raise
    finally:
        for child in reversed(children):
            child.stop()
        if stack is not None:
            status = stack.stop()
            say(f"stack stopped (deliveryctl up exited {status})")
        try:
            await receiver.stop()
        except BaseException:
            pass
        if options.keep_data:
            say(f"data and logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def closed_loop_table(report: dict) -> list[str]:
    """The closed-loop runs as Markdown tables, from the report alone (`python -m bench.runner REPORT.json`):
    throughput and latency beside the bare baseline, CPU seconds per delivery by process group, peak memory."""
    shape = report["history"]
    per_queue = ", ".join(f"{queue} {count}" for queue, count in sorted(shape["activities_per_queue"].items(),
                                                                        key=lambda item: -item[1]))
    lines = [f"Per delivery, from `{shape['workflow_id']}`'s history: {shape['activities']} activities "
             f"({per_queue}), {shape['updates']} updates, {shape['workflow_tasks']} workflow tasks, "
             f"{shape['events']} history events.", "",
             "| C | ours / s | bare / s | ours/bare | ours latency p50 / p95 / p99 s | bare latency p50 / p95 / p99 s "
             "| POST p50 / p99 ms | 429 | CPU s by other processes: ours / bare |",
             "|---|---|---|---|---|---|---|---|---|"]
    trio = lambda s: " / ".join("-" if s[p] is None else f"{s[p]:.2f}" for p in ("p50", "p95", "p99"))
    ms = lambda v: "-" if v is None else f"{v * 1000:.0f}"
    for run in report["runs"]:
        ours, bare, ratio = run["ours"], run["bare"], run["ratio"]["throughput"]
        post = ours["api_post_seconds"]
        lines.append(f"| {run['concurrency']} | {ours['throughput_per_second']:.2f} | "
                     f"{bare['throughput_per_second']:.2f} | {'-' if ratio is None else f'{ratio:.2f}'} | "
                     f"{trio(ours['latency_seconds'])} | {trio(bare['latency_seconds'])} | "
                     f"{ms(post['p50'])} / {ms(post['p99'])} | {ours.get('rate_limited', '-')} | "
                     f"{ours['machine']['other_cpu_seconds']:.0f} / {bare['machine']['other_cpu_seconds']:.0f} |")
    groups = ("workers", "api", "temporal", "postgres", "platform", "simulator")
    lines += ["", "| C | CPU s per delivery: workers | API | Temporal | Postgres | servers total | simulator | "
                  "bare: workers | bare: Temporal | bare: total |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        ours, bare = run["ours"]["cpu_seconds_per_delivery"], run["bare"]["cpu_seconds_per_workflow"]
        cells = [f"**{ours[g]:.2f}**" if g == "platform" else f"{ours.get(g, 0):.2f}" for g in groups]
        bare_cells = [f"{bare.get(g, 0):.2f}" for g in ("bare workers", "temporal", "platform")]
        lines.append(f"| {run['concurrency']} | " + " | ".join(cells + bare_cells) + " |")
    lines += ["", "| C | peak RSS MB: workers | API | Temporal | simulator |", "|---|---|---|---|---|"]
    for run in report["runs"]:
        rss = {group: figures["peak_rss_mb"] for group, figures in run["ours"]["resources"].items()}
        lines.append(f"| {run['concurrency']} | " + " | ".join(f"{rss.get(g, 0):.0f}" for g in
                                                               ("workers", "api", "temporal", "simulator")) + " |")
    counted = [run for run in report["runs"] if run["ours"].get("transactions_per_delivery")]
    if counted:
        services = [s for s in counted[0]["ours"]["transactions_per_delivery"] if s != "total"]
        lines += ["", "| C | database transactions per delivery: " + " | ".join(services) + " | total |",
                  "|---|" + "---|" * (len(services) + 1)]
        for run in counted:
            per = run["ours"]["transactions_per_delivery"]
            lines.append(f"| {run['concurrency']} | " + " | ".join(f"{per[s]:g}" for s in services)
                         + f" | **{per['total']:g}** |")
    lines += temporal_requests_table(report)
    idle = report.get("idle")
    if idle:
        busy = ", ".join(f"{group} {percent:.1f}%" for group, percent in idle["cpu_percent"].items()
                         if not group.startswith("worker ") and group != "bench")
        lines += ["", f"Idle for {idle['seconds']} s before the runs, {report['parameters']['robots_total']} robots "
                      f"and no delivery, CPU of one core: {busy}."]
    return lines


TEMPORAL_FAMILIES = {"service_requests frontend ": "frontend requests",
                     "persistence_requests ": "persistence requests",
                     "visibility_persistence_requests ": "visibility writes"}


def temporal_requests_table(report: dict) -> list[str]:
    """What Temporal served per delivery beside per bare workflow, by family of its counters, then the operations
    whose counts differ by one or more and by a quarter or more (absent from reports before the bench read
    Temporal's metrics per run)."""
    runs = [run for run in report["runs"] if run["ours"].get("temporal_requests_per_delivery")
            and run["bare"].get("temporal_requests_per_workflow")]
    if not runs:
        return []
    total = lambda per, prefix: sum(v for k, v in per.items() if k.startswith(prefix))
    lines = ["", "| C | Temporal per delivery, ours / bare: " + " | ".join(TEMPORAL_FAMILIES.values()) + " |",
             "|---|" + "---|" * len(TEMPORAL_FAMILIES)]
    for run in runs:
        ours, bare = run["ours"]["temporal_requests_per_delivery"], run["bare"]["temporal_requests_per_workflow"]
        lines.append(f"| {run['concurrency']} | " + " | ".join(
            f"{total(ours, prefix):.1f} / {total(bare, prefix):.1f}" for prefix in TEMPORAL_FAMILIES) + " |")
    ours, bare = runs[0]["ours"]["temporal_requests_per_delivery"], runs[0]["bare"]["temporal_requests_per_workflow"]
    apart = sorted((key for key in ours.keys() | bare.keys()
                    if abs(ours.get(key, 0) - bare.get(key, 0)) >= 1
                    and max(ours.get(key, 0), bare.get(key, 0)) >= 1.25 * min(ours.get(key, 0), bare.get(key, 0))),
                   key=lambda key: (-abs(ours.get(key, 0) - bare.get(key, 0)), key))
    if apart:
        lines += ["", f"Where they differ by one or more per delivery and a quarter or more at "
                      f"C = {runs[0]['concurrency']} "
                      "(`<counter> <service> <operation>`, ours / bare): "
                  + "; ".join(f"`{key}` {ours.get(key, 0):g} / {bare.get(key, 0):g}" for key in apart) + "."]
    return lines


def main(argv: list[str] | None = None) -> None:
    """Print the tables of a saved report: `python -m bench.runner docs/benchmarks.json` (closed loop) or
    `python -m bench.runner docs/bench-open-loop.json` (open loop)."""
    [path] = argv if argv is not None else sys.argv[1:]
    report = json.loads(Path(path).read_text())
    print("\n".join(open_loop_table(report) if "open_loop" in report else closed_loop_table(report)))


def print_summary(report: dict, say: Say) -> None:
    shape = report["history"]
    say(f"per delivery (from {shape['workflow_id']}'s history): {shape['activities']} activities, "
        f"{shape['updates']} updates, {shape['workflow_tasks']} workflow tasks, {shape['events']} events")
    say(f"{'C':>4} {'ours/s':>8} {'bare/s':>8} {'ours/bare':>9}   {'ours p50/p95/p99 s':>20}   "
        f"{'bare p50/p95/p99 s':>20}   {'POST p50/p99 ms':>15}")
    for run in report["runs"]:
        ours, bare, ratio = run["ours"], run["bare"], run["ratio"]
        lo, lb, api = ours["latency_seconds"], bare["latency_seconds"], ours["api_post_seconds"]
        trio = lambda s: "/".join("-" if s[p] is None else f"{s[p]:.2f}" for p in ("p50", "p95", "p99"))
        duo = "/".join("-" if api[p] is None else f"{api[p] * 1000:.0f}" for p in ("p50", "p99"))
        share = "-" if ratio["throughput"] is None else f"{ratio['throughput']:.2f}"
        say(f"{run['concurrency']:>4} {ours['throughput_per_second']:>8.2f} {bare['throughput_per_second']:>8.2f} "
            f"{share:>9}   {trio(lo):>20}   {trio(lb):>20}   {duo:>15}")
    for run in report["runs"]:
        ours, bare = run["ours"].get("cpu_seconds_per_delivery"), run["bare"].get("cpu_seconds_per_workflow")
        if ours and bare:
            def detail(per: dict) -> str:
                servers = ", ".join(f"{g} {v:.2f}" for g, v in per.items()
                                    if g not in ("platform", "simulator", "bench") and v >= 0.005)
                others = ", ".join(f"{g} {per[g]:.2f}" for g in ("simulator", "bench") if g in per)
                return f"{per['platform']:.2f} ({servers}) + {others}"

            say(f"C={run['concurrency']}: CPU s per delivery {detail(ours)}; per bare workflow {detail(bare)}")
    for run in report["runs"]:
        if run["ours"]["rate_limited"]:
            say(f"C={run['concurrency']}: {run['ours']['rate_limited']} of the bench partner's POSTs answered 429 "
                "(counted, not failures; DELIVERY_API_RATE_LIMIT_* set for the bench's stack)")
    if share := report.get("codec", {}).get("share_of_platform_cpu"):
        say("payload codec: " + ", ".join(f"C={c} {100 * v:.2f}%" for c, v in share.items())
            + " of the platform's CPU per delivery")


if __name__ == "__main__":
    main()
