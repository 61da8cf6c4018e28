"""Markets: where robots operate, as service-area polygons with a depot and a walking speed."""

from dataclasses import dataclass

from core.contracts import Point


@dataclass(frozen=True)
class Market:
    """A service area: robots are deployed to one market and serve orders inside its polygon."""

    name: str
    polygon: tuple[tuple[float, float], ...]  # (latitude, longitude) vertices, in order
    depot: Point
    walking_speed_mps: float = 1.4

    def contains(self, point: Point) -> bool:
        """Ray casting: is the point inside the service area?"""
        inside = False
        vertices = self.polygon
        for (lat1, lon1), (lat2, lon2) in zip(vertices, vertices[1:] + vertices[:1]):
            if (lon1 > point.longitude) != (lon2 > point.longitude):
                crossing = lat1 + (point.longitude - lon1) * (lat2 - lat1) / (lon2 - lon1)
                if point.latitude < crossing:
                    inside = not inside
        return inside


WEST_HOLLYWOOD = Market(
    name="west-hollywood",
    polygon=((34.0985, -118.3960), (34.0985, -118.3450), (34.0760, -118.3450), (34.0760, -118.3960)),
    depot=Point(latitude=34.0900, longitude=-118.3617),
)

MARKETS = {market.name: market for market in (WEST_HOLLYWOOD,)}


def register_market(market: Market) -> None:
    """Add a market to this process's service areas."""
    MARKETS[market.name] = market


def market_for(point: Point) -> Market | None:
    """The market whose service area holds the point."""
    return next((m for m in MARKETS.values() if m.contains(point)), None)
