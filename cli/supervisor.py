"""Child processes of `deliveryctl up`: started, watched, restarted, and stopped with nothing left behind."""

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.children import before_exec


@dataclass
class Child:
    """One supervised process and how to treat it when it exits."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    critical: bool = False  # when a critical child dies, the whole stack stops
    niceness: int = 0  # how much lower than `up` it is scheduled: background work yields the CPU to requests
    cpus: frozenset[int] | None = None  # the only CPUs it runs on (DELIVERY_API_CPUS); None: any
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                user=self.user,
                start_new_session=True,  # Ctrl-C reaches only `up`, which then stops children in order
                preexec_fn=before_exec(self.niceness, self.cpus),
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def stop(self, grace: float = 15.0) -> None:
        """Ask the child to stop, then kill it if it has not stopped within `grace` seconds."""
        if self.process is None or self.process.returncode is not None:
            return
        try:
            self.process.send_signal(self.stop_signal)
            await asyncio.wait_for(self.process.wait(), timeout=grace)
        except ProcessLookupError:
            return
        except asyncio.TimeoutError:
            _kill_group(self.process.pid)
            await self.process.wait()
        _kill_group(self.process.pid)  # helpers the child spawned in its session, if any remain


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ChildDied(Exception):
    """A critical child exited; the stack cannot go on."""

    def __init__(self, child: Child, code: int | None):
        super().__init__(f"{child.name} exited unexpectedly (code {code}); see {child.log_path}")
        self.child = child


class Supervisor:
    """Restarts ordinary children that die, with backoff; stops everything when a critical one dies."""

    def __init__(self, report):
        self.children: list[Child] = []
        self.report = report

    async def start(self, child: Child) -> Child:
        await child.start()
        self.children.append(child)
        return child

    async def watch(self, stop: asyncio.Event) -> None:
        """Return when `stop` is set; raise ChildDied when a critical child exits."""
        while not stop.is_set():
            for child in self.children:
                code = child.process.returncode if child.process else None
                if code is None:
                    continue
                if child.critical:
                    raise ChildDied(child, code)
                await self._restart(child, code, stop)
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass

    async def _restart(self, child: Child, code: int, stop: asyncio.Event) -> None:
        uptime = time.monotonic() - child.started_at
        child.restarts = 0 if uptime > 60 else child.restarts + 1
        delay = min(30.0, 2 ** child.restarts)
        self.report(f"{child.name} exited with code {code}; restarting in {delay:.0f}s (log: {child.log_path})")
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            return
        except asyncio.TimeoutError:
            pass
        await child.start()
        self.report(f"{child.name} restarted (pid {child.pid})")

    async def stop_all(self) -> None:
        """Stop the clients (API, workers) together, then the servers in reverse start order."""
        await asyncio.gather(*(child.stop() for child in self.children if not child.critical))
        for child in reversed([child for child in self.children if child.critical]):
            await child.stop()
