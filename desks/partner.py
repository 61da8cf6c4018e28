"""The partner desk every partner dialect shares: credentials, stores, quotes, creates, reads, updates, cancels,
proofs of delivery.

A dialect (native, DoorDash, Uber, Olo) parses its own request, builds an `Intake` and asks the desk, then renders
the answer in its own vocabulary. Validation, idempotency, quote checks, storage (Integrations, with PII sealed)
and the start of the lifecycle live here once. Every refusal is a `Refusal` raised before anything is stored,
naming the field in the dialect's own words.
"""

import base64
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from core.contracts import (
    TERMINAL_STATUSES, AttemptKind, CancelRequest, DeliveryOrder, DeliveryStatus, Point, QuoteOffer, QuoteOrder,
    QuoteRequest,
)
from core.crypto import Vault
from core.db import Databases
from core.geocoding import Geocoder
from core.markets import Market, market_for
from core.services import Service
from core.settings import Settings
from desks.errors import Refusal, unavailable
from desks.orders import (
    AccessGrant, AttemptView, HistoryEntry, Intake, Order, OrderView, PartnerAccount, ProofOfDelivery, StoreInfo,
)
from desks.records import DeliveryRecord, ask_workflow, load_records
from services.deliveries import repository as deliveries
from services.deliveries.models import Quote
from services.integrations import credentials
from services.integrations import repository as integrations
from services.integrations.dialects import base as dialects
from services.integrations.models import CredentialKind, Partner, PartnerDelivery, PartnerDialect, Store
from services.state.models import LidEvent
from workflows.delivery import DeliveryWorkflow, start_delivery, workflow_id
from workflows.quote import request_quote

S = DeliveryStatus
# Until the order is in the robot, the partner may still change the dropoff instructions and phone.
UPDATABLE = frozenset({S.CREATED, S.ROBOT_ASSIGNED, S.EN_ROUTE_TO_PICKUP, S.AT_PICKUP})
QUERY_TIMEOUT = timedelta(seconds=2)
QUOTE_TIMEOUT = timedelta(seconds=20)
# What a partner's view of an order is read from.
VIEW_PARTS = (Service.INTEGRATIONS, Service.DELIVERIES)


def service_area(pickup: Point, dropoff: Point, pickup_field: str, dropoff_field: str) -> Market:
    """The market serving both ends; 422 `outside_service_area` naming the end that is outside."""
    market = market_for(pickup)
    if market is None:
        raise Refusal(422, "outside_service_area", "the pickup is outside every service area", pickup_field)
    if not market.contains(dropoff):
        raise Refusal(422, "outside_service_area", f"the dropoff is outside the {market.name} service area",
                      dropoff_field)
    return market


def placed(found: Point | None, address: str | None, field_name: str) -> Point:
    """A place found for a field; 422 `unknown_location` if its address could not be located, `invalid_request`
    if the field had neither coordinates nor an address."""
    if found is not None:
        return found
    if address:
        raise Refusal(422, "unknown_location", f"the address in {field_name} could not be located", field_name)
    raise Refusal(422, "invalid_request", f"{field_name} needs coordinates or an address", field_name)


def encode_cursor(order: PartnerDelivery) -> str:
    return base64.urlsafe_b64encode(f"{order.created_at.isoformat()}|{order.id}".encode()).decode()


def decode_cursor(cursor: str, field_name: str = "cursor") -> tuple[datetime, uuid.UUID]:
    try:
        created_at, _, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created_at), uuid.UUID(order_id)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "invalid_cursor", "the cursor is not one this API returned", field_name) from None


@dataclass
class _Earlier:
    """An order stored before under the same id, and what to start again if it never got past created."""

    order: Order
    restart: DeliveryOrder | None


