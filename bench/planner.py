"""`deliveryctl bench-planner`: the Dispatch planner on seeded city workloads, every planner (`--scenarios`: the
evenings of `bench/planner_scenarios.py` too).

Pure computation with the planner's own code (`services/dispatch/planner.py`): no database, no Temporal.

**Workload** (`numpy.random.default_rng(seed)`), inside the West Hollywood demo market's polygon:
- `STORES` stores placed uniformly in the polygon, with popularity 1/rank (a few busy stores, a long tail);
- each demand is picked up within `STORE_SPREAD_M` of a store chosen by popularity, and dropped off
  uniformly within `DROPOFF_RADIUS_M` of it, inside the polygon;
- robots are scattered uniformly over the polygon, with batteries uniform in `BATTERY_RANGE` (with the 20%
  reserve and the return to the depot, some cannot take a long trip);
- for the rolling horizon, demands arrive as a Poisson process over `--arrival-minutes`.

**Per instance** (demands × robots):
1. *Latency*: building the ETA matrix and feasibility plus solving (and, for `ready`, what it holds),
   `--repeats` times, p50/p99 of wall clock and of CPU time, per planner; the demands have waited up to 10
   minutes and half of the orders are ready within 25 (which makes the assignment harder than pickup ETAs).
2. *One batch*: every demand open at once, every robot free now. Total and mean pickup ETA of greedy and
   batch. For one batch, batch (`linear_sum_assignment` on the full matrix) is the optimum.
3. *Rolling horizon*: a round every `ROUND_SECONDS`, as Dispatch runs them: open demands against every
   robot where and when it becomes free; a match with a robot free now is committed (the robot travels,
   dwells `PICKUP_DWELL` at the pickup, and is free again at the dropoff); a match with a busy robot is a
   proposal the next round may move. Mean and p90 pickup wait (arrival to pickup), per planner.
4. *Quote error*: in the batch simulation, each demand is quoted on arrival from the same view as
   `estimate_quote` (robots after their current trip and their queued proposal, then the demands still
   waiting served oldest first); mean and p90 of |quoted pickup − simulated pickup|, seconds, over the
   quotes given; a pickup further than `QUOTE_MAX_PICKUP_SECONDS` away is refused (no capacity), counted.
"""

import os
import time
from dataclasses import dataclass, field

import numpy as np

from core.contracts import Point
from core.markets import WEST_HOLLYWOOD, Market
from core.settings import Settings
from services.dispatch.eta import BATTERY_PER_METER, PICKUP_DWELL
from services.dispatch.planner import PLANNERS, Demands, Fleet, PickupProblem, PlanningRules, after_backlog

# Quotes further out than this are refused as no capacity, as `estimate_quote` does with the default setting.
QUOTE_MAX_PICKUP_SECONDS = Settings().quote_max_pickup_seconds
DEFAULT_SIZES = ((100, 50), (500, 250), (1000, 500), (1000, 100))
STORES = 12
STORE_SPREAD_M = 40
DROPOFF_RADIUS_M = 1500
BATTERY_RANGE = (0.15, 1.0)
ROUND_SECONDS = 30
METERS_PER_DEGREE = 111_195


@dataclass(frozen=True)
class Workload:
    """One seeded instance: demands (oldest first, with arrival seconds) and robots free now."""

    demands: Demands
    arrivals: np.ndarray
    fleet: Fleet


def _inside(market: Market, rng: np.random.Generator, count: int, around: np.ndarray | None = None,
            radius_m: float = 0) -> np.ndarray:
    """`count` points in the market's polygon: uniform, or within `radius_m` of each row of `around`."""
    lats, lons = [p[0] for p in market.polygon], [p[1] for p in market.polygon]
    points = np.empty((count, 2))
    for k in range(count):
        while True:
            if around is None:
                candidate = (rng.uniform(min(lats), max(lats)), rng.uniform(min(lons), max(lons)))
            else:
                distance, bearing = radius_m * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
                north, east = distance * np.cos(bearing), distance * np.sin(bearing)
                lat = around[k, 0] + north / METERS_PER_DEGREE
                candidate = (lat, around[k, 1] + east / (METERS_PER_DEGREE * np.cos(np.radians(lat))))
            if market.contains(Point(latitude=candidate[0], longitude=candidate[1])):
                points[k] = candidate
                break
    return points


