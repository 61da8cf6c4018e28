"""Child processes the platform's commands start (`up`'s, the bench's): how each is prepared before it runs."""

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def before_exec(niceness: int = 0):
    """What runs in a child before exec: if its parent (`up`, the bench) is killed outright, it gets SIGTERM;
    and its scheduling priority is lowered by `niceness` (every thread it starts inherits it). Children are
    started from the parent's main thread, whose death is the one the signal follows."""

    def prepare() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass
        if niceness:
            os.nice(niceness)

    return prepare
