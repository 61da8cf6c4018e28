"""Integrations activities: validate the stored partner order before the lifecycle starts; find orders whose
lifecycle never started; purge PII."""

from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities import interfaces
from activities.base import ServiceActivities
from core.contracts import DeliveryOrder
from core.errors import UNKNOWN_ORDER, business_error
from services.integrations import repository
from services.integrations.orders import delivery_order

# How far back stranded orders are looked for. A start tells a delivery whose workflow closed from one that never
# had a workflow only while Temporal keeps the closed run: for the namespace's retention, never less than a day.
STRANDED_HORIZON = timedelta(days=1)


class IntegrationsActivities(ServiceActivities, interfaces.IntegrationsActivities):
    """Writes only to the Integrations database."""

    @activity.defn
    async def accept_order(self, order: DeliveryOrder) -> None:
        async with self.sessions.begin() as session:
            if not await repository.accept_order(session, order.partner_delivery_id, order.delivery_id):
                raise business_error(UNKNOWN_ORDER, f"no stored partner order for delivery {order.delivery_id}")

    @activity.defn
    async def stranded_orders(self) -> list[DeliveryOrder]:
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.settings.stranded_order_grace_seconds)
        async with self.sessions.begin() as session:
            found = await repository.stranded_orders(session, now - STRANDED_HORIZON, now - grace)
        return [delivery_order(order, pii_id, self.settings.lifecycle) for order, pii_id in found]

    @activity.defn
    async def purge_pii(self) -> int:
        async with self.sessions.begin() as session:
            purged = await repository.purge_pii(session)
        activity.logger.info("purged personal data of %d orders", purged, extra={"purged": purged})
        return purged
