"""`deliveryctl up`: the whole stack in the foreground, supervised, stopped cleanly by Ctrl-C or SIGTERM."""

import asyncio
import json
import os
import random
import signal
import socket
import sys
from pathlib import Path

import httpx

from api.serve import WS_PING_SECONDS
from cli.errors import CommandError
from cli.supervisor import Child, ChildDied, Supervisor
from core.children import CpuSplit, cpu_list, cpu_split
from core.embedded import prepare_postgres, prepare_temporal, wait_for_postgres
from core.migrations import create_databases, upgrade_all
from core.services import Service, TaskQueue
from core.settings import Settings, settings_environment
from core.temporal import connect, ensure_search_attributes
from simulator.demo_market import demo_file, ensure_demo_market

REPO_ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[up] {message}", flush=True)


def stack_file(settings: Settings) -> Path:
    return settings.data_dir / "stack.json"


ACTIVITY_QUEUES = [queue for queue in TaskQueue if queue is not TaskQueue.DELIVERY_WORKFLOWS]


def worker_processes(settings: Settings) -> dict[str, list[TaskQueue]]:
    """The worker processes `up` starts, by name, with the queues each one polls.

    `single` (the default): every queue in one process, one interpreter and one SDK core for all, which on one
    machine costs the least memory and measured no more CPU per delivery than two (docs/benchmarks.md); `shared`:
    the workflows in one process and every activity queue in another, ~100 MB more; `per-queue`: one per queue, the
    production layout, where each queue scales on its own.
    """
    if settings.workers == "per-queue":
        return {queue.value: [queue] for queue in TaskQueue}
    if settings.workers == "single":
        return {"all": list(TaskQueue)}
    return {TaskQueue.DELIVERY_WORKFLOWS.value: [TaskQueue.DELIVERY_WORKFLOWS], "activities": ACTIVITY_QUEUES}


def api_processes(settings: Settings) -> dict[str, list[str]]:
    """The API processes `up` starts, by name, with their command lines.

    One: uvicorn on the API port. N (`DELIVERY_API_PROCESSES`, `up --api-processes N`): `api 1` .. `api N`, each
    binding the port with SO_REUSEPORT (`api/serve.py`), so the kernel spreads connections over them and one
    that dies leaves the others serving while the supervisor restarts it.
    """
    python = sys.executable
    if settings.api_processes == 1:
        return {"api": [python, "-m", "uvicorn", "api.app:create_app", "--factory",
                        "--host", settings.api_host, "--port", str(settings.api_port), "--no-access-log",
                        "--loop", "uvloop", "--http", "httptools", "--ws-ping-interval", str(WS_PING_SECONDS)]}
    argv = [python, "-m", "api.serve", "--host", settings.api_host, "--port", str(settings.api_port)]
    return {f"api {n}": argv for n in range(1, settings.api_processes + 1)}


def worker_metrics_ports(settings: Settings) -> dict[str, int]:
    """The Prometheus port of each worker process by name: base + i for the i-th; none when base is 0."""
    if not settings.metrics_base_port:
        return {}
    return {name: settings.metrics_base_port + i for i, name in enumerate(worker_processes(settings))}


def metrics_urls(settings: Settings) -> dict[str, str]:
    """Where each process of the stack serves Prometheus metrics, by process name (as its log is named)."""
    urls = {}
    if settings.metrics_base_port:
        urls = {f"worker-{name}": f"http://{settings.metrics_host}:{port}/metrics"
                for name, port in worker_metrics_ports(settings).items()}
        urls["api"] = f"{settings.api_url}/metrics"
    if settings.temporal_embedded and settings.temporal_metrics_port:
        urls["temporal"] = settings.temporal_metrics_url
    return urls


def describe_stack(settings: Settings) -> dict:
    """The addresses other tools use to reach the stack."""
    stack = {
        "api_url": settings.api_url,
        "temporal_address": settings.temporal_address,
        "temporal_namespace": settings.temporal_namespace,
        "temporal_ui_url": settings.temporal_ui_url,
        "codec_url": settings.codec_url,
        "databases": {service.value: settings.database_dsn(service) for service in Service},
        "data_dir": str(settings.data_dir),
        "logs_dir": str(settings.data_dir / "logs"),
    }
    if urls := metrics_urls(settings):
        stack["metrics_urls"] = urls
    return stack


