"""Parking for an operator: a step out of retries, a partner endpoint gone, two questions at once, a lid left open."""

import asyncio

import pytest

from core.errors import PARTNER_ENDPOINT_GONE
from tests.support.lifecycle import DELIVERED_TRAIL
from tests.support.workflow_stubs import (
    AT_DROPOFF, BACK_TO_STORE, LOAD, TO_DROPOFF, TO_PICKUP, Refused, business, outage,
)

NOTE = "resolve_delivered from the rule tests"


async def test_a_step_that_keeps_failing_parks_the_delivery_until_a_retry(start, services):
    services.fail("record_trip_progress", outage(), times=None)
    delivery = await start()
    await delivery.play(*TO_PICKUP[:1])
    view = await delivery.parked()
    assert (view.status, view.attention) == ("en_route_to_pickup", "record_trip_progress failed: database unreachable")
    attributes = await delivery.search_attributes()
    assert (attributes["DeliveryStatus"], attributes["AttentionReason"]) == ("NEEDS_OPERATOR", view.attention)
    assert len(services.args("record_trip_progress")) == delivery.order.policy.step_retry_max_attempts
    services.heal("record_trip_progress")
    assert await delivery.decide("retry") == "retry accepted from ana"
    view = await delivery.reached("en_route_to_pickup")
    assert view.attention is None and view.operator_actions[0].attention == attributes["AttentionReason"]
    assert (await delivery.search_attributes())["DeliveryStatus"] == "en_route_to_pickup"


async def test_a_failure_that_passes_on_a_retry_never_reaches_an_operator(start, services):
    services.fail("assign_task", outage())
    delivery = await start()
    view = await delivery.reached("robot_assigned")
    assert (view.attention, view.operator_actions) == (None, [])
    assert len(services.args("assign_task")) == 2


async def test_a_partner_endpoint_gone_holds_the_callbacks_but_not_the_robot(start, services):
    services.fail("send_status_callback", business(PARTNER_ENDPOINT_GONE))
    delivery = await start()
    assert (await delivery.parked()).attention == "partner endpoint disabled (410 Gone)"
    await delivery.play(*AT_DROPOFF, *LOAD)
    view = await delivery.reached("delivered")
    assert (view.callbacks.queued, view.callbacks.done) == (8, 0)
    with pytest.raises(Refused) as refused:
        await delivery.decide("redispatch")
    assert (refused.value.kind, refused.value.message) == (
        "invalid_operator_action", "redispatch does not apply here; choose one of retry")
    await delivery.decide("retry")
    result = await delivery.result()
    assert (result.status, result.callbacks.done) == ("delivered", 8)
    assert services.args("enable_webhook") == [delivery.order.partner_delivery_id]
    assert services.told_partner() == ["created", *DELIVERED_TRAIL]  # the refused one, then all of them in order


async def test_a_callback_that_runs_out_of_retries_is_recorded_and_the_next_ones_go_out(start, services):
    services.fail("send_status_callback", outage(), times=2)
    delivery = await start()
    await delivery.play(*AT_DROPOFF, *LOAD)
    assert (await delivery.result()).status == "delivered"
    (failure,) = services.args("record_callback_failure")
    assert (failure.sequence, failure.error) == (1, "database unreachable")
    assert services.told_partner() == ["created", *DELIVERED_TRAIL]  # the first one twice, both refused


async def test_two_parks_at_once_are_asked_in_turn(start, services):
    services.fail("send_status_callback", business(PARTNER_ENDPOINT_GONE))
    delivery = await start()
    await delivery.parked("partner endpoint disabled")
    services.fail("record_trip_progress", outage(), times=None)
    await delivery.play(*TO_PICKUP[:1])
    await services.called("record_trip_progress", delivery.order.policy.step_retry_max_attempts)
    # The step waits behind the question already asked: the operator's retry goes to the callbacks.
    assert (await delivery.view()).attention == "partner endpoint disabled (410 Gone)"
    await delivery.decide("retry")
    await delivery.parked("record_trip_progress failed")
    services.heal("record_trip_progress")
    await delivery.decide("retry")
    await delivery.reached("en_route_to_pickup")
    await delivery.play(*TO_PICKUP[1:], *LOAD, *TO_DROPOFF, *LOAD)
    result = await delivery.result()
    assert (result.status, result.attention) == ("delivered", None)
    assert [action.attention.split(" ")[0] for action in result.operator_actions] == ["partner", "record_trip_progress"]


