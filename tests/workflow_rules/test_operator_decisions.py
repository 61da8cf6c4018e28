"""Each operator decision where it applies, and its refusal where it does not."""

import pytest

from tests.support.workflow_stubs import LOAD, LOADED, TO_DROPOFF, TO_PICKUP, Refused, outage

# A note no reason code or status word contains; the partner must never read it.
SECRET_NOTE = "customer swore at the pilot 4f7c"
# What the partner reads back, one way or another: statuses and their reasons, attempts, callbacks.
PARTNER_READS = ("record_status", "end_attempt", "start_attempt", "send_status_callback")


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
    assert (result.status, result.reason) == ("cancelled", "operator_cancelled")  # not a code: the partner's is ours
    (action,) = result.operator_actions
    assert (action.action, action.operator, action.attention, action.reason) == (
        "cancel", "ana", "no robot available", "no_capacity")
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("cancelled", "operator_cancelled")
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
    assert (outcome.status, outcome.reason) == ("failed", "operator_redispatched")
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
    assert (result.status, result.reason) == ("delivered", "operator_delivered")
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
    assert result.reason == "operator_returned"


def carrying(services, words: str) -> list[str]:
    """The calls partners read back (see PARTNER_READS) whose input carries `words`."""
    return [name for name in PARTNER_READS for arg in services.args(name) if words in arg.model_dump_json()]


async def test_an_operators_note_and_own_words_reach_the_partner_only_as_reason_codes(start, services):
    # Redispatched with a note, then closed as delivered by hand with it.
    delivery = await start()
    await delivery.play(*TO_PICKUP[:1])
    await delivery.decide("redispatch", note=SECRET_NOTE)
    await delivery.reached("robot_assigned", attempt=2)
    await delivery.play(*LOADED, "departed")
    await delivery.decide("resolve_delivered", note=SECRET_NOTE)
    result = await delivery.result()
    assert [outcome.reason for outcome in services.args("end_attempt")] == [
        "operator_redispatched", "operator_delivered"]
    assert (result.status, result.reason) == ("delivered", "operator_delivered")
    assert [(action.action, action.note) for action in result.operator_actions] == [
        ("redispatch", SECRET_NOTE), ("resolve_delivered", SECRET_NOTE)]
    assert carrying(services, SECRET_NOTE) == []


@pytest.mark.parametrize("reason, told", [("the store manager was rude", "operator_cancelled"),
                                          ("store_closed", "store_closed")], ids=["own-words", "a-code"])
async def test_an_operators_cancel_tells_the_partner_a_reason_code_loaded_or_not(start, services, reason, told):
    waiting = await start()
    await waiting.reached("robot_assigned")
    assert (await waiting.decide("cancel", reason=reason, note=SECRET_NOTE)).status == "cancelled"
    loaded = await start()
    await loaded.play(*LOADED)
    assert (await loaded.decide("cancel", reason=reason, note=SECRET_NOTE)).status == "returning"
    assert ((await waiting.result()).reason, (await loaded.view()).reason) == (told, f"cancelled:{told}")
    for delivery in (waiting, loaded):
        (action,) = (await delivery.view()).operator_actions
        assert (action.action, action.operator, action.note, action.reason) == ("cancel", "ana", SECRET_NOTE, reason)
    assert carrying(services, SECRET_NOTE) == []
    assert told == reason or carrying(services, reason) == []  # words not a code stay with the operator