def running_stack(settings: Settings) -> dict | None:
    """The stack recorded in the data directory, if its `up` process is still alive."""
    path = stack_file(settings)
    if not path.exists():
        return None
    stack = json.loads(path.read_text())
    try:
        os.kill(stack["pid"], 0)
    except (ProcessLookupError, KeyError):
        return None
    return stack


def cpu_placement(settings: Settings) -> CpuSplit:
    """The CPUs of the API processes and of every other process `up` starts (None: any)."""
    try:
        return cpu_split(settings.api_cpus)
    except ValueError as exc:
        raise CommandError(f"DELIVERY_API_CPUS (up --api-cpus): {exc}") from None


def preflight(settings: Settings) -> None:
    """Refuse to start on ports already in use, naming the setting that chose each port, or on CPUs this
    process may not use."""
    cpu_placement(settings)
    wanted = [(settings.api_host, settings.api_port, "DELIVERY_API_PORT"),
              (settings.codec_host, settings.codec_port, "DELIVERY_CODEC_PORT")]
    if settings.temporal_embedded:
        wanted.append((settings.temporal_host, settings.temporal_port, "DELIVERY_TEMPORAL_ADDRESS"))
        wanted.append((settings.temporal_ui_ip, settings.temporal_ui_port, "DELIVERY_TEMPORAL_UI_PORT"))
        if settings.temporal_metrics_port:
            wanted.append((settings.temporal_host, settings.temporal_metrics_port, "DELIVERY_TEMPORAL_METRICS_PORT"))
    if settings.embedded_postgres:
        wanted.append((settings.postgres_host, settings.postgres_port, "DELIVERY_POSTGRES_PORT"))
    for name, port in worker_metrics_ports(settings).items():
        if not 0 < port < 65536:
            raise CommandError(f"DELIVERY_METRICS_BASE_PORT: port {port} of worker {name} is out of range")
        wanted.append((settings.metrics_host, port, f"DELIVERY_METRICS_BASE_PORT (worker {name})"))
    for host, port, setting in wanted:
        error = _port_taken(host, port)
        if error:
            raise CommandError(f"port {host}:{port} ({setting}) is not available: {error}")


