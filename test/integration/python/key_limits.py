"""Per-key concurrency limits and ordering under load.

Eight workers claim from one queue holding jobs of 50 concurrency keys (45
limited, 5 ordered) and some without a key, "work" a few milliseconds, then
complete them (a tenth of the ordered keys' jobs fail once and are retried).
A sampler reads the running set over and over, each sample one snapshot; it
must never show more running jobs of a key than the key's rule allows.  At the
end every job must be completed exactly once within the deadline (no job
starves), the limits must have been reached (the load was enough to test
them), and each ordered key's jobs must have run one at a time in id order:
the workers claimed them in id order (the sampler sees at most one of them
running at a time).

Rules: a%  2 (any kind); a0_  1; a4_  3; a1_  4 for kind 'wide' (the keys
a10..a19 carry only kind 'wide' jobs); o_  1, ordered.

Usage: key_limits.py CONNINFO [JOBS_PER_KEY]   (PG* variables fill in the rest)
"""
import random
import sys
import threading
import time

import psycopg

conninfo = sys.argv[1] if len(sys.argv) > 1 else ""
per_key = int(sys.argv[2]) if len(sys.argv) > 2 else 40
queue = "key_stress"
deadline_s = 45
workers = 8
stop = threading.Event()
errors = []
samples = [0]
violations = []
max_seen = {}
claimed = []  # (key, id) of the ordered keys' jobs, in the order they were claimed
claimed_lock = threading.Lock()


def limit_of(key):
    if key.startswith("o"):
        return 1
    n = int(key[1:])
    if n < 10:
        return 1
    if n < 20:
        return 4
    if n >= 40:
        return 3
    return 2


def setup(conn):
    conn.execute("SELECT awa_set_key_limit('a%', 2)")
    conn.execute("SELECT awa_set_key_limit('a0_', 1)")
    conn.execute("SELECT awa_set_key_limit('a4_', 3)")
    conn.execute("SELECT awa_set_key_limit('a1_', 4, kind => 'wide')")
    conn.execute("SELECT awa_set_key_limit('o_', 1, ordered => true)")
    jobs = []
    for k in range(45):
        key = f"a{k:02d}"
        kind = "wide" if 10 <= k < 20 else "plain"
        jobs += [{"kind": kind, "queue": queue, "concurrency_key": key} for _ in range(per_key)]
    for k in range(5):
        jobs += [{"kind": "seq", "queue": queue, "concurrency_key": f"o{k}"} for _ in range(per_key // 2)]
    jobs += [{"kind": "free", "queue": queue} for _ in range(100)]
    # runs of four jobs of one key, shuffled: a claim's window holds several of a key
    runs = [jobs[i:i + 4] for i in range(0, len(jobs), 4)]
    random.Random(7).shuffle(runs)
    flat = [j for r in runs for j in r]
    import json
    conn.execute("SELECT count(*) FROM awa_insert_many(%s::jsonb)", (json.dumps(flat),))
    return len(flat)


def worker(name, rng):
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT id, run_lease, concurrency_key, attempt FROM awa_claim(%s, worker => %s,"
                    " batch => %s, wait => '200 ms')",
                    (queue, name, rng.randint(1, 8))).fetchall()
                if not rows:
                    continue
                with claimed_lock:
                    # the next job of an ordered key is claimable only once this one is finished,
                    # which is after this append: the list is in claim order for each such key
                    claimed.extend((key, job_id) for job_id, _, key, _ in rows if key and key.startswith("o"))
                time.sleep(rng.uniform(0.01, 0.04))
                for job_id, lease, key, attempt in rows:
                    if key and key.startswith("o") and attempt == 1 and job_id % 10 == 3:
                        conn.execute("SELECT awa_fail(%s, %s, 'once', retry_in => '0')", (job_id, lease))
                    else:
                        conn.execute("SELECT awa_complete(%s, %s)", (job_id, lease))
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(f"{name}: {e!r}")


def sampler():
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                for key, n in conn.execute(
                        "SELECT concurrency_key, count(*) FROM awa.jobs WHERE state = 'running'"
                        " AND concurrency_key IS NOT NULL GROUP BY 1"):
                    max_seen[key] = max(max_seen.get(key, 0), n)
                    if n > limit_of(key):
                        violations.append((key, n, limit_of(key)))
                samples[0] += 1
    except Exception as e:  # noqa: BLE001
        errors.append(f"sampler: {e!r}")


def main():
    with psycopg.connect(conninfo, autocommit=True) as conn:
        total = setup(conn)
        threads = [threading.Thread(target=worker, args=(f"w{i}", random.Random(i))) for i in range(workers)]
        threads.append(threading.Thread(target=sampler))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        done = 0
        while time.monotonic() - t0 < deadline_s and not errors:
            done = conn.execute("SELECT count(*) FROM awa.jobs WHERE queue = %s AND state = 'completed'",
                                (queue,)).fetchone()[0]
            if done == total:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(10)
        bad = []
        if errors:
            bad.append(f"errors: {errors[:5]}")
        if violations:
            bad.append(f"limit exceeded in {len(violations)} samples, e.g. {violations[:5]}")
        if done != total:
            left = conn.execute("SELECT concurrency_key, state, count(*) FROM awa.jobs WHERE queue = %s"
                                " AND state <> 'completed' GROUP BY 1, 2 ORDER BY 1, 2", (queue,)).fetchall()
            bad.append(f"{total - done} of {total} jobs not completed after {deadline_s} s: {left[:10]}")
        at_limit = sorted(k for k, n in max_seen.items() if n == limit_of(k) and limit_of(k) > 1)
        if len(at_limit) < 5:
            bad.append(f"too little load: only {at_limit} of the keys with limits above 1 reached them")
        # ordered keys: in id order (a retried job claimed again before the next one)
        seqs = {}
        for key, job_id in claimed:
            seqs.setdefault(key, []).append(job_id)
        for key, ids in sorted(seqs.items()):
            if ids != sorted(ids):
                bad.append(f"ordered key {key}: claimed out of id order: {ids}")
        if len(seqs) != 5:
            bad.append(f"only ordered keys {sorted(seqs)} were claimed")
        retried = conn.execute("SELECT count(*) FROM awa.jobs WHERE concurrency_key LIKE 'o%%'"
                               " AND attempt = 2").fetchone()[0]
        if retried == 0:
            bad.append("no ordered job was retried")
        print(f"{total} jobs, {workers} workers, {done} completed in {elapsed:.1f} s; {samples[0]} samples of the"
              f" running set; keys seen at limits above 1: {len(at_limit)}; ordered jobs retried: {retried}")
        if bad:
            for b in bad:
                print("FAIL:", b)
            sys.exit(1)
        print("ok: no key above its limit, no job starved, ordered keys in id order")


if __name__ == "__main__":
    main()
