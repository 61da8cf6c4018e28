"""Every failure path of the lifecycle, on the real stack, ending in consistent rows in every database."""

import asyncio
from datetime import datetime

from sqlalchemy import select
from temporalio.api.sdk.v1 import WorkflowMetadata

from core.contracts import DeliveryStatus
from core.services import Service
from services.deliveries.models import Delivery
from services.dispatch.models import Demand, Robot as PlanningRobot
from services.operations.pilots import end_shift, list_pilots
from services.operations.models import FOTask, Robot as OpsRobot, Task
from tests.support.lifecycle import assert_robot_free, attempts, create
from tests.support.platform import rows
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_for, wait_status, wait_terminal, workflow_status


async def test_no_robot_available_cancels_after_the_deadline(market):
    await market.add_pilot()
    delivery_id = await create(market)
    result = await wait_terminal(market.platform, delivery_id)
    assert (result["status"], result["reason"]) == ("cancelled", "no_robot_available")
    platform = market.platform
    (attempt,) = await attempts(platform, delivery_id)
    assert attempt.status == "cancelled"
    demand = (await rows(platform, Service.DISPATCH, select(Demand).where(Demand.attempt_id == attempt.id)))[0]
    assert demand.status == "cancelled" and demand.robot_id is None


async def current_details(platform, delivery_id) -> str:
    handle = platform.client.get_workflow_handle(f"delivery:{delivery_id}")
    return (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details


async def test_a_delivery_waits_visibly_for_a_robot_and_then_for_a_pilot(market, lifecycle_policy):
    lifecycle_policy(robot_search_seconds=60, pilot_wait_seconds=60)
    platform = market.platform
    async with platform.databases.sessions(Service.OPERATIONS).begin() as session:
        for pilot in await list_pilots(session):  # every pilot so far goes off duty: none is free
            if pilot.shift_id is not None:
                await end_shift(session, pilot.id)
    delivery_id = await create(market)

    async def waiting(what):
        view = await workflow_status(platform, delivery_id)
        return view if view["waiting_for"] == what else None

    assert (await wait_for(lambda: waiting("robot")))["status"] == "created"
    assert "waiting for a robot until" in await current_details(platform, delivery_id)
    await market.add_robot()
    await wait_for(lambda: waiting("pilot"))
    assert "waiting for a pilot until" in await current_details(platform, delivery_id)
    await market.add_pilot()
    assigned = await wait_status(platform, delivery_id, "robot_assigned")
    assert assigned["waiting_for"] is None and "waiting" not in await current_details(platform, delivery_id)
    async with market.partner_http() as partner:
        cancelled = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
    assert cancelled.status_code == 200, cancelled.text
    assert (await wait_terminal(platform, delivery_id))["status"] == "cancelled"


async def test_pickup_wait_timeout_cancels_and_releases_everything(market, lifecycle_policy):
    lifecycle_policy(pickup_wait_seconds=1.5)
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    await RobotDriver(market, robot).to_pickup(delivery_id)
    result = await wait_terminal(market.platform, delivery_id)
    assert (result["status"], result["reason"]) == ("cancelled", "pickup_timeout")
    await assert_robot_free(market.platform, robot)
    task = (await rows(market.platform, Service.OPERATIONS, select(Task).where(Task.delivery_id == delivery_id)))[0]
    assert task.status == "cancelled"


async def test_customer_no_show_returns_the_order_as_a_new_attempt(market, lifecycle_policy, receiver):
    lifecycle_policy(customer_no_show_seconds=1.5)
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await wait_status(market.platform, delivery_id, "returning")
    assignment = await driver.assignment()
    assert assignment["kind"] == "return" and assignment["robot_id"] == robot
    for event in ("departed", "arrived_at_store", "lid_opened", "lid_closed"):
        await driver.send(event)
    result = await wait_terminal(market.platform, delivery_id)
    assert result["status"] == "returned"
    first, second = await attempts(market.platform, delivery_id)
    assert (first.kind, first.status, first.end_reason) == ("delivery", "failed", "customer_no_show")
    assert (second.kind, second.status, second.robot_id) == ("return", "succeeded", robot)
    delivery = (await rows(market.platform, Service.DELIVERIES, select(Delivery).where(Delivery.id == delivery_id)))[0]
    assert delivery.latest_attempt_id == second.id and delivery.status == "returned"
    await assert_robot_free(market.platform, robot)

    async def partner_told():
        return receiver.statuses(delivery_id)[-2:] == ["returning", "returned"]

    await wait_for(partner_told)


async def test_robot_fault_opens_a_field_task_and_another_robot_takes_over(market):
    first_robot = await market.add_robot(north_m=0)
    second_robot = await market.add_robot(north_m=-1500)  # farther, so the planner picks the first one
    await market.add_pilot()
    delivery_id = await create(market)
    first = RobotDriver(market, first_robot)
    await first.to_pickup(delivery_id)
    await first.send("fault")

    async def reassigned():
        view = await market.platform.client.get_workflow_handle(f"delivery:{delivery_id}").query("status")
        return view["robot_id"] == second_robot and view["status"] == "robot_assigned"

    await wait_for(reassigned)
    second = RobotDriver(market, second_robot)
    await second.to_pickup(delivery_id)
    await second.load_and_go()
    await second.hand_over()
    assert (await wait_terminal(market.platform, delivery_id))["status"] == "delivered"

    platform = market.platform
    failed, succeeded = await attempts(platform, delivery_id)
    assert (failed.robot_id, failed.status) == (first_robot, "failed")
    assert (succeeded.robot_id, succeeded.status) == (second_robot, "succeeded")
    fo = await rows(platform, Service.OPERATIONS, select(FOTask).where(FOTask.robot_id == first_robot))
    assert len(fo) == 1 and fo[0].status == "open" and fo[0].delivery_id == delivery_id
    ops = (await rows(platform, Service.OPERATIONS, select(OpsRobot).where(OpsRobot.id == first_robot)))[0]
    assert ops.in_service is False and ops.active_task_id is None
    planning = (await rows(platform, Service.DISPATCH, select(PlanningRobot).where(PlanningRobot.id == first_robot)))
    assert planning[0].status == "maintenance"
    await assert_robot_free(platform, second_robot)


async def test_a_stuck_robot_is_replaced_and_the_partner_hears_of_the_delay(market, lifecycle_policy, receiver,
                                                                            hold_activity):
    lifecycle_policy(stuck_window_seconds=8, eta_drift_seconds=1)
    stuck_robot = await market.add_robot(north_m=0)
    rescuer = await market.add_robot(north_m=-1500)
    await market.add_pilot()
    bad_signatures = receiver.bad_signatures
    # The rescuer's assignment is held while being recorded: the rescuer reports at once, and must be heard.
    recording = hold_activity("record_status", lambda change: change.robot_id == rescuer
                              and change.status == DeliveryStatus.ROBOT_ASSIGNED)
    delivery_id = await create(market)
    driver = RobotDriver(market, stuck_robot)
    await wait_status(market.platform, delivery_id, "robot_assigned")
    await driver.send("departed")

    async def replaced():
        await driver.heartbeat(moving=True)  # it says it is driving, but it never gets anywhere
        view = await market.platform.client.get_workflow_handle(f"delivery:{delivery_id}").query("status")
        return view["robot_id"] == rescuer

    await wait_for(replaced, timeout=60)
    await asyncio.wait_for(recording.reached.wait(), timeout=30)
    second = RobotDriver(market, rescuer)
    await second.heartbeat(moving=False)  # the replacement reports in, standing, before it sets off
    await second.to_pickup(delivery_id)
    recording.released.set()
    fo = await rows(market.platform, Service.OPERATIONS, select(FOTask).where(FOTask.robot_id == stuck_robot))
    assert len(fo) == 1 and fo[0].kind == "rescue" and "stuck" in fo[0].reason
    await second.heartbeat(moving=False)  # waiting at the store is not being stuck
    await second.load_and_go()
    await second.hand_over()
    assert (await wait_terminal(market.platform, delivery_id))["status"] == "delivered"

    async def partner_told():
        mine = [c for c in receiver.received if c["data"]["delivery_id"] == str(delivery_id)]
        return mine if mine and mine[-1]["data"]["status"] == "delivered" else None

    callbacks = await wait_for(partner_told)
    kinds = [c["type"] for c in callbacks]
    assert [c["data"]["sequence"] for c in callbacks] == list(range(1, len(callbacks) + 1))
    assert receiver.bad_signatures == bad_signatures  # every one of them was signed with the partner's secret
    first_eta = kinds.index("delivery.eta_updated")
    assert first_eta < kinds.index("delivery.status_changed", first_eta) and kinds[-1] == "delivery.status_changed"
    promised = datetime.fromisoformat(callbacks[1]["data"]["dropoff_eta"])  # robot_assigned, with the plan's ETA
    assert callbacks[1]["data"]["status"] == "robot_assigned"
    assert datetime.fromisoformat(callbacks[first_eta]["data"]["dropoff_eta"]) > promised
    assert callbacks[first_eta]["data"]["robot_id"] == stuck_robot  # the delay was seen before the replacement


async def test_a_robot_silent_for_a_while_is_shown_degraded_without_ending_the_attempt(market, lifecycle_policy):
    lifecycle_policy(connectivity_degraded_seconds=1)
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.heartbeat(moving=False)

    async def connectivity(expected: str):
        view = await workflow_status(market.platform, delivery_id)
        return view if view["connectivity"] == expected else None

    degraded = await wait_for(lambda: connectivity("degraded"))
    assert (degraded["status"], degraded["attempt"]["number"], degraded["robot_id"]) == ("at_pickup", 1, robot)
    await driver.heartbeat(moving=False)
    await wait_for(lambda: connectivity("connected"))
    await driver.load_and_go()
    await driver.hand_over()
    result = await wait_terminal(market.platform, delivery_id)
    assert (result["status"], result["attempt"]["number"]) == ("delivered", 1)


async def test_partner_cancel_before_pickup_releases_robot_task_and_pilot(market):
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    await wait_status(market.platform, delivery_id, "robot_assigned")
    async with market.partner_http() as partner:
        cancelled = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
        again = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    await wait_terminal(market.platform, delivery_id)
    await assert_robot_free(market.platform, robot)


async def test_partner_cancel_after_loading_returns_the_order(market):
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.send("lid_opened")
    await driver.send("lid_closed")
    async with market.partner_http() as partner:
        response = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
        assert response.status_code == 200 and response.json()["status"] == "returning"
        refused = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "other"})
    assert refused.status_code == 409 and refused.json()["code"] == "noncancelable_delivery"
    for event in ("departed", "arrived_at_store", "lid_opened", "lid_closed"):
        await driver.send(event)
    result = await wait_terminal(market.platform, delivery_id)
    assert result["status"] == "returned"
    await assert_robot_free(market.platform, robot)


async def test_a_partner_endpoint_that_is_down_never_holds_up_the_robot(market, receiver):
    robot = await market.add_robot()
    await market.add_pilot()
    receiver.fail_next = 3  # the next callbacks answer 503; Temporal retries them with backoff
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await driver.hand_over()
    await wait_status(market.platform, delivery_id, "delivered", timeout=10)

    async def all_arrived():
        return len(receiver.statuses(delivery_id)) == 8

    await wait_for(all_arrived, timeout=30)
    sequences = [c["data"]["sequence"] for c in receiver.received if c["data"]["delivery_id"] == str(delivery_id)]
    assert sequences == sorted(sequences) == list(range(1, 9))
