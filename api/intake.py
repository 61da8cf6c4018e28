"""The order desk every partner dialect shares: quotes, creates, reads, updates, cancels, proofs of delivery.

A dialect (native, DoorDash, Uber, Olo) parses its own request, builds an `Intake` and calls these
functions, then renders the result in its own vocabulary. Validation, idempotency, quote checks, storage
(Integrations, with PII sealed) and the start of the lifecycle live here once. Every refusal is an
`ApiError` raised before anything is stored, naming the field in the dialect's own words.
"""

import asyncio
import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.errors import ApiError, FieldError
from core.contracts import (
    TERMINAL_STATUSES, CancelRequest, DeliveryOrder, DeliveryStatus, Point, QuoteOffer, QuoteOrder, QuoteRequest,
)
from core.markets import Market, market_for
from core.services import Service, TaskQueue
from services.deliveries import repository as deliveries
from services.integrations import repository as integrations
from services.integrations.dialects import base as dialects
from services.integrations.models import PartnerDelivery, Store
from services.state import repository as state
from workflows.delivery import DeliveryWorkflow, workflow_id
from workflows.quote import QuoteWorkflow, quote_workflow_id

S = DeliveryStatus
# Until the order is in the robot, the partner may still change the dropoff instructions and phone.
UPDATABLE = frozenset({S.CREATED, S.ROBOT_ASSIGNED, S.EN_ROUTE_TO_PICKUP, S.AT_PICKUP})
QUERY_TIMEOUT = timedelta(seconds=2)
QUOTE_TIMEOUT = timedelta(seconds=20)


@dataclass
class Intake:
    """A create request in the desk's terms; `fields` maps the desk's field names to the dialect's."""

    external_id: str
    customer_name: str
    customer_phone: str
    digest: str
    pickup: Point | None = None
    pickup_store_id: str | None = None
    pickup_address: str | None = None
    dropoff: Point | None = None
    dropoff_address: str | None = None
    dropoff_instructions: str | None = None
    quote_id: uuid.UUID | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def name(self, desk_field: str) -> str:
        return self.fields.get(desk_field, desk_field)


@dataclass
class OrderView:
    """Everything a dialect may show about one order."""

    order: PartnerDelivery
    status: DeliveryStatus
    market: str | None
    tracking_url: str
    pickup: Point | None = None
    dropoff: Point | None = None
    fee_cents: int | None = None
    currency: str | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None
    ended_at: datetime | None = None
    robot_id: str | None = None
    reason: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def delivery_id(self) -> uuid.UUID:
        return self.order.delivery_id


def digest_of(body: Any) -> str:
    """A digest of a request body, to tell an idempotent replay from a conflicting reuse of an order id."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def refuse(status: int, code: str, message: str, field_name: str | None = None, **kwargs) -> ApiError:
    errors = [FieldError(field=field_name, error=code)] if field_name else []
    return ApiError(status, code, message, errors, **kwargs)


# ---- places ----------------------------------------------------------------------------------------

async def locate(app, point: Point | None, address: str | None, field_name: str) -> Point:
    """Coordinates as sent, or the geocoder's for the address; 422 `unknown_location` if neither works."""
    if point is not None:
        return point
    if address:
        found = await app.geocoder.locate(address)
        if found is not None:
            return found
        raise refuse(422, "unknown_location", f"the address in {field_name} could not be located", field_name)
    raise refuse(422, "invalid_request", f"{field_name} needs coordinates or an address", field_name)


def service_area(pickup: Point, dropoff: Point, pickup_field: str, dropoff_field: str) -> Market:
    """The market serving both ends; 422 `outside_service_area` naming the end that is outside."""
    market = market_for(pickup)
    if market is None:
        raise refuse(422, "outside_service_area", "the pickup is outside every service area", pickup_field)
    if not market.contains(dropoff):
        raise refuse(422, "outside_service_area", f"the dropoff is outside the {market.name} service area",
                     dropoff_field)
    return market


