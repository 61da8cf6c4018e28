"""Queries of the Dispatch database: demands, the planner's robots and plans. Never commits."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import Point
from services.dispatch.eta import TripEstimate
from services.dispatch.models import Demand, DemandStatus, Plan, PlanStatus, Robot, RobotStatus, utcnow

PLANNER = "nearest-v1"


async def upsert_demand(
    session: AsyncSession, attempt_id: uuid.UUID, delivery_id: uuid.UUID, market: str, pickup: Point, dropoff: Point
) -> Demand:
    """The demand of an attempt, created open if new, locked for this transaction."""
    await session.execute(
        insert(Demand)
        .values(
            id=uuid.uuid4(), attempt_id=attempt_id, delivery_id=delivery_id, market=market,
            status=DemandStatus.OPEN, pickup_latitude=pickup.latitude, pickup_longitude=pickup.longitude,
            dropoff_latitude=dropoff.latitude, dropoff_longitude=dropoff.longitude,
            created_at=utcnow(), updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[Demand.attempt_id])
    )
    return await demand_by_attempt(session, attempt_id)


async def demand_by_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> Demand | None:
    """The demand of an attempt, locked for this transaction."""
    query = select(Demand).where(Demand.attempt_id == attempt_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def get_demand(session: AsyncSession, demand_id: uuid.UUID) -> Demand | None:
    """A demand by id, locked for this transaction."""
    query = select(Demand).where(Demand.id == demand_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def committed_plan(session: AsyncSession, demand_id: uuid.UUID) -> Plan | None:
    """The plan in force for a demand, if any."""
    query = select(Plan).where(Plan.demand_id == demand_id, Plan.status == PlanStatus.COMMITTED)
    return await session.scalar(query.order_by(Plan.created_at.desc()).limit(1))


async def idle_robots(session: AsyncSession, market: str, exclude: list[str]) -> list[Robot]:
    """The idle robots of a market, without locking them."""
    query = select(Robot).where(Robot.market == market, Robot.status == RobotStatus.IDLE)
    if exclude:
        query = query.where(Robot.id.not_in(exclude))
    return list(await session.scalars(query.order_by(Robot.id)))


async def available_robots(session: AsyncSession, market: str) -> list[Robot]:
    """The robots of a market that are working or could work: idle ones and those busy with a delivery."""
    busy = (RobotStatus.IDLE, RobotStatus.RESERVED, RobotStatus.EN_ROUTE, RobotStatus.LOADED)
    query = select(Robot).where(Robot.market == market, Robot.status.in_(busy))
    return list(await session.scalars(query.order_by(Robot.id)))


async def lock_idle_robot(session: AsyncSession, robot_id: str) -> Robot | None:
    """Lock a robot if it is still idle and no other planner holds it (SKIP LOCKED)."""
    query = (
        select(Robot)
        .where(Robot.id == robot_id, Robot.status == RobotStatus.IDLE)
        .with_for_update(skip_locked=True)
    )
    return await session.scalar(query.execution_options(populate_existing=True))


async def lock_robot(session: AsyncSession, robot_id: str) -> Robot | None:
    """A robot locked for this transaction, waiting for other holders."""
    query = select(Robot).where(Robot.id == robot_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def add_plan(
    session: AsyncSession, demand: Demand, robot_id: str, trip: TripEstimate, cost_seconds: float,
    alternatives: list[dict[str, Any]],
) -> Plan:
    """Write a committed plan and point the demand at its robot."""
    plan = Plan(
        demand_id=demand.id, robot_id=robot_id, planner=PLANNER, status=PlanStatus.COMMITTED,
        cost_seconds=cost_seconds, pickup_eta=trip.pickup_eta, dropoff_eta=trip.dropoff_eta,
        alternatives=alternatives,
    )
    session.add(plan)
    demand.status = DemandStatus.COMMITTED
    demand.robot_id = robot_id
    # The robot will point at this plan, so the plan row must exist first.
    await session.flush()
    return plan


def reserve_robot(robot: Robot, demand_id: uuid.UUID, plan_id: uuid.UUID, available_at: datetime) -> None:
    """Point a locked robot at the demand and plan it now serves."""
    robot.status = RobotStatus.RESERVED
    robot.active_demand_id = demand_id
    robot.scheduled_pickup_id = plan_id
    robot.available_at = available_at


def free_robot(robot: Robot, location: Point | None, out_of_service: bool) -> None:
    """Clear a locked robot's pointers; it is idle again unless it must be serviced."""
    robot.active_demand_id = None
    robot.scheduled_pickup_id = None
    robot.status = RobotStatus.MAINTENANCE if out_of_service else RobotStatus.IDLE
    robot.available_at = utcnow()
    if location is not None:
        robot.latitude, robot.longitude = location.latitude, location.longitude


async def release_plans(session: AsyncSession, demand_id: uuid.UUID) -> None:
    """Mark the demand's committed plans released."""
    await session.execute(
        update(Plan)
        .where(Plan.demand_id == demand_id, Plan.status == PlanStatus.COMMITTED)
        .values(status=PlanStatus.RELEASED)
    )


async def register_robot(
    session: AsyncSession, robot_id: str, market: str, latitude: float, longitude: float, battery: float
) -> None:
    """Add a robot to the planner, or update where it is and its charge (its status and pointers stay)."""
    now = utcnow()
    statement = insert(Robot).values(
        id=robot_id, market=market, latitude=latitude, longitude=longitude, battery=battery,
        status=RobotStatus.IDLE, available_at=now, updated_at=now,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Robot.id],
            set_={"market": market, "latitude": latitude, "longitude": longitude, "battery": battery,
                  "updated_at": now},
        )
    )


async def list_robots(session: AsyncSession, market: str | None = None) -> list[Robot]:
    """The planner's robots, optionally of one market, by id."""
    query = select(Robot).order_by(Robot.id)
    if market is not None:
        query = query.where(Robot.market == market)
    return list(await session.scalars(query))


async def set_robot_in_service(session: AsyncSession, robot_id: str, in_service: bool) -> bool:
    """Bring a robot in maintenance back to idle, or take a free robot out of the plan (maintenance).

    False, and nothing changed, when the robot to take out still serves a demand: its release would make it idle.
    """
    robot = await lock_robot(session, robot_id)
    if robot is None:
        return True
    if not in_service and robot.active_demand_id is not None:
        return False
    if not in_service:
        robot.status = RobotStatus.MAINTENANCE
    elif robot.status == RobotStatus.MAINTENANCE:
        robot.status, robot.available_at = RobotStatus.IDLE, utcnow()
    return True
