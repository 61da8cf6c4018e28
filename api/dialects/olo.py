"""Olo dispatch, provider side (`/olo/v1`): quote by pickup or dropoff time, accept, follow, cancel.

Olo authenticates with the API key `deliveryctl partners create NAME --dialect olo` printed. It names each
delivery by its own `deliveryId`. A quote holds the whole order; accepting it by `quoteId` creates the
delivery. Status callbacks go to the partner's webhook, signed with `X-Olo-Signature`.
"""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field, model_validator

from api.auth import bearer, partner_by_key
from api.deliveries import Customer, Location
from api.dependencies import Partners, Sandbox, Views
from api.errors import ERROR_RESPONSES, SANDBOX_REFUSALS, SANDBOX_STEP, ErrorBody
from desks.dialects import PartnerDialect, olo, snapshot_of
from desks.errors import Refusal
from desks.orders import Intake, OrderView, PartnerAccount, digest_of

TAG = "Olo dispatch"
ORDER_ID = r"^[A-Za-z0-9._~-]+$"
FIELDS = {"external_id": "deliveryId", "pickup": "pickup", "dropoff": "dropoff", "pickup_store_id": "pickup.storeId",
          "quote_id": "quoteId", "ready_at": "pickupTime"}

router = APIRouter(prefix="/olo/v1", tags=[TAG], responses=ERROR_RESPONSES)


