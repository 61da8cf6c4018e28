"""`deliveryctl bench` end to end, tiny: the real stack as a subprocess, a few deliveries, the bare baseline.

Checks the report a user gets from `--json`: positive throughput for ours and bare and their ratio,
latency percentiles in order, the shape counted from a real delivery's history (activities per task queue,
updates), signed webhooks all verified, and nothing left running or on disk afterwards.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ordered(percentiles: dict) -> bool:
    return percentiles["p50"] is not None and percentiles["p50"] <= percentiles["p95"] <= percentiles["p99"]


def processes_naming(data_dir: str) -> list[str]:
    """Processes whose command line or environment still names the bench's data dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if data_dir in cmdline or f"DELIVERY_DATA_DIR={data_dir}".encode() in environ:
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def test_bench_measures_ours_and_bare_from_a_real_history():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "bench", "--deliveries", "5", "--concurrency", "5",
         "--warmup", "0", "--run-seconds", "0", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    report = json.loads(result.stdout)
    progress = result.stderr
    assert "[bench] stack up at" in progress and "[bench] run 1/1: concurrency 5" in progress, progress
    assert "stack stopped (deliveryctl up exited 0)" in progress, progress

    # The shape comes from a real delivered workflow's history, not from a constant.
    shape = report["history"]
    assert shape["workflow_id"].startswith("delivery:")
    per_queue = shape["activities_per_queue"]
    for queue in ("dispatch", "operations", "deliveries", "partner-callbacks"):
        assert per_queue.get(queue, 0) > 0, per_queue
    assert shape["activities"] == sum(per_queue.values())
    assert shape["updates"] > 0
    assert shape["steps"].count("@update") == shape["updates"]

    [run] = report["runs"]
    ours, bare, ratio = run["ours"], run["bare"], run["ratio"]
    assert run["concurrency"] == 5
    assert ours["delivered"] == ours["deliveries"] == 5, ours["outcomes"]
    assert bare["completed"] == bare["workflows"] == 5, bare["outcomes"]
    assert ours["throughput_per_second"] > 0 and bare["throughput_per_second"] > 0
    assert ratio["throughput"] > 0
    assert abs(ratio["throughput"] - ours["throughput_per_second"] / bare["throughput_per_second"]) < 0.01
    assert ordered(ours["latency_seconds"]) and ordered(bare["latency_seconds"]), (ours, bare)
    assert ordered(ours["api_post_seconds"])

    # The codec's cost is measured on the same delivery's payloads, which Temporal holds encrypted.
    codec = report["codec"]
    assert codec["payloads"] > shape["activities"] and codec["bytes"] > 0 and codec["cpu_ms_per_delivery"] > 0
    assert "payload codec:" in progress

    # Resources were sampled for the processes under test.
    for group in ("workers", "api", "temporal"):
        assert ours["resources"][group]["cpu_seconds"] > 0, ours["resources"]
        assert ours["resources"][group]["peak_rss_mb"] > 0, ours["resources"]
    assert bare["resources"]["bare workers"]["cpu_seconds"] > 0, bare["resources"]

    # What Temporal served meanwhile, read from its own counters: one start per workflow, for bare exactly the
    # activities its script plays, for ours most of them (a delivery's last callbacks may finish after the run).
    temporal_ours, temporal_bare = ours["temporal_requests_per_delivery"], bare["temporal_requests_per_workflow"]
    assert temporal_ours["service_requests frontend StartWorkflowExecution"] >= 1, temporal_ours
    assert temporal_bare["service_requests frontend StartWorkflowExecution"] == 1, temporal_bare
    assert temporal_bare["service_requests frontend RespondActivityTaskCompleted"] == shape["activities"]
    assert temporal_ours["service_requests frontend RespondActivityTaskCompleted"] > shape["activities"] / 2

    # Every service's database ran transactions for the run's deliveries (each writes to all seven).
    transactions = ours["transactions_per_delivery"]
    services = [service for service in transactions if service != "total"]
    assert len(services) == 7 and all(transactions[service] > 0 for service in services), transactions
    assert abs(transactions["total"] - sum(transactions[service] for service in services)) < 0.5
    assert f"database transactions per delivery: {transactions['total']:g} (" in progress

    # Every callback carried a valid signature; every delivery's `delivered` arrived.
    assert report["webhooks"]["bad_signatures"] == 0
    assert report["webhooks"]["statuses"]["delivered"] >= 5

    # The stack is gone: no process names the bench's data dir, which was removed.
    data_dir = report["stack"]["data_dir"]
    assert not Path(data_dir).exists()
    assert not processes_naming(data_dir)


