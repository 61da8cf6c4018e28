"""Which activity object serves which task queue, built with its own service's database."""

from importlib import import_module

from temporalio.client import Client

from core.db import Databases
from core.services import QUEUE_DATABASE, TaskQueue
from core.settings import Settings

# module:class per queue, imported only by the processes that serve the queue (Dispatch's pulls in scipy).
CLASSES = {
    TaskQueue.INTEGRATIONS: "activities.integrations:IntegrationsActivities",
    TaskQueue.PARTNER_CALLBACKS: "activities.partner_callbacks:PartnerCallbackActivities",
    TaskQueue.DELIVERIES: "activities.deliveries:DeliveriesActivities",
    TaskQueue.DISPATCH: "activities.dispatch:DispatchActivities",
    TaskQueue.OPERATIONS: "activities.operations:OperationsActivities",
    TaskQueue.TRIP_MONITOR: "activities.trip_monitor:TripMonitorActivities",
    TaskQueue.STATE: "activities.state:StateActivities",
    TaskQueue.DEVICE: "activities.device:DeviceActivities",
}


def build(queue: TaskQueue, databases: Databases, settings: Settings, temporal: Client | None = None) -> list:
    """The bound activity methods served on `queue`."""
    module, name = CLASSES[queue].split(":")
    activity_class = getattr(import_module(module), name)
    instance = activity_class(databases.sessions(QUEUE_DATABASE[queue]), settings, temporal)
    return instance.activities()
