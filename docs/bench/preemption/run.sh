#!/bin/bash
# Who takes the API's core: an open loop at RATE deliveries/s for 60 s, `perf sched record` on the whole machine
# for 30 s of it, and `python -m bench.preemption` on the API's event loop thread. MODE sets the scheduling once
# the open loop begins: as-started; nice (the Temporal dev server at +5 on every thread); batch (it in
# SCHED_BATCH); hybrid (the API on CPU 0, Postgres on CPU 1, Temporal, the worker and the simulator in SCHED_IDLE).
# Writes LABEL.json (the bench's report) and LABEL.txt (the summary) here. Needs perf and the right to trace.
#   docs/bench/preemption/run.sh LABEL RATE as-started|nice|batch|hybrid
set -euo pipefail
label=$1 rate=$2 mode=$3
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/deliveryctl bench --rate "$rate" --run-seconds 60 --output "$here/$label.json" > "$work/bench.log" 2>&1 &
bench=$!
until grep -q "open loop 1/" "$work/bench.log"; do sleep 0.5; kill -0 $bench; done
temporal=$(pgrep -f "temporal server start-dev")
case "$mode" in
  nice) for task in /proc/$temporal/task/*; do renice -n 5 -p "$(basename "$task")" > /dev/null; done ;;
  batch) chrt --batch --all-tasks --pid 0 "$temporal" ;;
  hybrid)
    for pid in $(pgrep -f "uvicorn api.app"); do taskset -a -p -c 0 "$pid" > /dev/null; done
    for pid in $(pgrep -x postgres); do taskset -a -p -c 1 "$pid" > /dev/null; done
    for pid in $temporal $(pgrep -f "worker.py") $(pgrep -f -- "-m simulator"); do
      chrt --idle --all-tasks --pid 0 "$pid"
    done ;;
  as-started) ;;
  *) echo "MODE must be as-started, nice, batch or hybrid" >&2; kill $bench; exit 2 ;;
esac
sleep 5
api=$(pgrep -f "uvicorn api.app")
labels=(--label "$temporal=temporal dev server" --label "$bench=bench (load and webhook receiver)")
for pid in $(pgrep -x postgres); do labels+=(--label "$pid=postgres"); done
for pid in $(pgrep -f "worker.py --queue"); do labels+=(--label "$pid=worker"); done
for pid in $(pgrep -f -- "-m simulator"); do labels+=(--label "$pid=simulator"); done
perf sched record -o "$work/sched.data" -- sleep 30 > "$work/perf.log" 2>&1
wait $bench
perf sched timehist --state -i "$work/sched.data" > "$work/timehist.txt" 2> /dev/null
{
  echo "\$ docs/bench/preemption/run.sh $label $rate $mode   # commit $(git rev-parse --short HEAD)"
  .venv/bin/python -m bench.preemption "$work/timehist.txt" --pid "$api" "${labels[@]}"
} > "$here/$label.txt"
cat "$here/$label.txt"