def test_open_loop_reports_latency_per_rate_and_counts_the_partners_429s():
    """`--rate`: creates on a fixed schedule, POST and lifecycle percentiles per rate; a partner limit set on
    purpose answers some creates 429, which the report counts and which do not fail the bench."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}
    env |= {"DELIVERY_API_RATE_LIMIT_PER_SECOND": "1", "DELIVERY_API_RATE_LIMIT_BURST": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "bench", "--rate", "3", "--arrivals", "uniform", "--run-seconds", "5",
         "--warmup", "0", "--robots", "8", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    report = json.loads(result.stdout)
    assert report["parameters"]["mode"].startswith("open loop")
    assert "bare" not in json.dumps(report["open_loop"])  # no baseline in the open loop

    [run] = report["open_loop"]["runs"]
    assert run["rate_per_second"] == 3 and run["fraction_of_max"] is None
    assert 13 <= run["deliveries"] <= 15, run  # 3/s for 5 s, on schedule
    assert 2 <= run["offered_per_second"] <= 4, run
    assert run["rate_limited"] > 0 and run["delivered"] > 0, run["outcomes"]
    assert run["delivered"] + run["rate_limited"] == run["deliveries"], run["outcomes"]
    assert ordered(run["api_post_seconds"]) and ordered(run["latency_seconds"]), run
    assert run["api_post_seconds"]["p50"] < run["latency_seconds"]["p50"]
    assert run["late"] >= 0 and run["send_lag_seconds"]["p50"] is not None
    assert run["probes"]["temporal_start_workflow_seconds"]["p50"] > 0  # what a create waits on, timed meanwhile
    own, seen = run["api_own_post_seconds"], run["api_post_seconds"]  # the API's log against the bench's clock
    assert ordered(own) and 0 < own["p50"] <= seen["p50"] and own["max"] <= seen["max"], (own, seen)
    assert run["probes"]["postgres_round_trip_seconds"]["p50"] > 0
    assert run["resources"]["api"]["cpu_seconds"] > 0 and len(run["load_average"]) == 3
    # how long the API's event loop waited for a core: some, never more than the run lasted (schedstat's field)
    assert 0 <= run["resources"]["api"]["main_thread_wait_seconds"] <= run["duration_seconds"], run["resources"]
    assert sum(resource["main_thread_wait_seconds"] for resource in run["resources"].values()) > 0, run["resources"]
    assert f"{run['rate_limited']} answered 429" in result.stderr
    assert report["webhooks"]["bad_signatures"] == 0

    data_dir = report["stack"]["data_dir"]
    assert not Path(data_dir).exists()
    assert not processes_naming(data_dir)


def test_the_apis_own_time_for_creates_is_read_from_its_log_within_the_run(tmp_path):
    """Only the API's answered creates (200 or 201) logged between the run's start and end count, from every API
    process's log; other routes, refusals and creates outside the run do not."""
    from datetime import UTC, datetime

    from bench.open_loop import api_own_post_seconds

    def line(ts: str, route: str = "/v1/deliveries", method: str = "POST", status: int = 201, ms: float = 12.5):
        return json.dumps({"ts": f"2026-12-07T10:00:{ts}+00:00", "level": "INFO", "logger": "api.requests",
                           "message": f"{method} {route} {status}", "method": method, "route": route,
                           "status": status, "duration_ms": ms})

    (tmp_path / "api.log").write_text("\n".join([
        '{"ts": "2026-12-07T10:00:00.000+00:00", "message": "Started server process"}',
        line("01.000", ms=99.0),  # before the run
        line("05.000", ms=20.0), line("06.000", status=200, ms=30.0), line("07.000", status=429, ms=1.0),
        line("08.000", route="/v1/deliveries/{delivery_id}", method="GET", ms=5.0),
        line("30.000", ms=77.0),  # after it
    ]) + "\n")
    (tmp_path / "api-2.log").write_text(line("09.500", ms=40.0) + "\n")
    (tmp_path / "worker-all.log").write_text(line("09.000", ms=50.0) + "\n")
    since, until = datetime(2026, 12, 7, 10, 0, 2, tzinfo=UTC), datetime(2026, 12, 7, 10, 0, 20, tzinfo=UTC)
    assert sorted(api_own_post_seconds(tmp_path, since, until)) == [0.02, 0.03, 0.04]


