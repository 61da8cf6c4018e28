"""Uber Direct on the real stack, called the way a Direct client calls it: a client-credentials token, then paths
scoped by its customer_id.

No Uber Direct client library is on the package index (the Uber packages there are for the Rides API), so
these tests send exactly the paths, form and JSON bodies a Direct client sends.
"""

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest

from tests.support.dialects import access_token
from tests.support.platform import order_rows
from tests.support.robots import drive
from tests.support.waiting import ready_times, wait_for


async def uber_client(market, credentials: dict) -> httpx.AsyncClient:
    token = await access_token(market, credentials)
    return httpx.AsyncClient(base_url=f"{market.platform.api_url}/v1/customers/{credentials['customer_id']}",
                             timeout=30, headers={"authorization": f"Bearer {token}"})


@pytest.fixture
async def uber(market, hooks) -> dict:
    url = hooks.endpoint()
    return {**await market.add_partner(url, "uber"), "webhook_url": url}


def structured(address: str) -> str:
    """Uber's structured address: a JSON string."""
    street, town, region = address.split(", ")
    state, zip_code = region.split(" ")
    return json.dumps({"street_address": [street], "city": town, "state": state, "zip_code": zip_code,
                       "country": "US"})


def delivery(addresses, external_id: str, **changes) -> dict:
    pickup, dropoff, _ = addresses
    return {"pickup_name": "Test Kitchen", "pickup_address": pickup, "pickup_phone_number": "+13105550111",
            "dropoff_name": "Alex Doe", "dropoff_address": structured(dropoff), "dropoff_phone_number": "+13105550100",
            "manifest_items": [{"name": "burrito", "quantity": 1}], "external_id": external_id, **changes}


def signed_by(secret: str, hook) -> bool:
    expected = hmac.new(secret.encode(), hook.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, hook.headers["x-uber-signature"])


async def test_a_direct_client_quotes_creates_and_follows_a_delivery_to_its_door(market, uber, hooks, geocoded):
    robot = await market.add_robot()
    await market.add_pilot()
    addresses = list(geocoded)
    async with await uber_client(market, uber) as client:
        quote = await client.post("/delivery_quotes", json={"pickup_address": addresses[0],
                                                            "dropoff_address": structured(addresses[1])})
        assert quote.status_code == 200, quote.text
        assert quote.json()["id"].startswith("dqt_") and quote.json()["currency_type"] == "USD"
        created = await client.post("/deliveries", json=delivery(addresses, "U-1", quote_id=quote.json()["id"]))
        assert created.status_code == 200, created.text
        assert created.json()["status"] == "pending" and created.json()["fee"] == quote.json()["fee"]
        delivery_id = created.json()["id"]
        assert delivery_id.startswith("del_")
        reused = await client.post("/deliveries", json=delivery(addresses, "U-2", quote_id=quote.json()["id"]))
        assert reused.status_code == 400 and reused.json()["code"] == "used_quote"

        assert (await drive(market, robot, UUID(hex=delivery_id.removeprefix("del_"))))["status"] == "delivered"
        view = (await client.get(f"/deliveries/{delivery_id}")).json()
        assert view["status"] == "delivered" and view["complete"] is True
        completed = (await client.get("/deliveries", params={"filter": "completed"})).json()
        assert [d["id"] for d in completed["data"]] == [delivery_id]
        assert (await client.get("/deliveries", params={"filter": "ongoing"})).json()["data"] == []
        proof = await client.post(f"/deliveries/{delivery_id}/proof-of-delivery", json={"waypoint": "dropoff"})
        assert proof.status_code == 200 and proof.json()["robot_id"] == robot

    received = hooks.of(uber["webhook_url"])

    async def all_events():
        return len(received) == 7

    await wait_for(all_events)
    events = [h.json() for h in received]
    assert [(e["status"], e["data"]["courier_imminent"]) for e in events] == [
        ("pending", False), ("pickup", False), ("pickup", True), ("pickup_complete", False), ("dropoff", False),
        ("dropoff", True), ("delivered", False)]
    assert [e["sequence"] for e in events] == [1, 2, 4, 5, 6, 7, 8]
    assert {e["kind"] for e in events} == {"event.delivery_status"} and {e["delivery_id"] for e in events} == {
        delivery_id}
    assert all(signed_by(uber["webhook_secret"], h) for h in received)


