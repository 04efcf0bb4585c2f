"""One claim, many queues, from Python: Client.claim with a list of queues or ALL_QUEUES (both
drivers, blocking and not), the Worker serving several queues or all of them, and
``awa-worker --queue a --queue b`` / ``--all-queues``.  Needs AWA_TEST_DSN (see support.py)."""
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import awa_client as awa
from support import DSN, requires_database, subprocess_env

DRIVERS = ("psycopg", "psycopg2")


def sqlstate(exc):
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


@requires_database
class MultiQueueTests(unittest.TestCase):
    def setUp(self):
        self.db = awa.Client(DSN, driver="psycopg")
        self.addCleanup(self.db.close)
        self.db.execute("DELETE FROM awa.jobs")
        self.db.execute("DELETE FROM awa.queue_meta")

    def state(self, jid):
        return self.db.execute("SELECT state::text FROM awa.jobs WHERE id = %s", [jid])[1][0][0]

    def test_claim_a_list_in_order_and_every_queue(self):
        for driver in DRIVERS:
            self.db.execute("DELETE FROM awa.jobs")
            with awa.Client(DSN, driver=driver) as c:
                low = c.insert("it.k", queue="mq_a", priority=3)
                high = c.insert("it.k", queue="mq_b", priority=1)
                mid = c.insert("it.k", queue="mq_a", priority=2)
                other = c.insert("it.k", queue="mq_c", priority=1)
                got = c.claim(["mq_a", "mq_b"], worker="w", batch=10)
                self.assertEqual([j.id for j in got], [high.id, mid.id, low.id], driver)
                self.assertEqual({j.state for j in got}, {"running"})
                self.assertEqual(self.state(other.id), "available", driver)
                self.assertEqual([j.id for j in c.claim(awa.ALL_QUEUES, batch=10)], [other.id], driver)
                self.assertEqual(c.claim(("mq_a", "mq_b", "mq_c")), [], driver)

    def test_bad_lists_raise_with_sqlstate(self):
        for driver in DRIVERS:
            with awa.Client(DSN, driver=driver) as c:
                for queues, code in (([], "22023"), (["mq_a", None], "22004"), ([""], "22023")):
                    with self.assertRaises(Exception) as cm:
                        c.claim(queues)
                    self.assertEqual(sqlstate(cm.exception), code, (driver, queues, cm.exception))
                    self.assertIn("queues", str(cm.exception))

    def test_blocking_claim_wakes_for_any_queue(self):
        for driver in DRIVERS:
            with awa.Client(DSN, driver=driver) as c:
                got = []
                t = threading.Thread(target=lambda: got.extend(c.claim(["mq_x", "mq_y"], wait=20)))
                t.start()
                try:
                    time.sleep(0.5)
                    j = self.db.insert("it.k", queue="mq_y")
                    t0 = time.monotonic()
                finally:
                    t.join(20)
                self.assertFalse(t.is_alive())
                self.assertLess(time.monotonic() - t0, 5)
                self.assertEqual([x.id for x in got], [j.id], driver)
                self.assertEqual(self.state(j.id), "running", "committed as claimed")
                self.assertEqual(c.claim(awa.ALL_QUEUES, wait=0.2), [])

    def test_worker_serves_several_queues_and_all(self):
        reg = awa.Registry()
        seen = []

        @reg.job("it.mq")
        def handle(job):
            seen.append(job.queue)

        for q in ("mq_1", "mq_2", "mq_3"):
            self.db.insert("it.mq", queue=q)
        w = awa.Worker(DSN, queue=["mq_1", "mq_2"], registry=reg, driver="psycopg", batch=10)
        self.assertEqual(w.queue_label, "mq_1,mq_2")
        self.assertEqual(w.run_once(), 2)
        self.assertEqual(sorted(seen), ["mq_1", "mq_2"])
        w = awa.Worker(DSN, queue=awa.ALL_QUEUES, registry=reg, driver="psycopg", batch=10)
        self.assertEqual(w.queue_label, "*")
        self.assertEqual(w.run_once(), 1)
        self.assertEqual(sorted(seen), ["mq_1", "mq_2", "mq_3"])
        self.assertEqual(self.db.execute("SELECT count(*) FROM awa.jobs WHERE state = 'completed'")[1][0][0], 3)

    def test_cli_queues(self):
        logdir = tempfile.mkdtemp()
        env = subprocess_env(AWA_IT_LOG_DIR=logdir)
        ids = [self.db.insert("it.noop", queue=q).id for q in ("mq_cli_a", "mq_cli_b", "mq_cli_c")]
        base = [sys.executable, "-m", "awa_worker", "--dsn", DSN, "--module", "awa_it_jobs", "--once"]
        p = subprocess.run(base + ["--queue", "mq_cli_a", "--queue", "mq_cli_b"], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([self.state(i) for i in ids], ["completed", "completed", "available"])
        p = subprocess.run(base + ["--all-queues"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.state(ids[2]), "completed")
        p = subprocess.run(base + ["--all-queues", "--queue", "x"], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--all-queues and --queue", p.stderr)
        h = subprocess.run([sys.executable, "-m", "awa_worker", "--help"], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertIn("--all-queues", h.stdout)
        for f in os.listdir(logdir):
            os.unlink(os.path.join(logdir, f))
        os.rmdir(logdir)


if __name__ == "__main__":
    unittest.main()
