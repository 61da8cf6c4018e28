"""Uber Direct (`/oauth/v2/token`, `/v1/customers/{customer_id}/…`): quotes, deliveries, updates, cancels, proof.

A Direct client exchanges its client_id and client_secret for a bearer token, then calls paths scoped by
its customer_id (all three printed by `deliveryctl partners create NAME --dialect uber`). Ids are ours in
Uber's shape: `del_` or `dqt_` and the UUID's hex. Coordinates a client sends (`pickup_latitude`/`_longitude`,
`dropoff_latitude`/`_longitude`) place the waypoint; only an address without them goes to the geocoder. Uber's JSON
address strings (`{"street_address": [...], "city", "state", "zip_code", "country"}`) are accepted too. An update
refuses, by name, every field it cannot change. Fields without a value are left out of answers and events.
"""

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import UberPartner, admitted
from api.dependencies import Accounts, Partners, Sandbox, Views
from api.errors import SANDBOX_REFUSALS, SANDBOX_STEP, ApiError
from api.limits import admit_address
from core.contracts import Point
from desks.dialects import snapshot_of, uber
from desks.errors import Refusal
from desks.orders import Intake, Order, OrderView, PartnerAccount, digest_of
from desks.partner import PartnerDesk
from desks.views import OrderViews

TAG = "Uber Direct"
PREFIX = "/v1/customers"
SCOPE = "eats.deliveries"
PHONE = r"^\+?[0-9 ()-]+$"
FIELDS = {"pickup": "pickup_address", "dropoff": "dropoff_address", "pickup_store_id": "external_store_id",
          "quote_id": "quote_id", "external_id": "external_id", "ready_at": "pickup_ready_dt"}
# Desk error codes as Uber's (status, code); every other error keeps its status and code.
ERRORS = {
    "invalid_request": (400, "invalid_params"), "invalid_cursor": (400, "invalid_params"),
    "unknown_store": (400, "invalid_params"), "unknown_quote": (400, "invalid_params"),
    "unknown_location": (400, "unknown_location"), "outside_service_area": (400, "address_undeliverable"),
    "expired_quote": (400, "expired_quote"), "used_quote": (400, "used_quote"),
    "duplicate_delivery": (409, "duplicate_delivery"), "noncancelable_delivery": (400, "noncancelable_delivery"),
    "delivery_in_progress": (400, "noneditable_delivery"), "not_found": (404, "delivery_not_found"),
    "no_capacity": (503, "couriers_busy"), "rate_limited": (429, "customer_limited"),
    "temporarily_unavailable": (503, "service_unavailable"),
}


class UberError(BaseModel):
    code: str
    message: str
    kind: str = "error"
    metadata: dict[str, str] = Field({}, description="the fields at fault and what is wrong with each")


def render_error(error: ApiError) -> JSONResponse:
    """Uber's error body `{code, message, kind: "error", metadata}`, with Uber's status codes."""
    status, code = ERRORS.get(error.code, (error.status, error.code))
    body = UberError(code=code, message=error.message, metadata={f.field: f.error for f in error.field_errors})
    return JSONResponse(body.model_dump(), status_code=status, headers=error.headers)


def render_oauth_error(error: ApiError) -> JSONResponse:
    """OAuth 2.0's error body `{error, error_description}`."""
    return JSONResponse({"error": error.code, "error_description": error.message}, status_code=error.status,
                        headers=error.headers)


UBER_ERRORS = {status: {"model": UberError, "description": text} for status, text in {
    400: "`invalid_params`, `unknown_location`, `address_undeliverable`, `expired_quote`, `used_quote`, "
         "`noncancelable_delivery`; `metadata` names the fields",
    401: "`unauthorized`: missing, unknown or expired access token",
    404: "`customer_not_found` (not your customer_id) or `delivery_not_found`",
    409: "`duplicate_delivery`: external_id used for another delivery",
    429: "`customer_limited`; retry after `Retry-After`",
    503: "`couriers_busy`: no robot can deliver it in time now (the message says when it would arrive)",
}.items()}

router = APIRouter(tags=[TAG], responses=UBER_ERRORS)


async def _customer(customer_id: str, partner: UberPartner) -> PartnerAccount:
    """The token's partner, if the path names its own customer_id; any other id is simply not found."""
    if partner.account_id != customer_id:
        raise ApiError(404, "customer_not_found", f"no customer {customer_id}")
    return partner


