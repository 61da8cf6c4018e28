"""A robot's stream: one WebSocket that pushes the robot its assignment and carries its heartbeats.

The robot connects to `/v1/robot/stream` with its device credential (`Authorization: Bearer ...`), checked once
per connection. Messages are JSON objects with a `type`:

- platform → robot `{"type": "assignment", "version": "...", "assignment": {...} | null}`: on connecting, and
  every time the assignment changes (`assignment` is what `GET /v1/robot/assignment` answers, null with none).
- robot → platform `{"type": "heartbeat", "latitude": ..., "longitude": ..., "moving": ..., "battery": ...}`,
  answered `{"type": "heartbeat", "version": "..."}`: the version of the last assignment pushed, so a robot whose
  version differs knows it missed one and asks again.
- robot → platform `{"type": "assignment"}`: push the assignment now, read afresh, even if unchanged.
- robot → platform `{"type": "event", "event": {...}}`: an event, the body `POST /v1/robot/events` takes, applied
  the same way and answered `{"type": "receipt", "event_id": "...", "receipt": {...}}`, or refused
  `{"type": "error", "event_id": "...", "status": 409, "code": "...", "message": "...", "retry_after": null}` with
  the status and code the POST would answer (after a 503, or no answer, resend the same event after
  `retry_after` seconds: it is applied once). Events are applied in the order they arrive on the stream.
- platform → robot `{"type": "error", "code": "invalid_message", "message": "..."}` for a message it cannot read;
  the stream stays open.

The assignment is read again whenever a change to it is announced (`core.assignments`; the notices of one
change are gathered for `GATHER_SECONDS` and read once, only from the databases that sent them), wholly when
notices may have been lost or the robot asks, and wholly every `reread_seconds` anyway.
"""

import asyncio
import json
import logging

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.errors import RETRY_AFTER_SECONDS, ApiError, dependency_unavailable
from desks.errors import Refusal, unavailable
from desks.robot import AssignmentReading, RobotDesk, version_of

log = logging.getLogger(__name__)

REREAD_SECONDS = 120.0  # a pushed assignment is read again at least this often, announced or not
RETRY_SECONDS = 1.0  # after a database error, before the assignment is read again
# One change is announced by up to three databases (Operations, Deliveries, State) within a few milliseconds:
# once woken, a stream waits this long for the rest before it reads the assignment once for all of them.
GATHER_SECONDS = 0.02
UNAVAILABLE = 1013  # WebSocket close code: try again later
POLICY = 1008  # WebSocket close code: refused (no or an unknown credential)


def bearer(websocket: WebSocket) -> str | None:
    scheme, _, credential = websocket.headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


async def serve_stream(websocket: WebSocket, reread_seconds: float = REREAD_SECONDS) -> None:
    """Authenticate the robot, then push its assignment and take its heartbeats until either side closes."""
    desk: RobotDesk = websocket.app.state.robot_desk
    credential = bearer(websocket)
    try:
        deployment = await desk.authenticate(credential) if credential else None
    except (SQLAlchemyError, OSError):
        await websocket.close(code=UNAVAILABLE, reason="temporarily unavailable")
        return
    if deployment is None:
        await websocket.close(code=POLICY, reason="unknown or retired device credential")
        return
    await websocket.accept()
    await RobotStream(websocket, desk, deployment.robot_id,
                      getattr(websocket.app.state, "robot_reread_seconds", reread_seconds)).serve()


