"""Create the seven service databases and run each one's Alembic environment."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from core.services import Service
from core.settings import Settings

# Beside the `migrations` package at the repo root; found from this file, which works for
# namespace-package imports too (a stale editable install has no `migrations.__file__`).
ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
# The config attribute that hands an environment its database URL; the plain alembic CLI leaves it unset.
URL_ATTRIBUTE = "database_url"

T = TypeVar("T")


def alembic_config(service: Service, settings: Settings | None = None) -> Config:
    """The Alembic config of a service's environment, aimed at its database if settings are given."""
    config = Config(ALEMBIC_INI, ini_section=service.value)
    if settings is not None:
        config.attributes[URL_ATTRIBUTE] = settings.database_url(service)
    return config


async def create_databases(settings: Settings) -> list[str]:
    """Create each service database that does not exist yet; return the names created."""
    created = []
    for service in Service:
        server_dsn, name = _server_dsn(settings.database_dsn(service))
        connection = await asyncpg.connect(server_dsn)
        try:
            if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                continue
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                await connection.execute(f"CREATE DATABASE {quoted}")
            except asyncpg.DuplicateDatabaseError:
                continue  # another process created it between our check and our CREATE
            created.append(name)
        finally:
            await connection.close()
    return created


def upgrade_all(settings: Settings, revision: str = "head") -> None:
    """Upgrade every service database to `revision`, in service order."""
    _off_loop(_run_all, command.upgrade, list(Service), settings, revision)


def downgrade_all(settings: Settings, revision: str = "base") -> None:
    """Downgrade every service database to `revision`, in reverse service order."""
    _off_loop(_run_all, command.downgrade, list(reversed(Service)), settings, revision)


def current_revisions(settings: Settings) -> dict[str, str | None]:
    """The revision each service database is at; None for a database never migrated."""
    return _off_loop(lambda: asyncio.run(_current_revisions(settings)))


def head_revisions() -> dict[str, str]:
    """The newest revision of each service's migration scripts."""
    return {
        service.value: ScriptDirectory.from_config(alembic_config(service)).get_current_head()
        for service in Service
    }


def _run_all(
    step: Callable[[Config, str], None],
    services: list[Service],
    settings: Settings,
    revision: str,
) -> None:
    for service in services:
        step(alembic_config(service, settings), revision)


async def _current_revisions(settings: Settings) -> dict[str, str | None]:
    revisions = {}
    for service in Service:
        engine = create_async_engine(settings.database_url(service), poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                revisions[service.value] = await connection.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision()
                )
        finally:
            await engine.dispose()
    return revisions


def _off_loop(function: Callable[..., T], *args) -> T:
    """Call `function` here, or in a worker thread if a loop runs here: env.py runs its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return function(*args)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alembic") as worker:
        return worker.submit(function, *args).result()


def _server_dsn(dsn: str) -> tuple[str, str]:
    """The DSN of the server's `postgres` maintenance database, and the database name in `dsn`."""
    parts = urlsplit(dsn)
    return parts._replace(path="/postgres").geturl(), unquote(parts.path.lstrip("/"))
