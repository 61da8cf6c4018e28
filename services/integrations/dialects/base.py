"""What every dialect shares: the snapshot of a delivery it renders, and the shape of a callback format."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.contracts import DeliveryStatus, Point, StatusCallback
from services.integrations.models import CredentialKind, ExternalState, PartnerDelivery
from services.integrations.orders import dropoff_of, pickup_of

S = DeliveryStatus


def tracking_url(public_url: str, order: PartnerDelivery) -> str:
    """The public tracking page of an order."""
    return f"{public_url}/track/{order.tracking_token}"


@dataclass
class Snapshot:
    """What any dialect may show of one delivery, whether read by a route or reported by a callback."""

    delivery_id: uuid.UUID
    external_id: str
    status: DeliveryStatus
    tracking_url: str
    created_at: datetime
    quote_id: uuid.UUID | None = None
    fee_cents: int | None = None
    currency: str | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    reason: str | None = None
    reached: dict[DeliveryStatus, datetime] = field(default_factory=dict)  # when each status was last reached
    pickup: Point | None = None
    dropoff: Point | None = None
    robot_id: str | None = None
    account_id: str | None = None  # the partner's account in its dialect (Uber customer_id), for callbacks
    live_mode: bool = True  # False for a test partner's delivery (the sandbox)

    @property
    def updated_at(self) -> datetime:
        return max(self.reached.values(), default=self.created_at)


def snapshot_of_trail(order: PartnerDelivery, trail: list[ExternalState], callback: StatusCallback,
                      public_url: str, account_id: str | None = None) -> Snapshot:
    """The delivery as it stood when `callback` happened, from the order and its status trail up to it."""
    reached = {S(state.internal_status): state.occurred_at for state in trail if state.sequence <= callback.sequence}
    return Snapshot(delivery_id=order.delivery_id, external_id=order.external_delivery_id, status=callback.status,
                    tracking_url=tracking_url(public_url, order), created_at=order.created_at,
                    quote_id=order.quote_id, fee_cents=order.fee_cents, currency=order.currency,
                    dropoff_eta=callback.dropoff_eta, reason=callback.reason or order.cancel_reason, reached=reached,
                    pickup=pickup_of(order), dropoff=dropoff_of(order), robot_id=callback.robot_id,
                    account_id=account_id, live_mode=order.live_mode)


class CallbackFormat:
    """How one dialect reports a status change to the partner's webhook."""

    dialect: str
    statuses: dict[DeliveryStatus, str]
    # The kind of sealed secret that signs (or authorizes) this dialect's callbacks.
    secret_kind = CredentialKind.WEBHOOK_SECRET

    def partner_status(self, status: DeliveryStatus) -> str:
        return self.statuses[status]

    def sends(self, callback: StatusCallback) -> bool:
        """False for a status (or an ETA update) the dialect has no event for: it is recorded, then SKIPPED."""
        return True

    def body(self, callback: StatusCallback, snapshot: Snapshot) -> dict[str, Any]:
        raise NotImplementedError

    def headers(self, url: str, raw: bytes, message_id: str, timestamp: int, secrets: list[str]) -> dict[str, str]:
        raise NotImplementedError