async def store_of(session, partner_id: uuid.UUID, external_store_id: str | None, field_name: str) -> Store | None:
    if external_store_id is None:
        return None
    store = await integrations.find_store(session, partner_id, external_store_id)
    if store is None:
        raise refuse(422, "unknown_store", f"no store {external_store_id} is registered for this partner", field_name)
    return store


async def pickup_point(app, partner_id: uuid.UUID, store_id: str | None, point: Point | None, address: str | None,
                       store_field: str, field_name: str) -> Point:
    """Where the pickup is: the partner's registered store, or the coordinates, or the geocoded address."""
    if store_id is not None:
        async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
            store = await store_of(session, partner_id, store_id, store_field)
        return Point(latitude=store.latitude, longitude=store.longitude)
    return await locate(app, point, address, field_name)


# ---- quotes ----------------------------------------------------------------------------------------

async def quote(app, partner_id: uuid.UUID, pickup: Point, dropoff: Point, *, external_id: str | None = None,
                ready_at: datetime | None = None, fields: dict[str, str] | None = None,
                valid_seconds: float | None = None) -> QuoteOffer:
    """Price a trip from Dispatch's current plan; 422 `no_capacity` when no robot could take it.

    The offer holds for `valid_seconds` (default: the `quote_valid_seconds` setting).
    """
    fields = fields or {}
    market = service_area(pickup, dropoff, fields.get("pickup", "pickup"), fields.get("dropoff", "dropoff"))
    order = QuoteOrder(quote_id=uuid.uuid4(), partner_id=partner_id, external_delivery_id=external_id,
                       request=QuoteRequest(market=market.name, pickup=pickup, dropoff=dropoff, ready_at=ready_at),
                       valid_seconds=valid_seconds or app.settings.quote_valid_seconds)
    try:
        offer = await app.temporal.execute_workflow(
            QuoteWorkflow.run, order, id=quote_workflow_id(order.quote_id),
            task_queue=TaskQueue.DELIVERY_WORKFLOWS.value, execution_timeout=QUOTE_TIMEOUT)
    except (RPCError, WorkflowFailureError):
        raise ApiError(503, "temporarily_unavailable", "no quote could be made just now; retry",
                       headers={"Retry-After": "2"}) from None
    if offer is None:
        raise ApiError(422, "no_capacity", f"no robot in {market.name} can take this delivery now; try again later")
    return offer


async def usable_quote(app, partner_id: uuid.UUID, intake: Intake) -> Any:
    """The partner's quote named by the intake, refused if unknown, expired or used by another order."""
    async with app.databases.sessions(Service.DELIVERIES).begin() as session:
        stored = await deliveries.find_quote(session, partner_id, quote_id=intake.quote_id)
    field_name = intake.name("quote_id")
    if stored is None:
        raise refuse(404, "unknown_quote", f"no quote {intake.quote_id} for this partner", field_name)
    if stored.expires_at <= datetime.now(UTC):
        raise refuse(422, "expired_quote", f"quote {intake.quote_id} expired at {stored.expires_at.isoformat()}",
                     field_name)
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        holder = await integrations.order_of_quote(session, stored.id)
    if holder is not None and holder.external_delivery_id != intake.external_id:
        raise refuse(409, "used_quote", f"quote {intake.quote_id} was used by another delivery", field_name)
    return stored


# ---- create ----------------------------------------------------------------------------------------

