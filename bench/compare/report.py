#!/usr/bin/python3
"""Table (median of the runs, with min and max), PNG plots and the verdict
on each target of issue 7, from the suite's results.

  bench/compare/report.py [--results FILE ...] [--docs docs/performance.md]
        [--img docs/img]

--results defaults to those of results.jsonl and results-million.jsonl (next
to this script) that exist. With --docs, the
tables replace what stands between <!-- compare:begin --> and
<!-- compare:end --> in that file, and the verdicts what stands between
<!-- targets:begin --> and <!-- targets:end -->.
"""
import argparse
import collections
import json
import os
import statistics
import sys

ORDER = ["gossync", "rsync", "rsync --fsync", "unison", "syncthing", "csync2"]
SCEN = ["initial", "resync", "one-change", "initial-2k", "resync-2k", "initial-real",
        "resync-real", "big-initial", "big-1MiB", "noop", "idle"]
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RESULTS = ["results.jsonl", "results-million.jsonl"]


def load(paths):
    recs = []
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    recs.append(json.loads(line))
    return recs


def mmm(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs)


def fmt_t(v):
    if v is None:
        return "failed"
    m, lo, hi = v
    f = (lambda x: f"{x:.2f}") if m < 10 else (lambda x: f"{x:.1f}")
    return f"{f(m)} ({f(lo)}-{f(hi)})"


def fmt_b(v):
    if v is None:
        return "-"
    m, lo, hi = v

    def one(x):
        if x >= 1e6:
            return f"{x / 1e6:.1f} MB"
        if x >= 1e3:
            return f"{x / 1e3:.1f} kB"
        return f"{x:.0f} B"
    return f"{one(m)} ({one(lo)}-{one(hi)})"


def groups(recs):
    g = collections.OrderedDict()
    for r in recs:
        if r["scenario"].startswith("find-"):
            continue
        g.setdefault((r["scenario"], r["nodes"], r["tool"]), []).append(r)
    return g


def key(k):
    s, n, t = k
    return (SCEN.index(s) if s in SCEN else 99, n, ORDER.index(t) if t in ORDER else 99)


def table(recs):
    g = groups(recs)
    out = ["| scenario | nodes | tool | runs | seconds to converge: median (min-max) | "
           "bytes on the wire | CPU s (all nodes) | peak RSS per node, MiB | load avg |",
           "|---|---:|---|---:|---|---|---|---|---|"]
    for k in sorted(g, key=key):
        s, n, t = k
        rs = g[k]
        if s == "idle":
            cpu = mmm([r["core_pct_per_node"] for r in rs])
            bps = mmm([r["bytes_per_s_per_node"] for r in rs])
            out.append(f"| idle (per node, {rs[0]['secs']} s windows) | {n} | {t} | {len(rs)} | "
                       f"{cpu[0]:.3f}% of a core ({cpu[1]:.3f}-{cpu[2]:.3f}) | "
                       f"{bps[0]:.0f} B/s ({bps[1]:.0f}-{bps[2]:.0f}) | - | "
                       f"{statistics.median(max(r['rss_mb']) for r in rs):.1f} | "
                       f"{min(r['load'] for r in rs):.1f}-{max(r['load'] for r in rs):.1f} |")
            continue
        secs = mmm([r["secs"] for r in rs]) if all(r["secs"] is not None for r in rs) else None
        out.append(f"| {s} | {n} | {t} | {len(rs)} | {fmt_t(secs)} | "
                   f"{fmt_b(mmm([r['wire_bytes'] for r in rs]))} | "
                   f"{statistics.median(r['cpu_s'] for r in rs):.2f} | "
                   f"{statistics.median(max(r['rss_mb']) for r in rs):.1f} | "
                   f"{min(r['load'] for r in rs):.1f}-{max(r['load'] for r in rs):.1f} |")
    return "\n".join(out)


