"""The native partner API (`/v1`): quotes, deliveries, their proof of delivery, and stores."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, model_validator

from api.auth import CurrentPartner
from api.dependencies import Accounts, Partners, Sandbox, Views
from api.errors import ERROR_RESPONSES, SANDBOX_REFUSALS, SANDBOX_STEP, ErrorBody
from core.contracts import DeliveryStatus, Point
from desks.errors import Refusal
from desks.orders import MAX_PREPARATION_MINUTES, AttemptView, HistoryEntry, Intake, OrderView, digest_of

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

PHONE = r"^\+?[0-9 ()-]+$"
ORDER_ID = r"^[A-Za-z0-9._~-]+$"


class Location(BaseModel):
    """Coordinates, or an address the geocoder can locate."""

    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    address: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _coordinates_in_pairs(self):
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together")
        return self

    def point(self) -> Point | None:
        return Point(latitude=self.latitude, longitude=self.longitude) if self.latitude is not None else None


class Pickup(Location):
    store_id: str | None = Field(None, max_length=128, description="your registered store id; its location is used")


class Dropoff(Location):
    instructions: str | None = Field(None, max_length=500)


class Customer(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=5, max_length=32, pattern=PHONE)


class QuoteCreate(BaseModel):
    pickup: Pickup
    dropoff: Location
    ready_at: datetime | None = Field(None, description="when the order will be ready at the store")

    model_config = {"json_schema_extra": {"examples": [{
        "pickup": {"store_id": "weho-melrose"},
        "dropoff": {"latitude": 34.0871, "longitude": -118.3725},
    }]}}


class QuoteView(BaseModel):
    id: uuid.UUID
    fee: int = Field(description="in the currency's minor unit (cents)")
    currency: str
    pickup_eta: datetime
    dropoff_eta: datetime
    expires_at: datetime = Field(description="create the delivery with `quote_id` before this")
    market: str


class DeliveryCreate(BaseModel):
    external_id: str = Field(min_length=1, max_length=128, pattern=ORDER_ID,
                             description="your id for this order; creating it again is idempotent")
    quote_id: uuid.UUID | None = Field(None, description="a quote of yours that has not expired or been used")
    pickup: Pickup
    dropoff: Dropoff
    customer: Customer
    ready_at: datetime | None = Field(None, description="when the order will be ready at the store (with a UTC "
                                                        "offset, at most 24 h ahead; past: ready now); without "
                                                        "it, the quote's, else the store's preparation estimate")

    model_config = {"json_schema_extra": {"examples": [{
        "external_id": "order-1042",
        "pickup": {"store_id": "weho-melrose"},
        "dropoff": {"latitude": 34.0871, "longitude": -118.3725, "address": "8800 Melrose Ave",
                    "instructions": "leave at the lobby"},
        "customer": {"name": "Alex Doe", "phone": "+13105550100"},
    }]}}


class DeliveryUpdate(BaseModel):
    dropoff_instructions: str | None = Field(None, max_length=500)
    customer_phone: str | None = Field(None, min_length=5, max_length=32, pattern=PHONE)

    model_config = {"json_schema_extra": {"examples": [{"dropoff_instructions": "call on arrival"}]}}


class DeliveryView(BaseModel):
    id: uuid.UUID
    external_id: str
    status: DeliveryStatus
    market: str | None = None
    tracking_url: str
    quote_id: uuid.UUID | None = None
    fee: int | None = None
    currency: str | None = None
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None
    robot_id: str | None = None
    cancellation_reason: str | None = None
    ready_at: datetime | None = Field(None, description="when the order is ready at the store, as accepted")
    created_at: datetime | None = None
    ended_at: datetime | None = None
    live_mode: bool = Field(True, description="false for a test partner's delivery: a sandbox robot plays it")
    attempts: list[AttemptView] = []
    history: list[HistoryEntry] = Field([], description="every status of every attempt, in order")

    @classmethod
    def of(cls, view: OrderView) -> "DeliveryView":
        order = view.order
        return cls(
            id=order.delivery_id, external_id=order.external_id, status=view.status, market=view.market,
            tracking_url=view.tracking_url, quote_id=order.quote_id, fee=view.fee_cents, currency=view.currency,
            pickup_eta=view.pickup_eta, dropoff_eta=view.dropoff_eta, picked_up_at=view.picked_up_at,
            delivered_at=view.delivered_at, robot_id=view.robot_id, cancellation_reason=order.cancel_reason,
            ready_at=order.ready_at, created_at=order.created_at, ended_at=view.ended_at, live_mode=order.live_mode,
            attempts=view.attempts, history=view.history,
        )


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryView]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last")


class CancelReason(StrEnum):
    CUSTOMER_CANCELLED = "customer_cancelled"
    MERCHANT_CANCELLED = "merchant_cancelled"
    ORDER_CHANGED = "order_changed"
    DUPLICATE_ORDER = "duplicate_order"
    OTHER = "other"


class CancelBody(BaseModel):
    reason: CancelReason = CancelReason.OTHER


class ProofOfDeliveryView(BaseModel):
    delivery_id: uuid.UUID
    robot_id: str
    lid_opened_at: datetime = Field(description="when the customer opened the robot's lid")
    location: Point = Field(description="where the robot was when the lid opened")
    delivered_at: datetime | None


class StoreCreate(BaseModel):
    store_id: str = Field(min_length=1, max_length=128, pattern=ORDER_ID)
    name: str = Field(min_length=1, max_length=200)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    preparation_minutes: int | None = Field(None, ge=0, le=MAX_PREPARATION_MINUTES,
                                            description="how long the store takes to prepare an order; an order "
                                                        "without a ready time is ready this long after it is "
                                                        "created (unset: the market's default)")

    model_config = {"json_schema_extra": {"examples": [{
        "store_id": "weho-melrose", "name": "Melrose Kitchen", "latitude": 34.0837, "longitude": -118.3614,
        "preparation_minutes": 12}]}}


class StoreView(StoreCreate):
    market: str


# ---- quotes ----------------------------------------------------------------------------------------

@router.post("/quotes", status_code=201, response_model=QuoteView, tags=["quotes"], summary="Quote a delivery",
             responses={422: {"model": ErrorBody, "description": "`outside_service_area`, `unknown_location`, "
                                                                    "`unknown_store` or `no_capacity`"}})
async def create_quote(body: QuoteCreate, partner: CurrentPartner, desk: Partners) -> QuoteView:
    """The fee and the pickup and dropoff ETAs the fleet can keep now, held until `expires_at`."""
    pickup = await desk.pickup_point(partner.id, body.pickup.store_id, body.pickup.point(), body.pickup.address,
                                     "pickup.store_id", "pickup")
    dropoff = await desk.locate(body.dropoff.point(), body.dropoff.address, "dropoff")
    offer = await desk.quote(partner.id, pickup, dropoff, ready_at=body.ready_at)
    return QuoteView(id=offer.quote_id, fee=offer.fee_cents, currency=offer.currency, pickup_eta=offer.pickup_eta,
                     dropoff_eta=offer.dropoff_eta, expires_at=offer.expires_at, market=offer.market)


# ---- deliveries ------------------------------------------------------------------------------------

@router.post("/deliveries", status_code=201, response_model=DeliveryView, tags=["deliveries"],
             summary="Create a delivery",
             responses={200: {"model": DeliveryView, "description": "The same request again: the same delivery"},
                        404: {"model": ErrorBody, "description": "`unknown_quote`"},
                        409: {"model": ErrorBody, "description": "`duplicate_delivery` (external_id used with "
                                                                 "another body) or `used_quote`"},
                        422: {"model": ErrorBody, "description": "`outside_service_area`, `unknown_location`, "
                                                                 "`unknown_store`, `expired_quote`, `no_capacity` "
                                                                 "(the dropoff would come too late) or an invalid "
                                                                 "field"}})
async def create_delivery(body: DeliveryCreate, partner: CurrentPartner, desk: Partners,
                          response: Response) -> DeliveryView:
    """Store the order, then start its lifecycle. The same body under the same external id returns the same delivery."""
    # Without a ready time the body digests as it did before the field existed, so a replay still matches.
    digest = digest_of(body.model_dump(mode="json", exclude=None if body.ready_at else {"ready_at"}))
    order = Intake(
        external_id=body.external_id, customer_name=body.customer.name, customer_phone=body.customer.phone,
        digest=digest, pickup=body.pickup.point(),
        pickup_store_id=body.pickup.store_id, pickup_address=body.pickup.address, dropoff=body.dropoff.point(),
        dropoff_address=body.dropoff.address, dropoff_instructions=body.dropoff.instructions, quote_id=body.quote_id,
        ready_at=body.ready_at, fields={"pickup_store_id": "pickup.store_id"},
    )
    view, created = await desk.create(partner, order)
    response.status_code = 201 if created else 200
    return DeliveryView.of(view)


@router.get("/deliveries", response_model=DeliveryPage, tags=["deliveries"], summary="List deliveries")
async def list_deliveries(
    partner: CurrentPartner, views: Views,
    status: Annotated[list[DeliveryStatus] | None, Query(description="only these statuses (repeatable)")] = None,
    created_after: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    created_before: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="from a previous page's `next_cursor`")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    """Your deliveries, newest first, a page at a time."""
    page, next_cursor = await views.list_views(
        partner.id, statuses=[s.value for s in status] if status else None, created_after=created_after,
        created_before=created_before, cursor=cursor, limit=limit)
    return DeliveryPage(deliveries=[DeliveryView.of(view) for view in page], next_cursor=next_cursor)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryView, tags=["deliveries"], summary="Get a delivery")
async def get_delivery(delivery_id: uuid.UUID, partner: CurrentPartner, views: Views) -> DeliveryView:
    """The delivery's status, live ETAs and its attempt trail; only the partner who created it can see it."""
    return DeliveryView.of(await views.view_of(await views.order_by_delivery_id(partner.id, delivery_id)))


