"""The robot API: a robot fetches its assignment and reports events with its device credential."""

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Query, Response, WebSocket
from pydantic import BaseModel, Field, model_validator

from api.auth import CurrentRobot
from api.dependencies import Robots
from api.errors import ERROR_RESPONSES, ApiError
from api.robot_stream import serve_stream
from core.contracts import EventReceipt, Point, RobotEvent, RobotEventType

router = APIRouter(prefix="/v1/robot", tags=["robots"], responses=ERROR_RESPONSES)

LID_EVENTS = {RobotEventType.LID_OPENED, RobotEventType.LID_CLOSED}
VERSION_HEADER = "Assignment-Version"


class Assignment(BaseModel):
    robot_id: str
    delivery_id: uuid.UUID
    attempt_id: uuid.UUID
    task_id: uuid.UUID
    kind: str = Field(description="delivery, or return (take the order back to the store)")
    status: str = Field(description="the delivery's status as Deliveries recorded it; a moment behind an event's "
                                    "receipt, which is the robot's immediate answer")
    lid_open: bool = Field(description="the last lid event this attempt recorded was an opening")
    at_store: bool = Field(description="on a return: the robot said it arrived back at the store (the lid may open)")
    pickup: Point
    dropoff: Point
    version: str = Field(description="the assignment's version: another whenever anything above changes")


class EventReport(BaseModel):
    event_id: str = Field(min_length=1, max_length=64, description="unique per robot; a resend is idempotent")
    type: RobotEventType
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    occurred_at: datetime | None = None
    detail: str | None = Field(None, max_length=200)

    model_config = {"json_schema_extra": {"examples": [{
        "event_id": "evt-000123", "type": "lid_closed", "latitude": 34.0837, "longitude": -118.3614}]}}

    @model_validator(mode="after")
    def _coordinates_in_pairs(self):
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together")
        return self


class Heartbeat(Point):
    moving: bool = Field(description="whether the robot is driving right now")
    battery: float | None = Field(None, ge=0, le=1, description="charge left, 0 to 1")


@router.get("/assignment", response_model=Assignment, summary="The robot's current assignment",
            responses={204: {"description": "no assignment right now"}})
async def get_assignment(robot: CurrentRobot, desk: Robots, response: Response,
                         after: str | None = Query(None, max_length=32, description="the version the robot has"),
                         wait: float = Query(0, ge=0, le=60, description="with `after`: seconds to hold the request "
                                                                          "until the version is another one")):
    """What the robot should be doing: the delivery, its pickup and dropoff, and the current status.

    Read from the databases (Operations, Deliveries, State), never from the workflow. The `Assignment-Version`
    header carries the version (`none` with no assignment). With `after` and `wait`, a long poll: the answer comes
    the moment the assignment's version is no longer `after` (every change is announced when it commits), or
    after `wait` seconds with the assignment as it is. A robot that can hold a WebSocket uses `/v1/robot/stream`.
    """
    if after is not None and wait > 0:
        assignment, version = await desk.next_assignment(robot.robot_id, after, wait)
    else:
        assignment, version = await desk.versioned_assignment(robot.robot_id)
    if assignment is None:
        return Response(status_code=204, headers={VERSION_HEADER: version})
    response.headers[VERSION_HEADER] = version
    return Assignment.model_validate({**vars(assignment), "version": version})


@router.post("/events", response_model=EventReceipt, summary="Report an event",
             responses={409: {"description": "the event does not fit the delivery's current state"}})
async def report_event(report: EventReport, robot: CurrentRobot, desk: Robots) -> EventReceipt:
    """Apply one event to the robot's delivery, in order; an event that does not fit is refused and kept as rejected.

    After no answer, or a 503 (wait its Retry-After), send the same event again with the same `event_id`: the
    answer is the one the event got first, and it is applied once. After a 409, read the assignment again and
    go on from its status with a new event.
    """
    return await desk.report(event_of(report, robot.robot_id))


def event_of(report: EventReport, robot_id: str) -> RobotEvent:
    """The robot's event as reported (over HTTP or on its stream); a lid event must say where it happened."""
    location = Point(latitude=report.latitude, longitude=report.longitude) if report.latitude is not None else None
    if report.type in LID_EVENTS and location is None:
        raise ApiError(422, "location_required", "lid events must carry the GPS position")
    return RobotEvent(event_id=report.event_id, robot_id=robot_id, type=report.type, location=location,
                      occurred_at=report.occurred_at or datetime.now(UTC), detail=report.detail)


@router.post("/heartbeat", status_code=204, summary="Report position and motion")
async def heartbeat(beat: Heartbeat, robot: CurrentRobot, desk: Robots) -> Response:
    """Keep the robot's connectivity and its trip watch current; sent every few seconds."""
    await desk.heartbeat(robot.robot_id, beat, beat.moving, beat.battery)
    return Response(status_code=204)


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """The robot's stream: its assignment pushed the moment it changes, its heartbeats answered with the
    assignment's version, its events answered with their receipts (see `api.robot_stream`)."""
    await serve_stream(websocket)
