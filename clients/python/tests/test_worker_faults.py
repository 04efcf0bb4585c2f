"""The Worker when its bookkeeping calls fail.

A call the server rejects every time (here a user trigger on awa.jobs that raises for one job)
is retried a bounded number of times, then the worker gives up on that job, logs it and goes on
with the others; a lost connection is retried on a new one; stop() returns in bounded time even
when the database cannot be reached; its Prometheus endpoint and JSON logs report each job's outcome.
Needs a database with awa: AWA_TEST_DSN (see support.py).
"""
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import psycopg

import awa_client as awa
from awa_client.worker import JsonFormatter
from support import DSN, on_ring_engine, requires_database, subprocess_env

POISON = """
CREATE TABLE IF NOT EXISTS public.poisoned (id bigint PRIMARY KEY, what text NOT NULL);
CREATE OR REPLACE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM public.poisoned p WHERE p.id = OLD.id
               AND ((p.what = 'finish' AND NEW.state <> 'running')
                    OR (p.what = 'heartbeat' AND OLD.state = 'running' AND NEW.state = 'running'
                        AND NEW.heartbeat_at IS DISTINCT FROM OLD.heartbeat_at))) THEN
        RAISE EXCEPTION 'job % is poisoned (%)', OLD.id, TG_OP;
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS poison ON awa.jobs;
CREATE TRIGGER poison BEFORE UPDATE ON awa.jobs FOR EACH ROW EXECUTE FUNCTION public.poison();
"""

# The same poison in a database on the ring engine, where awa.jobs is a view: a job's next row is
# inserted (nothing is updated), so the triggers are on the ring's tables: leaving running writes
# a row of awa.done, awa.ready or awa.scheduled ('finish'), a heartbeat a row of awa.beats.
RING_TABLES = (("done", "finish"), ("ready", "finish"), ("scheduled", "finish"), ("beats", "heartbeat"))
DROP_POISON_RING = "".join("DROP TRIGGER IF EXISTS poison ON awa.%s;\n" % t for t, _ in RING_TABLES)
POISON_RING = """
CREATE TABLE IF NOT EXISTS public.poisoned (id bigint PRIMARY KEY, what text NOT NULL);
CREATE OR REPLACE FUNCTION public.poison_ring() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    jid bigint := coalesce(to_jsonb(NEW)->>'job_id', to_jsonb(NEW)->>'id')::bigint;
BEGIN
    IF EXISTS (SELECT FROM public.poisoned p WHERE p.id = jid AND p.what = TG_ARGV[0]) THEN
        RAISE EXCEPTION 'job % is poisoned (%)', jid, TG_OP;
    END IF;
    RETURN NEW;
END $$;
""" + DROP_POISON_RING + "".join(
    "CREATE TRIGGER poison BEFORE INSERT ON awa.%s FOR EACH ROW EXECUTE FUNCTION public.poison_ring('%s');\n"
    % tw for tw in RING_TABLES)


@requires_database
class WorkerTestBase(unittest.TestCase):
    """A fresh database state, a registry, and helpers to run and stop a Worker."""

    def setUp(self):
        self.db = awa.Client(DSN, driver="psycopg")
        self.addCleanup(self.db.close)
        ring = on_ring_engine(self.db)
        drop, poison = (DROP_POISON_RING, POISON_RING) if ring else (
            "DROP TRIGGER IF EXISTS poison ON awa.jobs", POISON)
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(drop)
        self.db.execute("DELETE FROM awa.jobs")
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(poison)  # several statements: the simple query protocol
        self.db.execute("TRUNCATE public.poisoned")

        def unpoison():
            with psycopg.connect(DSN, autocommit=True) as conn:
                conn.execute(drop)
        self.addCleanup(unpoison)
        self.reg = awa.Registry()

    def value(self, sql, params=()):
        return self.db.execute(sql, params)[1][0][0]

    def state(self, jid):
        return self.value("SELECT state::text FROM awa.jobs WHERE id = %s", [jid])

    def poison(self, jid, what):
        self.db.execute("INSERT INTO public.poisoned VALUES (%s, %s)", [jid, what])

    def worker(self, queue, **kw):
        kw.setdefault("driver", "psycopg")
        kw.setdefault("wait", 0.5)
        kw.setdefault("retry_delay", 0.05)
        return awa.Worker(kw.pop("dsn", DSN), queue=queue, registry=self.reg, name="faults-" + queue, **kw)

    def start(self, w):
        t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False}, daemon=True)
        t.start()
        self.addCleanup(w.stop)
        return t

    def until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                self.fail("timed out after %.0f s waiting for %s" % (timeout, what))
            time.sleep(0.05)

    def stop_within(self, w, t, seconds):
        t0 = time.monotonic()
        w.stop()
        t.join(seconds + 30)
        took = time.monotonic() - t0
        self.assertFalse(t.is_alive(), "Worker.run() still running %.0f s after stop()" % took)
        self.assertLess(took, seconds, "stop() took %.1f s" % took)
        return took


