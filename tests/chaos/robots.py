"""Robots on a bad network: played like the simulator's, but while `unruly` they duplicate and reorder events.

For each event it means to send, an unruly robot first sends an event that cannot follow yet (it overtook the
right one), then the right event, then the same event again (same event id), then its previous event again
(a late retransmission). The premature event must be refused; a resend must get the answer the original got.
"""

import asyncio
from collections import Counter

import httpx

from core.contracts import Point
from simulator.fleet import SimulatedRobot

# An event that cannot come right before the one the robot is about to send, whatever the leg.
PREMATURE = {
    "departed": "lid_closed",
    "arrived_at_pickup": "lid_opened",
    "arrived_at_dropoff": "lid_opened",
    "arrived_at_store": "lid_closed",
    "lid_opened": "lid_closed",
    "lid_closed": "departed",
}


class UnrulyRobot(SimulatedRobot):
    def __init__(self, http: httpx.AsyncClient, robot: dict, tally: Counter, problems: list[str]):
        super().__init__(http, robot["robot_id"], robot["credential"],
                         Point(latitude=robot["latitude"], longitude=robot["longitude"]), speed=None)
        self.unruly = False
        self.tally, self.problems = tally, problems
        self.previous: tuple[dict, int, dict | None] | None = None  # (body, status code, receipt)

    async def report(self, event_type: str) -> None:
        if not self.unruly:
            return await super().report(event_type)
        premature = await self._post(self._body(PREMATURE[event_type]))
        self._expect_refused(premature, event_type)
        body = self._body(event_type)
        first = await self._post(body)
        self._expect_same(body, first, await self._post(body), "duplicate")
        if self.previous is not None:
            earlier, code, receipt = self.previous
            self._expect_same(earlier, (code, receipt), await self._post(earlier), "late resend")
        if first[0] != 503:
            self.previous = (body, *first)

    def _body(self, event_type: str) -> dict:
        return {"event_id": f"{self.robot_id}-{self.session}-{next(self.events)}", "type": event_type,
                "latitude": self.position.latitude, "longitude": self.position.longitude}

    async def _post(self, body: dict) -> tuple[int, dict | None]:
        response = await self.http.post("/v1/robot/events", headers=self.headers, json=body)
        self.tally[f"answered {response.status_code}"] += 1
        return response.status_code, response.json() if response.status_code == 200 else None

    def _expect_refused(self, answer: tuple[int, dict | None], before: str) -> None:
        code, _ = answer
        self.tally["premature sent"] += 1
        if code == 409:
            self.tally["premature refused"] += 1
        elif code != 503:
            self.problems.append(f"{self.robot_id}: an event sent before {before} that cannot precede it was "
                                 f"answered {code}")

    def _expect_same(self, body: dict, original: tuple[int, dict | None], again: tuple[int, dict | None],
                     kind: str) -> None:
        self.tally[f"{kind} sent"] += 1
        if 503 in (original[0], again[0]):
            return
        if again != original and not (kind == "late resend" and again[0] == 409 and original[0] == 200):
            self.problems.append(f"{self.robot_id}: {kind} of {body['type']} {body['event_id']} answered "
                                 f"{again}, the original {original}")
        else:
            self.tally[f"{kind} answered as the original"] += 1


async def play(robots: list[UnrulyRobot]) -> None:
    """Run every robot until cancelled."""
    await asyncio.gather(*(robot.run() for robot in robots))
