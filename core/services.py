"""The seven services, their databases and their Temporal task queues."""

from enum import StrEnum


class Service(StrEnum):
    """A service of the platform; its value is also the name of its database."""

    INTEGRATIONS = "integrations"
    DELIVERIES = "deliveries"
    DISPATCH = "dispatch"
    OPERATIONS = "operations"
    TRIP_MONITOR = "trip_monitor"
    STATE = "state"
    DEVICE = "device"


class TaskQueue(StrEnum):
    """Every task queue a worker can poll; workers scale per queue."""

    DELIVERY_WORKFLOWS = "delivery-workflows"
    INTEGRATIONS = "integrations"
    PARTNER_CALLBACKS = "partner-callbacks"
    DELIVERIES = "deliveries"
    DISPATCH = "dispatch"
    OPERATIONS = "operations"
    TRIP_MONITOR = "trip-monitor"
    STATE = "state"
    DEVICE = "device"


# The database each activity queue writes to; the workflow queue owns none.
QUEUE_DATABASE: dict[TaskQueue, Service] = {
    TaskQueue.INTEGRATIONS: Service.INTEGRATIONS,
    TaskQueue.PARTNER_CALLBACKS: Service.INTEGRATIONS,
    TaskQueue.DELIVERIES: Service.DELIVERIES,
    TaskQueue.DISPATCH: Service.DISPATCH,
    TaskQueue.OPERATIONS: Service.OPERATIONS,
    TaskQueue.TRIP_MONITOR: Service.TRIP_MONITOR,
    TaskQueue.STATE: Service.STATE,
    TaskQueue.DEVICE: Service.DEVICE,
}


def delivery_workflow_id(delivery_id) -> str:
    """The workflow ID of a delivery: one workflow per delivery, ever."""
    return f"delivery:{delivery_id}"


# The signal Dispatch sends a delivery waiting for a robot when a round commits one to it: it asks at once.
ROBOT_COMMITTED_SIGNAL = "robot_committed"
