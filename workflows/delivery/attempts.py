"""Attempts: find a robot and a pilot, follow the robot, and end, return or replace the attempt."""

import asyncio
from datetime import timedelta
from uuid import UUID

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DeliveriesActivities, DeviceActivities, DispatchActivities, OperationsActivities
    from core.contracts import (
        AttemptEnd, AttemptKind, AttemptOutcome, AttemptResult, DeliveryStatus, DemandRequest, DemandSearch,
        FieldTaskRequest,
        NewAttempt, OperatorDecision, RobotChoice, RobotEventType, RobotRelease, TaskAssignment, TaskClosure,
        TaskOutcome, TaskRequest, TripLeg,
    )
    from core.errors import NO_PILOT_AVAILABLE, NO_ROBOT_AVAILABLE, ROBOT_NOT_DEPLOYED, ROBOT_UNAVAILABLE
    from core.services import TaskQueue
    from workflows.field_task import FieldTaskWorkflow, workflow_id as field_task_workflow_id
    from workflows.transitions import Phase
from workflows.delivery.following import Following
from workflows.delivery.operator import Operator, OperatorTookOver, told_partner
from workflows.delivery.progress import Progress
from workflows.delivery.state import Decision, DeliveryState
from workflows.delivery.steps import Steps, error_type
from workflows.delivery.visibility import Visibility

S, D = DeliveryStatus, OperatorDecision
# What an operator's resolve closes the delivery as.
RESOLVED_BY_HAND = {D.RESOLVE_DELIVERED: S.DELIVERED, D.RESOLVE_RETURNED: S.RETURNED}
# How closing a task closes its attempt.
ATTEMPT_RESULT = {TaskOutcome.COMPLETED: AttemptResult.SUCCEEDED, TaskOutcome.CANCELLED: AttemptResult.CANCELLED,
                  TaskOutcome.FAILED: AttemptResult.FAILED}


def sandbox_robot_id(delivery_id: UUID) -> str:
    """The sandbox robot that plays a test order: one of its own, known to Operations only."""
    return f"sandbox-{delivery_id.hex}"


def _demand_search(err: ActivityError) -> DemandSearch | None:
    """What `NoRobotAvailable` says of the demand's search, if it says anything."""
    details = getattr(err.cause, "details", None)
    if error_type(err) != NO_ROBOT_AVAILABLE or not details or not isinstance(details[0], dict):
        return None
    return DemandSearch.model_validate(details[0])


