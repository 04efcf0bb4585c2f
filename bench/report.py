#!/usr/bin/python3
"""Summarise bench/run.sh's raw measurements: print the table, write report.md and chart.png.

raw.tsv lines: variant <TAB> round <TAB> value      (or: variant <TAB> NA <TAB> reason)
meta.tsv lines: key <TAB> value

Figures are medians over rounds.  The ratio is the median of per-round ratios awa/baseline when both
sides ran in the same rounds (alternating), which cancels slow drift of a shared machine; otherwise the
ratio of medians.  Run it again by hand to re-render:  /usr/bin/python3 bench/report.py \
  --raw bench/results/tmp/raw.tsv --meta bench/results/tmp/meta.tsv --out bench/results
"""
import argparse
import math
import os
import statistics
from collections import OrderedDict, defaultdict


def load_raw(path):
    vals = defaultdict(dict)    # variant -> {round: value} (rounds may repeat: case 6 uses many)
    samples = defaultdict(list)
    na = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            v, r, x = parts
            if r == "NA":
                na[v] = x
                continue
            vals[v][r] = float(x)
            samples[v].append(float(x))
    return vals, samples, na


def load_meta(path):
    meta = OrderedDict()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "\t" in line:
                    k, v = line.rstrip("\n").split("\t", 1)
                    meta[k] = v
    return meta


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# (case, label, awa variant, baseline variant, baseline label, unit, stat, target kind, target value)
#   target kind: "ratio" (awa/baseline >= value), "max_ms" (awa figure < value ms), None (reference)
def rows_spec(vals, na, meta):
    size_jobs = next((p.split("=", 1)[1] for p in meta.get("params", "").split() if p.startswith("size_jobs=")), "50000")
    size_jobs = f"{int(size_jobs):,}" if size_jobs.isdigit() else size_jobs
    rows = [
        ("1", "enqueue, 1 row per tx, pgbench 2 clients", "c1_awa", "c1_base", "plain INSERT", "tx/s", "median", "ratio", 0.95),
        ("1", "enqueue, 100 rows per statement, 1 client", "c1_awa100", "c1_base100", "INSERT ... SELECT", "rows/s", "median", "ratio", 0.7),
        ("1", "awa_insert vs PgQ (reference)", "c1_awa", "c1_pgq", "pgq.insert_event", "tx/s", "median", None, None),
        ("1", "awa_insert with a LISTEN on awa:default vs none", "c1_awa_listener", "c1_awa", "no listener", "tx/s", "median", None, None),
        ("2", "bulk: COPY path", "c2_copy_awa", "c2_copy_base", "raw COPY", "rows/s", "median", "ratio", 0.7),
        ("2", "bulk: awa_insert_many, 1,000 per call", "c2_many_awa", "c2_many_base", "INSERT ... SELECT", "rows/s", "median", "ratio", 0.7),
        ("3", "claim+complete, batch 1", "c3_awa_b1", "c3_base_n1", "SKIP LOCKED n=1", "jobs/s", "median", "ratio", 0.8),
        ("3", "claim+complete_many, batch 10", "c3_awa_b10", "c3_base_n10", "SKIP LOCKED n=10", "jobs/s", "median", "ratio", 1.2),
        ("3", "claim+complete_many, batch 100", "c3_awa_b100", "c3_base_n10", "SKIP LOCKED n=10", "jobs/s", "median", "ratio", 2.5),
    ]
    sizes = sorted({int(v.rsplit("_", 1)[1]) for v in list(vals) + list(na) if v.startswith("c4_")})
    for s in sizes:
        rows.append(("4", f"awa_queue_stats(), {s:,} jobs", f"c4_stats_{s}", f"c4_count_{s}", "count(*) GROUP BY", "ms", "median", "max_ms", 10))
        rows.append(("4", f"awa_list_jobs() newest page, {s:,} jobs", f"c4_list_{s}", f"c4_count_{s}", "count(*) GROUP BY", "ms", "median", "max_ms", 10))
        rows.append(("4", f"awa_list_jobs(queue, state=available), {s:,} jobs", f"c4_listf_{s}", f"c4_count_{s}", "count(*) GROUP BY", "ms", "median", "max_ms", 10))
        rows.append(("4", f"awa_list_jobs() newest page fetched by psycopg (reference), {s:,} jobs", f"c4_listc_{s}", f"c4_count_{s}", "count(*) GROUP BY", "ms", "median", None, None))
    rows += [
        ("5", "held xmin: awa, last tenth vs first", "c5_awa_last", "c5_awa_first", "awa first tenth", "jobs/s", "median", "ratio", 0.9),
        ("5", "held xmin: dead tuples at the end (awa: all its tables)", "c5_dead_awa", "c5_dead_base", "plain table", "tuples", "median", None, None),
        ("5", "held xmin: plain SQL n=10, last vs first", "c5_base_last", "c5_base_first", "its first tenth", "jobs/s", "median", None, None),
        ("5", "waiter in awa_claim(wait) elsewhere: awa, last tenth vs first", "c5_awa_claim_fn_last", "c5_awa_claim_fn_first", "its first tenth", "jobs/s", "median", None, None),
        ("5", "waiter in CALL awa_claim_wait elsewhere: awa, last tenth vs first", "c5_awa_claim_proc_last", "c5_awa_claim_proc_first", "its first tenth", "jobs/s", "median", "ratio", 0.8),
        ("5", f"size after draining {size_jobs} jobs, one maintenance round and VACUUM", "c5_size_awa", "c5_size_base", "plain table after VACUUM", "MiB", "median", "max_mib", 6.4),
        ("6", "wake-up latency, median", "c6_awa", "c6_notify", "LISTEN/NOTIFY", "ms", "median", "max_ms", 10),
        ("6", "wake-up latency, p99", "c6_awa", "c6_notify", "LISTEN/NOTIFY", "ms", "p99", None, None),
    ]
    return rows


