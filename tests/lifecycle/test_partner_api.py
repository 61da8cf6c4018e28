"""The native partner API beyond create: quotes, lists, updates, cancels, proofs, tracking, stores, limits, isolation."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, update

from api.limits import RateLimiter
from api.tracking import PAGES
from core.crypto import vault_from_settings
from core.services import Service
from services.integrations import credentials
from services.deliveries.models import Quote
from services.integrations.models import PII, PartnerDelivery
from services.integrations.sealing import unseal
from tests.support.robots import RobotDriver
from tests.support.platform import order_rows
from tests.support.waiting import ready_times, wait_for, wait_status, wait_terminal


async def order_count(platform, partner_id) -> int:
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        return await session.scalar(select(func.count()).select_from(PartnerDelivery)
                                    .where(PartnerDelivery.partner_id == partner_id))


async def other_partner(platform) -> httpx.AsyncClient:
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        _, shown = await credentials.create_partner(session, vault_from_settings(platform.settings),
                                                    "someone else", "native", None)
    return httpx.AsyncClient(base_url=platform.api_url, timeout=30,
                             headers={"authorization": f"Bearer {shown['api_key']}"})


def quote_body(order: dict) -> dict:
    return {"pickup": {k: order["pickup"][k] for k in ("latitude", "longitude")},
            "dropoff": {k: order["dropoff"][k] for k in ("latitude", "longitude")}}


async def test_a_quote_prices_the_trip_and_is_used_once(market):
    await market.add_robot(north_m=50)
    await market.add_pilot()
    order = market.order()
    async with market.partner_http() as partner:
        quoted = await partner.post("/v1/quotes", json=quote_body(order))
        assert quoted.status_code == 201, quoted.text
        offer = quoted.json()
        now = datetime.now(UTC)
        expires = datetime.fromisoformat(offer["expires_at"])
        assert timedelta(minutes=4) < expires - now <= timedelta(minutes=5)
        pickup_eta, dropoff_eta = (datetime.fromisoformat(offer[k]) for k in ("pickup_eta", "dropoff_eta"))
        # 50 m at walking speed, then the dwell and 450 m more: ETAs follow the plan, not a constant.
        assert now < pickup_eta < now + timedelta(minutes=2) < dropoff_eta < now + timedelta(minutes=12)
        assert offer["fee"] > 0 and offer["currency"] == "USD"

        created = await partner.post("/v1/deliveries", json={**order, "quote_id": offer["id"]})
        assert created.status_code == 201, created.text
        view = created.json()
        assert view["quote_id"] == offer["id"] and view["fee"] == offer["fee"]
        assert view["tracking_url"].startswith(market.platform.settings.public_url + "/track/")

        before = await order_count(market.platform, market.partner_id)
        reused = await partner.post("/v1/deliveries", json={**market.order(), "quote_id": offer["id"]})
        assert reused.status_code == 409 and reused.json()["code"] == "used_quote", reused.text
        assert reused.json()["field_errors"] == [{"field": "quote_id", "error": "used_quote"}]
        unknown = await partner.post("/v1/deliveries", json={**market.order(), "quote_id": str(uuid.uuid4())})
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_quote"
        assert await order_count(market.platform, market.partner_id) == before
        # Creating the same order again with its quote is the same delivery, even once the quote has expired (a
        # replay is answered as it was, whatever its checks say now); another body under its id is a duplicate.
        again = await partner.post("/v1/deliveries", json={**order, "quote_id": offer["id"]})
        assert again.status_code == 200 and again.json()["id"] == view["id"]
        async with market.platform.databases.sessions(Service.DELIVERIES).begin() as session:
            await session.execute(update(Quote).where(Quote.id == uuid.UUID(offer["id"]))
                                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        late = await partner.post("/v1/deliveries", json={**order, "quote_id": offer["id"]})
        assert late.status_code == 200 and late.json()["id"] == view["id"], late.text
        changed = {**order, "quote_id": offer["id"], "customer": {**order["customer"], "name": "Someone Else"}}
        duplicate = await partner.post("/v1/deliveries", json=changed)
        assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_delivery", duplicate.text
        expired = await partner.post("/v1/deliveries", json={**market.order(), "quote_id": offer["id"]})
        assert expired.status_code == 422 and expired.json()["code"] == "expired_quote", expired.text
        assert await order_count(market.platform, market.partner_id) == before
        await partner.post(f"/v1/deliveries/{view['id']}/cancel", json={"reason": "other"})


async def test_quotes_refuse_what_cannot_be_kept(market):
    platform = market.platform
    order = market.order()
    async with market.partner_http() as partner:
        nobody = await partner.post("/v1/quotes", json=quote_body(order))
        assert nobody.status_code == 422 and nobody.json()["code"] == "no_capacity", nobody.text
        far = quote_body(order) | {"dropoff": {"latitude": 10.0, "longitude": 10.0}}
        outside = await partner.post("/v1/quotes", json=far)
        assert outside.status_code == 422 and outside.json()["code"] == "outside_service_area"
        assert outside.json()["field_errors"][0]["field"] == "dropoff"
        unknown = await partner.post("/v1/quotes", json={"pickup": quote_body(order)["pickup"],
                                                          "dropoff": {"address": "1 Nowhere Lane"}})
        assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_location"

        await market.add_robot()
        original = platform.app.state.partner_desk.settings
        platform.app.state.partner_desk.settings = original.model_copy(update={"quote_valid_seconds": 0.2})
        try:
            offer = (await partner.post("/v1/quotes", json=quote_body(order))).json()
        finally:
            platform.app.state.partner_desk.settings = original
        await asyncio.sleep(max(0.0, (datetime.fromisoformat(offer["expires_at"]) - datetime.now(UTC)).total_seconds()))
        before = await order_count(platform, market.partner_id)
        expired = await partner.post("/v1/deliveries", json={**order, "quote_id": offer["id"]})
        assert expired.status_code == 422 and expired.json()["code"] == "expired_quote", expired.text
        assert await order_count(platform, market.partner_id) == before


async def test_list_filters_by_status_and_time_and_pages_with_a_cursor(market):
    started = datetime.now(UTC)
    async with market.partner_http() as partner:
        ids = []
        for _ in range(5):
            created = await partner.post("/v1/deliveries", json=market.order())
            ids.append(created.json()["id"])
        cancelled = (await partner.post(f"/v1/deliveries/{ids[0]}/cancel", json={"reason": "order_changed"})).json()
        assert cancelled["status"] == "cancelled"

        seen, cursor = [], None
        while True:
            params = {"limit": 2, "created_after": started.isoformat()} | ({"cursor": cursor} if cursor else {})
            page = (await partner.get("/v1/deliveries", params=params)).json()
            seen += [d["id"] for d in page["deliveries"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]  # newest first, each once

        only = (await partner.get("/v1/deliveries", params={"status": "cancelled",
                                                              "created_after": started.isoformat()})).json()
        assert [d["id"] for d in only["deliveries"]] == [ids[0]]
        assert only["deliveries"][0]["cancellation_reason"] == "order_changed"
        none = (await partner.get("/v1/deliveries", params={"created_before": started.isoformat(),
                                                              "created_after": started.isoformat()})).json()
        assert none["deliveries"] == []
        bad = await partner.get("/v1/deliveries", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
        wrong = await partner.get("/v1/deliveries", params={"status": "lost"})
        assert wrong.status_code == 422 and wrong.json()["field_errors"][0]["field"].endswith("status.0")
        for delivery_id in ids[1:]:
            await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "other"})


async def test_dropoff_changes_until_pickup_then_conflict(market):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    vault = vault_from_settings(platform.settings)
    async with market.partner_http() as partner:
        delivery_id = (await partner.post("/v1/deliveries", json=market.order())).json()["id"]
        changed = await partner.patch(f"/v1/deliveries/{delivery_id}",
                                      json={"dropoff_instructions": "gate code 4321", "customer_phone": "+13105550142"})
        assert changed.status_code == 200, changed.text
        async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
            pii = await session.scalar(select(PII).join(PartnerDelivery, PartnerDelivery.id == PII.partner_delivery_id)
                                       .where(PartnerDelivery.delivery_id == uuid.UUID(delivery_id)))
        assert unseal(vault, pii, "dropoff_instructions_encrypted") == "gate code 4321"
        assert unseal(vault, pii, "customer_phone_encrypted") == "+13105550142"
        empty = await partner.patch(f"/v1/deliveries/{delivery_id}", json={})
        assert empty.status_code == 422

        driver = RobotDriver(market, robot)
        await driver.to_pickup(delivery_id)
        await driver.send("lid_opened")
        await driver.send("lid_closed")
        await wait_status(platform, delivery_id, "picked_up")
        late = await partner.patch(f"/v1/deliveries/{delivery_id}", json={"dropoff_instructions": "too late"})
        assert late.status_code == 409 and late.json()["code"] == "delivery_in_progress", late.text
        await driver.send("departed")
        await driver.send("arrived_at_dropoff")
        await driver.hand_over()
        await wait_terminal(platform, delivery_id)


async def test_cancel_is_idempotent_and_refused_once_delivered(market):
    async with market.partner_http() as partner:
        delivery_id = (await partner.post("/v1/deliveries", json=market.order())).json()["id"]
        first = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
        second = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
        assert first.status_code == second.status_code == 200
        assert second.json()["status"] == "cancelled"
        assert second.json()["cancellation_reason"] == "customer_cancelled"
        unknown = await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "bored"})
        assert unknown.status_code == 422 and unknown.json()["field_errors"][0]["field"] == "reason"


async def test_proof_of_delivery_and_the_public_tracking_page(market):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    async with market.partner_http() as partner, httpx.AsyncClient(timeout=30) as public:
        created = (await partner.post("/v1/deliveries", json=market.order())).json()
        delivery_id = created["id"]
        page = await public.get(created["tracking_url"])
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "Test Customer" not in page.text and delivery_id not in page.text
        early = await partner.get(f"/v1/deliveries/{delivery_id}/proof-of-delivery")
        assert early.status_code == 404 and early.json()["code"] == "not_delivered"

        driver = RobotDriver(market, robot)
        await driver.to_pickup(delivery_id)
        running = (await partner.get(f"/v1/deliveries/{delivery_id}")).json()
        assert running["robot_id"] == robot and running["pickup_eta"] and running["dropoff_eta"]
        await driver.load_and_go()
        await driver.hand_over()
        await wait_terminal(platform, delivery_id)

        proof = (await partner.get(f"/v1/deliveries/{delivery_id}/proof-of-delivery")).json()
        assert proof["robot_id"] == robot
        assert proof["location"] == {k: driver.where[k] for k in ("latitude", "longitude")}
        assert datetime.fromisoformat(proof["lid_opened_at"]) <= datetime.fromisoformat(proof["delivered_at"])

        async def delivered_page():
            return "Delivered" in (await public.get(created["tracking_url"])).text

        # The page is cached for PAGES.seconds, so it may show the order's earlier state that long.
        await wait_for(delivered_page, timeout=PAGES.seconds + 5)
        assert (await public.get(f"{platform.api_url}/track/{'x' * 32}")).status_code == 404


async def test_another_partner_can_reach_nothing_of_ours(market):
    platform = market.platform
    order = market.order()
    async with market.partner_http() as partner, await other_partner(platform) as stranger:
        delivery_id = (await partner.post("/v1/deliveries", json=order)).json()["id"]
        await partner.post("/v1/stores", json={"store_id": "ours-1", "name": "Ours",
                                               **{k: order["pickup"][k] for k in ("latitude", "longitude")}})
        for method, path, body in (
            ("GET", f"/v1/deliveries/{delivery_id}", None),
            ("PATCH", f"/v1/deliveries/{delivery_id}", {"dropoff_instructions": "mine now"}),
            ("POST", f"/v1/deliveries/{delivery_id}/cancel", {"reason": "other"}),
            ("GET", f"/v1/deliveries/{delivery_id}/proof-of-delivery", None),
        ):
            answer = await stranger.request(method, path, json=body)
            assert answer.status_code == 404 and answer.json()["code"] == "not_found", (method, path, answer.text)
        assert (await stranger.get("/v1/deliveries")).json()["deliveries"] == []
        assert (await stranger.get("/v1/stores")).json() == []
        borrowed = await stranger.post("/v1/deliveries", json={**order, "pickup": {"store_id": "ours-1"}})
        assert borrowed.status_code == 422 and borrowed.json()["code"] == "unknown_store"
        # Same external id, other partner: a different order of its own, not ours.
        theirs = await stranger.post("/v1/deliveries", json=order)
        assert theirs.status_code == 201 and theirs.json()["id"] != delivery_id
        for mine in (delivery_id, theirs.json()["id"]):
            await partner.post(f"/v1/deliveries/{mine}/cancel", json={"reason": "other"})
            await stranger.post(f"/v1/deliveries/{mine}/cancel", json={"reason": "other"})
        assert (await partner.get(f"/v1/deliveries/{delivery_id}")).json()["status"] == "cancelled"


async def test_missing_and_wrong_credentials_are_refused(market):
    async with httpx.AsyncClient(base_url=market.platform.api_url) as anonymous:
        for method, path in (("GET", "/v1/deliveries"), ("POST", "/v1/quotes"), ("GET", "/v1/stores"),
                             ("GET", f"/v1/deliveries/{uuid.uuid4()}")):
            missing = await anonymous.request(method, path)
            wrong = await anonymous.request(method, path, headers={"authorization": "Bearer sk_wrong"})
            assert missing.status_code == wrong.status_code == 401, (path, missing.text, wrong.text)
            assert missing.headers["www-authenticate"] == "Bearer"


async def test_rate_limit_answers_429_with_retry_after_and_bodies_have_a_size_limit(market):
    state = market.platform.app.state
    original = state.rate_limiter
    state.rate_limiter = RateLimiter(rate=0.5, burst=2)
    try:
        async with market.partner_http() as partner:
            answers = [await partner.get("/v1/stores") for _ in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 429]
            assert answers[2].json()["code"] == "rate_limited" and int(answers[2].headers["retry-after"]) >= 1
    finally:
        state.rate_limiter = original
    async with market.partner_http() as partner:
        huge = market.order() | {"padding": "x" * (state.settings.api_max_body_bytes + 1)}
        refused = await partner.post("/v1/deliveries", json=huge)
        assert refused.status_code == 413 and refused.json()["code"] == "payload_too_large"
        async def chunks():
            for _ in range(state.settings.api_max_body_bytes // 4096 + 2):
                yield b" " * 4096

        streamed = await partner.post("/v1/deliveries", content=chunks(),
                                      headers={"content-type": "application/json"})
        assert streamed.status_code == 413


async def test_stores_register_per_partner_and_resolve_pickups(market):
    order = market.order()
    where = {k: order["pickup"][k] for k in ("latitude", "longitude")}
    async with market.partner_http() as partner:
        added = await partner.post("/v1/stores", json={"store_id": "corner-7", "name": "Corner Shop", **where})
        assert added.status_code == 201 and added.json()["market"] == market.market.name
        assert [s["store_id"] for s in (await partner.get("/v1/stores")).json()] == ["corner-7"]
        outside = await partner.post("/v1/stores", json={"store_id": "far", "name": "Far", "latitude": 1,
                                                         "longitude": 1})
        assert outside.status_code == 422 and outside.json()["code"] == "outside_service_area"
        created = await partner.post("/v1/deliveries", json={**order, "pickup": {"store_id": "corner-7"}})
        assert created.status_code == 201, created.text
        await partner.post(f"/v1/deliveries/{created.json()['id']}/cancel", json={"reason": "other"})


async def test_an_order_is_ready_when_the_partner_says_else_after_its_store_preparation(market, settings_override):
    order = market.order()
    where = {k: order["pickup"][k] for k in ("latitude", "longitude")}
    async with market.partner_http() as partner:
        store = await partner.post("/v1/stores", json={"store_id": "slow", "name": "Slow Kitchen", **where,
                                                       "preparation_minutes": 25})
        assert store.status_code == 201 and store.json()["preparation_minutes"] == 25, store.text
        assert [s["preparation_minutes"] for s in (await partner.get("/v1/stores")).json()] == [25]
        negative = await partner.post("/v1/stores", json={"store_id": "x", "name": "X", **where,
                                                          "preparation_minutes": -1})
        assert negative.status_code == 422 and negative.json()["field_errors"][0]["field"] == "preparation_minutes"

        prepared = (await partner.post("/v1/deliveries", json={**market.order("N-prep"),
                                                                "pickup": {"store_id": "slow"}})).json()
        ready = datetime.fromisoformat(prepared["ready_at"])
        preparation = ready - datetime.fromisoformat(prepared["created_at"])
        assert abs(preparation - timedelta(minutes=25)) < timedelta(seconds=2)
        assert await ready_times(market.platform, market.partner_id, "N-prep") == (ready, ready)

        given = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
        told = await partner.post("/v1/deliveries", json={**market.order("N-told"), "pickup": {"store_id": "slow"},
                                                           "ready_at": given.isoformat()})
        assert told.status_code == 201 and datetime.fromisoformat(told.json()["ready_at"]) == given, told.text
        assert await ready_times(market.platform, market.partner_id, "N-told") == (given, given)
        placed = datetime.now(UTC)
        past = await partner.post("/v1/deliveries", json={**market.order("N-past"),
                                                           "ready_at": (placed - timedelta(hours=1)).isoformat()})
        assert placed <= datetime.fromisoformat(past.json()["ready_at"]) <= datetime.now(UTC)  # ready now
        ahead = await partner.post("/v1/deliveries", json={**market.order("N-ahead"),
                                                            "ready_at": (placed + timedelta(days=2)).isoformat()})
        assert ahead.status_code == 422 and ahead.json()["field_errors"] == [
            {"field": "ready_at", "error": "invalid_request"}], ahead.text

        await market.add_robot()
        quoted = await partner.post("/v1/quotes", json={"pickup": {"store_id": "slow"}, "dropoff": order["dropoff"]})
        assert quoted.status_code == 201, quoted.text  # collected when the store has it ready
        assert datetime.fromisoformat(quoted.json()["pickup_eta"]) >= placed + timedelta(minutes=25)
        before = await order_rows(market.platform)
        settings_override(max_click_to_door_minutes=20)  # shorter than the store's preparation
        for path, body in (("/v1/quotes", {"pickup": {"store_id": "slow"}, "dropoff": order["dropoff"]}),
                           ("/v1/deliveries", {**market.order("N-busy"), "pickup": {"store_id": "slow"}})):
            refused = await partner.post(path, json=body)
            assert refused.status_code == 422 and refused.json()["code"] == "no_capacity", (path, refused.text)
            assert "the dropoff would be at" in refused.json()["message"]
        assert await order_rows(market.platform) == before
        settings_override(max_click_to_door_minutes=90)
        assert (await partner.post("/v1/deliveries", json={**market.order("N-busy"),
                                                            "pickup": {"store_id": "slow"}})).status_code == 201
    await ready_times(market.platform, market.partner_id, "N-busy")  # its lifecycle has reached Dispatch
