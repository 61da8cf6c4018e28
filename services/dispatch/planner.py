"""The Dispatch planner: which robot picks up which demand. Pure numpy/scipy, no I/O, no clock.

A round sees the uncommitted demands (oldest first) and every robot that is free or will become free, at
the place, time and charge it becomes free. It builds the pickup-ETA matrix (seconds until each robot can
reach each pickup, walking speed), marks the pairs a robot cannot finish with its battery (to the pickup, on
to the dropoff, and back to the market's depot, above the reserve), and assigns at most one demand per robot:

- `batch`: `scipy.optimize.linear_sum_assignment` on the rectangular matrix: as many feasible pairs as
  possible, then the least total time to pickup. For one batch this is the optimum.
- `greedy`: first come, first served: the oldest demand takes the robot with the earliest pickup.
- `ready`: the same assignment on what the customer waits and what the robot wastes. A demand carries the time
  its order is ready; the pickup is the later of the robot's arrival and that time. Cost = a convex lateness
  (minutes from placement to pickup, plus their square over `LATENESS_SCALE_MINUTES`) + the robot's empty walk
  and the time it would stand ready before the order is. A demand keeping the robot of its standing proposal
  is `SWITCH_PENALTY_MINUTES` cheaper, so a newer demand takes it only when clearly better overall; a
  demand left out of a round is charged as if picked up `UNSERVED_DELAY_MINUTES` later than it could be, so
  the demands that waited longest are served first when robots are short. A match with a robot free now that
  would reach the store more than `EARLY_TOLERANCE_SECONDS` before the order is ready is *held*: planned but
  not committed, so a later round sends it (or a better robot) in time.
"""

import importlib.machinery
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from core.geo import EARTH_RADIUS_METERS
from services.dispatch.eta import BATTERY_PER_METER, PICKUP_DWELL

RUNNERS_UP = 3

# The `ready` planner's cost, in minutes of a customer's wait. Lateness L minutes (placement to pickup) costs
# L + L^2 / LATENESS_SCALE_MINUTES: at 30 minutes each further minute counts three times.
LATENESS_SCALE_MINUTES = 30.0
# A minute a robot walks (empty to the pickup, then loaded to the dropoff), and a minute it would stand at the
# store before the order is ready. The loaded walk is the same whichever robot goes: it only decides which
# demands are served when robots are short (the shorter trips, for the robots' sake).
WALK_MINUTE = 0.5
EARLY_MINUTE = 1.0
# What a demand saves by keeping the robot of its standing proposal.
SWITCH_PENALTY_MINUTES = 2.0
# A demand left out of a round is charged as if its pickup came this much later than its best one now.
UNSERVED_DELAY_MINUTES = 5.0
# A robot free now is committed only if it would reach the store at most this long before the order is ready;
# above the round interval, so a later round can still send it in time.
EARLY_TOLERANCE_SECONDS = 90.0


@dataclass(frozen=True)
class PlanningRules:
    """What a market allows: walking speed, the charge to keep, and the depot a robot must get back to."""

    speed_mps: float
    battery_reserve: float
    depot: tuple[float, float] | None = None  # (latitude, longitude); None: no return leg is counted


@dataclass(frozen=True)
class Demands:
    """Demands to plan, oldest first: pickups and dropoffs as (n, 2) arrays of (latitude, longitude), how long
    each has waited already (seconds; none: all alike), and in how many seconds each order is ready (0: ready
    now; none: all ready now)."""

    pickups: np.ndarray
    dropoffs: np.ndarray
    waited: np.ndarray | None = None
    ready_in: np.ndarray | None = None

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
    from where each robot becomes free to each pickup (n, m), and each demand's pickup-to-dropoff metres (n,);
    with the demands' waits and ready times, the seconds until each robot is free (m,), the robot of each
    demand's standing proposal (n,; -1: none), and the walking speed."""

    eta: np.ndarray
    feasible: np.ndarray
    to_pickup: np.ndarray
    delivery: np.ndarray
    waited: np.ndarray | None = None
    ready_in: np.ndarray | None = None
    free_in: np.ndarray | None = None
    proposed: np.ndarray | None = None
    speed_mps: float | None = None

    @classmethod
    def build(cls, demands: Demands, fleet: Fleet, rules: PlanningRules,
              excluded: np.ndarray | None = None, proposed: np.ndarray | None = None) -> "PickupProblem":
        """The matrix of one round; `excluded` (n, m) marks pairs a demand refuses, `proposed` (n,) the robot
        (column) of each demand's standing proposal, -1 for none."""
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
        return cls(eta=eta, feasible=feasible, to_pickup=to_pickup, delivery=delivery, waited=demands.waited,
                   ready_in=demands.ready_in, free_in=fleet.free_in, proposed=proposed, speed_mps=rules.speed_mps)

    def pickup_in(self) -> np.ndarray:
        """Seconds until each pair's pickup (n, m): the robot's arrival, or the order's ready time if later."""
        return self.eta if self.ready_in is None else np.maximum(self.eta, self.ready_in[:, None])

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


