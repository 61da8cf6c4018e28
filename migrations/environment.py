"""The Alembic environment every service database shares; each env.py only names its service."""

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.sql.sqltypes import AutoString

from core.migrations import URL_ATTRIBUTE
from core.services import Service
from core.settings import load_settings


def run_migrations(service: Service, metadata: MetaData) -> None:
    """Run one service's migrations: offline for `--sql`, otherwise online through asyncpg."""
    config = context.config
    url = config.attributes.get(URL_ATTRIBUTE)
    if url is None:
        if config.config_file_name is not None:
            fileConfig(config.config_file_name, disable_existing_loggers=False)
        url = load_settings().database_url(service)
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **_options(metadata))
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(_run_online(url, metadata))


async def _run_online(url: str, metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on_connection, metadata)
    finally:
        await engine.dispose()


def _run_on_connection(connection: Connection, metadata: MetaData) -> None:
    context.configure(connection=connection, **_options(metadata))
    with context.begin_transaction():
        context.run_migrations()


def _options(metadata: MetaData) -> dict[str, Any]:
    return {"target_metadata": metadata, "compare_type": True, "render_item": _render_item}


def _render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    # Migrations must not depend on SQLModel internals: AutoString is just a VARCHAR.
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False
