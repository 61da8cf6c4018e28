"""The JSON reports of the bench's one-shot tools (`python -m bench.heap`, `python -m bench.statement_cost`): a
report's table printed, the report kept with `--output`, and the table of a report written before."""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path


def report_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The arguments every such tool takes: the report to print instead of measuring, and where to keep a new one."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    parser.add_argument("report", nargs="?", type=Path, help="print the table of this report instead of measuring")
    parser.add_argument("--output", type=Path, help="write the JSON report here")
    return parser


def print_saved(tool: str, path: Path, render: Callable[[dict], list[str]]) -> int:
    """Print the lines `render` makes of the report at `path`; 2, with the reason on stderr, if it cannot."""
    try:
        print("\n".join(render(json.loads(path.read_text()))))
    except (OSError, ValueError, KeyError) as exc:
        print(f"{tool}: cannot read the report {path}: {exc}", file=sys.stderr)
        return 2
    return 0


def print_and_keep(report: dict, lines: list[str], output: Path | None) -> int:
    """Print a new report's table and, with `output`, write the report there and say where."""
    print("\n".join(lines))
    if output:
        output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {output}")
    return 0
