"""Partner status callbacks: signed, sequenced, sent once per status, retried by Temporal with backoff."""

import asyncio
import json
import logging
import time
from datetime import datetime, timedelta
from uuid import UUID

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import interfaces
from activities.base import ServiceActivities
from core.contracts import TERMINAL_STATUSES, CallbackFailure, StatusCallback
from core.crypto import vault_from_settings
from core.errors import PARTNER_ENDPOINT_GONE, business_error
from core.temporal import activity_meter
from core.webhooks import WebhookClients, WebhookTarget, WebhookTargetError, check_webhook_target, post_webhook
from services.integrations import credentials, repository
from services.integrations.dialects import callback_format
from services.integrations.dialects.base import CallbackFormat, snapshot_of_trail
from services.integrations.models import CallbackStatus, CredentialKind


class PartnerCallbackActivities(ServiceActivities, interfaces.PartnerCallbackActivities):
    """Writes only to the Integrations database; POSTs to the partner's registered webhook."""

    def __init__(self, sessions, settings, temporal=None):
        super().__init__(sessions, settings, temporal)
        self.vault = vault_from_settings(settings)
        self.webhooks = WebhookClients()  # connections kept alive per partner host name and vetted address

    @activity.defn
    async def send_status_callback(self, callback: StatusCallback) -> str:
        async with self.sessions.begin() as session:
            partner, order = await repository.partner_of(session, callback.partner_delivery_id)
            dialect = callback_format(partner.dialect)
            state, trail = await repository.record_external_state(session, callback,
                                                                  dialect.partner_status(callback.status))
            if callback.status in TERMINAL_STATUSES:
                retention = timedelta(days=self.settings.pii_retention_days)
                await repository.schedule_purge(session, callback.partner_delivery_id, callback.occurred_at + retention)
            if state.callback_status in (CallbackStatus.DELIVERED, CallbackStatus.SKIPPED):
                return state.callback_status
            skipped = _skip_reason(partner, dialect, callback)
            if skipped:
                await repository.mark_callback(session, callback.partner_delivery_id, callback.sequence,
                                               CallbackStatus.SKIPPED, skipped)
                _count(callback, "skipped")
                return CallbackStatus.SKIPPED.value
            url = partner.webhook_url
            webhook_secrets = await credentials.sealed_secrets(session, self.vault, partner.id, dialect.secret_kind)
            snapshot = snapshot_of_trail(order, trail, callback, self.settings.public_url, partner.account_id)
            unauthorized = not webhook_secrets and dialect.secret_kind is CredentialKind.WEBHOOK_AUTHORIZATION
            if unauthorized:
                # DoorDash authenticates a webhook only by the Authorization value it registered: never send one
                # without. The endpoint is turned off, so the callbacks park for an operator, as for a 410.
                await repository.set_webhook_enabled(session, partner.id, False)
        if unauthorized:
            error = business_error(PARTNER_ENDPOINT_GONE, "no webhook authorization is registered: set one with "
                                   "deliveryctl partners update --webhook-authorization")
            _count(callback, "gone", error.message)
            raise error
        try:  # production: resolve now (a name can change its address) and send to the address vetted
            target = await self._target(url)
        except WebhookTargetError as exc:
            raise business_error(PARTNER_ENDPOINT_GONE, f"webhook target refused: {exc}") from None
        body = json.dumps(dialect.body(callback, snapshot), separators=(",", ":"), default=_json_value).encode()
        message_id = f"{callback.partner_delivery_id}:{callback.sequence}"  # stable, so receivers de-duplicate
        headers = dialect.headers(url, body, message_id, int(time.time()), webhook_secrets)
        error = await self._post(target, {"content-type": "application/json", **headers}, body)
        if error is None:
            async with self.statements() as connection:
                await repository.mark_callback(connection, callback.partner_delivery_id, callback.sequence,
                                               CallbackStatus.DELIVERED)
            _count(callback, "delivered")
            return CallbackStatus.DELIVERED.value
        async with self.sessions.begin() as session:
            await repository.mark_callback(session, callback.partner_delivery_id, callback.sequence,
                                           CallbackStatus.PENDING, error.message)
            if error.type == PARTNER_ENDPOINT_GONE:
                await repository.set_webhook_enabled(session, partner.id, False)
        _count(callback, "gone" if error.type == PARTNER_ENDPOINT_GONE else "failed_attempt", error.message)
        raise error

    async def _target(self, url: str) -> WebhookTarget:
        """Where to send: vetted after a fresh DNS lookup (in a thread: it blocks), or the URL as written where
        private addresses are allowed (dev profile), which needs no lookup."""
        if self.settings.allow_private_webhooks:
            return check_webhook_target(url, allow_private=True)
        return await asyncio.to_thread(check_webhook_target, url, allow_private=False)

    async def _post(self, target: WebhookTarget, headers: dict[str, str], body: bytes) -> ApplicationError | None:
        try:
            answer = await post_webhook(await self.webhooks.client_for(target), target, body, headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            return ApplicationError(f"partner endpoint unreachable: {type(exc).__name__}", type="CallbackFailed")
        if 200 <= answer.status_code < 300:
            return None
        if answer.status_code == 410:
            return business_error(PARTNER_ENDPOINT_GONE, "partner endpoint answered 410 Gone; webhook disabled")
        return ApplicationError(
            f"partner endpoint answered {answer.status_code}", type="CallbackFailed",
            next_retry_delay=_seconds(answer.retry_after) if answer.status_code in (429, 502, 503, 504) else None,
        )

    @activity.defn
    async def enable_webhook(self, partner_delivery_id: UUID) -> None:
        async with self.sessions.begin() as session:
            partner, _ = await repository.partner_of(session, partner_delivery_id)
            await repository.set_webhook_enabled(session, partner.id, True)

    @activity.defn
    async def record_callback_failure(self, failure: CallbackFailure) -> None:
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


def _skip_reason(partner, dialect: CallbackFormat, callback: StatusCallback) -> str | None:
    """Why this callback is not sent at all, if it is not: no endpoint, or no event for it in the dialect."""
    if not (partner.webhook_url and partner.webhook_enabled):
        return "no webhook endpoint enabled"
    if not dialect.sends(callback):
        return f"the {dialect.dialect} dialect has no event for {callback.status.value}"
    return None


def _json_value(value):
    """Dates and ids in callback bodies: ISO 8601 and their string form."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _seconds(value: str | None) -> timedelta | None:
    return timedelta(seconds=int(value)) if value and value.isdigit() else None
