"""Tables of the Trip Monitor database: the watch kept over each attempt's trip."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from core.columns import TIMESTAMPTZ, utcnow


class TripMonitorModel(SQLModel, registry=registry()):
    """Base of every Trip Monitor table; it has its own MetaData."""


metadata = TripMonitorModel.metadata


class MonitoredTripStatus(StrEnum):
    """How a watched trip is doing."""

    WATCHING = "watching"
    DEGRADED = "degraded"
    LOST = "lost"
    STUCK = "stuck"
    FINISHED = "finished"


class MonitoredTrip(TripMonitorModel, table=True):
    """The monitoring view of one attempt's trip: last heartbeat, last progress, ETA."""

    __tablename__ = "trip"

    # The attempt from Deliveries is the key: one watch per attempt.
    attempt_id: uuid.UUID = Field(primary_key=True)
    delivery_id: uuid.UUID = Field(index=True)
    trip_id: uuid.UUID | None = None
    robot_id: str = Field(max_length=64, index=True)
    status: str = Field(default=MonitoredTripStatus.WATCHING, max_length=16, index=True)
    last_heartbeat_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    last_latitude: float | None = None
    last_longitude: float | None = None
    last_progress_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    # The robot says whether it is driving; only a driving robot can be stuck.
    moving: bool = False
    planned_dropoff_eta: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    started_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    ended_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