Customer = Annotated[PartnerAccount, Depends(_customer)]


def address_text(value: str, field_name: str) -> str:
    """A plain address, or Uber's structured address (a JSON string) as one line the geocoder reads."""
    if not value.lstrip().startswith("{"):
        return value
    try:
        parts = json.loads(value)
    except ValueError:
        raise Refusal(422, "invalid_request", f"{field_name} is neither an address nor valid JSON",
                      field_name) from None
    street = parts.get("street_address", [])
    street = [street] if isinstance(street, str) else street
    if not isinstance(street, list) or not all(isinstance(line, str) for line in street):
        raise Refusal(422, "invalid_request", f"{field_name}.street_address must be a list of lines", field_name)
    city = parts.get("city")
    if city is not None and not isinstance(city, str):
        raise Refusal(422, "invalid_request", f"{field_name}.city must be a string", field_name)
    region = " ".join(str(parts[k]) for k in ("state", "zip_code") if parts.get(k))
    return ", ".join(p for p in (" ".join(street), city, region) if p)


class UberQuoteRequest(BaseModel):
    pickup_address: str = Field(min_length=1, max_length=1000)
    dropoff_address: str = Field(min_length=1, max_length=1000)
    pickup_latitude: float | None = Field(None, ge=-90, le=90, description="with pickup_longitude: used as sent")
    pickup_longitude: float | None = Field(None, ge=-180, le=180)
    dropoff_latitude: float | None = Field(None, ge=-90, le=90, description="with dropoff_longitude: used as sent")
    dropoff_longitude: float | None = Field(None, ge=-180, le=180)
    external_store_id: str | None = Field(None, max_length=128, description="a registered store: used for pickup")
    pickup_ready_dt: datetime | None = Field(None, description="when the order will be ready (with a UTC offset, at "
                                                               "most 24 h ahead; past: ready now); unset: the "
                                                               "quote's, else the store's preparation estimate")

    def point(self, end: str) -> Point | None:
        """The coordinates sent for `end` (pickup or dropoff); both or neither, else refused naming the one missing."""
        latitude, longitude = getattr(self, f"{end}_latitude"), getattr(self, f"{end}_longitude")
        if latitude is None and longitude is None:
            return None
        if latitude is None or longitude is None:
            missing = f"{end}_latitude" if latitude is None else f"{end}_longitude"
            raise Refusal(422, "invalid_request", f"{missing} must come with the other coordinate", missing)
        return Point(latitude=latitude, longitude=longitude)

    model_config = {"json_schema_extra": {"examples": [{
        "pickup_address": "7000 Melrose Ave, Los Angeles, CA 90038",
        "dropoff_address": json.dumps({"street_address": ["8800 Melrose Ave"], "city": "West Hollywood",
                                       "state": "CA", "zip_code": "90069", "country": "US"})}]}}