async def create(app, partner_id: uuid.UUID, intake: Intake) -> tuple[OrderView, bool]:
    """Store the order and start its lifecycle. The same request again returns the same delivery (created False)."""
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        existing = await integrations.find_partner_delivery(session, partner_id, intake.external_id)
    if existing is not None:
        return await _replay(app, partner_id, intake, existing), False
    stored_quote = await usable_quote(app, partner_id, intake) if intake.quote_id else None
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        store = await store_of(session, partner_id, intake.pickup_store_id, intake.name("pickup_store_id"))
    pickup = Point(latitude=store.latitude, longitude=store.longitude) if store else await locate(
        app, intake.pickup, intake.pickup_address, intake.name("pickup"))
    dropoff = await locate(app, intake.dropoff, intake.dropoff_address, intake.name("dropoff"))
    market = service_area(pickup, dropoff, intake.name("pickup"), intake.name("dropoff"))
    order = PartnerDelivery(partner_id=partner_id, external_delivery_id=intake.external_id, delivery_id=uuid.uuid4(),
                            request_hash=intake.digest, status=S.CREATED.value, store_id=store.id if store else None,
                            quote_id=stored_quote.id if stored_quote else None, market=market.name,
                            fee_cents=stored_quote.fee_cents if stored_quote else None,
                            currency=stored_quote.currency if stored_quote else None,
                            pickup_latitude=pickup.latitude, pickup_longitude=pickup.longitude,
                            dropoff_latitude=dropoff.latitude, dropoff_longitude=dropoff.longitude,
                            tracking_token=secrets.token_urlsafe(24))
    customer = {"name": intake.customer_name, "phone": intake.customer_phone,
                "address": intake.dropoff_address or "", "instructions": intake.dropoff_instructions}
    try:
        async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
            pii = await integrations.store_order(session, app.vault, order, customer)
    except IntegrityError:  # a concurrent create won: same order id (a replay) or the same quote (used)
        async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
            existing = await integrations.find_partner_delivery(session, partner_id, intake.external_id)
        if existing is None:
            raise refuse(409, "used_quote", f"quote {intake.quote_id} was used by another delivery",
                         intake.name("quote_id")) from None
        return await _replay(app, partner_id, intake, existing), False
    await start_lifecycle(app, DeliveryOrder(
        delivery_id=order.delivery_id, partner_id=partner_id, partner_delivery_id=order.id, pii_id=pii.id,
        external_delivery_id=intake.external_id, market=market.name, store_id=order.store_id, pickup=pickup,
        dropoff=dropoff, quote_id=order.quote_id, policy=app.settings.lifecycle,
    ))
    view = OrderView(order=order, status=S.CREATED, market=market.name, tracking_url=tracking_url(app, order),
                     pickup=pickup, dropoff=dropoff)
    if stored_quote is not None:
        _apply_quote(view, stored_quote)
    return view, True


async def _replay(app, partner_id: uuid.UUID, intake: Intake, existing: PartnerDelivery) -> OrderView:
    if existing.request_hash != intake.digest:
        raise refuse(409, "duplicate_delivery",
                     f"{intake.name('external_id')} {intake.external_id} was used for a different delivery",
                     intake.name("external_id"))
    if existing.status == S.CREATED.value:  # its start may have been lost (a crash right after storing)
        await start_lifecycle(app, await _delivery_order(app, existing))
    return await view_of(app, existing)


async def _delivery_order(app, order: PartnerDelivery) -> DeliveryOrder:
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        pii_id = await integrations.pii_id_of(session, order.id)
    return DeliveryOrder(
        delivery_id=order.delivery_id, partner_id=order.partner_id, partner_delivery_id=order.id, pii_id=pii_id,
        external_delivery_id=order.external_delivery_id, market=order.market, store_id=order.store_id,
        pickup=_pickup(order), dropoff=_dropoff(order), quote_id=order.quote_id, policy=app.settings.lifecycle,
    )


def _pickup(order: PartnerDelivery) -> Point:
    return Point(latitude=order.pickup_latitude, longitude=order.pickup_longitude)


def _dropoff(order: PartnerDelivery) -> Point:
    return Point(latitude=order.dropoff_latitude, longitude=order.dropoff_longitude)


async def start_lifecycle(app, order: DeliveryOrder) -> None:
    """Start the delivery's workflow, exactly once per delivery however often this is called."""
    attributes = TypedSearchAttributes([
        SearchAttributePair(SearchAttributeKey.for_keyword("PartnerId"), str(order.partner_id)),
        SearchAttributePair(SearchAttributeKey.for_keyword("ExternalDeliveryId"), order.external_delivery_id),
        SearchAttributePair(SearchAttributeKey.for_keyword("Market"), order.market),
        SearchAttributePair(SearchAttributeKey.for_keyword("DeliveryStatus"), DeliveryStatus.CREATED.value),
    ])
    client: Client = app.temporal
    try:
        await client.start_workflow(
            DeliveryWorkflow.run, order, id=workflow_id(order.delivery_id),
            task_queue=TaskQueue.DELIVERY_WORKFLOWS.value, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=attributes,
            static_summary=f"partner {order.partner_id} · order {order.external_delivery_id}",
        )
    except WorkflowAlreadyStartedError:
        return  # the delivery finished and its workflow closed: nothing to start again
    except RPCError:
        raise ApiError(503, "temporarily_unavailable", "the delivery is stored but could not start yet; retry",
                       headers={"Retry-After": "2"}) from None


