"""The handlers of `deliveryctl partners|stores|callbacks|pii`: onboard partners, stores and secrets; replay callbacks."""

import argparse
import json
from datetime import timedelta

from cli.errors import CommandError
from core.contracts import Point
from core.crypto import vault_from_settings
from core.db import Databases
from core.markets import market_for
from core.services import Service
from core.settings import Settings
from core.webhooks import WebhookTargetError, check_webhook_target
from desks.orders import MAX_PREPARATION_MINUTES
from services.integrations import credentials, repository
from services.integrations.models import CredentialKind, Partner, PartnerDialect, Store


async def run(args: argparse.Namespace, settings: Settings) -> int:
    databases = Databases(settings, pool_size=1)
    try:
        handler = {"partners": _partners, "stores": _stores, "callbacks": _callbacks, "pii": _pii}[args.command]
        return await handler(args, settings, databases)
    finally:
        await databases.dispose()


async def _partners(args, settings: Settings, databases: Databases) -> int:
    vault = vault_from_settings(settings)
    async with databases.sessions(Service.INTEGRATIONS).begin() as session:
        if args.partners_command == "create":
            if args.webhook_authorization and args.dialect != PartnerDialect.DOORDASH:
                raise CommandError("--webhook-authorization is for the doordash dialect only")
            if args.dialect == PartnerDialect.DOORDASH and not args.webhook_authorization:
                raise CommandError("a doordash partner needs --webhook-authorization: DoorDash authenticates our "
                                   "webhooks only by the Authorization value it registered")
            _check_url(args.webhook_url, settings)
            partner, shown = await credentials.create_partner(session, vault, args.name, args.dialect,
                                                              args.webhook_url, args.webhook_authorization,
                                                              live_mode=not args.test)
            print(json.dumps({"name": partner.name, **shown, "webhook_url": partner.webhook_url}, indent=2))
        elif args.partners_command == "update":
            partner = await _partner(session, args.partner)
            print(json.dumps(await _update(session, vault, partner, args, settings), indent=2))
        elif args.partners_command == "rotate":
            partner = await _partner(session, args.partner)
            shown = await credentials.rotate(session, vault, partner, timedelta(hours=args.overlap_hours))
            print(json.dumps({"name": partner.name, **shown}, indent=2))
        else:
            partners = await repository.list_partners(session)
            rows = [{"partner_id": str(p.id), "name": p.name, "dialect": p.dialect, "mode": _mode(p),
                     "account_id": p.account_id, "webhook_url": p.webhook_url, "webhook_enabled": p.webhook_enabled}
                    for p in partners]
            _print_rows(rows, args.json, ("partner_id", "name", "dialect", "mode", "webhook_enabled"))
    return 0


def _mode(partner: Partner) -> str:
    return "live" if partner.live_mode else "test"


async def _update(session, vault, partner: Partner, args, settings: Settings) -> dict:
    """Change the partner's webhook URL and (DoorDash) webhook authorization; what it is now."""
    if args.webhook_url is None and args.webhook_authorization is None:
        raise CommandError("nothing to update: give --webhook-url and/or --webhook-authorization")
    doordash = partner.dialect == PartnerDialect.DOORDASH
    if args.webhook_authorization is not None and not doordash:
        raise CommandError("--webhook-authorization is for the doordash dialect only")
    if args.webhook_authorization == "":
        raise CommandError("--webhook-authorization cannot be empty")
    _check_url(args.webhook_url, settings)
    if doordash and args.webhook_authorization is None and not await credentials.sealed_secrets(
            session, vault, partner.id, CredentialKind.WEBHOOK_AUTHORIZATION):
        raise CommandError("this doordash partner has no webhook authorization yet: add --webhook-authorization")
    await credentials.update_webhook(session, vault, partner, args.webhook_url, args.webhook_authorization)
    shown = {"partner_id": str(partner.id), "name": partner.name, "dialect": partner.dialect,
             "webhook_url": partner.webhook_url, "webhook_enabled": partner.webhook_enabled}
    if args.webhook_authorization is not None:
        shown["webhook_authorization"] = "replaced"
    return shown


def _check_url(url: str | None, settings: Settings) -> None:
    if url is None:
        return
    try:
        check_webhook_target(url, allow_private=settings.allow_private_webhooks)
    except WebhookTargetError as exc:
        raise CommandError(f"--webhook-url: {exc}") from None


async def _stores(args, settings: Settings, databases: Databases) -> int:
    async with databases.sessions(Service.INTEGRATIONS).begin() as session:
        partner = await _partner(session, args.partner)
        if args.stores_command == "add":
            market = market_for(Point(latitude=args.lat, longitude=args.lng))
            if market is None:
                raise CommandError(f"({args.lat}, {args.lng}) is outside every service area")
            minutes = args.preparation_minutes
            if minutes is not None and not 0 <= minutes <= MAX_PREPARATION_MINUTES:
                raise CommandError(f"--preparation-minutes: {minutes} is not between 0 and {MAX_PREPARATION_MINUTES}")
            store = await repository.add_store(session, partner.id, args.store_id, args.name, args.lat, args.lng,
                                               market.name, minutes)
            print(json.dumps(_store_row(store), indent=2))
        else:
            rows = [_store_row(s) for s in await repository.list_stores(session, partner.id)]
            _print_rows(rows, args.json, ("store_id", "name", "market", "latitude", "longitude",
                                          "preparation_minutes"))
    return 0


async def _callbacks(args, settings: Settings, databases: Databases) -> int:
    async with databases.sessions(Service.INTEGRATIONS).begin() as session:
        failed = await repository.failed_callbacks(session, args.delivery if args.callbacks_command == "replay"
                                                   else None)
    if args.callbacks_command == "failed":
        rows = [{"delivery_id": str(c.delivery_id), "sequence": c.sequence, "status": c.status.value,
                 "partner_delivery_id": str(c.partner_delivery_id)} for c in failed]
        _print_rows(rows, args.json, ("delivery_id", "sequence", "status"))
        return 0
    if not failed:
        print("no failed callbacks to replay")
        return 0
    from core.temporal import connect
    from workflows.callback_replay import replay_callbacks

    client = await connect(settings, metrics=False)
    for line in await replay_callbacks(client, failed):
        print(line)
    return 0


async def _pii(args, settings: Settings, databases: Databases) -> int:
    vault = vault_from_settings(settings)
    async with databases.sessions(Service.INTEGRATIONS).begin() as session:
        resealed = await repository.reseal(session, vault)
    print(f"re-sealed under key {vault.current}: {resealed['pii']} orders' personal data, "
          f"{resealed['credentials']} partner secrets, {resealed['quote_requests']} quoted orders")
    return 0


async def _partner(session, name_or_id: str) -> Partner:
    partner = await repository.find_partner(session, name_or_id)
    if partner is None:
        raise CommandError(f"no partner {name_or_id!r} (id, or a name that is unique)")
    return partner


def _store_row(store: Store) -> dict:
    return {"store_id": store.external_store_id, "name": store.name, "market": store.market,
            "latitude": store.latitude, "longitude": store.longitude, "preparation_minutes": store.preparation_minutes}


def _print_rows(rows: list[dict], as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
