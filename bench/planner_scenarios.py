"""`deliveryctl bench-planner --scenarios`: the planners through an evening of meal orders, under production's
deadlines.

Pure computation with the planner's own code (`services/dispatch/planner.py`), as `bench/planner.py`.

**Orders** (`numpy.random.default_rng(seed)`), in the West Hollywood demo market: stores, pickups and dropoffs
as `bench.planner.workload`; orders placed as a Poisson process over `MINUTES`; each is ready a preparation
time after it is placed, uniform in `PREPARATION_MINUTES`.

**Need**: the robots that would keep up with the base arrival rate if each walked empty as far as it carries an
order: rate × (2 × mean delivery walk + the pickup dwell).

**Robots** scattered over the market with charge uniform in `SCENARIO_BATTERY`; shifts: `JOINING` of them come
on shift at `JOIN_AT` of the evening, `LEAVING` go off at `LEAVE_AT` (a robot busy then finishes its trip);
a robot is planned only while on shift and only for a pickup before its shift ends.

**Scenarios**: `full`, `half`, `third` (fleets at 100%, 50% and 33% of need), and `burst` (the full fleet, and
`BURST_EXTRA` more orders placed within `BURST_MINUTES` from `BURST_AT`).

**Deadlines, as production runs them**, the same for every policy:
- *refused*: the quote on placement (as `estimate_quote`: each robot after its trip and its queued proposal,
  then the orders still waiting) has no pickup within `QUOTE_MAX_PICKUP_SECONDS`;
- *robot search*: an order with no robot planned (neither committed nor proposed) `ROBOT_SEARCH_SECONDS`
  after it is ready is cancelled;
- *pickup wait*: a robot at the store `PICKUP_WAIT_SECONDS` before the order is ready is cancelled there
  (and is free again at the store).

A round every `ROUND_SECONDS` plans the open orders against the robots on shift, where and when each becomes
free; a match with a robot free now is committed unless the policy holds it, any other match is a proposal
the next round sees (the `ready` policy keeps it unless clearly better).
"""

import time
from dataclasses import dataclass, field

import numpy as np

from bench.planner import QUOTE_MAX_PICKUP_SECONDS, ROUND_SECONDS, percentiles, workload
from core.contracts import LifecyclePolicy
from core.markets import WEST_HOLLYWOOD, Market
from services.dispatch.eta import BATTERY_PER_METER, PICKUP_DWELL
from services.dispatch.planner import (PLANNERS, Demands, Fleet, PickupProblem, PlanningRules, after_backlog,
                                      meters_pairwise)

POLICIES = ("greedy", "batch", "ready")
MINUTES = 120
PREPARATION_MINUTES = (5, 25)
SCENARIO_BATTERY = (0.6, 1.0)
JOINING, JOIN_AT = 0.15, 0.25
LEAVING, LEAVE_AT = 0.15, 0.6
BURST_AT, BURST_MINUTES, BURST_EXTRA = 45, 15, 0.25  # extra orders: a share of the evening's orders
ROBOT_SEARCH_SECONDS = LifecyclePolicy().robot_search_seconds
PICKUP_WAIT_SECONDS = LifecyclePolicy().pickup_wait_seconds
# After the last order is placed, the rounds go on until every order is settled or this long has passed.
DRAIN_MINUTES = 240
SCENARIOS = (("full", 1.0, False), ("half", 0.5, False), ("third", 1 / 3, False), ("burst", 1.0, True))

# Order states.
PENDING, OPEN, COMMITTED, DELIVERED, REFUSED, CANCELLED = range(6)


@dataclass(frozen=True)
class Evening:
    """One scenario's orders (by placement time) and robots."""

    name: str
    fleet_share: float
    demands: Demands  # pickups, dropoffs; `ready_in` holds the ready time (seconds into the evening)
    placed: np.ndarray
    ready: np.ndarray
    fleet: Fleet
    shift_start: np.ndarray
    shift_end: np.ndarray
    need: int


