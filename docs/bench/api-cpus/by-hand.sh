#!/bin/bash
# The API on CPU 0 with the background allowed there at the lowest priority: the layout set by hand once the
# bench's stack is warm (before the maximum is measured). The API on CPU 0, Postgres on CPU 1, the Temporal dev
# server, the worker and the simulator in SCHED_IDLE on either CPU (they run when neither the API nor Postgres
# wants the CPU). Then the same open loop as runs.sh. Writes LABEL.json here.
#   docs/bench/api-cpus/by-hand.sh LABEL
set -euo pipefail
label=$1
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/deliveryctl bench --rate-fractions 0.5 --run-seconds 120 --output "$here/$label.json" > "$work/bench.log" 2>&1 &
bench=$!
until grep -q "idle for 5s" "$work/bench.log"; do sleep 0.2; kill -0 $bench; done
for pid in $(pgrep -f "uvicorn api.app"); do taskset -a -p -c 0 "$pid" > /dev/null; done
for pid in $(pgrep -x postgres); do taskset -a -p -c 1 "$pid" > /dev/null; done
for pid in $(pgrep -f "temporal server start-dev") $(pgrep -f "worker.py") $(pgrep -f -- "-m simulator"); do
  chrt --idle --all-tasks --pid 0 "$pid"
done
wait $bench
.venv/bin/python -m bench.runner "$here/$label.json"
