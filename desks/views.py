"""A partner's view of its orders: found by the partner's ids or a tracking link, read from each order's record
(`desks.records`) and, while the delivery runs, followed in its workflow.

Every dialect reads its orders here, and the partner desk (`desks.partner`) answers its creates and changes with
these views. How a view is built from a record is written once, in the functions below the desk.
"""

import base64
import uuid
from datetime import datetime, timedelta

from temporalio.client import Client

from core.contracts import TERMINAL_STATUSES, AttemptKind, DeliveryStatus, Point
from core.db import Databases
from core.services import Service
from core.settings import Settings
from desks.errors import Refusal
from desks.orders import AttemptView, HistoryEntry, Order, OrderView, ProofOfDelivery
from desks.records import DeliveryRecord, ask_workflow, load_records
from services.deliveries.models import Quote
from services.integrations import repository as integrations
from services.integrations.dialects.base import tracking_url
from services.integrations.models import PartnerDelivery
from services.integrations.orders import dropoff_of, pickup_of
from services.state.models import LidEvent

S = DeliveryStatus
QUERY_TIMEOUT = timedelta(seconds=2)
# What a partner's view of an order is read from.
VIEW_PARTS = (Service.INTEGRATIONS, Service.DELIVERIES)


def encode_cursor(order: PartnerDelivery) -> str:
    return base64.urlsafe_b64encode(f"{order.created_at.isoformat()}|{order.id}".encode()).decode()


def decode_cursor(cursor: str, field_name: str = "cursor") -> tuple[datetime, uuid.UUID]:
    try:
        created_at, _, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created_at), uuid.UUID(order_id)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "invalid_cursor", "the cursor is not one this API returned", field_name) from None


class OrderViews:
    """What a partner, or a customer with a tracking link, may read of an order, whatever dialect it speaks."""

    def __init__(self, databases: Databases, temporal: Client, settings: Settings):
        self.databases, self.temporal, self.settings = databases, temporal, settings

    # ---- orders --------------------------------------------------------------------------------------

    async def order_by_delivery_id(self, partner_id: uuid.UUID, delivery_id: uuid.UUID) -> Order:
        """The partner's order for a delivery id; 404 for unknown ids and other partners' deliveries alike."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            order = await integrations.find_order_of_delivery(session, partner_id, delivery_id)
        if order is None:
            raise Refusal(404, "not_found", f"no delivery {delivery_id}")
        return self._order(order)

    async def order_by_external_id(self, partner_id: uuid.UUID, external_id: str) -> Order:
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            order = await integrations.find_partner_delivery(session, partner_id, external_id)
        if order is None:
            raise Refusal(404, "not_found", f"no delivery {external_id}")
        return self._order(order)

    async def order_by_tracking_token(self, token: str) -> Order | None:
        """The order a public tracking link names, if any."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            order = await integrations.order_by_tracking_token(session, token)
        return self._order(order) if order else None

    def _order(self, order: PartnerDelivery) -> Order:
        return order_of(order, self.settings.public_url)

    # ---- views ---------------------------------------------------------------------------------------

    async def view_of(self, order: Order, live: bool = True) -> OrderView:
        """The order joined with its delivery (Deliveries), its quote and, while it runs, the live plan's ETAs."""
        return (await self._views([order.delivery_id], live))[0]

    async def list_views(self, partner_id: uuid.UUID, *, statuses: list[str] | None = None,
                         created_after: datetime | None = None, created_before: datetime | None = None,
                         cursor: str | None = None, limit: int = 50, offset: int = 0,
                         ) -> tuple[list[OrderView], str | None]:
        """The partner's orders, newest first, one page, as stored (no live ETAs); and the next page's cursor.

        A page starts after `cursor`, or `offset` orders in (for dialects that page by counting)."""
        after = decode_cursor(cursor) if cursor else None
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            orders = await integrations.list_orders(session, partner_id, statuses=statuses,
                                                    created_after=created_after, created_before=created_before,
                                                    after=after, limit=limit + 1, offset=offset)
        more = len(orders) > limit
        orders = orders[:limit]
        views = await self._views([order.delivery_id for order in orders], live=False)
        return views, encode_cursor(orders[-1]) if more else None

    async def _views(self, delivery_ids: list[uuid.UUID], live: bool) -> list[OrderView]:
        records = await load_records(self.databases, delivery_ids, VIEW_PARTS)
        views = []
        for record in records.values():
            view = recorded_view(record, self.settings.public_url)
            if live and view.status not in TERMINAL_STATUSES:
                await ask_workflow(self.temporal, record, QUERY_TIMEOUT)
                follow(view, record)
            views.append(view)
        return views

    async def current_status(self, order: Order) -> DeliveryStatus:
        """The workflow's own view of where the delivery is; it decides what may still change."""
        live = await ask_workflow(self.temporal, DeliveryRecord(order.delivery_id))
        return live.status if live is not None else (await self.view_of(order, live=False)).status

    async def proof_of_delivery(self, order: Order) -> ProofOfDelivery:
        """When and where the robot's lid opened for the customer; 404 `not_delivered` before that."""
        records = await load_records(self.databases, [order.delivery_id], (*VIEW_PARTS, Service.STATE))
        proof = proof_of(records[order.delivery_id], self.settings.public_url)
        if proof is None:
            raise Refusal(404, "not_delivered", f"delivery {order.delivery_id} has no proof of delivery yet")
        return proof


