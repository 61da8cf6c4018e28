"""`deliveryctl bench-planner` as a user runs it, on a tiny instance: the report's shape and its verdicts."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_planner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", "bench-planner", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_bench_planner_reports_batch_against_greedy_on_a_tiny_instance():
    result = bench_planner("--sizes", "20x10,8x12", "--repeats", "3", "--seed", "3", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["seed"], report["market"], report["planners"]) == (
        3, "west-hollywood", {"batch": "batch-lsa-v1", "greedy": "greedy-v1", "ready": "ready-cost-v1"})
    assert [(i["demands"], i["robots"]) for i in report["instances"]] == [(20, 10), (8, 12)]
    for instance in report["instances"]:
        for planner in ("batch", "greedy", "ready"):
            latency = instance["latency_ms"][planner]
            assert 0 < latency["p50"] <= latency["p99"]
        one = instance["one_batch"]
        assert one["batch"]["served"] >= one["greedy"]["served"] > 0
        if one["batch"]["served"] == one["greedy"]["served"]:
            assert one["batch"]["total_pickup_eta_s"] <= one["greedy"]["total_pickup_eta_s"]
        assert one["optimum"] == one["batch"]
        rolling = instance["rolling"]
        assert rolling["batch"]["served"] > 0 and rolling["greedy"]["served"] > 0
        assert rolling["batch"]["mean_pickup_wait_s"] > 0
        assert rolling["quote_error_s"]["quoted"] > 0 and rolling["quote_error_s"]["p90"] >= 0
    assert report["instances"][1]["one_batch"]["batch"]["served"] == 8  # more robots than demands: all served


def test_the_same_seed_gives_the_same_workload_and_results():
    first, again = (json.loads(bench_planner("--sizes", "20x10", "--repeats", "1", "--json").stdout)
                    for _ in range(2))
    assert first["instances"][0]["one_batch"] == again["instances"][0]["one_batch"]
    assert first["instances"][0]["rolling"] == again["instances"][0]["rolling"]


def test_a_malformed_size_is_refused_with_a_clear_message():
    result = bench_planner("--sizes", "20by10")

    assert result.returncode == 2
    assert "'20by10' is not DEMANDSxROBOTS" in result.stderr


def problem(eta: list[list[float]], waited: list[float] | None = None, ready_in: list[float] | None = None,
            free_in: list[float] | None = None, proposed: list[int] | None = None):
    """A round's matrix written out: every pair feasible, no loaded walk."""
    from services.dispatch.planner import PickupProblem

    eta = np.array(eta, float)
    n, m = eta.shape
    return PickupProblem(eta=eta, feasible=np.ones((n, m), bool), to_pickup=eta * 1.4, delivery=np.zeros(n),
                         waited=None if waited is None else np.array(waited, float),
                         ready_in=None if ready_in is None else np.array(ready_in, float),
                         free_in=np.zeros(m) if free_in is None else np.array(free_in, float),
                         proposed=None if proposed is None else np.array(proposed))


def test_a_free_robot_that_would_stand_at_the_store_is_held_until_a_later_round_can_send_it_in_time():
    from services.dispatch.planner import EARLY_TOLERANCE_SECONDS, PLANNERS

    ready = PLANNERS["ready"]
    for ready_in, held in ((20 * 60, True), (120 + EARLY_TOLERANCE_SECONDS + 1, True),
                           (120 + EARLY_TOLERANCE_SECONDS, False), (0, False)):
        round_ = problem([[120.0]], ready_in=[ready_in])
        rows, cols = ready.solve(round_)
        assert (rows.tolist(), cols.tolist()) == ([0], [0])
        assert ready.hold(round_, rows, cols).tolist() == [held], ready_in
    busy = problem([[900.0]], ready_in=[20 * 60], free_in=[600])  # a busy robot is a proposal anyway
    assert ready.hold(busy, *ready.solve(busy)).tolist() == [False]
    assert PLANNERS["batch"].hold(busy, *PLANNERS["batch"].solve(busy)).tolist() == [False]


