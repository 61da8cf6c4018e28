"""The two write rules of the Operations database: compare-and-set on versions, and append-only history."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
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
    """Append the next step of an entity's history; the caller holds a row lock on the entity."""
    last = await session.scalar(select(func.max(history.sequence)).where(getattr(history, owner) == owner_id))
    session.add(history(**{owner: owner_id}, sequence=(last or 0) + 1, occurred_at=occurred_at, detail=detail, **step))
