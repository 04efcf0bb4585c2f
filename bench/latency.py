#!/usr/bin/python3
"""Latency measurements of awa's benchmark suite (cases 4 and 6), called by bench/run.sh.

  latency.py stats --size N --reps R [--timeout S] --raw FILE [--meta FILE]
      case 4: awa_queue_stats(), one awa_list_jobs page and the count(*) GROUP BY reference,
      called in rotating order, R times each (after one warm-up call); appends milliseconds.  The pages are
      timed as the server's work: every row turned into its text (what the server sends), summed there
      (c4_list_N, c4_listf_N); the newest page once more as psycopg fetches it (c4_listc_N, a reference: Debian's
      psycopg decodes rows in pure Python, about 5 ms for a page of 100 jobs on these machines).  A query whose
      warm-up call takes over S seconds (default 60) is cancelled and recorded as NA ("timeout: ...").  With
      --meta, appends c4_exact_N: whether awa_queue_stats()' counts by state equal the recount at one snapshot.
  latency.py wake --rounds R --raw FILE
      case 6: a session blocked in awa_claim(queue, wait => '10 s'); another inserts a job and commits;
      milliseconds from the commit being sent to the blocked call returning.  The reference is the same
      thing with LISTEN/NOTIFY (a plain INSERT into bench_jobs + NOTIFY, a listener waiting in psycopg).
  latency.py herd --waiters W [--queues Q] --rounds R [--raw FILE]
      the same wake-up with W sessions blocked in awa_claim(queue, wait => '10 s') on each of Q queues
      (every claimer loops: claim, and claim again once it got a job); each round inserts one job into
      each queue, committed at once, and records for each queue the milliseconds from the commit being
      sent to the job being returned by one of its claimers.  Prints median, p90, p99 and, when the
      server has awa.claimer_wakeups, the claimer wake-ups per job.

Connection parameters come from the environment (PGHOST, PGPORT, PGUSER, PGDATABASE).
Debian's python3-psycopg (3.1); run with /usr/bin/python3.
"""
import argparse
import statistics
import threading
import time

import psycopg
from psycopg import sql


def append(raw, variant, rnd, value):
    with open(raw, "a") as f:
        f.write(f"{variant}\t{rnd}\t{value:.4f}\n")


def has_list_jobs(conn):
    return conn.execute("SELECT count(*) FROM pg_proc WHERE proname = 'awa_list_jobs'").fetchone()[0] > 0


STATS_COLUMNS = ("scheduled", "available", "retryable", "running", "waiting_external", "failed", "cancelled")


