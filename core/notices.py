"""Postgres notifications (LISTEN/NOTIFY) on one channel, in one or more databases, handed to waiters by key.

A writer calls `announce` inside its transaction, so the notice goes out only once the change is committed, to
every process listening. A waiter adds a `Wakeup` under one or more keys; each notice for one of them sets it,
and it remembers which databases the notices came from. While a listening connection is down, notices are lost:
so every waiter is woken when it is lost and again once it is back, and looks for itself (everywhere).
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
RECONNECT_SECONDS = (0.5, 1, 2, 5)


async def announce(session: AsyncSession, channel: str, key: object) -> None:
    """Notify `channel` listeners of `key` once this transaction commits."""
    await session.execute(select(func.pg_notify(channel, str(key))))


class Wakeup(asyncio.Event):
    """An event set by notices, which also gathers the names of the databases they came from: `None` once
    notices may have been lost, from any of them."""

    def __init__(self):
        super().__init__()
        self.sources: set[str] | None = set()

    def set_by(self, sources: set[str] | None) -> None:
        if sources is None or self.sources is None:
            self.sources = None
        else:
            self.sources |= sources
        self.set()

    def take(self) -> set[str] | None:
        """Clear the event and hand over the sources gathered since the last `take`; a notice after this sets
        the event again."""
        sources, self.sources = self.sources, set()
        self.clear()
        return sources


class Notices:
    """This process's LISTEN connections on `channel`, one per database, started by the first waiter and kept up
    until `close`. `databases` is one DSN, or DSNs by the name a notice from each is tagged with
    (`Wakeup.sources`)."""

    def __init__(self, databases: str | Mapping[str, str], channel: str):
        named = {databases: databases} if isinstance(databases, str) else dict(databases)
        self._names: dict[str, set[str]] = defaultdict(set)  # by DSN: two names may share a database
        for name, dsn in named.items():
            self._names[dsn].add(name)
        self.dsns = list(self._names)
        self.channel = channel
        self._waiters: dict[str, set[Wakeup]] = defaultdict(set)
        self._listening: list[asyncio.Task] = []
        self.connections: dict[str, asyncpg.Connection] = {}  # by DSN, while listening
        self.woken_all = 0  # how many times every waiter was woken because notices may have been lost

    def subscribe(self, key: str) -> Wakeup:
        """A new event set by each notice for `key` (and whenever notices may have been missed)."""
        event = Wakeup()
        self.add(key, event)
        return event

    def add(self, key: str, event: Wakeup) -> None:
        """Set `event` on each notice for `key` too."""
        if not self._listening or all(task.done() for task in self._listening):
            loop = asyncio.get_running_loop()
            self._listening = [loop.create_task(self._listen(dsn)) for dsn in self.dsns]
        self._waiters[key].add(event)

    def unsubscribe(self, key: str, event: Wakeup) -> None:
        waiting = self._waiters.get(key)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiters[key]

    def _wake(self, key: str | None = None, sources: set[str] | None = None) -> None:
        groups = [self._waiters.get(key, ())] if key is not None else list(self._waiters.values())
        for waiting in groups:
            for event in waiting:
                event.set_by(sources)

    def _wake_all(self) -> None:
        self.woken_all += 1
        self._wake()

    async def _listen(self, dsn: str) -> None:
        failures = 0
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(dsn)
                lost = asyncio.get_running_loop().create_future()
                connection.add_termination_listener(lambda _: lost.done() or lost.set_result(None))
                sources = self._names[dsn]
                await connection.add_listener(self.channel,
                                              lambda _connection, _pid, _channel, key: self._wake(key, sources))
                self.connections[dsn] = connection
                failures = 0
                self._wake_all()  # whatever was committed before this connection listened is looked for now
                await lost
                log.warning("notices on %s: listening connection lost; reconnecting", self.channel)
            except asyncio.CancelledError:
                self.connections.pop(dsn, None)
                if connection is not None and not connection.is_closed():
                    await connection.close(timeout=2)
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("notices on %s: cannot listen (%s); retrying", self.channel, type(exc).__name__)
            self.connections.pop(dsn, None)
            self._wake_all()
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    async def close(self) -> None:
        for task in self._listening:
            task.cancel()
        await asyncio.gather(*self._listening, return_exceptions=True)
        self._listening = []
