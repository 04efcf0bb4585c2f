"""awa's Python client and worker against the real PostgreSQL.

Every wrapper with both drivers, the in-process Worker, and worker processes (two draining
5,000 jobs, SIGKILL rescue, SIGTERM).  Needs a database with awa: AWA_TEST_DSN (see support.py).
"""
import datetime as dt
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
from support import DSN, on_ring_engine, requires_database, subprocess_env

DRIVERS = ("psycopg", "psycopg2")


@requires_database
class AwaTestCase(unittest.TestCase):
    def setUp(self):
        self.db = awa.Client(DSN, driver="psycopg")
        self.addCleanup(self.db.close)
        self.db.execute("DELETE FROM awa.jobs")
        self.db.execute("DELETE FROM awa.queue_meta")

    def rows(self, sql, params=()):
        return self.db.execute(sql, params)[1]

    def value(self, sql, params=()):
        return self.rows(sql, params)[0][0]

    def wait_for(self, sql, params=(), expect=True, timeout=20.0, what=None, diag=None):
        deadline = time.monotonic() + timeout
        while True:
            got = self.value(sql, params)
            if got == expect:
                return got
            if time.monotonic() > deadline:
                self.fail("timed out after %.0f s waiting for %s: got %r, want %r%s"
                          % (timeout, what or sql, got, expect, "\n" + diag() if diag else ""))
            time.sleep(0.05)


