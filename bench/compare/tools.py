"""The tools under comparison, each on 127.0.0.1 with its own ports and dirs.

A tool has N nodes; node i's data is work/node{i}/data. Push tools (rsync,
Unison) copy from the writing node to every other node when sync() is
called (a star: what an operator's cron job would do); daemons (gossync,
Syncthing, csync2's daemon side) converge by themselves and sync() only
triggers what the tool needs triggered (nothing for gossync and Syncthing).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

from meter import run_measured

HERE = os.path.dirname(os.path.abspath(__file__))


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Tool:
    name = "?"
    daemon = False  # converges by itself

    def __init__(self, work, n, port_base):
        self.work, self.n, self.port_base = work, n, port_base
        self.dirs = [os.path.join(work, f"node{i}", "data") for i in range(n)]
        self.procs = []  # (node, Popen)
        self.client_cpu = [0.0] * n
        self.client_rss = [0.0] * n
        for d in self.dirs:
            os.makedirs(d, exist_ok=True)

    def ports(self):
        return []

    in_sync = None  # a cheap convergence signal, if the tool has one

    def node_pids(self):
        pids = [[] for _ in range(self.n)]
        for i, p in self.procs:
            if p.poll() is None:
                pids[i].append(p.pid)
        return pids

    def start(self):
        pass

    def sync(self, src=0):
        """Push tools: copy from src to every node; returns when done."""
        return True

    def reset_clients(self):
        self.client_cpu = [0.0] * self.n
        self.client_rss = [0.0] * self.n

    def _client(self, node, cmd, env=None):
        with open(os.path.join(self.work, f"client{node}.log"), "ab") as log:
            secs, cpu, rss, rc = run_measured(cmd, env=env, log=log)
        self.client_cpu[node] += cpu
        self.client_rss[node] = max(self.client_rss[node], rss)
        if rc != 0:
            raise RuntimeError(f"{self.name}: {cmd[0]} exited {rc}; see {self.work}")

    def _spawn(self, node, cmd, env=None, log="daemon"):
        f = open(os.path.join(self.work, f"node{node}", f"{log}.log"), "ab")
        p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append((node, p))
        return p

    def stop(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


class Rsync(Tool):
    name = "rsync"

    def __init__(self, work, n, port_base, fsync=False):
        super().__init__(work, n, port_base)
        self.fsync = fsync
        if fsync:
            self.name = "rsync --fsync"

    def ports(self):
        return [self.port_base + i for i in range(self.n)]

    def start(self):
        for i in range(self.n):
            conf = os.path.join(self.work, f"node{i}", "rsyncd.conf")
            with open(conf, "w") as f:
                f.write(f"use chroot = yes\nuid = root\ngid = root\n"
                        f"pid file = {self.work}/node{i}/rsyncd.pid\n"
                        # chroot (we are root): without it rsyncd munges symlinks and strips
                        # the leading "/" of absolute ones; they must arrive verbatim.
                        f"munge symlinks = no\n"
                        f"[data]\npath = {self.dirs[i]}\nread only = no\n")
            self._spawn(i, ["rsync", "--daemon", "--no-detach", "--address=127.0.0.1",
                            f"--port={self.port_base + i}", f"--config={conf}"])
        for i in range(self.n):
            _wait(lambda: socket.create_connection(("127.0.0.1", self.port_base + i)).close()
                  or True, 10, "rsyncd")

    def sync(self, src=0):
        for j in range(self.n):
            if j != src:
                cmd = ["rsync", "-a", "--delete"] + (["--fsync"] if self.fsync else []) + [
                    self.dirs[src] + "/", f"rsync://127.0.0.1:{self.port_base + j}/data/"]
                self._client(src, cmd)
        return True


class Unison(Tool):
    name = "unison"

    def ports(self):
        return [self.port_base + i for i in range(self.n)]

    def _env(self, i):
        env = dict(os.environ)
        env["UNISON"] = os.path.join(self.work, f"node{i}", "unison")
        env["HOME"] = os.path.join(self.work, f"node{i}")
        os.makedirs(env["UNISON"], exist_ok=True)
        return env

    def start(self):
        for i in range(self.n):
            self._spawn(i, ["unison", "-socket", str(self.port_base + i), "-listen", "127.0.0.1"],
                        env=self._env(i))
        for i in range(self.n):
            _wait(lambda: socket.create_connection(("127.0.0.1", self.port_base + i)).close()
                  or True, 10, "unison server")

    def sync(self, src=0):
        for j in range(self.n):
            if j != src:
                cmd = ["unison", "-batch", "-auto", "-times", "-confirmbigdel=false",
                       "-ui", "text", "-terse", "-prefer", self.dirs[src], self.dirs[src],
                       f"socket://127.0.0.1:{self.port_base + j}/{self.dirs[j]}"]
                self._client(src, cmd, env=self._env(src))
        return True


class Gossync(Tool):
    name = "gossync"
    daemon = True

    def __init__(self, work, n, port_base, build, interval_ms=None):
        super().__init__(work, n, port_base)
        self.gossyncd = os.path.join(build, "agent/daemon/gossyncd")
        self.cli = os.path.join(build, "agent/cli/gossync")
        self.interval_ms = interval_ms
        sec = os.path.join(work, "secrets")
        os.makedirs(sec, exist_ok=True)
        subprocess.run([self.cli, "keygen", "--out", f"{sec}/gossip.keys"], check=True,
                       capture_output=True)
        subprocess.run([self.cli, "ca", "init", "--dir", sec], check=True, capture_output=True)
        for i in range(n):
            subprocess.run([self.cli, "ca", "issue", f"n{i}", "--dir", sec], check=True,
                           capture_output=True)
            self.write_config(i)

    def gport(self, i):
        return self.port_base + 2 * i

    def ports(self):
        return [self.port_base + k for k in range(2 * self.n)]

    def write_config(self, i):
        sec = os.path.join(self.work, "secrets")
        node = os.path.join(self.work, f"node{i}")
        os.makedirs(f"{node}/state", exist_ok=True)
        seeds = ", ".join(f'"127.0.0.1:{self.gport(j)}"' for j in range(self.n) if j != i)
        interval = f"interval_ms = {self.interval_ms}\n" if self.interval_ms else ""
        with open(f"{node}/gossync.toml", "w") as f:
            f.write(f'node = "n{i}"\ndata_dir = "{self.dirs[i]}"\nstate_dir = "{node}/state"\n'
                    f'admin_socket = "{node}/admin.sock"\nseeds = [{seeds}]\n'
                    f'log_level = "info"\n\n[gossip]\nlisten = "127.0.0.1:{self.gport(i)}"\n'
                    f'keyring = "{sec}/gossip.keys"\n{interval}\n'
                    f'[repair]\nlisten = "127.0.0.1:{self.gport(i) + 1}"\n'
                    f'cert = "{sec}/n{i}.crt"\nkey = "{sec}/n{i}.key"\nca = "{sec}/ca.crt"\n')

    def start(self):
        for i in range(self.n):
            self._spawn(i, [self.gossyncd, "--config",
                            os.path.join(self.work, f"node{i}", "gossync.toml")])

    def status(self, i):
        r = subprocess.run([self.cli, "--socket", os.path.join(self.work, f"node{i}", "admin.sock"),
                            "status", "--json"], capture_output=True, text=True, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait_ready(self, timeout=600):
        for i in range(self.n):
            _wait(lambda: self.status(i) is not None, timeout, f"gossync n{i} admin socket")

    def in_sync(self):
        """Every node reports the same root (its index, which is updated only
        after the files are durable and in place)."""
        roots = set()
        for i in range(self.n):
            st = self.status(i)
            if not st:
                return False
            roots.add(st["root"])
        return len(roots) == 1

    def session_logs(self, i):
        with open(os.path.join(self.work, f"node{i}", "daemon.log"), errors="replace") as f:
            return [l for l in f if "session=" in l and " done " in l]


class Syncthing(Tool):
    name = "syncthing"
    daemon = True
    KEY = "gsbench-api-key"

    def __init__(self, work, n, port_base, watcher_delay_s=10):
        super().__init__(work, n, port_base)
        self.delay = watcher_delay_s
        self.ids = []
        for i in range(n):
            home = os.path.join(work, f"node{i}", "st")
            subprocess.run(["syncthing", "generate", f"--home={home}", "--no-default-folder"],
                           check=True, capture_output=True)
            r = subprocess.run(["syncthing", "serve", f"--home={home}", "--device-id"],
                               check=True, capture_output=True, text=True)
            self.ids.append(r.stdout.strip())

    def ports(self):  # sync protocol only; the REST port is the harness's
        return [self.port_base + 2 * i for i in range(self.n)]

    def gui(self, i):
        return self.port_base + 2 * i + 1

    def api(self, i, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.gui(i)}{path}", method=method,
                                     headers={"X-API-Key": self.KEY})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, data=data, timeout=30) as r:
            out = r.read()
        return json.loads(out) if out else None

    def _serve(self, i):
        env = dict(os.environ, STNORESTART="1", STNOUPGRADE="1", STNODEFAULTFOLDER="1")
        home = os.path.join(self.work, f"node{i}", "st")
        self._spawn(i, ["syncthing", "serve", f"--home={home}", "--no-browser", "--no-restart",
                        "--no-upgrade", f"--gui-address=http://127.0.0.1:{self.gui(i)}",
                        f"--gui-apikey={self.KEY}", "--skip-port-probing"], env=env)
        _wait(lambda: self.api(i, "GET", "/rest/system/ping"), 60, f"syncthing {i} REST")

    def _offline_options(self, i):
        """Before the first start, so that nothing ever leaves 127.0.0.1 (no
        discovery, relay, NAT, usage report or upgrade lookups, not even DNS):
        the same options the REST API sets, written into config.xml."""
        import xml.etree.ElementTree as ET
        path = os.path.join(self.work, f"node{i}", "st", "config.xml")
        tree = ET.parse(path)
        opts = tree.getroot().find("options")
        for tag in ("listenAddress", "globalAnnounceServer"):
            for e in opts.findall(tag):
                opts.remove(e)
        ET.SubElement(opts, "listenAddress").text = f"tcp://127.0.0.1:{self.port_base + 2 * i}"
        for tag, val in (("globalAnnounceEnabled", "false"), ("localAnnounceEnabled", "false"),
                         ("relaysEnabled", "false"), ("natEnabled", "false"),
                         ("urAccepted", "-1"), ("autoUpgradeIntervalH", "0"),
                         ("crashReportingEnabled", "false"), ("startBrowser", "false"),
                         ("reconnectionIntervalS", "1")):
            e = opts.find(tag)
            if e is None:
                e = ET.SubElement(opts, tag)
            e.text = val
        tree.write(path)

    def start(self):
        """Starts the instances and configures all but the folder (add_folder)."""
        for i in range(self.n):
            self._offline_options(i)
            self._serve(i)
            # The same again through the REST API (what an operator would use).
            self.api(i, "PATCH", "/rest/config/options", {
                "listenAddresses": [f"tcp://127.0.0.1:{self.port_base + 2 * i}"],
                "globalAnnounceEnabled": False, "localAnnounceEnabled": False,
                "relaysEnabled": False, "natEnabled": False, "urAccepted": -1,
                "autoUpgradeIntervalH": 0, "crashReportingEnabled": False,
                "startBrowser": False, "reconnectionIntervalS": 1})
        for i in range(self.n):
            for j in range(self.n):
                if j != i:
                    self.api(i, "POST", "/rest/config/devices", {
                        "deviceID": self.ids[j], "name": f"node{j}",
                        "addresses": [f"tcp://127.0.0.1:{self.port_base + 2 * j}"]})
        for i in range(self.n):
            _wait(lambda: sum(c.get("connected", False) for c in
                              self.api(i, "GET", "/rest/system/connections")["connections"]
                              .values()) == self.n - 1, 120, f"syncthing {i} connected")

    def in_sync(self):
        """The source (node 0) sees every other device at 100% of the folder
        and is idle itself (nothing left to scan)."""
        if self.api(0, "GET", "/rest/db/status?folder=bench").get("state") != "idle":
            return False
        for j in range(1, self.n):
            c = self.api(0, "GET", f"/rest/db/completion?folder=bench&device={self.ids[j]}")
            if c.get("completion", 0) < 100 or c.get("needItems", 1) or c.get("needDeletes", 0):
                return False
        return True

    def add_folder(self):
        for i in range(self.n):
            self.api(i, "POST", "/rest/config/folders", {
                "id": "bench", "label": "bench", "path": self.dirs[i], "type": "sendreceive",
                "devices": [{"deviceID": d} for d in self.ids],
                "fsWatcherEnabled": True, "fsWatcherDelayS": self.delay,
                "rescanIntervalS": 3600})


class Csync2(Tool):
    """csync2 2.0: one config for the group, each node on its own loopback
    address (127.0.0.2, ...) with the standard port, its own database dir,
    no TLS. Daemons serve (-ii); a sync is `csync2 -x` run on the writer."""
    name = "csync2"
    PORT = 30865

    def __init__(self, work, n, port_base):
        super().__init__(work, n, port_base)
        self.cfg = "/etc/csync2_gsbench.cfg"
        key = os.path.join(work, "csync2.key")
        subprocess.run(["csync2", "-k", key], check=True, capture_output=True)
        # The host names are the addresses: -N names the node and the
        # address it binds (no /etc/hosts entries needed).
        hosts = " ".join(self.addr(i) for i in range(n))
        prefix = "\n".join(f"  on {self.addr(i)}: {self.dirs[i]};" for i in range(n))
        with open(self.cfg, "w") as f:
            f.write(f"nossl * *;\ngroup bench {{\n  host {hosts};\n  key {key};\n"
                    f"  include %data%;\n  auto younger;\n}}\n"
                    f"prefix data {{\n{prefix}\n}}\n")
        for i in range(n):
            os.makedirs(os.path.join(work, f"node{i}", "db"), exist_ok=True)

    def ports(self):
        return [self.PORT]

    def addr(self, i):
        return f"127.0.0.{i + 2}"

    def _args(self, i):
        return ["-C", "gsbench", "-N", self.addr(i), "-D", os.path.join(self.work, f"node{i}", "db")]

    def start(self):
        for i in range(self.n):
            self._spawn(i, ["csync2", "-ii", "-v"] + self._args(i))
        time.sleep(0.5)

    def sync(self, src=0):
        self._client(src, ["csync2", "-x"] + self._args(src))
        return True

    def stop(self):
        super().stop()
        try:
            os.unlink(self.cfg)
        except OSError:
            pass
