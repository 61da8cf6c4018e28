"""Dispatch activities: commit one robot to an attempt's demand, and free it when the attempt is done."""

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ServiceActivities
from core.contracts import DemandRequest, Point, QuoteEstimate, QuoteRequest, RobotChoice, RobotRelease
from core.contracts import RobotService
from core.errors import NO_CAPACITY, NO_ROBOT_AVAILABLE, ROBOT_UNAVAILABLE, business_error
from core.temporal import activity_meter
from services.dispatch import repository
from services.dispatch.eta import TripEstimate, estimate_trip
from services.dispatch.models import Demand, DemandStatus, Plan, Robot, RobotStatus
from services.dispatch.pricing import delivery_fee_cents

RUNNERS_UP = 3


class DispatchActivities(ServiceActivities):
    """The Dispatch Engine's activities, on the Dispatch database."""

    @activity.defn
    async def plan_demand(self, request: DemandRequest) -> RobotChoice:
        """Commit a robot to the attempt's demand; a retry returns the plan already committed.

        Its latency is `dispatch_planning_seconds{outcome=planned|no_robot|error}`.
        """
        started, outcome = time.perf_counter(), "error"
        try:
            choice = await self._plan_demand(request)
            outcome = "planned" if choice is not None else "no_robot"
        finally:
            activity_meter().create_histogram_float(
                "dispatch_planning_seconds", "Time to plan a demand (choose and commit a robot)", "s",
            ).record(time.perf_counter() - started, {"outcome": outcome})
        # Raised after the commit, so the unmet demand stays on record as open.
        if choice is None:
            activity.logger.info("no robot available", extra={"market": request.market})
            raise business_error(NO_ROBOT_AVAILABLE, f"no idle robot with enough charge in {request.market}")
        activity.logger.info("robot %s planned", choice.robot_id, extra={"robot_id": choice.robot_id})
        return choice

    async def _plan_demand(self, request: DemandRequest) -> RobotChoice | None:
        attempt = request.attempt
        async with self.sessions.begin() as session:
            demand = await repository.upsert_demand(
                session, attempt.attempt_id, attempt.delivery_id, request.market, request.pickup, request.dropoff
            )
            plan = await repository.committed_plan(session, demand.id)
            if plan is None:
                demand.status = DemandStatus.OPEN
                plan = await self._plan(session, demand, request)
            return _choice(plan) if plan is not None else None

    @activity.defn
    async def estimate_quote(self, request: QuoteRequest) -> QuoteEstimate:
        """The earliest pickup the fleet can promise for this trip, and its fee; reserves nothing.

        Read-only, so a retry is harmless. `NoCapacity` when no robot in the market could do the trip.
        """
        now = datetime.now(UTC)
        demand = Demand(delivery_id=uuid.uuid4(), attempt_id=uuid.uuid4(), market=request.market,
                        pickup_latitude=request.pickup.latitude, pickup_longitude=request.pickup.longitude,
                        dropoff_latitude=request.dropoff.latitude, dropoff_longitude=request.dropoff.longitude)
        async with self.sessions.begin() as session:
            robots = await repository.available_robots(session, request.market)
        ranked = sorted(((robot, trip) for robot in robots if (trip := self._charged_trip(robot, demand, now))),
                        key=lambda pair: pair[1].pickup_eta)
        if not ranked:
            raise business_error(NO_CAPACITY, f"no robot in {request.market} can take this trip now")
        robot, trip = ranked[0]
        # An order that is not ready yet is collected when it is: the robot waits, the trip does not change.
        late = max(timedelta(0), request.ready_at - trip.pickup_eta) if request.ready_at else timedelta(0)
        return QuoteEstimate(robot_id=robot.id, pickup_eta=trip.pickup_eta + late, dropoff_eta=trip.dropoff_eta + late,
                             distance_meters=round(trip.meters, 1),
                             fee_cents=delivery_fee_cents(trip.meters, trip.pickup_eta - now), planner=repository.PLANNER)

    @activity.defn
    async def release_robot(self, release: RobotRelease) -> None:
        """Close the attempt's demand and plan, and free its robot unless it already serves another demand."""
        async with self.sessions.begin() as session:
            demand = await repository.demand_by_attempt(session, release.attempt_id)
            if demand is None:
                return
            if demand.status not in (DemandStatus.FULFILLED, DemandStatus.CANCELLED):
                planned = await repository.committed_plan(session, demand.id) is not None
                fulfilled = planned and release.demand_fulfilled
                demand.status = DemandStatus.FULFILLED if fulfilled else DemandStatus.CANCELLED
                await repository.release_plans(session, demand.id)
            if release.robot_id is None:
                return
            robot = await repository.lock_robot(session, release.robot_id)
            if robot is not None and robot.active_demand_id == demand.id:
                repository.free_robot(robot, release.location, release.out_of_service)

    async def _plan(self, session: AsyncSession, demand: Demand, request: DemandRequest) -> Plan | None:
        now = datetime.now(UTC)
        if request.preferred_robot_id:
            robot = await self._take_preferred(session, demand, request.preferred_robot_id)
            trip, runners_up = self._trip(robot, demand, now), []
        else:
            taken = await self._take_nearest(session, demand, request.exclude_robot_ids, now)
            if taken is None:
                return None
            robot, trip, runners_up = taken
        cost = (trip.pickup_eta - now).total_seconds()
        plan = await repository.add_plan(session, demand, robot.id, trip, cost, runners_up)
        repository.reserve_robot(robot, demand.id, plan.id, trip.dropoff_eta)
        return plan

    async def _take_preferred(self, session: AsyncSession, demand: Demand, robot_id: str) -> Robot:
        """Lock the named robot if it is idle, or move it over from another demand of the same delivery."""
        robot = await repository.lock_robot(session, robot_id)
        if robot is not None and robot.active_demand_id is None and robot.status == RobotStatus.IDLE:
            return robot
        if robot is not None and robot.active_demand_id is not None:
            current = await repository.get_demand(session, robot.active_demand_id)
            # The robot still carries this delivery's order (a return trip): its old demand is done.
            if current is not None and current.delivery_id == demand.delivery_id:
                current.status = DemandStatus.FULFILLED
                await repository.release_plans(session, current.id)
                return robot
        raise business_error(ROBOT_UNAVAILABLE, f"robot {robot_id} cannot serve delivery {demand.delivery_id}")

    async def _take_nearest(
        self, session: AsyncSession, demand: Demand, exclude: list[str], now: datetime
    ) -> tuple[Robot, TripEstimate, list[dict[str, Any]]] | None:
        """Lock the idle robot with the earliest pickup that has the charge for the trip."""
        robots = await repository.idle_robots(session, demand.market, exclude)
        ranked = [(robot, trip) for robot in robots if (trip := self._charged_trip(robot, demand, now))]
        ranked.sort(key=lambda pair: pair[1].pickup_eta)
        for index, (candidate, _) in enumerate(ranked):
            # SKIP LOCKED: a robot another planner holds right now is skipped, never shared or waited for.
            robot = await repository.lock_idle_robot(session, candidate.id)
            trip = self._charged_trip(robot, demand, now) if robot is not None else None
            if trip is not None:
                runners_up = [
                    {"robot_id": other.id, "cost_seconds": round((other_trip.pickup_eta - now).total_seconds(), 1)}
                    for other, other_trip in ranked[index + 1:index + 1 + RUNNERS_UP]
                ]
                return robot, trip, runners_up
        return None

    def _charged_trip(self, robot: Robot, demand: Demand, now: datetime) -> TripEstimate | None:
        """The robot's trip for the demand, or None if it would end below the battery reserve."""
        trip = self._trip(robot, demand, max(now, robot.available_at))
        if robot.battery - trip.battery_used < self.settings.battery_reserve:
            return None
        return trip

    def _trip(self, robot: Robot, demand: Demand, free_at: datetime) -> TripEstimate:
        pickup = Point(latitude=demand.pickup_latitude, longitude=demand.pickup_longitude)
        dropoff = Point(latitude=demand.dropoff_latitude, longitude=demand.dropoff_longitude)
        robot_at = Point(latitude=robot.latitude, longitude=robot.longitude)
        return estimate_trip(robot_at, free_at, pickup, dropoff, self.settings.walking_speed_mps)

    @activity.defn
    async def set_robot_service(self, change: RobotService) -> None:
        """Take a robot out of the plan for field work, or put it back; the planner never picks a robot out of it.

        A robot still serving a demand leaves the plan once that demand releases it: until then this fails with
        `RobotStillServing`, and Temporal's retries wait for it.
        """
        async with self.sessions.begin() as session:
            applied = await repository.set_robot_in_service(session, change.robot_id, change.in_service)
        if not applied:
            raise ApplicationError(f"robot {change.robot_id} still serves a demand", type="RobotStillServing")


def _choice(plan: Plan) -> RobotChoice:
    return RobotChoice(
        demand_id=plan.demand_id, plan_id=plan.id, robot_id=plan.robot_id,
        pickup_eta=plan.pickup_eta, dropoff_eta=plan.dropoff_eta,
    )
