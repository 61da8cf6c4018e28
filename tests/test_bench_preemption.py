"""`python -m bench.preemption`: a thread's preemptions and sleeps from `perf sched timehist --state`, run as its
user runs it, on a listing whose answer is known."""

import subprocess
import sys
from pathlib import Path

from bench.preemption import summary, switches

ROOT = Path(__file__).resolve().parents[1]

# The API's event loop is thread 10: preempted by the Temporal server (20) and then by its own thread 11; asleep
# in between. Thread 30 (Postgres) runs on the other CPU all along and never takes the API's core.
LISTING = """\
           time    cpu  task name                       wait time  sch delay   run time  state
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------  -----
    100.000000 [0000]  python[10]                          0.000      0.000      1.000      R
    100.001000 [0001]  postgres[30]                        0.000      0.000      5.000      S
    100.002000 [0000]  temporal[20]                        0.000      0.000      2.000      S
    100.004000 [0000]  python[10]                          2.000      0.000      2.000      S
    100.020000 [0000]  python[10]                         14.000      0.500      2.000      R
    100.032000 [0000]  tokio-rt-worker[11/10]              0.000      0.000     12.000      S
    100.040000 [0000]  python[10]                         12.000      0.000      8.000      S
"""


def test_preemptions_sleeps_and_who_took_the_core():
    result = summary(switches(LISTING.splitlines()), 10, {20: "temporal dev server"})
    assert result["ran_seconds"] == 0.01, result  # 13 ms in all, in seconds
    assert result["after_preemption"] == {"count": 2, "total_seconds": 0.01, "p50_ms": 12.0, "p99_ms": 12.0,
                                          "max_ms": 12.0, "over_10ms": 1}
    assert result["after_wakeup"]["count"] == 1 and result["after_wakeup"]["max_ms"] == 0.5
    assert result["preempted_by"] == {"temporal dev server": 0.5, "its own other threads": 0.5}


def test_the_command_prints_the_tables(tmp_path):
    listing = tmp_path / "timehist.txt"
    listing.write_text(LISTING)
    result = subprocess.run([sys.executable, "-m", "bench.preemption", str(listing), "--pid", "10",
                             "--label", "20=temporal dev server"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "| preempted (could run on) | 2 | 0.01 | 12.00 / 12.00 / 12.0 | 1 |" in result.stdout, result.stdout
    assert "| temporal dev server | 50.0% |" in result.stdout, result.stdout
    assert result.stderr == ""
