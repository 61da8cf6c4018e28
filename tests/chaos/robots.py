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

    async def report(self, event_type: str) -> bool:
        if not self.unruly:
            return await super().report(event_type)
        premature = await self._post(self.event_body(PREMATURE[event_type]))
        self._expect_refused(premature, event_type)
        body = self.event_body(event_type)
        first = await self._post(body)
        self._expect_same(body, first, await self._post(body), "duplicate")
        if self.previous is not None:
            earlier, code, receipt = self.previous
            self._expect_same(earlier, (code, receipt), await self._post(earlier), "late resend")
        self.previous = (body, *first)
        return self.remember(first[1])

    async def _post(self, body: dict) -> tuple[int, dict | None]:
        answer = await self.send(body)
        self.tally[f"answered {answer[0]}"] += 1
        return answer

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
        if again != original:
            self.problems.append(f"{self.robot_id}: {kind} of {body['type']} {body['event_id']} answered "
                                 f"{again}, the original {original}")
        else:
            self.tally[f"{kind} answered as the original"] += 1


async def play(robots: list[UnrulyRobot]) -> None:
    """Run every robot until cancelled."""
    await asyncio.gather(*(robot.run() for robot in robots))
