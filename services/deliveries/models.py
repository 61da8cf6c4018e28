"""Tables of the Deliveries database: deliveries, their attempts, quotes and customers."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from core.columns import TIMESTAMPTZ, exact_dropoff, utcnow
from core.contracts import AttemptKind, DeliveryStatus


class DeliveriesModel(SQLModel, registry=registry()):
    """Base of every Deliveries table; it has its own MetaData."""


metadata = DeliveriesModel.metadata


class AttemptStatus(StrEnum):
    """Where an attempt is in its lifecycle."""

    PENDING = "pending"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Customer(DeliveriesModel, table=True):
    """The recipient; their personal data stays in Integrations, behind `pii_id`."""

    __tablename__ = "customer"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_id: uuid.UUID = Field(index=True)
    pii_id: uuid.UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class Quote(DeliveriesModel, table=True):
    """A priced offer for a route, valid until `expires_at` and usable by one delivery."""

    __tablename__ = "quote"
    __table_args__ = (
        Index("ix_quote_partner_external", "partner_id", "external_delivery_id"),
        # The quotes whose dropoff the PII purge has yet to coarsen, by when they expired.
        Index("ix_quote_dropoff_to_coarsen", "expires_at", postgresql_where=exact_dropoff()),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_id: uuid.UUID = Field(index=True)
    # The partner's order id when the dialect quotes per order (DoorDash accepts a quote by it).
    external_delivery_id: str | None = Field(default=None, max_length=128)
    market: str = Field(max_length=64)
    fee_cents: int
    currency: str = Field(default="USD", max_length=3)
    pickup_latitude: float
    pickup_longitude: float
    dropoff_latitude: float
    dropoff_longitude: float
    pickup_eta: datetime = Field(sa_type=TIMESTAMPTZ)
    dropoff_eta: datetime = Field(sa_type=TIMESTAMPTZ)
    # When the order was said to be ready at the store when quoted; a delivery created without one takes it.
    ready_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    expires_at: datetime = Field(sa_type=TIMESTAMPTZ)
    used_by_delivery_id: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class Delivery(DeliveriesModel, table=True):
    """One order from pickup to dropoff; `latest_attempt_id` is its current attempt."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint(
            "partner_id", "external_delivery_id", name="uq_delivery_partner_external"
        ),
        # The deliveries whose dropoff the PII purge has yet to coarsen, by when they ended.
        Index("ix_delivery_dropoff_to_coarsen", "ended_at", postgresql_where=exact_dropoff()),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_id: uuid.UUID
    external_delivery_id: str = Field(max_length=128)
    customer_id: uuid.UUID = Field(foreign_key="customer.id", index=True)
    quote_id: uuid.UUID | None = Field(default=None, foreign_key="quote.id")
    status: str = Field(default=DeliveryStatus.CREATED, max_length=32, index=True)
    market: str = Field(max_length=64, index=True)
    store_id: uuid.UUID | None = None
    pickup_latitude: float
    pickup_longitude: float
    dropoff_latitude: float
    dropoff_longitude: float
    # Delivery and attempt reference each other, so this key is added after both tables.
    latest_attempt_id: uuid.UUID | None = Field(
        default=None,
        sa_column_args=[
            ForeignKey("attempt.id", use_alter=True, name="fk_delivery_latest_attempt_id_attempt")
        ],
    )
    cancel_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )
    ended_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)


class Attempt(DeliveriesModel, table=True):
    """One try at moving the order with one robot; a return is a new attempt."""

    __tablename__ = "attempt"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_attempt_delivery_number"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    delivery_id: uuid.UUID = Field(foreign_key="delivery.id")
    number: int
    kind: str = Field(default=AttemptKind.DELIVERY, max_length=16)
    status: str = Field(default=AttemptStatus.PENDING, max_length=16, index=True)
    robot_id: str | None = Field(default=None, max_length=64, index=True)
    started_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    ended_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    end_reason: str | None = Field(default=None, max_length=200)


class AttemptHistory(DeliveriesModel, table=True):
    """Append-only record of every status an attempt passed through."""

    __tablename__ = "attempt_history"
    __table_args__ = (
        UniqueConstraint("attempt_id", "sequence", name="uq_attempt_history_attempt_sequence"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    attempt_id: uuid.UUID = Field(foreign_key="attempt.id")
    sequence: int
    status: str = Field(max_length=32)
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
