"""The native partner API: create a delivery and follow it."""

import hashlib
import json
import uuid
from datetime import datetime
from enum import StrEnum

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.auth import CurrentPartner
from api.errors import ERROR_RESPONSES, ApiError, ErrorBody, FieldError
from core.contracts import CancelRequest, DeliveryOrder, DeliveryStatus, Point
from core.markets import market_for
from core.services import Service, TaskQueue
from services.deliveries import repository as deliveries
from services.integrations import repository as integrations
from services.integrations.models import Partner, PartnerDelivery
from workflows.delivery import DeliveryWorkflow, workflow_id

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], responses=ERROR_RESPONSES)


class Pickup(Point):
    store_id: str | None = Field(None, max_length=128, description="your store id, if registered")


class Dropoff(Point):
    address: str = Field("", max_length=500)
    instructions: str | None = Field(None, max_length=500)


class Customer(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=5, max_length=32, pattern=r"^\+?[0-9 ()-]+$")


class DeliveryCreate(BaseModel):
    external_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$",
                             description="your id for this order; creating it again is idempotent")
    pickup: Pickup
    dropoff: Dropoff
    customer: Customer

    model_config = {"json_schema_extra": {"examples": [{
        "external_id": "order-1042",
        "pickup": {"latitude": 34.0837, "longitude": -118.3614, "store_id": "weho-sunset"},
        "dropoff": {"latitude": 34.0871, "longitude": -118.3725, "address": "8800 Melrose Ave",
                    "instructions": "leave at the lobby"},
        "customer": {"name": "Alex Doe", "phone": "+13105550100"},
    }]}}


class AttemptView(BaseModel):
    number: int
    kind: str
    status: str
    robot_id: str | None
    end_reason: str | None


class HistoryEntry(BaseModel):
    attempt_number: int
    sequence: int
    status: str
    occurred_at: datetime
    robot_id: str | None
    reason: str | None


class DeliveryView(BaseModel):
    id: uuid.UUID
    external_id: str
    status: str
    market: str | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: list[AttemptView] = []
    history: list[HistoryEntry] = Field([], description="every status of every attempt, in order")


def request_hash(body: DeliveryCreate) -> str:
    """A digest of the request, to tell an idempotent replay from a conflicting reuse of an external id."""
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


@router.post("", status_code=201, response_model=DeliveryView, summary="Create a delivery")
async def create_delivery(body: DeliveryCreate, partner: CurrentPartner, request: Request,
                          response: Response) -> DeliveryView:
    """Store the order, then start its lifecycle. The same body under the same external id returns the same delivery."""
    app = request.app.state
    pickup, dropoff = Point(**body.pickup.model_dump(include={"latitude", "longitude"})), body.dropoff
    market = market_for(pickup)
    if market is None or not market.contains(Point(latitude=dropoff.latitude, longitude=dropoff.longitude)):
        field = "pickup" if market is None else "dropoff"
        raise ApiError(422, "outside_service_area", f"the {field} is outside every service area",
                       [FieldError(field=field, error="outside_service_area")])
    digest = request_hash(body)
    async with app.databases.sessions(Service.INTEGRATIONS).begin() as session:
        order = await integrations.find_partner_delivery(session, partner.id, body.external_id)
        store = await _store(session, partner, body.pickup.store_id)
        created = order is None
        if created:
            order, pii_id = await _store_order(session, app.vault, partner, body, digest, store)
        else:
            pii_id = await integrations.pii_id_of(session, order.id)
    if order is None:  # lost a race with a concurrent create of the same external id
        return await create_delivery(body, partner, request, response)
    if order.request_hash != digest:
        raise ApiError(409, "duplicate_delivery", f"external_id {body.external_id} was used for a different delivery",
                       [FieldError(field="external_id", error="already used with another body")])
    delivery_order = DeliveryOrder(
        delivery_id=order.delivery_id, partner_id=partner.id, partner_delivery_id=order.id, pii_id=pii_id,
        external_delivery_id=body.external_id, market=market.name, store_id=store.id if store else None,
        pickup=pickup, dropoff=Point(latitude=dropoff.latitude, longitude=dropoff.longitude),
        policy=app.settings.lifecycle,
    )
    await start_lifecycle(app.temporal, delivery_order)
    response.status_code = 201 if created else 200
    return DeliveryView(id=order.delivery_id, external_id=body.external_id, status=DeliveryStatus.CREATED,
                        market=market.name)