class WorkerFaultTests(WorkerTestBase):
    """Bookkeeping calls that fail."""

    def test_gives_up_on_a_job_whose_complete_or_fail_always_errors(self):
        @self.reg.job("f.ok")
        def ok(job):
            pass

        @self.reg.job("f.boom")
        def boom(job):
            raise RuntimeError("handler failed")

        good = [self.db.insert("f.ok", {"i": i}, queue="f_finish").id for i in range(3)]
        bad_complete = self.db.insert("f.ok", {"poisoned": True}, queue="f_finish").id
        bad_fail = self.db.insert("f.boom", queue="f_finish").id
        self.poison(bad_complete, "finish")
        self.poison(bad_fail, "finish")
        # The heartbeat timeout the rescue below uses, as a server setting would give it to every
        # session: the ring engine fixes each attempt's deadline when it is claimed or beats.
        w = self.worker("f_finish", statement_retries=2, shutdown_timeout=3,
                        dsn=DSN + " options='-c awa.heartbeat_timeout=1'")
        with self.assertLogs("awa.worker", logging.ERROR) as logs:
            t = self.start(w)
            self.until(lambda: w.stats["given_up"] == 2, 20, "the worker to give up on 2 jobs")
            self.until(lambda: all(self.state(j) == "completed" for j in good), 10, "the good jobs")
            self.stop_within(w, t, 5)
        text = "\n".join(logs.output)
        for jid, kind, fn in ((bad_complete, "f.ok", "awa_complete"), (bad_fail, "f.boom", "awa_fail")):
            self.assertIn("giving up on job %d (%s): %s failed (SQLSTATE P0001): job %d is poisoned"
                          % (jid, kind, fn, jid), text)
        self.assertEqual((w.stats["completed"], w.stats["given_up"]), (3, 2))
        # The given-up jobs stay running until their heartbeat is stale; awa_rescue takes them back.
        self.assertEqual([self.state(bad_complete), self.state(bad_fail)], ["running", "running"])
        self.db.execute("TRUNCATE public.poisoned")
        self.db.execute("SET awa.heartbeat_timeout = 1")
        time.sleep(1.1)
        self.assertEqual(self.db.rescue(), 2)
        # the rescue's retry is due at once: retryable until promoted on awa.jobs, available at once
        # on the ring engine (docs/storage.md, "Step 5: how the switch lands")
        retried = "available" if on_ring_engine(self.db) else "retryable"
        self.assertEqual([self.state(bad_complete), self.state(bad_fail)], [retried, retried])

    def test_gives_up_on_a_job_whose_heartbeat_always_errors_and_beats_the_others(self):
        stopped = threading.Event()

        @self.reg.job("f.nap")
        def nap(job):
            try:
                end = time.monotonic() + job.args["s"]
                while time.monotonic() < end:
                    time.sleep(0.02)  # JobCancelled arrives between bytecodes, not inside a sleep
            except awa.JobCancelled:
                stopped.set()
                raise

        bad = self.db.insert("f.nap", {"s": 30}, queue="f_beat").id
        good = self.db.insert("f.nap", {"s": 2}, queue="f_beat").id
        self.poison(bad, "heartbeat")
        w = self.worker("f_beat", heartbeat_interval=0.2, statement_retries=1, shutdown_timeout=3)
        with self.assertLogs("awa.worker", logging.ERROR) as logs:
            t = self.start(w)
            self.until(lambda: w.stats["given_up"] == 1, 15, "the worker to give up on the job")
            self.assertTrue(stopped.wait(5), "the given-up job's handler was not stopped")
            self.until(lambda: self.value("SELECT heartbeat_at > attempted_at FROM awa.jobs WHERE id = %s",
                                          [good]), 5, "a heartbeat of the other job")
            self.until(lambda: self.state(good) == "completed", 10, "the other job to complete")
            self.stop_within(w, t, 5)
        self.assertIn("giving up on job %d (f.nap): awa_heartbeat failed" % bad, "\n".join(logs.output))
        self.assertEqual(self.state(bad), "running")

    def test_a_lost_connection_is_retried_not_given_up(self):
        go = threading.Event()

        @self.reg.job("f.wait")
        def wait(job):
            go.wait(20)

        jid = self.db.insert("f.wait", queue="f_conn").id
        w = self.worker("f_conn", shutdown_timeout=5)
        t = self.start(w)
        self.until(lambda: self.state(jid) == "running", 10, "the job to be claimed")
        killed = self.value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE application_name = 'awa worker faults-f_conn'")
        self.assertEqual(killed, 2)
        go.set()
        self.until(lambda: self.state(jid) == "completed", 15, "the job to complete on a new connection")
        self.stop_within(w, t, 5)
        self.assertEqual((w.stats["completed"], w.stats["given_up"]), (1, 0))

    def test_stop_returns_when_the_database_is_gone(self):
        go = threading.Event()
        down = threading.Event()

        def connect():
            if down.is_set():
                raise psycopg.OperationalError("connection refused (the test's database is down)")
            return awa.connect(DSN, driver="psycopg", autocommit=True)

        @self.reg.job("f.wait")
        def wait(job):
            go.wait(20)

        jid = self.db.insert("f.wait", queue="f_down").id
        w = awa.Worker(connect=connect, queue="f_down", registry=self.reg, name="faults-f_down",
                       wait=0.5, shutdown_timeout=2, retry_delay=0.05)
        t = self.start(w)
        self.until(lambda: self.state(jid) == "running", 10, "the job to be claimed")
        down.set()
        self.value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                   " WHERE application_name = 'awa worker faults-f_down'")
        go.set()
        time.sleep(1)  # the outcome is being retried
        self.stop_within(w, t, 2 + 3)
        self.assertEqual(w.stats["given_up"], 1)
        self.assertEqual(self.state(jid), "running")  # for awa_rescue

    def test_nul_in_an_error_is_recorded(self):
        @self.reg.job("f.nul")
        def nul(job):
            raise ValueError("bad \x00 byte")

        for driver in ("psycopg", "psycopg2"):
            jid = self.db.insert("f.nul", queue="f_nul").id
            w = self.worker("f_nul", driver=driver)
            t = self.start(w)
            self.until(lambda: self.state(jid) == "retryable", 10, "the failure to be recorded")
            self.stop_within(w, t, 5)
            self.assertEqual(w.stats["given_up"], 0)
            err = self.value("SELECT errors[1]->>'error' FROM awa.jobs WHERE id = %s", [jid])
            self.assertTrue(err.startswith("ValueError: bad \\x00 byte"), err)

