"""`deliveryctl up` as a subprocess: fresh data dir, free ports, its ready banner, and a stop that always happens.

Also the other processes the bench starts itself (simulator, extra workers, bare workers): each in its own
session, output to a log file, stopped with SIGINT/SIGTERM and then its process group killed.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.children import before_exec
from core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
READY = "The delivery platform is up."
READY_END = "Press Ctrl-C to stop."


class BenchError(Exception):
    """The bench cannot go on; the message says why."""


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago (all probes held open at once, so no repeats)."""
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            probes.append(probe)
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


# The settings the bench chooses for its stack; every other DELIVERY_* setting is the caller's, or the default.
BENCH_FIELDS = ("data_dir", "api_host", "api_port", "temporal_address", "temporal_ui_port", "temporal_metrics_port",
                "postgres_port", "codec_port", "temporal_embedded", "simulator", "sim_speed",
                "api_rate_limit_per_second", "api_rate_limit_burst")
# The bench measures the stack, not the partner rate limiter: its partner's limit is lifted unless the caller set
# DELIVERY_API_RATE_LIMIT_* (any 429 is then counted in the report, never a failure by itself).
BENCH_RATE_LIMIT = {"api_rate_limit_per_second": 100_000, "api_rate_limit_burst": 100_000}


def stack_settings(base: Settings, data_dir: Path) -> Settings:
    """The caller's settings, on a fresh data dir and free ports, with the simulator left to the bench."""
    api, temporal, ui, temporal_metrics, postgres, codec = free_ports(6)
    return base.model_copy(update={
        "data_dir": data_dir.resolve(), "api_host": "127.0.0.1", "api_port": api,
        "temporal_address": f"127.0.0.1:{temporal}", "temporal_ui_port": ui,
        "temporal_metrics_port": temporal_metrics, "postgres_port": postgres,
        "codec_port": codec, "temporal_embedded": True, "simulator": False, "sim_speed": "instant",
        **{name: value for name, value in BENCH_RATE_LIMIT.items() if name not in base.model_fields_set},
    })


def child_environment(settings: Settings) -> dict[str, str]:
    """The caller's environment (its DELIVERY_* included) with the bench's choices on top."""
    env = dict(os.environ)
    for name in BENCH_FIELDS:
        value = getattr(settings, name)
        env[f"DELIVERY_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


class Process:
    """A child in its own session with its output in a log file, signalled if the bench dies (`up`, on SIGTERM,
    stops everything it started), at `niceness` below the bench, on `cpus` alone when given."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str], niceness: int = 0,
                 cpus: frozenset[int] | None = None):
        self.name, self.log_path = name, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=before_exec(niceness, cpus))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, signum: int = signal.SIGTERM, grace: float = 20.0) -> int | None:
        """Signal it, wait up to `grace` seconds, then kill its whole process group; the exit status."""
        if self.alive():
            try:
                self.popen.send_signal(signum)
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            return self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None


class Stack(Process):
    """One `python -m cli.main up`, the same interpreter, on the settings given (or the environment given)."""

    def __init__(self, settings: Settings, env: dict[str, str] | None = None):
        self.settings = settings
        super().__init__("up", [sys.executable, "-m", "cli.main", "up"],
                         settings.data_dir / "bench-up.log", env or child_environment(settings))

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if READY in text and READY_END in text.split(READY, 1)[1]:
                return
            if not self.alive():
                raise BenchError(f"`deliveryctl up` exited with {self.popen.returncode} before it was ready; "
                                 f"its output:\n{self.output()[-3000:]}")
            time.sleep(0.3)
        raise BenchError(f"`deliveryctl up` printed no ready banner within {timeout:.0f}s; see {self.log_path}")

    def stop(self, signum: int = signal.SIGINT, grace: float = 60.0) -> int | None:
        """Ctrl-C as a terminal sends it (`up` then stops every child in order), then kill what is left."""
        descendants = _descendants(self.pid)
        status = super().stop(signum, grace)
        for child in descendants:  # only processes this stack started; normally all gone already
            try:
                child.kill()  # psutil checks the pid still names the same process (no pid reuse)
            except Exception:
                pass
        return status


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:
        return []
