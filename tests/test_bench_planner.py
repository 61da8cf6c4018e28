"""`deliveryctl bench-planner` as a user runs it, on a tiny instance: the report's shape and its verdicts."""

import json
import subprocess
import sys
from pathlib import Path

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
