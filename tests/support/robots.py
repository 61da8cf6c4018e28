"""Robots played through the robot API, as the simulator plays them."""

import itertools
import uuid

import httpx

from tests.support.markets import OwnMarket
from tests.support.waiting import wait_status, wait_terminal


class RobotDriver:
    """Plays one robot through the robot API, as the simulator does."""

    def __init__(self, market: OwnMarket, robot_id: str):
        self.market, self.robot_id = market, robot_id
        self.http = market.robot_http(robot_id)
        self.count = itertools.count(1)
        self.where = market.point()

    async def send(self, event_type: str, expect: int = 200, event_id: str | None = None) -> httpx.Response:
        body = {"event_id": event_id or f"{self.robot_id}-{next(self.count)}-{uuid.uuid4().hex[:6]}",
                "type": event_type, **self.where}
        response = await self.http.post("/v1/robot/events", json=body)
        assert response.status_code == expect, (event_type, response.status_code, response.text)
        return response

    async def heartbeat(self, moving: bool = True) -> None:
        response = await self.http.post("/v1/robot/heartbeat", json={**self.where, "moving": moving})
        assert response.status_code == 204, response.text

    async def assignment(self) -> dict | None:
        response = await self.http.get("/v1/robot/assignment")
        return response.json() if response.status_code == 200 else None

    async def to_pickup(self, delivery_id) -> None:
        await wait_status(self.market.platform, delivery_id, "robot_assigned")
        await self.send("departed")
        await self.heartbeat()
        await self.send("arrived_at_pickup")

    async def load_and_go(self) -> None:
        await self.send("lid_opened")
        await self.send("lid_closed")
        await self.send("departed")
        await self.send("arrived_at_dropoff")

    async def hand_over(self) -> None:
        await self.send("lid_opened")
        await self.send("lid_closed")


async def drive(market: OwnMarket, robot: str, delivery_id) -> dict:
    """Play the robot from assignment to handing the order over; the delivery's final status."""
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await driver.hand_over()
    return await wait_terminal(market.platform, delivery_id)
