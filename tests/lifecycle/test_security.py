"""Credentials on every endpoint, robots speaking only for themselves, and no secret or PII in what we keep."""

import json
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from core.crypto import vault_from_settings
from core.services import Service
from services.integrations import credentials
from services.integrations.models import CredentialKind, Partner, PartnerCredential
from tests.support.dialects import access_token, drive_jwt
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_status, wait_terminal
from workflows.delivery import workflow_id

# Reachable without credentials: health, metrics, docs, the customer's tracking page, and the OAuth token
# exchange (whose credentials are in the form body; tested in test_dialect_uber.py).
PUBLIC = {"/healthz", "/metrics", "/track/{token}", "/oauth/v2/token", "/openapi.json", "/docs", "/docs/oauth2-redirect",
          "/redoc"}


def operations(app) -> list[tuple[str, str]]:
    """Every (method, path) the API serves that needs credentials, from its own OpenAPI schema."""
    found = []
    for path, methods in app.openapi()["paths"].items():
        if path not in PUBLIC:
            found += [(method.upper(), path) for method in methods]
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: str(uuid.uuid4()) if "id" in m.group(0) else "x", path)


async def test_every_endpoint_refuses_missing_wrong_expired_and_other_dialects_credentials(market):
    platform = market.platform
    routes = operations(platform.app)
    assert len(routes) >= 25  # native, robot, DoorDash, Uber and Olo operations
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        vault = vault_from_settings(platform.settings)
        partner = await session.get(Partner, market.partner_id)
        expired_key = market.api_key
        await credentials.rotate(session, vault, partner, timedelta(0))
        _, device = await credentials.create_partner(session, vault, "a robot maker", "native", None)
    robot_credential = market.robots[await market.add_robot()]
    refusals = {
        "missing": {},
        "garbage": {"authorization": "Bearer not-a-credential"},
        "expired": {"authorization": f"Bearer {expired_key}"},
        "basic": {"authorization": "Basic dXNlcjpwYXNz"},
    }
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=30) as http:
        for method, path in routes:
            for name, headers in refusals.items():
                answer = await http.request(method, concrete(path), headers=headers, json={})
                assert answer.status_code == 401, (name, method, path, answer.status_code, answer.text)
            # A valid credential of the wrong kind opens nothing: a robot's on partner routes, a partner's on
            # robot routes and on other dialects' routes.
            wrong = robot_credential if not path.startswith("/v1/robot") else device["api_key"]
            if path.startswith(("/drive/", "/v1/customers/", "/olo/")):
                wrong = device["api_key"] if not path.startswith("/olo/") else robot_credential
            answer = await http.request(method, concrete(path), headers={"authorization": f"Bearer {wrong}"},
                                        json={})
            assert answer.status_code in (401, 403), (method, path, answer.status_code, answer.text)


async def test_a_robot_can_only_speak_for_itself(market):
    platform = market.platform
    robots = {await market.add_robot(), await market.add_robot(north_m=1_500)}
    await market.add_pilot()
    async with market.partner_http() as partner:
        delivery_id = (await partner.post("/v1/deliveries", json=market.order())).json()["id"]
    assigned = (await wait_status(platform, delivery_id, "robot_assigned"))["robot_id"]
    owner, intruder = RobotDriver(market, assigned), RobotDriver(market, (robots - {assigned}).pop())
    # The other robot has no assignment: whatever it claims, the delivery does not move.
    refused = await intruder.send("departed", expect=409)
    assert refused.json()["code"] == "no_assignment"
    assert await intruder.assignment() is None
    assert (await wait_status(platform, delivery_id, "robot_assigned"))["robot_id"] == owner.robot_id
    await owner.to_pickup(delivery_id)
    await owner.load_and_go()
    await owner.hand_over()
    assert (await wait_terminal(platform, delivery_id))["status"] == "delivered"