def fmt(x, unit):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if unit == "ms":
        return f"{x:.2f}" if x < 100 else f"{x:.0f}"
    if unit == "MiB":
        return f"{x:.2f}"
    return f"{x:,.0f}"


def evaluate(rows, vals, samples, na):
    out = []
    for case, label, av, bv, blabel, unit, stat, kind, target in rows:
        r = dict(case=case, label=label, baseline=blabel, unit=unit, kind=kind, target=target)
        r["target_text"] = target_text(r)
        if av not in vals:
            why = na.get(av) or "not measured"
            # a call cancelled for taking too long is a measured miss, not an absence
            met = False if why.startswith("timeout") and kind == "max_ms" else None
            r.update(awa=None, base=None, ratio=None, met=met, note=f"not available: {why}",
                     miss=why.replace("timeout: ", "") + ", cancelled" if met is False else "")
            out.append(r)
            continue
        if bv not in vals:
            a = pct(samples[av], 99) if stat == "p99" else statistics.median(samples[av])
            r.update(awa=a, base=None, ratio=None, note=f"baseline not available: {na.get(bv) or 'not measured'}")
            r["target_text"] = target_text(r)
            if kind == "max_ms":
                r["met"] = a < target
                r["miss"] = "" if r["met"] else f"{a / target:.1f}x the limit"
            elif kind == "max_mib":
                r["met"] = a <= target
                r["miss"] = "" if r["met"] else f"{a / target:.1f}x the limit"
            else:
                r["met"] = None
                r["miss"] = ""
            out.append(r)
            continue
        if stat == "p99":
            a, b = pct(samples[av], 99), pct(samples[bv], 99)
        else:
            a, b = statistics.median(samples[av]), statistics.median(samples[bv])
        common = sorted(set(vals[av]) & set(vals[bv]))
        if stat == "median" and len(common) >= 1 and len(common) == len(vals[av]) and all(vals[bv][k] > 0 for k in common):
            ratio = statistics.median(vals[av][k] / vals[bv][k] for k in common)
        else:
            ratio = a / b if b else float("nan")
        r.update(awa=a, base=b, ratio=ratio, note="")
        r["target_text"] = target_text(r)
        if kind == "ratio":
            r["met"] = ratio >= target
            r["miss"] = "" if r["met"] else f"{(ratio / target - 1) * 100:+.0f}% vs target"
        elif kind == "max_ms":
            r["met"] = a < target
            r["miss"] = "" if r["met"] else f"{a / target:.1f}x the limit"
        elif kind == "max_mib":
            r["met"] = a <= target
            r["miss"] = "" if r["met"] else f"{a / target:.1f}x the limit"
        else:
            r["met"] = None
            r["miss"] = ""
        out.append(r)
    return out


