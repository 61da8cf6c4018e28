"""What one statement costs the process that sends it: through SQLAlchemy as the services send it, and on asyncpg.

    python -m bench.statement_cost [--statements 5000] [--rounds 3] [--output FILE]
    python -m bench.statement_cost FILE        # the table of a report written before
    python -m bench.statement_cost FILE --bench docs/benchmarks.json   # and what the driver alone would save

An embedded Postgres is started in a temporary directory with the Operations database migrated, and the robot
desk's most frequent read (`services.operations.repository.ACTIVE_TASK`, the robot's active task) is sent
`--statements` times, one after another, in each of these ways:

- `session`: in a transaction of an ORM session (`Databases.sessions`): BEGIN, the statement, COMMIT, as an
  activity's unit of work;
- `reader`: on a checked-out autocommit connection (`Databases.reader`), as the robot desk and the one-statement
  writes do;
- `checkout`: the checkout and return of that connection alone, with no statement;
- `asyncpg pool`: the same SQL text on a connection acquired from an asyncpg pool that skips its reset query;
- `asyncpg connection`: the same SQL text on one connection held throughout (the driver's floor).

The figure is the CPU time of this process (user and system) per statement, the median of `--rounds`: what the
API or a worker spends beside Postgres itself, which answers the same query in every way but the first.
"""

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bench.reports import print_and_keep, print_saved, report_parser
from core.services import Service
from core.settings import Settings

WAYS = ("session", "reader", "checkout", "asyncpg pool", "asyncpg connection")
ROBOT_ID = "robot-statement-cost"


class _NoReset(asyncpg.Connection):
    """A pooled connection returned as it is: the statements here leave nothing to reset."""

    def get_reset_query(self) -> str:
        return ""


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _per_statement_us(send: Callable[[], Awaitable[object]], statements: int, rounds: int) -> float:
    for _ in range(min(200, statements)):  # warm: connections opened, statements prepared and cached
        await send()
    figures = []
    for _ in range(rounds):
        began = _cpu_seconds()
        for _ in range(statements):
            await send()
        figures.append((_cpu_seconds() - began) / statements * 1e6)
    return round(statistics.median(figures), 1)


async def measure(settings: Settings, statements: int, rounds: int) -> dict[str, float]:
    """Each way's client CPU per statement, in microseconds, against the running Postgres of `settings`."""
    from core.db import Databases
    from services.operations.repository import ACTIVE_TASK

    databases = Databases(settings, services=[Service.OPERATIONS])
    engine = databases.engines[Service.OPERATIONS]
    # The SQL text SQLAlchemy sends for it, its IN list expanded, and the values in their places.
    expanded = ACTIVE_TASK.compile(dialect=engine.dialect).construct_expanded_state({"robot_id": ROBOT_ID})
    sql, arguments = expanded.statement, expanded.positional_parameters
    dsn = settings.database_dsn(Service.OPERATIONS)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, connection_class=_NoReset)
    held = await asyncpg.connect(dsn)
    sessions, params = databases.sessions(Service.OPERATIONS), {"robot_id": ROBOT_ID}

    async def in_session():
        async with sessions.begin() as session:
            return (await session.execute(ACTIVE_TASK, params)).first()

    async def on_reader():
        async with databases.reader(Service.OPERATIONS) as connection:
            return (await connection.execute(ACTIVE_TASK, params)).first()

    async def checkout():
        async with databases.reader(Service.OPERATIONS):
            return None

    async def on_pool():
        async with pool.acquire() as connection:
            return await connection.fetchrow(sql, *arguments)

    sends = {"session": in_session, "reader": on_reader, "checkout": checkout, "asyncpg pool": on_pool,
             "asyncpg connection": lambda: held.fetchrow(sql, *arguments)}
    try:
        return {way: await _per_statement_us(sends[way], statements, rounds) for way in WAYS}
    finally:
        await held.close()
        await pool.close()
        await databases.dispose()


