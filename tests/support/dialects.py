"""How other dialects' partners authenticate: a DoorDash Drive DD-JWT-V1 they sign, an Uber Direct OAuth token."""

import base64
import hashlib
import hmac
import json
import time
from uuid import UUID

import httpx

from core.services import Service
from services.integrations import repository as integrations


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def drive_jwt(credentials: dict, *, aud: str = "doordash", lifetime: int = 300, issued: float | None = None,
              secret: str | None = None, developer_id: str | None = None) -> str:
    """A Drive access token as Drive clients mint it: HS256 over a DD-JWT-V1 header, keyed by the decoded secret."""
    iat = int(issued if issued is not None else time.time())
    header = _segment({"alg": "HS256", "typ": "JWT", "dd-ver": "DD-JWT-V1"})
    claims = _segment({"aud": aud, "iss": developer_id or credentials["developer_id"], "kid": credentials["key_id"],
                       "iat": iat, "exp": iat + lifetime})
    key = base64.urlsafe_b64decode((secret or credentials["signing_secret"]) + "==")
    signature = hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


async def access_token(market, credentials: dict) -> str:
    async with httpx.AsyncClient(base_url=market.platform.api_url) as client:
        answer = await client.post("/oauth/v2/token", data={
            "client_id": credentials["client_id"], "client_secret": credentials["client_secret"],
            "grant_type": "client_credentials", "scope": "eats.deliveries"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer" and answer.json()["expires_in"] > 0
    return answer.json()["access_token"]


async def drive_developer(market, hooks, authorization: str) -> dict:
    """A Drive developer with a store (`store-1`) in the market and a webhook that wants `authorization`."""
    url = hooks.endpoint()
    secrets = await market.add_partner(url, "doordash", authorization)
    async with market.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
        point = market.point(north_m=100)
        await integrations.add_store(session, UUID(secrets["partner_id"]), "store-1", "Test Kitchen",
                                     point["latitude"], point["longitude"], market.market.name)
    return {**secrets, "webhook_url": url}
