"""Robots' assignments change in three databases; each change is announced on one Postgres channel.

Operations (a task given, moved or closed) and State (a lid event or a return's arrival recorded) send the
robot's id, Deliveries (a status recorded) the delivery's id, each with `pg_notify` inside the transaction that
makes the change, so the notice goes out only once it is committed, to every API process listening.

`AssignmentNotices` is one process's ear: one LISTEN connection per database, and waiters keyed by robot and by
delivery, each with one event that any of its keys sets. While a listening connection is down notices are lost,
so every waiter is woken when it is lost and again once it listens anew, and reads its assignment for itself.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

CHANNEL = "robot_assignment"
RECONNECT_SECONDS = (0.5, 1, 2, 5)


async def announce(session: AsyncSession, key: object) -> None:
    """Tell every listening process, once this transaction commits, that the assignment keyed by `key` (a robot's
    id, or a delivery's) may have changed."""
    await session.execute(select(func.pg_notify(CHANNEL, str(key))))


class AssignmentWaiter:
    """One robot's ear: woken by notices for the robot or for the delivery it follows, and by lost notices."""

    def __init__(self, notices: "AssignmentNotices", robot_id: str):
        self.notices, self.robot_id = notices, robot_id
        self.woken = asyncio.Event()
        self.delivery_id: str | None = None
        notices._add(robot_id, self.woken)

    def follow(self, delivery_id: object | None) -> None:
        """Hear the notices of this delivery (its status), instead of the one followed before."""
        key = None if delivery_id is None else str(delivery_id)
        if key == self.delivery_id:
            return
        if self.delivery_id is not None:
            self.notices._remove(self.delivery_id, self.woken)
        if key is not None:
            self.notices._add(key, self.woken)
        self.delivery_id = key

    def wake(self) -> None:
        self.woken.set()

    async def wait(self, timeout: float) -> bool:
        """Until woken or `timeout` seconds; whether woken. Clears the wake-up, so the next wait waits again."""
        try:
            await asyncio.wait_for(self.woken.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.woken.clear()

    def close(self) -> None:
        self.follow(None)
        self.notices._remove(self.robot_id, self.woken)


class AssignmentNotices:
    """LISTEN on `CHANNEL` in each database given (DSNs), started by the first waiter and kept up until `close`."""

    def __init__(self, dsns: Iterable[str]):
        self.dsns = list(dsns)
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listening: list[asyncio.Task] = []
        self.connections: dict[str, asyncpg.Connection] = {}  # by DSN, while listening
        self.woken_all = 0  # how many times every waiter was woken because notices may have been lost

    def waiter(self, robot_id: str) -> AssignmentWaiter:
        if not self._listening:
            loop = asyncio.get_running_loop()
            self._listening = [loop.create_task(self._listen(dsn)) for dsn in self.dsns]
        return AssignmentWaiter(self, robot_id)

    def _add(self, key: str, event: asyncio.Event) -> None:
        self._waiters[key].add(event)

    def _remove(self, key: str, event: asyncio.Event) -> None:
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
                await connection.add_listener(CHANNEL, self._on_notice)
                self.connections[dsn] = connection
                failures = 0
                self._wake_all()  # whatever was committed before this connection listened is read now
                await lost
                log.warning("robot assignment notices: listening connection lost; reconnecting")
            except asyncio.CancelledError:
                self.connections.pop(dsn, None)
                if connection is not None and not connection.is_closed():
                    await connection.close(timeout=2)
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("robot assignment notices: cannot listen (%s); retrying", type(exc).__name__)
            self.connections.pop(dsn, None)
            self._wake_all()
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    async def close(self) -> None:
        for task in self._listening:
            task.cancel()
        await asyncio.gather(*self._listening, return_exceptions=True)
        self._listening = []