def workload(demands: int, robots: int, seed: int, arrival_minutes: float, market: Market = WEST_HOLLYWOOD) -> Workload:
    """A city instance: demands clustered around popular stores, robots scattered, random batteries."""
    rng = np.random.default_rng(seed)
    stores = _inside(market, rng, STORES)
    popularity = 1 / np.arange(1, STORES + 1)
    chosen = stores[rng.choice(STORES, size=demands, p=popularity / popularity.sum())]
    pickups = _inside(market, rng, demands, chosen, STORE_SPREAD_M)
    dropoffs = _inside(market, rng, demands, pickups, DROPOFF_RADIUS_M)
    arrivals = np.sort(rng.uniform(0, arrival_minutes * 60, demands))
    fleet = Fleet(positions=_inside(market, rng, robots), free_in=np.zeros(robots),
                  battery=rng.uniform(*BATTERY_RANGE, robots))
    return Workload(Demands(pickups, dropoffs), arrivals, fleet)


def latency(load: Workload, rules: PlanningRules, planner: str, repeats: int) -> dict:
    """p50/p99 milliseconds of one round: ETA matrix and feasibility, then the solve and what it holds; wall
    clock, and the CPU time of the thread (`cpu_`), which other work on a shared machine does not inflate."""
    samples, cpu, chosen = [], [], PLANNERS[planner]
    rng = np.random.default_rng(len(load.demands))
    # As a busy round sees them: demands that waited up to 10 minutes, orders ready within 25 (half ready now).
    demands = Demands(load.demands.pickups, load.demands.dropoffs, rng.uniform(0, 600, len(load.demands)),
                      np.maximum(rng.uniform(-1500, 1500, len(load.demands)), 0))
    chosen.solve(PickupProblem.build(demands, load.fleet, rules))  # untimed: imports scipy.optimize once
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.thread_time()
        problem = PickupProblem.build(demands, load.fleet, rules)
        chosen.hold(problem, *chosen.solve(problem))
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    return percentiles(samples, cpu)


def percentiles(wall_ms: list[float], cpu_ms: list[float]) -> dict:
    """p50/p99 of wall-clock and CPU milliseconds."""
    if not wall_ms:
        return {"p50": None, "p99": None, "cpu_p50": None, "cpu_p99": None}
    return {"p50": round(float(np.percentile(wall_ms, 50)), 2), "p99": round(float(np.percentile(wall_ms, 99)), 2),
            "cpu_p50": round(float(np.percentile(cpu_ms, 50)), 2),
            "cpu_p99": round(float(np.percentile(cpu_ms, 99)), 2)}


def one_batch(load: Workload, rules: PlanningRules) -> dict:
    """Every demand open at once against every robot free now: pickup ETAs per planner."""
    problem = PickupProblem.build(load.demands, load.fleet, rules)
    result = {}
    for name in ("greedy", "batch"):
        rows, cols = PLANNERS[name].solve(problem)
        etas = problem.eta[rows, cols]
        result[name] = {"served": len(rows), "total_pickup_eta_s": round(float(etas.sum()), 1),
                        "mean_pickup_eta_s": round(float(etas.mean()), 1) if len(etas) else None}
    result["optimum"] = dict(result["batch"])  # one batch: the full-matrix assignment is the optimum
    return result


