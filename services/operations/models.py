"""Tables of the Operations database: robots, tasks, trips, pilots and field operations."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    TextClause,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from core.columns import TIMESTAMPTZ, utcnow
from core.contracts import AttemptKind, TripLeg


class OperationsModel(SQLModel, registry=registry()):
    """Base of every Operations table; it has its own MetaData."""


metadata = OperationsModel.metadata


class RobotStatus(StrEnum):
    """What a robot is doing; the same words as the dispatch planning view."""

    IDLE = "idle"
    RESERVED = "reserved"
    EN_ROUTE = "en_route"
    LOADED = "loaded"
    CHARGING = "charging"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"


# A task asks the robot to do what its attempt does with the order: deliver it, or take it back.
TaskKind = AttemptKind


class TaskStatus(StrEnum):
    """Where a task is in its lifecycle."""

    CREATED = "created"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


ACTIVE_TASK_STATUSES = (TaskStatus.CREATED, TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS)


class TripStatus(StrEnum):
    """Where a trip is in its lifecycle."""

    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ABORTED = "aborted"


class PilotShiftStatus(StrEnum):
    """Whether a pilot's shift is running, paused or over."""

    ACTIVE = "active"
    ON_BREAK = "on_break"
    ENDED = "ended"


class PilotAssignmentStatus(StrEnum):
    """Whether a pilot still supervises a task."""

    ACTIVE = "active"
    RELEASED = "released"


class FOTaskKind(StrEnum):
    """The field work a robot needs from a person."""

    BATTERY_SWAP = "battery_swap"
    RESCUE = "rescue"
    INSPECTION = "inspection"


class FOTaskStatus(StrEnum):
    """Where a field-operations task is in its lifecycle."""

    OPEN = "open"
    ASSIGNED = "assigned"
    DONE = "done"
    CANCELLED = "cancelled"


OPEN_FO_TASK_STATUSES = (FOTaskStatus.OPEN, FOTaskStatus.ASSIGNED)


def _active(statuses: tuple[StrEnum, ...]) -> TextClause:
    """The WHERE clause of a partial index over the given statuses."""
    return text("status IN (" + ", ".join(f"'{s.value}'" for s in statuses) + ")")


def _late_key(table: str, column: str, target: str) -> ForeignKey:
    """A key added after both tables exist, because the two tables reference each other."""
    return ForeignKey(f"{target}.id", use_alter=True, name=f"fk_{table}_{column}_{target}")


def _history_key(table: str, entity: str) -> UniqueConstraint:
    """The constraint that makes appending the same history step twice impossible."""
    return UniqueConstraint(entity, "sequence", name=f"uq_{table}_{entity}_sequence")


class Robot(OperationsModel, table=True):
    """A robot in service; `active_task_id` is the task it is working on."""

    __tablename__ = "robot"
    __table_args__ = (
        CheckConstraint("battery >= 0 AND battery <= 1", name="ck_robot_battery_fraction"),
    )

    id: str = Field(primary_key=True, max_length=64)
    market: str = Field(max_length=64, index=True)
    status: str = Field(default=RobotStatus.IDLE, max_length=16, index=True)
    battery: float = 1.0
    in_service: bool = True
    active_task_id: uuid.UUID | None = Field(
        default=None, sa_column_args=[_late_key("robot", "active_task_id", "task")]
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )


