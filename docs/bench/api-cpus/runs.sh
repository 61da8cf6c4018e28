#!/bin/bash
# The API on a CPU of its own against every process anywhere, in turn, twice: each run measures the maximum
# throughput of its layout with the closed loop, then creates at half of it in the open loop for 120 s.
# Writes shared-N.json (DELIVERY_API_CPUS unset) and api-cpu-0-N.json (DELIVERY_API_CPUS=0) here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
for n in 1 2; do
  env -u DELIVERY_API_CPUS .venv/bin/deliveryctl bench --rate-fractions 0.5 --run-seconds 120 \
    --output "$here/shared-$n.json"
  DELIVERY_API_CPUS=0 .venv/bin/deliveryctl bench --rate-fractions 0.5 --run-seconds 120 \
    --output "$here/api-cpu-0-$n.json"
done
