"""The demo market in West Hollywood, CA: robots deployed, pilots on shift, stores, a demo partner, and its orders.

Seeding writes through each service's own repository, one transaction per service database. The
credentials it issues are kept in the data directory (dev only) so the simulator and `deliveryctl demo`
can use them across restarts. The robots the simulator plays are the market's; the orders `deliveryctl demo`
and the bench place go from its stores to random points of its service area.
"""

import json
import random
from pathlib import Path

from core.crypto import vault_from_settings
from core.db import Databases
from core.contracts import Point
from core.markets import MARKETS, WEST_HOLLYWOOD
from core.services import Service
from core.settings import Settings
from services.device import repository as devices
from services.dispatch import repository as dispatch
from services.integrations import credentials as partner_credentials
from services.integrations import repository as integrations
from services.integrations.models import CredentialKind
from services.operations import repository as operations
from services.state import repository as state

ROBOT_COUNT = 12
PILOT_NAMES = ("Ana Pilot", "Ben Pilot", "Chloe Pilot", "Dev Pilot")
SOFTWARE_VERSION = "serve-os 4.2.1"
STORES = (
    ("weho-sunset", "Sunset Plaza Market", 34.0905, -118.3830),
    ("weho-santa-monica", "Santa Monica Blvd Deli", 34.0900, -118.3617),
    ("weho-melrose", "Melrose Kitchen", 34.0837, -118.3614),
)


def demo_file(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "fleet.json"


async def ensure_demo_market(settings: Settings) -> dict:
    """Seed the demo market once; return its credentials (partner API key, robot credentials, stores)."""
    path = demo_file(settings)
    databases = Databases(settings, pool_size=1)
    try:
        if path.exists():
            demo = json.loads(path.read_text())
            async with databases.sessions(Service.INTEGRATIONS).begin() as session:
                if await partner_credentials.partner_by_secret(session, CredentialKind.API_KEY, demo["partner"]["api_key"]):
                    return demo
        demo = await _seed(settings, databases)
    finally:
        await databases.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo, indent=2))
    path.chmod(0o600)
    return demo


async def _seed(settings: Settings, databases: Databases) -> dict:
    return await seed_market(settings, databases, robot_prefix="weho-robot", robot_count=ROBOT_COUNT,
                             pilot_names=PILOT_NAMES, partner_name="Demo Partner", webhook_url=None, seed=7)


async def seed_market(settings: Settings, databases: Databases, *, robot_prefix: str, robot_count: int,
                      pilot_names: list[str] | tuple[str, ...], partner_name: str, webhook_url: str | None,
                      seed: int) -> dict:
    """Deploy robots around the West Hollywood depot, put pilots on shift, register a partner and its stores."""
    rng = random.Random(seed)
    depot = WEST_HOLLYWOOD.depot
    robots = [(f"{robot_prefix}-{n:02d}", depot.latitude + rng.uniform(-0.006, 0.006),
               depot.longitude + rng.uniform(-0.012, 0.012)) for n in range(1, robot_count + 1)]
    credentials = {}
    async with databases.sessions(Service.DEVICE).begin() as session:
        for robot_id, _, _ in robots:
            credentials[robot_id] = await devices.deploy_robot(session, robot_id, WEST_HOLLYWOOD.name, SOFTWARE_VERSION)
    async with databases.sessions(Service.DISPATCH).begin() as session:
        for robot_id, latitude, longitude in robots:
            await dispatch.register_robot(session, robot_id, WEST_HOLLYWOOD.name, latitude, longitude, 1.0)
    async with databases.sessions(Service.STATE).begin() as session:
        for robot_id, latitude, longitude in robots:
            await state.record_sighting(session, robot_id, latitude, longitude)
    async with databases.sessions(Service.OPERATIONS).begin() as session:
        for robot_id, _, _ in robots:
            await operations.register_robot(session, robot_id, WEST_HOLLYWOOD.name)
        for name in pilot_names:
            await operations.start_shift(session, await operations.create_pilot(session, name))
    async with databases.sessions(Service.INTEGRATIONS).begin() as session:
        partner, secrets = await partner_credentials.create_partner(
            session, vault_from_settings(settings), partner_name, "native", webhook_url)
        for store_id, name, latitude, longitude in STORES:
            await integrations.add_store(session, partner.id, store_id, name, latitude, longitude, WEST_HOLLYWOOD.name)
    return {
        "market": WEST_HOLLYWOOD.name,
        "partner": {"id": str(partner.id), "name": partner.name, **secrets},
        "pilots": len(pilot_names),
        "stores": [{"store_id": s, "name": n, "latitude": la, "longitude": lo} for s, n, la, lo in STORES],
        "robots": [{"robot_id": r, "credential": credentials[r], "latitude": la, "longitude": lo}
                   for r, la, lo in robots],
    }


def random_dropoff(rng: random.Random, market_name: str) -> dict:
    """A point inside the market's service area."""
    market = MARKETS[market_name]
    lats = [lat for lat, _ in market.polygon]
    lons = [lon for _, lon in market.polygon]
    while True:
        point = {"latitude": rng.uniform(min(lats), max(lats)), "longitude": rng.uniform(min(lons), max(lons))}
        if market.contains(Point(**point)):
            return point


def order_body(rng: random.Random, market: dict, number: int, run_id: str, prefix: str = "demo") -> dict:
    """A delivery from one of the market's seeded stores to a random point of its service area."""
    store = rng.choice(market["stores"])
    return {
        "external_id": f"{prefix}-{run_id}-{number:05d}",
        "pickup": {"latitude": store["latitude"], "longitude": store["longitude"], "store_id": store["store_id"]},
        "dropoff": {**random_dropoff(rng, market["market"]), "address": f"{100 + number} {prefix.title()} Street"},
        "customer": {"name": f"{prefix.title()} Customer {number}", "phone": f"+1310555{number % 10000:04d}"},
    }
