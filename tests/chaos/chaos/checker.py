"""What must hold after the faults heal and the cluster converged.

The model. Every finished operation `op` on path p (workload.Op) carries
op.observed: the hash of the version it displaced on its node (None if p was
empty there). A version is a (path, hash) pair; content is unique per write,
so a hash names one write.

- A write W = (p, h) is *superseded* when some finished operation on p
  displaced it: op.path == p and op.observed == h. That operation was made on
  a node that had W, so it happened after W (causally), and it decides what
  becomes of W's content: an edit replaces it, a delete removes it.
- Two operations on p that did not see each other's version are concurrent.
  Neither supersedes the other, so both versions stay: concurrent edits keep
  both (one live, one conflict copy), and a delete concurrent with an edit
  keeps the edit (the delete superseded only the version it displaced).

Promises checked:
1. Convergence: every node has the same tree (paths, kinds, modes, contents).
2. No lost write: every write that is not superseded is present, at its path
   or as a conflict copy of it (NAME.sync-conflict-YYYYMMDD-HHMMSS-NODE.EXT).
3. Nothing comes back: the live content at p is never a superseded version
   (an overwritten or deleted version returning), and p is absent only if
   every write to p is superseded.
4. Nothing unknown: each file is a workload path or a conflict copy of one,
   holding a version written at that path.
5. No temp file: no `*.gossync-tmp`, no non-empty `.gossync-tmp`, no `*.wltmp`.
"""

import os
import re

_CONFLICT = re.compile(r"^(?P<stem>.*)\.sync-conflict-\d{8}-\d{6}-(?P<node>[a-z0-9_-]+)"
                       r"(?P<ext>\.[^./]*)?$")


def conflict_original(path):
    """The path a conflict copy was made from (also for a copy of a copy), or
    None when path is not a conflict copy."""
    d, base = os.path.split(path)
    m = _CONFLICT.match(base)
    if not m:
        return None
    orig = os.path.join(d, m.group("stem") + (m.group("ext") or ""))
    deeper = conflict_original(orig)
    return deeper or orig


def temp_files(tree):
    """Paths in one node's tree that are temp files."""
    bad = []
    for path, v in tree.items():
        base = os.path.basename(path)
        if base.endswith(".gossync-tmp") or base.endswith(".wltmp"):
            bad.append(path)
        elif path.startswith(".gossync-tmp/"):
            bad.append(path)
    return sorted(bad)


def compare_trees(trees):
    """Promise 1. trees: {node: {path: fingerprint}}. Returns problems."""
    problems = []
    names = sorted(trees)
    if not names:
        return problems
    ref = trees[names[0]]
    for n in names[1:]:
        t = trees[n]
        for p in sorted(set(ref) | set(t)):
            a, b = ref.get(p), t.get(p)
            if a != b:
                problems.append("trees differ at %s: %s has %s, %s has %s"
                                % (p, names[0], _short(a), n, _short(b)))
    return problems


def _short(fp):
    if fp is None:
        return "nothing"
    return " ".join(str(x)[:12] for x in fp)


def check_history(history, tree):
    """Promises 2-4 against one converged tree {path: fingerprint}, where a
    file's fingerprint is ("file", mode, size, sha256). Returns problems."""
    problems = []
    writes = {}       # path -> {hash: op}
    superseded = {}   # path -> {hash: op that displaced it}
    for op in history:
        if op.kind == "write":
            writes.setdefault(op.path, {})[op.hash] = op
        if op.observed:
            superseded.setdefault(op.path, {}).setdefault(op.observed, op)

    live = {}         # path -> hash, for files
    copies = {}       # original path -> {hash: copy path}
    for path, fp in tree.items():
        if fp[0] != "file":
            continue
        orig = conflict_original(path)
        if orig is None:
            live[path] = fp[3]
        else:
            copies.setdefault(orig, {})[fp[3]] = path

    # 2. No lost write.
    for path, by_hash in sorted(writes.items()):
        for h, op in by_hash.items():
            if h in superseded.get(path, {}):
                continue
            if live.get(path) == h or h in copies.get(path, {}):
                continue
            problems.append("lost write: %s (not superseded; at %s now: %s)"
                            % (op, path, (live.get(path) or "nothing")[:10]))

    # 3. Nothing comes back; a path is absent only if all its writes are superseded.
    for path in sorted(set(writes) | set(superseded)):
        h = live.get(path)
        if h is not None and h in superseded.get(path, {}):
            problems.append("came back: %s holds %s, displaced by %s"
                            % (path, h[:10], superseded[path][h]))

    # 4. Nothing unknown.
    for path, h in sorted(live.items()):
        if h not in writes.get(path, {}):
            problems.append("unknown content at %s: %s (never written there)" % (path, h[:10]))
    for orig, by_hash in sorted(copies.items()):
        for h, cpath in sorted(by_hash.items()):
            if h not in writes.get(orig, {}):
                problems.append("unknown content in conflict copy %s: %s (never written at %s)"
                                % (cpath, h[:10], orig))
    for path, fp in sorted(tree.items()):
        if fp[0] not in ("file", "dir"):
            problems.append("unexpected %s at %s" % (fp[0], path))
    return problems


def check(history, trees):
    """All promises. trees: {node: {path: fingerprint}} (converged or not)."""
    problems = compare_trees(trees)
    for n, t in sorted(trees.items()):
        for p in temp_files(t):
            problems.append("temp file left on %s: %s" % (n, p))
    if trees:
        first = sorted(trees)[0]
        visible = {p: fp for p, fp in trees[first].items() if p not in temp_files(trees[first])}
        problems += check_history(history, visible)
    return problems