@dataclass
class Simulation:
    """The rolling horizon for one planner: robots' state, commitments, standing proposals, quotes."""

    load: Workload
    rules: PlanningRules
    planner: str
    positions: np.ndarray = field(init=False)
    free_at: np.ndarray = field(init=False)
    battery: np.ndarray = field(init=False)
    pickup_at: np.ndarray = field(init=False)
    quoted_at: np.ndarray = field(init=False)
    proposals: dict[int, int] = field(default_factory=dict)  # robot -> demand
    rounds: int = 0

    def __post_init__(self) -> None:
        n = len(self.load.demands)
        self.positions, self.battery = self.load.fleet.positions.copy(), self.load.fleet.battery.copy()
        self.free_at = np.zeros(len(self.positions))
        self.pickup_at, self.quoted_at = np.full(n, np.nan), np.full(n, np.nan)

    def fleet(self, now: float) -> Fleet:
        return Fleet(self.positions, np.maximum(self.free_at - now, 0), self.battery)

    def subset(self, index: np.ndarray) -> Demands:
        return Demands(self.load.demands.pickups[index], self.load.demands.dropoffs[index])

    def quote(self, demand: int, now: float) -> None:
        """The earliest pickup promised on arrival, as `estimate_quote` sees it: every robot after its trip and
        its queued proposal, and after the demands still waiting without one (oldest first)."""
        fleet = self.fleet(now)
        if self.proposals:
            robots = np.array(list(self.proposals))
            fleet = fleet.after(robots, self.subset(np.array(list(self.proposals.values()))), self.rules.speed_mps)
        proposed = set(self.proposals.values())
        waiting = [d for d in np.flatnonzero((self.load.arrivals <= now) & np.isnan(self.pickup_at))
                   if d != demand and d not in proposed]
        if waiting:
            fleet = after_backlog(fleet, self.subset(np.array(waiting)), self.rules)
        problem = PickupProblem.build(self.subset(np.array([demand])), fleet, self.rules)
        best = problem.earliest(0)
        if best is not None and problem.eta[0, best] <= QUOTE_MAX_PICKUP_SECONDS:
            self.quoted_at[demand] = now + problem.eta[0, best]

    def round(self, now: float) -> bool:
        """Plan the open demands; commit matches with robots free now. False when nothing more can happen."""
        self.rounds += 1
        open_ = np.flatnonzero((self.load.arrivals <= now) & np.isnan(self.pickup_at))
        self.proposals = {}
        if len(open_) == 0:
            return True
        waiting = self.subset(open_)
        waiting = Demands(waiting.pickups, waiting.dropoffs, now - self.load.arrivals[open_])
        problem = PickupProblem.build(waiting, self.fleet(now), self.rules)
        rows, cols = PLANNERS[self.planner].solve(problem)
        for i, j in zip(rows, cols):  # no ready times here: no planner holds a match
            demand = int(open_[i])
            if self.free_at[j] > now:
                self.proposals[int(j)] = demand
                continue
            self.pickup_at[demand] = now + problem.eta[i, j]
            onward = PICKUP_DWELL.total_seconds() + problem.delivery[i] / self.rules.speed_mps
            self.free_at[j] = self.pickup_at[demand] + onward
            self.battery[j] -= (problem.to_pickup[i, j] + problem.delivery[i]) * BATTERY_PER_METER
            self.positions[j] = self.load.demands.dropoffs[demand]
        still_busy = (self.free_at > now).any()
        return len(rows) > 0 or still_busy or (self.load.arrivals > now).any()

    def run(self) -> "Simulation":
        arrivals, next_arrival, now = self.load.arrivals, 0, 0.0
        while np.isnan(self.pickup_at).any():
            while next_arrival < len(arrivals) and arrivals[next_arrival] <= now:
                self.quote(next_arrival, float(arrivals[next_arrival]))
                next_arrival += 1
            if not self.round(now):
                break
            now += ROUND_SECONDS
        return self


