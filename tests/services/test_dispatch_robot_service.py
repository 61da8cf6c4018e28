"""Dispatch's side of field work: a robot leaves the plan (maintenance) and comes back, never while it serves."""

import pytest
from temporalio.exceptions import ApplicationError

from core.contracts import RobotRelease, RobotService
from core.errors import NO_ROBOT_AVAILABLE
from services.dispatch.models import Robot
from tests.support.dispatch import a_demand, add_robot


async def status_of(sessions, robot_id: str) -> str:
    async with sessions() as session:
        return (await session.get(Robot, robot_id)).status


async def test_a_robot_out_of_the_plan_is_never_planned_until_it_is_back(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)

    await dispatch.set_robot_service(RobotService(robot_id=robot_id, in_service=False))
    await dispatch.set_robot_service(RobotService(robot_id=robot_id, in_service=False))

    assert await status_of(sessions, robot_id) == "maintenance"
    waiting = a_demand(market)
    with pytest.raises(ApplicationError) as refused:
        await dispatch.plan_demand(waiting)
    assert refused.value.type == NO_ROBOT_AVAILABLE
    await dispatch.set_robot_service(RobotService(robot_id=robot_id, in_service=True))
    assert await status_of(sessions, robot_id) in ("idle", "reserved")
    # Asked again with nothing new, Dispatch reads what the rounds planned: the first ask's round ran after it.
    with pytest.raises(ApplicationError) as still:
        await dispatch.plan_demand(waiting)
    assert still.value.type == NO_ROBOT_AVAILABLE
    # Back in the plan, the next round gives the robot to the demand that waited for it.
    await dispatch.replan_market(market)
    assert (await dispatch.plan_demand(waiting)).robot_id == robot_id


async def test_a_robot_serving_a_demand_leaves_the_plan_only_once_released(dispatch, sessions, market):
    robot_id = await add_robot(sessions, market, 100)
    demand = a_demand(market)
    await dispatch.plan_demand(demand)

    with pytest.raises(ApplicationError) as busy:
        await dispatch.set_robot_service(RobotService(robot_id=robot_id, in_service=False))
    assert busy.value.type == "RobotStillServing" and not busy.value.non_retryable
    await dispatch.set_robot_service(RobotService(robot_id=robot_id, in_service=True))  # serving: left as it is
    assert await status_of(sessions, robot_id) == "reserved"

    await dispatch.release_robot(RobotRelease(attempt_id=demand.attempt.attempt_id, robot_id=robot_id,
                                              demand_fulfilled=True))
    await dispatch.set_robot_service(RobotService(robot_id=robot_id, in_service=False))
    assert await status_of(sessions, robot_id) == "maintenance"
