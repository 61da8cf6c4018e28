"""Postgres notifications (LISTEN/NOTIFY) on one channel of one database, handed to waiters by payload.

A writer sends `pg_notify(channel, key)` inside its transaction, so the notice goes out only once the change is
committed, to every process listening. A waiter subscribes to a key and gets an `asyncio.Event` that each notice
for that key sets. While the listening connection is down, notices are lost: so every waiter is woken when it is
lost and again once it is back, and looks for itself.
"""

import asyncio
import logging
from collections import defaultdict

import asyncpg

log = logging.getLogger(__name__)
RECONNECT_SECONDS = (0.5, 1, 2, 5)


class Notices:
    """One LISTEN connection of this process, started by the first subscriber and kept up until `close`."""

    def __init__(self, dsn: str, channel: str):
        self.dsn, self.channel = dsn, channel
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listening: asyncio.Task | None = None

    def subscribe(self, key: str) -> asyncio.Event:
        """An event set by each notice for `key` (and whenever notices may have been missed)."""
        if self._listening is None or self._listening.done():
            self._listening = asyncio.get_running_loop().create_task(self._listen())
        event = asyncio.Event()
        self._waiters[key].add(event)
        return event

    def unsubscribe(self, key: str, event: asyncio.Event) -> None:
        waiting = self._waiters.get(key)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiters[key]

    def _wake(self, key: str | None = None) -> None:
        groups = [self._waiters.get(key, ())] if key is not None else list(self._waiters.values())
        for waiting in groups:
            for event in waiting:
                event.set()

    def _on_notice(self, connection, pid, channel, payload: str) -> None:
        self._wake(payload)

    async def _listen(self) -> None:
        failures = 0
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(self.dsn)
                lost = asyncio.get_running_loop().create_future()
                connection.add_termination_listener(lambda _: lost.done() or lost.set_result(None))
                await connection.add_listener(self.channel, self._on_notice)
                failures = 0
                self._wake()  # whatever was sent before this connection listened is looked for now
                await lost
                log.warning("notices on %s: listening connection lost; reconnecting", self.channel)
            except asyncio.CancelledError:
                if connection is not None:
                    await connection.close(timeout=2)
                raise
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                log.warning("notices on %s: cannot listen (%s); retrying", self.channel, type(exc).__name__)
            self._wake()
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
            self._listening = None
