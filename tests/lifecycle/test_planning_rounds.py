"""The periodic planning rounds on the real stack: a robot that joins the fleet is given a waiting demand."""

import uuid

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.dispatch import DispatchActivities
from core.contracts import AttemptRef, DemandRequest, Point
from core.errors import NO_ROBOT_AVAILABLE
from core.services import Service
from services.dispatch.models import Demand, Plan
from tests.support.waiting import wait_for
from workflows.planning_rounds import WORKFLOW_ID


async def test_a_robot_that_joins_the_fleet_is_committed_to_a_waiting_demand_by_the_next_round(platform, market):
    sessions = platform.databases.sessions(Service.DISPATCH)
    attempt = AttemptRef(delivery_id=uuid.uuid4(), attempt_id=uuid.uuid4(), number=1)
    request = DemandRequest(attempt=attempt, market=market.market.name, pickup=Point(**market.point(north_m=100)),
                            dropoff=Point(**market.point(north_m=400)))
    dispatch = DispatchActivities(sessions, platform.settings)
    with pytest.raises(ApplicationError) as raised:
        await dispatch.plan_demand(request)
    assert raised.value.type == NO_ROBOT_AVAILABLE

    # Registration writes the planning row only; no delivery asks again, so only a periodic round can plan it.
    robot_id = await market.add_robot()

    async def committed() -> Demand | None:
        async with sessions() as session:
            demand = await session.scalar(select(Demand).where(Demand.attempt_id == attempt.attempt_id))
        return demand if demand.status == "committed" else None

    demand = await wait_for(committed, timeout=platform.settings.planning_round_seconds * 4)
    assert demand.robot_id == robot_id
    async with sessions() as session:
        plan = await session.scalar(select(Plan).where(Plan.demand_id == demand.id))
    assert (plan.status, plan.planner, plan.robot_id) == ("committed", "ready-cost-v1", robot_id)
    assert (await dispatch.plan_demand(request)).plan_id == plan.id
    rounds = await platform.client.get_workflow_handle(WORKFLOW_ID).describe()
    assert rounds.status.name == "RUNNING"
