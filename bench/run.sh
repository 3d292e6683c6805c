#!/usr/bin/env bash
# Runs every benchmark built in BUILD/bench (default: build). Each one prints
# its figures and the command to rerun it. Used by `make bench`.
set -euo pipefail
build="${1:-build}"
shopt -s nullglob
ran=0
for b in "$build"/bench/bench_*; do
  [[ -x "$b" && -f "$b" ]] || continue
  echo "== $b"
  "$b"
  ran=1
done
if [[ $ran == 0 ]]; then
  echo "no benchmarks in $build/bench (configure with -DGOSSYNC_BENCH=ON)" >&2
  exit 1
fi
