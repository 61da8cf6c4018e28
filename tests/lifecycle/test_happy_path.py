"""A delivery from the partner's POST to `delivered`, on the real stack, leaving its part in every database."""

from uuid import UUID

from sqlalchemy import func, select

from core.services import Service
from services.deliveries.models import Attempt, Delivery
from services.dispatch.models import Demand, Plan, Robot as PlanningRobot
from services.integrations.models import PII, ExternalState, PartnerDelivery
from services.operations.models import PilotAssignment, Task, TaskHistory, Trip, TripHistory
from services.state.models import LidCycleEvent, StateHistory
from services.trip_monitor.models import MonitoredTrip
from tests.support.lifecycle import DELIVERED_TRAIL
from tests.support.platform import rows
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_for, wait_status, wait_terminal, workflow_status


async def test_delivery_reaches_every_service_and_the_partner(market, receiver):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    async with market.partner_http() as partner:
        created = await partner.post("/v1/deliveries", json=market.order())
        assert created.status_code == 201, created.text
        delivery_id = UUID(created.json()["id"])

        driver = RobotDriver(market, robot)
        await driver.to_pickup(delivery_id)
        async def assignment_at_pickup():  # read from the databases: a moment behind the event's receipt
            assignment = await driver.assignment()
            return assignment if assignment and assignment["status"] == "at_pickup" else None

        assignment = await wait_for(assignment_at_pickup, 10)
        assert assignment["delivery_id"] == str(delivery_id) and not assignment["lid_open"]
        await driver.load_and_go()
        await driver.hand_over()
        result = await wait_terminal(platform, delivery_id)
        assert result["status"] == "delivered"

        view = (await partner.get(f"/v1/deliveries/{delivery_id}")).json()
    assert view["status"] == "delivered"
    assert [h["status"] for h in view["history"]] == [
        "created", "robot_assigned", "en_route_to_pickup", "at_pickup", "picked_up", "en_route_to_dropoff",
        "at_dropoff", "delivered", "succeeded"]

    # Deliveries: the delivery points at its only attempt, which succeeded with the robot.
    delivery = (await rows(platform, Service.DELIVERIES, select(Delivery).where(Delivery.id == delivery_id)))[0]
    attempt = (await rows(platform, Service.DELIVERIES, select(Attempt).where(Attempt.delivery_id == delivery_id)))
    assert len(attempt) == 1 and delivery.latest_attempt_id == attempt[0].id
    attempt_id = attempt[0].id
    assert attempt[0].status == "succeeded" and attempt[0].robot_id == robot
    # Integrations: the order, its sealed PII and the partner-facing trail.
    order = (await rows(platform, Service.INTEGRATIONS,
                        select(PartnerDelivery).where(PartnerDelivery.delivery_id == delivery_id)))[0]
    pii = (await rows(platform, Service.INTEGRATIONS, select(PII).where(PII.partner_delivery_id == order.id)))[0]
    assert "Test Customer" not in pii.customer_name_encrypted and "3105550199" not in pii.customer_phone_encrypted
    # Dispatch: the demand was fulfilled by a committed-then-released plan; the robot is free again.
    demand = (await rows(platform, Service.DISPATCH, select(Demand).where(Demand.attempt_id == attempt_id)))[0]
    assert demand.status == "fulfilled" and demand.robot_id == robot
    assert (await rows(platform, Service.DISPATCH, select(Plan.status).where(Plan.demand_id == demand.id))) == [
        "released"]
    planning = (await rows(platform, Service.DISPATCH, select(PlanningRobot).where(PlanningRobot.id == robot)))[0]
    assert planning.status == "idle" and planning.active_demand_id is None and planning.scheduled_pickup_id is None
    # Operations: task and trips carry the delivery and attempt keys; histories are complete.
    task = (await rows(platform, Service.OPERATIONS, select(Task).where(Task.delivery_id == delivery_id)))[0]
    assert task.attempt_id == attempt_id and task.status == "completed"
    trips = await rows(platform, Service.OPERATIONS, select(Trip).where(Trip.task_id == task.id).order_by(Trip.leg))
    assert {(t.leg, t.status) for t in trips} == {("to_pickup", "completed"), ("to_dropoff", "completed")}
    trip_history = await rows(platform, Service.OPERATIONS, select(TripHistory.status).join(
        Trip, Trip.id == TripHistory.trip_id).where(Trip.task_id == task.id).order_by(Trip.leg, TripHistory.sequence))
    assert trip_history.count("completed") == 2
    task_history = await rows(platform, Service.OPERATIONS, select(TaskHistory.status).where(
        TaskHistory.task_id == task.id).order_by(TaskHistory.sequence))
    assert task_history[-1] == "completed" and len(task_history) == len(set(task_history))
    assignment = (await rows(platform, Service.OPERATIONS,
                             select(PilotAssignment).where(PilotAssignment.task_id == task.id)))[0]
    assert assignment.status == "released"
    # Trip Monitor: one watch per attempt, finished.
    watch = (await rows(platform, Service.TRIP_MONITOR,
                        select(MonitoredTrip).where(MonitoredTrip.attempt_id == attempt_id)))
    assert len(watch) == 1 and watch[0].status == "finished" and watch[0].delivery_id == delivery_id
    # State: every accepted event once, and two lid cycles with GPS.
    events = await rows(platform, Service.STATE, select(StateHistory.event_type).where(
        StateHistory.attempt_id == attempt_id, StateHistory.accepted.is_(True)).order_by(StateHistory.sequence))
    assert events == ["departed", "arrived_at_pickup", "lid_opened", "lid_closed", "departed",
                      "arrived_at_dropoff", "lid_opened", "lid_closed"]
    lids = await rows(platform, Service.STATE, select(LidCycleEvent).where(LidCycleEvent.attempt_id == attempt_id))
    assert len(lids) == 4 and all(lid.latitude and lid.longitude for lid in lids)

    # The partner got every status, in order, each signed, exactly once.
    async def all_callbacks():
        return len(receiver.statuses(delivery_id)) == 8

    await wait_for(all_callbacks)
    assert receiver.statuses(delivery_id) == DELIVERED_TRAIL
    sequences = [c["data"]["sequence"] for c in receiver.received if c["data"]["delivery_id"] == str(delivery_id)]
    assert sequences == list(range(1, 9)) and receiver.bad_signatures == 0
    delivered = await rows(platform, Service.INTEGRATIONS, select(func.count()).select_from(ExternalState).where(
        ExternalState.partner_delivery_id == order.id, ExternalState.callback_status == "delivered"))
    assert delivered == [8]