def target_text(r):
    if r["kind"] == "ratio":
        return f">= {r['target']:g}x"
    if r["kind"] == "max_ms":
        return f"< {r['target']:g} ms"
    if r["kind"] == "max_mib":
        return f"<= {r['target']:g} MiB"
    return "reference"


def table_lines(res, markdown):
    head = ["case", "measure", "unit", "awa", "baseline", "baseline figure", "ratio", "target", "met?"]
    lines = []
    for r in res:
        if r["awa"] is None:
            cells = [r["case"], r["label"], r["unit"], "-", r["baseline"], "-", "-",
                     target_text(r),
                     "NO: " + r["miss"] if r["met"] is False else r["note"]]
        else:
            met = {True: "yes", False: "NO " + r["miss"], None: "-"}[r["met"]]
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
            cells = [r["case"], r["label"], r["unit"], fmt(r["awa"], r["unit"]), r["baseline"],
                     fmt(r["base"], r["unit"]), ratio, r["target_text"], met]
        lines.append(cells)
    if markdown:
        md = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        md += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in lines]
        return md
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt_line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [fmt_line(head), fmt_line(["-" * w for w in widths])] + [fmt_line(c) for c in lines]


NOTES = """\
## How each case is measured

Every case runs awa and its baseline in the same run, alternating (the order rotates each round), and
reports medians; the ratio column is the median of per-round ratios awa / baseline (for ms rows: awa time
/ baseline time, lower is better). pgbench uses `-M prepared`; the cluster is a throwaway one started by
`bench/run.sh` (synchronous_commit on, settings in "server options" above).
The baseline table is `CREATE TABLE bench_jobs (LIKE awa.jobs INCLUDING ALL) WITH (fillfactor = 90)`:
same columns, defaults, constraints, identity and indexes (checked by the script; "indexes" above).

**Engine.** `BENCH_ENGINE=ring` (the default, awa's default engine) creates awa's database with
`awa.install_engine = ring` before `CREATE EXTENSION awa`; `BENCH_ENGINE=table` measures the legacy table engine
(`awa.jobs` a table).  On the ring `awa.jobs` is a view of the ring,
every awa_* call runs there, `INSERT`/`COPY` into `awa.jobs` enqueue through its `INSTEAD OF INSERT` trigger; the
baseline is then `LIKE awa.jobs_table INCLUDING ALL` (the table a ring database keeps, empty, in today's shape).
The ring's relations are not truncated behind awa's back, so where the table engine truncates between runs, the
ring engine gives each run a fresh copy of a template database (`CREATE DATABASE ... TEMPLATE`, then a
checkpoint; the baseline table is emptied the same way in those runs).

1. **Enqueue.** pgbench 2 clients, `-T` seconds per run, tables truncated before each run:
   `SELECT awa_insert('k', '{"n":1}')` vs `INSERT INTO bench_jobs (kind, args) VALUES ('k', '{"n":1}')`
   (no RETURNING), vs `SELECT pgq.insert_event('bench', 'k', '{"n":1}')`, and awa_insert while another session has run
   `LISTEN "awa:default"` (awa sends NOTIFY only while someone listens; the reference row gives its cost). Server-side cost: 1 client,
   `SELECT count(awa_insert('k', '{"n":1}')) FROM generate_series(1, 100)` vs
   `INSERT INTO bench_jobs (kind, args) SELECT 'k', '{"n":1}' FROM generate_series(1, 100)`; figure = rows/s.
2. **Bulk.** N rows into an empty table in one statement (time measured by the client, psql):
   `COPY <awa's COPY target> (kind, queue, args) FROM STDIN` vs `COPY bench_jobs (kind, queue, args) FROM STDIN`
   (same file); `SELECT awa_insert_many(j) FROM bench_payload` (N/1000 jsonb arrays of 1,000 jobs, built
   beforehand) vs `INSERT INTO bench_jobs (kind, queue, args) SELECT e->>'kind', e->>'queue', e->'args'
   FROM bench_payload, jsonb_array_elements(j) e` (the same input).
3. **Claim + complete.** Before each run the table is reloaded with the backlog (available jobs of one
   queue, run_at increasing with id), VACUUM ANALYZE, CHECKPOINT; then pgbench 2 clients process a fixed
   number of jobs (`-t`; less than the backlog, so no claim comes back empty); jobs/s = tps x batch, and
   the script checks that exactly that many jobs ended completed. **Claim and complete are separate
   statements, so separate transactions, as a worker does** (claim commits, the work happens, then the
   ack): batch 1: `SELECT id, run_lease FROM awa_claim('cc') \\gset` then `SELECT awa_complete(:id, :run_lease)`;
   batches: `SELECT array_agg(id), array_agg(run_lease) FROM awa_claim('cc', batch => n) \\gset` then
   `SELECT awa_complete_many(:ids, :leases)`. The baseline does the same two steps in plain SQL:
   `UPDATE bench_jobs SET state = 'running', attempt = attempt + 1, run_lease = run_lease + 1,
   attempted_at = now(), heartbeat_at = now(), deadline_at = now() + '5 minutes' WHERE id IN (SELECT id
   FROM bench_jobs WHERE queue = 'cc' AND state = 'available' ORDER BY priority, run_at, id LIMIT n FOR
   UPDATE SKIP LOCKED) RETURNING id, run_lease` (aggregated the same way for n = 10), then one
   completion `UPDATE ... SET state = 'completed', finalized_at = now() WHERE id/run_lease match AND
   state = 'running'` (`FROM unnest(ids, leases)` for n = 10). awa at batch 100 is compared with the
   baseline at n = 10.
4. **Monitoring.** awa.jobs is filled with INSERT ... SELECT (10 queues; 85% completed with finalized_at
   over the last 2 hours, 10% available, 2% running, 1% each scheduled/retryable/failed); on the ring engine
   with the same mix through the API (`bench/sql/c4_fill_ring.sql`: `awa_insert_many`, claims of up to 1,000,
   `awa_complete_many`, `awa_fail`; every job finishes during the fill, so all completed jobs are in the last
   hour; the fill's duration is listed above), then VACUUM ANALYZE, `awa_maintain()`,
   then each query runs once to warm up and then R times in rotating order (psycopg, client-side time):
   `SELECT * FROM awa_queue_stats()`, the first `awa_list_jobs()` page (newest 100 jobs), a filtered page
   `awa_list_jobs(queue => 'q3', state => 'available')`, and the reference
   `SELECT queue, state, count(*) FROM awa.jobs GROUP BY 1, 2`. Target: awa's median under 10 ms.  The two
   pages are timed as the server's work: `SELECT sum(length(j::text)) FROM awa_list_jobs(...) j` (every row
   made into the text the server sends, without sending it); the reference row "fetched by psycopg" is
   `SELECT * FROM awa_list_jobs()` as a Python program sees it, including Debian's psycopg decoding the 100
   rows in pure Python (about 5 ms of it on these machines, whatever the query).  A query
   whose first call takes longer than `BENCH_STATS_TIMEOUT` seconds is cancelled and shown as such (a miss).
   "exact" above: `awa_queue_stats()`' counts by state equal that recount, both read in one REPEATABLE READ
   transaction.
5. **Held-back vacuum.** N available jobs are loaded, VACUUM ANALYZE, then a session runs
   `BEGIN; SELECT txid_current(); SELECT pg_sleep(...)` for the whole run while pgbench 2 clients drain
   the queue (claim batch 10 + complete_many; the baseline: the plain-SQL n = 10 script) as fast as they
   can; throughput per second from `pgbench --progress=1`; the figure compares the mean of the last tenth
   of the seconds with the first tenth. Sizes before/after are listed above (awa: every table of schema `awa`
   with its indexes and TOAST; the baseline: `bench_jobs`), and each relation's live and dead tuples at the end
   of the drain, the snapshot still held. A run is capped (timeout). After the held runs, the holder gone, one
   maintenance round and the size after it: on the ring `awa.ring_rotate(1)` (the open slot sealed, as the round
   does at 100,000 jobs or after an hour) then `awa_maintain()`, which reclaims the drained slot; on the table
   engine `awa_maintain()`; then, for awa and the baseline, `VACUUM` of the database (what autovacuum does next;
   the size before it is listed as "round").  The size row: N jobs (`BENCH_SIZE_JOBS`, 50,000) loaded and drained
   completely with nothing held, then that round and `VACUUM`; target: at most 6.4 MiB (what PgQ leaves).
6. **Wake-up latency.** psycopg, two sessions: one blocked in
   `SELECT id FROM awa_claim('lat', wait => '10 s')` (the script waits until the backend sleeps in an
   Extension wait event), the other runs `SELECT awa_insert('k', '{}', 'lat')` and commits; the figure is
   time.monotonic() from sending COMMIT to the blocked call returning in its thread (it includes the
   commit's WAL flush). Reference: the same with `LISTEN bench_lat` and an INSERT + `NOTIFY` committed.
"""


