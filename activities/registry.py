"""Which activity object serves which task queue, built with its own service's database."""

from core.db import Databases
from core.services import QUEUE_DATABASE, TaskQueue
from core.settings import Settings


def build(queue: TaskQueue, databases: Databases, settings: Settings) -> list:
    """The bound activity methods served on `queue`."""
    from activities.deliveries import DeliveriesActivities
    from activities.device import DeviceActivities
    from activities.dispatch import DispatchActivities
    from activities.integrations import IntegrationsActivities
    from activities.operations import OperationsActivities
    from activities.partner_callbacks import PartnerCallbackActivities
    from activities.state import StateActivities
    from activities.trip_monitor import TripMonitorActivities

    classes = {
        TaskQueue.INTEGRATIONS: IntegrationsActivities,
        TaskQueue.PARTNER_CALLBACKS: PartnerCallbackActivities,
        TaskQueue.DELIVERIES: DeliveriesActivities,
        TaskQueue.DISPATCH: DispatchActivities,
        TaskQueue.OPERATIONS: OperationsActivities,
        TaskQueue.TRIP_MONITOR: TripMonitorActivities,
        TaskQueue.STATE: StateActivities,
        TaskQueue.DEVICE: DeviceActivities,
    }
    instance = classes[queue](databases.sessions(QUEUE_DATABASE[queue]), settings)
    return instance.activities()