class DriverTests(AwaTestCase):
    """Every core wrapper, with psycopg 3 and with psycopg2, from a DSN and from a connection."""

    def roundtrip(self, driver):
        q = "it_drv_" + driver
        with awa.Client(DSN, driver=driver) as c:
            self.assertEqual(type(c.conn).__module__.split(".")[0], driver)
            j = c.insert("it.k", {"n": 1}, queue=q, priority=1, max_attempts=3, tags=["a", "b"],
                         metadata={"tenant": 7})
            self.assertEqual((j.kind, j.queue, j.args, j.state, j.priority, j.max_attempts, j.tags,
                              j.metadata), ("it.k", q, {"n": 1}, "available", 1, 3, ["a", "b"], {"tenant": 7}))
            later = c.insert("it.k", [1, 2], queue=q,
                             run_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
            self.assertEqual((later.state, later.args), ("scheduled", [1, 2]))

            claimed = c.claim(q, worker="w-" + driver, batch=10, lease=60, wait=0.2)
            self.assertEqual([(x.id, x.state, x.attempt, x.run_lease, x.claimed_by) for x in claimed],
                             [(j.id, "running", 1, 1, "w-" + driver)])
            job = claimed[0]
            self.assertEqual(c.heartbeat([job]), [])
            self.assertEqual(c.heartbeat([job.id, later.id], [job.run_lease, 1]), [later.id])
            self.assertTrue(c.progress(job.id, job.run_lease, {"step": 1}))
            self.assertFalse(c.progress(job.id, job.run_lease + 1, {"step": 2}))
            self.assertEqual(c.fail(job.id, job.run_lease, "smtp timeout", retry_in=0), "retryable")
            self.assertIsNone(c.fail(job.id, job.run_lease, "stale lease"))

            job = c.claim(q, batch=10)[0]
            self.assertEqual((job.attempt, job.run_lease, job.progress), (2, 2, {"step": 1}))
            self.assertEqual(job.errors[0]["error"], "smtp timeout")
            self.assertTrue(c.snooze(job.id, job.run_lease, dt.timedelta(seconds=0)))
            job = c.claim(q, batch=10)[0]
            self.assertEqual(job.attempt, 2)  # the snoozed attempt did not count
            self.assertTrue(c.complete(job.id, job.run_lease))
            self.assertFalse(c.complete(job.id, job.run_lease))

            self.assertEqual(c.cancel(later.id).state, "cancelled")
            self.assertIsNone(c.cancel(later.id))
            self.assertEqual(c.retry(later.id).state, "available")
            more = [c.insert("it.k", queue=q) for _ in range(3)]
            batch = c.claim(q, batch=10)
            self.assertEqual(sorted(x.id for x in batch), sorted([later.id] + [m.id for m in more]))
            self.assertEqual(c.complete_many(batch), 4)
            self.assertEqual(c.complete_many([]), 0)
            self.assertEqual(c.fail(batch[0].id, batch[0].run_lease, "too late"), None)

            stats = {s.queue: s for s in c.queue_stats()}
            self.assertEqual(stats[q].completed_last_hour, 5)
            hist = c.queue_history(q, bucket=3600)
            self.assertEqual(sum(h["completed"] for h in hist), 5)
            self.assertEqual({h["queue"] for h in hist}, {q})
            by_kind = c.queue_history(q, bucket="1 hour", by_kind=True)
            self.assertEqual(sum(h["completed"] for h in by_kind if h["kind"] == "it.k"),
                             sum(h["completed"] for h in hist))
            self.assertEqual(stats[q].available, 0)
            self.assertEqual(c.rescue(), 0)

            last = c.claim(q, batch=1)
            self.assertEqual(last, [])

    def test_roundtrip_psycopg3(self):
        self.roundtrip("psycopg")

    def test_roundtrip_psycopg2(self):
        self.roundtrip("psycopg2")

    def user_transaction(self, driver):
        """A connection the caller owns: the client never commits; rollback drops the job."""
        conn = awa.connect(DSN, driver=driver, autocommit=False)
        self.addCleanup(conn.close)
        c = awa.Client(conn)
        j = c.insert("it.tx", queue="it_tx")
        conn.rollback()
        self.assertEqual(self.value("SELECT count(*) FROM awa.jobs WHERE id = %s", [j.id]), 0)
        j = c.insert("it.tx", queue="it_tx")
        self.assertEqual(self.value("SELECT count(*) FROM awa.jobs WHERE id = %s", [j.id]), 0)
        conn.commit()
        self.assertEqual(self.value("SELECT state::text FROM awa.jobs WHERE id = %s", [j.id]), "available")

    def test_user_transaction_psycopg3(self):
        self.user_transaction("psycopg")

    def test_user_transaction_psycopg2(self):
        self.user_transaction("psycopg2")

    def blocking_claim_holds_no_snapshot(self, driver):
        q = "it_wait_" + driver
        got = []
        with awa.Client(DSN, driver=driver) as c:
            t = threading.Thread(target=lambda: got.extend(c.claim(q, worker="w-" + driver, wait=20, lease=90)))
            t.start()
            try:
                self.wait_for("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s"
                              " AND datname = current_database() AND state = 'active'"
                              " AND wait_event_type = 'Extension'",
                              ["CALL awa_claim_wait(%"], expect=1, what="a CALL awa_claim_wait")
                for _ in range(3):
                    self.value("SELECT txid_current()")
                    self.assertIsNone(self.value(
                        "SELECT backend_xmin::text FROM pg_stat_activity WHERE query LIKE %s"
                        " AND datname = current_database() AND state = 'active'",
                        ["CALL awa_claim_wait(%"]), "a waiting claim holds no snapshot")
                    time.sleep(0.1)
                j = self.db.insert("it.k", {"n": driver}, queue=q)
            finally:
                t.join(10)
            self.assertFalse(t.is_alive())
            self.assertEqual([(x.id, x.state, x.run_lease, x.args) for x in got],
                             [(j.id, "running", 1, {"n": driver})])
            self.assertEqual(self.value("SELECT state::text FROM awa.jobs WHERE id = %s", [j.id]), "running")
            self.assertEqual(c.claim(q, wait=0.2), [])

    def test_blocking_claim_holds_no_snapshot_psycopg3(self):
        self.blocking_claim_holds_no_snapshot("psycopg")

    def test_blocking_claim_holds_no_snapshot_psycopg2(self):
        self.blocking_claim_holds_no_snapshot("psycopg2")

    def test_blocking_claim_in_a_transaction_uses_awa_claim(self):
        for driver in DRIVERS:
            q = "it_wait_tx_" + driver
            conn = awa.connect(DSN, driver=driver, autocommit=False)
            try:
                c = awa.Client(conn)
                j = self.db.insert("it.k", queue=q)
                self.assertEqual([x.id for x in c.claim(q, wait=1)], [j.id])
                conn.rollback()  # the claim was in the caller's transaction
                self.assertEqual(self.value("SELECT state::text FROM awa.jobs WHERE id = %s", [j.id]),
                                 "available")
            finally:
                conn.close()

    def test_bad_input_raises_driver_error(self):
        for driver in DRIVERS:
            with awa.Client(DSN, driver=driver) as c:
                with self.assertRaises(Exception) as cm:
                    c.insert("it.bad", queue="it_bad", priority=9)
                self.assertIn("priority", str(cm.exception))
                with self.assertRaises(ValueError):
                    c.complete_many([1, 2], [1])


class AdminWrapperTests(AwaTestCase):
    """The administration wrappers."""

    def test_insert_many(self):
        jobs = self.db.insert_many([{"kind": "it.m", "args": {"i": i}, "queue": "it_adm"} for i in range(3)])
        self.assertEqual([j.args["i"] for j in jobs], [0, 1, 2])
        self.assertEqual({j.state for j in jobs}, {"available"})

    def test_list_and_get(self):
        ids = [self.db.insert("it.l", {"i": i}, queue="it_adm", tags=["t"]).id for i in range(3)]
        page = self.db.list_jobs(queue="it_adm", limit=2)
        self.assertEqual([j.id for j in page], ids[::-1][:2])
        self.assertEqual([j.id for j in self.db.list_jobs(queue="it_adm", before_id=page[-1].id)], ids[:1])
        self.assertEqual(len(self.db.list_jobs(tag="t", state="available", kind="it.l")), 3)
        self.assertEqual(self.db.get_job(ids[0]).args, {"i": 0})
        with self.assertRaises(Exception) as cm:
            self.db.get_job(-1)
        self.assertEqual(getattr(cm.exception, "sqlstate", None), "P0002")
        with self.assertRaises(Exception) as cm:
            self.db.queue_history("it_adm", bucket=90)  # not a whole number of minutes
        self.assertEqual(getattr(cm.exception, "sqlstate", None), "22023")

    def test_retry_and_discard_failed(self):
        for kind in ("it.f1", "it.f1", "it.f2"):
            self.db.insert(kind, queue="it_adm", max_attempts=1)
        for j in self.db.claim("it_adm", batch=10):
            self.assertEqual(self.db.fail(j.id, j.run_lease, "x"), "failed")
        retried = self.db.retry_failed(kind="it.f1")
        self.assertEqual([(j.kind, j.state, j.attempt) for j in retried], [("it.f1", "available", 0)] * 2)
        self.assertEqual(self.db.discard_failed("it.f2"), 1)
        with self.assertRaises(Exception) as cm:
            self.db.retry_failed()
        self.assertEqual(getattr(cm.exception, "sqlstate", None), "22023")

    def test_insert_copy(self):
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        for driver in DRIVERS:
            with awa.Client(DSN, driver=driver) as c:
                n = c.insert_copy([{"kind": "it.copy", "args": {"t": "tab\there \\ 'q' \"dq\"\nnl"},
                                    "queue": "it_copy_" + driver, "tags": ["a b", "c,d", 'e"f']},
                                   {"kind": "it.copy", "queue": "it_copy_" + driver, "run_at": when,
                                    "priority": 1, "max_attempts": 3, "metadata": {"m": 1}}])
                self.assertEqual(n, 2)
                rows = self.rows("SELECT args, tags, state::text, priority, max_attempts, metadata, run_at"
                                 " FROM awa.jobs WHERE queue = %s ORDER BY id", ["it_copy_" + driver])
                self.assertEqual(rows[0][:3], ({"t": "tab\there \\ 'q' \"dq\"\nnl"}, ["a b", "c,d", 'e"f'],
                                               "available"))
                self.assertEqual(rows[1][2:], ("scheduled", 1, 3, {"m": 1}, when))

    def test_pause_resume_drain(self):
        self.db.insert("it.p", queue="it_pause")
        self.assertIs(self.db.pause_queue("it_pause", paused_by="tests"), True)
        self.assertIs(self.db.pause_queue("it_pause"), False)
        self.assertEqual(self.db.claim("it_pause"), [])
        self.assertTrue({s.queue: s for s in self.db.queue_stats()}["it_pause"].paused)
        self.assertIs(self.db.resume_queue("it_pause"), True)
        self.assertEqual(len(self.db.claim("it_pause")), 1)
        self.db.insert("it.p", queue="it_pause")
        self.assertEqual(self.db.drain_queue("it_pause"), 1)

    def test_queue_limit(self):
        for _ in range(3):
            self.db.insert("it.l", queue="it_limit")
        self.assertEqual(self.db.set_queue_limit("it_limit", 2)["max_running"], 2)
        self.assertEqual(len(self.db.claim("it_limit", batch=10)), 2)
        self.assertEqual(self.db.claim("it_limit", batch=10), [])
        self.assertIsNone(self.db.set_queue_limit("it_limit", None)["max_running"])
        self.assertEqual(len(self.db.claim("it_limit", batch=10)), 1)

    def test_queue_rate(self):
        for _ in range(4):
            self.db.insert("it.r", queue="it_rate")
        meta = self.db.set_queue_rate("it_rate", 3, dt.timedelta(hours=1))
        self.assertEqual((meta["rate_max_claims"], meta["rate_period"]), (3, dt.timedelta(hours=1)))
        self.assertEqual(len(self.db.claim("it_rate", batch=2)), 2)
        self.assertEqual(len(self.db.claim("it_rate", batch=10)), 1)  # only what fits
        self.assertEqual(self.db.claim("it_rate", batch=10), [])
        limits = {r["queue"]: r for r in self.db.queue_limits()}
        self.assertEqual((limits["it_rate"]["window_claims"], limits["it_rate"]["rate_max_claims"]), (3, 3))
        self.assertIsNotNone(limits["it_rate"]["next_slot_at"])
        with self.assertRaises(Exception) as bad:
            self.db.set_queue_rate("it_rate", 0, 1)
        self.assertEqual(getattr(bad.exception, "sqlstate", None), "22023")
        self.assertIn("max_claims", str(bad.exception))
        self.assertIsNone(self.db.set_queue_rate("it_rate", None)["rate_max_claims"])
        self.assertEqual(len(self.db.claim("it_rate", batch=10)), 1)
        self.assertNotIn("it_rate", {r["queue"] for r in self.db.queue_limits()})

    def test_key_limits(self):
        self.db.execute("DELETE FROM awa.key_limits")
        self.addCleanup(self.db.execute, "DELETE FROM awa.key_limits")
        for _ in range(3):
            self.assertEqual(self.db.insert("it.key", queue="it_key", concurrency_key="t1").concurrency_key, "t1")
        self.db.insert_many([{"kind": "it.key", "queue": "it_key", "concurrency_key": "t2"}])
        self.assertEqual(self.db.insert_copy([{"kind": "it.key", "queue": "it_key", "concurrency_key": "t2"},
                                              {"kind": "it.key", "queue": "it_key"}]), 2)
        self.assertEqual(self.db.insert_copy([{"kind": "it.key", "queue": "it_none", "concurrency_key": None}]), 1)
        # no rule: one job of each key at a time; the job without a key is not held
        got = sorted((j.concurrency_key or "-") for j in self.db.claim("it_key", batch=10))
        self.assertEqual(got, ["-", "t1", "t2"])
        self.assertEqual(self.db.claim("it_key", batch=10), [])
        stats = {(s["concurrency_key"], s["kind"]): s for s in self.db.key_stats()}
        self.assertEqual((stats[("t1", "it.key")]["running"], stats[("t1", "it.key")]["waiting"],
                          stats[("t1", "it.key")]["at_limit"]), (1, 2, True))
        rule = self.db.set_key_limit("t%", 2)
        self.assertEqual((rule["pattern"], rule["kind"], rule["max_running"], rule["ordered"]),
                         ("t%", None, 2, False))
        self.assertEqual(sorted(j.concurrency_key for j in self.db.claim("it_key", batch=10)), ["t1", "t2"])
        self.assertEqual(self.db.key_stats("t1")[0]["max_running"], 2)
        self.assertEqual(self.db.set_key_limit("t%", None)["max_running"], 2)
        self.assertIsNone(self.db.set_key_limit("t%", None))
        self.assertTrue(self.db.set_key_limit("o", 1, ordered=True)["ordered"])
        for bad in [("t%", 0), ("t%", 2, None, True), ("", 1)]:
            with self.assertRaises(Exception) as cm:
                self.db.set_key_limit(*bad)
            self.assertEqual(getattr(cm.exception, "sqlstate", None), "22023")
        with self.assertRaises(Exception) as cm:
            self.db.insert("it.key", queue="it_key", concurrency_key="")
        self.assertEqual(getattr(cm.exception, "sqlstate", None), "22023")

    def test_key_rate(self):
        self.db.execute("DELETE FROM awa.key_limits")
        self.addCleanup(self.db.execute, "DELETE FROM awa.key_limits")
        for queue in ["it_kr1", "it_kr2", "it_kr1", "it_kr2"]:
            self.db.insert("it.kr", queue=queue, concurrency_key="kr1")
        self.db.insert("it.kr", queue="it_kr1", concurrency_key="kr2")
        self.db.set_key_limit("kr%", 10)
        rule = self.db.set_key_rate("kr%", 3, dt.timedelta(hours=1))
        self.assertEqual((rule["max_running"], rule["rate_max_claims"], rule["rate_period"]),
                         (10, 3, dt.timedelta(hours=1)))
        # 3 claims of kr1 in the hour, whatever the queue; kr2 is not held back
        self.assertEqual(sorted(j.concurrency_key for j in self.db.claim("it_kr1", batch=10)), ["kr1", "kr1", "kr2"])
        self.assertEqual([j.concurrency_key for j in self.db.claim("it_kr2", batch=10)], ["kr1"])
        self.assertEqual(self.db.claim(["it_kr1", "it_kr2"], batch=10), [])
        stats = self.db.key_stats("kr1")[0]
        self.assertEqual((stats["rate_max_claims"], stats["window_claims"]), (3, 3))
        self.assertIsNotNone(stats["next_slot_at"])
        with self.assertRaises(Exception) as bad:
            self.db.set_key_rate("kr%", 5, "0")
        self.assertEqual(getattr(bad.exception, "sqlstate", None), "22023")
        self.assertIn("per", str(bad.exception))
        self.assertIsNone(self.db.set_key_rate("kr%", None)["rate_max_claims"])
        self.assertIsNone(self.db.set_key_rate("none%", None))
        self.assertEqual(len(self.db.claim(["it_kr1", "it_kr2"], batch=10)), 1)

    def test_unique_jobs(self):
        first = self.db.insert("it.u", {"a": 1, "b": 2}, queue="it_uniq", unique_by_args=True)
        again = self.db.insert("it.u", {"b": 2, "a": 1}, queue="it_uniq", unique_by_args=True)
        self.assertEqual(again.id, first.id)
        other = self.db.insert("it.u", {"a": 2}, queue="it_uniq", unique_by_args=True,
                               unique_states=["scheduled", "available", "running", "retryable",
                                              "waiting_external"], unique_period=3600)
        self.assertNotEqual(other.id, first.id)
        cancelled = self.db.cancel_by_unique_key("it.u", {"a": 1, "b": 2})
        self.assertEqual([(j.id, j.state) for j in cancelled], [(first.id, "cancelled")])

    def test_health_check(self):
        health = self.db.health_check()
        self.assertIn("healthy", health)


class QueueLimitStressTests(AwaTestCase):
    """awa_set_queue_limit under real concurrency: 4 threads, each its own connection, claim
    (batch 5, autocommit) and complete 200 jobs of a queue limited to 3, while a fifth connection
    samples the running count.  Never more than 3 run at once; the limit is reached; every job
    completes exactly once."""

    def test_limit_holds_under_concurrent_claims(self):
        q, limit, njobs = "it_lim_stress", 3, 200
        self.db.insert_many([{"kind": "it.lim", "queue": q, "args": {"n": i}} for i in range(njobs)])
        self.db.set_queue_limit(q, limit)
        lock = threading.Lock()
        state = {"held": 0, "peak": 0, "done": 0, "errors": []}
        stop = threading.Event()

        def worker(name):
            try:
                with awa.Client(DSN, driver="psycopg") as c:
                    while not stop.is_set():
                        jobs = c.claim(q, worker=name, batch=5)
                        if not jobs:
                            with lock:
                                if state["done"] >= njobs:
                                    return
                            time.sleep(0.002)
                            continue
                        with lock:          # counted after the claim committed: never above the DB's count
                            state["held"] += len(jobs)
                            state["peak"] = max(state["peak"], state["held"])
                        for j in jobs:
                            time.sleep(0.003)
                            with lock:      # uncounted before the completion commits
                                state["held"] -= 1
                            self.assertTrue(c.complete(j.id, j.run_lease))
                            with lock:
                                state["done"] += 1
            except Exception as e:  # reported by the main thread
                state["errors"].append(repr(e))
                stop.set()

        samples = []

        def sampler():
            with awa.Client(DSN, driver="psycopg") as c:
                while not stop.is_set():
                    samples.append(c.execute("SELECT count(*) FROM awa.jobs WHERE queue = %s AND state = 'running'",
                                             [q])[1][0][0])
                    time.sleep(0.001)

        threads = [threading.Thread(target=worker, args=("lim-%d" % i,)) for i in range(4)]
        mon = threading.Thread(target=sampler)
        mon.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stop.set()
        mon.join(10)
        self.assertEqual(state["errors"], [])
        self.assertEqual(state["done"], njobs)
        self.assertEqual(self.value("SELECT count(*) FROM awa.jobs WHERE queue = %s AND state = 'completed' "
                                    "AND attempt = 1", [q]), njobs)
        self.assertLessEqual(max(samples), limit, "more than %d running at once" % limit)
        self.assertLessEqual(state["peak"], limit)
        self.assertEqual(state["peak"], limit, "the limit was never reached: the test proves little")
        print("\nqueue limit %d: %d jobs by 4 threads, peak held %d, %d samples of the running count, max %d"
              % (limit, njobs, state["peak"], len(samples), max(samples)), file=sys.stderr)


class InProcessWorkerTests(AwaTestCase):
    """The Worker class in this process, with psycopg 3."""

    def setUp(self):
        super().setUp()
        self.reg = awa.Registry()

    def worker(self, queue, **kw):
        kw.setdefault("driver", "psycopg")
        return awa.Worker(DSN, queue=queue, registry=self.reg, **kw)

    def job(self, jid):
        names, rows = self.db.execute("SELECT * FROM awa.jobs WHERE id = %s", [jid])
        return awa.Job.from_row(names, rows[0])

    def test_exception_shows_in_errors_and_backs_off(self):
        @self.reg.job("it.boom")
        def boom(job):
            raise ValueError("kaboom %d" % job.args["n"])

        jid = self.db.insert("it.boom", {"n": 42}, queue="it_err").id
        w = self.worker("it_err")
        self.assertEqual(w.run_once(), 1)
        j = self.job(jid)
        self.assertEqual((j.state, j.attempt, len(j.errors)), ("retryable", 1, 1))
        self.assertTrue(j.errors[0]["error"].startswith("ValueError: kaboom 42"), j.errors[0])
        self.assertIn("Traceback", j.errors[0]["error"])
        self.assertEqual(j.errors[0]["attempt"], 1)
        # backoff: 2^attempt s plus up to 25% jitter, measured from the error's time
        wait1 = self.value("SELECT extract(epoch FROM run_at - (errors[1]->>'at')::timestamptz)::float8"
                           " FROM awa.jobs WHERE id = %s", [jid])
        self.assertTrue(1.99 <= wait1 <= 2.51, wait1)
        self.assertTrue(self.value("SELECT run_at > now() FROM awa.jobs WHERE id = %s", [jid]))
        self.assertEqual(w.run_once(), 0)  # not due yet

        time.sleep(max(0.0, self.value("SELECT extract(epoch FROM run_at - now())::float8"
                                        " FROM awa.jobs WHERE id = %s", [jid])) + 0.05)
        self.assertEqual(w.run_once(), 1)
        j = self.job(jid)
        self.assertEqual((j.state, j.attempt, len(j.errors)), ("retryable", 2, 2))
        wait2 = self.value("SELECT extract(epoch FROM run_at - (errors[2]->>'at')::timestamptz)::float8"
                           " FROM awa.jobs WHERE id = %s", [jid])
        self.assertTrue(3.99 <= wait2 <= 5.01, wait2)
        self.assertEqual(w.stats["failed"], 2)

    def test_fail_terminal_retry_in_snooze_progress_unknown_kind(self):
        @self.reg.job("it.terminal")
        def terminal(job):
            raise awa.Fail("bad input", terminal=True)

        @self.reg.job("it.later")
        def later(job):
            raise awa.Fail("rate limited", retry_in=30)

        @self.reg.job("it.snooze")
        def snooze(job):
            job.report_progress({"page": 3})
            raise awa.Snooze(60)

        ids = {k: self.db.insert(k, queue="it_misc").id
               for k in ("it.terminal", "it.later", "it.snooze", "it.nobody")}
        w = self.worker("it_misc")
        self.assertEqual(w.run_once(), 4)
        t = self.job(ids["it.terminal"])
        self.assertEqual((t.state, t.errors[0]["error"].splitlines()[0]), ("failed", "bad input"))
        self.assertIsNotNone(t.finalized_at)
        self.assertEqual(self.job(ids["it.later"]).state, "retryable")
        self.assertAlmostEqual(self.value(
            "SELECT extract(epoch FROM run_at - (errors[1]->>'at')::timestamptz)::float8 FROM awa.jobs"
            " WHERE id = %s", [ids["it.later"]]), 30, delta=0.5)
        s = self.job(ids["it.snooze"])
        self.assertEqual((s.state, s.attempt, s.errors, s.progress), ("scheduled", 0, [], {"page": 3}))
        self.assertAlmostEqual(self.value("SELECT extract(epoch FROM run_at - now())::float8 FROM awa.jobs"
                                          " WHERE id = %s", [ids["it.snooze"]]), 60, delta=2)
        n = self.job(ids["it.nobody"])
        self.assertEqual(n.state, "retryable")
        self.assertIn("no handler registered for kind 'it.nobody'", n.errors[0]["error"])

    def run_in_thread(self, w):
        t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False}, daemon=True)
        t.start()
        self.addCleanup(lambda: (w.stop(), t.join(10)))
        return t

    def test_heartbeat_stops_a_cancelled_job(self):
        seen = {"started": threading.Event(), "stopped": threading.Event(), "flag": None}

        @self.reg.job("it.loop")
        def loop(job):
            seen["started"].set()
            try:
                while True:
                    time.sleep(0.02)
            except awa.JobCancelled:
                seen["flag"] = job.cancelled.is_set()
                seen["stopped"].set()
                raise

        jid = self.db.insert("it.loop", queue="it_hb").id
        w = self.worker("it_hb", heartbeat_interval=0.2, wait=1)
        t = self.run_in_thread(w)
        self.assertTrue(seen["started"].wait(10))
        before = self.value("SELECT heartbeat_at FROM awa.jobs WHERE id = %s", [jid])
        self.wait_for("SELECT heartbeat_at > %s FROM awa.jobs WHERE id = %s", [before, jid],
                      timeout=5, what="a heartbeat")
        self.assertEqual(self.db.cancel(jid).state, "cancelled")
        self.assertTrue(seen["stopped"].wait(5), "the handler was not stopped")
        self.assertTrue(seen["flag"])
        deadline = time.monotonic() + 5
        while w.stats["lost"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(w.stats["lost"], 1)
        w.stop()
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(self.job(jid).state, "cancelled")

    def test_stop_finishes_short_jobs_and_releases_long_ones(self):
        started = threading.Semaphore(0)

        @self.reg.job("it.nap")
        def nap(job):
            job.report_progress({"napping": job.args["s"]})
            started.release()
            time.sleep(job.args["s"])

        short = self.db.insert("it.nap", {"s": 1.0}, queue="it_stop").id
        long = self.db.insert("it.nap", {"s": 60}, queue="it_stop").id
        w = self.worker("it_stop", batch=5, shutdown_timeout=2.5, wait=5)
        t = self.run_in_thread(w)
        self.assertTrue(started.acquire(timeout=10) and started.acquire(timeout=10))
        t0 = time.monotonic()
        w.stop()
        t.join(15)
        self.assertFalse(t.is_alive())
        self.assertLess(time.monotonic() - t0, 6)
        self.assertEqual((self.job(short).state, self.job(short).progress), ("completed", {"napping": 1.0}))
        released = self.job(long)
        # awa_snooze(id, lease, 0): scheduled until promoted on awa.jobs; on the ring engine a job
        # due at once is available at once (docs/storage.md, "Step 5: how the switch lands")
        self.assertEqual((released.state, released.attempt),
                         ("available" if on_ring_engine(self.db) else "scheduled", 0))
        self.assertEqual(w.stats["completed"], 1)
        self.assertEqual(w.stats["released"], 1)

    def test_stop_interrupts_a_blocking_claim(self):
        w = self.worker("it_idle", wait=30)
        t = self.run_in_thread(w)
        self.wait_for("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
                      ["CALL awa_claim_wait(%"], expect=1, what="a blocking claim")
        t0 = time.monotonic()
        w.stop()
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertLess(time.monotonic() - t0, 3)


class WorkerProcessTests(AwaTestCase):
    """python -m awa_worker processes: throughput, SIGKILL rescue, SIGTERM."""

    def setUp(self):
        super().setUp()
        self.logdir = tempfile.mkdtemp(prefix="awa-it-")
        self.addCleanup(shutil.rmtree, self.logdir, True)
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def spawn(self, queue, name, *extra, **env):
        out = open(os.path.join(self.logdir, name + ".out"), "w")
        env = subprocess_env(AWA_IT_LOG_DIR=self.logdir, **env)
        p = subprocess.Popen([sys.executable, "-m", "awa_worker", "--dsn", DSN, "--queue", queue,
                              "--module", "awa_it_jobs", "--name", name] + list(extra),
                             env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        p.awa_name = name
        self.procs.append(p)
        return p

    def output(self, p):
        with open(os.path.join(self.logdir, p.awa_name + ".out")) as f:
            return f.read()

    def executions(self):
        """(job id, attempt) lines written by the handlers of every worker process."""
        lines = []
        for f in os.listdir(self.logdir):
            if f.startswith("worker-"):
                with open(os.path.join(self.logdir, f)) as fh:
                    lines += [tuple(map(int, line.split())) for line in fh if line.strip()]
        return lines

    def started(self, job_id):
        """Whether a handler of it.sleep has begun job_id (it writes started-<pid>.log)."""
        for f in os.listdir(self.logdir):
            if f.startswith("started-"):
                with open(os.path.join(self.logdir, f)) as fh:
                    if str(job_id) in fh.read().split():
                        return True
        return False

    def wait_claiming(self, n):
        self.wait_for("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND query LIKE %s AND state = 'active'", ["CALL awa_claim_wait(%"],
                      expect=n, what="%d blocked claims" % n)

    def stop(self, p, timeout=15):
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail("worker %s did not stop on SIGTERM:\n%s" % (p.awa_name, self.output(p)))
        self.assertEqual(rc, 0, self.output(p))

    def test_two_processes_drain_5000_jobs_exactly_once(self):
        n = 5000
        a = self.spawn("it_drain", "drain-a", "--batch", "100", "--concurrency", "4")
        b = self.spawn("it_drain", "drain-b", "--batch", "100", "--concurrency", "4")
        self.wait_claiming(2)
        self.db.execute("SELECT count(awa_insert('it.noop', jsonb_build_object('i', g), 'it_drain'))"
                        " FROM generate_series(1, %s) g", [n])
        t0 = time.monotonic()
        deadline = t0 + 60
        while self.value("SELECT count(*) FROM awa.jobs WHERE queue = 'it_drain' AND state = 'completed'") < n:
            if time.monotonic() > deadline:
                self.fail("not drained in 60 s: %r" % self.rows(
                    "SELECT state::text, count(*) FROM awa.jobs GROUP BY 1"))
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        self.stop(a)
        self.stop(b)
        rate = n / elapsed
        print("\nawa drain: %d jobs by 2 worker processes (psycopg 3, batch 100, 4 threads each) in %.2f s = %.0f jobs/s"
              % (n, elapsed, rate), file=sys.stderr, flush=True)

        self.assertEqual(self.rows(
            "SELECT state::text, attempt, count(*), count(finalized_at), sum(cardinality(errors))"
            " FROM awa.jobs WHERE queue = 'it_drain' GROUP BY 1, 2"), [("completed", 1, n, n, 0)])
        per_worker = dict(self.rows("SELECT claimed_by, count(*) FROM awa.jobs WHERE queue = 'it_drain'"
                                    " GROUP BY 1"))
        print("awa drain: per worker %r" % per_worker, file=sys.stderr, flush=True)
        self.assertEqual(set(per_worker), {"drain-a", "drain-b"})
        runs = self.executions()
        self.assertEqual(len(runs), n, "handler executions")
        ids = {r[0] for r in self.rows("SELECT id FROM awa.jobs WHERE queue = 'it_drain'")}
        self.assertEqual({r[0] for r in runs}, ids)  # n executions of n distinct jobs: each exactly once

    def test_sigkill_mid_job_is_rescued_and_completed_by_the_other(self):
        # The heartbeat timeout the rescue below uses, as a server setting would give it to every
        # session: the ring engine fixes each attempt's deadline when it is claimed or beats.
        a = self.spawn("it_kill", "victim", "--batch", "5", "--heartbeat", "1",
                       PGOPTIONS=(os.environ.get("PGOPTIONS", "") + " -c awa.heartbeat_timeout=2").strip())
        self.wait_claiming(1)
        ids = [j.id for j in [self.db.insert("it.hang_first", {"i": i}, queue="it_kill") for i in range(3)]]
        self.wait_for("SELECT count(*) FROM awa.jobs WHERE state = 'running' AND claimed_by = 'victim'",
                      expect=3, what="the victim to hold 3 jobs")
        a.kill()  # SIGKILL: no cleanup at all
        a.wait()
        # Its backend notices (client_connection_check_interval) and ends its blocking claim,
        # rather than claiming the rescued jobs for a dead process.
        self.wait_for("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'awa worker victim'",
                      expect=0, timeout=5, what="the killed worker's backends to end")
        b = self.spawn("it_kill", "rescuer", "--batch", "5", "--wait", "1", "--driver", "psycopg2")
        self.wait_claiming(1)
        time.sleep(0.5)
        self.assertEqual(self.value("SELECT count(*) FROM awa.jobs WHERE state = 'running'"), 3)

        # No maintenance process in this database: rescue by hand with a short heartbeat timeout.
        rescued, deadline = 0, time.monotonic() + 15
        while rescued < 3 and time.monotonic() < deadline:
            rescued += self.rescue_with_timeout(2)
            time.sleep(0.2)
        self.assertEqual(rescued, 3)
        self.wait_for("SELECT count(*) FROM awa.jobs WHERE queue = 'it_kill' AND state = 'completed'",
                      expect=3, timeout=20, what="the rescuer to complete the rescued jobs",
                      diag=lambda: "%r\n%s" % (self.rows(
                          "SELECT id, state::text, attempt, run_lease, claimed_by, run_at - now(), errors::text"
                          " FROM awa.jobs ORDER BY id"), self.output(b)))
        rows = self.rows("SELECT id, attempt, claimed_by, errors[1]->>'error' FROM awa.jobs"
                         " WHERE queue = 'it_kill' ORDER BY id")
        self.assertEqual(rows, [(i, 2, "rescuer", "heartbeat stale") for i in ids])
        self.assertEqual(sorted(self.executions()), [(i, 2) for i in ids])
        self.stop(b)

    def rescue_with_timeout(self, seconds):
        conn = awa.connect(DSN, driver="psycopg2", autocommit=True)
        try:
            cur = conn.cursor()
            cur.execute("SET awa.heartbeat_timeout = %s", [seconds])
            cur.execute("SELECT awa_rescue()")
            return cur.fetchone()[0]
        finally:
            conn.close()

    def test_sigterm_finishes_the_job_in_hand(self):
        p = self.spawn("it_term", "term", "--batch", "2", "--shutdown-timeout", "20", "--driver", "psycopg2")
        self.wait_claiming(1)
        jid = self.db.insert("it.sleep", {"seconds": 1.5}, queue="it_term").id
        self.wait_for("SELECT state::text FROM awa.jobs WHERE id = %s", [jid], expect="running")
        # running is visible once the claim commits, a moment before the worker hands the
        # job to a handler (a SIGTERM in between gives it back: 'released'); wait for the
        # handler itself
        deadline = time.monotonic() + 10
        while not self.started(jid):
            if time.monotonic() > deadline:
                self.fail("the handler did not start job %d:\n%s" % (jid, self.output(p)))
            time.sleep(0.01)
        t0 = time.monotonic()
        self.stop(p)
        self.assertGreater(time.monotonic() - t0, 0.5, self.output(p))  # it waited for the handler
        self.assertEqual(self.value("SELECT state::text FROM awa.jobs WHERE id = %s", [jid]), "completed")
        self.assertEqual(self.executions(), [(jid, 1)])
        self.assertIn("'completed': 1", self.output(p))


if __name__ == "__main__":
    unittest.main(verbosity=2)
