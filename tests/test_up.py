"""`deliveryctl up` end to end, run the way a user runs it: a real subprocess, real ports, Ctrl-C to stop.

One test brings the whole stack up, checks it, stops it with SIGINT, checks nothing is left running, and
brings it up again on the same data directory to check the data survived. Another kills children of a
running `up`: a worker and the API are restarted, and losing Temporal stops the whole stack with exit 1.
Another checks that bad settings fail fast with one line naming the setting. Every port is free-chosen,
every file lives in a pytest tmp dir, and a `finally` kills whatever a failing run leaves behind.
"""

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.up import worker_processes
from core.embedded import prepare_temporal
from core.migrations import current_revisions, head_revisions
from core.services import Service, TaskQueue
from core.settings import Settings
from tests.support.cli import ROOT, deliveryctl
from tests.support.servers import free_port

READY = "The delivery platform is up."
STOPPED = "stopped; every process started by this command has exited"
KEY_PREFIX = "Demo partner API key:"
READY_TIMEOUT = 120
STOP_TIMEOUT = 60

# A delivery inside the West Hollywood demo market (core/markets.py), from a demo store.
ORDER = {
    "external_id": "test-up-order-1",
    "pickup": {"latitude": 34.0837, "longitude": -118.3614, "store_id": "weho-sunset"},
    "dropoff": {"latitude": 34.0871, "longitude": -118.3725, "address": "8800 Melrose Ave",
                "instructions": "leave at the lobby"},
    "customer": {"name": "Alex Doe", "phone": "+13105550100"},
}


@dataclass
class Stack:
    """The addresses one `up` is told to use through DELIVERY_* variables."""

    data_dir: Path
    api_port: int
    temporal_port: int
    temporal_ui_port: int
    postgres_port: int
    codec_port: int

    @classmethod
    def fresh(cls, data_dir: Path) -> "Stack":
        ports = set()
        while len(ports) < 5:
            ports.add(free_port())
        return cls(data_dir, *sorted(ports))

    @property
    def ports(self) -> tuple[int, ...]:
        return self.api_port, self.temporal_port, self.temporal_ui_port, self.postgres_port, self.codec_port

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
        env.update({
            "DELIVERY_DATA_DIR": str(self.data_dir),
            "DELIVERY_API_PORT": str(self.api_port),
            "DELIVERY_TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "DELIVERY_TEMPORAL_UI_PORT": str(self.temporal_ui_port),
            "DELIVERY_POSTGRES_PORT": str(self.postgres_port),
            "DELIVERY_CODEC_PORT": str(self.codec_port),
            "DELIVERY_SIM_SPEED": "instant",
            "DELIVERY_METRICS_BASE_PORT": "0",
        })
        env.update(extra)
        return env


