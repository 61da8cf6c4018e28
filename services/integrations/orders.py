"""A stored partner order as the rest of the platform takes it: its two ends, and the input its delivery workflow
starts with (from the API right after storing it, or from the stranded-orders schedule if that start was lost)."""

import uuid

from core.contracts import DeliveryOrder, LifecyclePolicy, Point
from services.integrations.models import PartnerDelivery


def pickup_of(order: PartnerDelivery) -> Point:
    return Point(latitude=order.pickup_latitude, longitude=order.pickup_longitude)


def dropoff_of(order: PartnerDelivery) -> Point:
    return Point(latitude=order.dropoff_latitude, longitude=order.dropoff_longitude)


def delivery_order(order: PartnerDelivery, pii_id: uuid.UUID, policy: LifecyclePolicy) -> DeliveryOrder:
    """What the order's delivery workflow starts with, its timers stamped from `policy` (the current settings')."""
    return DeliveryOrder(
        delivery_id=order.delivery_id, partner_id=order.partner_id, partner_delivery_id=order.id, pii_id=pii_id,
        external_delivery_id=order.external_delivery_id, market=order.market, store_id=order.store_id,
        pickup=pickup_of(order), dropoff=dropoff_of(order), quote_id=order.quote_id, policy=policy,
        ready_at=order.ready_at,
        live_mode=order.live_mode,
    )
