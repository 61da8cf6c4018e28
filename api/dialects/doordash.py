"""DoorDash Drive v2 (`/drive/v2`): quotes, accepting them, deliveries, their updates and cancellation.

A Drive client points its base URL at us and signs its JWTs with the developer_id, key_id and signing
secret `deliveryctl partners create NAME --dialect doordash` printed. Deliveries are named by the partner's
`external_delivery_id`. Drive fields we do not use at creation (tip, order_value, business names...) are accepted
and ignored; an update honours the dropoff phone number and instructions and refuses every other field by name.
Refusals use Drive's codes (`unknown_delivery_id`, `cancel_not_allowed` and `update_not_allowed` with a `reason`,
`invalid_delivery_parameters`), and fields without a value are left out of answers and webhooks, as Drive does.
"""

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import DrivePartner
from api.dependencies import Partners, Sandbox, Views
from api.errors import SANDBOX_REFUSALS, SANDBOX_STEP, ApiError, ErrorBody, FieldError, error_response
from core.contracts import DeliveryStatus, Point
from desks.dialects import doordash as drive, snapshot_of
from desks.errors import Refusal
from desks.orders import Intake, OrderView, digest_of

PREFIX = "/drive/v2"
TAG = "DoorDash Drive v2"
ORDER_ID = r"^[A-Za-z0-9._~-]+$"
PHONE = r"^\+?[0-9 ()-]+$"
# The desk's field names in Drive's words.
FIELDS = {"external_id": "external_delivery_id", "pickup": "pickup_address", "dropoff": "dropoff_address",
          "pickup_store_id": "pickup_external_store_id", "quote_id": "external_delivery_id", "ready_at": "pickup_time"}
# Desk error codes whose Drive status or code differs; every other error keeps its status and code.
ERRORS = {
    "invalid_request": (400, "validation_error"),
    "invalid_cursor": (400, "validation_error"),
    "unknown_location": (400, "validation_error"),
    "unknown_store": (400, "validation_error"),
    "unauthorized": (401, "authentication_error"),
    "not_found": (404, "unknown_delivery_id"),
    "duplicate_delivery": (409, "duplicate_delivery_id"),
    "noncancelable_delivery": (409, "cancel_not_allowed"),
    "delivery_in_progress": (409, "update_not_allowed"),
    "outside_service_area": (422, "invalid_delivery_parameters"),
    "rate_limited": (429, "request_rate_limited"),
}
# Why a cancel or an update is refused, in Drive's `reason` words, by where the delivery is.
S = DeliveryStatus
PICKED_UP = frozenset({S.PICKED_UP, S.EN_ROUTE_TO_DROPOFF, S.AT_DROPOFF, S.RETURNING})
REFUSAL_REASONS = {S.DELIVERED: "delivery_completed", S.RETURNED: "delivery_completed",
                   S.CANCELLED: "delivery_cancelled", **{status: "delivery_picked_up" for status in PICKED_UP}}
# What an update may change: the rest of Drive's updatable fields are refused by name, each with why.
UPDATABLE = ("dropoff_phone_number", "dropoff_instructions")
NOT_UPDATABLE = {
    "dropoff_address": "the dropoff cannot move: the robot's trip is planned to it; cancel and create again",
    "dropoff_location": "the dropoff cannot move: the robot's trip is planned to it; cancel and create again",
    "pickup_address": "the pickup cannot move: the robot's trip is planned from it",
    "pickup_time": "the ready time is fixed at creation",
    "dropoff_time": "the dropoff time is fixed at creation",
    "tip": "robots take no tip",
    "items": "the robot is loaded with the order as created",
    "order_value": "the order value is fixed at creation",
}
CANNOT_UPDATE = "cannot be changed after the delivery is created"
DRIVE_ERRORS = {
    400: {"model": ErrorBody, "description": "`validation_error`: `field_errors` names the fields"},
    401: {"model": ErrorBody, "description": "`authentication_error`: missing, malformed, expired or unknown JWT"},
    404: {"model": ErrorBody, "description": "`unknown_delivery_id`: no such delivery for this developer"},
    429: {"model": ErrorBody, "description": "`request_rate_limited`; retry after `Retry-After`"},
}

router = APIRouter(prefix=PREFIX, tags=[TAG], responses=DRIVE_ERRORS)


