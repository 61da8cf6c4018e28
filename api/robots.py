"""The robot API: a robot fetches its assignment and reports events with its device credential."""

import logging
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import CurrentRobot
from api.errors import ERROR_RESPONSES, ApiError
from core.contracts import EventReceipt, FieldTaskRequest, Point, RecordedRobotEvent, RobotEvent, RobotEventType
from core.services import Service, TaskQueue
from services.deliveries import repository as deliveries
from services.operations import repository as operations
from services.state import repository as state
from services.trip_monitor import repository as trip_monitor
from workflows.delivery import DeliveryWorkflow, workflow_id
from workflows.field_task import FieldTaskWorkflow, workflow_id as field_task_workflow_id

router = APIRouter(prefix="/v1/robot", tags=["robots"], responses=ERROR_RESPONSES)

LID_EVENTS = {RobotEventType.LID_OPENED, RobotEventType.LID_CLOSED}
log = logging.getLogger(__name__)


class Assignment(BaseModel):
    robot_id: str
    delivery_id: uuid.UUID
    attempt_id: uuid.UUID
    task_id: uuid.UUID
    kind: str = Field(description="delivery, or return (take the order back to the store)")
    status: str = Field(description="the delivery's status as Deliveries recorded it; a moment behind an event's "
                                    "receipt, which is the robot's immediate answer")
    lid_open: bool = Field(description="the last lid event this attempt recorded was an opening")
    pickup: Point
    dropoff: Point


class EventReport(BaseModel):
    event_id: str = Field(min_length=1, max_length=64, description="unique per robot; a resend is idempotent")
    type: RobotEventType
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    occurred_at: datetime | None = None
    detail: str | None = Field(None, max_length=200)

    model_config = {"json_schema_extra": {"examples": [{
        "event_id": "evt-000123", "type": "lid_closed", "latitude": 34.0837, "longitude": -118.3614}]}}


class Heartbeat(Point):
    moving: bool = Field(description="whether the robot is driving right now")
    battery: float | None = Field(None, ge=0, le=1, description="charge left, 0 to 1")


async def _active_task(request: Request, robot_id: str):
    async with request.app.state.databases.lookups(Service.OPERATIONS)() as session:
        return await operations.active_task_for_robot(session, robot_id)


@router.get("/assignment", response_model=Assignment, summary="The robot's current assignment",
            responses={204: {"description": "no assignment right now"}})
async def get_assignment(robot: CurrentRobot, request: Request):
    """What the robot should be doing: the delivery, its pickup and dropoff, and the current status.

    Read from the databases (Operations, Deliveries, State), never from the workflow: robots poll it all the time.
    """
    databases = request.app.state.databases
    task = await _active_task(request, robot.robot_id)
    if task is None:
        return Response(status_code=204)
    async with databases.lookups(Service.DELIVERIES)() as session:
        delivery = await deliveries.get_delivery(session, task.delivery_id)
    async with databases.lookups(Service.STATE)() as session:
        lid_open = await state.lid_open(session, task.attempt_id)
    return Assignment(
        robot_id=robot.robot_id, delivery_id=task.delivery_id, attempt_id=task.attempt_id, task_id=task.id,
        kind=task.kind, status=delivery.status, lid_open=lid_open,
        pickup=Point(latitude=delivery.pickup_latitude, longitude=delivery.pickup_longitude),
        dropoff=Point(latitude=delivery.dropoff_latitude, longitude=delivery.dropoff_longitude),
    )


@router.post("/events", response_model=EventReceipt, summary="Report an event",
             responses={409: {"description": "the event does not fit the delivery's current state"}})
async def report_event(report: EventReport, robot: CurrentRobot, request: Request) -> EventReceipt:
    """Apply one event to the robot's delivery, in order; an event that does not fit is refused and kept as rejected.

    After no answer, or a 503 (wait its Retry-After), send the same event again with the same `event_id`: the
    answer is the one the event got first, and it is applied once. After a 409, read the assignment again and
    go on from its status with a new event.
    """
    location = Point(latitude=report.latitude, longitude=report.longitude) if report.latitude is not None else None
    if report.type in LID_EVENTS and location is None:
        raise ApiError(422, "location_required", "lid events must carry the GPS position")
    event = RobotEvent(event_id=report.event_id, robot_id=robot.robot_id, type=report.type, location=location,
                       occurred_at=report.occurred_at or datetime.now(UTC), detail=report.detail)
    task = await _active_task(request, robot.robot_id)
    if task is None:
        return await _refuse(request, event, None, None, "no_assignment", "the robot has no active assignment")
    async with request.app.state.databases.lookups(Service.STATE)() as session:
        earlier = await state.find_event(session, robot.robot_id, event.event_id)
    if earlier is not None and not (earlier.accepted and earlier.payload.get("delivery_id") == str(task.delivery_id)):
        # A resend of an event refused before, or taken by an earlier delivery: never applied to this one.
        return await _answer_again(request, earlier, "event_rejected")
    handle = request.app.state.temporal.get_workflow_handle(workflow_id(task.delivery_id))
    try:
        receipt = await handle.execute_update(DeliveryWorkflow.robot_event, event)
    except WorkflowUpdateFailedError as exc:
        reason = str(exc.cause.message if hasattr(exc.cause, "message") else exc.cause)
        return await _refuse(request, event, task.delivery_id, task.attempt_id, "event_rejected", reason)
    except RPCError:
        raise ApiError(503, "temporarily_unavailable", "the delivery could not take the event; resend it",
                       headers={"Retry-After": "1"}) from None
    # Accepted: State keeps it (with the lid cycle and GPS) before the robot hears so. If that fails the robot
    # resends the same event_id, the workflow answers with the same receipt, and State gets it then, once.
    recorded = RecordedRobotEvent(event=event, delivery_id=receipt.delivery_id, attempt_id=receipt.attempt_id,
                                  accepted=True)
    try:
        await _record(request, recorded)
    except SQLAlchemyError:
        log.warning("accepted event not yet recorded in State", extra={"robot_id": robot.robot_id,
                                                                     "delivery_id": str(receipt.delivery_id)})
        raise ApiError(503, "temporarily_unavailable", "the event was taken but not yet recorded; resend it",
                       headers={"Retry-After": "1"}) from None
    return receipt


