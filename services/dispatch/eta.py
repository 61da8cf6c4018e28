"""Distances and arrival times on the sidewalk: pure functions, no I/O."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.contracts import Point
from core.geo import meters_between

# Time a robot spends at the store being loaded before it sets off for the dropoff.
PICKUP_DWELL = timedelta(seconds=120)
# A planning assumption, not a measurement: charge drains linearly, 1% of a full battery per 500 m.
BATTERY_PER_METER = 0.01 / 500


@dataclass(frozen=True)
class TripEstimate:
    """When a robot would reach the pickup and the dropoff, and the charge the trip would use."""

    pickup_eta: datetime
    dropoff_eta: datetime
    meters: float  # the robot's whole way: to the pickup, then to the dropoff
    delivery_meters: float  # the order's way: pickup to dropoff

    @property
    def battery_used(self) -> float:
        return self.meters * BATTERY_PER_METER


def travel_time(meters: float, speed_mps: float) -> timedelta:
    """How long a robot takes to cover `meters` at `speed_mps`."""
    return timedelta(seconds=meters / speed_mps)


def estimate_trip(robot_at: Point, free_at: datetime, pickup: Point, dropoff: Point, speed_mps: float) -> TripEstimate:
    """The trip of a robot at `robot_at`, free from `free_at`, going to `pickup` then `dropoff`."""
    to_pickup = meters_between(robot_at, pickup)
    to_dropoff = meters_between(pickup, dropoff)
    pickup_eta = free_at + travel_time(to_pickup, speed_mps)
    dropoff_eta = pickup_eta + PICKUP_DWELL + travel_time(to_dropoff, speed_mps)
    return TripEstimate(pickup_eta=pickup_eta, dropoff_eta=dropoff_eta, meters=to_pickup + to_dropoff,
                        delivery_meters=to_dropoff)


def earliest_dropoff(free_at: datetime, ready_at: datetime, pickup: Point, dropoff: Point,
                     speed_mps: float) -> datetime:
    """The soonest an order can reach its dropoff: collected once a robot is free and the order is ready (the
    robot's way to the store left out, so never later than any plan), then carried to the dropoff."""
    return max(free_at, ready_at) + PICKUP_DWELL + travel_time(meters_between(pickup, dropoff), speed_mps)