async def _olo_partner(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> PartnerAccount:
    return await partner_by_key(request, credentials, PartnerDialect.OLO)


OloPartner = Annotated[PartnerAccount, Depends(_olo_partner)]


class OloPickup(Location):
    storeId: str | None = Field(None, max_length=128, description="a registered store id; its location is used")


class OloDropoff(Location):
    instructions: str | None = Field(None, max_length=500)


class OloQuoteRequest(BaseModel):
    """An order to quote: exactly one of `pickupTime` (ready at) or `dropoffTime` (promised to the customer)."""

    deliveryId: str = Field(min_length=1, max_length=128, pattern=ORDER_ID, description="Olo's id of the delivery")
    pickup: OloPickup
    dropoff: OloDropoff
    customer: Customer
    pickupTime: datetime | None = None
    dropoffTime: datetime | None = None

    model_config = {"json_schema_extra": {"examples": [{
        "deliveryId": "olo-77812", "pickup": {"storeId": "weho-melrose"},
        "dropoff": {"address": "8800 Melrose Ave, West Hollywood, CA 90069", "instructions": "ring twice"},
        "customer": {"name": "Alex Doe", "phone": "+13105550100"}, "dropoffTime": "2026-11-25T19:30:00Z"}]}}

    @model_validator(mode="after")
    def _one_time(self):
        if (self.pickupTime is None) == (self.dropoffTime is None):
            raise ValueError("send exactly one of pickupTime or dropoffTime")
        return self

    def intake(self, digest: str, quote_id: uuid.UUID) -> Intake:
        return Intake(
            external_id=self.deliveryId, customer_name=self.customer.name, customer_phone=self.customer.phone,
            digest=digest, pickup=self.pickup.point(), pickup_store_id=self.pickup.storeId,
            pickup_address=self.pickup.address, dropoff=self.dropoff.point(), dropoff_address=self.dropoff.address,
            dropoff_instructions=self.dropoff.instructions, quote_id=quote_id, ready_at=self.pickupTime,
            fields=FIELDS)


class OloQuote(BaseModel):
    quoteId: uuid.UUID
    deliveryId: str
    fee: int = Field(description="cents")
    currency: str
    estimatedPickupTime: datetime
    estimatedDropoffTime: datetime
    expiresAt: datetime = Field(description="accept before this")
    canMeetDropoffTime: bool | None = Field(None, description="quotes by dropoff time: can the robot make it")
    pickupBy: datetime | None = Field(None, description="quotes by dropoff time: the latest pickup that still "
                                                        "makes the dropoff time")


class OloDelivery(BaseModel):
    deliveryId: str
    providerDeliveryId: str
    status: str = Field(description=", ".join(olo.STATUSES.values()))
    trackingUrl: str
    fee: int | None
    currency: str | None
    estimatedPickupTime: datetime | None
    estimatedDropoffTime: datetime | None
    timestamps: dict[str, datetime] = Field(description="when each lifecycle status was reached")
    cancelReason: str | None = Field(None, description="Olo's reason code, ours or the customer/vendor's")
    canceledBy: str | None = Field(None, description="`customer` or `provider`")

    @classmethod
    def of(cls, view: OrderView) -> "OloDelivery":
        return cls(**olo.delivery_fields(snapshot_of(view)))


class OloCancel(BaseModel):
    reasonCode: olo.CustomerCancelReason

    model_config = {"json_schema_extra": {"examples": [{"reasonCode": "CustomerCanceled"}]}}


@router.post("/quotes", response_model=OloQuote, summary="Quote a delivery by pickup or dropoff time",
             responses={409: {"model": ErrorBody, "description": "`duplicate_delivery`: deliveryId already used"},
                        422: {"model": ErrorBody, "description": "`outside_service_area`, `unknown_location`, "
                                                                 "`unknown_store`, `no_capacity` or an invalid field"}})
async def create_quote(body: OloQuoteRequest, partner: OloPartner, desk: Partners) -> OloQuote:
    """By pickup time: the robot comes when the order is ready. By dropoff time: whether it can be there in time,
    and by when the pickup must happen."""
    await desk.refuse_existing(partner.id, body.deliveryId, "deliveryId")
    pickup = await desk.pickup_point(partner.id, body.pickup.storeId, body.pickup.point(), body.pickup.address,
                                     "pickup.storeId", "pickup")
    dropoff = await desk.locate(body.dropoff.point(), body.dropoff.address, "dropoff")
    offer = await desk.quote(partner.id, pickup, dropoff, external_id=body.deliveryId, ready_at=body.pickupTime,
                             fields=FIELDS)
    await desk.keep_quoted_request(partner.id, offer, body.deliveryId, body.model_dump(mode="json"))
    quote = OloQuote(quoteId=offer.quote_id, deliveryId=body.deliveryId, fee=offer.fee_cents, currency=offer.currency,
                     estimatedPickupTime=offer.pickup_eta, estimatedDropoffTime=offer.dropoff_eta,
                     expiresAt=offer.expires_at)
    if body.dropoffTime is not None:
        quote.canMeetDropoffTime = offer.dropoff_eta <= body.dropoffTime
        quote.pickupBy = body.dropoffTime - (offer.dropoff_eta - offer.pickup_eta)
    return quote


@router.post("/quotes/{quoteId}/accept", status_code=201, response_model=OloDelivery, summary="Accept a quote",
             responses={200: {"model": OloDelivery, "description": "Accepted before: the same delivery"},
                        404: {"model": ErrorBody, "description": "`unknown_quote`"},
                        422: {"model": ErrorBody, "description": "`expired_quote`"}})
async def accept_quote(quoteId: uuid.UUID, partner: OloPartner, desk: Partners, response: Response) -> OloDelivery:
    """Create the quoted delivery at the quoted fee and start it. Accepting again returns the same delivery."""
    found = await desk.quoted_request(partner.id, quote_id=quoteId)
    if found is None:
        raise Refusal(404, "unknown_quote", f"no quote {quoteId}", "quoteId")
    _, quoted = found
    order = OloQuoteRequest.model_validate(quoted).intake(digest_of(quoted), quoteId)
    view, created = await desk.create(partner, order)
    response.status_code = 201 if created else 200
    return OloDelivery.of(view)


@router.get("/deliveries/{deliveryId}", response_model=OloDelivery, summary="Get a delivery's status")
async def get_delivery(deliveryId: str, partner: OloPartner, views: Views) -> OloDelivery:
    """Status, ETAs and the time each lifecycle step was reached."""
    return OloDelivery.of(await views.view_of(await views.order_by_external_id(partner.id, deliveryId)))


@router.post("/sandbox/deliveries/{deliveryId}/advance", response_model=OloDelivery, summary=SANDBOX_STEP,
             responses=SANDBOX_REFUSALS)
async def advance_delivery(deliveryId: str, partner: OloPartner, sandbox: Sandbox, views: Views) -> OloDelivery:
    """Test partners only: the next of DriverAssigned, ArrivedAtPickup, PickedUp, ArrivedAtDropoff, Delivered."""
    return OloDelivery.of(await sandbox.advance(await views.order_by_external_id(partner.id, deliveryId),
                                                "deliveryId"))


@router.post("/deliveries/{deliveryId}/cancel", response_model=OloDelivery, summary="Cancel a delivery",
             responses={409: {"model": ErrorBody, "description": "`noncancelable_delivery`: delivered, returned or "
                                                                    "on its way back"}})
async def cancel_delivery(deliveryId: str, body: OloCancel, partner: OloPartner, desk: Partners,
                          views: Views) -> OloDelivery:
    """Cancel with Olo's customer/vendor reason code; cancelling again returns the delivery unchanged."""
    order = await views.order_by_external_id(partner.id, deliveryId)
    return OloDelivery.of(await desk.cancel(order, body.reasonCode.value))
