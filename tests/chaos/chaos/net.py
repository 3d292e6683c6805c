"""Network namespaces for the chaos harness, and the faults on them.

Layout: one namespace holds a bridge (br0); each node has a namespace of its
own with one interface, eth0, a veth whose other end is a port of br0. The
nodes' addresses are in 10.99.0.0/24 (node i is 10.99.0.(10+i)); they exist
only inside these namespaces, so nothing here touches the host's network.

Faults are iptables rules inside the node namespaces, in chains of our own:

  INPUT  -i eth0 -> CHAOS-PART-IN  (partitions: DROP by source)
                 -> CHAOS-LOSS     (loss: -m statistic --probability p DROP)
                 -> CHAOS-DELAY    (delay: NFQUEUE to nfq_delay, --queue-bypass)
  OUTPUT -o eth0 -> CHAOS-PART-OUT (partitions: DROP by destination)

so each kind of fault is set and healed on its own, and every packet meets
each fault once, at its receiver. The kernel has no netem; delay and
reordering come from tests/chaos/nfq_delay, one per namespace. Delay is
applied on input, not output: a packet held on the sender's output path is
still charged to its socket, and TCP Small Queues then lets only a couple of
packets be in flight (2 MiB took 72 s at 100 ms instead of about 2 s).
"""

import os
import re
import subprocess
from . import util

SUBNET = "10.99.0"
PREFIX = "gsc"  # namespace names: gsc<pid>-br, gsc<pid>-n1, ...
QUEUE = 7       # NFQUEUE number (queues are per network namespace)


