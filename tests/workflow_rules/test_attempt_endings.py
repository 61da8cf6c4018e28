"""How an attempt ends: delivered, timed out, cancelled by the partner, or cut short by the robot or its trip."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.lifecycle import DELIVERED_TRAIL
from tests.support.servers import time_skipping_server
from tests.support.workflow_stubs import (
    AT_DROPOFF,
    BACK_TO_STORE,
    LOAD,
    LOADED,
    QUICK,
    TO_DROPOFF,
    TO_PICKUP,
    Delivery,
    Refused,
    serving_workflows,
    stub_workers,
)


async def test_a_delivery_asks_each_service_in_turn_and_tells_the_partner_every_status(start, services):
    delivery = await start()
    await delivery.play(*AT_DROPOFF, *LOAD)
    result = await delivery.result()
    assert (result.status, result.attempt.number, result.callbacks.done) == ("delivered", 1, 8)
    assert [change.status for change in services.args("record_status")] == DELIVERED_TRAIL
    assert services.told_partner() == DELIVERED_TRAIL
    assert [callback.sequence for callback in services.args("send_status_callback")] == list(range(1, 9))
    assert [(update.leg, update.trip_status) for update in services.args("record_trip_progress")] == [
        ("to_pickup", "in_progress"), ("to_pickup", "completed"), ("to_dropoff", "in_progress"),
        ("to_dropoff", "completed")]
    (closure,) = services.args("close_task")
    assert (closure.robot_id, closure.outcome, closure.robot_out_of_service) == ("robot-1", "completed", False)
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("succeeded", "delivered")
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.demand_fulfilled, release.out_of_service) == ("robot-1", True, False)
    lifecycle_steps = [name for name in services.names() if name != "send_status_callback"]
    assert lifecycle_steps[-4:] == ["stop_watching", "close_task", "end_attempt", "release_robot"]


async def test_the_pickup_wait_running_out_cancels_and_releases_everything(start, services):
    delivery = await start(pickup_wait_seconds=0.3)
    await delivery.play(*TO_PICKUP)
    result = await delivery.result()
    assert (result.status, result.reason) == ("cancelled", "pickup_timeout")
    (closure,) = services.args("close_task")
    assert closure.outcome == "cancelled"
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("cancelled", "pickup_timeout")
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.demand_fulfilled) == ("robot-1", False)
    assert services.told_partner()[-2:] == ["at_pickup", "cancelled"]


async def test_a_customer_no_show_brings_the_order_back_as_a_return_attempt(start, services):
    delivery = await start(customer_no_show_seconds=0.3)
    await delivery.play(*AT_DROPOFF)
    view = await delivery.reached("returning")
    assert (view.attempt.number, view.attempt.kind, view.robot_id, view.reason) == (
        2, "return", "robot-1", "customer_no_show")
    (new_attempt,) = services.args("start_attempt")
    assert (new_attempt.kind, new_attempt.number, new_attempt.previous_outcome) == ("return", 2, "customer_no_show")
    assert services.args("plan_demand")[-1].preferred_robot_id == "robot-1"
    assert services.args("assign_task")[-1].first_leg == "to_store"
    assert services.args("release_robot") == []  # the robot keeps the order for the way back
    await delivery.play(*BACK_TO_STORE)
    result = await delivery.result()
    assert (result.status, result.reason) == ("returned", "customer_no_show")
    assert [(o.status, o.reason) for o in services.args("end_attempt")] == [
        ("failed", "customer_no_show"), ("succeeded", "returned")]
    assert services.told_partner() == [*DELIVERED_TRAIL[:-1], "returning", "returned"]


async def test_a_return_records_its_trip_to_the_store_in_operations(start, services):
    delivery = await start(customer_no_show_seconds=0.3)
    await delivery.play(*AT_DROPOFF)
    await delivery.reached("returning")
    await delivery.play(*BACK_TO_STORE)
    assert (await delivery.result()).status == "returned"
    assert [(update.leg, update.trip_status) for update in services.args("record_trip_progress")][-2:] == [
        ("to_store", "in_progress"), ("to_store", "completed")]


@pytest.mark.parametrize("events", [(), TO_PICKUP[:1], TO_PICKUP], ids=["robot_assigned", "en_route", "at_pickup"])
async def test_a_partner_cancel_before_loading_releases_the_robot_unfulfilled(start, services, events):
    delivery = await start()
    await delivery.play(*events)
    receipt = await delivery.cancel("store_closed")
    assert receipt.status == "cancelled"
    (closure,) = services.args("close_task")
    assert closure.outcome == "cancelled"
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("cancelled", "store_closed")
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.demand_fulfilled, release.out_of_service) == ("robot-1", False, False)
    result = await delivery.result()
    assert (result.status, result.reason) == ("cancelled", "store_closed")
    assert services.told_partner()[-1] == "cancelled"


async def test_a_partner_cancel_after_loading_brings_the_order_back(start, services):
    delivery = await start()
    await delivery.play(*LOADED, *TO_DROPOFF[:1])
    assert (await delivery.cancel("customer_moved")).status == "returning"
    with pytest.raises(Refused) as refused:
        await delivery.cancel("again")
    assert (refused.value.kind, refused.value.message) == (
        "noncancelable_delivery", "the delivery is returning and can no longer be cancelled")
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("failed", "cancelled:customer_moved")
    await delivery.play(*BACK_TO_STORE)
    result = await delivery.result()
    assert (result.status, result.attempt.kind) == ("returned", "return")
    assert services.told_partner()[-3:] == ["en_route_to_dropoff", "returning", "returned"]


async def test_a_robot_fault_opens_a_field_task_and_another_robot_takes_over(start, services):
    delivery = await start()
    await delivery.play(*TO_PICKUP)
    assert (await delivery.robot("fault")).status == "at_pickup"
    view = await delivery.reached("robot_assigned", attempt=2)
    assert (view.robot_id, view.reason) == ("robot-2", "robot_replaced")
    (field_task,) = services.args("open_field_task")
    assert (field_task.robot_id, field_task.kind, field_task.reason) == ("robot-1", "inspection",
                                                                         "robot reported a fault")
    (closure,) = services.args("close_task")
    assert (closure.robot_id, closure.outcome, closure.robot_out_of_service) == ("robot-1", "failed", True)
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("failed", "robot_fault: robot reported a fault")
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.out_of_service) == ("robot-1", True)
    assert services.args("plan_demand")[-1].exclude_robot_ids == ["robot-1"]
    await delivery.play(*AT_DROPOFF, *LOAD)
    assert (await delivery.result()).status == "delivered"


@pytest.mark.parametrize("finding", ["stuck", "lost"])
async def test_a_stuck_or_lost_robot_is_replaced(start, services, finding):
    delivery = await start()
    await delivery.play(*TO_PICKUP[:1])
    await delivery.reached("en_route_to_pickup")
    services.report(finding, "no progress")
    assert (await delivery.reached("robot_assigned", attempt=2)).robot_id == "robot-2"
    (field_task,) = services.args("open_field_task")
    assert (field_task.robot_id, field_task.kind, field_task.reason) == ("robot-1", "rescue",
                                                                         f"{finding}: no progress")
    (outcome,) = services.args("end_attempt")
    assert outcome.reason == f"robot_fault: {finding}: no progress"
    await delivery.until(lambda view: view.callbacks.done == 4)
    assert services.told_partner() == ["created", "robot_assigned", "en_route_to_pickup", "robot_assigned"]


async def test_a_late_robot_tells_the_partner_its_new_dropoff_eta(start, services):
    delivery = await start()
    await delivery.play(*TO_PICKUP[:1])
    await delivery.reached("en_route_to_pickup")
    later = datetime.now(UTC) + timedelta(hours=1)
    services.report("late", "20 min behind", dropoff_eta=later)
    assert (await delivery.until(lambda view: view.dropoff_eta == later)).attempt.number == 1
    await delivery.until(lambda view: view.callbacks.done == 4)
    late = services.args("send_status_callback")[-1]
    assert (late.kind, late.status, late.dropoff_eta, late.reason) == (
        "eta_updated", "en_route_to_pickup", later, "20 min behind")
    await services.called("watch_trip", 2)
    assert services.args("watch_trip")[-1].promised_dropoff_eta == later
    await delivery.play(*TO_PICKUP[1:], *LOAD, *TO_DROPOFF, *LOAD)
    assert (await delivery.result()).status == "delivered"
    assert {callback.dropoff_eta for callback in services.args("send_status_callback")[4:]} == {later}


async def test_news_from_the_watch_in_the_workflow_task_that_loads_the_robot_leaves_the_trip_watched(services):
    """The watch's finding and the robot's loading answered in one workflow task: the watch started for the news
    is cancelled in the activation that started it, before it was ever scheduled, and the loaded trip is still
    watched. The workflow worker is stopped while both activities answer, so one task carries both."""
    loaded = asyncio.Event()
    services.hold("record_status", lambda change: change.status == "picked_up", loaded)
    async with time_skipping_server() as env, stub_workers(env.client, services, workflows=False):
        async with serving_workflows(env.client):
            delivery = await Delivery.start(env, services, QUICK)
            await delivery.play(*LOADED)
            await delivery.until(lambda view: any(change.status == "picked_up"
                                                  for change in services.args("record_status")))
        watches = len(services.args("watch_trip"))
        services.report("late", "behind", dropoff_eta=datetime.now(UTC) + timedelta(hours=1))
        await services.answered_to("watch_trip", lambda watch: True)
        loaded.set()
        await services.answered_to("record_status", lambda change: change.status == "picked_up")
        await asyncio.sleep(0.5)  # both completions reach Temporal before a workflow worker polls again
        async with serving_workflows(env.client):
            await services.called("watch_trip", watches + 1)
            assert services.args("watch_trip")[-1].loaded
            await delivery.play(*TO_DROPOFF, *LOAD)
            assert (await delivery.result()).status == "delivered"


async def test_a_degraded_connection_is_shown_and_then_cleared_without_ending_the_attempt(start, services):
    delivery = await start()
    await delivery.play(*TO_PICKUP[:1])
    services.report("degraded", "no heartbeat for 30 s")
    await delivery.until(lambda view: view.connectivity == "degraded")
    await services.called("watch_trip", 2)  # the next watch is told the news
    assert services.args("watch_trip")[-1].connectivity == "degraded"
    services.report("connected", "heartbeats again")
    view = await delivery.until(lambda view: view.connectivity == "connected")
    assert (view.status, view.attempt.number, view.robot_id) == ("en_route_to_pickup", 1, "robot-1")
    assert services.args("open_field_task") == [] and services.args("end_attempt") == []
