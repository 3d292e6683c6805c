"""Measurement, the same for every tool: bytes on the wire from iptables byte
counters on the tool's ports, CPU seconds and peak RSS from /proc, and tree
fingerprints to tell when every node matches the source."""
import os
import subprocess
import threading
import time

# GSBENCH_CHAIN: another chain name, so that two suites can run at once.
CHAIN = os.environ.get("GSBENCH_CHAIN", "GSBENCH")
CLK = os.sysconf("SC_CLK_TCK")


def _ipt(*args, check=True):
    return subprocess.run(["iptables", "-w", *args], check=check, capture_output=True, text=True)


class Wire:
    """Counts every TCP and UDP packet to or from the given local ports, on
    the loopback interface. Loopback packets pass OUTPUT once each, so one
    chain jumped to from OUTPUT sees every packet exactly once; each rule
    RETURNs, so a packet between two watched ports counts once. Bytes are IP
    packet lengths: headers, TLS and retransmissions included."""

    def __init__(self, chain=CHAIN):
        self.ports = []
        self.chain = chain
        _ipt("-D", "OUTPUT", "-o", "lo", "-j", chain, check=False)
        _ipt("-F", chain, check=False)
        _ipt("-X", chain, check=False)
        _ipt("-N", chain)
        _ipt("-I", "OUTPUT", "1", "-o", "lo", "-j", chain)

    def watch(self, ports):
        _ipt("-F", self.chain)
        self.ports = sorted(set(ports))
        for p in self.ports:
            for proto in ("tcp", "udp"):
                for d in ("--dport", "--sport"):
                    _ipt("-A", self.chain, "-p", proto, d, str(p), "-j", "RETURN")

    def zero(self):
        _ipt("-Z", self.chain)

    def read(self):
        out = _ipt("-L", self.chain, "-n", "-v", "-x").stdout.splitlines()[2:]
        return sum(int(line.split()[1]) for line in out if line.strip())

    def close(self):
        _ipt("-D", "OUTPUT", "-o", "lo", "-j", self.chain, check=False)
        _ipt("-F", self.chain, check=False)
        _ipt("-X", self.chain, check=False)


def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    # After the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK


def _hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(roots):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                kids.setdefault(st[0], []).append(int(d))
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


class Procs:
    """CPU seconds (utime+stime of the processes and of their reaped
    children) and peak RSS (VmHWM, sampled every 0.2 s over the processes and
    their descendants, so short-lived children count too) of long-running
    processes, per node, between begin() and end(). `get_nodes` returns one
    list of root pids per node; a process started after begin() counts from
    zero."""

    def __init__(self, get_nodes):
        self.get_nodes = get_nodes
        self._stop = None

    def begin(self):
        nodes = self.get_nodes()
        for pids in nodes:
            for p in pids:
                try:  # 5: reset the peak RSS to the current RSS
                    with open(f"/proc/{p}/clear_refs", "w") as f:
                        f.write("5")
                except OSError:
                    pass
        # Every descendant too: a tool may do its work in a child (e.g. a
        # monitor process that runs the real one).
        self.cpu0 = {p: (_stat(p) or (0, 0.0))[1] for pids in nodes for p in descendants(pids)}
        self.peak = [0 for _ in nodes]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()

    def _sample(self):
        while not self._stop.is_set():
            self._sample_once()
            self._stop.wait(0.2)

    def _sample_once(self):
        for i, pids in enumerate(self.get_nodes()):
            for p in descendants(pids):
                self.peak[i] = max(self.peak[i], _hwm_kb(p))

    def end(self):
        """CPU of the processes alive now (since begin, or since they
        started); a child that exited meanwhile is in its parent's cutime."""
        self._stop.set()
        self._t.join()
        self._sample_once()
        cpu = [0.0 for _ in self.peak]
        for i, pids in enumerate(self.get_nodes()):
            for p in descendants(pids):
                st = _stat(p)
                if st:
                    cpu[i] += st[1] - self.cpu0.get(p, 0.0)
        return cpu, [k / 1024 for k in self.peak]


