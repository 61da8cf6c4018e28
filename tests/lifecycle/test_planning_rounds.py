"""Planning rounds on the real stack: a robot that joins the fleet is given a waiting demand, and a delivery is
told when a round commits a robot to it."""

import uuid

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.dispatch import DispatchActivities
from core.contracts import AttemptRef, DemandRequest, Point
from core.errors import NO_ROBOT_AVAILABLE
from core.services import ROBOT_COMMITTED_SIGNAL, Service
from services.dispatch.models import Demand, Plan
from tests.support.lifecycle import create
from tests.support.waiting import wait_for, wait_status, workflow_status
from workflows.delivery import workflow_id
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


async def test_a_delivery_waiting_for_a_robot_hears_at_once_when_a_round_commits_one(market, lifecycle_policy):
    """The waiting delivery asks again only every 5 minutes here: its robot reaches it because Dispatch signals
    the commit (`robot_committed`) once the released robot is given to it."""
    platform = market.platform
    robot_id = await market.add_robot()
    await market.add_pilot()
    lifecycle_policy(robot_retry_seconds=300, robot_search_seconds=600)
    first = await create(market)
    await wait_status(platform, first, "robot_assigned")
    second = await create(market)

    async def waiting_for_a_robot():
        return (await workflow_status(platform, second))["waiting_for"] == "robot"

    await wait_for(waiting_for_a_robot)
    async with market.partner_http() as partner:
        assert (await partner.post(f"/v1/deliveries/{first}/cancel", json={"reason": "customer_cancelled"})).is_success
    assigned = await wait_status(platform, second, "robot_assigned", timeout=30)
    assert assigned["robot_id"] == robot_id
    history = await platform.client.get_workflow_handle(workflow_id(second)).fetch_history()
    signals = [event.workflow_execution_signaled_event_attributes.signal_name for event in history.events
               if event.HasField("workflow_execution_signaled_event_attributes")]
    assert signals == [ROBOT_COMMITTED_SIGNAL]
