"""Operators find parked deliveries by search attribute, read why, and fix them with updates."""

import json
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType

from cli import ops
from core.services import Service
from services.integrations import repository as integrations
from tests.support.dialects import access_token, drive_jwt
from tests.support.lifecycle import DELIVERED_TRAIL, assert_robot_free, create, parked
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_for, wait_status, wait_terminal, workflow_status


@asynccontextmanager
async def trip_history_gone(platform):
    """The Operations database loses its trip history table until the block ends."""
    operations = platform.databases.engines[Service.OPERATIONS]
    async with operations.begin() as connection:
        await connection.execute(text("ALTER TABLE trip_history RENAME TO trip_history_away"))
    try:
        yield
    finally:
        async with operations.begin() as connection:
            await connection.execute(text("ALTER TABLE trip_history_away RENAME TO trip_history"))


async def test_no_robot_parks_then_a_redispatch_to_a_named_robot_delivers(market, lifecycle_policy):
    lifecycle_policy(no_robot_action="park", robot_search_seconds=1)
    await market.add_pilot()
    delivery_id = await create(market)
    found = await parked(market.platform, delivery_id, "no robot available")
    assert found["market"] == market.market.name
    robot = await market.add_robot()
    with pytest.raises(ops.OperatorError, match="resolve_delivered does not apply"):
        await ops.act(market.platform.client, delivery_id, "resolve", "ana", "wrong button")
    answer = await ops.act(market.platform.client, delivery_id, "redispatch", "ana", "new robot deployed",
                           robot_id=robot)
    assert "redispatch accepted from ana" in answer
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await driver.hand_over()
    result = await wait_terminal(market.platform, delivery_id)
    assert result["status"] == "delivered"
    assert result["operator_actions"][0]["operator"] == "ana" and result["attention"] is None


async def test_a_step_that_keeps_failing_parks_and_a_retry_resumes_it(market, lifecycle_policy):
    lifecycle_policy(step_retry_max_attempts=2)
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await wait_status(market.platform, delivery_id, "robot_assigned")
    async with trip_history_gone(market.platform):
        await driver.send("departed")
        found = await parked(market.platform, delivery_id, "record_trip_progress failed")
        assert "trip_history" in found["reason"]
    await ops.act(market.platform.client, delivery_id, "retry", "ben", "operations database repaired")
    await wait_status(market.platform, delivery_id, "en_route_to_pickup")
    await driver.send("arrived_at_pickup")
    await driver.load_and_go()
    await driver.hand_over()
    assert (await wait_terminal(market.platform, delivery_id))["status"] == "delivered"


async def test_resolve_as_delivered_by_hand_and_refusals(market):
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    with pytest.raises(ops.OperatorError, match="not waiting for an operator"):
        await ops.act(market.platform.client, delivery_id, "retry", "cy", "nothing to retry")
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    with pytest.raises(ops.OperatorError, match="cannot resolve"):
        await ops.act(market.platform.client, delivery_id, "resolve", "cy", "still at the store")
    await driver.load_and_go()
    await ops.act(market.platform.client, delivery_id, "resolve", "cy", "customer met the robot at the door")
    result = await wait_terminal(market.platform, delivery_id)
    assert (result["status"], result["reason"]) == ("delivered", "operator_delivered")
    await assert_robot_free(market.platform, robot)
    story = await ops.show(market.platform.client, market.platform.databases, delivery_id)
    assert story["deliveries"]["status"] == "delivered"
    assert story["operations"]["tasks"][0]["status"] == "completed"
    assert story["dispatch"]["demands"][0]["status"] == "fulfilled"
    assert story["trip_monitor"][0]["status"] == "finished"
    assert story["device"][0]["robot_id"] == robot and "credential_hash" not in story["device"][0]
    assert story["workflow"]["operator_actions"][0]["note"] == "customer met the robot at the door"