def test_the_open_loop_figures_in_the_docs_are_the_committed_reports():
    """docs/benchmarks.md quotes the open-loop reports through the table the bench prints, never by hand."""
    from bench.runner import open_loop_table

    docs = set((ROOT / "docs" / "benchmarks.md").read_text().splitlines())  # whole lines, not parts of longer ones
    for name in ("bench-open-loop.json", "bench-open-loop-c8adb2a.json", "bench-open-loop-8809e63.json",
                 "bench-open-loop-78ba229.json", "bench-open-loop-fde1817.json", "bench-open-loop-bf276da.json",
                 "bench-open-loop-d0b7c20.json", "bench-open-loop-0bdd054.json", "bench-open-loop-ab9bf61.json",
                 "bench-open-loop-85ec790.json", "bench-open-loop-0db65f4.json", "bench-open-loop-5944cf0.json",
                 "bench-open-loop-6749d7d.json",
                 "bench/background-niceness/before.json", "bench/background-niceness/two-api-processes.json",
                 "bench/background-niceness/by-hand.json", "bench/background-niceness/after.json",
                 "bench/post-tail/A.json",
                 "bench/post-tail/B.json", "bench/post-tail/C.json", "bench/post-tail/D.json",
                 "bench-open-loop-ef54c8e.json", "bench/api-cpus/shared-1.json", "bench/api-cpus/api-cpu-0-1.json",
                 "bench/api-cpus/shared-2.json", "bench/api-cpus/api-cpu-0-2.json", "bench/api-cpus/hybrid-1.json"):
        report = json.loads((ROOT / "docs" / name).read_text())
        missing = [line for line in open_loop_table(report) if line not in docs]
        assert not missing, f"regenerate with: python -m bench.runner docs/{name}\n" + "\n".join(missing)


def test_the_closed_loop_figures_in_the_docs_are_the_committed_report():
    """docs/benchmarks.md quotes docs/benchmarks.json through the tables `python -m bench.runner` prints."""
    from bench.runner import closed_loop_table

    report = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    missing = [line for line in closed_loop_table(report) if line and line not in docs]
    assert not missing, "regenerate with: python -m bench.runner docs/benchmarks.json\n" + "\n".join(missing)


@pytest.mark.parametrize("folder, names", [("start-after-answer", ("old-1", "new-1", "old-2", "new-2")),
                                           ("background-niceness", ("quick-nice0-1", "quick-nice5-1",
                                                                    "quick-nice0-2", "quick-nice5-2")),
                                           ("create-without-lookup", ("before-1", "after-1", "before-2", "after-2"))])
def test_each_compared_runs_rows_in_the_docs_are_its_committed_report(folder, names):
    """docs/benchmarks.md quotes each compared report's concurrency-10 rows as `python -m bench.runner` prints
    them, each line labelled with the report's name."""
    from bench.runner import closed_loop_table

    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    for name in names:
        report = json.loads((ROOT / "docs" / "bench" / folder / f"{name}.json").read_text())
        rows = [line for line in closed_loop_table(report) if line.startswith("| 10 |")]
        assert len(rows) >= 3 and all(f"{name}: {row}" in docs for row in rows), name


PREEMPTION_RUNS = ("as-started", "temporal-nice", "temporal-batch", "as-started-2", "hybrid")


@pytest.mark.parametrize("folder, names", [("background-niceness", ("open-nice0-1", "open-nice5-1", "open-nice0-2",
                                                                    "open-nice5-2")),
                                           ("preemption", PREEMPTION_RUNS),
                                           ("create-without-lookup", ("open-before-1", "open-after-1",
                                                                      "open-before-2", "open-after-2"))])
def test_each_compared_open_loops_row_in_the_docs_is_its_committed_report(folder, names):
    """docs/benchmarks.md quotes each compared open loop by its one row of the second table the bench prints."""
    from bench.runner import open_loop_table

    docs = set((ROOT / "docs" / "benchmarks.md").read_text().splitlines())
    for name in names:
        report = json.loads((ROOT / "docs" / "bench" / folder / f"{name}.json").read_text())
        second = "\n".join(open_loop_table(report)).split("\n\n")[1].splitlines()
        assert len(second) == 3 and second[2] in docs, name


