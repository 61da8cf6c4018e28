#!/bin/bash
# Row 23's runs, alternating the commit before (ef54c8e) and the change (368bc31): two quick closed-loop runs of
# each (before-N.json, after-N.json), then two open loops of each at 1 delivery/s for 45 s (open-before-N.json,
# open-after-N.json). Each commit runs from a clone of its own, with this checkout's .venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for commit in ef54c8e 368bc31; do
  git clone -q "$repo" "$work/$commit" && git -C "$work/$commit" checkout -q "$commit"
done
run() {  # commit, report name, bench arguments
  local commit=$1 name=$2
  shift 2
  (cd "$work/$commit" && PYTHONPATH="$work/$commit" "$repo/.venv/bin/python" -c \
    "import sys; from cli.main import main; sys.argv[0] = 'deliveryctl'; main()" bench "$@" \
    --output "$here/$name.json" > "$work/$name.log" 2>&1)
}
for n in 1 2; do
  run ef54c8e "before-$n" --quick
  run 368bc31 "after-$n" --quick
done
for n in 1 2; do
  run ef54c8e "open-before-$n" --rate 1 --run-seconds 45
  run 368bc31 "open-after-$n" --rate 1 --run-seconds 45
done
