"""Dispatch activities: plan demands in rounds, quote from the same planning view, and free robots."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities import interfaces
from activities.base import ServiceActivities
from core.contracts import (
    DemandRequest, DemandSearch, PlanningRound, PlanningRounds, Point, QuoteEstimate, QuoteRequest, RobotChoice,
    RobotRelease, RobotService, RoundSchedule,
)
from core.errors import NO_CAPACITY, NO_ROBOT_AVAILABLE, ROBOT_UNAVAILABLE, business_error
from core.services import ROBOT_COMMITTED_SIGNAL, delivery_workflow_id
from core.settings import Settings
from core.temporal import activity_meter
from services.dispatch import repository, rounds
from services.dispatch.models import Demand, DemandStatus, Plan, PlanStatus, RobotStatus
from services.dispatch.eta import PICKUP_DWELL, travel_time
from services.dispatch.planner import PLANNERS, Demands, PickupProblem
from services.dispatch.pricing import delivery_fee_cents


class DispatchActivities(ServiceActivities, interfaces.DispatchActivities):
    """The Dispatch Engine's activities, on the Dispatch database."""

    @activity.defn
    async def plan_demand(self, request: DemandRequest) -> RobotChoice:
        started, outcome = time.perf_counter(), "error"
        try:
            choice, search, round_outcome = await self._plan_demand(request)
            outcome = "planned" if choice is not None else "no_robot"
        finally:
            activity_meter().create_histogram_float(
                "dispatch_planning_seconds", "Time to plan a demand (choose and commit a robot)", "s",
            ).record(time.perf_counter() - started, {"outcome": outcome})
        if round_outcome is not None:
            await self._wake(round_outcome, but=request.attempt.delivery_id)
        # Raised after the commit, so the unmet demand stays on record for the next rounds.
        if choice is None:
            activity.logger.info("no robot available", extra={"market": request.market})
            raise business_error(NO_ROBOT_AVAILABLE, f"no robot is free for this demand in {request.market} yet",
                                 search.model_dump(mode="json"))
        activity.logger.info("robot %s planned", choice.robot_id, extra={"robot_id": choice.robot_id})
        return choice

    async def _plan_demand(self, request: DemandRequest,
                           ) -> tuple[RobotChoice | None, DemandSearch, rounds.RoundOutcome | None]:
        attempt, outcome = request.attempt, None
        async with self.sessions.begin() as session:
            await repository.lock_market(session, request.market)
            demand = await repository.upsert_demand(
                session, attempt.attempt_id, attempt.delivery_id, request.market, request.pickup, request.dropoff
            )
            now = datetime.now(UTC)
            # Asked again with nothing new while the rounds still plan it: planned afresh only if no round has run
            # since it last asked (one planning serves every demand waiting in the market).
            asked_before, held_since = demand.requested_at, now - timedelta(seconds=self.settings.demand_hold_seconds)
            waiting = demand.created_at < asked_before and asked_before >= held_since and \
                demand.excluded_robot_ids == list(request.exclude_robot_ids)
            demand.requested_at, demand.excluded_robot_ids = now, list(request.exclude_robot_ids)
            if demand.ready_at is None:
                demand.ready_at = ready_at(request, demand.created_at, self.settings)
            plan = await repository.committed_plan(session, demand.id)
            if plan is None:
                if demand.status not in repository.UNCOMMITTED:
                    demand.status = DemandStatus.OPEN  # a new try of a closed demand (e.g. its robot broke down)
                    waiting = False
                if request.preferred_robot_id:
                    plan = await self._take_preferred(session, demand, request.preferred_robot_id, now)
                elif not waiting or not await self._planned_since(session, request.market, asked_before):
                    outcome = await rounds.replan_market(session, request.market, now, self.settings)
                    plan = await repository.committed_plan(session, demand.id)
            search = DemandSearch(planned=demand.status == DemandStatus.PLANNED, ready_at=demand.ready_at)
        return (_choice(plan) if plan is not None else None), search, outcome

    async def _planned_since(self, session: AsyncSession, market: str, since: datetime) -> bool:
        """Whether a round has planned the market since `since` (every round writes the market's outlook)."""
        outlook = await repository.market_outlook(session, market)
        return outlook is not None and outlook.updated_at >= since

    @activity.defn
    async def run_planning_rounds(self, schedule: RoundSchedule) -> PlanningRounds:
        done, ends = PlanningRounds(), time.monotonic() + schedule.run_seconds
        while True:
            for market in await self.markets_to_plan():
                try:
                    done.add(await self.replan_market(market))
                except Exception:  # the other markets are planned all the same
                    activity.logger.warning("planning round failed", exc_info=True, extra={"market": market})
                    done.failed += 1
                activity.heartbeat(done)  # the SDK sends about one a minute of these
            done.ticks += 1
            activity.heartbeat(done)
            if time.monotonic() + schedule.interval_seconds > ends:
                return done
            await asyncio.sleep(schedule.interval_seconds)

    async def replan_market(self, market: str) -> PlanningRound:
        """One planning round for a market, then the deliveries it gave a robot to are woken."""
        async with self.sessions.begin() as session:
            await repository.lock_market(session, market)
            outcome = await rounds.replan_market(session, market, datetime.now(UTC), self.settings)
        await self._wake(outcome)
        return PlanningRound(market=market, committed=outcome.committed, proposed=outcome.proposed,
                             unplanned=outcome.unplanned)

    async def markets_to_plan(self) -> list[str]:
        """Markets with demands a round could still plan."""
        since = datetime.now(UTC) - timedelta(seconds=self.settings.demand_hold_seconds)
        async with self.sessions.begin() as session:
            return await repository.markets_to_plan(session, since)

    @activity.defn
    async def estimate_quote(self, request: QuoteRequest) -> QuoteEstimate:
        now = datetime.now(UTC)
        rules = rounds.planning_rules(request.market, self.settings)
        async with self.sessions.begin() as session:
            robots, fleet = await rounds.quote_view(session, request.market, now, self.settings)
        trip = Demands(pickups=np.array([[request.pickup.latitude, request.pickup.longitude]]),
                       dropoffs=np.array([[request.dropoff.latitude, request.dropoff.longitude]]))
        problem = PickupProblem.build(trip, fleet, rules)
        best = problem.earliest(0)
        if best is None:
            raise business_error(NO_CAPACITY, f"no robot in {request.market} can take this trip")
        wait = float(problem.eta[0, best])
        if wait > self.settings.quote_max_pickup_seconds:
            raise business_error(NO_CAPACITY, f"{request.market} is at capacity: the earliest pickup is "
                                              f"{wait / 60:.0f} min away")
        pickup_eta = now + timedelta(seconds=wait)
        dropoff_eta = pickup_eta + PICKUP_DWELL + travel_time(float(problem.delivery[0]), rules.speed_mps)
        # An order that is not ready yet is collected when it is: the robot waits, the trip does not change.
        late = max(timedelta(0), request.ready_at - pickup_eta) if request.ready_at else timedelta(0)
        return QuoteEstimate(robot_id=robots[best].id, pickup_eta=pickup_eta + late, dropoff_eta=dropoff_eta + late,
                             distance_meters=round(float(problem.delivery[0]), 1),
                             fee_cents=delivery_fee_cents(float(problem.delivery[0]), pickup_eta - now),
                             planner=PLANNERS[self.settings.planner].version)

    @activity.defn
    async def release_robot(self, release: RobotRelease) -> None:
        async with self.sessions.begin() as session:
            market = await repository.market_of_attempt(session, release.attempt_id)
            if market is None:
                return
            await repository.lock_market(session, market)
            demand = await repository.demand_by_attempt(session, release.attempt_id)
            if demand.status not in repository.CLOSED:
                planned = await repository.committed_plan(session, demand.id) is not None
                fulfilled = planned and release.demand_fulfilled
                demand.status = DemandStatus.FULFILLED if fulfilled else DemandStatus.CANCELLED
                await repository.release_plans(session, demand.id)
            # A round may have committed a robot the delivery never heard of: that one is freed too.
            robot_id = release.robot_id or demand.robot_id
            robot = await repository.lock_robot(session, robot_id) if robot_id else None
            if robot is not None and robot.active_demand_id == demand.id:
                repository.free_robot(robot, release.location, release.out_of_service)
            outcome = await rounds.replan_market(session, market, datetime.now(UTC), self.settings)
        await self._wake(outcome)

    @activity.defn
    async def coarsen_demand_dropoffs(self) -> int:
        closed_before = datetime.now(UTC) - timedelta(days=self.settings.pii_retention_days)
        async with self.sessions.begin() as session:
            coarsened = await repository.coarsen_dropoffs(session, closed_before)
        activity.logger.info("coarsened the dropoff of %d demands", coarsened, extra={"coarsened": coarsened})
        return coarsened

    async def _wake(self, outcome: rounds.RoundOutcome, but: UUID | None = None) -> None:
        """Tell each delivery a committed round gave a robot to (`robot_committed`), but the one that asked: it
        hears the answer. Best effort: a delivery not told asks again within its `robot_retry_seconds`."""
        for delivery_id in outcome.committed_deliveries:
            if delivery_id == but or self.temporal is None:
                continue
            try:
                await self.temporal.get_workflow_handle(delivery_workflow_id(delivery_id)).signal(
                    ROBOT_COMMITTED_SIGNAL)
            except RPCError as err:
                activity.logger.warning("delivery %s not told of its robot: %s", delivery_id, err.status.name)

    async def _take_preferred(self, session: AsyncSession, demand: Demand, robot_id: str, now: datetime) -> Plan:
        """Commit the named robot if it is idle, or move it over from another demand of the same delivery."""
        robot = await repository.lock_robot(session, robot_id)
        current = None
        if robot is not None and robot.active_demand_id is not None:
            current = await repository.get_demand(session, robot.active_demand_id)
        if robot is not None and robot.active_demand_id is None and robot.status == RobotStatus.IDLE:
            free = rounds.availability(robot, now)
        elif current is not None and current.delivery_id == demand.delivery_id:
            # The robot still carries this delivery's order (a return trip): its old demand is done, and it
            # sets off now from that demand's dropoff.
            current.status = DemandStatus.FULFILLED
            await repository.release_plans(session, current.id)
            point = Point(latitude=robot.available_latitude, longitude=robot.available_longitude)
            free = rounds.Availability(point, now, robot.available_battery)
        else:
            raise business_error(ROBOT_UNAVAILABLE, f"robot {robot_id} cannot serve delivery {demand.delivery_id}")
        await repository.release_plans(session, demand.id)
        rules = rounds.planning_rules(demand.market, self.settings)
        trip = rounds.trip_from(free, demand, rules.speed_mps)
        cost = round((trip.pickup_eta - now).total_seconds(), 1)
        plan = await repository.add_plan(session, demand, robot.id, trip, cost, [], rounds.PREFERRED,
                                         PlanStatus.COMMITTED)
        repository.reserve_robot(robot, demand, plan, trip)
        return plan

    @activity.defn
    async def set_robot_service(self, change: RobotService) -> None:
        async with self.sessions.begin() as session:
            applied = await repository.set_robot_in_service(session, change.robot_id, change.in_service)
        if not applied:
            raise ApplicationError(f"robot {change.robot_id} still serves a demand", type="RobotStillServing")


def ready_at(request: DemandRequest, placed: datetime, settings: Settings) -> datetime:
    """When a demand's order is ready: the partner's time, else `preparation_seconds` after the demand was
    placed; for a later attempt (the first robot broke down, say) the order is ready already."""
    if request.ready_at is not None:
        return request.ready_at
    if request.attempt.number > 1:
        return placed
    return placed + timedelta(seconds=settings.preparation_seconds)


def _choice(plan: Plan) -> RobotChoice:
    return RobotChoice(
        demand_id=plan.demand_id, plan_id=plan.id, robot_id=plan.robot_id,
        pickup_eta=plan.pickup_eta, dropoff_eta=plan.dropoff_eta,
    )
