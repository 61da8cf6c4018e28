"""Tables of the Integrations database: partners, their orders, status trail and PII."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from core.columns import TIMESTAMPTZ, utcnow


class IntegrationsModel(SQLModel, registry=registry()):
    """Base of every Integrations table; it has its own MetaData."""


metadata = IntegrationsModel.metadata


class PartnerDialect(StrEnum):
    """The API flavour a partner speaks."""

    NATIVE = "native"
    DOORDASH = "doordash"
    UBER = "uber"
    OLO = "olo"


class CallbackStatus(StrEnum):
    """Delivery state of one outbound status callback."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


class Partner(IntegrationsModel, table=True):
    """A company that sends us deliveries and receives status callbacks."""

    __tablename__ = "partner"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    dialect: str = Field(default=PartnerDialect.NATIVE, max_length=16)
    # The partner's account in its dialect: DoorDash developer_id, Uber customer_id.
    account_id: str | None = Field(default=None, max_length=64, unique=True)
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_enabled: bool = False
    # False for a test partner (the sandbox): its deliveries are played by a sandbox robot, never a real one.
    live_mode: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class CredentialKind(StrEnum):
    """What a partner credential is for."""

    API_KEY = "api_key"  # native and olo: a bearer key, stored hashed
    SIGNING_KEY = "signing_key"  # doordash: the JWT signing secret, sealed (we must verify with it)
    CLIENT_SECRET = "client_secret"  # uber: the OAuth client secret, stored hashed
    ACCESS_TOKEN = "access_token"  # uber: a bearer token issued by /oauth/v2/token, stored hashed
    WEBHOOK_SECRET = "webhook_secret"  # every dialect: signs our callbacks, sealed
    WEBHOOK_AUTHORIZATION = "webhook_auth"  # doordash: the Authorization header the partner registered, sealed


class PartnerCredential(IntegrationsModel, table=True):
    """One secret of a partner. Rotation adds a new one and gives the old one an expiry (the overlap)."""

    __tablename__ = "partner_credential"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    kind: str = Field(max_length=16)
    # The public half, where the dialect has one: DoorDash key_id, Uber client_id.
    key_id: str | None = Field(default=None, max_length=64, index=True)
    secret_hash: str | None = Field(default=None, max_length=128, unique=True)
    secret_encrypted: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    expires_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)


class Store(IntegrationsModel, table=True):
    """A partner's pickup location, known by the partner's own store id."""

    __tablename__ = "store"
    __table_args__ = (
        UniqueConstraint("partner_id", "external_store_id", name="uq_store_partner_external"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    external_store_id: str = Field(max_length=128)
    name: str = Field(max_length=200)
    latitude: float
    longitude: float
    market: str = Field(max_length=64)
    # How long the store takes to prepare an order, in minutes; none: the market's default.
    preparation_minutes: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class PartnerDelivery(IntegrationsModel, table=True):
    """A partner's order as the partner sees it; `delivery_id` points into Deliveries."""

    __tablename__ = "partner_delivery"
    __table_args__ = (
        UniqueConstraint(
            "partner_id", "external_delivery_id", name="uq_partner_delivery_partner_external"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    external_delivery_id: str = Field(max_length=128)
    delivery_id: uuid.UUID | None = Field(default=None, index=True)
    # Hash of the normalized request: a replay with a different body is a conflict.
    request_hash: str = Field(max_length=128)
    status: str = Field(max_length=32, index=True)
    store_id: uuid.UUID | None = Field(default=None, foreign_key="store.id")
    quote_id: uuid.UUID | None = Field(default=None, unique=True)
    # Where the order goes, as accepted (coordinates only; the addresses are PII, sealed in PII).
    market: str = Field(max_length=64)
    pickup_latitude: float
    pickup_longitude: float
    dropoff_latitude: float
    dropoff_longitude: float
    # The public tracking page's key: random, unguessable, and unrelated to any id.
    tracking_token: str = Field(max_length=64, unique=True)
    cancel_reason: str | None = Field(default=None, max_length=64)
    # The price of the quote the order was created with (none without a quote).
    fee_cents: int | None = None
    currency: str | None = Field(default=None, max_length=3)
    # When the order is ready at the store: the partner's time, its quote's, or the store's preparation estimate.
    ready_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    # The partner's mode, kept with each order: every reader of the order (views, callbacks, restarts) knows it.
    live_mode: bool = True
    # When its delivery workflow took it (`accept_order`, the workflow's first step); none: the stranded-orders
    # pass may have to start that workflow.
    accepted_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ, index=True)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )


class QuoteRequest(IntegrationsModel, table=True):
    """The whole order behind a quote, for dialects that accept a quote by its id alone (DoorDash, Olo).

    The request names the customer, so it is sealed, and purged once the quote has expired.
    """

    __tablename__ = "quote_request"
    __table_args__ = (Index("ix_quote_request_partner_external", "partner_id", "external_delivery_id"),)

    quote_id: uuid.UUID = Field(primary_key=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    external_delivery_id: str = Field(max_length=128)
    request_encrypted: str = Field(sa_type=Text)
    expires_at: datetime = Field(sa_type=TIMESTAMPTZ, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class ExternalState(IntegrationsModel, table=True):
    """One partner-facing status of an order and the callback that reports it."""

    __tablename__ = "external_state"
    __table_args__ = (
        UniqueConstraint(
            "partner_delivery_id", "sequence", name="uq_external_state_delivery_sequence"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_delivery_id: uuid.UUID = Field(foreign_key="partner_delivery.id")
    sequence: int
    status: str = Field(max_length=32)
    internal_status: str = Field(max_length=32)
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    callback_status: str = Field(default=CallbackStatus.PENDING, max_length=16, index=True)
    callback_attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    delivered_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)


class PII(IntegrationsModel, table=True):
    """The customer's personal data for one order, encrypted at rest and purged after use."""

    __tablename__ = "pii"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    partner_delivery_id: uuid.UUID = Field(foreign_key="partner_delivery.id", unique=True)
    # Required on insert; a purge sets the ciphertexts to NULL and stamps purged_at.
    customer_name_encrypted: str | None = Field(sa_type=Text)
    customer_phone_encrypted: str | None = Field(sa_type=Text)
    dropoff_address_encrypted: str | None = Field(sa_type=Text)
    dropoff_instructions_encrypted: str | None = Field(default=None, sa_type=Text)
    key_id: str = Field(max_length=64)
    purge_after: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ, index=True)
    purged_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
