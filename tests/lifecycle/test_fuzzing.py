"""Schemathesis against our own OpenAPI schema: every public endpoint, each dialect with its own credentials.

No request may get a 500 or a response that breaks the schema, and a refused request never stores anything:
the orders a partner has afterwards are exactly those its 2xx creates made.
"""

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from api.limits import RateLimiter
from core.services import Service
from services.integrations.models import PartnerDelivery
from tests.support.dialects import access_token, drive_jwt

EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "8")
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
# Operations that store an order when they answer 2xx (all others must store nothing).
CREATES = {("POST", "/v1/deliveries"), ("POST", "/drive/v2/deliveries"), ("POST", "/drive/v2/quotes/{external_delivery_id}/accept"),
           ("POST", "/v1/customers/{customer_id}/deliveries"), ("POST", "/olo/v1/quotes/{quote_id}/accept")}


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


async def fuzz(platform, tmp_path: Path, name: str, token: str, include_path_regex: str) -> list[dict]:
    """Run schemathesis on the operations whose path matches; return its recorded interactions."""
    cassette = tmp_path / f"{name}.yaml"
    st = Path(sys.executable).parent / "st"
    process = await asyncio.create_subprocess_exec(
        str(st), "run", f"{platform.api_url}/openapi.json", "--checks", CHECKS, "--max-examples", EXAMPLES,
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


def successful_creates(interactions: list[dict]) -> int:
    """How many requests could have stored an order: creates that answered 2xx (replays included)."""
    return sum(1 for item in interactions
               if 200 <= int(item["response"]["status"]["code"]) < 300
               and any(m == item["request"]["method"] and _matches(path, item["request"]["uri"]) for m, path in CREATES))


def _matches(template: str, uri: str) -> bool:
    path = uri.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    parts, pattern = ("/" + path).split("/"), template.split("/")
    return len(parts) == len(pattern) and all(p.startswith("{") or p == q for p, q in zip(pattern, parts))


async def test_no_endpoint_fails_or_breaks_its_schema_under_generated_input(market, tmp_path, unlimited):
    platform = market.platform
    await market.add_robot()
    doordash = await market.add_partner(None, "doordash")
    uber = await market.add_partner(None, "uber")
    olo = await market.add_partner(None, "olo")
    from services.integrations.models import Partner

    async with platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        partner_ids = [market.partner_id, *[(await session.get(Partner, p["partner_id"])).id
                                            for p in (doordash, uber, olo)]]
    before = await orders_of(platform, partner_ids)
    runs = [
        ("native", market.api_key, r"^/(v1/(quotes|deliveries|stores)|track|healthz)"),
        ("robot", "dev_not-a-robot", r"^/v1/robot/"),
        ("doordash", drive_jwt(doordash), r"^/drive/v2/"),
        ("uber", await access_token(market, uber), r"^/(v1/customers/|oauth/)"),
        ("olo", olo["api_key"], r"^/olo/v1/"),
    ]
    made, tried = 0, 0
    for name, token, paths in runs:
        interactions = await fuzz(platform, tmp_path, name, token, paths)
        statuses = sorted({int(i["response"]["status"]["code"]) for i in interactions})
        print(f"schemathesis {name}: {len(interactions)} requests, statuses {statuses}")
        tried += len(interactions)
        made += successful_creates(interactions)
    assert tried > 100
    # Every stored order came from a request that was answered as a success, and only from those.
    assert await orders_of(platform, partner_ids) - before <= made
