"""Pilot shifts and assignments under concurrency: compare-and-set on versions, never a lost update."""

import asyncio
from collections import Counter
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from activities.operations import OperationsActivities
from core.contracts import AttemptRef, TaskClosure, TaskRequest
from core.errors import NO_PILOT_AVAILABLE
from core.settings import Settings
from services.operations import pilots
from services.operations import repository as repo
from services.operations.models import Pilot, PilotAssignment, PilotShift, PilotShiftStateHistory


pytestmark = pytest.mark.usefixtures("pilots_off_duty")


def operations(ops_sessions, settings: Settings, max_robots: int) -> OperationsActivities:
    return OperationsActivities(ops_sessions, settings.model_copy(update={"pilot_max_robots": max_robots}))


async def new_robots(ops_sessions, count: int) -> list[str]:
    robot_ids = [f"robot-{uuid4().hex[:12]}" for _ in range(count)]
    async with ops_sessions.begin() as session:
        for robot_id in robot_ids:
            await repo.register_robot(session, robot_id, "test-market")
    return robot_ids


async def pilots_on_duty(ops_sessions, count: int) -> list[UUID]:
    async with ops_sessions.begin() as session:
        pilot_ids = [await pilots.create_pilot(session, f"pilot-{uuid4().hex[:8]}") for _ in range(count)]
        for pilot_id in pilot_ids:
            await pilots.start_shift(session, pilot_id)
    return pilot_ids


def task_request(robot_id: str) -> TaskRequest:
    return TaskRequest(attempt=AttemptRef(delivery_id=uuid4(), attempt_id=uuid4(), number=1), robot_id=robot_id,
                       first_leg="to_pickup")


async def pilot_state(ops_sessions, pilot_id: UUID) -> tuple[Pilot, list[PilotAssignment]]:
    async with ops_sessions() as session:
        pilot = await session.get(Pilot, pilot_id)
        assignments = await session.scalars(select(PilotAssignment).where(PilotAssignment.pilot_id == pilot_id))
        return pilot, list(assignments)


async def test_a_shift_starts_pauses_resumes_and_ends_with_history(ops_sessions):
    async with ops_sessions.begin() as session:
        pilot_id = await pilots.create_pilot(session, "Ada")
    steps = [pilots.start_shift, pilots.pause_shift, pilots.resume_shift, pilots.end_shift]
    seen = []
    for step in steps:
        async with ops_sessions.begin() as session:
            shift_id = await step(session, pilot_id)
        seen.append((await pilot_state(ops_sessions, pilot_id))[0].active_shift_id)

    assert seen == [shift_id, shift_id, shift_id, None]
    async with ops_sessions() as session:
        shift = await session.get(PilotShift, shift_id)
        states = list(await session.scalars(select(PilotShiftStateHistory.state)
                                            .where(PilotShiftStateHistory.shift_id == shift_id)
                                            .order_by(PilotShiftStateHistory.sequence)))
        pilot = await session.get(Pilot, pilot_id)
    assert states == ["active", "on_break", "active", "ended"]
    assert (shift.status, shift.version, shift.ended_at is not None) == ("ended", 4, True)
    assert pilot.version == 5  # created, then one write per shift step


async def test_shift_changes_that_do_not_fit_are_refused(ops_sessions):
    (pilot_id,) = await pilots_on_duty(ops_sessions, 1)
    for refused in (pilots.start_shift, pilots.resume_shift):
        with pytest.raises(pilots.ShiftError):
            async with ops_sessions.begin() as session:
                await refused(session, pilot_id)
    async with ops_sessions.begin() as session:
        await pilots.end_shift(session, pilot_id)
    for refused in (pilots.pause_shift, pilots.end_shift):
        with pytest.raises(pilots.ShiftError):
            async with ops_sessions.begin() as session:
                await refused(session, pilot_id)
    assert (await pilot_state(ops_sessions, pilot_id))[0].version == 3  # created, started, ended; refusals wrote nothing


