"""`deliveryctl audit`: the app-level join across the seven databases, looking for orphans and gaps.

No database can enforce a key into another one, so this checks what the denormalized keys promise:
every row that names a delivery or an attempt points at one that exists, and every attempt left its
part in each service.
"""

import uuid
from collections import defaultdict

from sqlalchemy import select

from core.db import Databases
from core.services import Service
from services.deliveries.models import Attempt, Delivery
from services.dispatch.models import Demand
from services.integrations.models import PartnerDelivery
from services.operations.models import Task
from services.state.models import StateHistory
from services.trip_monitor.models import MonitoredTrip


async def _pairs(databases: Databases, service: Service, *columns) -> list[tuple]:
    async with databases.sessions(service).begin() as session:
        return [tuple(row) for row in await session.execute(select(*columns))]


async def audit(databases: Databases, delivery_ids: set[uuid.UUID] | None = None) -> dict:
    """Check every delivery (or the given ones) across all seven databases; return counts and problems."""
    deliveries = {d for (d,) in await _pairs(databases, Service.DELIVERIES, Delivery.id)}
    attempt_rows = await _pairs(databases, Service.DELIVERIES, Attempt.id, Attempt.delivery_id, Attempt.robot_id)
    attempts = {attempt_id: delivery_id for attempt_id, delivery_id, _ in attempt_rows}
    with_robot = {attempt_id for attempt_id, _, robot_id in attempt_rows if robot_id is not None}
    scope = delivery_ids if delivery_ids is not None else deliveries
    problems: list[str] = []

    def check(kind: str, rows: list[tuple]) -> None:
        for delivery_id, attempt_id in rows:
            if delivery_id not in scope:
                continue
            if delivery_id not in deliveries:
                problems.append(f"{kind} names delivery {delivery_id}, which Deliveries does not have")
            elif attempt_id is not None and attempts.get(attempt_id) != delivery_id:
                problems.append(f"{kind} names attempt {attempt_id}, not an attempt of delivery {delivery_id}")

    orders = await _pairs(databases, Service.INTEGRATIONS, PartnerDelivery.delivery_id, PartnerDelivery.id)
    check("an Integrations order", [(d, None) for d, _ in orders])
    demands = await _pairs(databases, Service.DISPATCH, Demand.delivery_id, Demand.attempt_id)
    check("a Dispatch demand", demands)
    check("an Operations task", await _pairs(databases, Service.OPERATIONS, Task.delivery_id, Task.attempt_id))
    check("a Trip Monitor watch",
          await _pairs(databases, Service.TRIP_MONITOR, MonitoredTrip.delivery_id, MonitoredTrip.attempt_id))
    events = await _pairs(databases, Service.STATE, StateHistory.attempt_id, StateHistory.accepted)
    check("a State event", [(attempts.get(a), a) for a, accepted in events if a is not None and accepted])

    ordered = {d for d, _ in orders}
    planned = {a for _, a in demands}
    per_delivery: dict = defaultdict(list)
    for attempt_id, delivery_id in attempts.items():
        per_delivery[delivery_id].append(attempt_id)
    for delivery_id in scope:
        if delivery_id not in ordered:
            problems.append(f"delivery {delivery_id} has no partner order in Integrations")
        for attempt_id in per_delivery.get(delivery_id, []):
            if attempt_id in with_robot and attempt_id not in planned:
                problems.append(f"attempt {attempt_id} of delivery {delivery_id} has a robot but no Dispatch demand")
    return {"deliveries": len(scope), "attempts": sum(len(per_delivery[d]) for d in scope), "problems": problems}
