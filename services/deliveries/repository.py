"""Queries of the Deliveries database: deliveries, customers, attempts and their history. Never commits."""

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.columns import coarsened_dropoff, exact_dropoff
from core.contracts import TERMINAL_STATUSES, DeliveryOrder, QuoteOffer, StatusChange
from services.deliveries.models import (
    Attempt, AttemptHistory, AttemptStatus, Customer, Delivery, DeliveryStatus, Quote, utcnow,
)

# Customer ids derive from (partner, PII record), so storing the same customer twice is a no-op.
CUSTOMER_NAMESPACE = uuid.UUID("5f0c7a52-2a8e-4d53-9a4b-6f1e0d7c3b21")
OPEN_ATTEMPT = (AttemptStatus.PENDING, AttemptStatus.ACTIVE)
REASON_LENGTH = 200


async def upsert_customer(session: AsyncSession, partner_id: uuid.UUID, pii_id: uuid.UUID) -> uuid.UUID:
    """The id of the partner's customer behind `pii_id`, stored if new."""
    customer_id = uuid.uuid5(CUSTOMER_NAMESPACE, f"{partner_id}:{pii_id}")
    await session.execute(
        insert(Customer)
        .values(id=customer_id, partner_id=partner_id, pii_id=pii_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[Customer.id])
    )
    return customer_id


async def insert_delivery(session: AsyncSession, order: DeliveryOrder, customer_id: uuid.UUID) -> bool:
    """Store the order as a created delivery; False if a delivery with its id already exists."""
    now = utcnow()
    inserted = await session.scalar(
        insert(Delivery)
        .values(
            id=order.delivery_id, partner_id=order.partner_id, external_delivery_id=order.external_delivery_id,
            customer_id=customer_id, quote_id=order.quote_id, status=DeliveryStatus.CREATED, market=order.market,
            store_id=order.store_id, pickup_latitude=order.pickup.latitude, pickup_longitude=order.pickup.longitude,
            dropoff_latitude=order.dropoff.latitude, dropoff_longitude=order.dropoff.longitude,
            created_at=now, updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Delivery.id])
        .returning(Delivery.id)
    )
    return inserted is not None


async def record_quote(session: AsyncSession, offer: QuoteOffer) -> None:
    """Store a quote's offer, once."""
    await session.execute(insert(Quote).values(
        id=offer.quote_id, partner_id=offer.partner_id, external_delivery_id=offer.external_delivery_id,
        market=offer.market, fee_cents=offer.fee_cents, currency=offer.currency,
        pickup_latitude=offer.pickup.latitude, pickup_longitude=offer.pickup.longitude,
        dropoff_latitude=offer.dropoff.latitude, dropoff_longitude=offer.dropoff.longitude,
        pickup_eta=offer.pickup_eta, dropoff_eta=offer.dropoff_eta, ready_at=offer.ready_at,
        expires_at=offer.expires_at, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=[Quote.id]))


async def coarsen_dropoffs(session: AsyncSession, ended_before: datetime) -> int:
    """Round the dropoff of deliveries that ended, and quotes that expired, before `ended_before`; how many."""
    coarsened = 0
    for ended in (Delivery.ended_at, Quote.expires_at):
        result = await session.execute(update(ended.class_).where(ended <= ended_before, exact_dropoff())
                                       .values(**coarsened_dropoff()))
        coarsened += result.rowcount
    return coarsened


async def find_quote(session: AsyncSession, partner_id: uuid.UUID, quote_id: uuid.UUID | None = None,
                     external_delivery_id: str | None = None) -> Quote | None:
    """A partner's quote by id, or its newest quote for one of its order ids."""
    query = select(Quote).where(Quote.partner_id == partner_id)
    if quote_id is not None:
        query = query.where(Quote.id == quote_id)
    if external_delivery_id is not None:
        query = query.where(Quote.external_delivery_id == external_delivery_id)
    return await session.scalar(query.order_by(Quote.created_at.desc()).limit(1))


async def quote_exists(session: AsyncSession, quote_id: uuid.UUID) -> bool:
    """Whether the quote is on record."""
    return await session.scalar(select(Quote.id).where(Quote.id == quote_id)) is not None


async def claim_quote(session: AsyncSession, quote_id: uuid.UUID, delivery_id: uuid.UUID) -> None:
    """Mark the quote used by the delivery, unless some delivery already used it."""
    await session.execute(
        update(Quote)
        .where(Quote.id == quote_id, Quote.used_by_delivery_id.is_(None))
        .values(used_by_delivery_id=delivery_id)
    )


