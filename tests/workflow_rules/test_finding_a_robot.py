"""Before the robot sets off: no robot, a robot that is not deployed or not available, no pilot."""

from core.errors import NO_PILOT_AVAILABLE, ROBOT_NOT_DEPLOYED, ROBOT_UNAVAILABLE
from tests.support.workflow_stubs import AT_DROPOFF, BACK_TO_STORE, business


async def test_no_robot_until_the_search_deadline_cancels_the_delivery(start, services):
    services.fleet.clear()
    delivery = await start(robot_search_seconds=120)
    assert (await delivery.until(lambda view: view.waiting_for == "robot")).status == "created"
    result = await delivery.result()
    assert (result.status, result.reason) == ("cancelled", "no_robot_available")
    created, cancelled = result.trail
    assert (cancelled.at - created.at).total_seconds() >= delivery.order.policy.robot_search_seconds
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.demand_fulfilled) == (None, False)
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("cancelled", "no_robot_available")
    assert services.args("assign_task") == [] and services.args("close_task") == []
    assert services.told_partner() == ["created", "cancelled"]


async def test_no_robot_parks_for_an_operator_when_the_policy_says_park(start, services):
    services.fleet.clear()
    delivery = await start(no_robot_action="park", robot_search_seconds=0.2)
    view = await delivery.parked("no robot available")
    assert (view.status, view.attention) == ("created", "no robot available")
    assert await delivery.search_attributes() == {
        "DeliveryStatus": "NEEDS_OPERATOR", "AttentionReason": "no robot available", "PartnerId": str(
            delivery.order.partner_id), "ExternalDeliveryId": delivery.order.external_delivery_id, "Market": "test"}
    assert services.args("release_robot") == []


async def test_a_robot_that_is_not_deployed_is_excluded_and_another_one_chosen(start, services):
    services.fail("verify_deployment", business(ROBOT_NOT_DEPLOYED))
    delivery = await start()
    assert (await delivery.reached("robot_assigned")).robot_id == "robot-2"
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.out_of_service, release.demand_fulfilled) == ("robot-1", True, False)
    assert [demand.exclude_robot_ids for demand in services.args("plan_demand")] == [[], ["robot-1"]]


async def test_a_robot_unavailable_at_assignment_is_released_and_another_one_chosen(start, services):
    services.fail("assign_task", business(ROBOT_UNAVAILABLE))
    delivery = await start()
    assert (await delivery.reached("robot_assigned")).robot_id == "robot-2"
    assert [request.robot_id for request in services.args("assign_task")] == ["robot-1", "robot-2"]
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.out_of_service, release.demand_fulfilled) == ("robot-1", False, False)


async def test_no_pilot_until_the_pilot_deadline_cancels_and_releases_the_robot(start, services):
    services.fail("assign_task", business(NO_PILOT_AVAILABLE), times=None)
    delivery = await start(pilot_wait_seconds=120)
    view = await delivery.until(lambda view: view.waiting_for == "pilot")
    assert (view.status, view.robot_id) == ("created", "robot-1")
    result = await delivery.result()
    assert (result.status, result.reason) == ("cancelled", "no_pilot_available")
    created, cancelled = result.trail
    assert (cancelled.at - created.at).total_seconds() >= 120
    (release,) = services.args("release_robot")
    assert (release.robot_id, release.demand_fulfilled) == ("robot-1", False)
    (outcome,) = services.args("end_attempt")
    assert (outcome.status, outcome.reason) == ("cancelled", "no_pilot_available")


async def test_no_pilot_for_a_return_parks_until_an_operator_retries(start, services):
    delivery = await start(customer_no_show_seconds=0.3, pilot_wait_seconds=0.2, pilot_retry_seconds=0.1)
    await delivery.play(*AT_DROPOFF)
    services.fail("assign_task", business(NO_PILOT_AVAILABLE), times=None)
    view = await delivery.parked("no pilot is free to supervise the robot bringing the order back")
    assert view.attempt.kind == "return"
    services.heal("assign_task")
    await delivery.decide("retry")
    assert (await delivery.reached("returning")).attention is None
    await delivery.play(*BACK_TO_STORE)
    assert (await delivery.result()).status == "returned"
    assert [request.first_leg for request in services.args("assign_task")][-1] == "to_store"


def no_robot_yet(planned: bool, ready_at=None):
    """Dispatch's `NoRobotAvailable` with what it says of the demand's search."""
    from temporalio.exceptions import ApplicationError

    from core.errors import NO_ROBOT_AVAILABLE

    search = {"planned": planned, "ready_at": ready_at.isoformat() if ready_at else None}
    return ApplicationError("no robot is free yet", search, type=NO_ROBOT_AVAILABLE, non_retryable=True)


async def test_the_robot_search_runs_from_the_ready_time(start, services):
    from datetime import UTC, datetime, timedelta

    ready_at = datetime.now(UTC) + timedelta(minutes=30)
    services.fail("plan_demand", no_robot_yet(False, ready_at), times=None)
    delivery = await start(robot_search_seconds=120, robot_retry_seconds=30)
    result = await delivery.result()
    assert (result.status, result.reason) == ("cancelled", "no_robot_available")
    created, cancelled = result.trail
    assert cancelled.at >= ready_at + timedelta(seconds=120) - timedelta(seconds=1)


async def test_a_delivery_whose_robot_is_planned_is_not_cancelled_by_the_search_deadline(start, services):
    services.fail("plan_demand", no_robot_yet(True), times=20)  # 20 tries, 0.05 s apart: well past the deadline
    delivery = await start(robot_search_seconds=0.2, robot_retry_seconds=0.05)
    assert (await delivery.reached("robot_assigned")).robot_id == "robot-1"
    assert len(services.args("plan_demand")) == 21
