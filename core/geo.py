"""Distances on the ground."""

import math

from core.contracts import Point

EARTH_RADIUS_METERS = 6_371_000


def meters_between(a: Point, b: Point) -> float:
    """The great-circle (haversine) distance between two points, in metres."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat, dlon = lat2 - lat1, math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_METERS * math.asin(min(1.0, math.sqrt(h)))
