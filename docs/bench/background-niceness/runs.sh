#!/bin/bash
# before.json (one API process) and two-api-processes.json: the open loop at 0.54/s for 180 s at 60e34f2, one after the other.
cd /work/main
for n in 1 2; do
  DELIVERY_API_PROCESSES=$n .venv/bin/deliveryctl bench --rate 0.54 --run-seconds 180 --output /tmp/exp-api$n.json > /tmp/exp-api$n.log 2>&1
done