async def test_uber_tokens_and_customer_ids_guard_every_path(market, uber):
    other = await market.add_partner(None, "uber")
    async with httpx.AsyncClient(base_url=market.platform.api_url) as client:
        wrong_secret = await client.post("/oauth/v2/token", data={
            "client_id": uber["client_id"], "client_secret": other["client_secret"],
            "grant_type": "client_credentials"})
        assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
        wrong_grant = await client.post("/oauth/v2/token", data={**{k: uber[k] for k in ("client_id", "client_secret")},
                                                                  "grant_type": "password"})
        assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "unsupported_grant_type"
        for token in (None, "at_not-a-token", uber["client_secret"]):
            headers = {"authorization": f"Bearer {token}"} if token else {}
            refused = await client.get(f"/v1/customers/{uber['customer_id']}/deliveries", headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "unauthorized" and refused.json()["kind"] == "error"
    async with await uber_client(market, other) as stranger:
        theirs = await stranger.get(f"{market.platform.api_url}/v1/customers/{uber['customer_id']}/deliveries")
    assert theirs.status_code == 404 and theirs.json()["code"] == "customer_not_found"


async def test_uber_requests_that_cannot_be_served_get_uber_errors_and_store_nothing(
        market, uber, geocoded, settings_override):
    await market.add_robot()
    addresses = list(geocoded)
    other = await market.add_partner(None, "uber")
    async with await uber_client(market, other) as stranger:
        theirs = (await stranger.post("/deliveries", json=delivery(addresses, "U-theirs"))).json()["id"]
    before = await order_rows(market.platform)
    async with await uber_client(market, uber) as client:
        malformed = await client.post("/deliveries", json={"pickup_address": addresses[0]})
        assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_params"
        assert "dropoff_address" in malformed.json()["metadata"]
        outside = await client.post("/deliveries", json=delivery(addresses, "U-far", dropoff_address=addresses[2]))
        assert outside.status_code == 400 and outside.json()["code"] == "address_undeliverable"
        assert outside.json()["metadata"] == {"dropoff_address": "outside_service_area"}
        unknown = await client.post("/delivery_quotes", json={"pickup_address": addresses[0],
                                                              "dropoff_address": "404 Nowhere St"})
        assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_location"
        bad_json = await client.post("/deliveries", json=delivery(addresses, "U-json", dropoff_address="{oops"))
        assert bad_json.status_code == 400 and bad_json.json()["metadata"] == {"dropoff_address": "invalid_request"}
        for request in (client.get(f"/deliveries/{theirs}"), client.post(f"/deliveries/{theirs}", json={
                "dropoff_notes": "x"}), client.post(f"/deliveries/{theirs}/cancel"),
                client.post(f"/deliveries/{theirs}/proof-of-delivery"), client.get("/deliveries/del_nonsense")):
            foreign = await request
            assert foreign.status_code == 404 and foreign.json()["code"] == "delivery_not_found", foreign.text
        settings_override(uber_quote_valid_seconds=0.5)
        quote = (await client.post("/delivery_quotes", json={"pickup_address": addresses[0],
                                                             "dropoff_address": addresses[1]})).json()
        await asyncio.sleep(1)
        late = await client.post("/deliveries", json=delivery(addresses, "U-late", quote_id=quote["id"]))
        assert late.status_code == 400 and late.json()["code"] == "expired_quote"
    assert await order_rows(market.platform) == before


async def test_uber_pickup_ready_dt_reaches_the_order_from_the_create_or_its_quote(
        market, uber, geocoded, settings_override):
    await market.add_robot()
    addresses = list(geocoded)
    ready = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    later = ready + timedelta(minutes=10)
    route = {"pickup_address": addresses[0], "dropoff_address": addresses[1]}
    async with await uber_client(market, uber) as client:
        created = await client.post("/deliveries", json=delivery(addresses, "U-ready",
                                                                 pickup_ready_dt=ready.isoformat()))
        assert created.status_code == 200, created.text
        assert await ready_times(market.platform, uber["partner_id"], "U-ready") == (ready, ready)
        quote = await client.post("/delivery_quotes", json={**route, "pickup_ready_dt": later.isoformat()})
        assert quote.status_code == 200, quote.text
        assert quote.json()["pickup_duration"] >= 29  # the robot collects the order when it is ready
        quoted = await client.post("/deliveries", json=delivery(addresses, "U-quoted", quote_id=quote.json()["id"]))
        assert quoted.status_code == 200, quoted.text
        assert await ready_times(market.platform, uber["partner_id"], "U-quoted") == (later, later)
        naive = await client.post("/deliveries", json=delivery(addresses, "U-naive",
                                                               pickup_ready_dt="2030-01-01T12:00:00"))
        assert naive.status_code == 400 and naive.json()["metadata"] == {"pickup_ready_dt": "invalid_request"}

        before = await order_rows(market.platform)
        settings_override(max_click_to_door_minutes=1)
        for path, body in (("/delivery_quotes", route), ("/deliveries", delivery(addresses, "U-busy"))):
            refused = await client.post(path, json=body)
            assert refused.status_code == 503 and refused.json()["code"] == "couriers_busy", (path, refused.text)
            assert "the dropoff would be at" in refused.json()["message"]
    assert await order_rows(market.platform) == before


async def test_uber_creates_are_idempotent_and_cancel_is_final(market, uber, geocoded):
    addresses = list(geocoded)
    async with await uber_client(market, uber) as client:
        body = delivery(addresses, "U-3", idempotency_key="key-1")
        first = await client.post("/deliveries", json=body)
        again = await client.post("/deliveries", json=body)
        assert first.status_code == 200 and first.json()["id"] == again.json()["id"]
        before = await order_rows(market.platform)
        conflict = await client.post("/deliveries", json={**body, "idempotency_key": "key-2"})
        assert conflict.status_code == 409 and conflict.json()["code"] == "duplicate_delivery"
        assert await order_rows(market.platform) == before
        delivery_id = first.json()["id"]
        updated = await client.post(f"/deliveries/{delivery_id}", json={"dropoff_notes": "gate code 12"})
        assert updated.status_code == 200, updated.text
        cancelled = await client.post(f"/deliveries/{delivery_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "canceled"
        assert cancelled.json()["complete"] is True
        listed = (await client.get("/deliveries", params={"filter": "canceled"})).json()["data"]
        assert [d["id"] for d in listed] == [delivery_id]
        late = await client.post(f"/deliveries/{delivery_id}", json={"dropoff_notes": "too late"})
    assert late.status_code == 400 and late.json()["code"] == "noneditable_delivery"
