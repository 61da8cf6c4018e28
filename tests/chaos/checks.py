"""What must hold once the chaos flow has drained: across the seven databases, in Temporal, at the partner.

Each check returns its problems (empty when all is well), by kind, so the report can count them.
"""

import asyncio
import json
import uuid
from collections import Counter, defaultdict

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from cli.audit import audit
from core.db import Databases
from core.services import Service
from services.deliveries.models import Attempt, AttemptHistory, Delivery
from services.dispatch.models import Demand, DemandStatus
from services.integrations.models import CallbackStatus, ExternalState, PartnerDelivery
from services.operations.models import ACTIVE_TASK_STATUSES, PilotAssignment, PilotAssignmentStatus, Task, Trip
from services.trip_monitor.models import MonitoredTrip, MonitoredTripStatus
from tests.chaos.receiver import ChaosReceiver
from workflows.delivery import workflow_id

CLOSING_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


async def _rows(databases: Databases, service: Service, statement) -> list:
    async with databases.sessions(service).begin() as session:
        return list(await session.execute(statement))


def _gaps(name: str, numbers: list[int]) -> list[str]:
    """Numbers must run 1..n, each once."""
    return [] if sorted(numbers) == list(range(1, len(numbers) + 1)) else [f"{name}: {sorted(numbers)}"]


async def row_problems(databases: Databases, partner_id: uuid.UUID, accepted: set[uuid.UUID]) -> dict[str, list]:
    """Orphans (the audit, and orders the API answered for but never stored), duplicates, numbering gaps and
    sent callbacks, and anything still held once every delivery ended."""
    orders = await _rows(databases, Service.INTEGRATIONS, select(PartnerDelivery.delivery_id, PartnerDelivery.id)
                         .where(PartnerDelivery.partner_id == partner_id))
    stored = Counter(delivery_id for delivery_id, _ in orders)
    orphans = [f"the API accepted delivery {d}, which Integrations never stored" for d in accepted - set(stored)]
    orphans += [f"order of delivery {d} was stored but never accepted" for d in set(stored) - accepted]
    orphans += (await audit(databases, accepted))["problems"]
    duplicates = [f"delivery {d} has {n} partner orders" for d, n in stored.items() if n > 1]
    held, more = await _held_problems(databases, accepted)
    return {"orphans": orphans, "duplicates": duplicates + more,
            "numbering": await _numbering_problems(databases, accepted, {order: d for d, order in orders}),
            "held": held}


async def _numbering_problems(databases: Databases, accepted: set[uuid.UUID], order_of: dict) -> list[str]:
    attempts = await _rows(databases, Service.DELIVERIES, select(Attempt.delivery_id, Attempt.id, Attempt.number)
                           .where(Attempt.delivery_id.in_(accepted)))
    numbers, attempt_ids = defaultdict(list), {attempt_id for _, attempt_id, _ in attempts}
    for delivery_id, _, number in attempts:
        numbers[delivery_id].append(number)
    problems = [f"delivery {d} has no attempt" for d in accepted - set(numbers)]
    problems += [p for d, n in numbers.items() for p in _gaps(f"attempt numbers of delivery {d}", n)]
    history = await _rows(databases, Service.DELIVERIES, select(AttemptHistory.attempt_id, AttemptHistory.sequence)
                          .where(AttemptHistory.attempt_id.in_(attempt_ids)))
    sequences = defaultdict(list)
    for attempt_id, sequence in history:
        sequences[attempt_id].append(sequence)
    problems += [p for a, s in sequences.items() for p in _gaps(f"history of attempt {a}", s)]
    latest = await _rows(databases, Service.DELIVERIES, select(Delivery.id, Delivery.latest_attempt_id)
                         .where(Delivery.id.in_(accepted)))
    last = {d: max(attempts_of, key=lambda row: row[2])[1] for d, attempts_of in
            _group(attempts, key=lambda row: row[0]).items()}
    problems += [f"delivery {d} points at attempt {a}, not its last" for d, a in latest if last.get(d) != a]
    states = await _rows(databases, Service.INTEGRATIONS, select(ExternalState.partner_delivery_id,
                                                                 ExternalState.sequence, ExternalState.callback_status)
                         .where(ExternalState.partner_delivery_id.in_(order_of)))
    per_order = defaultdict(list)
    for order, sequence, callback_status in states:
        per_order[order].append(sequence)
        if callback_status != CallbackStatus.DELIVERED.value:
            problems.append(f"callback #{sequence} of delivery {order_of[order]} is {callback_status}")
    problems += [p for o, s in per_order.items() for p in _gaps(f"partner statuses of delivery {order_of[o]}", s)]
    return problems


