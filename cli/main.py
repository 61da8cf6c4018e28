"""`deliveryctl`: run, inspect and administer the delivery platform."""

import argparse
import asyncio
import logging
import os
import sys
import traceback
import uuid
from pathlib import Path

from cli.errors import CommandError
from core.settings import SettingsError, load_settings


TOKEN_FILE_HELP = ("the operator's own token (a JWT from the identity provider), sent to Temporal; default "
                   "DELIVERY_OPERATOR_TOKEN or DELIVERY_OPERATOR_TOKEN_FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deliveryctl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole stack in the foreground (Ctrl-C stops it)")
    up.add_argument("--no-simulator", action="store_true", help="do not run the simulated robot fleet")
    up.add_argument("--sim-speed", help="simulator speed: a multiple of real time, or 'instant'")
    up.add_argument("--api-processes", type=int, metavar="N",
                    help="API processes serving the one API port (default DELIVERY_API_PROCESSES, 1)")
    up.add_argument("--api-cpus", metavar="LIST",
                    help="CPUs for the API alone (`0`, `0-1`, `0,2`); every other process runs on the rest "
                         "(default DELIVERY_API_CPUS: anywhere)")

    demo = commands.add_parser("demo", help="create deliveries through the API and follow them to the end")
    demo.add_argument("--deliveries", type=int, default=10, help="how many deliveries (default 10)")
    demo.add_argument("--timeout", type=float, default=900, help="seconds to wait for all to finish")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")

    status = commands.add_parser("status", help="the running stack's addresses")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")

    audit = commands.add_parser("audit", help="check every delivery's rows across the seven databases")
    audit.add_argument("--json", action="store_true", help="print machine-readable JSON")

    db = commands.add_parser("db", help="database migrations for all seven services")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="create missing databases and migrate all to a revision")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_commands.add_parser("downgrade", help="reverse the migrations of all databases")
    downgrade.add_argument("revision", nargs="?", default="base")
    db_commands.add_parser("current", help="each database's revision and the head it should be at")

    ops = commands.add_parser("ops", help="operators: parked deliveries, one delivery across all databases, actions")
    ops_commands = ops.add_subparsers(dest="ops_command", required=True)
    stuck = ops_commands.add_parser("stuck", help="deliveries waiting for an operator, with their reasons")
    stuck.add_argument("--market")
    stuck.add_argument("--json", action="store_true")
    show = ops_commands.add_parser("show", help="one delivery joined across the seven databases and its workflow")
    show.add_argument("delivery_id", type=uuid.UUID)
    queues = ops_commands.add_parser("queues", help="pollers and backlog per task queue")
    for action, text in (("retry", "re-run the step a parked delivery waits on"),
                         ("redispatch", "end the attempt and start another, optionally with --robot"),
                         ("cancel", "cancel with --reason; the partner is told"),
                         ("resolve", "close as delivered: the order was handed over by hand"),
                         ("returned", "close as returned: the order is back at the store, the lid left open")):
        sub = ops_commands.add_parser(action, help=text)
        sub.add_argument("delivery_id", type=uuid.UUID)
        sub.add_argument("--note", required=True, help="why (recorded with the action, never told to the partner)")
        sub.add_argument("--operator", help="dev profile without a token only: who (default $USER), recorded as "
                                            "unauthenticated; with a token the operator is the one it names")
        sub.add_argument("--robot", help="redispatch: the robot to use")
        sub.add_argument("--reason", help="cancel: the reason code the partner is told, one of "
                                          "core.contracts.ReasonCode (default operator_cancelled)")
        sub.add_argument("--token-file", type=Path, help=TOKEN_FILE_HELP)
    for sub in (stuck, show, queues):
        sub.add_argument("--token-file", type=Path, help=TOKEN_FILE_HELP)

    _pilot_commands(commands)
    _field_task_commands(commands)

    from cli.bench import add_arguments as bench_arguments  # light: argparse only
    from cli.partners import add_arguments as partner_arguments

    partner_arguments(commands)

    bench_arguments(commands.add_parser("bench", help="throughput and latency of the real stack vs a bare baseline"))

    planner = commands.add_parser("bench-planner",
                                  help="the Dispatch planner on seeded city workloads: batch vs greedy")
    planner.add_argument("--sizes", type=_sizes, default="100x50,500x250,1000x500,1000x100",
                         help="instances as DEMANDSxROBOTS, comma-separated (default 100x50,500x250,1000x500,1000x100)")
    planner.add_argument("--seed", type=int, default=7, help="workload seed (default 7)")
    planner.add_argument("--repeats", type=int, default=20, help="timed solves per instance and planner (default 20)")
    planner.add_argument("--arrival-minutes", type=float, default=30,
                         help="rolling horizon: demands arrive over this many minutes (default 30)")
    planner.add_argument("--json", action="store_true", help="print machine-readable JSON")
    planner.add_argument("--scenarios", action="store_true",
                         help="also run the evening scenarios: ready times, shifts, fleets at 100/50/33%% of need, "
                              "a burst, under production's deadlines; every planner")
    planner.add_argument("--orders", type=int, default=600, help="scenarios: orders per evening (default 600)")
    planner.add_argument("--output", help="write the JSON report to this file")

    commands.add_parser("codec-server", help="serve the payload codec: the Temporal UI shows encrypted payloads "
                                             "decrypted through it (DELIVERY_CODEC_*)")

    temporal = commands.add_parser("temporal", help="Temporal namespace administration")
    temporal_commands = temporal.add_subparsers(dest="temporal_command", required=True)
    temporal_commands.add_parser("setup", help="register the delivery search attributes on the namespace")
    return parser