def _run(argv, check=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r


def can_make_namespaces():
    """(True, "") when this process can make network namespaces, else (False, why)."""
    if os.geteuid() != 0:
        return False, "needs root (ip netns, iptables, mount)"
    for tool in ("ip", "iptables"):
        if not util.which(tool):
            return False, "%s not found (iproute2, iptables)" % tool
    probe = "%s%d-probe" % (PREFIX, os.getpid())
    r = _run(["ip", "netns", "add", probe], check=False)
    if r.returncode != 0:
        return False, "ip netns add failed: " + r.stderr.strip()
    try:
        r = _run(["ip", "netns", "exec", probe, "iptables", "-w", "-L", "-n"], check=False)
        if r.returncode != 0:
            return False, "iptables in a namespace failed: " + r.stderr.strip()
        r = _run(["ip", "-n", probe, "link", "add", "vp", "type", "veth", "peer", "name", "vq"],
                 check=False)
        if r.returncode != 0:
            return False, "veth pairs unavailable: " + r.stderr.strip()
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    return True, ""


def remove_stale():
    """Deletes namespaces left by earlier runs whose process is gone."""
    r = _run(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        m = re.match(r"(%s(\d+)-\S+)" % PREFIX, line)
        if m and not os.path.exists("/proc/" + m.group(2)):
            _run(["ip", "netns", "del", m.group(1)], check=False)


class Network:
    """The bridge namespace and one namespace per node. Call close()."""

    def __init__(self, names, nfq_delay_path=None):
        self.tag = "%s%d" % (PREFIX, os.getpid())
        self.names = list(names)
        self.bridge_ns = self.tag + "-br"
        self.ns = {}
        self.ip = {}
        self.nfq_delay_path = nfq_delay_path
        self.delayers = {}
        self._made = []
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self):
        _run(["ip", "netns", "add", self.bridge_ns])
        self._made.append(self.bridge_ns)
        _run(["ip", "-n", self.bridge_ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])
        for i, name in enumerate(self.names, start=1):
            ns = "%s-%s" % (self.tag, name)
            ip = "%s.%d" % (SUBNET, 10 + i)
            _run(["ip", "netns", "add", ns])
            self._made.append(ns)
            port = "v%d" % i
            _run(["ip", "-n", self.bridge_ns, "link", "add", port, "type", "veth",
                  "peer", "name", "eth0", "netns", ns])
            _run(["ip", "-n", self.bridge_ns, "link", "set", port, "master", "br0", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            self._iptables_restore(ns, "\n".join([
                "*filter",
                ":CHAOS-PART-IN - [0:0]",
                ":CHAOS-LOSS - [0:0]",
                ":CHAOS-PART-OUT - [0:0]",
                ":CHAOS-DELAY - [0:0]",
                "-A INPUT -i eth0 -j CHAOS-PART-IN",
                "-A INPUT -i eth0 -j CHAOS-LOSS",
                "-A INPUT -i eth0 -j CHAOS-DELAY",
                "-A OUTPUT -o eth0 -j CHAOS-PART-OUT",
                "COMMIT", ""]))
            self.ns[name] = ns
            self.ip[name] = ip

    def exec_argv(self, name):
        """The argv prefix that runs a command inside node `name`'s namespace."""
        return ["ip", "netns", "exec", self.ns[name]]

    def _iptables_restore(self, ns, rules):
        r = subprocess.run(["ip", "netns", "exec", ns, "iptables-restore", "-w", "--noflush"],
                           input=rules, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("iptables-restore in %s: %s\n%s" % (ns, r.stderr.strip(), rules))

    def _set_chain(self, name, chain, rules):
        """Replaces the rules of `chain` in node `name`'s namespace."""
        lines = ["*filter", "-F " + chain] + ["-A %s %s" % (chain, r) for r in rules]
        self._iptables_restore(self.ns[name], "\n".join(lines + ["COMMIT", ""]))

    # --- partitions ------------------------------------------------------------

    def partition(self, *groups):
        """Symmetric partition: nodes in different groups cannot exchange a
        packet. Nodes named in no group keep talking to everyone. Replaces any
        earlier partition."""
        blocked = {n: set() for n in self.names}
        for gi, g in enumerate(groups):
            for hi, h in enumerate(groups):
                if gi != hi:
                    for a in g:
                        blocked[a].update(h)
        self._apply_blocks({n: sorted(b) for n, b in blocked.items()},
                           {n: sorted(b) for n, b in blocked.items()})

    def isolate(self, name):
        """Cuts one node off from all others, both ways."""
        self.partition([name], [n for n in self.names if n != name])

    def one_way(self, *pairs):
        """For each (src, dst): packets from src to dst are dropped, while dst
        to src still pass. Replaces any earlier partition."""
        outgoing = {n: [] for n in self.names}
        incoming = {n: [] for n in self.names}
        for src, dst in pairs:
            outgoing[src].append(dst)
            incoming[dst].append(src)
        self._apply_blocks(incoming, outgoing)

    def _apply_blocks(self, incoming, outgoing):
        for n in self.names:
            self._set_chain(n, "CHAOS-PART-IN",
                            ["-s %s -j DROP" % self.ip[p] for p in incoming[n]])
            self._set_chain(n, "CHAOS-PART-OUT",
                            ["-d %s -j DROP" % self.ip[p] for p in outgoing[n]])

    def heal_partitions(self):
        for n in self.names:
            self._set_chain(n, "CHAOS-PART-IN", [])
            self._set_chain(n, "CHAOS-PART-OUT", [])

    # --- loss and delay ----------------------------------------------------------

    def set_loss(self, probability, names=None):
        """Drops this share of the packets each node receives (0 heals)."""
        for n in names or self.names:
            rules = []
            if probability > 0:
                rules.append("-m statistic --mode random --probability %.4f -j DROP" % probability)
            self._set_chain(n, "CHAOS-LOSS", rules)

    def set_delay(self, delay_ms, jitter_ms, seed=0, names=None):
        """Holds each packet a node receives for delay_ms +- jitter_ms
        (uniform), which also reorders them. delay_ms 0 heals."""
        if delay_ms > 0 and not self.nfq_delay_path:
            raise RuntimeError("no nfq_delay helper: delay is unavailable")
        for i, n in enumerate(names or self.names):
            self._stop_delayer(n)
            if delay_ms <= 0:
                continue
            p = subprocess.Popen(
                self.exec_argv(n) + [self.nfq_delay_path, "--queue", str(QUEUE),
                                     "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                                     "--seed", str(seed * 100 + i)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = p.stdout.readline().strip()
            if line != "ready":
                p.kill()
                raise RuntimeError("nfq_delay in %s did not start: %s" % (n, p.stderr.read()))
            self.delayers[n] = p
            self._set_chain(n, "CHAOS-DELAY",
                            ["-j NFQUEUE --queue-num %d --queue-bypass" % QUEUE])

    def _stop_delayer(self, n):
        self._set_chain(n, "CHAOS-DELAY", [])
        p = self.delayers.pop(n, None)
        if p:
            p.terminate()
            try:
                _, err = p.communicate(timeout=5)
                util.log("%s %s" % (n, err.strip().splitlines()[-1] if err.strip() else ""))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def heal_all(self):
        self.heal_partitions()
        self.set_loss(0)
        for n in list(self.delayers):
            self._stop_delayer(n)

    def close(self):
        for n in list(self.delayers):
            try:
                self._stop_delayer(n)
            except Exception:  # the namespace may be half made
                p = self.delayers.pop(n, None)
                if p:
                    p.kill()
        for ns in reversed(self._made):
            _run(["ip", "netns", "del", ns], check=False)
        self._made = []
