"""The delivery workflow alone, on the time-skipping test server: every service it calls is a stub, by activity name.

`Services` answers each activity as its service would, with contract objects, fails one when told, and records
every call. `Delivery` plays the robot, the partner and the operators through the workflow's updates.
"""

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import CLASSES
from core.contracts import (
    AttemptOutcome, AttemptRef, CallbackFailure, CancelRequest, DeliveryOrder, DeliveryView, DemandRequest,
    Deployment, EventReceipt, FieldTaskChange, FieldTaskRequest, LifecyclePolicy, NewAttempt, OperatorAction,
    Point, QuoteEstimate, QuoteOffer, QuoteRequest, RecordedRobotEvent, RobotChoice, RobotEvent,
    RobotRelease, RobotService, StatusCallback, StatusChange, TaskAssignment, TaskClosure, TaskRequest, TripFinding,
    TripUpdate, TripWatch,
)
from core.errors import NO_CAPACITY, NO_ROBOT_AVAILABLE
from core.services import TaskQueue
from worker import workflow_runner
from workflows.delivery import DeliveryWorkflow, start_delivery, workflow_id
from workflows.field_task import FieldTaskWorkflow

ROBOTS = ("robot-1", "robot-2", "robot-3")
HEARTBEAT = timedelta(milliseconds=10)
# A well-behaved robot's events, leg by leg.
TO_PICKUP = ("departed", "arrived_at_pickup")
LOAD = ("lid_opened", "lid_closed")
TO_DROPOFF = ("departed", "arrived_at_dropoff")
LOADED = (*TO_PICKUP, *LOAD)
AT_DROPOFF = (*LOADED, *TO_DROPOFF)
BACK_TO_STORE = ("departed", "arrived_at_store", "lid_opened", "lid_closed")
PICKUP = Point(latitude=34.08, longitude=-118.36)
DROPOFF = Point(latitude=34.09, longitude=-118.35)
# Short timers where a test waits for them in real time (the trip watch is in flight, so time is not skipped).
QUICK = LifecyclePolicy(step_retry_initial_seconds=0.01, step_retry_max_attempts=2,
                        callback_initial_interval_seconds=0.01, callback_max_attempts=2)


def business(code: str) -> ApplicationError:
    """A failure the service reports as final: one of `core.errors`, never retried."""
    return ApplicationError(f"stub says {code}", type=code, non_retryable=True)


def outage() -> ApplicationError:
    """An infrastructure failure: Temporal retries it, up to the step's retry policy."""
    return ApplicationError("database unreachable", type="OperationalError")


def activity_names(queue: TaskQueue) -> list[str]:
    """The activities the real worker serves on `queue`, by name."""
    module, name = CLASSES[queue].split(":")
    return list(activities_of(getattr(import_module(module), name), inspect.isfunction))


def activities_of(owner, kind) -> dict[str, Any]:
    """The `@activity.defn` members of a class (functions) or of an object (bound methods), by activity name."""
    return {getattr(member, "__temporal_activity_definition").name: member
            for _, member in inspect.getmembers(owner, kind) if hasattr(member, "__temporal_activity_definition")}


