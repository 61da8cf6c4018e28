"""`deliveryctl partners|stores|pii` as an operator runs them: a real subprocess against the test databases."""

import base64
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from core.crypto import Vault, vault_from_settings
from core.db import Databases
from core.services import Service
from core.settings import settings_environment
from services.integrations import credentials, repository
from services.integrations.models import PII, CredentialKind, PartnerCredential, PartnerDelivery, QuoteRequest
from services.integrations.sealing import unseal
from tests.support.cli import ROOT, deliveryctl
from tests.support.servers import with_private_database


def run(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    environment.update(settings_environment(settings), **env)
    return subprocess.run([*deliveryctl(), *args], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
async def own_settings(settings):
    """A private Integrations database: re-sealing under a new key must not touch other tests' partners."""
    return await with_private_database(settings, Service.INTEGRATIONS)


@pytest.fixture
async def integrations_db(own_settings):
    databases = Databases(own_settings, services=[Service.INTEGRATIONS])
    yield databases.sessions(Service.INTEGRATIONS)
    await databases.dispose()


EXPECTED = {
    "native": {"api_key", "webhook_secret"},
    "olo": {"api_key", "webhook_secret"},
    "doordash": {"developer_id", "key_id", "signing_secret"},  # its webhooks carry the Authorization it gave
    "uber": {"client_id", "client_secret", "customer_id", "webhook_secret"},
}


@pytest.mark.parametrize("dialect", sorted(EXPECTED))
async def test_create_prints_each_dialects_credentials_and_stores_none_in_clear(own_settings, integrations_db, dialect):
    authorization = ("--webhook-authorization", "Bearer hooks-1") if dialect == "doordash" else ()
    result = run(own_settings, "partners", "create", f"Partner {dialect} {uuid.uuid4().hex[:4]}", "--dialect", dialect,
                 "--webhook-url", "https://partner.example/hooks", *authorization)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert EXPECTED[dialect] <= set(shown) and shown["dialect"] == dialect
    if dialect == "doordash":  # no secret it would never use
        assert "webhook_secret" not in shown
    else:
        assert shown["webhook_secret"].startswith("whsec_")
    async with integrations_db.begin() as session:
        rows = list(await session.scalars(select(PartnerCredential).where(
            PartnerCredential.partner_id == uuid.UUID(shown["partner_id"]))))
        stored = " ".join(f"{r.secret_hash} {r.secret_encrypted}" for r in rows)
        for name in ("api_key", "signing_secret", "client_secret", "webhook_secret"):
            if name in shown:
                assert shown[name] not in stored
        if "api_key" in shown:
            assert (await credentials.partner_by_secret(session, CredentialKind.API_KEY, shown["api_key"])).dialect \
                == dialect
        if dialect == "doordash":
            _, secret = await credentials.signing_secret(session, vault_from_settings(own_settings),
                                                         shown["developer_id"], shown["key_id"])
            assert secret == shown["signing_secret"]
        if dialect == "uber":
            partner = await credentials.partner_by_secret(session, CredentialKind.CLIENT_SECRET,
                                                          shown["client_secret"], key_id=shown["client_id"])
            assert partner.account_id == shown["customer_id"]


async def test_rotation_keeps_the_old_key_for_the_overlap_only(own_settings, integrations_db):
    name = f"Rotating {uuid.uuid4().hex[:6]}"
    first = json.loads(run(own_settings, "partners", "create", name).stdout)
    second = json.loads(run(own_settings, "partners", "rotate", name, "--overlap-hours", "1").stdout)
    assert second["api_key"] != first["api_key"] and second["previous_credentials_expire_at"]

    async def works(key: str) -> bool:
        async with integrations_db.begin() as session:
            return await credentials.partner_by_secret(session, CredentialKind.API_KEY, key) is not None

    assert await works(first["api_key"]) and await works(second["api_key"])
    third = json.loads(run(own_settings, "partners", "rotate", first["partner_id"], "--overlap-hours", "0").stdout)
    assert not await works(first["api_key"]) and not await works(second["api_key"])
    assert await works(third["api_key"])
    async with integrations_db.begin() as session:
        secrets = await credentials.sealed_secrets(session, vault_from_settings(own_settings),
                                                   uuid.UUID(first["partner_id"]), CredentialKind.WEBHOOK_SECRET)
    assert secrets == [third["webhook_secret"]]
    unknown = run(own_settings, "partners", "rotate", "nobody-by-this-name")
    assert unknown.returncode == 2 and "no partner 'nobody-by-this-name'" in unknown.stderr


async def test_create_test_issues_test_mode_credentials_of_its_own_and_list_shows_the_mode(own_settings,
                                                                                          integrations_db):
    test_name, live_name = f"Sandbox {uuid.uuid4().hex[:6]}", f"Live {uuid.uuid4().hex[:6]}"
    created = run(own_settings, "partners", "create", test_name, "--dialect", "uber", "--test")
    assert created.returncode == 0, created.stderr
    test = json.loads(created.stdout)
    live = json.loads(run(own_settings, "partners", "create", live_name, "--dialect", "uber").stdout)
    assert (test["live_mode"], live["live_mode"]) == (False, True)
    assert EXPECTED["uber"] <= set(test) and test["customer_id"] != live["customer_id"]
    async with integrations_db.begin() as session:
        partner = await credentials.partner_by_secret(session, CredentialKind.CLIENT_SECRET, test["client_secret"],
                                                      key_id=test["client_id"])
    assert (partner.name, partner.live_mode) == (test_name, False)

    modes = {row["name"]: row["mode"] for row in json.loads(run(own_settings, "partners", "list", "--json").stdout)}
    assert (modes[test_name], modes[live_name]) == ("test", "live")
    table = run(own_settings, "partners", "list").stdout.splitlines()
    assert table[0].split() == ["partner_id", "name", "dialect", "mode", "webhook_enabled"]
    assert any(test_name in line and " test " in line for line in table[1:])


async def test_a_doordash_partner_cannot_be_created_without_webhook_authorization(own_settings, integrations_db):
    name = f"Drive {uuid.uuid4().hex[:6]}"
    for extra in ((), ("--webhook-url", "https://partner.example/hooks")):
        refused = run(own_settings, "partners", "create", name, "--dialect", "doordash", *extra)
        assert refused.returncode == 2 and "--webhook-authorization" in refused.stderr, refused.stderr
    async with integrations_db.begin() as session:
        assert await repository.find_partner(session, name) is None


async def test_update_changes_the_webhook_url_and_the_doordash_authorization(own_settings, integrations_db):
    name = f"Drive {uuid.uuid4().hex[:6]}"
    created = json.loads(run(own_settings, "partners", "create", name, "--dialect", "doordash", "--webhook-url",
                             "https://partner.example/old", "--webhook-authorization", "Basic b2xkOm9sZA==").stdout)
    updated = run(own_settings, "partners", "update", name, "--webhook-url", "https://partner.example/new",
                  "--webhook-authorization", "Bearer new-value")
    assert updated.returncode == 0, updated.stderr
    shown = json.loads(updated.stdout)
    assert shown["webhook_url"] == "https://partner.example/new" and shown["webhook_enabled"] is True
    assert "new-value" not in updated.stdout
    async with integrations_db.begin() as session:
        authorizations = await credentials.sealed_secrets(session, vault_from_settings(own_settings),
                                                          uuid.UUID(created["partner_id"]),
                                                          CredentialKind.WEBHOOK_AUTHORIZATION)
    assert authorizations == ["Bearer new-value"]  # DoorDash checks one value: the old one ended at once

    native = f"Native {uuid.uuid4().hex[:6]}"
    assert run(own_settings, "partners", "create", native).returncode == 0
    moved = run(own_settings, "partners", "update", native, "--webhook-url", "https://partner.example/native")
    assert moved.returncode == 0 and json.loads(moved.stdout)["webhook_url"] == "https://partner.example/native"
    for args, error in (((native, "--webhook-authorization", "x"), "doordash dialect only"),
                        ((native,), "nothing to update"),
                        ((name, "--webhook-url", "ftp://partner.example"), "--webhook-url"),
                        (("nobody-by-this-name", "--webhook-url", "https://partner.example"), "no partner")):
        refused = run(own_settings, "partners", "update", *args)
        assert refused.returncode == 2 and error in refused.stderr, (args, refused.stderr)


def test_stores_add_and_list_and_refuse_a_store_outside_every_market(own_settings):
    name = f"Stores {uuid.uuid4().hex[:6]}"
    assert run(own_settings, "partners", "create", name).returncode == 0
    added = run(own_settings, "stores", "add", "--partner", name, "--store-id", "melrose-1", "--name", "Melrose Kitchen",
                "--lat", "34.0837", "--lng", "-118.3614", "--preparation-minutes", "12")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["market"] == "west-hollywood"
    assert json.loads(added.stdout)["preparation_minutes"] == 12
    listed = json.loads(run(own_settings, "stores", "list", "--partner", name, "--json").stdout)
    assert [(s["store_id"], s["preparation_minutes"]) for s in listed] == [("melrose-1", 12)]
    week = run(own_settings, "stores", "add", "--partner", name, "--store-id", "slow", "--name", "Slow", "--lat",
               "34.0837", "--lng", "-118.3614", "--preparation-minutes", "10080")
    assert week.returncode == 2 and "--preparation-minutes" in week.stderr
    outside = run(own_settings, "stores", "add", "--partner", name, "--store-id", "x", "--name", "X", "--lat", "1",
                  "--lng", "1")
    assert outside.returncode == 2 and "outside every service area" in outside.stderr


def test_production_refuses_webhooks_into_private_networks(own_settings):
    key = base64.b64encode(os.urandom(32)).decode()
    production = {"DELIVERY_PROFILE": "production", "DELIVERY_PII_KEYS": f"prod1:{key}"}
    for url in ("http://127.0.0.1:9000/hooks", "https://10.1.2.3/hooks", "https://localhost/hooks",
                "https://user:pw@partner.example/hooks"):
        refused = run(own_settings, "partners", "create", "Intruder", "--webhook-url", url, **production)
        assert refused.returncode == 2 and "--webhook-url" in refused.stderr, (url, refused.stderr)
    allowed = run(own_settings, "partners", "create", "Local dev", "--webhook-url", "http://127.0.0.1:9000/hooks")
    assert allowed.returncode == 0, allowed.stderr


async def test_a_sealed_value_opens_only_in_its_own_row_and_column(own_settings, integrations_db):
    """Someone who can write the database cannot move a sealed value: each is bound to its table, row and column."""
    vault = vault_from_settings(own_settings)
    async with integrations_db.begin() as session:
        partners = [(await credentials.create_partner(session, vault, f"Bound {n} {uuid.uuid4().hex[:6]}", "native",
                                                      None))[0] for n in (1, 2)]
        orders = [await _stored_order(session, vault, partner, phone)
                  for partner, phone in zip(partners, ("+13105550101", "+13105550102"))]
        quotes = [uuid.uuid4(), uuid.uuid4()]
        for quote_id, partner in zip(quotes, partners):
            await repository.save_quote_request(session, vault, quote_id, partners[0].id, f"q-{quote_id}",
                                                {"for": str(partner.id)}, datetime.now(UTC) + timedelta(hours=1))
    async with integrations_db.begin() as session:
        first, second = [await session.scalar(select(PII).where(PII.partner_delivery_id == o.id)) for o in orders]
        assert unseal(vault, first, "customer_phone_encrypted") == "+13105550101"
        first.customer_name_encrypted = second.customer_name_encrypted  # another row
        second.customer_phone_encrypted = second.customer_name_encrypted  # another column
        for row, column in ((first, "customer_name_encrypted"), (second, "customer_phone_encrypted")):
            with pytest.raises(InvalidTag):
                unseal(vault, row, column)
        # One partner's webhook secret copied over another's; one quoted order over another.
        webhook = select(PartnerCredential).where(PartnerCredential.kind == CredentialKind.WEBHOOK_SECRET)
        mine, theirs = [await session.scalar(webhook.where(PartnerCredential.partner_id == p.id)) for p in partners]
        theirs.secret_encrypted = mine.secret_encrypted
        requests = [await session.get(QuoteRequest, quote_id) for quote_id in quotes]
        requests[1].request_encrypted = requests[0].request_encrypted
        await session.flush()
        with pytest.raises(InvalidTag):
            await credentials.sealed_secrets(session, vault, partners[1].id, CredentialKind.WEBHOOK_SECRET)
        with pytest.raises(InvalidTag):
            await repository.find_quote_request(session, vault, partners[0].id, quote_id=quotes[1])
        await session.rollback()


async def _stored_order(session, vault: Vault, partner, phone: str) -> PartnerDelivery:
    order = PartnerDelivery(partner_id=partner.id, external_delivery_id=f"seal-{uuid.uuid4().hex[:8]}",
                            delivery_id=uuid.uuid4(), request_hash="-", status="created", market="m",
                            pickup_latitude=0, pickup_longitude=0, dropoff_latitude=0, dropoff_longitude=0,
                            tracking_token=uuid.uuid4().hex)
    await repository.store_order(session, vault, order, {"name": "Rita Key", "phone": phone, "address": "1 Key St",
                                                         "instructions": "knock"})
    return order


async def test_pii_rotate_key_reseals_everything_under_the_new_key(own_settings, integrations_db):
    old_vault = vault_from_settings(own_settings)
    async with integrations_db.begin() as session:
        partner, _ = await credentials.create_partner(session, old_vault, "Sealed", "native", None)
        order = await _stored_order(session, old_vault, partner, "+13105550123")
    old_spec = (own_settings.data_dir / "secrets" / "pii.key").read_text().strip()
    new_key = base64.b64encode(os.urandom(32)).decode()
    keys = f"k{uuid.uuid4().hex[:6]}:{new_key},{old_spec}"
    result = run(own_settings, "pii", "rotate-key", DELIVERY_PII_KEYS=keys)
    assert result.returncode == 0, result.stderr
    assert "re-sealed under key" in result.stdout
    new_vault = vault_from_settings(own_settings.model_copy(update={"pii_keys": keys}))
    only_new = Vault({new_vault.current: base64.b64decode(new_key)}, new_vault.current)
    async with integrations_db.begin() as session:
        pii = await session.scalar(select(PII).where(PII.partner_delivery_id == order.id))
        assert pii.key_id == new_vault.current
        assert unseal(only_new, pii, "customer_name_encrypted") == "Rita Key"
        assert unseal(only_new, pii, "dropoff_instructions_encrypted") == "knock"
        sealed = await session.scalars(select(PartnerCredential).where(
            PartnerCredential.partner_id == partner.id, PartnerCredential.secret_encrypted.is_not(None)))
        assert all(unseal(only_new, credential, "secret_encrypted") for credential in sealed)
