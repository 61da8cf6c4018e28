"""Pilots, their shifts and the robots they supervise. Every pilot and shift write is a compare-and-set on
its version, and every change to a pilot's assignments bumps `Pilot.version`, so a pilot read at version v
had exactly the shift state and load seen with it. Never commits."""

import uuid
from dataclasses import dataclass

from sqlalchemy import func, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.operations.models import (
    Pilot,
    PilotAssignment,
    PilotAssignmentStatus,
    PilotShift,
    PilotShiftStateHistory,
    PilotShiftStatus,
    Task,
    utcnow,
)
from services.operations.locking import StaleWrite, append_history, compare_and_set

# Lost compare-and-sets tolerated before the unit of work gives up (and Temporal retries it). Each loss means
# another write to that pilot committed, so the bound only cuts off a pathological hot spot.
MAX_RACES = 20


class ShiftError(ValueError):
    """A shift change that does not fit the pilot's current shift."""


# What each shift change is called when it is refused.
SHIFT_STEPS = {PilotShiftStatus.ON_BREAK: "go on a break", PilotShiftStatus.ACTIVE: "resume the shift",
               PilotShiftStatus.ENDED: "end the shift"}


class _LostRace(Exception):
    """Rolls a savepoint back when a claim lost its compare-and-set."""


@dataclass(frozen=True)
class PilotSummary:
    """A pilot as operators see it: the shift they are on and how many robots they supervise."""

    id: uuid.UUID
    name: str
    version: int
    shift_id: uuid.UUID | None
    shift_status: str | None
    active_assignments: int


async def create_pilot(session: AsyncSession, name: str) -> uuid.UUID:
    """Add a pilot, off shift."""
    pilot = Pilot(name=name)
    session.add(pilot)
    await session.flush()
    return pilot.id


async def find_pilots(session: AsyncSession, reference: str) -> list[Pilot]:
    """The pilots whose id or name is `reference` (several only when a name is shared)."""
    try:
        matches = (Pilot.id == uuid.UUID(reference)) | (Pilot.name == reference)
    except ValueError:
        matches = Pilot.name == reference
    return list(await session.scalars(select(Pilot).where(matches).order_by(Pilot.created_at)))


async def list_pilots(session: AsyncSession) -> list[PilotSummary]:
    """Every pilot with their shift state and the number of robots they supervise."""
    load = func.count(PilotAssignment.id)
    statement = (
        select(Pilot.id, Pilot.name, Pilot.version, PilotShift.id, PilotShift.status, load)
        .outerjoin(PilotShift, PilotShift.id == Pilot.active_shift_id)
        .outerjoin(PilotAssignment, (PilotAssignment.pilot_id == Pilot.id)
                   & (PilotAssignment.status == PilotAssignmentStatus.ACTIVE))
        .group_by(Pilot.id, PilotShift.id)
        .order_by(Pilot.name, Pilot.id)
    )
    return [PilotSummary(*row) for row in (await session.execute(statement)).all()]


# ---- shifts ----------------------------------------------------------------------------------------


async def start_shift(session: AsyncSession, pilot_id: uuid.UUID) -> uuid.UUID:
    """Open a new active shift for a pilot who has none; the new shift's id."""
    if (await _pilot_shift_id(session, pilot_id)) is not None:
        raise ShiftError("cannot start a shift: a shift is already open")
    now = utcnow()
    shift = PilotShift(pilot_id=pilot_id, status=PilotShiftStatus.ACTIVE, started_at=now)
    session.add(shift)
    try:
        await session.flush()
    except IntegrityError as err:  # a concurrent start won: uq_pilot_shift_one_open_per_pilot
        raise ShiftError("cannot start a shift: a shift is already open") from err
    await append_history(session, PilotShiftStateHistory, "shift_id", shift.id, state=shift.status, occurred_at=now)
    await _write_pilot(session, pilot_id, active_shift_id=shift.id)
    return shift.id


async def pause_shift(session: AsyncSession, pilot_id: uuid.UUID) -> uuid.UUID:
    """Put the pilot's active shift on break: no new robots until it resumes."""
    return await _move_shift(session, pilot_id, {PilotShiftStatus.ACTIVE}, PilotShiftStatus.ON_BREAK)


async def resume_shift(session: AsyncSession, pilot_id: uuid.UUID) -> uuid.UUID:
    """Bring the pilot back from a break."""
    return await _move_shift(session, pilot_id, {PilotShiftStatus.ON_BREAK}, PilotShiftStatus.ACTIVE)


async def end_shift(session: AsyncSession, pilot_id: uuid.UUID) -> uuid.UUID:
    """End the pilot's shift; robots already assigned stay with the pilot until their tasks close."""
    return await _move_shift(session, pilot_id, {PilotShiftStatus.ACTIVE, PilotShiftStatus.ON_BREAK},
                             PilotShiftStatus.ENDED)