def order_of(order: PartnerDelivery, public_url: str) -> Order:
    """The partner's order as Integrations stores it, with its tracking link under `public_url`."""
    return Order(id=order.id, partner_id=order.partner_id, delivery_id=order.delivery_id,
                 external_id=order.external_delivery_id, status=S(order.status), market=order.market,
                 pickup=pickup_of(order), dropoff=dropoff_of(order), quote_id=order.quote_id,
                 cancel_reason=order.cancel_reason, tracking_url=tracking_url(public_url, order),
                 created_at=order.created_at, fee_cents=order.fee_cents, currency=order.currency,
                 ready_at=order.ready_at, live_mode=order.live_mode)


def quoted_view(order: Order, stored_quote: Quote | None) -> OrderView:
    """The order as stored, at its quote's fee and ETAs (without a quote, at the fee stored with the order, if any)."""
    view = OrderView(order=order, status=order.status, reason=order.cancel_reason, fee_cents=order.fee_cents,
                     currency=order.currency)
    if stored_quote is not None:
        view.fee_cents, view.currency = stored_quote.fee_cents, stored_quote.currency
        view.pickup_eta, view.dropoff_eta = stored_quote.pickup_eta, stored_quote.dropoff_eta
    return view


def recorded_view(record: DeliveryRecord, public_url: str) -> OrderView:
    """The partner's view of a delivery as the databases hold it: the order, then what Deliveries recorded."""
    view = quoted_view(order_of(record.order, public_url), record.quote)
    if record.delivery is None:  # accepted a moment ago: Deliveries has not created it yet
        return view
    numbers = {attempt.id: attempt.number for attempt in record.attempts}
    view.status, view.ended_at = S(record.delivery.status), record.delivery.ended_at
    view.attempts = [AttemptView.model_validate(attempt, from_attributes=True) for attempt in record.attempts]
    for entry in record.history:
        detail = entry.detail or {}
        view.history.append(HistoryEntry(
            attempt_number=numbers[entry.attempt_id], sequence=entry.sequence, status=entry.status,
            occurred_at=entry.occurred_at, robot_id=detail.get("robot_id"), reason=detail.get("reason")))
    for entry in view.history:
        if entry.status == S.PICKED_UP and view.picked_up_at is None:
            view.picked_up_at = entry.occurred_at
        if entry.status == S.DELIVERED:
            view.delivered_at = entry.occurred_at
        view.robot_id = entry.robot_id or view.robot_id
        view.reason = entry.reason or view.reason
    return view


def follow(view: OrderView, record: DeliveryRecord) -> None:
    """The running workflow's current ETAs and robot, when it answered; the stored figures stand otherwise."""
    live = record.workflow
    if live is None:
        return
    view.pickup_eta = live.eta.pickup if live.eta else view.pickup_eta
    # A late robot's revised dropoff ETA (trip monitoring) supersedes the plan's.
    view.dropoff_eta = live.live_dropoff_eta or view.dropoff_eta
    view.robot_id = live.robot_id or view.robot_id
    view.status = live.status


def proof_of(record: DeliveryRecord, public_url: str) -> ProofOfDelivery | None:
    """When and where the robot's lid last opened for the customer of a delivered order (the record read with
    State's part too); None before that."""
    view = recorded_view(record, public_url)
    delivering = {attempt.id for attempt in record.attempts if attempt.kind == AttemptKind.DELIVERY}
    openings = [cycle for cycle in record.lid_cycles
                if cycle.accepted and cycle.event == LidEvent.OPENED and cycle.attempt_id in delivering]
    if view.status != S.DELIVERED or not openings:
        return None
    lid = openings[-1]
    return ProofOfDelivery(delivery_id=record.delivery_id, robot_id=lid.robot_id, lid_opened_at=lid.occurred_at,
                           location=Point(latitude=lid.latitude, longitude=lid.longitude),
                           delivered_at=view.delivered_at)
