#!/bin/bash
# by-hand.json: the same open loop with the worker and the simulator reniced by hand (their main threads) once the run began.
cd /work/main
.venv/bin/deliveryctl bench --rate 0.54 --run-seconds 180 --output /tmp/exp-nice.json > /tmp/exp-nice.log 2>&1 &
b=$!
until grep -q "open loop" /tmp/exp-nice.log; do sleep 0.5; kill -0 $b || exit 1; done
for p in $(ps -eo pid,args | grep -E "worker.py|simulator|python -m worker" | grep -v grep | awk '{print $1}'); do renice -n 5 -p $p; done
ps -eo pid,ni,args | grep -E "python|temporal|postgres" | grep -v grep | cut -c1-150 > /tmp/exp-nice-ps.txt
wait $b
