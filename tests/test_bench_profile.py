"""`python -m bench.profile`: a py-spy raw profile summarised as each frame's share of the samples."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def summarise(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.profile", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_a_frame_counts_once_per_sample_and_greenlet_stacks_are_roots_of_their_own(tmp_path):
    raw = tmp_path / "worker.raw"
    raw.write_text(
        "main (w.py:1);run (a.py:10);send (cb.py:5);send (cb.py:7) 6\n"  # recursion: still 6 samples of `send`
        "main (w.py:1);run (a.py:10);record (st.py:3) 2\n"
        "Session.execute (orm.py:90);compile (sql.py:4) 2\n"
    )
    result = summarise(str(raw))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "worker.raw: 10 samples, inclusive share per frame"
    assert lines[1:4] == [" 80.0%  main (w.py)", " 80.0%  run (a.py)", " 60.0%  send (cb.py)"]
    assert " 20.0%  record (st.py)" in lines and " 20.0%  compile (sql.py)" in lines

    roots = summarise(str(raw), "--roots", "--top", "1")
    assert roots.returncode == 0, roots.stderr
    assert roots.stdout.splitlines() == ["worker.raw: 10 samples, outermost frames", " 80.0%  main (w.py)"]


def test_a_missing_profile_is_named_on_stderr_with_exit_status_2(tmp_path):
    result = summarise(str(tmp_path / "absent.raw"))
    assert result.returncode == 2 and result.stdout == ""
    assert "no such profile" in result.stderr and "absent.raw" in result.stderr