def exactness(conn):
    """awa_queue_stats()' counts by state against a recount of awa.jobs, both at one REPEATABLE READ snapshot:
    "yes", or "NO: " and the queues that differ."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    try:
        cols = ", ".join(STATS_COLUMNS)
        stats = {r[0]: r[1:] for r in conn.execute(f"SELECT queue, {cols} FROM awa_queue_stats()")}
        counts = {}
        for q, state, n in conn.execute("SELECT queue, state::text, count(*) FROM awa.jobs GROUP BY 1, 2"):
            counts.setdefault(q, dict.fromkeys(STATS_COLUMNS, 0))
            if state in STATS_COLUMNS:
                counts[q][state] = n
    finally:
        conn.execute("COMMIT")
    bad = []
    for q in sorted(set(stats) | set(counts)):
        want = tuple(counts.get(q, dict.fromkeys(STATS_COLUMNS, 0))[c] for c in STATS_COLUMNS)
        got = stats.get(q, (0,) * len(STATS_COLUMNS))
        if tuple(got) != want:
            bad.append(f"{q} {dict(zip(STATS_COLUMNS, got))} vs recount {dict(zip(STATS_COLUMNS, want))}")
    return "yes" if not bad else "NO: " + "; ".join(bad)


def stats(a):
    conn = psycopg.connect(autocommit=True)
    # a call slower than the cap is cancelled: the variant is reported as such (NA), not waited for
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{a.timeout}s")))
    queries = {
        f"c4_stats_{a.size}": "SELECT * FROM awa_queue_stats()",
        f"c4_count_{a.size}": "SELECT queue, state, count(*) FROM awa.jobs GROUP BY 1, 2",
    }
    if has_list_jobs(conn):
        # the first page a UI shows (newest jobs, default page size), and a filtered one: the server's time,
        # with every row made into the text the server would send (not the client's decoding of it)
        queries[f"c4_list_{a.size}"] = "SELECT sum(length(j::text)) FROM awa_list_jobs() j"
        queries[f"c4_listf_{a.size}"] = \
            "SELECT sum(length(j::text)) FROM awa_list_jobs(queue => 'q3', state => 'available') j"
        # the newest page as a Python client sees it, rows sent and decoded (reference)
        queries[f"c4_listc_{a.size}"] = "SELECT * FROM awa_list_jobs()"
    else:
        with open(a.raw, "a") as f:
            for v in ("c4_list", "c4_listf", "c4_listc"):
                f.write(f"{v}_{a.size}\tNA\tawa_list_jobs does not exist yet\n")
    names = list(queries)
    # Fewer rounds (at least 3) when a round would take long: each query's budget is about 10 s.
    spent = {}
    for n in names:  # warm-up (plans, caches), timed to size the rounds
        t0 = time.perf_counter()
        try:
            conn.execute(queries[n]).fetchall()
        except psycopg.errors.QueryCanceled:
            with open(a.raw, "a") as f:
                f.write(f"{n}\tNA\ttimeout: a call took over {a.timeout:g} s\n")
            print(f"    {n}: over {a.timeout:g} s, cancelled")
            continue
        spent[n] = time.perf_counter() - t0
    names = [n for n in names if n in spent]
    if a.meta:
        if f"c4_count_{a.size}" in spent:
            try:
                verdict = exactness(conn)
            except psycopg.errors.QueryCanceled:
                verdict = f"not checked: the recount took over {a.timeout:g} s"
        else:
            verdict = f"not checked: the recount took over {a.timeout:g} s"
        with open(a.meta, "a") as f:
            f.write(f"c4_exact_{a.size}\t{verdict}\n")
        print(f"    awa_queue_stats() equals a recount at one snapshot: {verdict}")
    reps = max(3, min(a.reps, int(10 / max(spent.values())))) if spent else 0
    cancelled = set()
    for r in range(1, reps + 1):
        for i in range(len(names)):
            n = names[(i + r - 1) % len(names)]
            if n in cancelled:
                continue
            t0 = time.perf_counter()
            try:
                conn.execute(queries[n]).fetchall()
            except psycopg.errors.QueryCanceled:
                cancelled.add(n)  # the calls so far stay; the median is of them (none: NA)
                with open(a.raw, "a") as f:
                    f.write(f"{n}\tNA\ttimeout: a call took over {a.timeout:g} s\n")
                print(f"    {n}: a call took over {a.timeout:g} s, cancelled")
                continue
            ms = (time.perf_counter() - t0) * 1000
            append(a.raw, n, r, ms)
    for n in names:
        print(f"    {n}: {queries[n]}")
    conn.close()


def wait_until_blocked(mon, pid, timeout=2.0):
    """Until backend pid sleeps in a wait event of type Extension (awa's latch wait) or timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = mon.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if r and r[0] == "Extension":
            return True
        time.sleep(0.002)
    return False


def wake(a):
    claimer = psycopg.connect(autocommit=True)
    listener = psycopg.connect(autocommit=True)
    inserter = psycopg.connect()
    mon = psycopg.connect(autocommit=True)
    listener.execute("LISTEN bench_lat")
    cpid = claimer.info.backend_pid
    unblocked = 0

    def one_awa():
        nonlocal unblocked
        out = {}

        def blocked():
            rows = claimer.execute("SELECT id FROM awa_claim('lat', wait => '10 s')").fetchall()
            out["t"] = time.monotonic()
            out["n"] = len(rows)

        th = threading.Thread(target=blocked)
        th.start()
        if not wait_until_blocked(mon, cpid):
            unblocked += 1
        inserter.execute("SELECT awa_insert('k', '{}', 'lat')")
        t0 = time.monotonic()
        inserter.commit()
        th.join()
        if out.get("n") != 1:
            raise RuntimeError("the blocked awa_claim returned no job")
        return (out["t"] - t0) * 1000

    def one_notify():
        out = {}

        def blocked():
            for _ in listener.notifies():
                out["t"] = time.monotonic()
                break

        th = threading.Thread(target=blocked)
        th.start()
        time.sleep(0.005)  # the listener thread is waiting in the socket by now
        inserter.execute("INSERT INTO bench_jobs (kind, queue) VALUES ('k', 'lat')")
        inserter.execute("NOTIFY bench_lat, 'lat'")
        t0 = time.monotonic()
        inserter.commit()
        th.join()
        return (out["t"] - t0) * 1000

    for r in range(1, a.rounds + 1):
        pair = [("c6_awa", one_awa), ("c6_notify", one_notify)]
        if r % 2 == 0:
            pair.reverse()
        for name, fn in pair:
            append(a.raw, name, r, fn())
    if unblocked:
        print(f"    note: in {unblocked} rounds the claimer was not seen sleeping before the insert")
    for c in (claimer, listener, inserter, mon):
        c.close()


def herd(a):
    """Wake-up latency with several claimers blocked on each queue (see the module docstring)."""
    queues = [f"herd{q}" for q in range(a.queues)]
    mon = psycopg.connect(autocommit=True)
    inserter = psycopg.connect()
    mon.execute("SELECT awa_drain_queue(q) FROM unnest(%s::text[]) q", (queues,))
    got = {}          # job id -> monotonic time it was returned by a claimer
    cond = threading.Condition()
    stop = threading.Event()
    conns = []

    def claimer(queue):
        c = psycopg.connect(autocommit=True)
        conns.append(c)
        while not stop.is_set():
            try:
                rows = c.execute(sql.SQL("SELECT id FROM awa_claim({}, wait => '10 s')")
                                 .format(sql.Literal(queue))).fetchall()
            except psycopg.Error:
                return
            t = time.monotonic()
            with cond:
                for (jid,) in rows:
                    got[jid] = t
                cond.notify_all()

    threads = [threading.Thread(target=claimer, args=(q,), daemon=True)
               for q in queues for _ in range(a.waiters)]
    for th in threads:
        th.start()
    nwait = a.waiters * a.queues

    def all_blocked(timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            n = mon.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
                            " AND query LIKE '%%awa_claim(%%herd%%'").fetchone()[0]
            if n >= nwait:
                return True
            time.sleep(0.005)
        return False

    def wakeups():
        try:
            return int(mon.execute("SHOW awa.claimer_wakeups").fetchone()[0])
        except psycopg.Error:
            return None

    lat = []
    unblocked = 0
    w0 = None
    for r in range(1, a.rounds + 1):
        if not all_blocked():
            unblocked += 1
        time.sleep(0.01)
        if w0 is None:
            w0 = wakeups()
        ids = [inserter.execute("SELECT id FROM awa_insert('k', '{}', %s)", (q,)).fetchone()[0] for q in queues]
        t0 = time.monotonic()
        inserter.commit()
        with cond:
            if not cond.wait_for(lambda: all(i in got for i in ids), timeout=10):
                raise RuntimeError("a job was not claimed within 10 s")
        for i in ids:
            ms = (got[i] - t0) * 1000
            lat.append(ms)
            if a.raw:
                append(a.raw, f"c6_herd_w{a.waiters}_q{a.queues}", r, ms)
    all_blocked()
    w1 = wakeups()
    stop.set()
    for c in conns:
        c.cancel()
    for th in threads:
        th.join(timeout=15)
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]
    per_job = "" if w0 is None or w1 is None else f", claimer wake-ups per job {(w1 - w0) / len(lat):.2f}"
    print(f"herd: {a.waiters} waiters x {a.queues} queues, {len(lat)} jobs: median {statistics.median(lat):.2f} ms,"
          f" p90 {pct(0.9):.2f} ms, p99 {pct(0.99):.2f} ms, max {lat[-1]:.2f} ms{per_job}")
    if unblocked:
        print(f"    note: in {unblocked} rounds not every claimer was seen sleeping before the insert")
    mon.close()
    inserter.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stats")
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--reps", type=int, default=7)
    s.add_argument("--timeout", type=float, default=60, help="seconds: a slower call is cancelled (NA)")
    s.add_argument("--raw", required=True)
    s.add_argument("--meta", help="meta.tsv: append whether awa_queue_stats() equals a recount")
    w = sub.add_parser("wake")
    w.add_argument("--rounds", type=int, default=200)
    w.add_argument("--raw", required=True)
    h = sub.add_parser("herd")
    h.add_argument("--waiters", type=int, default=10)
    h.add_argument("--queues", type=int, default=1)
    h.add_argument("--rounds", type=int, default=100)
    h.add_argument("--raw")
    a = p.parse_args()
    {"stats": stats, "wake": wake, "herd": herd}[a.cmd](a)


if __name__ == "__main__":
    main()
