"""Olo dispatch, provider side (`/olo/v1`): quote by pickup or dropoff time, accept, follow, cancel.

Olo authenticates with the API key `deliveryctl partners create NAME --dialect olo` printed. It names each
delivery by its own `deliveryId`. A quote holds the whole order; accepting it by `quoteId` creates the
delivery. Status callbacks go to the partner's webhook, signed with `X-Olo-Signature`.
"""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, model_validator

from api import intake
from api.auth import partner_from_key
from api.deliveries import Customer, Location
from api.dialects import snapshot_of
from api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from core.services import Service
from services.integrations import repository as integrations
from services.integrations.dialects import olo
from services.integrations.models import Partner, PartnerDialect

TAG = "Olo dispatch"
ORDER_ID = r"^[A-Za-z0-9._~-]+$"
FIELDS = {"external_id": "deliveryId", "pickup": "pickup", "dropoff": "dropoff", "pickup_store_id": "pickup.storeId",
          "quote_id": "quoteId"}

router = APIRouter(prefix="/olo/v1", tags=[TAG], responses=ERROR_RESPONSES)


async def _olo_partner(partner: Annotated[Partner, Depends(partner_from_key)]) -> Partner:
    if partner.dialect != PartnerDialect.OLO:
        raise ApiError(401, "unauthorized", "this API key is not an Olo dispatch key",
                       headers={"WWW-Authenticate": "Bearer"})
    return partner


OloPartner = Annotated[Partner, Depends(_olo_partner)]


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

    def intake(self, digest: str, quote_id: uuid.UUID) -> intake.Intake:
        return intake.Intake(
            external_id=self.deliveryId, customer_name=self.customer.name, customer_phone=self.customer.phone,
            digest=digest, pickup=self.pickup.point(), pickup_store_id=self.pickup.storeId,
            pickup_address=self.pickup.address, dropoff=self.dropoff.point(), dropoff_address=self.dropoff.address,
            dropoff_instructions=self.dropoff.instructions, quote_id=quote_id, fields=FIELDS)


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
    def of(cls, view: intake.OrderView) -> "OloDelivery":
        return cls(**olo.delivery_fields(snapshot_of(view)))


class OloCancel(BaseModel):
    reasonCode: olo.CustomerCancelReason

    model_config = {"json_schema_extra": {"examples": [{"reasonCode": "CustomerCanceled"}]}}


@router.post("/quotes", response_model=OloQuote, summary="Quote a delivery by pickup or dropoff time",
             responses={409: {"model": ErrorBody, "description": "`duplicate_delivery`: deliveryId already used"},
                        422: {"model": ErrorBody, "description": "`outside_service_area`, `unknown_location`, "
                                                                 "`unknown_store`, `no_capacity` or an invalid field"}})
async def create_quote(body: OloQuoteRequest, partner: OloPartner, request: Request) -> OloQuote:
    """By pickup time: the robot comes when the order is ready. By dropoff time: whether it can be there in time,
    and by when the pickup must happen."""
    app = request.app.state
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        if await integrations.find_partner_delivery(session, partner.id, body.deliveryId):
            raise intake.refuse(409, "duplicate_delivery", f"delivery {body.deliveryId} already exists", "deliveryId")
    pickup = await intake.pickup_point(app, partner.id, body.pickup.storeId, body.pickup.point(),
                                       body.pickup.address, "pickup.storeId", "pickup")
    dropoff = await intake.locate(app, body.dropoff.point(), body.dropoff.address, "dropoff")
    offer = await intake.quote(app, partner.id, pickup, dropoff, external_id=body.deliveryId,
                               ready_at=body.pickupTime, fields=FIELDS)
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        await integrations.save_quote_request(session, app.vault, offer.quote_id, partner.id, body.deliveryId,
                                              body.model_dump(mode="json"), offer.expires_at)
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
async def accept_quote(quoteId: uuid.UUID, partner: OloPartner, request: Request, response: Response) -> OloDelivery:
    """Create the quoted delivery at the quoted fee and start it. Accepting again returns the same delivery."""
    app = request.app.state
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        found = await integrations.find_quote_request(session, app.vault, partner.id, quote_id=quoteId)
    if found is None:
        raise intake.refuse(404, "unknown_quote", f"no quote {quoteId}", "quoteId")
    _, quoted = found
    order = OloQuoteRequest.model_validate(quoted).intake(intake.digest_of(quoted), quoteId)
    view, created = await intake.create(app, partner.id, order)
    response.status_code = 201 if created else 200
    return OloDelivery.of(view)


@router.get("/deliveries/{deliveryId}", response_model=OloDelivery, summary="Get a delivery's status")
async def get_delivery(deliveryId: str, partner: OloPartner, request: Request) -> OloDelivery:
    """Status, ETAs and the time each lifecycle step was reached."""
    app = request.app.state
    return OloDelivery.of(await intake.view_of(app, await intake.order_by_external_id(app, partner.id, deliveryId)))


@router.post("/deliveries/{deliveryId}/cancel", response_model=OloDelivery, summary="Cancel a delivery",
             responses={409: {"model": ErrorBody, "description": "`noncancelable_delivery`: delivered, returned or "
                                                                    "on its way back"}})
async def cancel_delivery(deliveryId: str, body: OloCancel, partner: OloPartner, request: Request) -> OloDelivery:
    """Cancel with Olo's customer/vendor reason code; cancelling again returns the delivery unchanged."""
    app = request.app.state
    order = await intake.order_by_external_id(app, partner.id, deliveryId)
    return OloDelivery.of(await intake.cancel(app, order, body.reasonCode.value))
