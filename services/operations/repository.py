"""Queries of the Operations database: robots, tasks, trips, field tasks and their histories. Never commits."""

import uuid
from datetime import datetime

from sqlalchemy import Row, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.operations.models import (
    ACTIVE_TASK_STATUSES,
    OPEN_FO_TASK_STATUSES,
    FOTask,
    FOTaskHistory,
    FOTaskKind,
    FOTaskStatus,
    PilotAssignment,
    Robot,
    RobotStatus,
    Task,
    TaskHistory,
    TaskStatus,
    Trip,
    TripHistory,
    TripStatus,
    utcnow,
)
from services.operations.locking import StaleWrite, append_history, compare_and_set
# Pilots and shifts live in pilots.py; they are re-exported so every Operations query is found here.
from services.operations.pilots import (  # noqa: F401
    PilotSummary,
    ShiftError,
    create_pilot,
    end_shift,
    list_pilots,
    pause_shift,
    resume_shift,
    start_shift,
)


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.FAILED})
OPEN_TRIP_STATUSES = frozenset({TripStatus.PLANNED, TripStatus.IN_PROGRESS})
UNAVAILABLE_ROBOT_STATUSES = frozenset({RobotStatus.MAINTENANCE, RobotStatus.OFFLINE})


class RobotBusy(Exception):
    """The robot already has another active task."""


# ---- robots ----------------------------------------------------------------------------------------


async def register_robot(session: AsyncSession, robot_id: str, market: str, battery: float = 1.0) -> None:
    """Add a robot to Operations, or update the market and battery of one already there."""
    statement = insert(Robot).values(
        id=robot_id, market=market, battery=battery, status=RobotStatus.IDLE, in_service=True, updated_at=utcnow()
    )
    await session.execute(statement.on_conflict_do_update(
        index_elements=[Robot.id], set_={"market": market, "battery": battery, "updated_at": utcnow()}
    ))


async def lock_robot(session: AsyncSession, robot_id: str) -> Robot | None:
    """The robot, row-locked until the unit of work ends; robots are always locked before their tasks."""
    # Every row lock here is FOR NO KEY UPDATE: keys never change, and unlike FOR UPDATE it does not block
    # other transactions' foreign-key checks (which would deadlock two releases repointing one pilot).
    statement = select(Robot).where(Robot.id == robot_id).with_for_update(key_share=True)
    statement = statement.execution_options(populate_existing=True)
    return await session.scalar(statement)


async def add_sandbox_robot(session: AsyncSession, robot_id: str, market: str) -> Robot:
    """Register the sandbox robot of a test order: it exists in Operations only (Dispatch never plans it, Device
    never deploys it), so its task, trips and histories are recorded like any robot's."""
    robot = Robot(id=robot_id, market=market)
    session.add(robot)
    await session.flush()
    return robot


def robot_available(robot: Robot | None) -> bool:
    """Whether Operations may give the robot a new task."""
    return robot is not None and robot.in_service and robot.status not in UNAVAILABLE_ROBOT_STATUSES


def follow_trip(robot: Robot, task: Task, trip: Trip) -> None:
    """Robot status follows its current trip: en route while driving, reserved while waiting at a stop."""
    if robot.active_task_id != task.id:
        return
    if trip.status == TripStatus.IN_PROGRESS:
        robot.status = RobotStatus.EN_ROUTE
    elif trip.status == TripStatus.COMPLETED:
        robot.status = RobotStatus.RESERVED


def release_robot(robot: Robot, task_id: uuid.UUID, out_of_service: bool) -> None:
    """Free the robot from the task; a robot already freed (or on another task) is left alone.

    A robot out of service (its field task is still open) stays out: only closing the field task brings it back.
    """
    if robot.active_task_id != task_id:
        return
    robot.active_task_id = None
    robot.in_service = robot.in_service and not out_of_service
    robot.status = RobotStatus.IDLE if robot.in_service else RobotStatus.MAINTENANCE


# ---- tasks -----------------------------------------------------------------------------------------


async def find_task(session: AsyncSession, attempt_id: uuid.UUID, kind: str) -> Task | None:
    """The task of an attempt, if it exists."""
    return await session.scalar(select(Task).where(Task.attempt_id == attempt_id, Task.kind == kind))


# Built once: robots ask for their task on every event and every assignment reading.
_TASKS = Task.__table__.c
ACTIVE_TASK = select(_TASKS.id, _TASKS.delivery_id, _TASKS.attempt_id, _TASKS.robot_id, _TASKS.kind, _TASKS.status
                     ).where(_TASKS.robot_id == bindparam("robot_id"), _TASKS.status.in_(ACTIVE_TASK_STATUSES))


