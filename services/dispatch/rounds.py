"""Planning rounds on the Dispatch database: a market's planning view, solved by the planner, written as plans.

A round runs under the market's advisory lock (`repository.lock_market`, taken by the caller). It plans the
market's uncommitted demands that their deliveries asked for recently (`demand_hold_seconds`) against every
working robot, at the place, time and charge the robot becomes free, with when each order is ready and the
robot of each standing proposal. A demand matched to a robot that is free now is COMMITTED and the robot
reserved, unless the planner holds the match (the robot would stand at the store long before the order is
ready); one held or matched to a busy robot gets a PROPOSED plan that the next round may move (the old
proposal is then SUPERSEDED). Committed plans are never moved. The round's outcome names the deliveries it
committed a robot to, so the caller can wake them once the round is committed.
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from core.contracts import Point
from core.markets import MARKETS
from core.settings import Settings
from services.dispatch import repository
from services.dispatch.eta import TripEstimate, estimate_trip
from services.dispatch.models import Demand, DemandStatus, Plan, PlanStatus, Robot, RobotStatus
from services.dispatch.planner import PLANNERS, Demands, Fleet, PickupProblem, PlanningRules, after_backlog

# A robot as a round reads it (a row of `repository.PLANNING_COLUMNS`) or as it changes it (the locked ORM object).
PlannedRobot = Robot | Row

# The version written on plans for a robot the delivery named itself (a return trip, an operator's choice).
PREFERRED = "preferred-v1"


@dataclass(frozen=True)
class Availability:
    """Where, when and with what charge a robot becomes free."""

    point: Point
    at: datetime
    battery: float


@dataclass
class RoundOutcome:
    """What one round did in one market."""

    market: str
    committed: int = 0
    proposed: int = 0
    unplanned: int = 0
    committed_deliveries: list[uuid.UUID] = field(default_factory=list)  # whose demand it committed a robot to


def planning_rules(market: str, settings: Settings) -> PlanningRules:
    """The market's walking speed and depot; a market this process does not know has no return leg."""
    known = MARKETS.get(market)
    if known is None:
        return PlanningRules(settings.walking_speed_mps, settings.battery_reserve)
    depot = (known.depot.latitude, known.depot.longitude)
    return PlanningRules(known.walking_speed_mps, settings.battery_reserve, depot)


def availability(robot: PlannedRobot, now: datetime) -> Availability:
    """When a robot becomes free; a busy robot already past its dropoff ETA is assumed to be as late again."""
    at = max(now, robot.available_at)
    if robot.active_demand_id is not None and robot.available_at < now:
        at = now + (now - robot.available_at)
    point = Point(latitude=robot.available_latitude, longitude=robot.available_longitude)
    return Availability(point, at, robot.available_battery)


def free_now(robot: PlannedRobot, now: datetime) -> bool:
    """An idle robot with no demand and nothing to finish: a match with it is committed at once."""
    return robot.status == RobotStatus.IDLE and robot.active_demand_id is None and robot.available_at <= now


def trip_from(free: Availability, demand: Demand, speed_mps: float) -> TripEstimate:
    """The trip of a robot, from where and when it becomes free, for a demand; an order not ready when the
    robot arrives is picked up when it is."""
    pickup = Point(latitude=demand.pickup_latitude, longitude=demand.pickup_longitude)
    dropoff = Point(latitude=demand.dropoff_latitude, longitude=demand.dropoff_longitude)
    trip = estimate_trip(free.point, free.at, pickup, dropoff, speed_mps)
    if demand.ready_at is None or demand.ready_at <= trip.pickup_eta:
        return trip
    late = demand.ready_at - trip.pickup_eta
    return replace(trip, pickup_eta=trip.pickup_eta + late, dropoff_eta=trip.dropoff_eta + late)


def fleet_view(robots: list[PlannedRobot], now: datetime) -> Fleet:
    """The planner's arrays for these robots, each as `availability` has it, computed for the whole fleet at once:
    a round reads every working robot of its market."""
    count = len(robots)
    epoch = now.timestamp()
    available = np.fromiter((robot.available_at.timestamp() for robot in robots), float, count) - epoch
    busy = np.fromiter((robot.active_demand_id is not None for robot in robots), bool, count)
    return Fleet(
        positions=np.array([(robot.available_latitude, robot.available_longitude) for robot in robots],
                           float).reshape(-1, 2),
        free_in=np.where(busy & (available < 0), -available, np.maximum(available, 0.0)),
        battery=np.fromiter((robot.available_battery for robot in robots), float, count),
    )


def demands_view(demands: list[Demand], now: datetime | None = None) -> Demands:
    """The planner's arrays for these demands, in the same order (with how long each waited and in how long
    each order is ready, given `now`)."""
    return Demands(
        pickups=np.array([[d.pickup_latitude, d.pickup_longitude] for d in demands], float).reshape(-1, 2),
        dropoffs=np.array([[d.dropoff_latitude, d.dropoff_longitude] for d in demands], float).reshape(-1, 2),
        waited=None if now is None else np.array([(now - d.created_at).total_seconds() for d in demands], float),
        ready_in=None if now is None else np.array([max((d.ready_at - now).total_seconds(), 0) if d.ready_at
                                                    else 0.0 for d in demands], float),
    )


def proposed_columns(demands: list[Demand], robots: list[PlannedRobot], standing: dict) -> np.ndarray:
    """The robot (column) of each demand's standing proposal, -1 for none."""
    column = {robot.id: j for j, robot in enumerate(robots)}
    return np.array([column.get(standing[d.id].robot_id, -1) if d.id in standing else -1 for d in demands], int)


