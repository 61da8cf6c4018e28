"""Field-operations tasks on the real stack: by hand through `deliveryctl fo`, and opened by a low battery."""

import asyncio
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import select

from cli import field_tasks
from core.services import Service
from services.dispatch.models import Robot as PlanningRobot
from services.operations.models import FOTask, FOTaskHistory, Robot as OpsRobot
from tests.support.lifecycle import create
from tests.support.platform import rows
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_for, wait_status, wait_terminal
from workflows.field_task import FieldTaskWorkflow


async def robot_states(platform, robot_id: str) -> tuple[str, bool, str]:
    """(Operations status, in service, Dispatch status) of a robot."""
    ops = (await rows(platform, Service.OPERATIONS, select(OpsRobot).where(OpsRobot.id == robot_id)))[0]
    planning = (await rows(platform, Service.DISPATCH, select(PlanningRobot).where(PlanningRobot.id == robot_id)))[0]
    return ops.status, ops.in_service, planning.status


async def fo_history(platform, fo_task_id) -> list[tuple[str, dict]]:
    steps = await rows(platform, Service.OPERATIONS, select(FOTaskHistory).where(
        FOTaskHistory.fo_task_id == fo_task_id).order_by(FOTaskHistory.sequence))
    return [(step.status, step.detail) for step in steps]


async def test_a_field_task_by_hand_keeps_its_robot_out_of_the_plan_until_done(market):
    platform = market.platform
    broken = await market.add_robot(north_m=0)
    spare = await market.add_robot(north_m=-1500)  # farther: the planner would pick `broken` if it could
    await market.add_pilot()

    opened = await field_tasks.create(platform.client, platform.databases, broken, "inspection", "wobbly wheel")
    fo_task_id = UUID(opened["fo_task_id"])

    async def out_of_the_plan():
        return await robot_states(platform, broken) == ("maintenance", False, "maintenance")

    await wait_for(out_of_the_plan)
    delivery_id = await create(market)
    assert (await wait_status(platform, delivery_id, "robot_assigned"))["robot_id"] == spare
    with pytest.raises(field_tasks.FieldTaskError, match="already has an open inspection task"):
        await field_tasks.create(platform.client, platform.databases, broken, "inspection", "again")
    with pytest.raises(field_tasks.FieldTaskError, match="cannot be marked done before someone is assigned"):
        await field_tasks.act(platform.client, platform.databases, fo_task_id, "done", "ana", None)

    assigned = await field_tasks.act(platform.client, platform.databases, fo_task_id, "assign", "ana", None, "Sam")
    assert (assigned["status"], assigned["assignee"]) == ("assigned", "Sam")
    assert await robot_states(platform, broken) == ("maintenance", False, "maintenance")
    done = await field_tasks.act(platform.client, platform.databases, fo_task_id, "done", "Sam", "wheel tightened")

    assert (done["status"], done["robot_back_in_service"]) == ("done", True)
    assert await robot_states(platform, broken) == ("idle", True, "idle")
    assert await fo_history(platform, fo_task_id) == [
        ("open", {"reason": "wobbly wheel"}), ("assigned", {"by": "ana", "assignee": "Sam"}),
        ("done", {"by": "Sam", "note": "wheel tightened"})]
    with pytest.raises(field_tasks.FieldTaskError, match="is already done"):
        await field_tasks.act(platform.client, platform.databases, fo_task_id, "cancel", "ana", None)
    listed = await field_tasks.listing(platform.databases, open_only=True)
    assert str(fo_task_id) not in {task["id"] for task in listed}
    driver = RobotDriver(market, spare)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await driver.hand_over()
    assert (await wait_terminal(platform, delivery_id))["status"] == "delivered"


async def test_a_low_battery_opens_one_battery_swap_however_often_it_is_reported(market):
    platform = market.platform
    robot_id = await market.add_robot()
    http = market.robot_http(robot_id)

    async def beat(battery: float) -> None:
        response = await http.post("/v1/robot/heartbeat", json={**market.point(), "moving": False,
                                                                 "battery": battery})
        assert response.status_code == 204, response.text

    since = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    await beat(0.9)
    await asyncio.gather(*(beat(0.12) for _ in range(5)))
    await beat(0.12)

    async def swaps():
        return await rows(platform, Service.OPERATIONS, select(FOTask).where(
            FOTask.robot_id == robot_id, FOTask.kind == "battery_swap"))

    async def out_of_the_plan():
        return await robot_states(platform, robot_id) == ("maintenance", False, "maintenance")

    async def every_opener_past_its_open_step():
        """The field tasks the heartbeats proposed for this robot, once none of them can still open one: each is
        the open swap or ended as its duplicate."""
        steps = []
        async for run in platform.client.list_workflows(
                f"WorkflowType = 'FieldTaskWorkflow' AND StartTime >= '{since}'"):
            view = await platform.client.get_workflow_handle(run.id).query(FieldTaskWorkflow.status)
            if view["robot_id"] == robot_id:
                steps.append(view["status"])
        return steps if steps and "opening" not in steps else None

    (swap,) = await wait_for(swaps)
    await wait_for(out_of_the_plan)
    await beat(0.10)
    proposed = await wait_for(every_opener_past_its_open_step)
    assert proposed.count("open") == 1 and set(proposed) <= {"open", "duplicate"}, proposed
    assert [s.id for s in await swaps()] == [swap.id] and swap.reason == "battery at 12%"

    await field_tasks.act(platform.client, platform.databases, swap.id, "assign", "ana", None, "Lee")
    await field_tasks.act(platform.client, platform.databases, swap.id, "done", "Lee", "fresh pack")
    assert await robot_states(platform, robot_id) == ("idle", True, "idle")
    await beat(0.95)
    assert len(await swaps()) == 1
    response = await http.post("/v1/robot/heartbeat", json={**market.point(), "moving": False, "battery": 1.5})
    assert response.status_code == 422
