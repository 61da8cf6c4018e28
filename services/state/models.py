"""Tables of the State database: every robot event, lid cycles with GPS, connectivity."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from core.columns import TIMESTAMPTZ, utcnow


class StateModel(SQLModel, registry=registry()):
    """Base of every State table; it has its own MetaData."""


metadata = StateModel.metadata


class LidEvent(StrEnum):
    """What the lid did."""

    OPENED = "opened"
    CLOSED = "closed"


class ConnectivityStatus(StrEnum):
    """How well a robot is reaching us."""

    ONLINE = "online"
    DEGRADED = "degraded"
    LOST = "lost"


class LidCycleEvent(StateModel, table=True):
    """Append-only record of each lid opening and closing, with where it happened."""

    __tablename__ = "lid_cycle_event_history"
    __table_args__ = (
        UniqueConstraint("robot_id", "sequence", name="uq_lid_cycle_event_history_robot_sequence"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    robot_id: str = Field(max_length=64)
    sequence: int
    event: str = Field(max_length=16)
    attempt_id: uuid.UUID | None = Field(default=None, index=True)
    latitude: float
    longitude: float
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    received_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    # Rejected events are kept too (e.g. a lid opened far from the dropoff).
    accepted: bool = True
    rejection_reason: str | None = Field(default=None, max_length=200)


class Connectivity(StateModel, table=True):
    """The latest known link state and position of a robot."""

    __tablename__ = "connectivity"

    robot_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default=ConnectivityStatus.ONLINE, max_length=16, index=True)
    last_seen_at: datetime = Field(sa_type=TIMESTAMPTZ)
    latitude: float | None = None
    longitude: float | None = None
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )


class StateHistory(StateModel, table=True):
    """Append-only record of every event a robot reported; `event_id` is its idempotency key."""

    __tablename__ = "state_history"
    __table_args__ = (
        UniqueConstraint("robot_id", "sequence", name="uq_state_history_robot_sequence"),
        UniqueConstraint("robot_id", "event_id", name="uq_state_history_robot_event"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    robot_id: str = Field(max_length=64)
    sequence: int
    event_id: str = Field(max_length=128)
    event_type: str = Field(max_length=32, index=True)
    attempt_id: uuid.UUID | None = Field(default=None, index=True)
    latitude: float | None = None
    longitude: float | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    occurred_at: datetime = Field(sa_type=TIMESTAMPTZ)
    received_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    accepted: bool = True
    rejection_reason: str | None = Field(default=None, max_length=200)