async def _refuse(request: Request, event: RobotEvent, delivery_id, attempt_id, code: str,
                  reason: str) -> EventReceipt:
    """Refuse an event and keep it as rejected, unless it is a resend of one already answered."""
    async with request.app.state.databases.sessions(Service.STATE).begin() as session:
        earlier = await state.find_event(session, event.robot_id, event.event_id)
        if earlier is None:
            await state.record_event(session, RecordedRobotEvent(
                event=event, delivery_id=delivery_id, attempt_id=attempt_id, accepted=False,
                rejection_reason=reason[:200]))
    if earlier is not None:
        return await _answer_again(request, earlier, code)
    raise ApiError(409, code, reason)


async def _answer_again(request: Request, earlier, code: str) -> EventReceipt:
    """The answer an event got the first time (maybe from a delivery that has ended since): the receipt of the
    delivery that accepted it, or the same refusal."""
    if earlier.accepted and earlier.payload.get("delivery_id"):
        handle = request.app.state.temporal.get_workflow_handle(workflow_id(earlier.payload["delivery_id"]))
        try:
            receipt = await handle.query(DeliveryWorkflow.receipt, earlier.event_id)
        except RPCError:
            raise ApiError(503, "temporarily_unavailable", "the event's first answer cannot be read right now; "
                                                           "resend it", headers={"Retry-After": "1"}) from None
        if receipt is not None:
            return receipt
    raise ApiError(409, code, earlier.rejection_reason or "the event was already answered")


async def _record(request: Request, recorded: RecordedRobotEvent) -> None:
    """Append the event to State's log (and lid cycles), once per robot and event_id."""
    async with request.app.state.databases.sessions(Service.STATE).begin() as session:
        await state.record_event(session, recorded)


@router.post("/heartbeat", status_code=204, summary="Report position and motion")
async def heartbeat(beat: Heartbeat, robot: CurrentRobot, request: Request) -> Response:
    """Keep the robot's connectivity and its trip watch current; sent every few seconds."""
    databases = request.app.state.databases
    async with databases.sessions(Service.STATE).begin() as session:
        await state.record_sighting(session, robot.robot_id, beat.latitude, beat.longitude)
    async with databases.sessions(Service.TRIP_MONITOR).begin() as session:
        await trip_monitor.record_heartbeat(session, robot.robot_id, beat.latitude, beat.longitude, beat.moving)
    if beat.battery is not None and beat.battery < request.app.state.settings.battery_swap_below:
        await _ask_for_battery_swap(request, robot.robot_id, beat.battery)
    return Response(status_code=204)


async def _ask_for_battery_swap(request: Request, robot_id: str, battery: float) -> None:
    """Open a battery_swap field task for the robot unless it has one open already."""
    async with request.app.state.databases.sessions(Service.OPERATIONS).begin() as session:
        if await operations.list_field_tasks(session, open_only=True, robot_id=robot_id, kind="battery_swap"):
            return
    fo_task_id = uuid.uuid4()
    field_task = FieldTaskRequest(robot_id=robot_id, kind="battery_swap", reason=f"battery at {battery:.0%}",
                                  fo_task_id=fo_task_id)
    try:
        # Heartbeats racing here each propose a task; Operations opens one, and the others' workflows end at once.
        await request.app.state.temporal.start_workflow(
            FieldTaskWorkflow.run, field_task, id=field_task_workflow_id(fo_task_id),
            task_queue=TaskQueue.DELIVERY_WORKFLOWS.value)
    except RPCError as exc:  # the next heartbeat asks again; the heartbeat itself is recorded
        log.warning("battery swap not requested: %s", exc, extra={"robot_id": robot_id})