class PartnerDesk:
    """What partners may ask of the platform, whatever dialect they speak.

    Built once per API process with what it works with; `settings` and `geocoder` are plain attributes, so a
    test may run the desk with other ones for a while.
    """

    def __init__(self, databases: Databases, vault: Vault, geocoder: Geocoder, temporal: Client, settings: Settings):
        self.databases, self.vault, self.geocoder = databases, vault, geocoder
        self.temporal, self.settings = temporal, settings

    # ---- credentials ---------------------------------------------------------------------------------

    async def partner_by_api_key(self, api_key: str) -> PartnerAccount | None:
        """The partner whose unexpired API key this is (native and Olo dialects)."""
        async with self.databases.lookups(Service.INTEGRATIONS)() as session:
            partner = await credentials.partner_by_secret(session, CredentialKind.API_KEY, api_key)
        return _account(partner) if partner else None

    async def partner_by_access_token(self, token: str) -> PartnerAccount | None:
        """The Uber-dialect partner an unexpired access token was issued to."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner = await credentials.partner_by_secret(session, CredentialKind.ACCESS_TOKEN, token)
        return _account(partner) if partner else None

    async def drive_signing_secret(self, developer_id: str, key_id: str) -> tuple[PartnerAccount, str] | None:
        """A DoorDash-dialect partner and its unexpired JWT signing secret for (developer_id, key_id)."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            found = await credentials.signing_secret(session, self.vault, developer_id, key_id)
        return (_account(found[0]), found[1]) if found else None

    async def grant_access_token(self, client_id: str, client_secret: str,
                                 admit: Callable[[PartnerAccount], object]) -> AccessGrant | None:
        """A bearer token for an Uber-dialect partner's client credentials, once `admit` lets the partner in
        (it raises otherwise); None for unknown credentials."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner = await credentials.partner_by_secret(session, CredentialKind.CLIENT_SECRET, client_secret,
                                                          key_id=client_id)
            if partner is None or partner.dialect != PartnerDialect.UBER:
                return None
            admit(_account(partner))
            ttl = self.settings.uber_access_token_seconds
            token = await credentials.issue_access_token(session, partner, timedelta(seconds=ttl))
        return AccessGrant(access_token=token, expires_in=ttl)

    # ---- stores and places ---------------------------------------------------------------------------

    async def add_store(self, partner_id: uuid.UUID, store_id: str, name: str, latitude: float,
                        longitude: float) -> StoreInfo:
        """Register (or update) a pickup location; 422 `outside_service_area` outside every market."""
        market = market_for(Point(latitude=latitude, longitude=longitude))
        if market is None:
            raise Refusal(422, "outside_service_area", "the store is outside every service area", "latitude")
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            store = await integrations.add_store(session, partner_id, store_id, name, latitude, longitude,
                                                 market.name)
        return _store_info(store)

    async def list_stores(self, partner_id: uuid.UUID) -> list[StoreInfo]:
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            return [_store_info(store) for store in await integrations.list_stores(session, partner_id)]

    async def locate(self, point: Point | None, address: str | None, field_name: str) -> Point:
        """Coordinates as sent, or the geocoder's for the address; refused as `placed` says."""
        return placed(await self._geocode(point, address), address, field_name)

    async def pickup_point(self, partner_id: uuid.UUID, store_id: str | None, point: Point | None,
                           address: str | None, store_field: str, field_name: str) -> Point:
        """Where the pickup is: the partner's registered store, or the coordinates, or the geocoded address."""
        if store_id is not None:
            async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
                store = await _store_of(session, partner_id, store_id, store_field)
            return _store_point(store)
        return await self.locate(point, address, field_name)

    async def _geocode(self, point: Point | None, address: str | None) -> Point | None:
        """Coordinates as sent, else the geocoder's for the address; None when there is none or it is unknown."""
        if point is not None:
            return point
        return await self.geocoder.locate(address) if address else None

    # ---- quotes --------------------------------------------------------------------------------------

    async def quote(self, partner_id: uuid.UUID, pickup: Point, dropoff: Point, *, external_id: str | None = None,
                    ready_at: datetime | None = None, fields: dict[str, str] | None = None,
                    valid_seconds: float | None = None) -> QuoteOffer:
        """Price a trip from Dispatch's current plan; 422 `no_capacity` when no robot could take it.

        The offer holds for `valid_seconds` (default: the `quote_valid_seconds` setting).
        """
        fields = fields or {}
        market = service_area(pickup, dropoff, fields.get("pickup", "pickup"), fields.get("dropoff", "dropoff"))
        order = QuoteOrder(quote_id=uuid.uuid4(), partner_id=partner_id, external_delivery_id=external_id,
                           request=QuoteRequest(market=market.name, pickup=pickup, dropoff=dropoff, ready_at=ready_at),
                           valid_seconds=valid_seconds or self.settings.quote_valid_seconds)
        try:
            offer = await request_quote(self.temporal, order, QUOTE_TIMEOUT)
        except (RPCError, WorkflowFailureError):
            raise unavailable("no quote could be made just now; retry", retry_after=2) from None
        if offer is None:
            raise Refusal(422, "no_capacity", f"no robot in {market.name} can take this delivery now; try again later")
        return offer

    async def refuse_existing(self, partner_id: uuid.UUID, external_id: str, field_name: str) -> None:
        """409 `duplicate_delivery` if the partner already has an order under this id (a quote names a new one)."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            if await integrations.find_partner_delivery(session, partner_id, external_id):
                raise Refusal(409, "duplicate_delivery", f"delivery {external_id} already exists", field_name)

    async def keep_quoted_request(self, partner_id: uuid.UUID, offer: QuoteOffer, external_id: str,
                                  request: dict) -> None:
        """Keep the whole order behind a quote, sealed, for dialects that accept a quote by its id alone."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            await integrations.save_quote_request(session, self.vault, offer.quote_id, partner_id, external_id,
                                                  request, offer.expires_at)

    async def quoted_request(self, partner_id: uuid.UUID, *, quote_id: uuid.UUID | None = None,
                             external_id: str | None = None) -> tuple[uuid.UUID, dict] | None:
        """The quote id and the request kept for a partner's quote, by quote id or by its newest for an order id."""
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            found = await integrations.find_quote_request(session, self.vault, partner_id, quote_id=quote_id,
                                                          external_delivery_id=external_id)
        return (found[0].quote_id, found[1]) if found else None

    # ---- create --------------------------------------------------------------------------------------

    async def create(self, partner_id: uuid.UUID, intake: Intake) -> tuple[OrderView, bool]:
        """Store the order and start its lifecycle. The same request again returns the same delivery (created False).

        The quote is read (Deliveries) and the addresses located first; then one Integrations transaction finds an
        order stored before under the same id, checks who holds the quote, resolves the store and stores the order
        with its customer's data sealed. The checks refuse in the order they always have: a replay passes them all.
        """
        stored_quote = await self._stored_quote(partner_id, intake.quote_id) if intake.quote_id else None
        pickup = await self._geocode(intake.pickup, intake.pickup_address) if intake.pickup_store_id is None else None
        dropoff = await self._geocode(intake.dropoff, intake.dropoff_address)
        try:
            async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
                earlier = await self._earlier(session, partner_id, intake)
                if earlier is None:
                    order, pii_id = await self._store(session, partner_id, intake, stored_quote, pickup, dropoff)
        except IntegrityError:  # a concurrent create won: same order id (a replay) or the same quote (used)
            async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
                earlier = await self._earlier(session, partner_id, intake)
            if earlier is None:
                raise Refusal(409, "used_quote", f"quote {intake.quote_id} was used by another delivery",
                              intake.name("quote_id")) from None
        if earlier is not None:
            if earlier.restart is not None:  # its start may have been lost (a crash right after storing)
                await self._start(earlier.restart)
            return await self.view_of(earlier.order), False
        await self._start(self._delivery_order(order, pii_id))
        return _order_view(self._order(order), stored_quote), True

    async def _stored_quote(self, partner_id: uuid.UUID, quote_id: uuid.UUID) -> Quote | None:
        async with self.databases.lookups(Service.DELIVERIES)() as session:
            return await deliveries.find_quote(session, partner_id, quote_id=quote_id)

    async def _earlier(self, session: AsyncSession, partner_id: uuid.UUID, intake: Intake) -> _Earlier | None:
        """The order stored before under the intake's id; 409 `duplicate_delivery` if it had another body."""
        existing = await integrations.find_partner_delivery(session, partner_id, intake.external_id)
        if existing is None:
            return None
        if existing.request_hash != intake.digest:
            raise Refusal(409, "duplicate_delivery",
                          f"{intake.name('external_id')} {intake.external_id} was used for a different delivery",
                          intake.name("external_id"))
        restart = None
        if existing.status == S.CREATED.value:
            restart = self._delivery_order(existing, await integrations.pii_id_of(session, existing.id))
        return _Earlier(self._order(existing), restart)

    async def _store(self, session: AsyncSession, partner_id: uuid.UUID, intake: Intake, stored_quote: Quote | None,
                     pickup: Point | None, dropoff: Point | None) -> tuple[PartnerDelivery, uuid.UUID]:
        """Check the order and store it with its sealed customer data; the stored order and its PII id."""
        if intake.quote_id:
            await _check_quote(session, intake, stored_quote)
        store = await _store_of(session, partner_id, intake.pickup_store_id, intake.name("pickup_store_id"))
        pickup = _store_point(store) if store else placed(pickup, intake.pickup_address, intake.name("pickup"))
        dropoff = placed(dropoff, intake.dropoff_address, intake.name("dropoff"))
        market = service_area(pickup, dropoff, intake.name("pickup"), intake.name("dropoff"))
        order = PartnerDelivery(
            partner_id=partner_id, external_delivery_id=intake.external_id, delivery_id=uuid.uuid4(),
            request_hash=intake.digest, status=S.CREATED.value, store_id=store.id if store else None,
            quote_id=stored_quote.id if stored_quote else None, market=market.name,
            fee_cents=stored_quote.fee_cents if stored_quote else None,
            currency=stored_quote.currency if stored_quote else None,
            pickup_latitude=pickup.latitude, pickup_longitude=pickup.longitude,
            dropoff_latitude=dropoff.latitude, dropoff_longitude=dropoff.longitude,
            tracking_token=secrets.token_urlsafe(24))
        customer = {"name": intake.customer_name, "phone": intake.customer_phone,
                    "address": intake.dropoff_address or "", "instructions": intake.dropoff_instructions}
        pii = await integrations.store_order(session, self.vault, order, customer)
        return order, pii.id

    def _delivery_order(self, order: PartnerDelivery, pii_id: uuid.UUID | None) -> DeliveryOrder:
        """What the delivery's workflow starts with, its timers stamped from the current settings."""
        return DeliveryOrder(
            delivery_id=order.delivery_id, partner_id=order.partner_id, partner_delivery_id=order.id, pii_id=pii_id,
            external_delivery_id=order.external_delivery_id, market=order.market, store_id=order.store_id,
            pickup=_pickup(order), dropoff=_dropoff(order), quote_id=order.quote_id, policy=self.settings.lifecycle,
        )

    async def _start(self, order: DeliveryOrder) -> None:
        """Start the delivery's workflow, exactly once per delivery however often this is called."""
        try:
            await start_delivery(self.temporal, order)
        except RPCError:
            raise unavailable("the delivery is stored but could not start yet; retry", retry_after=2) from None

    # ---- read ----------------------------------------------------------------------------------------

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

    async def view_of(self, order: Order, live: bool = True) -> OrderView:
        """The order joined with its delivery (Deliveries), its quote and, while it runs, the live plan's ETAs."""
        return (await self._views([order.delivery_id], live))[0]

    async def list_views(self, partner_id: uuid.UUID, *, statuses: list[str] | None = None,
                         created_after: datetime | None = None, created_before: datetime | None = None,
                         cursor: str | None = None, limit: int = 50) -> tuple[list[OrderView], str | None]:
        """The partner's orders, newest first, one page, as stored (no live ETAs); and the next page's cursor."""
        after = decode_cursor(cursor) if cursor else None
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            orders = await integrations.list_orders(session, partner_id, statuses=statuses,
                                                    created_after=created_after, created_before=created_before,
                                                    after=after, limit=limit + 1)
        more = len(orders) > limit
        orders = orders[:limit]
        views = await self._views([order.delivery_id for order in orders], live=False)
        return views, encode_cursor(orders[-1]) if more else None

    async def _views(self, delivery_ids: list[uuid.UUID], live: bool) -> list[OrderView]:
        records = await load_records(self.databases, delivery_ids, VIEW_PARTS)
        views = []
        for record in records.values():
            view = self._recorded_view(record)
            if live and view.status not in TERMINAL_STATUSES:
                await ask_workflow(self.temporal, record, QUERY_TIMEOUT)
                _follow(view, record)
            views.append(view)
        return views

    def _recorded_view(self, record: DeliveryRecord) -> OrderView:
        """The partner's view of a delivery as the databases hold it: the order, then what Deliveries recorded."""
        view = _order_view(self._order(record.order), record.quote)
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

    def _order(self, order: PartnerDelivery) -> Order:
        return Order(id=order.id, partner_id=order.partner_id, delivery_id=order.delivery_id,
                     external_id=order.external_delivery_id, status=S(order.status), market=order.market,
                     pickup=_pickup(order), dropoff=_dropoff(order), quote_id=order.quote_id,
                     cancel_reason=order.cancel_reason,
                     tracking_url=dialects.tracking_url(self.settings.public_url, order), created_at=order.created_at)

    # ---- change --------------------------------------------------------------------------------------

    async def current_status(self, order: Order) -> DeliveryStatus:
        """The workflow's own view of where the delivery is; it decides what may still change."""
        live = await ask_workflow(self.temporal, DeliveryRecord(order.delivery_id))
        return live.status if live is not None else (await self.view_of(order, live=False)).status

    async def update_dropoff(self, order: Order, *, instructions: str | None = None, phone: str | None = None,
                             field_name: str = "dropoff") -> OrderView:
        """Change the dropoff instructions or the customer's phone; 409 `delivery_in_progress` once picked up."""
        status = await self.current_status(order)
        if status not in UPDATABLE:
            raise Refusal(409, "delivery_in_progress",
                          f"the delivery is {status.value}: the dropoff can no longer change", field_name)
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            await integrations.update_customer(session, self.vault, order.id, instructions=instructions, phone=phone)
        return await self.view_of(order)

    async def cancel(self, order: Order, reason: str) -> OrderView:
        """Cancel (idempotent): before pickup everything is released; after loading the order returns to the store."""
        status = await self.current_status(order)
        if status == S.CANCELLED:
            return await self.view_of(order)
        if status in TERMINAL_STATUSES or status == S.RETURNING:
            raise Refusal(409, "noncancelable_delivery",
                          f"the delivery is {status.value} and can no longer be cancelled")
        handle = self.temporal.get_workflow_handle(workflow_id(order.delivery_id))
        try:
            receipt = await handle.execute_update(DeliveryWorkflow.cancel, CancelRequest(reason=reason))
        except WorkflowUpdateFailedError as exc:
            raise Refusal(409, "noncancelable_delivery", getattr(exc.cause, "message", str(exc.cause))) from None
        except RPCError:
            raise unavailable("the cancellation could not be delivered; retry", retry_after=1) from None
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            await integrations.record_cancellation(session, order.id, reason, receipt.status.value)
        return await self.view_of(order)

    async def proof_of_delivery(self, order: Order) -> ProofOfDelivery:
        """When and where the robot's lid opened for the customer; 404 `not_delivered` before that."""
        records = await load_records(self.databases, [order.delivery_id], (*VIEW_PARTS, Service.STATE))
        record = records[order.delivery_id]
        view = self._recorded_view(record)
        delivering = {attempt.id for attempt in record.attempts if attempt.kind == AttemptKind.DELIVERY}
        openings = [cycle for cycle in record.lid_cycles
                    if cycle.accepted and cycle.event == LidEvent.OPENED and cycle.attempt_id in delivering]
        if view.status != S.DELIVERED or not openings:
            raise Refusal(404, "not_delivered", f"delivery {order.delivery_id} has no proof of delivery yet")
        lid = openings[-1]
        return ProofOfDelivery(delivery_id=order.delivery_id, robot_id=lid.robot_id, lid_opened_at=lid.occurred_at,
                               location=Point(latitude=lid.latitude, longitude=lid.longitude),
                               delivered_at=view.delivered_at)