async def eventually(probe, check, timeout: float = 10):
    """Ask the async `probe()` in real time until `check` holds for its answer; that answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check(answer := await probe()):
        assert asyncio.get_running_loop().time() < deadline, f"never came true: {answer}"
        await asyncio.sleep(0.02)
    return answer


@dataclass
class Failure:
    error: Exception
    times: int | None  # None: every call


@dataclass
class Services:
    """Every service of the platform as one stub: sensible answers, failures on demand, and a log of calls."""

    fleet: list[str] = field(default_factory=lambda: list(ROBOTS))
    calls: list[tuple[str, Any]] = field(default_factory=list)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    findings: list[tuple[str, str, datetime | None]] = field(default_factory=list)
    held: dict[str, tuple[Any, asyncio.Event]] = field(default_factory=dict)
    answered: list[tuple[str, Any]] = field(default_factory=list)

    def fail(self, name: str, error: Exception, times: int | None = 1) -> None:
        """Make activity `name` raise `error` on its next `times` calls (None: on every call)."""
        self.failures.setdefault(name, []).append(Failure(error, times))

    def heal(self, name: str) -> None:
        self.failures.pop(name, None)

    def report(self, kind: str, detail: str = "seen by the stub", dropoff_eta: datetime | None = None) -> None:
        """Trip monitoring's next finding; until there is one, a trip watch waits."""
        self.findings.append((kind, detail, dropoff_eta))

    def hold(self, name: str, when, gate: asyncio.Event) -> None:
        """Make activity `name` answer a call whose argument satisfies `when` only once `gate` is set."""
        self.held[name] = (when, gate)

    async def _pass(self, name: str, arg: Any) -> None:
        """Answer a call to `name` once any hold on it is released, and note that it was answered."""
        when, gate = self.held.get(name, (None, None))
        if gate is not None and when(arg):
            await gate.wait()
        self.answered.append((name, arg))

    def args(self, name: str) -> list:
        """What the workflow sent to activity `name`, call by call."""
        return [arg for called, arg in self.calls if called == name]

    async def called(self, name: str, times: int) -> None:
        """Wait until activity `name` has been called `times` times."""
        async def calls() -> int:
            return len(self.args(name))

        await eventually(calls, lambda count: count >= times)

    async def answered_to(self, name: str, check) -> None:
        """Wait until activity `name` has answered a call whose argument satisfies `check`."""
        async def answers() -> list:
            return [arg for called, arg in self.answered if called == name]

        await eventually(answers, lambda args: any(check(arg) for arg in args))

    def names(self) -> list[str]:
        return [called for called, _ in self.calls]

    def told_partner(self) -> list[str]:
        """The statuses of the partner callbacks sent, in order (a failed send and its resend both count)."""
        return [callback.status for callback in self.args("send_status_callback")]

    def _called(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        for failure in self.failures.get(name, []):
            if failure.times is None:
                raise failure.error
            if failure.times > 0:
                failure.times -= 1
                raise failure.error

    def activities(self, queue: TaskQueue) -> list:
        """The stubs registered on `queue`: those of the activities the real worker serves there (the ones no
        delivery calls, such as the PII purge's, need none)."""
        stubs = activities_of(self, inspect.ismethod)
        return [stubs[name] for name in activity_names(queue) if name in stubs]

    # ---- integrations and partner callbacks ------------------------------------------------------

    @activity.defn(name="accept_order")
    async def accept_order(self, order: DeliveryOrder) -> None:
        self._called("accept_order", order)

    @activity.defn(name="purge_pii")
    async def purge_pii(self) -> int:
        self._called("purge_pii", None)
        return 0

    @activity.defn(name="send_status_callback")
    async def send_status_callback(self, callback: StatusCallback) -> str:
        self._called("send_status_callback", callback)
        return "delivered"

    @activity.defn(name="enable_webhook")
    async def enable_webhook(self, partner_delivery_id: uuid.UUID) -> None:
        self._called("enable_webhook", partner_delivery_id)

    @activity.defn(name="record_callback_failure")
    async def record_callback_failure(self, failure: CallbackFailure) -> None:
        self._called("record_callback_failure", failure)

    # ---- deliveries ------------------------------------------------------------------------------

    @activity.defn(name="create_delivery")
    async def create_delivery(self, order: DeliveryOrder) -> AttemptRef:
        self._called("create_delivery", order)
        return AttemptRef(delivery_id=order.delivery_id, attempt_id=uuid.uuid4(), number=1)

    @activity.defn(name="record_quote")
    async def record_quote(self, offer: QuoteOffer) -> None:
        self._called("record_quote", offer)

    @activity.defn(name="start_attempt")
    async def start_attempt(self, request: NewAttempt) -> AttemptRef:
        self._called("start_attempt", request)
        return AttemptRef(delivery_id=request.delivery_id, attempt_id=uuid.uuid4(), number=request.number,
                          kind=request.kind)

    @activity.defn(name="record_status")
    async def record_status(self, change: StatusChange) -> None:
        self._called("record_status", change)
        await self._pass("record_status", change)

    @activity.defn(name="end_attempt")
    async def end_attempt(self, outcome: AttemptOutcome) -> None:
        self._called("end_attempt", outcome)

    # ---- dispatch --------------------------------------------------------------------------------

    @activity.defn(name="plan_demand")
    async def plan_demand(self, request: DemandRequest) -> RobotChoice:
        self._called("plan_demand", request)
        free = [robot for robot in self.fleet if robot not in request.exclude_robot_ids]
        if not free:
            raise business(NO_ROBOT_AVAILABLE)
        robot = request.preferred_robot_id if request.preferred_robot_id in free else free[0]
        now = datetime.now(UTC)
        return RobotChoice(demand_id=uuid.uuid4(), plan_id=uuid.uuid4(), robot_id=robot,
                           pickup_eta=now + timedelta(minutes=5), dropoff_eta=now + timedelta(minutes=15))

    @activity.defn(name="estimate_quote")
    async def estimate_quote(self, request: QuoteRequest) -> QuoteEstimate:
        self._called("estimate_quote", request)
        raise business(NO_CAPACITY)

    @activity.defn(name="release_robot")
    async def release_robot(self, release: RobotRelease) -> None:
        self._called("release_robot", release)

    @activity.defn(name="set_robot_service")
    async def set_robot_service(self, change: RobotService) -> None:
        self._called("set_robot_service", change)

    # ---- operations ------------------------------------------------------------------------------

    @activity.defn(name="assign_task")
    async def assign_task(self, request: TaskRequest) -> TaskAssignment:
        self._called("assign_task", request)
        return TaskAssignment(task_id=uuid.uuid4(), trip_id=uuid.uuid4(), robot_id=request.robot_id,
                              pilot_id=uuid.uuid4())

    @activity.defn(name="record_trip_progress")
    async def record_trip_progress(self, update: TripUpdate) -> None:
        self._called("record_trip_progress", update)

    @activity.defn(name="close_task")
    async def close_task(self, closure: TaskClosure) -> None:
        self._called("close_task", closure)

    @activity.defn(name="open_field_task")
    async def open_field_task(self, request: FieldTaskRequest) -> uuid.UUID:
        self._called("open_field_task", request)
        return request.fo_task_id or uuid.uuid4()

    @activity.defn(name="assign_field_task")
    async def assign_field_task(self, change: FieldTaskChange) -> None:
        self._called("assign_field_task", change)

    @activity.defn(name="close_field_task")
    async def close_field_task(self, change: FieldTaskChange) -> bool:
        self._called("close_field_task", change)
        return True

    # ---- trip monitor, state, device -------------------------------------------------------------

    @activity.defn(name="watch_trip")
    async def watch_trip(self, watch: TripWatch) -> TripFinding:
        self._called("watch_trip", watch)
        while not self.findings:  # no news: watch until there is some, or the workflow stops watching
            activity.heartbeat()
            await asyncio.sleep(0.02)
        kind, detail, dropoff_eta = self.findings.pop(0)
        await self._pass("watch_trip", watch)
        return TripFinding(attempt_id=watch.attempt_id, kind=kind, detail=detail, dropoff_eta=dropoff_eta)

    @activity.defn(name="stop_watching")
    async def stop_watching(self, watch: TripWatch) -> None:
        self._called("stop_watching", watch)

    @activity.defn(name="record_robot_event")
    async def record_robot_event(self, recorded: RecordedRobotEvent) -> bool:
        self._called("record_robot_event", recorded)
        return True

    @activity.defn(name="verify_deployment")
    async def verify_deployment(self, robot_id: str) -> Deployment:
        self._called("verify_deployment", robot_id)
        return Deployment(robot_id=robot_id, market="test", software_version="stub")


@asynccontextmanager
async def stub_workers(client: Client, services: Services, workflows: bool = True) -> AsyncIterator[None]:
    """The delivery workflows on the real workers' sandbox (unless `workflows` is False: `serving_workflows` then
    runs them when the test says), and a worker of stubs on every activity queue."""
    # Heartbeats go out at once, so a trip watch hears it was cancelled before its delivery closes.
    workers = [Worker(client, task_queue=queue.value, activities=services.activities(queue),
                      max_heartbeat_throttle_interval=HEARTBEAT, default_heartbeat_throttle_interval=HEARTBEAT)
               for queue in CLASSES]
    if workflows:
        workers.append(delivery_workflows_worker(client))
    running = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        await asyncio.gather(*running, return_exceptions=True)


def delivery_workflows_worker(client: Client, **options) -> Worker:
    """A worker of the delivery workflows on the real workers' sandbox."""
    return Worker(client, task_queue=TaskQueue.DELIVERY_WORKFLOWS.value,
                  workflows=[DeliveryWorkflow, FieldTaskWorkflow], workflow_runner=workflow_runner(), **options)


@asynccontextmanager
async def serving_workflows(client: Client) -> AsyncIterator[None]:
    """The delivery workflows served for as long as the block runs, by a worker that caches none of them: each
    task goes to the shared queue, where the next such worker takes it after this one stopped."""
    async with delivery_workflows_worker(client, max_cached_workflows=0):
        yield


class Refused(Exception):
    """An update the workflow refused: its error type (when it has one) and message."""

    def __init__(self, kind: str | None, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message = kind, message


class Delivery:
    """One delivery's workflow, played by the test as its robot, its partner and the operators."""

    def __init__(self, env: WorkflowEnvironment, services: Services, order: DeliveryOrder):
        self.env, self.services, self.order = env, services, order
        self.handle: WorkflowHandle = env.client.get_workflow_handle(workflow_id(order.delivery_id))
        self.events = 0

    @classmethod
    async def start(cls, env: WorkflowEnvironment, services: Services, policy: LifecyclePolicy) -> "Delivery":
        order = DeliveryOrder(delivery_id=uuid.uuid4(), partner_id=uuid.uuid4(), partner_delivery_id=uuid.uuid4(),
                              pii_id=uuid.uuid4(), external_delivery_id=f"rule-{uuid.uuid4().hex[:8]}",
                              market="test", pickup=PICKUP, dropoff=DROPOFF, policy=policy)
        assert await start_delivery(env.client, order)
        return cls(env, services, order)

    async def view(self) -> DeliveryView:
        return await self.handle.query(DeliveryWorkflow.status)

    async def until(self, check) -> DeliveryView:
        """The view once `check(view)` holds, polled in real time (timers do not move meanwhile)."""
        return await eventually(self.view, check)

    async def reached(self, status: str, attempt: int | None = None) -> DeliveryView:
        """The view once `status` is recorded (the last entry of its trail), by `attempt` if given."""
        return await self.until(lambda view: view.trail and view.trail[-1].status == status
                                and attempt in (None, view.trail[-1].attempt))

    async def parked(self, about: str = "") -> DeliveryView:
        return await self.until(lambda view: view.attention is not None and about in view.attention)

    async def result(self) -> DeliveryView:
        """The final view; timers fire at once meanwhile (the test server skips time while nothing runs)."""
        async with self.env.time_skipping_unlocked():
            return DeliveryView.model_validate(await self.handle.result())

    async def update(self, name: str, argument) -> Any:
        """Send update `name`; its typed answer, or `Refused`."""
        try:
            return await self.handle.execute_update(getattr(DeliveryWorkflow, name), argument)
        except WorkflowUpdateFailedError as refused:
            cause = refused.cause
            raise Refused(getattr(cause, "type", None), str(getattr(cause, "message", cause))) from None

    async def robot(self, kind: str, robot_id: str | None = None, event_id: str | None = None) -> EventReceipt:
        """The robot serving the delivery (or `robot_id`) reports `kind`; the workflow's receipt."""
        if robot_id is None:
            robot_id = (await self.view()).robot_id
        self.events += 1
        event = RobotEvent(event_id=event_id or f"event-{self.events}-{uuid.uuid4().hex[:6]}", robot_id=robot_id,
                           type=kind, location=DROPOFF, occurred_at=datetime.now(UTC))
        return await self.update("robot_event", event)

    async def play(self, *kinds: str) -> EventReceipt | None:
        """The serving robot reports each event in turn, once the delivery has its robot; the last receipt."""
        await self.until(lambda view: view.pilot_id is not None and view.waiting_for is None)
        receipt = None
        for kind in kinds:
            receipt = await self.robot(kind)
        return receipt

    async def cancel(self, reason: str = "customer_changed_mind", by: str = "partner",
                     note: str | None = None) -> EventReceipt:
        return await self.update("cancel", CancelRequest(reason=reason, requested_by=by, note=note))

    async def decide(self, kind: str, robot_id: str | None = None, reason: str | None = None,
                     note: str | None = None) -> str:
        """An operator's decision: retry, redispatch, cancel (while parked), resolve_delivered, resolve_returned."""
        note = note or f"{kind} from the rule tests"
        action = OperatorAction(operator="ana", note=note, robot_id=robot_id, reason=reason)
        if kind == "cancel":
            return await self.cancel(reason or "operator_cancelled", by="ana", note=note)
        return await self.update(kind, action)

    async def search_attributes(self) -> dict[str, str]:
        """What operators filter on in the UI: DeliveryStatus, AttentionReason, RobotId..."""
        return {pair.key.name: pair.value for pair in (await self.handle.describe()).typed_search_attributes}

    async def stop(self) -> None:
        """Terminate the delivery if the test left it running, so that its workers can stop cleanly."""
        if (await self.handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            try:
                await self.handle.terminate("the test is over")
            except RPCError as closed:  # it ended by itself meanwhile
                if closed.status != RPCStatusCode.NOT_FOUND:
                    raise
