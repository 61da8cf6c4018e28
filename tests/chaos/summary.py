"""The chaos suite's report as docs/reliability.md quotes it: `python tests/chaos/summary.py REPORT`.

The suite writes its figures to `.data-chaos/report.json` when it ends; a copy of a run's report is committed as
`docs/chaos-report.json`, and `tests/test_reliability_docs.py` checks that the docs quote it through this.
"""

import json
import sys
from pathlib import Path

OUTCOMES = (
    ("deliveries accepted", "deliveries_accepted"),
    ("deliveries lost", "deliveries_lost"),
    ("final statuses", "final_statuses"),
    ("cancelled by partners", "cancelled_by_partners"),
    ("duplicate workflows", "duplicate_workflows"),
    ("duplicate rows", "duplicate_rows"),
    ("row problems", "row_problems"),
    ("histories checked", "histories_checked"),
    ("history events checked", "history_events_checked"),
    ("callbacks checked", "callbacks_checked"),
    ("ETA updates among them", "eta_updates"),
    ("duplicate callback events", "duplicate_callback_events"),
    ("callbacks", "callbacks"),
    ("API 5xx other than 503", "api_5xx_other_than_503"),
    ("API answers to partners", "api_answers_to_partners"),
    ("robot events", "robot_events"),
    ("drain after the last fault, s", "drain_seconds"),
    ("whole module, s", "duration_seconds"),
)


def _value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {_value(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value)
    return str(value)


def summary(report: dict) -> list[str]:
    """One line per fault injected, then one per outcome."""
    lines = [f"{report['faults_injected']} faults, {report['partners']} partners, {report['robots']} robots, "
             f"at least {report['min_in_flight_at_a_fault']} deliveries in flight at each fault:"]
    for fault in report["faults"]:
        details = {key: value for key, value in fault.items() if key not in ("scenario", "in_flight", "at_seconds")}
        lines.append(f"  at {fault['at_seconds']} s, {fault['in_flight']} in flight: {fault['scenario']}"
                     + (f" ({_value(details)})" if details else ""))
    lines.append("outcomes:")
    lines += [f"  {label}: {_value(report[key])}" for label, key in OUTCOMES if key in report]
    return lines


if __name__ == "__main__":
    print("\n".join(summary(json.loads(Path(sys.argv[1]).read_text()))))
