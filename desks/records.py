"""One delivery across the seven databases: each service's rows, joined by the denormalized keys.

No database can hold a key into another one, so the app-level join lives here, once. The partner desk builds
a partner's view of an order from a record (Integrations and Deliveries, and the running workflow's own view),
`deliveryctl ops show` prints records whole, and `deliveryctl audit` checks what their keys promise.
"""

import asyncio
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, any_, literal, select, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.service import RPCError

from core.contracts import DeliveryView
from core.db import Databases
from core.services import Service
from services.deliveries.models import Attempt, AttemptHistory, Delivery, Quote
from services.device.models import Deployment, DeploymentStatus
from services.dispatch.models import Demand, Plan
from services.integrations.models import ExternalState, PartnerDelivery
from services.operations.models import FOTask, PilotAssignment, Task, TaskHistory, Trip, TripHistory
from services.state.models import LidCycleEvent, StateHistory
from services.trip_monitor.models import MonitoredTrip
from workflows.delivery import DeliveryWorkflow, workflow_id

# The columns that name a delivery, in each service's database that has them.
DELIVERY_KEYS = {
    Service.INTEGRATIONS: (PartnerDelivery.delivery_id,),
    Service.DELIVERIES: (Delivery.id,),
    Service.DISPATCH: (Demand.delivery_id,),
    Service.OPERATIONS: (Task.delivery_id, Trip.delivery_id, FOTask.delivery_id),
    Service.TRIP_MONITOR: (MonitoredTrip.delivery_id,),
}
# State names attempts only: its rows reach a delivery through Deliveries' attempts.
STATE_ATTEMPT_KEYS = {Service.STATE: (StateHistory.attempt_id, LidCycleEvent.attempt_id)}


@dataclass
class DeliveryRecord:
    """One delivery's rows in each database, and its workflow's own view; a part that was not read stays empty.

    The rows that carry the keys are the orders, the delivery and its attempts, demands, tasks, trips, field tasks
    and trip watches; the rest is detail, read only when asked for.
    """

    delivery_id: uuid.UUID
    # Integrations: the partner's order and the statuses the partner was told.
    orders: list[PartnerDelivery] = field(default_factory=list)
    external_states: list[ExternalState] = field(default_factory=list)
    # Deliveries: the delivery, its attempts and their status history in order, and the quote its order used.
    delivery: Delivery | None = None
    attempts: list[Attempt] = field(default_factory=list)
    history: list[AttemptHistory] = field(default_factory=list)
    quote: Quote | None = None
    # Dispatch
    demands: list[Demand] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    # Operations
    tasks: list[Task] = field(default_factory=list)
    trips: list[Trip] = field(default_factory=list)
    task_history: list[TaskHistory] = field(default_factory=list)
    trip_history: list[TripHistory] = field(default_factory=list)
    pilot_assignments: list[PilotAssignment] = field(default_factory=list)
    field_tasks: list[FOTask] = field(default_factory=list)
    # Trip Monitor
    watches: list[MonitoredTrip] = field(default_factory=list)
    # State, reached through the delivery's attempts: the robots' events and lid cycles.
    events: list[StateHistory] = field(default_factory=list)
    lid_cycles: list[LidCycleEvent] = field(default_factory=list)
    # Device: the active deployments of the robots the attempts had.
    deployments: list[Deployment] = field(default_factory=list)
    # Temporal: the workflow's `status` query, or why it could not answer.
    workflow: DeliveryView | None = None
    workflow_error: str | None = None

    @property
    def order(self) -> PartnerDelivery | None:
        """The partner's order of the delivery (one per delivery)."""
        return self.orders[0] if self.orders else None

    @property
    def attempt_ids(self) -> set[uuid.UUID]:
        return {attempt.id for attempt in self.attempts}


