"""The lifecycle with its production timers (minutes long), on the time-skipping test server.

The pickup-wait and no-show timers run while the trip monitor's long-running activity is in flight, and
the test server does not skip time while an activity runs; those paths are tested on the dev server with
short timers (test_failure_paths.py). The robot-search deadline runs with no activity in flight.
"""

import asyncio
import uuid

import pytest
from sqlalchemy import select

import worker
from core.contracts import DeliveryOrder, LifecyclePolicy, Point
from core.crypto import vault_from_settings
from core.services import Service, TaskQueue
from services.dispatch.models import Demand
from services.integrations import repository as integrations
from services.integrations.models import PartnerDelivery
from tests.support.platform import rows
from workflows.delivery import DeliveryWorkflow, workflow_id


@pytest.fixture
async def skipping_workers(platform, time_skipping_env):
    client = time_skipping_env.client
    workers = [worker.build_worker(client, queue, platform.databases, platform.settings) for queue in TaskQueue]
    running = [asyncio.create_task(w.run()) for w in workers]
    yield client
    await asyncio.gather(*(w.shutdown() for w in workers))
    await asyncio.gather(*running, return_exceptions=True)


async def stored_order(market) -> DeliveryOrder:
    """An order stored in Integrations as the API stores it, for a workflow started on another server."""
    pickup, dropoff = Point(**market.point(north_m=100)), Point(**market.point(north_m=300))
    async with market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        order = PartnerDelivery(partner_id=market.partner_id, external_delivery_id=f"skip-{uuid.uuid4().hex[:8]}",
                                delivery_id=uuid.uuid4(), request_hash="-", status="created",
                                market=market.market.name, pickup_latitude=pickup.latitude,
                                pickup_longitude=pickup.longitude, dropoff_latitude=dropoff.latitude,
                                dropoff_longitude=dropoff.longitude, tracking_token=uuid.uuid4().hex)
        pii = await integrations.store_order(session, vault_from_settings(market.platform.settings), order, {
            "name": "Skip Customer", "phone": "+13105550111", "address": "2 Test Way", "instructions": None})
    return DeliveryOrder(delivery_id=order.delivery_id, partner_id=market.partner_id, partner_delivery_id=order.id,
                         pii_id=pii.id, external_delivery_id=order.external_delivery_id, market=market.market.name,
                         pickup=pickup, dropoff=dropoff, policy=LifecyclePolicy())


async def test_no_robot_for_ten_minutes_cancels_with_the_default_deadline(market, skipping_workers):
    await market.add_pilot()
    order = await stored_order(market)
    assert order.policy.robot_search_seconds == 600
    # The handle from start_workflow is the one that lets the test server skip time while awaiting the result.
    handle = await skipping_workers.start_workflow(DeliveryWorkflow.run, order, id=workflow_id(order.delivery_id),
                                                   task_queue=TaskQueue.DELIVERY_WORKFLOWS.value)
    started = await handle.describe()
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert (result.status, result.reason) == ("cancelled", "no_robot_available")
    closed = await handle.describe()
    assert (closed.close_time - started.start_time).total_seconds() >= 600
    demands = await rows(market.platform, Service.DISPATCH, select(Demand.status).where(
        Demand.delivery_id == order.delivery_id))
    assert demands == ["cancelled"]

