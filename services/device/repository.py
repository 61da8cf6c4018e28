"""Queries of the Device service: which robot runs where, and its device credential."""

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.crypto import hash_credential, new_credential
from services.device.models import Deployment, DeploymentStatus


async def deploy_robot(session: AsyncSession, robot_id: str, market: str, software_version: str) -> str:
    """Deploy a robot (retiring any current deployment) and return its new device credential, shown once."""
    await retire_robot(session, robot_id)
    credential = new_credential("dev")
    session.add(Deployment(robot_id=robot_id, market=market, software_version=software_version,
                           credential_hash=hash_credential(credential)))
    await session.flush()
    return credential


async def retire_robot(session: AsyncSession, robot_id: str) -> None:
    await session.execute(
        update(Deployment).where(Deployment.robot_id == robot_id, Deployment.status == DeploymentStatus.ACTIVE.value)
        .values(status=DeploymentStatus.RETIRED.value, retired_at=datetime.now(UTC))
    )


async def active_deployment(session: AsyncSession, robot_id: str) -> Deployment | None:
    return await session.scalar(select(Deployment).where(
        Deployment.robot_id == robot_id, Deployment.status == DeploymentStatus.ACTIVE.value))


async def authenticate(session: AsyncSession, credential: str) -> Deployment | None:
    """The active deployment a device credential belongs to, if any."""
    return await session.scalar(select(Deployment).where(
        Deployment.credential_hash == hash_credential(credential), Deployment.status == DeploymentStatus.ACTIVE.value))
