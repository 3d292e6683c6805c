#!/bin/bash
# Runs every libFuzzer target for SECONDS each, starting from the committed
# seed corpus (tests/fuzz/corpus/<target>/) plus what earlier runs found
# (BUILD/fuzz/corpus/<target>/, not committed). Fails on the first crash,
# leak, timeout or sanitizer report; the reproducer is in
# BUILD/fuzz/artifacts/<target>/ (add it to the committed corpus once fixed).
#   tests/fuzz/run.sh BUILD SECONDS [TARGET...]
set -euo pipefail
build=${1:?usage: run.sh BUILD SECONDS [TARGET...]}
seconds=${2:?usage: run.sh BUILD SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in "$here"/corpus/*/; do targets+=("$(basename "$d")"); done
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  work="$build/fuzz/corpus/$t"
  art="$build/fuzz/artifacts/$t"
  mkdir -p "$work" "$art"
  log="$build/fuzz/$t.log"
  echo "== fuzz_$t: ${seconds}s (log: $log)"
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$art/" "$work" "$here/corpus/$t" >"$log" 2>&1; then
    echo "fuzz_$t FAILED; the last lines of $log:"
    tail -n 40 "$log"
    ls -l "$art"
    status=1
    break
  fi
  # One line: executions, speed, coverage.
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | awk '{print $2}')
  speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -o 'cov: [0-9]*' || true)
  echo "   ok: ${runs:-?} runs, ${speed:-?}/s, ${cov:-cov: ?}"
done
exit $status
