"""A claimer asleep in awa_claim holds no row lock that another worker waits for.

Two workers loop on awa_claim(queue, wait => 30 s) and complete each job in its
own statement, while jobs are inserted one at a time.  When both are woken for
one job, the loser's attempt may lock the job the winner just claimed (READ
COMMITTED locks the newest version of a row before rechecking it); if the loser
then went back to sleep in the same transaction, the winner's awa_complete would
wait for the loser's whole wait.  Every completion must be quick, every job done
exactly once, and a sleeping claimer must hold no transaction ID.

Usage: claim_locks.py CONNINFO [JOBS]   (PG* variables fill in the rest)
"""
import sys
import threading
import time

import psycopg

conninfo = sys.argv[1] if len(sys.argv) > 1 else ""
jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
queue = "claim_locks"
done = []
slow = []
errors = []
stop = threading.Event()


def worker(name):
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT id, run_lease FROM awa_claim(%s, worker => %s, wait => '30 s')",
                    (queue, name)).fetchone()
                if row is None:
                    continue
                t0 = time.monotonic()
                ok = conn.execute("SELECT awa_complete(%s, %s)", row).fetchone()[0]
                dt = time.monotonic() - t0
                done.append(row[0])
                if dt > 1.0 or not ok:
                    slow.append((row[0], round(dt, 3), ok))
    except Exception as e:  # noqa: BLE001 - reported below
        if not stop.is_set():
            errors.append(f"{name}: {e!r}")


def main():
    with psycopg.connect(conninfo, autocommit=True) as conn:
        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        xid_held = 0
        for i in range(jobs):
            conn.execute("SELECT awa_insert('lock_check', jsonb_build_object('n', %s::int), queue => %s)",
                         (i, queue))
            time.sleep(0.02)
            # sleeping claimers (waiting on their latch) hold no transaction ID
            xid_held += conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
                " AND backend_xid IS NOT NULL AND datname = current_database()").fetchone()[0]
        deadline = time.monotonic() + 30
        while len(done) < jobs and time.monotonic() < deadline and not errors:
            time.sleep(0.05)
        stop.set()
        conn.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                     " WHERE wait_event_type = 'Extension' AND datname = current_database()")
        for t in threads:
            t.join(10)
        states = conn.execute("SELECT state::text, count(*) FROM awa.jobs WHERE queue = %s"
                              " GROUP BY 1 ORDER BY 1", (queue,)).fetchall()
    print(f"# {len(done)} of {jobs} jobs completed, {len(set(done))} distinct; "
          f"completions over 1 s: {slow}; sleeping claimers seen with an xid: {xid_held}; states: {states}")
    if errors:
        print("FAIL: worker errors: " + "; ".join(errors))
        return 1
    if sorted(done) != sorted(set(done)) or len(done) != jobs or states != [("completed", jobs)]:
        print("FAIL: not every job was completed exactly once")
        return 1
    if slow:
        print(f"FAIL: {len(slow)} completion(s) waited over 1 s for a sleeping claimer's row lock")
        return 1
    if xid_held:
        print(f"FAIL: sleeping claimers held a transaction ID ({xid_held} samples)")
        return 1
    print(f"ok - {jobs} jobs claimed by 2 blocking claimers and completed exactly once; "
          "no completion waited for a sleeping claimer, no sleeping claimer held a transaction ID")
    return 0


sys.exit(main())
