"""A delivery on the real platform as the tests create and check it: the partner's order, its attempts, its robot."""

from uuid import UUID

from sqlalchemy import select

from cli import ops
from cli.audit import audit
from core.services import Service
from services.deliveries.models import Attempt
from services.integrations.models import Partner, PartnerDelivery
from services.dispatch.models import Robot as PlanningRobot
from services.operations.models import PilotAssignment, Robot as OpsRobot
from tests.support.platform import Platform, rows
from tests.support.waiting import started, wait_for

# Every status of a delivery that went as planned, as the partner hears them.
DELIVERED_TRAIL = ["created", "robot_assigned", "en_route_to_pickup", "at_pickup", "picked_up",
                   "en_route_to_dropoff", "at_dropoff", "delivered"]


async def create(market) -> UUID:
    async with market.partner_http() as partner:
        response = await partner.post("/v1/deliveries", json=market.order())
    assert response.status_code == 201, response.text
    delivery_id = UUID(response.json()["id"])
    await started(market.platform, delivery_id)
    return delivery_id


async def attempts(platform: Platform, delivery_id) -> list[Attempt]:
    return await rows(platform, Service.DELIVERIES,
                      select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number))


async def assert_robot_free(platform: Platform, robot_id: str, status: str = "idle") -> None:
    planning = (await rows(platform, Service.DISPATCH, select(PlanningRobot).where(PlanningRobot.id == robot_id)))[0]
    assert (planning.status, planning.active_demand_id, planning.scheduled_pickup_id) == (status, None, None)
    ops_robot = (await rows(platform, Service.OPERATIONS, select(OpsRobot).where(OpsRobot.id == robot_id)))[0]
    assert ops_robot.active_task_id is None
    active = await rows(platform, Service.OPERATIONS, select(PilotAssignment).where(
        PilotAssignment.robot_id == robot_id, PilotAssignment.status == "active"))
    assert active == []


async def parked(platform: Platform, delivery_id, reason_part: str) -> dict:
    """The delivery as `deliveryctl ops stuck` lists it, once it is parked for `reason_part`."""
    async def listed():
        found = [p for p in await ops.stuck(platform.client) if p["workflow_id"] == f"delivery:{delivery_id}"]
        return found[0] if found and reason_part in (found[0]["reason"] or "") else None

    listed.__name__ = f"delivery parked for '{reason_part}'"
    return await wait_for(listed, timeout=30, interval=0.3)


async def audit_test_markets(platform: Platform) -> dict:
    """`deliveryctl audit` over every delivery the tests' own markets made (their partners are named after them)."""
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        ours = set(await session.scalars(select(PartnerDelivery.delivery_id).join(
            Partner, Partner.id == PartnerDelivery.partner_id).where(Partner.name.like("% partner test-market-%"))))
    return await audit(platform.databases, ours)
