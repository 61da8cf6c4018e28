"""What the workflow answers a robot: the same receipt for a resend, a refusal for a robot it does not know."""

import pytest

from core.contracts import RobotEventKey
from tests.support.workflow_stubs import TO_PICKUP, Refused
from workflows.delivery import DeliveryWorkflow


async def test_a_resent_event_gets_its_first_receipt_and_is_applied_once(start, services):
    delivery = await start()
    await delivery.play()
    first = await delivery.robot("departed", event_id="event-a")
    await delivery.robot("arrived_at_pickup")
    again = await delivery.robot("departed", event_id="event-a")
    assert again == first and again.status == "en_route_to_pickup"
    known = RobotEventKey(robot_id="robot-1", event_id="event-a")
    assert await delivery.handle.query(DeliveryWorkflow.receipt, known) == first
    view = await delivery.reached("at_pickup")
    assert [entry.status for entry in view.trail].count("en_route_to_pickup") == 1
    assert [(update.leg, update.trip_status) for update in services.args("record_trip_progress")] == [
        ("to_pickup", "in_progress"), ("to_pickup", "completed")]


async def test_an_event_from_a_robot_not_serving_the_delivery_is_refused(start):
    delivery = await start()
    await delivery.play()
    with pytest.raises(Refused) as refused:
        await delivery.robot("departed", robot_id="robot-9")
    assert (refused.value.kind, refused.value.message) == (
        "EventRejected", "robot robot-9 is not serving this delivery")
    assert (await delivery.view()).status == "robot_assigned"


async def test_an_event_before_any_robot_is_assigned_is_refused(start, services):
    services.fleet.clear()
    delivery = await start()
    await delivery.until(lambda view: view.waiting_for == "robot")
    with pytest.raises(Refused) as refused:
        await delivery.robot("departed", robot_id="robot-1")
    assert refused.value.message == "robot robot-1 is not serving this delivery"


async def test_a_robot_that_reported_a_fault_is_heard_no_more(start):
    delivery = await start()
    await delivery.play(*TO_PICKUP)
    await delivery.robot("fault")
    with pytest.raises(Refused) as refused:
        await delivery.robot("lid_opened", robot_id="robot-1")
    # Ending (the fault, then the attempt over), or already ended (no task): refused either way.
    assert refused.value.message.startswith("attempt 1 of robot robot-1 is ending: ") or (
        refused.value.message == "robot robot-1 is not serving this delivery")
    await delivery.reached("robot_assigned", attempt=2)
    with pytest.raises(Refused) as refused:
        await delivery.robot("departed", robot_id="robot-1")
    assert refused.value.message == "robot robot-1 is not serving this delivery"


async def test_a_replacement_robot_reusing_an_event_id_gets_its_own_answer(start):
    delivery = await start()
    await delivery.play()
    first = await delivery.robot("departed", event_id="event-1")
    await delivery.robot("fault")
    view = await delivery.reached("robot_assigned", attempt=2)
    receipt = await delivery.robot("departed", robot_id="robot-2", event_id="event-1")
    assert (receipt.status, receipt.attempt_id) == ("en_route_to_pickup", view.attempt.attempt_id)
    assert receipt.attempt_id != first.attempt_id
