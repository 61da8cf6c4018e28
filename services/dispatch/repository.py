"""Queries of the Dispatch database: demands, the planner's robots and plans. Never commits."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.columns import coarsened_dropoff, exact_dropoff
from core.contracts import Point
from services.dispatch.eta import TripEstimate
from services.dispatch.models import (
    Demand, DemandStatus, MarketOutlook, Plan, PlanStatus, Robot, RobotStatus, utcnow,
)

UNCOMMITTED = (DemandStatus.OPEN, DemandStatus.PLANNED)
CLOSED = (DemandStatus.FULFILLED, DemandStatus.CANCELLED)
WORKING = (RobotStatus.IDLE, RobotStatus.RESERVED, RobotStatus.EN_ROUTE, RobotStatus.LOADED)


async def lock_market(session: AsyncSession, market: str) -> None:
    """Take the market's planning lock (a Postgres advisory lock) until this transaction ends."""
    key = func.hashtextextended(f"dispatch-market:{market}", 0)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def upsert_demand(
    session: AsyncSession, attempt_id: uuid.UUID, delivery_id: uuid.UUID, market: str, pickup: Point, dropoff: Point
) -> Demand:
    """The demand of an attempt, created open if new, locked for this transaction."""
    now = utcnow()
    await session.execute(
        insert(Demand)
        .values(
            id=uuid.uuid4(), attempt_id=attempt_id, delivery_id=delivery_id, market=market,
            status=DemandStatus.OPEN, pickup_latitude=pickup.latitude, pickup_longitude=pickup.longitude,
            dropoff_latitude=dropoff.latitude, dropoff_longitude=dropoff.longitude,
            created_at=now, requested_at=now, excluded_robot_ids=[], updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Demand.attempt_id])
    )
    return await demand_by_attempt(session, attempt_id)


async def coarsen_dropoffs(session: AsyncSession, closed_before: datetime) -> int:
    """Round the dropoff of demands closed (fulfilled or cancelled) before `closed_before`; how many."""
    result = await session.execute(update(Demand).where(
        Demand.status.in_(CLOSED), Demand.updated_at <= closed_before, exact_dropoff()).values(**coarsened_dropoff()))
    return result.rowcount


async def market_of_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> str | None:
    """The market of an attempt's demand, without locking it."""
    return await session.scalar(select(Demand.market).where(Demand.attempt_id == attempt_id))


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


async def uncommitted_demands(session: AsyncSession, market: str, requested_since: datetime) -> list[Demand]:
    """A market's demands without a committed robot, oldest first: those asked for since `requested_since`,
    and older ones that still hold a proposal (the round withdraws it)."""
    query = select(Demand).where(
        Demand.market == market, Demand.status.in_(UNCOMMITTED),
        or_(Demand.requested_at >= requested_since, Demand.status == DemandStatus.PLANNED),
    )
    query = query.order_by(Demand.created_at, Demand.id).execution_options(populate_existing=True)
    return list(await session.scalars(query))


async def markets_to_plan(session: AsyncSession, requested_since: datetime) -> list[str]:
    """Markets with a demand a round could still plan."""
    query = select(Demand.market).distinct().where(
        Demand.status.in_(UNCOMMITTED),
        or_(Demand.requested_at >= requested_since, Demand.status == DemandStatus.PLANNED),
    )
    return list(await session.scalars(query.order_by(Demand.market)))


# What the planner reads of a robot: read as plain rows, not ORM objects (a market's whole fleet every round).
PLANNING_COLUMNS = (Robot.id, Robot.status, Robot.active_demand_id, Robot.available_at, Robot.available_latitude,
                    Robot.available_longitude, Robot.available_battery)


async def available_robots(session: AsyncSession, market: str) -> list[Row]:
    """The robots of a market that are working or could work (idle ones and those busy with a delivery), as rows
    of `PLANNING_COLUMNS`; a robot to change is locked by `lock_robot`."""
    query = select(*PLANNING_COLUMNS).where(Robot.market == market, Robot.status.in_(WORKING))
    return list(await session.execute(query.order_by(Robot.id)))


async def proposals(session: AsyncSession, demand_ids: list[uuid.UUID]) -> dict[uuid.UUID, Plan]:
    """The standing proposal of each of these demands."""
    query = select(Plan).where(Plan.demand_id.in_(demand_ids), Plan.status == PlanStatus.PROPOSED)
    return {plan.demand_id: plan for plan in await session.scalars(query)}


async def queued_proposals(session: AsyncSession, market: str) -> list[tuple[Plan, Demand]]:
    """A market's proposals with their demands: work queued behind each busy robot's current trip."""
    query = (
        select(Plan, Demand).join(Demand, Demand.id == Plan.demand_id)
        .where(Demand.market == market, Plan.status == PlanStatus.PROPOSED)
    )
    return [(plan, demand) for plan, demand in await session.execute(query)]