def exclusions(demands: list[Demand], robots: list[PlannedRobot]) -> np.ndarray:
    """Pairs a demand refuses: robots its attempt excluded."""
    refused = np.zeros((len(demands), len(robots)), bool)
    column = {robot.id: j for j, robot in enumerate(robots)}
    for i, demand in enumerate(demands):
        for robot_id in demand.excluded_robot_ids:
            if robot_id in column:
                refused[i, column[robot_id]] = True
    return refused


async def replan_market(session: AsyncSession, market: str, now: datetime, settings: Settings) -> RoundOutcome:
    """One planning round for a market, then the market's outlook for a new order; the caller holds the market's
    lock."""
    outcome, robots = await _plan_round(session, market, now, settings)
    await record_outlook(session, market, now, settings, robots)
    return outcome


async def record_outlook(session: AsyncSession, market: str, now: datetime, settings: Settings,
                         robots: list[PlannedRobot] | None = None) -> None:
    """Write when the soonest robot is free for a new order, from the same view as a quote (`quote_view`)."""
    robots, fleet = await quote_view(session, market, now, settings, robots)
    free_at = now + timedelta(seconds=float(fleet.free_in.min())) if robots else None
    await repository.record_outlook(session, market, free_at, len(robots))


async def _plan_round(session: AsyncSession, market: str, now: datetime, settings: Settings,
                      ) -> tuple[RoundOutcome, list[PlannedRobot] | None]:
    """The round's outcome, and the market's working robots as the round left them (None if it had nothing to
    plan and did not read them)."""
    outcome = RoundOutcome(market)
    since = now - timedelta(seconds=settings.demand_hold_seconds)
    demands = await repository.uncommitted_demands(session, market, since)
    if not demands:
        return outcome, None
    robots = await repository.available_robots(session, market)
    standing = await repository.proposals(session, [demand.id for demand in demands])
    live = [demand for demand in demands if demand.requested_at >= since]
    rules, planner = planning_rules(market, settings), PLANNERS[settings.planner]
    problem, chosen, held = None, {}, set()
    if live and robots:
        problem = PickupProblem.build(demands_view(live, now), fleet_view(robots, now), rules, exclusions(live, robots),
                                      proposed_columns(live, robots, standing))
        rows, cols = planner.solve(problem)
        chosen = {live[i].id: (int(i), int(j)) for i, j in zip(rows, cols)}
        held = {live[i].id for i, hold in zip(rows, planner.hold(problem, rows, cols)) if hold}
    for demand in demands:
        proposal = standing.get(demand.id)
        if demand.id not in chosen:
            _withdraw(proposal)
            demand.status = DemandStatus.OPEN
            outcome.unplanned += 1
            continue
        i, j = chosen[demand.id]
        robot, trip = robots[j], trip_from(availability(robots[j], now), demand, rules.speed_mps)
        alternatives = [{"robot_id": robots[k].id, "cost_seconds": round(cost, 1)}
                        for k, cost in problem.runners_up(i, j)]
        cost = round((trip.pickup_eta - now).total_seconds(), 1)
        if free_now(robot, now) and demand.id not in held:
            _withdraw(proposal)
            plan = await repository.add_plan(session, demand, robot.id, trip, cost, alternatives, planner.version,
                                             PlanStatus.COMMITTED)
            robots[j] = await repository.lock_robot(session, robot.id)  # the round's view, as it leaves the robot
            repository.reserve_robot(robots[j], demand, plan, trip)
            outcome.committed += 1
            outcome.committed_deliveries.append(demand.delivery_id)
            continue
        outcome.proposed += 1
        if proposal is not None and proposal.robot_id == robot.id:
            # The same robot still: the proposal stands, with today's forecast.
            proposal.pickup_eta, proposal.dropoff_eta, proposal.cost_seconds = trip.pickup_eta, trip.dropoff_eta, cost
            proposal.alternatives = alternatives
            continue
        _withdraw(proposal)
        await repository.add_plan(session, demand, robot.id, trip, cost, alternatives, planner.version,
                                  PlanStatus.PROPOSED)
    return outcome, robots


def _withdraw(proposal: Plan | None) -> None:
    if proposal is not None:
        proposal.status = PlanStatus.SUPERSEDED


async def quote_view(session: AsyncSession, market: str, now: datetime, settings: Settings,
                     robots: list[PlannedRobot] | None = None) -> tuple[list[PlannedRobot], Fleet]:
    """A market's working robots and the fleet as a new demand sees it: each robot free after its current
    trip and the proposal queued behind it (a round gives a robot at most one), and after the demands still
    waiting without one have taken theirs, oldest first.

    `robots`: the market's working robots already loaded in this session (a round's, as it left them), instead
    of reading them again: a market's whole fleet is the largest read of a round."""
    rules = planning_rules(market, settings)
    if robots is None:
        robots = await repository.available_robots(session, market)
    fleet = fleet_view(robots, now)
    queued = {plan.robot_id: demand for plan, demand in await repository.queued_proposals(session, market)}
    behind = [j for j, robot in enumerate(robots) if robot.id in queued]
    if behind:
        fleet = fleet.after(np.array(behind), demands_view([queued[robots[j].id] for j in behind]), rules.speed_mps)
    proposed = {demand.id for demand in queued.values()}
    since = now - timedelta(seconds=settings.demand_hold_seconds)
    waiting = [d for d in await repository.uncommitted_demands(session, market, since) if d.id not in proposed]
    if waiting and robots:
        fleet = after_backlog(fleet, demands_view(waiting), rules)
    return robots, fleet
