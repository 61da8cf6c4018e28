"""Queries of the Trip Monitor service: one watched trip per attempt, fed by robot heartbeats."""

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.contracts import Point, TripWatch
from core.geo import meters_between
from core.notices import announce
from services.trip_monitor.models import MonitoredTrip, MonitoredTripStatus as Watch

# A robot has made progress once it is this far from where it last made progress.
PROGRESS_METERS = 20.0
# Each heartbeat fed to an open watch is announced on this channel, with the robot's id, once committed.
HEARTBEATS_CHANNEL = "trip_monitor_heartbeats"
OPEN = (Watch.WATCHING.value, Watch.DEGRADED.value)
# The watch's status after each finding; lateness leaves it as it is.
RECORDED = {"lost": Watch.LOST.value, "stuck": Watch.STUCK.value, "degraded": Watch.DEGRADED.value,
            "connected": Watch.WATCHING.value}


class Finding(NamedTuple):
    """One thing trip monitoring found: its kind, why, and for lateness the new dropoff ETA."""

    kind: str
    detail: str
    dropoff_eta: datetime | None = None


class Checked(NamedTuple):
    """A watch's assessment: what was found, or else when to look again if no heartbeat comes first; `unrecorded`:
    the finding changes the watch's status, which a look without the row's lock did not write."""

    finding: Finding | None
    again_at: datetime | None
    unrecorded: bool = False


async def start_watch(db: AsyncSession | AsyncConnection, watch: TripWatch) -> None:
    """Open the watch of an attempt's trip (once), in one statement: on a connection it commits on its own."""
    await db.execute(insert(MonitoredTrip).values(
        attempt_id=watch.attempt_id, delivery_id=watch.delivery_id, robot_id=watch.robot_id,
        status=Watch.WATCHING.value, started_at=datetime.now(UTC), moving=False, planned_dropoff_eta=watch.dropoff_eta,
    ).on_conflict_do_nothing(index_elements=[MonitoredTrip.attempt_id]))


async def finish_watch(db: AsyncSession | AsyncConnection, attempt_id) -> None:
    """Close the watch of an attempt's trip, in one statement: on a connection it commits on its own."""
    await db.execute(
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
    if count:
        await announce(session, HEARTBEATS_CHANNEL, robot_id)
    return count


def assess(trip: MonitoredTrip, watch: TripWatch, speed_mps: float, now: datetime) -> Finding | None:
    """What the delivery does not know yet about its trip: lost or stuck, a connectivity change, or lateness."""
    policy = watch.policy
    silent = (now - (trip.last_heartbeat_at or trip.started_at)).total_seconds()
    if silent > policy.connectivity_lost_seconds:
        return Finding(Watch.LOST.value, f"no heartbeat for {silent:.0f}s")
    if trip.moving:
        still = (now - (trip.last_progress_at or trip.started_at)).total_seconds()
        if still > policy.stuck_window_seconds:
            return Finding(Watch.STUCK.value, f"under {PROGRESS_METERS:.0f} m of progress in {still:.0f}s")
    connectivity = "degraded" if silent > policy.connectivity_degraded_seconds else "connected"
    if connectivity != watch.connectivity:
        detail = f"no heartbeat for {silent:.0f}s" if connectivity == "degraded" else "heartbeats again"
        return Finding(connectivity, detail)
    eta = projected_dropoff(trip, watch, speed_mps, now)
    promised = watch.promised_dropoff_eta
    if eta is not None and promised is not None and (eta - promised).total_seconds() > policy.eta_drift_seconds:
        behind = (eta - promised).total_seconds()
        return Finding("late", f"dropoff expected {behind:.0f}s after the {promised:%H:%M:%S} promised", eta)
    return None


def next_assessment_at(trip: MonitoredTrip, watch: TripWatch, speed_mps: float, now: datetime) -> datetime | None:
    """The first moment `assess` finds news if no heartbeat changes the trip before then; None: never.

    Each finding is a threshold crossed by time alone: silence passing the degraded or lost limit, a moving
    robot's stillness passing the stuck window, or the projected dropoff (which grows with time once the robot
    stands still) passing the promise by the allowed drift.
    """
    policy = watch.policy
    silent_since = trip.last_heartbeat_at or trip.started_at
    moments = [silent_since + timedelta(seconds=policy.connectivity_lost_seconds)]
    if watch.connectivity == "connected":
        moments.append(silent_since + timedelta(seconds=policy.connectivity_degraded_seconds))
    if trip.moving:
        moments.append((trip.last_progress_at or trip.started_at) + timedelta(seconds=policy.stuck_window_seconds))
    late = late_at(trip, watch, speed_mps)
    if late is not None:
        moments.append(late)
    return max(min(moments), now)


def late_at(trip: MonitoredTrip, watch: TripWatch, speed_mps: float) -> datetime | None:
    """When `projected_dropoff` passes the promise by more than the drift, the robot staying where it last made
    progress (the projection is then `now` plus a fixed remainder); None if time alone never makes it late."""
    promised = watch.promised_dropoff_eta
    if promised is None or watch.dropoff is None or watch.dropoff_eta is None or trip.last_latitude is None:
        return None
    here = Point(latitude=trip.last_latitude, longitude=trip.last_longitude)
    limit = promised + timedelta(seconds=watch.policy.eta_drift_seconds)
    if watch.loaded:
        return limit - timedelta(seconds=meters_between(here, watch.dropoff) / speed_mps)
    if watch.pickup is None or watch.pickup_eta is None:
        return None
    to_pickup = timedelta(seconds=meters_between(here, watch.pickup) / speed_mps)
    return limit - watch.dropoff_eta + watch.pickup_eta - to_pickup


def projected_dropoff(trip: MonitoredTrip, watch: TripWatch, speed_mps: float, now: datetime) -> datetime | None:
    """When the robot will reach the dropoff at this pace: from where it last made progress, at `speed_mps`.

    Before loading, the lateness at the pickup carries over to the planned dropoff (loading time included).
    """
    if watch.dropoff is None or watch.dropoff_eta is None:
        return None
    if trip.last_latitude is None:
        return watch.dropoff_eta
    here = Point(latitude=trip.last_latitude, longitude=trip.last_longitude)
    if watch.loaded:
        return now + timedelta(seconds=meters_between(here, watch.dropoff) / speed_mps)
    at_pickup = now + timedelta(seconds=meters_between(here, watch.pickup) / speed_mps)
    return watch.dropoff_eta + max(timedelta(0), at_pickup - watch.pickup_eta)


async def check_watch(session: AsyncSession, watch: TripWatch, speed_mps: float, locked: bool = True) -> Checked:
    """Assess the watched trip, record what was found, and say when to assess it again if no heartbeat comes.

    `locked=False` only reads (no row lock, no write, so no transaction is needed): a finding that would change
    the watch's status comes back `unrecorded`, for the caller to check again locked, which records it.
    """
    trip = await session.get(MonitoredTrip, watch.attempt_id, with_for_update=locked)
    if trip is None or trip.status == Watch.FINISHED.value:
        return Checked(None, None)
    if trip.status in (Watch.LOST.value, Watch.STUCK.value):
        return Checked(Finding(trip.status, "reported before"), None)  # a retried watch reports its finding again
    now = datetime.now(UTC)
    finding = assess(trip, watch, speed_mps, now)
    if finding is not None and RECORDED.get(finding.kind, trip.status) != trip.status:
        if not locked:
            return Checked(finding, None, unrecorded=True)
        trip.status = RECORDED[finding.kind]
    return Checked(finding, None if finding else next_assessment_at(trip, watch, speed_mps, now))
