"""Planning rounds against the real Dispatch database: batch rounds, proposals on busy robots, quotes."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from activities.dispatch import DispatchActivities
from core.contracts import Point, QuoteRequest, RobotChoice, RoundSchedule
from core.errors import NO_CAPACITY, NO_ROBOT_AVAILABLE
from core.geo import meters_between
from services.dispatch import rounds
from services.dispatch.eta import PICKUP_DWELL
from services.dispatch.models import MarketOutlook, Plan, Robot
from tests.support.dispatch import (
    DEGREE_METERS, DROPOFF, PICKUP, a_demand, add_robot, demand_of, fetch, plans_of, release_of,
)


def north_of_pickup(meters: float) -> Point:
    return Point(latitude=PICKUP.latitude + meters / DEGREE_METERS, longitude=PICKUP.longitude)


def a_trip(market: str, pickup_north: float, dropoff_north: float):
    """A demand whose pickup and dropoff lie `..._north` metres north of the usual pickup."""
    return a_demand(market).model_copy(update={"pickup": north_of_pickup(pickup_north),
                                               "dropoff": north_of_pickup(dropoff_north)})


async def open_demand(dispatch, request) -> None:
    """Record a demand that no robot can take yet."""
    with pytest.raises(ApplicationError) as raised:
        await dispatch.plan_demand(request)
    assert raised.value.type == NO_ROBOT_AVAILABLE
    assert raised.value.category is ApplicationErrorCategory.BENIGN  # the worker logs it without a traceback


@pytest.mark.parametrize("planner, expected", [("batch", "batch-lsa-v1"), ("greedy", "greedy-v1")])
async def test_one_round_plans_waiting_demands_together(sessions, settings, market, planner, expected):
    activities = DispatchActivities(sessions, settings.model_copy(update={"planner": planner}))
    older = a_demand(market)
    newer = a_trip(market, 1000, 1100)
    await open_demand(activities, older)
    await open_demand(activities, newer)
    # The older demand's nearest robot is the only near one for the newer demand.
    shared = await add_robot(sessions, market, 400)
    south = await add_robot(sessions, market, -700)

    outcome = await activities.replan_market(market)

    assert (outcome.committed, outcome.proposed, outcome.unplanned) == (2, 0, 0)
    first, second = await demand_of(sessions, older), await demand_of(sessions, newer)
    assert (first.robot_id, second.robot_id) == ((south, shared) if planner == "batch" else (shared, south))
    [plan] = await plans_of(sessions, first.id)
    assert (plan.planner, plan.status) == (expected, "committed")
    assert plan.cost_seconds == pytest.approx((700 if planner == "batch" else 400) / 1.4, abs=2)
    assert plan.alternatives == [{"robot_id": shared if planner == "batch" else south,
                                  "cost_seconds": pytest.approx((400 if planner == "batch" else 700) / 1.4, abs=2)}]
    assert (await activities.plan_demand(older)).robot_id == first.robot_id


async def test_concurrent_demands_in_one_market_never_share_a_robot(dispatch, sessions, market):
    robots = {await add_robot(sessions, market, 100), await add_robot(sessions, market, 600)}

    results = await asyncio.gather(*(dispatch.plan_demand(a_demand(market)) for _ in range(5)),
                                   return_exceptions=True)

    chosen = [result.robot_id for result in results if isinstance(result, RobotChoice)]
    assert sorted(chosen) == sorted(robots)
    assert all(isinstance(r, RobotChoice) or r.type == NO_ROBOT_AVAILABLE for r in results)
    async with sessions() as session:
        committed = await session.execute(
            select(Plan.robot_id, func.count()).where(Plan.robot_id.in_(robots), Plan.status == "committed")
            .group_by(Plan.robot_id))
        proposed = await session.execute(
            select(Plan.robot_id, func.count()).where(Plan.robot_id.in_(robots), Plan.status == "proposed")
            .group_by(Plan.robot_id))
    assert dict(committed.all()) == {robot: 1 for robot in robots}
    assert all(count == 1 for count in dict(proposed.all()).values())  # at most one queued per busy robot


async def test_a_proposal_on_a_busy_robot_is_committed_when_release_frees_it(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)
    first = a_demand(market)
    busy = await dispatch.plan_demand(first)
    waiting = a_demand(market)

    await open_demand(dispatch, waiting)

    demand = await demand_of(sessions, waiting)
    [proposal] = await plans_of(sessions, demand.id)
    assert (demand.status, demand.robot_id, proposal.status, proposal.robot_id) == (
        "planned", None, "proposed", robot_id)
    # The robot is free at the first dropoff, at its ETA, and walks back to the pickup from there.
    back = timedelta(seconds=meters_between(DROPOFF, PICKUP) / 1.4)
    assert proposal.pickup_eta == pytest.approx(busy.dropoff_eta + back, abs=timedelta(seconds=1))
    robot = await fetch(sessions, Robot, robot_id)
    assert (robot.available_latitude, robot.available_longitude, robot.available_at) == (
        DROPOFF.latitude, DROPOFF.longitude, busy.dropoff_eta)

    await dispatch.release_robot(release_of(first, robot_id, location=DROPOFF))

    choice = await dispatch.plan_demand(waiting)
    assert choice.robot_id == robot_id
    assert sorted(plan.status for plan in await plans_of(sessions, demand.id)) == ["committed", "superseded"]
    robot = await fetch(sessions, Robot, robot_id)
    assert (robot.status, robot.active_demand_id, robot.scheduled_pickup_id) == ("reserved", demand.id,
                                                                                  choice.plan_id)


async def test_committed_demands_are_never_moved_by_a_later_round(dispatch, sessions, market):
    far = await add_robot(sessions, market, 1500)
    request = a_demand(market)
    choice = await dispatch.plan_demand(request)
    near = await add_robot(sessions, market, 10)

    # Swapping robots would lower the total, but the first demand's robot is already on its way.
    assert (await dispatch.plan_demand(a_demand(market))).robot_id == near
    await dispatch.replan_market(market)

    assert await dispatch.plan_demand(request) == choice
    demand = await demand_of(sessions, request)
    assert (demand.status, demand.robot_id) == ("committed", far)
    assert [plan.status for plan in await plans_of(sessions, demand.id)] == ["committed"]


async def test_a_demand_its_delivery_stopped_asking_for_is_not_planned_by_rounds(sessions, settings, market):
    activities = DispatchActivities(sessions, settings.model_copy(update={"demand_hold_seconds": 0.05}))
    request = a_demand(market)
    await open_demand(activities, request)
    robot_id = await add_robot(sessions, market, 100)
    await asyncio.sleep(0.1)

    assert market not in await activities.markets_to_plan()
    assert (await activities.replan_market(market)).committed == 0
    assert (await fetch(sessions, Robot, robot_id)).status == "idle"
    # Asking again puts it back in the rounds.
    assert (await activities.plan_demand(request)).robot_id == robot_id


async def test_the_quote_is_the_pickup_the_plan_then_commits(dispatch, sessions, market):
    await add_robot(sessions, market, 800)
    near = await add_robot(sessions, market, 250)
    quote = await dispatch.estimate_quote(QuoteRequest(market=market, pickup=PICKUP, dropoff=DROPOFF))

    choice = await dispatch.plan_demand(a_demand(market))

    assert (quote.robot_id, quote.planner) == (near, "ready-cost-v1") and choice.robot_id == near
    assert abs(choice.pickup_eta - quote.pickup_eta) < timedelta(seconds=2)
    assert abs(choice.dropoff_eta - quote.dropoff_eta) < timedelta(seconds=2)
    assert quote.distance_meters == pytest.approx(meters_between(PICKUP, DROPOFF), abs=0.1)


async def test_a_quote_waits_behind_the_busy_robots_current_and_queued_work(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)
    await dispatch.plan_demand(a_demand(market))
    queued = a_demand(market)
    await open_demand(dispatch, queued)
    [proposal] = await plans_of(sessions, (await demand_of(sessions, queued)).id)

    quote = await dispatch.estimate_quote(QuoteRequest(market=market, pickup=PICKUP, dropoff=DROPOFF))

    back = timedelta(seconds=meters_between(DROPOFF, PICKUP) / 1.4)
    assert quote.robot_id == robot_id
    assert quote.pickup_eta == pytest.approx(proposal.dropoff_eta + back, abs=timedelta(seconds=1))
    assert quote.dropoff_eta - quote.pickup_eta == pytest.approx(PICKUP_DWELL + back, abs=timedelta(seconds=1))


async def test_no_robot_in_the_market_can_take_the_trip_is_no_capacity(dispatch, sessions, market):
    await add_robot(sessions, market, 100, battery=0.2)

    with pytest.raises(ApplicationError) as raised:
        await dispatch.estimate_quote(QuoteRequest(market=market, pickup=PICKUP, dropoff=DROPOFF))

    assert (raised.value.type, raised.value.non_retryable) == (NO_CAPACITY, True)


@pytest.fixture
def promise(dispatch):
    """Set how far out a quote may promise a pickup, for one test."""
    original = dispatch.settings

    def use(seconds: float) -> None:
        dispatch.settings = original.model_copy(update={"quote_max_pickup_seconds": seconds})

    yield use
    dispatch.settings = original


async def test_a_quote_counts_the_demands_already_waiting_and_refuses_beyond_the_promise(dispatch, sessions, market,
                                                                                        promise):
    promise(6 * 3600)
    await add_robot(sessions, market, 100)
    alone = await dispatch.estimate_quote(QuoteRequest(market=market, pickup=PICKUP, dropoff=DROPOFF))
    await dispatch.plan_demand(a_demand(market))  # the robot takes it
    for _ in range(2):
        await open_demand(dispatch, a_demand(market))  # then two more wait: one proposed, one in the backlog

    behind = await dispatch.estimate_quote(QuoteRequest(market=market, pickup=PICKUP, dropoff=DROPOFF))
    trip = alone.dropoff_eta - alone.pickup_eta + timedelta(seconds=meters_between(DROPOFF, PICKUP) / 1.4)
    # Three trips ahead of it: the current one, the proposal, and the waiting demand.
    assert behind.pickup_eta - alone.pickup_eta == pytest.approx(3 * trip, abs=timedelta(seconds=5))

    promise(60)
    with pytest.raises(ApplicationError) as refused:
        await dispatch.estimate_quote(QuoteRequest(market=market, pickup=PICKUP, dropoff=DROPOFF))
    assert refused.value.type == NO_CAPACITY and "at capacity" in refused.value.message


async def test_the_ready_planner_holds_a_free_robot_until_the_order_is_nearly_ready(sessions, settings, market):
    from datetime import UTC, datetime

    from services.dispatch.planner import EARLY_TOLERANCE_SECONDS

    activities = DispatchActivities(sessions, settings.model_copy(update={"planner": "ready"}))
    robot = await add_robot(sessions, market, 140)  # 100 s from the pickup
    later = a_demand(market, ready_at=datetime.now(UTC) + timedelta(minutes=20))

    with pytest.raises(ApplicationError) as raised:
        await activities.plan_demand(later)

    assert raised.value.type == NO_ROBOT_AVAILABLE
    assert raised.value.details[0] == {"planned": True, "ready_at": later.ready_at.isoformat().replace("+00:00", "Z")}
    demand = await demand_of(sessions, later)
    [plan] = await plans_of(sessions, demand.id)
    assert (demand.status, plan.status, plan.robot_id, plan.planner) == ("planned", "proposed", robot, "ready-cost-v1")
    assert plan.pickup_eta == later.ready_at  # it would be collected when ready, not when the robot arrives
    assert (await fetch(sessions, Robot, robot)).status == "idle"  # not reserved: a later round may send it

    soon = a_demand(market, ready_at=datetime.now(UTC) + timedelta(seconds=100 + EARLY_TOLERANCE_SECONDS / 2))
    choice = await activities.plan_demand(soon)  # ready about when the robot gets there: committed now
    assert choice.robot_id == robot
    await activities.replan_market(market)  # the later order now queues behind that trip
    demand = await demand_of(sessions, later)
    [_, plan] = sorted(await plans_of(sessions, demand.id), key=lambda plan: plan.created_at)
    assert (demand.status, plan.status, plan.robot_id) == ("planned", "proposed", robot)


async def test_without_a_ready_time_the_order_is_ready_a_preparation_after_it_was_placed(sessions, settings, market):
    activities = DispatchActivities(sessions, settings.model_copy(update={"planner": "ready",
                                                                           "preparation_seconds": 900}))
    await add_robot(sessions, market, 140)
    request = a_demand(market)
    with pytest.raises(ApplicationError) as raised:
        await activities.plan_demand(request)
    demand = await demand_of(sessions, request)
    assert (demand.ready_at - demand.created_at).total_seconds() == 900
    assert raised.value.details[0]["planned"] is True

    again = a_demand(market, delivery_id=request.attempt.delivery_id, number=2)  # its first robot broke down
    assert (await activities.plan_demand(again)).robot_id
    assert (await demand_of(sessions, again)).ready_at == (await demand_of(sessions, again)).created_at


async def test_no_robot_at_all_says_no_robot_is_planned(dispatch, sessions, market):
    request = a_demand(market)
    with pytest.raises(ApplicationError) as raised:
        await dispatch.plan_demand(request)
    assert raised.value.details[0]["planned"] is False


async def test_every_round_writes_when_the_soonest_robot_is_free_for_a_new_order(dispatch, sessions, market):
    first = a_demand(market)
    await open_demand(dispatch, first)
    outlook = await fetch(sessions, MarketOutlook, market)
    assert (outlook.robots, outlook.free_at) == (0, None)  # no robot at all

    await add_robot(sessions, market, 0)
    await dispatch.replan_market(market)  # the robot takes the waiting demand
    await open_demand(dispatch, a_demand(market))  # and another waits behind it
    [taken] = await plans_of(sessions, (await demand_of(sessions, first)).id)
    quote = await dispatch.estimate_quote(QuoteRequest(market=market, pickup=PICKUP, dropoff=DROPOFF))
    outlook = await fetch(sessions, MarketOutlook, market)
    # Free after its trip and the demand waiting behind it: as a quote sees the fleet, less the way to the store.
    assert outlook.robots == 1 and outlook.free_at > taken.dropoff_eta
    way_back = timedelta(seconds=meters_between(DROPOFF, PICKUP) / 1.4)  # from its last dropoff to the store
    assert quote.pickup_eta - outlook.free_at == pytest.approx(way_back, abs=timedelta(seconds=5))


def test_the_fleet_view_is_each_robots_availability():
    """The whole fleet's arrays, computed at once, say what `availability` says of each robot."""
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    robots = [SimpleNamespace(active_demand_id=demand, available_at=now + timedelta(seconds=offset),
                              available_latitude=37.77 + i / 1000, available_longitude=-122.41 - i / 1000,
                              available_battery=0.9 - i / 10)
              for i, (demand, offset) in enumerate([(None, -30), (None, 45), (uuid.uuid4(), 60), (uuid.uuid4(), -90)])]

    fleet = rounds.fleet_view(robots, now)

    free = [rounds.availability(robot, now) for robot in robots]
    assert fleet.free_in.tolist() == pytest.approx([(f.at - now).total_seconds() for f in free])
    assert fleet.free_in.tolist() == pytest.approx([0, 45, 60, 90])  # a busy robot late by 90 s: as late again
    assert fleet.positions.tolist() == [[f.point.latitude, f.point.longitude] for f in free]
    assert fleet.battery.tolist() == [f.battery for f in free]
    assert len(rounds.fleet_view([], now)) == 0


async def test_the_periodic_rounds_run_in_one_activity_that_heartbeats_its_totals(dispatch, sessions, market):
    """A robot that joins the fleet is committed to a waiting demand by the next tick; every round heartbeats."""
    request = a_demand(market)
    await open_demand(dispatch, request)
    robot_id = await add_robot(sessions, market, 100)
    environment, heartbeats = ActivityEnvironment(), []
    environment.on_heartbeat = lambda *details: heartbeats.append(details[0].model_copy())

    done = await environment.run(dispatch.run_planning_rounds, RoundSchedule(interval_seconds=0.05, run_seconds=0.5))

    assert done.ticks >= 1 and done.rounds >= 1 and done.committed >= 1 and done.failed == 0
    assert len(heartbeats) == done.rounds + done.ticks and heartbeats[-1] == done  # after each round and tick
    assert (await demand_of(sessions, request)).robot_id == robot_id
    assert (await dispatch.plan_demand(request)).robot_id == robot_id
