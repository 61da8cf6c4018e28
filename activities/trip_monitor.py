"""Trip Monitor activities: watch an attempt's trip and report what the delivery must act on."""

import asyncio
from datetime import UTC, datetime

from temporalio import activity

from activities import interfaces
from activities.base import ServiceActivities
from core.contracts import TripFinding, TripWatch
from core.notices import Notices
from core.services import Service
from services.trip_monitor import repository

# How often a watch that hears nothing tells Temporal it is alive: a minute inside the workflow's five-minute
# heartbeat timeout for it. Each heartbeat is a write on the Temporal server, so a thousand silent watches cost
# about four a second; a watch whose worker died is started again on another within five minutes.
ALIVE_SECONDS = 240.0
# However near a threshold is, a watch looks again no sooner than this after its last look.
MIN_LOOK_SECONDS = 0.05


class TripMonitorActivities(ServiceActivities, interfaces.TripMonitorActivities):
    """Writes only to the Trip Monitor database, keyed by attemptId."""

    def __init__(self, sessions, settings, temporal=None):
        super().__init__(sessions, settings, temporal)
        self.heartbeats = Notices(settings.database_dsn(Service.TRIP_MONITOR), repository.HEARTBEATS_CHANNEL)

    @activity.defn
    async def watch_trip(self, watch: TripWatch) -> TripFinding:
        async with self.statements() as connection:
            await repository.start_watch(connection, watch)
        woken = self.heartbeats.subscribe(watch.robot_id)
        try:
            while True:
                woken.clear()
                checked = await self._check(watch)
                if checked.finding is not None:
                    finding = checked.finding
                    return TripFinding(attempt_id=watch.attempt_id, kind=finding.kind, detail=finding.detail,
                                       dropoff_eta=finding.dropoff_eta)
                await self._until_news(woken, checked.again_at)
        finally:
            self.heartbeats.unsubscribe(watch.robot_id, woken)

    async def _check(self, watch: TripWatch) -> repository.Checked:
        """Look at the trip with one read, which is all a look that finds nothing new takes; a finding that
        changes the watch is looked at again under the row's lock, and recorded."""
        speed = self.settings.walking_speed_mps
        async with self.lookups() as session:
            checked = await repository.check_watch(session, watch, speed, locked=False)
        if not checked.unrecorded:
            return checked
        async with self.sessions.begin() as session:
            return await repository.check_watch(session, watch, speed)

    @staticmethod
    async def _until_news(woken: asyncio.Event, again_at: datetime | None) -> None:
        """Wait for a heartbeat notice or the next threshold, telling Temporal the watch is alive meanwhile."""
        await asyncio.sleep(MIN_LOOK_SECONDS)
        while not woken.is_set():
            activity.heartbeat()
            wait = ALIVE_SECONDS
            if again_at is not None:
                wait = min(wait, (again_at - datetime.now(UTC)).total_seconds())
                if wait <= 0:
                    return
            try:
                await asyncio.wait_for(woken.wait(), wait)
            except TimeoutError:
                pass

    @activity.defn
    async def stop_watching(self, watch: TripWatch) -> None:
        async with self.statements() as connection:
            await repository.finish_watch(connection, watch.attempt_id)
