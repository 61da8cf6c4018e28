"""Queries of the Trip Monitor service: one watched trip per attempt, fed by robot heartbeats."""

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import LifecyclePolicy, Point, TripWatch
from core.geo import meters_between
from services.trip_monitor.models import MonitoredTrip, MonitoredTripStatus as Watch

# A robot has made progress once it is this far from where it last made progress.
PROGRESS_METERS = 20.0
OPEN = (Watch.WATCHING.value, Watch.DEGRADED.value)
DEGRADED_AFTER_SECONDS = 30


async def start_watch(session: AsyncSession, watch: TripWatch) -> None:
    """Open the watch of an attempt's trip (once)."""
    await session.execute(insert(MonitoredTrip).values(
        attempt_id=watch.attempt_id, delivery_id=watch.delivery_id, robot_id=watch.robot_id,
        status=Watch.WATCHING.value, started_at=datetime.now(UTC), moving=False,
    ).on_conflict_do_nothing(index_elements=[MonitoredTrip.attempt_id]))


async def finish_watch(session: AsyncSession, attempt_id) -> None:
    await session.execute(
        update(MonitoredTrip).where(MonitoredTrip.attempt_id == attempt_id, MonitoredTrip.ended_at.is_(None))
        .values(status=Watch.FINISHED.value, ended_at=datetime.now(UTC))
    )


async def record_heartbeat(session: AsyncSession, robot_id: str, latitude: float, longitude: float,
                           moving: bool) -> int:
    """Feed a heartbeat to the robot's open watches; progress counts once it moved PROGRESS_METERS."""
    now = datetime.now(UTC)
    trips = await session.scalars(
        select(MonitoredTrip).where(MonitoredTrip.robot_id == robot_id, MonitoredTrip.status.in_(OPEN))
        .with_for_update()
    )
    count = 0
    for trip in trips:
        count += 1
        started_moving = moving and not trip.moving
        far = trip.last_latitude is None or meters_between(
            Point(latitude=trip.last_latitude, longitude=trip.last_longitude),
            Point(latitude=latitude, longitude=longitude)) >= PROGRESS_METERS
        if far or started_moving:
            trip.last_latitude, trip.last_longitude, trip.last_progress_at = latitude, longitude, now
        trip.last_heartbeat_at, trip.moving, trip.status = now, moving, Watch.WATCHING.value
    return count


def assess(trip: MonitoredTrip, policy: LifecyclePolicy, now: datetime) -> tuple[str, str] | None:
    """What is wrong with a trip, if anything: ("lost"|"stuck"|"degraded", why)."""
    silent = (now - (trip.last_heartbeat_at or trip.started_at)).total_seconds()
    if silent > policy.connectivity_lost_seconds:
        return Watch.LOST.value, f"no heartbeat for {silent:.0f}s"
    if trip.moving:
        still = (now - (trip.last_progress_at or trip.started_at)).total_seconds()
        if still > policy.stuck_window_seconds:
            return Watch.STUCK.value, f"under {PROGRESS_METERS:.0f} m of progress in {still:.0f}s"
    if silent > DEGRADED_AFTER_SECONDS:
        return Watch.DEGRADED.value, f"no heartbeat for {silent:.0f}s"
    return None


async def check_watch(session: AsyncSession, watch: TripWatch) -> tuple[str, str] | None:
    """Assess the watched trip and record what was found."""
    trip = await session.get(MonitoredTrip, watch.attempt_id, with_for_update=True)
    if trip is None or trip.status == Watch.FINISHED.value:
        return None
    if trip.status in (Watch.LOST.value, Watch.STUCK.value):
        return trip.status, "reported before"  # a retried watch reports its finding again
    finding = assess(trip, watch.policy, datetime.now(UTC))
    if finding is not None:
        trip.status = finding[0]
    return finding
