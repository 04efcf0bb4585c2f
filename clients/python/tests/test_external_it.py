"""Results and external completion through the Python client and worker, against the real
PostgreSQL (AWA_TEST_DSN, see support.py): Client.complete(result=...), complete_many with
results, register_callback / wait_external / complete_external / fail_external /
retry_external / heartbeat_callback with both drivers, and a worker handler that parks
its job with job.wait_external(timeout) and sets results with job.set_result(value).
"""
import datetime as dt
import hashlib
import threading
import unittest
import uuid

import awa_client as awa
from support import DSN, requires_database

DRIVERS = ("psycopg", "psycopg2")


@requires_database
class ExternalTests(unittest.TestCase):
    def setUp(self):
        self.db = awa.Client(DSN, driver="psycopg")
        self.addCleanup(self.db.close)
        self.db.execute("DELETE FROM awa.jobs")
        self.db.execute("DELETE FROM awa.queue_meta")
        self.reg = awa.Registry()

    def job(self, jid):
        return self.db.get_job(jid)

    def claim_one(self, c, queue):
        jobs = c.claim(queue)
        self.assertEqual(len(jobs), 1)
        return jobs[0]

    def test_results(self):
        for driver in DRIVERS:
            with self.subTest(driver=driver), awa.Client(DSN, driver=driver) as c:
                q = "ext_res_" + driver
                jid = c.insert("r", queue=q).id
                j = self.claim_one(c, q)
                self.assertFalse(c.complete(jid, j.run_lease + 1, {"no": 1}))
                self.assertTrue(c.complete(jid, j.run_lease, {"rows": [1, 2], "when": dt.date(2026, 1, 2)}))
                self.assertEqual(c.get_job(jid).result, {"rows": [1, 2], "when": "2026-01-02"})
                with self.assertRaises(TypeError):
                    c.complete(jid, j.run_lease, object())
                ids = [c.insert("r", queue=q).id for _ in range(3)]
                jobs = c.claim(q, batch=3)
                self.assertEqual(c.complete_many(jobs, results=["a", None, 3]), 3)
                got = {x.id: x.result for x in (c.get_job(i) for i in ids)}
                self.assertEqual(got, {jobs[0].id: "a", jobs[1].id: None, jobs[2].id: 3})
                with self.assertRaises(ValueError):
                    c.complete_many(jobs, results=[1])

    def test_callbacks_with_both_drivers(self):
        for driver in DRIVERS:
            with self.subTest(driver=driver), awa.Client(DSN, driver=driver) as c:
                q = "ext_cb_" + driver
                jid = c.insert("e", queue=q, max_attempts=3).id
                j = self.claim_one(c, q)
                self.assertIsNone(c.register_callback(jid, j.run_lease + 1, 60))
                cb = c.register_callback(jid, j.run_lease, dt.timedelta(minutes=5))
                self.assertIsInstance(cb, str)
                self.assertEqual(uuid.UUID(cb).version, 4)
                self.assertTrue(c.wait_external(jid, j.run_lease))
                parked = c.get_job(jid)
                self.assertEqual((parked.state, parked.callback_key, parked.callback_lease),
                                 ("waiting_external", hashlib.sha256(uuid.UUID(cb).bytes).digest(),
                                  j.run_lease))
                self.assertEqual([x.waiting_external for x in c.queue_stats() if x.queue == q], [1])
                self.assertTrue(c.heartbeat_callback(uuid.UUID(cb), "1 hour"))
                self.assertEqual(c.get_job(jid).callback_timeout, dt.timedelta(hours=1))
                self.assertEqual(c.retry_external(cb, {"why": "later"}, retry_in=0), "retryable")
                self.assertEqual(c.get_job(jid).callback_payload, {"why": "later"})
                self.assertIsNone(c.retry_external(cb))
                # next attempt: fail by callback
                j = self.claim_one(c, q)
                cb = c.register_callback(jid, j.run_lease, 60)
                self.assertTrue(c.wait_external(jid, j.run_lease))
                self.assertTrue(c.fail_external(cb, "declined\x00", {"code": 402}))
                failed = c.get_job(jid)
                self.assertEqual((failed.state, failed.last_error["error"], failed.callback_payload),
                                 ("failed", "declined\\x00", {"code": 402}))
                self.assertFalse(c.complete_external(cb))
                self.assertFalse(c.heartbeat_callback(cb))
                # complete by callback; an unknown id finds nothing
                jid = c.insert("e", queue=q).id
                j = self.claim_one(c, q)
                cb = c.register_callback(jid, j.run_lease, 60)
                self.assertTrue(c.wait_external(jid, j.run_lease))
                self.assertFalse(c.complete_external(uuid.uuid4(), {"x": 1}))
                self.assertTrue(c.complete_external(cb, {"paid": True}))
                self.assertEqual((c.get_job(jid).state, c.get_job(jid).result), ("completed", {"paid": True}))

    def test_bad_input_sqlstates(self):
        jid = self.db.insert("e", queue="ext_bad").id
        j = self.claim_one(self.db, "ext_bad")
        for call, state in [
                (lambda: self.db.register_callback(jid, j.run_lease, 0), "22023"),
                (lambda: self.db.wait_external(jid, j.run_lease), "55000"),
                (lambda: self.db.heartbeat_callback(uuid.uuid4(), -1), "22023"),
                (lambda: self.db.retry_external(uuid.uuid4(), None, -5), "22023"),
                (lambda: self.db.complete_external("not-a-uuid"), "22P02")]:
            with self.assertRaises(Exception) as cm:
                call()
            self.assertEqual(getattr(cm.exception, "sqlstate", None), state, cm.exception)

    def test_worker_parks_and_a_callback_completes(self):
        handed_out = {}

        @self.reg.job("ext.pay")
        def pay(job):
            handed_out[job.id] = job.wait_external(dt.timedelta(minutes=10))

        @self.reg.job("ext.sum")
        def add(job):
            job.set_result(sum(job.args))

        @self.reg.job("ext.bad_result")
        def bad_result(job):
            job.set_result(object())

        pay_id = self.db.insert("ext.pay", queue="ext_w").id
        sum_id = self.db.insert("ext.sum", [1, 2, 3], queue="ext_w").id
        bad_id = self.db.insert("ext.bad_result", queue="ext_w").id
        w = awa.Worker(DSN, queue="ext_w", registry=self.reg, driver="psycopg")
        self.assertEqual(w.run_once(), 3)
        self.assertEqual((w.stats["parked"], w.stats["completed"], w.stats["failed"]), (1, 1, 1))
        parked = self.job(pay_id)
        self.assertEqual((parked.state, parked.callback_key),
                         ("waiting_external", hashlib.sha256(uuid.UUID(handed_out[pay_id]).bytes).digest()))
        self.assertEqual(self.job(sum_id).result, 6)
        self.assertIn("TypeError", self.job(bad_id).last_error["error"])
        self.assertTrue(self.db.complete_external(handed_out[pay_id], {"receipt": "r-1"}))
        done = self.job(pay_id)
        self.assertEqual((done.state, done.result), ("completed", {"receipt": "r-1"}))

    def _huge_result_handlers(self):
        """A handler whose result is over awa.max_args_bytes, and one whose result fits."""
        size = int(self.db.execute("SELECT setting FROM pg_settings WHERE name = 'awa.max_args_bytes'")[1][0][0])

        @self.reg.job("ext.huge")
        def huge(job):
            job.set_result("x" * (size + 1))

        @self.reg.job("ext.small")
        def small(job):
            job.set_result({"ok": True})

    def _assert_huge_failed(self, huge_id, small_id, w):
        huge = self.job(huge_id)
        self.assertEqual(huge.state, "retryable", "a result too large fails the job, not left running")
        self.assertIn("result refused", huge.last_error["error"])
        self.assertIn("max_args_bytes", huge.last_error["error"])
        self.assertIsNone(huge.result)
        self.assertEqual((self.job(small_id).state, self.job(small_id).result), ("completed", {"ok": True}))
        self.assertEqual((w.stats["failed"], w.stats["completed"], w.stats["given_up"]), (1, 1, 0))

    def test_run_once_fails_a_job_whose_result_is_too_large(self):
        self._huge_result_handlers()
        huge_id = self.db.insert("ext.huge", queue="ext_big", max_attempts=3).id
        small_id = self.db.insert("ext.small", queue="ext_big").id
        w = awa.Worker(DSN, queue="ext_big", registry=self.reg, driver="psycopg", batch=2)
        self.assertEqual(w.run_once(), 2)
        self._assert_huge_failed(huge_id, small_id, w)

    def test_threaded_worker_fails_a_job_whose_result_is_too_large(self):
        self._huge_result_handlers()
        huge_id = self.db.insert("ext.huge", queue="ext_bigt", max_attempts=3).id
        small_id = self.db.insert("ext.small", queue="ext_bigt").id
        w = awa.Worker(DSN, queue="ext_bigt", registry=self.reg, driver="psycopg", wait=0.2,
                       heartbeat_interval=1, lease=30, batch=2, concurrency=2)
        t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False})
        t.start()
        try:
            deadline = dt.datetime.now() + dt.timedelta(seconds=30)
            while (w.stats["failed"] + w.stats["completed"] + w.stats["given_up"] < 2
                   and dt.datetime.now() < deadline):
                threading.Event().wait(0.05)
        finally:
            w.stop()
            t.join(30)
        self._assert_huge_failed(huge_id, small_id, w)

    def test_threaded_worker_callback_before_park(self):
        """The callback arrives while the handler still runs: the job completes at once and
        the worker's park finds it resolved (outcome parked, early)."""
        gate = threading.Event()

        @self.reg.job("ext.fast")
        def fast(job):
            cb = job.wait_external(60)
            with awa.Client(DSN) as other:  # the outside system answers before the park
                self.assertTrue(other.complete_external(cb, {"fast": True}))
            gate.set()

        jid = self.db.insert("ext.fast", queue="ext_t").id
        w = awa.Worker(DSN, queue="ext_t", registry=self.reg, driver="psycopg", wait=0.2,
                       heartbeat_interval=1, lease=5)
        t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False})
        t.start()
        try:
            self.assertTrue(gate.wait(20))
            deadline = dt.datetime.now() + dt.timedelta(seconds=20)
            while w.stats["parked"] < 1 and dt.datetime.now() < deadline:
                gate.wait(0.05)
        finally:
            w.stop()
            t.join(30)
        self.assertEqual(w.stats["parked"], 1)
        j = self.job(jid)
        self.assertEqual((j.state, j.result), ("completed", {"fast": True}))


if __name__ == "__main__":
    unittest.main()