_DELIVERIES = Delivery.__table__.c
ROBOT_VIEW = select(_DELIVERIES.status, _DELIVERIES.pickup_latitude, _DELIVERIES.pickup_longitude,
                    _DELIVERIES.dropoff_latitude, _DELIVERIES.dropoff_longitude
                    ).where(_DELIVERIES.id == bindparam("delivery_id"))


async def robot_view(db: AsyncConnection, delivery_id: uuid.UUID) -> Row | None:
    """What a delivery's robot is told of it: its status, pickup and dropoff (built once: read on every push)."""
    return (await db.execute(ROBOT_VIEW, {"delivery_id": delivery_id})).first()


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID, lock: bool = False) -> Delivery | None:
    """A delivery by id, optionally locked for this transaction."""
    query = select(Delivery).where(Delivery.id == delivery_id)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def insert_attempt(session: AsyncSession, delivery_id: uuid.UUID, number: int, kind: str) -> uuid.UUID | None:
    """Start attempt `number` of a delivery, pending; None if that attempt already exists."""
    return await session.scalar(
        insert(Attempt)
        .values(
            id=uuid.uuid4(), delivery_id=delivery_id, number=number, kind=kind,
            status=AttemptStatus.PENDING, started_at=utcnow(),
        )
        .on_conflict_do_nothing(constraint="uq_attempt_delivery_number")
        .returning(Attempt.id)
    )


async def get_attempt(session: AsyncSession, delivery_id: uuid.UUID, number: int) -> Attempt | None:
    """Attempt `number` of a delivery."""
    return await session.scalar(
        select(Attempt).where(Attempt.delivery_id == delivery_id, Attempt.number == number)
    )


async def set_latest_attempt(session: AsyncSession, delivery_id: uuid.UUID, attempt_id: uuid.UUID) -> None:
    """Point the delivery at its current attempt."""
    await session.execute(
        update(Delivery).where(Delivery.id == delivery_id).values(latest_attempt_id=attempt_id)
    )


