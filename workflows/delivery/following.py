"""Following the robot through an attempt: its event inbox, the trip watch, phase deadlines, the open-lid question."""

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import OperationsActivities, TripMonitorActivities
    from core.contracts import (
        TERMINAL_STATUSES, AttemptEnd, CallbackKind, Connectivity, DeliveryStatus, EventReceipt, FindingKind,
        LegStatus, OperatorDecision, RobotEvent, RobotEventType, TripFinding, TripLeg, TripUpdate, TripWatch,
    )
    from core.services import TaskQueue
    from workflows.transitions import EventRejected, Phase, next_phase
from workflows.delivery.callbacks import Callbacks
from workflows.delivery.operator import Operator, OperatorTookOver
from workflows.delivery.progress import Progress
from workflows.delivery.state import DeliveryState
from workflows.delivery.steps import Steps
from workflows.delivery.visibility import Visibility

S, E, D = DeliveryStatus, RobotEventType, OperatorDecision
ATTEMPT_ENDING_FINDINGS = (FindingKind.LOST, FindingKind.STUCK)
# A trip watch whose worker died is started again after this (its heartbeats: `ALIVE_SECONDS`).
WATCH_HEARTBEAT_TIMEOUT = timedelta(minutes=5)
# A lid left open this long at the dropoff, or back at the store, asks an operator: where, and how to close it.
LID_QUESTIONS: dict[Phase, tuple[str, D]] = {
    Phase(S.AT_DROPOFF, lid_open=True): ("at the dropoff", D.RESOLVE_DELIVERED),
    Phase(S.RETURNING, lid_open=True, at_store=True): ("back at the store", D.RESOLVE_RETURNED),
}
# Which trip leg each delivery status means for Operations, how far it got, and the task's status if it moves.
TRIP_PROGRESS: dict[S, tuple[TripLeg, LegStatus, LegStatus | None]] = {
    S.EN_ROUTE_TO_PICKUP: (TripLeg.TO_PICKUP, LegStatus.IN_PROGRESS, LegStatus.IN_PROGRESS),
    S.AT_PICKUP: (TripLeg.TO_PICKUP, LegStatus.COMPLETED, None),
    S.EN_ROUTE_TO_DROPOFF: (TripLeg.TO_DROPOFF, LegStatus.IN_PROGRESS, None),
    S.AT_DROPOFF: (TripLeg.TO_DROPOFF, LegStatus.COMPLETED, None),
}
# On a return every status reads `returning`: the robot's events say how far the trip back got.
RETURN_PROGRESS: dict[E, tuple[TripLeg, LegStatus, LegStatus | None]] = {
    E.DEPARTED: (TripLeg.TO_STORE, LegStatus.IN_PROGRESS, LegStatus.IN_PROGRESS),
    E.ARRIVED_AT_STORE: (TripLeg.TO_STORE, LegStatus.COMPLETED, None),
}


