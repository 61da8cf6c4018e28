"""Queries of the State service: the robot event log, lid cycles and connectivity."""

from datetime import UTC, datetime

from sqlalchemy import Boolean, Float, Row, String, bindparam, exists, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.columns import TIMESTAMPTZ
from core.contracts import RecordedRobotEvent, RobotEventType
from services.state.models import Connectivity, ConnectivityStatus, LidCycleEvent, LidEvent, StateHistory

LID_EVENTS = {RobotEventType.LID_OPENED: LidEvent.OPENED, RobotEventType.LID_CLOSED: LidEvent.CLOSED}


async def _lock_robot(session: AsyncSession, robot_id: str) -> None:
    # Per-robot sequences are max+1; serialise appends for one robot for the rest of the transaction.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:robot))"), {"robot": robot_id})


def _appended(model, *, conflict: list[str] | None = None):
    """An INSERT of one row of `model` numbered the robot's next sequence (max + 1, under `_lock_robot`), its id
    and received_at made by Postgres, built once; with `conflict`, a row already there (same key) is left alone and
    nothing is returned."""
    table = model.__table__
    columns = [column.name for column in table.c if column.name not in ("id", "sequence", "received_at")]
    following = select(*[bindparam(name, type_=table.c[name].type) for name in columns],
                       func.coalesce(func.max(table.c.sequence), 0) + 1, func.now(), func.gen_random_uuid()
                       ).where(table.c.robot_id == bindparam("robot_id"))
    statement = insert(table).from_select([*columns, "sequence", "received_at", "id"], following)
    if conflict:
        statement = statement.on_conflict_do_nothing(index_elements=conflict)
    return statement.returning(table.c.sequence)


def _sightings(rows):
    """The upsert of robots' connectivity from `rows` (a SELECT of robot_id, status, last_seen_at, latitude,
    longitude, updated_at): a sighting older than the one recorded changes nothing."""
    upsert = insert(Connectivity.__table__).from_select(
        ["robot_id", "status", "last_seen_at", "latitude", "longitude", "updated_at"], rows)
    return upsert.on_conflict_do_update(
        index_elements=["robot_id"],
        set_={name: upsert.excluded[name] for name in ("status", "last_seen_at", "latitude", "longitude",
                                                       "updated_at")},
        where=upsert.table.c.last_seen_at <= upsert.excluded.last_seen_at)


def _recorded_event():
    """One statement for a robot's event: its row appended (once per event id), and only if it was, its lid cycle
    (where `lid_event` is given), its sighting (where `latitude` is given) and a notice of the robot's id on
    `channel` (where `announce` is true), sent once the transaction commits. It returns the event's sequence, or
    no row for an event id already there."""
    appended = _appended(StateHistory, conflict=["robot_id", "event_id"]).cte("appended")
    lids = LidCycleEvent.__table__
    lid_columns = ["robot_id", "attempt_id", "occurred_at", "latitude", "longitude", "accepted", "rejection_reason"]
    lid_cycle = insert(lids).from_select([*lid_columns, "event", "sequence", "received_at", "id"], select(
        *[bindparam(name, type_=lids.c[name].type) for name in lid_columns], bindparam("lid_event", type_=String),
        select(func.coalesce(func.max(lids.c.sequence), 0) + 1).where(lids.c.robot_id == bindparam("robot_id"))
        .scalar_subquery(), func.now(), func.gen_random_uuid(),
    ).select_from(appended).where(bindparam("lid_event", type_=String).is_not(None))).cte("lid_cycle")
    sighting = _sightings(
        select(bindparam("robot_id", type_=String), bindparam("online", type_=String),
               bindparam("occurred_at", type_=TIMESTAMPTZ), bindparam("latitude", type_=Float),
               bindparam("longitude", type_=Float), func.now())
        .select_from(appended).where(bindparam("latitude", type_=Float).is_not(None))).cte("sighting")
    announced = select(func.pg_notify(bindparam("channel", type_=String), bindparam("robot_id", type_=String))
                       ).select_from(appended).where(bindparam("announce", type_=Boolean)).cte("announced")
    return (select(appended.c.sequence, select(func.count()).select_from(announced).scalar_subquery())
            .add_cte(lid_cycle, sighting))


RECORD_EVENT = _recorded_event()
_EVENTS = StateHistory.__table__.c
FIND_EVENT = select(_EVENTS.robot_id, _EVENTS.event_id, _EVENTS.accepted, _EVENTS.payload, _EVENTS.rejection_reason
                    ).where(_EVENTS.robot_id == bindparam("robot_id"), _EVENTS.event_id == bindparam("event_id"))


