"""Dispatch's tests share a pickup and dropoff, robots placed north of the pickup, demands and what they left."""

import uuid

from sqlalchemy import select

from core.contracts import AttemptRef, DemandRequest, Point, RobotRelease
from services.dispatch import repository
from services.dispatch.models import Demand, Plan

PICKUP = Point(latitude=37.7749, longitude=-122.4194)
DROPOFF = Point(latitude=37.7790, longitude=-122.4140)
DEGREE_METERS = 111_195  # one degree of latitude


async def add_robot(sessions, market: str, meters_north: float, battery: float = 1.0) -> str:
    """A robot `meters_north` of the pickup; returns its id."""
    robot_id = f"r-{uuid.uuid4().hex[:10]}"
    async with sessions.begin() as session:
        await repository.register_robot(session, robot_id, market, PICKUP.latitude + meters_north / DEGREE_METERS,
                                        PICKUP.longitude, battery)
    return robot_id


def a_demand(market: str, delivery_id: uuid.UUID | None = None, number: int = 1, kind: str = "delivery",
             **changes) -> DemandRequest:
    attempt = AttemptRef(delivery_id=delivery_id or uuid.uuid4(), attempt_id=uuid.uuid4(), number=number, kind=kind)
    return DemandRequest(attempt=attempt, market=market, pickup=PICKUP, dropoff=DROPOFF, **changes)


def release_of(request: DemandRequest, robot_id: str, **changes) -> RobotRelease:
    return RobotRelease(attempt_id=request.attempt.attempt_id, robot_id=robot_id, demand_fulfilled=True, **changes)


async def fetch(sessions, model, key):
    async with sessions() as session:
        return await session.get(model, key)


async def demand_of(sessions, request: DemandRequest) -> Demand:
    async with sessions() as session:
        return await session.scalar(select(Demand).where(Demand.attempt_id == request.attempt.attempt_id))


async def plans_of(sessions, demand_id: uuid.UUID) -> list[Plan]:
    async with sessions() as session:
        return list(await session.scalars(select(Plan).where(Plan.demand_id == demand_id)))
