"""The sandbox: a test partner's delivery, stepped to its door through each dialect's step endpoint, with the real
lifecycle's callbacks, while the real fleet never hears of it."""

import uuid

import httpx
from sqlalchemy import select

from core.services import Service
from services.dispatch.models import Demand
from services.dispatch.models import Robot as PlannedRobot
from services.operations import repository as operations
from tests.lifecycle.test_dialect_doordash import WEBHOOK_AUTHORIZATION, drive_client
from tests.lifecycle.test_dialect_olo import olo_client, quote_request
from tests.lifecycle.test_dialect_uber import delivery as uber_delivery
from tests.lifecycle.test_dialect_uber import signed_by, uber_client
from tests.support.partners import Receiver
from tests.support.waiting import wait_for, wait_terminal

# What each step of the native API answers, from robot assignment to the door.
NATIVE_STEPS = ["robot_assigned", "at_pickup", "picked_up", "at_dropoff", "delivered"]
# Every status a native partner hears of, the robot's own steps between them included.
NATIVE_TRAIL = ["created", "robot_assigned", "en_route_to_pickup", "at_pickup", "picked_up", "en_route_to_dropoff",
                "at_dropoff", "delivered"]


def partner_http(market, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=market.platform.api_url, timeout=30,
                             headers={"authorization": f"Bearer {api_key}"})


async def callbacks_of(hooks, url: str, count: int) -> list:
    received = hooks.of(url)

    async def all_callbacks():
        return len(received) >= count

    await wait_for(all_callbacks)
    return received


async def step_through(client: httpx.AsyncClient, path: str, times: int) -> list[dict]:
    """Advance a test delivery `times` steps; each step's answer."""
    answers = []
    for _ in range(times):
        step = await client.post(path)
        assert step.status_code == 200, step.text
        answers.append(step.json())
    return answers


async def real_fleet_untouched(market, robot: str, delivery_id: uuid.UUID) -> None:
    """Dispatch never had a demand for the delivery, and the market's real robot stayed free in Dispatch and in
    Operations."""
    databases = market.platform.databases
    async with databases.sessions(Service.DISPATCH).begin() as session:
        assert (await session.scalars(select(Demand).where(Demand.delivery_id == delivery_id))).all() == []
        assert (await session.get(PlannedRobot, robot)).active_demand_id is None
    async with databases.sessions(Service.OPERATIONS).begin() as session:
        assert await operations.active_task_for_robot(session, robot) is None