def million(recs):
    rs = [r for r in recs if r["scenario"].startswith("find-")]
    if not rs:
        return ""
    out = ["| differences among entries | session (TLS records, both ways) | of which content | "
           "descent levels | TCP bytes on the repair ports (with the TLS handshake) | "
           "session ms | load |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rs, key=lambda r: (r["entries"], r["diffs"])):
        out.append(f"| {r['diffs']:,} of {r['entries']:,} | {r['wire_in'] + r['wire_out']:,} | "
                   f"{r['content_bytes']:,} | {r['levels']} | {r['tcp_bytes_repair_ports']:,} | "
                   f"{r['session_ms']:,} | {r['load']:.1f} |")
    return "\n".join(out)


def plots(recs, img):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    g = groups(recs)
    scen = [(s, n) for s, n in sorted({(k[0], k[1]) for k in g},
                                      key=lambda x: key((x[0], x[1], "")))
            if s not in ("idle", "noop")]
    tools = [t for t in ORDER if any(k[2] == t for k in g)]
    os.makedirs(img, exist_ok=True)
    files = []
    for what, field, fname, ylabel in (
            ("time", "secs", "compare-time.png", "seconds until every node matches (log)"),
            ("bytes", "wire_bytes", "compare-bytes.png", "bytes on the wire (log)")):
        fig, ax = plt.subplots(figsize=(13, 5.5))
        w = 0.8 / max(1, len(tools))
        for i, t in enumerate(tools):
            xs, ms, lo, hi = [], [], [], []
            for j, (s, n) in enumerate(scen):
                rs = g.get((s, n, t))
                if not rs or any(r[field] is None for r in rs):
                    continue
                v = mmm([max(r[field], 1e-3) for r in rs])
                xs.append(j + (i - (len(tools) - 1) / 2) * w)
                ms.append(v[0])
                lo.append(v[0] - v[1])
                hi.append(v[2] - v[0])
            ax.bar(xs, ms, w, yerr=[lo, hi], label=t, capsize=2)
        ax.set_yscale("log")
        ax.set_xticks(range(len(scen)))
        ax.set_xticklabels([f"{s}\n{n} nodes" for s, n in scen], fontsize=8)
        ax.set_ylabel(ylabel)
        loads = [r["load"] for rs in g.values() for r in rs]
        ax.set_title(f"{what}: median of the runs, bars from min to max "
                     f"(bench/compare/suite.py; 127.0.0.1, 2 cores, load average "
                     f"{min(loads):.0f}-{max(loads):.0f})")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = os.path.join(img, fname)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path)
    return files


def med(rs, field):
    xs = [r[field] for r in rs if r.get(field) is not None]
    return statistics.median(xs) if xs else None