class DriveRefusal(ApiError):
    """A refusal in Drive's own words: a code and, for the codes Drive explains, a `reason`."""

    def __init__(self, status: int, code: str, message: str, reason: str | None = None, field_errors=None):
        super().__init__(status, code, message, field_errors)
        self.reason = reason


def _reason(error: ApiError, code: str) -> str | None:
    """Drive's `reason` of a refusal: the one it was raised with, or the coverage an address falls outside."""
    if isinstance(error, DriveRefusal):
        return error.reason
    if code == "invalid_delivery_parameters":
        pickup = any(f.field.startswith("pickup") for f in error.field_errors)
        return "pickup_address_not_in_coverage" if pickup else "delivery_address_not_in_coverage"
    return None


def render_error(error: ApiError) -> JSONResponse:
    """Drive's error body: `{code, message, field_errors: [{field, error}]}` with Drive's status codes, and a `reason`
    where Drive gives one (`cancel_not_allowed`, `update_not_allowed`, `invalid_delivery_parameters`)."""
    status, code = ERRORS.get(error.code, (error.status, error.code))
    response = error_response(status, code, error.message, error.field_errors, error.headers)
    reason = _reason(error, code)
    if reason is None:
        return response
    body = {**ErrorBody(code=code, message=error.message, field_errors=list(error.field_errors)).model_dump(),
            "reason": reason}
    return JSONResponse(body, status_code=status, headers=error.headers)


