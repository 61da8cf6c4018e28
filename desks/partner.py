"""The partner desk every partner dialect shares to take orders and change them: places, quotes, creates,
updates, cancels.

A dialect (native, DoorDash, Uber, Olo) parses its own request, builds an `Intake` and asks the desk, then renders
the answer in its own vocabulary. Validation, idempotency, quote checks, storage (Integrations, with PII sealed)
and the start of the lifecycle live here once. Every refusal is a `Refusal` raised before anything is stored,
naming the field in the dialect's own words. Who the partner is, and its stores, are the accounts desk's
(`desks.accounts`); reading orders, and what a partner is shown of one, are the order views' (`desks.views`).
"""

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from core.contracts import (
    TERMINAL_STATUSES, CancelRequest, DeliveryOrder, DeliveryStatus, Point, QuoteOffer, QuoteOrder, QuoteRequest,
)
from core.crypto import Vault
from core.db import Databases
from core.caching import TtlCache
from core.geo import meters_between
from core.geocoding import Geocoder
from core.markets import Market, market_for
from core.services import Service
from core.settings import Settings
from desks.errors import Refusal, unavailable, workflow_refusal
from desks.orders import MAX_PREPARATION_MINUTES, Intake, Order, OrderView, PartnerAccount, PickupPlace
from desks.views import OrderViews, order_of, quoted_view
from services.deliveries import repository as deliveries
from services.deliveries.models import Quote
from services.dispatch import repository as dispatch
from services.dispatch.eta import earliest_dropoff
from services.dispatch.pricing import delivery_fee_cents
from services.integrations import repository as integrations
from services.integrations.models import PartnerDelivery, Store
from services.integrations.orders import delivery_order
from workflows.delivery import DeliveryWorkflow, start_delivery, workflow_id
from workflows.quote import request_quote

log = logging.getLogger(__name__)
# A workflow start the create could not make at once is tried again after each of these pauses; after the last,
# the `stranded-orders` schedule starts it (`stranded_order_grace_seconds` after the order was stored).
START_RETRY_SECONDS = (0.25, 0.5, 1, 2, 4)
# A market's outlook is rewritten by each planning round (every few seconds); creates read it at most this stale.
OUTLOOK_SECONDS = 1.0

S = DeliveryStatus
# Until the order is in the robot, the partner may still change the dropoff instructions and phone.
UPDATABLE = frozenset({S.CREATED, S.ROBOT_ASSIGNED, S.EN_ROUTE_TO_PICKUP, S.AT_PICKUP})
QUOTE_TIMEOUT = timedelta(seconds=20)
LIST_PRICE_CURRENCY = "USD"  # the currency Dispatch prices every quote in
MAX_READY_AHEAD = timedelta(minutes=MAX_PREPARATION_MINUTES)


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


