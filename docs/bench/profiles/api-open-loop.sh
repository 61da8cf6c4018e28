#!/bin/bash
# The API's profile during an open loop at 1 delivery/s: py-spy on the API process for 50 s of the run.
# Writes api-open-loop.raw and the bench's report api-open-loop.json here; `python -m bench.profile FILE` reads it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
.venv/bin/deliveryctl bench --rate 1.0 --run-seconds 60 --output "$here/api-open-loop.json" > "$here/api-open-loop.log" 2>&1 &
bench=$!
until grep -q "open loop 1/" "$here/api-open-loop.log"; do sleep 0.5; kill -0 $bench; done
sleep 3
api=$(ps -eo pid,args | grep -E "python.*uvicorn" | grep -v grep | awk '{print $1}' | head -1)
.venv/bin/py-spy record --format raw -r 250 -d 50 --pid "$api" -o "$here/api-open-loop.raw"
wait $bench
