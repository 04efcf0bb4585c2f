"""A claim that walks a long way behind a fast claimer still gets its batch.

A queue holds JOBS jobs, of which the first three fifths are already claimed and
completed (on the default storage their rows stay ahead of the waiting ones until
maintenance reclaims them).  Worker "fast" claims ten at a time and completes
them as fast as it can.  Worker "walker" claims ten at a time with
awa.claim_floors off, so each of its claims reads the queue from the head, past
every row the fast worker took; worker "reset" claims with awa.claim_floor_reset
at 1 s, so a reset's walk below the floors, a chunk per claim, is under way most
of the time.  While the fast worker takes the rows the walker read, its locks find rows
whose receipts committed after its snapshot: it must go on to the rows after
them, and return a full batch while hundreds of jobs wait, never an empty one.
Every job is completed exactly once.

Usage: claim_race.py CONNINFO [JOBS] [SECONDS]   (PG* variables fill in the rest)
Exit status 0 when every claim was full while 200 or more jobs waited after it.
"""
import sys
import threading
import time

import psycopg

conninfo = sys.argv[1] if len(sys.argv) > 1 else ""
jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 40000
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 25
queue = "claim_race"
batch = 10
waiting_enough = 200
done = []
short = []
errors = []
claims = {}
stop = threading.Event()


def claim_complete(conn, n, worker=None):
    """Claim up to n jobs of the queue and complete them; their ids."""
    rows = conn.execute("SELECT id, run_lease FROM awa_claim(%s, batch => %s, worker => %s)",
                        (queue, n, worker)).fetchall()
    if rows:
        conn.execute("SELECT awa_complete_many(%s::bigint[], %s::bigint[])",
                     ([r[0] for r in rows], [r[1] for r in rows]))
    return [r[0] for r in rows]


def waiting(conn):
    return conn.execute("SELECT count(*) FROM awa.jobs WHERE queue = %s AND state = 'available'",
                        (queue,)).fetchone()[0]


def worker(name, settings):
    n = 0
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for s in settings:
                conn.execute(s)
            while not stop.is_set():
                rows = claim_complete(conn, batch, name)
                n += 1
                done.extend(rows)
                if len(rows) < batch:
                    left = waiting(conn)
                    if left >= waiting_enough:
                        short.append((name, len(rows), left))
                    else:
                        break
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(f"{name}: {e!r}")
    claims[name] = n


def main():
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO awa.jobs (kind, queue, args, state, run_at)"
                     " SELECT 'race', %s, jsonb_build_object('n', i), 'available',"
                     "        now() - interval '1 hour' + i * interval '1 ms'"
                     "   FROM generate_series(1, %s) i", (queue, jobs))
        head = jobs * 3 // 5
        while len(done) < head:
            done.extend(claim_complete(conn, 1000))
        threads = [threading.Thread(target=worker, args=("fast", [])),
                   threading.Thread(target=worker, args=("walker", ["SET awa.claim_floors = off"])),
                   threading.Thread(target=worker, args=("reset", ["SET awa.claim_floor_reset = 1"]))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + seconds
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline and not short and not errors:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(60)
        left = waiting(conn)
        # drain what is left, then every job must be completed exactly once
        while True:
            rows = claim_complete(conn, 1000)
            if not rows:
                break
            done.extend(rows)
        states = conn.execute("SELECT state::text, count(*) FROM awa.jobs WHERE queue = %s"
                              " GROUP BY 1 ORDER BY 1", (queue,)).fetchall()
    print(f"# claims per worker: {claims}; {left} jobs waiting when the workers stopped;"
          f" states at the end: {states}")
    if errors:
        print("FAIL: worker errors: " + "; ".join(errors))
        return 1
    if short:
        print("FAIL: claims short of their batch while jobs waited (worker, jobs claimed, jobs waiting after):"
              f" {short[:10]}")
        return 1
    if len(done) != jobs or len(set(done)) != jobs or states != [("completed", jobs)]:
        print(f"FAIL: not every job was completed exactly once ({len(done)} completions,"
              f" {len(set(done))} distinct, of {jobs})")
        return 1
    if claims.get("walker", 0) < 3 or claims.get("reset", 0) < 3:
        print("FAIL: the slow claimers made fewer than 3 claims each: nothing was tested")
        return 1
    print(f"ok - every claim was a full batch of {batch} while {waiting_enough} or more jobs waited;"
          f" {jobs} jobs completed exactly once")
    return 0


sys.exit(main())
