"""Job dependencies through the Python client and worker, against the real PostgreSQL
(AWA_TEST_DSN, see support.py): Client.insert(after=..., on_parent_failure=...), insert_many
with after, Client.parent_results / dependents with both drivers, a worker handler reading
its parents' results with job.parent_results(), and the SQLSTATEs of bad input.
"""
import unittest

import awa_client as awa
from support import DSN, requires_database

DRIVERS = ("psycopg", "psycopg2")


@requires_database
class DependencyTests(unittest.TestCase):
    def setUp(self):
        self.db = awa.Client(DSN, driver="psycopg")
        self.addCleanup(self.db.close)
        self.db.execute("DELETE FROM awa.jobs")
        self.db.execute("DELETE FROM awa.queue_meta")
        self.reg = awa.Registry()

    def run_one(self, c, queue, result=None):
        jobs = c.claim(queue)
        self.assertEqual(len(jobs), 1)
        self.assertTrue(c.complete(jobs[0].id, jobs[0].run_lease, result))
        return jobs[0].id

    def test_fan_in_and_results_with_both_drivers(self):
        for driver in DRIVERS:
            with self.subTest(driver=driver), awa.Client(DSN, driver=driver) as c:
                q = "dep_fan_" + driver
                p1 = c.insert("p", queue=q, priority=1).id
                p2 = c.insert("p", queue=q, priority=1).id
                child = c.insert("c", queue=q, after=[p2, p1])
                self.assertEqual(child.state, "scheduled")
                self.assertEqual(child.run_at.year, 9999)  # 9999-12-30: never due
                self.assertEqual(self.run_one(c, q, {"part": 1}), p1)
                self.assertEqual(c.get_job(child.id).state, "scheduled")
                self.assertEqual(self.run_one(c, q, [2]), p2)
                self.assertEqual(c.get_job(child.id).state, "available")
                got = c.parent_results(child.id)
                self.assertEqual([(r["parent_id"], r["kind"], r["state"], r["satisfied"], r["result"])
                                  for r in got],
                                 [(p1, "p", "completed", True, {"part": 1}), (p2, "p", "completed", True, [2])])
                deps = c.dependents(p1)
                self.assertEqual([(d["dependent_id"], d["state"], d["waiting_for"], d["on_parent_failure"])
                                  for d in deps], [(child.id, "available", 0, "cancel")])
                self.assertEqual(c.parent_results(p1), [])

    def test_policies(self):
        c, q = self.db, "dep_pol"
        parent = c.insert("p", queue=q).id
        cancel = c.insert("c", queue="dep_pol_kids", after=[parent]).id
        run = c.insert("c", queue="dep_pol_kids", after=[parent], on_parent_failure="run").id
        wait = c.insert("c", queue="dep_pol_kids", after=[parent], on_parent_failure="wait").id
        j = c.claim(q)[0]
        self.assertEqual(c.fail(j.id, j.run_lease, "boom", terminal=True), "failed")
        self.assertEqual([c.get_job(i).state for i in (cancel, run, wait)],
                         ["cancelled", "available", "scheduled"])
        self.assertIn("job %d it runs after is failed" % parent, c.get_job(cancel).last_error["error"])
        # insert after a job that already failed: the policy applies at once
        self.assertEqual(c.insert("x", after=[parent]).state, "cancelled")
        self.assertEqual(c.insert("x", after=[parent], on_parent_failure="run").state, "available")
        # the waiting one runs once the parent is retried and completes
        c.retry(parent)
        self.run_one(c, q)
        self.assertEqual(c.get_job(wait).state, "available")

    def test_insert_many_after(self):
        parent = self.db.insert("p", queue="dep_many").id
        jobs = self.db.insert_many([{"kind": "a", "after": [parent]},
                                    {"kind": "b", "after": [parent], "on_parent_failure": "run"},
                                    {"kind": "c"}])
        self.assertEqual([j.state for j in jobs], ["scheduled", "scheduled", "available"])
        self.run_one(self.db, "dep_many")
        self.assertEqual([self.db.get_job(j.id).state for j in jobs[:2]], ["available", "available"])

    def test_bad_input_sqlstates(self):
        jid = self.db.insert("p").id
        for call, state in [
                (lambda: self.db.insert("x", after=[jid + 1000]), "23503"),
                (lambda: self.db.insert("x", after=[jid], on_parent_failure="skip"), "22023"),
                (lambda: self.db.insert_many([{"kind": "x", "after": ["a"]}]), "22023"),
                (lambda: self.db.insert_many([{"kind": "x", "after": [jid], "on_parent_failure": 1}]), "22023")]:
            with self.assertRaises(Exception) as cm:
                call()
            self.assertEqual(getattr(cm.exception, "sqlstate", None), state, cm.exception)
        self.assertEqual(self.db.execute("SELECT count(*) FROM awa.jobs")[1][0][0], 1)

    def test_worker_reads_parent_results(self):
        seen = {}

        @self.reg.job("dep.extract")
        def extract(job):
            job.set_result({"rows": job.args["n"]})

        @self.reg.job("dep.load")
        def load(job):
            parents = job.parent_results()
            seen[job.id] = parents
            job.set_result(sum(p["result"]["rows"] for p in parents))

        a = self.db.insert("dep.extract", {"n": 3}, queue="dep_w").id
        b = self.db.insert("dep.extract", {"n": 4}, queue="dep_w").id
        load_id = self.db.insert("dep.load", queue="dep_w", after=[a, b]).id
        w = awa.Worker(DSN, queue="dep_w", registry=self.reg, driver="psycopg")
        self.assertEqual(w.run_once(), 2)  # the extracts; load still waits when they are claimed
        self.assertEqual(w.run_once(), 1)  # released by their completion
        self.assertEqual([p["parent_id"] for p in seen[load_id]], [a, b])
        self.assertEqual(self.db.get_job(load_id).result, 7)


if __name__ == "__main__":
    unittest.main()