async def load_records(databases: Databases, delivery_ids: Iterable[uuid.UUID] | None,
                       services: Collection[Service] = tuple(Service), detail: bool = True,
                       ) -> dict[uuid.UUID, DeliveryRecord]:
    """The records of these deliveries (for None, of every delivery a row of the given services names, whichever
    database holds it), in the order given, with the parts the given services hold; without `detail`, only the rows
    that carry the keys."""
    if delivery_ids is None:
        keyed = {service: DELIVERY_KEYS[service] for service in services if service in DELIVERY_KEYS}
        delivery_ids = sorted(await named_ids(databases, keyed))
    records = {delivery_id: DeliveryRecord(delivery_id) for delivery_id in delivery_ids}
    reader = _Reader(databases, records, detail)
    for service in Service:  # in this order: Deliveries reads the orders' quotes, State and Device its attempts
        if service in services:
            await reader.read(service)
    return records


async def ask_workflow(client: Client, record: DeliveryRecord, timeout: timedelta | None = None,
                       ) -> DeliveryView | None:
    """The delivery workflow's own view (its `status` query), kept on the record; None, with the reason kept
    instead, when Temporal or the workflow cannot answer (within `timeout`)."""
    handle = client.get_workflow_handle(workflow_id(record.delivery_id))
    try:
        record.workflow = await asyncio.wait_for(handle.query(DeliveryWorkflow.status),
                                                 timeout.total_seconds() if timeout else None)
    except (RPCError, TimeoutError, WorkflowFailureError, WorkflowQueryFailedError) as exc:
        record.workflow_error = str(exc) or type(exc).__name__
    return record.workflow


async def named_ids(databases: Databases, keys: dict[Service, tuple]) -> set[uuid.UUID]:
    """Every id the given columns hold, each service's columns in one query of its database."""
    found: set[uuid.UUID] = set()
    for service, columns in keys.items():
        statement = union(*(select(column.label("id")).where(column.is_not(None)) for column in columns))
        async with databases.lookups(service)() as session:
            found.update(await session.scalars(statement))
    return found


def _among(column, values: Iterable) -> ColumnElement[bool]:
    """`column = ANY(:values)`: one array parameter however many values (a statement takes at most 32767)."""
    return column == any_(literal(list(values), ARRAY(column.type)))