async def test_no_secret_or_personal_data_in_histories_or_error_responses(market):
    platform = market.platform
    await market.add_robot()
    await market.add_pilot()
    name, phone = f"Ivo Secretson-{secrets.token_hex(3)}", f"+1310555{secrets.randbelow(10_000):04d}"
    address, instructions = f"{secrets.randbelow(9000) + 1000} Quiet Mews", f"code {secrets.token_hex(2)}"
    order = {**market.order(), "customer": {"name": name, "phone": phone}}
    order["dropoff"] = {**order["dropoff"], "address": address, "instructions": instructions}
    async with market.partner_http() as partner:
        quote = (await partner.post("/v1/quotes", json={k: {c: order[k][c] for c in ("latitude", "longitude")}
                                                       for k in ("pickup", "dropoff")})).json()
        created = await partner.post("/v1/deliveries", json={**order, "quote_id": quote["id"]})
        delivery_id = created.json()["id"]
        changed = await partner.patch(f"/v1/deliveries/{delivery_id}", json={"customer_phone": phone + "9"})
        assert changed.status_code == 200
        # Refusals must not echo what was sent: a bad phone, a conflicting replay, an unknown quote.
        refusals = [
            await partner.post("/v1/deliveries", json={**order, "customer": {"name": name, "phone": f"call {phone}"}}),
            await partner.post("/v1/deliveries", json={**order, "customer": {"name": name + "!", "phone": phone}}),
            await partner.post("/v1/deliveries", json={**market.order(), "quote_id": str(uuid.uuid4())}),
            await partner.post("/v1/deliveries", content=b'{"customer": {"name": "' + name.encode() + b'"'),
        ]
        await partner.post(f"/v1/deliveries/{delivery_id}/cancel", json={"reason": "other"})
    await wait_terminal(platform, delivery_id)
    assert all(400 <= r.status_code < 500 for r in refusals), [r.status_code for r in refusals]

    handle = platform.client.get_workflow_handle(workflow_id(delivery_id))
    histories = [(await handle.fetch_history()).to_json(),
                 (await platform.client.get_workflow_handle(f"quote:{quote['id']}").fetch_history()).to_json()]
    kept = "\n".join([*histories, *(r.text for r in refusals)])
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        webhook_secrets = await credentials.sealed_secrets(session, vault_from_settings(platform.settings),
                                                           market.partner_id, credentials.K.WEBHOOK_SECRET)
    never = [name, phone, phone.removeprefix("+"), phone + "9", address, instructions, market.api_key,
             *webhook_secrets, *market.robots.values()]
    leaked = [value for value in never if value.lower() in kept.lower()]
    assert not leaked, f"kept in clear: {leaked}"
    assert json.loads(histories[0])["events"]  # the history was really read


async def test_each_dialects_credential_opens_only_its_own_routes(market):
    """A native key, an Olo key, a DoorDash JWT and an Uber token each open their own routes and no other's."""
    native = await market.add_partner(None, "native")
    olo = await market.add_partner(None, "olo")
    doordash = await market.add_partner(None, "doordash")
    uber = await market.add_partner(None, "uber")
    bearers = {"native": native["api_key"], "olo": olo["api_key"], "doordash": drive_jwt(doordash),
               "uber": await access_token(market, uber)}
    routes = {"native": ("GET", "/v1/deliveries"), "olo": ("GET", "/olo/v1/deliveries/nowhere"),
              "doordash": ("GET", "/drive/v2/deliveries/nowhere"),
              "uber": ("GET", f"/v1/customers/{uber['customer_id']}/deliveries")}
    async with httpx.AsyncClient(base_url=market.platform.api_url, timeout=30) as http:
        for holder, bearer in bearers.items():
            for family, (method, path) in routes.items():
                answer = await http.request(method, path, headers={"authorization": f"Bearer {bearer}"})
                if holder == family:
                    assert answer.status_code in (200, 404), (holder, path, answer.status_code, answer.text)
                else:
                    assert answer.status_code in (401, 403), (holder, path, answer.status_code, answer.text)


async def test_rotating_an_uber_partners_secret_ends_its_access_tokens_with_the_overlap(market):
    uber = await market.add_partner(None, "uber")
    token = await access_token(market, uber)
    path = f"/v1/customers/{uber['customer_id']}/deliveries"
    async with httpx.AsyncClient(base_url=market.platform.api_url, timeout=30) as http:
        headers = {"authorization": f"Bearer {token}"}
        assert (await http.get(path, headers=headers)).status_code == 200
        async with market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner = await session.get(Partner, uuid.UUID(uber["partner_id"]))
            rotated = await credentials.rotate(session, vault_from_settings(market.platform.settings), partner,
                                               timedelta(0))
        assert (await http.get(path, headers=headers)).status_code == 401
    await access_token(market, rotated)  # a grant clears the partner's expired tokens away
    async with market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        tokens = (await session.scalars(select(PartnerCredential).where(
            PartnerCredential.partner_id == partner.id, PartnerCredential.kind == CredentialKind.ACCESS_TOKEN))).all()
    assert len(tokens) == 1 and tokens[0].expires_at > datetime.now(UTC)