async def active_task_for_robot(db: AsyncSession | AsyncConnection, robot_id: str) -> Row | None:
    """The task the robot is working on now, if any (the partial unique index allows at most one): its id,
    delivery_id, attempt_id, robot_id, kind and status."""
    return (await db.execute(ACTIVE_TASK, {"robot_id": robot_id})).first()


async def create_task(session: AsyncSession, *, delivery_id: uuid.UUID, attempt_id: uuid.UUID, robot_id: str,
                      kind: str, occurred_at: datetime) -> Task:
    """A new task in status created, with its first history step; RobotBusy if the robot has another one."""
    task = Task(delivery_id=delivery_id, attempt_id=attempt_id, robot_id=robot_id, kind=kind,
                status=TaskStatus.CREATED, created_at=occurred_at, updated_at=occurred_at)
    session.add(task)
    try:
        await session.flush()
    except IntegrityError as err:
        if "uq_task_one_active_per_robot" in str(err.orig):
            raise RobotBusy(robot_id) from err
        raise
    await append_history(session, TaskHistory, "task_id", task.id, status=task.status, occurred_at=occurred_at)
    return task


# Built once: every report of a trip's progress and every closure locks its task's robot, then the task. The robot
# is found from the task in the statement that locks it.
LOCK_ROBOT_OF_TASK = (select(Robot).where(Robot.id == select(Task.robot_id).where(Task.id == bindparam("task_id"))
                                          .scalar_subquery())
                      .with_for_update(key_share=True).execution_options(populate_existing=True))
LOCK_TASK = (select(Task).where(Task.id == bindparam("task_id")).with_for_update(key_share=True)
             .execution_options(populate_existing=True))


async def lock_task(session: AsyncSession, task_id: uuid.UUID) -> tuple[Task, Robot] | None:
    """The task and its robot, both row-locked (robot first, the order every writer uses)."""
    robot = await session.scalar(LOCK_ROBOT_OF_TASK, {"task_id": task_id})
    if robot is None:  # every task has its robot (a foreign key): no robot, no task
        return None
    return await session.scalar(LOCK_TASK, {"task_id": task_id}), robot


async def move_task(session: AsyncSession, task: Task, status: str, occurred_at: datetime) -> bool:
    """Move a locked task to `status` with a history step; False when it is already there."""
    if task.status == status:
        return False
    version = await compare_and_set(session, Task, task.id, task.version, status=status, updated_at=utcnow())
    if version is None:
        raise StaleWrite(f"task {task.id} changed although it is row-locked")
    await append_history(session, TaskHistory, "task_id", task.id, status=status, occurred_at=occurred_at)
    return True


# ---- trips -----------------------------------------------------------------------------------------


async def lock_trip(session: AsyncSession, task_id: uuid.UUID, leg: str) -> Trip | None:
    """A task's trip on one leg, row-locked."""
    statement = select(Trip).where(Trip.task_id == task_id, Trip.leg == leg).with_for_update(key_share=True)
    return await session.scalar(statement.execution_options(populate_existing=True))


async def open_trip(session: AsyncSession, task: Task, leg: str, occurred_at: datetime) -> Trip:
    """The task's trip on `leg`, created as planned (with its history step) if it does not exist yet."""
    trip = await lock_trip(session, task.id, leg)
    if trip is not None:
        return trip
    trip = Trip(task_id=task.id, delivery_id=task.delivery_id, attempt_id=task.attempt_id, robot_id=task.robot_id,
                leg=leg, status=TripStatus.PLANNED, created_at=occurred_at)
    session.add(trip)
    await session.flush()
    await append_history(session, TripHistory, "trip_id", trip.id, status=trip.status, occurred_at=occurred_at)
    return trip


async def move_trip(session: AsyncSession, trip: Trip, status: str, occurred_at: datetime) -> bool:
    """Move a locked trip to `status` with a history step; a finished trip does not move again."""
    if trip.status == status or trip.status not in OPEN_TRIP_STATUSES:
        return False
    trip.status = status
    if status == TripStatus.IN_PROGRESS and trip.started_at is None:
        trip.started_at = occurred_at
    if status not in OPEN_TRIP_STATUSES:
        trip.ended_at = occurred_at
    await append_history(session, TripHistory, "trip_id", trip.id, status=status, occurred_at=occurred_at)
    return True


async def end_open_trips(session: AsyncSession, task_id: uuid.UUID, status: str, occurred_at: datetime) -> None:
    """Move every trip of the task still planned or in progress to `status`."""
    statement = (select(Trip).where(Trip.task_id == task_id, Trip.status.in_(OPEN_TRIP_STATUSES))
                 .order_by(Trip.created_at).with_for_update(key_share=True).execution_options(populate_existing=True))
    for trip in (await session.scalars(statement)).all():
        await move_trip(session, trip, status, occurred_at)


