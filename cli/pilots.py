"""`deliveryctl pilots`: add pilots, move their shifts (start, break, resume, end) and list who is on.

A PILOT argument is the pilot's id or name; a name shared by several pilots is refused (use the id).
"""

import json
from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncSession

from cli.errors import CommandError
from core.db import Databases
from core.services import Service
from core.settings import Settings
from services.operations import pilots
from services.operations.locking import StaleWrite
from services.operations.models import Pilot

SHIFT_STEPS = {
    "start-shift": (pilots.start_shift, "started a shift"),
    "break": (pilots.pause_shift, "is on a break"),
    "resume": (pilots.resume_shift, "is back from the break"),
    "end-shift": (pilots.end_shift, "ended the shift"),
}


async def run(args, settings: Settings) -> int:
    """Carry out one `pilots` command in one transaction of the Operations database."""
    databases = Databases(settings, [Service.OPERATIONS], pool_size=1)
    try:
        async with databases.sessions(Service.OPERATIONS).begin() as session:
            if args.pilots_command == "list":
                return _show(await pilots.list_pilots(session), args.json, settings.pilot_max_robots)
            if args.pilots_command == "create":
                done = await _create(session, args.name.strip())
            else:
                done = await _move_shift(session, args.pilot, args.pilots_command)
        print(done)  # once committed
        return 0
    except OSError as exc:
        raise CommandError(f"cannot reach the operations database: {exc}") from None
    finally:
        await databases.dispose()


async def _create(session: AsyncSession, name: str) -> str:
    if not name or len(name) > 200:
        raise CommandError("a pilot's name is 1 to 200 characters")
    if same := await pilots.find_pilots(session, name):
        raise CommandError(f"a pilot named {name!r} exists already ({same[0].id}); names must tell pilots apart")
    return f"pilot {name} created ({await pilots.create_pilot(session, name)}), off shift"


async def _move_shift(session: AsyncSession, reference: str, command: str) -> str:
    pilot = await _one_pilot(session, reference)
    step, done = SHIFT_STEPS[command]
    try:
        shift_id = await step(session, pilot.id)
    except pilots.ShiftError as exc:
        raise CommandError(f"pilot {pilot.name}: {exc}") from None
    except StaleWrite:
        raise CommandError(f"pilot {pilot.name} kept changing meanwhile; try again") from None
    return f"pilot {pilot.name} ({pilot.id}) {done} (shift {shift_id})"


async def _one_pilot(session: AsyncSession, reference: str) -> Pilot:
    found = await pilots.find_pilots(session, reference)
    if not found:
        raise CommandError(f"no pilot has the id or name {reference!r} (deliveryctl pilots list shows them)")
    if len(found) > 1:
        raise CommandError(f"{len(found)} pilots are named {reference!r}; use the id: "
                           + ", ".join(str(p.id) for p in found))
    return found[0]


def _show(summaries: list[pilots.PilotSummary], as_json: bool, max_robots: int) -> int:
    if as_json:
        print(json.dumps([asdict(s) for s in summaries], indent=2, default=str))
        return 0
    for s in summaries:
        print(f"{s.name:<24} {s.id}  {s.shift_status or 'off shift':<9}  robots {s.active_assignments}/{max_robots}")
    print(f"{len(summaries)} pilots, {sum(s.shift_status == 'active' for s in summaries)} on an active shift")
    return 0
