"""Create the seven service databases and run each one's Alembic environment."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit

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
    """Create each service database that does not exist yet; return the names created.

    On the embedded Postgres its superuser also gives each service the role its URL names: owner of its
    database and, besides the superuser, the only role that may connect to it; the service's migrations run as
    that role. Elsewhere the roles are the deployer's (deploy/postgres/init-databases.sql), and a missing
    database is created with the URL's own credentials.
    """
    created = []
    for service in Service:
        url = urlsplit(settings.database_dsn(service))
        name, role = unquote(url.path.lstrip("/")), unquote(url.username or "")
        embedded = settings.on_embedded_postgres(service)
        connection = await asyncpg.connect(settings.server_dsn(service))
        try:
            if embedded:
                await _ensure_role(connection, role)
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                owner = f" OWNER {_quoted(role)}" if embedded else ""
                try:
                    await connection.execute(f"CREATE DATABASE {_quoted(name)}{owner}")
                    created.append(name)
                except asyncpg.DuplicateDatabaseError:
                    pass  # another process created it between our check and our CREATE
            if embedded:
                await _owned_by(connection, settings, name, role)
        finally:
            await connection.close()
    return created


async def _ensure_role(connection: asyncpg.Connection, role: str) -> None:
    if await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        return
    try:
        await connection.execute(f"CREATE ROLE {_quoted(role)} LOGIN")
    except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
        pass  # another process created it between our check and our CREATE


async def _owned_by(connection: asyncpg.Connection, settings: Settings, name: str, role: str) -> None:
    """Make `role` the owner of database `name` and of its tables (a database made before the services had roles
    of their own was the superuser's), and the only role besides the superuser that may connect to it."""
    if await connection.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name) != role:
        await connection.execute(f"ALTER DATABASE {_quoted(name)} OWNER TO {_quoted(role)}")
        admin = urlsplit(settings.postgres_admin_dsn)
        database = await asyncpg.connect(admin._replace(path=f"/{quote(name)}").geturl())
        try:
            for table in await database.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner <> $1", role):
                await database.execute(f"ALTER TABLE public.{_quoted(table['tablename'])} OWNER TO {_quoted(role)}")
        finally:
            await database.close()
    await connection.execute(f"REVOKE ALL ON DATABASE {_quoted(name)} FROM PUBLIC")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


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
