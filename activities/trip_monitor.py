"""Trip Monitor activities: watch an attempt's trip and report what the delivery must act on."""

import asyncio

from temporalio import activity

from activities.base import ServiceActivities
from core.contracts import TripFinding, TripWatch
from services.trip_monitor import repository


class TripMonitorActivities(ServiceActivities):
    """Writes only to the Trip Monitor database, keyed by attemptId."""

    @activity.defn
    async def watch_trip(self, watch: TripWatch) -> TripFinding:
        """Poll the trip until there is news for the delivery: the robot is lost or stuck, its connectivity
        changed, or it runs late. The workflow cancels it when the attempt ends."""
        async with self.sessions.begin() as session:
            await repository.start_watch(session, watch)
        while True:
            activity.heartbeat()
            async with self.sessions.begin() as session:
                finding = await repository.check_watch(session, watch, self.settings.walking_speed_mps)
            if finding is not None:
                return TripFinding(attempt_id=watch.attempt_id, kind=finding.kind, detail=finding.detail,
                                   dropoff_eta=finding.dropoff_eta)
            await asyncio.sleep(watch.policy.monitor_poll_seconds)

    @activity.defn
    async def stop_watching(self, watch: TripWatch) -> None:
        """Close the attempt's watch."""
        async with self.sessions.begin() as session:
            await repository.finish_watch(session, watch.attempt_id)