def relation_table(meta):
    """Case 5's per-relation live and dead tuples and sizes at the end of each drain (meta c5rel_RUN_RELATION)."""
    rows = [(k[len("c5rel_"):], v.split("\t")) for k, v in meta.items() if k.startswith("c5rel_")]
    if not rows:
        return []
    runs = ["awa", "base", "awa_claim_fn", "awa_claim_proc", "size_awa", "size_base"]
    out = ["", "### Case 5: live and dead tuples and sizes per relation", "",
           "Runs awa, base, awa_claim_fn, awa_claim_proc: at the end of the drain, while the third session still holds",
           "its snapshot (or waits); size_awa, size_base: after draining the size row's jobs, one maintenance round and VACUUM.",
           "`n_live_tup` / `n_dead_tup` of `pg_stat_all_tables`; heap includes TOAST.  awa: every table of schema `awa`",
           "(those holding nothing summed in one line); the baseline: `bench_jobs`.", "",
           "| run | relation | live | dead | heap | indexes |", "|---|---|---:|---:|---:|---:|"]
    for key, (live, dead, heap, idx) in rows:
        run = next((r for r in sorted(runs, key=len, reverse=True) if key.startswith(r + "_")), key)
        rel = key[len(run) + 1:]
        out.append(f"| {run} | {rel} | {int(float(live)):,} | **{int(float(dead)):,}** | {size(heap)} | {size(idx)} |")
    return out


