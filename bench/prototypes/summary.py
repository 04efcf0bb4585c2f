#!/usr/bin/python3
"""Summarise bench/prototypes/results/raw.tsv (and the per-relation files of case 5) as plain text tables."""
import statistics
import sys
from collections import defaultdict

raw, rels = sys.argv[1], sys.argv[2:]
rows = [l.rstrip("\n").split("\t") for l in open(raw) if l.strip()]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return f"{min(xs):.2f}-{max(xs):.2f}" if xs else "-"


c5 = defaultdict(list)
for r in rows:
    if r[0] == "c5":
        _, v, held, rnd, first, last, secs, done = r
        c5[(v, held)].append((float(first), float(last), float(secs), int(done)))
if c5:
    print("case 5: drain, 2 clients, batch 10 (jobs/s; ratio = last tenth / first tenth; median and range over rounds)")
    print(f"{'variant':8} {'snapshot':8} {'first':>7} {'last':>7} {'ratio':>6} {'range':>11} {'secs':>6} {'done':>8} {'n':>2}")
    base_first = {h: med([x[0] for x in c5.get(("base", h), [])]) for h in ("held", "clean")}
    for (v, held), xs in sorted(c5.items()):
        ratios = [x[1] / x[0] for x in xs if x[0] > 0]
        print(f"{v:8} {held:8} {med([x[0] for x in xs]):7.0f} {med([x[1] for x in xs]):7.0f} {med(ratios):6.2f} "
              f"{spread(ratios):>11} {med([x[2] for x in xs]):6.1f} {med([x[3] for x in xs]):8.0f} {len(xs):2}")
    print("first tenth vs the SKIP LOCKED baseline of the same run (median of the per-variant medians):")
    for (v, held), xs in sorted(c5.items()):
        if base_first.get(held):
            print(f"  {v:8} {held:8} {med([x[0] for x in xs]) / base_first[held]:.2f}x base")
    print()
if rels:
    print("case 5 with the snapshot held: per relation at the end of the drain (each round)")
    for f in rels:
        for l in open(f):
            print("  " + l.rstrip("\n").replace("\t", "  "))
    print()
sz = [r for r in rows if r[0] == "size"]
if sz:
    print("size after draining 50,000 jobs (2 clients, batch 10, no held snapshot), before and after one maintenance round")
    for r in sz:
        v, done, before, after = r[1:5]
        below = r[5] if len(r) > 5 else "-"
        print(f"  {v:8} completed={done:>6}  left below the cursor={below:>2}  after drain {int(before) / 1048576:6.1f} MiB  "
              f"after maintenance {int(after) / 1048576:6.1f} MiB")
    print()
st = [r for r in rows if r[0] == "stats"]
if st:
    print("exact stats: median ms (case-4 mix at each size)")
    for _, what, n, cond, val in st:
        print(f"  {what:13} {int(n):>9} {cond:15} {val}")
    print()
xm = [r for r in rows if r[0] == "xmin"]
if xm:
    print("backend_xmin of a waiting session, sampled each second (other sessions take an xid at each sample)")
    for _, mode, k, val in xm:
        print(f"  {mode:12} t={k}s  {val}")
    print()
enq = defaultdict(list)
for r in rows:
    if r[0] == "enq":
        enq[r[1]].append(float(r[3]))
if enq:
    b = med(enq.get("base_enq", [float("nan")]))
    print("single-row enqueue, 2 clients, 5 s runs (tps median, range, ratio to plain INSERT)")
    for f, xs in sorted(enq.items()):
        print(f"  {f:17} {med(xs):8.0f}  {min(xs):.0f}-{max(xs):.0f}  {med(xs) / b:.2f}x")
