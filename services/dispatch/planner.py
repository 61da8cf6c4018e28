"""The Dispatch planner: which robot picks up which demand. Pure numpy/scipy, no I/O, no clock.

A round sees the uncommitted demands (oldest first) and every robot that is free or will become free, at
the place, time and charge it becomes free. It builds the pickup-ETA matrix (seconds until each robot can
reach each pickup, walking speed), marks the pairs a robot cannot finish with its battery (to the pickup, on
to the dropoff, and back to the market's depot, above the reserve), and assigns at most one demand per robot:

- `batch`: `scipy.optimize.linear_sum_assignment` on the rectangular matrix: as many feasible pairs as
  possible, then the least total time to pickup. For one batch this is the optimum.
- `greedy`: first come, first served: the oldest demand takes the robot with the earliest pickup.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.geo import EARTH_RADIUS_METERS
from services.dispatch.eta import BATTERY_PER_METER, PICKUP_DWELL

RUNNERS_UP = 3


@dataclass(frozen=True)
class PlanningRules:
    """What a market allows: walking speed, the charge to keep, and the depot a robot must get back to."""

    speed_mps: float
    battery_reserve: float
    depot: tuple[float, float] | None = None  # (latitude, longitude); None: no return leg is counted


@dataclass(frozen=True)
class Demands:
    """Demands to plan, oldest first: pickups and dropoffs as (n, 2) arrays of (latitude, longitude), and how
    long each has waited already (seconds; none: all alike)."""

    pickups: np.ndarray
    dropoffs: np.ndarray
    waited: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pickups)


@dataclass(frozen=True)
class Fleet:
    """Robots as the planner sees them: where (m, 2), in how many seconds (m,), and with what charge (m,)
    each becomes free."""

    positions: np.ndarray
    free_in: np.ndarray
    battery: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)

    def after(self, robots: np.ndarray, queued: Demands, speed_mps: float) -> "Fleet":
        """The fleet once each of `robots` has also served the queued demand of the same index."""
        to_pickup = meters_pairwise(self.positions[robots], queued.pickups)
        delivery = meters_pairwise(queued.pickups, queued.dropoffs)
        positions, free_in, battery = self.positions.copy(), self.free_in.copy(), self.battery.copy()
        positions[robots] = queued.dropoffs
        free_in[robots] += (to_pickup + delivery) / speed_mps + PICKUP_DWELL.total_seconds()
        battery[robots] -= (to_pickup + delivery) * BATTERY_PER_METER
        return Fleet(positions, free_in, battery)


def meters_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Haversine distances in metres between every point of `a` (n, 2) and every point of `b` (m, 2)."""
    return _haversine(a[:, None, :], b[None, :, :])


def meters_pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Haversine distances in metres between `a[i]` and `b[i]`."""
    return _haversine(a, b)


def _haversine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lat1, lon1 = np.radians(a[..., 0]), np.radians(a[..., 1])
    lat2, lon2 = np.radians(b[..., 0]), np.radians(b[..., 1])
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_METERS * np.arcsin(np.sqrt(np.minimum(h, 1.0)))


@dataclass(frozen=True)
class PickupProblem:
    """Seconds until each robot can be at each pickup (n, m), which pairs the robot can finish, the metres
    from where each robot becomes free to each pickup (n, m), and each demand's pickup-to-dropoff metres (n,)."""

    eta: np.ndarray
    feasible: np.ndarray
    to_pickup: np.ndarray
    delivery: np.ndarray
    waited: np.ndarray | None = None

    @classmethod
    def build(cls, demands: Demands, fleet: Fleet, rules: PlanningRules,
              excluded: np.ndarray | None = None) -> "PickupProblem":
        """The matrix of one round; `excluded` (n, m) marks pairs a demand refuses."""
        to_pickup = meters_matrix(demands.pickups, fleet.positions)
        eta = fleet.free_in[None, :] + to_pickup / rules.speed_mps
        delivery = meters_pairwise(demands.pickups, demands.dropoffs)
        onward = delivery
        if rules.depot is not None:
            onward = delivery + meters_matrix(demands.dropoffs, np.array([rules.depot]))[:, 0]
        used = (to_pickup + onward[:, None]) * BATTERY_PER_METER
        feasible = fleet.battery[None, :] - used >= rules.battery_reserve
        if excluded is not None:
            feasible &= ~excluded
        return cls(eta=eta, feasible=feasible, to_pickup=to_pickup, delivery=delivery, waited=demands.waited)

    def earliest(self, demand: int) -> int | None:
        """The robot that can be at the demand's pickup first, or None if none can take it."""
        row = np.where(self.feasible[demand], self.eta[demand], np.inf)
        best = int(np.argmin(row)) if len(row) else 0
        return best if len(row) and np.isfinite(row[best]) else None

    def runners_up(self, demand: int, chosen: int, count: int = RUNNERS_UP) -> list[tuple[int, float]]:
        """The next best feasible robots for a demand after the chosen one, with their pickup ETAs."""
        row = np.where(self.feasible[demand], self.eta[demand], np.inf)
        row[chosen] = np.inf
        order = np.argsort(row, kind="stable")[:count]
        return [(int(j), float(row[j])) for j in order if np.isfinite(row[j])]