class UpProcess:
    """One `deliveryctl up` in its own session, its output in files so nothing blocks on a pipe."""

    def __init__(self, stack: Stack, out_dir: Path, name: str, *args: str, **extra_env: str):
        self.stdout_path = out_dir / f"{name}.stdout"
        self.stderr_path = out_dir / f"{name}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [*deliveryctl(), "up", *args], cwd=ROOT, env=stack.env(**extra_env),
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> str:
        """Wait for the ready banner; return the demo partner API key it prints."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stdout
            if READY in text and KEY_PREFIX in text.split(READY, 1)[1]:
                tail = text.split(READY, 1)[1]
                if "Press Ctrl-C to stop." in tail:
                    line = next(line for line in tail.splitlines() if KEY_PREFIX in line)
                    return line.split(KEY_PREFIX, 1)[1].strip()
            if self.process.poll() is not None:
                pytest.fail(f"`up` exited with {self.process.returncode} before it was ready\n{self.output()}")
            time.sleep(0.5)
        pytest.fail(f"`up` printed no ready banner within {timeout:.0f}s\n{self.output()}")

    def interrupt(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ctrl-C, as a terminal sends it to the foreground process group; return the exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`up` did not exit within {timeout}s of SIGINT\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)


def _read(path: str, binary: bool = False):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        return data if binary else data.decode(errors="replace")
    except OSError:
        return None


def _listening_inodes(ports: tuple[int, ...]) -> dict[str, int]:
    """Socket inodes listening on any of `ports` (from /proc/net/tcp{,6}), mapped to their port."""
    inodes = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (_read(table) or "").splitlines()[1:]:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and port in ports:  # 0A: LISTEN
                inodes[fields[9]] = port
    return inodes


def _address(hexed: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian) byte order."""
    raw = b"".join(bytes.fromhex(hexed[i:i + 8])[::-1] for i in range(0, len(hexed), 8))
    return ipaddress.ip_address(raw)


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent_pid(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        found.add(current := todo.pop())
        todo.extend(children.get(current, []))
    return found


def nice_of_threads(pid: int) -> set[int]:
    """The nice value of each thread of a process (the 19th field of its stat)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return set()
    stats = (_read(f"{task}/stat") for task in tasks)
    return {int(stat.rsplit(")", 1)[1].split()[16]) for stat in stats if stat}


def cpus_of_threads(pid: int) -> set[frozenset[int]]:
    """The CPUs each thread of a process may run on."""
    try:
        tasks = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return set()
    cpus = set()
    for task in tasks:
        try:
            cpus.add(frozenset(os.sched_getaffinity(task)))
        except OSError:  # the thread ended meanwhile
            pass
    return cpus


def _command_of(pid: int) -> str:
    return " ".join(arg.decode(errors="replace") for arg in (_read(f"/proc/{pid}/cmdline", True) or b"").split(b"\0")
                    if arg)


def listening_sockets(pids: set[int]) -> dict[tuple[str, int], str]:
    """Every TCP socket the processes listen on, as (address, port), with the command of the process holding it."""
    owners = {}
    for pid in pids:
        command = _command_of(pid)[:120]
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        owners.update({link[len("socket:["):-1]: command for link in links if link.startswith("socket:[")})
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (_read(table) or "").splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in owners:  # 0A: LISTEN
                hexed, _, port = fields[1].partition(":")
                found[(str(_address(hexed)), int(port, 16))] = owners[fields[9]]
    return found


def free_port_block(count: int) -> int:
    """The first of `count` ports in a row that are free on loopback."""
    for _ in range(50):
        base = free_port()
        try:
            with contextlib.ExitStack() as probes:
                for port in range(base, base + count):
                    probes.enter_context(socket.socket()).bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise AssertionError(f"no {count} free ports in a row")


def leftover_processes(stack: Stack) -> dict[int, str]:
    """Processes still tied to this stack: by command line, working directory, environment or listening port.

    Postgres rewrites its backends' command lines, but they all run in the data directory; the workers,
    API and simulator carry DELIVERY_DATA_DIR in their environment; Temporal names its database file.
    """
    data_dir = str(stack.data_dir)
    port_tokens = {str(port) for port in stack.ports}
    inodes = _listening_inodes(stack.ports)
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        status = _read(f"/proc/{pid}/stat") or ""
        if ") Z" in status or ") X" in status:  # exited, waiting to be reaped
            continue
        raw = _read(f"/proc/{pid}/cmdline", binary=True) or b""
        argv = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
        command = " ".join(argv)
        reasons = []
        if data_dir in command:
            reasons.append("command line names the data dir")
        if any(arg in port_tokens or arg.rpartition(":")[2] in port_tokens or arg.rpartition("=")[2] in port_tokens
               for arg in argv):
            reasons.append("command line names a stack port")
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        if cwd == data_dir or cwd.startswith(data_dir + "/"):
            reasons.append(f"runs in {cwd}")
        environ = (_read(f"/proc/{pid}/environ", binary=True) or b"").split(b"\0")
        if f"DELIVERY_DATA_DIR={data_dir}".encode() in environ:
            reasons.append("environment names the data dir")
        if inodes:
            try:
                fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:
                fds = []
            for link in fds:
                inode = link[len("socket:["):-1] if link.startswith("socket:[") else None
                if inode in inodes:
                    reasons.append(f"listens on port {inodes[inode]}")
        if reasons:
            found[pid] = f"{command[:200]!r}: {', '.join(reasons)}"
    return found


def sweep(stack: Stack) -> None:
    """Kill whatever a failed run left behind, so a failing test leaves nothing running."""
    for pid in leftover_processes(stack):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def status_json(stack: Stack) -> dict:
    result = subprocess.run([*deliveryctl(), "status", "--json"], cwd=ROOT, env=stack.env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"status exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def check_health(stack: Stack) -> None:
    response = httpx.get(f"{stack.api_url}/healthz", timeout=10)
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    expected = {f"database:{service.value}" for service in Service} | {"temporal"}
    assert expected <= set(checks), f"missing health checks: {expected - set(checks)}"
    assert all(checks[name]["ok"] for name in expected), checks


def test_up_serves_stops_cleanly_and_keeps_its_data(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("up-output")
    stack = Stack.fresh(tmp_path_factory.mktemp("up-data"))
    first = second = None
    try:
        # 1. Ready banner, then a healthy API reaching all seven databases and Temporal.
        metrics_base, temporal_metrics = free_port_block(len(worker_processes(Settings()))), free_port()
        first = UpProcess(stack, out_dir, "first", DELIVERY_METRICS_BASE_PORT=str(metrics_base),
                          DELIVERY_TEMPORAL_METRICS_PORT=str(temporal_metrics))
        api_key = first.wait_ready()
        assert api_key, first.output()
        assert (stack.data_dir / "stack.json").exists()
        check_health(stack)

        # 2. `status --json` reports the running stack at the addresses it was given.
        status = status_json(stack)
        assert status["running"] is True
        assert status["api_url"] == stack.api_url
        assert status["temporal_address"] == f"127.0.0.1:{stack.temporal_port}"
        assert status["temporal_ui_url"] == f"http://127.0.0.1:{stack.temporal_ui_port}"
        databases = status["databases"]
        assert set(databases) == {service.value for service in Service}
        assert len(databases) == 7
        for name, dsn in databases.items():
            assert dsn.startswith("postgresql://"), dsn
            assert f":{stack.postgres_port}/" in dsn, dsn
        # The Temporal dev server's Prometheus metrics, where the setting put them.
        assert status["metrics_urls"]["temporal"] == f"http://127.0.0.1:{temporal_metrics}/metrics"
        assert "service_requests{" in httpx.get(status["metrics_urls"]["temporal"], timeout=5).text

        # 3. The Temporal Web UI answers.
        ui = None
        for _ in range(20):
            try:
                ui = httpx.get(status["temporal_ui_url"], timeout=5, follow_redirects=True)
                if ui.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ui is not None and ui.status_code == 200, f"Temporal UI: {ui and ui.status_code}"
        # ... and reads payloads through the stack's codec server, which answers on loopback.
        assert status["codec_url"] == f"http://127.0.0.1:{stack.codec_port}"
        ui_settings = httpx.get(f"{status['temporal_ui_url']}/api/v1/settings", timeout=5).json()
        assert ui_settings["Codec"]["Endpoint"] == status["codec_url"], ui_settings
        echo = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "IngiIA=="}]}
        sealed = httpx.post(f"{status['codec_url']}/encode", json=echo, timeout=5).json()
        assert sealed["payloads"][0]["metadata"]["encoding"] != echo["payloads"][0]["metadata"]["encoding"]
        assert httpx.post(f"{status['codec_url']}/decode", json=sealed, timeout=5).json() == echo

        # 4. Every service database is at its migration head.
        settings = Settings(postgres_port=stack.postgres_port, data_dir=stack.data_dir)
        assert current_revisions(settings) == head_revisions()

        # 5. Every socket the stack's processes listen on is on loopback: nothing set a host, and the defaults bind
        # nothing else (Postgres, each port of the Temporal dev server, its Web UI, the API, the codec, metrics).
        sockets = listening_sockets(descendants(first.process.pid))
        outside = {f"{address}:{port}": command for (address, port), command in sockets.items()
                   if not is_loopback(ipaddress.ip_address(address))}
        assert outside == {}, f"listening beyond loopback: {outside}"
        metrics_ports = range(metrics_base, metrics_base + len(worker_processes(Settings())))
        assert {*stack.ports, *metrics_ports, temporal_metrics} <= {port for _, port in sockets}, sockets

        # 6. The workers and the simulator, every thread of them, are scheduled below the API (nice +5); the API
        # at `up`'s own priority.
        (own,) = nice_of_threads(first.process.pid)
        niceness = {pid: nice_of_threads(pid) for pid in descendants(first.process.pid)}
        commands = {pid: _command_of(pid) for pid in niceness}
        background = {pid for pid, command in commands.items() if "worker.py" in command or "-m simulator" in command}
        assert len(background) == len(worker_processes(Settings())) + 1, commands
        assert all(niceness[pid] == {min(own + 5, 19)} for pid in background), \
            {commands[p]: niceness[p] for p in background}
        api = [pid for pid, command in commands.items() if "uvicorn" in command]
        assert api and all(niceness[pid] == {own} for pid in api), {commands[p]: niceness[p] for p in api}

        # A delivery through the public API, to look for after the restart.
        headers = {"Authorization": f"Bearer {api_key}"}
        created = httpx.post(f"{stack.api_url}/v1/deliveries", json=ORDER, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        delivery_id = created.json()["id"]
        # The delivery record is written by the workflow's first activity, so GET may 404 for a moment.
        deadline = time.monotonic() + 30
        while True:
            fetched = httpx.get(f"{stack.api_url}/v1/deliveries/{delivery_id}", headers=headers, timeout=10)
            if fetched.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert fetched.status_code == 200, fetched.text

        # 7. Ctrl-C stops everything: exit 0, the stopped line, no stack.json, no process left.
        assert first.interrupt() == 0, first.output()
        assert STOPPED in first.stdout, first.output()
        assert "Traceback" not in first.stdout + first.stderr, first.output()
        assert not (stack.data_dir / "stack.json").exists()
        orphans = leftover_processes(stack)
        assert not orphans, "processes outlived `up`:\n" + "\n".join(f"{p}: {r}" for p, r in orphans.items())

        # 8. A second `up` on the same data dir: same demo partner, and the delivery is still there.
        second = UpProcess(stack, out_dir, "second")
        assert second.wait_ready() == api_key, second.output()
        assert "created databases" not in second.stdout, second.output()
        check_health(stack)
        again = httpx.get(f"{stack.api_url}/v1/deliveries/{delivery_id}", headers=headers, timeout=10)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == delivery_id
        assert again.json()["external_id"] == ORDER["external_id"]
        assert second.interrupt() == 0, second.output()
        assert STOPPED in second.stdout, second.output()
        assert not leftover_processes(stack)
    finally:
        for run in (first, second):
            if run is not None:
                run.kill()
        sweep(stack)


@pytest.mark.parametrize("layout, processes", [("single", 1), ("shared", 2), ("per-queue", len(TaskQueue))])
def test_each_worker_layout_polls_every_queue_once(tmp_path, layout, processes):
    settings = Settings(data_dir=tmp_path, workers=layout)
    polled = [queue for queues in worker_processes(settings).values() for queue in queues]
    assert len(worker_processes(settings)) == processes
    assert sorted(polled) == sorted(TaskQueue)


def test_every_listener_of_the_dev_stack_binds_loopback_unless_asked(tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.startswith("DELIVERY_")]:
        monkeypatch.delenv(name)
    defaults = Settings(data_dir=tmp_path)
    hosts = {name: getattr(defaults, name) for name in (
        "api_host", "postgres_host", "temporal_host", "temporal_ui_ip", "codec_host", "metrics_host")}
    assert {name: host for name, host in hosts.items() if not ipaddress.ip_address(host).is_loopback} == {}

    def binds(**settings) -> tuple[str, str]:
        """Where the Temporal dev server's frontend (every server port) and its Web UI listen."""
        argv = prepare_temporal(Settings(data_dir=tmp_path, **settings)).argv
        return argv[argv.index("--ip") + 1], argv[argv.index("--ui-ip") + 1]

    assert binds() == ("127.0.0.1", "127.0.0.1")
    # An operator binds elsewhere on purpose, one listener at a time; unset, the UI listens where the frontend does.
    assert binds(temporal_address="10.0.0.5:7233", temporal_ui_host="0.0.0.0") == ("10.0.0.5", "0.0.0.0")
    assert binds(temporal_address="10.0.0.5:7233") == ("10.0.0.5", "10.0.0.5")


def test_bad_settings_fail_fast_with_one_line(tmp_path_factory):
    stack = Stack.fresh(tmp_path_factory.mktemp("bad-settings"))

    # A value that is not a port: exit 2, one line naming the variable.
    result = subprocess.run([*deliveryctl(), "status"], cwd=ROOT, env=stack.env(DELIVERY_API_PORT="notaport"),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result
    assert "DELIVERY_API_PORT" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    # The API port is taken by someone else: `up` refuses quickly and names the setting.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack.api_port))
        holder.listen()
        up = UpProcess(stack, tmp_path_factory.mktemp("bad-settings-output"), "busy-port")
        try:
            code = up.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`up` on a busy API port was still running after 30s\n{up.output()}")
        finally:
            up.kill()
            sweep(stack)
    assert code != 0, up.output()
    assert "DELIVERY_API_PORT" in up.stderr, up.output()
    assert "Traceback" not in up.stdout + up.stderr, up.output()
    assert len(up.stderr.strip().splitlines()) == 1, up.output()

    # CPUs for the API that this machine cannot give, or that leave none for the rest: refused before anything
    # starts, naming the setting and the CPUs there are.
    every_cpu = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
    for name, cpus, why in [("missing-cpu", str(max(os.sched_getaffinity(0)) + 1), "is not among"),
                            ("every-cpu", every_cpu, "leaves none"), ("not-a-list", "0-", "is not a CPU list")]:
        up = UpProcess(stack, tmp_path_factory.mktemp(f"bad-settings-{name}"), name, "--api-cpus", cpus)
        try:
            code = up.process.wait(timeout=30)
        finally:
            up.kill()
            sweep(stack)
        assert code != 0, up.output()
        assert "DELIVERY_API_CPUS (up --api-cpus)" in up.stderr and why in up.stderr, up.output()
        assert "Traceback" not in up.stdout + up.stderr, up.output()
        assert len(up.stderr.strip().splitlines()) == 1, up.output()


@pytest.mark.parametrize("keys", [None, "prod1:not-base64", "prod1:" + "A" * 20], ids=["unset", "not-base64", "short"])
def test_production_without_a_pii_key_refuses_to_start(tmp_path_factory, keys):
    """Every process of the production profile needs the one PII key all pods share, never a key of its own."""
    stack = Stack.fresh(tmp_path_factory.mktemp("no-pii-key"))
    env = stack.env(DELIVERY_PROFILE="production", **({"DELIVERY_PII_KEYS": keys} if keys else {}))
    for argv in ([*deliveryctl(), "status"], [sys.executable, str(ROOT / "worker.py"), "--queue", "integrations"]):
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, result
        assert "DELIVERY_PII_KEYS" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (stack.data_dir / "secrets").exists()


def _parent_pid(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat or ")" not in stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]) if fields[0] not in ("Z", "X") else None  # fields: state, ppid, ...


def stack_child(up: UpProcess, stack: Stack, matches) -> int:
    """The pid of the one child of this `up` whose argv satisfies `matches` and which belongs to this stack."""
    found = stack_children(up, stack, matches)
    assert len(found) == 1, f"expected one matching child of `up` (pid {up.process.pid}), found {found}\n{up.output()}"
    return found[0]


def stack_children(up: UpProcess, stack: Stack, matches) -> list[int]:
    """The pids of the children of this `up` whose argv satisfies `matches` and which belong to this stack.

    Only direct children of this `up` process count, and only if their environment, working directory
    or command line names this stack's data directory, so processes of other stacks are never touched.
    """
    data_dir = str(stack.data_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if _parent_pid(pid) != up.process.pid:
            continue
        raw = _read(f"/proc/{pid}/cmdline", binary=True) or b""
        argv = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
        if not argv or not matches(argv):
            continue
        environ = (_read(f"/proc/{pid}/environ", binary=True) or b"").split(b"\0")
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        if (f"DELIVERY_DATA_DIR={data_dir}".encode() in environ or cwd == data_dir
                or cwd.startswith(data_dir + "/") or any(data_dir in arg for arg in argv)):
            found.append(pid)
    return sorted(found)


def is_dispatch_worker(argv: list[str]) -> bool:
    return any(arg.endswith("worker.py") for arg in argv) and "--queue dispatch" in " ".join(argv)


def is_temporal(argv: list[str]) -> bool:
    return Path(argv[0]).name == "temporal" and argv[1:3] == ["server", "start-dev"]


def wait_for_line(up: UpProcess, pattern: str, timeout: float, after: int = 0) -> re.Match:
    """Wait for a line of `up`'s output (from offset `after`) matching `pattern`; return the match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, up.stdout[after:], re.MULTILINE)
        if match:
            return match
        if up.process.poll() is not None:
            pytest.fail(f"`up` exited with {up.process.returncode} while waiting for {pattern!r}\n{up.output()}")
        time.sleep(0.2)
    pytest.fail(f"no line matching {pattern!r} within {timeout:.0f}s\n{up.output()}")


def kill_and_see_restart(up: UpProcess, stack: Stack, name: str, matches) -> int:
    """SIGKILL one ordinary child; check `up` reports it and restarts it; return the new pid."""
    old = stack_child(up, stack, matches)
    offset = len(up.stdout)
    os.kill(old, signal.SIGKILL)
    logs = re.escape(str(stack.data_dir / "logs"))
    wait_for_line(up, rf"^\[up\] {re.escape(name)} exited with code -9; restarting in \d+s \(log: {logs}/", 30, offset)
    restarted = wait_for_line(up, rf"^\[up\] {re.escape(name)} restarted \(pid (\d+)\)$", 30, offset)
    new = int(restarted.group(1))
    assert new != old, up.output()
    assert stack_child(up, stack, matches) == new, up.output()
    return new


def is_api_process(argv: list[str]) -> bool:
    return argv[1:3] == ["-m", "api.serve"]


def answering_processes(stack: Stack, requests: int) -> list[int]:
    """Which API process answered each of `requests` health checks, each on a new connection."""
    answers = []
    for _ in range(requests):
        response = httpx.get(f"{stack.api_url}/healthz", timeout=10, headers={"connection": "close"})
        assert response.status_code == 200, response.text
        answers.append(response.json()["process"])
    return answers


def test_up_restarts_children_serves_one_port_from_several_api_processes_and_stops_when_temporal_dies(
        tmp_path_factory):
    """`up --api-processes 2 --api-cpus C`: both processes answer on the one port, on CPU C alone, and every other
    process on the other CPUs; a worker or one API process killed is restarted (the port stays served by the other
    meanwhile, the restarted one back on C); Temporal killed stops everything."""
    out_dir = tmp_path_factory.mktemp("up-kill-output")
    stack = Stack.fresh(tmp_path_factory.mktemp("up-kill-data"))
    up = None
    try:
        api_cpu, *other_cpus = sorted(os.sched_getaffinity(0))
        assert other_cpus, "the test needs two CPUs"
        api_cpus, rest = frozenset([api_cpu]), frozenset(other_cpus)
        up = UpProcess(stack, out_dir, "kill", "--api-processes", "2", "--api-cpus", str(api_cpu),
                       DELIVERY_SIMULATOR="false")
        up.wait_ready()
        check_health(stack)
        assert "2 API processes on" in up.stdout, up.output()
        assert f"the API on CPU {api_cpu} alone, every other process on CPU {','.join(map(str, other_cpus))}" \
            in up.stdout, up.output()
        pids = stack_children(up, stack, is_api_process)
        assert len(pids) == 2, up.output()
        others = descendants(up.process.pid) - {up.process.pid, *pids}
        assert len(others) >= 4, others  # Postgres (and its backends), Temporal, the worker, the codec server
        assert all(cpus_of_threads(pid) == {api_cpus} for pid in pids), {p: cpus_of_threads(p) for p in pids}
        assert all(cpus_of_threads(pid) <= {rest} for pid in others), \
            {_command_of(p): cpus_of_threads(p) for p in others}
        assert set(answering_processes(stack, 24)) == set(pids)  # the kernel spreads new connections over both

        # 1. A worker killed outright is reported and restarted; the API stays healthy meanwhile.
        kill_and_see_restart(up, stack, "worker all", is_dispatch_worker)  # the default: one worker serves every queue
        check_health(stack)

        # 2. One API process killed outright: every request still answered, by the other, while the supervisor
        # restarts it; then the restarted one answers too.
        killed, survivor = pids
        offset = len(up.stdout)
        os.kill(killed, signal.SIGKILL)
        name = wait_for_line(up, r"^\[up\] (api \d) exited with code -9; restarting in", 30, offset).group(1)
        assert set(answering_processes(stack, 10)) == {survivor}
        restarted = int(wait_for_line(up, rf"^\[up\] {name} restarted \(pid (\d+)\)$", 30, offset).group(1))
        assert sorted(stack_children(up, stack, is_api_process)) == sorted([survivor, restarted])
        assert cpus_of_threads(restarted) == {api_cpus}
        deadline = time.monotonic() + 30
        while restarted not in answering_processes(stack, 10):
            assert time.monotonic() < deadline, f"the restarted API process {restarted} never answered\n{up.output()}"
            time.sleep(0.5)

        # 3. Temporal is critical: losing it stops everything, exit 1, nothing left running.
        temporal = stack_child(up, stack, is_temporal)
        os.kill(temporal, signal.SIGKILL)
        try:
            code = up.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`up` still running 60s after Temporal was killed\n{up.output()}")
        assert code == 1, up.output()
        log = re.escape(str(stack.data_dir / "logs" / "temporal.log"))
        assert re.search(rf"^\[up\] error: temporal exited unexpectedly \(code -9\); see {log}; stopping everything$",
                         up.stdout, re.MULTILINE), up.output()
        assert STOPPED in up.stdout, up.output()
        assert "Traceback" not in up.stdout + up.stderr, up.output()
        assert not (stack.data_dir / "stack.json").exists()
        orphans = leftover_processes(stack)
        assert not orphans, "processes outlived `up`:\n" + "\n".join(f"{p}: {r}" for p, r in orphans.items())
    finally:
        if up is not None:
            up.kill()
        sweep(stack)
