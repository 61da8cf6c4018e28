"""`python -m bench.heap`: what a full collection costs in our processes, before and after settling the heap."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_settling_the_heap_leaves_a_full_collection_nothing_from_start_up_to_scan(tmp_path):
    output = tmp_path / "heap.json"
    result = subprocess.run([sys.executable, "-m", "bench.heap", "--rounds", "1", "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert set(report["processes"]) == {"api", "worker"}
    for kind, found in report["processes"].items():
        before, settled = found["before"], found["settled"]
        assert before["tracked_objects"] > 50_000, kind  # the app, its models and the SDK, loaded
        assert settled["frozen_objects"] >= before["tracked_objects"] * 0.9, kind
        assert settled["tracked_objects"] < before["tracked_objects"] // 10, kind
        assert settled["full_collection_ms"] <= before["full_collection_ms"], kind
    assert f"| api | {report['processes']['api']['before']['tracked_objects']:,} |" in result.stdout
    assert f"report written to {output}" in result.stdout


def test_the_heap_figures_in_the_docs_are_the_committed_report():
    from bench.heap import table

    report = json.loads((ROOT / "docs" / "bench" / "heap.json").read_text())
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    missing = [line for line in table(report) if line not in docs]
    assert not missing, "regenerate with: python -m bench.heap --output docs/bench/heap.json\n" + "\n".join(missing)
