"""Many `deliveryctl` runs for the price of a few: each run is a process of its own, forked from one interpreter
that imported the CLI once, and it ends as the console script does, through the interpreter's own finalization
(where a command that leaves threads behind aborts).

`python -m tests.support.forked_cli AT_ONCE` reads one JSON job per line on stdin (`args`, and the files for the
run's `stdout` and `stderr`), runs them AT_ONCE at a time and prints each run's exit status, in job order, as one
JSON list: as a shell shows it, so 134 is an abort (SIGABRT).
"""

import gc
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from tests.support.cli import ROOT

# What the commands import, imported once by the forking interpreter instead of once per run.
PRELOADED = ("cli.main", "cli.commands", "cli.ops", "cli.audit", "cli.pilots", "cli.field_tasks", "cli.partner_admin")


@dataclass
class Run:
    """One finished run of a command."""

    args: list[str]
    status: int
    stdout: str
    stderr: str


def run_each(commands: list[list[str]], times: int, env: dict[str, str], workdir: Path, at_once: int = 4,
             ) -> list[Run]:
    """Run each command `times` times, `at_once` runs at a time, with the environment `env`."""
    args = [command for _ in range(times) for command in commands]  # round after round: runs at once are of different commands
    jobs = [{"args": command, "stdout": str(workdir / f"run-{n}.out"), "stderr": str(workdir / f"run-{n}.err")}
            for n, command in enumerate(args)]
    done = subprocess.run([sys.executable, "-m", __name__, str(at_once)], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, input="\n".join(map(json.dumps, jobs)), timeout=600)
    assert done.returncode == 0, done.stderr
    return [Run(job["args"], status, Path(job["stdout"]).read_text(), Path(job["stderr"]).read_text())
            for job, status in zip(jobs, json.loads(done.stdout), strict=True)]


def _fork_each(jobs: list[dict], at_once: int) -> dict | None:
    """Fork a child per job, `at_once` at a time, and print their exit statuses; in a child, return its job."""
    statuses: list[int | None] = [None] * len(jobs)
    running: dict[int, int] = {}
    waiting = list(enumerate(jobs))
    while waiting or running:
        while waiting and len(running) < at_once:
            index, job = waiting.pop(0)
            pid = os.fork()
            if pid == 0:
                return job
            running[pid] = index
        pid, status = os.wait()
        code = os.waitstatus_to_exitcode(status)
        statuses[running.pop(pid)] = 128 - code if code < 0 else code
    print(json.dumps(statuses), flush=True)
    return None


def _run(job: dict) -> int:
    """In a child: the command, its output into the job's files, as `deliveryctl ARGS` runs it."""
    from cli.main import main

    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = ["deliveryctl", *job["args"]]
    return main(job["args"])


if __name__ == "__main__":
    for module in PRELOADED:
        import_module(module)
    pending = [json.loads(line) for line in sys.stdin if line.strip()]
    gc.freeze()  # the children's collections leave alone what they share with this process: forks copy less
    own = _fork_each(pending, int(sys.argv[1]))
    if own is not None:
        sys.exit(_run(own))
