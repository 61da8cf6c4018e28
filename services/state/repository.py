"""Queries of the State service: the robot event log, lid cycles and connectivity."""

from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import RecordedRobotEvent, RobotEventType
from services.state.models import Connectivity, ConnectivityStatus, LidCycleEvent, LidEvent, StateHistory

LID_EVENTS = {RobotEventType.LID_OPENED: LidEvent.OPENED, RobotEventType.LID_CLOSED: LidEvent.CLOSED}


async def _lock_robot(session: AsyncSession, robot_id: str) -> None:
    # Per-robot sequences are max+1; serialise appends for one robot for the rest of the transaction.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:robot))"), {"robot": robot_id})


async def _next_sequence(session: AsyncSession, model, robot_id: str) -> int:
    current = await session.scalar(select(func.max(model.sequence)).where(model.robot_id == robot_id))
    return (current or 0) + 1


async def find_event(session: AsyncSession, robot_id: str, event_id: str) -> StateHistory | None:
    """The robot's event with this id, as recorded (accepted, or refused with its reason)."""
    return await session.scalar(
        select(StateHistory).where(StateHistory.robot_id == robot_id, StateHistory.event_id == event_id))


async def record_event(session: AsyncSession, recorded: RecordedRobotEvent) -> bool:
    """Append a robot event (and its lid cycle) once per event id; return False if it was already there."""
    event = recorded.event
    await _lock_robot(session, event.robot_id)
    if await find_event(session, event.robot_id, event.event_id) is not None:
        return False
    location = event.location
    session.add(StateHistory(
        robot_id=event.robot_id, sequence=await _next_sequence(session, StateHistory, event.robot_id),
        event_id=event.event_id, event_type=event.type.value, attempt_id=recorded.attempt_id,
        latitude=location.latitude if location else None, longitude=location.longitude if location else None,
        payload={"delivery_id": str(recorded.delivery_id) if recorded.delivery_id else None, "detail": event.detail},
        occurred_at=event.occurred_at, accepted=recorded.accepted, rejection_reason=recorded.rejection_reason,
    ))
    if event.type in LID_EVENTS and location is not None:
        session.add(LidCycleEvent(
            robot_id=event.robot_id, sequence=await _next_sequence(session, LidCycleEvent, event.robot_id),
            event=LID_EVENTS[event.type], attempt_id=recorded.attempt_id, latitude=location.latitude,
            longitude=location.longitude, occurred_at=event.occurred_at, accepted=recorded.accepted,
            rejection_reason=recorded.rejection_reason,
        ))
    if location is not None:
        await record_sighting(session, event.robot_id, location.latitude, location.longitude, event.occurred_at)
    return True


async def record_sighting(session: AsyncSession, robot_id: str, latitude: float | None, longitude: float | None,
                          seen_at: datetime | None = None) -> None:
    """Upsert the robot's connectivity: it is online, here, now."""
    seen_at = seen_at or datetime.now(UTC)
    values = {"robot_id": robot_id, "status": ConnectivityStatus.ONLINE.value, "last_seen_at": seen_at,
              "latitude": latitude, "longitude": longitude, "updated_at": datetime.now(UTC)}
    statement = insert(Connectivity).values(**values)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[Connectivity.robot_id],
        set_={key: statement.excluded[key] for key in values if key != "robot_id"},
        where=Connectivity.last_seen_at <= statement.excluded.last_seen_at,
    ))


# One statement for a whole batch of sightings, the same text whatever its size (compiled once, prepared once).
SIGHTINGS = text("""
    INSERT INTO connectivity (robot_id, status, last_seen_at, latitude, longitude, updated_at)
    SELECT robot_id, :online, seen_at, latitude, longitude, now()
    FROM unnest(CAST(:robot_ids AS varchar[]), CAST(:seen_at AS timestamptz[]), CAST(:latitudes AS float8[]),
                CAST(:longitudes AS float8[])) AS sighting(robot_id, seen_at, latitude, longitude)
    ON CONFLICT (robot_id) DO UPDATE SET status = excluded.status, last_seen_at = excluded.last_seen_at,
        latitude = excluded.latitude, longitude = excluded.longitude, updated_at = excluded.updated_at
    WHERE connectivity.last_seen_at <= excluded.last_seen_at
""")


async def record_sightings(session: AsyncSession, sightings: list[tuple[str, float, float, datetime]]) -> None:
    """Upsert the connectivity of many robots in one statement: (robot id, latitude, longitude, seen at), at most
    one per robot; a sighting older than the one recorded changes nothing."""
    if not sightings:
        return
    robot_ids, latitudes, longitudes, seen_at = (list(column) for column in zip(*sightings))
    await session.execute(SIGHTINGS, {"online": ConnectivityStatus.ONLINE.value, "robot_ids": robot_ids,
                                      "seen_at": seen_at, "latitudes": latitudes, "longitudes": longitudes})


async def lid_open(session: AsyncSession, attempt_id) -> bool:
    """Whether the attempt's last accepted lid event opened the lid."""
    last = await session.scalar(
        select(LidCycleEvent.event).where(LidCycleEvent.attempt_id == attempt_id, LidCycleEvent.accepted.is_(True))
        .order_by(LidCycleEvent.occurred_at.desc(), LidCycleEvent.sequence.desc()).limit(1)
    )
    return last == LidEvent.OPENED


async def back_at_store(session: AsyncSession, attempt_id) -> bool:
    """Whether the robot of a return said it arrived back at the store (an accepted `arrived_at_store`)."""
    arrived = await session.scalar(select(StateHistory.id).where(
        StateHistory.attempt_id == attempt_id, StateHistory.event_type == "arrived_at_store",
        StateHistory.accepted.is_(True)).limit(1))
    return arrived is not None


async def lid_cycles(session: AsyncSession, attempt_ids: list) -> list[LidCycleEvent]:
    """The accepted lid events of some attempts, in order (proof of pickup and delivery)."""
    rows = await session.scalars(
        select(LidCycleEvent).where(LidCycleEvent.attempt_id.in_(attempt_ids), LidCycleEvent.accepted.is_(True))
        .order_by(LidCycleEvent.occurred_at)
    )
    return list(rows)
