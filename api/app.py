"""The HTTP API: partners, robots and health. Built by `create_app` so settings are passed in, not global."""

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from api import deliveries, robots, tracking
from api.dialects import doordash, olo, uber
from api.errors import install_error_handlers
from api.limits import BodyLimit, RateLimiter, admit_address
from core.caching import TtlCache
from core.crypto import vault_from_settings
from core.db import Databases
from core.geocoding import geocoder_from_settings
from core.heap import settle_heap
from core.logging import configure_logging
from core.services import Service
from core.settings import Settings, load_settings
from core.temporal import connect
from desks.accounts import PartnerAccounts
from desks.partner import PartnerDesk
from desks.robot import RobotDesk
from desks.sandbox import SandboxDesk
from desks.views import OrderViews


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for the given settings.

    Without settings (how `uvicorn --factory` calls it), the app is its process's: settings come from the
    environment and the process logs JSON lines.
    """
    own_process = settings is None
    if own_process:
        settings = load_settings()
        configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.databases = databases = Databases(settings)
        app.state.rate_limiter = RateLimiter(settings.api_rate_limit_per_second, settings.api_rate_limit_burst)
        app.state.temporal = temporal = await connect(settings, metrics=False)  # the API serves its own /metrics
        vault = vault_from_settings(settings)
        app.state.partner_accounts = PartnerAccounts(databases, vault, settings)
        app.state.order_views = views = OrderViews(databases, temporal, settings)
        app.state.partner_desk = PartnerDesk(databases, vault, geocoder_from_settings(settings), temporal, settings,
                                             views)
        app.state.robot_desk = robot_desk = RobotDesk(databases, temporal, settings)
        app.state.sandbox_desk = SandboxDesk(temporal, views, robot_desk, app.state.partner_desk)
        if own_process:
            settle_heap()  # no request waits out a full collection of what start-up loaded
        yield
        await app.state.partner_desk.close()
        await app.state.robot_desk.close()
        await app.state.databases.dispose()

    app = FastAPI(
        title="Sidewalk Delivery Platform API",
        version="0.1.0",
        description="Create and track sidewalk robot deliveries; robots report their events here. Partners may "
                    "also speak DoorDash Drive v2 (`/drive/v2`), Uber Direct (`/oauth/v2/token`, "
                    "`/v1/customers/{customer_id}`) or Olo dispatch (`/olo/v1`): see docs/partners.md.",
        lifespan=lifespan,
    )

    install_error_handlers(app, {doordash.PREFIX: doordash.render_error, uber.PREFIX: uber.render_error,
                                 "/oauth/": uber.render_oauth_error})
    app.include_router(deliveries.router)
    for dialect in (doordash, uber, olo):
        app.include_router(dialect.router)
    app.include_router(robots.router)
    app.include_router(tracking.router)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    registry = RequestMetrics.install(app)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    health = TtlCache(seconds=HEALTH_SECONDS, max_entries=1)

    @app.get("/healthz", tags=["health"], summary="Health of every dependency")
    async def healthz(request: Request) -> JSONResponse:
        """Which dependencies answer, by name only (never why one fails: that is in the logs).

        Throttled by client address, and answered from one probe round kept for a few seconds, so callers
        cannot make every hit probe every database and Temporal.
        """
        admit_address(request)
        checks = await health.get("checks", lambda: _check_dependencies(app))
        healthy = all(check["ok"] for check in checks.values())
        # `process`: which API process answered, where several serve the one port (`up --api-processes N`).
        return JSONResponse({"ok": healthy, "checks": checks, "process": os.getpid()},
                            status_code=200 if healthy else 503)

    return app


HEALTH_SECONDS = 3  # how long one round of health probes answers /healthz
health_log = logging.getLogger("api.health")


async def _check_dependencies(app: FastAPI) -> dict[str, dict]:
    async def probe(name: str, check) -> tuple[str, dict]:
        try:
            await asyncio.wait_for(check, timeout=3)
            return name, {"ok": True}
        except Exception:  # a health probe reports every failure instead of raising; why, only in the log
            health_log.warning("health probe %s failed", name, exc_info=True)
            return name, {"ok": False}

    databases: Databases = app.state.databases
    probes = [probe(f"database:{s.value}", databases.check(s)) for s in Service]
    probes.append(probe("temporal", app.state.temporal.service_client.check_health()))
    return dict(await asyncio.gather(*probes))


request_log = logging.getLogger("api.requests")


class RequestMetrics:
    """ASGI middleware: per route template (never the raw path) and status, count, time and log each request.

    The log line names the method, route, status and duration, and the delivery ID when the route has one;
    never the query string, headers (Authorization) or bodies, which carry keys and customers' details.
    """

    def __init__(self, app, requests: Counter, latency: Histogram):
        self.app, self.requests, self.latency = app, requests, latency

    @classmethod
    def install(cls, app: FastAPI) -> CollectorRegistry:
        """Add the middleware to `app`, with its own registry (several apps may live in one process)."""
        registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        requests = Counter("api_requests_total", "HTTP requests by route and status",
                           ["method", "route", "status"], registry=registry)
        latency = Histogram("api_request_duration_seconds", "HTTP request latency by route and status",
                            ["method", "route", "status"], registry=registry)
        app.add_middleware(cls, requests=requests, latency=latency)
        return registry

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            labels = {"method": scope["method"], "route": route, "status": str(status)}
            self.requests.labels(**labels).inc()
            self.latency.labels(**labels).observe(elapsed)
            if route != "/metrics":
                delivery_id = (scope.get("path_params") or {}).get("delivery_id")
                extra = {**labels, "status": status, "duration_ms": round(elapsed * 1000, 1)}
                if delivery_id is not None:
                    extra["delivery_id"] = str(delivery_id)
                request_log.info("%s %s %s", scope["method"], route, status, extra=extra)
