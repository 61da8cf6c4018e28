"""Uber's own Direct SDK (`uber-direct`, pinned), unchanged, against the real stack: its token exchange and every
deliveries call, refusals as the SDK's `FetchError` with Uber's codes, every answer and event conforming to Uber
Direct's documented shapes, and events signed as Uber signs them."""

import hashlib
import hmac
from uuid import UUID

import pytest

from tests.support.robots import RobotDriver, drive
from tests.support.sdk import Sdk, conforming
from tests.support.waiting import wait_for, wait_terminal


@pytest.fixture
async def uber(market, hooks) -> dict:
    url = hooks.endpoint()
    return {**await market.add_partner(url, "uber"), "webhook_url": url}


def sdk_of(market, uber: dict) -> Sdk:
    return Sdk("uber", market.platform.api_url, {key: uber[key] for key in
                                                 ("client_id", "client_secret", "customer_id")})


def delivery(market, external_id: str, **changes) -> dict:
    """A delivery placed by coordinates: the addresses are ones no geocoder knows."""
    pickup, dropoff = market.point(north_m=100), market.point(north_m=400, east_m=200)
    return {"pickup_name": "Test Kitchen", "pickup_address": "1 Unmapped Yard", "pickup_phone_number": "+13105550111",
            "pickup_latitude": pickup["latitude"], "pickup_longitude": pickup["longitude"],
            "dropoff_name": "Alex Doe", "dropoff_address": "2 Unmapped Lane", "dropoff_phone_number": "+13105550100",
            "dropoff_latitude": dropoff["latitude"], "dropoff_longitude": dropoff["longitude"],
            "manifest_items": [{"name": "burrito", "quantity": 1}], "external_id": external_id, **changes}


def signed(secret: str, hook) -> bool:
    """Uber's recipe: the hex HMAC-SHA256 of the raw body under the signing key, in both signature headers."""
    expected = hmac.new(secret.encode(), hook.body, hashlib.sha256).hexdigest()
    return all(hmac.compare_digest(expected, hook.headers.get(name, ""))
               for name in ("x-postmates-signature", "x-uber-signature"))


def delivery_uuid(delivery_id: str) -> UUID:
    return UUID(hex=delivery_id.removeprefix("del_"))