async def test_a_test_partner_steps_its_native_delivery_to_the_door(market, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    url = hooks.endpoint()
    sandbox = await market.add_partner(url, live_mode=False)
    async with partner_http(market, sandbox["api_key"]) as client:
        created = await client.post("/v1/deliveries", json=market.order())
        assert created.status_code == 201, created.text
        assert created.json()["live_mode"] is False
        delivery_id = created.json()["id"]

        answers = await step_through(client, f"/v1/sandbox/deliveries/{delivery_id}/advance", len(NATIVE_STEPS))
        assert [a["status"] for a in answers] == NATIVE_STEPS
        assert answers[-1]["robot_id"] == f"sandbox-{uuid.UUID(delivery_id).hex}"

        finished = await client.post(f"/v1/sandbox/deliveries/{delivery_id}/advance")
        assert finished.status_code == 409
        assert finished.json()["code"] == "delivery_finished"
        assert finished.json()["field_errors"][0]["field"] == "delivery_id"
        assert (await wait_terminal(market.platform, delivery_id))["status"] == "delivered"
        proof = await client.get(f"/v1/deliveries/{delivery_id}/proof-of-delivery")
        assert proof.status_code == 200 and proof.json()["robot_id"] == answers[-1]["robot_id"]

    received = await callbacks_of(hooks, url, len(NATIVE_TRAIL))
    assert [h.json()["data"]["status"] for h in received] == NATIVE_TRAIL
    assert all(Receiver._signed_with(sandbox["webhook_secret"], h.headers, h.body) for h in received)

    async with market.partner_http() as live:
        listed = (await live.get("/v1/deliveries")).json()["deliveries"]
        assert delivery_id not in {d["id"] for d in listed}
        assert (await live.get(f"/v1/deliveries/{delivery_id}")).status_code == 404
    await real_fleet_untouched(market, robot, uuid.UUID(delivery_id))


async def test_a_test_customer_steps_its_uber_delivery_with_live_mode_false_everywhere(market, hooks, geocoded):
    robot = await market.add_robot()
    await market.add_pilot()
    url = hooks.endpoint()
    sandbox = {**await market.add_partner(url, "uber", live_mode=False), "webhook_url": url}
    live = await market.add_partner(None, "uber")
    async with await uber_client(market, sandbox) as client:
        created = await client.post("/deliveries", json=uber_delivery(list(geocoded), "U-sandbox-1"))
        assert created.status_code == 200, created.text
        assert created.json()["live_mode"] is False
        delivery_id = created.json()["id"]

        answers = await step_through(client, f"/sandbox/deliveries/{delivery_id}/advance", 5)
        assert [(a["status"], a["courier_imminent"], a["live_mode"]) for a in answers] == [
            ("pickup", False, False), ("pickup", True, False), ("pickup_complete", False, False),
            ("dropoff", True, False), ("delivered", False, False)]
        finished = await client.post(f"/sandbox/deliveries/{delivery_id}/advance")
        assert finished.status_code == 409 and finished.json()["code"] == "delivery_finished"
        assert finished.json()["metadata"] == {"delivery_id": "delivery_finished"}

    received = await callbacks_of(hooks, url, 7)
    events = [h.json() for h in received]
    assert [e["status"] for e in events] == ["pending", "pickup", "pickup", "pickup_complete", "dropoff", "dropoff",
                                             "delivered"]
    assert {e["live_mode"] for e in events} == {False} and {e["data"]["live_mode"] for e in events} == {False}
    assert all(signed_by(sandbox["webhook_secret"], h) for h in received)

    async with await uber_client(market, live) as client:
        assert (await client.get("/deliveries")).json()["data"] == []
    await real_fleet_untouched(market, robot, uuid.UUID(hex=delivery_id.removeprefix("del_")))


async def test_a_test_delivery_nobody_steps_is_cancelled_as_no_robot_took_it(market, hooks, lifecycle_policy):
    robot = await market.add_robot()
    await market.add_pilot()
    lifecycle_policy(robot_search_seconds=1)
    sandbox = await market.add_partner(hooks.endpoint(), live_mode=False)
    async with partner_http(market, sandbox["api_key"]) as client:
        created = await client.post("/v1/deliveries", json=market.order())
        assert created.status_code == 201, created.text
    final = await wait_terminal(market.platform, created.json()["id"])
    assert (final["status"], final["reason"], final["robot_id"]) == ("cancelled", "no_robot_available", None)
    await real_fleet_untouched(market, robot, uuid.UUID(created.json()["id"]))


async def test_stepping_a_live_delivery_or_another_partners_is_refused(market, hooks):
    async with market.partner_http() as client:
        created = await client.post("/v1/deliveries", json=market.order())
        assert created.status_code == 201, created.text
        assert created.json()["live_mode"] is True
        delivery_id = created.json()["id"]
        refused = await client.post(f"/v1/sandbox/deliveries/{delivery_id}/advance")
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "live_delivery"
        assert refused.json()["field_errors"][0]["field"] == "delivery_id"
        unknown = await client.post(f"/v1/sandbox/deliveries/{uuid.uuid4()}/advance")
        assert unknown.status_code == 404
        cancelled = await client.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "other"})
        assert cancelled.status_code == 200, cancelled.text

    sandbox = await market.add_partner(hooks.endpoint(), live_mode=False)
    async with partner_http(market, sandbox["api_key"]) as client:  # another partner's delivery is unknown
        assert (await client.post(f"/v1/sandbox/deliveries/{delivery_id}/advance")).status_code == 404