async def assignment_of(session: AsyncSession, task_id: uuid.UUID) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The first trip id and the pilot id of an assigned task."""
    trip_id = await session.scalar(select(Trip.id).where(Trip.task_id == task_id).order_by(Trip.created_at).limit(1))
    pilot_id = await session.scalar(
        select(PilotAssignment.pilot_id).where(PilotAssignment.task_id == task_id)
        .order_by(PilotAssignment.assigned_at.desc()).limit(1)
    )
    return trip_id, pilot_id


# ---- field operations ------------------------------------------------------------------------------


async def open_field_task(session: AsyncSession, *, robot: Robot, kind: str, reason: str,
                          delivery_id: uuid.UUID | None, attempt_id: uuid.UUID | None,
                          fo_task_id: uuid.UUID | None = None) -> uuid.UUID:
    """Open a field task on a locked robot and take the robot out of service; the robot's open task of that
    kind if it already has one (so a retry, or a second report of the same need, opens nothing)."""
    kind = FOTaskKind(kind)
    existing = await session.scalar(select(FOTask.id).where(
        FOTask.robot_id == robot.id, FOTask.kind == kind, FOTask.status.in_(OPEN_FO_TASK_STATUSES)))
    if existing is not None:
        return existing
    now = utcnow()
    fo_task = FOTask(id=fo_task_id or uuid.uuid4(), robot_id=robot.id, kind=kind, status=FOTaskStatus.OPEN,
                     reason=reason[:200], delivery_id=delivery_id, attempt_id=attempt_id, created_at=now,
                     updated_at=now)
    session.add(fo_task)
    await session.flush()  # the robot row lock serializes openers, so uq_fo_task_one_open_per_robot_kind holds
    await append_history(session, FOTaskHistory, "fo_task_id", fo_task.id, status=fo_task.status, occurred_at=now,
                         detail={"reason": fo_task.reason})
    robot.in_service = False
    if robot.active_task_id is None:  # a robot on a task leaves service when that task releases it
        robot.status = RobotStatus.MAINTENANCE
    return fo_task.id


async def lock_field_task(session: AsyncSession, fo_task_id: uuid.UUID) -> tuple[FOTask, Robot | None] | None:
    """The field task and its robot, both row-locked (robot first, as every writer locks them)."""
    robot_id = await session.scalar(select(FOTask.robot_id).where(FOTask.id == fo_task_id))
    if robot_id is None:
        return None
    robot = await lock_robot(session, robot_id)
    statement = select(FOTask).where(FOTask.id == fo_task_id).with_for_update(key_share=True)
    return await session.scalar(statement.execution_options(populate_existing=True)), robot


async def move_field_task(session: AsyncSession, fo_task: FOTask, status: str, detail: dict) -> bool:
    """Move a locked, open field task to `status` with a history step; False if it is closed already."""
    if fo_task.status not in OPEN_FO_TASK_STATUSES:
        return False
    now = utcnow()
    fo_task.status, fo_task.updated_at = status, now
    if status == FOTaskStatus.ASSIGNED:
        fo_task.assignee = detail["assignee"]
    await append_history(session, FOTaskHistory, "fo_task_id", fo_task.id, status=status, occurred_at=now,
                         detail=detail)
    return True


async def return_to_service(session: AsyncSession, robot: Robot) -> bool:
    """Put a locked robot back in service unless another field task of it is still open; whether it is in service."""
    still_open = await session.scalar(select(FOTask.id).where(
        FOTask.robot_id == robot.id, FOTask.status.in_(OPEN_FO_TASK_STATUSES)).limit(1))
    if still_open is None and not robot.in_service:
        robot.in_service = True
        if robot.active_task_id is None:
            robot.status = RobotStatus.IDLE
    return robot.in_service


async def list_field_tasks(session: AsyncSession, *, open_only: bool = False, robot_id: str | None = None,
                           kind: str | None = None) -> list[FOTask]:
    """Field tasks, newest first; only open or assigned ones with `open_only`."""
    statement = select(FOTask).order_by(FOTask.created_at.desc(), FOTask.id)
    if open_only:
        statement = statement.where(FOTask.status.in_(OPEN_FO_TASK_STATUSES))
    if robot_id is not None:
        statement = statement.where(FOTask.robot_id == robot_id)
    if kind is not None:
        statement = statement.where(FOTask.kind == kind)
    return list(await session.scalars(statement))