async def test_the_direct_sdk_quotes_creates_and_follows_a_delivery_to_its_door(market, uber, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    sdk = sdk_of(market, uber)
    order = delivery(market, "U-SDK-1")
    quote = await sdk.call("createQuote", {key: order[key] for key in (
        "pickup_address", "dropoff_address", "pickup_latitude", "pickup_longitude", "dropoff_latitude",
        "dropoff_longitude")})
    assert quote.ok, quote
    created = await sdk.call("createDelivery", {**order, "quote_id": quote.data["id"]})
    assert created.ok, created
    assert created.data["status"] == "pending" and created.data["fee"] == quote.data["fee"]
    assert (await drive(market, robot, delivery_uuid(created.data["id"])))["status"] == "delivered"
    got, completed, proof = await sdk.calls(("getDelivery", created.data["id"]),
                                            ("listDeliveries", {"filter": "completed"}),
                                            ("proofOfDelivery", created.data["id"], {"waypoint": "dropoff",
                                                                                     "type": "picture"}))
    assert got.data["status"] == "delivered" and got.data["complete"] is True
    assert got.data["pickup"]["status"] == got.data["dropoff"]["status"] == "completed"
    assert got.data["courier"] == {"name": robot, "vehicle_type": "robot"}
    assert [d["id"] for d in completed.data["data"]] == [created.data["id"]]
    assert proof.ok, proof

    received = hooks.of(uber["webhook_url"])

    async def delivered_event():
        return any(h.json()["status"] == "delivered" for h in received)

    await wait_for(delivered_event)
    assert all(signed(uber["webhook_secret"], h) for h in received)
    assert {(h.json()["customer_id"], h.json()["live_mode"]) for h in received} == {(uber["customer_id"], True)}
    assert await conforming(
        ("quote", "UberQuote", quote.data), ("created", "UberDelivery", created.data),
        ("delivered", "UberDelivery", got.data), ("completed", "UberDeliveryList", completed.data),
        *((f"event {h.json()['sequence']}", "UberDeliveryStatusEvent", h.json()) for h in received)) == []


async def test_a_delivery_without_a_quote_is_priced_placed_by_its_coordinates_and_pages_by_offset(market, uber):
    sdk = sdk_of(market, uber)
    made = await sdk.calls(*(("createDelivery", delivery(market, f"U-SDK-2{n}")) for n in range(3)))
    assert all(outcome.ok for outcome in made), made
    assert all(o.data["fee"] > 0 and o.data["currency"] == "usd" for o in made)
    first, second, typed = await sdk.calls(("listDeliveries", {"limit": 2}),
                                           ("listDeliveries", {"limit": 2, "offset": 2}),
                                           ("listDeliveries", {"limit": 2, "Offset": 2}))  # as the SDK's types spell it
    assert first.ok and second.ok and typed.ok, (first, second, typed)
    assert typed.data == second.data
    assert [d["external_id"] for d in first.data["data"] + second.data["data"]] == ["U-SDK-22", "U-SDK-21",
                                                                                   "U-SDK-20"]
    assert first.data["next_href"].endswith("offset=2") and "next_href" not in second.data
    assert first.data["total_count"] == -1
    pickup = made[0].data["pickup"]["location"]
    assert (pickup["lat"], pickup["lng"]) == (delivery(market, "x")["pickup_latitude"],
                                              delivery(market, "x")["pickup_longitude"])
    assert await conforming(("page", "UberDeliveryList", first.data)) == []


async def test_a_cancel_after_loading_is_returned_once_and_final(market, uber, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    sdk = sdk_of(market, uber)
    created = await sdk.call("createDelivery", delivery(market, "U-SDK-3"))
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_uuid(created.data["id"]))
    await driver.load_and_go()
    cancelled = await sdk.call("cancelDelivery", created.data["id"])
    assert cancelled.ok, cancelled
    assert (cancelled.data["status"], cancelled.data["complete"]) == ("returned", True)
    assert cancelled.data["undeliverable_action"] == "returned"
    assert cancelled.data["undeliverable_reason"] == "CANCELED_BY_MERCHANT"
    assert cancelled.data["dropoff"]["status"] == "failed"
    for event in ("departed", "arrived_at_store", "lid_opened", "lid_closed"):
        await driver.send(event)
    assert (await wait_terminal(market.platform, delivery_uuid(created.data["id"])))["status"] == "returned"
    back = await sdk.call("getDelivery", created.data["id"])
    assert back.data["return"]["status"] == "completed"
    received = hooks.of(uber["webhook_url"])

    async def returned_event():
        return any(h.json()["status"] == "returned" for h in received)

    await wait_for(returned_event)
    returned = [h.json() for h in received if h.json()["status"] == "returned"]
    assert [(e["data"]["complete"], e["data"]["undeliverable_reason"]) for e in returned] == [
        (True, "CANCELED_BY_MERCHANT")]
    assert await conforming(("cancelled", "UberDelivery", cancelled.data), ("back", "UberDelivery", back.data),
                            *(("returned event", "UberDeliveryStatusEvent", e) for e in returned)) == []


async def test_direct_refusals_reach_the_sdk_with_ubers_codes(market, uber):
    sdk = sdk_of(market, uber)
    created, duplicate, unknown, moved, half = await sdk.calls(
        ("createDelivery", delivery(market, "U-SDK-4")),
        ("createDelivery", delivery(market, "U-SDK-4", dropoff_notes="another body")),
        ("getDelivery", "del_" + "0" * 32),
        ("updateDelivery", "del_placeholder", {}),
        ("createDelivery", delivery(market, "U-SDK-5", dropoff_longitude=None)))
    assert created.ok, created
    moved = await sdk.call("updateDelivery", created.data["id"], {"dropoff_latitude": 1.0, "dropoff_longitude": 2.0,
                                                                  "dropoff_notes": "gate"})
    assert {(o.error["class"], o.error["status"], o.error["code"]) for o in (duplicate, unknown, moved, half)} == {
        ("FetchError", 409, "duplicate_delivery"), ("FetchError", 404, "delivery_not_found"),
        ("FetchError", 400, "invalid_params")}
    assert moved.error["metadata"] == {"dropoff_latitude": "invalid_request"}
    assert half.error["metadata"] == {"dropoff_longitude": "invalid_request"}
