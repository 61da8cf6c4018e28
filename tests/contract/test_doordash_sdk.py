"""The official DoorDash Drive SDK (`@doordash/sdk`, pinned), unchanged, against the real stack: every call a Drive
developer makes, each documented refusal raised as the SDK's own error class, every answer and webhook conforming
to the SDK's TypeScript declarations, and webhooks authorized as the developer registered."""

import httpx
import pytest

from tests.support.dialects import drive_developer, drive_jwt
from tests.support.robots import RobotDriver, drive
from tests.support.sdk import Sdk, conforming
from tests.support.waiting import wait_for, wait_status, wait_terminal

WEBHOOK_AUTHORIZATION = "Bearer hooks-7f3a"


@pytest.fixture
async def doordash(market, hooks) -> dict:
    return await drive_developer(market, hooks, WEBHOOK_AUTHORIZATION)


def sdk_of(market, doordash: dict) -> Sdk:
    return Sdk("doordash", market.platform.api_url, {key: doordash[key] for key in
                                                     ("developer_id", "key_id", "signing_secret")})


def order(market, external_id: str, **changes) -> dict:
    dropoff = market.point(north_m=400, east_m=200)
    return {"external_delivery_id": external_id, "pickup_external_store_id": "store-1",
            "pickup_external_business_id": "default", "pickup_phone_number": "+13105550111",
            "dropoff_address": "2 Home Ave",
            "dropoff_location": {"lat": dropoff["latitude"], "lng": dropoff["longitude"]},
            "dropoff_phone_number": "+13105550100", "dropoff_contact_given_name": "Alex",
            "dropoff_instructions": "ring", **changes}