class LeaseTests(WorkerTestBase):
    """Renewable leases and hard timeouts, seen from the worker."""

    def nap_handler(self, stopped=None):
        @self.reg.job("l.nap")
        def nap(job):
            try:
                end = time.monotonic() + job.args["s"]
                while time.monotonic() < end:
                    time.sleep(0.02)
            except awa.JobCancelled:
                if stopped is not None:
                    stopped.set()
                raise

    def rescue_until(self, cond, timeout, what):
        """awa_rescue() every 0.1 s (as maintenance would) until cond()."""
        self.until(lambda: self.value("SELECT awa_rescue()") is not None and cond(), timeout, what)

    def test_a_job_longer_than_its_lease_completes_while_heartbeating(self):
        self.nap_handler()
        jid = self.db.insert("l.nap", {"s": 3}, queue="l_long").id
        w = self.worker("l_long", lease=1, heartbeat_interval=0.25)
        t = self.start(w)
        self.rescue_until(lambda: self.state(jid) == "completed", 20, "the 3 s job with a 1 s lease to complete")
        self.stop_within(w, t, 5)
        self.assertEqual(self.value("SELECT attempt FROM awa.jobs WHERE id = %s", [jid]), 1)
        self.assertEqual(self.value("SELECT cardinality(errors) FROM awa.jobs WHERE id = %s", [jid]), 0)

    def test_a_job_past_its_timeout_is_taken_back_while_heartbeating(self):
        stopped = threading.Event()
        self.nap_handler(stopped)
        jid = self.db.insert("l.nap", {"s": 30}, queue="l_to", timeout=1, max_attempts=1).id
        w = self.worker("l_to", lease=10, heartbeat_interval=0.25)
        t = self.start(w)
        self.rescue_until(lambda: self.state(jid) == "failed", 20, "the job past its timeout to be taken back")
        self.assertTrue(stopped.wait(5), "the worker did not stop the handler of the job it lost")
        self.stop_within(w, t, 5)
        self.assertEqual(self.value("SELECT errors[1]->>'error' FROM awa.jobs WHERE id = %s", [jid]),
                         "timeout exceeded")

    def test_the_heartbeat_must_be_shorter_than_the_lease(self):
        with self.assertRaises(ValueError):
            self.worker("l_bad", lease=5, heartbeat_interval=5)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    """{(name, ((label, value), ...)): value} of http://127.0.0.1:port/metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, line
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        series[(m.group(1), labels)] = float(m.group(3))
    return series


class ObservabilityTests(WorkerTestBase):
    """Prometheus metrics (metrics_port, --metrics-port) and JSON logs (--log-format json)."""

    def handlers(self, go=None):
        @self.reg.job("o.ok")
        def ok(job):
            pass

        @self.reg.job("o.boom")
        def boom(job):
            raise RuntimeError("handler failed")

        @self.reg.job("o.snooze")
        def snooze(job):
            raise awa.Snooze(3600)

        @self.reg.job("o.wait")
        def wait(job):
            go.wait(20)

    def test_metrics_endpoint(self):
        go = threading.Event()
        self.handlers(go)
        ok = [self.db.insert("o.ok", {"i": i}, queue="o_metrics").id for i in range(2)]
        boom = self.db.insert("o.boom", queue="o_metrics").id
        snoozed = self.db.insert("o.snooze", queue="o_metrics").id
        waiting = self.db.insert("o.wait", queue="o_metrics").id
        port = free_port()
        w = self.worker("o_metrics", metrics_port=port)
        self.assertEqual(w.metrics_addr, "127.0.0.1")
        t = self.start(w)
        self.until(lambda: w.stats["completed"] == 2 and w.stats["failed"] == 1
                   and w.stats["snoozed"] == 1, 15, "the first jobs' outcomes")
        m = scrape(port)
        self.assertEqual(m[("awa_worker_jobs_in_flight", ())], 1)  # o.wait
        self.assertEqual(self.state(waiting), "running")
        time.sleep(0.3)
        go.set()
        self.until(lambda: self.state(waiting) == "completed", 10, "the waiting job")
        self.until(lambda: w.stats["completed"] == 3, 5, "its outcome to be counted")
        m = scrape(port)
        jobs = {(dict(k[1])["kind"], dict(k[1])["outcome"]): v for k, v in m.items()
                if k[0] == "awa_worker_jobs_total"}
        self.assertEqual(jobs[("o.ok", "completed")], 2)
        self.assertEqual(jobs[("o.boom", "failed")], 1)
        self.assertEqual(jobs[("o.snooze", "snoozed")], 1)
        self.assertEqual(jobs[("o.wait", "completed")], 1)
        self.assertEqual(sum(jobs.values()), 5, jobs)  # registered kinds start at 0: no other count
        self.assertEqual(jobs[("o.ok", "failed")], 0)
        self.assertEqual(m[("awa_worker_jobs_in_flight", ())], 0)
        count = lambda kind: m[("awa_worker_handler_seconds_count", (("kind", kind),))]
        total = lambda kind: m[("awa_worker_handler_seconds_sum", (("kind", kind),))]
        inf = lambda kind: m[("awa_worker_handler_seconds_bucket", (("kind", kind), ("le", "+Inf")))]
        self.assertEqual([count(k) for k in ("o.ok", "o.boom", "o.snooze", "o.wait")], [2, 1, 1, 1])
        self.assertEqual(inf("o.ok"), 2)
        self.assertGreater(total("o.wait"), 0.3)  # it waited for go
        self.assertLess(total("o.ok"), 1)
        self.assertIn(("process_cpu_seconds_total", ()), m)
        self.assertEqual([self.state(j) for j in ok + [boom, snoozed]],
                         ["completed", "completed", "retryable", "scheduled"])
        self.stop_within(w, t, 5)
        with self.assertRaises(OSError):  # the endpoint ends with run()
            scrape(port)

    def test_metrics_port_in_use_fails_run(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            w = self.worker("o_busy", metrics_port=busy.getsockname()[1])
            with self.assertRaises(OSError):
                w.run(install_signal_handlers=False)

    def check_events(self, lines, ok, boom):
        events = [json.loads(line) for line in lines]  # every line is one JSON object
        for e in events:
            self.assertTrue(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]), e)
            self.assertIn(e["level"], ("debug", "info", "warning", "error"))
        by_job = {e["job_id"]: e for e in events if "job_id" in e}
        done, failed = by_job[ok], by_job[boom]
        self.assertEqual((done["event"], done["outcome"], done["kind"], done["queue"], done["attempt"],
                          done["level"]), ("job_completed", "completed", "o.ok", "o_json", 1, "info"))
        self.assertEqual((failed["event"], failed["outcome"], failed["kind"], failed["attempt"],
                          failed["state"], failed["error"]),
                         ("job_failed", "failed", "o.boom", 1, "retryable", "RuntimeError: handler failed"))
        for e in (done, failed):
            self.assertIsInstance(e["duration"], float)
            self.assertTrue(0 <= e["duration"] < 5, e)
        self.assertNotIn("error", done)
        return events

    def test_json_log_lines(self):
        self.handlers()
        ok = self.db.insert("o.ok", queue="o_json").id
        boom = self.db.insert("o.boom", queue="o_json").id
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("awa.worker")
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        self.addCleanup(logger.setLevel, logger.level)  # setLevel: it clears the level cache
        self.addCleanup(setattr, logger, "propagate", logger.propagate)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # not on the test's own stderr
        w = self.worker("o_json")
        t = self.start(w)
        self.until(lambda: w.stats["completed"] == 1 and w.stats["failed"] == 1, 10, "both outcomes")
        self.stop_within(w, t, 5)
        lines = stream.getvalue().splitlines()
        events = self.check_events(lines, ok, boom)
        self.assertEqual([e["event"] for e in events if e.get("event", "").startswith("worker_")],
                         ["worker_started", "worker_stopped"])

    def test_cli_log_format_json(self):
        ok = self.db.insert("o.ok", queue="o_json").id
        boom = self.db.insert("o.boom", queue="o_json").id
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "o_jobs.py"), "w") as f:
                f.write("import awa_client as awa\n"
                        "@awa.job('o.ok')\ndef ok(job): pass\n"
                        "@awa.job('o.boom')\ndef boom(job): raise RuntimeError('handler failed')\n")
            env = subprocess_env(d)
            p = subprocess.run([sys.executable, "-m", "awa_worker", "--dsn", DSN, "--driver", "psycopg",
                                "--queue", "o_json", "--module", "o_jobs", "--once", "--log-format", "json"],
                               env=env, cwd=d, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "")
        events = self.check_events(p.stderr.splitlines(), ok, boom)
        self.assertEqual([e["event"] for e in events if e.get("event", "").startswith("worker_")],
                         ["worker_started", "worker_stopped"])  # --once logs both, as run() does
        self.assertEqual(events[-1]["event"], "worker_stopped")
        self.assertEqual(events[-1]["stats"]["completed"], 1)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    unittest.main(verbosity=2)