async def append_history(
    session: AsyncSession, attempt_id: uuid.UUID, sequence: int, status: str, occurred_at: datetime,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Append entry `sequence` to an attempt's history; False if that entry was already there."""
    inserted = await session.scalar(
        insert(AttemptHistory)
        .values(id=uuid.uuid4(), attempt_id=attempt_id, sequence=sequence, status=status,
                occurred_at=occurred_at, detail=detail)
        .on_conflict_do_nothing(constraint="uq_attempt_history_attempt_sequence")
        .returning(AttemptHistory.id)
    )
    return inserted is not None


# A status change in one self-contained statement (one round trip, its own transaction): the history entry, and only
# if it is new, the delivery's status (a terminal one also ends it, a cancellation keeps its reason), the attempt
# made active with its robot or, on a cancellation while still open, ended, and the notice that the delivery's
# assignment changed. Nothing happens again when the entry is already there, so a retry changes nothing; the
# statement returns a row only when the entry is new.
STATUS_CHANGE = text("""
    WITH appended AS (
        INSERT INTO attempt_history (id, attempt_id, sequence, status, occurred_at, detail)
        VALUES (gen_random_uuid(), :attempt_id, :sequence, :status, :occurred_at, CAST(:detail AS jsonb))
        ON CONFLICT ON CONSTRAINT uq_attempt_history_attempt_sequence DO NOTHING
        RETURNING attempt_id
    ), moved AS (
        UPDATE delivery SET status = :status, updated_at = now(),
            ended_at = CASE WHEN CAST(:ends AS boolean) THEN :occurred_at ELSE ended_at END,
            cancel_reason = CASE WHEN CAST(:cancelled AS boolean) THEN :reason ELSE cancel_reason END
        WHERE id = :delivery_id AND EXISTS (SELECT FROM appended)
        RETURNING id
    ), attempt_moved AS (
        UPDATE attempt SET robot_id = coalesce(CAST(:robot_id AS varchar), robot_id),
            status = CASE WHEN CAST(:cancelled AS boolean) THEN :cancelled_status ELSE :active_status END,
            ended_at = CASE WHEN CAST(:cancelled AS boolean) THEN :occurred_at ELSE ended_at END,
            end_reason = CASE WHEN CAST(:cancelled AS boolean) THEN :reason ELSE end_reason END
        WHERE id = :attempt_id AND status IN (:pending_status, :active_status)
            AND (CAST(:robot_id AS varchar) IS NOT NULL OR CAST(:cancelled AS boolean))
            AND EXISTS (SELECT FROM appended)
    )
    SELECT pg_notify(:channel, CAST(id AS text)) FROM moved
""")


async def record_status(connection: AsyncConnection, change: StatusChange, channel: str) -> bool:
    """Record a delivery's status change (see `STATUS_CHANGE`), notifying `channel` with the delivery's id; False
    if it was recorded before. `connection` commits each statement on its own."""
    cancelled = change.status == DeliveryStatus.CANCELLED
    result = await connection.execute(STATUS_CHANGE, {
        "attempt_id": change.attempt_id, "delivery_id": change.delivery_id, "sequence": change.sequence,
        "status": change.status.value, "occurred_at": change.occurred_at,
        "detail": json.dumps({"robot_id": change.robot_id, "reason": change.reason}),
        "ends": change.status in TERMINAL_STATUSES, "cancelled": cancelled, "reason": _clip(change.reason),
        "robot_id": change.robot_id, "channel": channel, "pending_status": AttemptStatus.PENDING.value,
        "active_status": AttemptStatus.ACTIVE.value, "cancelled_status": AttemptStatus.CANCELLED.value,
    })
    return result.first() is not None


async def close_attempt(
    session: AsyncSession, attempt_id: uuid.UUID, status: AttemptStatus, ended_at: datetime, reason: str | None,
    only_open: bool = False,
) -> None:
    """End an attempt with `status`; with `only_open`, an attempt already ended is left alone."""
    query = update(Attempt).where(Attempt.id == attempt_id)
    if only_open:
        query = query.where(Attempt.status.in_(OPEN_ATTEMPT))
    await session.execute(query.values(status=status, ended_at=ended_at, end_reason=_clip(reason)))


async def get_delivery_view(session: AsyncSession, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    """The delivery with its attempts and their history trail, in order; None if unknown."""
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None:
        return None
    attempts = list(await session.scalars(
        select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
    ))
    numbers = {attempt.id: attempt.number for attempt in attempts}
    history = await session.scalars(
        select(AttemptHistory)
        .join(Attempt, Attempt.id == AttemptHistory.attempt_id)
        .where(Attempt.delivery_id == delivery_id)
        .order_by(Attempt.number, AttemptHistory.sequence)
    )
    view = _delivery_fields(delivery)
    view["attempts"] = [_attempt_fields(attempt) for attempt in attempts]
    view["history"] = [_history_fields(entry, numbers[entry.attempt_id]) for entry in history]
    return view


async def find_delivery_by_external_id(
    session: AsyncSession, partner_id: uuid.UUID, external_delivery_id: str
) -> dict[str, Any] | None:
    """The view of a partner's delivery by the partner's own id; None if unknown."""
    delivery_id = await session.scalar(
        select(Delivery.id).where(
            Delivery.partner_id == partner_id, Delivery.external_delivery_id == external_delivery_id
        )
    )
    return None if delivery_id is None else await get_delivery_view(session, delivery_id)


def _delivery_fields(delivery: Delivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.id, "partner_id": delivery.partner_id,
        "external_delivery_id": delivery.external_delivery_id, "customer_id": delivery.customer_id,
        "quote_id": delivery.quote_id, "status": delivery.status, "market": delivery.market,
        "store_id": delivery.store_id,
        "pickup": {"latitude": delivery.pickup_latitude, "longitude": delivery.pickup_longitude},
        "dropoff": {"latitude": delivery.dropoff_latitude, "longitude": delivery.dropoff_longitude},
        "latest_attempt_id": delivery.latest_attempt_id, "cancel_reason": delivery.cancel_reason,
        "created_at": delivery.created_at, "updated_at": delivery.updated_at, "ended_at": delivery.ended_at,
    }


def _attempt_fields(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt_id": attempt.id, "number": attempt.number, "kind": attempt.kind, "status": attempt.status,
        "robot_id": attempt.robot_id, "started_at": attempt.started_at, "ended_at": attempt.ended_at,
        "end_reason": attempt.end_reason,
    }


def _history_fields(entry: AttemptHistory, attempt_number: int) -> dict[str, Any]:
    detail = entry.detail or {}
    return {
        "attempt_number": attempt_number, "sequence": entry.sequence, "status": entry.status,
        "occurred_at": entry.occurred_at, "robot_id": detail.get("robot_id"), "reason": detail.get("reason"),
    }


def _clip(reason: str | None) -> str | None:
    return None if reason is None else reason[:REASON_LENGTH]
