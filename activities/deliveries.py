"""Deliveries activities: the delivery, its attempts and their status history, on the Deliveries database."""

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import interfaces
from activities.base import ServiceActivities
from core.assignments import CHANNEL as ASSIGNMENT_CHANNEL
from core.contracts import (
    AttemptOutcome, AttemptRef, DeliveryOrder, NewAttempt, QuoteOffer, StatusChange,
)
from core.errors import UNKNOWN_ORDER, business_error
from services.deliveries import repository
from services.deliveries.models import Attempt, AttemptStatus


class DeliveriesActivities(ServiceActivities, interfaces.DeliveriesActivities):
    """The Deliveries service's activities; every write is keyed so a retry changes nothing."""

    @activity.defn
    async def create_delivery(self, order: DeliveryOrder) -> AttemptRef:
        async with self.sessions.begin() as session:
            if await repository.get_delivery(session, order.delivery_id) is None:
                await self._store_delivery(session, order)
            attempt = await repository.get_attempt(session, order.delivery_id, 1)
            return _attempt_ref(attempt)

    @activity.defn
    async def record_quote(self, offer: QuoteOffer) -> None:
        async with self.sessions.begin() as session:
            await repository.record_quote(session, offer)

    @activity.defn
    async def coarsen_delivery_dropoffs(self) -> int:
        ended_before = datetime.now(UTC) - timedelta(days=self.settings.pii_retention_days)
        async with self.sessions.begin() as session:
            coarsened = await repository.coarsen_dropoffs(session, ended_before)
        activity.logger.info("coarsened the dropoff of %d deliveries and quotes", coarsened,
                             extra={"coarsened": coarsened})
        return coarsened

    @activity.defn
    async def start_attempt(self, request: NewAttempt) -> AttemptRef:
        async with self.sessions.begin() as session:
            if await repository.get_delivery(session, request.delivery_id, lock=True) is None:
                raise business_error(UNKNOWN_ORDER, f"delivery {request.delivery_id} does not exist")
            attempt_id = await repository.insert_attempt(
                session, request.delivery_id, request.number, request.kind
            )
            if attempt_id is not None:
                await repository.set_latest_attempt(session, request.delivery_id, attempt_id)
            attempt = await repository.get_attempt(session, request.delivery_id, request.number)
            return _attempt_ref(attempt)

    @activity.defn
    async def record_status(self, change: StatusChange) -> None:
        async with self.statements() as connection:  # the delivery's robot hears of the new status
            await repository.record_status(connection, change, ASSIGNMENT_CHANNEL)

    @activity.defn
    async def end_attempt(self, outcome: AttemptOutcome) -> None:
        status = AttemptStatus(outcome.status)
        async with self.sessions.begin() as session:
            appended = await repository.append_history(
                session, outcome.attempt_id, outcome.sequence, status, outcome.occurred_at,
                {"reason": outcome.reason},
            )
            if appended:
                await repository.close_attempt(
                    session, outcome.attempt_id, status, outcome.occurred_at, outcome.reason
                )

    async def _store_delivery(self, session: AsyncSession, order: DeliveryOrder) -> None:
        if order.quote_id is not None and not await repository.quote_exists(session, order.quote_id):
            raise business_error(UNKNOWN_ORDER, f"quote {order.quote_id} does not exist")
        customer_id = await repository.upsert_customer(session, order.partner_id, order.pii_id)
        # A concurrent duplicate of this call may have stored it first; then its rows stand.
        if not await repository.insert_delivery(session, order, customer_id):
            return
        if order.quote_id is not None:
            await repository.claim_quote(session, order.quote_id, order.delivery_id)
        attempt_id = await repository.insert_attempt(session, order.delivery_id, 1, "delivery")
        await repository.set_latest_attempt(session, order.delivery_id, attempt_id)


def _attempt_ref(attempt: Attempt) -> AttemptRef:
    return AttemptRef(delivery_id=attempt.delivery_id, attempt_id=attempt.id, number=attempt.number,
                      kind=attempt.kind)
