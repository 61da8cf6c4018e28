"""An order the API stored but whose workflow it never started (Temporal unreachable, or the API dying in between,
and the partner never sending it again) is started by the `stranded-orders` schedule's workflow: once, as the API
would have started it, and it is delivered and its customer's data set to be purged. A finished delivery is never
started again."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from temporalio.service import RPCError, RPCStatusCode

import desks.partner
from core.services import Service, TaskQueue
from services.integrations.models import PII, PartnerDelivery
from tests.support.lifecycle import create
from tests.support.platform import Platform
from tests.support.robots import drive
from tests.support.waiting import wait_for
from workflows.delivery import workflow_id
from workflows.stranded_orders import SCHEDULE_ID, StrandedOrdersWorkflow, ensure_stranded_orders_schedule


async def one_pass(platform: Platform) -> list[uuid.UUID]:
    """One run of the workflow the schedule starts: the deliveries it started."""
    return await platform.client.execute_workflow(StrandedOrdersWorkflow.run, id=f"{SCHEDULE_ID}-{uuid.uuid4()}",
                                                  task_queue=TaskQueue.DELIVERY_WORKFLOWS.value)


async def set_order(platform: Platform, delivery_id: uuid.UUID, **values) -> None:
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        await session.execute(update(PartnerDelivery).where(PartnerDelivery.delivery_id == delivery_id).values(**values))


async def create_with_temporal_unreachable(partner, market, monkeypatch):
    """POST an order while every workflow start fails, and wait until the API has given up starting it."""
    tries = []

    async def temporal_unreachable(client, order):
        tries.append(order.delivery_id)
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(desks.partner, "start_delivery", temporal_unreachable)
    monkeypatch.setattr(desks.partner, "START_RETRY_SECONDS", (0.01, 0.01))
    try:
        response = await partner.post("/v1/deliveries", json=market.order())
        async with asyncio.timeout(10):
            while len(tries) < 3:  # the first start and its two retries, all refused; then the API gives up
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        monkeypatch.undo()
    return response


async def test_a_cancel_starts_the_workflow_the_create_could_not(market, monkeypatch):
    async with market.partner_http() as partner:
        accepted = await create_with_temporal_unreachable(partner, market, monkeypatch)
        assert accepted.status_code == 201, accepted.text
        delivery_id = uuid.UUID(accepted.json()["id"])
        handle = market.platform.client.get_workflow_handle(workflow_id(delivery_id))
        try:
            await handle.describe()
            raise AssertionError("the workflow started although every start was refused")
        except RPCError as exc:
            assert exc.status == RPCStatusCode.NOT_FOUND
        cancelled = await partner.post(f"/v1/deliveries/{delivery_id}/cancel",
                                       json={"reason": "customer_cancelled"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    assert (await asyncio.wait_for(handle.result(), 30))["status"] == "cancelled"


async def test_an_order_stored_without_its_workflow_is_started_once_and_delivered(market, monkeypatch):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()

    async with market.partner_http() as partner:
        accepted = await create_with_temporal_unreachable(partner, market, monkeypatch)
    assert accepted.status_code == 201, accepted.text  # stored: the partner has its answer before the start
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        delivery_id = await session.scalar(select(PartnerDelivery.delivery_id).where(
            PartnerDelivery.partner_id == market.partner_id))
    assert delivery_id not in await one_pass(platform)  # still within its grace period

    grace = timedelta(seconds=platform.settings.stranded_order_grace_seconds)
    await set_order(platform, delivery_id, created_at=datetime.now(UTC) - grace - timedelta(seconds=1))
    assert delivery_id in await one_pass(platform)
    assert await one_pass(platform) == []  # its workflow runs: nothing new
    described = await platform.client.get_workflow_handle(workflow_id(delivery_id)).describe()
    indexed = {key.name: value for key, value in described.typed_search_attributes}
    assert (indexed["PartnerId"], indexed["Market"]) == (str(market.partner_id), market.market.name)

    assert (await drive(market, robot, delivery_id))["status"] == "delivered"
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        pii = await session.scalar(select(PII).join(PartnerDelivery, PartnerDelivery.id == PII.partner_delivery_id)
                                   .where(PartnerDelivery.delivery_id == delivery_id))
    assert pii.purge_after is not None

    # As if the last status had not been recorded, nor the workflow's acceptance.
    await set_order(platform, delivery_id, status="created", accepted_at=None)
    try:
        assert await one_pass(platform) == []  # its closed run keeps the id: never delivered twice
    finally:
        await set_order(platform, delivery_id, status="delivered")


async def test_the_stranded_orders_schedule_runs_every_minute(platform):
    await ensure_stranded_orders_schedule(platform.client)
    handle = platform.client.get_schedule_handle(SCHEDULE_ID)
    try:
        assert await ensure_stranded_orders_schedule(platform.client) is False
        described = await handle.describe()
        assert described.schedule.action.workflow == StrandedOrdersWorkflow.__name__
        assert described.schedule.spec.intervals[0].every == timedelta(minutes=1)
    finally:
        await handle.delete()  # its passes would start other tests' orders stored on purpose without a workflow


async def children_tried(platform: Platform) -> list[str]:
    """Run one pass; the workflow ids of the deliveries it tried to start (started or refused)."""
    handle = await platform.client.start_workflow(StrandedOrdersWorkflow.run, id=f"{SCHEDULE_ID}-{uuid.uuid4()}",
                                                  task_queue=TaskQueue.DELIVERY_WORKFLOWS.value)
    await handle.result()
    return [event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            async for event in handle.fetch_history_events()
            if event.HasField("start_child_workflow_execution_initiated_event_attributes")]


async def test_an_order_its_workflow_accepted_is_not_started_again_while_it_waits_for_a_robot(market):
    platform = market.platform
    delivery_id = await create(market)  # no robot in the market: it waits, still `created` for its partner
    handle = platform.client.get_workflow_handle(workflow_id(delivery_id))

    async def accepted():
        async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
            return await session.scalar(select(PartnerDelivery.accepted_at).where(
                PartnerDelivery.delivery_id == delivery_id))

    try:
        await wait_for(accepted, timeout=30)
        grace = timedelta(seconds=platform.settings.stranded_order_grace_seconds)
        await set_order(platform, delivery_id, created_at=datetime.now(UTC) - grace - timedelta(seconds=1))
        assert workflow_id(delivery_id) not in await children_tried(platform)
        # Never accepted (its workflow died before its first step, say): named, and Temporal refuses the start.
        await set_order(platform, delivery_id, accepted_at=None)
        assert workflow_id(delivery_id) in await children_tried(platform)
    finally:
        await handle.terminate("the test is over")
