"""Two `python -m awa_worker` processes drain N no-op jobs, for several batch/thread settings.

    PYTHONPATH=clients/python/src /usr/bin/python3 \
        bench/worker_drain.py "dbname=bench" [N]

The database must have awa created; its awa.jobs is emptied first.  Prints jobs/second per setting,
timed from the commit of the N inserts (workers already blocked in awa_claim) to the last completion.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import awa_client as awa

# the workers' handler module, written next to their logs
HANDLERS = "import awa_client as awa\n\n\n@awa.job('bench.noop')\ndef noop(job):\n    pass\n"

SETTINGS = (["--batch", "10"], ["--batch", "50"], ["--batch", "100", "--concurrency", "4"],
            ["--batch", "200", "--concurrency", "8"], ["--batch", "100", "--concurrency", "1"])


def run(c, dsn, n, extra):
    c.execute("DELETE FROM awa.jobs")
    logdir = tempfile.mkdtemp(prefix="awa-bench-")
    with open(os.path.join(logdir, "awa_bench_jobs.py"), "w") as f:
        f.write(HANDLERS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([logdir] + [p for p in sys.path if p]))
    procs = [subprocess.Popen([sys.executable, "-m", "awa_worker", "--dsn", dsn, "--queue", "bench",
                               "--module", "awa_bench_jobs", "--name", "bench-%d" % i] + extra,
                              env=env, stderr=subprocess.DEVNULL) for i in range(2)]
    deadline = time.monotonic() + 120
    try:
        while c.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
                        ["SELECT * FROM awa_claim(%"])[1][0][0] < 2:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("the workers did not start (run from a directory without awa.so?)")
            time.sleep(0.05)
        c.execute("SELECT count(awa_insert('bench.noop', jsonb_build_object('i', g), 'bench'))"
                  " FROM generate_series(1, %s) g", [n])
        t0 = time.monotonic()
        while c.execute("SELECT count(*) FROM awa.jobs WHERE state = 'completed'")[1][0][0] < n:
            if time.monotonic() > deadline:
                raise SystemExit("not drained in 120 s")
            time.sleep(0.01)
        return time.monotonic() - t0
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(logdir, True)


def main():
    dsn = sys.argv[1] if len(sys.argv) > 1 else ""
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    with awa.Client(dsn) as c:
        for extra in SETTINGS:
            elapsed = run(c, dsn, n, extra)
            print("%-36s %6d jobs in %5.2f s = %6.0f jobs/s" % (" ".join(extra), n, elapsed, n / elapsed),
                  flush=True)


if __name__ == "__main__":
    main()
