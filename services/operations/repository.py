"""Queries of the Operations database: robots, tasks, trips, field tasks and their histories. Never commits."""

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.operations.models import (
    ACTIVE_TASK_STATUSES,
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
    """Free the robot from the task; a robot already freed (or on another task) is left alone."""
    if robot.active_task_id != task_id:
        return
    robot.active_task_id = None
    robot.status = RobotStatus.MAINTENANCE if out_of_service else RobotStatus.IDLE
    robot.in_service = not out_of_service


# ---- tasks -----------------------------------------------------------------------------------------


async def find_task(session: AsyncSession, attempt_id: uuid.UUID, kind: str) -> Task | None:
    """The task of an attempt, if it exists."""
    return await session.scalar(select(Task).where(Task.attempt_id == attempt_id, Task.kind == kind))


async def active_task_for_robot(session: AsyncSession, robot_id: str) -> Task | None:
    """The task the robot is working on now, if any (the partial unique index allows at most one)."""
    return await session.scalar(select(Task).where(Task.robot_id == robot_id, Task.status.in_(ACTIVE_TASK_STATUSES)))


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


async def lock_task(session: AsyncSession, task_id: uuid.UUID) -> tuple[Task, Robot] | None:
    """The task and its robot, both row-locked (robot first, the order every writer uses)."""
    robot_id = await session.scalar(select(Task.robot_id).where(Task.id == task_id))
    if robot_id is None:
        return None
    robot = await lock_robot(session, robot_id)
    statement = select(Task).where(Task.id == task_id).with_for_update(key_share=True)
    statement = statement.execution_options(populate_existing=True)
    return await session.scalar(statement), robot


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


async def open_field_task(session: AsyncSession, *, robot_id: str, kind: str, reason: str,
                          delivery_id: uuid.UUID | None, attempt_id: uuid.UUID | None) -> uuid.UUID:
    """Open a field task, or return the one already opened for the same robot, attempt and kind."""
    kind = FOTaskKind(kind)
    # No unique key covers (robot, attempt, kind), so a transaction-scoped advisory lock serializes openers.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"fo_task:{robot_id}:{attempt_id}:{kind}"))))
    existing = await session.scalar(select(FOTask.id).where(
        FOTask.robot_id == robot_id, FOTask.kind == kind, FOTask.attempt_id.is_not_distinct_from(attempt_id)
    ))
    if existing is not None:
        return existing
    now = utcnow()
    fo_task = FOTask(robot_id=robot_id, kind=kind, status=FOTaskStatus.OPEN, reason=reason[:200],
                     delivery_id=delivery_id, attempt_id=attempt_id, created_at=now, updated_at=now)
    session.add(fo_task)
    await session.flush()
    await append_history(session, FOTaskHistory, "fo_task_id", fo_task.id, status=fo_task.status, occurred_at=now,
                         detail={"reason": fo_task.reason})
    return fo_task.id
