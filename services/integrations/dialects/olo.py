"""Olo dispatch, provider side: statuses, lifecycle timestamps, cancel reason codes both ways, signed callbacks.

Every status change is sent. A cancellation carries `cancelReason` and `canceledBy`: the code Olo sent when
the customer or vendor side cancelled, or, when we cancelled (no robot, pickup timeout, a robot failure...),
our reason mapped to Olo's provider-side code.
"""

import base64
import hashlib
import hmac
from enum import StrEnum
from typing import Any

from core.contracts import DeliveryStatus, StatusCallback
from services.integrations.dialects.base import CallbackFormat, Snapshot

S = DeliveryStatus
STATUSES: dict[DeliveryStatus, str] = {
    S.CREATED: "Pending", S.ROBOT_ASSIGNED: "DriverAssigned", S.EN_ROUTE_TO_PICKUP: "EnRouteToPickup",
    S.AT_PICKUP: "ArrivedAtPickup", S.PICKED_UP: "PickedUp", S.EN_ROUTE_TO_DROPOFF: "EnRouteToDropoff",
    S.AT_DROPOFF: "ArrivedAtDropoff", S.DELIVERED: "Delivered", S.CANCELLED: "Canceled",
    S.RETURNING: "Returning", S.RETURNED: "Returned",
}


class CustomerCancelReason(StrEnum):
    """Why the customer or vendor side cancels (Olo to us)."""

    CUSTOMER_CANCELED = "CustomerCanceled"
    CUSTOMER_CHANGED_ORDER = "CustomerChangedOrder"
    DRIVER_MISSED_PICKUP = "DriverMissedPickup"
    UNABLE_TO_FULFILL = "UnableToFulfill"
    MISSED_DROPOFF_TIME = "MissedDropoffTime"


class ProviderCancelReason(StrEnum):
    """Why we, the provider, cancel (us to Olo)."""

    PICKUP_NOT_READY = "PickupNotReady"
    DESTINATION_UNREACHABLE = "DestinationUnreachable"
    PACKAGE_DAMAGE = "PackageDamage"
    INCOMPATIBLE_DELIVERY_MODE = "IncompatibleDeliveryMode"
    DRIVER_FAILURE = "DriverFailure"
    UNABLE_TO_CREATE_DELIVERY = "UnableToCreateDelivery"


P = ProviderCancelReason
# Our reasons for ending a delivery, as Olo's provider-side codes; any other reason is a DriverFailure.
PROVIDER_REASONS: dict[str, ProviderCancelReason] = {
    "no_robot_available": P.UNABLE_TO_CREATE_DELIVERY,
    "no_pilot_available": P.UNABLE_TO_CREATE_DELIVERY,
    "pickup_timeout": P.PICKUP_NOT_READY,
    "customer_no_show": P.DESTINATION_UNREACHABLE,
    "destination_unreachable": P.DESTINATION_UNREACHABLE,
    "package_damage": P.PACKAGE_DAMAGE,
    "incompatible_delivery_mode": P.INCOMPATIBLE_DELIVERY_MODE,
}


def cancel_reason(reason: str | None) -> tuple[str, str] | None:
    """(Olo's code, who cancelled: `customer` or `provider`) for one of our reasons."""
    if reason is None:
        return None
    reason = reason.removeprefix("cancelled:")
    if reason in CustomerCancelReason.__members__.values():
        return reason, "customer"
    return PROVIDER_REASONS.get(reason, P.DRIVER_FAILURE).value, "provider"


def delivery_fields(snapshot: Snapshot) -> dict[str, Any]:
    """An Olo delivery object for the snapshot, with the time each lifecycle step was reached."""
    ended = snapshot.status in (S.CANCELLED, S.RETURNING, S.RETURNED)
    code, side = cancel_reason(snapshot.reason) if ended and snapshot.reason else (None, None)
    return {
        "deliveryId": snapshot.external_id,
        "providerDeliveryId": str(snapshot.delivery_id),
        "status": STATUSES[snapshot.status],
        "trackingUrl": snapshot.tracking_url,
        "fee": snapshot.fee_cents,
        "currency": snapshot.currency,
        "estimatedPickupTime": snapshot.pickup_eta,
        "estimatedDropoffTime": snapshot.dropoff_eta,
        "timestamps": {STATUSES[status]: moment for status, moment in snapshot.reached.items()},
        "cancelReason": code,
        "canceledBy": side,
    }


def signature(secret: str, url: str, raw: bytes, message_id: str, timestamp: int) -> str:
    """X-Olo-Signature: base64 HMAC-SHA256 of `url\\nbody\\nmessageId\\ntimestamp` under the webhook secret."""
    signed = f"{url}\n".encode() + raw + f"\n{message_id}\n{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


class OloCallbacks(CallbackFormat):
    """The Olo delivery object with the status reached, signed with X-Olo-Signature."""

    dialect = "olo"
    statuses = STATUSES

    def body(self, callback: StatusCallback, snapshot: Snapshot) -> dict[str, Any]:
        return {"sequence": callback.sequence, "occurredAt": callback.occurred_at, **delivery_fields(snapshot)}

    def headers(self, url: str, raw: bytes, message_id: str, timestamp: int, secrets: list[str]) -> dict[str, str]:
        return {"X-Olo-Message-Id": message_id, "X-Olo-Timestamp": str(timestamp),
                "X-Olo-Signature": signature(secrets[0], url, raw, message_id, timestamp)}


CALLBACKS = OloCallbacks()