def run(statements: int, rounds: int) -> dict:
    """Start Postgres in a temporary directory, migrate the Operations database, measure on uvloop (as the API and
    the workers run), stop."""
    import uvloop

    from bench.stack import free_ports
    from core.embedded import prepare_postgres, wait_for_postgres
    from core.migrations import create_databases, upgrade_all

    async def prepare_and_measure(settings: Settings) -> dict:
        await wait_for_postgres(settings.postgres_admin_dsn, timeout=60)
        await create_databases(settings)
        await asyncio.to_thread(upgrade_all, settings)
        return await measure(settings, statements, rounds)

    with tempfile.TemporaryDirectory(prefix="statement-cost-") as data_dir:
        settings = Settings(data_dir=Path(data_dir), postgres_port=free_ports(1)[0], temporal_embedded=False)
        spec = prepare_postgres(settings)
        with open(Path(data_dir) / "postgres.log", "wb") as log:
            server = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT, user=spec.user)
        try:
            return uvloop.run(prepare_and_measure(settings))
        finally:
            server.send_signal(spec.stop_signal)
            server.wait(timeout=60)


def table(report: dict) -> list[str]:
    floor = report["client_cpu_us_per_statement"]["asyncpg connection"]
    lines = ["| way | client CPU per statement, µs | × the driver's floor |", "|---|---|---|"]
    for way, figure in report["client_cpu_us_per_statement"].items():
        lines.append(f"| {way} | {figure} | {figure / floor:.1f} |")
    return lines


def saving_lines(report: dict, bench: dict) -> list[str]:
    """What the driver alone would save per delivery in a bench run: each database transaction of the run is at
    least one checkout and one statement (`reader`), which an asyncpg pool does for `asyncpg pool`."""
    figures = report["client_cpu_us_per_statement"]
    step_us = figures["reader"] - figures["asyncpg pool"]
    lines = []
    for measured in bench["runs"]:
        ours = measured["ours"]
        count = ours.get("transactions_per_delivery", {}).get("total")
        if count is None:
            continue
        saved, servers = count * step_us / 1e6, ours["cpu_seconds_per_delivery"]["platform"]
        lines.append(f"C={measured['concurrency']}: {count:g} transactions per delivery × {step_us:.0f} µs = "
                     f"{saved:.3f} CPU-s per delivery at least, of {servers:.3f} across the servers "
                     f"({saved / servers:.0%})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = report_parser("bench.statement_cost", __doc__)
    parser.add_argument("--statements", type=int, default=5000, help="statements per round and way")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per way (the median is kept)")
    parser.add_argument("--bench", type=Path, help="with a report: what the driver alone would save per delivery in "
                        "this `deliveryctl bench` report's runs")
    args = parser.parse_args(argv)
    if args.bench and not args.report:
        parser.error("--bench needs a statement-cost report to read")
    if args.report:
        bench = None
        if args.bench:
            try:
                bench = json.loads(args.bench.read_text())
            except (OSError, ValueError) as exc:
                print(f"bench.statement_cost: cannot read the bench report {args.bench}: {exc}", file=sys.stderr)
                return 2

        def render(report: dict) -> list[str]:
            return table(report) + (["", *saving_lines(report, bench)] if bench else [])

        return print_saved("bench.statement_cost", args.report, render)
    if args.statements < 1 or args.rounds < 1:
        parser.error("--statements and --rounds must be at least 1")
    print(f"sending {args.statements} statements {args.rounds} times in each of {len(WAYS)} ways ...",
          file=sys.stderr)
    figures = run(args.statements, args.rounds)
    report = {"command": " ".join(["python -m bench.statement_cost", *(argv if argv is not None else sys.argv[1:])]),
              "statements": args.statements, "rounds": args.rounds, "client_cpu_us_per_statement": figures}
    return print_and_keep(report, table(report), args.output)


if __name__ == "__main__":
    sys.exit(main())