class DropoffLocation(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class DriveDeliveryRequest(BaseModel):
    """A quote or delivery request: pickup from a registered store or an address; dropoff by location or address."""

    external_delivery_id: str = Field(min_length=1, max_length=128, pattern=ORDER_ID)
    pickup_address: str | None = Field(None, max_length=500)
    pickup_external_business_id: str | None = Field(None, max_length=128, description="a registered store id")
    pickup_external_store_id: str | None = Field(None, max_length=128, description="a registered store id")
    dropoff_address: str | None = Field(None, max_length=500)
    dropoff_location: DropoffLocation | None = None
    dropoff_phone_number: str = Field(min_length=5, max_length=32, pattern=PHONE)
    dropoff_contact_given_name: str | None = Field(None, max_length=100)
    dropoff_contact_family_name: str | None = Field(None, max_length=100)
    dropoff_instructions: str | None = Field(None, max_length=500)
    pickup_time: datetime | None = Field(None, description="when the order will be ready (with a UTC offset, at most "
                                                           "24 h ahead; past: ready now); unset: the store's "
                                                           "preparation estimate")

    model_config = {"json_schema_extra": {"examples": [{
        "external_delivery_id": "D-1042", "pickup_external_store_id": "weho-melrose",
        "dropoff_address": "8800 Melrose Ave, West Hollywood, CA 90069", "dropoff_phone_number": "+13105550100",
        "dropoff_contact_given_name": "Alex", "dropoff_instructions": "leave at the lobby"}]}}

    def intake(self, digest: str, quote_id=None) -> Intake:
        names = (self.dropoff_contact_given_name, self.dropoff_contact_family_name)
        location = self.dropoff_location
        return Intake(
            external_id=self.external_delivery_id, customer_name=" ".join(n for n in names if n),
            customer_phone=self.dropoff_phone_number, digest=digest, pickup_store_id=self.store_id,
            pickup_address=self.pickup_address, dropoff_address=self.dropoff_address,
            dropoff=Point(latitude=location.lat, longitude=location.lng) if location else None,
            dropoff_instructions=self.dropoff_instructions, quote_id=quote_id, ready_at=self.pickup_time,
            fields=FIELDS, list_priced=True)

    @property
    def store_id(self) -> str | None:
        return self.pickup_external_store_id or self.pickup_external_business_id


class DriveAccept(BaseModel):
    dropoff_phone_number: str | None = Field(None, min_length=5, max_length=32, pattern=PHONE)


class DriveUpdate(BaseModel):
    """Drive's update: the dropoff phone number and instructions change; any other field sent is refused by name."""

    dropoff_phone_number: str | None = Field(None, min_length=5, max_length=32, pattern=PHONE)
    dropoff_instructions: str | None = Field(None, max_length=500)

    model_config = {"extra": "allow", "json_schema_extra": {"examples": [{"dropoff_instructions": "call on arrival"}]}}

    def refused_fields(self) -> list[FieldError]:
        """Every field sent that we cannot change, with why."""
        return [FieldError(field=name, error=NOT_UPDATABLE.get(name, CANNOT_UPDATE))
                for name, value in (self.model_extra or {}).items() if value is not None]


class DriveQuote(BaseModel):
    external_delivery_id: str
    delivery_status: str = drive.QUOTE_STATUS
    fee: int = Field(description="cents")
    currency: str
    pickup_time_estimated: datetime
    dropoff_time_estimated: datetime
    expires_by: datetime = Field(description="accept before this")


class DriveDelivery(BaseModel):
    external_delivery_id: str
    delivery_status: str = Field(description=", ".join(drive.STATUSES.values()))
    fee: int = Field(description="cents: the quote's fee, or the list price of the trip without a quote")
    currency: str
    tracking_url: str
    support_reference: str
    cancellation_reason: str | None = None
    pickup_time_estimated: datetime | None = None
    pickup_time_actual: datetime | None = None
    dropoff_time_estimated: datetime | None = None
    dropoff_time_actual: datetime | None = None
    updated_at: datetime

    @classmethod
    def of(cls, view: OrderView) -> "DriveDelivery":
        return cls(**drive.delivery_fields(snapshot_of(view)))


@router.post("/quotes", response_model=DriveQuote, summary="Quote a delivery",
             responses={409: {"model": ErrorBody, "description": "`duplicate_delivery_id`: already a delivery"},
                        422: {"model": ErrorBody, "description": "`invalid_delivery_parameters` (outside the "
                                                                 "coverage) or `no_capacity`"}})
async def create_quote(body: DriveDeliveryRequest, partner: DrivePartner, desk: Partners) -> DriveQuote:
    """Price the delivery now; accept it by its `external_delivery_id` before `expires_by`."""
    await desk.refuse_existing(partner.id, body.external_delivery_id, "external_delivery_id")
    pickup = await desk.pickup_point(partner.id, body.store_id, None, body.pickup_address,
                                     "pickup_external_store_id", "pickup_address")
    location = body.dropoff_location
    dropoff = await desk.locate(Point(latitude=location.lat, longitude=location.lng) if location else None,
                                body.dropoff_address, "dropoff_address")
    offer = await desk.quote(partner.id, pickup, dropoff, external_id=body.external_delivery_id,
                             ready_at=body.pickup_time, fields=FIELDS)
    await desk.keep_quoted_request(partner.id, offer, body.external_delivery_id, body.model_dump(mode="json"))
    return DriveQuote(external_delivery_id=body.external_delivery_id, fee=offer.fee_cents, currency=offer.currency,
                      pickup_time_estimated=offer.pickup_eta, dropoff_time_estimated=offer.dropoff_eta,
                      expires_by=offer.expires_at)


@router.post("/quotes/{external_delivery_id}/accept", response_model=DriveDelivery, response_model_exclude_none=True,
             summary="Accept a quote",
             responses={404: {"model": ErrorBody, "description": "`unknown_delivery_id`: no quote for this id"},
                        409: {"model": ErrorBody, "description": "`duplicate_delivery_id`: accepted with "
                                                                 "another phone number"},
                        422: {"model": ErrorBody, "description": "`expired_quote`"}})
async def accept_quote(external_delivery_id: str, partner: DrivePartner, desk: Partners,
                       body: DriveAccept | None = None) -> DriveDelivery:
    """Create the quoted delivery at the quoted fee. Accepting it again returns the same delivery."""
    found = await desk.quoted_request(partner.id, external_id=external_delivery_id)
    if found is None:
        raise ApiError(404, "not_found", f"no quote for {external_delivery_id}")
    quote_id, quoted = found
    accepted = {**quoted, **(body.model_dump(exclude_none=True) if body else {})}
    order = DriveDeliveryRequest.model_validate(accepted).intake(digest_of(accepted), quote_id)
    view, _ = await desk.create(partner, order)
    return DriveDelivery.of(view)


@router.post("/deliveries", response_model=DriveDelivery, response_model_exclude_none=True, summary="Create a delivery",
             responses={409: {"model": ErrorBody, "description": "`duplicate_delivery_id`: the id was used for "
                                                                 "another delivery"},
                        422: {"model": ErrorBody, "description": "`invalid_delivery_parameters` (outside the "
                                                                 "coverage) or `no_capacity` (the dropoff would "
                                                                 "come too late)"}})
async def create_delivery(body: DriveDeliveryRequest, partner: DrivePartner, desk: Partners) -> DriveDelivery:
    """Create a delivery without a quote. The same request again returns the same delivery."""
    view, _ = await desk.create(partner, body.intake(digest_of(body.model_dump(mode="json"))))
    return DriveDelivery.of(view)


@router.get("/deliveries/{external_delivery_id}", response_model=DriveDelivery, response_model_exclude_none=True,
            summary="Get a delivery")
async def get_delivery(external_delivery_id: str, partner: DrivePartner, views: Views) -> DriveDelivery:
    """Status, fee, times and tracking link; only the developer who created it can see it."""
    return DriveDelivery.of(await views.view_of(await views.order_by_external_id(partner.id, external_delivery_id)))


@router.patch("/deliveries/{external_delivery_id}", response_model=DriveDelivery, response_model_exclude_none=True,
              summary="Update the dropoff phone number or instructions",
              responses={400: {"model": ErrorBody, "description": "`validation_error`: a field that cannot change"},
                         409: {"model": ErrorBody, "description": "`update_not_allowed` with a `reason`: "
                                                                 "picked up, completed or cancelled"}})
async def update_delivery(external_delivery_id: str, body: DriveUpdate, partner: DrivePartner,
                          desk: Partners, views: Views) -> DriveDelivery:
    """Allowed until the order is in the robot."""
    order = await views.order_by_external_id(partner.id, external_delivery_id)
    refused = body.refused_fields()
    if refused:
        raise DriveRefusal(400, "validation_error", f"only {' and '.join(UPDATABLE)} can be updated",
                           field_errors=refused)
    if body.dropoff_phone_number is None and body.dropoff_instructions is None:
        raise Refusal(422, "invalid_request", f"send {' or '.join(UPDATABLE)}", "dropoff_instructions")
    status = await views.current_status(order)
    if status in REFUSAL_REASONS:
        raise DriveRefusal(409, "update_not_allowed", f"the delivery is {drive.STATUSES[status]}: the dropoff can no "
                           "longer change", REFUSAL_REASONS[status])
    view = await desk.update_dropoff(order, instructions=body.dropoff_instructions,
                                     phone=body.dropoff_phone_number, field_name="dropoff_instructions")
    return DriveDelivery.of(view)


@router.post("/sandbox/deliveries/{external_delivery_id}/advance", response_model=DriveDelivery,
             response_model_exclude_none=True, summary=SANDBOX_STEP, responses=SANDBOX_REFUSALS)
async def advance_delivery(external_delivery_id: str, partner: DrivePartner, sandbox: Sandbox,
                           views: Views) -> DriveDelivery:
    """Sandbox credentials only, as Drive's delivery simulator: the next of `confirmed`, `arrived_at_pickup`,
    `picked_up`, `arrived_at_dropoff`, `delivered`, each with its webhook."""
    order = await views.order_by_external_id(partner.id, external_delivery_id)
    return DriveDelivery.of(await sandbox.advance(order, "external_delivery_id"))


@router.put("/deliveries/{external_delivery_id}/cancel", response_model=DriveDelivery, response_model_exclude_none=True,
            summary="Cancel a delivery",
            responses={409: {"model": ErrorBody, "description": "`cancel_not_allowed` with a `reason`: picked up, "
                                                                "completed or already cancelled"}})
async def cancel_delivery(external_delivery_id: str, partner: DrivePartner, desk: Partners,
                          views: Views) -> DriveDelivery:
    """Until the order is picked up: the robot is released. Once it is in the robot, Drive refuses the cancel."""
    order = await views.order_by_external_id(partner.id, external_delivery_id)
    status = await views.current_status(order)
    if status in REFUSAL_REASONS:
        raise DriveRefusal(409, "cancel_not_allowed", f"delivery {external_delivery_id} is {drive.STATUSES[status]}",
                           REFUSAL_REASONS[status])
    return DriveDelivery.of(await desk.cancel(order, drive.CANCELLED_BY_PARTNER))
