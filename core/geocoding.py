"""Addresses to coordinates. Pluggable: `DELIVERY_GEOCODER` names the geocoder; the default works offline.

The offline geocoder knows only the addresses it was given: the demo market's seeded stores and
dropoff addresses, plus any JSON file of `{"address": [latitude, longitude]}` named by
`DELIVERY_GEOCODER_ADDRESSES_FILE`. Anything else is unknown, and the API answers 422 `unknown_location`.
"""

import importlib
import json
import re
from collections.abc import Mapping
from typing import Protocol

from core.contracts import Point
from core.settings import Settings

# West Hollywood: the demo market's stores and the dropoff addresses its demo orders use.
DEMO_ADDRESSES: dict[str, tuple[float, float]] = {
    "8590 Sunset Blvd, West Hollywood, CA 90069": (34.0905, -118.3830),
    "8500 Santa Monica Blvd, West Hollywood, CA 90069": (34.0900, -118.3617),
    "7000 Melrose Ave, Los Angeles, CA 90038": (34.0837, -118.3614),
    "8800 Melrose Ave, West Hollywood, CA 90069": (34.0871, -118.3725),
    "1200 N Crescent Heights Blvd, West Hollywood, CA 90046": (34.0930, -118.3660),
    "900 N La Cienega Blvd, West Hollywood, CA 90069": (34.0880, -118.3765),
    "8200 Santa Monica Blvd, West Hollywood, CA 90046": (34.0905, -118.3700),
    "1000 N Fairfax Ave, West Hollywood, CA 90046": (34.0890, -118.3615),
    "8400 Sunset Blvd, West Hollywood, CA 90069": (34.0955, -118.3740),
    "625 N San Vicente Blvd, West Hollywood, CA 90069": (34.0820, -118.3855),
    "9000 Beverly Blvd, West Hollywood, CA 90048": (34.0770, -118.3880),
}


class Geocoder(Protocol):
    async def locate(self, address: str) -> Point | None:
        """The address's coordinates, or None if it cannot be found."""


def normalize(address: str) -> str:
    """Case, punctuation and spacing do not make two addresses different."""
    return re.sub(r"[^a-z0-9]+", " ", address.lower()).strip()


class OfflineGeocoder:
    """Looks addresses up in a fixed table; never calls out."""

    def __init__(self, addresses: Mapping[str, tuple[float, float]]):
        self._table = {normalize(a): Point(latitude=lat, longitude=lon) for a, (lat, lon) in addresses.items()}

    async def locate(self, address: str) -> Point | None:
        key = normalize(address)
        # Also accept the street line alone ("8800 Melrose Ave"), if it names exactly one known address.
        matches = [point for known, point in self._table.items() if known == key or known.startswith(key + " ")]
        return matches[0] if len(matches) == 1 else None


def geocoder_from_settings(settings: Settings) -> Geocoder:
    """`offline` (the default), or `package.module:factory` called with the settings."""
    if settings.geocoder == "offline":
        addresses = dict(DEMO_ADDRESSES)
        if settings.geocoder_addresses_file is not None:
            addresses.update({a: tuple(p) for a, p in json.loads(settings.geocoder_addresses_file.read_text()).items()})
        return OfflineGeocoder(addresses)
    module, _, factory = settings.geocoder.partition(":")
    return getattr(importlib.import_module(module), factory)(settings)
