"""Partner dialects of the API: DoorDash Drive v2, Uber Direct and Olo dispatch, each on the order desk.

Each module parses its dialect's requests into the desk's terms (`api.intake`), renders the desk's answers
and errors in the dialect's words, and reads its vocabulary from `services.integrations.dialects`, which
the status callbacks share.
"""

from api import intake
from core.contracts import DeliveryStatus
from services.integrations.dialects.base import Snapshot

_STATUS_WORDS = {status.value for status in DeliveryStatus}


def snapshot_of(view: intake.OrderView) -> Snapshot:
    """The desk's view of an order as the snapshot every dialect renders."""
    reached = {DeliveryStatus(entry["status"]): entry["occurred_at"]
               for entry in view.history if entry["status"] in _STATUS_WORDS}
    order = view.order
    return Snapshot(delivery_id=order.delivery_id, external_id=order.external_delivery_id, status=view.status,
                    tracking_url=view.tracking_url, created_at=order.created_at, quote_id=order.quote_id,
                    fee_cents=view.fee_cents, currency=view.currency, pickup_eta=view.pickup_eta,
                    dropoff_eta=view.dropoff_eta, reason=view.reason, reached=reached)
