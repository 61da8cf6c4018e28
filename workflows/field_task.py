"""The lifecycle of one field-operations task: open → assigned → done (or cancelled).

While the task is open its robot is out of the plan: out of service in Operations and in maintenance for
Dispatch. Closing it brings the robot back, unless another field task of the robot is still open.
"""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import DispatchActivities, OperationsActivities
    from core.contracts import FieldTaskAction, FieldTaskChange, FieldTaskRequest, RobotService
    from core.services import TaskQueue

STEP_TIMEOUT = timedelta(seconds=30)
# Infrastructure failures retry until they succeed: a field task has no deadline, and nothing waits on it.
PATIENT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
INVALID_STEP = "invalid_field_task_step"


def workflow_id(fo_task_id: Any) -> str:
    """The workflow ID of a field task: one workflow per task, ever."""
    return f"field-task:{fo_task_id}"


@workflow.defn
class FieldTaskWorkflow:
    """Opens the task and takes its robot out of the plan, records `assign`, then on `done` or `cancel` closes it
    and brings the robot back."""

    def __init__(self) -> None:
        self._request: FieldTaskRequest | None = None
        self._fo_task_id = None
        self._status = "opening"
        self._assignee: str | None = None
        self._closing: FieldTaskChange | None = None
        self._back_in_service: bool | None = None
        self._steps = asyncio.Lock()  # one person's step is recorded before the next is checked

    @workflow.run
    async def run(self, request: FieldTaskRequest) -> dict[str, Any]:
        self._request = request
        self._fo_task_id = await self._run(OperationsActivities.open_field_task, request, TaskQueue.OPERATIONS)
        if self._fo_task_id != request.fo_task_id:  # the robot already has an open task of this kind
            self._status = "duplicate"
            return self.status()
        self._status = "open"
        self._set_details()
        # Dispatch frees a robot when its delivery ends, so the robot leaves the plan only once it is free: the
        # activity fails while the robot still serves a demand, and its retries wait for that.
        withdrawal = workflow.start_activity_method(
            DispatchActivities.set_robot_service, RobotService(robot_id=request.robot_id, in_service=False),
            task_queue=TaskQueue.DISPATCH.value, start_to_close_timeout=STEP_TIMEOUT, retry_policy=PATIENT,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"take robot {request.robot_id} out of the plan",
        )
        await workflow.wait_condition(lambda: self._closing is not None)
        withdrawal.cancel()
        try:
            await withdrawal
        except ActivityError:
            pass  # closed before the robot was free: it never left the plan in Dispatch
        back = await self._run(OperationsActivities.close_field_task, self._closing, TaskQueue.OPERATIONS)
        if back:
            await self._run(DispatchActivities.set_robot_service,
                            RobotService(robot_id=request.robot_id, in_service=True), TaskQueue.DISPATCH)
        self._status, self._back_in_service = self._closing.status, back
        self._set_details()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _run(self, activity, arg, queue: TaskQueue):
        return await workflow.execute_activity_method(
            activity, arg, task_queue=queue.value, start_to_close_timeout=STEP_TIMEOUT, retry_policy=PATIENT,
            summary=activity.__name__.replace("_", " "),
        )

    # ---- what people do ----------------------------------------------------------------------------

    @workflow.update
    async def opened(self) -> dict[str, Any]:
        """Wait until the task is open (or found to duplicate the robot's open task of that kind)."""
        await workflow.wait_condition(lambda: self._status != "opening")
        return self.status()

    @workflow.update
    async def assign(self, action: FieldTaskAction) -> dict[str, Any]:
        """Send someone to the robot (again, if someone else was sent before)."""
        async with self._steps:
            self._check("assigned", ("open", "assigned"))
            change = FieldTaskChange(fo_task_id=self._fo_task_id, status="assigned", action=action)
            await self._run(OperationsActivities.assign_field_task, change, TaskQueue.OPERATIONS)
            self._status, self._assignee = "assigned", action.assignee
            self._set_details()
        return self.status()

    @assign.validator
    def _validate_assign(self, action: FieldTaskAction) -> None:
        if not action.assignee:
            raise ApplicationError("say who goes to the robot (assignee)", type=INVALID_STEP)
        self._check("assigned", ("open", "assigned"))

    @workflow.update
    async def done(self, action: FieldTaskAction) -> dict[str, Any]:
        """The work is done: close the task and bring the robot back into the plan."""
        return await self._close("done", "marked done", ("assigned",), action)

    @done.validator
    def _validate_done(self, action: FieldTaskAction) -> None:
        self._check("marked done", ("assigned",))

    @workflow.update
    async def cancel(self, action: FieldTaskAction) -> dict[str, Any]:
        """The work is not needed after all: close the task and bring the robot back into the plan."""
        return await self._close("cancelled", "cancelled", ("open", "assigned"), action)

    @cancel.validator
    def _validate_cancel(self, action: FieldTaskAction) -> None:
        self._check("cancelled", ("open", "assigned"))

    async def _close(self, status: str, verb: str, allowed: tuple[str, ...], action: FieldTaskAction) -> dict[str, Any]:
        async with self._steps:
            self._check(verb, allowed)
            self._closing = FieldTaskChange(fo_task_id=self._fo_task_id, status=status, action=action)
        await workflow.wait_condition(lambda: self._back_in_service is not None)
        return self.status()

    def _check(self, verb: str, allowed: tuple[str, ...]) -> None:
        if self._closing is not None or self._status not in allowed:
            now = "closing" if self._closing is not None and self._back_in_service is None else self._status
            hint = " before someone is assigned" if now == "open" else ""
            raise ApplicationError(f"the field task is {now}: it cannot be {verb}{hint}", type=INVALID_STEP)

    # ---- what operators see ------------------------------------------------------------------------

    @workflow.query
    def status(self) -> dict[str, Any]:
        """The task's current state."""
        request = self._request
        return {
            "fo_task_id": str(self._fo_task_id) if self._fo_task_id else None,
            "robot_id": request.robot_id if request else None,
            "kind": request.kind if request else None,
            "status": self._status,
            "assignee": self._assignee,
            "robot_back_in_service": self._back_in_service,
        }

    def _set_details(self) -> None:
        lines = [f"**{self._status}**", f"{self._request.kind} for robot `{self._request.robot_id}`"]
        if self._assignee:
            lines.append(f"assigned to {self._assignee}")
        workflow.set_current_details(" · ".join(lines))


async def start_field_task(client: Client, request: FieldTaskRequest) -> WorkflowHandle:
    """Start the workflow of the field task `request.fo_task_id` names; a running one is kept."""
    return await client.start_workflow(
        FieldTaskWorkflow.run, request, id=workflow_id(request.fo_task_id),
        task_queue=TaskQueue.DELIVERY_WORKFLOWS.value, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
