"""The bench's own partner, stores, robots and pilots in the West Hollywood demo market.

Written through each service's repository, one transaction per service database, exactly as
`simulator/demo_market.py` seeds the demo market: every robot gets a device credential (Device), a planning row
(Dispatch), a first sighting (State) and an Operations row; every pilot is created and put on shift.
"""

import math

from core.db import Databases
from core.settings import Settings
from simulator.demo_market import seed_market


async def seed_bench(settings: Settings, robots: int, webhook_url: str) -> dict:
    """Deploy `robots` more robots and enough pilots for them; register the bench partner; its credentials."""
    pilots = [f"Bench Pilot {n:02d}" for n in range(1, math.ceil(robots / settings.pilot_max_robots) + 1)]
    databases = Databases(settings, pool_size=1)
    try:
        return await seed_market(settings, databases, robot_prefix="bench-robot", robot_count=robots,
                                 pilot_names=pilots, partner_name="Bench Partner", webhook_url=webhook_url,
                                 seed=11)
    finally:
        await databases.dispose()