async def test_a_lid_left_open_at_the_dropoff_asks_an_operator_who_closes_it_as_delivered(start, services):
    delivery = await start(lid_open_seconds=0.3)
    await delivery.play(*AT_DROPOFF, "lid_opened")
    view = await delivery.parked("the lid has been open at the dropoff")
    assert (view.status, view.lid_open) == ("at_dropoff", True)
    for wrong in ("redispatch", "resolve_returned"):
        with pytest.raises(Refused) as refused:
            await delivery.decide(wrong)
        assert (refused.value.kind, refused.value.message) == (
            "invalid_operator_action", f"{wrong} does not apply here; choose one of resolve_delivered, retry")
    await delivery.decide("resolve_delivered")
    result = await delivery.result()
    assert (result.status, result.reason) == ("delivered", "operator_delivered")
    assert result.operator_actions[-1].note == NOTE
    (closure,) = services.args("close_task")
    assert closure.outcome == "completed"
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("succeeded", "operator_delivered")
    (release,) = services.args("release_robot")
    assert release.demand_fulfilled is True


async def test_the_robot_closing_the_lid_answers_the_open_lid_question_itself(start):
    delivery = await start(lid_open_seconds=0.3)
    await delivery.play(*AT_DROPOFF, "lid_opened")
    await delivery.parked("the lid has been open at the dropoff")
    assert (await delivery.robot("lid_closed")).status == "delivered"
    result = await delivery.result()
    assert (result.status, result.attention, result.operator_actions) == ("delivered", None, [])


async def test_a_retry_on_the_open_lid_question_waits_and_asks_again(start):
    delivery = await start(lid_open_seconds=0.3)
    await delivery.play(*AT_DROPOFF, "lid_opened")
    await delivery.parked("the lid has been open at the dropoff")
    await delivery.decide("retry")
    await delivery.until(lambda view: view.attention is None)
    view = await delivery.parked("the lid has been open at the dropoff")
    assert [action.action for action in view.operator_actions] == ["retry"]


async def test_a_lid_left_open_back_at_the_store_is_closed_as_returned_by_an_operator(start, services):
    delivery = await start(lid_open_seconds=0.3, customer_no_show_seconds=0.2)
    await delivery.play(*AT_DROPOFF)
    await delivery.reached("returning")
    await delivery.play(*BACK_TO_STORE[:-1])
    view = await delivery.parked("the lid has been open back at the store")
    assert (view.status, view.lid_open, view.attempt.kind) == ("returning", True, "return")
    with pytest.raises(Refused) as refused:
        await delivery.decide("resolve_delivered")
    assert refused.value.message == "resolve_delivered does not apply here; choose one of resolve_returned, retry"
    await delivery.decide("resolve_returned")
    result = await delivery.result()
    assert (result.status, result.reason) == ("returned", "operator_returned")
    assert services.told_partner()[-2:] == ["returning", "returned"]


async def test_the_open_lid_question_waits_while_the_partner_callbacks_are_parked(start, services):
    services.fail("send_status_callback", business(PARTNER_ENDPOINT_GONE))
    delivery = await start(lid_open_seconds=0.3)
    await delivery.parked("partner endpoint disabled")
    await delivery.play(*AT_DROPOFF, "lid_opened")
    await asyncio.sleep(1)  # the lid has been open three times lid_open_seconds: still the callbacks' question
    assert (await delivery.view()).attention == "partner endpoint disabled (410 Gone)"
    await delivery.decide("retry")
    await delivery.parked("the lid has been open at the dropoff")
    await delivery.decide("resolve_delivered")
    result = await delivery.result()
    assert result.status == "delivered"
    assert [action.action for action in result.operator_actions] == ["retry", "resolve_delivered"]