async def _held_problems(databases: Databases, accepted: set[uuid.UUID]) -> tuple[list[str], list[str]]:
    """Once every delivery ended nothing may stay open (demands, tasks, trip watches, pilot claims); and duplicate
    tasks or trips."""
    problems, duplicates = [], []
    demands = await _rows(databases, Service.DISPATCH, select(Demand.attempt_id, Demand.status)
                          .where(Demand.delivery_id.in_(accepted)))
    open_demands = [a for a, status in demands if status not in (DemandStatus.FULFILLED, DemandStatus.CANCELLED)]
    problems += [f"demand of attempt {a} is still open" for a in open_demands]
    tasks = await _rows(databases, Service.OPERATIONS, select(Task.id, Task.attempt_id, Task.kind, Task.status)
                        .where(Task.delivery_id.in_(accepted)))
    problems += [f"task {t} of attempt {a} is still {s}" for t, a, _, s in tasks if s in ACTIVE_TASK_STATUSES]
    duplicates += [f"attempt {a} has {n} {k} tasks" for (a, k), n in Counter((a, k) for _, a, k, _ in tasks).items()
                   if n > 1]
    trips = await _rows(databases, Service.OPERATIONS, select(Trip.task_id, Trip.leg, func.count())
                        .where(Trip.task_id.in_([t for t, *_ in tasks])).group_by(Trip.task_id, Trip.leg))
    duplicates += [f"task {t} has {n} {leg} trips" for t, leg, n in trips if n > 1]
    claims = await _rows(databases, Service.OPERATIONS, select(PilotAssignment.task_id).where(
        PilotAssignment.task_id.in_([t for t, *_ in tasks]), PilotAssignment.status == PilotAssignmentStatus.ACTIVE))
    problems += [f"a pilot still supervises task {t}" for (t,) in claims]
    watches = await _rows(databases, Service.TRIP_MONITOR, select(MonitoredTrip.attempt_id, MonitoredTrip.status)
                          .where(MonitoredTrip.delivery_id.in_(accepted)))
    problems += [f"trip watch of attempt {a} is still {s}" for a, s in watches
                 if s in (MonitoredTripStatus.WATCHING, MonitoredTripStatus.DEGRADED)]
    return problems, duplicates


def _group(rows, key) -> dict:
    grouped = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped


async def workflow_problems(client: Client, accepted: set[uuid.UUID]) -> tuple[list[str], dict[str, int]]:
    """Exactly one workflow run per delivery, none other, all completed; their final statuses counted."""
    runs = Counter()
    problems = []
    async for execution in client.list_workflows("WorkflowType = 'DeliveryWorkflow'"):
        runs[execution.id] += 1
        if execution.status != WorkflowExecutionStatus.COMPLETED:
            problems.append(f"{execution.id} is {execution.status.name}")
    wanted = {workflow_id(d) for d in accepted}
    problems += [f"{w} has {n} runs" for w, n in runs.items() if n > 1]
    problems += [f"{w} never started" for w in wanted - set(runs)]
    problems += [f"{w} runs for no accepted delivery" for w in set(runs) - wanted]
    return problems, dict(runs)


async def history_problems(client: Client, workflow_ids: list[str],
                           parallel: int = 4) -> tuple[list[str], int, dict[str, dict]]:
    """Every history's event ids run 1..n; each update is accepted once; each activity closes at most once.

    Also returns the number of events read and each workflow's result (its final `status` query), read from
    the same histories.
    """
    limit = asyncio.Semaphore(parallel)
    events, results = 0, {}

    async def one(wid: str) -> list[str]:
        nonlocal events
        async with limit:
            history = await client.get_workflow_handle(wid).fetch_history()
        events += len(history.events)
        last = history.events[-1]
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            payloads = last.workflow_execution_completed_event_attributes.result.payloads
            results[wid] = (await client.data_converter.decode(payloads))[0]
        return _history_problems(wid, history.events)

    found = await asyncio.gather(*(one(wid) for wid in workflow_ids))
    return [problem for problems in found for problem in problems], events, results


def _history_problems(wid: str, events) -> list[str]:
    ids = [event.event_id for event in events]
    problems = [] if ids == list(range(1, len(ids) + 1)) else [f"{wid}: event ids are not 1..{len(ids)}"]
    updates = Counter(event.workflow_execution_update_accepted_event_attributes.protocol_instance_id
                      for event in events
                      if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    problems += [f"{wid}: update {u} accepted {n} times" for u, n in updates.items() if n > 1]
    closed = Counter(getattr(event, CLOSING_EVENTS[event.event_type]).scheduled_event_id
                     for event in events if event.event_type in CLOSING_EVENTS)
    problems += [f"{wid}: activity scheduled at event {s} closed {n} times" for s, n in closed.items() if n > 1]
    return problems


def callback_problems(receiver: ChaosReceiver, accepted: set[str], queued: dict[str, int],
                      statuses: dict[str, list[str]]) -> list[str]:
    """The partner got each callback of each delivery once, by sequence 1..n in order, as many as the workflow
    queued (status changes and ETA updates share the sequence), and the status changes are the workflow's trail."""
    problems = []
    for delivery_id in accepted:
        arrivals = receiver.arrivals.get(delivery_id, [])
        sequences = [sequence for sequence, _ in arrivals]
        if sequences != list(range(1, queued[delivery_id] + 1)):
            problems.append(f"delivery {delivery_id}: callbacks arrived as sequences {sequences}, "
                            f"the workflow queued {queued[delivery_id]}")
        elif receiver.statuses_of[delivery_id] != statuses[delivery_id]:
            problems.append(f"delivery {delivery_id}: partner got {receiver.statuses_of[delivery_id]}, "
                            f"the workflow reached {statuses[delivery_id]}")
    return problems + webhook_id_problems(receiver.events_by_webhook_id)


def webhook_id_problems(events_by_webhook_id: dict[str, list[dict]]) -> list[str]:
    """One webhook-id, one event: every arrival under a webhook-id (first or resent, from any delivery) carries
    the same event, and no callback of a delivery (its sequence) arrived under two webhook-ids."""
    problems, webhook_id_of = [], {}
    for webhook_id, events in events_by_webhook_id.items():
        distinct = {json.dumps(event, sort_keys=True) for event in events}
        if len(distinct) > 1:
            problems.append(f"webhook-id {webhook_id} arrived as {len(distinct)} different events")
        for callback in {(event["data"]["delivery_id"], event["data"]["sequence"]) for event in events}:
            other = webhook_id_of.setdefault(callback, webhook_id)
            if other != webhook_id:
                problems.append(f"callback #{callback[1]} of delivery {callback[0]} arrived under webhook-ids "
                                f"{other} and {webhook_id}")
    return problems
