"""State service activities: every robot event the delivery accepted, with GPS."""

from temporalio import activity

from activities import interfaces
from activities.base import ServiceActivities
from core.contracts import RecordedRobotEvent
from services.state import repository


class StateActivities(ServiceActivities, interfaces.StateActivities):
    """Writes only to the State database."""

    @activity.defn
    async def record_robot_event(self, recorded: RecordedRobotEvent) -> bool:
        async with self.sessions.begin() as session:
            return await repository.record_event(session, recorded)
