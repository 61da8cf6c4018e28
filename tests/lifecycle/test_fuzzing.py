"""Schemathesis against our own OpenAPI schema: every public endpoint, each dialect with its own credentials.

Every run speaks with a credential that works and path parameters that name real things: the robot API with a
robot's own device credential (a robot on a delivery), Uber with a token and its own customer_id, and wherever a
path takes one, a delivery, quote or tracking token of that partner's. The test counts how many requests each
operation's handler ran for, not only how many were sent: a request refused before its handler (credentials,
routing, an Uber customer_id, the request's schema) does not count, and every operation's handler must run at
least `REACHED` times.

No request may get a 500 or a response that breaks the schema, and a refused request never stores anything:
the orders a partner has afterwards are at most those its 2xx creates made.
"""

import asyncio
import json
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from api.limits import RateLimiter
from core.services import Service
from services.integrations.models import Partner, PartnerDelivery
from tests.support.dialects import access_token, drive_jwt
from tests.support.lifecycle import create
from tests.support.waiting import wait_status

EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "5")
# How many requests each operation's handler must have run for in its dialect's run. An operation that takes no
# input (health, a robot's assignment, the store list) gives schemathesis three requests to send: those must all count.
REACHED = 3
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
# Operations that store an order when they answer 2xx (all others must store nothing).
CREATES = {("POST", "/v1/deliveries"), ("POST", "/drive/v2/deliveries"),
           ("POST", "/drive/v2/quotes/{external_delivery_id}/accept"),
           ("POST", "/v1/customers/{customer_id}/deliveries"), ("POST", "/olo/v1/quotes/{quoteId}/accept")}
PHONE = "+13105550100"
# The message of every dialect's answer to a request that does not match the schema (api/errors.py).
SCHEMA_REFUSAL = "the request does not match the schema"
# The hooks `st run` loads (a file of its own: importing it here would register them in this process too).
HOOKS = Path(__file__).resolve().parent.parent / "support" / "fuzz_hooks.py"


@pytest.fixture
def unlimited(platform):
    """Fuzzing sends hundreds of requests a second: lift the per-partner rate limit for it."""
    original = platform.app.state.rate_limiter
    platform.app.state.rate_limiter = RateLimiter(rate=10_000, burst=10_000)
    yield
    platform.app.state.rate_limiter = original


async def orders_of(platform, partner_ids) -> int:
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        return await session.scalar(select(func.count()).select_from(PartnerDelivery)
                                    .where(PartnerDelivery.partner_id.in_(partner_ids)))


def operations_under(platform, include_path_regex: str) -> list[str]:
    """The schema's operations a run covers, as "METHOD /path"."""
    paths = platform.app.openapi()["paths"]
    return [f"{method.upper()} {path}" for path, methods in paths.items() if re.search(include_path_regex, path)
            for method in methods]


