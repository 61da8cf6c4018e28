"""One test's own market: a disjoint service area with its own robots, pilots and partner."""

import uuid
from dataclasses import dataclass, field

import httpx

from core.contracts import Point
from core.crypto import vault_from_settings
from core.markets import Market, register_market
from core.services import Service
from services.device import repository as devices
from services.dispatch import repository as dispatch
from services.integrations import credentials
from services.operations import repository as operations
from tests.support.platform import Platform


@dataclass
class OwnMarket:
    """One test's own market: its area, robots (with credentials), pilots and partner."""

    platform: Platform
    market: Market
    api_key: str = ""
    partner_id: uuid.UUID | None = None
    robots: dict[str, str] = field(default_factory=dict)

    @property
    def centre(self) -> Point:
        return self.market.depot

    def point(self, north_m: float = 0, east_m: float = 0) -> dict:
        return {"latitude": self.centre.latitude + north_m / 111_000,
                "longitude": self.centre.longitude + east_m / 92_000}

    async def add_robot(self, robot_id: str | None = None, north_m: float = 0, battery: float = 1.0) -> str:
        robot_id = robot_id or f"{self.market.name}-robot-{len(self.robots) + 1}"
        where = self.point(north_m=north_m)
        dbs = self.platform.databases
        async with dbs.sessions(Service.DEVICE).begin() as session:
            self.robots[robot_id] = await devices.deploy_robot(session, robot_id, self.market.name, "test")
        async with dbs.sessions(Service.DISPATCH).begin() as session:
            await dispatch.register_robot(session, robot_id, self.market.name, where["latitude"],
                                          where["longitude"], battery)
        async with dbs.sessions(Service.OPERATIONS).begin() as session:
            await operations.register_robot(session, robot_id, self.market.name)
        return robot_id

    async def add_pilot(self) -> uuid.UUID:
        async with self.platform.databases.sessions(Service.OPERATIONS).begin() as session:
            pilot_id = await operations.create_pilot(session, f"pilot {uuid.uuid4().hex[:6]}")
            await operations.start_shift(session, pilot_id)
        return pilot_id

    async def add_partner(self, webhook_url: str | None, dialect: str = "native",
                          webhook_authorization: str | None = None, live_mode: bool = True) -> dict:
        """A partner of any dialect; a live native one becomes the market's own partner (`api_key`, `partner_id`).
        A test partner (`live_mode` False) is the sandbox's."""
        kind = "partner" if live_mode else "test partner"
        async with self.platform.databases.sessions(Service.INTEGRATIONS).begin() as session:
            partner, secrets = await credentials.create_partner(
                session, vault_from_settings(self.platform.settings), f"{dialect} {kind} {self.market.name}",
                dialect, webhook_url, webhook_authorization, live_mode=live_mode)
        if dialect == "native" and live_mode:
            self.api_key, self.partner_id = secrets["api_key"], partner.id
        return secrets

    @property
    def addresses(self) -> dict[str, tuple[float, float]]:
        """Street addresses in (and one just outside) this market, for the geocoder."""
        def at(north_m: float, east_m: float = 0) -> tuple[float, float]:
            point = self.point(north_m, east_m)
            return point["latitude"], point["longitude"]

        town = f"Testville {self.market.name}, TS 00001"
        return {f"1 Store Way, {town}": at(100), f"2 Home Ave, {town}": at(400, 200),
                f"9 Far Away Rd, {town}": at(5_000)}

    def partner_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.platform.api_url, timeout=30,
                                 headers={"authorization": f"Bearer {self.api_key}"})

    def robot_http(self, robot_id: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.platform.api_url, timeout=30,
                                 headers={"authorization": f"Bearer {self.robots[robot_id]}"})

    def order(self, external_id: str | None = None) -> dict:
        return {
            "external_id": external_id or f"order-{uuid.uuid4().hex[:10]}",
            "pickup": self.point(north_m=100),
            "dropoff": {**self.point(north_m=400, east_m=200), "address": "1 Test Way", "instructions": "ring"},
            "customer": {"name": "Test Customer", "phone": "+13105550199"},
        }


def new_market(platform: Platform) -> OwnMarket:
    """A fresh market 5 km square, far from every other test's (the platform numbers them)."""
    n = next(platform.market_numbers)
    depot = Point(latitude=40.0 + n * 0.1, longitude=-100.0)
    half = 0.02
    area = Market(name=f"test-market-{n}-{uuid.uuid4().hex[:4]}", depot=depot, polygon=(
        (depot.latitude + half, depot.longitude - half), (depot.latitude + half, depot.longitude + half),
        (depot.latitude - half, depot.longitude + half), (depot.latitude - half, depot.longitude - half)))
    register_market(area)
    return OwnMarket(platform, area)
