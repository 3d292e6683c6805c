#!/usr/bin/env python3
"""Chaos scenarios: real agents in network namespaces under faults.

  scenarios.py --gossyncd B --gossync B [--nfq-delay B] [--seed S] NAME
  scenarios.py --list

Each scenario starts its own cluster, injects its faults while a workload
writes on the nodes, heals, waits for convergence and checks every promise
(chaos/checker.py). Exit 0: passed; 1: failed; 77: skipped (no root or no
network namespaces here; ctest reports it as skipped).
"""

import argparse
import os
import random
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos import net, util  # noqa: E402
from chaos.cluster import Binaries, Cluster  # noqa: E402
from chaos.util import Failure, log  # noqa: E402

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def seed_files(c, node="n1", count=12):
    """Some files on one node, synced everywhere before the faults."""
    a = c[node]
    for p in c.workload.pool[:count]:
        c.workload.write(a, p)
    c.wait_converged(30, what="initial sync")


def assert_apart(c, a, b):
    """The fault is real: a and b did not converge (both sides wrote)."""
    ra, rb = c[a].status().get("root"), c[b].status().get("root")
    if ra == rb:
        raise Failure("%s and %s have the same root %s across the partition" % (a, b, ra))


# --- scenarios -------------------------------------------------------------------


@scenario
def partition(b, seed):
    """{n1,n2} | {n3}: writes on both sides; each side converges on its own;
    after healing everything converges and nothing is lost."""
    with Cluster(b, 3, seed) as c:
        c.start()
        seed_files(c)
        c.net.partition(["n1", "n2"], ["n3"])
        c.workload.run([c["n1"], c["n2"], c["n3"]], 80, pause_s=0.03)
        c.wait_converged(30, ["n1", "n2"], "the majority side converging on its own")
        assert_apart(c, "n1", "n3")
        c.net.heal_partitions()
        c.wait_converged(40)
        c.final_check()


# --- runner ------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gossyncd")
    ap.add_argument("--gossync")
    ap.add_argument("--nfq-delay")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("name", nargs="?")
    args = ap.parse_args()
    if args.list:
        for name, fn in SCENARIOS.items():
            print("%-28s %s" % (name, (fn.__doc__ or "").strip().splitlines()[0]))
        return 0
    if args.name not in SCENARIOS or not args.gossyncd or not args.gossync:
        ap.error("need --gossyncd, --gossync and one of: " + ", ".join(SCENARIOS))
    ok, why = net.can_make_namespaces()
    if not ok:
        print("SKIP: chaos scenario %s: %s" % (args.name, why))
        return 77
    seed = args.seed if args.seed is not None else int(os.environ.get("GOSSYNC_CHAOS_SEED", 0)) \
        or random.SystemRandom().randrange(1, 1 << 31)
    log("scenario %s seed %d (rerun: --seed %d)" % (args.name, seed, seed))
    b = Binaries(args.gossyncd, args.gossync, args.nfq_delay)
    t0 = time.monotonic()
    try:
        SCENARIOS[args.name](b, seed)
    except Failure as e:
        log("FAIL %s (seed %d) after %.1f s: %s" % (args.name, seed, time.monotonic() - t0, e))
        return 1
    except Exception:
        traceback.print_exc()
        log("FAIL %s (seed %d) after %.1f s: harness error" % (args.name, seed,
                                                              time.monotonic() - t0))
        return 1
    log("PASS %s (seed %d) in %.1f s" % (args.name, seed, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
