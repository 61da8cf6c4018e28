"""Dispatch activities against the real Dispatch database: planning, robot locking, release and transfer."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from core.contracts import Point, RobotChoice
from core.errors import NO_ROBOT_AVAILABLE, ROBOT_UNAVAILABLE
from services.dispatch import repository
from core.geo import meters_between
from services.dispatch.eta import PICKUP_DWELL, estimate_trip
from services.dispatch.models import Demand, Plan, Robot
from tests.support.dispatch import (
    DEGREE_METERS, DROPOFF, PICKUP, a_demand, add_robot, demand_of, fetch, plans_of, release_of,
)


def test_distance_and_trip_estimate():
    north = Point(latitude=PICKUP.latitude + 1, longitude=PICKUP.longitude)
    assert meters_between(PICKUP, north) == pytest.approx(DEGREE_METERS, rel=1e-3)
    assert meters_between(PICKUP, PICKUP) == 0
    start = datetime(2026, 1, 1, tzinfo=UTC)
    near = Point(latitude=PICKUP.latitude + 140 / DEGREE_METERS, longitude=PICKUP.longitude)
    trip = estimate_trip(near, start, PICKUP, DROPOFF, speed_mps=1.4)
    assert (trip.pickup_eta - start).total_seconds() == pytest.approx(100, rel=1e-2)
    leg = meters_between(PICKUP, DROPOFF) / 1.4
    assert (trip.dropoff_eta - trip.pickup_eta - PICKUP_DWELL).total_seconds() == pytest.approx(leg)
    assert trip.battery_used == pytest.approx(trip.meters / 500 * 0.01)


async def test_plan_picks_the_nearest_idle_robot_and_points_it_at_the_plan(dispatch, sessions, market):
    far = await add_robot(sessions, market, 1500)
    near = await add_robot(sessions, market, 100)
    middle = await add_robot(sessions, market, 700)
    request = a_demand(market)

    choice = await dispatch.plan_demand(request)

    assert choice.robot_id == near
    demand = await demand_of(sessions, request)
    assert (choice.demand_id, demand.status, demand.robot_id) == (demand.id, "committed", near)
    [plan] = await plans_of(sessions, demand.id)
    assert (plan.id, plan.planner, plan.status, plan.robot_id) == (choice.plan_id, "ready-cost-v1", "committed", near)
    assert plan.cost_seconds == pytest.approx(100 / 1.4, abs=2)
    assert [alt["robot_id"] for alt in plan.alternatives] == [middle, far]
    assert choice.dropoff_eta > choice.pickup_eta + PICKUP_DWELL
    robot = await fetch(sessions, Robot, near)
    assert (robot.status, robot.active_demand_id, robot.scheduled_pickup_id) == ("reserved", demand.id, plan.id)
    assert robot.available_at == choice.dropoff_eta


async def test_plan_demand_is_idempotent(dispatch, sessions, market):
    await add_robot(sessions, market, 100)
    await add_robot(sessions, market, 200)
    request = a_demand(market)

    first = await dispatch.plan_demand(request)
    again = await dispatch.plan_demand(request)

    assert again == first
    async with sessions() as session:
        demands = await session.scalar(select(func.count()).select_from(Demand).where(Demand.market == market))
        plans = await session.scalar(select(func.count()).select_from(Plan).where(Plan.demand_id == first.demand_id))
    assert (demands, plans) == (1, 1)


async def test_excluded_busy_and_low_battery_robots_are_skipped(dispatch, sessions, market):
    excluded = await add_robot(sessions, market, 50)
    # Its ~760 m trip (100 m to the pickup, ~660 m on to the dropoff) uses 1.5%: it would end below 20%.
    low = await add_robot(sessions, market, 100, battery=0.21)
    busy = await add_robot(sessions, market, 150)
    await dispatch.plan_demand(a_demand(market, preferred_robot_id=busy))
    chosen = await add_robot(sessions, market, 900, battery=0.3)

    choice = await dispatch.plan_demand(a_demand(market, exclude_robot_ids=[excluded]))

    assert choice.robot_id == chosen
    assert (await fetch(sessions, Robot, low)).status == "idle"


async def test_robot_free_later_loses_to_a_farther_robot_free_now(dispatch, sessions, market):
    later = await add_robot(sessions, market, 50)
    now = await add_robot(sessions, market, 300)
    async with sessions.begin() as session:
        robot = await session.get(Robot, later)
        robot.available_at = datetime.now(UTC) + timedelta(minutes=30)

    assert (await dispatch.plan_demand(a_demand(market))).robot_id == now


async def test_no_robot_available_is_a_business_error_and_the_demand_stays_open(dispatch, sessions, market):
    await add_robot(sessions, market, 100, battery=0.1)
    request = a_demand(market)

    with pytest.raises(ApplicationError) as raised:
        await dispatch.plan_demand(request)

    assert (raised.value.type, raised.value.non_retryable) == (NO_ROBOT_AVAILABLE, True)
    demand = await demand_of(sessions, request)
    assert (demand.status, demand.robot_id) == ("open", None)
    assert await plans_of(sessions, demand.id) == []


async def test_concurrent_demands_never_share_a_robot(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)

    results = await asyncio.gather(*(dispatch.plan_demand(a_demand(market)) for _ in range(2)),
                                   return_exceptions=True)

    winners = [result for result in results if isinstance(result, RobotChoice)]
    losers = [result for result in results if isinstance(result, ApplicationError)]
    assert [winner.robot_id for winner in winners] == [robot_id]
    assert [loser.type for loser in losers] == [NO_ROBOT_AVAILABLE]


async def test_many_concurrent_demands_get_distinct_robots(dispatch, sessions, market):
    robots = {await add_robot(sessions, market, 100 * n) for n in range(1, 4)}

    results = await asyncio.gather(*(dispatch.plan_demand(a_demand(market)) for _ in range(6)),
                                   return_exceptions=True)

    chosen = [result.robot_id for result in results if isinstance(result, RobotChoice)]
    assert len(chosen) == len(set(chosen)) and set(chosen) <= robots
    assert all(isinstance(result, RobotChoice) or result.type == NO_ROBOT_AVAILABLE for result in results)


async def test_release_frees_the_robot_and_is_idempotent(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)
    request = a_demand(market)
    choice = await dispatch.plan_demand(request)
    release = release_of(request, robot_id, location=DROPOFF)

    await dispatch.release_robot(release)
    await dispatch.release_robot(release)

    robot = await fetch(sessions, Robot, robot_id)
    assert (robot.status, robot.active_demand_id, robot.scheduled_pickup_id) == ("idle", None, None)
    assert (robot.latitude, robot.longitude) == (DROPOFF.latitude, DROPOFF.longitude)
    assert robot.available_at <= datetime.now(UTC)
    assert (await demand_of(sessions, request)).status == "fulfilled"
    assert [plan.status for plan in await plans_of(sessions, choice.demand_id)] == ["released"]


async def test_release_out_of_service_then_replan_the_same_attempt(dispatch, sessions, market):
    broken = await add_robot(sessions, market, 100)
    spare = await add_robot(sessions, market, 400)
    request = a_demand(market)
    await dispatch.plan_demand(request)

    await dispatch.release_robot(release_of(request, broken, out_of_service=True))
    choice = await dispatch.plan_demand(request.model_copy(update={"exclude_robot_ids": [broken]}))

    assert (await fetch(sessions, Robot, broken)).status == "maintenance"
    assert choice.robot_id == spare
    demand = await demand_of(sessions, request)
    assert (demand.status, demand.robot_id) == ("committed", spare)
    assert sorted(plan.status for plan in await plans_of(sessions, demand.id)) == ["committed", "released"]


async def test_release_of_an_unplanned_demand_cancels_it(dispatch, sessions, market):
    request = a_demand(market)
    with pytest.raises(ApplicationError):
        await dispatch.plan_demand(request)

    await dispatch.release_robot(release_of(request, "no-such-robot"))

    assert (await demand_of(sessions, request)).status == "cancelled"


async def test_preferred_robot_carries_the_order_back_on_a_return(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)
    await add_robot(sessions, market, 10)
    delivery_id = uuid.uuid4()
    outbound = a_demand(market, delivery_id)
    await dispatch.plan_demand(outbound.model_copy(update={"preferred_robot_id": robot_id}))
    back = a_demand(market, delivery_id, number=2, kind="return", preferred_robot_id=robot_id)

    choice = await dispatch.plan_demand(back)
    assert await dispatch.plan_demand(back) == choice

    old = await demand_of(sessions, outbound)
    assert choice.robot_id == robot_id
    assert old.status == "fulfilled"
    assert [plan.status for plan in await plans_of(sessions, old.id)] == ["released"]
    robot = await fetch(sessions, Robot, robot_id)
    assert (robot.active_demand_id, robot.scheduled_pickup_id) == (choice.demand_id, choice.plan_id)

    # Releasing the outbound attempt late must not free the robot from the return trip.
    await dispatch.release_robot(release_of(outbound, robot_id))
    assert (await fetch(sessions, Robot, robot_id)).active_demand_id == choice.demand_id
    await dispatch.release_robot(release_of(back, robot_id))
    assert (await fetch(sessions, Robot, robot_id)).status == "idle"


async def test_preferred_robot_serving_another_delivery_is_refused(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)
    await dispatch.plan_demand(a_demand(market))

    with pytest.raises(ApplicationError) as raised:
        await dispatch.plan_demand(a_demand(market, preferred_robot_id=robot_id))

    assert raised.value.type == ROBOT_UNAVAILABLE


async def test_register_robot_updates_position_but_keeps_its_assignment(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)
    choice = await dispatch.plan_demand(a_demand(market))
    async with sessions.begin() as session:
        await repository.register_robot(session, robot_id, market, DROPOFF.latitude, DROPOFF.longitude, 0.5)

    async with sessions() as session:
        [robot] = await repository.list_robots(session, market)
        everywhere = await repository.list_robots(session)
    assert (robot.latitude, robot.battery, robot.status, robot.active_demand_id) == (
        DROPOFF.latitude, 0.5, "reserved", choice.demand_id)
    assert robot_id in {other.id for other in everywhere}