async def _move_shift(session: AsyncSession, pilot_id: uuid.UUID, allowed: set[str], status: str) -> uuid.UUID:
    shift_id = await _pilot_shift_id(session, pilot_id)
    statement = select(PilotShift.version, PilotShift.status).where(PilotShift.id == shift_id)
    statement = statement.with_for_update(key_share=True)  # NO KEY UPDATE: see repository.lock_robot
    row = (await session.execute(statement)).one_or_none() if shift_id else None
    if row is None or row.status not in allowed:
        now_is = f"the shift is {row.status}" if row else "no shift is open"
        raise ShiftError(f"cannot {SHIFT_STEPS[status]}: {now_is}")
    now = utcnow()
    ended = {"ended_at": now} if status == PilotShiftStatus.ENDED else {}
    if await compare_and_set(session, PilotShift, shift_id, row.version, status=status, **ended) is None:
        raise StaleWrite(f"shift {shift_id} changed although it is row-locked")
    await append_history(session, PilotShiftStateHistory, "shift_id", shift_id, state=status, occurred_at=now)
    await _write_pilot(session, pilot_id, active_shift_id=None if ended else shift_id)
    return shift_id


async def _pilot_shift_id(session: AsyncSession, pilot_id: uuid.UUID) -> uuid.UUID | None:
    row = (await session.execute(select(Pilot.active_shift_id).where(Pilot.id == pilot_id))).one_or_none()
    if row is None:
        raise LookupError(f"no pilot {pilot_id}")
    return row.active_shift_id


async def _write_pilot(session: AsyncSession, pilot_id: uuid.UUID, **values) -> int:
    """Compare-and-set the pilot, re-reading its version after each lost race; the new version."""
    for _ in range(MAX_RACES):
        version = await session.scalar(select(Pilot.version).where(Pilot.id == pilot_id))
        written = await compare_and_set(session, Pilot, pilot_id, version, **values)
        if written is not None:
            return written
    raise StaleWrite(f"pilot {pilot_id} kept changing")


# ---- assignments -----------------------------------------------------------------------------------


async def claim_pilot(session: AsyncSession, task: Task, max_robots: int) -> PilotAssignment | None:
    """Assign the least-loaded pilot on an active shift with room for one more robot; None when nobody is."""
    for _ in range(MAX_RACES):
        candidates = (await session.execute(_free_pilots(max_robots))).all()
        if not candidates:
            return None
        for pilot_id, version in candidates:
            assignment = await _try_claim(session, pilot_id, version, task)
            if assignment is not None:
                return assignment
    raise StaleWrite(f"every free pilot kept changing while assigning task {task.id}")


def _free_pilots(max_robots: int):
    # Version and load come from one snapshot, and the load only changes with the version.
    load = func.count(PilotAssignment.id)
    return (
        select(Pilot.id, Pilot.version)
        .join(PilotShift, (PilotShift.id == Pilot.active_shift_id) & (PilotShift.status == PilotShiftStatus.ACTIVE))
        .outerjoin(PilotAssignment, (PilotAssignment.pilot_id == Pilot.id)
                   & (PilotAssignment.status == PilotAssignmentStatus.ACTIVE))
        .group_by(Pilot.id)
        .having(load < max_robots)
        .order_by(load, literal_column("random()"))  # random among equals spreads concurrent claims
    )


async def _try_claim(session: AsyncSession, pilot_id: uuid.UUID, version: int, task: Task) -> PilotAssignment | None:
    # The assignment row must exist before the pilot points at it (the key is not deferrable), so it goes in
    # first inside a savepoint that is rolled back if the pilot moved on since `version` was read.
    assignment = PilotAssignment(pilot_id=pilot_id, task_id=task.id, robot_id=task.robot_id,
                                 pilot_version=version + 1, task_version=task.version,
                                 status=PilotAssignmentStatus.ACTIVE, assigned_at=utcnow())
    try:
        async with session.begin_nested():
            session.add(assignment)
            await session.flush()
            if await compare_and_set(session, Pilot, pilot_id, version, active_assignment_id=assignment.id) is None:
                raise _LostRace
    except _LostRace:
        return None
    return assignment


async def release_pilot(session: AsyncSession, task_id: uuid.UUID) -> bool:
    """Release the task's active pilot assignment and repoint the pilot; False if it was already released."""
    statement = select(PilotAssignment).where(
        PilotAssignment.task_id == task_id, PilotAssignment.status == PilotAssignmentStatus.ACTIVE
    ).with_for_update(key_share=True).execution_options(populate_existing=True)
    assignment = await session.scalar(statement)
    if assignment is None:
        return False
    assignment.status = PilotAssignmentStatus.RELEASED
    assignment.released_at = utcnow()
    await session.flush()
    await _repoint_pilot(session, assignment.pilot_id)
    return True


async def _repoint_pilot(session: AsyncSession, pilot_id: uuid.UUID) -> None:
    """Point the pilot at their latest active assignment (highest pilot version), or at none."""
    newest = (select(PilotAssignment.id)
              .where(PilotAssignment.pilot_id == pilot_id, PilotAssignment.status == PilotAssignmentStatus.ACTIVE)
              .order_by(PilotAssignment.pilot_version.desc()).limit(1))
    for _ in range(MAX_RACES):
        version = await session.scalar(select(Pilot.version).where(Pilot.id == pilot_id))  # read before `newest`
        if await compare_and_set(session, Pilot, pilot_id, version, active_assignment_id=await session.scalar(newest)):
            return
    raise StaleWrite(f"pilot {pilot_id} kept changing while releasing an assignment")