@router.patch("/deliveries/{delivery_id}", response_model=DeliveryView, tags=["deliveries"],
              summary="Change the dropoff instructions or phone",
              responses={409: {"model": ErrorBody, "description": "`delivery_in_progress`: already picked up"}})
async def update_delivery(delivery_id: uuid.UUID, body: DeliveryUpdate, partner: CurrentPartner,
                          desk: Partners, views: Views) -> DeliveryView:
    """Allowed until the order is in the robot."""
    order = await views.order_by_delivery_id(partner.id, delivery_id)
    if body.dropoff_instructions is None and body.customer_phone is None:
        raise Refusal(422, "invalid_request", "nothing to change: send dropoff_instructions or customer_phone",
                      "dropoff_instructions")
    view = await desk.update_dropoff(order, instructions=body.dropoff_instructions, phone=body.customer_phone,
                                     field_name="dropoff_instructions")
    return DeliveryView.of(view)


@router.post("/deliveries/{delivery_id}/cancel", response_model=DeliveryView, tags=["deliveries"],
             summary="Cancel a delivery",
             responses={409: {"model": ErrorBody, "description": "`noncancelable_delivery`: already delivered, "
                                                                    "returned or on its way back"}})
async def cancel_delivery(delivery_id: uuid.UUID, body: CancelBody, partner: CurrentPartner,
                          desk: Partners, views: Views) -> DeliveryView:
    """Cancel before pickup and the robot is released; after loading, the order goes back to the store.
    Cancelling a cancelled delivery returns it unchanged."""
    order = await views.order_by_delivery_id(partner.id, delivery_id)
    return DeliveryView.of(await desk.cancel(order, body.reason.value))


