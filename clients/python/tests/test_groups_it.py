"""Groups through the Python client and worker, against the real PostgreSQL (AWA_TEST_DSN,
see support.py): insert(..., group=...), insert_many and insert_copy with group_id,
group_stats, on_group_finish (enqueued at once for a finished group, else when a worker
finishes the group's last job), and the server's errors for bad ids and a second callback.
"""
import threading
import unittest

import awa_client as awa
from support import DSN, requires_database

DRIVERS = ("psycopg", "psycopg2")


@requires_database
class GroupTests(unittest.TestCase):
    def setUp(self):
        self.db = awa.Client(DSN, driver="psycopg")
        self.addCleanup(self.db.close)
        self.db.execute("DELETE FROM awa.jobs")
        self.db.execute("DELETE FROM awa.queue_meta")
        self.db.execute("DELETE FROM awa.group_callbacks")

    def test_insert_paths_and_stats(self):
        for driver in DRIVERS:
            with self.subTest(driver=driver), awa.Client(DSN, driver=driver) as c:
                g = "g_ins_" + driver
                self.assertEqual(c.insert("k", queue="gq", group=g).group_id, g)
                self.assertIsNone(c.insert("k", queue="gq").group_id)
                self.assertEqual([j.group_id for j in c.insert_many(
                    [{"kind": "k", "queue": "gq", "group_id": g}, {"kind": "k", "queue": "gq"}])], [g, None])
                self.assertEqual(c.insert_copy([{"kind": "k", "queue": "gq", "group_id": g},
                                                {"kind": "k", "queue": "gq"}]), 2)
                stats = c.group_stats(g)
                self.assertEqual((stats["total"], stats["available"], stats["unfinished"],
                                  stats["completed"], stats["callback_job_id"]), (3, 3, 3, 0, None))
                self.assertEqual(c.group_stats("nobody")["total"], 0)

    def test_errors(self):
        for call, state in [
                (lambda: self.db.insert("k", group=""), "22023"),
                (lambda: self.db.insert_many([{"kind": "k", "group_id": "x" * 201}]), "22023"),
                (lambda: self.db.group_stats(""), "22023"),
                (lambda: self.db.on_group_finish("g", "done", priority=9), "22023")]:
            with self.assertRaises(Exception) as cm:
                call()
            self.assertEqual(getattr(cm.exception, "sqlstate", None), state, cm.exception)
        self.assertIsNotNone(self.db.on_group_finish("g_twice", "done"))
        with self.assertRaises(Exception) as cm:
            self.db.on_group_finish("g_twice", "done")
        self.assertEqual(getattr(cm.exception, "sqlstate", None), "42710")

    def test_finished_group_enqueues_at_once(self):
        jid = self.db.on_group_finish("g_empty", "report", {"n": 0}, queue="reports", priority=1,
                                      metadata={"by": "test"})
        j = self.db.get_job(jid)
        self.assertEqual((j.kind, j.queue, j.priority, j.args, j.metadata),
                         ("report", "reports", 1, {"n": 0}, {"by": "test", "finished_group": "g_empty"}))
        self.assertEqual(self.db.group_stats("g_empty")["callback_job_id"], jid)

    def test_worker_finishes_the_group(self):
        reg = awa.Registry()
        seen = []

        @reg.job("part")
        def part(job):
            if job.args["n"] == 2:
                raise awa.Fail("part 2 fails for good", terminal=True)
            job.set_result(job.args["n"])

        @reg.job("batch_done")
        def batch_done(job):
            seen.append((job.metadata["finished_group"], self.db.group_stats(job.metadata["finished_group"])))

        self.db.insert_many([{"kind": "part", "queue": "gw", "args": {"n": n}, "group_id": "g_w"}
                             for n in range(4)])
        self.assertIsNone(self.db.on_group_finish("g_w", "batch_done", queue="gw"))
        w = awa.Worker(DSN, queue="gw", registry=reg, driver="psycopg", batch=10)
        self.assertEqual(w.run_once(), 4)
        stats = self.db.group_stats("g_w")
        self.assertEqual((stats["completed"], stats["failed"], stats["unfinished"]), (3, 1, 0))
        self.assertIsNotNone(stats["callback_job_id"])
        self.assertEqual(w.run_once(), 1)  # the callback job
        self.assertEqual(len(seen), 1)
        self.assertEqual((seen[0][0], seen[0][1]["completed"], seen[0][1]["failed"]), ("g_w", 3, 1))
        self.assertEqual(w.run_once(), 0)  # enqueued once

    def test_concurrent_workers_enqueue_the_callback_once(self):
        """Three workers, each on its own connections, finish the jobs of three groups at once
        (one job a transaction, in batches of 5): each group's callback is enqueued once."""
        reg = awa.Registry()
        reg.register("part", lambda job: job.set_result(job.args["n"]))
        groups = ["g_c%d" % i for i in range(3)]
        for g in groups:
            self.db.insert_many([{"kind": "part", "queue": "gc", "args": {"n": n}, "group_id": g}
                                 for n in range(60)])
            self.db.on_group_finish(g, "batch_done", {"group": g}, queue="gc_done")
        errors = []

        def work():
            try:
                w = awa.Worker(DSN, queue="gc", registry=reg, driver="psycopg", batch=1)
                while w.run_once():
                    pass
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        for g in groups:
            stats = self.db.group_stats(g)
            self.assertEqual((stats["completed"], stats["unfinished"]), (60, 0), g)
            self.assertIsNotNone(stats["callback_job_id"], g)
        names, rows = self.db.execute(
            "SELECT metadata ->> 'finished_group', count(*) FROM awa.jobs WHERE kind = 'batch_done'"
            " GROUP BY 1 ORDER BY 1")
        self.assertEqual(rows, [(g, 1) for g in groups])


if __name__ == "__main__":
    unittest.main()
