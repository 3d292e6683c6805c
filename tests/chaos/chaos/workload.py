"""The workload: writes, edits, renames and deletes files in the agents' data
dirs, and records every operation it finished.

Each operation replaces or removes a file in one atomic step that also tells
what it displaced, so the record says exactly which version the operation
overwrote or deleted on that node, even when the agent renamed a version from
a peer into place an instant before:

- a write puts new content in a temp file beside the target (`*.wltmp`, a name
  the agents ignore) and swaps it in with renameat2(RENAME_EXCHANGE), or
  RENAME_NOREPLACE when there is nothing there; after an exchange the temp
  name holds what was displaced, which is read, hashed and removed;
- a delete renames the file to a temp name (moving it out of the synced
  namespace in one step), reads what it moved, and removes it;
- a rename is a delete of the source and a write of the same content at the
  target.

The checker (checker.py) relies on this: op.observed is the hash of the
version the operation superseded on that node, or None if the path was empty.
Content is unique per write (node, sequence number and a random token in the
first line), so a hash names one write.
"""

import ctypes
import dataclasses
import errno
import hashlib
import json
import os
import random
import threading
import time

from . import util

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint]
_AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

TEMP_SUFFIX = ".wltmp"  # the agents' configs ignore "*.wltmp"


def renameat2(src, dst, flags):
    if _libc.renameat2(_AT_FDCWD, src.encode(), _AT_FDCWD, dst.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), dst)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def file_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclasses.dataclass
class Op:
    """One finished operation on one node's data dir."""
    seq: int
    node: str
    kind: str           # "write" or "delete"
    path: str           # relative to data_dir
    hash: object        # sha256 of the new content (write), None (delete)
    observed: object    # sha256 of the version displaced on that node, or None
    t_start: float      # time.monotonic()
    t_end: float
    note: str = ""      # "create", "edit", "rename-from", "rename-to", ...

    def __str__(self):
        h = (self.hash or "-")[:10]
        o = (self.observed or "-")[:10]
        return "#%d %s %s %s %s new=%s displaced=%s" % (self.seq, self.node, self.kind,
                                                       self.note, self.path, h, o)


