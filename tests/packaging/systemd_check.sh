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

# --- 3. the agent inside the unit's filter, speaking the notify protocol ----
# Runs the built gossyncd under strace, with NOTIFY_SOCKET and WATCHDOG_USEC
# as systemd sets them, through start, first scan, a change, SIGHUP and
# SIGTERM. Every system call it makes must be allowed by the unit's
# SystemCallFilter= lines, and it must send EXTEND_TIMEOUT_USEC=, READY=1,
# STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1, and exit 0.
echo "== gossyncd under strace: system calls against SystemCallFilter=, sd_notify messages"
gossync=$build/agent/cli/gossync
for tool in strace python3; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is not installed (make deps)" >&2; exit 1; }
done
[ -x "$gossync" ] || { echo "FAIL: $gossync is missing; build it first" >&2; exit 1; }

run=$tmp/run
mkdir -p "$run/data/sub" "$run/state" "$run/etc"
echo hello >"$run/data/a.txt"
echo world >"$run/data/sub/b.txt"
"$gossync" keygen --out "$run/etc/gossip.keys" >/dev/null
"$gossync" ca init --dir "$run/etc" >/dev/null
"$gossync" ca issue alpha --dir "$run/etc" >/dev/null
# Free ports (the agent advertises its listen address, so not port 0).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
gossip_port=$(free_port)
repair_port=$(free_port)
metrics_port=$(free_port)
cat >"$run/gossync.toml" <<TOML
node = "alpha"
data_dir = "$run/data"
state_dir = "$run/state"
admin_socket = "$run/admin.sock"
metrics_listen = "127.0.0.1:$metrics_port"
[gossip]
listen = "127.0.0.1:$gossip_port"
keyring = "$run/etc/gossip.keys"
[repair]
listen = "127.0.0.1:$repair_port"
cert = "$run/etc/alpha.crt"
key = "$run/etc/alpha.key"
ca = "$run/etc/ca.crt"
TOML

# A stand-in for systemd's notify socket: one line per datagram.
python3 - "$run/notify.sock" "$run/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        msg = s.recv(4096).decode(errors="replace")
        for line in msg.splitlines():
            log.write(line + "\n")
PY
listener=$!
cleanup_run() {
  [ -n "${strace_pid:-}" ] && kill "$strace_pid" 2>/dev/null || true
  kill "$listener" 2>/dev/null || true
}
trap 'cleanup_run; rm -rf "$tmp"' EXIT
wait_for() {  # wait_for SECONDS COMMAND...: poll a condition with a deadline
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}
wait_for 10 test -S "$run/notify.sock" || { echo "FAIL: notify listener did not start" >&2; exit 1; }
notified() { grep -q "^$1" "$run/notify.log" 2>/dev/null; }
count() { grep -c "^$1" "$run/notify.log" 2>/dev/null || true; }

# As root, run it as user nobody, as the unit runs it as gossync: some code
# behaves differently for root (SQLite fchown()s its journals to the
# database's owner, a call the filter forbids).
as_user=()
if [ "$(id -u)" = 0 ]; then
  as_user=(-u nobody)
  chmod 0755 "$tmp"
  chown -R nobody: "$run"
  chmod 0666 "$run/notify.sock"
fi
NOTIFY_SOCKET=$run/notify.sock WATCHDOG_USEC=1000000 \
  strace "${as_user[@]}" -f -qq -e signal=none -o "$run/trace" \
  "$gossyncd" --config "$run/gossync.toml" 2>"$run/gossyncd.log" &
