"""DoorDash Drive v2: delivery statuses, webhook event names, cancellation reasons and the delivery fields.

Drive's webhook names an `event_name` per step. Our lifecycle has no Drive event for `created`,
`en_route_to_pickup` and `en_route_to_dropoff`: those are recorded with their Drive status (a GET shows
them) and their callback is SKIPPED, so the receiver sees gaps in `sequence`. Nothing in our lifecycle marks
the robot's arrival back at the store, so `DASHER_CONFIRMED_RETURN_ARRIVAL` is never sent; the return
ends with `DELIVERY_RETURNED`.
"""

from typing import Any

from core.contracts import DeliveryStatus, StatusCallback
from services.integrations.dialects.base import CallbackFormat, Snapshot
from services.integrations.models import CredentialKind

S = DeliveryStatus
QUOTE_STATUS = "quote"
STATUSES: dict[DeliveryStatus, str] = {
    S.CREATED: "created", S.ROBOT_ASSIGNED: "confirmed", S.EN_ROUTE_TO_PICKUP: "enroute_to_pickup",
    S.AT_PICKUP: "arrived_at_pickup", S.PICKED_UP: "picked_up", S.EN_ROUTE_TO_DROPOFF: "enroute_to_dropoff",
    S.AT_DROPOFF: "arrived_at_dropoff", S.DELIVERED: "delivered", S.CANCELLED: "cancelled",
    S.RETURNING: "enroute_to_return", S.RETURNED: "returned",
}
EVENTS: dict[DeliveryStatus, str] = {
    S.ROBOT_ASSIGNED: "DASHER_CONFIRMED", S.AT_PICKUP: "DASHER_CONFIRMED_PICKUP_ARRIVAL",
    S.PICKED_UP: "DASHER_PICKED_UP", S.AT_DROPOFF: "DASHER_CONFIRMED_DROPOFF_ARRIVAL",
    S.DELIVERED: "DASHER_DROPPED_OFF", S.CANCELLED: "DELIVERY_CANCELLED",
    S.RETURNING: "DELIVERY_RETURN_INITIALIZED", S.RETURNED: "DELIVERY_RETURNED",
}
# The reason we record when the partner cancels through Drive.
CANCELLED_BY_PARTNER = "cancelled_by_creator"
# Our reasons, as Drive's `cancellation_reason` (the words of Drive's enum). Any other reason (a robot or an
# operator ended it) reads `failed_to_deliver` once the order was picked up, else `failed_to_pickup`.
CANCELLATION_REASONS = {
    CANCELLED_BY_PARTNER: "cancelled_by_creator",
    "no_robot_available": "failed_to_assign_and_refunded",
    "no_pilot_available": "failed_to_assign_and_refunded",
    "pickup_timeout": "failed_to_pickup",
    "customer_no_show": "failed_to_deliver",
}


def cancellation_reason(reason: str | None, picked_up: bool) -> str:
    """Drive's reason for a delivery that ended undelivered: the partner's cancel, else why we ended it. A return's
    last steps carry no reason of their own: they read as the failed delivery that started it."""
    fallback = "failed_to_deliver" if picked_up else "failed_to_pickup"
    return CANCELLATION_REASONS.get((reason or "").removeprefix("cancelled:"), fallback)


def delivery_fields(snapshot: Snapshot) -> dict[str, Any]:
    """A Drive delivery object for the snapshot; a field without a value is left out, as Drive leaves it out."""
    ended = snapshot.status in (S.CANCELLED, S.RETURNING, S.RETURNED)
    picked_up = S.PICKED_UP in snapshot.reached
    fields = {
        "external_delivery_id": snapshot.external_id,
        "delivery_status": STATUSES[snapshot.status],
        "fee": snapshot.fee_cents,
        "currency": snapshot.currency,
        "tracking_url": snapshot.tracking_url,
        "support_reference": str(snapshot.delivery_id),
        "cancellation_reason": cancellation_reason(snapshot.reason, picked_up) if ended else None,
        "pickup_time_estimated": snapshot.pickup_eta,
        "pickup_time_actual": snapshot.reached.get(S.PICKED_UP),
        "dropoff_time_estimated": snapshot.dropoff_eta,
        "dropoff_time_actual": snapshot.reached.get(S.DELIVERED),
        "updated_at": snapshot.updated_at,
    }
    return {name: value for name, value in fields.items() if value is not None}


class DriveCallbacks(CallbackFormat):
    """A flat Drive delivery object with `event_name`, sent with the Authorization value the partner registered."""

    dialect = "doordash"
    statuses = STATUSES
    secret_kind = CredentialKind.WEBHOOK_AUTHORIZATION

    def sends(self, callback: StatusCallback) -> bool:
        # Drive has no ETA event: a late robot shows in `dropoff_time_estimated` on GET, not as a webhook.
        return callback.kind == "status" and callback.status in EVENTS

    def body(self, callback: StatusCallback, snapshot: Snapshot) -> dict[str, Any]:
        return {"event_name": EVENTS[callback.status], "created_at": callback.occurred_at,
                "sequence": callback.sequence, **delivery_fields(snapshot)}

    def headers(self, url: str, raw: bytes, message_id: str, timestamp: int, secrets: list[str]) -> dict[str, str]:
        return {"authorization": secrets[0]} if secrets else {}


CALLBACKS = DriveCallbacks()