def after_backlog(fleet: Fleet, backlog: Demands, rules: PlanningRules) -> Fleet:
    """The fleet once the demands already waiting, oldest first, have each taken the robot that reaches them
    first: what a new demand queues behind, so a quote under load promises what the backlog leaves."""
    for i in range(len(backlog)):
        waiting = Demands(backlog.pickups[i:i + 1], backlog.dropoffs[i:i + 1])
        best = PickupProblem.build(waiting, fleet, rules).earliest(0)
        if best is not None:
            fleet = fleet.after(np.array([best]), waiting, rules.speed_mps)
    return fleet


def solve_batch(problem: PickupProblem) -> tuple[np.ndarray, np.ndarray]:
    """Min-cost rectangular assignment: the most feasible pairs, then the least total time to pickup."""
    # Imported here: scipy.optimize is ~55 MB, and the workflow worker and the API import this module (through
    # the Dispatch activity definitions) without ever solving.
    from scipy.optimize import linear_sum_assignment

    if not problem.feasible.any():
        return np.empty(0, int), np.empty(0, int)
    cost = problem.eta
    if problem.waited is not None and len(problem.waited):
        # Ageing: when robots are fewer than demands, the ones that waited longest go first; a full
        # assignment is unchanged (the waits add the same total to every choice). Shifted to stay >= 0.
        cost = cost - problem.waited[:, None] + float(problem.waited.max())
    # An infeasible pair costs more than every feasible pair together, so it is used only where no feasible
    # assignment exists, and then dropped.
    forbidden = float(cost[problem.feasible].max()) * min(cost.shape) + 1.0
    rows, cols = linear_sum_assignment(np.where(problem.feasible, cost, forbidden))
    keep = problem.feasible[rows, cols]
    return rows[keep], cols[keep]


def solve_greedy(problem: PickupProblem) -> tuple[np.ndarray, np.ndarray]:
    """First come, first served: each demand in order takes the free robot with the earliest pickup."""
    cost = np.where(problem.feasible, problem.eta, np.inf)
    rows, cols = [], []
    for demand in range(cost.shape[0]):
        robot = int(np.argmin(cost[demand]))
        if np.isfinite(cost[demand, robot]):
            rows.append(demand)
            cols.append(robot)
            cost[:, robot] = np.inf
    return np.array(rows, int), np.array(cols, int)


@dataclass(frozen=True)
class Planner:
    """A named, versioned way of solving a round; the version is written on every plan it makes."""

    version: str
    solve: Callable[[PickupProblem], tuple[np.ndarray, np.ndarray]]


PLANNERS = {
    "batch": Planner("batch-lsa-v1", solve_batch),
    "greedy": Planner("greedy-v1", solve_greedy),
}
