"""`deliveryctl ops`: find parked deliveries, see one delivery across all seven databases, and act on it.

The actions are the same workflow updates an operator can send from the Temporal UI.
"""

import uuid
from typing import Any

from sqlalchemy import select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowUpdateFailedError

from core.contracts import CancelRequest, OperatorAction
from core.db import Databases
from core.services import Service, TaskQueue
from services.deliveries import repository as deliveries
from services.device.models import Deployment
from services.dispatch.models import Demand, Plan
from services.integrations.models import ExternalState, PartnerDelivery
from services.operations.models import FOTask, PilotAssignment, Task, TaskHistory, Trip, TripHistory
from services.state.models import LidCycleEvent, StateHistory
from services.trip_monitor.models import MonitoredTrip
from workflows.delivery import NEEDS_OPERATOR, DeliveryWorkflow, workflow_id


class OperatorError(Exception):
    """The delivery refused the action; the message says why."""


async def stuck(client: Client, market: str | None = None) -> list[dict[str, Any]]:
    """Parked deliveries, newest first, with why they wait."""
    query = f'DeliveryStatus="{NEEDS_OPERATOR}"' + (f' AND Market="{market}"' if market else "")
    found = []
    async for execution in client.list_workflows(query):
        attributes = {key.name: value for key, value in execution.typed_search_attributes}
        found.append({"workflow_id": execution.id, "reason": attributes.get("AttentionReason"),
                      "market": attributes.get("Market"), "partner_id": attributes.get("PartnerId"),
                      "external_delivery_id": attributes.get("ExternalDeliveryId"),
                      "robot_id": attributes.get("RobotId"), "started": execution.start_time.isoformat()})
    return found


async def act(client: Client, delivery_id: uuid.UUID, action: str, operator: str, note: str,
              robot_id: str | None = None, reason: str | None = None) -> str:
    """Send one operator update to a delivery; OperatorError if the delivery refuses it."""
    handle = client.get_workflow_handle(workflow_id(delivery_id))
    decision = OperatorAction(operator=operator, note=note, robot_id=robot_id, reason=reason)
    try:
        if action == "cancel":
            receipt = await handle.execute_update(
                DeliveryWorkflow.cancel, CancelRequest(reason=reason or "operator_cancelled", requested_by=operator))
            return f"cancel accepted; the delivery is {receipt.status.value}"
        update = {"retry": DeliveryWorkflow.retry, "redispatch": DeliveryWorkflow.redispatch,
                  "resolve": DeliveryWorkflow.resolve_delivered,
                  "returned": DeliveryWorkflow.resolve_returned}[action]
        return await handle.execute_update(update, decision)
    except WorkflowUpdateFailedError as exc:
        raise OperatorError(getattr(exc.cause, "message", str(exc.cause))) from None


async def queues(client: Client) -> list[dict[str, Any]]:
    """Pollers and backlog of every task queue, as the server reports them."""
    report = []
    for queue in TaskQueue:
        kind = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW if queue is TaskQueue.DELIVERY_WORKFLOWS
                else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueueRef(name=queue.value), task_queue_type=kind,
            report_stats=True))
        stats = described.stats
        report.append({"queue": queue.value, "pollers": len(described.pollers),
                       "backlog": stats.approximate_backlog_count,
                       "backlog_age_seconds": stats.approximate_backlog_age.ToTimedelta().total_seconds(),
                       "add_rate": round(stats.tasks_add_rate, 2), "dispatch_rate": round(stats.tasks_dispatch_rate, 2)})
    return report


async def _rows(databases: Databases, service: Service, statement) -> list[dict[str, Any]]:
    async with databases.sessions(service).begin() as session:
        return [row.model_dump(mode="json") for row in await session.scalars(statement)]


async def show(client: Client, databases: Databases, delivery_id: uuid.UUID) -> dict[str, Any]:
    """One delivery joined across the seven databases (by its denormalized keys) and its workflow's state."""
    async with databases.sessions(Service.DELIVERIES).begin() as session:
        view = await deliveries.get_delivery_view(session, delivery_id)
    if view is None:
        raise OperatorError(f"no delivery {delivery_id}")
    attempt_ids = [a["attempt_id"] for a in view["attempts"]]
    robots = {a["robot_id"] for a in view["attempts"] if a["robot_id"]}
    orders = await _rows(databases, Service.INTEGRATIONS,
                         select(PartnerDelivery).where(PartnerDelivery.delivery_id == delivery_id))
    tasks = await _rows(databases, Service.OPERATIONS, select(Task).where(Task.delivery_id == delivery_id))
    task_ids = [uuid.UUID(t["id"]) for t in tasks]
    trips = await _rows(databases, Service.OPERATIONS, select(Trip).where(Trip.task_id.in_(task_ids)))
    story = {
        "deliveries": _jsonable(view),
        "integrations": {"orders": orders, "external_states": await _rows(
            databases, Service.INTEGRATIONS, select(ExternalState).where(
                ExternalState.partner_delivery_id.in_([uuid.UUID(o["id"]) for o in orders]))
            .order_by(ExternalState.sequence))},
        "dispatch": {"demands": await _rows(databases, Service.DISPATCH,
                                            select(Demand).where(Demand.delivery_id == delivery_id)),
                     "plans": await _rows(databases, Service.DISPATCH, select(Plan).join(
                         Demand, Demand.id == Plan.demand_id).where(Demand.delivery_id == delivery_id))},
        "operations": {
            "tasks": tasks, "trips": trips,
            "task_history": await _rows(databases, Service.OPERATIONS, select(TaskHistory).where(
                TaskHistory.task_id.in_(task_ids)).order_by(TaskHistory.occurred_at)),
            "trip_history": await _rows(databases, Service.OPERATIONS, select(TripHistory).where(
                TripHistory.trip_id.in_([uuid.UUID(t["id"]) for t in trips])).order_by(TripHistory.occurred_at)),
            "pilot_assignments": await _rows(databases, Service.OPERATIONS, select(PilotAssignment).where(
                PilotAssignment.task_id.in_(task_ids))),
            "field_tasks": await _rows(databases, Service.OPERATIONS,
                                       select(FOTask).where(FOTask.delivery_id == delivery_id)),
        },
        "trip_monitor": await _rows(databases, Service.TRIP_MONITOR,
                                    select(MonitoredTrip).where(MonitoredTrip.attempt_id.in_(attempt_ids))),
        "state": {"events": await _rows(databases, Service.STATE, select(StateHistory).where(
                      StateHistory.attempt_id.in_(attempt_ids)).order_by(StateHistory.occurred_at)),
                  "lid_cycles": await _rows(databases, Service.STATE, select(LidCycleEvent).where(
                      LidCycleEvent.attempt_id.in_(attempt_ids)).order_by(LidCycleEvent.occurred_at))},
        "device": await _rows(databases, Service.DEVICE, select(Deployment).where(
            Deployment.robot_id.in_(robots), Deployment.status == "active")),
    }
    try:
        view = await client.get_workflow_handle(workflow_id(delivery_id)).query(DeliveryWorkflow.status)
        story["workflow"] = view.model_dump(mode="json")
    except Exception as exc:  # the databases still tell the story when Temporal cannot answer
        story["workflow"] = {"error": str(exc)}
    for deployment in story["device"]:
        deployment.pop("credential_hash", None)
    return story


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