async def _store(session, partner: Partner, store_id: str | None):
    if store_id is None:
        return None
    store = await integrations.find_store(session, partner.id, store_id)
    if store is None:
        raise ApiError(422, "unknown_store", f"no store {store_id} is registered for this partner",
                       [FieldError(field="pickup.store_id", error="unknown_store")])
    return store


async def _store_order(session, vault, partner, body: DeliveryCreate, digest: str, store):
    order = PartnerDelivery(partner_id=partner.id, external_delivery_id=body.external_id, delivery_id=uuid.uuid4(),
                            request_hash=digest, status="created", store_id=store.id if store else None)
    customer = {"name": body.customer.name, "phone": body.customer.phone, "address": body.dropoff.address,
                "instructions": body.dropoff.instructions}
    try:
        async with session.begin_nested():
            pii = await integrations.store_order(session, vault, order, customer)
    except IntegrityError:
        return None, None
    return order, pii.id


async def start_lifecycle(client: Client, order: DeliveryOrder) -> None:
    """Start the delivery's workflow, exactly once per delivery however often this is called."""
    attributes = TypedSearchAttributes([
        SearchAttributePair(SearchAttributeKey.for_keyword("PartnerId"), str(order.partner_id)),
        SearchAttributePair(SearchAttributeKey.for_keyword("ExternalDeliveryId"), order.external_delivery_id),
        SearchAttributePair(SearchAttributeKey.for_keyword("Market"), order.market),
        SearchAttributePair(SearchAttributeKey.for_keyword("DeliveryStatus"), DeliveryStatus.CREATED.value),
    ])
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


@router.get("/{delivery_id}", response_model=DeliveryView, summary="Get a delivery")
async def get_delivery(delivery_id: uuid.UUID, partner: CurrentPartner, request: Request) -> DeliveryView:
    """The delivery's status and its attempt trail; only the partner who created it can see it."""
    databases = request.app.state.databases
    async with databases.sessions(Service.DELIVERIES).begin() as session:
        view = await deliveries.get_delivery_view(session, delivery_id)
    if view is None:  # accepted a moment ago: its lifecycle has not written to Deliveries yet
        async with databases.sessions(Service.INTEGRATIONS).begin() as session:
            order = await integrations.find_order_of_delivery(session, partner.id, delivery_id)
        if order is not None:
            return DeliveryView(id=delivery_id, external_id=order.external_delivery_id,
                                status=DeliveryStatus.CREATED, created_at=order.created_at)
    if view is None or view["partner_id"] != partner.id:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    return DeliveryView(
        id=view["delivery_id"], external_id=view["external_delivery_id"], status=view["status"],
        market=view["market"], created_at=view["created_at"], ended_at=view["ended_at"],
        attempts=[AttemptView(**{k: a[k] for k in AttemptView.model_fields}) for a in view["attempts"]],
        history=[HistoryEntry(**{k: h[k] for k in HistoryEntry.model_fields}) for h in view["history"]],
    )


class CancelReason(StrEnum):
    CUSTOMER_CANCELLED = "customer_cancelled"
    MERCHANT_CANCELLED = "merchant_cancelled"
    ORDER_CHANGED = "order_changed"
    DUPLICATE_ORDER = "duplicate_order"
    OTHER = "other"


class CancelBody(BaseModel):
    reason: CancelReason = CancelReason.OTHER


@router.post("/{delivery_id}/cancel", response_model=DeliveryView, summary="Cancel a delivery",
             responses={409: {"model": ErrorBody, "description": "`noncancelable_delivery`: already delivered, "
                                                                    "returned or on its way back"}})
async def cancel_delivery(delivery_id: uuid.UUID, body: CancelBody, partner: CurrentPartner,
                          request: Request) -> DeliveryView:
    """Cancel before pickup and the robot is released; after loading, the order goes back to the store."""
    view = await get_delivery(delivery_id, partner, request)
    if view.status == DeliveryStatus.CANCELLED:
        return view
    handle = request.app.state.temporal.get_workflow_handle(workflow_id(delivery_id))
    try:
        await handle.execute_update(DeliveryWorkflow.cancel, CancelRequest(reason=body.reason.value))
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, "noncancelable_delivery", getattr(exc.cause, "message", str(exc.cause))) from None
    except RPCError:
        raise ApiError(503, "temporarily_unavailable", "the cancellation could not be delivered; retry",
                       headers={"Retry-After": "1"}) from None
    return await get_delivery(delivery_id, partner, request)