@cache
def assignment_solver() -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scipy's rectangular assignment solver, loaded on the first round a process solves.

    `import scipy.optimize` costs ~50 MB of resident memory (the whole optimize package and what it imports) for
    this one function, which is a small compiled extension of its own (`scipy/optimize/_lsap`, ~2 MB with
    numpy already loaded). The extension is loaded by itself; the public import is the fallback should a
    scipy release move it. `tests/services/test_dispatch_planner.py` checks both give the same answers.
    """
    import scipy

    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = Path(scipy.__file__).parent / "optimize" / f"_lsap{suffix}"
        if path.is_file():
            loader = importlib.machinery.ExtensionFileLoader("scipy.optimize._lsap", str(path))
            spec = importlib.util.spec_from_file_location("scipy.optimize._lsap", path, loader=loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module.linear_sum_assignment
    from scipy.optimize import linear_sum_assignment as public

    return public


def solve_batch(problem: PickupProblem) -> tuple[np.ndarray, np.ndarray]:
    """Min-cost rectangular assignment: the most feasible pairs, then the least total time to pickup."""
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
    rows, cols = assignment_solver()(np.where(problem.feasible, cost, forbidden))
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


def lateness_cost(minutes: np.ndarray) -> np.ndarray:
    """What `minutes` from placement to pickup cost, in minutes: convex, so a long wait grows dearer."""
    return minutes + minutes ** 2 / LATENESS_SCALE_MINUTES


def ready_cost(problem: PickupProblem, row_terms: np.ndarray | None = None) -> np.ndarray:
    """The `ready` planner's cost of each pair (n, m), in minutes, plus `row_terms` (n,): the demand's lateness at
    this pickup, the robot's walk, and its minutes at the store before the order is ready; a demand's standing
    proposal is `SWITCH_PENALTY_MINUTES` cheaper. Computed in place: a round's matrix is large."""
    eta = problem.eta
    n, m = eta.shape
    waited = np.zeros(n) if problem.waited is None else problem.waited
    ready_in = problem.ready_in if problem.ready_in is not None and problem.ready_in.any() else None
    free_in = np.zeros(m) if problem.free_in is None else problem.free_in
    late = (eta if ready_in is None else np.maximum(eta, ready_in[:, None])) + waited[:, None]
    late *= 1 / 60
    cost = late / LATENESS_SCALE_MINUTES
    cost += 1
    cost *= late  # L + L^2 / LATENESS_SCALE_MINUTES
    # The walk: empty (from where the robot becomes free: eta - free_in) and loaded (per demand).
    np.multiply(eta, WALK_MINUTE / 60, out=late)
    cost += late
    rows = np.zeros(n) if row_terms is None else row_terms.copy()
    if problem.speed_mps is not None:
        rows += WALK_MINUTE / 60 * problem.delivery / problem.speed_mps
    cost += rows[:, None]
    cost -= (WALK_MINUTE / 60 * free_in)[None, :]
    if ready_in is not None:
        np.subtract(ready_in[:, None], eta, out=late)
        np.maximum(late, 0, out=late)
        late *= EARLY_MINUTE / 60
        cost += late
    if problem.proposed is not None:
        held = np.flatnonzero(problem.proposed >= 0)
        cost[held, problem.proposed[held]] -= SWITCH_PENALTY_MINUTES
    return cost


def solve_ready(problem: PickupProblem) -> tuple[np.ndarray, np.ndarray]:
    """Min-cost rectangular assignment on `ready_cost`: the most feasible pairs, then the least total cost,
    each row less what leaving its demand for later would cost (so, when robots are short, the demands whose
    wait grows dearest are served)."""
    feasible = problem.feasible
    if not feasible.any():
        return np.empty(0, int), np.empty(0, int)
    n = problem.eta.shape[0]
    everywhere = bool(feasible.all())
    best = (problem.eta if everywhere else np.where(feasible, problem.eta, np.inf)).min(axis=1)
    if problem.ready_in is not None:
        best = np.maximum(best, problem.ready_in)
    best = np.where(np.isfinite(best), best, 0)
    waited = np.zeros(n) if problem.waited is None else problem.waited
    cost = ready_cost(problem, -lateness_cost((waited + best) / 60 + UNSERVED_DELAY_MINUTES))
    if not everywhere:
        # An infeasible pair costs more than any assignment of feasible pairs can save by using it: it is used
        # only where no feasible assignment exists, and then dropped.
        low, high = float(cost[feasible].min()), float(cost[feasible].max())
        np.putmask(cost, ~feasible, high + min(cost.shape) * (high - low) + 1.0)
    rows, cols = assignment_solver()(cost)
    keep = feasible[rows, cols]
    return rows[keep], cols[keep]


def hold_early(problem: PickupProblem, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Which matches (rows[k], cols[k]) to leave planned but uncommitted: a robot free now that would reach
    the store more than `EARLY_TOLERANCE_SECONDS` before the order is ready; a later round can still send it."""
    if problem.ready_in is None or problem.free_in is None or not len(rows):
        return np.zeros(len(rows), bool)
    early = problem.ready_in[rows] - problem.eta[rows, cols]
    return (problem.free_in[cols] <= 0) & (early > EARLY_TOLERANCE_SECONDS)


def _hold_none(problem: PickupProblem, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.zeros(len(rows), bool)


@dataclass(frozen=True)
class Planner:
    """A named, versioned way of solving a round; the version is written on every plan it makes. `hold` says
    which matches with a robot free now stay proposals instead of being committed."""

    version: str
    solve: Callable[[PickupProblem], tuple[np.ndarray, np.ndarray]]
    hold: Callable[[PickupProblem, np.ndarray, np.ndarray], np.ndarray] = _hold_none


PLANNERS = {
    "batch": Planner("batch-lsa-v1", solve_batch),
    "greedy": Planner("greedy-v1", solve_greedy),
    "ready": Planner("ready-cost-v1", solve_ready, hold_early),
}