def targets(recs):
    """One row per target of issue 7: the figure, met or missed, by how much."""
    g = groups(recs)

    def get(s, n, t):
        rs = g.get((s, n, t), [])
        return rs if rs and all(r["secs"] is not None for r in rs) else []

    def verdict(ok):
        return "**met**" if ok else "**missed**"
    rows = ["| target | measured (median of the runs) | verdict |", "|---|---|---|"]
    gr, rr = get("resync", 2, "gossync"), get("resync", 2, "rsync")
    if gr and rr:
        gt, rt = med(gr, "secs"), med(rr, "secs")
        rows.append(f"| re-sync after the mutation: at most 1/3 of rsync's time | gossync "
                    f"{gt:.2f} s, rsync {rt:.2f} s: {gt / rt:.2f} x rsync | "
                    f"{verdict(gt <= rt / 3)}" +
                    ("" if gt <= rt / 3 else f", by {gt / (rt / 3):.1f} x") + " |")
    if gr:
        w = med(gr, "wire_bytes")
        cap = statistics.median(1.1 * r["content_bytes"] + 1024 * r["entries"] for r in gr)
        cb = med(gr, "content_bytes")
        rows.append(f"| re-sync: at most 1.1 x the changed bytes + 1 KiB per changed entry on "
                    f"the wire | {w / 1e6:.2f} MB (IP bytes, TLS and TCP included) for "
                    f"{cb / 1e6:.2f} MB changed in {gr[0]['entries']} entries: cap "
                    f"{cap / 1e6:.2f} MB, {w / cb:.3f} x the changed bytes | "
                    f"{verdict(w <= cap)} |")
    gi, ri = get("initial", 2, "gossync"), get("initial", 2, "rsync")
    if gi and ri:
        gt, rt = med(gi, "secs"), med(ri, "secs")
        fs = get("initial", 2, "rsync --fsync")
        extra = f"; rsync --fsync {med(fs, 'secs'):.1f} s" if fs else ""
        rows.append(f"| initial sync of 20,000 files / 430 MB: at most 2 x rsync's time, every "
                    f"file durable before visible | gossync {gt:.1f} s (fsync per file), rsync "
                    f"{rt:.1f} s (no fsync){extra}: {gt / rt:.1f} x rsync | {verdict(gt <= 2 * rt)}"
                    + ("" if gt <= 2 * rt else f", by {gt / (2 * rt):.1f} x") + " |")
    if gi:
        rss = statistics.median(max(r["rss_mb"]) for r in gi)
        idle = g.get(("idle", 2, "gossync"), [])
        steady = statistics.median(max(r["rss_mb"]) for r in idle) if idle else None
        st = f"; idle after it: {steady:.1f} MiB" if steady else ""
        rows.append(f"| resident memory with 20,000 files: at most 30 MB per agent | peak "
                    f"(VmHWM) during the initial sync {rss:.1f} MiB on the busier node{st} | "
                    f"{verdict(rss * 1.048576 <= 30)}"
                    + ("" if rss * 1.048576 <= 30 else f", by {rss * 1.048576 / 30:.1f} x") + " |")
    one5 = get("one-change", 5, "gossync")
    if one5:
        worst = max(r["secs"] for r in one5)
        rows.append(f"| a single change on every node of a 5-node cluster in under 1 s | "
                    f"median {med(one5, 'secs'):.3f} s, worst {worst:.3f} s of {len(one5)} | "
                    f"{verdict(worst < 1)} |")
    one = [r for r in recs if r["scenario"] == "find-1-of-1000000"]
    if one:
        r = one[-1]
        b = r["wire_in"] + r["wire_out"]
        rows.append(f"| one differing entry among 1,000,000: at most 3 round trips and 1.5 KB | "
                    f"{r['levels']} descent levels; {b:,} B of session records both ways "
                    f"({r['content_bytes']} B of it content); {r['tcp_bytes_repair_ports']:,} B "
                    f"of TCP with the TLS handshake | see the round trips in "
                    f"\"Repair protocol\" above; {verdict(b <= 1536)} for the bytes |")
    idle = g.get(("idle", 2, "gossync"), [])
    if idle:
        cpu = statistics.median(r["core_pct_per_node"] for r in idle)
        bps = statistics.median(r["bytes_per_s_per_node"] for r in idle)
        rows.append(f"| idle: at most 0.1% of a core and 1 KB/s per node | {cpu:.3f}% of a core, "
                    f"{bps:.0f} B/s per node (CPU from clock ticks: a 20 s window resolves "
                    f"0.05%) | {verdict(round(cpu, 3) <= 0.1 and bps <= 1000)} |")
    return "\n".join(rows)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", nargs="+",
                    default=[p for p in (os.path.join(HERE, f) for f in DEFAULT_RESULTS)
                             if os.path.exists(p)])
    ap.add_argument("--targets-from", nargs="+",
                    help="result files for the verdicts (default: --results), e.g. a "
                         "head-to-head run of gossync and rsync alone on the machine")
    ap.add_argument("--docs")
    ap.add_argument("--img")
    a = ap.parse_args()
    recs = load(a.results)
    text = table(recs) + "\n"
    m = million(recs)
    if m:
        text += "\n" + m + "\n"
    trecs = recs
    if a.targets_from:
        # The head-to-head runs where they have the figure, the rest from --results.
        h2h = load(a.targets_from)
        have = {(r["scenario"], r["nodes"], r["tool"]) for r in h2h}
        trecs = h2h + [r for r in recs if (r["scenario"], r["nodes"], r["tool"]) not in have]
    tg = targets(trecs) + "\n"
    if a.targets_from:
        # The head-to-head runs behind the verdicts, as a table of their own.
        tg += "\nThe head-to-head runs behind the first verdicts (" + ", ".join(
            os.path.relpath(p, os.path.dirname(HERE) + "/..") for p in a.targets_from) + "):\n\n"
        tg += table(h2h) + "\n"
    print(text)
    print(tg)
    if a.img:
        for p in plots(recs, a.img):
            print("wrote", p, file=sys.stderr)
    if a.docs:
        with open(a.docs) as f:
            doc = f.read()
        b, e = "<!-- compare:begin -->", "<!-- compare:end -->"
        for b, e, t in (("<!-- compare:begin -->", "<!-- compare:end -->", text),
                        ("<!-- targets:begin -->", "<!-- targets:end -->", tg)):
            if b in doc and e in doc:
                doc = doc[:doc.index(b) + len(b)] + "\n" + t + doc[doc.index(e):]
        with open(a.docs, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