class Task(OperationsModel, table=True):
    """The work one robot does for one attempt; `version` guards concurrent updates."""

    __tablename__ = "task"
    __table_args__ = (
        UniqueConstraint("attempt_id", "kind", name="uq_task_attempt_kind"),
        # A robot never has two active tasks, whatever races the workflows run.
        Index(
            "uq_task_one_active_per_robot",
            "robot_id",
            unique=True,
            postgresql_where=_active(ACTIVE_TASK_STATUSES),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    delivery_id: uuid.UUID = Field(index=True)
    attempt_id: uuid.UUID
    robot_id: str = Field(foreign_key="robot.id", max_length=64)
    kind: str = Field(default=TaskKind.DELIVERY, max_length=16)
    status: str = Field(default=TaskStatus.CREATED, max_length=16, index=True)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )


class TaskHistory(OperationsModel, table=True):
    """Append-only record of every status a task passed through."""

    __tablename__ = "task_history"
    __table_args__ = (_history_key("task_history", "task_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    task_id: uuid.UUID = Field(foreign_key="task.id")
    sequence: int
    status: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSONB)


class Trip(OperationsModel, table=True):
    """One leg a robot drives for a task."""

    __tablename__ = "trip"
    __table_args__ = (UniqueConstraint("task_id", "leg", name="uq_trip_task_leg"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    task_id: uuid.UUID = Field(foreign_key="task.id")
    delivery_id: uuid.UUID = Field(index=True)
    attempt_id: uuid.UUID = Field(index=True)
    robot_id: str = Field(max_length=64, index=True)
    leg: str = Field(max_length=16)
    status: str = Field(default=TripStatus.PLANNED, max_length=16, index=True)
    started_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    ended_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class TripHistory(OperationsModel, table=True):
    """Append-only record of every status a trip passed through."""

    __tablename__ = "trip_history"
    __table_args__ = (_history_key("trip_history", "trip_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    trip_id: uuid.UUID = Field(foreign_key="trip.id")
    sequence: int
    status: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSONB)


class Pilot(OperationsModel, table=True):
    """A remote pilot; `version` guards the denormalized shift and assignment pointers."""

    __tablename__ = "pilot"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    version: int = 1
    active_shift_id: uuid.UUID | None = Field(
        default=None, sa_column_args=[_late_key("pilot", "active_shift_id", "pilot_shift")]
    )
    active_assignment_id: uuid.UUID | None = Field(
        default=None,
        sa_column_args=[_late_key("pilot", "active_assignment_id", "pilot_assignment")],
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class PilotShift(OperationsModel, table=True):
    """One working period of a pilot."""

    __tablename__ = "pilot_shift"
    __table_args__ = (
        # A pilot works at most one shift at a time.
        Index(
            "uq_pilot_shift_one_open_per_pilot",
            "pilot_id",
            unique=True,
            postgresql_where=_active((PilotShiftStatus.ACTIVE, PilotShiftStatus.ON_BREAK)),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    pilot_id: uuid.UUID = Field(foreign_key="pilot.id")
    status: str = Field(default=PilotShiftStatus.ACTIVE, max_length=16)
    version: int = 1
    started_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    ended_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)


class PilotShiftStateHistory(OperationsModel, table=True):
    """Append-only record of every state a pilot shift passed through."""

    __tablename__ = "pilot_shift_state_history"
    __table_args__ = (_history_key("pilot_shift_state_history", "shift_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    shift_id: uuid.UUID = Field(foreign_key="pilot_shift.id")
    sequence: int
    state: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSONB)


class PilotAssignment(OperationsModel, table=True):
    """A pilot supervising a task; the versions are those the assignment was made against."""

    __tablename__ = "pilot_assignment"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    pilot_id: uuid.UUID = Field(foreign_key="pilot.id", index=True)
    task_id: uuid.UUID = Field(foreign_key="task.id", index=True)
    robot_id: str = Field(max_length=64)
    pilot_version: int
    task_version: int
    status: str = Field(default=PilotAssignmentStatus.ACTIVE, max_length=16)
    assigned_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    released_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)


class FOTask(OperationsModel, table=True):
    """Field work for a person: swap a battery, rescue or inspect a robot."""

    __tablename__ = "fo_task"
    __table_args__ = (
        Index("ix_fo_task_robot_id_status", "robot_id", "status"),
        # A robot has at most one open task of each kind: a second report of the same need finds the first.
        Index(
            "uq_fo_task_one_open_per_robot_kind",
            "robot_id",
            "kind",
            unique=True,
            postgresql_where=_active(OPEN_FO_TASK_STATUSES),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    robot_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    status: str = Field(default=FOTaskStatus.OPEN, max_length=16)
    reason: str = Field(max_length=200)
    assignee: str | None = Field(default=None, max_length=200)
    delivery_id: uuid.UUID | None = None
    attempt_id: uuid.UUID | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )


class FOTaskHistory(OperationsModel, table=True):
    """Append-only record of every status a field-operations task passed through."""

    __tablename__ = "fo_task_history"
    __table_args__ = (_history_key("fo_task_history", "fo_task_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    fo_task_id: uuid.UUID = Field(foreign_key="fo_task.id")
    sequence: int
    status: str = Field(max_length=16)
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