def size(b):
    b = float(b)
    for unit, f in (("MB", 1 << 20), ("kB", 1 << 10)):
        if b >= f:
            return f"{b / f:.1f} {unit}" if b < 10 * f else f"{b / f:.0f} {unit}"
    return f"{b:.0f} B"


def chart(res, path, engine="table"):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart")
        return
    ratio_rows = [r for r in res if r["kind"] == "ratio" and r["awa"] is not None and r["ratio"] is not None]
    ms_rows = [r for r in res if r["unit"] == "ms" and r["awa"] is not None]
    nan = float("nan")
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5), gridspec_kw={"width_ratios": [1.1, 1]})
    ax = axes[0]
    labels = [f"{r['case']}. {r['label']}" for r in ratio_rows]
    y = list(range(len(ratio_rows)))[::-1]
    colors = ["#2e7d32" if r["met"] else "#c62828" for r in ratio_rows]
    ax.barh(y, [r["ratio"] for r in ratio_rows], color=colors, height=0.6)
    for yi, r in zip(y, ratio_rows):
        ax.plot([r["target"], r["target"]], [yi - 0.4, yi + 0.4], color="black", lw=2)
        ax.text(r["ratio"], yi, f" {r['ratio']:.2f}", va="center", fontsize=8)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("awa / baseline (higher is better); black tick = target")
    ax.set_title("Throughput ratios (green: target met)")
    ax = axes[1]
    labels = [f"{r['case']}. {r['label']}" for r in ms_rows]
    y = list(range(len(ms_rows)))[::-1]
    ax.barh([yi + 0.2 for yi in y], [r["awa"] for r in ms_rows], height=0.4, label="awa",
            color=["#2e7d32" if r["met"] in (True, None) else "#c62828" for r in ms_rows])
    ax.barh([yi - 0.2 for yi in y], [nan if r["base"] is None else r["base"] for r in ms_rows], height=0.4,
            label="reference", color="#9e9e9e")
    ax.axvline(10, color="black", lw=1, ls="--", label="10 ms target")
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{l}\nvs {r['baseline']}" for l, r in zip(labels, ms_rows)], fontsize=8)
    ax.set_xlabel("milliseconds (log scale, lower is better)")
    ax.set_title("Latencies")
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"awa on the {engine} engine", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    vals, samples, na = load_raw(a.raw)
    meta = load_meta(a.meta)
    res = evaluate(rows_spec(vals, na, meta), vals, samples, na)

    print()
    print("\n".join(table_lines(res, markdown=False)))
    facts = f"{meta.get('nproc', '?')} cores ({meta.get('cpu', '?')}), {meta.get('memory', '?')}, PostgreSQL {meta.get('postgres', '?')}"
    print(f"\nmachine: {facts}; awa {meta.get('awa_commit', '?')}; total {meta.get('total_seconds', '?')} s")

    engine = meta.get("engine", "table")
    engine_text = {"table": "the table engine (`awa.jobs` is a table)",
                   "ring": "the ring engine (`awa.install_engine = ring`: `awa.jobs` is a view of the ring)"}.get(engine, engine)
    print(f"engine: {engine_text}")
    md = ["# awa benchmark report", "",
          f"Generated by `bench/run.sh` on {meta.get('date', '?')}; awa measured on {engine_text}.", "",
          f"- machine: {facts}; load average at start: {meta.get('load', '?')}, at the end: {meta.get('load_end', '?')}",
          f"- awa: {meta.get('awa_commit', '?')}",
          f"- parameters: {meta.get('params', '?')}",
          f"- server options: {meta.get('server_opts', '?')}",
          f"- indexes of {'awa.jobs_table (the ring database keeps the table, empty)' if engine == 'ring' else 'awa.jobs'}"
          f" and bench_jobs: {meta.get('indexes', '?')}",
          f"- wall time: {meta.get('total_seconds', '?')} s ("
          + ", ".join(f"case {k[4]} {v} s" for k, v in meta.items() if k.startswith("case") and k.endswith("_seconds")) + ")",
          "", "![chart](chart.png)", ""]
    md += table_lines(res, markdown=True)
    met = [r for r in res if r["met"] is True]
    missed = [r for r in res if r["met"] is False]
    absent = [r for r in res if r["awa"] is None and r["kind"] and r["met"] is None]
    md += ["", f"Targets met: {len(met)}; missed: {len(missed)}; not measurable yet: {len(absent)}."]
    for r in missed:
        if r["awa"] is None:
            fig = r["miss"] or r["note"]
            md.append(f"- missed: case {r['case']} {r['label']}: {fig} ({r['target_text']})")
            continue
        elif r["ratio"] is not None and r["kind"] == "ratio":
            fig = f"{r['ratio']:.2f}"
        else:
            fig = f"{fmt(r['awa'], r['unit'])} {r['unit']}"
        md.append(f"- missed: case {r['case']} {r['label']}: {fig} ({r['target_text']}), {r['miss']}")
    c4 = [(k, v) for k, v in meta.items() if k.startswith("c4_")]
    if c4:
        md += ["", "### Case 4: filling, and awa_queue_stats() against a recount", ""]
        md += [f"- {k[3:]}: {v}" for k, v in c4]
    c5 = [(k, v) for k, v in meta.items() if k.startswith("c5_")]
    if c5:
        md += ["", "### Case 5: sizes and progress", ""]
        md += [f"- {k[3:]}: {v}" for k, v in c5]
    md += relation_table(meta)
    md += ["", NOTES]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    chart(res, os.path.join(a.out, "chart.png"), engine)
    print(f"wrote {os.path.join(a.out, 'report.md')} and chart.png")


if __name__ == "__main__":
    main()
