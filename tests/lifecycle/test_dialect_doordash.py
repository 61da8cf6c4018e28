"""DoorDash Drive v2 on the real stack, called the way a Drive client calls it: a DD-JWT-V1 it signs itself.

These tests send exactly the paths, headers and bodies a Drive client sends and read what the database holds;
tests/contract runs DoorDash's own SDK against the same stack.
"""

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select, update

from core.services import Service
from services.integrations import repository as integrations
from services.integrations.models import CredentialKind, Partner, PartnerCredential, PartnerDelivery
from tests.support.dialects import drive_developer, drive_jwt
from tests.support.platform import order_rows
from tests.support.robots import drive
from tests.support.waiting import ready_times, wait_for

WEBHOOK_AUTHORIZATION = "Basic cGFydG5lcjpob29rcw=="


def drive_client(market, credentials: dict, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=market.platform.api_url, timeout=30,
                             headers={"authorization": f"Bearer {token or drive_jwt(credentials)}"})


@pytest.fixture
async def doordash(market, hooks) -> dict:
    return await drive_developer(market, hooks, WEBHOOK_AUTHORIZATION)


def order(market, external_id: str, **changes) -> dict:
    dropoff = market.point(north_m=400, east_m=200)
    return {"external_delivery_id": external_id, "pickup_external_store_id": "store-1",
            "dropoff_location": {"lat": dropoff["latitude"], "lng": dropoff["longitude"]},
            "dropoff_phone_number": "+13105550100", "dropoff_contact_given_name": "Alex",
            "dropoff_instructions": "ring", **changes}


