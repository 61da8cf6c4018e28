"""The handlers behind each `deliveryctl` command. Each imports what it needs itself, so a command that never
starts the stack or touches Temporal (`partners`, `pilots`, `stores`) does not pay for loading them."""

import asyncio
import json

from cli.errors import CommandError
from core.settings import Settings


async def up(args, settings: Settings) -> int:
    from cli.up import run_stack

    overrides = {"simulator": False} if args.no_simulator else {}
    if args.sim_speed:
        overrides["sim_speed"] = args.sim_speed
    if args.api_processes is not None:
        if args.api_processes < 1:
            raise CommandError("--api-processes must be at least 1")
        overrides["api_processes"] = args.api_processes
    if args.api_cpus is not None:
        overrides["api_cpus"] = args.api_cpus
    return await run_stack(settings.model_copy(update=overrides))


async def demo(args, settings: Settings) -> int:
    from cli.demo import run_demo

    return await run_demo(settings, args.deliveries, args.timeout, args.json)


async def status(args, settings: Settings) -> int:
    from cli.up import describe_stack, running_stack

    stack = running_stack(settings)
    report = {"running": stack is not None, **(stack or describe_stack(settings))}
    report.pop("pid", None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        state = "running" if stack else "not running"
        print(f"stack {state} (data: {report['data_dir']})")
        print(f"  API          {report['api_url']}  (docs: {report['api_url']}/docs)")
        print(f"  Temporal UI  {report['temporal_ui_url']}")
        print(f"  Temporal     {report['temporal_address']}")
        for name, dsn in report["databases"].items():
            print(f"  {name:<12} {dsn}")
    return 0 if stack else 1


async def codec_server(args, settings: Settings) -> int:
    """Serve the payload codec until interrupted (the Temporal UI decrypts histories through it)."""
    import uvicorn

    from api.codec import create_codec_app

    app = create_codec_app(settings)
    print(f"payload codec on {settings.codec_url} (endpoints /decode, /encode; namespace "
          f"{settings.temporal_namespace}; operator tokens: "
          f"{settings.codec_jwks_url or 'not required (dev profile, loopback)'})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.codec_host, port=settings.codec_port,
                                           log_level="warning", access_log=False))
    await server.serve()
    return 0


async def audit(args, settings: Settings) -> int:
    from cli.audit import audit as run_audit
    from core.db import Databases

    databases = Databases(settings, pool_size=1)
    try:
        report = await run_audit(databases)
    except OSError as exc:
        raise CommandError(f"cannot reach a service database: {exc}") from None
    finally:
        await databases.dispose()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['deliveries']} deliveries, {report['attempts']} attempts across seven databases")
        print("\n".join(report["problems"]) or "no orphan rows, no missing parts")
    return 1 if report["problems"] else 0


async def db(args, settings: Settings) -> int:
    from core.migrations import create_databases, current_revisions, downgrade_all, head_revisions, upgrade_all

    try:
        if args.db_command == "upgrade":
            created = await create_databases(settings)
            if created:
                print(f"created databases: {', '.join(created)}")
            await asyncio.to_thread(upgrade_all, settings, args.revision)
        elif args.db_command == "downgrade":
            await asyncio.to_thread(downgrade_all, settings, args.revision)
    except OSError as exc:
        raise CommandError(f"cannot reach a service database: {exc}") from None
    current = await asyncio.to_thread(current_revisions, settings)
    heads = head_revisions()
    for name, revision in current.items():
        marker = "head" if revision == heads[name] else f"head is {heads[name]}"
        print(f"{name:<13} {revision or 'base'}  ({marker})")
    return 0


async def temporal(args, settings: Settings) -> int:
    from core.temporal import ensure_search_attributes
    from workflows import ensure_schedules

    client = await _temporal(settings)
    added = await ensure_search_attributes(client)
    print(f"search attributes registered: {', '.join(added) if added else 'all present already'}")
    created = await ensure_schedules(client)
    print(f"schedules created: {', '.join(created) if created else 'all present already'}")
    return 0


