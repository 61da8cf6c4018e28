"""Child processes the platform's commands start (`up`'s, the bench's): how each is prepared before it runs."""

import ctypes
import os
import re
import signal
from collections.abc import Iterable
from typing import NamedTuple

PR_SET_PDEATHSIG = 1
CPU_LIST = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")


def before_exec(niceness: int = 0, cpus: frozenset[int] | None = None):
    """What runs in a child before exec: if its parent (`up`, the bench) is killed outright, it gets SIGTERM; its
    scheduling priority is lowered by `niceness`; and it runs only on `cpus` when given (every thread and process
    it starts inherits both). Children are started from the parent's main thread, whose death is the one the
    signal follows."""

    def prepare() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass
        if niceness:
            os.nice(niceness)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return prepare


def parse_cpus(text: str) -> frozenset[int]:
    """A CPU list as Linux writes one (`0`, `0,2`, `0-3,6`)."""
    if not CPU_LIST.fullmatch(text):
        raise ValueError(f"{text!r} is not a CPU list such as 0, 0-1 or 0,2")
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


def cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


class CpuSplit(NamedTuple):
    """The CPUs of the API processes, and of every other process `up` starts (and the bench's simulator and
    baseline workers); None: any CPU."""

    api: frozenset[int] | None
    others: frozenset[int] | None


def cpu_split(api_cpus: str) -> CpuSplit:
    """The CPUs when the API has CPUs of its own (`DELIVERY_API_CPUS`); None for both when it has not, and the
    OS places everything. ValueError names what the machine cannot give."""
    if not api_cpus:
        return CpuSplit(None, None)
    available = frozenset(os.sched_getaffinity(0))
    api = parse_cpus(api_cpus)
    if not api:
        raise ValueError(f"{api_cpus!r} names no CPU")
    if not api <= available:
        raise ValueError(f"CPU {cpu_list(api - available)} is not among this process's CPUs "
                         f"({cpu_list(available)})")
    if not available - api:
        raise ValueError(f"CPU {cpu_list(api)} leaves none of this process's CPUs ({cpu_list(available)}) for the "
                         "rest of the stack")
    return CpuSplit(api, available - api)