class ManifestItem(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(1, ge=1)


class UberDeliveryRequest(UberQuoteRequest):
    quote_id: str | None = Field(None, max_length=64, description="a `dqt_` id from delivery_quotes")
    pickup_name: str = Field(min_length=1, max_length=200)
    pickup_phone_number: str = Field(min_length=5, max_length=32, pattern=PHONE)
    dropoff_name: str = Field(min_length=1, max_length=200)
    dropoff_phone_number: str = Field(min_length=5, max_length=32, pattern=PHONE)
    dropoff_notes: str | None = Field(None, max_length=500)
    manifest_items: list[ManifestItem] = Field([], max_length=50)
    external_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$")
    idempotency_key: str | None = Field(None, max_length=128)
    undeliverable_action: Literal["return"] | None = Field(
        None, description="robots always bring an undeliverable order back to the store")

    model_config = {"json_schema_extra": {"examples": [{
        "pickup_name": "Melrose Kitchen", "pickup_address": "7000 Melrose Ave, Los Angeles, CA 90038",
        "pickup_phone_number": "+13105550111", "dropoff_name": "Alex Doe",
        "dropoff_address": "8800 Melrose Ave, West Hollywood, CA 90069", "dropoff_phone_number": "+13105550100",
        "manifest_items": [{"name": "burrito", "quantity": 1}], "external_id": "order-1042"}]}}


class UberUpdate(BaseModel):
    """Uber's update: the dropoff notes and phone number change; any other field sent is refused by name."""

    dropoff_notes: str | None = Field(None, max_length=500)
    dropoff_phone_number: str | None = Field(None, min_length=5, max_length=32, pattern=PHONE)

    model_config = {"extra": "allow"}

    def refused_field(self) -> str | None:
        """The first field sent that we cannot change."""
        return next((name for name, value in (self.model_extra or {}).items() if value is not None), None)


class ProofRequest(BaseModel):
    waypoint: Literal["dropoff"] = Field("dropoff", description="only the dropoff has a proof: the lid opening")


class Waypoint(BaseModel):
    location: dict[str, float] | None = None
    status: Literal["completed", "failed"] | None = None
    status_timestamp: datetime | None = None


class Courier(BaseModel):
    name: str = Field(description="the robot's id")
    vehicle_type: str = uber.COURIER_VEHICLE


class UberQuote(BaseModel):
    kind: str = "delivery_quote"
    id: str = Field(description="`dqt_…`; pass as quote_id")
    created: datetime
    expires: datetime
    fee: int = Field(description="cents")
    currency: str
    currency_type: str
    dropoff_eta: datetime
    duration: int = Field(description="minutes from now to the dropoff")
    pickup_duration: int = Field(description="minutes from now to the pickup")


class UberDelivery(BaseModel):
    id: str
    uuid: str
    kind: str = "delivery"
    live_mode: bool = Field(description="false for a test customer's delivery: a sandbox robot plays it")
    quote_id: str | None = None
    status: str = Field(description=", ".join(dict.fromkeys(uber.STATUSES.values())))
    complete: bool
    courier_imminent: bool
    external_id: str
    tracking_url: str
    fee: int = Field(description="cents: the quote's fee, or the list price of the trip without a quote")
    currency: str
    pickup_eta: datetime | None = None
    dropoff_eta: datetime | None = None
    undeliverable_action: Literal["", "returned"] = ""
    undeliverable_reason: str = ""
    courier: Courier | None = None
    pickup: Waypoint
    dropoff: Waypoint
    return_: Waypoint | None = Field(None, alias="return")
    created: datetime
    updated: datetime

    model_config = {"populate_by_name": True}

    @classmethod
    def of(cls, view: OrderView) -> "UberDelivery":
        return cls(**uber.delivery_fields(snapshot_of(view)))


class UberDeliveryList(BaseModel):
    object: str = "list"
    data: list[UberDelivery]
    next_href: str | None = Field(None, description="the next page; left out on the last")
    total_count: int = Field(-1, description="always -1, as Uber documents it")


class ProofOfDelivery(BaseModel):
    waypoint: str
    type: str = "lid_opened"
    robot_id: str
    lid_opened_at: datetime
    location: dict[str, float]
    delivered_at: datetime | None


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


TOKEN_FORM = {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "required": ["client_id", "client_secret", "grant_type"],
    "properties": {"client_id": {"type": "string"}, "client_secret": {"type": "string"},
                   "grant_type": {"type": "string", "enum": ["client_credentials"]},
                   "scope": {"type": "string", "example": SCOPE}}}}}}}


@router.post("/oauth/v2/token", response_model=AccessToken, summary="Get an access token", openapi_extra=TOKEN_FORM,
             responses={400: {"description": "`invalid_request`, `unsupported_grant_type` or `invalid_scope`"},
                        401: {"description": "`invalid_client`: unknown client_id or client_secret"}})