async def test_a_lid_left_open_at_the_dropoff_asks_an_operator(market, lifecycle_policy):
    lifecycle_policy(lid_open_seconds=3)
    robot = await market.add_robot()
    await market.add_pilot()
    driver = RobotDriver(market, robot)
    client = market.platform.client

    async def asked(delivery_id) -> dict:
        view = await workflow_status(market.platform, delivery_id)
        return view if view["attention"] and "lid has been open at the dropoff" in view["attention"] else None

    async def not_asked(delivery_id) -> dict:
        view = await workflow_status(market.platform, delivery_id)
        return view if view["attention"] is None else None

    # The operator waits once more; then the robot closes the lid after all.
    first = await create(market)
    await driver.to_pickup(first)
    await driver.load_and_go()
    await driver.send("lid_opened")
    await parked(market.platform, first, "lid has been open at the dropoff")
    await ops.act(client, first, "retry", "eve", "customer is unloading a big order")
    await wait_for(lambda: not_asked(first), timeout=3, interval=0.05)
    await wait_for(lambda: asked(first))
    await driver.send("lid_closed")
    result = await wait_terminal(market.platform, first)
    assert (result["status"], result["attention"]) == ("delivered", None)
    assert [a["action"] for a in result["operator_actions"]] == ["retry"]

    # The operator closes the next one as delivered by hand.
    second = await create(market)
    await driver.to_pickup(second)
    await driver.load_and_go()
    await driver.send("lid_opened")
    await parked(market.platform, second, "lid has been open at the dropoff")
    with pytest.raises(ops.OperatorError, match="redispatch does not apply|cannot redispatch"):
        await ops.act(client, second, "redispatch", "eve", "wrong button")
    await ops.act(client, second, "resolve", "eve", "customer has the order; lid sensor faulty")
    result = await wait_terminal(market.platform, second)
    assert (result["status"], result["reason"]) == ("delivered", "operator_delivered")
    await assert_robot_free(market.platform, robot)


async def test_a_lid_left_open_back_at_the_store_asks_an_operator(market, lifecycle_policy, receiver):
    lifecycle_policy(customer_no_show_seconds=1, lid_open_seconds=2)
    robot = await market.add_robot()
    await market.add_pilot()
    client = market.platform.client
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()  # nobody comes to the door: the order goes back to the store
    await wait_status(market.platform, delivery_id, "returning")
    with pytest.raises(ops.OperatorError, match="not waiting for an operator"):
        await ops.act(client, delivery_id, "returned", "gus", "too early")
    for event in ("departed", "arrived_at_store", "lid_opened"):
        await driver.send(event)
    await parked(market.platform, delivery_id, "lid has been open back at the store")
    with pytest.raises(ops.OperatorError, match="resolve_delivered does not apply"):
        await ops.act(client, delivery_id, "resolve", "gus", "wrong button")
    await ops.act(client, delivery_id, "returned", "gus", "the store has the order; lid sensor faulty")
    result = await wait_terminal(market.platform, delivery_id)
    assert (result["status"], result["attention"]) == ("returned", None)
    assert result["reason"] == "operator_returned"
    assert [a["action"] for a in result["operator_actions"]] == ["resolve_returned"]
    await assert_robot_free(market.platform, robot)
    await driver.send("lid_closed", expect=409)  # the delivery is over: the robot's late event is refused

    async def partner_told():
        return receiver.statuses(delivery_id)[-2:] == ["returning", "returned"]

    await wait_for(partner_told)


async def test_cancel_while_parked_tells_the_partner(market, lifecycle_policy, receiver):
    lifecycle_policy(no_robot_action="park", robot_search_seconds=1)
    delivery_id = await create(market)
    await parked(market.platform, delivery_id, "no robot available")
    await ops.act(market.platform.client, delivery_id, "cancel", "dee", "store closed", reason="store_closed")
    result = await wait_terminal(market.platform, delivery_id)
    assert (result["status"], result["reason"]) == ("cancelled", "store_closed")

    async def partner_told():
        return receiver.statuses(delivery_id)[-1:] == ["cancelled"]

    await wait_for(partner_told)


async def test_queues_report_pollers_for_every_queue(platform):
    report = await ops.queues(platform.client)
    assert {row["queue"] for row in report} >= {"delivery-workflows", "dispatch", "partner-callbacks"}
    assert all(row["pollers"] >= 1 for row in report)



