"""Robots' assignments change in three databases; each change is announced on one Postgres channel.

Operations (a task given, moved or closed) and State (a lid event or a return's arrival recorded) send the
robot's id, Deliveries (a status recorded) the delivery's id, each with `announce` inside the transaction that
makes the change, so the notice goes out only once it is committed, to every API process listening.

An API process listens with one `Notices` over the three databases; each connected robot has an
`AssignmentWaiter`, one event woken by notices for the robot or for the delivery it follows, which tells which of
the databases announced a change since it was last taken. While a listening connection is down notices are lost,
so every waiter is woken then, and reads its whole assignment for itself.
"""

import asyncio
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from core import notices
from core.notices import Notices
from core.services import Service

CHANNEL = "robot_assignment"


async def announce(session: AsyncSession, key: object) -> None:
    """Tell every listening process, once this transaction commits, that the assignment keyed by `key` (a robot's
    id, or a delivery's) may have changed."""
    await notices.announce(session, CHANNEL, key)


def assignment_notices(dsns: Mapping[Service, str]) -> Notices:
    """An API process's ear for assignment changes in the given services' databases."""
    return Notices({service.value: dsn for service, dsn in dsns.items()}, CHANNEL)


class AssignmentWaiter:
    """One robot's ear: woken by notices for the robot or for the delivery it follows, and by lost notices."""

    def __init__(self, notices: Notices, robot_id: str):
        self.notices, self.robot_id = notices, robot_id
        self.woken = notices.subscribe(robot_id)
        self.delivery_id: str | None = None

    def follow(self, delivery_id: object | None) -> None:
        """Hear the notices of this delivery (its status), instead of the one followed before."""
        key = None if delivery_id is None else str(delivery_id)
        if key == self.delivery_id:
            return
        if self.delivery_id is not None:
            self.notices.unsubscribe(self.delivery_id, self.woken)
        if key is not None:
            self.notices.add(key, self.woken)
        self.delivery_id = key

    def wake(self) -> None:
        """Wake the waiter as if notices may have been lost: the next reading reads everything."""
        self.woken.set_by(None)

    def take(self) -> set[Service] | None:
        """Clear the wake-up, and hand over the services whose databases announced a change since the last
        `take`; None if any of them may have (notices lost, or `wake`)."""
        sources = self.woken.take()
        return None if sources is None else {Service(source) for source in sources}

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
        self.notices.unsubscribe(self.robot_id, self.woken)
