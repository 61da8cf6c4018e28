"""Tables of the Device database: which robot runs where, on which software."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from core.columns import TIMESTAMPTZ, utcnow


class DeviceModel(SQLModel, registry=registry()):
    """Base of every Device table; it has its own MetaData."""


metadata = DeviceModel.metadata


class DeploymentStatus(StrEnum):
    """Whether a deployment is the robot's current one."""

    ACTIVE = "active"
    RETIRED = "retired"


class Deployment(DeviceModel, table=True):
    """A robot put to work in a market on a software version, with its device credential."""

    __tablename__ = "deployment"
    __table_args__ = (
        # A robot has at most one active deployment; retired ones stay as history.
        Index(
            "uq_deployment_one_active_per_robot",
            "robot_id",
            unique=True,
            postgresql_where=text(f"status = '{DeploymentStatus.ACTIVE.value}'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    robot_id: str = Field(max_length=64)
    market: str = Field(max_length=64, index=True)
    software_version: str = Field(max_length=64)
    # Hash of the robot's bearer credential; the credential itself is never stored.
    credential_hash: str = Field(max_length=128, index=True)
    status: str = Field(default=DeploymentStatus.ACTIVE, max_length=16)
    deployed_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMPTZ)
    retired_at: datetime | None = Field(default=None, sa_type=TIMESTAMPTZ)
