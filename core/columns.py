"""Column helpers every service's tables share."""

from datetime import UTC, datetime

from sqlalchemy import DateTime, TextClause, literal_column, text
from sqlalchemy.sql.elements import ColumnClause

TIMESTAMPTZ = DateTime(timezone=True)

# Once its retention has passed, a dropoff is kept rounded to this many decimals of a degree: about a kilometre.
COARSE_DECIMALS = 2
DROPOFF = ("dropoff_latitude", "dropoff_longitude")


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def _coarse(column: str) -> str:
    return f"CAST(round(CAST({column} AS numeric), {COARSE_DECIMALS}) AS double precision)"


def exact_dropoff() -> TextClause:
    """SQL: the row's dropoff is not coarsened yet; the WHERE of the partial indexes that find rows to coarsen."""
    return text("(" + " OR ".join(f"{column} <> {_coarse(column)}" for column in DROPOFF) + ")")


def coarsened_dropoff() -> dict[str, ColumnClause]:
    """The SET of an UPDATE that rounds a row's dropoff to COARSE_DECIMALS."""
    return {column: literal_column(_coarse(column)) for column in DROPOFF}
