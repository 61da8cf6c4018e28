"""Queries of the Device service: which robot runs where, and its device credential."""

from datetime import UTC, datetime

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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


_DEPLOYMENTS = Deployment.__table__.c
ACTIVE_DEPLOYMENT = select(_DEPLOYMENTS.robot_id, _DEPLOYMENTS.market, _DEPLOYMENTS.software_version).where(
    _DEPLOYMENTS.credential_hash == bindparam("credential_hash"),
    _DEPLOYMENTS.status == DeploymentStatus.ACTIVE.value)


async def authenticate(db: AsyncConnection, credential: str) -> Row | None:
    """The active deployment a device credential belongs to, if any: its robot_id, market and software_version
    (built once: every robot request and stream asks)."""
    return (await db.execute(ACTIVE_DEPLOYMENT, {"credential_hash": hash_credential(credential)})).first()
