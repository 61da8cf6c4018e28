"""Uber Direct: delivery statuses with `courier_imminent`, `del_`/`dqt_` ids, and `event.delivery_status` callbacks.

Uber notifies when a delivery's status or `courier_imminent` changes. `en_route_to_pickup` reads exactly
like `robot_assigned` (`pickup`, not imminent), so its callback is SKIPPED. Our `returning` is Uber's
`returned` (cancelled, a return trip created) with `complete` false; the end of the return is sent again as
`returned`, now `complete`.
"""

import hashlib
import hmac
import uuid
from typing import Any

from core.contracts import TERMINAL_STATUSES, DeliveryStatus, StatusCallback
from services.integrations.dialects.base import CallbackFormat, Snapshot

S = DeliveryStatus
STATUSES: dict[DeliveryStatus, str] = {
    S.CREATED: "pending", S.ROBOT_ASSIGNED: "pickup", S.EN_ROUTE_TO_PICKUP: "pickup", S.AT_PICKUP: "pickup",
    S.PICKED_UP: "pickup_complete", S.EN_ROUTE_TO_DROPOFF: "dropoff", S.AT_DROPOFF: "dropoff",
    S.DELIVERED: "delivered", S.CANCELLED: "canceled", S.RETURNING: "returned", S.RETURNED: "returned",
}
# The robot is at the store or the door: Uber's "about a minute away" is already true.
COURIER_IMMINENT = frozenset({S.AT_PICKUP, S.AT_DROPOFF})
SILENT = frozenset({S.EN_ROUTE_TO_PICKUP})
# `filter` of the delivery list: an Uber status, or every delivery still moving, or every finished one.
FILTERS: dict[str, list[DeliveryStatus]] = {
    **{word: [s for s, w in STATUSES.items() if w == word] for word in set(STATUSES.values())},
    "ongoing": [s for s in S if s not in TERMINAL_STATUSES],
    "completed": list(TERMINAL_STATUSES),
}
CANCELLED_BY_PARTNER = "merchant_cancelled"
DELIVERY_PREFIX, QUOTE_PREFIX = "del_", "dqt_"


def public_id(prefix: str, value: uuid.UUID) -> str:
    """Our UUID as an Uber-style id (`del_…`, `dqt_…`); `parse_id` reverses it."""
    return prefix + value.hex


def parse_id(prefix: str, value: str) -> uuid.UUID | None:
    if not value.startswith(prefix):
        return None
    try:
        return uuid.UUID(hex=value.removeprefix(prefix))
    except ValueError:
        return None


def delivery_fields(snapshot: Snapshot) -> dict[str, Any]:
    """An Uber delivery object for the snapshot."""
    return {
        "id": public_id(DELIVERY_PREFIX, snapshot.delivery_id),
        "kind": "delivery",
        "quote_id": public_id(QUOTE_PREFIX, snapshot.quote_id) if snapshot.quote_id else None,
        "status": STATUSES[snapshot.status],
        "complete": snapshot.status in TERMINAL_STATUSES,
        "courier_imminent": snapshot.status in COURIER_IMMINENT,
        "external_id": snapshot.external_id,
        "tracking_url": snapshot.tracking_url,
        "fee": snapshot.fee_cents,
        "currency": snapshot.currency.lower() if snapshot.currency else None,
        "pickup_eta": snapshot.pickup_eta,
        "dropoff_eta": snapshot.dropoff_eta,
        "undeliverable_reason": snapshot.reason if snapshot.status in (S.RETURNING, S.RETURNED) else None,
        "created": snapshot.created_at,
        "updated": snapshot.updated_at,
    }


class UberCallbacks(CallbackFormat):
    """An `event.delivery_status` envelope, signed in `x-uber-signature` (hex HMAC-SHA256 of the raw body)."""

    dialect = "uber"
    statuses = STATUSES

    def sends(self, callback: StatusCallback) -> bool:
        # A new dropoff ETA is news in any status: the event carries it in `data.dropoff_eta`.
        return callback.kind == "eta_updated" or callback.status not in SILENT

    def body(self, callback: StatusCallback, snapshot: Snapshot) -> dict[str, Any]:
        return {
            "id": f"evt_{callback.partner_delivery_id.hex}_{callback.sequence}",
            "kind": "event.delivery_status",
            "status": STATUSES[callback.status],
            "created": callback.occurred_at,
            "delivery_id": public_id(DELIVERY_PREFIX, callback.delivery_id),
            "sequence": callback.sequence,
            "data": delivery_fields(snapshot),
        }

    def headers(self, url: str, raw: bytes, message_id: str, timestamp: int, secrets: list[str]) -> dict[str, str]:
        # One signature only: the newest secret signs.
        return {"x-uber-signature": hmac.new(secrets[0].encode(), raw, hashlib.sha256).hexdigest()}


CALLBACKS = UberCallbacks()
