"""Our own dialect: the status words are ours, and callbacks are signed the Standard Webhooks way."""

from typing import Any

from core.contracts import DeliveryStatus, StatusCallback
from core.crypto import sign_webhook
from services.integrations.dialects.base import CallbackFormat, Snapshot


class NativeCallbacks(CallbackFormat):
    """Every status is sent; each unexpired webhook secret signs, so a rotating partner verifies with either."""

    dialect = "native"
    statuses = {status: status.value for status in DeliveryStatus}

    def body(self, callback: StatusCallback, snapshot: Snapshot) -> dict[str, Any]:
        return {
            "type": "delivery.eta_updated" if callback.kind == "eta_updated" else "delivery.status_changed",
            "timestamp": callback.occurred_at,
            "data": {
                "delivery_id": callback.delivery_id,
                "external_delivery_id": snapshot.external_id,
                "sequence": callback.sequence,
                "status": callback.status.value,
                "robot_id": callback.robot_id,
                "reason": callback.reason,
                "dropoff_eta": callback.dropoff_eta,
            },
        }

    def headers(self, url: str, raw: bytes, message_id: str, timestamp: int, secrets: list[str]) -> dict[str, str]:
        return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": " ".join(sign_webhook(s, message_id, timestamp, raw) for s in secrets)}


CALLBACKS = NativeCallbacks()
