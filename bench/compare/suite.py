#!/usr/bin/python3
"""The side-by-side suite: gossync, rsync (daemon), Unison (socket), Syncthing
and csync2 on 127.0.0.1, the same trees, measured the same way (meter.py).

  bench/compare/suite.py --build build [--tools gossync,rsync,...] [--runs 3]
        [--scenarios main,multi,real,big,idle] [--files 20000 --mb 430]
        [--out bench/compare/results.jsonl]

Every measurement is one JSON line in --out (appended): tool, scenario,
nodes, run, seconds to converge, bytes on the wire, CPU seconds (all nodes),
peak RSS per node, load average. report.py turns them into the table and the
plots. Must run as root (iptables counters, /proc of the tools).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402
import meter  # noqa: E402
import tools  # noqa: E402

# GSBENCH_PORT_OFFSET moves every tool's ports (but csync2's, which is fixed),
# so that two suites can run at once (with GSBENCH_CHAIN and --work).
_OFF = int(os.environ.get("GSBENCH_PORT_OFFSET", "0"))
PORTS = {"gossync": 23600 + _OFF, "rsync": 23700 + _OFF, "rsync --fsync": 23720 + _OFF,
         "unison": 23800 + _OFF, "syncthing": 23900 + _OFF, "csync2": 0}
TIMEOUT = 600


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Bench:
    def __init__(self, args):
        self.a = args
        self.wire = meter.Wire()
        self.out = open(args.out, "a")
        self.cache = os.path.join(args.work, "cache")
        os.makedirs(self.cache, exist_ok=True)

    def tree(self, name, **kw):
        """A generated tree, made once per suite run and copied per use."""
        path = os.path.join(self.cache, name)
        if not os.path.exists(path + ".done"):
            shutil.rmtree(path, ignore_errors=True)
            if name == "real":
                info = gen.copy_real(path)
            else:
                info = gen.make_tree(path, **kw)
            with open(path + ".done", "w") as f:
                json.dump(info, f)
        with open(path + ".done") as f:
            return path, json.load(f)

    def make(self, name, n, work):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        base = PORTS[name]
        if name == "gossync":
            return tools.Gossync(work, n, base, self.a.build)
        if name == "rsync":
            return tools.Rsync(work, n, base)
        if name == "rsync --fsync":
            return tools.Rsync(work, n, base, fsync=True)
        if name == "unison":
            return tools.Unison(work, n, base)
        if name == "syncthing":
            return tools.Syncthing(work, n, base, self.a.st_delay)
        if name == "csync2":
            return tools.Csync2(work, n, base)
        raise ValueError(name)

    def record(self, tool, scenario, run, secs, extra=None, procs=None, wire=None):
        cpu, rss = procs if procs else ([0.0] * tool.n, [0.0] * tool.n)
        cpu = [c + cc for c, cc in zip(cpu, tool.client_cpu)]
        rss = [max(r, cr) for r, cr in zip(rss, tool.client_rss)]
        rec = {"tool": tool.name, "scenario": scenario, "nodes": tool.n, "run": run,
               "secs": secs, "wire_bytes": wire, "cpu_s": sum(cpu), "cpu_per_node": cpu,
               "rss_mb": rss, "load": meter.load(), "time": time.time()}
        rec.update(extra or {})
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        log(f"{tool.name:>14} {scenario:<14} n={tool.n} run={run} "
            f"{'FAILED' if secs is None else f'{secs:8.3f} s'} "
            f"wire={wire} cpu={sum(cpu):.2f} rss={max(rss):.1f} MiB load={meter.load():.2f}")
        return rec

    def measure(self, tool, scenario, run, action, wait, extra=None):
        """Zero the counters, run `action` (the change or the trigger), then
        the tool's sync (push tools) and `wait` for convergence."""
        self.wire.watch(tool.ports())
        self.wire.zero()
        tool.reset_clients()
        procs = meter.Procs(tool.node_pids)
        procs.begin()
        t0 = time.monotonic()
        t0 = action() or t0
        tool.sync(0)
        t1 = wait()
        secs = None if t1 is None else t1 - t0
        if not tool.daemon:
            time.sleep(0.3)  # let the daemons reap their per-connection children
        res = procs.end()
        return self.record(tool, scenario, run, secs, extra, res, self.wire.read())

    def converged(self, tool):
        """Push tools: done when their command returns (checked, not timed;
        polled if the trees still differ). Daemons: their own signal,
        checked against the trees (meter.wait_signal), else polling."""
        def wait():
            if not tool.daemon:
                t = time.monotonic()
                ref = meter.fingerprint(tool.dirs[0])
                if all(meter.fingerprint(d) == ref for d in tool.dirs[1:]):
                    return t
            elif tool.in_sync is not None:
                return meter.wait_signal(tool.dirs, tool.in_sync, TIMEOUT)
            return meter.wait_converged(tool.dirs, TIMEOUT, interval=0.05)
        return wait

    def start(self, tool):
        """Start daemons that are not the thing measured (push tools' servers;
        Syncthing's instances before the folder exists)."""
        if not isinstance(tool, tools.Gossync):
            tool.start()

    def trigger_initial(self, tool):
        def act():
            t0 = time.monotonic()
            if isinstance(tool, tools.Gossync):
                tool.start()
            elif isinstance(tool, tools.Syncthing):
                tool.add_folder()
            return t0
        return act

    def check(self, tool, what):
        for d in tool.dirs[1:]:
            ok, diff = meter.content_equal(tool.dirs[0], d)
            if not ok:
                log(f"CONTENT MISMATCH {tool.name} {what}: {diff}")
                return False
        return True

    # ---- scenarios ----

    def scenario_main(self, name, run, n=2, tree="synth", files=None, mb=None):
        """Initial sync, re-sync after the mutation, one file changed, idle."""
        files = files or self.a.files
        mb = mb or self.a.mb
        if tree == "real":
            src, info = self.tree("real")
        else:
            src, info = self.tree(f"synth-{files}-{mb}", seed=1, files=files, mb=mb,
                                  large=max(1, files // 2000), large_mb=8)
        if tree != "synth":
            tag = f"-{tree}"
        else:
            tag = "" if files == self.a.files else f"-{files // 1000}k"
        work = os.path.join(self.a.work, name.replace(" ", "_"))
        tool = self.make(name, n, work)
        try:
            subprocess.run(["cp", "-a", src + "/.", tool.dirs[0]], check=True)
            self.start(tool)
            self.measure(tool, f"initial{tag}", run, self.trigger_initial(tool),
                         self.converged(tool), {"tree_files": info["files"],
                                                "tree_bytes": info["bytes"]})
            if isinstance(tool, tools.Gossync):
                tool.wait_ready()
            if run == 1:
                self.check(tool, "initial")
            mut = {}

            def mutate():
                mut.update(gen.mutate(tool.dirs[0], seed=100 + run))
                return time.monotonic()
            self.measure(tool, f"resync{tag}", run, mutate, self.converged(tool), mut)
            if run == 1:
                self.check(tool, "resync")
            if tree != "synth":
                return
            for k in range(3 if n == 2 else 1):
                data = os.urandom(1000)
                rel = f"one-change-{run}-{k}.txt"

                def write():
                    with open(os.path.join(tool.dirs[0], rel), "wb") as f:
                        f.write(data)
                    return time.monotonic()
                self.measure(tool, "one-change", run * 10 + k, write,
                             lambda: meter.wait_file(tool.dirs, rel, data, 120))
            if n == 2 and "idle" in self.a.scenarios:
                time.sleep(2)
                self.idle(tool, run)
        finally:
            tool.stop()

    def idle(self, tool, run, secs=20):
        """CPU and bytes per node over `secs` with nothing changing."""
        self.wire.watch(tool.ports())
        self.wire.zero()
        tool.reset_clients()
        procs = meter.Procs(tool.node_pids)
        procs.begin()
        time.sleep(secs)
        cpu, rss = procs.end()
        wire = self.wire.read()
        rec = {"tool": tool.name, "scenario": "idle", "nodes": tool.n, "run": run,
               "secs": secs, "wire_bytes": wire, "cpu_s": sum(cpu), "cpu_per_node": cpu,
               "rss_mb": rss, "load": meter.load(), "time": time.time(),
               # per node: a share of a core, and bytes per second
               "core_pct_per_node": 100 * max(cpu) / secs,
               "bytes_per_s_per_node": wire / secs / tool.n}
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        log(f"{tool.name:>14} idle n={tool.n} run={run} cpu/node={max(cpu):.3f}s "
            f"({rec['core_pct_per_node']:.3f}% core) wire={wire} B "
            f"({rec['bytes_per_s_per_node']:.1f} B/s/node) rss={max(rss):.1f} MiB")
        if not tool.daemon:  # a push tool's idle cost is its cron run: one no-op sync
            self.measure(tool, "noop", run, lambda: None, lambda: time.monotonic())

    def scenario_big(self, name, run):
        """A 1 GiB file, then 1 MiB changed in its middle."""
        src = os.path.join(self.cache, "big")
        if not os.path.exists(src + ".done"):
            gen.make_big(src, 1024)
            open(src + ".done", "w").close()
        work = os.path.join(self.a.work, name.replace(" ", "_"))
        tool = self.make(name, 2, work)
        try:
            subprocess.run(["cp", "-a", src + "/.", tool.dirs[0]], check=True)
            self.start(tool)
            self.measure(tool, "big-initial", run, self.trigger_initial(tool),
                         self.converged(tool), {"tree_bytes": 1 << 30})
            if isinstance(tool, tools.Gossync):
                tool.wait_ready()
            info = {}

            def poke():
                info.update(gen.poke(os.path.join(tool.dirs[0], "big.bin"), 512, 1, seed=run))
                return time.monotonic()
            self.measure(tool, "big-1MiB", run, poke, self.converged(tool), info)
        finally:
            tool.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--tools", default="gossync,rsync,rsync --fsync,unison,syncthing,csync2")
    ap.add_argument("--scenarios", default="main,idle,multi,real,big")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--mb", type=int, default=430)
    ap.add_argument("--multi-files", type=int, default=2000)
    ap.add_argument("--multi-mb", type=int, default=40)
    ap.add_argument("--st-delay", type=int, default=10, help="Syncthing fsWatcherDelayS")
    ap.add_argument("--work", default="/tmp/gossync-compare")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results.jsonl"))
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    a.out = os.path.abspath(a.out)
    os.makedirs(a.work, exist_ok=True)
    names = [t for t in a.tools.split(",") if t]
    sc = a.scenarios.split(",")
    b = Bench(a)
    log("command:", " ".join(sys.argv), "load", meter.load())
    try:
        for run in range(1, a.runs + 1):
            for name in names:
                try:
                    if "main" in sc:
                        b.scenario_main(name, run)
                    if "multi" in sc:
                        for n in (3, 5):
                            b.scenario_main(name, run, n=n, files=a.multi_files, mb=a.multi_mb)
                    if "real" in sc:
                        b.scenario_main(name, run, tree="real")
                    if "big" in sc:
                        b.scenario_big(name, run)
                except Exception as e:  # one tool's failure must not stop the others
                    log(f"{name} run {run} FAILED: {e!r}")
    finally:
        b.wire.close()


if __name__ == "__main__":
    main()
