"""Tables of the Dispatch Engine database: demand, the planning view of robots, and plans."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from core.columns import TIMESTAMPTZ, exact_dropoff, utcnow


class DispatchModel(SQLModel, registry=registry()):
    """Base of every Dispatch table; it has its own MetaData."""


metadata = DispatchModel.metadata


class DemandStatus(StrEnum):
    """Where a demand is between request and fulfilment."""

    OPEN = "open"
    PLANNED = "planned"
    COMMITTED = "committed"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class RobotStatus(StrEnum):
    """What a robot is doing, as the planner sees it."""

    IDLE = "idle"
    RESERVED = "reserved"
    EN_ROUTE = "en_route"
    LOADED = "loaded"
    CHARGING = "charging"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"


class PlanStatus(StrEnum):
    """Whether a plan is still a proposal, the one in force, or history."""

    PROPOSED = "proposed"
    COMMITTED = "committed"
    SUPERSEDED = "superseded"
    RELEASED = "released"


class Demand(DispatchModel, table=True):
    """The need for a robot to serve one attempt."""

    __tablename__ = "demand"
    # The demands whose dropoff the PII purge has yet to coarsen, by when they last changed (closed).
    __table_args__ = (Index("ix_demand_dropoff_to_coarsen", "updated_at", postgresql_where=exact_dropoff()),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    delivery_id: uuid.UUID = Field(index=True)
    attempt_id: uuid.UUID = Field(unique=True)
    market: str = Field(max_length=64, index=True)
    status: str = Field(default=DemandStatus.OPEN, max_length=16, index=True)
    pickup_latitude: float
    pickup_longitude: float
    dropoff_latitude: float
    dropoff_longitude: float
    # The robot of the committed plan, copied here for fast lookups.
    robot_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    deadline_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    # When the order is ready at the store: the partner's time, else the market's preparation estimate. The
    # planner sends no robot to stand there long before, and the robot search runs from it.
    ready_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    # When the delivery last asked for a robot: rounds plan the demand on their own only for a while after.
    requested_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    # Robots this attempt must not get (not deployed, broken down): every round respects them.
    excluded_robot_ids: list[str] = Field(default_factory=list, sa_type=JSONB)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )


class Robot(DispatchModel, table=True):
    """A robot as the planner sees it: where it is, when it is free, what it will do next."""

    __tablename__ = "robot"
    __table_args__ = (
        Index("ix_robot_market_status", "market", "status"),
        CheckConstraint("battery >= 0 AND battery <= 1", name="ck_robot_battery_fraction"),
    )

    id: str = Field(primary_key=True, max_length=64)
    market: str = Field(max_length=64)
    latitude: float
    longitude: float
    battery: float = 1.0
    status: str = Field(default=RobotStatus.IDLE, max_length=16)
    # Where, when and with what charge the robot becomes free: its current demand's dropoff and dropoff ETA,
    # or where it is now when it has no demand.
    available_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    available_latitude: float
    available_longitude: float
    available_battery: float
    active_demand_id: uuid.UUID | None = Field(default=None, foreign_key="demand.id")
    # Robot and plan reference each other, so this key is added after both tables.
    scheduled_pickup_id: uuid.UUID | None = Field(
        default=None,
        sa_column_args=[
            ForeignKey("plan.id", use_alter=True, name="fk_robot_scheduled_pickup_id_plan")
        ],
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=TIMESTAMPTZ, sa_column_kwargs={"onupdate": utcnow}
    )


class Plan(DispatchModel, table=True):
    """One planner decision: which robot serves a demand, at what cost and when."""

    __tablename__ = "plan"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    demand_id: uuid.UUID = Field(foreign_key="demand.id", index=True)
    robot_id: str = Field(foreign_key="robot.id", max_length=64, index=True)
    planner: str = Field(max_length=32)
    status: str = Field(default=PlanStatus.PROPOSED, max_length=16)
    cost_seconds: float
    pickup_eta: datetime = Field(sa_type=TIMESTAMPTZ)
    dropoff_eta: datetime = Field(sa_type=TIMESTAMPTZ)
    # The runner-up robots the planner considered, for operators and audits.
    alternatives: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)


class MarketOutlook(DispatchModel, table=True):
    """What a new order in a market can expect, as the last planning round saw it: when the soonest robot is free
    after the trips and the waiting demands ahead of it. Written by every round; the API admits orders by it."""

    __tablename__ = "market_outlook"

    market: str = Field(primary_key=True, max_length=64)
    # None: no working robot in the market.
    free_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
    robots: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
