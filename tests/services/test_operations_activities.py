"""Operations activities against a real Postgres: idempotent retries, pilot choice, and freeing robots and pilots."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from activities.operations import OperationsActivities
from core.contracts import (
    AttemptRef, FieldTaskAction, FieldTaskChange, FieldTaskRequest, TaskClosure, TaskRequest, TripUpdate,
)
from core.errors import NO_PILOT_AVAILABLE, ROBOT_UNAVAILABLE
from core.settings import Settings
from services.operations import pilots
from services.operations import repository as repo
from services.operations.models import (
    FOTask, FOTaskHistory, Pilot, PilotAssignment, Robot, Task, TaskHistory, Trip, TripHistory,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("pilots_off_duty")


def operations(ops_sessions, settings: Settings, max_robots: int = 3) -> OperationsActivities:
    return OperationsActivities(ops_sessions, settings.model_copy(update={"pilot_max_robots": max_robots}))


async def new_robot(ops_sessions) -> str:
    robot_id = f"robot-{uuid4().hex[:12]}"
    async with ops_sessions.begin() as session:
        await repo.register_robot(session, robot_id, "test-market")
    return robot_id


async def pilot_on_duty(ops_sessions) -> UUID:
    async with ops_sessions.begin() as session:
        pilot_id = await pilots.create_pilot(session, f"pilot-{uuid4().hex[:8]}")
        await pilots.start_shift(session, pilot_id)
    return pilot_id


def task_request(robot_id: str, first_leg: str = "to_pickup", attempt_id: UUID | None = None) -> TaskRequest:
    attempt = AttemptRef(delivery_id=uuid4(), attempt_id=attempt_id or uuid4(), number=1)
    return TaskRequest(attempt=attempt, robot_id=robot_id, first_leg=first_leg)


async def count(ops_sessions, model, *where) -> int:
    async with ops_sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def history(ops_sessions, model, owner, owner_id) -> list[str]:
    async with ops_sessions() as session:
        rows = await session.scalars(select(model.status).where(owner == owner_id).order_by(model.sequence))
        return list(rows)


async def fetch(ops_sessions, model, row_id):
    async with ops_sessions() as session:
        return await session.get(model, row_id)


async def assert_business_error(call, error_type: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        await call
    assert caught.value.type == error_type and caught.value.non_retryable


async def test_assign_task_twice_returns_the_same_assignment_and_rows(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    pilot_id, robot_id = await pilot_on_duty(ops_sessions), await new_robot(ops_sessions)
    request = task_request(robot_id)

    first = await activities.assign_task(request)
    again = await activities.assign_task(request)

    assert again == first and first.pilot_id == pilot_id and first.robot_id == robot_id
    assert await history(ops_sessions, TaskHistory, TaskHistory.task_id, first.task_id) == ["created", "assigned"]
    assert await history(ops_sessions, TripHistory, TripHistory.trip_id, first.trip_id) == ["planned"]
    assert await count(ops_sessions, Task, Task.attempt_id == request.attempt.attempt_id) == 1
    assert await count(ops_sessions, Trip, Trip.task_id == first.task_id) == 1
    assert await count(ops_sessions, PilotAssignment, PilotAssignment.task_id == first.task_id) == 1
    task, robot, pilot = (await fetch(ops_sessions, Task, first.task_id), await fetch(ops_sessions, Robot, robot_id),
                          await fetch(ops_sessions, Pilot, pilot_id))
    assert (task.kind, task.status, task.version) == ("delivery", "assigned", 2)
    assert (robot.active_task_id, robot.status) == (first.task_id, "reserved")
    assignment = await fetch(ops_sessions, PilotAssignment, pilot.active_assignment_id)
    assert pilot.version == 3  # created, shift started, robot assigned
    assert (assignment.task_id, assignment.pilot_version, assignment.task_version) == (first.task_id, 3, 2)


async def test_without_a_pilot_on_shift_nothing_is_left_behind(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    robot_id = await new_robot(ops_sessions)
    async with ops_sessions.begin() as session:
        paused = await pilots.create_pilot(session, "on break")
        await pilots.start_shift(session, paused)
        await pilots.pause_shift(session, paused)

    await assert_business_error(activities.assign_task(task_request(robot_id)), NO_PILOT_AVAILABLE)

    assert await count(ops_sessions, Task, Task.robot_id == robot_id) == 0
    assert await count(ops_sessions, Trip, Trip.robot_id == robot_id) == 0
    robot = await fetch(ops_sessions, Robot, robot_id)
    assert (robot.active_task_id, robot.status) == (None, "idle")
    assert (await fetch(ops_sessions, Pilot, paused)).active_assignment_id is None


async def test_pilots_are_picked_least_loaded_and_up_to_the_cap(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings, max_robots=2)
    first, second = await pilot_on_duty(ops_sessions), await pilot_on_duty(ops_sessions)
    robots = [await new_robot(ops_sessions) for _ in range(5)]

    chosen = [(await activities.assign_task(task_request(robot_id))).pilot_id for robot_id in robots[:4]]

    assert sorted(chosen) == sorted([first, first, second, second])
    assert chosen[0] != chosen[1]  # the second robot goes to the pilot with none yet
    await assert_business_error(activities.assign_task(task_request(robots[4])), NO_PILOT_AVAILABLE)


async def test_a_robot_never_gets_two_active_tasks(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    await pilot_on_duty(ops_sessions)
    robot_id = await new_robot(ops_sessions)
    await activities.assign_task(task_request(robot_id))

    await assert_business_error(activities.assign_task(task_request(robot_id)), ROBOT_UNAVAILABLE)
    await assert_business_error(activities.assign_task(task_request("robot-never-registered")), ROBOT_UNAVAILABLE)
    with pytest.raises(repo.RobotBusy):  # the partial unique index holds even past the activity's own check
        async with ops_sessions.begin() as session:
            await repo.create_task(session, delivery_id=uuid4(), attempt_id=uuid4(), robot_id=robot_id,
                                   kind="delivery", occurred_at=NOW)
    assert await count(ops_sessions, Task, Task.robot_id == robot_id) == 1


async def test_trip_progress_twice_appends_each_step_once(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    await pilot_on_duty(ops_sessions)
    robot_id = await new_robot(ops_sessions)
    assignment = await activities.assign_task(task_request(robot_id))
    steps = [
        TripUpdate(task_id=assignment.task_id, leg="to_pickup", trip_status="in_progress", task_status="in_progress",
                   occurred_at=NOW),
        TripUpdate(task_id=assignment.task_id, leg="to_pickup", trip_status="completed", occurred_at=NOW),
        TripUpdate(task_id=assignment.task_id, leg="to_dropoff", trip_status="in_progress", occurred_at=NOW),
    ]
    for step in steps:
        await activities.record_trip_progress(step)
        await activities.record_trip_progress(step)

    async with ops_sessions() as session:
        trips = {t.leg: t for t in await session.scalars(select(Trip).where(Trip.task_id == assignment.task_id))}
    assert await history(ops_sessions, TripHistory, TripHistory.trip_id, trips["to_pickup"].id) == [
        "planned", "in_progress", "completed"]
    assert await history(ops_sessions, TripHistory, TripHistory.trip_id, trips["to_dropoff"].id) == [
        "planned", "in_progress"]
    assert trips["to_pickup"].started_at == NOW and trips["to_pickup"].ended_at == NOW
    assert await history(ops_sessions, TaskHistory, TaskHistory.task_id, assignment.task_id) == [
        "created", "assigned", "in_progress"]
    assert (await fetch(ops_sessions, Task, assignment.task_id)).version == 3
    assert (await fetch(ops_sessions, Robot, robot_id)).status == "en_route"


async def test_close_task_twice_frees_pilot_and_robot_once(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    pilot_id = await pilot_on_duty(ops_sessions)
    first = await activities.assign_task(task_request(await new_robot(ops_sessions)))
    second = await activities.assign_task(task_request(await new_robot(ops_sessions)))
    await activities.record_trip_progress(TripUpdate(task_id=second.task_id, leg="to_pickup",
                                                     trip_status="in_progress", occurred_at=NOW))
    closure = TaskClosure(task_id=second.task_id, robot_id=second.robot_id, outcome="cancelled", occurred_at=NOW)

    await activities.close_task(closure)
    await activities.close_task(closure)

    assert await history(ops_sessions, TaskHistory, TaskHistory.task_id, second.task_id) == [
        "created", "assigned", "cancelled"]
    assert await history(ops_sessions, TripHistory, TripHistory.trip_id, second.trip_id) == [
        "planned", "in_progress", "aborted"]
    robot, pilot = await fetch(ops_sessions, Robot, second.robot_id), await fetch(ops_sessions, Pilot, pilot_id)
    assert (robot.active_task_id, robot.status, robot.in_service) == (None, "idle", True)
    assert (await fetch(ops_sessions, PilotAssignment, pilot.active_assignment_id)).task_id == first.task_id
    assert pilot.version == 5  # created, shift, two assignments, one release
    released = await fetch(ops_sessions, PilotAssignment, (await pilot_assignment_ids(ops_sessions, second.task_id))[0])
    assert released.status == "released" and released.released_at is not None

    await activities.close_task(TaskClosure(task_id=first.task_id, robot_id=first.robot_id, outcome="completed",
                                            occurred_at=NOW))
    pilot = await fetch(ops_sessions, Pilot, pilot_id)
    assert (pilot.active_assignment_id, pilot.version) == (None, 6)
    assert await history(ops_sessions, TripHistory, TripHistory.trip_id, first.trip_id) == ["planned", "completed"]


async def pilot_assignment_ids(ops_sessions, task_id: UUID) -> list[UUID]:
    async with ops_sessions() as session:
        return list(await session.scalars(select(PilotAssignment.id).where(PilotAssignment.task_id == task_id)))


async def test_a_robot_out_of_service_takes_no_new_task_but_a_freed_one_does(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    await pilot_on_duty(ops_sessions)
    healthy, broken = await new_robot(ops_sessions), await new_robot(ops_sessions)
    for robot_id, out in ((healthy, False), (broken, True)):
        task = await activities.assign_task(task_request(robot_id))
        await activities.close_task(TaskClosure(task_id=task.task_id, robot_id=robot_id, outcome="failed",
                                                occurred_at=NOW, robot_out_of_service=out))

    robot = await fetch(ops_sessions, Robot, broken)
    assert (robot.status, robot.in_service, robot.active_task_id) == ("maintenance", False, None)
    await assert_business_error(activities.assign_task(task_request(broken)), ROBOT_UNAVAILABLE)
    back = await activities.assign_task(task_request(healthy, first_leg="to_store"))
    assert (await fetch(ops_sessions, Task, back.task_id)).kind == "return"


async def test_open_field_task_twice_opens_one(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    robot_id, attempt_id = await new_robot(ops_sessions), uuid4()
    request = FieldTaskRequest(robot_id=robot_id, kind="rescue", reason="stuck", delivery_id=uuid4(),
                               attempt_id=attempt_id)

    first = await activities.open_field_task(request)
    again = await activities.open_field_task(request)
    other = await activities.open_field_task(request.model_copy(update={"kind": "inspection"}))

    assert again == first != other and isinstance(first, UUID)
    assert await count(ops_sessions, FOTask, FOTask.robot_id == robot_id) == 2
    async with ops_sessions() as session:
        steps = list(await session.scalars(select(FOTaskHistory.status).where(FOTaskHistory.fo_task_id == first)))
    assert steps == ["open"]


async def test_a_field_task_keeps_its_robot_out_of_service_until_every_one_is_closed(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    await pilot_on_duty(ops_sessions)
    robot_id = await new_robot(ops_sessions)
    busy = await activities.assign_task(task_request(robot_id))
    swap = await activities.open_field_task(FieldTaskRequest(robot_id=robot_id, kind="battery_swap",
                                                             reason="battery at 12%", fo_task_id=uuid4()))

    robot = await fetch(ops_sessions, Robot, robot_id)
    assert (robot.in_service, robot.status, robot.active_task_id) == (False, "reserved", busy.task_id)
    await activities.close_task(TaskClosure(task_id=busy.task_id, robot_id=robot_id, outcome="completed",
                                            occurred_at=NOW))
    robot = await fetch(ops_sessions, Robot, robot_id)
    assert (robot.in_service, robot.status) == (False, "maintenance")  # its delivery ended; the swap is open
    await assert_business_error(activities.assign_task(task_request(robot_id)), ROBOT_UNAVAILABLE)

    rescue = await activities.open_field_task(FieldTaskRequest(robot_id=robot_id, kind="rescue", reason="tipped"))
    sent = FieldTaskAction(by="dispatcher", assignee="Sam")
    await activities.assign_field_task(FieldTaskChange(fo_task_id=swap, status="assigned", action=sent))
    await activities.assign_field_task(FieldTaskChange(fo_task_id=swap, status="assigned", action=sent))
    done = FieldTaskChange(fo_task_id=swap, status="done", action=FieldTaskAction(by="Sam", note="new pack"))
    assert await activities.close_field_task(done) is False  # the rescue is still open
    assert await activities.close_field_task(done) is False
    cancelled = FieldTaskChange(fo_task_id=rescue, status="cancelled", action=FieldTaskAction(by="dispatcher"))
    assert await activities.close_field_task(cancelled) is True

    robot = await fetch(ops_sessions, Robot, robot_id)
    assert (robot.in_service, robot.status) == (True, "idle")
    assert await history(ops_sessions, FOTaskHistory, FOTaskHistory.fo_task_id, swap) == ["open", "assigned", "done"]
    assert await history(ops_sessions, FOTaskHistory, FOTaskHistory.fo_task_id, rescue) == ["open", "cancelled"]
    assert (await fetch(ops_sessions, FOTask, swap)).assignee == "Sam"
    again = await activities.open_field_task(FieldTaskRequest(robot_id=robot_id, kind="battery_swap", reason="low"))
    assert again != swap  # the earlier swap is closed: a new need opens a new task


async def test_the_active_task_of_a_robot_is_the_one_not_closed(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings)
    await pilot_on_duty(ops_sessions)
    robot_id = await new_robot(ops_sessions)
    assignment = await activities.assign_task(task_request(robot_id))
    async with ops_sessions() as session:
        assert (await repo.active_task_for_robot(session, robot_id)).id == assignment.task_id
    await activities.close_task(TaskClosure(task_id=assignment.task_id, robot_id=robot_id, outcome="completed",
                                            occurred_at=NOW))
    async with ops_sessions() as session:
        assert await repo.active_task_for_robot(session, robot_id) is None