async def test_a_drive_client_quotes_accepts_and_follows_a_delivery_to_its_door(market, doordash, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    async with drive_client(market, doordash) as client:
        quote = await client.post("/drive/v2/quotes", json=order(market, "D-1"))
        assert quote.status_code == 200, quote.text
        assert quote.json()["delivery_status"] == "quote" and quote.json()["fee"] > 0
        accepted = await client.post("/drive/v2/quotes/D-1/accept", json={})
        assert accepted.status_code == 200, accepted.text
        created = accepted.json()
        assert created["delivery_status"] == "created" and created["fee"] == quote.json()["fee"]
        again = await client.post("/drive/v2/quotes/D-1/accept")
        assert again.json()["support_reference"] == created["support_reference"]

        assert (await drive(market, robot, created["support_reference"]))["status"] == "delivered"
        delivered = (await client.get("/drive/v2/deliveries/D-1")).json()
    assert delivered["delivery_status"] == "delivered"
    assert delivered["pickup_time_actual"] < delivered["dropoff_time_actual"]
    assert delivered["tracking_url"].startswith(market.platform.settings.public_url + "/track/")

    received = hooks.of(doordash["webhook_url"])

    async def all_events():
        return len(received) == 5

    await wait_for(all_events)
    assert [h.json()["event_name"] for h in received] == [
        "DASHER_CONFIRMED", "DASHER_CONFIRMED_PICKUP_ARRIVAL", "DASHER_PICKED_UP",
        "DASHER_CONFIRMED_DROPOFF_ARRIVAL", "DASHER_DROPPED_OFF"]
    assert [h.json()["sequence"] for h in received] == [2, 4, 5, 7, 8]
    assert all(h.headers["authorization"] == WEBHOOK_AUTHORIZATION for h in received)
    last = received[-1].json()
    assert last["delivery_status"] == "delivered" and last["external_delivery_id"] == "D-1"
    assert last["fee"] == quote.json()["fee"] and last["dropoff_time_actual"] is not None
    # The statuses Drive has no event for are on the trail in Drive's words, recorded as skipped.
    async with market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        order_row = await session.scalar(select(PartnerDelivery).where(PartnerDelivery.external_delivery_id == "D-1",
                                                                       PartnerDelivery.partner_id == UUID(doordash["partner_id"])))
        trail = await integrations.external_trail(session, order_row.id)
    assert [(s.status, s.callback_status) for s in trail if s.callback_status == "skipped"] == [
        ("created", "skipped"), ("enroute_to_pickup", "skipped"), ("enroute_to_dropoff", "skipped")]
    assert order_row.status == "delivered"


async def test_drive_refuses_bad_tokens_with_its_error_body(market, doordash):
    other_key = base64.urlsafe_b64encode(b"x" * 32).decode().rstrip("=")
    tokens = {
        "missing": None,
        "not a jwt": "not-a-jwt",
        "wrong signature": drive_jwt(doordash, secret=other_key),
        "expired": drive_jwt(doordash, issued=time.time() - 600, lifetime=300),
        "over 30 minutes": drive_jwt(doordash, lifetime=3600),
        "wrong audience": drive_jwt(doordash, aud="someone-else"),
        "unknown developer": drive_jwt(doordash, developer_id="d0d0d0d0-0000-0000-0000-000000000000"),
    }
    before = await order_rows(market.platform)
    for case, token in tokens.items():
        headers = {"authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=market.platform.api_url, headers=headers) as client:
            refused = await client.post("/drive/v2/deliveries", json=order(market, "D-auth"))
        assert refused.status_code == 401, (case, refused.text)
        assert refused.json()["code"] == "authentication_error", case
        assert set(refused.json()) == {"code", "message", "field_errors"}
    assert await order_rows(market.platform) == before


async def test_drive_requests_that_cannot_be_served_get_drive_errors_and_store_nothing(
        market, doordash, geocoded, settings_override):
    other = await market.add_partner(None, "doordash")
    async with drive_client(market, other) as client:
        assert (await client.post("/drive/v2/deliveries", json=order(market, "D-other", pickup_external_store_id=None,
                                                                     pickup_address="1 Store Way"))).status_code == 200
    before = await order_rows(market.platform)
    far = list(geocoded)[2]
    async with drive_client(market, doordash) as client:
        malformed = await client.post("/drive/v2/deliveries", json={"external_delivery_id": "D-x"})
        assert malformed.status_code == 400 and malformed.json()["code"] == "validation_error"
        assert "dropoff_phone_number" in {f["field"] for f in malformed.json()["field_errors"]}
        outside = await client.post("/drive/v2/deliveries", json=order(market, "D-far", dropoff_location=None,
                                                                       dropoff_address=far))
        assert outside.status_code == 422 and outside.json()["code"] == "invalid_delivery_parameters"
        assert outside.json()["reason"] == "delivery_address_not_in_coverage"
        assert outside.json()["field_errors"] == [{"field": "dropoff_address", "error": "outside_service_area"}]
        unknown = await client.post("/drive/v2/quotes", json=order(market, "D-nowhere", dropoff_location=None,
                                                                   dropoff_address="404 Nowhere St"))
        assert unknown.status_code == 400 and unknown.json()["code"] == "validation_error"
        assert unknown.json()["field_errors"] == [{"field": "dropoff_address", "error": "unknown_location"}]
        for request in (client.get("/drive/v2/deliveries/D-other"),
                        client.patch("/drive/v2/deliveries/D-other", json={"dropoff_instructions": "x"}),
                        client.put("/drive/v2/deliveries/D-other/cancel"),
                        client.post("/drive/v2/quotes/D-other/accept")):
            foreign = await request
            assert foreign.status_code == 404 and foreign.json()["code"] == "unknown_delivery_id", foreign.text
    assert await order_rows(market.platform) == before

    await market.add_robot()
    settings_override(quote_valid_seconds=0.5)
    async with drive_client(market, doordash) as client:
        assert (await client.post("/drive/v2/quotes", json=order(market, "D-late"))).status_code == 200
        await asyncio.sleep(1)
        late = await client.post("/drive/v2/quotes/D-late/accept")
    assert late.status_code == 422 and late.json()["code"] == "expired_quote"


async def test_drive_pickup_time_is_when_the_order_is_ready_and_a_late_dropoff_is_refused(
        market, doordash, settings_override):
    ready = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    async with drive_client(market, doordash) as client:
        created = await client.post("/drive/v2/deliveries", json=order(market, "D-ready",
                                                                       pickup_time=ready.isoformat()))
        assert created.status_code == 200, created.text
        assert await ready_times(market.platform, doordash["partner_id"], "D-ready") == (ready, ready)
        ahead = await client.post("/drive/v2/deliveries", json=order(
            market, "D-ahead", pickup_time=(datetime.now(UTC) + timedelta(days=2)).isoformat()))
        assert ahead.status_code == 400 and ahead.json()["code"] == "validation_error", ahead.text
        assert ahead.json()["field_errors"] == [{"field": "pickup_time", "error": "invalid_request"}]

        await market.add_robot()
        before = await order_rows(market.platform)
        settings_override(max_click_to_door_minutes=1)
        for path in ("/drive/v2/quotes", "/drive/v2/deliveries"):
            refused = await client.post(path, json=order(market, "D-busy"))
            assert refused.status_code == 422 and refused.json()["code"] == "no_capacity", (path, refused.text)
            assert "the dropoff would be at" in refused.json()["message"]
        assert await order_rows(market.platform) == before


async def test_drive_creates_are_idempotent_and_cancel_follows_drive_rules(market, doordash, geocoded):
    async with drive_client(market, doordash) as client:
        body = order(market, "D-2", pickup_external_store_id=None, pickup_address=list(geocoded)[0],
                     dropoff_location=None, dropoff_address=list(geocoded)[1])
        first = await client.post("/drive/v2/deliveries", json=body)
        again = await client.post("/drive/v2/deliveries", json=body)
        assert (first.status_code, again.status_code) == (200, 200), first.text
        assert first.json()["support_reference"] == again.json()["support_reference"]
        assert first.json()["fee"] > 0 and first.json()["currency"] == "USD"  # no quote: the list price
        before = await order_rows(market.platform)
        conflict = await client.post("/drive/v2/deliveries", json={**body, "dropoff_instructions": "other"})
        assert conflict.status_code == 409 and conflict.json()["code"] == "duplicate_delivery_id"
        requote = await client.post("/drive/v2/quotes", json=body)
        assert requote.status_code == 409 and requote.json()["code"] == "duplicate_delivery_id"
        assert await order_rows(market.platform) == before

        updated = await client.patch("/drive/v2/deliveries/D-2", json={"dropoff_instructions": "leave it"})
        assert updated.status_code == 200, updated.text
        cancelled = await client.put("/drive/v2/deliveries/D-2/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["delivery_status"] == "cancelled"
        assert cancelled.json()["cancellation_reason"] == "cancelled_by_creator"
        twice = await client.put("/drive/v2/deliveries/D-2/cancel")
    assert twice.status_code == 409 and twice.json()["code"] == "cancel_not_allowed"
    assert twice.json()["reason"] == "delivery_cancelled"


async def test_a_drive_webhook_is_never_sent_without_its_authorization(market, doordash, hooks):
    """A partner registered before an Authorization value was required has none: its callbacks park, unsent."""
    partner_id = UUID(doordash["partner_id"])
    async with market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        await session.execute(update(PartnerCredential).where(
            PartnerCredential.partner_id == partner_id,
            PartnerCredential.kind == CredentialKind.WEBHOOK_AUTHORIZATION).values(expires_at=datetime.now(UTC)))
    await market.add_robot()
    await market.add_pilot()
    async with drive_client(market, doordash) as client:
        created = await client.post("/drive/v2/deliveries", json=order(market, "D-unauthorized"))
    assert created.status_code == 200, created.text

    async def webhook_turned_off():
        async with market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner = await session.get(Partner, partner_id)
            return not partner.webhook_enabled

    await wait_for(webhook_turned_off, timeout=30)
    assert hooks.of(doordash["webhook_url"]) == []
