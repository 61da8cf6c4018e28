"""The HTTP API: partners, robots and health. Built by `create_app` so settings are passed in, not global."""

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api import deliveries, robots
from api.errors import install_error_handlers
from core.crypto import vault_from_settings
from core.db import Databases
from core.services import Service
from core.settings import Settings, load_settings
from core.temporal import connect


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for the given settings (read from the environment when omitted)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.databases = Databases(settings)
        app.state.vault = vault_from_settings(settings)
        app.state.temporal = await connect(settings)
        yield
        await app.state.databases.dispose()

    app = FastAPI(
        title="Sidewalk Delivery Platform API",
        version="0.1.0",
        description="Create and track sidewalk robot deliveries; robots report their events here.",
        lifespan=lifespan,
    )

    install_error_handlers(app)
    app.include_router(deliveries.router)
    app.include_router(robots.router)

    @app.get("/healthz", tags=["health"], summary="Health of every dependency")
    async def healthz() -> JSONResponse:
        checks = await _check_dependencies(app)
        healthy = all(check["ok"] for check in checks.values())
        return JSONResponse({"ok": healthy, "checks": checks}, status_code=200 if healthy else 503)

    return app


async def _check_dependencies(app: FastAPI) -> dict[str, dict]:
    async def probe(name: str, check) -> tuple[str, dict]:
        try:
            await asyncio.wait_for(check, timeout=3)
            return name, {"ok": True}
        except Exception as exc:  # a health probe reports every failure instead of raising
            return name, {"ok": False, "error": type(exc).__name__ + (f": {exc}" if str(exc) else "")}

    databases: Databases = app.state.databases
    probes = [probe(f"database:{s.value}", databases.check(s)) for s in Service]
    probes.append(probe("temporal", app.state.temporal.service_client.check_health()))
    return dict(await asyncio.gather(*probes))
