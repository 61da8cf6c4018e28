"""The delivery lifecycle: one durable workflow per delivery, driving the services through their own queues."""

import asyncio
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deliveries import DeliveriesActivities
    from activities.device import DeviceActivities
    from activities.dispatch import DispatchActivities
    from activities.integrations import IntegrationsActivities
    from activities.operations import OperationsActivities
    from activities.partner_callbacks import PartnerCallbackActivities
    from activities.state import StateActivities
    from activities.trip_monitor import TripMonitorActivities
    from core.contracts import (
        TERMINAL_STATUSES, AttemptOutcome, CallbackProgress, DeliveryView, OperatorRecord, PlannedEtas, TrailEntry, AttemptRef, CallbackFailure, CancelRequest, DeliveryOrder,
        DeliveryStatus, DemandRequest, EventReceipt, FieldTaskRequest, NewAttempt, OperatorAction, Point,
        RecordedRobotEvent,
        RobotChoice, RobotEvent, RobotEventType, RobotRelease, StatusCallback, StatusChange, TaskAssignment,
        TaskClosure, TaskRequest, TripFinding, TripUpdate, TripWatch,
    )
    from core.errors import (
        BUSINESS_ERRORS, NO_PILOT_AVAILABLE, NO_ROBOT_AVAILABLE, PARTNER_ENDPOINT_GONE, ROBOT_NOT_DEPLOYED,
        ROBOT_UNAVAILABLE,
    )
    from core.services import TaskQueue
    from workflows.field_task import FieldTaskWorkflow, workflow_id as field_task_workflow_id
    from workflows.delivery.visibility import NEEDS_OPERATOR
    from workflows.transitions import EventRejected, Phase, next_phase

S = DeliveryStatus
DELIVERY_STATUS = SearchAttributeKey.for_keyword("DeliveryStatus")
ROBOT_ID = SearchAttributeKey.for_keyword("RobotId")
ATTENTION_REASON = SearchAttributeKey.for_keyword("AttentionReason")

STEP_TIMEOUT = timedelta(seconds=30)
# Versions of the lifecycle (workflow.patched): deliveries started before them replay the earlier decisions.
ACTS_ON_TRIP_FINDINGS = "acts-on-trip-findings"
FIELD_TASK_WORKFLOW = "field-task-workflow"
EVENTS_BEFORE_DECISIONS = "robot-events-before-operator-decisions"
ENDED_ATTEMPT_EVENTS_DROPPED = "robot-events-of-an-ended-attempt-dropped"
EVENTS_RECORDED_BY_API = "events-recorded-by-api"
LID_LEFT_OPEN_ASKS_OPERATOR = "lid-left-open-asks-an-operator"
PARKS_IN_TURN = "parks-asked-in-turn"
RETURN_LID_LEFT_OPEN_ASKS_OPERATOR = "lid-left-open-at-the-store-asks-an-operator"
LOADED = (S.PICKED_UP, S.EN_ROUTE_TO_DROPOFF, S.AT_DROPOFF)
# What an operator's resolve closes the delivery as, and how the order got where it is.
RESOLVED_BY_HAND = {"resolve_delivered": (S.DELIVERED, "handed over by hand"),
                    "resolve_returned": (S.RETURNED, "taken back by hand")}
# A lid left open this long at the dropoff, or back at the store, asks an operator: where, and how to close it.
LID_QUESTIONS: dict[Phase, tuple[str, str]] = {
    Phase(S.AT_DROPOFF, lid_open=True): ("at the dropoff", "resolve_delivered"),
    Phase(S.RETURNING, lid_open=True): ("back at the store", "resolve_returned"),
}

# Which trip leg and task status each delivery status means for Operations.
TRIP_PROGRESS: dict[S, tuple[str, str, str | None]] = {
    S.EN_ROUTE_TO_PICKUP: ("to_pickup", "in_progress", "in_progress"),
    S.AT_PICKUP: ("to_pickup", "completed", None),
    S.EN_ROUTE_TO_DROPOFF: ("to_dropoff", "in_progress", None),
    S.AT_DROPOFF: ("to_dropoff", "completed", None),
}
RETURN_PROGRESS: dict[RobotEventType, tuple[str, str, str | None]] = {
    RobotEventType.DEPARTED: ("to_store", "in_progress", "in_progress"),
    RobotEventType.ARRIVED_AT_STORE: ("to_store", "completed", None),
}


class OperatorTookOver(Exception):
    """Unwinds the current attempt when an operator decided to cancel, resolve or redispatch it."""

    def __init__(self, kind: str, action: OperatorAction):
        super().__init__(kind)
        self.kind, self.action = kind, action


