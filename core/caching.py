"""Answers kept for a few seconds in one process, so repeats do not cost a backend round trip each."""

import time
from collections.abc import Callable, Hashable


class TtlCache:
    """Answers kept in this process for `seconds`, per key; each process (and each API replica) keeps its own.

    Public endpoints answer repeats from here instead of asking Temporal or the databases again, so a stranger
    cannot make every hit cost a backend round trip; the partner desk reads a market's outlook from here. An
    answer is at most `seconds` stale.
    """

    def __init__(self, seconds: float, max_entries: int = 10_000):
        self.seconds, self.max_entries = seconds, max_entries
        self._entries: dict[Hashable, tuple[float, object]] = {}

    async def get(self, key: Hashable, compute: Callable) -> object:
        """The cached answer for `key`, or `await compute()` kept for the next `seconds`."""
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        value = await compute()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        if len(self._entries) < self.max_entries:
            self._entries[key] = (now + self.seconds, value)
        return value
