#!/usr/bin/env python3
"""Traces paths through a chaos run kept with GOSSYNC_KEEP_TMP=1.

  trace.py KEPT_DIR [PATH ...]

For each path (default: the paths named in the run's problems.txt): the
workload's finished operations on it (history.jsonl), each agent's log lines
that name it, and each agent's final index rows for it and its conflict
copies, with version vectors written with node names (n1:16) and the dot.
"""

import json
import os
import re
import sqlite3
import sys


def decode_vv(blob):
    """store/vv_blob.cc: per pair a u64 node (big-endian) and a LEB128 counter."""
    out, i = [], 0
    while i < len(blob):
        node = int.from_bytes(blob[i:i + 8], "big")
        i += 8
        c = shift = 0
        while True:
            b = blob[i]
            i += 1
            c |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((node, c))
    return out


def nodes(root):
    return sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "agent.log")))


def node_names(root):
    """{node id: name} from each index's meta table."""
    names = {}
    for n in nodes(root):
        db = os.path.join(root, n, "state", "index.db")
        if not os.path.exists(db):
            continue
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        row = con.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()
        if row:
            names[row[0] & (2**64 - 1)] = n
        con.close()
    return names


def problem_paths(root):
    paths = []
    try:
        with open(os.path.join(root, "problems.txt")) as f:
            for line in f:
                m = re.match(r"\s*(?:came back|lost write|unknown content at): (\S+?)[ :]", line)
                if m and m.group(1) not in paths:
                    paths.append(m.group(1))
    except OSError:
        pass
    return paths


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    paths = sys.argv[2:] or problem_paths(root)
    names = node_names(root)

    def vv_str(pairs):
        return "{" + ", ".join("%s:%d" % (names.get(n, "%x" % n), c) for n, c in pairs) + "}"

    history = []
    try:
        with open(os.path.join(root, "history.jsonl")) as f:
            history = [json.loads(line) for line in f]
    except OSError:
        print("(no history.jsonl)")
    for p in paths:
        print("=== %s" % p)
        for d in history:
            if d.get("path") == p:
                print("  #%d %s %s %-11s new=%s displaced=%s %s..%s" % (
                    d["seq"], d["node"], d["kind"], d["note"], (d["hash"] or "-")[:10],
                    (d["observed"] or "-")[:10], d["start_utc"][11:], d["end_utc"][11:]))
        needle = re.compile(r'(path="?%s"?[ ,]|"%s")' % (re.escape(p), re.escape(p)))
        for n in nodes(root):
            with open(os.path.join(root, n, "agent.log"), errors="replace") as f:
                lines = [line.rstrip() for line in f if needle.search(line)]
            for line in lines:
                for node_id, name in names.items():
                    line = line.replace("%016x:" % node_id, name + ":")
                print("  %s| %s" % (n, line[:400]))
        stem, ext = os.path.splitext(p)
        for n in nodes(root):
            db = os.path.join(root, n, "state", "index.db")
            if not os.path.exists(db):
                continue
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            cols = [r[1] for r in con.execute("PRAGMA table_info(entries)")]
            dot = ", dot_node, dot_counter" if "dot_node" in cols else ", 0, 0"
            for r in con.execute("SELECT path, hex(hash), vv, hlc, origin, deleted" + dot +
                                 " FROM entries WHERE path = ? OR path LIKE ?",
                                 (p, stem + ".sync-conflict-%" + ext)):
                d = ""
                if r[7]:
                    d = " dot=%s:%d" % (names.get(r[6] & (2**64 - 1), "%x" % r[6]), r[7])
                print("  %s index: %s %s vv=%s%s hlc=%d origin=%s" % (
                    n, r[0], "deleted" if r[5] else r[1][:10].lower(),
                    vv_str(decode_vv(r[2])), d, r[3], r[4]))
            con.close()


if __name__ == "__main__":
    main()