# ---- read ------------------------------------------------------------------------------------------

async def order_by_delivery_id(app, partner_id: uuid.UUID, delivery_id: uuid.UUID) -> PartnerDelivery:
    """The partner's order for a delivery id; 404 for unknown ids and other partners' deliveries alike."""
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        order = await integrations.find_order_of_delivery(session, partner_id, delivery_id)
    if order is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    return order


async def order_by_external_id(app, partner_id: uuid.UUID, external_id: str) -> PartnerDelivery:
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        order = await integrations.find_partner_delivery(session, partner_id, external_id)
    if order is None:
        raise ApiError(404, "not_found", f"no delivery {external_id}")
    return order


def tracking_url(app, order: PartnerDelivery) -> str:
    return dialects.tracking_url(app.settings.public_url, order)


async def view_of(app, order: PartnerDelivery, live: bool = True) -> OrderView:
    """The order joined with its delivery (Deliveries), its quote and, while it runs, the live plan's ETAs."""
    async with app.databases.sessions(Service.DELIVERIES).begin() as session:
        delivery = await deliveries.get_delivery_view(session, order.delivery_id)
        stored_quote = await deliveries.find_quote(session, order.partner_id, quote_id=order.quote_id) \
            if order.quote_id else None
    view = OrderView(order=order, status=S(order.status),
                     market=order.market, tracking_url=tracking_url(app, order), pickup=_pickup(order),
                     dropoff=_dropoff(order), reason=order.cancel_reason)
    if stored_quote is not None:
        _apply_quote(view, stored_quote)
    if delivery is not None:
        view.status = S(delivery["status"])
        view.ended_at, view.attempts, view.history = delivery["ended_at"], delivery["attempts"], delivery["history"]
        for entry in view.history:
            if entry["status"] == S.PICKED_UP and view.picked_up_at is None:
                view.picked_up_at = entry["occurred_at"]
            if entry["status"] == S.DELIVERED:
                view.delivered_at = entry["occurred_at"]
            view.robot_id = entry["robot_id"] or view.robot_id
            view.reason = entry["reason"] or view.reason
    if live and view.status not in TERMINAL_STATUSES:
        await _live_plan(app, view)
    return view


def _apply_quote(view: OrderView, stored_quote) -> None:
    view.fee_cents, view.currency = stored_quote.fee_cents, stored_quote.currency
    view.pickup_eta, view.dropoff_eta = stored_quote.pickup_eta, stored_quote.dropoff_eta


async def _live_plan(app, view: OrderView) -> None:
    """The running workflow's current ETAs and robot; the stored figures stand if it cannot answer now."""
    handle = app.temporal.get_workflow_handle(workflow_id(view.delivery_id))
    try:
        status = await asyncio.wait_for(handle.query(DeliveryWorkflow.status), QUERY_TIMEOUT.total_seconds())
    except (RPCError, asyncio.TimeoutError, WorkflowFailureError):
        return
    view.pickup_eta = status.eta.pickup if status.eta else view.pickup_eta
    # A late robot's revised dropoff ETA (trip monitoring) supersedes the plan's.
    view.dropoff_eta = status.live_dropoff_eta or view.dropoff_eta
    view.robot_id = status.robot_id or view.robot_id
    view.status = status.status


def encode_cursor(order: PartnerDelivery) -> str:
    return base64.urlsafe_b64encode(f"{order.created_at.isoformat()}|{order.id}".encode()).decode()


def decode_cursor(cursor: str, field_name: str = "cursor") -> tuple[datetime, uuid.UUID]:
    try:
        created_at, _, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created_at), uuid.UUID(order_id)
    except (ValueError, UnicodeDecodeError):
        raise refuse(400, "invalid_cursor", "the cursor is not one this API returned", field_name) from None


