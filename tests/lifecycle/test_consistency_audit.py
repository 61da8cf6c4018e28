"""Each delivery's rows agree across the seven databases: for deliveries this module drives to each end.

The lifecycle conftest audits every delivery the session's lifecycle tests made, once they are all done. The whole
audit (`deliveryctl audit`) starts from every database, so it also finds rows naming a delivery or an attempt that
Deliveries never had.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete

from cli.audit import audit
from core.services import Service
from services.integrations.models import Partner, PartnerDelivery
from services.state.models import LidCycleEvent
from tests.support.lifecycle import create
from tests.support.robots import RobotDriver, drive
from tests.support.waiting import wait_status, wait_terminal


async def cancelled_before_pickup(market) -> uuid.UUID:
    delivery_id = await create(market)
    await wait_status(market.platform, delivery_id, "robot_assigned")
    async with market.partner_http() as partner:
        await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
    assert (await wait_terminal(market.platform, delivery_id))["status"] == "cancelled"
    return delivery_id


async def returned_after_loading(market, robot: str) -> uuid.UUID:
    delivery_id = await create(market)
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.send("lid_opened")
    await driver.send("lid_closed")
    async with market.partner_http() as partner:
        await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "customer_cancelled"})
    for event in ("departed", "arrived_at_store", "lid_opened", "lid_closed"):
        await driver.send(event)
    assert (await wait_terminal(market.platform, delivery_id))["status"] == "returned"
    return delivery_id


async def test_no_orphan_rows_across_the_seven_databases(market):
    robot = await market.add_robot()
    await market.add_pilot()
    delivered = await create(market)
    assert (await drive(market, robot, delivered))["status"] == "delivered"
    ours = {delivered, await cancelled_before_pickup(market), await returned_after_loading(market, robot)}
    report = await audit(market.platform.databases, ours)
    assert report["problems"] == []
    assert report["attempts"] >= report["deliveries"]
    assert (report["deliveries"], report["attempts"]) == (3, 4)


async def test_the_audit_reports_a_delivery_missing_from_integrations(market):
    some_delivery = await create(market)
    report = await audit(market.platform.databases, {some_delivery, uuid.uuid4()})
    assert any("no partner order in Integrations" in problem for problem in report["problems"])


async def test_the_whole_audit_reports_rows_that_name_a_delivery_or_attempt_no_one_has(platform):
    """An order stored without its delivery (the API died before the workflow's first step), and a robot's lid
    cycle naming an attempt Deliveries never had: the whole audit reaches them from their own side."""
    stray_delivery, stray_attempt = uuid.uuid4(), uuid.uuid4()
    order = PartnerDelivery(partner_id=uuid.uuid4(), external_delivery_id=f"stray-{stray_delivery}",
                            delivery_id=stray_delivery, request_hash="stray", status="delivered", market="nowhere",
                            pickup_latitude=0, pickup_longitude=0, dropoff_latitude=0, dropoff_longitude=0,
                            tracking_token=uuid.uuid4().hex)
    cycle = LidCycleEvent(robot_id=f"stray-{stray_attempt}"[:64], sequence=1, event="lid_opened",
                          attempt_id=stray_attempt, latitude=0, longitude=0, occurred_at=datetime.now(UTC))
    partner = Partner(id=order.partner_id, name=f"stray partner {stray_delivery}")
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        session.add_all([partner, order])
    async with platform.databases.sessions(Service.STATE).begin() as session:
        session.add(cycle)
    try:
        problems = (await audit(platform.databases))["problems"]
    finally:
        async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
            await session.execute(delete(PartnerDelivery).where(PartnerDelivery.id == order.id))
            await session.execute(delete(Partner).where(Partner.id == partner.id))
        async with platform.databases.sessions(Service.STATE).begin() as session:
            await session.execute(delete(LidCycleEvent).where(LidCycleEvent.id == cycle.id))

    assert f"an Integrations order names delivery {stray_delivery}, which Deliveries does not have" in problems
    assert f"State names attempt {stray_attempt}, which Deliveries does not have" in problems
