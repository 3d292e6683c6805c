#!/bin/bash
# Checks systemd/gossync.service:
#   1. `systemd-analyze verify` prints nothing and exits 0, on a copy of the
#      unit whose ExecStart/ExecStartPre point at the built gossyncd (verify
#      insists that the binaries exist) and with the man pages of
#      Documentation= on MANPATH;
#   2. `systemd-analyze security --offline=true` rates the unit itself at an
#      exposure of 2.0 or lower.
# Skips (exit 0) only when systemd-analyze is not installed at all.
#
# usage: tests/packaging/systemd_check.sh [BUILD_DIR]   (default: build)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" 2>/dev/null && pwd) || { echo "FAIL: no build directory ${1:-$root/build}" >&2; exit 1; }
unit=$root/systemd/gossync.service
max_exposure=2.0

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (apt-get install systemd)"
  exit 0
fi

gossyncd=$build/agent/daemon/gossyncd
if [ ! -x "$gossyncd" ]; then
  echo "FAIL: $gossyncd is missing; build it first (cmake --build $build --target gossyncd)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# --- 1. verify -----------------------------------------------------------
# Every use of /usr/bin/gossyncd now names the built binary; nothing else
# in the unit changes.
sed "s#/usr/bin/gossyncd#$gossyncd#g" "$unit" >"$tmp/gossync.service"
if grep -q /usr/bin/ "$tmp/gossync.service"; then
  echo "FAIL: the unit names a /usr/bin path this check does not map:" >&2
  grep -n /usr/bin/ "$tmp/gossync.service" >&2
  fail=1
fi
mkdir -p "$tmp/man/man1" "$tmp/man/man8"
cp "$root/docs/man/gossyncd.8" "$tmp/man/man8/"
cp "$root/docs/man/gossync.1" "$tmp/man/man1/"

echo "== systemd-analyze verify systemd/gossync.service (ExecStart -> $gossyncd)"
set +e
out=$(cd "$tmp" && MANPATH="$tmp/man" systemd-analyze verify --man=yes "$tmp/gossync.service" 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify (exit $rc):" >&2
  echo "$out" >&2
  fail=1
else
  echo "ok: verify is clean"
fi

# --- 2. security -----------------------------------------------------------
echo "== systemd-analyze security --offline=true systemd/gossync.service"
set +e
out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)
rc=$?
set -e
line=$(grep 'Overall exposure level' <<<"$out" || true)
exposure=$(sed -n 's/.*: \([0-9][0-9]*\.[0-9]\).*/\1/p' <<<"$line")
if [ $rc -ne 0 ] || [ -z "$exposure" ]; then
  echo "FAIL: systemd-analyze security (exit $rc):" >&2
  echo "$out" >&2
  fail=1
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
  echo "FAIL: exposure $exposure is above $max_exposure; what costs:" >&2
  grep '✗' <<<"$out" >&2 || true
  fail=1
else
  echo "ok: exposure $exposure (at most $max_exposure)"
  grep '✗' <<<"$out" | sed 's/^/  still open: /' || true
fi

if [ $fail -ne 0 ]; then
  echo "systemd_check: FAILED" >&2
  exit 1
fi
echo "systemd_check: passed"