async def list_orders(app, partner_id: uuid.UUID, *, statuses: list[str] | None = None,
                      created_after: datetime | None = None, created_before: datetime | None = None,
                      cursor: str | None = None, limit: int = 50) -> tuple[list[PartnerDelivery], str | None]:
    """The partner's orders, newest first, one page; the second value is the next page's cursor."""
    after = decode_cursor(cursor) if cursor else None
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        orders = await integrations.list_orders(session, partner_id, statuses=statuses, created_after=created_after,
                                                created_before=created_before, after=after, limit=limit + 1)
    more = len(orders) > limit
    orders = orders[:limit]
    return orders, encode_cursor(orders[-1]) if more else None


# ---- change ----------------------------------------------------------------------------------------

async def current_status(app, order: PartnerDelivery) -> S:
    """The workflow's own view of where the delivery is; it decides what may still change."""
    handle = app.temporal.get_workflow_handle(workflow_id(order.delivery_id))
    try:
        return (await handle.query(DeliveryWorkflow.status)).status
    except (RPCError, WorkflowFailureError):
        return (await view_of(app, order, live=False)).status


async def update_dropoff(app, order: PartnerDelivery, *, instructions: str | None = None, phone: str | None = None,
                         field_name: str = "dropoff") -> OrderView:
    """Change the dropoff instructions or the customer's phone; 409 `delivery_in_progress` once picked up."""
    status = await current_status(app, order)
    if status not in UPDATABLE:
        raise refuse(409, "delivery_in_progress", f"the delivery is {status.value}: the dropoff can no longer change",
                     field_name)
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        await integrations.update_customer(session, app.vault, order.id, instructions=instructions, phone=phone)
    return await view_of(app, order)


async def cancel(app, order: PartnerDelivery, reason: str) -> OrderView:
    """Cancel (idempotent): before pickup everything is released; after loading the order returns to the store."""
    status = await current_status(app, order)
    if status == S.CANCELLED:
        return await view_of(app, order)
    if status in TERMINAL_STATUSES or status == S.RETURNING:
        raise ApiError(409, "noncancelable_delivery", f"the delivery is {status.value} and can no longer be cancelled")
    handle = app.temporal.get_workflow_handle(workflow_id(order.delivery_id))
    try:
        receipt = await handle.execute_update(DeliveryWorkflow.cancel, CancelRequest(reason=reason))
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, "noncancelable_delivery", getattr(exc.cause, "message", str(exc.cause))) from None
    except RPCError:
        raise ApiError(503, "temporarily_unavailable", "the cancellation could not be delivered; retry",
                       headers={"Retry-After": "1"}) from None
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        await integrations.record_cancellation(session, order.id, reason, receipt.status.value)
    order.cancel_reason, order.status = reason, receipt.status.value
    return await view_of(app, order)


@dataclass
class ProofOfDelivery:
    delivery_id: uuid.UUID
    robot_id: str
    lid_opened_at: datetime
    location: Point
    delivered_at: datetime | None


async def proof_of_delivery(app, order: PartnerDelivery) -> ProofOfDelivery:
    """When and where the robot's lid opened for the customer; 404 `not_delivered` before that."""
    view = await view_of(app, order, live=False)
    attempt_ids = [a["attempt_id"] for a in view.attempts if a["kind"] == "delivery"]
    async with app.databases.sessions(Service.STATE).begin() as session:
        cycles = await state.lid_cycles(session, attempt_ids) if attempt_ids else []
    openings = [c for c in cycles if c.event == "opened"]
    if view.status != S.DELIVERED or not openings:
        raise ApiError(404, "not_delivered", f"delivery {order.delivery_id} has no proof of delivery yet")
    lid = openings[-1]
    return ProofOfDelivery(delivery_id=order.delivery_id, robot_id=lid.robot_id, lid_opened_at=lid.occurred_at,
                           location=Point(latitude=lid.latitude, longitude=lid.longitude),
                           delivered_at=view.delivered_at)
