#!/bin/bash
# Four open-loop runs at 1.01 deliveries/s (the 0.5 rate of the default open loop at 8809e63), back to back:
# A and C with the worker, the Temporal dev server and the simulator reniced to 10 once the open loop starts,
# B and D as `up` starts them. Writes A..D.json and .log beside this script (the runs kept here were written to
# /tmp/exp and copied unchanged, as each report's `command` says).
set -u
cd "$(dirname "$0")/../../.."
out=docs/bench/post-tail

open_loop() {
  deliveryctl bench --rate 1.01 --run-seconds 120 --output "$out/$1.json" > "$out/$1.log" 2>&1
}

reniced() {
  open_loop "$1" &
  until grep -q "open loop 1/1" "$out/$1.log" 2>/dev/null; do sleep 1; done
  for pid in $(pgrep -f "worker.py|temporal server|-m simulator"); do renice -n 10 -p "$pid" > /dev/null; done
  wait
}

reniced A
open_loop B
reniced C
open_loop D