class RobotStream:
    """One connected robot: a task pushing its assignment, and the loop reading what the robot sends."""

    def __init__(self, websocket: WebSocket, desk: RobotDesk, robot_id: str, reread_seconds: float):
        self.websocket, self.desk, self.robot_id, self.reread_seconds = websocket, desk, robot_id, reread_seconds
        self.version: str | None = None  # of the last assignment pushed
        self.asked = False
        self.sending = asyncio.Lock()
        self.waiter = desk.waiter(robot_id)

    async def serve(self) -> None:
        pushing = asyncio.create_task(self._push())
        try:
            await self._receive()
        except WebSocketDisconnect:
            pass
        finally:
            pushing.cancel()
            await asyncio.gather(pushing, return_exceptions=True)
            self.waiter.close()

    async def _send(self, message: dict) -> None:
        async with self.sending:
            await self.websocket.send_text(json.dumps(message))

    async def _push(self) -> None:
        """Read the assignment, push it if its version changed (or the robot asked), and wait for the next news:
        after a notice, only the parts of the databases that announced a change are read again."""
        from api.robots import Assignment  # the one shape of an assignment, as the GET answers it

        reading, changed = AssignmentReading(self.desk, self.robot_id), None
        while True:
            try:
                assignment = await reading.read(changed)
            except (SQLAlchemyError, OSError) as exc:  # a database away: its refused connections are OSErrors
                log.warning("assignment not read for the stream (%s); reading again", type(exc).__name__,
                            extra={"robot_id": self.robot_id})
                await asyncio.sleep(RETRY_SECONDS)
                changed = None
                continue
            version = version_of(assignment)
            self.waiter.follow(assignment.delivery_id if assignment else None)
            if version != self.version or self.asked:
                self.version, self.asked = version, False
                body = None if assignment is None else Assignment.model_validate(
                    {**vars(assignment), "version": version}).model_dump(mode="json")
                try:
                    await self._send({"type": "assignment", "version": version, "assignment": body})
                except (WebSocketDisconnect, RuntimeError, OSError):
                    return  # the robot is gone; the reading loop ends too
            if await self.waiter.wait(self.reread_seconds):
                await asyncio.sleep(GATHER_SECONDS)
                changed = self.waiter.take()  # what is announced after this is read by the next turn, or wakes it
            else:  # `reread_seconds` with no news: everything
                self.waiter.take()
                changed = None

    async def _receive(self) -> None:
        from api.robots import Heartbeat

        while True:
            text = await self.websocket.receive_text()
            try:
                message = json.loads(text)
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "heartbeat":
                    beat = Heartbeat.model_validate(message)
                    await self.desk.heartbeat_batched(self.robot_id, beat, beat.moving, beat.battery)
                    await self._send({"type": "heartbeat", "version": self.version})
                elif kind == "assignment":
                    self.asked = True
                    self.waiter.wake()
                elif kind == "event":
                    await self._report(message.get("event"))
                else:
                    await self._refuse("type must be heartbeat, assignment or event")
            except (ValueError, ValidationError) as exc:
                await self._refuse(str(exc)[:200])

    async def _refuse(self, message: str) -> None:
        await self._send({"type": "error", "code": "invalid_message", "message": message})

    async def _report(self, body: object) -> None:
        """Apply one event as `POST /v1/robot/events` does, and answer with its receipt or its refusal."""
        from api.robots import EventReport, event_of

        event_id = body.get("event_id") if isinstance(body, dict) else None
        try:
            receipt = await self.desk.report(event_of(EventReport.model_validate(body), self.robot_id))
        except ValidationError as exc:
            refusal = Refusal(422, "invalid_request", f"the event does not match the schema: {str(exc)[:200]}")
        except ApiError as exc:
            refusal = Refusal(exc.status, exc.code, exc.message)
        except Refusal as exc:
            refusal = exc
        except Exception as exc:
            if not dependency_unavailable(exc):
                raise
            refusal = unavailable("the platform cannot take the event right now", retry_after=RETRY_AFTER_SECONDS)
        else:
            await self._send({"type": "receipt", "event_id": event_id, "receipt": receipt.model_dump(mode="json")})
            return
        await self._send({"type": "error", "event_id": event_id, "status": refusal.status, "code": refusal.code,
                          "message": refusal.message, "retry_after": refusal.retry_after})