def test_the_ready_planner_never_lets_a_robot_stand_at_a_store_longer_than_the_tolerance():
    from bench.planner_scenarios import DELIVERED, Dispatcher, evening
    from core.markets import WEST_HOLLYWOOD
    from services.dispatch.planner import EARLY_TOLERANCE_SECONDS, PlanningRules

    rules = PlanningRules(WEST_HOLLYWOOD.walking_speed_mps, 0.2,
                          (WEST_HOLLYWOOD.depot.latitude, WEST_HOLLYWOOD.depot.longitude))
    night = evening("full", 1.0, False, 120, 5, rules)
    ready, batch = Dispatcher(night, rules, "ready").run(), Dispatcher(night, rules, "batch").run()

    committed = ~np.isnan(ready.early)
    assert committed.sum() >= 100 and (ready.state[committed] == DELIVERED).all()
    assert np.nanmax(ready.early) <= EARLY_TOLERANCE_SECONDS
    assert np.nanmax(batch.early) > EARLY_TOLERANCE_SECONDS  # the workload does tempt a planner to send early


def test_a_newer_demand_takes_a_proposed_robot_only_when_clearly_better():
    from services.dispatch.planner import PLANNERS, SWITCH_PENALTY_MINUTES

    solve = PLANNERS["ready"].solve
    small = 0.4 * SWITCH_PENALTY_MINUTES * 60  # seconds the swap would save: less than the penalty is worth
    # Demand 0 holds robot 0; demand 1 (new) is a little better off with robot 0, demand 0 no worse with robot 1.
    eta = [[600.0, 600.0], [300.0, 300.0 + small]]
    assert solve(problem(eta))[1].tolist() == [1, 0]  # no standing proposal: the swap is taken
    assert solve(problem(eta, proposed=[0, -1]))[1].tolist() == [0, 1]  # the proposal stands
    far = [[600.0, 600.0], [300.0, 300.0 + 4 * SWITCH_PENALTY_MINUTES * 60]]
    assert solve(problem(far, proposed=[0, -1]))[1].tolist() == [1, 0]  # clearly better overall: moved


def test_when_robots_are_short_the_demand_that_waited_longest_is_served():
    from services.dispatch.planner import PLANNERS

    rows, cols = PLANNERS["ready"].solve(problem([[400.0], [300.0]], waited=[25 * 60, 60]))
    assert (rows.tolist(), cols.tolist()) == ([0], [0])
    rows, _ = PLANNERS["ready"].solve(problem([[400.0], [300.0]], waited=[60, 60]))
    assert rows.tolist() == [1]  # alike waits: the nearer


def test_the_scenarios_run_every_policy_and_report_every_field(tmp_path):
    output = tmp_path / "scenarios.json"
    result = bench_planner("--sizes", "8x4", "--repeats", "1", "--scenarios", "--orders", "40", "--json",
                           "--output", str(output))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(output.read_text()) == report
    assert report["command"].startswith("deliveryctl bench-planner --sizes 8x4")
    assert [(s["name"], s["kind"]) for s in report["scenarios"]] == [
        ("full", "full"), ("half", "short"), ("third", "short"), ("burst", "burst")]
    for scenario in report["scenarios"]:
        assert scenario["robots"] >= 1 and scenario["orders"] >= 40
        assert set(scenario["policies"]) == {"greedy", "batch", "ready"}
        for figures in scenario["policies"].values():
            assert figures["delivered"] + figures["refused"] + figures["cancelled"] + figures["unsettled"] == \
                scenario["orders"]
            assert figures["unsettled"] == 0
            assert set(figures["cancelled_by"]) == {"robot_search", "pickup_wait"}
            assert sum(figures["cancelled_by"].values()) == figures["cancelled"]
            assert figures["within_40_min"] <= figures["within_90_min"] <= figures["delivered"]
            assert figures["early_robot_minutes_at_stores"] >= 0
            assert 0 < figures["round_latency_ms"]["p50"] <= figures["round_latency_ms"]["p99"]
            if figures["delivered"]:
                door = figures["click_to_door_min"]
                assert 0 < door["mean"] and door["p90"] >= 0
        assert all(isinstance(met, bool) for met in scenario["targets"].values()) and scenario["targets"]


def test_the_documented_scenario_figures_are_the_committed_report():
    from bench.planner_scenarios import markdown

    report = json.loads((ROOT / "docs" / "bench" / "planner-scenarios.json").read_text())
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    documented = text.split("<!-- planner-scenarios:begin -->")[1].split("<!-- planner-scenarios:end -->")[0]
    assert documented.strip() == markdown(report)
    assert f"`{report['command']}`" in text
