"""Limits on what one caller can send: request rate per partner (or per client address where no credential
exists), and request body size. The short-lived answers that spare backends from strangers' repeats are
`core.caching`'s.

Each API process limits on its own (several per replica with `DELIVERY_API_PROCESSES`), so P processes admit
up to P × the configured rate; the rate is set per process with that in mind (docs/deploy.md#api-processes).
"""

import math
import time
from collections.abc import Hashable

from fastapi import Request

from api.errors import ApiError, error_response


class RateLimiter:
    """`rate` requests per second sustained, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def admit(self, partner_id: Hashable) -> None:
        """Take one token for the partner (or another caller's key), or refuse with 429 and how long to wait."""
        now = time.monotonic()
        tokens, stamp = self._buckets.get(partner_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        if tokens < 1:
            self._buckets[partner_id] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            raise ApiError(429, "rate_limited", f"too many requests; retry in {wait} s",
                           headers={"Retry-After": str(wait)})
        self._buckets[partner_id] = (tokens - 1, now)


def admit_address(request: Request, *more: Hashable) -> None:
    """Throttle a caller without credentials by its client address (and by `more` keys, e.g. an OAuth client_id),
    in the same buckets as partners: 429 with Retry-After once over the rate."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.admit(("address", request.client.host if request.client else "unknown"))
    for key in more:
        limiter.admit(key)


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` is refused with 413 before any route sees it.

    A declared Content-Length is checked up front; a streamed (chunked) body is read here, up to the
    limit, and handed on only if it fits.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                return await self._refuse(scope, receive, send)
            return await self.app(scope, receive, send)
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send)
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send):
        response = error_response(413, "payload_too_large", f"the request body is over {self.max_bytes} bytes")
        await response(scope, receive, send)