def ready_time(value: datetime | None, now: datetime, field_name: str) -> datetime | None:
    """A partner's ready time: one already past means ready now; 422 `invalid_request` without a UTC offset or
    more than `MAX_READY_AHEAD` ahead."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise Refusal(422, "invalid_request", f"{field_name} must carry a UTC offset (e.g. Z)", field_name)
    if value - now > MAX_READY_AHEAD:
        raise Refusal(422, "invalid_request", f"{field_name} is more than {MAX_READY_AHEAD.total_seconds() / 3600:.0f}"
                      " hours ahead", field_name)
    return max(value, now)


@dataclass
class _Earlier:
    """An order stored before under the same id, and what to start again if it never got past created."""

    order: Order
    restart: DeliveryOrder | None


class PartnerDesk:
    """What partners may ask to do with their orders, whatever dialect they speak; a create or a change answers with
    the order's view, read through `views`.

    Built once per API process with what it works with; `settings` and `geocoder` are plain attributes, so a
    test may run the desk with other ones for a while.
    """

    def __init__(self, databases: Databases, vault: Vault, geocoder: Geocoder, temporal: Client, settings: Settings,
                 views: OrderViews):
        self.databases, self.vault, self.geocoder = databases, vault, geocoder
        self.temporal, self.settings, self.views = temporal, settings, views
        self._starting: dict[uuid.UUID, asyncio.Task] = {}  # workflow starts under way, by delivery id
        self._outlooks = TtlCache(OUTLOOK_SECONDS, max_entries=1_000)  # when each market's soonest robot is free

    async def close(self, timeout: float = 5) -> None:
        """Let the workflow starts under way finish (those that don't are the stranded-orders schedule's)."""
        if self._starting:
            await asyncio.wait(list(self._starting.values()), timeout=timeout)

    # ---- places --------------------------------------------------------------------------------------

    async def locate(self, point: Point | None, address: str | None, field_name: str) -> Point:
        """Coordinates as sent, or the geocoder's for the address; refused as `placed` says."""
        return placed(await self._geocode(point, address), address, field_name)

    async def pickup_point(self, partner_id: uuid.UUID, store_id: str | None, point: Point | None,
                           address: str | None, store_field: str, field_name: str) -> PickupPlace:
        """Where the pickup is: the partner's registered store (with its preparation estimate), or the
        coordinates, or the geocoded address."""
        if store_id is not None:
            async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
                store = await _store_of(session, partner_id, store_id, store_field)
            return PickupPlace(_store_point(store), store.preparation_minutes)
        return PickupPlace(await self.locate(point, address, field_name))

    async def _geocode(self, point: Point | None, address: str | None) -> Point | None:
        """Coordinates as sent, else the geocoder's for the address; None when there is none or it is unknown."""
        if point is not None:
            return point
        return await self.geocoder.locate(address) if address else None

    # ---- quotes --------------------------------------------------------------------------------------

    async def quote(self, partner_id: uuid.UUID, pickup: PickupPlace, dropoff: Point, *,
                    external_id: str | None = None, ready_at: datetime | None = None,
                    fields: dict[str, str] | None = None, valid_seconds: float | None = None) -> QuoteOffer:
        """Price a trip from Dispatch's current plan; 422 `no_capacity` when no robot could take it, or when its
        dropoff would come later after the order than the market's limit.

        The order is ready at `ready_at` (refused as `ready_time` says), else after the store's preparation
        estimate or the market's. The offer holds for `valid_seconds` (default: the `quote_valid_seconds` setting).
        """
        fields = fields or {}
        now = datetime.now(UTC)
        ready_at = ready_time(ready_at, now, fields.get("ready_at", "ready_at"))
        if ready_at is None:
            ready_at = now + self._preparation(pickup.preparation_minutes)
        market = service_area(pickup.point, dropoff, fields.get("pickup", "pickup"), fields.get("dropoff", "dropoff"))
        request = QuoteRequest(market=market.name, pickup=pickup.point, dropoff=dropoff, ready_at=ready_at)
        order = QuoteOrder(quote_id=uuid.uuid4(), partner_id=partner_id, external_delivery_id=external_id,
                           request=request, valid_seconds=valid_seconds or self.settings.quote_valid_seconds)
        try:
            offer = await request_quote(self.temporal, order, QUOTE_TIMEOUT)
        except (RPCError, WorkflowFailureError):
            raise unavailable("no quote could be made just now; retry", retry_after=2) from None
        if offer is None:
            raise Refusal(422, "no_capacity", f"no robot in {market.name} can take this delivery now; try again later")
        self._admit(market, offer.dropoff_eta, now)
        return offer

    def _preparation(self, store_minutes: int | None) -> timedelta:
        """How long an order takes to prepare: its store's estimate, else the market default."""
        if store_minutes is not None:
            return timedelta(minutes=store_minutes)
        return timedelta(seconds=self.settings.preparation_seconds)

    def _admit(self, market: Market, dropoff_eta: datetime, placed_at: datetime) -> None:
        """422 `no_capacity` when the dropoff would come later after placing than the market's limit, with the
        ETA it would have had."""
        limit = timedelta(minutes=self.settings.max_click_to_door_minutes)
        if dropoff_eta - placed_at > limit:
            minutes = (dropoff_eta - placed_at).total_seconds() / 60
            raise Refusal(422, "no_capacity", f"{market.name} cannot deliver this in time: the dropoff would be at "
                          f"{dropoff_eta.isoformat(timespec='seconds')}, {minutes:.0f} min after the order, over the "
                          f"{limit.total_seconds() / 60:.0f} min limit; try again later")

    async def _admit_unquoted(self, market: Market, pickup: Point, dropoff: Point, ready_at: datetime | None,
                              now: datetime) -> None:
        """Admit an order without a quote by its market's outlook: the row Dispatch's rounds keep, read at most once
        per `OUTLOOK_SECONDS` by this process."""
        free_at = await self._outlooks.get(market.name, lambda: self._free_at(market.name))
        free_at = max(now, free_at) if free_at is not None else now
        ready_at = ready_at or now + self._preparation(None)
        self._admit(market, earliest_dropoff(free_at, ready_at, pickup, dropoff, market.walking_speed_mps), now)

    async def _free_at(self, market: str) -> datetime | None:
        """When the market's soonest robot is free, as the last round saw it; None before a round or without one."""
        async with self.databases.lookups(Service.DISPATCH)() as session:
            outlook = await dispatch.market_outlook(session, market)
        return outlook.free_at if outlook is not None else None

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

    async def create(self, partner: PartnerAccount, intake: Intake) -> tuple[OrderView, bool]:
        """Store the order and start its lifecycle. The same request again returns the same delivery (created False).

        The quote is read (Deliveries) and the addresses located first; then Integrations is asked who holds the
        quote and the store, and the order is stored with its customer's data sealed, in one statement. A new
        order takes no other round trip: only when a check refuses it or the insert fails (the partner's order id
        or the quote is taken, by an earlier or a concurrent create) is the order stored before under the same id
        looked up, and a replay of it answered as it was (created False) whatever the checks say now; a different
        body under that id is 409 `duplicate_delivery`, and otherwise the refusal stands.
        The partner is answered once the order is stored; its workflow starts right after (`_start_soon`).
        """
        stored_quote = await self._stored_quote(partner.id, intake.quote_id) if intake.quote_id else None
        pickup = await self._geocode(intake.pickup, intake.pickup_address) if intake.pickup_store_id is None else None
        dropoff = await self._geocode(intake.dropoff, intake.dropoff_address)
        try:  # each statement commits on its own; the order and its sealed data go in together, in one statement
            async with self.databases.lookups(Service.INTEGRATIONS)() as session:
                order, pii_id = await self._store(session, partner, intake, stored_quote, pickup, dropoff)
        except (Refusal, IntegrityError) as refused:
            async with self.databases.lookups(Service.INTEGRATIONS)() as session:
                earlier = await self._earlier(session, partner.id, intake)
            if earlier is None:
                if isinstance(refused, Refusal):
                    raise
                # the insert failed, and not on the order id: on the quote, which a concurrent create used
                raise Refusal(409, "used_quote", f"quote {intake.quote_id} was used by another delivery",
                              intake.name("quote_id")) from None
            if earlier.restart is not None:  # its start may have been lost (a crash right after storing)
                self._start_soon(earlier.restart)
            return await self.views.view_of(earlier.order), False
        self._start_soon(delivery_order(order, pii_id, self.settings.lifecycle))
        return quoted_view(order_of(order, self.settings.public_url), stored_quote), True

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
            pii_id = await integrations.pii_id_of(session, existing.id)
            restart = delivery_order(existing, pii_id, self.settings.lifecycle)
        return _Earlier(order_of(existing, self.settings.public_url), restart)

    async def _store(self, session: AsyncSession, partner: PartnerAccount, intake: Intake, stored_quote: Quote | None,
                     pickup: Point | None, dropoff: Point | None) -> tuple[PartnerDelivery, uuid.UUID]:
        """Check the order and store it with its sealed customer data; the stored order and its PII id."""
        if intake.quote_id:
            await _check_quote(session, intake, stored_quote)
        store = await _store_of(session, partner.id, intake.pickup_store_id, intake.name("pickup_store_id"))
        pickup = _store_point(store) if store else placed(pickup, intake.pickup_address, intake.name("pickup"))
        dropoff = placed(dropoff, intake.dropoff_address, intake.name("dropoff"))
        market = service_area(pickup, dropoff, intake.name("pickup"), intake.name("dropoff"))
        now = datetime.now(UTC)
        ready_at = self._ready_at(intake, stored_quote, store, now)
        if stored_quote is None and partner.live_mode:  # a quoted order was admitted with its quote; a test
            await self._admit_unquoted(market, pickup, dropoff, ready_at, now)  # order is played by no real robot
        fee_cents, currency = (stored_quote.fee_cents, stored_quote.currency) if stored_quote else (None, None)
        if stored_quote is None and intake.list_priced:
            fee_cents, currency = delivery_fee_cents(meters_between(pickup, dropoff), timedelta(0)), LIST_PRICE_CURRENCY
        order = PartnerDelivery(
            partner_id=partner.id, external_delivery_id=intake.external_id, delivery_id=uuid.uuid4(),
            request_hash=intake.digest, status=S.CREATED.value, store_id=store.id if store else None,
            quote_id=stored_quote.id if stored_quote else None, market=market.name,
            fee_cents=fee_cents, currency=currency, ready_at=ready_at, live_mode=partner.live_mode,
            pickup_latitude=pickup.latitude, pickup_longitude=pickup.longitude,
            dropoff_latitude=dropoff.latitude, dropoff_longitude=dropoff.longitude,
            tracking_token=secrets.token_urlsafe(24))
        customer = {"name": intake.customer_name, "phone": intake.customer_phone,
                    "address": intake.dropoff_address or "", "instructions": intake.dropoff_instructions}
        pii = await integrations.store_order(session, self.vault, order, customer)
        return order, pii.id

    def _ready_at(self, intake: Intake, stored_quote: Quote | None, store: Store | None,
                  now: datetime) -> datetime | None:
        """When the order is ready: the partner's time, else its quote's, else the store's preparation after now;
        None without a store (Dispatch then takes the market's preparation)."""
        ready_at = ready_time(intake.ready_at, now, intake.name("ready_at"))
        if ready_at is None and stored_quote is not None and stored_quote.ready_at is not None:
            ready_at = max(stored_quote.ready_at, now)
        if ready_at is None and store is not None:
            ready_at = now + self._preparation(store.preparation_minutes)
        return ready_at

    def _start_soon(self, order: DeliveryOrder) -> None:
        """Start the delivery's workflow in the background, so the partner's answer does not wait for Temporal.

        The order is committed first, so nothing accepted is lost: a start that fails is tried again
        (`START_RETRY_SECONDS`), and one this process never makes (it died, or Temporal stayed unreachable) is
        made by the `stranded-orders` schedule. Whatever acts on the workflow before it exists starts it first
        (`ensure_started`). Starting is idempotent, so these never make two runs.
        """
        if order.delivery_id in self._starting:
            return
        task = asyncio.get_running_loop().create_task(self._start(order), name=f"start {order.delivery_id}")
        self._starting[order.delivery_id] = task
        task.add_done_callback(lambda _: self._starting.pop(order.delivery_id, None))

    async def _start(self, order: DeliveryOrder) -> None:
        for pause in (*START_RETRY_SECONDS, None):
            try:
                await start_delivery(self.temporal, order)
                return
            except RPCError as exc:
                reason = exc.status.name
            except Exception:  # never lost in a task nobody awaits: logged, and left to the schedule
                log.exception("delivery %s: starting its workflow failed", order.delivery_id,
                              extra={"delivery_id": str(order.delivery_id)})
                return
            if pause is None:
                log.warning("delivery %s is stored but its workflow could not start (%s); the stranded-orders "
                            "schedule will start it", order.delivery_id, reason,
                            extra={"delivery_id": str(order.delivery_id)})
                return
            await asyncio.sleep(pause)

    async def ensure_started(self, order: Order) -> None:
        """Make sure the delivery's workflow exists before acting on it: its start may still be under way (the
        partner was answered first) or have been left to the stranded-orders schedule. 503 while Temporal is
        unreachable."""
        pending = self._starting.get(order.delivery_id)
        if pending is not None:
            await asyncio.shield(pending)
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            stored = await session.get(PartnerDelivery, order.id)
            pii_id = await integrations.pii_id_of(session, order.id)
        try:
            await start_delivery(self.temporal, delivery_order(stored, pii_id, self.settings.lifecycle))
        except RPCError:
            raise unavailable("the delivery is stored but its lifecycle could not start yet; retry",
                              retry_after=2) from None

    # ---- change --------------------------------------------------------------------------------------

    async def update_dropoff(self, order: Order, *, instructions: str | None = None, phone: str | None = None,
                             field_name: str = "dropoff") -> OrderView:
        """Change the dropoff instructions or the customer's phone; 409 `delivery_in_progress` once picked up."""
        status = await self.views.current_status(order)
        if status not in UPDATABLE:
            raise Refusal(409, "delivery_in_progress",
                          f"the delivery is {status.value}: the dropoff can no longer change", field_name)
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            await integrations.update_customer(session, self.vault, order.id, instructions=instructions, phone=phone)
        return await self.views.view_of(order)

    async def cancel(self, order: Order, reason: str) -> OrderView:
        """Cancel (idempotent): before pickup everything is released; after loading the order returns to the store."""
        status = await self.views.current_status(order)
        if status == S.CANCELLED:
            return await self.views.view_of(order)
        if status in TERMINAL_STATUSES or status == S.RETURNING:
            raise Refusal(409, "noncancelable_delivery",
                          f"the delivery is {status.value} and can no longer be cancelled")
        if status == S.CREATED:
            await self.ensure_started(order)
        handle = self.temporal.get_workflow_handle(workflow_id(order.delivery_id))
        try:
            receipt = await handle.execute_update(DeliveryWorkflow.cancel, CancelRequest(reason=reason))
        except WorkflowUpdateFailedError as exc:
            raise Refusal(409, "noncancelable_delivery", workflow_refusal(
                exc, "noncancelable_delivery", "the delivery can no longer be cancelled")) from None
        except RPCError:
            raise unavailable("the cancellation could not be delivered; retry", retry_after=1) from None
        async with self.databases.sessions(Service.INTEGRATIONS).begin() as session:
            await integrations.record_cancellation(session, order.id, reason, receipt.status.value)
        return await self.views.view_of(order)


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
