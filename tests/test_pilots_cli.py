"""`deliveryctl pilots` as an operator runs it: a real subprocess, settings from DELIVERY_* variables.

It works on a private Operations database (`ops_settings`), so the pilots it puts on shift never supervise
another test's robots.
"""

import json
import os
import subprocess

import pytest
from sqlalchemy import select

from core.db import Databases
from core.services import Service
from services.operations.models import Pilot, PilotShift, PilotShiftStateHistory
from tests.support.cli import ROOT, deliveryctl


@pytest.fixture(scope="module")
def ctl(ops_settings):
    """Run `deliveryctl ARGS` against the private Operations database; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    env.update(DELIVERY_DATA_DIR=str(ops_settings.data_dir), DELIVERY_POSTGRES_PORT=str(ops_settings.postgres_port),
               DELIVERY_OPERATIONS_DATABASE_URL=ops_settings.database_dsn(Service.OPERATIONS))

    def run(*args: str) -> tuple[int, str, str]:
        done = subprocess.run([*deliveryctl(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    return run


async def shift_history(ops_settings, pilot_id: str) -> tuple[Pilot, list[tuple[str, str]]]:
    databases = Databases(ops_settings, [Service.OPERATIONS], pool_size=1)
    try:
        async with databases.sessions(Service.OPERATIONS)() as session:
            pilot = await session.get(Pilot, pilot_id)
            steps = await session.execute(
                select(PilotShift.id, PilotShiftStateHistory.state).join(
                    PilotShiftStateHistory, PilotShiftStateHistory.shift_id == PilotShift.id)
                .where(PilotShift.pilot_id == pilot_id)
                .order_by(PilotShift.started_at, PilotShiftStateHistory.sequence))
            return pilot, [(str(shift_id), state) for shift_id, state in steps]
    finally:
        await databases.dispose()


@pytest.fixture(scope="module")
async def off_duty_pilots(ops_settings):
    """Grace Hopper, and two pilots who share the name Sam Twin (added before names had to differ)."""
    databases = Databases(ops_settings, [Service.OPERATIONS], pool_size=1)
    try:
        async with databases.sessions(Service.OPERATIONS).begin() as session:
            session.add_all([Pilot(name="Grace Hopper"), Pilot(name="Sam Twin"), Pilot(name="Sam Twin")])
    finally:
        await databases.dispose()


def listed(ctl, name: str) -> dict:
    code, out, err = ctl("pilots", "list", "--json")
    assert code == 0, err
    return next(p for p in json.loads(out) if p["name"] == name)


async def test_a_pilot_works_a_shift_with_a_break_from_the_command_line(ctl, ops_settings):
    code, out, err = ctl("pilots", "create", "Ada Lovelace")
    assert code == 0 and out.startswith("pilot Ada Lovelace created"), err
    pilot_id = listed(ctl, "Ada Lovelace")["id"]

    assert ctl("pilots", "start-shift", "Ada Lovelace")[0] == 0
    on_shift = listed(ctl, "Ada Lovelace")
    assert (on_shift["shift_status"], on_shift["active_assignments"]) == ("active", 0)
    assert ctl("pilots", "break", pilot_id)[0] == 0  # by id as well as by name
    assert listed(ctl, "Ada Lovelace")["shift_status"] == "on_break"
    assert ctl("pilots", "resume", "Ada Lovelace")[0] == 0
    code, out, err = ctl("pilots", "end-shift", "Ada Lovelace")
    assert code == 0 and "ended the shift" in out, err

    pilot, steps = await shift_history(ops_settings, pilot_id)
    shift_id = on_shift["shift_id"]
    assert steps == [(shift_id, "active"), (shift_id, "on_break"), (shift_id, "active"), (shift_id, "ended")]
    assert (pilot.active_shift_id, pilot.version) == (None, 5)
    assert listed(ctl, "Ada Lovelace")["shift_status"] is None
    code, out, _ = ctl("pilots", "list")
    assert code == 0 and "Ada Lovelace" in out and "off shift" in out


@pytest.mark.parametrize(("args", "message"), [
    (("pilots", "end-shift", "Grace Hopper"), "pilot Grace Hopper: cannot end the shift: no shift is open"),
    (("pilots", "resume", "Grace Hopper"), "pilot Grace Hopper: cannot resume the shift: no shift is open"),
    (("pilots", "start-shift", "Nobody"), "no pilot has the id or name 'Nobody'"),
    (("pilots", "create", "Grace Hopper"), "a pilot named 'Grace Hopper' exists already"),
    (("pilots", "create", "  "), "a pilot's name is 1 to 200 characters"),
])
async def test_a_step_that_does_not_fit_fails_in_one_line(ctl, off_duty_pilots, args, message):
    code, out, err = ctl(*args)

    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("deliveryctl: error: ") and message in err, err


async def test_a_name_two_pilots_share_must_be_given_as_an_id(ctl, off_duty_pilots):
    code, _, err = ctl("pilots", "start-shift", "Sam Twin")

    assert code == 2 and "2 pilots are named 'Sam Twin'; use the id" in err