class Following:
    def __init__(self, state: DeliveryState, steps: Steps, progress: Progress, callbacks: Callbacks,
                 operator: Operator, visibility: Visibility):
        self.state, self.steps, self.progress, self.callbacks = state, steps, progress, callbacks
        self.operator, self.visibility = operator, visibility
        self._watch: asyncio.Task | None = None  # the running trip watch
        self._watch_again = False  # it was cancelled only to start afresh (the robot was loaded)

    # ---- the robot's events, as the robot_event update takes them -------------------------------

    def check_event(self, event: RobotEvent) -> None:
        """Refuse an event that does not fit (the update's validator); a resend is always answered."""
        state = self.state
        if event.key in state.receipts:
            return
        if state.choice is None or state.task is None or event.robot_id != state.choice.robot_id:
            raise EventRejected(f"robot {event.robot_id} is not serving this delivery")
        if state.phase.status in TERMINAL_STATUSES:
            raise EventRejected(f"the delivery is already {state.phase.status.value}")
        if ending := self._attempt_ending():
            raise EventRejected(f"attempt {state.attempt.number} of robot {event.robot_id} is ending: {ending}")
        next_phase(state.phase, event.type, state.returning)

    def accept(self, event: RobotEvent) -> EventReceipt:
        """Move the phase at once and queue the event to be recorded in order; answer the robot."""
        state = self.state
        if event.key in state.receipts:
            return state.receipts[event.key]
        state.phase = next_phase(state.phase, event.type, state.returning)
        self._set_phase_deadline(event.type)
        if event.location is not None:
            state.last_location = event.location
        state.last_event = event.type
        state.fault_reported = state.fault_reported or event.type is E.FAULT
        state.inbox.append((event, state.phase))
        receipt = EventReceipt(delivery_id=state.order.delivery_id, status=state.phase.status,
                               attempt_id=state.attempt.attempt_id, lid_open=state.phase.lid_open,
                               at_store=state.phase.at_store)
        state.receipts[event.key] = receipt
        return receipt

    def _attempt_ending(self) -> str | None:
        """Why the robot's attempt is over or about to be, if it is: its events no longer apply."""
        state = self.state
        if state.attempt_over:
            return "it is over"
        if state.fault_reported:
            return "the robot reported a fault"
        if state.finding is not None:
            return f"trip monitoring found the robot {state.finding.kind.value}"
        if self.operator.unparked_decision():
            return f"an operator decided to {state.decision.kind.value}"
        return None

    def _set_phase_deadline(self, event: E) -> None:
        state, policy = self.state, self.state.order.policy
        if state.phase == Phase(S.AT_PICKUP) and event is E.ARRIVED_AT_PICKUP:
            state.phase_deadline = workflow.now() + timedelta(seconds=policy.pickup_wait_seconds)
        elif state.phase == Phase(S.AT_DROPOFF):
            state.phase_deadline = workflow.now() + timedelta(seconds=policy.customer_no_show_seconds)
        elif state.phase in LID_QUESTIONS:
            state.phase_deadline = workflow.now() + timedelta(seconds=policy.lid_open_seconds)
        elif state.phase.status is not S.AT_PICKUP:
            state.phase_deadline = None

    # ---- one attempt, followed to its end --------------------------------------------------------

    async def follow(self) -> AttemptEnd:
        """Apply the robot's events in order, and act on the trip watch's findings, until the attempt ends."""
        state = self.state
        state.finding = None
        state.connectivity = Connectivity.CONNECTED
        watching = asyncio.create_task(self._watch_trip())
        try:
            end = await self._next_end()
        except OperatorTookOver:
            await self._stop_watching(watching)
            raise
        await self._stop_watching(watching)
        return end

    async def _stop_watching(self, watching: asyncio.Task) -> None:
        """The attempt is over: refuse the robot's further events, and close its trip watch."""
        self.state.attempt_over = True
        watching.cancel()
        self._watch = None
        if self.state.order.live_mode:
            await self.steps.run(TripMonitorActivities.stop_watching, self.watch(), TaskQueue.TRIP_MONITOR)

    def watch(self) -> TripWatch:
        """What the trip watch is told: the robot, and what the delivery already knows (only news comes back)."""
        state = self.state
        delivering = not state.returning  # a return has no partner ETA to keep
        return TripWatch(
            attempt_id=state.attempt.attempt_id, delivery_id=state.order.delivery_id, robot_id=state.robot_id,
            policy=state.order.policy, connectivity=state.connectivity, loaded=state.loaded,
            pickup=state.order.pickup, dropoff=state.order.dropoff if delivering else None,
            pickup_eta=state.choice.pickup_eta, dropoff_eta=state.choice.dropoff_eta,
            promised_dropoff_eta=state.dropoff_eta,
        )

    def finding_text(self) -> str:
        finding = self.state.finding
        return f"{finding.kind.value}: {finding.detail}" if finding else "robot reported a fault"

    async def _watch_trip(self) -> None:
        """Watch the trip, acting on each finding, until the robot is lost or stuck (which ends the attempt).

        Each watch is told what the delivery knows (connectivity, promised ETA, loaded or not) and returns
        with news; then the next one starts with the news included. A sandbox robot sends no heartbeats: it is
        not watched.
        """
        if not self.state.order.live_mode:
            return
        while True:
            self._watch = workflow.start_activity_method(
                TripMonitorActivities.watch_trip, self.watch(), task_queue=TaskQueue.TRIP_MONITOR,
                start_to_close_timeout=timedelta(hours=6), heartbeat_timeout=WATCH_HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)), summary="watch the trip",
            )
            try:
                finding = await self._watch
            except (ActivityError, asyncio.CancelledError) as stopped:
                # Cancelled because the robot was loaded: watch the rest of the trip. A watch cancelled in the
                # activation that started it was never scheduled, and its handle raises CancelledError itself.
                if self._watch_again and not self.state.attempt_over:
                    self._watch_again = False
                    continue
                if isinstance(stopped, asyncio.CancelledError):
                    raise  # the attempt is over
                return  # the watch itself broke down: the delivery goes on, unwatched, as the robot reports
            if finding.kind in ATTEMPT_ENDING_FINDINGS:
                self.state.finding = finding
                return
            self._take_finding(finding)

    def _take_finding(self, finding: TripFinding) -> None:
        state = self.state
        workflow.logger.info("trip finding: %s", finding.kind.value,
                             extra=self.visibility.log_context(finding=finding.kind.value))
        if finding.kind is FindingKind.LATE:
            state.dropoff_eta = finding.dropoff_eta
            self.callbacks.queue(state.reached, workflow.now(), finding.detail, kind=CallbackKind.ETA_UPDATED)
        else:
            state.connectivity, state.connectivity_detail = Connectivity(finding.kind.value), finding.detail
        self.visibility.show_details()

    def _watch_loaded_trip(self) -> None:
        """The robot took the order on board: its ETA now counts from where it is to the dropoff."""
        if self._watch is not None and not self._watch.done():
            self._watch_again = True
            self._watch.cancel()

    async def _next_end(self) -> AttemptEnd:
        state, operator = self.state, self.operator
        while True:
            timeout = None
            if state.phase_deadline is not None:
                timeout = max(timedelta(0), state.phase_deadline - workflow.now())
            try:
                await workflow.wait_condition(
                    lambda: bool(state.inbox) or self._cancel_pending() or state.finding is not None
                    or operator.unparked_decision() or (state.lid_question and state.decision is not None)
                    or state.lid_withdrawn,
                    timeout=timeout,
                )
            except asyncio.TimeoutError:
                if state.phase in LID_QUESTIONS:
                    self._ask_about_the_lid()
                    continue
                return AttemptEnd.TIMEOUT
            if (state.lid_withdrawn or state.lid_question) and self._lid_answered():
                continue
            # Events the robot was told were accepted are applied before an operator's decision ends the attempt.
            if operator.unparked_decision() and not state.inbox:
                raise OperatorTookOver(operator.take())
            if state.inbox:
                event, phase = state.inbox.popleft()
                await self._apply(event, phase)
                if event.type is E.FAULT:
                    return AttemptEnd.FAULT
                if phase.status is S.DELIVERED:
                    return AttemptEnd.DELIVERED
                if phase.status is S.RETURNED:
                    return AttemptEnd.RETURNED
            elif state.finding is not None:
                return AttemptEnd.FAULT
            else:
                return AttemptEnd.CANCELLED

    def _cancel_pending(self) -> bool:
        # A return is already the answer to a cancellation: it cannot be cancelled again.
        return self.state.cancel is not None and not self.state.returning

    async def _apply(self, event: RobotEvent, phase: Phase) -> None:
        """Record the statuses an accepted event moved in Operations and Deliveries (State has the event
        itself: the robot API records it once this workflow accepted it). On a return the status stays
        `returning`, so Operations hears of each leg's event instead."""
        state = self.state
        progress = RETURN_PROGRESS.get(event.type) if state.returning else TRIP_PROGRESS.get(phase.status)
        if progress and (state.returning or phase.status != state.reached):
            leg, trip_status, task_status = progress
            update = TripUpdate(task_id=state.task.task_id, leg=leg, trip_status=trip_status,
                                task_status=task_status, occurred_at=event.occurred_at)
            await self.steps.run(OperationsActivities.record_trip_progress, update, TaskQueue.OPERATIONS)
        if phase.status != state.reached:
            await self.progress.reach(phase.status)
        if phase.status is S.PICKED_UP:
            self._watch_loaded_trip()

    # ---- a lid left open -------------------------------------------------------------------------

    def _ask_about_the_lid(self) -> None:
        """The lid stayed open at the dropoff (or back at the store): an operator looks, and closes the delivery
        as delivered (or returned) or waits again (`retry`); the robot closing the lid meanwhile ends the
        question."""
        state, policy = self.state, self.state.order.policy
        if state.attention is not None:  # something else is parked: ask once it is answered
            state.phase_deadline = workflow.now() + timedelta(seconds=policy.lid_open_seconds)
            return
        state.phase_deadline = None
        where, resolve = LID_QUESTIONS[state.phase]
        self.operator.ask(f"the lid has been open {where} for {policy.lid_open_seconds:.0f} s", (resolve, D.RETRY),
                          cause="lid_left_open")
        state.lid_question = True

    def _lid_answered(self) -> bool:
        """The open-lid question ended: whether to wait again. A `retry` waits `lid_open_seconds` more, as does a
        question that gave way to another park (one AttentionReason at a time); `resolve_delivered` (or on a
        return `resolve_returned`) ends the attempt; the robot closing the lid (or a cancel, a finding) goes its
        usual way."""
        state = self.state
        again = workflow.now() + timedelta(seconds=state.order.policy.lid_open_seconds)
        if state.lid_withdrawn:
            state.lid_withdrawn, state.phase_deadline = False, again
            return True
        state.lid_question = False
        self.operator.stop_asking()
        if state.decision is None or state.inbox:
            return False
        decision = self.operator.take()
        if decision.kind is not D.RETRY:
            raise OperatorTookOver(decision)
        state.phase_deadline = again
        return True