def _order_view(order: Order, stored_quote: Quote | None) -> OrderView:
    """The order as stored, at its quote's fee and ETAs."""
    view = OrderView(order=order, status=order.status, reason=order.cancel_reason)
    if stored_quote is not None:
        view.fee_cents, view.currency = stored_quote.fee_cents, stored_quote.currency
        view.pickup_eta, view.dropoff_eta = stored_quote.pickup_eta, stored_quote.dropoff_eta
    return view


def _follow(view: OrderView, record: DeliveryRecord) -> None:
    """The running workflow's current ETAs and robot, when it answered; the stored figures stand otherwise."""
    live = record.workflow
    if live is None:
        return
    view.pickup_eta = live.eta.pickup if live.eta else view.pickup_eta
    # A late robot's revised dropoff ETA (trip monitoring) supersedes the plan's.
    view.dropoff_eta = live.live_dropoff_eta or view.dropoff_eta
    view.robot_id = live.robot_id or view.robot_id
    view.status = live.status


async def _check_quote(session: AsyncSession, intake: Intake, stored: Quote | None) -> None:
    """The partner's quote named by the intake, refused if unknown, expired or used by another order."""
    field_name = intake.name("quote_id")
    if stored is None:
        raise Refusal(404, "unknown_quote", f"no quote {intake.quote_id} for this partner", field_name)
    if stored.expires_at <= datetime.now(UTC):
        raise Refusal(422, "expired_quote", f"quote {intake.quote_id} expired at {stored.expires_at.isoformat()}",
                      field_name)
    holder = await integrations.order_of_quote(session, stored.id)
    if holder is not None and holder.external_delivery_id != intake.external_id:
        raise Refusal(409, "used_quote", f"quote {intake.quote_id} was used by another delivery", field_name)


async def _store_of(session: AsyncSession, partner_id: uuid.UUID, external_store_id: str | None,
                    field_name: str) -> Store | None:
    if external_store_id is None:
        return None
    store = await integrations.find_store(session, partner_id, external_store_id)
    if store is None:
        raise Refusal(422, "unknown_store", f"no store {external_store_id} is registered for this partner",
                      field_name)
    return store


def _store_point(store: Store) -> Point:
    return Point(latitude=store.latitude, longitude=store.longitude)


def _pickup(order: PartnerDelivery) -> Point:
    return Point(latitude=order.pickup_latitude, longitude=order.pickup_longitude)


def _dropoff(order: PartnerDelivery) -> Point:
    return Point(latitude=order.dropoff_latitude, longitude=order.dropoff_longitude)


def _account(partner: Partner) -> PartnerAccount:
    return PartnerAccount(id=partner.id, name=partner.name, dialect=PartnerDialect(partner.dialect),
                          account_id=partner.account_id)


def _store_info(store: Store) -> StoreInfo:
    return StoreInfo(store_id=store.external_store_id, name=store.name, latitude=store.latitude,
                     longitude=store.longitude, market=store.market)
