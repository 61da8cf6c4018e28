"""Partners' webhook endpoints: a Standard Webhooks receiver that can misbehave, and raw per-test endpoints."""

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response

from tests.support.markets import OwnMarket
from tests.support.servers import free_port, serving


@dataclass
class Receiver:
    """Partners' webhook endpoint: a path of its own for each partner, every callback recorded and checked against
    the Standard Webhooks secret of the partner whose path it came to, and only that one. Every market's partner is
    served here, so a callback signed with another partner's secret (a callback crossing over to the wrong partner)
    would otherwise look as valid as its own."""

    url: str = ""  # the base of every partner's path
    secrets: dict[str, str] = field(default_factory=dict)  # path -> its partner's webhook secret
    path_of: dict[str, str] = field(default_factory=dict)  # market name -> its partner's path
    received: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    refused: dict[str, list[str]] = field(default_factory=dict)  # path -> webhook-ids its partner's secret refused
    fail_next: int = 0
    gone_for: dict[str, int] = field(default_factory=dict)  # external delivery id -> 410 answers left

    def verify(self, path: str, headers, body: bytes) -> bool:
        """Signed with the secret of the partner whose path this is (another partner's secret does not do)."""
        secret = self.secrets.get(path)
        return secret is not None and self._signed_with(secret, headers, body)

    @staticmethod
    def _signed_with(secret: str, headers, body: bytes) -> bool:
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"))
            signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
            signatures = headers["webhook-signature"].split()
        except (KeyError, ValueError):
            return False
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return any(hmac.compare_digest(f"v1,{expected}", s) for s in signatures)

    def statuses(self, delivery_id) -> list[str]:
        return [c["data"]["status"] for c in self.received if c["data"]["delivery_id"] == str(delivery_id)]

    async def serve_partner_of(self, market: OwnMarket) -> None:
        """Make a path of this endpoint the webhook of `market`'s own (native) partner."""
        path = uuid.uuid4().hex
        secrets = await market.add_partner(f"{self.url}/{path}")
        self.secrets[path], self.path_of[market.market.name] = secrets["webhook_secret"], path

    def refused_for(self, market: OwnMarket) -> list[str]:
        """The webhook-ids of the callbacks to `market`'s partner that its own secret did not sign."""
        return self.refused.get(self.path_of.get(market.market.name, ""), [])

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{path}")
        async def hook(path: str, request: Request) -> Response:
            body = await request.body()
            external_id = json.loads(body)["data"]["external_delivery_id"]
            if self.gone_for.get(external_id, 0) > 0:
                self.gone_for[external_id] -= 1
                return Response(status_code=410)
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=503)
            if not self.verify(path, request.headers, body):
                self.bad_signatures += 1
                self.refused.setdefault(path, []).append(request.headers.get("webhook-id", ""))
                return Response(status_code=400)
            payload = json.loads(body)
            payload["webhook_id"] = request.headers["webhook-id"]
            self.received.append(payload)
            return Response(status_code=204)

        return app


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving(receiver.app(), free_port()) as base_url:
        receiver.url = f"{base_url}/hooks"
        yield receiver


@dataclass
class Hook:
    """One request a webhook endpoint received."""

    headers: dict[str, str]
    body: bytes
    url: str

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Hooks:
    """A partner's webhook endpoints, one path per test: every request is kept as received, with its raw body."""

    base_url: str = ""
    received: dict[str, list[Hook]] = field(default_factory=dict)

    def endpoint(self) -> str:
        path = uuid.uuid4().hex
        self.received[path] = []
        return f"{self.base_url}/{path}"

    def of(self, url: str) -> list[Hook]:
        return self.received[url.rsplit("/", 1)[1]]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path}")
        async def hook(path: str, request: Request) -> Response:
            self.received.setdefault(path, []).append(Hook(dict(request.headers), await request.body(),
                                                           str(request.url)))
            return Response(status_code=204)

        return app


@asynccontextmanager
async def running_hooks() -> AsyncIterator[Hooks]:
    hooks = Hooks()
    async with serving(hooks.app(), free_port()) as base_url:
        hooks.base_url = base_url
        yield hooks