async def test_an_event_that_does_not_fit_is_refused_and_kept_as_rejected(market):
    robot = await market.add_robot()
    await market.add_pilot()
    async with market.partner_http() as partner:
        delivery_id = UUID((await partner.post("/v1/deliveries", json=market.order())).json()["id"])
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    refused = await driver.send("arrived_at_dropoff", expect=409, event_id="out-of-order-1")
    assert refused.json()["code"] == "event_rejected" and "at_pickup" in refused.json()["message"]
    stored = await rows(market.platform, Service.STATE, select(StateHistory).where(
        StateHistory.robot_id == robot, StateHistory.event_id == "out-of-order-1"))
    assert len(stored) == 1 and stored[0].accepted is False
    # A resent event is idempotent: same answer, applied once.
    first = await driver.send("lid_opened", event_id="lid-once")
    again = await driver.send("lid_opened", event_id="lid-once")
    assert first.json() == again.json()
    # A refused event stays refused: resent once it would fit, it gets its first answer and changes nothing.
    await driver.send("lid_closed")
    await driver.send("departed")
    resent = await driver.send("arrived_at_dropoff", expect=409, event_id="out-of-order-1")
    assert (resent.json()["code"], resent.json()["message"]) == (refused.json()["code"], refused.json()["message"])
    assert (await workflow_status(market.platform, delivery_id))["status"] == "en_route_to_dropoff"


async def test_an_event_resent_after_its_delivery_ended_gets_the_same_answer(market):
    robot = await market.add_robot()
    await market.add_pilot()
    async with market.partner_http() as partner:
        delivery_id = UUID((await partner.post("/v1/deliveries", json=market.order())).json()["id"])
    driver = RobotDriver(market, robot)
    await wait_status(market.platform, delivery_id, "robot_assigned")
    departed = await driver.send("departed", event_id="first-departure")
    await driver.send("arrived_at_pickup")
    await driver.load_and_go()
    await driver.send("lid_opened")
    last = await driver.send("lid_closed", event_id="last-lid-close")
    await wait_terminal(market.platform, delivery_id)
    again = await driver.send("lid_closed", event_id="last-lid-close")  # its task is closed by now
    assert again.json() == last.json() and last.json()["status"] == "delivered"
    # On the robot's next delivery a very late resend of the first departure would fit; it is the first
    # delivery's event, answered as it was then, and the next delivery does not move.
    async with market.partner_http() as partner:
        next_id = UUID((await partner.post("/v1/deliveries", json=market.order())).json()["id"])
    await wait_status(market.platform, next_id, "robot_assigned")
    assert (await driver.assignment())["delivery_id"] == str(next_id)
    late = await driver.send("departed", event_id="first-departure")
    assert late.json() == departed.json() and late.json()["delivery_id"] == str(delivery_id)
    assert (await workflow_status(market.platform, next_id))["status"] == "robot_assigned"


async def test_same_order_twice_is_one_delivery_and_a_changed_body_is_a_conflict(market):
    async with market.partner_http() as partner:
        order = market.order()
        first = await partner.post("/v1/deliveries", json=order)
        right_away = await partner.get(f"/v1/deliveries/{first.json()['id']}")
        assert right_away.status_code == 200 and right_away.json()["status"] == "created"
        again = await partner.post("/v1/deliveries", json=order)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        order["customer"]["name"] = "Someone Else"
        conflict = await partner.post("/v1/deliveries", json=order)
    assert conflict.status_code == 409 and conflict.json()["code"] == "duplicate_delivery"
    assert conflict.json()["field_errors"][0]["field"] == "external_id"