class _Reader:
    """Reads each service's part of a set of records, one query per table."""

    def __init__(self, databases: Databases, records: dict[uuid.UUID, DeliveryRecord], detail: bool):
        self.databases, self.records, self.detail = databases, records, detail

    async def read(self, service: Service) -> None:
        parts = {Service.INTEGRATIONS: self._integrations, Service.DELIVERIES: self._deliveries,
                 Service.DISPATCH: self._dispatch, Service.OPERATIONS: self._operations,
                 Service.TRIP_MONITOR: self._trip_monitor, Service.STATE: self._state, Service.DEVICE: self._device}
        async with self.databases.sessions(service).begin() as session:
            await parts[service](session)

    def _file(self, rows: Iterable, part: str, delivery_of: Callable[[Any], uuid.UUID]) -> None:
        """Append each row to the `part` of the record `delivery_of(row)` names."""
        for row in rows:
            getattr(self.records[delivery_of(row)], part).append(row)

    async def _integrations(self, session: AsyncSession) -> None:
        orders = await session.scalars(select(PartnerDelivery).where(_among(PartnerDelivery.delivery_id, self.records))
                                       .order_by(PartnerDelivery.created_at))
        self._file(orders, "orders", lambda order: order.delivery_id)
        if self.detail:
            delivery_of = {order.id: order.delivery_id for record in self.records.values() for order in record.orders}
            states = await session.scalars(select(ExternalState).where(
                _among(ExternalState.partner_delivery_id, delivery_of)).order_by(ExternalState.sequence))
            self._file(states, "external_states", lambda state: delivery_of[state.partner_delivery_id])

    async def _deliveries(self, session: AsyncSession) -> None:
        for delivery in await session.scalars(select(Delivery).where(_among(Delivery.id, self.records))):
            self.records[delivery.id].delivery = delivery
        attempts = await session.scalars(select(Attempt).where(_among(Attempt.delivery_id, self.records))
                                         .order_by(Attempt.number))
        self._file(attempts, "attempts", lambda attempt: attempt.delivery_id)
        if not self.detail:
            return
        history = await session.execute(
            select(AttemptHistory, Attempt.delivery_id).join(Attempt, Attempt.id == AttemptHistory.attempt_id)
            .where(_among(Attempt.delivery_id, self.records)).order_by(Attempt.number, AttemptHistory.sequence))
        for entry, delivery_id in history:
            self.records[delivery_id].history.append(entry)
        quoted = {quote_id: record for record in self.records.values() if (quote_id := _quote_of(record))}
        for quote in await session.scalars(select(Quote).where(_among(Quote.id, quoted))):
            quoted[quote.id].quote = quote

    async def _dispatch(self, session: AsyncSession) -> None:
        demands = await session.scalars(select(Demand).where(_among(Demand.delivery_id, self.records))
                                        .order_by(Demand.created_at))
        self._file(demands, "demands", lambda demand: demand.delivery_id)
        if self.detail:
            plans = await session.execute(
                select(Plan, Demand.delivery_id).join(Demand, Demand.id == Plan.demand_id)
                .where(_among(Demand.delivery_id, self.records)).order_by(Plan.created_at))
            for plan, delivery_id in plans:
                self.records[delivery_id].plans.append(plan)

    async def _operations(self, session: AsyncSession) -> None:
        for part, table in (("tasks", Task), ("trips", Trip), ("field_tasks", FOTask)):
            rows = await session.scalars(select(table).where(_among(table.delivery_id, self.records))
                                         .order_by(table.created_at))
            self._file(rows, part, lambda row: row.delivery_id)
        if not self.detail:
            return
        task_of = {task.id: task.delivery_id for record in self.records.values() for task in record.tasks}
        trip_of = {trip.id: trip.delivery_id for record in self.records.values() for trip in record.trips}
        self._file(await session.scalars(select(TaskHistory).where(_among(TaskHistory.task_id, task_of))
                                         .order_by(TaskHistory.occurred_at)),
                   "task_history", lambda entry: task_of[entry.task_id])
        self._file(await session.scalars(select(TripHistory).where(_among(TripHistory.trip_id, trip_of))
                                         .order_by(TripHistory.occurred_at)),
                   "trip_history", lambda entry: trip_of[entry.trip_id])
        self._file(await session.scalars(select(PilotAssignment).where(_among(PilotAssignment.task_id, task_of))
                                         .order_by(PilotAssignment.assigned_at)),
                   "pilot_assignments", lambda claim: task_of[claim.task_id])

    async def _trip_monitor(self, session: AsyncSession) -> None:
        watches = await session.scalars(select(MonitoredTrip).where(_among(MonitoredTrip.delivery_id, self.records))
                                        .order_by(MonitoredTrip.started_at))
        self._file(watches, "watches", lambda watch: watch.delivery_id)

    async def _state(self, session: AsyncSession) -> None:
        if not self.detail:
            return
        attempt_of = {attempt.id: attempt.delivery_id for record in self.records.values()
                      for attempt in record.attempts}
        self._file(await session.scalars(select(StateHistory).where(_among(StateHistory.attempt_id, attempt_of))
                                         .order_by(StateHistory.occurred_at)),
                   "events", lambda event: attempt_of[event.attempt_id])
        self._file(await session.scalars(select(LidCycleEvent).where(_among(LidCycleEvent.attempt_id, attempt_of))
                                         .order_by(LidCycleEvent.occurred_at)),
                   "lid_cycles", lambda cycle: attempt_of[cycle.attempt_id])

    async def _device(self, session: AsyncSession) -> None:
        if not self.detail:
            return
        robots = {record.delivery_id: {a.robot_id for a in record.attempts if a.robot_id}
                  for record in self.records.values()}
        deployments = list(await session.scalars(select(Deployment).where(
            _among(Deployment.robot_id, set().union(*robots.values())),
            Deployment.status == DeploymentStatus.ACTIVE.value)))
        for delivery_id, used in robots.items():
            self.records[delivery_id].deployments = [d for d in deployments if d.robot_id in used]


def _quote_of(record: DeliveryRecord) -> uuid.UUID | None:
    """The quote the delivery was created with, as its order names it (or the delivery, without an order)."""
    if record.order is not None:
        return record.order.quote_id
    return record.delivery.quote_id if record.delivery is not None else None
