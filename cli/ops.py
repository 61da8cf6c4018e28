"""`deliveryctl ops`: find parked deliveries, see one delivery across all seven databases, and act on it.

The actions are the same workflow updates an operator can send from the Temporal UI.
"""

import uuid
from typing import Any

from sqlmodel import SQLModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowUpdateFailedError

from core.contracts import CancelRequest, OperatorAction
from core.db import Databases
from core.services import TaskQueue
from desks.records import ask_workflow, load_records
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
                DeliveryWorkflow.cancel,
                CancelRequest(reason=reason or "operator_cancelled", requested_by=operator, note=note))
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


async def show(client: Client, databases: Databases, delivery_id: uuid.UUID) -> dict[str, Any]:
    """One delivery joined across the seven databases (by its denormalized keys) and its workflow's state."""
    record = (await load_records(databases, [delivery_id]))[delivery_id]
    if record.delivery is None:
        raise OperatorError(f"no delivery {delivery_id}")
    await ask_workflow(client, record)  # the databases still tell the story when Temporal cannot answer
    return {
        "deliveries": {**_row(record.delivery), "attempts": _rows(record.attempts), "history": _rows(record.history),
                       "quote": _row(record.quote) if record.quote else None},
        "integrations": {"orders": _rows(record.orders), "external_states": _rows(record.external_states)},
        "dispatch": {"demands": _rows(record.demands), "plans": _rows(record.plans)},
        "operations": {"tasks": _rows(record.tasks), "trips": _rows(record.trips),
                       "task_history": _rows(record.task_history), "trip_history": _rows(record.trip_history),
                       "pilot_assignments": _rows(record.pilot_assignments), "field_tasks": _rows(record.field_tasks)},
        "trip_monitor": _rows(record.watches),
        "state": {"events": _rows(record.events), "lid_cycles": _rows(record.lid_cycles)},
        "device": [_row(deployment, exclude={"credential_hash"}) for deployment in record.deployments],
        "workflow": record.workflow.model_dump(mode="json") if record.workflow else {"error": record.workflow_error},
    }


def _row(row: SQLModel, exclude: set[str] | None = None) -> dict[str, Any]:
    return row.model_dump(mode="json", exclude=exclude)


def _rows(rows: list[SQLModel]) -> list[dict[str, Any]]:
    return [_row(row) for row in rows]
