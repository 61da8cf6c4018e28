"""Olo dispatch (provider side) on the real stack: quotes by pickup or dropoff time, accept, follow, cancel from
either side, and callbacks signed with X-Olo-Signature."""

import asyncio
import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest

from tests.support.platform import order_rows
from tests.support.robots import drive
from tests.support.waiting import ready_times, wait_for


def olo_client(market, credentials: dict) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{market.platform.api_url}/olo/v1", timeout=30,
                             headers={"authorization": f"Bearer {credentials['api_key']}"})


@pytest.fixture
async def olo(market, hooks) -> dict:
    url = hooks.endpoint()
    return {**await market.add_partner(url, "olo"), "webhook_url": url}


def quote_request(market, delivery_id: str, **changes) -> dict:
    return {"deliveryId": delivery_id, "pickup": market.point(north_m=100),
            "dropoff": {**market.point(north_m=400, east_m=200), "instructions": "ring"},
            "customer": {"name": "Alex Doe", "phone": "+13105550100"},
            "dropoffTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), **changes}


def signed_by(secret: str, hook) -> bool:
    """What an Olo receiver checks: HMAC-SHA256 over url, body, message id and timestamp, one per line."""
    signed = f"{hook.url}\n".encode() + hook.body + \
        f"\n{hook.headers['x-olo-message-id']}\n{hook.headers['x-olo-timestamp']}".encode()
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, hook.headers["x-olo-signature"])


async def callbacks(hooks, url: str, count: int) -> list[dict]:
    received = hooks.of(url)

    async def arrived():
        return len(received) >= count

    await wait_for(arrived)
    return [h.json() for h in received]


async def test_olo_quotes_by_dropoff_time_accepts_and_follows_a_delivery_to_its_door(market, olo, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    async with olo_client(market, olo) as client:
        quote = await client.post("/quotes", json=quote_request(market, "olo-1"))
        assert quote.status_code == 200, quote.text
        offer = quote.json()
        assert offer["canMeetDropoffTime"] is True and offer["pickupBy"] > offer["estimatedPickupTime"]
        accepted = await client.post(f"/quotes/{offer['quoteId']}/accept")
        again = await client.post(f"/quotes/{offer['quoteId']}/accept")
        assert (accepted.status_code, again.status_code) == (201, 200), accepted.text
        assert accepted.json()["providerDeliveryId"] == again.json()["providerDeliveryId"]
        assert accepted.json()["status"] == "Pending" and accepted.json()["fee"] == offer["fee"]
        delivery_id = UUID(accepted.json()["providerDeliveryId"])
        assert (await drive(market, robot, delivery_id))["status"] == "delivered"
        view = (await client.get("/deliveries/olo-1")).json()
    steps = ["Pending", "DriverAssigned", "EnRouteToPickup", "ArrivedAtPickup", "PickedUp", "EnRouteToDropoff",
             "ArrivedAtDropoff", "Delivered"]
    assert view["status"] == "Delivered" and list(view["timestamps"]) == steps
    events = await callbacks(hooks, olo["webhook_url"], 8)
    assert [e["status"] for e in events] == steps and [e["sequence"] for e in events] == list(range(1, 9))
    assert events[-1]["timestamps"]["Delivered"] == events[-1]["occurredAt"]
    assert all(signed_by(olo["webhook_secret"], h) for h in hooks.of(olo["webhook_url"]))


async def test_olo_cancels_carry_olo_reason_codes_from_either_side(market, olo, hooks, lifecycle_policy):
    await market.add_robot()
    async with olo_client(market, olo) as client:
        offer = (await client.post("/quotes", json=quote_request(market, "olo-2"))).json()
        await client.post(f"/quotes/{offer['quoteId']}/accept")
        cancelled = await client.post("/deliveries/olo-2/cancel", json={"reasonCode": "CustomerCanceled"})
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["cancelReason"], cancelled.json()["canceledBy"]) == ("CustomerCanceled", "customer")
        bad_reason = await client.post("/deliveries/olo-2/cancel", json={"reasonCode": "DriverFailure"})
        assert bad_reason.status_code == 422  # a provider-side code is ours to send, not Olo's
        # No robot can come: the only one is busy with olo-3, which never moves, and planned next for one of the
        # two after it; the other has no robot planned, so its search runs out. We cancel, in Olo's words.
        lifecycle_policy(robot_search_seconds=1, robot_retry_seconds=0.2)
        await market.add_pilot()
        for name in ("olo-3", "olo-4", "olo-5"):
            offer = (await client.post("/quotes", json=quote_request(market, name))).json()
            assert (await client.post(f"/quotes/{offer['quoteId']}/accept")).status_code == 201

        async def one_cancelled():
            for name in ("olo-4", "olo-5"):
                view = (await client.get(f"/deliveries/{name}")).json()
                if view["status"] == "Canceled":
                    return name, view
            return None

        unserved, view = await wait_for(one_cancelled)
    assert (view["status"], view["cancelReason"], view["canceledBy"]) == (
        "Canceled", "UnableToCreateDelivery", "provider")
    events = await callbacks(hooks, olo["webhook_url"], 2)
    customer_cancel = [e for e in events if e["deliveryId"] == "olo-2"][-1]
    assert (customer_cancel["status"], customer_cancel["cancelReason"]) == ("Canceled", "CustomerCanceled")

    async def provider_cancel():
        found = [e for e in (h.json() for h in hooks.of(olo["webhook_url"]))
                 if e["deliveryId"] == unserved and e["status"] == "Canceled"]
        return found[0] if found else None

    notice = await wait_for(provider_cancel)
    assert (notice["cancelReason"], notice["canceledBy"]) == ("UnableToCreateDelivery", "provider")