async def ops(args, settings: Settings) -> int:
    from cli import ops as operator
    from core.db import Databases

    acting = args.ops_command not in ("stuck", "queues", "show")
    try:
        who = operator.operator_of(settings, args.token_file, getattr(args, "operator", None), acting=acting)
    except operator.CredentialError as exc:
        raise CommandError(f"{args.ops_command}: {exc}") from None
    if who.token is not None:  # the operator's own token, not the service's, reaches Temporal
        settings = settings.model_copy(update={"temporal_api_key": who.token, "temporal_api_key_file": None})
    client = await _temporal(settings, identity=who.identity)
    if args.ops_command == "stuck":
        parked = await operator.stuck(client, args.market)
        if args.json:
            print(json.dumps(parked, indent=2))
        for item in [] if args.json else parked:
            print(f"{item['workflow_id']}  {item['market']}  {item['reason']}")
        if not args.json:
            print(f"{len(parked)} deliveries wait for an operator")
    elif args.ops_command == "queues":
        for row in await operator.queues(client):
            print(f"{row['queue']:<20} pollers {row['pollers']:>3}  backlog {row['backlog']:>5} "
                  f"(oldest {row['backlog_age_seconds']:.0f}s)  in {row['add_rate']}/s  out {row['dispatch_rate']}/s")
    elif args.ops_command == "show":
        databases = Databases(settings, pool_size=1)
        try:
            print(json.dumps(await operator.show(client, databases, args.delivery_id), indent=2))
        except operator.OperatorError as exc:
            raise CommandError(str(exc)) from None
        finally:
            await databases.dispose()
    else:
        try:
            print(await operator.act(client, args.delivery_id, args.ops_command, who.name, args.note,
                                     robot_id=args.robot, reason=args.reason))
        except operator.OperatorError as exc:
            raise CommandError(f"{args.ops_command} refused: {exc}") from None
    return 0


async def pilots(args, settings: Settings) -> int:
    from cli import pilots as pilot_commands

    return await pilot_commands.run(args, settings)


async def fo(args, settings: Settings) -> int:
    from cli import field_tasks
    from core.db import Databases
    from core.services import Service

    databases = Databases(settings, [Service.OPERATIONS], pool_size=1)
    try:
        if args.fo_command == "list":
            return field_tasks.show(await field_tasks.listing(databases, args.open), args.json)
        client = await _temporal(settings)
        if args.fo_command == "create":
            task = await field_tasks.create(client, databases, args.robot, args.kind, args.reason)
        else:
            task = await field_tasks.act(client, databases, args.task, args.fo_command, args.by, args.note,
                                         getattr(args, "to", None))
        print(field_tasks.describe(task))
    except field_tasks.FieldTaskError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot reach the operations database: {exc}") from None
    finally:
        await databases.dispose()
    return 0


async def _temporal(settings: Settings, identity: str | None = None):
    from core.temporal import connect

    try:
        return await connect(settings, metrics=False, identity=identity)
    except RuntimeError as exc:
        raise CommandError(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from None


async def bench(args, settings: Settings) -> int:
    from cli.bench import run_bench

    return await run_bench(args, settings)


async def partners(args, settings: Settings) -> int:
    from cli.partner_admin import run

    return await run(args, settings)


stores = callbacks = pii = partners


async def bench_planner(args, settings: Settings) -> int:
    import shlex
    import sys
    from pathlib import Path

    from bench import planner

    if args.repeats < 1:
        raise CommandError("--repeats must be at least 1")
    if args.arrival_minutes <= 0:
        raise CommandError("--arrival-minutes must be positive")
    if args.orders < 1:
        raise CommandError("--orders must be at least 1")
    report = await asyncio.to_thread(planner.run, args.sizes, args.seed, args.repeats, args.arrival_minutes,
                                     settings.battery_reserve)
    report["command"] = shlex.join(["deliveryctl", *sys.argv[1:]])
    if args.scenarios:
        from bench import planner_scenarios

        report["scenarios"] = await asyncio.to_thread(planner_scenarios.run, args.orders, args.seed,
                                                      battery_reserve=settings.battery_reserve)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    text = planner.table(report)
    if args.scenarios:
        text += "\n\n" + planner_scenarios.table(report["scenarios"])
    print(json.dumps(report, indent=2) if args.json else text)
    return 0
