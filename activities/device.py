"""Device service activities: a robot is dispatched only while it is deployed."""

from temporalio import activity

from activities import interfaces
from activities.base import ServiceActivities
from core.contracts import Deployment
from core.errors import ROBOT_NOT_DEPLOYED, business_error
from services.device import repository


class DeviceActivities(ServiceActivities, interfaces.DeviceActivities):
    """Reads and writes only the Device database."""

    @activity.defn
    async def verify_deployment(self, robot_id: str) -> Deployment:
        async with self.sessions.begin() as session:
            deployment = await repository.active_deployment(session, robot_id)
        if deployment is None:
            raise business_error(ROBOT_NOT_DEPLOYED, f"robot {robot_id} has no active deployment")
        return Deployment(robot_id=robot_id, market=deployment.market, software_version=deployment.software_version)