def evening(name: str, fleet_share: float, burst: bool, orders: int, seed: int,
            rules: PlanningRules, market: Market = WEST_HOLLYWOOD) -> Evening:
    """A scenario's orders and robots; `full`, `half` and `third` of a seed have the same orders."""
    rng = np.random.default_rng([seed, 1])
    extra = int(round(orders * BURST_EXTRA)) if burst else 0
    base = workload(orders + extra, 1, seed, MINUTES, market)
    placed = rng.uniform(0, MINUTES * 60, orders + extra)
    if extra:
        placed[orders:] = rng.uniform(BURST_AT * 60, (BURST_AT + BURST_MINUTES) * 60, extra)
    order = np.argsort(placed, kind="stable")
    pickups, dropoffs, placed = base.demands.pickups[order], base.demands.dropoffs[order], placed[order]
    ready = placed + rng.uniform(*PREPARATION_MINUTES, len(placed)) * 60
    walk_s = float(np.mean(meters_pairwise(pickups, dropoffs))) / rules.speed_mps
    need = int(np.ceil(orders / (MINUTES * 60) * (2 * walk_s + PICKUP_DWELL.total_seconds())))
    robots = max(1, int(round(need * fleet_share)))
    fleet_rng = np.random.default_rng([seed, 2])
    fleet = workload(1, robots, seed + 1, MINUTES, market).fleet
    fleet = Fleet(fleet.positions, fleet.free_in, fleet_rng.uniform(*SCENARIO_BATTERY, robots))
    start, end = np.zeros(robots), np.full(robots, np.inf)
    shifts = fleet_rng.permutation(robots)
    joining, leaving = int(robots * JOINING), int(robots * LEAVING)
    start[shifts[:joining]] = JOIN_AT * MINUTES * 60
    end[shifts[joining:joining + leaving]] = LEAVE_AT * MINUTES * 60
    return Evening(name, fleet_share, Demands(pickups, dropoffs), placed, ready, fleet, start, end, need)


