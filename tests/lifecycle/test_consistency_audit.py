"""Each delivery's rows agree across the seven databases: for deliveries this module drives to each end.

The lifecycle conftest audits every delivery the session's lifecycle tests made, once they are all done.
"""

import uuid

from cli.audit import audit
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
