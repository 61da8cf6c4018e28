"""Each operator decision where it applies, and its refusal where it does not."""

import pytest

from tests.support.workflow_stubs import LOAD, LOADED, TO_DROPOFF, TO_PICKUP, Refused, outage

NOTE = "ana: {} from the rule tests"


async def refused(delivery, kind: str, **details) -> tuple[str, str]:
    with pytest.raises(Refused) as refusal:
        await delivery.decide(kind, **details)
    return refusal.value.kind, refusal.value.message


async def parked_without_a_robot(start, services):
    services.fleet.clear()
    delivery = await start(no_robot_action="park", robot_search_seconds=0.2)
    await delivery.parked("no robot available")
    services.fleet.extend(["robot-8", "robot-9"])
    return delivery


async def test_retry_and_resolve_returned_are_refused_when_nothing_is_parked(start):
    delivery = await start()
    await delivery.reached("robot_assigned")
    for kind in ("retry", "resolve_returned"):
        assert await refused(delivery, kind) == ("not_parked", "the delivery is not waiting for an operator")


async def test_a_retry_while_no_robot_is_found_searches_again(start, services):
    delivery = await parked_without_a_robot(start, services)
    await delivery.decide("retry")
    view = await delivery.reached("robot_assigned")
    assert (view.robot_id, view.attempt.number, view.attention) == ("robot-8", 1, None)
    assert [(action.action, action.attention) for action in view.operator_actions] == [("retry", "no robot available")]


@pytest.mark.parametrize("robot", [None, "robot-9"], ids=["dispatch-chooses", "named-robot"])
async def test_a_redispatch_while_no_robot_is_found_plans_with_the_named_robot_if_any(start, services, robot):
    delivery = await parked_without_a_robot(start, services)
    await delivery.decide("redispatch", robot_id=robot)
    view = await delivery.reached("robot_assigned")
    assert view.robot_id == (robot or "robot-8")
    assert services.args("plan_demand")[-1].preferred_robot_id == robot


async def test_a_cancel_while_parked_is_the_operators_and_cancels(start, services):
    delivery = await parked_without_a_robot(start, services)
    assert (await delivery.decide("cancel", reason="no_capacity")).status == "cancelled"
    result = await delivery.result()
    assert (result.status, result.reason) == ("cancelled", "no_capacity")
    (action,) = result.operator_actions
    assert (action.action, action.operator, action.attention) == ("cancel", "ana", "no robot available")
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("cancelled", "no_capacity (ana: cancelled while parked)")
    assert services.told_partner() == ["created", "cancelled"]


@pytest.mark.parametrize("robot", [None, "robot-3"], ids=["dispatch-chooses", "named-robot"])
async def test_a_redispatch_before_pickup_ends_the_attempt_and_starts_another(start, services, robot):
    delivery = await start()
    await delivery.play(*TO_PICKUP[:1])
    assert await delivery.decide("redispatch", robot_id=robot) == "redispatch accepted from ana"
    view = await delivery.reached("robot_assigned", attempt=2)
    assert view.robot_id == (robot or "robot-1")
    assert services.args("plan_demand")[-1].preferred_robot_id == robot
    (closure,) = services.args("close_task")
    assert (closure.robot_id, closure.outcome) == ("robot-1", "failed")
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("failed", f"redispatched by {NOTE.format('redispatch')}")
    (new_attempt,) = services.args("start_attempt")
    assert (new_attempt.kind, new_attempt.previous_outcome) == ("delivery", "redispatched")


async def test_a_redispatch_is_refused_once_the_order_is_loaded(start):
    delivery = await start()
    await delivery.play(*LOADED)
    assert await refused(delivery, "redispatch", robot_id="robot-3") == (
        "invalid_operator_action", "cannot redispatch a delivery that is picked_up")


async def test_resolve_delivered_is_refused_before_loading_and_closes_a_loaded_delivery(start, services):
    delivery = await start()
    await delivery.play(*TO_PICKUP)
    assert await refused(delivery, "resolve_delivered") == (
        "invalid_operator_action", "cannot resolve as delivered a delivery that is at_pickup")
    await delivery.play(*LOAD, "departed")
    await delivery.decide("resolve_delivered")
    result = await delivery.result()
    assert (result.status, result.reason) == (
        "delivered", f"handed over by hand ({NOTE.format('resolve_delivered')})")
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.demand_fulfilled) == ("robot-1", True)


async def test_resolve_delivered_answers_a_step_that_keeps_failing(start, services):
    services.fail("record_trip_progress", outage(), times=None)
    delivery = await start()
    await delivery.play(*TO_PICKUP[:1])
    await delivery.parked("record_trip_progress failed")
    assert await refused(delivery, "resolve_returned") == (
        "invalid_operator_action",
        "resolve_returned does not apply here; choose one of retry, redispatch, cancel, resolve_delivered")
    await delivery.decide("resolve_delivered")
    assert (await delivery.result()).status == "delivered"


async def test_a_step_failing_before_the_delivery_exists_takes_only_a_retry(start, services):
    services.fail("create_delivery", outage(), times=2)
    delivery = await start()
    await delivery.parked("create_delivery failed: database unreachable")
    for kind in ("redispatch", "resolve_delivered"):
        assert await refused(delivery, kind) == (
            "invalid_operator_action", f"{kind} does not apply here; choose one of retry")
    await delivery.decide("retry")
    assert (await delivery.reached("robot_assigned")).attempt.number == 1


async def test_a_partner_cancel_while_parked_after_loading_still_brings_the_order_back(start, services):
    delivery = await start()
    await delivery.play(*LOADED)
    await delivery.reached("picked_up")
    services.fail("record_trip_progress", outage(), times=None)
    await delivery.robot("departed")
    await delivery.parked("record_trip_progress failed")
    assert (await delivery.cancel("customer_moved")).status == "returning"


async def test_a_step_failing_on_the_way_back_takes_a_retry_or_a_return_by_hand(start, services):
    delivery = await start(customer_no_show_seconds=0.3)
    await delivery.play(*LOADED, *TO_DROPOFF)
    await delivery.reached("returning")
    services.fail("record_trip_progress", outage(), times=None)
    await delivery.robot("departed")
    await delivery.parked("record_trip_progress failed")
    for kind in ("redispatch", "resolve_delivered"):
        assert await refused(delivery, kind) == (
            "invalid_operator_action", f"{kind} does not apply here; choose one of retry, resolve_returned")
    await delivery.decide("resolve_returned")
    result = await delivery.result()
    assert (result.status, result.attempt.kind) == ("returned", "return")
    assert result.reason.startswith("taken back by hand")
