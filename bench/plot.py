"""Throughput and p95 lifecycle latency against concurrency, ours and bare, from a bench report.

    deliveryctl bench --plot docs/images/bench.png           # plot as part of a run
    python -m bench.plot report.json docs/images/bench.png   # or re-plot a saved `--json` report

Needs matplotlib: pip install -e '.[bench]'.
"""

import json
import sys
from pathlib import Path


def plot(report: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install -e '.[bench]'") from None
    runs = sorted(report["runs"], key=lambda run: run["concurrency"])
    concurrency = [run["concurrency"] for run in runs]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    series = (("ours", "real stack", "tab:blue", "o"), ("bare", "bare baseline (no-op, same shape)", "tab:gray", "s"))
    for key, label, colour, marker in series:
        left.plot(concurrency, [run[key]["throughput_per_second"] for run in runs], marker=marker, color=colour,
                  label=label)
        right.plot(concurrency, [run[key]["latency_seconds"]["p95"] for run in runs], marker=marker, color=colour,
                   label=label)
    for run in runs:
        left.annotate(f"{run['ratio']['throughput']:.2f}x", (run["concurrency"], run["ours"]["throughput_per_second"]),
                      textcoords="offset points", xytext=(0, -14), ha="center", fontsize=8, color="tab:blue")
    left.set(title="Throughput (completed per second)", xlabel="concurrency (in flight)", ylabel="per second")
    right.set(title="p95 latency (start to delivered)", xlabel="concurrency (in flight)", ylabel="seconds")
    for axes, where in ((left, "center right"), (right, "upper left")):
        axes.set_xticks(concurrency)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc=where)
    machine = report.get("machine", {})
    shape = report.get("history", {})
    parameters = report["parameters"]
    budget = f" or {parameters['run_seconds']:g} s of creating" if parameters.get("run_seconds") else ""
    figure.suptitle(f"deliveryctl bench: up to {parameters['deliveries']} per run{budget}, closed loop; "
                    f"{machine.get('cores')} cores; {shape.get('activities')} activities + {shape.get('updates')} "
                    "updates per delivery", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    plot(json.loads(Path(argv[0]).read_text()), Path(argv[1]))
    print(f"wrote {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