def run_measured(cmd, env=None, log=None):
    """Runs a one-shot command; returns (seconds, cpu seconds, peak RSS MiB,
    exit code). CPU from wait4 (the command and its reaped children); peak
    RSS from VmHWM of the command and its descendants, sampled every 20 ms
    (wait4's ru_maxrss would include the forking Python's own RSS)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=log or subprocess.DEVNULL,
                         stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    peak = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        for q in descendants([p.pid]):
            peak = max(peak, _hwm_kb(q))
        time.sleep(0.02)
    p.returncode = os.waitstatus_to_exitcode(status)
    return (time.monotonic() - t0, ru.ru_utime + ru.ru_stime, peak / 1024, p.returncode)


IGNORE = (".stfolder", ".stignore", ".stversions")


def fingerprint(root):
    """Path, kind, size, permission bits, mtime (whole seconds) of files;
    symlink targets; directories. Skips the tools' own markers."""
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with it:
            for e in it:
                name = e.name
                if name in IGNORE or name.startswith((".syncthing.", "~syncthing~")):
                    continue
                r = f"{rel}/{name}" if rel else name
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if e.is_symlink():
                    out[r] = ("l", os.readlink(e.path))
                elif e.is_dir(follow_symlinks=False):
                    out[r] = ("d",)
                    stack.append(r)
                else:
                    out[r] = ("f", st.st_size, st.st_mode & 0o7777, int(st.st_mtime))
    return out


def content_equal(a, b):
    """Full check after convergence: diff -r on content (not timed)."""
    r = subprocess.run(["diff", "-rq", "--no-dereference", "-x", ".stfolder", "-x", ".stversions",
                        a, b], capture_output=True, text=True)
    return r.returncode == 0, r.stdout[:2000]


def wait_converged(dirs, timeout, interval=0.1):
    """Polls until every other dir's fingerprint equals the first's (the
    source, which does not change meanwhile). Returns the time (monotonic)
    of the end of the first matching poll, or None."""
    deadline = time.monotonic() + timeout
    ref = fingerprint(dirs[0])
    left = list(dirs[1:])
    while time.monotonic() < deadline:
        left = [d for d in left if fingerprint(d) != ref]
        if not left:
            return time.monotonic()
        time.sleep(interval)
    return None


def wait_signal(dirs, signal, timeout, interval=0.02):
    """For a daemon with a cheap "in sync" signal (gossync: equal roots;
    Syncthing: 100% completion): polls the signal; when it holds, checks the
    trees (fingerprints, not timed). The time is when the signal first held
    for a state whose trees match; a signal that holds early (before the
    source has indexed its change) is ignored by the check. Falls back to
    wait_converged's polling if the signal never agrees with the trees."""
    deadline = time.monotonic() + timeout
    ref = None
    while time.monotonic() < deadline:
        try:
            ok = signal()
        except Exception:
            ok = False
        if ok:
            t = time.monotonic()
            if ref is None:
                ref = fingerprint(dirs[0])
            if all(fingerprint(d) == ref for d in dirs[1:]):
                return t
            # Not yet (a stale signal): do not walk the trees at every poll.
            time.sleep(max(interval, 2 * (time.monotonic() - t)))
            continue
        time.sleep(interval)
    return None


def wait_file(dirs, rel, data, timeout, interval=0.005):
    """Polls until `rel` holds `data` in every dir; returns the time."""
    deadline = time.monotonic() + timeout
    left = list(dirs)
    while time.monotonic() < deadline:
        still = []
        for d in left:
            try:
                with open(os.path.join(d, rel), "rb") as f:
                    if f.read() == data:
                        continue
            except OSError:
                pass
            still.append(d)
        left = still
        if not left:
            return time.monotonic()
        time.sleep(interval)
    return None


def load():
    return os.getloadavg()[0]
