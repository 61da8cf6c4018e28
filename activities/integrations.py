"""Integrations activities: validate the stored partner order before the lifecycle starts; purge PII."""

from temporalio import activity

from activities.base import ServiceActivities
from core.contracts import DeliveryOrder
from core.errors import UNKNOWN_ORDER, business_error
from services.integrations import repository


class IntegrationsActivities(ServiceActivities):
    """Writes only to the Integrations database."""

    @activity.defn
    async def accept_order(self, order: DeliveryOrder) -> None:
        """Confirm the partner order exists for this delivery and mark it accepted (idempotent)."""
        async with self.sessions.begin() as session:
            if not await repository.accept_order(session, order.partner_delivery_id, order.delivery_id):
                raise business_error(UNKNOWN_ORDER, f"no stored partner order for delivery {order.delivery_id}")

    @activity.defn
    async def purge_pii(self) -> int:
        """Erase the personal data of orders whose retention has passed; a retry finds nothing left to do."""
        async with self.sessions.begin() as session:
            purged = await repository.purge_pii(session)
        activity.logger.info("purged personal data of %d orders", purged, extra={"purged": purged})
        return purged