class Attempts:
    def __init__(self, state: DeliveryState, steps: Steps, progress: Progress, following: Following,
                 operator: Operator, visibility: Visibility):
        self.state, self.steps, self.progress, self.following = state, steps, progress, following
        self.operator, self.visibility = operator, visibility

    async def run_next(self, decision: Decision | None) -> None:
        """The next stretch of the lifecycle: carry out an operator's decision, or run the current attempt."""
        if decision is not None:
            await self._carry_out(decision)
        elif self.state.returning:
            await self._return()
        else:
            await self._deliver()

    async def _deliver(self) -> None:
        state = self.state
        while True:
            state.choice = await (self._find_robot() if state.order.live_mode else self._sandbox_robot())
            if state.choice is None:
                return await self._cancel(state.reason or "no_robot_available")
            try:
                state.task = await self._assign_task(state.choice.robot_id, TripLeg.TO_PICKUP)
                break
            except ActivityError:  # Operations holds the robot busy or out of service: plan another one
                await self._release_robot(fulfilled=False)
                state.excluded_robots.append(state.choice.robot_id)
        if state.task is None:
            return await self._cancel(state.reason or "no_pilot_available")
        state.dropoff_eta = state.dropoff_eta or state.choice.dropoff_eta
        state.phase = Phase(S.ROBOT_ASSIGNED)
        await self.progress.reach(S.ROBOT_ASSIGNED)
        end = await self.following.follow()
        if end is AttemptEnd.DELIVERED:
            await self._close(TaskOutcome.COMPLETED, reason="delivered")
            await self._release_robot()
            return await self.progress.finish(S.DELIVERED, None, already_reached=True)
        if end is AttemptEnd.FAULT:
            return await self._replace_robot()
        if state.loaded:  # cancelled after loading, or the customer did not come: the order goes back
            return await self._bring_back(
                "customer_no_show" if end is AttemptEnd.TIMEOUT else f"cancelled:{state.cancel.reason}")
        await self._cancel("pickup_timeout" if end is AttemptEnd.TIMEOUT else state.cancel.reason)

    async def _bring_back(self, reason: str) -> None:
        """End the attempt with the order aboard: the same robot takes it back to the store, as a new attempt."""
        await self._close(TaskOutcome.FAILED, reason=reason)
        await self._start(AttemptKind.RETURN, reason)

    async def _cancel(self, reason: str) -> None:
        """Close the attempt and the delivery as cancelled, releasing the robot and its demand unfulfilled."""
        await self._close(TaskOutcome.CANCELLED, reason=reason)
        await self._release_robot(fulfilled=False)
        await self.progress.finish(S.CANCELLED, reason)

    async def _return(self) -> None:
        state = self.state
        robot_id = state.choice.robot_id
        if state.order.live_mode:  # a sandbox robot stays the test order's own, unplanned
            state.choice = await self.steps.run(DispatchActivities.plan_demand, self._demand(preferred=robot_id),
                                                TaskQueue.DISPATCH)
        state.task = await self._assign_task(robot_id, TripLeg.TO_STORE)
        state.phase = Phase(S.RETURNING)
        await self.progress.reach(S.RETURNING, state.reason)
        if await self.following.follow() is AttemptEnd.FAULT:
            await self._open_field_task("rescue", self.following.finding_text())
            await self._close(TaskOutcome.FAILED, reason="robot_fault", out_of_service=True)
            await self._release_robot(out_of_service=True)
            return await self.progress.finish(S.RETURNED, "recovered_by_field_operations")
        await self._close(TaskOutcome.COMPLETED, reason="returned")
        await self._release_robot()
        await self.progress.finish(S.RETURNED, state.reason, already_reached=True)

    async def _carry_out(self, decision: Decision) -> None:
        """An operator took the delivery over: cancel it, close it as delivered (or returned) by hand, or dispatch
        again. The attempt and the delivery end with the decision's reason code, which the partner sees; the
        operator's note stays on the operator's record."""
        code = told_partner(decision)
        if decision.kind in RESOLVED_BY_HAND:
            await self._close(TaskOutcome.COMPLETED, reason=code)
            await self._release_robot()
            return await self.progress.finish(RESOLVED_BY_HAND[decision.kind], code)
        if decision.kind is D.CANCEL and self.state.loaded:  # the order is aboard: the robot brings it back
            return await self._bring_back(f"cancelled:{code}")
        if decision.kind is D.CANCEL:
            await self._close(TaskOutcome.CANCELLED, reason=code)
            await self._release_robot(fulfilled=False)
            return await self.progress.finish(S.CANCELLED, code)
        await self._close(TaskOutcome.FAILED, reason=code)
        await self._release_robot()
        self.state.preferred_robot = decision.action.robot_id
        await self._start(AttemptKind.DELIVERY, "redispatched")

    async def _replace_robot(self) -> None:
        """The robot broke down or stopped progressing: take it out of service and try another one."""
        state = self.state
        detail = self.following.finding_text()
        reported = state.last_event is RobotEventType.FAULT
        await self._open_field_task("inspection" if reported else "rescue", detail)
        await self._close(TaskOutcome.FAILED, reason=f"robot_fault: {detail}", out_of_service=True)
        await self._release_robot(out_of_service=True)
        state.excluded_robots.append(state.choice.robot_id)
        await self._start(AttemptKind.DELIVERY, "robot_replaced")

    # ---- finding a robot and a pilot -------------------------------------------------------------

    async def _find_robot(self) -> RobotChoice | None:
        """The committed robot. The search deadline (`robot_search_seconds`) runs from when the order is ready,
        if Dispatch says so, and only while no robot is planned for the demand (a busy robot, or a free one held
        until the order is nearly ready, is coming). Between asks it waits for Dispatch's `robot_committed`
        signal (a round committed a robot to it), or `robot_retry_seconds` at most."""
        state, policy = self.state, self.state.order.policy
        deadline = workflow.now() + timedelta(seconds=policy.robot_search_seconds)
        while state.cancel is None:
            planned, state.robot_committed = False, False  # a commit signalled while it asks wakes it again
            try:
                choice = await self.steps.run(DispatchActivities.plan_demand, self._demand(), TaskQueue.DISPATCH,
                                              expect=(NO_ROBOT_AVAILABLE,))
                await self.steps.run(DeviceActivities.verify_deployment, choice.robot_id, TaskQueue.DEVICE,
                                     expect=(ROBOT_NOT_DEPLOYED,))
                self.visibility.stop_waiting()
                return choice
            except ActivityError as err:
                if error_type(err) == ROBOT_NOT_DEPLOYED:
                    state.choice = choice
                    await self._release_robot(out_of_service=True, fulfilled=False)
                    state.excluded_robots.append(choice.robot_id)
                    continue
                search = _demand_search(err)
                if search is not None:
                    planned = search.planned
                    if search.ready_at is not None:
                        deadline = max(deadline, search.ready_at + timedelta(seconds=policy.robot_search_seconds))
            wait = min(policy.robot_retry_seconds, (deadline - workflow.now()).total_seconds())
            if planned:
                wait = policy.robot_retry_seconds
            if wait <= 0 and policy.no_robot_action == "park":
                decision = await self.operator.park("no robot available", allowed=(D.RETRY, D.REDISPATCH, D.CANCEL),
                                                    cause="no_robot")
                if decision.kind is D.CANCEL:
                    raise OperatorTookOver(decision)
                state.preferred_robot = decision.action.robot_id
                deadline = workflow.now() + timedelta(seconds=policy.robot_search_seconds)
                continue
            if wait <= 0:
                state.reason = "no_robot_available"
                return None
            self.visibility.wait_for("robot", deadline)
            await _sleep_unless(lambda: state.cancel is not None or state.robot_committed, wait)
        state.reason = state.cancel.reason
        return None

    async def _sandbox_robot(self) -> RobotChoice | None:
        """A test order's robot: its sandbox robot, once the partner steps the delivery (`assign_sandbox_robot`),
        never one Dispatch plans. No step within `robot_search_seconds` cancels it, as no robot would."""
        state = self.state
        try:
            await workflow.wait_condition(lambda: state.sandbox_robot_asked or state.cancel is not None,
                                          timeout=timedelta(seconds=state.order.policy.robot_search_seconds))
        except asyncio.TimeoutError:
            state.reason = "no_robot_available"
            return None
        if state.cancel is not None:
            state.reason = state.cancel.reason
            return None
        now = workflow.now()  # a sandbox robot moves only when stepped: no trip to estimate
        return RobotChoice(demand_id=None, plan_id=None, robot_id=sandbox_robot_id(state.order.delivery_id),
                           pickup_eta=now, dropoff_eta=now)

    async def _assign_task(self, robot_id: str, first_leg: TripLeg) -> TaskAssignment | None:
        """A pilot for the robot's task. Going out, no pilot in time cancels; bringing an order back, it parks."""
        state, policy = self.state, self.state.order.policy
        returning = first_leg is TripLeg.TO_STORE
        request = TaskRequest(attempt=state.attempt, robot_id=robot_id, first_leg=first_leg,
                              sandbox_market=None if state.order.live_mode else state.order.market)
        deadline = workflow.now() + timedelta(seconds=policy.pilot_wait_seconds)
        while True:
            try:
                assignment = await self.steps.run(OperationsActivities.assign_task, request, TaskQueue.OPERATIONS,
                                                  expect=(NO_PILOT_AVAILABLE, ROBOT_UNAVAILABLE))
                self.visibility.stop_waiting()
                return assignment
            except ActivityError as err:
                if error_type(err) == ROBOT_UNAVAILABLE and not returning:
                    raise
            if returning and workflow.now() >= deadline:
                await self.operator.park("no pilot is free to supervise the robot bringing the order back",
                                         (D.RETRY,), cause="no_pilot")
                deadline = workflow.now() + timedelta(seconds=policy.pilot_wait_seconds)
                continue
            if not returning and (workflow.now() >= deadline or state.cancel):
                state.reason = state.cancel.reason if state.cancel else "no_pilot_available"
                return None
            self.visibility.wait_for("pilot", deadline)
            await _sleep_unless(lambda: state.cancel is not None, policy.pilot_retry_seconds)

    def _demand(self, preferred: str | None = None) -> DemandRequest:
        state = self.state
        preferred = preferred or state.preferred_robot
        if preferred in state.excluded_robots:  # an operator's choice that has since broken down
            preferred = None
        return DemandRequest(attempt=state.attempt, market=state.order.market, pickup=state.order.pickup,
                             dropoff=state.order.dropoff, exclude_robot_ids=state.excluded_robots,
                             preferred_robot_id=preferred, ready_at=state.order.ready_at)

    # ---- ending an attempt -----------------------------------------------------------------------

    async def _start(self, kind: AttemptKind, reason: str) -> None:
        """The next attempt: a delivery with another robot, or a return to the store with the same one."""
        state = self.state
        previous = state.attempt
        request = NewAttempt(delivery_id=state.order.delivery_id, number=previous.number + 1, kind=kind,
                             previous_attempt_id=previous.attempt_id, previous_outcome=reason)
        state.attempt = await self.steps.run(DeliveriesActivities.start_attempt, request, TaskQueue.DELIVERIES)
        # Events left unapplied (an operator ended the attempt while it was parked applying them) are not this
        # attempt's, nor is the last robot's finding: the next robot's events are its own from the start.
        state.inbox.clear()
        state.attempt_over = state.fault_reported = False
        state.finding = None
        state.attempt_sequence = 0
        state.reason = reason
        state.phase_deadline = None
        state.task = None  # the old task is closed: its robot's events no longer apply
        if kind is AttemptKind.DELIVERY:
            state.phase, state.choice = Phase(S.CREATED), None
        else:
            state.cancel = None  # the return answers the cancellation

    async def _close(self, outcome: TaskOutcome, *, reason: str, out_of_service: bool = False) -> None:
        """Close the robot's task in Operations (if it has one) and the attempt in Deliveries."""
        state = self.state
        now = workflow.now()
        if state.task is not None:
            closure = TaskClosure(task_id=state.task.task_id, robot_id=state.task.robot_id, outcome=outcome,
                                  occurred_at=now, robot_out_of_service=out_of_service)
            await self.steps.run(OperationsActivities.close_task, closure, TaskQueue.OPERATIONS)
        state.attempt_sequence += 1
        ended = AttemptOutcome(attempt_id=state.attempt.attempt_id, status=ATTEMPT_RESULT[outcome], reason=reason,
                               sequence=state.attempt_sequence, occurred_at=now)
        await self.steps.run(DeliveriesActivities.end_attempt, ended, TaskQueue.DELIVERIES)

    async def _release_robot(self, out_of_service: bool = False, fulfilled: bool = True) -> None:
        state = self.state
        if not state.order.live_mode:  # Dispatch never planned the sandbox robot: nothing to release
            return
        release = RobotRelease(attempt_id=state.attempt.attempt_id, demand_fulfilled=fulfilled,
                               robot_id=state.robot_id, location=state.last_location, out_of_service=out_of_service)
        await self.steps.run(DispatchActivities.release_robot, release, TaskQueue.DISPATCH)

    async def _open_field_task(self, kind: str, reason: str) -> None:
        """Hand the robot to field operations: its field task runs as its own workflow, beyond this delivery."""
        state = self.state
        request = FieldTaskRequest(robot_id=state.robot_id, kind=kind, reason=reason, fo_task_id=workflow.uuid4(),
                                   delivery_id=state.order.delivery_id, attempt_id=state.attempt.attempt_id)
        await workflow.start_child_workflow(
            FieldTaskWorkflow.run, request, id=field_task_workflow_id(request.fo_task_id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )


async def _sleep_unless(interrupt, seconds: float) -> None:
    try:
        await workflow.wait_condition(interrupt, timeout=timedelta(seconds=seconds))
    except TimeoutError:
        pass
