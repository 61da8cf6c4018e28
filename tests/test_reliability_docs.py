"""docs/reliability.md quotes the committed chaos report through `tests/chaos/summary.py`, never by hand."""

import json
from pathlib import Path

from tests.chaos.summary import summary

ROOT = Path(__file__).resolve().parents[1]


def test_the_chaos_figures_in_the_docs_are_the_committed_report():
    report = json.loads((ROOT / "docs" / "chaos-report.json").read_text())
    docs = (ROOT / "docs" / "reliability.md").read_text()
    missing = [line for line in summary(report) if line.strip() not in docs]
    assert not missing, "regenerate with: python tests/chaos/summary.py docs/chaos-report.json\n" + "\n".join(missing)
    assert report["deliveries_lost"] == 0 and report["api_5xx_other_than_503"] == 0
