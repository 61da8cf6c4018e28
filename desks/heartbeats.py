"""Heartbeats that arrive on robots' streams, written in batches.

A fleet of idle robots sends a heartbeat every few seconds each: one transaction per heartbeat in State and one in
Trip Monitor would cost more than everything else the API does. Here each heartbeat is answered at once and kept
in memory; every `FLUSH_SECONDS` the batch is written: one upsert of every robot's connectivity (State) and, for
the robots whose trip is watched (most idle robots have none; one query finds them), their heartbeats fed to the
watch in order (Trip Monitor), which wakes it. A heartbeat is therefore at most `FLUSH_SECONDS` late in the
databases, against connectivity thresholds of tens of seconds. A batch that cannot be written is dropped (the next
heartbeats bring the same news) and logged.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.db import Databases
from core.services import Service
from services.state import repository as state
from services.trip_monitor import repository as trip_monitor

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
# The robots of a batch whose trip is watched: one statement, the same text whatever the batch's size.
WATCHED = text("SELECT DISTINCT robot_id FROM trip WHERE robot_id = ANY(CAST(:robot_ids AS varchar[])) "
               "AND status = ANY(CAST(:open AS varchar[]))")


@dataclass(frozen=True)
class Beat:
    robot_id: str
    latitude: float
    longitude: float
    moving: bool
    at: datetime


class HeartbeatBatch:
    """Heartbeats kept in memory and written every `flush_seconds` by one task, started by the first heartbeat."""

    def __init__(self, databases: Databases, flush_seconds: float = FLUSH_SECONDS):
        self.databases, self.flush_seconds = databases, flush_seconds
        self.pending: list[Beat] = []
        self._flushing: asyncio.Task | None = None
        self.written = 0  # heartbeats written so far

    def add(self, robot_id: str, latitude: float, longitude: float, moving: bool) -> None:
        self.pending.append(Beat(robot_id, latitude, longitude, moving, datetime.now(UTC)))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_every())

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:  # the flusher must outlive any one failure, or heartbeats stop for good
                log.exception("heartbeats not written; flushing again in %s s", self.flush_seconds)

    async def flush(self) -> None:
        """Write what is pending now."""
        beats, self.pending = self.pending, []
        if not beats:
            return
        latest = {beat.robot_id: beat for beat in beats}  # in arrival order: the last one of each robot stays
        try:
            async with self.databases.sessions(Service.STATE).begin() as session:
                await state.record_sightings(session, [(b.robot_id, b.latitude, b.longitude, b.at)
                                                       for b in latest.values()])
            async with self.databases.sessions(Service.TRIP_MONITOR).begin() as session:
                watched = set(await session.scalars(WATCHED, {"robot_ids": list(latest),
                                                              "open": list(trip_monitor.OPEN)}))
                for beat in beats:
                    if beat.robot_id in watched:
                        await trip_monitor.record_heartbeat(session, beat.robot_id, beat.latitude, beat.longitude,
                                                            beat.moving)
        except (SQLAlchemyError, OSError) as exc:  # a database away: its refused connections are OSErrors
            log.warning("%d heartbeats not written (%s); the next ones bring the same news", len(beats),
                        type(exc).__name__)
            return
        self.written += len(beats)

    async def close(self) -> None:
        """Stop flushing, after writing what is pending."""
        if self._flushing is not None:
            self._flushing.cancel()
            await asyncio.gather(self._flushing, return_exceptions=True)
            self._flushing = None
        await self.flush()
