"""Column helpers every service's tables share."""

from datetime import UTC, datetime

from sqlalchemy import DateTime

TIMESTAMPTZ = DateTime(timezone=True)


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
