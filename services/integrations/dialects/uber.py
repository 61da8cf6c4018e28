"""Uber Direct: delivery statuses with `courier_imminent`, `del_`/`dqt_` ids, and `event.delivery_status` callbacks.

Uber notifies when a delivery's status or `courier_imminent` changes. `en_route_to_pickup` reads exactly
like `robot_assigned` (`pickup`, not imminent), so its callback is SKIPPED. Our `returning` is Uber's
`returned`: the delivery was not completed and a return trip was created. Uber treats `returned` as final, so it
is `complete` from then on and sent once; the robot's arrival back at the store (our `returned`) shows in the
`return` waypoint's status on a GET, and its callback is SKIPPED.
"""

import hashlib
import hmac
import uuid
from datetime import datetime
from typing import Any

from core.contracts import TERMINAL_STATUSES, DeliveryStatus, Point, StatusCallback
from services.integrations.dialects.base import CallbackFormat, Snapshot

S = DeliveryStatus
STATUSES: dict[DeliveryStatus, str] = {
    S.CREATED: "pending", S.ROBOT_ASSIGNED: "pickup", S.EN_ROUTE_TO_PICKUP: "pickup", S.AT_PICKUP: "pickup",
    S.PICKED_UP: "pickup_complete", S.EN_ROUTE_TO_DROPOFF: "dropoff", S.AT_DROPOFF: "dropoff",
    S.DELIVERED: "delivered", S.CANCELLED: "canceled", S.RETURNING: "returned", S.RETURNED: "returned",
}
# The robot is at the store or the door: Uber's "about a minute away" is already true.
COURIER_IMMINENT = frozenset({S.AT_PICKUP, S.AT_DROPOFF})
# Uber's final statuses: `returned` is final as soon as the return is under way.
COMPLETE = frozenset(TERMINAL_STATUSES | {S.RETURNING})
RETURNS = frozenset({S.RETURNING, S.RETURNED})
SILENT = frozenset({S.EN_ROUTE_TO_PICKUP, S.RETURNED})
# `filter` of the delivery list: an Uber status, or every delivery still moving, or every finished one.
FILTERS: dict[str, list[DeliveryStatus]] = {
    **{word: [s for s, w in STATUSES.items() if w == word] for word in set(STATUSES.values())},
    "ongoing": [s for s in S if s not in COMPLETE],
    "completed": list(COMPLETE),
}
CANCELLED_BY_PARTNER = "merchant_cancelled"
# Why an order came back, in the upper-case words of Uber's `undeliverable_reason`; any other reason (a robot or
# an operator ended it) reads UNABLE_TO_DELIVER.
UNDELIVERABLE_REASONS = {"customer_no_show": "CUSTOMER_UNAVAILABLE", CANCELLED_BY_PARTNER: "CANCELED_BY_MERCHANT"}
COURIER_VEHICLE = "robot"
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


def undeliverable_reason(snapshot: Snapshot) -> str:
    """Uber's `undeliverable_reason`: why the order came back, or "" (Uber's word for none)."""
    if snapshot.status not in RETURNS:
        return ""
    reason = (snapshot.reason or "").removeprefix("cancelled:")
    return UNDELIVERABLE_REASONS.get(reason, "UNABLE_TO_DELIVER")


def _waypoint(point: Point | None, status: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    """An Uber waypoint: where it is and, once done or failed, when. Names, phones and addresses are the
    customer's sealed data, not repeated here."""
    waypoint: dict[str, Any] = {}
    if point is not None:
        waypoint["location"] = {"lat": point.latitude, "lng": point.longitude}
    if status is not None and at is not None:
        waypoint.update(status=status, status_timestamp=at)
    return waypoint


def waypoints(snapshot: Snapshot) -> dict[str, Any]:
    """The `pickup`, `dropoff` and, for an order coming back, `return` waypoints."""
    reached = snapshot.reached
    dropoff_done = ("completed", reached.get(S.DELIVERED)) if S.DELIVERED in reached else \
        ("failed", reached.get(S.RETURNING)) if snapshot.status in RETURNS else (None, None)
    found = {"pickup": _waypoint(snapshot.pickup, "completed", reached.get(S.PICKED_UP)),
             "dropoff": _waypoint(snapshot.dropoff, *dropoff_done)}
    if snapshot.status in RETURNS:
        found["return"] = _waypoint(snapshot.pickup, "completed", reached.get(S.RETURNED))
    return found


def delivery_fields(snapshot: Snapshot) -> dict[str, Any]:
    """An Uber delivery object for the snapshot; a field without a value is left out, as Uber leaves it out."""
    fields = {
        "id": public_id(DELIVERY_PREFIX, snapshot.delivery_id),
        "uuid": snapshot.delivery_id.hex,
        "kind": "delivery",
        "live_mode": snapshot.live_mode,
        "quote_id": public_id(QUOTE_PREFIX, snapshot.quote_id) if snapshot.quote_id else None,
        "status": STATUSES[snapshot.status],
        "complete": snapshot.status in COMPLETE,
        "courier_imminent": snapshot.status in COURIER_IMMINENT,
        "external_id": snapshot.external_id,
        "tracking_url": snapshot.tracking_url,
        "fee": snapshot.fee_cents,
        "currency": snapshot.currency.lower() if snapshot.currency else None,
        "pickup_eta": snapshot.pickup_eta,
        "dropoff_eta": snapshot.dropoff_eta,
        "undeliverable_action": "returned" if snapshot.status in RETURNS else "",
        "undeliverable_reason": undeliverable_reason(snapshot),
        "courier": {"name": snapshot.robot_id, "vehicle_type": COURIER_VEHICLE} if snapshot.robot_id else None,
        **waypoints(snapshot),
        "created": snapshot.created_at,
        "updated": snapshot.updated_at,
    }
    return {name: value for name, value in fields.items() if value is not None}


class UberCallbacks(CallbackFormat):
    """An `event.delivery_status` envelope, signed in `x-postmates-signature` and `x-uber-signature` (both the hex
    HMAC-SHA256 of the raw body). The partner is one account: its customer_id is also the envelope's `developer_id`
    and `account_id`."""

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
            "live_mode": snapshot.live_mode,
            **({"customer_id": snapshot.account_id, "developer_id": snapshot.account_id,
                "account_id": snapshot.account_id} if snapshot.account_id else {}),
            "data": delivery_fields(snapshot),
        }

    def headers(self, url: str, raw: bytes, message_id: str, timestamp: int, secrets: list[str]) -> dict[str, str]:
        # One signature only: the newest secret signs. Uber sends it under both names.
        signature = hmac.new(secrets[0].encode(), raw, hashlib.sha256).hexdigest()
        return {"x-postmates-signature": signature, "x-uber-signature": signature}


CALLBACKS = UberCallbacks()
