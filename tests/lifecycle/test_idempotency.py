"""Every activity fails once after its write commits; the retries add nothing twice anywhere."""

from uuid import UUID

from sqlalchemy import func, select

from core.services import Service
from services.deliveries.models import Attempt, AttemptHistory
from services.dispatch.models import Demand, Plan
from services.integrations.models import ExternalState
from services.operations.models import PilotAssignment, Task, TaskHistory, Trip, TripHistory
from services.state.models import LidCycleEvent, StateHistory
from services.trip_monitor.models import MonitoredTrip
from tests.support.platform import rows
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_for, wait_terminal


# The activities of a delivered lifecycle, each at least this often (a trip watch ends by its cancel or by itself,
# as it happens, so it is not counted).
STEPS = {"accept_order": 1, "create_delivery": 1, "plan_demand": 1, "verify_deployment": 1, "assign_task": 1,
         "record_status": 8, "send_status_callback": 8, "record_trip_progress": 4, "close_task": 1, "end_attempt": 1,
         "release_robot": 1, "stop_watching": 1}


async def duplicates(platform, service: Service, model, *key) -> list:
    """Rows of `model` that share `key` with another row."""
    statement = select(*key, func.count()).group_by(*key).having(func.count() > 1)
    async with platform.databases.sessions(service).begin() as session:
        return list(await session.execute(statement))


async def test_a_delivery_whose_every_activity_fails_once_after_commit_has_no_duplicates(market, receiver, flaky):
    platform = market.platform
    robot = await market.add_robot()
    await market.add_pilot()
    flaky.on = True
    try:
        async with market.partner_http() as partner:
            delivery_id = UUID((await partner.post("/v1/deliveries", json=market.order())).json()["id"])
        driver = RobotDriver(market, robot)
        await driver.to_pickup(delivery_id)
        await driver.load_and_go()
        await driver.hand_over()
        assert (await wait_terminal(platform, delivery_id))["status"] == "delivered"
    finally:
        flaky.on = False
    failed = flaky.types_failed(f"delivery:{delivery_id}")
    assert [name for name, times in STEPS.items() if failed[name] < times] == [], \
        f"every activity of the lifecycle fails once after committing: {failed}"

    (attempt,) = await rows(platform, Service.DELIVERIES, select(Attempt).where(Attempt.delivery_id == delivery_id))
    history = await rows(platform, Service.DELIVERIES, select(AttemptHistory.status).where(
        AttemptHistory.attempt_id == attempt.id).order_by(AttemptHistory.sequence))
    assert len(history) == len(set(history)) == 9
    assert len(await rows(platform, Service.DISPATCH, select(Demand).where(Demand.attempt_id == attempt.id))) == 1
    assert len(await rows(platform, Service.DISPATCH, select(Plan).join(Demand, Demand.id == Plan.demand_id).where(
        Demand.attempt_id == attempt.id))) == 1
    (task,) = await rows(platform, Service.OPERATIONS, select(Task).where(Task.attempt_id == attempt.id))
    assert len(await rows(platform, Service.OPERATIONS, select(Trip).where(Trip.task_id == task.id))) == 2
    assert len(await rows(platform, Service.OPERATIONS,
                          select(PilotAssignment).where(PilotAssignment.task_id == task.id))) == 1
    task_history = await rows(platform, Service.OPERATIONS,
                              select(TaskHistory.status).where(TaskHistory.task_id == task.id))
    assert len(task_history) == len(set(task_history))
    assert await duplicates(platform, Service.OPERATIONS, TripHistory, TripHistory.trip_id, TripHistory.status) == []
    events = await rows(platform, Service.STATE, select(StateHistory.event_type).where(
        StateHistory.attempt_id == attempt.id))
    assert len(events) == 8
    assert len(await rows(platform, Service.STATE,
                          select(LidCycleEvent).where(LidCycleEvent.attempt_id == attempt.id))) == 4
    assert len(await rows(platform, Service.TRIP_MONITOR,
                          select(MonitoredTrip).where(MonitoredTrip.attempt_id == attempt.id))) == 1

    async def callbacks_done():
        return len(receiver.statuses(delivery_id)) >= 8

    await wait_for(callbacks_done)
    received = [c["data"]["sequence"] for c in receiver.received if c["data"]["delivery_id"] == str(delivery_id)]
    assert received == list(range(1, 9)), "each callback exactly once, in order"
    assert await duplicates(platform, Service.INTEGRATIONS, ExternalState, ExternalState.partner_delivery_id,
                            ExternalState.sequence) == []
