"""The partner dialects' vocabularies, and the snapshot of an order each one renders.

A dialect's routes (`api/dialects`) and its status callbacks must say the same thing, so both read the words
Integrations keeps for the callbacks (`services.integrations.dialects`); the routes reach them through here.
"""

from core.contracts import DeliveryStatus
from desks.orders import OrderView
from services.integrations.dialects import doordash, olo, uber
from services.integrations.dialects.base import Snapshot
from services.integrations.models import PartnerDialect

__all__ = ["PartnerDialect", "Snapshot", "doordash", "olo", "snapshot_of", "uber"]

_STATUS_WORDS = {status.value for status in DeliveryStatus}


def snapshot_of(view: OrderView) -> Snapshot:
    """The desk's view of an order as the snapshot every dialect renders. A partner's own cancel is the reason it
    ended, as its callbacks say, whatever the return that followed recorded."""
    reached = {DeliveryStatus(entry.status): entry.occurred_at
               for entry in view.history if entry.status in _STATUS_WORDS}
    order = view.order
    return Snapshot(delivery_id=order.delivery_id, external_id=order.external_id, status=view.status,
                    tracking_url=view.tracking_url, created_at=order.created_at, quote_id=order.quote_id,
                    fee_cents=view.fee_cents, currency=view.currency, pickup_eta=view.pickup_eta,
                    dropoff_eta=view.dropoff_eta, reason=order.cancel_reason or view.reason, reached=reached,
                    pickup=order.pickup, dropoff=order.dropoff, robot_id=view.robot_id, live_mode=order.live_mode)
