"""`deliveryctl ops`: find parked deliveries, see one delivery across all seven databases, and act on it.

The actions are the same workflow updates an operator can send from the Temporal UI. Each is sent with the
operator's own token, and recorded under the identity that token names; only the dev profile lets an operator act
without one, recorded as unauthenticated.
"""

import base64
import binascii
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowUpdateFailedError

from core.contracts import CancelRequest, OperatorAction
from core.db import Databases
from core.services import TaskQueue
from core.settings import Settings
from desks.records import ask_workflow, load_records
from workflows.delivery import NEEDS_OPERATOR, DeliveryWorkflow, workflow_id


UNAUTHENTICATED = "(unauthenticated)"


class OperatorError(Exception):
    """The delivery refused the action; the message says why."""


class CredentialError(Exception):
    """The operator's credential is missing, unreadable or unusable; the message says which and why."""


@dataclass(frozen=True)
class Operator:
    """Who acts: the name recorded with each action, and the token sent to Temporal (None: unauthenticated)."""

    name: str
    token: str | None

    @property
    def identity(self) -> str:
        """What Temporal records as the caller of each update."""
        return f"deliveryctl: {self.name}"


def operator_of(settings: Settings, token_file: Path | None = None, typed_name: str | None = None,
                acting: bool = True) -> Operator:
    """The operator behind this command: from their token (`--token-file`, else `DELIVERY_OPERATOR_TOKEN`, else
    `DELIVERY_OPERATOR_TOKEN_FILE`), named by its `email` claim, else its `sub`.

    Without a token, production refuses to act; the dev profile records the typed or OS user marked unauthenticated.
    The frontend verifies the token's signature and reads its permissions; this only reads who it names.
    """
    token = operator_token(settings, token_file)
    if token is not None:
        if typed_name:
            raise CredentialError("--operator cannot name someone else: with a token the operator is the one it "
                                  "names")
        return Operator(name=token_identity(token), token=token)
    if acting and settings.profile == "production":
        raise CredentialError("an operator action needs the operator's own token with DELIVERY_PROFILE=production: "
                              "--token-file, DELIVERY_OPERATOR_TOKEN or DELIVERY_OPERATOR_TOKEN_FILE")
    return Operator(name=f"{typed_name or os.environ.get('USER') or 'operator'} {UNAUTHENTICATED}", token=None)


def operator_token(settings: Settings, token_file: Path | None) -> str | None:
    """The operator's token, from the first place that has one."""
    path = token_file or settings.operator_token_file
    if path is None:
        return (settings.operator_token or "").strip() or None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise CredentialError(f"cannot read the operator token {path}: {exc.strerror}") from None
    if not token:
        raise CredentialError(f"the operator token file {path} is empty")
    return token


def token_identity(token: str, now: float | None = None) -> str:
    """Who an operator's JWT names (`email`, else `sub`); CredentialError if it is no JWT, names no one, or expired."""
    claims = token_claims(token)
    name = claims.get("email") or claims.get("sub")
    if not isinstance(name, str) or not name.strip():
        raise CredentialError("the operator token names no one: it has neither an `email` nor a `sub` claim")
    expires = claims.get("exp")
    if isinstance(expires, (int, float)) and expires <= (time.time() if now is None else now):
        raise CredentialError(f"the operator token of {name} has expired: sign in again for a new one")
    if len(name) > 64:
        raise CredentialError(f"the operator token names {name[:64]}..., longer than the 64 characters recorded")
    return name.strip()


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (its middle part), read without checking the signature: the frontend checks it."""
    parts = token.split(".")
    if len(parts) != 3:
        raise CredentialError("the operator token is not a JWT (header.claims.signature)")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CredentialError("the operator token's claims are not base64url JSON") from None
    if not isinstance(claims, dict):
        raise CredentialError("the operator token's claims are not a JSON object")
    return claims


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