async def test_olo_pickup_time_is_when_the_order_is_ready_and_a_late_dropoff_is_refused(
        market, olo, settings_override):
    await market.add_robot()
    ready = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    async with olo_client(market, olo) as client:
        quote = await client.post("/quotes", json=quote_request(market, "olo-ready", dropoffTime=None,
                                                                pickupTime=ready.isoformat()))
        assert quote.status_code == 200, quote.text
        assert datetime.fromisoformat(quote.json()["estimatedPickupTime"]) >= ready
        accepted = await client.post(f"/quotes/{quote.json()['quoteId']}/accept")
        assert accepted.status_code == 201, accepted.text
        assert await ready_times(market.platform, olo["partner_id"], "olo-ready") == (ready, ready)
        ahead = await client.post("/quotes", json=quote_request(
            market, "olo-ahead", dropoffTime=None, pickupTime=(datetime.now(UTC) + timedelta(days=2)).isoformat()))
        assert ahead.status_code == 422 and ahead.json()["code"] == "invalid_request", ahead.text
        assert ahead.json()["field_errors"] == [{"field": "pickupTime", "error": "invalid_request"}]

        before = await order_rows(market.platform)
        settings_override(max_click_to_door_minutes=1)
        refused = await client.post("/quotes", json=quote_request(market, "olo-busy"))
        assert refused.status_code == 422 and refused.json()["code"] == "no_capacity", refused.text
        assert "the dropoff would be at" in refused.json()["message"]
    assert await order_rows(market.platform) == before


async def test_olo_requests_that_cannot_be_served_are_refused_and_store_nothing(
        market, olo, settings_override):
    await market.add_robot()
    other = await market.add_partner(None, "olo")
    async with olo_client(market, other) as stranger:
        theirs = (await stranger.post("/quotes", json=quote_request(market, "olo-theirs"))).json()
        assert (await stranger.post(f"/quotes/{theirs['quoteId']}/accept")).status_code == 201
    before = await order_rows(market.platform)
    async with olo_client(market, olo) as client:
        both_times = await client.post("/quotes", json=quote_request(
            market, "olo-x", pickupTime=datetime.now(UTC).isoformat()))
        assert both_times.status_code == 422 and both_times.json()["code"] == "invalid_request"
        far = await client.post("/quotes", json=quote_request(market, "olo-far", dropoff=market.point(north_m=5000)))
        assert far.status_code == 422 and far.json()["code"] == "outside_service_area"
        for request in (client.get("/deliveries/olo-theirs"),
                        client.post("/deliveries/olo-theirs/cancel", json={"reasonCode": "CustomerCanceled"}),
                        client.post(f"/quotes/{theirs['quoteId']}/accept")):
            foreign = await request
            assert foreign.status_code == 404, foreign.text
    async with olo_client(market, {"api_key": market.api_key}) as native:
        assert (await native.get("/deliveries/olo-theirs")).status_code == 401
    assert await order_rows(market.platform) == before

    settings_override(quote_valid_seconds=3)  # room for two quotes and an accept on a busy machine
    async with olo_client(market, olo) as client:
        first = (await client.post("/quotes", json=quote_request(market, "olo-5"))).json()
        changed = (await client.post("/quotes", json=quote_request(market, "olo-5", customer={
            "name": "Someone Else", "phone": "+13105550999"}))).json()
        assert (await client.post(f"/quotes/{first['quoteId']}/accept")).status_code == 201
        duplicate = await client.post(f"/quotes/{changed['quoteId']}/accept")
        assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_delivery"
        requote = await client.post("/quotes", json=quote_request(market, "olo-5"))
        assert requote.status_code == 409
        late_offer = (await client.post("/quotes", json=quote_request(market, "olo-6"))).json()
        await asyncio.sleep(3.5)
        late = await client.post(f"/quotes/{late_offer['quoteId']}/accept")
    assert late.status_code == 422 and late.json()["code"] == "expired_quote"
