"""What happens to a partner's data after the delivery: PII purged on schedule; failed callbacks replayed in order."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from core.services import Service, TaskQueue
from services.deliveries.models import Delivery, Quote
from services.dispatch.models import Demand
from services.integrations import repository
from services.integrations.models import PII, CallbackStatus, ExternalState, PartnerDelivery
from tests.support.robots import drive
from tests.support.waiting import wait_for, wait_terminal
from workflows.callback_replay import replay_callbacks
from workflows.pii_purge import SCHEDULE_ID, PiiPurgeWorkflow, ensure_pii_purge_schedule


async def pii_of(platform, delivery_id) -> PII:
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        return await session.scalar(select(PII).join(PartnerDelivery, PartnerDelivery.id == PII.partner_delivery_id)
                                    .where(PartnerDelivery.delivery_id == uuid.UUID(str(delivery_id))))


async def test_an_ended_deliverys_pii_is_purged_by_the_scheduled_workflow(market):
    platform = market.platform
    async with market.partner_http() as partner:
        delivery_id = (await partner.post("/v1/deliveries", json=market.order())).json()["id"]
        await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "other"})
    await wait_terminal(platform, delivery_id)

    async def purge_set():
        pii = await pii_of(platform, delivery_id)
        return pii if pii.purge_after is not None else None

    pii = await purge_set() or await wait_for(purge_set)
    retention = timedelta(days=platform.settings.pii_retention_days)
    assert retention - timedelta(minutes=1) < pii.purge_after - datetime.now(UTC) <= retention
    assert pii.customer_name_encrypted is not None and pii.purged_at is None

    # Its time comes: the purge the schedule runs erases it (and only what is due).
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        await session.execute(update(PII).where(PII.id == pii.id).values(purge_after=datetime.now(UTC)))
    purged = await platform.client.execute_workflow(PiiPurgeWorkflow.run, id=f"purge-{uuid.uuid4()}",
                                                    task_queue=TaskQueue.DELIVERY_WORKFLOWS.value)
    assert purged.orders >= 1
    pii = await pii_of(platform, delivery_id)
    assert pii.purged_at is not None
    assert (pii.customer_name_encrypted, pii.customer_phone_encrypted, pii.dropoff_address_encrypted) == (None,) * 3

    await ensure_pii_purge_schedule(platform.client)  # created here, or by an earlier test
    assert await ensure_pii_purge_schedule(platform.client) is False
    described = await platform.client.get_schedule_handle(SCHEDULE_ID).describe()
    assert described.schedule.action.workflow == PiiPurgeWorkflow.__name__
    assert described.schedule.spec.intervals[0].every == timedelta(hours=1)


async def test_a_purged_delivery_keeps_only_a_coarse_dropoff_in_every_database(market):
    """Integrations, Deliveries and Dispatch each round the dropoff to about a kilometre once retention has passed;
    the partner's view and the proof of delivery still answer."""
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    order, kept = market.order(), market.order()
    async with market.partner_http() as partner:
        quote = (await partner.post("/v1/quotes", json={k: order[k] for k in ("pickup", "dropoff")})).json()
        delivery_id = uuid.UUID((await partner.post("/v1/deliveries", json={**order, "quote_id": quote["id"]}))
                                .json()["id"])
        assert (await drive(market, robot, delivery_id))["status"] == "delivered"
        recent_id = uuid.UUID((await partner.post("/v1/deliveries", json=kept)).json()["id"])
        await partner.post(f"/v1/deliveries/{recent_id}/cancel", json={"reason": "other"})
    await wait_terminal(platform, recent_id)
    await wait_for(lambda: _purge_set(platform, delivery_id))
    await wait_for(lambda: _purge_set(platform, recent_id))

    # Retention passes for the delivered order only, in each service's own terms.
    long_ago = datetime.now(UTC) - timedelta(days=platform.settings.pii_retention_days, minutes=1)
    await _execute(platform, Service.INTEGRATIONS, update(PII).where(
        PII.partner_delivery_id == PartnerDelivery.id, PartnerDelivery.delivery_id == delivery_id)
        .values(purge_after=datetime.now(UTC)))
    await _execute(platform, Service.DELIVERIES, update(Delivery).where(Delivery.id == delivery_id)
                   .values(ended_at=long_ago))
    await _execute(platform, Service.DELIVERIES, update(Quote).where(Quote.id == uuid.UUID(quote["id"]))
                   .values(expires_at=long_ago))
    await _execute(platform, Service.DISPATCH, update(Demand).where(Demand.delivery_id == delivery_id)
                   .values(updated_at=long_ago))
    await platform.client.execute_workflow(PiiPurgeWorkflow.run, id=f"purge-{uuid.uuid4()}",
                                           task_queue=TaskQueue.DELIVERY_WORKFLOWS.value)

    exact = (order["dropoff"]["latitude"], order["dropoff"]["longitude"])
    coarse = tuple(round(value, 2) for value in exact)
    assert coarse != exact
    assert await _dropoffs(platform, delivery_id, quote["id"]) == [coarse] * 4
    assert set(await _dropoffs(platform, recent_id)) == {(kept["dropoff"]["latitude"], kept["dropoff"]["longitude"])}
    async with market.partner_http() as partner:
        view = await partner.get(f"/v1/deliveries/{delivery_id}")
        assert view.status_code == 200 and view.json()["status"] == "delivered"
        assert (await partner.get(f"/v1/deliveries/{delivery_id}/proof-of-delivery")).status_code == 200


