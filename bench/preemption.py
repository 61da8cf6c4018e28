"""Why one thread waits for a core: its switches out of the CPU from a `perf sched` recording, and who ran instead.

Reads the text `perf sched timehist --state -i FILE` prints for the whole machine (one line per switch: time, CPU,
task `comm[tid]` or `comm[tid/pid]`, wait time, scheduling delay, run time, state at the switch), and follows one
thread, the API's event loop (its process id is its main thread's id):

- a switch in state `R` was a preemption: the thread could have run on. What it waited before it ran again is the
  next line's wait time, and what took its core is the next line on the same CPU;
- any other state was the thread going to sleep (waiting for I/O); what it waited for a core once woken is the next
  line's scheduling delay.

`--label PID=NAME` names the processes (their threads are counted under the name); unnamed ones are counted by
their command.

    perf sched record -o sched.data -- sleep 30
    perf sched timehist --state -i sched.data > timehist.txt
    python -m bench.preemption timehist.txt --pid API_PID --label TEMPORAL_PID=temporal ...
"""

import argparse
import re
from collections import Counter
from dataclasses import dataclass

TASK = re.compile(r"^(?P<comm>.*)\[(?P<tid>\d+)(?:/(?P<pid>\d+))?\]$")


@dataclass(frozen=True)
class Switch:
    time: float
    cpu: int
    comm: str
    tid: int
    pid: int
    wait_ms: float
    delay_ms: float
    run_ms: float
    state: str


def switches(lines) -> list[Switch]:
    """The switches of a `timehist --state` listing, in its order (time); header and summary lines skipped."""
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 7 or not re.fullmatch(r"\d+\.\d+", fields[0]) or not fields[1].startswith("["):
            continue
        task = TASK.match(" ".join(fields[2:-4]))
        try:
            wait, delay, run = (float(value) for value in fields[-4:-1])
        except ValueError:
            continue
        if task is None:
            continue
        tid = int(task["tid"])
        found.append(Switch(float(fields[0]), int(fields[1].strip("[]")), task["comm"], tid,
                            int(task["pid"] or tid), wait, delay, run, fields[-1]))
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def summary(found: list[Switch], pid: int, labels: dict[int, str]) -> dict:
    """The thread's time on a core, its preemptions and sleeps with what it then waited, and who preempted it."""
    mine = [s for s in found if s.tid == pid]
    next_on_cpu: dict[int, Switch] = {}
    after: dict[Switch, Switch] = {}
    for switch in reversed(found):  # the next switch on the same CPU: who ran when this one stopped
        if switch.tid == pid and switch.cpu in next_on_cpu:
            after[switch] = next_on_cpu[switch.cpu]
        next_on_cpu[switch.cpu] = switch
    preempted, woken, by = [], [], Counter()
    for out, back in zip(mine, mine[1:]):
        if out.state == "R":
            preempted.append(back.wait_ms)
            taker = after.get(out)
            if taker is not None:
                name = labels.get(taker.pid, taker.comm)
                by["its own other threads" if taker.pid == pid else name] += 1
        else:
            woken.append(back.delay_ms)
    seconds = (found[-1].time - found[0].time) if found else 0.0

    def waits(values: list[float]) -> dict:
        return {"count": len(values), "total_seconds": round(sum(values) / 1000, 2),
                "p50_ms": round(percentile(values, 0.5), 3), "p99_ms": round(percentile(values, 0.99), 3),
                "max_ms": round(max(values, default=0.0), 3), "over_10ms": sum(v > 10 for v in values)}

    total = sum(by.values())
    return {"seconds": round(seconds, 1), "ran_seconds": round(sum(s.run_ms for s in mine) / 1000, 2),
            "after_preemption": waits(preempted), "after_wakeup": waits(woken),
            "preempted_by": {name: round(count / total, 3) for name, count in by.most_common()} if total else {}}


def lines_of(result: dict) -> list[str]:
    lines = [f"{result['seconds']} s recorded; the thread ran {result['ran_seconds']} s",
             "| switched out | times | waited for a core, s | p50 / p99 / max ms | over 10 ms |",
             "|---|---|---|---|---|"]
    for key, label in (("after_preemption", "preempted (could run on)"), ("after_wakeup", "asleep, then woken")):
        w = result[key]
        lines.append(f"| {label} | {w['count']} | {w['total_seconds']:.2f} | {w['p50_ms']:.2f} / {w['p99_ms']:.2f} / "
                     f"{w['max_ms']:.1f} | {w['over_10ms']} |")
    lines += ["", "| took its core when it was preempted | share |", "|---|---|"]
    lines += [f"| {name} | {100 * share:.1f}% |" for name, share in result["preempted_by"].items() if share >= 0.005]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.preemption", description=__doc__.split("\n\n")[0])
    parser.add_argument("timehist", help="`perf sched timehist --state` output for the whole machine")
    parser.add_argument("--pid", type=int, required=True, help="the process whose main thread to follow")
    parser.add_argument("--label", action="append", default=[], metavar="PID=NAME", help="name a process")
    args = parser.parse_args(argv)
    labels = {int(pid): name for pid, _, name in (label.partition("=") for label in args.label)}
    with open(args.timehist) as listing:
        result = summary(switches(listing), args.pid, labels)
    print("\n".join(lines_of(result)))


if __name__ == "__main__":
    main()
