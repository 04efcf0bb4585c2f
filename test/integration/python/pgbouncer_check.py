"""awa's Python client and worker through pgbouncer in transaction mode (run by test/t/005_pgbouncer.pl).

Environment: AWA_DIRECT_DSN (the server itself), AWA_BOUNCER_DSN (pgbouncer, pool of 3),
AWA_BOUNCER_SPARE_DSN (the same database through a pool of 4).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import awa_client as awa

DIRECT = os.environ["AWA_DIRECT_DSN"]
BOUNCER = os.environ["AWA_BOUNCER_DSN"]
SPARE = os.environ["AWA_BOUNCER_SPARE_DSN"]
JOBS = 600


class PgBouncerTests(unittest.TestCase):
    def setUp(self):
        self.db = awa.Client(DIRECT, driver="psycopg")
        self.addCleanup(self.db.close)
        self.db.execute("DELETE FROM awa.jobs")
        self.logdir = tempfile.mkdtemp(prefix="awa-pgb-")
        self.addCleanup(shutil.rmtree, self.logdir, True)
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def value(self, sql, params=()):
        return self.db.execute(sql, params)[1][0][0]

    def output(self, name):
        with open(os.path.join(self.logdir, name + ".out")) as f:
            return f.read()

    def spawn(self, driver, queue, name):
        out = open(os.path.join(self.logdir, name + ".out"), "w")
        env = dict(os.environ, AWA_IT_LOG_DIR=self.logdir)
        # Small batches, short waits and frequent heartbeats: many executions of the same few
        # statements from several client connections sharing three server connections.
        p = subprocess.Popen([sys.executable, "-m", "awa_worker", "--dsn", BOUNCER, "--driver", driver,
                              "--queue", queue, "--module", "awa_it_jobs", "--name", name,
                              "--batch", "4", "--concurrency", "2", "--wait", "0.5",
                              "--heartbeat", "0.3"],
                             env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        p.awa_name = name
        self.procs.append(p)
        return p

    def executions(self):
        runs = []
        for f in os.listdir(self.logdir):
            if f.startswith("worker-"):
                with open(os.path.join(self.logdir, f)) as fh:
                    runs += [int(line.split()[0]) for line in fh if line.strip()]
        return runs

    def drain(self, driver):
        queue = "pgb_" + driver
        workers = [self.spawn(driver, queue, "%s-%d" % (driver, i)) for i in range(2)]
        deadline = time.monotonic() + 20
        while self.value("SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                         " AND query LIKE 'CALL awa_claim_wait(%%'") < 2:
            self.assertLess(time.monotonic(), deadline, "both workers blocked in CALL awa_claim_wait")
            time.sleep(0.02)
        self.db.execute("SELECT count(awa_insert('it.noop', jsonb_build_object('i', g), %s))"
                        " FROM generate_series(1, %s) g", [queue, JOBS])

        # Two blocking claimers in this process, each on its own client connection to pgbouncer.
        claimed, errors, done = [], [], threading.Event()

        def claimer():
            try:
                with awa.Client(BOUNCER, driver=driver) as c:
                    self.assertEqual(type(c.conn).__module__.split(".")[0], driver)
                    while not done.is_set():
                        jobs = c.claim(queue, worker="claimer", batch=3, wait=0.5)
                        if jobs:
                            self.assertEqual(c.complete_many(jobs), len(jobs))
                            claimed.extend(j.id for j in jobs)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=claimer, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        sql = "SELECT count(*) FROM awa.jobs WHERE queue = %s AND state = 'completed'"
        while self.value(sql, [queue]) < JOBS and not errors and time.monotonic() < deadline:
            if any(p.poll() is not None for p in workers):
                break
            time.sleep(0.1)
        done.set()
        for t in threads:
            t.join(10)
        for p in workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                self.fail("worker %s did not stop:\n%s" % (p.awa_name, self.output(p.awa_name)))
        outputs = "\n".join("---- %s (exit %s)\n%s" % (p.awa_name, p.returncode, self.output(p.awa_name))
                            for p in workers)
        self.assertEqual(errors, [], "claimer errors\n" + outputs)
        for p in workers:
            self.assertEqual(p.returncode, 0, outputs)
            self.assertNotIn(" ERROR ", self.output(p.awa_name), outputs)
            self.assertNotIn("Traceback", self.output(p.awa_name), outputs)

        rows = self.db.execute(
            "SELECT state::text, attempt, count(*), sum(cardinality(errors)) FROM awa.jobs"
            " WHERE queue = %s GROUP BY 1, 2", [queue])[1]
        self.assertEqual(rows, [("completed", 1, JOBS, 0)], outputs)
        ids = {r[0] for r in self.db.execute("SELECT id FROM awa.jobs WHERE queue = %s", [queue])[1]}
        runs = self.executions() + claimed
        self.assertEqual(len(runs), JOBS, "handler runs plus claims completed here")
        self.assertEqual(set(runs), ids)  # JOBS runs of JOBS distinct jobs: each exactly once
        self.assertGreater(len(claimed), 0, "jobs claimed here")
        self.assertGreater(len(runs) - len(claimed), 0, "jobs run by the workers")
        print("\n%s through pgbouncer: %d jobs, %d by the workers, %d by blocking claims here"
              % (driver, JOBS, len(runs) - len(claimed), len(claimed)), file=sys.stderr, flush=True)

    def test_drain_through_pgbouncer_psycopg3(self):
        self.drain("psycopg")

    def test_drain_through_pgbouncer_psycopg2(self):
        self.drain("psycopg2")

    def insert_wait(self, dsn):
        """Seconds an insert through dsn's pool waits while three claimers block in CALL awa_claim_wait(wait => '2 s')."""
        started = threading.Barrier(4)

        def claimer():
            with awa.Client(dsn, driver="psycopg") as c:
                started.wait(10)
                c.claim("pgb_idle", worker="blocked", wait=2)

        with awa.Client(dsn, driver="psycopg") as ins:
            ins.execute("SELECT 1")  # connected before the claims start
            threads = [threading.Thread(target=claimer, daemon=True) for _ in range(3)]
            for t in threads:
                t.start()
            started.wait(10)
            deadline = time.monotonic() + 5
            while self.value("SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                             " AND query LIKE 'CALL awa_claim_wait(%%'") < 3:
                self.assertLess(time.monotonic(), deadline, "three blocked claims")
                time.sleep(0.01)
            t0 = time.monotonic()
            ins.insert("pgb.other", queue="pgb_other")
            waited = time.monotonic() - t0
            for t in threads:
                t.join(10)
        return waited

    def test_blocked_claims_hold_the_pool(self):
        held = self.insert_wait(BOUNCER)
        spare = self.insert_wait(SPARE)
        print("\npool of 3, three claimers blocked in CALL awa_claim_wait(wait => '2 s'): an insert waited %.3f s;"
              " pool of 4: %.3f s" % (held, spare), file=sys.stderr, flush=True)
        self.assertGreater(held, 1.0)   # it waited for a claim to time out
        self.assertLess(spare, 0.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