async def test_two_concurrent_shift_starts_open_one_shift(ops_sessions):
    async with ops_sessions.begin() as session:
        pilot_id = await pilots.create_pilot(session, "Grace")

    async def start():
        async with ops_sessions.begin() as session:
            return await pilots.start_shift(session, pilot_id)

    results = await asyncio.gather(start(), start(), return_exceptions=True)

    assert sorted(type(r).__name__ for r in results) == ["ShiftError", "UUID"]
    pilot = (await pilot_state(ops_sessions, pilot_id))[0]
    assert pilot.active_shift_id in results and pilot.version == 2


async def test_a_write_against_a_stale_version_is_detected_not_applied(ops_sessions):
    (pilot_id,) = await pilots_on_duty(ops_sessions, 1)
    async with ops_sessions() as first, ops_sessions() as second:
        seen_first = await first.scalar(select(Pilot.version).where(Pilot.id == pilot_id))
        seen_second = await second.scalar(select(Pilot.version).where(Pilot.id == pilot_id))
        assert await repo.compare_and_set(first, Pilot, pilot_id, seen_first, name="first") == seen_first + 1
        await first.commit()
        assert await repo.compare_and_set(second, Pilot, pilot_id, seen_second, name="second") is None
        await second.commit()
    pilot = (await pilot_state(ops_sessions, pilot_id))[0]
    assert (pilot.name, pilot.version) == ("first", seen_first + 1)


@pytest.mark.parametrize("round_", range(5))
async def test_two_robots_racing_for_one_pilot_with_room_for_one(ops_sessions, ops_settings, round_):
    activities = operations(ops_sessions, ops_settings, max_robots=1)
    (pilot_id,) = await pilots_on_duty(ops_sessions, 1)
    robots = await new_robots(ops_sessions, 2)

    results = await asyncio.gather(*(activities.assign_task(task_request(r)) for r in robots), return_exceptions=True)

    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and won[0].pilot_id == pilot_id
    assert len(lost) == 1 and isinstance(lost[0], ApplicationError) and lost[0].type == NO_PILOT_AVAILABLE
    pilot, assignments = await pilot_state(ops_sessions, pilot_id)
    assert [a.task_id for a in assignments] == [won[0].task_id]
    assert pilot.version == 3 and assignments[0].pilot_version == 3  # created, shift, one assignment
    assert pilot.active_assignment_id == assignments[0].id


async def test_thirty_concurrent_assignments_against_five_pilots_lose_no_update(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings, max_robots=3)
    pilot_ids = await pilots_on_duty(ops_sessions, 5)
    robots = await new_robots(ops_sessions, 30)

    results = await asyncio.gather(*(activities.assign_task(task_request(r)) for r in robots), return_exceptions=True)

    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ApplicationError) and r.type == NO_PILOT_AVAILABLE]
    assert len(won) == 15 and len(refused) == 15, [r for r in results if isinstance(r, BaseException)][:3]
    assert Counter(r.pilot_id for r in won) == {pilot_id: 3 for pilot_id in pilot_ids}
    for pilot_id in pilot_ids:
        pilot, assignments = await pilot_state(ops_sessions, pilot_id)
        assert pilot.version == 2 + len(assignments)  # every write advanced the version exactly once
        assert sorted(a.pilot_version for a in assignments) == [3, 4, 5]
        assert pilot.active_assignment_id == max(assignments, key=lambda a: a.pilot_version).id
    async with ops_sessions() as session:
        summaries = {p.id: p for p in await pilots.list_pilots(session)}
        won_tasks = await session.scalar(select(func.count()).select_from(PilotAssignment)
                                         .where(PilotAssignment.task_id.in_([r.task_id for r in won])))
    assert won_tasks == 15
    assert all(summaries[p].active_assignments == 3 and summaries[p].shift_status == "active" for p in pilot_ids)