async def token(request: Request, accounts: Accounts) -> AccessToken:
    """OAuth 2.0 client credentials: a bearer token for the `eats.deliveries` scope.

    Throttled per client address and per client_id (429), so client secrets cannot be guessed at speed."""
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    if form.get("grant_type") != "client_credentials":
        raise ApiError(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if not form.get("client_id") or not form.get("client_secret"):
        raise ApiError(400, "invalid_request", "client_id and client_secret are required")
    if SCOPE not in form.get("scope", SCOPE).split():
        raise ApiError(400, "invalid_scope", f"the only scope is {SCOPE}")
    admit_address(request, ("client_id", form["client_id"]))  # no credential yet: throttle address and client
    grant = await accounts.grant_access_token(form["client_id"], form["client_secret"],
                                              lambda partner: admitted(request, partner))
    if grant is None:
        raise ApiError(401, "invalid_client", "unknown client_id or client_secret")
    return AccessToken(access_token=grant.access_token, expires_in=grant.expires_in, scope=SCOPE)


# ---- quotes and deliveries -------------------------------------------------------------------------

async def _route(desk: PartnerDesk, partner_id: uuid.UUID, body: UberQuoteRequest) -> tuple[Point, Point]:
    pickup = await desk.pickup_point(partner_id, body.external_store_id, body.point("pickup"),
                                     address_text(body.pickup_address, "pickup_address"),
                                     "external_store_id", "pickup_address")
    dropoff = await desk.locate(body.point("dropoff"), address_text(body.dropoff_address, "dropoff_address"),
                                "dropoff_address")
    return pickup, dropoff


def _minutes(until: datetime, now: datetime) -> int:
    return max(0, math.ceil((until - now).total_seconds() / 60))


@router.post(PREFIX + "/{customer_id}/delivery_quotes", response_model=UberQuote, summary="Create a quote")
async def create_quote(body: UberQuoteRequest, partner: Customer, desk: Partners) -> UberQuote:
    """The fee and ETAs the fleet can keep now, held for 15 minutes; create the delivery with its id."""
    pickup, dropoff = await _route(desk, partner.id, body)
    offer = await desk.quote(partner.id, pickup, dropoff, ready_at=body.pickup_ready_dt, fields=FIELDS,
                             valid_seconds=desk.settings.uber_quote_valid_seconds)
    now = datetime.now(UTC)
    return UberQuote(id=uber.public_id(uber.QUOTE_PREFIX, offer.quote_id), created=now, expires=offer.expires_at,
                     fee=offer.fee_cents, currency=offer.currency.lower(), currency_type=offer.currency,
                     dropoff_eta=offer.dropoff_eta, duration=_minutes(offer.dropoff_eta, now),
                     pickup_duration=_minutes(offer.pickup_eta, now))


@router.post(PREFIX + "/{customer_id}/deliveries", response_model=UberDelivery, response_model_exclude_none=True,
             summary="Create a delivery")
async def create_delivery(body: UberDeliveryRequest, partner: Customer, desk: Partners) -> UberDelivery:
    """Create the delivery, at a quote's fee if `quote_id` is given. The same request again (same external_id
    and body) returns the same delivery."""
    quote_id = None
    if body.quote_id is not None:
        quote_id = uber.parse_id(uber.QUOTE_PREFIX, body.quote_id)
        if quote_id is None:
            raise Refusal(422, "unknown_quote", f"{body.quote_id} is not a quote id", "quote_id")
    order = Intake(
        external_id=body.external_id or body.idempotency_key or f"uber-{uuid.uuid4().hex}",
        customer_name=body.dropoff_name, customer_phone=body.dropoff_phone_number,
        digest=digest_of(body.model_dump(mode="json")), pickup_store_id=body.external_store_id,
        pickup=body.point("pickup"), dropoff=body.point("dropoff"),
        pickup_address=address_text(body.pickup_address, "pickup_address"),
        dropoff_address=address_text(body.dropoff_address, "dropoff_address"),
        dropoff_instructions=body.dropoff_notes, quote_id=quote_id, ready_at=body.pickup_ready_dt, fields=FIELDS,
        list_priced=True)
    view, _ = await desk.create(partner, order)
    return UberDelivery.of(view)


@router.get(PREFIX + "/{customer_id}/deliveries", response_model=UberDeliveryList, response_model_exclude_none=True,
            summary="List deliveries")
async def list_deliveries(
    partner: Customer, request: Request, views: Views,
    filter: Annotated[str | None, Query(description="an Uber status, `ongoing` or `completed`")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="how many deliveries to skip, as in the previous "
                                                                 "page's `next_href`")] = 0,
    Offset: Annotated[int | None, Query(ge=0, le=1_000_000, include_in_schema=False)] = None,  # noqa: N803
) -> UberDeliveryList:
    """Your deliveries, newest first, a page at a time: `next_href` names the next page's `offset`.

    `Offset` is the same: the uber-direct SDK's declarations spell the parameter so."""
    offset = Offset if Offset is not None else offset
    if filter is not None and filter not in uber.FILTERS:
        raise Refusal(422, "invalid_request", f"filter must be one of {', '.join(sorted(uber.FILTERS))}", "filter")
    statuses = [s.value for s in uber.FILTERS[filter]] if filter else None
    page, more = await views.list_views(partner.id, statuses=statuses, offset=offset, limit=limit)
    data = [UberDelivery.of(view) for view in page]
    next_href = None
    if more is not None:
        next_href = str(request.url.include_query_params(offset=offset + len(page)))
    return UberDeliveryList(data=data, next_href=next_href)


