"""Real gossyncd agents in network namespaces, driven like an operator would.

A Cluster owns a temp dir, a Network, the cluster's keys and certificates,
one Agent per node, a Workload, and a sampler thread that reads every agent's
VmRSS twice a second. close() stops everything and removes what it made.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time

from . import checker, net, util
from .workload import Workload

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

# Fast failure detection, so a scenario sees suspect and dead in seconds.
FAST_GOSSIP = {
    "interval_ms": 200,
    "probe_interval_ms": 300,
    "probe_timeout_ms": 150,
    "suspicion_mult": 4,
}


class Binaries:
    def __init__(self, gossyncd, gossync, nfq_delay=None):
        self.gossyncd = os.path.abspath(gossyncd)
        self.gossync = os.path.abspath(gossync)
        self.nfq_delay = os.path.abspath(nfq_delay) if nfq_delay else None


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


class Agent:
    """One gossyncd in node `name`'s namespace, with its own dirs and config."""

    def __init__(self, cluster, name, data_root=None):
        self.cluster = cluster
        self.name = name
        self.root = os.path.join(cluster.root, name)
        fs_root = data_root or self.root
        self.data_dir = os.path.join(fs_root, "data")
        self.state_dir = os.path.join(fs_root, "state")
        self.config_path = os.path.join(self.root, "gossync.toml")
        self.socket = os.path.join(self.root, "admin.sock")
        self.log_path = os.path.join(self.root, "agent.log")
        self.ip = cluster.net.ip[name]
        self.gossip_address = "%s:7946" % self.ip
        self.repair_address = "%s:7947" % self.ip
        # Each node has its own copy of the keyring, as on real servers
        # (key rotation changes them one by one).
        self.keyring = os.path.join(self.root, "gossip.keys")
        os.makedirs(self.root, exist_ok=True)
        shutil.copyfile(cluster.keyring, self.keyring)
        os.chmod(self.keyring, 0o600)
        self.skew = None          # e.g. "+1h": the agent runs under faketime
        self.proc = None
        self.paused = False
        self.exits = []           # (pid, returncode, expected)
        self.rss = []             # (t, pid, kib)
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)

    def write_config(self):
        c = self.cluster
        seeds = [a.gossip_address for a in c.agents.values() if a is not self]
        top = {
            "node": self.name,
            "data_dir": self.data_dir,
            "state_dir": self.state_dir,
            "admin_socket": self.socket,
            "log_level": c.log_level,
            "ignore": ["*.wltmp"],
            "seeds": seeds,
        }
        top.update(c.extra_top)
        gossip = {"listen": self.gossip_address, "keyring": self.keyring}
        gossip.update(c.gossip)
        repair = {
            "listen": self.repair_address,
            "cert": os.path.join(c.secrets, self.name + ".crt"),
            "key": os.path.join(c.secrets, self.name + ".key"),
            "ca": os.path.join(c.secrets, "ca.crt"),
        }
        repair.update(c.repair)
        lines = ["%s = %s" % (k, _toml_value(v)) for k, v in top.items()]
        lines.append("[gossip]")
        lines += ["%s = %s" % (k, _toml_value(v)) for k, v in gossip.items()]
        lines.append("[repair]")
        lines += ["%s = %s" % (k, _toml_value(v)) for k, v in repair.items()]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    # --- process ----------------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if self.running():
            raise util.Failure("%s is already running" % self.name)
        self.write_config()
        env = dict(os.environ)
        if self.skew:
            # The agent's wall clock is off by `skew`; its monotonic clock
            # (timers, timeouts) is not, as on a server whose clock is wrong.
            # File times stay real (NO_FAKE_STAT): libfaketime shifts them in
            # fstat but not in every stat call glibc makes, so the agent would
            # see each file change between its walk and its hash, forever.
            env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=self.skew, DONT_FAKE_MONOTONIC="1",
                       FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_DONT_RESET="1",
                       NO_FAKE_STAT="1")
        log = open(self.log_path, "ab")
        # `ip netns exec` execs the command, so proc.pid is gossyncd's pid.
        self.proc = subprocess.Popen(
            self.cluster.net.exec_argv(self.name) + [self.cluster.bin.gossyncd, "--config",
                                                     self.config_path],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        self.started_wall = time.time()
        self.paused = False
        util.log("%s started pid %d%s" % (self.name, self.proc.pid,
                                          " (clock %s)" % self.skew if self.skew else ""))

    def wait_ready(self, timeout_s=20):
        def ready():
            self.check_alive()
            s = self.status()
            return bool(s) and s.get("ready") and s.get("scan", {}).get("state") == "idle"
        util.wait_for(ready, timeout_s, "%s ready" % self.name, 0.1)

    def _reap(self, expected):
        rc = self.proc.wait()
        self.exits.append((self.proc.pid, rc, expected))
        self.proc = None
        return rc

    def kill(self):
        """kill -9."""
        if not self.running():
            self.check_alive()
            return
        self.proc.kill()
        self._reap(True)
        util.log("%s killed (SIGKILL)" % self.name)

    def stop(self, timeout_s=20):
        """SIGTERM; returns the exit code (0 is a clean shutdown)."""
        if not self.running():
            self.check_alive()
            return None
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self._reap(False)
            self.cluster.crash("%s did not stop within %d s of SIGTERM (killed, exit %d)"
                               % (self.name, timeout_s, rc))
            return rc
        rc = self._reap(True)
        if rc != 0:
            self.cluster.crash("%s exited %d on SIGTERM" % (self.name, rc))
        return rc

    def pause(self):
        os.kill(self.proc.pid, 19)  # SIGSTOP
        self.paused = True
        util.log("%s paused (SIGSTOP)" % self.name)

    def resume(self):
        os.kill(self.proc.pid, 18)  # SIGCONT
        self.paused = False
        util.log("%s resumed (SIGCONT)" % self.name)

    def reload(self):
        os.kill(self.proc.pid, 1)  # SIGHUP
        util.log("%s reloaded (SIGHUP)" % self.name)

    def check_alive(self):
        """Records a crash if the process ended without us ending it."""
        if self.proc is not None and self.proc.poll() is not None:
            rc = self._reap(False)
            self.cluster.crash("%s died on its own: exit %d (%s)" % (
                self.name, rc, "signal %d" % -rc if rc < 0 else "status %d" % rc))

    # --- CLI ----------------------------------------------------------------------

    def cli(self, *args, timeout_s=10):
        try:
            return subprocess.run([self.cluster.bin.gossync, "--socket", self.socket] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", "timeout")

    def status(self):
        """`gossync status --json` as a dict; {} when the agent does not answer."""
        if not self.running() or self.paused:
            return {}
        r = self.cli("status", "--json", "--timeout", "3")
        if r.returncode != 0:
            return {}
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def peers(self):
        """{name: state} from `gossync peers --json`."""
        if not self.running() or self.paused:
            return {}
        r = self.cli("peers", "--json")
        if r.returncode != 0:
            return {}
        try:
            return {m["name"]: m["state"] for m in json.loads(r.stdout)}
        except (ValueError, KeyError, TypeError):
            return {}

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sample_rss(self):
        p = self.proc
        if p is None or p.poll() is not None:
            return
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        self.rss.append((time.monotonic(), p.pid, int(line.split()[1])))
                        return
        except OSError:
            pass

    def max_rss_mib(self):
        return max((k for _, _, k in self.rss), default=0) / 1024.0

    # --- the data dir -------------------------------------------------------------------

    def tree(self):
        return fingerprint(self.data_dir, self.cluster.hash_cache)


def fingerprint(root, cache=None):
    """{rel path: ("dir", mode) | ("link", target) | ("file", mode, size, sha256)}
    for everything under root except the directory `.gossync-tmp` itself
    (its contents are listed, so leftovers show)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue
            mode = "%04o" % stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                if rel != ".gossync-tmp":
                    out[rel] = ("dir", mode)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                h = cache.get(key) if cache is not None else None
                if h is None:
                    try:
                        hasher = hashlib.sha256()
                        with open(full, "rb") as f:
                            for chunk in iter(lambda: f.read(1 << 20), b""):
                                hasher.update(chunk)
                        h = hasher.hexdigest()
                    except OSError:
                        continue
                    if cache is not None:
                        cache[key] = h
                out[rel] = ("file", mode, st.st_size, h)
            else:
                out[rel] = ("other", mode)
    return out


class Cluster:
    """n agents named n1..nN, each in its own namespace. Use as a context
    manager, or call close()."""

    def __init__(self, binaries, n=3, seed=1, gossip=None, repair=None, extra_top=None,
                 tmpfs=None, log_level="debug", workload=None):
        self.bin = binaries
        self.seed = seed
        self.gossip = dict(FAST_GOSSIP)
        self.gossip.update(gossip or {})
        self.repair = dict(repair or {})
        self.extra_top = dict(extra_top or {})
        self.log_level = log_level
        self.crashes = []
        self.problems = []  # of the last final_check
        self.hash_cache = {}
        self.mounts = []
        self.net = None
        self.agents = {}
        self._stop_sampler = threading.Event()
        self._sampler = None
        net.remove_stale()
        _umount_stale()
        self.root = tempfile.mkdtemp(prefix="gossync-chaos-%d-" % os.getpid())
        names = ["n%d" % i for i in range(1, n + 1)]
        try:
            self.net = net.Network(names, binaries.nfq_delay)
            self.secrets = os.path.join(self.root, "secrets")
            os.makedirs(self.secrets)
            self.keyring = os.path.join(self.secrets, "gossip.keys")
            self._cli_ok(["keygen", "--out", self.keyring])
            self._cli_ok(["ca", "init", "--dir", self.secrets])
            for name in names:
                self._cli_ok(["ca", "issue", name, "--dir", self.secrets])
                data_root = None
                if tmpfs and name in tmpfs:
                    data_root = os.path.join(self.root, name, "fs")
                    os.makedirs(data_root)
                    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % tmpfs[name],
                                    "gossync-chaos", data_root], check=True)
                    self.mounts.append(data_root)
                self.agents[name] = Agent(self, name, data_root)
        except Exception:
            self.close()
            raise
        self.workload = workload or Workload(seed)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _cli_ok(self, args):
        r = subprocess.run([self.bin.gossync] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise util.Failure("gossync %s: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def __getitem__(self, name):
        return self.agents[name]

    def names(self):
        return list(self.agents)

    def crash(self, what):
        util.log("CRASH: " + what)
        self.crashes.append(what)

    def _sample(self):
        while not self._stop_sampler.wait(0.5):
            for a in list(self.agents.values()):
                a.sample_rss()

    # --- lifecycle ----------------------------------------------------------------

    def start(self, names=None, wait_members=True):
        """Starts agents and waits until each is ready and (wait_members)
        sees every other running agent alive, which also proves the network."""
        names = names or self.names()
        for n in names:
            self.agents[n].start()
        for n in names:
            self.agents[n].wait_ready()
        if wait_members:
            self.wait_all_alive()

    def wait_all_alive(self, timeout_s=20):
        running = [a.name for a in self.running_agents()]

        def all_alive():
            for n in running:
                peers = self.agents[n].peers()
                if any(peers.get(m) != "alive" for m in running if m != n):
                    return False
            return True
        util.wait_for(all_alive, timeout_s, "every agent sees every other alive: %s"
                      % {n: self.agents[n].peers() for n in running})

    def running_agents(self):
        return [a for a in self.agents.values() if a.running()]

    def check_alive(self):
        for a in self.agents.values():
            a.check_alive()

    # --- convergence --------------------------------------------------------------

    def roots(self, names=None):
        return {n: self.agents[n].status().get("root") for n in (names or self.names())}

    def converged(self, names=None):
        """Every named agent reports the same root and has the same tree."""
        names = names or self.names()
        self.check_alive()
        roots = self.roots(names)
        if None in roots.values() or len(set(roots.values())) != 1:
            return False
        trees = [self.agents[n].tree() for n in names]
        return all(t == trees[0] for t in trees[1:])

    def wait_converged(self, timeout_s=40, names=None, what="convergence"):
        t0 = time.monotonic()
        if not util.poll_until(lambda: self.converged(names), timeout_s, 0.25):
            raise util.Failure("no %s within %.0f s; roots %s" % (what, timeout_s,
                                                                  self.roots(names)))
        lag = time.monotonic() - t0
        util.log("%s after %.1f s" % (what, lag))
        return lag

    def wait_members(self, observer, member, states, timeout_s=20):
        util.wait_for(lambda: self.agents[observer].peers().get(member) in states, timeout_s,
                      "%s sees %s as %s (sees %s)" % (observer, member, "/".join(states),
                                                       self.agents[observer].peers().get(member)))

    # --- the final check ------------------------------------------------------------

    def final_check(self, max_rss_mib=200):
        """Every promise; raises Failure listing what broke."""
        self.check_alive()
        trees = {n: a.tree() for n, a in self.agents.items()}
        problems = checker.check(self.workload.history, trees)
        for a in self.agents.values():
            # Partial transfers in state_dir/tmp are kept for resuming and
            # collected by age (the temp GC), so they are shown, not failed.
            left = _state_temp_files(a)
            if left:
                util.log("%s: %d partial transfers kept in state_dir/tmp" % (a.name, len(left)))
            if a.max_rss_mib() > max_rss_mib:
                problems.append("%s used %.0f MiB (bound %d MiB)" % (a.name, a.max_rss_mib(),
                                                                    max_rss_mib))
        problems += ["crash: " + c for c in self.crashes]
        util.log("workload: " + self.workload.summary())
        util.log("memory: " + ", ".join("%s max %.0f MiB" % (a.name, a.max_rss_mib())
                                        for a in self.agents.values()))
        files = sum(1 for fp in trees[self.names()[0]].values() if fp[0] == "file")
        copies = sum(1 for p in trees[self.names()[0]] if checker.conflict_original(p))
        util.log("final tree: %d files, %d conflict copies" % (files, copies))
        self.problems = problems  # kept with the run dir (close)
        if problems:
            raise util.Failure("%d problems:\n  %s" % (len(problems), "\n  ".join(problems[:60])))

    def diagnose(self):
        out = []
        for a in self.agents.values():
            out.append("==== %s (pid %s) root %s" % (a.name, a.pid, a.status().get("root")))
            text = a.log_text().splitlines()
            out += text[-60:]
        return "\n".join(out)

    def close(self):
        self._stop_sampler.set()
        try:
            self.workload.stop()
        except AttributeError:
            pass
        for a in list(self.agents.values()):
            try:
                a.stop()
            except Exception as e:  # keep cleaning up
                util.log("stopping %s: %s" % (a.name, e))
        if self.net:
            self.net.close()
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], check=False)
        self.mounts = []
        if os.environ.get("GOSSYNC_KEEP_TMP"):
            try:
                self.workload.save(os.path.join(self.root, "history.jsonl"))
                with open(os.path.join(self.root, "problems.txt"), "w") as f:
                    f.write("".join(p + "\n" for p in self.problems))
            except (AttributeError, OSError) as e:
                util.log("saving the workload history: %s" % e)
            util.log("trace a path: tests/chaos/trace.py %s [PATH ...]" % self.root)
            util.log("kept " + self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def _state_temp_files(agent):
    """Temp files in state_dir/tmp (resumable partial transfers)."""
    d = os.path.join(agent.state_dir, "tmp")
    try:
        return sorted(os.listdir(d))
    except OSError:
        return []


def _umount_stale():
    """Unmounts tmpfs mounts of earlier runs whose process is gone."""
    try:
        with open("/proc/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split()
        if len(parts) > 1 and parts[0] == "gossync-chaos":
            m = parts[1]
            base = os.path.basename(os.path.dirname(os.path.dirname(m)))
            pid = base.split("-")[2] if base.count("-") >= 3 else ""
            if pid.isdigit() and not os.path.exists("/proc/" + pid):
                subprocess.run(["umount", "-l", m], check=False)
