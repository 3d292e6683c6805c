#!/usr/bin/python3
"""gossync alone: the cost of finding K differing entries between two real
agents that hold N entries each (default 1,000,000), K = 1, 10, 100, 10000.

  bench/compare/million.py --build build [--entries 1000000] [--diffs 1,10,100,10000]

How: agent n0 indexes N small files alone; n1 starts from a copy (hard
links, so the same inodes and stats, and a copy of n0's index under n1's own
name and node id: as if n1 had synced everything from n0). For each K, with
n1 stopped, K files change on n0 (and n0 indexes them); then n1 starts and
one repair session reconciles them. Reported from the session's log line
(wire_in / wire_out: TLS records of the session; levels: the descent's
depth reached) and from iptables (every TCP byte on the repair ports, TLS
handshake included). Runs as root.
"""
import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meter  # noqa: E402
import tools  # noqa: E402


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("timed out: " + what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--diffs", default="1,10,100,10000")
    ap.add_argument("--work", default="/tmp/gossync-million")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results.jsonl"))
    a = ap.parse_args()
    n = a.entries
    per_dir = 1000
    src = os.path.join(a.work, f"src-{n}")
    if not os.path.exists(src + ".done"):
        shutil.rmtree(src, ignore_errors=True)
        log(f"writing {n} files")
        for i in range(n):
            d = os.path.join(src, f"d{i // per_dir:04d}")
            if i % per_dir == 0:
                os.makedirs(d)
            with open(os.path.join(d, f"f{i:07d}"), "w") as f:
                f.write(f"entry {i}\n")
        open(src + ".done", "w").close()
    work = os.path.join(a.work, "run")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    g = tools.Gossync(work, 2, 23660, os.path.abspath(a.build))
    os.rmdir(g.dirs[0])
    subprocess.run(["cp", "-al", src, g.dirs[0]], check=True)
    log("n0 indexing")
    t0 = time.monotonic()
    p0 = g._spawn(0, [g.gossyncd, "--config", os.path.join(work, "node0", "gossync.toml")])
    st = wait(lambda: (s := g.status(0)) and s.get("entries", 0) >= n and s, 3600, "n0 index")
    log(f"n0 indexed {st['entries']} entries in {time.monotonic() - t0:.1f} s")
    p0.terminate()
    p0.wait()
    g.procs = []
    # n1: the same files (hard links) and a copy of the index, renamed.
    os.rmdir(g.dirs[1])
    subprocess.run(["cp", "-al", g.dirs[0], g.dirs[1]], check=True)
    s1 = os.path.join(work, "node1", "state")
    shutil.rmtree(s1, ignore_errors=True)
    os.makedirs(s1)
    shutil.copy(os.path.join(work, "node0", "state", "index.db"), s1)
    db = sqlite3.connect(os.path.join(s1, "index.db"))
    db.execute("UPDATE meta SET value = 'n1' WHERE key = 'node_name'")
    db.execute("UPDATE meta SET value = ? WHERE key = 'node_id'",
               (random.Random(5).randrange(1 << 40, 1 << 62),))
    db.commit()
    db.close()
    wire = meter.Wire("GSBENCH_M")
    out = open(a.out, "a")
    try:
        rng = random.Random(11)

        def ready_count(i):
            with open(os.path.join(work, f"node{i}", "daemon.log"), errors="replace") as f:
                return sum(" agent ready " in line for line in f)
        ready0 = ready_count(0)
        for k in [int(x) for x in a.diffs.split(",")]:
            # n0 alone: change k files, wait until its root moved and settled.
            p0 = g._spawn(0, [g.gossyncd, "--config",
                              os.path.join(work, "node0", "gossync.toml")])
            wait(lambda: ready_count(0) > ready0, 1800, "n0 ready (first scan done)")
            ready0 += 1
            root_before = g.status(0)["root"]
            picks = rng.sample(range(n), k)
            for i in picks:
                path = os.path.join(g.dirs[0], f"d{i // per_dir:04d}", f"f{i:07d}")
                tmp = path + ".tmp"
                with open(tmp, "w") as f:
                    f.write(f"entry {i} changed {k}\n")
                os.rename(tmp, path)
            entries_before = g.status(0)["entries"]

            def settled():
                s = g.status(0)
                if s["root"] == root_before:
                    return False
                time.sleep(1.0)
                return g.status(0)["root"] == s["root"]
            wait(settled, 600, "n0 indexed the change")
            # Count only the session: zero the counters, then start n1.
            wire.watch([g.gport(0) + 1, g.gport(1) + 1])
            wire.zero()
            t0 = time.monotonic()
            p1 = g._spawn(1, [g.gossyncd, "--config",
                              os.path.join(work, "node1", "gossync.toml")])
            want = g.status(0)["root"]
            sessions = len(g.session_logs(1))
            wait(lambda: len(g.session_logs(1)) > sessions and g.status(1)["root"] == want,
                 1800, "n1 converged")
            secs = time.monotonic() - t0
            time.sleep(0.5)
            tcp = wire.read()
            lines = g.session_logs(1)
            m = dict(re.findall(r"(\w+)=(\S+)", lines[-1][lines[-1].index("session="):]))
            rec = {"tool": "gossync", "scenario": f"find-{k}-of-{n}", "nodes": 2, "run": 1,
                   "entries": n, "diffs": k, "secs_to_converge_incl_start": secs,
                   "session_ms": int(m["ms"]), "wire_in": int(m["wire_in"]),
                   "wire_out": int(m["wire_out"]), "levels": int(m["levels"]),
                   "content_bytes": int(m["bytes_in"]), "tcp_bytes_repair_ports": tcp,
                   "load": meter.load(), "time": time.time(), "log": lines[-1].strip()}
            out.write(json.dumps(rec) + "\n")
            out.flush()
            log(f"K={k}: session {m['ms']} ms, wire_in={m['wire_in']} wire_out={m['wire_out']} "
                f"levels={m['levels']} content={m['bytes_in']} tcp(all, with TLS handshake)={tcp}"
                f" load={meter.load():.1f}")
            g.stop()
    finally:
        g.stop()
        wire.close()


if __name__ == "__main__":
    main()