def settings_file(tmp_path: Path, name: str, path_parameters: dict[str, str]) -> Path:
    """A schemathesis.toml for one run: our hooks, and the real value of each path parameter."""
    lines = [f"hooks = {json.dumps(str(HOOKS))}", "", "[parameters]"]
    lines += [f'"path.{key}" = {json.dumps(value)}' for key, value in path_parameters.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def fuzz(platform, tmp_path: Path, name: str, token: str, include_path_regex: str,
               path_parameters: dict[str, str]) -> list[dict]:
    """Run schemathesis on the operations whose path matches; return its recorded interactions."""
    cassette = tmp_path / f"{name}.yaml"
    st = Path(sys.executable).parent / "st"
    process = await asyncio.create_subprocess_exec(
        str(st), "--config-file", str(settings_file(tmp_path, name, path_parameters)), "run",
        f"{platform.api_url}/openapi.json", "--checks", CHECKS, "--max-examples", EXAMPLES,
        "--seed", "20261125", "--workers", "1", "--include-path-regex", include_path_regex,
        "--header", f"Authorization: Bearer {token}", "--generation-database", "none", "--no-color",
        "--request-timeout", "30", "--report", "vcr", "--report-vcr-path", str(cassette),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text[-6000:]
    interactions = yaml.safe_load(cassette.read_text())["http_interactions"]
    assert interactions, text[-2000:]
    return interactions


def reached_handler(interaction: dict) -> bool:
    """Whether a request's handler ran: every answer does but those given before it, for credentials (401, 403;
    the token exchange's own `invalid_client` is its handler's), routing (404, 405), an Uber customer_id that is
    not the token's, a body over the limit (413), or a request that does not match the schema."""
    response = interaction["response"]
    status = int(response["status"]["code"])
    if status < 400:
        return True
    try:
        body = json.loads(response["body"]["string"])
    except (KeyError, TypeError, ValueError):
        return False
    if not isinstance(body, dict):
        return False
    code, message = body.get("code") or body.get("error"), body.get("message")
    if status in (401, 403):
        return code == "invalid_client"
    if status in (404, 405):
        return message not in ("Not Found", "Method Not Allowed") and code != "customer_not_found"
    return status != 413 and message != SCHEMA_REFUSAL


def per_operation(interactions: list[dict], operations: list[str]) -> dict[str, int]:
    """How many of the requests reached each operation's handler."""
    reached = dict.fromkeys(operations, 0)
    for item in interactions:
        method, uri = item["request"]["method"], item["request"]["uri"]
        operation = next((o for o in operations if o.split(" ", 1)[0] == method
                          and _matches(o.split(" ", 1)[1], uri)), None)
        if operation is not None and reached_handler(item):
            reached[operation] += 1
    return reached


def successful_creates(interactions: list[dict]) -> int:
    """How many requests could have stored an order: creates that answered 2xx (replays included)."""
    return sum(1 for item in interactions
               if 200 <= int(item["response"]["status"]["code"]) < 300
               and any(m == item["request"]["method"] and _matches(path, item["request"]["uri"])
                       for m, path in CREATES))


def _matches(template: str, uri: str) -> bool:
    path = uri.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    parts, pattern = ("/" + path).split("/"), template.split("/")
    return len(parts) == len(pattern) and all(p.startswith("{") or p == q for p, q in zip(pattern, parts))


async def posted(market, token: str, path: str, body: dict | None = None) -> dict:
    """A request of the partner's that must succeed, as its client sends it; the answer's body."""
    async with httpx.AsyncClient(base_url=market.platform.api_url, timeout=30,
                                 headers={"authorization": f"Bearer {token}"}) as client:
        answer = await client.post(path, json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def native_paths(market) -> tuple[dict[str, str], str]:
    """A delivery of the native partner, its tracking token, and the credential of the robot serving it."""
    delivery_id = await create(market)
    view = await wait_status(market.platform, delivery_id, "robot_assigned")
    async with market.partner_http() as partner:
        tracking_url = (await partner.get(f"/v1/deliveries/{delivery_id}")).json()["tracking_url"]
    return {"delivery_id": str(delivery_id), "token": tracking_url.rsplit("/", 1)[1]}, market.robots[view["robot_id"]]


async def doordash_paths(market, token: str, addresses: list[str]) -> dict[str, str]:
    """A quoted and accepted Drive delivery: accepting it again, reading, changing and cancelling it all reach it."""
    body = {"external_delivery_id": "fuzz-drive", "pickup_address": addresses[0], "dropoff_address": addresses[1],
            "dropoff_phone_number": PHONE}
    await posted(market, token, "/drive/v2/quotes", body)
    await posted(market, token, "/drive/v2/quotes/fuzz-drive/accept", {})
    return {"external_delivery_id": "fuzz-drive"}


async def uber_paths(market, token: str, customer_id: str, addresses: list[str]) -> dict[str, str]:
    body = {"pickup_name": "Fuzz Kitchen", "pickup_address": addresses[0], "pickup_phone_number": PHONE,
            "dropoff_name": "Alex Doe", "dropoff_address": addresses[1], "dropoff_phone_number": PHONE,
            "external_id": "fuzz-uber"}
    created = await posted(market, token, f"/v1/customers/{customer_id}/deliveries", body)
    return {"customer_id": customer_id, "delivery_id": created["id"]}


async def olo_paths(market, token: str) -> dict[str, str]:
    body = {"deliveryId": "fuzz-olo", "pickup": market.point(north_m=100), "dropoff": market.point(north_m=400),
            "customer": {"name": "Alex Doe", "phone": PHONE},
            "pickupTime": (datetime.now(UTC) + timedelta(minutes=30)).isoformat()}
    quote = await posted(market, token, "/olo/v1/quotes", body)
    await posted(market, token, f"/olo/v1/quotes/{quote['quoteId']}/accept")
    return {"quoteId": quote["quoteId"], "deliveryId": "fuzz-olo"}


async def test_every_handler_is_reached_and_none_fails_or_breaks_its_schema_under_generated_input(
        market, geocoded, tmp_path, unlimited):
    platform = market.platform
    for _ in range(4):  # one robot, with a pilot, for each dialect's own delivery
        await market.add_robot()
        await market.add_pilot()
    doordash = await market.add_partner(None, "doordash")
    uber = await market.add_partner(None, "uber")
    olo = await market.add_partner(None, "olo")
    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        partner_ids = [market.partner_id, *[(await session.get(Partner, p["partner_id"])).id
                                            for p in (doordash, uber, olo)]]
    addresses = list(geocoded)
    native, robot_credential = await native_paths(market)
    drive_token, uber_token = drive_jwt(doordash), await access_token(market, uber)
    runs = [
        ("robot", robot_credential, r"^/v1/robot/", {}),
        ("native", market.api_key, r"^/(v1/(quotes|deliveries|stores)|track|healthz)", native),
        ("doordash", drive_token, r"^/drive/v2/", await doordash_paths(market, drive_token, addresses)),
        ("uber", uber_token, r"^/(v1/customers/|oauth/)",
         await uber_paths(market, uber_token, uber["customer_id"], addresses)),
        ("olo", olo["api_key"], r"^/olo/v1/", await olo_paths(market, olo["api_key"])),
    ]
    before = await orders_of(platform, partner_ids)
    made, starved = 0, {}
    started = time.monotonic()
    # The dialects' runs at once: each is a process of its own, and they share no partner.
    recorded = await asyncio.gather(*(fuzz(platform, tmp_path, name, token, paths, path_parameters)
                                      for name, token, paths, path_parameters in runs))
    for (name, _, paths, _), interactions in zip(runs, recorded):
        reached = per_operation(interactions, operations_under(platform, paths))
        statuses = sorted({int(i["response"]["status"]["code"]) for i in interactions})
        print(f"schemathesis {name}: {len(interactions)} requests (all runs took {time.monotonic() - started:.0f} s), "
              f"{sum(reached.values())} reached a handler, statuses {statuses}; by operation {reached}")
        starved.update({operation: n for operation, n in reached.items() if n < REACHED})
        made += successful_creates(interactions)
    assert starved == {}, f"handlers reached fewer than {REACHED} times: {starved}"
    # Every stored order came from a request that was answered as a success, and only from those.
    assert await orders_of(platform, partner_ids) - before <= made


async def test_an_uber_address_whose_city_is_not_text_is_refused_naming_the_field(market, geocoded):
    """What the fuzzing found: such an address was a 500; it is Uber's own `invalid_params`, naming the field."""
    uber = await market.add_partner(None, "uber")
    token, pickup = await access_token(market, uber), list(geocoded)[0]
    dropoff = json.dumps({"street_address": ["2 Home Ave"], "city": ["Testville"], "state": "TS"})
    async with httpx.AsyncClient(base_url=f"{market.platform.api_url}/v1/customers/{uber['customer_id']}",
                                 headers={"authorization": f"Bearer {token}"}) as client:
        answer = await client.post("/delivery_quotes", json={"pickup_address": pickup, "dropoff_address": dropoff})
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_params" and "dropoff_address" in answer.json()["metadata"]
    assert "dropoff_address.city" in answer.json()["message"]