async def record_outlook(session: AsyncSession, market: str, free_at: datetime | None, robots: int) -> None:
    """Write the market's outlook for a new order (one row per market, replaced by each round)."""
    statement = insert(MarketOutlook).values(market=market, free_at=free_at, robots=robots, updated_at=utcnow())
    await session.execute(statement.on_conflict_do_update(
        index_elements=[MarketOutlook.market],
        set_={"free_at": statement.excluded.free_at, "robots": statement.excluded.robots,
              "updated_at": statement.excluded.updated_at}))


async def market_outlook(session: AsyncSession, market: str) -> MarketOutlook | None:
    """The market's outlook as the last round wrote it; None before any round planned it."""
    return await session.get(MarketOutlook, market)


async def lock_robot(session: AsyncSession, robot_id: str) -> Robot | None:
    """A robot locked for this transaction, waiting for other holders."""
    query = select(Robot).where(Robot.id == robot_id).with_for_update()
    return await session.scalar(query.execution_options(populate_existing=True))


async def add_plan(
    session: AsyncSession, demand: Demand, robot_id: str, trip: TripEstimate, cost_seconds: float,
    alternatives: list[dict[str, Any]], planner: str, status: PlanStatus,
) -> Plan:
    """Write a plan: a committed one points the demand at its robot, a proposal marks the demand planned."""
    plan = Plan(
        demand_id=demand.id, robot_id=robot_id, planner=planner, status=status,
        cost_seconds=cost_seconds, pickup_eta=trip.pickup_eta, dropoff_eta=trip.dropoff_eta,
        alternatives=alternatives,
    )
    session.add(plan)
    if status == PlanStatus.COMMITTED:
        demand.status, demand.robot_id = DemandStatus.COMMITTED, robot_id
    else:
        demand.status = DemandStatus.PLANNED
    # The robot will point at this plan, so the plan row must exist first.
    await session.flush()
    return plan


def reserve_robot(robot: Robot, demand: Demand, plan: Plan, trip: TripEstimate) -> None:
    """Point a robot at the demand and plan it now serves; it becomes free at the dropoff, at its ETA."""
    robot.status = RobotStatus.RESERVED
    robot.active_demand_id = demand.id
    robot.scheduled_pickup_id = plan.id
    robot.available_at = trip.dropoff_eta
    robot.available_latitude, robot.available_longitude = demand.dropoff_latitude, demand.dropoff_longitude
    robot.available_battery = max(0.0, robot.available_battery - trip.battery_used)


def free_robot(robot: Robot, location: Point | None, out_of_service: bool) -> None:
    """Clear a robot's pointers; it is idle again, free now where it is, unless it must be serviced."""
    robot.active_demand_id = None
    robot.scheduled_pickup_id = None
    robot.status = RobotStatus.MAINTENANCE if out_of_service else RobotStatus.IDLE
    robot.available_at = utcnow()
    if location is not None:
        robot.latitude, robot.longitude = location.latitude, location.longitude
    robot.available_latitude, robot.available_longitude = robot.latitude, robot.longitude
    robot.available_battery = robot.battery


async def release_plans(session: AsyncSession, demand_id: uuid.UUID) -> None:
    """Close the demand's plans: the committed one is released, a standing proposal superseded."""
    for current, closed in ((PlanStatus.COMMITTED, PlanStatus.RELEASED), (PlanStatus.PROPOSED, PlanStatus.SUPERSEDED)):
        await session.execute(
            update(Plan).where(Plan.demand_id == demand_id, Plan.status == current).values(status=closed)
        )


async def register_robot(
    session: AsyncSession, robot_id: str, market: str, latitude: float, longitude: float, battery: float
) -> None:
    """Add a robot to the planner, or update where it is and its charge (its status and pointers stay)."""
    now = utcnow()
    statement = insert(Robot).values(
        id=robot_id, market=market, latitude=latitude, longitude=longitude, battery=battery,
        status=RobotStatus.IDLE, available_at=now, available_latitude=latitude, available_longitude=longitude,
        available_battery=battery, updated_at=now,
    )
    # A robot without a demand is free where it is now; a busy one stays free where its demand drops off.
    free = Robot.active_demand_id.is_(None)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Robot.id],
            set_={"market": market, "latitude": latitude, "longitude": longitude, "battery": battery,
                  "available_latitude": case((free, latitude), else_=Robot.available_latitude),
                  "available_longitude": case((free, longitude), else_=Robot.available_longitude),
                  "available_battery": case((free, battery), else_=Robot.available_battery),
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
