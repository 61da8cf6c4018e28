"""What the partner desk takes and hands out: plain typed data, never a database row.

A dialect builds an `Intake` from its request, gets `Order`s, `OrderView`s and the rest back, and renders them
in its own vocabulary.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from core.contracts import DeliveryStatus, Point
from services.integrations.models import PartnerDialect


# A store's preparation, or a partner's ready time, further ahead than a day is a mistake (a wrong date or unit).
MAX_PREPARATION_MINUTES = 24 * 60


def digest_of(body: Any) -> str:
    """A digest of a request body, to tell an idempotent replay from a conflicting reuse of an order id."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class PartnerAccount:
    """A partner, as its credentials identify it."""

    id: uuid.UUID
    name: str
    dialect: PartnerDialect
    account_id: str | None  # DoorDash developer_id, Uber customer_id
    live_mode: bool = True  # False for a test partner: its deliveries are the sandbox's


@dataclass(frozen=True)
class AccessGrant:
    """A bearer token issued for an OAuth client-credentials grant (Uber)."""

    access_token: str
    expires_in: int  # seconds


@dataclass(frozen=True)
class StoreInfo:
    """A partner's pickup location under its own store id."""

    store_id: str
    name: str
    latitude: float
    longitude: float
    market: str
    preparation_minutes: int | None = None


@dataclass(frozen=True)
class PickupPlace:
    """Where an order is collected and, at a registered store, its preparation estimate (None: the market's)."""

    point: Point
    preparation_minutes: int | None = None


@dataclass
class Intake:
    """A create request in the desk's terms; `fields` maps the desk's field names to the dialect's."""

    external_id: str
    customer_name: str
    customer_phone: str
    digest: str
    pickup: Point | None = None
    pickup_store_id: str | None = None
    pickup_address: str | None = None
    dropoff: Point | None = None
    dropoff_address: str | None = None
    dropoff_instructions: str | None = None
    quote_id: uuid.UUID | None = None
    ready_at: datetime | None = None  # when the partner says the order is ready at the store
    fields: dict[str, str] = field(default_factory=dict)
    # Without a quote, price the trip at the list price (the fee formula without a wait surcharge): DoorDash and
    # Uber show a fee on every delivery. Native deliveries without a quote carry no fee.
    list_priced: bool = False

    def name(self, desk_field: str) -> str:
        return self.fields.get(desk_field, desk_field)


@dataclass(frozen=True)
class Order:
    """A partner's order as Integrations stores it; a dialect hands it back to the desk to change or read it."""

    id: uuid.UUID
    partner_id: uuid.UUID
    delivery_id: uuid.UUID
    external_id: str
    status: DeliveryStatus
    market: str
    pickup: Point
    dropoff: Point
    quote_id: uuid.UUID | None
    cancel_reason: str | None
    tracking_url: str
    created_at: datetime
    fee_cents: int | None = None  # the fee stored with the order: its quote's, or the list price
    currency: str | None = None
    ready_at: datetime | None = None  # when the order is ready at the store, as accepted
    live_mode: bool = True  # False for a test partner's order: a sandbox robot plays it


# An order's attempts and their statuses, as the native API shows them (its `attempts` and `history`).
class AttemptView(BaseModel):
    number: int
    kind: str
    status: str
    robot_id: str | None
    end_reason: str | None


class HistoryEntry(BaseModel):
    attempt_number: int
    sequence: int
    status: str
    occurred_at: datetime
    robot_id: str | None
    reason: str | None


@dataclass
class OrderView:
    """Everything a dialect may show about one order."""

    order: Order
    status: DeliveryStatus
    fee_cents: int | None = None
    currency: str | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None
    ended_at: datetime | None = None
    robot_id: str | None = None
    reason: str | None = None
    attempts: list[AttemptView] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)

    @property
    def delivery_id(self) -> uuid.UUID:
        return self.order.delivery_id

    @property
    def market(self) -> str:
        return self.order.market

    @property
    def tracking_url(self) -> str:
        return self.order.tracking_url


@dataclass(frozen=True)
class ProofOfDelivery:
    """When and where the robot's lid opened for the customer."""

    delivery_id: uuid.UUID
    robot_id: str
    lid_opened_at: datetime
    location: Point
    delivered_at: datetime | None