strace_pid=$!
step() { if "$@"; then return 0; fi; echo "FAIL: $*" >&2; fail=1; return 1; }
if step wait_for 60 notified READY=1; then
  echo "ok: READY=1 after the first scan"
  step notified EXTEND_TIMEOUT_USEC= && echo "ok: EXTEND_TIMEOUT_USEC= while starting"
  entries() { "$gossync" --socket "$run/admin.sock" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])'; }
  before=$(entries)
  echo new >"$run/data/sub/c.txt"
  [ "$(id -u)" = 0 ] && chown nobody: "$run/data/sub/c.txt"
  grows() { [ "$(entries)" -gt "$before" ]; }
  step wait_for 20 grows && echo "ok: a new file shows in gossync status"
  step wait_for 10 notified WATCHDOG=1 && echo "ok: WATCHDOG=1 pings"
  scrape() {
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
      "http://127.0.0.1:$metrics_port/metrics"
  }
  step grep -q '^gossync_ready 1$' <(scrape) && echo "ok: metrics_listen serves /metrics"
  step wait_for 10 notified STATUS= && echo "ok: STATUS= $(grep '^STATUS=' "$run/notify.log" | tail -1 | cut -c8-)"
  kill -HUP "$(pgrep -P $strace_pid)"
  readies_after_reload() { [ "$(count READY=1)" -ge 2 ]; }
  step wait_for 10 notified RELOADING=1 && step wait_for 10 readies_after_reload \
    && echo "ok: SIGHUP: RELOADING=1, then READY=1"
fi
kill -TERM "$(pgrep -P $strace_pid)" 2>/dev/null || true
set +e
wait $strace_pid
rc=$?
set -e
strace_pid=
if [ $rc -eq 0 ] && notified STOPPING=1; then
  echo "ok: SIGTERM: STOPPING=1, exit 0"
else
  echo "FAIL: gossyncd exited $rc after SIGTERM (STOPPING=1 sent: $(count STOPPING=1)); its log:" >&2
  tail -20 "$run/gossyncd.log" >&2
  fail=1
fi

# The unit's filter: SystemCallFilter= lines, "~" lines deny, groups expanded.
expand() {  # expand @group: its system calls, nested groups resolved
  systemd-analyze syscall-filter --no-pager "$1" | tail -n +2 | sed 's/#.*//; s/^ *//' |
    while read -r name; do
      case $name in "") ;; @*) expand "$name" ;; *) echo "$name" ;; esac
    done
}
: >"$tmp/allow"; : >"$tmp/deny"
while IFS= read -r value; do
  list=allow
  case $value in "~"*) list=deny; value=${value#\~} ;; esac
  for item in $value; do
    case $item in @*) expand "$item" ;; *) echo "$item" ;; esac >>"$tmp/$list"
  done
done < <(sed -n 's/^SystemCallFilter=//p' "$unit")
sort -u -o "$tmp/allow" "$tmp/allow"
sort -u -o "$tmp/deny" "$tmp/deny"
# System calls in the trace: "PID name(" and "PID <... name resumed>".
sed -n -E 's/^[0-9]+ +([a-z_0-9]+)\(.*/\1/p; s/^[0-9]+ +<\.\.\. ([a-z_0-9]+) resumed>.*/\1/p' \
  "$run/trace" | sort -u >"$tmp/used"
blocked=$(comm -23 "$tmp/used" "$tmp/allow"; comm -12 "$tmp/used" "$tmp/deny")
echo "the agent made $(wc -l <"$tmp/used") distinct system calls: $(tr '\n' ' ' <"$tmp/used")"
if [ "$(wc -l <"$tmp/used")" -lt 20 ]; then
  echo "FAIL: too few system calls traced; is strace working?" >&2
  fail=1
elif [ -n "$blocked" ]; then
  echo "FAIL: the unit's SystemCallFilter= blocks: $(sort -u <<<"$blocked" | tr '\n' ' ')" >&2
  fail=1
else
  echo "ok: every one is allowed by the unit's SystemCallFilter="
fi

# Socket families against RestrictAddressFamilies=.
families=$(sed -n -E 's/^[0-9]+ +socket\((AF_[A-Z0-9]+),.*/\1/p' "$run/trace" | sort -u)
allowed_families=$(sed -n 's/^RestrictAddressFamilies=//p' "$unit")
outside=$(for f in $families; do grep -qw "$f" <<<"$allowed_families" || echo "$f"; done)
if [ -n "$outside" ]; then
  echo "FAIL: RestrictAddressFamilies=$allowed_families refuses $(echo $outside)" >&2
  fail=1
else
  echo "ok: socket families $(echo $families) are in RestrictAddressFamilies="
fi

if [ $fail -ne 0 ]; then
  echo "systemd_check: FAILED" >&2
  exit 1
fi
echo "systemd_check: passed"