def _port_taken(host: str, port: int) -> str | None:
    """Why `port` cannot be bound on `host`, or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def choose_metrics_ports(settings: Settings) -> Settings:
    """Keep the default metrics block if it is free; else take a free block at random in 20000-32767.

    Only for the default (DELIVERY_METRICS_BASE_PORT not set): another stack on this machine must not stop
    `up`, and a random block keeps stacks starting at the same time apart. A base port that was set is used
    as given, and `preflight` refuses it if it is taken.
    """
    count = len(worker_processes(settings))
    if "metrics_base_port" in settings.model_fields_set or not settings.metrics_base_port:
        return settings
    candidates = [settings.metrics_base_port, *(random.randrange(20000, 32768 - count) for _ in range(50))]
    for base in candidates:
        if not any(_port_taken(settings.metrics_host, base + i) for i in range(count)):
            if base != settings.metrics_base_port:
                say(f"metrics ports {settings.metrics_base_port}-{settings.metrics_base_port + count - 1} are in use; "
                    f"workers use {base}-{base + count - 1} (set DELIVERY_METRICS_BASE_PORT to choose)")
            return settings.model_copy(update={"metrics_base_port": base})
    raise CommandError("no free block of metrics ports; set DELIVERY_METRICS_BASE_PORT (0 turns metrics off)")


async def start_postgres(settings: Settings, supervisor: Supervisor, logs: Path) -> None:
    spec = prepare_postgres(settings)
    child = await supervisor.start(
        Child("postgres", spec.argv, logs / "postgres.log", user=spec.user, stop_signal=spec.stop_signal, critical=True,
              cpus=cpu_placement(settings).others)
    )
    say(f"postgres starting on {settings.postgres_host}:{settings.postgres_port} (pid {child.pid})")
    maintenance = f"postgresql://postgres@{settings.postgres_host}:{settings.postgres_port}/postgres"
    try:
        await wait_for_postgres(maintenance, timeout=60)
    except Exception as exc:
        raise CommandError(f"postgres did not become ready: {exc}; see {logs / 'postgres.log'}") from None


async def prepare_databases(settings: Settings) -> None:
    for service in Service:
        try:
            await wait_for_postgres(settings.server_dsn(service), timeout=5)
        except Exception as exc:
            setting = f"DELIVERY_{service.value.upper()}_DATABASE_URL"
            raise CommandError(f"cannot reach the {service.value} database server ({setting}): {exc}") from None
    created = await create_databases(settings)
    if created:
        say(f"created databases: {', '.join(created)}")
    await asyncio.to_thread(upgrade_all, settings)
    say(f"all {len(Service)} databases migrated to head")


async def start_temporal(settings: Settings, supervisor: Supervisor, logs: Path) -> None:
    from workflows import ensure_schedules  # the workflows pull in their activities

    if settings.temporal_embedded:
        spec = prepare_temporal(settings)
        child = await supervisor.start(Child("temporal", spec.argv, logs / "temporal.log", critical=True,
                                             cpus=cpu_placement(settings).others))
        say(f"temporal dev server starting on {settings.temporal_address} (pid {child.pid})")
    for _ in range(120):
        try:
            client = await connect(settings, metrics=False)
            break
        except Exception as last:  # the server is still starting
            error = last
            await asyncio.sleep(0.5)
    else:
        raise CommandError(f"temporal is unreachable at {settings.temporal_address}: {error}")
    added = await ensure_search_attributes(client)
    if added:
        say(f"registered search attributes: {', '.join(added)}")
    if created := await ensure_schedules(client):
        say(f"created schedules: {', '.join(created)}")


async def start_clients(settings: Settings, supervisor: Supervisor, logs: Path) -> None:
    env = settings_environment(settings)
    env.pop("DELIVERY_METRICS_PORT", None)  # each worker gets its own port below; the API serves /metrics
    python = sys.executable
    ports = worker_metrics_ports(settings)
    processes = worker_processes(settings)
    api_cpus, other_cpus = cpu_placement(settings)
    for name, queues in processes.items():
        argv = [python, str(REPO_ROOT / "worker.py"), *(arg for queue in queues for arg in ("--queue", queue.value))]
        worker_env = {**env, "DELIVERY_METRICS_PORT": str(ports[name])} if name in ports else env
        await supervisor.start(Child(f"worker {name}", argv, logs / f"worker-{name}.log", env=worker_env,
                                     niceness=settings.background_niceness, cpus=other_cpus))
    if settings.workers == "per-queue":
        say(f"{len(processes)} workers started, one per task queue")
    elif settings.workers == "single":
        say(f"1 worker started for all {len(TaskQueue)} task queues (DELIVERY_WORKERS=per-queue: one per queue)")
    else:
        say(f"{len(processes)} workers started: {TaskQueue.DELIVERY_WORKFLOWS.value}, and one for the "
            f"{len(ACTIVITY_QUEUES)} activity queues (DELIVERY_WORKERS=shared)")
    if settings.background_niceness:
        say(f"workers scheduled at nice +{settings.background_niceness} under the API (DELIVERY_BACKGROUND_NICENESS)")
    if ports:
        first, last = min(ports.values()), max(ports.values())
        where = f"port {first}" if first == last else f"ports {first}-{last}, one per worker process"
        say(f"worker metrics on http://{settings.metrics_host}:{first}/metrics ({where}), API metrics on "
            f"{settings.api_url}/metrics")
    codec = [python, "-m", "cli.main", "codec-server"]
    await supervisor.start(Child("codec server", codec, logs / "codec.log", env=env, cpus=other_cpus))
    say(f"payload codec on {settings.codec_url}: the Temporal UI shows payloads decrypted through it")
    for name, argv in api_processes(settings).items():
        await supervisor.start(Child(name, argv, logs / f"{name.replace(' ', '-')}.log", env=env, cpus=api_cpus))
    if settings.api_processes > 1:
        say(f"{settings.api_processes} API processes on {settings.api_url} (SO_REUSEPORT; each rate-limits on its "
            f"own: a partner may send up to {settings.api_processes} x DELIVERY_API_RATE_LIMIT_PER_SECOND)")
    if api_cpus:
        say(f"the API on CPU {cpu_list(api_cpus)} alone, every other process on CPU {cpu_list(other_cpus)} "
            "(DELIVERY_API_CPUS)")
    await wait_for_health(settings, logs)
    await start_rounds(settings)


async def start_rounds(settings: Settings) -> None:
    """The periodic Dispatch planning rounds (kept if a previous `up` on this data already started them)."""
    from workflows.planning_rounds import WORKFLOW_ID, start_planning_rounds  # the planner pulls in scipy

    await start_planning_rounds(await connect(settings, metrics=False), settings.planning_round_seconds)
    say(f"dispatch planning rounds every {settings.planning_round_seconds:g} s (workflow {WORKFLOW_ID})")


async def wait_for_health(settings: Settings, logs: Path, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    body = None
    async with httpx.AsyncClient(timeout=5) as http:
        while asyncio.get_running_loop().time() < deadline:
            try:
                response = await http.get(f"{settings.api_url}/healthz")
                body = response.json()
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    log = "api.log" if settings.api_processes == 1 else "api-*.log"
    raise CommandError(f"the API did not become healthy (last: {body}); see {logs / log}")


async def start_demo_market(settings: Settings, supervisor: Supervisor, logs: Path) -> dict:
    """Seed the West Hollywood demo market and, unless turned off, the simulated fleet serving it."""
    demo = await ensure_demo_market(settings)
    if settings.simulator:
        argv = [sys.executable, "-m", "simulator", "--api-url", settings.api_url,
                "--fleet", str(demo_file(settings)), "--speed", settings.sim_speed]
        child = await supervisor.start(Child("simulator", argv, logs / "simulator.log",
                                             env=settings_environment(settings), niceness=settings.background_niceness,
                                             cpus=cpu_placement(settings).others))
        say(f"simulator playing {len(demo['robots'])} robots at speed {settings.sim_speed} (pid {child.pid})")
    return demo


def print_ready(settings: Settings, demo: dict) -> None:
    stack = describe_stack(settings)
    print(
        "\nThe delivery platform is up.\n"
        f"  API docs     {stack['api_url']}/docs   (health: {stack['api_url']}/healthz)\n"
        f"  Temporal UI  {stack['temporal_ui_url']}/namespaces/{settings.temporal_namespace}/workflows\n"
        f"  Temporal     {stack['temporal_address']} (namespace {settings.temporal_namespace})\n"
        f"  Codec        {stack['codec_url']}   (payloads in Temporal are encrypted; the UI decrypts through it)\n"
        f"  Databases    {len(stack['databases'])}: {stack['databases'][Service.DELIVERIES]} and siblings\n"
        f"  Data         {stack['data_dir']}\n"
        f"  Logs         {stack['logs_dir']}   (workers and API: JSON lines)\n"
        f"{_metrics_lines(stack)}"
        f"  Demo market  {demo['market']}: {len(demo['robots'])} robots, {len(demo['stores'])} stores\n"
        f"  Demo partner API key: {demo['partner']['api_key']}\n"
        "Try it: deliveryctl demo --deliveries 20   (stack addresses: deliveryctl status --json)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def _metrics_lines(stack: dict) -> str:
    urls = stack.get("metrics_urls", {})
    temporal = f", {urls['temporal']} (Temporal)" if "temporal" in urls else ""
    if "api" not in urls:
        return f"  Metrics      off (DELIVERY_METRICS_BASE_PORT=0){temporal}\n"
    workers = [url for name, url in urls.items() if name.startswith("worker-")]
    worker = f"{workers[0]} (worker)" if len(workers) == 1 else f"{workers[0]} .. {workers[-1]} (one per worker)"
    return (f"  Metrics      {urls['api']} (API), {worker}{temporal}\n"
            "               all of them: deliveryctl status --json (metrics_urls)\n")


async def run_stack(settings: Settings) -> int:
    """Bring the stack up, keep it up, and stop it cleanly; return the exit status."""
    settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    existing = running_stack(settings)
    if existing:
        raise CommandError(f"a stack is already running from {settings.data_dir} (pid {existing['pid']})")
    settings = choose_metrics_ports(settings)
    preflight(settings)
    logs = settings.data_dir / "logs"
    supervisor = Supervisor(say)
    stop = asyncio.Event()
    main = asyncio.current_task()
    ready = False

    def on_signal(signum: int) -> None:
        if stop.is_set():
            return
        say(f"{signal.Signals(signum).name} received, stopping")
        stop.set()
        if not ready:
            main.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        if settings.embedded_postgres:
            await start_postgres(settings, supervisor, logs)
        await prepare_databases(settings)
        await start_temporal(settings, supervisor, logs)
        await start_clients(settings, supervisor, logs)
        demo = await start_demo_market(settings, supervisor, logs)
        stack_file(settings).write_text(json.dumps({**describe_stack(settings), "pid": os.getpid()}, indent=2))
        ready = True
        print_ready(settings, demo)
        await supervisor.watch(stop)
        return 0
    except ChildDied as exc:
        say(f"error: {exc}; stopping everything")
        return 1
    except asyncio.CancelledError:
        return 130
    finally:
        await supervisor.stop_all()
        stack_file(settings).unlink(missing_ok=True)
        say("stopped; every process started by this command has exited")