async def test_a_stuck_robot_with_no_replacement_parks_for_an_operator(market, lifecycle_policy):
    lifecycle_policy(no_robot_action="park", robot_search_seconds=1, stuck_window_seconds=1.5)
    robot = await market.add_robot()
    await market.add_pilot()
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await wait_status(market.platform, delivery_id, "robot_assigned")
    await driver.send("departed")

    async def parked_after_the_fault():
        await driver.heartbeat(moving=True)  # driving on the spot
        found = [p for p in await ops.stuck(market.platform.client) if p["workflow_id"] == f"delivery:{delivery_id}"]
        return found[0] if found else None

    found = await wait_for(parked_after_the_fault, timeout=30, interval=0.3)
    assert found["reason"] == "no robot available"
    story = await ops.show(market.platform.client, market.platform.databases, delivery_id)
    assert [t["kind"] for t in story["operations"]["field_tasks"]] == ["rescue"]
    assert [a["status"] for a in story["deliveries"]["attempts"]] == ["failed", "pending"]
    await ops.act(market.platform.client, delivery_id, "cancel", "eve", "no robot in the area", reason="no_capacity")
    assert (await wait_terminal(market.platform, delivery_id))["status"] == "cancelled"


async def parked_on_a_disabled_endpoint(market, receiver) -> tuple[UUID, RobotDriver]:
    """A delivery whose partner endpoint answers its first callback 410 Gone, parked on its callbacks; and the
    driver of the one robot that can serve it."""
    robot = await market.add_robot()
    await market.add_pilot()
    order = market.order()
    receiver.gone_for[order["external_id"]] = 1
    async with market.partner_http() as partner:
        delivery_id = UUID((await partner.post("/v1/deliveries", json=order)).json()["id"])
    await parked(market.platform, delivery_id, "partner endpoint disabled")
    return delivery_id, RobotDriver(market, robot)


async def test_a_disabled_partner_endpoint_parks_the_callbacks_not_the_robot(market, receiver):
    delivery_id, driver = await parked_on_a_disabled_endpoint(market, receiver)
    await driver.to_pickup(delivery_id)  # the robot is not held up by the partner's endpoint
    await driver.load_and_go()
    await driver.hand_over()
    await wait_status(market.platform, delivery_id, "delivered")
    assert receiver.statuses(delivery_id) == []
    await ops.act(market.platform.client, delivery_id, "retry", "fay", "partner fixed their endpoint")
    result = await wait_terminal(market.platform, delivery_id)
    assert result["status"] == "delivered"
    assert receiver.statuses(delivery_id) == DELIVERED_TRAIL


async def test_two_parks_at_once_are_asked_in_turn(market, lifecycle_policy, receiver):
    lifecycle_policy(step_retry_max_attempts=2)
    delivery_id, driver = await parked_on_a_disabled_endpoint(market, receiver)
    client = market.platform.client
    handle = client.get_workflow_handle(f"delivery:{delivery_id}")

    async def step_out_of_retries():
        events = (await handle.fetch_history()).events
        scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name for e in events
                     if e.HasField("activity_task_scheduled_event_attributes")}
        return any(scheduled.get(e.activity_task_failed_event_attributes.scheduled_event_id)
                   == "record_trip_progress" for e in events if e.HasField("activity_task_failed_event_attributes"))

    await wait_status(market.platform, delivery_id, "robot_assigned")
    async with trip_history_gone(market.platform):
        await driver.send("departed")
        await wait_for(step_out_of_retries)
        # The step waits behind the question already asked: the operator's retry goes to the callbacks.
        assert (await workflow_status(market.platform, delivery_id))["attention"].startswith(
            "partner endpoint disabled")
        await ops.act(client, delivery_id, "retry", "fay", "partner fixed their endpoint")
        found = await parked(market.platform, delivery_id, "record_trip_progress failed")
        assert "trip_history" in found["reason"]
    await ops.act(client, delivery_id, "retry", "fay", "operations database repaired")
    await wait_status(market.platform, delivery_id, "en_route_to_pickup")
    await driver.send("arrived_at_pickup")
    await driver.load_and_go()
    await driver.hand_over()
    result = await wait_terminal(market.platform, delivery_id)
    assert (result["status"], result["attention"]) == ("delivered", None)
    assert [a["attention"].split(" ")[0] for a in result["operator_actions"]] == ["partner", "record_trip_progress"]

    async def partner_told():
        return receiver.statuses(delivery_id)[-1:] == ["delivered"]

    await wait_for(partner_told)
    assert receiver.statuses(delivery_id) == DELIVERED_TRAIL


