"""`deliveryctl bench --idle-robots N` end to end, tiny, and the docs quoting its committed report."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_idle_robots_bench_reports_cpu_and_the_push_delay(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    output = tmp_path / "idle.json"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "bench", "--idle-robots", "20", "--idle-seconds", "3",
         "--push-samples", "3", "--output", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    # Three samples never meet the target (it asks for 50): the exit status says so, the report is written.
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    report = json.loads(output.read_text())
    assert report["parameters"]["robots"] == 20 and report["stream_failures"] == 0
    idle, push = report["idle"], report["push"]
    assert idle["heartbeats_answered"] > 0 and idle["cpu_percent"]["api"] > 0
    assert push["heard"] == 3 and push["missed"] == 0 and push["commit_samples"] == 3, push
    delay = push["commit_to_robot_ms"]
    assert 0 <= delay["p50"] <= delay["p99"] < 5_000
    assert report["met"]["commit_to_robot_p99_ms"] is False  # fewer than 50 samples
    assert "commit → robot over 3 deliveries" in result.stdout


def test_the_idle_robot_figures_in_the_docs_are_the_committed_report():
    """docs/benchmarks.md quotes docs/bench-idle-robots.json through the lines the bench renders, never by hand."""
    from bench.idle_fleet import markdown

    report = json.loads((ROOT / "docs" / "bench-idle-robots.json").read_text())
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    missing = [line for line in markdown(report) if line not in docs]
    assert not missing, "regenerate with: python -m bench.idle_fleet docs/bench-idle-robots.json\n" + "\n".join(missing)