async def test_the_drive_sdk_quotes_accepts_and_follows_a_delivery_to_its_door(market, doordash, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    sdk = sdk_of(market, doordash)
    quote, accepted, again = await sdk.calls(("deliveryQuote", order(market, "SDK-1")),
                                             ("deliveryQuoteAccept", "SDK-1", {}), ("deliveryQuoteAccept", "SDK-1"))
    assert quote.ok and accepted.ok and again.ok, (quote, accepted, again)
    assert quote.data["delivery_status"] == "quote" and quote.data["fee"] > 0
    assert accepted.data["delivery_status"] == "created" and accepted.data["fee"] == quote.data["fee"]
    assert again.data["support_reference"] == accepted.data["support_reference"]

    assert (await drive(market, robot, accepted.data["support_reference"]))["status"] == "delivered"
    delivered = await sdk.call("getDelivery", "SDK-1")
    assert delivered.data["delivery_status"] == "delivered"
    assert delivered.data["pickup_time_actual"] < delivered.data["dropoff_time_actual"]

    received = hooks.of(doordash["webhook_url"])

    async def all_events():
        return len(received) == 5

    await wait_for(all_events)
    assert [h.json()["event_name"] for h in received] == [
        "DASHER_CONFIRMED", "DASHER_CONFIRMED_PICKUP_ARRIVAL", "DASHER_PICKED_UP",
        "DASHER_CONFIRMED_DROPOFF_ARRIVAL", "DASHER_DROPPED_OFF"]
    # DoorDash's recipe: the Authorization header carries the value the developer registered.
    assert all(h.headers["authorization"] == WEBHOOK_AUTHORIZATION for h in received)
    assert await conforming(
        ("quote", "DriveDelivery", quote.data), ("accepted", "DriveDelivery", accepted.data),
        ("delivered", "DriveDelivery", delivered.data),
        *((h.json()["event_name"], "DriveDelivery", h.json()) for h in received)) == []


async def test_the_drive_sdk_creates_updates_and_cancels(market, doordash):
    sdk = sdk_of(market, doordash)
    created, replay, updated, cancelled = await sdk.calls(
        ("createDelivery", order(market, "SDK-2")), ("createDelivery", order(market, "SDK-2")),
        ("updateDelivery", "SDK-2", {"dropoff_phone_number": "+13105550101"}), ("cancelDelivery", "SDK-2"))
    assert created.ok and replay.ok and updated.ok and cancelled.ok, (created, replay, updated, cancelled)
    assert replay.data["support_reference"] == created.data["support_reference"]
    assert cancelled.data["delivery_status"] == "cancelled"
    assert cancelled.data["cancellation_reason"] == "cancelled_by_creator"


async def test_drive_refusals_reach_the_sdk_as_its_own_error_classes(market, doordash):
    sdk = sdk_of(market, doordash)
    stranger = Sdk("doordash", market.platform.api_url, {**sdk.credentials, "signing_secret": "c2VjcmV0LW9mLW5vYm9keQ"})
    created, duplicate, invalid = await sdk.calls(
        ("createDelivery", order(market, "SDK-3")),
        ("createDelivery", order(market, "SDK-3", dropoff_instructions="another body")),
        ("createDelivery", {**order(market, "SDK-4"), "dropoff_phone_number": "not a phone"}))
    assert created.ok, created
    assert duplicate.error_class == "DoorDashDuplicatedDeliveryIdError", duplicate
    assert invalid.error_class == "DoorDashValidationFieldError", invalid
    assert {f["field"] for f in invalid.error["field_errors"]} == {"dropoff_phone_number"}
    unauthorized = await stranger.call("getDelivery", "SDK-3")
    assert unauthorized.error_class == "DoorDashAuthorizationError", unauthorized


async def test_a_delivery_created_without_a_quote_is_priced_and_leaves_out_what_it_has_not(market, doordash, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    sdk = sdk_of(market, doordash)
    created = await sdk.call("createDelivery", order(market, "SDK-5"))
    assert created.ok, created
    assert created.data["fee"] > 0 and created.data["currency"] == "USD"
    assert (await drive(market, robot, created.data["support_reference"]))["status"] == "delivered"
    delivered = await sdk.call("getDelivery", "SDK-5")
    received = hooks.of(doordash["webhook_url"])

    async def all_events():
        return len(received) == 5

    await wait_for(all_events)
    assert {h.json()["fee"] for h in received} == {created.data["fee"]}
    assert {h.json()["currency"] for h in received} == {"USD"}
    assert await conforming(
        ("created", "DriveDelivery", created.data), ("delivered", "DriveDelivery", delivered.data),
        *((h.json()["event_name"], "DriveDelivery", h.json()) for h in received)) == []


async def test_an_unknown_delivery_is_the_sdks_unknown_delivery_error(market, doordash):
    sdk = sdk_of(market, doordash)
    outcomes = await sdk.calls(("getDelivery", "SDK-none"), ("cancelDelivery", "SDK-none"),
                               ("updateDelivery", "SDK-none", {"dropoff_instructions": "x"}),
                               ("deliveryQuoteAccept", "SDK-none", {}))
    assert [o.error_class for o in outcomes] == ["DoorDashUnknownDeliveryError"] * 4, outcomes
    assert {o.error["code"] for o in outcomes} == {"unknown_delivery_id"}


async def test_an_update_changes_what_it_can_and_refuses_every_other_field_by_name(market, doordash):
    sdk = sdk_of(market, doordash)
    created, moved, tipped, instructed = await sdk.calls(
        ("createDelivery", order(market, "SDK-6")),
        ("updateDelivery", "SDK-6", {"dropoff_address": "9 Elsewhere St", "dropoff_instructions": "gate code 12"}),
        ("updateDelivery", "SDK-6", {"tip": 300, "items": [{"name": "soup", "quantity": 1}],
                                     "pickup_time": "2030-01-01T12:00:00Z"}),
        ("updateDelivery", "SDK-6", {"dropoff_instructions": "gate code 12"}))
    assert created.ok and instructed.ok, (created, instructed)
    assert moved.error_class == "DoorDashValidationFieldError", moved
    assert [f["field"] for f in moved.error["field_errors"]] == ["dropoff_address"]
    assert tipped.error_class == "DoorDashValidationFieldError", tipped
    assert {f["field"] for f in tipped.error["field_errors"]} == {"tip", "items", "pickup_time"}
    assert all(f["error"] for f in tipped.error["field_errors"])
    assert await conforming(("updated", "DriveDelivery", instructed.data)) == []


async def test_after_pickup_drive_refuses_cancels_and_updates_with_drives_reasons(market, doordash):
    robot = await market.add_robot()
    await market.add_pilot()
    sdk = sdk_of(market, doordash)
    created = await sdk.call("createDelivery", order(market, "SDK-7"))
    driver = RobotDriver(market, robot)
    await driver.to_pickup(created.data["support_reference"])
    await driver.load_and_go()
    cancel, update = await sdk.calls(("cancelDelivery", "SDK-7"),
                                     ("updateDelivery", "SDK-7", {"dropoff_instructions": "late change"}))
    assert cancel.error["code"] == "cancel_not_allowed" and update.error["code"] == "update_not_allowed"
    async with httpx.AsyncClient(base_url=market.platform.api_url,
                                 headers={"authorization": f"Bearer {drive_jwt(doordash)}"}) as client:
        refused = await client.put("/drive/v2/deliveries/SDK-7/cancel")
        unchanged = await client.patch("/drive/v2/deliveries/SDK-7", json={"dropoff_instructions": "late change"})
        far = await client.post("/drive/v2/deliveries", json=order(market, "SDK-8", dropoff_location={
            "lat": market.centre.latitude + 1, "lng": market.centre.longitude}))
    assert refused.json()["reason"] == unchanged.json()["reason"] == "delivery_picked_up"
    assert far.json()["code"] == "invalid_delivery_parameters"
    assert far.json()["reason"] == "delivery_address_not_in_coverage"
    assert await conforming(("cancel refused", "DriveCancelNotAllowed", refused.json()),
                            ("update refused", "DriveUpdateNotAllowed", unchanged.json()),
                            ("outside", "DriveInvalidDelivery", far.json())) == []
    await driver.hand_over()
    assert (await wait_terminal(market.platform, created.data["support_reference"]))["status"] == "delivered"
    assert (await sdk.call("getDelivery", "SDK-7")).data["delivery_status"] == "delivered"


async def test_a_return_reads_the_same_cancellation_reason_on_get_as_in_its_webhooks(market, doordash, hooks,
                                                                                      lifecycle_policy):
    lifecycle_policy(customer_no_show_seconds=0.5)
    robot = await market.add_robot()
    await market.add_pilot()
    sdk = sdk_of(market, doordash)
    created = await sdk.call("createDelivery", order(market, "SDK-9"))
    driver = RobotDriver(market, robot)
    await driver.to_pickup(created.data["support_reference"])
    await driver.load_and_go()
    await wait_status(market.platform, created.data["support_reference"], "returning")
    returning = await sdk.call("getDelivery", "SDK-9")
    for event in ("departed", "arrived_at_store", "lid_opened", "lid_closed"):
        await driver.send(event)
    assert (await wait_terminal(market.platform, created.data["support_reference"]))["status"] == "returned"
    returned = await sdk.call("getDelivery", "SDK-9")
    received = hooks.of(doordash["webhook_url"])

    async def return_events():
        return {"DELIVERY_RETURN_INITIALIZED", "DELIVERY_RETURNED"} <= {h.json()["event_name"] for h in received}

    await wait_for(return_events)
    events = [h.json() for h in received if h.json()["event_name"].startswith("DELIVERY_RETURN")]
    reasons = {returning.data.get("cancellation_reason"), returned.data.get("cancellation_reason"),
               *(e.get("cancellation_reason") for e in events)}
    assert reasons == {"failed_to_deliver"}, (returning.data, returned.data, events)
    assert returned.data["delivery_status"] == "returned"