def _sizes(text: str) -> list[tuple[int, int]]:
    """`100x50,1000x500` -> [(100, 50), (1000, 500)]."""
    sizes = []
    for item in text.split(","):
        demands, _, robots = item.strip().partition("x")
        if not (demands.isdigit() and robots.isdigit() and int(demands) > 0 and int(robots) > 0):
            raise argparse.ArgumentTypeError(f"{item!r} is not DEMANDSxROBOTS with positive numbers, e.g. 100x50")
        sizes.append((int(demands), int(robots)))
    return sizes


def _pilot_commands(commands) -> None:
    pilots = commands.add_parser("pilots", help="remote pilots and their shifts")
    steps = pilots.add_subparsers(dest="pilots_command", required=True)
    steps.add_parser("create", help="add a pilot, off shift").add_argument("name", help="a name no other pilot has")
    for step, text in (("start-shift", "open a shift: the pilot supervises robots"),
                       ("break", "pause the shift: no new robots until the pilot resumes"),
                       ("resume", "come back from a break"),
                       ("end-shift", "end the shift; robots already supervised stay until their tasks end")):
        steps.add_parser(step, help=text).add_argument("pilot", help="the pilot's id or unique name")
    steps.add_parser("list", help="every pilot, their shift and robots").add_argument(
        "--json", action="store_true", help="print machine-readable JSON")


def _field_task_commands(commands) -> None:
    fo = commands.add_parser("fo", help="field-operations tasks: battery swaps, rescues, inspections")
    steps = fo.add_subparsers(dest="fo_command", required=True)
    create = steps.add_parser("create", help="open a field task; its robot leaves the plan until it is closed")
    create.add_argument("--robot", required=True, help="the robot's id")
    create.add_argument("--kind", required=True, help="battery_swap, rescue or inspection")
    create.add_argument("--reason", required=True, help="what is wrong")
    listing = steps.add_parser("list", help="field tasks, newest first")
    listing.add_argument("--open", action="store_true", help="only tasks still open or assigned")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    for step, text in (("assign", "send someone (--to NAME) to the robot"),
                       ("done", "the work is done: the robot returns to the plan"),
                       ("cancel", "the work is not needed: the robot returns to the plan")):
        sub = steps.add_parser(step, help=text)
        sub.add_argument("task", type=uuid.UUID, help="the field task's id")
        if step == "assign":
            sub.add_argument("--to", required=True, help="who goes")
        sub.add_argument("--note", help="recorded in the task's history")
        sub.add_argument("--by", default=os.environ.get("USER") or "operator", help="who records it (default $USER)")


def main(argv: list[str] | None = None) -> int:
    """`deliveryctl`. A command that used Temporal leaves through `os._exit` once its output is flushed: the SDK's
    native threads can still call into Python while the interpreter finalizes, and the process would abort
    (`stop_temporal` stops them first, which is not always enough)."""
    code = _command(argv)
    if "core.temporal" in sys.modules:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _command(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return asyncio.run(dispatch(args, settings))
    except (SettingsError, CommandError) as exc:
        print(f"deliveryctl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        stop_temporal()


def stop_temporal() -> None:
    """Stop the Temporal runtime of the command's clients before the interpreter finalizes
    (`core.temporal.stop_runtimes` says why).

    An unexpected error on its way out still holds the command's frames, and in them its clients: their locals are
    let go first (the traceback prints all the same). A command that never imported the client has nothing to stop.
    """
    if (error := sys.exc_info()[1]) is not None:
        traceback.clear_frames(error.__traceback__)
    if (temporal := sys.modules.get("core.temporal")) is not None:
        temporal.stop_runtimes()


async def dispatch(args: argparse.Namespace, settings) -> int:
    from cli import commands  # imported late so `--help` and settings errors stay fast

    return await getattr(commands, args.command.replace("-", "_"))(args, settings)


if __name__ == "__main__":
    sys.exit(main())