async def find_event(db: AsyncSession | AsyncConnection, robot_id: str, event_id: str) -> Row | None:
    """The robot's event with this id, as recorded (accepted, or refused with its reason): its robot_id,
    event_id, accepted, payload and rejection_reason."""
    return (await db.execute(FIND_EVENT, {"robot_id": robot_id, "event_id": event_id})).first()


async def record_event(session: AsyncSession, recorded: RecordedRobotEvent, announce_on: str | None = None) -> bool:
    """Append a robot event (with its lid cycle and sighting) once per event id, in one statement after the
    robot's lock; return False if it was already there. With `announce_on`, a new event is announced on that
    channel (the robot's id) once the transaction commits."""
    event = recorded.event
    location = event.location
    await _lock_robot(session, event.robot_id)
    appended = (await session.execute(RECORD_EVENT, {
        "robot_id": event.robot_id, "attempt_id": recorded.attempt_id, "occurred_at": event.occurred_at,
        "latitude": location.latitude if location else None, "longitude": location.longitude if location else None,
        "accepted": recorded.accepted, "rejection_reason": recorded.rejection_reason,
        "event_id": event.event_id, "event_type": event.type.value,
        "payload": {"delivery_id": str(recorded.delivery_id) if recorded.delivery_id else None,
                    "detail": event.detail},
        "lid_event": LID_EVENTS[event.type].value if event.type in LID_EVENTS and location is not None else None,
        "online": ConnectivityStatus.ONLINE.value, "channel": announce_on or "", "announce": announce_on is not None,
    })).first()
    return appended is not None


async def record_sighting(session: AsyncSession, robot_id: str, latitude: float | None, longitude: float | None,
                          seen_at: datetime | None = None) -> None:
    """Upsert the robot's connectivity: it is online, here, now (the batch statement, with one sighting)."""
    await record_sightings(session, [(robot_id, latitude, longitude, seen_at or datetime.now(UTC))])


# One statement for a whole batch of sightings, the same text whatever its size (compiled once, prepared once).
_BATCH = func.unnest(bindparam("robot_ids", type_=ARRAY(String)), bindparam("seen_at", type_=ARRAY(TIMESTAMPTZ)),
                     bindparam("latitudes", type_=ARRAY(Float)), bindparam("longitudes", type_=ARRAY(Float))
                     ).table_valued("robot_id", "seen_at", "latitude", "longitude").render_derived(name="sighting")
SIGHTINGS = _sightings(select(_BATCH.c.robot_id, bindparam("online", type_=String), _BATCH.c.seen_at,
                              _BATCH.c.latitude, _BATCH.c.longitude, func.now()))


async def record_sightings(session: AsyncSession, sightings: list[tuple[str, float, float, datetime]]) -> None:
    """Upsert the connectivity of many robots in one statement: (robot id, latitude, longitude, seen at), at most
    one per robot; a sighting older than the one recorded changes nothing."""
    if not sightings:
        return
    robot_ids, latitudes, longitudes, seen_at = (list(column) for column in zip(*sightings))
    await session.execute(SIGHTINGS, {"online": ConnectivityStatus.ONLINE.value, "robot_ids": robot_ids,
                                      "seen_at": seen_at, "latitudes": latitudes, "longitudes": longitudes})


_LIDS = LidCycleEvent.__table__.c
ATTEMPT_MARKS = select(
    select(_LIDS.event).where(_LIDS.attempt_id == bindparam("attempt_id"), _LIDS.accepted.is_(True))
    .order_by(_LIDS.occurred_at.desc(), _LIDS.sequence.desc()).limit(1).scalar_subquery().label("last_lid"),
    exists().where(_EVENTS.attempt_id == bindparam("attempt_id"), _EVENTS.event_type == "arrived_at_store",
                   _EVENTS.accepted.is_(True)).label("back_at_store"),
)


async def attempt_marks(db: AsyncSession | AsyncConnection, attempt_id) -> tuple[bool, bool]:
    """Whether the attempt's last accepted lid event opened the lid, and whether its robot said it arrived back
    at the store (an accepted `arrived_at_store`, for a return), in one statement built once."""
    marks = (await db.execute(ATTEMPT_MARKS, {"attempt_id": attempt_id})).one()
    return marks.last_lid == LidEvent.OPENED, bool(marks.back_at_store)


async def lid_cycles(session: AsyncSession, attempt_ids: list) -> list[LidCycleEvent]:
    """The accepted lid events of some attempts, in order (proof of pickup and delivery)."""
    rows = await session.scalars(
        select(LidCycleEvent).where(LidCycleEvent.attempt_id.in_(attempt_ids), LidCycleEvent.accepted.is_(True))
        .order_by(LidCycleEvent.occurred_at)
    )
    return list(rows)