async def test_the_open_lid_question_waits_while_the_partner_callbacks_are_parked(market, lifecycle_policy, receiver):
    lifecycle_policy(lid_open_seconds=1)
    delivery_id, driver = await parked_on_a_disabled_endpoint(market, receiver)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await driver.send("lid_opened")
    handle = market.platform.client.get_workflow_handle(f"delivery:{delivery_id}")
    opened_at = (await handle.fetch_history()).events[-1].event_id

    def lid_timer_went_off(times: int):
        async def went_off() -> bool:
            events = [e for e in (await handle.fetch_history()).events if e.event_id > opened_at]
            fired = [e.event_id for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
            seen = [e.event_id for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
            return len(fired) >= times and bool(seen) and seen[-1] > fired[times - 1]

        went_off.__name__ = f"the lid's timer going off {times} times, each seen by a workflow task"
        return went_off

    # Each time the lid's timer goes off the question could be asked; each time it gives way to the callbacks'.
    for times in (1, 2):
        await wait_for(lid_timer_went_off(times))
        view = await workflow_status(market.platform, delivery_id)
        assert view["attention"] == "partner endpoint disabled (410 Gone)", (times, view["attention"])
    await ops.act(market.platform.client, delivery_id, "retry", "fay", "partner fixed their endpoint")
    await parked(market.platform, delivery_id, "lid has been open at the dropoff")
    await ops.act(market.platform.client, delivery_id, "resolve", "fay", "customer has the order")
    result = await wait_terminal(market.platform, delivery_id)
    assert result["status"] == "delivered"
    assert [a["action"] for a in result["operator_actions"]] == ["retry", "resolve_delivered"]


# An operator's note no partner may ever read; and the partner's view of the same delivery, dialect by dialect.
SECRET_NOTE = "customer swore at the pilot 4f7c"
DRIVE_AUTHORIZATION = "Basic cGFydG5lcjpob29rcw=="


class PartnerSeat:
    """One partner of a dialect in the market: creates its orders its own way and reads them back every way it can."""

    def __init__(self, market, hooks, receiver, dialect: str):
        self.market, self.hooks, self.receiver, self.dialect = market, hooks, receiver, dialect
        self.url = self.credentials = None
        self.ids: dict[UUID, tuple[str, str]] = {}  # delivery id -> (the dialect's own id, the external id)

    async def join(self) -> None:
        if self.dialect == "native":
            return  # the market's own partner, whose webhook is the receiver
        self.url = self.hooks.endpoint()
        authorization = DRIVE_AUTHORIZATION if self.dialect == "doordash" else None
        self.credentials = await self.market.add_partner(self.url, self.dialect, authorization)
        if self.dialect == "doordash":
            async with self.market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
                point = self.market.point(north_m=100)
                await integrations.add_store(session, UUID(self.credentials["partner_id"]), "store-1", "Kitchen",
                                             point["latitude"], point["longitude"], self.market.market.name)

    async def http(self) -> httpx.AsyncClient:
        api, credentials = self.market.platform.api_url, self.credentials
        if self.dialect == "native":
            return self.market.partner_http()
        token = {"doordash": lambda: drive_jwt(credentials), "olo": lambda: credentials["api_key"]}.get(self.dialect)
        base = {"doordash": "/drive/v2", "olo": "/olo/v1"}.get(self.dialect,
                                                               f"/v1/customers/{credentials.get('customer_id')}")
        token = token() if token else await access_token(self.market, credentials)
        return httpx.AsyncClient(base_url=f"{api}{base}", headers={"authorization": f"Bearer {token}"})

    async def create(self, addresses: list[str]) -> UUID:
        market, external_id = self.market, f"note-{self.dialect}-{uuid.uuid4().hex[:6]}"
        dropoff = market.point(north_m=400, east_m=200)
        async with await self.http() as partner:
            if self.dialect == "native":
                answer = await partner.post("/v1/deliveries", json=market.order(external_id))
                own_id = answer.json()["id"]
            elif self.dialect == "doordash":
                answer = await partner.post("/deliveries", json={
                    "external_delivery_id": external_id, "pickup_external_store_id": "store-1",
                    "dropoff_location": {"lat": dropoff["latitude"], "lng": dropoff["longitude"]},
                    "dropoff_phone_number": "+13105550100", "dropoff_contact_given_name": "Alex"})
                own_id = answer.json()["support_reference"]
            elif self.dialect == "olo":
                quote = await partner.post("/quotes", json={
                    "deliveryId": external_id, "pickup": market.point(north_m=100), "dropoff": dropoff,
                    "customer": {"name": "Alex Doe", "phone": "+13105550100"},
                    "dropoffTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
                answer = await partner.post(f"/quotes/{quote.json()['quoteId']}/accept")
                own_id = answer.json()["providerDeliveryId"]
            else:
                street, town, region = addresses[1].split(", ")
                answer = await partner.post("/deliveries", json={
                    "pickup_name": "Kitchen", "pickup_address": addresses[0], "pickup_phone_number": "+13105550111",
                    "dropoff_name": "Alex Doe", "dropoff_phone_number": "+13105550100", "external_id": external_id,
                    "dropoff_address": json.dumps({"street_address": [street], "city": town, "state": region[:2],
                                                   "zip_code": region[3:], "country": "US"}),
                    "manifest_items": [{"name": "burrito", "quantity": 1}]})
                own_id = answer.json()["id"]
        assert answer.status_code in (200, 201), answer.text
        delivery_id = UUID(hex=own_id.removeprefix("del_"))
        self.ids[delivery_id] = own_id, external_id
        return delivery_id

    async def reads(self) -> list[str]:
        """Every answer the partner can get about its orders (each one, the list, the tracking page), as sent."""
        by_own_id = self.dialect in ("native", "uber")
        prefix = "/v1/deliveries" if self.dialect == "native" else "/deliveries"
        paths = [f"{prefix}/{own_id if by_own_id else external_id}" for own_id, external_id in self.ids.values()]
        async with await self.http() as partner:
            answers = [await partner.get(path) for path in paths + ([prefix] if by_own_id else [])]
            if self.dialect == "native":
                answers += [await partner.get(answer.json()["tracking_url"]) for answer in answers[:-1]]
        assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
        return [answer.text for answer in answers]

    def callbacks(self) -> list[str]:
        """The bodies of the callbacks the partner received for its orders."""
        if self.dialect == "native":
            ours = {str(delivery_id) for delivery_id in self.ids}
            return [json.dumps(c) for c in self.receiver.received if c["data"]["delivery_id"] in ours]
        return [hook.body.decode() for hook in self.hooks.of(self.url)]


@pytest.mark.parametrize("dialect", ["native", "doordash", "uber", "olo"])
async def test_an_operators_note_reaches_no_partner_only_a_reason_code(market, receiver, hooks, geocoded, dialect,
                                                                       lifecycle_policy):
    lifecycle_policy(customer_no_show_seconds=1, lid_open_seconds=1)
    robot = await market.add_robot()
    await market.add_pilot()
    seat = PartnerSeat(market, hooks, receiver, dialect)
    await seat.join()
    driver = RobotDriver(market, robot)
    client, platform = market.platform.client, market.platform

    # Redispatched with the note, then closed as delivered by hand with it.
    delivered = await seat.create(list(geocoded))
    await wait_status(platform, delivered, "robot_assigned")
    await driver.send("departed")
    await ops.act(client, delivered, "redispatch", "ana", SECRET_NOTE, robot_id=robot)
    await driver.to_pickup(delivered)
    for event in ("lid_opened", "lid_closed", "departed"):
        await driver.send(event)
    await ops.act(client, delivered, "resolve", "ana", SECRET_NOTE)
    # Nobody comes to the door; back at the store the lid stays open, and the operator closes it as returned.
    returned = await seat.create(list(geocoded))
    await wait_terminal(platform, delivered)
    await driver.to_pickup(returned)
    await driver.load_and_go()
    await wait_status(platform, returned, "returning")
    for event in ("departed", "arrived_at_store", "lid_opened"):
        await driver.send(event)
    await parked(platform, returned, "lid has been open back at the store")
    await ops.act(client, returned, "returned", "ana", SECRET_NOTE)
    results = [await wait_terminal(platform, delivery_id) for delivery_id in (delivered, returned)]

    # Every callback is settled once the workflow has ended: all that the partner was sent is here.
    told = await seat.reads() + seat.callbacks()
    assert len(told) > 2 and [text for text in told if SECRET_NOTE in text] == []
    assert [(result["status"], result["reason"]) for result in results] == [
        ("delivered", "operator_delivered"), ("returned", "operator_returned")]
    story = await ops.show(client, platform.databases, delivered)
    assert [a["end_reason"] for a in story["deliveries"]["attempts"]] == ["operator_redispatched", "operator_delivered"]
    # Operators still read the note, where it was kept.
    assert [a["note"] for r in results for a in r["operator_actions"]] == [SECRET_NOTE] * 3
