#!/usr/bin/env bash
# make demo: three gossync agents on 127.0.0.1 converge on changes made on one.
# Usage: tests/demo/demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
bin=$(cd "$build/agent" && pwd)
gossyncd=$bin/daemon/gossyncd
gossync=$bin/cli/gossync
demo=${GOSSYNC_DEMO_DIR:-/tmp/gossync-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$demo"
mkdir -p "$demo/secrets"
say "keys and certificates (gossync keygen, gossync ca init, gossync ca issue)"
"$gossync" keygen --out "$demo/secrets/gossip.keys"
"$gossync" ca init --dir "$demo/secrets" >/dev/null
nodes=(alpha beta gamma)
for i in 0 1 2; do
  n=${nodes[$i]}
  "$gossync" ca issue "$n" --dir "$demo/secrets" >/dev/null
  mkdir -p "$demo/$n/data" "$demo/$n/state"
  gport=$((27946 + 10 * i)); rport=$((gport + 1))
  cat >"$demo/$n/gossync.toml" <<TOML
node = "$n"
data_dir = "$demo/$n/data"
state_dir = "$demo/$n/state"
admin_socket = "$demo/$n/admin.sock"
seeds = ["127.0.0.1:27946"]
log_level = "info"

[gossip]
listen = "127.0.0.1:$gport"
keyring = "$demo/secrets/gossip.keys"
interval_ms = 500

[repair]
listen = "127.0.0.1:$rport"
cert = "$demo/secrets/$n.crt"
key = "$demo/secrets/$n.key"
ca = "$demo/secrets/ca.crt"
TOML
  echo "  $n: gossip 127.0.0.1:$gport, repair 127.0.0.1:$rport, data $demo/$n/data"
done

say "starting three agents"
for n in "${nodes[@]}"; do
  "$gossyncd" --config "$demo/$n/gossync.toml" 2>"$demo/$n/agent.log" &
  pids+=($!)
done
st() { "$gossync" --socket "$demo/$1/admin.sock" "${@:2}"; }
for n in "${nodes[@]}"; do
  for _ in $(seq 100); do st "$n" status >/dev/null 2>&1 && break; sleep 0.1; done
done
for _ in $(seq 100); do
  [ "$(st alpha peers --json | grep -c '"alive"')" = 2 ] && break; sleep 0.1
done
st alpha peers

tree() { (cd "$demo/$1/data" && find . -printf '%y %m %p %l\n' | sort && find . -type f -print0 | sort -z | xargs -0r sha256sum) 2>/dev/null; }
converge() {
  local start=$(date +%s%N)
  for _ in $(seq 600); do
    if [ "$(tree alpha)" = "$(tree beta)" ] && [ "$(tree alpha)" = "$(tree gamma)" ]; then
      echo "  converged: the three data dirs are identical," \
        "$(( ($(date +%s%N) - start) / 1000000 )) ms after the change"
      return 0
    fi
    sleep 0.1
  done
  echo "  NOT converged after 60 s; logs in $demo/*/agent.log" >&2
  return 1
}

say "alpha: 300 small files in 10 directories, a symlink, and one 50 MiB file"
for d in $(seq 10); do
  mkdir -p "$demo/alpha/data/docs/d$d"
  for f in $(seq 30); do echo "file $f of dir $d" >"$demo/alpha/data/docs/d$d/f$f.txt"; done
done
ln -s docs/d1/f1.txt "$demo/alpha/data/latest"
head -c 50M /dev/urandom >"$demo/alpha/data/big.bin"
converge

say "alpha: edit, rename, chmod and delete"
echo "edited on alpha" >>"$demo/alpha/data/docs/d1/f1.txt"
mv "$demo/alpha/data/docs/d2" "$demo/alpha/data/docs/renamed"
chmod 600 "$demo/alpha/data/docs/d3/f3.txt"
rm -r "$demo/alpha/data/docs/d4"
dd if=/dev/urandom of="$demo/alpha/data/big.bin" bs=1M count=1 seek=20 conv=notrunc status=none
converge

say "beta: a change on another node travels too"
echo "written on beta" >"$demo/beta/data/from-beta.txt"
converge

for n in "${nodes[@]}"; do
  say "gossync status ($n)"
  st "$n" status
done
say "done; data and logs are in $demo"