@router.post("/sandbox/deliveries/{delivery_id}/advance", response_model=DeliveryView, tags=["sandbox"],
             summary=SANDBOX_STEP, responses=SANDBOX_REFUSALS)
async def advance_delivery(delivery_id: uuid.UUID, partner: CurrentPartner, sandbox: Sandbox,
                           views: Views) -> DeliveryView:
    """Test partners only: the sandbox robot moves the delivery on one status (robot_assigned, at_pickup,
    picked_up, at_dropoff, delivered; on a return, back to the store), with every callback a real robot causes."""
    order = await views.order_by_delivery_id(partner.id, delivery_id)
    return DeliveryView.of(await sandbox.advance(order, "delivery_id"))


@router.get("/deliveries/{delivery_id}/proof-of-delivery", response_model=ProofOfDeliveryView, tags=["deliveries"],
            summary="Proof of delivery",
            responses={404: {"model": ErrorBody, "description": "`not_found`, or `not_delivered` yet"}})
async def proof_of_delivery(delivery_id: uuid.UUID, partner: CurrentPartner, views: Views) -> ProofOfDeliveryView:
    """When and where the customer opened the robot's lid, and which robot it was."""
    proof = await views.proof_of_delivery(await views.order_by_delivery_id(partner.id, delivery_id))
    return ProofOfDeliveryView(delivery_id=proof.delivery_id, robot_id=proof.robot_id,
                               lid_opened_at=proof.lid_opened_at, location=proof.location,
                               delivered_at=proof.delivered_at)


# ---- stores ----------------------------------------------------------------------------------------

@router.post("/stores", status_code=201, response_model=StoreView, tags=["stores"], summary="Register a store",
             responses={422: {"model": ErrorBody, "description": "`outside_service_area` or an invalid field"}})
async def add_store(body: StoreCreate, partner: CurrentPartner, accounts: Accounts) -> StoreView:
    """Register a pickup location under your own store id (registering it again updates it)."""
    store = await accounts.add_store(partner.id, body.store_id, body.name, body.latitude, body.longitude,
                                     body.preparation_minutes)
    return StoreView.model_validate(store, from_attributes=True)


@router.get("/stores", response_model=list[StoreView], tags=["stores"], summary="List your stores")
async def list_stores(partner: CurrentPartner, accounts: Accounts) -> list[StoreView]:
    return [StoreView.model_validate(store, from_attributes=True) for store in await accounts.list_stores(partner.id)]