def rolling(load: Workload, rules: PlanningRules) -> dict:
    """Every planner through the same arrivals; pickup waits, and the batch planner's quote error."""
    result = {}
    for name in PLANNERS:
        sim = Simulation(load, rules, name).run()
        served = ~np.isnan(sim.pickup_at)
        waits = (sim.pickup_at - load.arrivals)[served]
        result[name] = {"rounds": sim.rounds, "served": int(served.sum()),
                        "mean_pickup_wait_s": round(float(waits.mean()), 1),
                        "p90_pickup_wait_s": round(float(np.percentile(waits, 90)), 1)}
        if name == "batch":
            quoted = served & ~np.isnan(sim.quoted_at)
            errors = np.abs(sim.quoted_at - sim.pickup_at)[quoted]
            result["quote_error_s"] = {
                "quoted": int(quoted.sum()), "refused": int(np.isnan(sim.quoted_at).sum()),
                "mean": round(float(errors.mean()), 1) if len(errors) else None,
                "p90": round(float(np.percentile(errors, 90)), 1) if len(errors) else None}
    return result


def run(sizes: list[tuple[int, int]], seed: int, repeats: int, arrival_minutes: float, battery_reserve: float,
        market: Market = WEST_HOLLYWOOD) -> dict:
    """Every instance of the report, in order."""
    rules = PlanningRules(market.walking_speed_mps, battery_reserve, (market.depot.latitude, market.depot.longitude))
    load_before, instances = os.getloadavg()[0], []
    for demands, robots in sizes:
        load = workload(demands, robots, seed, arrival_minutes, market)
        instances.append({
            "demands": demands, "robots": robots,
            "latency_ms": {name: latency(load, rules, name, repeats) for name in PLANNERS},
            "one_batch": one_batch(load, rules),
            "rolling": rolling(load, rules),
        })
    return {"market": market.name, "seed": seed, "repeats": repeats, "arrival_minutes": arrival_minutes,
            "round_seconds": ROUND_SECONDS, "battery_reserve": battery_reserve,
            "planners": {name: planner.version for name, planner in PLANNERS.items()}, "instances": instances,
            "machine": {"cpus": os.cpu_count(), "load_average_1m": [round(load_before, 2),
                                                                      round(os.getloadavg()[0], 2)]}}


def table(report: dict) -> str:
    """The report as a readable table."""
    lines = [f"Planner benchmark: market {report['market']}, seed {report['seed']}, {report['repeats']} repeats, "
             f"arrivals over {report['arrival_minutes']:g} min, a round every {report['round_seconds']} s",
             "",
             f"{'instance':>10} | {'latency ms p50/p99':>38} | {'one batch: mean pickup ETA s':>33} | "
             f"{'rolling: mean/p90 pickup wait s':>53} | {'quotes: error s, refused':>24}",
             f"{'':>10} | {'batch':>12} {'greedy':>12} {'ready':>12} | {'greedy':>10} {'batch=optimum':>14} "
             f"{'served':>7} | {'greedy':>17} {'batch':>17} {'ready':>17} | {'mean/p90':>15} {'refused':>8}"]
    for item in report["instances"]:
        lat, one, roll = item["latency_ms"], item["one_batch"], item["rolling"]
        lines.append(
            f"{item['demands']:>5}x{item['robots']:<4} | "
            f"{lat['batch']['p50']:>5.1f}/{lat['batch']['p99']:<6.1f} "
            f"{lat['greedy']['p50']:>5.1f}/{lat['greedy']['p99']:<6.1f} "
            f"{lat['ready']['p50']:>5.1f}/{lat['ready']['p99']:<6.1f} | "
            f"{one['greedy']['mean_pickup_eta_s']:>10.0f} {one['batch']['mean_pickup_eta_s']:>14.0f} "
            f"{one['batch']['served']:>7} | "
            f"{roll['greedy']['mean_pickup_wait_s']:>8.0f}/{roll['greedy']['p90_pickup_wait_s']:<8.0f} "
            f"{roll['batch']['mean_pickup_wait_s']:>8.0f}/{roll['batch']['p90_pickup_wait_s']:<8.0f} "
            f"{roll['ready']['mean_pickup_wait_s']:>8.0f}/{roll['ready']['p90_pickup_wait_s']:<8.0f} | "
            f"{_seconds(roll['quote_error_s']['mean']):>7}/{_seconds(roll['quote_error_s']['p90']):<7} "
            f"{roll['quote_error_s']['refused']:>8}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
