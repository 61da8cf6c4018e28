"""`deliveryctl audit`: the app-level join across the seven databases, looking for orphans and gaps.

No database can enforce a key into another one, so this checks what the denormalized keys promise:
every row that names a delivery or an attempt points at one that exists, and every attempt left its
part in each service. The rows are those of each delivery's record (`desks.records`). The whole audit covers
every delivery any database names, not only those Deliveries has, so an orphan shows whichever side it is on;
State names attempts only, so an attempt it names that Deliveries lacks is reported on its own. Device names
robots only.
"""

import uuid

from core.db import Databases
from core.services import Service
from desks.records import STATE_ATTEMPT_KEYS, DeliveryRecord, load_records, named_ids

# The services whose rows name a delivery (and an attempt).
KEYED = (Service.INTEGRATIONS, Service.DELIVERIES, Service.DISPATCH, Service.OPERATIONS, Service.TRIP_MONITOR)


async def audit(databases: Databases, delivery_ids: set[uuid.UUID] | None = None) -> dict:
    """Check every delivery any database names (or the given ones) across the seven databases; return counts and
    problems."""
    records = await load_records(databases, delivery_ids, KEYED, detail=False)
    problems = [problem for record in records.values() for problem in _problems(record)]
    if delivery_ids is None:
        known = {attempt_id for record in records.values() for attempt_id in record.attempt_ids}
        problems += [f"State names attempt {attempt_id}, which Deliveries does not have"
                     for attempt_id in sorted(await named_ids(databases, STATE_ATTEMPT_KEYS) - known)]
    return {"deliveries": len(records), "attempts": sum(len(r.attempts) for r in records.values()),
            "problems": problems}


def _problems(record: DeliveryRecord) -> list[str]:
    """What does not hold in one delivery's record: rows naming a delivery Deliveries lacks or another delivery's
    attempt, no partner order, an attempt that had a robot but no Dispatch demand (unless a test order's)."""
    delivery_id, attempts = record.delivery_id, record.attempt_ids
    named = [("an Integrations order", None) for _ in record.orders]
    named += [("a Dispatch demand", demand.attempt_id) for demand in record.demands]
    named += [("an Operations task", task.attempt_id) for task in record.tasks]
    named += [("an Operations trip", trip.attempt_id) for trip in record.trips]
    named += [("an Operations field task", fo_task.attempt_id) for fo_task in record.field_tasks]
    named += [("a Trip Monitor watch", watch.attempt_id) for watch in record.watches]
    problems = []
    for kind, attempt_id in named:
        if record.delivery is None:
            problems.append(f"{kind} names delivery {delivery_id}, which Deliveries does not have")
        elif attempt_id is not None and attempt_id not in attempts:
            problems.append(f"{kind} names attempt {attempt_id}, not an attempt of delivery {delivery_id}")
    if not record.orders:
        problems.append(f"delivery {delivery_id} has no partner order in Integrations")
    if any(not order.live_mode for order in record.orders):  # a test order's sandbox robot is never planned
        return problems
    planned = {demand.attempt_id for demand in record.demands}
    problems += [f"attempt {attempt.id} of delivery {delivery_id} has a robot but no Dispatch demand"
                 for attempt in record.attempts if attempt.robot_id is not None and attempt.id not in planned]
    return problems