async def _purge_set(platform, delivery_id) -> bool:
    return (await pii_of(platform, delivery_id)).purge_after is not None


async def _execute(platform, service: Service, statement) -> None:
    async with platform.databases.sessions(service).begin() as session:
        await session.execute(statement)


async def _dropoffs(platform, delivery_id, quote_id: str | None = None) -> list[tuple[float, float]]:
    """The dropoff as Integrations, Deliveries and Dispatch keep it (and the delivery's quote, if any)."""
    dbs, found = platform.databases, []
    tables = [(Service.INTEGRATIONS, PartnerDelivery, PartnerDelivery.delivery_id == delivery_id),
              (Service.DELIVERIES, Delivery, Delivery.id == delivery_id),
              (Service.DISPATCH, Demand, Demand.delivery_id == delivery_id)]
    if quote_id:
        tables.append((Service.DELIVERIES, Quote, Quote.id == uuid.UUID(quote_id)))
    for service, table, where in tables:
        async with dbs.sessions(service).begin() as session:
            rows = await session.execute(select(table.dropoff_latitude, table.dropoff_longitude).where(where))
            found += [tuple(row) for row in rows]
    return found


async def test_callbacks_that_ran_out_of_retries_are_replayed_in_order(market, receiver, lifecycle_policy):
    platform = market.platform
    lifecycle_policy(callback_max_attempts=2, callback_initial_interval_seconds=0.05)
    receiver.fail_next = 1000
    try:
        async with market.partner_http() as partner:
            delivery_id = (await partner.post("/v1/deliveries", json=market.order())).json()["id"]
            await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "other"})
        await wait_terminal(platform, delivery_id)
    finally:
        receiver.fail_next = 0
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        failed = await repository.failed_callbacks(session, uuid.UUID(delivery_id))
    assert [c.status.value for c in failed] == ["created", "cancelled"] and receiver.statuses(delivery_id) == []

    lines = await replay_callbacks(platform.client, failed)
    assert lines == [f"delivery {delivery_id}: sent [1, 2]"]
    assert receiver.statuses(delivery_id) == ["created", "cancelled"]
    sequences = [c["data"]["sequence"] for c in receiver.received if c["data"]["delivery_id"] == delivery_id]
    assert sequences == [1, 2]
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        trail = list(await session.scalars(select(ExternalState.callback_status)
                                           .where(ExternalState.partner_delivery_id == failed[0].partner_delivery_id)
                                           .order_by(ExternalState.sequence)))
        assert trail == [CallbackStatus.DELIVERED, CallbackStatus.DELIVERED]
        assert await repository.failed_callbacks(session, uuid.UUID(delivery_id)) == []
