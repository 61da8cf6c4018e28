"""Deliveries activities against the real Deliveries database: idempotency, attempts and their history."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from activities.deliveries import DeliveriesActivities
from core.contracts import AttemptOutcome, DeliveryOrder, DeliveryStatus, NewAttempt, Point, StatusChange
from core.db import Databases
from core.errors import UNKNOWN_ORDER
from core.services import Service
from services.deliveries import repository
from services.deliveries.models import Attempt, AttemptHistory, Customer, Delivery, Quote

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PICKUP = Point(latitude=37.7749, longitude=-122.4194)
DROPOFF = Point(latitude=37.7790, longitude=-122.4140)


@pytest.fixture(scope="module")
async def databases(settings):
    databases = Databases(settings, [Service.DELIVERIES])
    yield databases
    await databases.dispose()


@pytest.fixture
def sessions(databases):
    return databases.sessions(Service.DELIVERIES)


@pytest.fixture
def deliveries(sessions, settings) -> DeliveriesActivities:
    return DeliveriesActivities(sessions, settings)


def an_order(**changes) -> DeliveryOrder:
    fields = dict(
        delivery_id=uuid.uuid4(), partner_id=uuid.uuid4(), partner_delivery_id=uuid.uuid4(), pii_id=uuid.uuid4(),
        external_delivery_id=f"ext-{uuid.uuid4().hex[:12]}", market=f"m-{uuid.uuid4().hex[:8]}",
        store_id=uuid.uuid4(), pickup=PICKUP, dropoff=DROPOFF,
    )
    return DeliveryOrder(**(fields | changes))


def a_change(attempt, sequence: int, status: DeliveryStatus, **changes) -> StatusChange:
    return StatusChange(delivery_id=attempt.delivery_id, attempt_id=attempt.attempt_id, status=status,
                        sequence=sequence, occurred_at=NOW + timedelta(minutes=sequence), **changes)


async def count(sessions, model, *where) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def fetch(sessions, model, key):
    async with sessions() as session:
        return await session.get(model, key)


async def test_create_delivery_is_idempotent(deliveries, sessions):
    order = an_order()
    first = await deliveries.create_delivery(order)
    again = await deliveries.create_delivery(order)

    assert again == first
    assert (first.number, first.kind, first.delivery_id) == (1, "delivery", order.delivery_id)
    assert await count(sessions, Delivery, Delivery.id == order.delivery_id) == 1
    assert await count(sessions, Attempt, Attempt.delivery_id == order.delivery_id) == 1
    assert await count(sessions, Customer, Customer.pii_id == order.pii_id) == 1
    delivery = await fetch(sessions, Delivery, order.delivery_id)
    assert delivery.latest_attempt_id == first.attempt_id
    assert (delivery.status, delivery.market, delivery.store_id) == ("created", order.market, order.store_id)
    attempt = await fetch(sessions, Attempt, first.attempt_id)
    assert attempt.status == "pending"


async def test_concurrent_duplicate_create_delivery_stores_it_once(deliveries, sessions):
    order = an_order()
    results = await asyncio.gather(*(deliveries.create_delivery(order) for _ in range(4)))

    assert all(result == results[0] for result in results)
    assert await count(sessions, Attempt, Attempt.delivery_id == order.delivery_id) == 1
    assert await count(sessions, Customer, Customer.pii_id == order.pii_id) == 1


async def test_create_delivery_claims_its_quote(deliveries, sessions):
    partner_id = uuid.uuid4()
    quote = Quote(partner_id=partner_id, market="test", fee_cents=499, pickup_latitude=PICKUP.latitude,
                  pickup_longitude=PICKUP.longitude, dropoff_latitude=DROPOFF.latitude,
                  dropoff_longitude=DROPOFF.longitude, pickup_eta=NOW, dropoff_eta=NOW, expires_at=NOW)
    async with sessions.begin() as session:
        session.add(quote)
    order = an_order(partner_id=partner_id, quote_id=quote.id)

    await deliveries.create_delivery(order)
    await deliveries.create_delivery(order)

    assert (await fetch(sessions, Quote, quote.id)).used_by_delivery_id == order.delivery_id
    assert (await fetch(sessions, Delivery, order.delivery_id)).quote_id == quote.id


async def test_create_delivery_with_an_unknown_quote_is_a_business_error(deliveries, sessions):
    order = an_order(quote_id=uuid.uuid4())
    with pytest.raises(ApplicationError) as raised:
        await deliveries.create_delivery(order)
    assert (raised.value.type, raised.value.non_retryable) == (UNKNOWN_ORDER, True)
    assert await count(sessions, Delivery, Delivery.id == order.delivery_id) == 0


async def test_start_attempt_is_idempotent_and_moves_latest_attempt(deliveries, sessions):
    order = an_order()
    first = await deliveries.create_delivery(order)
    request = NewAttempt(delivery_id=order.delivery_id, number=2, kind="return",
                         previous_attempt_id=first.attempt_id, previous_outcome="customer_no_show")

    second = await deliveries.start_attempt(request)
    again = await deliveries.start_attempt(request)

    assert again == second
    assert (second.number, second.kind) == (2, "return")
    assert second.attempt_id != first.attempt_id
    assert await count(sessions, Attempt, Attempt.delivery_id == order.delivery_id) == 2
    assert (await fetch(sessions, Delivery, order.delivery_id)).latest_attempt_id == second.attempt_id

    third = await deliveries.start_attempt(NewAttempt(delivery_id=order.delivery_id, number=3, kind="delivery"))
    assert (await fetch(sessions, Delivery, order.delivery_id)).latest_attempt_id == third.attempt_id


async def test_start_attempt_of_an_unknown_delivery_is_a_business_error(deliveries):
    with pytest.raises(ApplicationError) as raised:
        await deliveries.start_attempt(NewAttempt(delivery_id=uuid.uuid4(), number=2, kind="delivery"))
    assert raised.value.type == UNKNOWN_ORDER


async def test_record_status_appends_history_once_per_sequence(deliveries, sessions):
    attempt = await deliveries.create_delivery(an_order())
    await deliveries.record_status(a_change(attempt, 1, DeliveryStatus.CREATED))
    assigned = a_change(attempt, 2, DeliveryStatus.ROBOT_ASSIGNED, robot_id="r-1")
    await deliveries.record_status(assigned)
    await deliveries.record_status(assigned)
    # A different status under a sequence already recorded is a replayed call: nothing changes.
    await deliveries.record_status(a_change(attempt, 2, DeliveryStatus.CANCELLED, reason="late"))

    history = AttemptHistory.attempt_id == attempt.attempt_id
    assert await count(sessions, AttemptHistory, history) == 2
    delivery = await fetch(sessions, Delivery, attempt.delivery_id)
    assert (delivery.status, delivery.ended_at, delivery.cancel_reason) == ("robot_assigned", None, None)
    row = await fetch(sessions, Attempt, attempt.attempt_id)
    assert (row.status, row.robot_id) == ("active", "r-1")


async def test_terminal_status_ends_the_delivery(deliveries, sessions):
    attempt = await deliveries.create_delivery(an_order())
    await deliveries.record_status(a_change(attempt, 1, DeliveryStatus.AT_DROPOFF, robot_id="r-1"))
    delivered = a_change(attempt, 2, DeliveryStatus.DELIVERED, robot_id="r-1")
    await deliveries.record_status(delivered)

    delivery = await fetch(sessions, Delivery, attempt.delivery_id)
    assert (delivery.status, delivery.ended_at) == ("delivered", delivered.occurred_at)


async def test_cancelled_while_searching_closes_the_open_attempt(deliveries, sessions):
    attempt = await deliveries.create_delivery(an_order())
    cancelled = a_change(attempt, 1, DeliveryStatus.CANCELLED, reason="no_robot_available")
    await deliveries.record_status(cancelled)

    delivery = await fetch(sessions, Delivery, attempt.delivery_id)
    assert (delivery.status, delivery.cancel_reason, delivery.ended_at) == (
        "cancelled", "no_robot_available", cancelled.occurred_at)
    row = await fetch(sessions, Attempt, attempt.attempt_id)
    assert (row.status, row.end_reason) == ("cancelled", "no_robot_available")


async def test_end_attempt_is_idempotent_and_an_ended_attempt_stays_ended(deliveries, sessions):
    attempt = await deliveries.create_delivery(an_order())
    await deliveries.record_status(a_change(attempt, 1, DeliveryStatus.ROBOT_ASSIGNED, robot_id="r-1"))
    outcome = AttemptOutcome(attempt_id=attempt.attempt_id, status="failed", reason="robot_fault: stuck",
                             sequence=2, occurred_at=NOW + timedelta(minutes=2))
    await deliveries.end_attempt(outcome)
    await deliveries.end_attempt(outcome)
    await deliveries.record_status(a_change(attempt, 3, DeliveryStatus.CANCELLED, robot_id="r-1", reason="x"))

    row = await fetch(sessions, Attempt, attempt.attempt_id)
    assert (row.status, row.ended_at, row.end_reason) == ("failed", outcome.occurred_at, "robot_fault: stuck")
    assert await count(sessions, AttemptHistory, AttemptHistory.attempt_id == attempt.attempt_id,
                       AttemptHistory.status == "failed") == 1


async def test_delivery_view_shows_attempts_and_their_trail(deliveries, sessions):
    order = an_order()
    first = await deliveries.create_delivery(order)
    await deliveries.record_status(a_change(first, 1, DeliveryStatus.CREATED))
    await deliveries.record_status(a_change(first, 2, DeliveryStatus.AT_DROPOFF, robot_id="r-9"))
    await deliveries.end_attempt(AttemptOutcome(attempt_id=first.attempt_id, status="failed",
                                                reason="customer_no_show", sequence=3, occurred_at=NOW))
    second = await deliveries.start_attempt(NewAttempt(delivery_id=order.delivery_id, number=2, kind="return"))
    await deliveries.record_status(a_change(second, 1, DeliveryStatus.RETURNING, robot_id="r-9"))

    async with sessions() as session:
        view = await repository.get_delivery_view(session, order.delivery_id)
        found = await repository.find_delivery_by_external_id(session, order.partner_id,
                                                              order.external_delivery_id)
        missing = await repository.find_delivery_by_external_id(session, order.partner_id, "nope")

    assert found == view and missing is None
    assert (view["status"], view["latest_attempt_id"]) == ("returning", second.attempt_id)
    assert [(a["number"], a["kind"], a["status"], a["robot_id"]) for a in view["attempts"]] == [
        (1, "delivery", "failed", "r-9"), (2, "return", "active", "r-9")]
    assert view["attempts"][0]["end_reason"] == "customer_no_show"
    assert [(h["attempt_number"], h["sequence"], h["status"]) for h in view["history"]] == [
        (1, 1, "created"), (1, 2, "at_dropoff"), (1, 3, "failed"), (2, 1, "returning")]
    async with sessions() as session:
        assert await repository.get_delivery_view(session, uuid.uuid4()) is None