async def test_releases_and_claims_racing_on_one_pilot_keep_every_write(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings, max_robots=4)  # room for one while three are released
    (pilot_id,) = await pilots_on_duty(ops_sessions, 1)
    robots = await new_robots(ops_sessions, 6)
    held = [await activities.assign_task(task_request(r)) for r in robots[:3]]
    now = datetime.now(UTC)
    closures = [TaskClosure(task_id=t.task_id, robot_id=t.robot_id, outcome="completed", occurred_at=now) for t in held]

    results = await asyncio.gather(*(activities.close_task(c) for c in closures),
                                   *(activities.assign_task(task_request(r)) for r in robots[3:]),
                                   return_exceptions=True)

    claimed = [r for r in results[3:] if not isinstance(r, BaseException)]
    assert results[:3] == [None, None, None] and len(claimed) >= 1, results
    refused = [r for r in results[3:] if isinstance(r, BaseException)]
    assert all(isinstance(r, ApplicationError) and r.type == NO_PILOT_AVAILABLE for r in refused), refused
    pilot, assignments = await pilot_state(ops_sessions, pilot_id)
    active = [a for a in assignments if a.status == "active"]
    assert sorted(a.task_id for a in active) == sorted(r.task_id for r in claimed)
    assert pilot.version == 2 + 3 + 3 + len(claimed)  # shift, three claims, three releases, the new claims
    assert pilot.active_assignment_id == max(active, key=lambda a: a.pilot_version).id


async def shift_steps(ops_sessions, pilot_id: UUID, steps) -> list[str]:
    """Run shift changes one transaction each, as operators would; the refused ones are reported, not raised."""
    outcomes = []
    for step in steps:
        try:
            async with ops_sessions.begin() as session:
                await step(session, pilot_id)
            outcomes.append(step.__name__)
        except pilots.ShiftError:
            outcomes.append(f"refused {step.__name__}")
    return outcomes


async def test_forty_assignments_racing_shift_changes_respect_the_cap_and_lose_no_update(ops_sessions, ops_settings):
    activities = operations(ops_sessions, ops_settings, max_robots=3)
    pilot_ids = await pilots_on_duty(ops_sessions, 5)
    async with ops_sessions.begin() as session:
        latecomer = await pilots.create_pilot(session, f"pilot-{uuid4().hex[:8]}")
    robots = await new_robots(ops_sessions, 40)
    changes = [
        shift_steps(ops_sessions, pilot_ids[0], [pilots.pause_shift, pilots.resume_shift]),
        shift_steps(ops_sessions, pilot_ids[1], [pilots.end_shift]),
        shift_steps(ops_sessions, pilot_ids[2], [pilots.pause_shift]),
        shift_steps(ops_sessions, latecomer, [pilots.start_shift, pilots.pause_shift, pilots.resume_shift]),
    ]

    results = await asyncio.gather(*(activities.assign_task(task_request(r)) for r in robots), *changes,
                                   return_exceptions=True)

    assignments, shift_outcomes = results[:40], results[40:]
    assert all("refused" not in step for steps in shift_outcomes for step in steps), shift_outcomes
    won = [r for r in assignments if not isinstance(r, BaseException)]
    refused = [r for r in assignments if isinstance(r, ApplicationError) and r.type == NO_PILOT_AVAILABLE]
    assert len(won) + len(refused) == 40, [r for r in assignments if isinstance(r, BaseException)][:3]
    # Pilots 3 and 4 stay on shift throughout, so a task is refused only once both are full.
    assert refused and Counter(r.pilot_id for r in won)[pilot_ids[3]] == 3 == Counter(
        r.pilot_id for r in won)[pilot_ids[4]]
    async with ops_sessions() as session:
        for pilot_id in [*pilot_ids, latecomer]:
            pilot = await session.get(Pilot, pilot_id)
            claims = list(await session.scalars(select(PilotAssignment).where(PilotAssignment.pilot_id == pilot_id)))
            shifts = list(await session.scalars(select(PilotShift).where(PilotShift.pilot_id == pilot_id)))
            shift_writes = await session.scalar(select(func.count()).select_from(PilotShiftStateHistory).where(
                PilotShiftStateHistory.shift_id.in_([s.id for s in shifts])))
            assert len(claims) <= 3, f"pilot over the cap: {len(claims)}"
            # Created at version 1; every shift step and every claim is one compare-and-set, none lost.
            assert pilot.version == 1 + shift_writes + len(claims)
            assert sorted(c.pilot_version for c in claims) == sorted({c.pilot_version for c in claims})
            open_shifts = [s.id for s in shifts if s.status in ("active", "on_break")]
            assert pilot.active_shift_id == (open_shifts[0] if open_shifts else None)
            if claims:
                assert pilot.active_assignment_id == max(claims, key=lambda c: c.pilot_version).id