@workflow.defn
class DeliveryWorkflow:
    """Creates the delivery, finds a robot and a pilot, follows the robot's events to a terminal status."""

    def __init__(self) -> None:
        self._order: DeliveryOrder | None = None
        self._phase = Phase(S.CREATED)
        self._attempt: AttemptRef | None = None
        self._attempt_sequence = 0
        self._choice: RobotChoice | None = None
        self._task: TaskAssignment | None = None
        self._inbox: deque[tuple[RobotEvent, Phase]] = deque()
        self._seen_events: dict[str, EventReceipt] = {}
        self._attempt_over = False
        self._fault_reported = False
        self._phase_deadline: datetime | None = None
        self._cancel: CancelRequest | None = None
        self._finding: TripFinding | None = None
        self._callbacks: list[StatusCallback] = []
        self._callbacks_done = 0
        self._excluded_robots: list[str] = []
        self._attention: str | None = None
        self._lid_question = False  # an operator is asked about a lid left open at the dropoff
        self._lid_withdrawn = False  # ... and that question gave way to a park
        self._allowed_decisions: tuple[str, ...] = ()
        self._decision: tuple[str, OperatorAction] | None = None
        self._operator_actions: list[OperatorRecord] = []
        self._preferred_robot: str | None = None
        self._last_location: Point | None = None
        self._last_event: str | None = None
        self._reason: str | None = None
        self._trail: list[TrailEntry] = []
        self._waiting_for: str | None = None  # "robot" or "pilot" while the delivery waits for one
        self._waiting_until: datetime | None = None
        self._monitor: asyncio.Task | None = None  # the running trip watch, when findings are acted on
        self._watch_again = False
        self._connectivity = "connected"
        self._connectivity_detail = ""
        self._dropoff_eta: datetime | None = None  # the dropoff ETA the partner was last given

    # ---- lifecycle -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, order: DeliveryOrder) -> DeliveryView:
        self._order = order
        sender = asyncio.create_task(self._send_callbacks())
        # Until the first attempt exists the only way forward is a retry.
        await self._step(IntegrationsActivities.accept_order, order, TaskQueue.INTEGRATIONS, allowed=("retry",))
        self._attempt = await self._step(DeliveriesActivities.create_delivery, order, TaskQueue.DELIVERIES,
                                         allowed=("retry",))
        await self._reach(S.CREATED)
        decision: OperatorTookOver | None = None
        while self._phase.status not in TERMINAL_STATUSES:
            try:
                if decision is not None:
                    await self._carry_out(decision.kind, decision.action)
                    decision = None
                elif self._attempt.kind == "return":
                    await self._return_attempt()
                else:
                    await self._delivery_attempt()
            except OperatorTookOver as took:
                decision = took
        await workflow.wait_condition(lambda: self._callbacks_done == len(self._callbacks) or sender.done())
        if sender.done():
            await sender  # the callback sender broke: surface its error instead of waiting forever
        sender.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _delivery_attempt(self) -> None:
        while True:
            self._choice = await self._find_robot()
            if self._choice is None:
                await self._close_attempt("cancelled", reason=self._reason)
                await self._release_robot(fulfilled=False)
                return await self._finish(S.CANCELLED, self._reason or "no_robot_available")
            try:
                self._task = await self._assign_task(self._choice.robot_id, "to_pickup")
                break
            except ActivityError:  # Operations holds the robot busy or out of service: plan another one
                await self._release_robot(fulfilled=False)
                self._excluded_robots.append(self._choice.robot_id)
        if self._task is None:
            await self._close_attempt("cancelled", reason=self._reason)
            await self._release_robot(fulfilled=False)
            return await self._finish(S.CANCELLED, self._reason or "no_pilot_available")
        self._dropoff_eta = self._dropoff_eta or self._choice.dropoff_eta
        self._phase = Phase(S.ROBOT_ASSIGNED)
        await self._reach(S.ROBOT_ASSIGNED)
        outcome = await self._follow_robot()
        await self._end_delivery_attempt(outcome)

    async def _end_delivery_attempt(self, outcome: str) -> None:
        loaded = self._phase.status in LOADED
        if outcome == "delivered":
            await self._close_attempt("completed", reason="delivered")
            await self._release_robot()
            return await self._finish(S.DELIVERED, None, already_reached=True)
        if outcome == "fault":
            return await self._replace_robot()
        if loaded:  # cancelled after loading, or the customer did not come: the order goes back
            reason = "customer_no_show" if outcome == "timeout" else f"cancelled:{self._cancel.reason}"
            await self._close_attempt("failed", reason=reason)
            return await self._start_attempt("return", reason)
        reason = "pickup_timeout" if outcome == "timeout" else self._cancel.reason
        await self._close_attempt("cancelled", reason=reason)
        await self._release_robot(fulfilled=False)
        await self._finish(S.CANCELLED, reason)

    async def _return_attempt(self) -> None:
        robot_id = self._choice.robot_id
        self._choice = await self._step(DispatchActivities.plan_demand, self._demand(preferred=robot_id),
                                        TaskQueue.DISPATCH)
        self._task = await self._assign_task(robot_id, "to_store")
        self._phase = Phase(S.RETURNING)
        await self._reach(S.RETURNING, self._reason)
        outcome = await self._follow_robot()
        if outcome == "fault":
            await self._open_field_task("rescue", self._finding_text())
            await self._close_attempt("failed", reason="robot_fault", out_of_service=True)
            await self._release_robot(out_of_service=True)
            return await self._finish(S.RETURNED, "recovered_by_field_operations")
        await self._close_attempt("completed", reason="returned")
        await self._release_robot()
        await self._finish(S.RETURNED, self._reason, already_reached=True)

    async def _carry_out(self, kind: str, action: OperatorAction) -> None:
        """An operator took the delivery over: cancel it, close it as delivered (or returned) by hand, or dispatch
        again."""
        by = f"{action.operator}: {action.note}"
        if kind in RESOLVED_BY_HAND:
            status, how = RESOLVED_BY_HAND[kind]
            await self._close_attempt("completed", reason=f"resolved by {by}")
            await self._release_robot()
            return await self._finish(status, f"{how} ({by})")
        if kind == "cancel":
            reason = action.reason or "operator_cancelled"
            await self._close_attempt("cancelled", reason=f"{reason} ({by})")
            await self._release_robot(fulfilled=False)
            return await self._finish(S.CANCELLED, reason)
        await self._close_attempt("failed", reason=f"redispatched by {by}")
        await self._release_robot()
        self._preferred_robot = action.robot_id
        await self._start_attempt("delivery", "redispatched")

    async def _replace_robot(self) -> None:
        """The robot broke down or stopped progressing: take it out of service and try another one."""
        detail = self._finding_text()
        await self._open_field_task("inspection" if self._last_event == "fault" else "rescue", detail)
        await self._close_attempt("failed", reason=f"robot_fault: {detail}", out_of_service=True)
        await self._release_robot(out_of_service=True)
        self._excluded_robots.append(self._choice.robot_id)
        await self._start_attempt("delivery", "robot_replaced")

    async def _follow_robot(self) -> str:
        """Apply the robot's events in order until the attempt ends; return why it ended."""
        self._finding = None
        if workflow.patched(ACTS_ON_TRIP_FINDINGS):
            self._connectivity = "connected"
            monitor = asyncio.create_task(self._watch_trip())
        else:  # deliveries started earlier only ever heard of a lost or stuck robot
            monitor = self._start_watch(self._watch())
            monitor.add_done_callback(self._on_finding)
        try:
            return await self._next_outcome()
        finally:
            self._attempt_over = True  # the robot's further events belong to no attempt: refuse them
            monitor.cancel()
            self._monitor = None
            await self._step(TripMonitorActivities.stop_watching, self._watch(), TaskQueue.TRIP_MONITOR)

    def _start_watch(self, watch: TripWatch):
        return workflow.start_activity_method(
            TripMonitorActivities.watch_trip, watch, task_queue=TaskQueue.TRIP_MONITOR,
            start_to_close_timeout=timedelta(hours=6), heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)), summary="watch the trip",
        )

    async def _watch_trip(self) -> None:
        """Watch the trip, acting on each finding, until the robot is lost or stuck (which ends the attempt).

        Each watch is told what the delivery knows (connectivity, promised ETA, loaded or not) and returns
        with news; then the next one starts with the news included.
        """
        while True:
            self._monitor = self._start_watch(self._watch(findings=True))
            try:
                finding = await self._monitor
            except ActivityError:
                if self._watch_again:  # cancelled because the robot was loaded: watch the rest of the trip
                    self._watch_again = False
                    continue
                return  # the watch itself broke down: the delivery goes on, unwatched, as the robot reports
            if finding.kind in ("lost", "stuck"):
                self._finding = finding
                return
            self._take_finding(finding)

    def _take_finding(self, finding: TripFinding) -> None:
        workflow.logger.info("trip finding: %s", finding.kind, extra=self._log_context(finding=finding.kind))
        if finding.kind == "late":
            self._dropoff_eta = finding.dropoff_eta
            self._queue_callback(self._reached_status(), workflow.now(), finding.detail, kind="eta_updated")
        else:
            self._connectivity, self._connectivity_detail = finding.kind, finding.detail
        self._set_details()

    def _watch_loaded_trip(self) -> None:
        """The robot took the order on board: its ETA now counts from where it is to the dropoff."""
        if self._monitor is not None and not self._monitor.done():
            self._watch_again = True
            self._monitor.cancel()

    async def _next_outcome(self) -> str:
        while True:
            timeout = None
            if self._phase_deadline is not None:
                timeout = max(timedelta(0), self._phase_deadline - workflow.now())
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self._cancel_pending() or self._finding is not None
                    or self._unparked_decision() or (self._lid_question and self._decision is not None)
                    or self._lid_withdrawn,
                    timeout=timeout,
                )
            except asyncio.TimeoutError:
                if self._phase in LID_QUESTIONS:  # a deadline set by the patched paths only
                    self._ask_about_the_lid()
                    continue
                return "timeout"
            if (self._lid_withdrawn or self._lid_question) and self._lid_answered():
                continue
            # Events the robot was told were accepted are applied before an operator's decision ends the attempt.
            if self._unparked_decision() and not (self._inbox and workflow.patched(EVENTS_BEFORE_DECISIONS)):
                kind, action = self._take_decision()
                raise OperatorTookOver(kind, action)
            if self._inbox:
                event, phase = self._inbox.popleft()
                await self._apply(event, phase)
                if event.type is RobotEventType.FAULT:
                    return "fault"
                if phase.status in (S.DELIVERED, S.RETURNED):
                    return phase.status.value
            elif self._finding is not None:
                return "fault"
            else:
                return "cancelled"

    def _lid_answered(self) -> bool:
        """The open-lid question ended: whether to wait again. A `retry` waits `lid_open_seconds` more, as does a
        question that gave way to another park (one AttentionReason at a time); `resolve_delivered` (or on a
        return `resolve_returned`) ends the attempt; the robot closing the lid (or a cancel, a finding) goes its
        usual way."""
        again = workflow.now() + timedelta(seconds=self._order.policy.lid_open_seconds)
        if self._lid_withdrawn:
            self._lid_withdrawn, self._phase_deadline = False, again
            return True
        self._lid_question = False
        self._stop_asking()
        if self._decision is None or self._inbox:
            return False
        kind, action = self._take_decision()
        if kind != "retry":
            raise OperatorTookOver(kind, action)
        self._phase_deadline = again
        return True

    def _ask_about_the_lid(self) -> None:
        """The lid stayed open at the dropoff (or back at the store): an operator looks, and closes the delivery
        as delivered (or returned) or waits again (`retry`); the robot closing the lid meanwhile ends the
        question."""
        if self._attention is not None:  # something else is parked: ask once it is answered
            self._phase_deadline = workflow.now() + timedelta(seconds=self._order.policy.lid_open_seconds)
            return
        self._phase_deadline = None
        where, resolve = LID_QUESTIONS[self._phase]
        self._ask_operator(f"the lid has been open {where} for {self._order.policy.lid_open_seconds:.0f} s",
                           (resolve, "retry"), cause="lid_left_open")
        self._lid_question = True

    def _cancel_pending(self) -> bool:
        # A return is already the answer to a cancellation: it cannot be cancelled again.
        return self._cancel is not None and self._attempt.kind != "return"

    def _on_finding(self, done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is None:
            self._finding = done.result()

    # ---- steps -----------------------------------------------------------------------------------

    async def _find_robot(self) -> RobotChoice | None:
        deadline = workflow.now() + timedelta(seconds=self._order.policy.robot_search_seconds)
        while self._cancel is None:
            try:
                choice = await self._step(DispatchActivities.plan_demand, self._demand(), TaskQueue.DISPATCH,
                                          expect=(NO_ROBOT_AVAILABLE,))
                await self._step(DeviceActivities.verify_deployment, choice.robot_id, TaskQueue.DEVICE,
                                 expect=(ROBOT_NOT_DEPLOYED,))
                self._stop_waiting()
                return choice
            except ActivityError as err:
                if _error_type(err) == ROBOT_NOT_DEPLOYED:
                    self._choice = choice
                    await self._release_robot(out_of_service=True, fulfilled=False)
                    self._excluded_robots.append(choice.robot_id)
                    continue
            wait = min(self._order.policy.robot_retry_seconds, (deadline - workflow.now()).total_seconds())
            if wait <= 0 and self._order.policy.no_robot_action == "park":
                kind, action = await self._park("no robot available", allowed=("retry", "redispatch", "cancel"),
                                                cause="no_robot")
                if kind == "cancel":
                    raise OperatorTookOver(kind, action)
                self._preferred_robot = action.robot_id
                deadline = workflow.now() + timedelta(seconds=self._order.policy.robot_search_seconds)
                continue
            if wait <= 0:
                self._reason = "no_robot_available"
                return None
            self._wait_for("robot", deadline)
            await _sleep_unless(lambda: self._cancel is not None, wait)
        self._reason = self._cancel.reason
        return None

    async def _assign_task(self, robot_id: str, first_leg: str) -> TaskAssignment | None:
        request = TaskRequest(attempt=self._attempt, robot_id=robot_id, first_leg=first_leg)
        deadline = workflow.now() + timedelta(seconds=self._order.policy.pilot_wait_seconds)
        while True:
            try:
                assignment = await self._step(OperationsActivities.assign_task, request, TaskQueue.OPERATIONS,
                                              expect=(NO_PILOT_AVAILABLE, ROBOT_UNAVAILABLE))
                self._stop_waiting()
                return assignment
            except ActivityError as err:
                if _error_type(err) == ROBOT_UNAVAILABLE and first_leg != "to_store":
                    raise
            if first_leg == "to_store" and workflow.now() >= deadline:
                await self._park("no pilot is free to supervise the robot bringing the order back", ("retry",),
                                 cause="no_pilot")
                deadline = workflow.now() + timedelta(seconds=self._order.policy.pilot_wait_seconds)
                continue
            if first_leg != "to_store" and (workflow.now() >= deadline or self._cancel):
                self._reason = self._cancel.reason if self._cancel else "no_pilot_available"
                return None
            self._wait_for("pilot", deadline)
            await _sleep_unless(lambda: self._cancel is not None, self._order.policy.robot_retry_seconds)

    async def _apply(self, event: RobotEvent, phase: Phase) -> None:
        """Record the statuses an accepted event moved in Operations and Deliveries.

        The robot API records the event itself in State once this workflow accepted it; deliveries started
        before that recorded it here first.
        """
        if not workflow.patched(EVENTS_RECORDED_BY_API):
            recorded = RecordedRobotEvent(event=event, delivery_id=self._order.delivery_id,
                                          attempt_id=self._attempt.attempt_id, accepted=True)
            await self._step(StateActivities.record_robot_event, recorded, TaskQueue.STATE)
        returning = self._attempt.kind == "return"
        progress = RETURN_PROGRESS.get(event.type) if returning else TRIP_PROGRESS.get(phase.status)
        if progress and phase.status != self._reached_status():
            leg, trip_status, task_status = progress
            update = TripUpdate(task_id=self._task.task_id, leg=leg, trip_status=trip_status,
                                task_status=task_status, occurred_at=event.occurred_at)
            await self._step(OperationsActivities.record_trip_progress, update, TaskQueue.OPERATIONS)
        if phase.status != self._reached_status():
            await self._reach(phase.status)
        if phase.status is S.PICKED_UP:
            self._watch_loaded_trip()

    async def _reach(self, status: S, reason: str | None = None) -> None:
        """Record a delivery status in Deliveries and queue its partner callback."""
        self._attempt_sequence += 1
        now = workflow.now()
        robot_id = self._choice.robot_id if self._choice else None
        change = StatusChange(delivery_id=self._order.delivery_id, attempt_id=self._attempt.attempt_id, status=status,
                              sequence=self._attempt_sequence, occurred_at=now, robot_id=robot_id, reason=reason)
        await self._step(DeliveriesActivities.record_status, change, TaskQueue.DELIVERIES)
        self._count_status(status, now)
        self._trail.append(TrailEntry(status=status, at=now, attempt=self._attempt.number, robot_id=robot_id,
                                      reason=reason))
        self._queue_callback(status, now, reason)
        self._waiting_for = None
        self._upsert_search_attributes()
        self._set_details()

    def _queue_callback(self, status: S, now: datetime, reason: str | None, kind: str = "status") -> None:
        """Queue a partner callback, numbered in the delivery's one sequence; the sender sends them in order."""
        self._callbacks.append(StatusCallback(
            partner_delivery_id=self._order.partner_delivery_id, delivery_id=self._order.delivery_id,
            sequence=len(self._callbacks) + 1, status=status, occurred_at=now,
            robot_id=self._choice.robot_id if self._choice else None, reason=reason, kind=kind,
            dropoff_eta=self._dropoff_eta))

    def _count_status(self, status: S, now: datetime) -> None:
        """Metrics (skipped on replay): delivery_status_total{status}, and the time the previous status lasted."""
        meter = workflow.metric_meter()
        meter.create_counter("delivery_status_total", "Deliveries reaching each status").add(
            1, {"status": status.value})
        if self._trail:
            previous = self._trail[-1]
            seconds = (now - previous.at).total_seconds()
            meter.create_histogram_float(
                "delivery_status_duration_seconds", "Time a delivery spent in each status", "s",
            ).record(max(seconds, 0.0), {"status": previous.status.value})
        workflow.logger.info("delivery %s", status.value, extra=self._log_context(status=status.value))

    def _log_context(self, **fields: Any) -> dict[str, Any]:
        """IDs only: the workflow logger adds the workflow_id; never the customer's details."""
        context = {"delivery_id": str(self._order.delivery_id)}
        if self._attempt is not None:
            context["attempt_id"] = str(self._attempt.attempt_id)
        return {**context, **fields}

    def _reached_status(self) -> S | None:
        return self._trail[-1].status if self._trail else None

    async def _finish(self, status: S, reason: str | None, already_reached: bool = False) -> None:
        self._phase = Phase(status)
        self._phase_deadline = None
        self._reason = reason
        if not already_reached:
            await self._reach(status, reason)

    async def _start_attempt(self, kind: str, reason: str) -> None:
        previous = self._attempt
        request = NewAttempt(delivery_id=self._order.delivery_id, number=previous.number + 1, kind=kind,
                             previous_attempt_id=previous.attempt_id, previous_outcome=reason)
        self._attempt = await self._step(DeliveriesActivities.start_attempt, request, TaskQueue.DELIVERIES)
        if self._inbox and workflow.patched(ENDED_ATTEMPT_EVENTS_DROPPED):
            # Left only when an operator ended the attempt while it was parked applying them: not this attempt's.
            self._inbox.clear()
        self._attempt_over = self._fault_reported = False
        self._finding = None  # the last robot's finding: the next robot's events are its own from the start
        self._attempt_sequence = 0
        self._reason = reason
        self._phase_deadline = None
        self._task = None  # the old task is closed: its robot's events no longer apply
        if kind == "delivery":
            self._phase, self._choice = Phase(S.CREATED), None
        if kind == "return":
            self._cancel = None  # the return answers the cancellation

    async def _close_attempt(self, task_outcome: str, *, reason: str, out_of_service: bool = False) -> None:
        now = workflow.now()
        if self._task is not None:
            closure = TaskClosure(task_id=self._task.task_id, robot_id=self._task.robot_id, outcome=task_outcome,
                                  occurred_at=now, robot_out_of_service=out_of_service)
            await self._step(OperationsActivities.close_task, closure, TaskQueue.OPERATIONS)
        self._attempt_sequence += 1
        status = {"completed": "succeeded", "cancelled": "cancelled"}.get(task_outcome, "failed")
        outcome = AttemptOutcome(attempt_id=self._attempt.attempt_id, status=status, reason=reason,
                                 sequence=self._attempt_sequence, occurred_at=now)
        await self._step(DeliveriesActivities.end_attempt, outcome, TaskQueue.DELIVERIES)

    async def _release_robot(self, out_of_service: bool = False, fulfilled: bool = True) -> None:
        release = RobotRelease(attempt_id=self._attempt.attempt_id, demand_fulfilled=fulfilled,
                               robot_id=self._choice.robot_id if self._choice else None,
                               location=self._last_location, out_of_service=out_of_service)
        await self._step(DispatchActivities.release_robot, release, TaskQueue.DISPATCH)

    async def _open_field_task(self, kind: str, reason: str) -> None:
        """Hand the robot to field operations: its field task runs as its own workflow, beyond this delivery."""
        request = FieldTaskRequest(robot_id=self._choice.robot_id, kind=kind, reason=reason,
                                   delivery_id=self._order.delivery_id, attempt_id=self._attempt.attempt_id)
        if not workflow.patched(FIELD_TASK_WORKFLOW):
            await self._step(OperationsActivities.open_field_task, request, TaskQueue.OPERATIONS)
            return
        request.fo_task_id = workflow.uuid4()
        await workflow.start_child_workflow(
            FieldTaskWorkflow.run, request, id=field_task_workflow_id(request.fo_task_id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )

    async def _step(self, activity, arg, queue: TaskQueue, expect: tuple[str, ...] = (),
                    allowed: tuple[str, ...] = ("retry", "redispatch", "cancel", "resolve_delivered")):
        """Run one activity on its service's queue; park for an operator when it cannot succeed.

        Business errors named in `expect` are the caller's to handle; any other failure, once its bounded
        retries are spent, parks the delivery until an operator asks for a retry.
        """
        while True:
            try:
                return await workflow.execute_activity_method(
                    activity, arg, task_queue=queue.value, start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=self._step_retry(), summary=self._summary(activity),
                )
            except ActivityError as err:
                if _error_type(err) in expect:
                    raise
                kind, action = await self._park(f"{activity.__name__} failed: {_error_message(err)}", allowed,
                                                cause=activity.__name__)
                if kind != "retry":
                    raise OperatorTookOver(kind, action) from None

    def _step_retry(self) -> RetryPolicy:
        # Infrastructure failures retry with backoff, but boundedly: then the delivery parks for an operator.
        policy = self._order.policy
        return RetryPolicy(initial_interval=timedelta(seconds=policy.step_retry_initial_seconds),
                           maximum_interval=timedelta(seconds=30), maximum_attempts=policy.step_retry_max_attempts,
                           non_retryable_error_types=list(BUSINESS_ERRORS))

    async def _park(self, reason: str, allowed: tuple[str, ...], cause: str) -> tuple[str, OperatorAction]:
        """Wait, visibly (DeliveryStatus=NEEDS_OPERATOR), for an operator's decision; return it.

        `cause` is a short, fixed label (the failing activity's name, no_robot, no_pilot) for the
        `deliveries_parked_total{reason}` metric; `reason` is the operator's full text. While another part of
        the delivery waits for an operator (the partner callbacks and a lifecycle step can park at once), this
        one waits its turn, so that each decision goes to the question the operator was shown.
        """
        if self._attention is not None and not self._lid_question and workflow.patched(PARKS_IN_TURN):
            await workflow.wait_condition(lambda: self._attention is None or self._lid_question)
        self._ask_operator(reason, allowed, cause)
        await workflow.wait_condition(lambda: self._decision is not None)
        self._stop_asking()
        return self._take_decision()

    def _ask_operator(self, reason: str, allowed: tuple[str, ...], cause: str) -> None:
        """Show the delivery as NEEDS_OPERATOR with `reason`, accepting the `allowed` decisions."""
        if self._lid_question:  # a park (the partner callbacks') takes the place of the open-lid question
            self._lid_question, self._lid_withdrawn = False, True
        self._attention, self._allowed_decisions = reason, allowed
        workflow.metric_meter().create_counter(
            "deliveries_parked_total", "Deliveries parked for an operator (NEEDS_OPERATOR), by cause",
        ).add(1, {"reason": cause})
        workflow.logger.warning("delivery parked for an operator: %s", cause, extra=self._log_context(reason=cause))
        self._upsert_search_attributes()
        self._set_details()

    def _stop_asking(self) -> None:
        self._attention, self._allowed_decisions = None, ()
        self._upsert_search_attributes()
        self._set_details()

    def _unparked_decision(self) -> bool:
        # A decision made while something is parked belongs to whatever parked; others end the attempt.
        return self._decision is not None and self._attention is None

    def _take_decision(self) -> tuple[str, OperatorAction]:
        decision, self._decision = self._decision, None
        return decision

    async def _send_callbacks(self) -> None:
        """Send each status callback in order; a partner endpoint that is down never holds up the robot."""
        policy = self._order.policy
        retry = RetryPolicy(initial_interval=timedelta(seconds=policy.callback_initial_interval_seconds),
                            backoff_coefficient=4, maximum_attempts=policy.callback_max_attempts,
                            maximum_interval=timedelta(seconds=policy.callback_max_interval_seconds),
                            non_retryable_error_types=list(BUSINESS_ERRORS))
        while True:
            await workflow.wait_condition(lambda: self._callbacks_done < len(self._callbacks))
            callback = self._callbacks[self._callbacks_done]
            try:
                await workflow.execute_activity_method(
                    PartnerCallbackActivities.send_status_callback, callback,
                    task_queue=TaskQueue.PARTNER_CALLBACKS.value, start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=retry, summary=f"callback #{callback.sequence}: {callback.status.value}",
                )
            except ActivityError as err:
                if _error_type(err) == PARTNER_ENDPOINT_GONE:
                    # The partner disabled its endpoint: hold the callbacks, in order, until an operator
                    # confirms it is back; the robot's lifecycle goes on meanwhile.
                    await self._park("partner endpoint disabled (410 Gone)", ("retry",), cause="partner_endpoint_gone")
                    await self._step(PartnerCallbackActivities.enable_webhook, callback.partner_delivery_id,
                                     TaskQueue.PARTNER_CALLBACKS, allowed=("retry",))
                    continue
                failure = CallbackFailure(partner_delivery_id=callback.partner_delivery_id,
                                          sequence=callback.sequence, error=_error_message(err))
                await self._step(PartnerCallbackActivities.record_callback_failure, failure,
                                 TaskQueue.PARTNER_CALLBACKS, allowed=("retry",))
            self._callbacks_done += 1

    # ---- messages from robots, partners and operators --------------------------------------------

    @workflow.update
    async def robot_event(self, event: RobotEvent) -> EventReceipt:
        """A robot reports an event; it is applied in order, or refused if it does not fit."""
        if event.event_id in self._seen_events:
            return self._seen_events[event.event_id]
        self._phase = next_phase(self._phase, event.type, self._attempt.kind == "return")
        self._set_phase_deadline(event.type)
        if event.location is not None:
            self._last_location = event.location
        self._last_event = event.type.value
        self._fault_reported = self._fault_reported or event.type is RobotEventType.FAULT
        self._inbox.append((event, self._phase))
        receipt = EventReceipt(delivery_id=self._order.delivery_id, status=self._phase.status,
                               attempt_id=self._attempt.attempt_id, lid_open=self._phase.lid_open)
        self._seen_events[event.event_id] = receipt
        return receipt

    @robot_event.validator
    def _validate_robot_event(self, event: RobotEvent) -> None:
        if event.event_id in self._seen_events:
            return
        if self._choice is None or self._task is None or event.robot_id != self._choice.robot_id:
            raise EventRejected(f"robot {event.robot_id} is not serving this delivery")
        if self._phase.status in TERMINAL_STATUSES:
            raise EventRejected(f"the delivery is already {self._phase.status.value}")
        if ending := self._attempt_ending():
            raise EventRejected(f"attempt {self._attempt.number} of robot {event.robot_id} is ending: {ending}")
        next_phase(self._phase, event.type, self._attempt.kind == "return")

    def _attempt_ending(self) -> str | None:
        """Why the robot's attempt is over or about to be, if it is: its events no longer apply."""
        if self._attempt_over:
            return "it is over"
        if self._fault_reported:
            return "the robot reported a fault"
        if self._finding is not None:
            return f"trip monitoring found the robot {self._finding.kind}"
        if self._unparked_decision():
            return f"an operator decided to {self._decision[0]}"
        return None

    def _set_phase_deadline(self, event: RobotEventType) -> None:
        policy = self._order.policy
        if self._phase == Phase(S.AT_PICKUP) and event is RobotEventType.ARRIVED_AT_PICKUP:
            self._phase_deadline = workflow.now() + timedelta(seconds=policy.pickup_wait_seconds)
        elif self._phase == Phase(S.AT_DROPOFF):
            self._phase_deadline = workflow.now() + timedelta(seconds=policy.customer_no_show_seconds)
        elif self._phase == Phase(S.AT_DROPOFF, lid_open=True) and workflow.patched(LID_LEFT_OPEN_ASKS_OPERATOR):
            self._phase_deadline = workflow.now() + timedelta(seconds=policy.lid_open_seconds)
        elif self._phase == Phase(S.RETURNING, lid_open=True) and workflow.patched(RETURN_LID_LEFT_OPEN_ASKS_OPERATOR):
            self._phase_deadline = workflow.now() + timedelta(seconds=policy.lid_open_seconds)
        elif self._phase.status not in (S.AT_PICKUP,):
            self._phase_deadline = None

    @workflow.update
    async def cancel(self, request: CancelRequest) -> EventReceipt:
        """Cancel the delivery: before pickup everything is released; after loading the order goes back."""
        if self._attention is not None and "cancel" in self._allowed_decisions:
            self._decide("cancel", OperatorAction(operator=request.requested_by, note="cancelled while parked",
                                                  reason=request.reason))
        elif self._cancel is None:
            self._cancel = request
        await workflow.wait_condition(lambda: self._reached_status() in TERMINAL_STATUSES | {S.RETURNING})
        return EventReceipt(delivery_id=self._order.delivery_id, status=self._phase.status,
                            attempt_id=self._attempt.attempt_id if self._attempt else None)

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        if self._phase.status in TERMINAL_STATUSES or self._phase.status is S.RETURNING:
            raise ApplicationError(f"the delivery is {self._phase.status.value} and can no longer be cancelled",
                                   type="noncancelable_delivery")

    @workflow.update
    async def retry(self, action: OperatorAction) -> str:
        """Operator: re-run the step the delivery is parked on."""
        return self._decide("retry", action)

    @retry.validator
    def _validate_retry(self, action: OperatorAction) -> None:
        self._check_decision("retry")

    @workflow.update
    async def redispatch(self, action: OperatorAction) -> str:
        """Operator: end this attempt and start another, with `robot_id` if given."""
        return self._decide("redispatch", action)

    @redispatch.validator
    def _validate_redispatch(self, action: OperatorAction) -> None:
        if self._attention is None and self._phase.status not in (S.ROBOT_ASSIGNED, S.EN_ROUTE_TO_PICKUP):
            raise ApplicationError(f"cannot redispatch a delivery that is {self._phase.status.value}",
                                   type="invalid_operator_action")
        self._check_decision("redispatch", parked_only=False)

    @workflow.update
    async def resolve_delivered(self, action: OperatorAction) -> str:
        """Operator: the order was handed over by hand; close the delivery as delivered."""
        return self._decide("resolve_delivered", action)

    @resolve_delivered.validator
    def _validate_resolve(self, action: OperatorAction) -> None:
        loaded = self._phase.status in LOADED
        if self._attention is None and not loaded:
            raise ApplicationError(f"cannot resolve as delivered a delivery that is {self._phase.status.value}",
                                   type="invalid_operator_action")
        self._check_decision("resolve_delivered", parked_only=False)

    @workflow.update
    async def resolve_returned(self, action: OperatorAction) -> str:
        """Operator: the order is back at the store though the lid stays open; close the delivery as returned."""
        return self._decide("resolve_returned", action)

    @resolve_returned.validator
    def _validate_resolve_returned(self, action: OperatorAction) -> None:
        self._check_decision("resolve_returned")

    def _check_decision(self, kind: str, parked_only: bool = True) -> None:
        if self._decision is not None:
            raise ApplicationError("another operator decision is being carried out", type="invalid_operator_action")
        if self._attention is None and parked_only:
            raise ApplicationError("the delivery is not waiting for an operator", type="not_parked")
        if self._attention is not None and kind not in self._allowed_decisions:
            raise ApplicationError(f"{kind} does not apply here; choose one of {', '.join(self._allowed_decisions)}",
                                   type="invalid_operator_action")

    def _decide(self, kind: str, action: OperatorAction) -> str:
        self._decision = (kind, action)
        self._operator_actions.append(OperatorRecord(
            action=kind, operator=action.operator, note=action.note, robot_id=action.robot_id, reason=action.reason,
            at=workflow.now(), attention=self._attention))
        return f"{kind} accepted from {action.operator}"

    @workflow.query
    def receipt(self, event_id: str) -> EventReceipt | None:
        """The answer this delivery gave to a robot event it accepted; None if it never accepted it."""
        return self._seen_events.get(event_id)

    @workflow.query
    def status(self) -> DeliveryView:
        """The delivery's full current state."""
        return DeliveryView(
            delivery_id=self._order.delivery_id, status=self._phase.status, lid_open=self._phase.lid_open,
            attempt=self._attempt, robot_id=self._choice.robot_id if self._choice else None,
            eta=PlannedEtas(pickup=self._choice.pickup_eta, dropoff=self._choice.dropoff_eta) if self._choice else None,
            pilot_id=self._task.pilot_id if self._task else None, reason=self._reason, waiting_for=self._waiting_for,
            connectivity=self._connectivity, dropoff_eta=self._dropoff_eta, attention=self._attention,
            operator_actions=self._operator_actions,
            callbacks=CallbackProgress(queued=len(self._callbacks), done=self._callbacks_done), trail=self._trail,
        )

    # ---- helpers ---------------------------------------------------------------------------------

    def _demand(self, preferred: str | None = None) -> DemandRequest:
        preferred = preferred or self._preferred_robot
        if preferred in self._excluded_robots:  # an operator's choice that has since broken down
            preferred = None
        return DemandRequest(attempt=self._attempt, market=self._order.market, pickup=self._order.pickup,
                             dropoff=self._order.dropoff, exclude_robot_ids=self._excluded_robots,
                             preferred_robot_id=preferred)

    def _watch(self, findings: bool = False) -> TripWatch:
        watch = TripWatch(attempt_id=self._attempt.attempt_id, delivery_id=self._order.delivery_id,
                          robot_id=self._choice.robot_id, policy=self._order.policy)
        if not findings:
            return watch
        delivering = self._attempt.kind != "return"  # a return has no partner ETA to keep
        return watch.model_copy(update={
            "connectivity": self._connectivity, "loaded": self._phase.status in LOADED,
            "pickup": self._order.pickup, "dropoff": self._order.dropoff if delivering else None,
            "pickup_eta": self._choice.pickup_eta, "dropoff_eta": self._choice.dropoff_eta,
            "promised_dropoff_eta": self._dropoff_eta,
        })

    def _finding_text(self) -> str:
        if self._finding is not None:
            return f"{self._finding.kind}: {self._finding.detail}"
        return "robot reported a fault"

    def _summary(self, activity) -> str:
        """What an activity is for, as the UI lists it."""
        where = f"attempt {self._attempt.number}" if self._attempt else "order"
        robot = f", robot {self._choice.robot_id}" if self._choice else ""
        return f"{activity.__name__.replace('_', ' ')} ({where}{robot})"

    def _upsert_search_attributes(self) -> None:
        status = NEEDS_OPERATOR if self._attention else self._phase.status.value
        updates = [DELIVERY_STATUS.value_set(status), ATTENTION_REASON.value_set(self._attention or "")]
        if self._choice is not None:
            updates.append(ROBOT_ID.value_set(self._choice.robot_id))
        workflow.upsert_search_attributes(updates)

    def _wait_for(self, what: str, until: datetime) -> None:
        self._waiting_for, self._waiting_until = what, until
        self._set_details()

    def _stop_waiting(self) -> None:
        if self._waiting_for is not None:
            self._waiting_for = None
            self._set_details()

    def _set_details(self) -> None:
        lines = [f"**{self._attention and NEEDS_OPERATOR or self._phase.status.value}**"]
        if self._attention:
            lines.append(f"attention: {self._attention}")
        if self._attempt:
            lines.append(f"attempt {self._attempt.number} ({self._attempt.kind})")
        if self._choice:
            lines.append(f"robot `{self._choice.robot_id}`")
        if self._task:
            lines.append(f"pilot `{self._task.pilot_id}`")
        if self._last_event:
            lines.append(f"last event: {self._last_event}")
        if self._connectivity != "connected":
            lines.append(f"connectivity {self._connectivity}: {self._connectivity_detail}")
        if self._dropoff_eta:
            lines.append(f"dropoff ETA {self._dropoff_eta:%H:%M:%S}")
        if self._waiting_for:
            lines.append(f"waiting for a {self._waiting_for} until {self._waiting_until:%H:%M:%S}")
        workflow.set_current_details(" · ".join(lines))


def _error_type(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _error_message(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or err)[:200]


async def _sleep_unless(interrupt, seconds: float) -> None:
    try:
        await workflow.wait_condition(interrupt, timeout=timedelta(seconds=seconds))
    except asyncio.TimeoutError:
        pass