async def test_drive_refuses_to_step_a_live_delivery_in_its_own_error_body(market, hooks, geocoded):
    developer = await market.add_partner(hooks.endpoint(), "doordash", WEBHOOK_AUTHORIZATION)
    pickup, dropoff, _ = geocoded
    async with drive_client(market, developer) as client:
        created = await client.post("/drive/v2/deliveries", json={
            "external_delivery_id": "D-live-1", "pickup_address": pickup, "dropoff_address": dropoff,
            "dropoff_phone_number": "+13105550100", "dropoff_contact_given_name": "Alex"})
        assert created.status_code == 200, created.text
        refused = await client.post("/drive/v2/sandbox/deliveries/D-live-1/advance")
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "live_delivery"
        assert refused.json()["field_errors"] == [{"field": "external_delivery_id", "error": "live_delivery"}]
        unknown = await client.post("/drive/v2/sandbox/deliveries/D-unknown/advance")
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_delivery_id"
        assert (await client.put("/drive/v2/deliveries/D-live-1/cancel")).status_code == 200


async def test_a_test_drive_developer_steps_its_delivery_to_the_door_with_drive_events(market, hooks, geocoded):
    robot = await market.add_robot()
    await market.add_pilot()
    url = hooks.endpoint()
    developer = await market.add_partner(url, "doordash", WEBHOOK_AUTHORIZATION, live_mode=False)
    pickup, dropoff, _ = geocoded
    async with drive_client(market, developer) as client:
        created = await client.post("/drive/v2/deliveries", json={
            "external_delivery_id": "D-sandbox-1", "pickup_address": pickup, "dropoff_address": dropoff,
            "dropoff_phone_number": "+13105550100", "dropoff_contact_given_name": "Alex"})
        assert created.status_code == 200, created.text
        answers = await step_through(client, "/drive/v2/sandbox/deliveries/D-sandbox-1/advance", 5)
        assert [a["delivery_status"] for a in answers] == [
            "confirmed", "arrived_at_pickup", "picked_up", "arrived_at_dropoff", "delivered"]
        finished = await client.post("/drive/v2/sandbox/deliveries/D-sandbox-1/advance")
        assert finished.status_code == 409 and finished.json()["code"] == "delivery_finished"
        assert finished.json()["field_errors"] == [{"field": "external_delivery_id", "error": "delivery_finished"}]
        delivery_id = uuid.UUID(created.json()["support_reference"])

    received = await callbacks_of(hooks, url, 5)
    assert [h.json()["event_name"] for h in received] == [
        "DASHER_CONFIRMED", "DASHER_CONFIRMED_PICKUP_ARRIVAL", "DASHER_PICKED_UP",
        "DASHER_CONFIRMED_DROPOFF_ARRIVAL", "DASHER_DROPPED_OFF"]
    assert all(h.headers["authorization"] == WEBHOOK_AUTHORIZATION for h in received)
    await real_fleet_untouched(market, robot, delivery_id)


async def test_a_test_olo_provider_steps_its_delivery_to_the_door(market, hooks):
    robot = await market.add_robot()
    await market.add_pilot()
    url = hooks.endpoint()
    provider = await market.add_partner(url, "olo", live_mode=False)
    async with olo_client(market, provider) as client:
        quote = await client.post("/quotes", json=quote_request(market, "olo-sandbox-1"))
        assert quote.status_code == 200, quote.text
        accepted = await client.post(f"/quotes/{quote.json()['quoteId']}/accept")
        assert accepted.status_code == 201, accepted.text
        answers = await step_through(client, "/sandbox/deliveries/olo-sandbox-1/advance", 5)
        assert [a["status"] for a in answers] == [
            "DriverAssigned", "ArrivedAtPickup", "PickedUp", "ArrivedAtDropoff", "Delivered"]
        finished = await client.post("/sandbox/deliveries/olo-sandbox-1/advance")
        assert finished.status_code == 409, finished.text
        delivery_id = uuid.UUID(accepted.json()["providerDeliveryId"])

    received = await callbacks_of(hooks, url, 8)
    assert [h.json()["status"] for h in received] == [
        "Pending", "DriverAssigned", "EnRouteToPickup", "ArrivedAtPickup", "PickedUp", "EnRouteToDropoff",
        "ArrivedAtDropoff", "Delivered"]
    await real_fleet_untouched(market, robot, delivery_id)
