"""Integrations activities: validate the stored partner order before the lifecycle starts."""

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
