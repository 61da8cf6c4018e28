"""CPU seconds and peak RSS of the processes under test, sampled every 0.5 s with psutil, and how long each one's
main thread waited for a core; and the transactions each service's database ran meanwhile (`TransactionCounter`).

Processes are found as descendants of the roots given (the `up` process, and the bench's own children) and
grouped by their command line: `temporal`, `api`, `worker <queue>`, `postgres` (the postmaster and its
backends), `simulator`, `bare worker <queue>`, and `bench` (this process: load generator and receiver).
"""

import asyncio
import os
import time
from collections import defaultdict
from urllib.parse import urlsplit

import asyncpg
import psutil

from core.services import Service
from core.settings import Settings

INTERVAL = 0.5


def classify(process: psutil.Process) -> str | None:
    try:
        argv = process.cmdline()
        name = process.name()
    except (psutil.Error, OSError):
        return None
    command = " ".join(argv)
    if "start-dev" in argv and "server" in argv:
        return "temporal"
    if "worker.py" in command and "--queue" in argv:
        return "worker " + ",".join(argv[i + 1] for i, a in enumerate(argv) if a == "--queue")
    if "bench.bare" in command and "--queue" in argv:
        return "bare worker " + ",".join(argv[i + 1] for i, a in enumerate(argv) if a == "--queue")
    if ("uvicorn" in command and "api.app" in command) or "api.serve" in argv:
        return "api"
    if "-m" in argv and "simulator" in argv:
        return "simulator"
    if name.startswith("postgres") or "postgres" in (argv[0] if argv else ""):
        return "postgres"
    return None


def group_of(label: str) -> str:
    """Workers are also summed per kind."""
    if label.startswith("bare worker"):
        return "bare workers"
    if label.startswith("worker "):
        return "workers"
    return label


class Sampler:
    """Call `start()`, run the load, then `await stop()` for {label: {cpu_seconds, peak_rss_mb}}."""

    def __init__(self, roots: list[int]):
        self.roots = roots
        self._task: asyncio.Task | None = None
        self._procs: dict[int, tuple[psutil.Process, str]] = {}
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._wait_start: dict[int, float] = {}
        self._wait_last: dict[int, float] = {}
        self._peak: dict[str, float] = defaultdict(float)
        self._samples = 0
        self._machine_start = (psutil.cpu_times(), 0.0)
        self.machine: dict[str, float] = {}

    def _discover(self) -> None:
        candidates = []
        for root in self.roots:
            try:
                parent = psutil.Process(root)
                candidates += [parent, *parent.children(recursive=True)]
            except psutil.Error:
                continue
        for process in candidates:
            if process.pid in self._procs:
                continue
            label = classify(process)
            if label is None and process.pid == os.getpid():
                label = "bench"
            if label is not None:
                self._procs[process.pid] = (process, label)
                self._cpu_start[process.pid] = self._cpu(process) if self._samples == 0 else 0.0
                self._wait_start[process.pid] = main_thread_wait(process.pid) if self._samples == 0 else 0.0

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
            return times.user + times.system
        except psutil.Error:
            return 0.0

    def sample(self) -> None:
        self._discover()
        rss: dict[str, float] = defaultdict(float)
        for pid, (process, label) in list(self._procs.items()):
            try:
                with process.oneshot():
                    self._cpu_last[pid] = self._cpu(process)
                    memory = process.memory_info().rss / 2**20
            except psutil.Error:
                continue  # exited: its last CPU reading stays counted
            self._wait_last[pid] = main_thread_wait(pid) or self._wait_last.get(pid, 0.0)
            rss[label] += memory
            rss[group_of(label)] += memory if group_of(label) != label else 0
        for label, value in rss.items():
            self._peak[label] = max(self._peak[label], value)
        self._samples += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(INTERVAL)

    def start(self) -> None:
        self._machine_start = (psutil.cpu_times(), _now())
        self._procs.clear()
        self._cpu_start.clear()
        self._cpu_last.clear()
        self._wait_start.clear()
        self._wait_last.clear()
        self._peak.clear()
        self._samples = 0
        self.sample()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, dict[str, float]]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.sample)
        cpu: dict[str, float] = defaultdict(float)
        waited: dict[str, float] = defaultdict(float)
        for pid, (_, label) in self._procs.items():
            used = max(0.0, self._cpu_last.get(pid, 0.0) - self._cpu_start.get(pid, 0.0))
            wait = max(0.0, self._wait_last.get(pid, 0.0) - self._wait_start.get(pid, 0.0))
            for key in {label, group_of(label)}:
                cpu[key] += used
                waited[key] += wait
        labels = sorted(set(cpu) | set(self._peak))
        self.machine = self._machine(sum(v for k, v in cpu.items() if k not in ("workers", "bare workers")))
        return {label: {"cpu_seconds": round(cpu.get(label, 0.0), 2),
                        "main_thread_wait_seconds": round(waited.get(label, 0.0), 2),
                        "peak_rss_mb": round(self._peak.get(label, 0.0), 1)} for label in labels}

    def _machine(self, tracked: float) -> dict[str, float]:
        """CPU the whole machine spent meanwhile, and how much of it went to processes not under test."""
        before, began = self._machine_start
        after = psutil.cpu_times()
        busy = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0)
                   for f in ("user", "nice", "system", "irq", "softirq", "steal"))
        elapsed = _now() - began
        return {"elapsed_seconds": round(elapsed, 2), "busy_cpu_seconds": round(busy, 2),
                "tracked_cpu_seconds": round(tracked, 2), "other_cpu_seconds": round(max(0.0, busy - tracked), 2),
                "cores": psutil.cpu_count(), "utilisation": round(busy / (elapsed * psutil.cpu_count()), 3)}


_now = time.monotonic


def main_thread_wait(pid: int) -> float:
    """Seconds the process's main thread (an event loop, in the API and the workers) has spent ready to run but
    waiting for a core (the second field of /proc/PID/schedstat); 0 where the kernel does not keep it."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class TransactionCounter:
    """Transactions each service's database ran (committed and rolled back, from `pg_stat_database`): an
    autocommit statement is one, a unit of work with BEGIN and COMMIT is one. Counted on the embedded Postgres only.

    A backend reports its counts when idle, at most about once a second: `stop` waits that long first.
    """

    SETTLE_SECONDS = 1.5
    QUERY = "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = ANY($1::text[])"

    def __init__(self, settings: Settings) -> None:
        self.admin_dsn = settings.postgres_admin_dsn
        self.databases = {urlsplit(settings.database_dsn(service)).path.lstrip("/"): service.value
                          for service in Service if settings.on_embedded_postgres(service)}
        self.before: dict[str, int] = {}

    async def _counts(self) -> dict[str, int]:
        connection = await asyncpg.connect(self.admin_dsn)
        try:
            rows = await connection.fetch(self.QUERY, list(self.databases))
        finally:
            await connection.close()
        return {self.databases[name]: count for name, count in rows}

    async def start(self) -> None:
        self.before = await self._counts()

    async def stop(self, completed: int) -> dict[str, float]:
        """Transactions per completed delivery, per service and in `total`, since `start`."""
        await asyncio.sleep(self.SETTLE_SECONDS)
        after = await self._counts()
        if not completed:
            return {}
        per = {service: round((after[service] - self.before.get(service, 0)) / completed, 1)
               for service in sorted(after)}
        per["total"] = round(sum(per.values()), 1)
        return per
