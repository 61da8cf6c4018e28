"""Operations activities: tasks, trips, pilots and field work, written to the Operations database only."""

from uuid import UUID

from temporalio import activity

from activities import interfaces
from activities.base import ServiceActivities
from core.assignments import announce
from core.contracts import FieldTaskChange, FieldTaskRequest, TaskAssignment, TaskClosure, TaskRequest, TripUpdate
from core.errors import NO_PILOT_AVAILABLE, ROBOT_UNAVAILABLE, business_error
from services.operations import pilots
from services.operations import repository as repo
from services.operations.models import FOTaskStatus, RobotStatus, TaskKind, TaskStatus, TripLeg, TripStatus, utcnow

CLOSING_OUTCOMES = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.FAILED})


class OperationsActivities(ServiceActivities, interfaces.OperationsActivities):
    """Each activity is one unit of work, and a retry after its commit changes nothing and answers the same."""

    @activity.defn
    async def assign_task(self, request: TaskRequest) -> TaskAssignment:
        leg = TripLeg(request.first_leg)
        kind = TaskKind.RETURN if leg == TripLeg.TO_STORE else TaskKind.DELIVERY
        async with self.sessions.begin() as session:
            robot = await repo.lock_robot(session, request.robot_id)
            if robot is None and request.sandbox_market is not None:
                robot = await repo.add_sandbox_robot(session, request.robot_id, request.sandbox_market)
            task = await repo.find_task(session, request.attempt.attempt_id, kind)
            if task is not None:
                return await self._assignment(session, task.id, task.robot_id)
            if not repo.robot_available(robot) or await repo.active_task_for_robot(session, robot.id) is not None:
                raise business_error(ROBOT_UNAVAILABLE, f"robot {request.robot_id} cannot take a task")
            return await self._new_assignment(session, request, robot, kind, leg)

    @activity.defn
    async def record_trip_progress(self, update: TripUpdate) -> None:
        async with self.sessions.begin() as session:
            task, robot = await self._locked_task(session, update.task_id)
            if task.status in repo.TERMINAL_TASK_STATUSES:
                return  # a late report about a closed task changes nothing
            trip = await repo.open_trip(session, task, TripLeg(update.leg), update.occurred_at)
            await repo.move_trip(session, trip, TripStatus(update.trip_status), update.occurred_at)
            if update.task_status is not None:
                if await repo.move_task(session, task, TaskStatus(update.task_status), update.occurred_at):
                    await announce(session, task.robot_id)
            repo.follow_trip(robot, task, trip)

    @activity.defn
    async def close_task(self, closure: TaskClosure) -> None:
        outcome = TaskStatus(closure.outcome)
        if outcome not in CLOSING_OUTCOMES:
            raise ValueError(f"a task cannot close as {outcome}")
        trip_end = TripStatus.COMPLETED if outcome == TaskStatus.COMPLETED else TripStatus.ABORTED
        async with self.sessions.begin() as session:
            task, robot = await self._locked_task(session, closure.task_id)
            if task.status not in repo.TERMINAL_TASK_STATUSES:
                await repo.move_task(session, task, outcome, closure.occurred_at)
            await repo.end_open_trips(session, task.id, trip_end, closure.occurred_at)
            await pilots.release_pilot(session, task.id)
            repo.release_robot(robot, task.id, closure.robot_out_of_service)
            await announce(session, task.robot_id)  # the robot hears at once that its task is over

    @activity.defn
    async def open_field_task(self, request: FieldTaskRequest) -> UUID:
        async with self.sessions.begin() as session:
            robot = await repo.lock_robot(session, request.robot_id)
            if robot is None:
                raise business_error(ROBOT_UNAVAILABLE, f"robot {request.robot_id} is not registered in Operations")
            return await repo.open_field_task(session, robot=robot, kind=request.kind, reason=request.reason,
                                              delivery_id=request.delivery_id, attempt_id=request.attempt_id,
                                              fo_task_id=request.fo_task_id)

    @activity.defn
    async def assign_field_task(self, change: FieldTaskChange) -> None:
        async with self.sessions.begin() as session:
            fo_task, _ = await self._locked_field_task(session, change.fo_task_id)
            if fo_task.assignee != change.action.assignee:
                await repo.move_field_task(session, fo_task, FOTaskStatus.ASSIGNED, _detail(change))

    @activity.defn
    async def close_field_task(self, change: FieldTaskChange) -> bool:
        async with self.sessions.begin() as session:
            fo_task, robot = await self._locked_field_task(session, change.fo_task_id)
            await repo.move_field_task(session, fo_task, FOTaskStatus(change.status), _detail(change))
            return robot is not None and await repo.return_to_service(session, robot)

    async def _new_assignment(self, session, request: TaskRequest, robot, kind: TaskKind,
                              leg: TripLeg) -> TaskAssignment:
        now = utcnow()
        try:
            task = await repo.create_task(session, delivery_id=request.attempt.delivery_id,
                                          attempt_id=request.attempt.attempt_id, robot_id=robot.id, kind=kind,
                                          occurred_at=now)
        except repo.RobotBusy:
            raise business_error(ROBOT_UNAVAILABLE, f"robot {robot.id} already has an active task") from None
        trip = await repo.open_trip(session, task, leg, now)
        await repo.move_task(session, task, TaskStatus.ASSIGNED, now)
        pilot_id = None
        if request.sandbox_market is None:  # a sandbox robot is stepped by its partner: no pilot supervises it
            assignment = await pilots.claim_pilot(session, task, self.settings.pilot_max_robots)
            if assignment is None:  # raising inside begin() rolls the task and trip back too
                raise business_error(NO_PILOT_AVAILABLE, f"no pilot on shift can take robot {robot.id}")
            pilot_id = assignment.pilot_id
        robot.active_task_id, robot.status = task.id, RobotStatus.RESERVED
        await announce(session, robot.id)  # a robot waiting for work hears of it the moment this commits
        return TaskAssignment(task_id=task.id, trip_id=trip.id, robot_id=robot.id, pilot_id=pilot_id)

    @staticmethod
    async def _locked_task(session, task_id: UUID):
        locked = await repo.lock_task(session, task_id)
        if locked is None:
            raise LookupError(f"no task {task_id}")
        return locked

    @staticmethod
    async def _locked_field_task(session, fo_task_id: UUID):
        locked = await repo.lock_field_task(session, fo_task_id)
        if locked is None:
            raise LookupError(f"no field task {fo_task_id}")
        return locked

    @staticmethod
    async def _assignment(session, task_id: UUID, robot_id: str) -> TaskAssignment:
        trip_id, pilot_id = await repo.assignment_of(session, task_id)
        return TaskAssignment(task_id=task_id, trip_id=trip_id, robot_id=robot_id, pilot_id=pilot_id)


def _detail(change: FieldTaskChange) -> dict:
    """The history detail of a field task step: who did it, and who was sent or the note."""
    return change.action.model_dump(exclude_none=True)
