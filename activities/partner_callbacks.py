"""Partner status callbacks: signed, sequenced, sent once per status, retried by Temporal with backoff."""

import json
import logging
import time
from datetime import timedelta

from uuid import UUID

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ServiceActivities
from core.contracts import CallbackFailure, StatusCallback
from core.crypto import sign_webhook, vault_from_settings
from core.errors import PARTNER_ENDPOINT_GONE, business_error
from core.temporal import activity_meter
from services.integrations import repository
from services.integrations.models import CallbackStatus


class PartnerCallbackActivities(ServiceActivities):
    """Writes only to the Integrations database; POSTs to the partner's registered webhook."""

    def __init__(self, sessions, settings):
        super().__init__(sessions, settings)
        self.vault = vault_from_settings(settings)
        self.http = httpx.AsyncClient(timeout=10, follow_redirects=False)

    @activity.defn
    async def send_status_callback(self, callback: StatusCallback) -> str:
        """Record the partner-facing status, then deliver it unless it was delivered already."""
        async with self.sessions.begin() as session:
            partner, order = await repository.partner_of(session, callback.partner_delivery_id)
            state = await repository.record_external_state(session, callback, callback.status.value)
            if state.callback_status in (CallbackStatus.DELIVERED, CallbackStatus.SKIPPED):
                return state.callback_status
            if not (partner.webhook_url and partner.webhook_enabled):
                await repository.mark_callback(session, callback.partner_delivery_id, callback.sequence,
                                               CallbackStatus.SKIPPED, "no webhook endpoint enabled")
                _count(callback, "skipped")
                return CallbackStatus.SKIPPED.value
            url, secret = partner.webhook_url, self.vault.decrypt(partner.webhook_secret_encrypted)
        body = _native_body(callback, order.external_delivery_id)
        error = await self._post(url, secret, callback, body)
        async with self.sessions.begin() as session:
            if error is None:
                await repository.mark_callback(session, callback.partner_delivery_id, callback.sequence,
                                               CallbackStatus.DELIVERED)
                _count(callback, "delivered")
                return CallbackStatus.DELIVERED.value
            await repository.mark_callback(session, callback.partner_delivery_id, callback.sequence,
                                           CallbackStatus.PENDING, error.message)
            if error.type == PARTNER_ENDPOINT_GONE:
                await repository.set_webhook_enabled(session, partner.id, False)
        _count(callback, "gone" if error.type == PARTNER_ENDPOINT_GONE else "failed_attempt", error.message)
        raise error

    async def _post(self, url: str, secret: str, callback: StatusCallback, body: bytes) -> ApplicationError | None:
        message_id = f"{callback.partner_delivery_id}:{callback.sequence}"  # stable, so receivers de-duplicate
        timestamp = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": message_id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign_webhook(secret, message_id, timestamp, body)}
        try:
            response = await self.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return ApplicationError(f"partner endpoint unreachable: {type(exc).__name__}", type="CallbackFailed")
        if 200 <= response.status_code < 300:
            return None
        if response.status_code == 410:
            return business_error(PARTNER_ENDPOINT_GONE, "partner endpoint answered 410 Gone; webhook disabled")
        retry_after = response.headers.get("retry-after")
        return ApplicationError(
            f"partner endpoint answered {response.status_code}", type="CallbackFailed",
            next_retry_delay=_seconds(retry_after) if response.status_code in (429, 502, 503, 504) else None,
        )

    @activity.defn
    async def enable_webhook(self, partner_delivery_id: UUID) -> None:
        """Turn the partner's endpoint back on once an operator confirms it is fixed."""
        async with self.sessions.begin() as session:
            partner, _ = await repository.partner_of(session, partner_delivery_id)
            await repository.set_webhook_enabled(session, partner.id, True)

    @activity.defn
    async def record_callback_failure(self, failure: CallbackFailure) -> None:
        """Mark a callback whose retries ran out as failed, for operators to replay."""
        async with self.sessions.begin() as session:
            await repository.mark_callback(session, failure.partner_delivery_id, failure.sequence,
                                           CallbackStatus.FAILED, failure.error)
        _count(failure, "failed", failure.error)


def _count(callback: StatusCallback | CallbackFailure, outcome: str, error: str | None = None) -> None:
    """Count a callback outcome (partner_callbacks_total{outcome}) and log it with the delivery's context.

    delivered, skipped (no webhook), failed_attempt (will be retried), gone (410: webhook disabled),
    failed (retries ran out). Only IDs, the outcome and our own error text are logged, never the URL.
    """
    activity_meter().create_counter(
        "partner_callbacks_total", "Partner status callbacks by outcome").add(1, {"outcome": outcome})
    fields = {"outcome": outcome, "sequence": callback.sequence,
              "partner_delivery_id": str(callback.partner_delivery_id)}
    if isinstance(callback, StatusCallback):
        fields.update(delivery_id=str(callback.delivery_id), status=callback.status.value)
    if error:
        fields["error"] = error
    level = logging.INFO if outcome in ("delivered", "skipped") else logging.WARNING
    activity.logger.log(level, "partner callback %s", outcome, extra=fields)


def _native_body(callback: StatusCallback, external_delivery_id: str) -> bytes:
    payload = {
        "type": "delivery.eta_updated" if callback.kind == "eta_updated" else "delivery.status_changed",
        "timestamp": callback.occurred_at.isoformat(),
        "data": {
            "delivery_id": str(callback.delivery_id),
            "external_delivery_id": external_delivery_id,
            "sequence": callback.sequence,
            "status": callback.status.value,
            "robot_id": callback.robot_id,
            "reason": callback.reason,
            "dropoff_eta": callback.dropoff_eta.isoformat() if callback.dropoff_eta else None,
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _seconds(value: str | None) -> timedelta | None:
    return timedelta(seconds=int(value)) if value and value.isdigit() else None