class Workload:
    """Operations on data dirs, recorded in `history` (finished ones only).

    Paths come from a pool: DIRS x NAMES, so nodes often touch the same file.
    Thread-safe: the background thread and a scenario's own calls may mix."""

    def __init__(self, seed, dirs=("", "d0", "d1", "d2"), files_per_dir=6, big_share=0.05,
                 big_size=(64 << 10, 600 << 10)):
        self.rng = random.Random(seed)
        self.pool = [os.path.join(d, "f%d.txt" % j) for d in dirs for j in range(files_per_dir)]
        self.big_share = big_share
        self.big_size = big_size
        self.history = []
        self.failed = []       # (node, what, error) of operations that did not finish
        self._written = set()  # (path, hash) pairs ever written, to keep them unique
        self._lock = threading.RLock()
        self._seq = 0
        self._thread = None
        self._stop = threading.Event()

    # --- primitives -----------------------------------------------------------

    def _next_seq(self):
        with self._lock:
            self._seq += 1
            return self._seq

    def _record(self, op):
        with self._lock:
            self.history.append(op)
            if op.kind == "write":
                self._written.add((op.path, op.hash))
        return op

    def _content(self, node, seq, path, size=None):
        with self._lock:
            if size is None:
                if self.rng.random() < self.big_share:
                    size = self.rng.randint(*self.big_size)
                else:
                    size = self.rng.randint(0, 4096)
            token = self.rng.getrandbits(64)
            filler = self.rng.randbytes(size)
        return ("%s seq=%d %s %016x\n" % (node, seq, path, token)).encode() + filler

    def _temp(self, agent, path, seq):
        d = os.path.dirname(os.path.join(agent.data_dir, path))
        return os.path.join(d, ".wl-%s-%d%s" % (agent.name, seq, TEMP_SUFFIX))

    def _swap_in(self, tmp, dst):
        """Puts tmp at dst; returns the hash of what it displaced, or None."""
        for _ in range(5):
            if os.path.lexists(dst):
                try:
                    renameat2(tmp, dst, RENAME_EXCHANGE)
                except FileNotFoundError:
                    continue  # dst vanished in between: try NOREPLACE
                try:
                    if os.path.islink(tmp) or not os.path.isfile(tmp):
                        return "non-file"
                    return file_hash(tmp)
                finally:
                    _remove(tmp)
            try:
                renameat2(tmp, dst, RENAME_NOREPLACE)
                return None
            except FileExistsError:
                continue  # dst appeared in between: exchange
        raise OSError(errno.EAGAIN, "target keeps changing", dst)

    def write(self, agent, path, content=None, size=None, note=None):
        """Writes new content at path on agent's data dir. Returns the Op, or
        None when it could not be done (e.g. ENOSPC); then nothing changed."""
        seq = self._next_seq()
        if content is None:
            content = self._content(agent.name, seq, path, size)
        full = os.path.join(agent.data_dir, path)
        tmp = self._temp(agent, path, seq)
        t0 = time.monotonic()
        try:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if os.path.lexists(full) and not _is_file(full):
                raise OSError(errno.EISDIR, "not a regular file", full)
            with open(tmp, "wb") as f:
                f.write(content)
            observed = self._swap_in(tmp, full)
        except OSError as e:
            _remove(tmp)
            with self._lock:
                self.failed.append((agent.name, "write " + path, str(e)))
            return None
        h = sha256(content)
        if note is None:
            note = "edit" if observed else "create"
        return self._record(Op(seq, agent.name, "write", path, h, observed, t0, time.monotonic(),
                               note))

    def _take_out(self, agent, path):
        """Moves path out of the synced namespace; returns (tmp, hash) or None."""
        full = os.path.join(agent.data_dir, path)
        seq = self._next_seq()
        tmp = self._temp(agent, path, seq)
        if not _is_file(full):
            return None
        try:
            os.rename(full, tmp)
        except FileNotFoundError:
            return None
        if not _is_file(tmp):
            # The agent put something else there an instant ago; put it back.
            renameat2(tmp, full, RENAME_NOREPLACE)
            return None
        return tmp, file_hash(tmp), seq

    def delete(self, agent, path):
        """Deletes path on agent's data dir. Returns the Op or None (nothing there)."""
        t0 = time.monotonic()
        try:
            got = self._take_out(agent, path)
        except OSError as e:
            with self._lock:
                self.failed.append((agent.name, "delete " + path, str(e)))
            return None
        if got is None:
            return None
        tmp, observed, seq = got
        _remove(tmp)
        return self._record(Op(seq, agent.name, "delete", path, None, observed, t0,
                               time.monotonic(), "delete"))

    def rename(self, agent, src, dst):
        """Renames src to dst: a delete of src and a write of its content at
        dst. Returns the ops it finished (zero, one or two)."""
        t0 = time.monotonic()
        try:
            got = self._take_out(agent, src)
        except OSError as e:
            with self._lock:
                self.failed.append((agent.name, "rename " + src, str(e)))
            return []
        if got is None:
            return []
        tmp, h, seq = got
        ops = [self._record(Op(seq, agent.name, "delete", src, None, h, t0, time.monotonic(),
                               "rename-from"))]
        full = os.path.join(agent.data_dir, dst)
        with self._lock:
            reused = (dst, h) in self._written
        if reused:
            _remove(tmp)  # the same version at dst again would be ambiguous
            return ops
        seq2 = self._next_seq()
        try:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            observed = self._swap_in(tmp, full)
        except OSError as e:
            _remove(tmp)
            with self._lock:
                self.failed.append((agent.name, "rename-to " + dst, str(e)))
            return ops
        ops.append(self._record(Op(seq2, agent.name, "write", dst, h, observed, t0,
                                   time.monotonic(), "rename-to")))
        return ops

    # --- random operations ------------------------------------------------------

    def present(self, agent):
        return [p for p in self.pool if _is_file(os.path.join(agent.data_dir, p))]

    def random_op(self, agent):
        with self._lock:
            present = self.present(agent)
            absent = [p for p in self.pool if p not in present]
            r = self.rng.random()
            if not present or (absent and r < 0.25):
                target = self.rng.choice(absent)
                kind = "create"
            elif r < 0.70:
                target = self.rng.choice(present)
                kind = "edit"
            elif r < 0.85 or not absent:
                target = self.rng.choice(present)
                kind = "delete"
            else:
                target = (self.rng.choice(present), self.rng.choice(absent))
                kind = "rename"
        if kind in ("create", "edit"):
            return self.write(agent, target)
        if kind == "delete":
            return self.delete(agent, target)
        return self.rename(agent, *target)

    def run(self, agents, n_ops, pause_s=0.0):
        """n_ops random operations, each on a random agent of `agents`."""
        for _ in range(n_ops):
            with self._lock:
                a = self.rng.choice(agents)
            self.random_op(a)
            if pause_s:
                time.sleep(pause_s)

    def start(self, agents_fn, interval_s):
        """Random operations in a background thread until stop(), on a random
        agent of agents_fn() (called each time, so the set can change)."""
        self._stop.clear()

        def loop():
            while not self._stop.wait(interval_s):
                agents = agents_fn()
                if agents:
                    with self._lock:
                        a = self.rng.choice(agents)
                    self.random_op(a)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self):
        if self._thread:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def save(self, path):
        """Writes the history to path, one JSON object per line in the order
        the operations finished, then the operations that did not finish.
        Times are wall-clock UTC (like the agents' logs) besides monotonic."""
        offset = time.time() - time.monotonic()

        def utc(t):
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + offset)) + \
                ".%03dZ" % int(((t + offset) % 1) * 1000)
        with self._lock:
            history = list(self.history)
            failed = list(self.failed)
        with open(path, "w") as f:
            for op in history:
                d = dataclasses.asdict(op)
                d["start_utc"] = utc(op.t_start)
                d["end_utc"] = utc(op.t_end)
                f.write(json.dumps(d, sort_keys=True) + "\n")
            for node, what, err in failed:
                f.write(json.dumps({"failed": what, "node": node, "error": err}) + "\n")

    def summary(self):
        kinds = {}
        for op in self.history:
            kinds[op.note] = kinds.get(op.note, 0) + 1
        return "%d ops finished (%s), %d not finished" % (
            len(self.history), ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
            len(self.failed))


def _is_file(path):
    try:
        import stat
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        util.log("workload: %s is a directory, left in place" % path)