@dataclass
class Dispatcher:
    """One policy through one evening: robots, orders, proposals, and what production's deadlines did."""

    evening: Evening
    rules: PlanningRules
    policy: str
    state: np.ndarray = field(init=False)
    proposal: np.ndarray = field(init=False)  # order -> robot of its standing plan (-1: none)
    delivered_at: np.ndarray = field(init=False)
    early: np.ndarray = field(init=False)  # order -> seconds its robot stood at the store before it was ready
    cancelled_by: dict[str, int] = field(default_factory=lambda: {"robot_search": 0, "pickup_wait": 0})
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    rounds: int = 0

    def __post_init__(self) -> None:
        n, fleet = len(self.evening.placed), self.evening.fleet
        self.state, self.proposal = np.full(n, PENDING), np.full(n, -1)
        self.delivered_at, self.early = np.full(n, np.nan), np.full(n, np.nan)
        self.positions, self.battery = fleet.positions.copy(), fleet.battery.copy()
        self.free_at = self.evening.shift_start.copy()

    def working(self, now: float) -> np.ndarray:
        """Robots a round may plan: on shift, and free again before their shift ends."""
        ev = self.evening
        return np.flatnonzero((ev.shift_start <= now) & (np.maximum(self.free_at, now) < ev.shift_end))

    def orders(self, index: np.ndarray, now: float | None = None) -> Demands:
        demands = self.evening.demands
        if now is None:
            return Demands(demands.pickups[index], demands.dropoffs[index])
        return Demands(demands.pickups[index], demands.dropoffs[index], now - self.evening.placed[index],
                       np.maximum(self.evening.ready[index] - now, 0))

    def fleet(self, robots: np.ndarray, now: float) -> Fleet:
        return Fleet(self.positions[robots], np.maximum(self.free_at[robots] - now, 0), self.battery[robots])

    def quote(self, order: int, now: float) -> bool:
        """Whether the quote on placement finds a pickup within `QUOTE_MAX_PICKUP_SECONDS`."""
        robots = self.working(now)
        if not len(robots):
            return False
        fleet = self.fleet(robots, now)
        column = {int(r): k for k, r in enumerate(robots)}
        queued = [(column[int(self.proposal[o])], o) for o in np.flatnonzero(self.state == OPEN)
                  if self.proposal[o] >= 0 and int(self.proposal[o]) in column]
        if queued:
            fleet = fleet.after(np.array([c for c, _ in queued]), self.orders(np.array([o for _, o in queued])),
                                self.rules.speed_mps)
        waiting = np.flatnonzero((self.state == OPEN) & (self.proposal < 0))
        if len(waiting):
            fleet = after_backlog(fleet, self.orders(waiting), self.rules)
        problem = PickupProblem.build(self.orders(np.array([order])), fleet, self.rules)
        best = problem.earliest(0)
        return best is not None and problem.eta[0, best] <= QUOTE_MAX_PICKUP_SECONDS

    def round(self, now: float) -> None:
        """Plan the open orders, commit or propose, then cancel the orders production's deadlines end."""
        self.rounds += 1
        open_ = np.flatnonzero(self.state == OPEN)
        robots = self.working(now)
        previous, self.proposal[open_] = self.proposal[open_], -1
        if len(open_) and len(robots):
            planner = PLANNERS[self.policy]
            column = np.full(len(self.free_at), -1)
            column[robots] = np.arange(len(robots))
            started, started_cpu = time.perf_counter(), time.thread_time()
            problem = PickupProblem.build(self.orders(open_, now), self.fleet(robots, now), self.rules,
                                          proposed=np.where(previous >= 0, column[np.maximum(previous, 0)], -1))
            rows, cols = planner.solve(problem)
            held = planner.hold(problem, rows, cols)
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            self.cpu_ms.append((time.thread_time() - started_cpu) * 1000)
            for i, j, hold in zip(rows, cols, held):
                order, robot = int(open_[i]), int(robots[j])
                if self.free_at[robot] > now or hold:
                    self.proposal[order] = robot
                else:
                    self.commit(order, robot, now + problem.eta[i, j], problem.to_pickup[i, j], problem.delivery[i])
        ready = self.evening.ready
        lost = (self.state == OPEN) & (self.proposal < 0) & (now >= ready + ROBOT_SEARCH_SECONDS)
        self.state[lost] = CANCELLED
        self.cancelled_by["robot_search"] += int(lost.sum())

    def commit(self, order: int, robot: int, arrival: float, to_pickup: float, delivery: float) -> None:
        """The robot walks to the store; it loads once the order is ready, unless the pickup wait runs out."""
        ready = float(self.evening.ready[order])
        self.battery[robot] -= to_pickup * BATTERY_PER_METER
        self.positions[robot] = self.evening.demands.pickups[order]
        self.early[order] = min(max(ready - arrival, 0), PICKUP_WAIT_SECONDS)
        if ready - arrival > PICKUP_WAIT_SECONDS:
            self.free_at[robot] = arrival + PICKUP_WAIT_SECONDS
            self.state[order] = CANCELLED
            self.cancelled_by["pickup_wait"] += 1
            return
        dropoff = max(arrival, ready) + PICKUP_DWELL.total_seconds() + delivery / self.rules.speed_mps
        self.battery[robot] -= delivery * BATTERY_PER_METER
        self.positions[robot] = self.evening.demands.dropoffs[order]
        self.free_at[robot] = dropoff
        self.state[order], self.delivered_at[order] = DELIVERED, dropoff

    def run(self) -> "Dispatcher":
        placed, now, end = self.evening.placed, 0.0, self.evening.placed[-1] + DRAIN_MINUTES * 60
        next_order = 0
        while now <= end:
            while next_order < len(placed) and placed[next_order] <= now:
                self.state[next_order] = OPEN if self.quote(next_order, float(placed[next_order])) else REFUSED
                next_order += 1
            self.round(now)
            if next_order == len(placed) and not (self.state == OPEN).any():
                break
            now += ROUND_SECONDS
        return self

    def report(self) -> dict:
        """Counts, click-to-door, and robots' minutes at stores before the order was ready."""
        delivered = self.state == DELIVERED
        door = (self.delivered_at - self.evening.placed)[delivered] / 60
        accepted = int((self.state != REFUSED).sum())
        cancelled = int((self.state == CANCELLED).sum())
        return {
            "delivered": int(delivered.sum()), "refused": int((self.state == REFUSED).sum()),
            "cancelled": cancelled, "cancelled_by": dict(self.cancelled_by),
            "unsettled": int((self.state == OPEN).sum()),
            "cancelled_share_of_accepted": round(cancelled / accepted, 4) if accepted else None,
            "click_to_door_min": {"mean": _round(door.mean() if len(door) else None),
                                  "p90": _round(np.percentile(door, 90) if len(door) else None)},
            "within_40_min": int((door <= 40).sum()), "within_90_min": int((door <= 90).sum()),
            "early_robot_minutes_at_stores": round(float(np.nansum(self.early)) / 60, 1),
            "round_latency_ms": percentiles(self.latencies_ms, self.cpu_ms),
            "rounds": self.rounds,
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


TARGETS = {
    "delivered_at_least_greedy": "delivered ≥ greedy's",
    "most_within_90_min": "the most orders within 90 min",
    "early_minutes_cut_70pct_vs_batch": "robots' early minutes at stores ≤ 30% of batch's",
    "click_to_door_mean_at_most_batch": "click-to-door mean ≤ batch's (full fleet)",
    "cancelled_under_1pct_of_accepted": "< 1% of accepted orders cancelled (full fleet)",
    "click_to_door_mean_at_most_1_2x_batch": "click-to-door mean ≤ 1.2 × batch's (short fleets)",
}


def targets(kind: str, policies: dict) -> dict:
    """The `ready` policy's targets in one scenario, each true or false."""
    ready, greedy, batch = policies["ready"], policies["greedy"], policies["batch"]
    checks = {
        "delivered_at_least_greedy": ready["delivered"] >= greedy["delivered"],
        "most_within_90_min": ready["within_90_min"] >= max(p["within_90_min"] for p in policies.values()),
        "early_minutes_cut_70pct_vs_batch": ready["early_robot_minutes_at_stores"]
        <= 0.3 * batch["early_robot_minutes_at_stores"],
    }
    mean, batch_mean = ready["click_to_door_min"]["mean"], batch["click_to_door_min"]["mean"]
    if kind == "full":
        checks["click_to_door_mean_at_most_batch"] = mean <= batch_mean
        checks["cancelled_under_1pct_of_accepted"] = ready["cancelled_share_of_accepted"] < 0.01
    elif kind == "short":
        checks["click_to_door_mean_at_most_1_2x_batch"] = mean <= 1.2 * batch_mean
    return checks


def run(orders: int, seed: int, market: Market = WEST_HOLLYWOOD, battery_reserve: float = 0.2) -> list[dict]:
    """Every scenario, every policy."""
    rules = PlanningRules(market.walking_speed_mps, battery_reserve, (market.depot.latitude, market.depot.longitude))
    results = []
    for name, share, burst in SCENARIOS:
        ev = evening(name, share, burst, orders, seed, rules, market)
        policies = {policy: Dispatcher(ev, rules, policy).run().report() for policy in POLICIES}
        kind = "burst" if burst else ("full" if share >= 1 else "short")
        results.append({"name": name, "kind": kind, "fleet_share_of_need": round(share, 2), "need": ev.need,
                        "robots": len(ev.fleet), "orders": len(ev.placed), "policies": policies,
                        "targets": targets(kind, policies)})
    return results


def table(scenarios: list[dict]) -> str:
    """The scenarios as a readable table."""
    lines = [f"{'scenario':>18} {'policy':>7} | {'deliv':>5} {'refus':>5} {'canc':>5} | {'door mean/p90':>13} | "
             f"{'<=40':>5} {'<=90':>5} | {'early min':>9} | {'ms p50/p99':>11}"]
    for item in scenarios:
        label = f"{item['name']} {item['robots']}r/{item['orders']}o"
        for policy, p in item["policies"].items():
            door = p["click_to_door_min"]
            lines.append(f"{label:>18} {policy:>7} | {p['delivered']:>5} {p['refused']:>5} {p['cancelled']:>5} | "
                         f"{door['mean']:>6}/{door['p90']:<6} | {p['within_40_min']:>5} {p['within_90_min']:>5} | "
                         f"{p['early_robot_minutes_at_stores']:>9} | "
                         f"{p['round_latency_ms']['p50']:>5}/{p['round_latency_ms']['p99']:<5}")
            label = ""
        missed = [name for name, ok in item["targets"].items() if not ok]
        lines.append(f"{'':>18} targets: {'all met' if not missed else 'missed ' + ', '.join(missed)}")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    """The scenario figures of a saved `--scenarios` report as the Markdown tables of docs/benchmarks.md."""
    lines = ["| scenario | policy | delivered | refused | cancelled (robot search / pickup wait) | click-to-door "
             "mean / p90 min | within 40 / 90 min | robots' early minutes at stores | round ms p50 / p99 (CPU p50 / p99) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for item in report["scenarios"]:
        label = f"{item['name']}: {item['robots']} robots ({item['fleet_share_of_need']:.0%} of {item['need']}), " \
                f"{item['orders']} orders"
        for policy, p in item["policies"].items():
            door, by, ms = p["click_to_door_min"], p["cancelled_by"], p["round_latency_ms"]
            lines.append(f"| {label} | {policy} | {p['delivered']} | {p['refused']} | {p['cancelled']} "
                         f"({by['robot_search']} / {by['pickup_wait']}) | {door['mean']} / {door['p90']} | "
                         f"{p['within_40_min']} / {p['within_90_min']} | {p['early_robot_minutes_at_stores']} | "
                         f"{ms['p50']} / {ms['p99']} ({ms['cpu_p50']} / {ms['cpu_p99']}) |")
            label = ""
    names = sorted({name for item in report["scenarios"] for name in item["targets"]})
    lines += ["", "| target (`ready`) | " + " | ".join(item["name"] for item in report["scenarios"]) + " |",
              "|---|" + "---|" * len(report["scenarios"])]
    for name in names:
        marks = [("met" if item["targets"][name] else "**missed**") if name in item["targets"] else "-"
                 for item in report["scenarios"]]
        lines.append(f"| {TARGETS.get(name, name)} | " + " | ".join(marks) + " |")
    lines += ["", "| instance | planner | round ms p50 / p99, matrix included: wall clock | CPU |", "|---|---|---|---|"]
    for item in report["instances"]:
        for planner, ms in item["latency_ms"].items():
            lines.append(f"| {item['demands']} × {item['robots']} | {planner} | {ms['p50']} / {ms['p99']} | "
                         f"{ms['cpu_p50']} / {ms['cpu_p99']} |")
    machine = report["machine"]
    lines += ["", f"Machine: {machine['cpus']} CPUs, load average (1 min) {machine['load_average_1m'][0]} when the "
                  f"run started, {machine['load_average_1m'][1]} after the timed instances."]
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    print(markdown(json.loads(open(sys.argv[1]).read())))
