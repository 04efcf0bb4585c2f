#!/usr/bin/python3
"""Wake-up latency of the blocking claims that hold no snapshot: the ring's against awa.jobs'.

    PGHOST=... PGPORT=... PGUSER=postgres /usr/bin/python3 bench/ring_wait_latency.py [ROUNDS]

Against a running cluster with awa in shared_preload_libraries (a superuser: the ring is internal),
it creates the database awa_ring_wait_bench and, ROUNDS times (default 200) for each case in
alternating order, lets one session sleep in
  ring: CALL awa.ring_claim_wait('lat', wait => '10 s')   (awa.ring_engine on)
  jobs: CALL awa_claim_wait('lat', wait => '10 s')
waits until pg_stat_activity shows it asleep, then inserts one job into that queue in another session
(awa.ring_insert / awa_insert) and commits.  The latency is from just before the COMMIT is sent to
the moment the CALL has returned the job to its client (so it includes the insert's commit, the
wake-up, the claim, and the claim's commit).  Prints median, 90th percentile and maximum per case
and the claimer wake-ups per job (awa.claimer_wakeups).  Then, ROUNDS / 4 times per case, the same
with a job due 100 ms after its insert: how late the claim took it, server side (the receipt's
claimed_at, or awa.jobs' attempted_at, minus the job's run_at), and the wake-ups per job (2: the
commit, to look at the due time, then the due time).  Drops the database at the end.
"""

import statistics
import sys
import threading
import time

import psycopg

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
DB = "awa_ring_wait_bench"

CASES = {
    "ring": ("CALL awa.ring_claim_wait('lat', wait => '10 s')",
             "SELECT awa.ring_insert('k', '{}', 'lat')"),
    "jobs": ("CALL awa_claim_wait('lat', wait => '10 s')",
             "SELECT awa_insert('k', '{}', queue => 'lat')"),
}
# a job due 100 ms later; then how late its claim was (ms), read after the CALL returned
DUE = {
    "ring": ("SELECT awa.ring_insert('k', '{}', 'lat', run_at => now() + interval '100 ms')",
             "SELECT 1000 * extract(epoch FROM c.claimed_at - r.run_at) FROM awa.claims c"
             " JOIN awa.ready r ON r.id = c.job_id AND r.slot = c.slot WHERE c.job_id = %s"),
    "jobs": ("SELECT id FROM awa_insert('k', '{}', queue => 'lat', run_at => now() + interval '100 ms')",
             "SELECT 1000 * extract(epoch FROM attempted_at - run_at) FROM awa.jobs WHERE id = %s"),
}


def asleep(mon, pid):
    """Wait (up to 5 s) until the backend pid sleeps in awa's wait."""
    for _ in range(5000):
        row = mon.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row and row[0] == "Extension":
            return True
        time.sleep(0.001)
    return False


def main():
    admin = psycopg.connect(dbname="postgres", autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS %s" % DB)
    admin.execute("CREATE DATABASE %s" % DB)
    try:
        setup = psycopg.connect(dbname=DB, autocommit=True)
        setup.execute("CREATE EXTENSION awa")
        setup.execute("ALTER DATABASE %s SET awa.ring_engine = on" % DB)
        setup.close()
        waiter = psycopg.connect(dbname=DB, autocommit=True)
        inserter = psycopg.connect(dbname=DB)
        mon = psycopg.connect(dbname=DB, autocommit=True)
        pid = waiter.info.backend_pid
        lat = {name: [] for name in CASES}
        wakeups = {name: 0 for name in CASES}
        late = {name: [] for name in CASES}
        due_wakeups = {name: 0 for name in CASES}
        not_asleep = 0

        def one(name, due=False):
            nonlocal not_asleep
            call, insert = CASES[name]
            if due:
                insert = DUE[name][0]
            out = {}

            def blocked():
                out["jobs"] = waiter.execute(call).fetchone()[0]
                out["t"] = time.monotonic()

            w0 = int(mon.execute("SHOW awa.claimer_wakeups").fetchone()[0])
            th = threading.Thread(target=blocked)
            th.start()
            if not asleep(mon, pid):
                not_asleep += 1
            job = inserter.execute(insert).fetchone()[0]
            t0 = time.monotonic()
            inserter.commit()
            th.join()
            if out.get("jobs") is None:
                raise RuntimeError(f"{name}: the waiting CALL returned no job")
            w = int(mon.execute("SHOW awa.claimer_wakeups").fetchone()[0]) - w0
            if due:
                late[name].append(float(mon.execute(DUE[name][1], (job,)).fetchone()[0]))
                due_wakeups[name] += w
            else:
                lat[name].append((out["t"] - t0) * 1000)
                wakeups[name] += w

        for r in range(ROUNDS):
            order = ["ring", "jobs"] if r % 2 == 0 else ["jobs", "ring"]
            for name in order:
                one(name)
        for r in range(max(ROUNDS // 4, 1)):
            for name in (["ring", "jobs"] if r % 2 == 0 else ["jobs", "ring"]):
                one(name, due=True)
        for name in CASES:
            xs = sorted(lat[name])
            p90 = xs[int(0.9 * (len(xs) - 1))]
            print(f"{name}: {len(xs)} wake-ups, median {statistics.median(xs):.2f} ms, "
                  f"p90 {p90:.2f} ms, max {xs[-1]:.2f} ms, min {xs[0]:.2f} ms, "
                  f"claimer wake-ups per job {wakeups[name] / len(xs):.2f}")
        for name in CASES:
            xs = sorted(late[name])
            print(f"{name}, due 100 ms later: {len(xs)} claims, late by median {statistics.median(xs):.2f} ms, "
                  f"max {xs[-1]:.2f} ms, min {xs[0]:.2f} ms, "
                  f"claimer wake-ups per job {due_wakeups[name] / len(xs):.2f}")
        if not_asleep:
            print(f"note: in {not_asleep} rounds the waiter was not seen asleep before the insert")
        for c in (waiter, inserter, mon):
            c.close()
    finally:
        admin.execute("DROP DATABASE IF EXISTS %s" % DB)


if __name__ == "__main__":
    main()