async def _order(views: OrderViews, partner: PartnerAccount, delivery_id: str) -> Order:
    found = uber.parse_id(uber.DELIVERY_PREFIX, delivery_id)
    if found is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    return await views.order_by_delivery_id(partner.id, found)


@router.get(PREFIX + "/{customer_id}/deliveries/{delivery_id}", response_model=UberDelivery,
            response_model_exclude_none=True, summary="Get a delivery")
async def get_delivery(delivery_id: str, partner: Customer, views: Views) -> UberDelivery:
    """Status, `courier_imminent`, fee, ETAs and tracking link."""
    return UberDelivery.of(await views.view_of(await _order(views, partner, delivery_id)))


@router.post(PREFIX + "/{customer_id}/deliveries/{delivery_id}", response_model=UberDelivery,
             response_model_exclude_none=True, summary="Update a delivery")
async def update_delivery(delivery_id: str, body: UberUpdate, partner: Customer, desk: Partners,
                          views: Views) -> UberDelivery:
    """Change the dropoff notes or phone number, until the order is in the robot."""
    order = await _order(views, partner, delivery_id)
    refused = body.refused_field()
    if refused is not None:
        raise Refusal(422, "invalid_request", f"{refused} cannot be changed: only dropoff_notes and "
                      "dropoff_phone_number can", refused)
    if body.dropoff_notes is None and body.dropoff_phone_number is None:
        raise Refusal(422, "invalid_request", "send dropoff_notes or dropoff_phone_number", "dropoff_notes")
    return UberDelivery.of(await desk.update_dropoff(order, instructions=body.dropoff_notes,
                                                     phone=body.dropoff_phone_number, field_name="dropoff_notes"))


@router.post(PREFIX + "/{customer_id}/deliveries/{delivery_id}/cancel", response_model=UberDelivery,
             response_model_exclude_none=True, summary="Cancel a delivery")
async def cancel_delivery(delivery_id: str, partner: Customer, desk: Partners, views: Views) -> UberDelivery:
    """Before pickup the robot is released (`canceled`); after loading the order goes back (`returned`)."""
    return UberDelivery.of(await desk.cancel(await _order(views, partner, delivery_id), uber.CANCELLED_BY_PARTNER))


@router.post(PREFIX + "/{customer_id}/sandbox/deliveries/{delivery_id}/advance", response_model=UberDelivery,
             response_model_exclude_none=True, summary=SANDBOX_STEP, responses=SANDBOX_REFUSALS)
async def advance_delivery(delivery_id: str, partner: Customer, sandbox: Sandbox, views: Views) -> UberDelivery:
    """Test customers only (`live_mode` false): the next of `pickup`, `pickup` with the courier imminent,
    `pickup_complete`, `dropoff` with the courier imminent, `delivered`, each with its webhook."""
    return UberDelivery.of(await sandbox.advance(await _order(views, partner, delivery_id), "delivery_id"))


@router.post(PREFIX + "/{customer_id}/deliveries/{delivery_id}/proof-of-delivery", response_model=ProofOfDelivery,
             summary="Proof of delivery")
async def proof_of_delivery(delivery_id: str, partner: Customer, views: Views,
                            body: ProofRequest | None = None) -> ProofOfDelivery:
    """When and where the customer opened the robot's lid (robots take no photo or signature)."""
    proof = await views.proof_of_delivery(await _order(views, partner, delivery_id))
    return ProofOfDelivery(waypoint=(body or ProofRequest()).waypoint, robot_id=proof.robot_id,
                           lid_opened_at=proof.lid_opened_at, delivered_at=proof.delivered_at,
                           location={"lat": proof.location.latitude, "lng": proof.location.longitude})
