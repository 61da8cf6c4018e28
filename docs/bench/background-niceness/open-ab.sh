#!/bin/bash
# open-nice{0,5}-{1,2}.json: the open loop at 0.54/s for 150 s at 6749d7d (a clone in /tmp/final7), every process at
# one priority (DELIVERY_BACKGROUND_NICENESS=0) and the background below the API (5), alternating, twice each.
cd /tmp/final7
run() { PYTHONPATH=/tmp/final7 /work/main/.venv/bin/python -c "import sys; from cli.main import main; sys.argv[0]='deliveryctl'; main()" "$@"; }
for round in 1 2; do
  for n in 0 5; do
    DELIVERY_BACKGROUND_NICENESS=$n run bench --rate 0.54 --run-seconds 150 --output /tmp/ab/open-nice$n-$round.json > /tmp/ab/open-nice$n-$round.log 2>&1; echo "open nice $n round $round $?"
  done
done
