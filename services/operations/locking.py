"""The two write rules of the Operations database: compare-and-set on versions, and append-only history."""

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession


class StaleWrite(RuntimeError):
    """A compare-and-set kept losing its race; the unit of work rolls back and may be retried."""


async def compare_and_set(session: AsyncSession, model: type, row_id: uuid.UUID, expected: int, **values) -> int | None:
    """Write `values` only if the row is still at version `expected`; the new version, or None if the race was lost."""
    statement = (
        update(model)
        .where(model.id == row_id, model.version == expected)
        .values(version=model.version + 1, **values)
        .returning(model.version)
    )
    return await session.scalar(statement)


async def append_history(session: AsyncSession, history: type, owner: str, owner_id: Any, *,
                         occurred_at: datetime, detail: dict | None = None, **step) -> None:
    """Append the next step of an entity's history, numbered inside its INSERT: one statement, sent now (the
    entity is in the database already). The caller holds a row lock on the entity, so no other step takes the
    same number."""
    await session.execute(_append_statement(history, owner), {
        "id": uuid.uuid4(), owner: owner_id, "owner_id": owner_id, "occurred_at": occurred_at, "detail": detail,
        **step})


@functools.cache
def _append_statement(history: type, owner: str) -> Insert:
    """INSERT of one history step whose sequence is the owner's last plus one; built once per history table."""
    table = history.__table__
    last = select(func.coalesce(func.max(table.c.sequence), 0)).where(table.c[owner] == bindparam("owner_id"))
    return insert(table).values(sequence=last.scalar_subquery() + 1)