def test_the_preemption_figures_in_the_docs_are_the_committed_summaries():
    """docs/benchmarks.md quotes what `bench.preemption` printed for each run (its rows labelled with the run), and
    the share table of the first run whole."""
    docs = set((ROOT / "docs" / "benchmarks.md").read_text().splitlines())
    for name in PREEMPTION_RUNS:
        printed = (ROOT / "docs" / "bench" / "preemption" / f"{name}.txt").read_text().splitlines()
        assert printed[0].startswith(f"$ docs/bench/preemption/run.sh {name} "), printed[0]
        rows = [line for line in printed if line.startswith(("| preempted", "| asleep"))]
        assert len(rows) == 2 and all(f"| {name} {row}" in docs for row in rows), name
        if name == PREEMPTION_RUNS[0]:
            shares = [line for line in printed if line.endswith("% |")]
            assert shares and all(line in docs for line in shares), shares


def test_the_repeated_runs_in_the_docs_are_the_committed_reports():
    """docs/benchmarks.md quotes every run of the same code through `python -m bench.runner`'s rows, and the one
    run kept only as its printed summary through that summary's lines."""
    from bench.runner import closed_loop_table

    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    for label, path in (("6d43201 single", "bench/layouts/single-6d43201.json"),
                        ("bf276da", "bench/repeat/bf276da.json"), ("a0f9fec", "bench/repeat/a0f9fec.json"),
                        ("fde1817", "bench/repeat/fde1817.json"), ("78ba229", "bench/repeat/78ba229.json"),
                        ("8809e63", "bench/repeat/8809e63.json"), ("c8adb2a", "bench/repeat/c8adb2a.json"),
                        ("ab9bf61", "bench/repeat/ab9bf61.json"), ("ab9bf61-2", "bench/repeat/ab9bf61-2.json"),
                        ("85ec790", "bench/repeat/85ec790.json"), ("0db65f4", "bench/repeat/0db65f4.json"),
                        ("6749d7d", "bench/repeat/6749d7d.json")):
        report = json.loads((ROOT / "docs" / path).read_text())
        throughput_and_cpu = "\n".join(closed_loop_table(report)).split("\n\n")[1:3]  # the first two tables
        rows = [line for table in throughput_and_cpu for line in table.splitlines()
                if line.startswith(("| 10 |", "| 25 |", "| 50 |"))]
        assert len(rows) == 6 and all(f"{label}: {row}" in docs for row in rows), label
    summary = (ROOT / "docs" / "bench" / "layouts" / "shared-6d43201.log").read_text().splitlines()
    rows = [line for line in summary if line.split()[1:2] in (["10"], ["25"], ["50"]) and len(line.split()) > 5]
    assert len(rows) == 3 and all(f"6d43201 shared: {row}" in docs for row in rows)


def test_the_in_flight_figures_in_the_docs_are_the_committed_reports():
    """docs/benchmarks.md quotes the in-flight reports through the summary `python -m bench.inflight` prints."""
    from bench.inflight import summary

    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    for name in ("bench-in-flight-before.json", "bench-in-flight-0bdd054.json", "bench-in-flight-4d1bad6.json",
                 "bench-in-flight-d14816b.json", "bench-in-flight-cache-100.json", "bench-in-flight.json",
                 "bench-in-flight-single.json", "bench-in-flight-f91e965.json", "bench-in-flight-f91e965-single.json",
                 "bench-in-flight-acf4cb5.json", "bench-in-flight-acf4cb5-arena.json",
                 "bench-in-flight-acf4cb5-single.json", "bench-in-flight-7836ca3.json",
                 "bench-in-flight-7836ca3-single.json", "bench-in-flight-bf276da.json",
                 "bench-in-flight-bf276da-shared.json", "bench-in-flight-cache-400.json",
                 "bench-in-flight-fde1817.json", "bench-in-flight-78ba229.json", "bench-in-flight-8809e63.json",
                 "bench-in-flight-c8adb2a.json", "bench-in-flight-ab9bf61.json", "bench-in-flight-85ec790.json",
                 "bench-in-flight-c6cf24e.json", "bench-in-flight-0db65f4.json", "bench-in-flight-6749d7d.json",
                 "bench-in-flight-5fda017.json"):
        report = json.loads((ROOT / "docs" / name).read_text())
        missing = [line for line in summary(report).splitlines() if line.strip() not in docs]
        assert not missing, f"regenerate with: python -m bench.inflight docs/{name}\n" + "\n".join(missing)
