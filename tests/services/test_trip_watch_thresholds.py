"""A trip watch sleeps until its next threshold instead of polling: `next_assessment_at` must name the first
moment `assess` has news when no heartbeat comes, never later (news missed) and never much earlier (wasted
looks)."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

from core.contracts import Connectivity, LifecyclePolicy, Point, TripWatch
from services.trip_monitor.models import MonitoredTrip, MonitoredTripStatus
from services.trip_monitor.repository import assess, next_assessment_at

SPEED = 1.4
PICKUP = Point(latitude=34.08, longitude=-118.37)
DROPOFF = Point(latitude=34.09, longitude=-118.36)
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@st.composite
def trips(draw):
    degraded = draw(st.floats(5, 3600))
    policy = LifecyclePolicy(connectivity_degraded_seconds=degraded,
                             connectivity_lost_seconds=degraded + draw(st.floats(1, 3600)),
                             stuck_window_seconds=draw(st.floats(5, 3600)),
                             eta_drift_seconds=draw(st.floats(0, 600)))
    started = NOW - timedelta(seconds=draw(st.floats(0, 7200)))
    since_start = st.floats(0, 1).map(lambda share: started + (NOW - started) * share)
    where = draw(st.none() | st.tuples(st.floats(34.07, 34.10), st.floats(-118.38, -118.35)))
    trip = MonitoredTrip(
        attempt_id=uuid4(), delivery_id=uuid4(), robot_id="r-1", status=MonitoredTripStatus.WATCHING.value,
        started_at=started, moving=draw(st.booleans()), last_heartbeat_at=draw(st.none() | since_start),
        last_progress_at=draw(st.none() | since_start),
        last_latitude=where and where[0], last_longitude=where and where[1])
    pickup_eta = NOW + timedelta(seconds=draw(st.floats(-300, 1800)))
    dropoff_eta = pickup_eta + timedelta(seconds=draw(st.floats(60, 1800)))
    watch = TripWatch(
        attempt_id=trip.attempt_id, delivery_id=trip.delivery_id, robot_id="r-1", policy=policy,
        connectivity=draw(st.sampled_from([Connectivity.CONNECTED, Connectivity.DEGRADED])),
        loaded=draw(st.booleans()), pickup=PICKUP, dropoff=draw(st.none() | st.just(DROPOFF)),
        pickup_eta=pickup_eta, dropoff_eta=dropoff_eta,
        promised_dropoff_eta=dropoff_eta + timedelta(seconds=draw(st.floats(-60, 900))))
    return trip, watch


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(trips())
def test_the_next_threshold_is_the_first_moment_with_news(case):
    trip, watch = case
    now = NOW
    assume(assess(trip, watch, SPEED, now) is None)  # with news already, the watch reports it and does not sleep
    again = next_assessment_at(trip, watch, SPEED, now)
    assert again is not None and again >= now
    # Nothing to find until the threshold (a look just before it finds nothing) ...
    if again - timedelta(milliseconds=10) > now:
        assert assess(trip, watch, SPEED, again - timedelta(milliseconds=10)) is None
    # ... and news right after it.
    news = assess(trip, watch, SPEED, again + timedelta(milliseconds=10))
    assert news is not None
    event(news.kind)
