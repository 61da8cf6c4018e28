"""`python -m bench.statement_cost`: what one statement costs its sender, through SQLAlchemy and on asyncpg."""

import json
import subprocess
import sys
from pathlib import Path

from bench.statement_cost import WAYS, saving_lines, table

ROOT = Path(__file__).resolve().parents[1]


def test_a_statement_through_a_checked_out_connection_costs_more_than_its_parts(tmp_path):
    output = tmp_path / "statement-cost.json"
    result = subprocess.run([sys.executable, "-m", "bench.statement_cost", "--statements", "300", "--rounds", "1",
                             "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(output.read_text())["client_cpu_us_per_statement"]
    assert list(figures) == list(WAYS)
    assert all(figure > 0 for figure in figures.values()), figures
    # A statement on a checked-out connection is the checkout and the statement; a held connection has neither.
    assert figures["reader"] > figures["checkout"], figures
    assert figures["reader"] > figures["asyncpg connection"], figures
    assert figures["session"] > figures["asyncpg connection"], figures
    assert f"| reader | {figures['reader']} |" in result.stdout
    assert f"report written to {output}" in result.stdout


def test_the_saving_is_the_runs_transactions_at_the_difference_per_statement():
    report = {"client_cpu_us_per_statement": {"reader": 600.0, "asyncpg pool": 100.0}}
    bench = {"runs": [{"concurrency": 10, "ours": {"transactions_per_delivery": {"total": 200.0},
                                                   "cpu_seconds_per_delivery": {"platform": 1.0}}},
                      {"concurrency": 25, "ours": {"cpu_seconds_per_delivery": {"platform": 1.0}}}]}
    assert saving_lines(report, bench) == [
        "C=10: 200 transactions per delivery × 500 µs = 0.100 CPU-s per delivery at least, of 1.000 across the "
        "servers (10%)"]


def test_a_bench_report_needs_a_statement_cost_report():
    result = subprocess.run([sys.executable, "-m", "bench.statement_cost", "--bench", "docs/benchmarks.json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--bench needs a statement-cost report" in result.stderr


def test_the_statement_costs_in_the_docs_are_the_committed_reports():
    report = json.loads((ROOT / "docs" / "bench" / "statement-cost.json").read_text())
    bench = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    missing = [line for line in [*table(report), *saving_lines(report, bench)] if line not in docs]
    assert not missing, ("regenerate with: python -m bench.statement_cost --output docs/bench/statement-cost.json; "
                         "python -m bench.statement_cost docs/bench/statement-cost.json --bench docs/benchmarks.json\n"
                         + "\n".join(missing))
