"""A worker that runs registered handlers for the jobs of one queue.

Threads and connections (each connection used by one thread at a time):

- the claim thread (connection 1) claims in batches with the blocking claim,
  ``awa_claim(queue, worker => ..., batch => free slots, wait => ...)``, and
  hands the jobs to the handler threads;
- ``concurrency`` handler threads run ``handler(job)``;
- the bookkeeping thread (connection 2) records outcomes (``awa_complete_many``
  for successes, ``awa_fail`` with the exception text, ``awa_snooze``), and
  heartbeats the jobs it holds (``awa_heartbeat``); a job the heartbeat reports
  lost (cancelled or rescued) is stopped: ``job.cancelled`` is set and
  ``JobCancelled`` is raised inside its handler thread.

``stop()`` (SIGTERM/SIGINT under ``run()``) cancels the pending claim, lets the
running handlers finish for up to ``shutdown_timeout`` seconds, records their
outcomes, then releases what is still running (``awa_snooze(id, lease, 0)``: back
to the queue without using up an attempt) and closes its connections.

A bookkeeping call that fails is retried, and how depends on who failed:

- a lost connection (no SQLSTATE, or class 08, 57P01-57P03, 53xxx, and
  serialization failures and deadlocks) is retried with a fresh connection and
  growing pauses (up to ``retry_max_delay``) for as long as the worker runs, and
  until ``shutdown_timeout`` is spent once it is stopping;
- an error the server raised for the statement (a trigger, a constraint, a
  statement_timeout, ...) would most likely recur: a batch call falls back to one
  call per job, and a job's call is tried ``statement_retries`` more times with
  backoff; then the worker gives up on that job (logs its id, kind and the error,
  counts it in ``stats["given_up"]``, stops its handler) and moves on.  The job
  stays ``running`` until its heartbeat goes stale and ``awa_rescue()`` takes it
  back.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue as _queue
import signal
import socket
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

from .client import Client, Interval, Job, connect

__all__ = ["Worker", "Registry", "registry", "job", "Snooze", "Fail", "JobCancelled"]

log = logging.getLogger("awa.worker")

Handler = Callable[[Job], Any]


class Snooze(Exception):
    """Raise in a handler to run the job again later without using up an attempt."""

    def __init__(self, seconds: Interval = 60):
        super().__init__("snooze %s" % (seconds,))
        self.seconds = seconds


class Fail(Exception):
    """Raise in a handler to choose the retry delay, or to fail for good (terminal=True)."""

    def __init__(self, message: str, retry_in: Optional[Interval] = None, terminal: bool = False):
        super().__init__(message)
        self.retry_in = retry_in
        self.terminal = terminal


class JobCancelled(BaseException):
    """Raised inside a handler whose job was cancelled or rescued meanwhile (or at shutdown)."""


class _GiveUp(Exception):
    """A bookkeeping call that failed too often; ``error`` is its last exception."""

    def __init__(self, error: BaseException, transient: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.transient = transient


# SQLSTATEs of errors that say nothing about the statement: the connection or the server
# went away, or the statement lost a race and may well succeed when run again.
_TRANSIENT_SQLSTATES = ("57P01", "57P02", "57P03", "40001", "40P01")
_TRANSIENT_CLASSES = ("08", "53")


def _sqlstate(exc: BaseException) -> Optional[str]:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def _is_transient(exc: BaseException, conn: Any) -> bool:
    """A connection-level failure worth retrying, rather than an error the server raised
    for the statement itself (which would most likely be raised again)."""
    state = _sqlstate(exc)
    if state:
        return state in _TRANSIENT_SQLSTATES or state[:2] in _TRANSIENT_CLASSES
    if getattr(conn, "closed", False):
        return True
    # the driver's own errors without a SQLSTATE: connection lost, connection closed
    return any(c.__name__ in ("OperationalError", "InterfaceError") for c in type(exc).__mro__)


class Registry:
    """Handlers by job kind."""

    def __init__(self) -> None:
        self.handlers: Dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> Handler:
        self.handlers[kind] = handler
        return handler

    def job(self, kind: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@registry.job("send_email") def send_email(job): ...``."""
        return lambda fn: self.register(kind, fn)

    def get(self, kind: str) -> Optional[Handler]:
        return self.handlers.get(kind)

    def __contains__(self, kind: str) -> bool:
        return kind in self.handlers


registry = Registry()
job = registry.job  # the default registry's decorator: @awa.job("kind")


def _error_text(exc: BaseException, limit: int = 4000) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = text + "\n\n" + tb
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Running:
    """A claimed job the worker holds, from claim until its outcome is recorded."""

    __slots__ = ("job", "thread_id", "in_handler", "stop_sent", "lock")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.thread_id: Optional[int] = None
        self.in_handler = False
        self.stop_sent = False
        self.lock = threading.Lock()

    def stop(self) -> None:
        """Ask the handler to stop: set job.cancelled, raise JobCancelled in its thread."""
        self.job.cancelled.set()
        with self.lock:
            if self.in_handler and not self.stop_sent and self.thread_id is not None:
                self.stop_sent = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self.thread_id), ctypes.py_object(JobCancelled))


class Worker:
    """Run the handlers of ``registry`` for the jobs of ``queue``.

    ``dsn`` (or ``connect``, a callable returning a new DB-API connection) gives the
    worker its own connections; they are put in autocommit mode.

    ``lease`` (seconds or an interval, default 60) is renewed by every heartbeat
    (every ``heartbeat_interval`` seconds, default 10): a job may run as long as its
    handler needs while the worker is alive, and comes back ``lease`` after the worker
    died.  A hard limit per job is the job's ``timeout`` (set at enqueue).
    ``heartbeat_interval`` must be shorter than the lease (ValueError otherwise).

    ``prepare_threshold``: None (the default) never prepares statements on the server,
    which a transaction pooler (pgbouncer ``pool_mode = transaction``) requires; a number
    turns psycopg 3's prepared statements on after that many executions.
    ``statement_retries``, ``retry_delay``, ``retry_max_delay``: how bookkeeping calls that
    fail are retried (see the module's documentation).
    """

    def __init__(self, dsn: Optional[str] = None, *, queue: str = "default",
                 registry: Registry = registry, connect: Optional[Callable[[], Any]] = None,
                 driver: Optional[str] = None, batch: int = 10, concurrency: Optional[int] = None,
                 lease: Interval = 60, wait: Interval = 5, heartbeat_interval: float = 10,
                 shutdown_timeout: float = 30, name: Optional[str] = None,
                 on_job_done: Optional[Callable[[Job], None]] = None,
                 connection_check_interval: Optional[float] = 1.0,
                 prepare_threshold: Optional[int] = None, statement_retries: int = 3,
                 retry_delay: float = 0.2, retry_max_delay: float = 5.0) -> None:
        if dsn is None and connect is None:
            dsn = os.environ.get("AWA_DSN", "")
        self.dsn, self.driver, self._connect_fn = dsn, driver, connect
        self.queue = queue
        self.registry = registry
        self.batch = batch
        self.concurrency = concurrency or batch
        self.max_held = max(batch, self.concurrency)  # claimed jobs may wait for a free thread
        self.lease = lease
        lease_s = lease.total_seconds() if hasattr(lease, "total_seconds") else lease
        if isinstance(lease_s, (int, float)) and not heartbeat_interval < lease_s:
            raise ValueError("heartbeat_interval (%r s) must be shorter than the lease (%r s): "
                             "each heartbeat renews the lease" % (heartbeat_interval, lease_s))
        self.wait = wait
        self.heartbeat_interval = heartbeat_interval
        self.shutdown_timeout = shutdown_timeout
        self.name = name or "%s:%d" % (socket.gethostname(), os.getpid())
        self.on_job_done = on_job_done
        self.connection_check_interval = connection_check_interval
        if prepare_threshold is not None and (isinstance(prepare_threshold, bool)
                                              or not isinstance(prepare_threshold, int)
                                              or prepare_threshold < 0):
            raise ValueError("prepare_threshold must be None or a non-negative int")
        self.prepare_threshold = prepare_threshold
        self.statement_retries = max(0, int(statement_retries))
        self.retry_delay = retry_delay
        self.retry_max_delay = retry_max_delay
        self.stats = {"completed": 0, "failed": 0, "snoozed": 0, "lost": 0, "released": 0,
                      "given_up": 0}
        self._deadline: Optional[float] = None  # set by stop(): the end of shutdown_timeout

        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._held: Dict[int, _Running] = {}  # job id -> running job
        self._work: "_queue.Queue[Optional[_Running]]" = _queue.Queue()
        self._results: "_queue.Queue[tuple]" = _queue.Queue()
        self._claim_conn = None
        self._claim_busy = False
        self._bg_lock = threading.Lock()  # guards the bookkeeping connection (progress calls too)

    # -- connections ---------------------------------------------------------

    def connect(self):
        """A new autocommit connection, named after the worker in pg_stat_activity.

        It also sets client_connection_check_interval (PostgreSQL 14+): a worker that dies
        (SIGKILL, lost host) while its backend blocks in awa_claim would otherwise leave that
        backend waiting, and possibly claiming jobs for nobody, until the wait ends.
        """
        if self._connect_fn is not None:
            conn = self._connect_fn()
            if hasattr(conn, "prepare_threshold"):  # psycopg 3
                conn.prepare_threshold = self.prepare_threshold
        else:
            conn = connect(self.dsn or "", driver=self.driver, autocommit=False,
                           prepare_threshold=self.prepare_threshold)
        conn.autocommit = True
        settings = [("application_name", ("awa worker " + self.name)[:63])]
        if self.connection_check_interval:
            settings.append(("client_connection_check_interval",
                             "%dms" % max(1, int(self.connection_check_interval * 1000))))
        client = self._client(conn)
        for name, value in settings:
            try:
                client.execute("SELECT set_config(%s, %s, false)", [name, value])
            except Exception as exc:  # an older server: carry on without it
                log.debug("cannot set %s: %s", name, exc)
        return conn

    def _client(self, conn) -> Client:
        return Client(conn, prepare_threshold=self.prepare_threshold)

    # -- the synchronous path (tests, cron, --once) ----------------------------

    def run_once(self, wait: Interval = 0, client: Optional[Client] = None) -> int:
        """Claim one batch and run it here, one job after another; returns how many were handled.

        No heartbeats: meant for tests and short batch runs (``while w.run_once(): pass``).
        """
        own = client is None
        if own:
            client = self._client(self.connect())
        try:
            jobs = client.claim(self.queue, worker=self.name, batch=self.batch,
                                lease=self.lease, wait=wait)
            done = []
            for j in jobs:
                j.cancelled = threading.Event()
                j.report_progress = _progress_fn(client, j, None)
                outcome = self._run_handler(j)
                if outcome[0] == "complete":
                    done.append(j)
                else:
                    self._record(client, outcome)
            if done:
                self.stats["completed"] += client.complete_many(done)
            return len(jobs)
        finally:
            if own:
                client.conn.close()

    # -- the threaded worker ---------------------------------------------------

    def run(self, install_signal_handlers: bool = True) -> None:
        """Work until stop() (or SIGTERM/SIGINT when called from the main thread)."""
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, frame: self.stop())
        self._stopping.clear()
        self._deadline = None
        bg_client = self._client(self.connect())
        self._claim_conn = self.connect()
        claim_client = self._client(self._claim_conn)
        handlers = [threading.Thread(target=self._handler_loop, args=(bg_client,),
                                     name="awa-handler-%d" % i, daemon=True)
                    for i in range(self.concurrency)]
        for t in handlers:
            t.start()
        claimer = threading.Thread(target=self._claim_loop, args=(claim_client,),
                                   name="awa-claim", daemon=True)
        bookkeeper = threading.Thread(target=self._bookkeeping_loop, args=(bg_client, claimer),
                                      name="awa-bookkeeping", daemon=True)
        log.info("worker %s: queue %s, batch %d, concurrency %d", self.name, self.queue,
                 self.batch, self.concurrency)
        claimer.start()
        bookkeeper.start()
        try:
            while bookkeeper.is_alive():
                bookkeeper.join(0.2)  # short joins keep signal handlers running
        finally:
            self._stopping.set()
            for _ in handlers:
                self._work.put(None)
            claimer.join(1)
            for conn in (self._claim_conn, bg_client.conn):
                try:
                    conn.close()
                except Exception:
                    pass
            log.info("worker %s stopped: %s", self.name, self.stats)

    def stop(self) -> None:
        """Stop claiming, finish (or release) the jobs held, and return from run()."""
        if self._stopping.is_set():
            return
        self._deadline = time.monotonic() + self.shutdown_timeout
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        self._cancel_claim()

    def _cancel_claim(self) -> None:
        """End a blocking claim now rather than after `wait` (a cancelled claim claims nothing)."""
        with self._lock:
            busy = self._claim_busy
        if busy and self._claim_conn is not None:
            try:
                self._claim_conn.cancel()
            except Exception:
                pass

    def _claim_loop(self, client: Client) -> None:
        while not self._stopping.is_set():
            with self._lock:
                while len(self._held) >= self.max_held and not self._stopping.is_set():
                    self._lock.wait(0.5)
                if self._stopping.is_set():
                    return
                free = min(self.batch, self.max_held - len(self._held))
                self._claim_busy = True
            try:
                jobs = client.claim(self.queue, worker=self.name, batch=free,
                                    lease=self.lease, wait=self.wait)
            except Exception as exc:
                if self._stopping.is_set():
                    return  # the cancel of stop()
                log.error("claim failed: %s", exc)
                time.sleep(1)
                client = self._reconnect(client)
                continue
            finally:
                with self._lock:
                    self._claim_busy = False
            with self._lock:
                for j in jobs:
                    j.cancelled = threading.Event()
                    self._held[j.id] = _Running(j)
            for j in jobs:
                if self._stopping.is_set():
                    self._results.put(("release", j))  # claimed as we stopped: give back
                else:
                    self._work.put(self._held[j.id])

    def _reconnect(self, client: Client) -> Client:
        try:
            client.conn.close()
        except Exception:
            pass
        while not self._stopping.is_set():
            try:
                self._claim_conn = self.connect()
                return self._client(self._claim_conn)
            except Exception as exc:
                log.error("reconnect failed: %s", exc)
                time.sleep(2)
        return client

    def _handler_loop(self, bg_client: Client) -> None:
        me = threading.get_ident()
        while True:
            try:
                running = self._work.get()
                if running is None:
                    return
                j = running.job
                j.report_progress = _progress_fn(bg_client, j, self._bg_lock)
                with running.lock:
                    running.thread_id = me
                    running.in_handler = not j.cancelled.is_set()
                if not running.in_handler:
                    self._results.put(("lost", j))
                    continue
                try:
                    outcome = self._run_handler(j)
                finally:
                    with running.lock:
                        running.in_handler = False
                        if running.stop_sent:  # withdraw a stop not yet delivered
                            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(me), None)
                self._results.put(outcome)
            except JobCancelled:
                self._results.put(("lost", running.job))
            except BaseException:  # never lose a handler thread
                log.exception("handler thread error")

    def _run_handler(self, j: Job) -> tuple:
        handler = self.registry.get(j.kind)
        try:
            if handler is None:
                raise LookupError("no handler registered for kind %r on worker %s"
                                  % (j.kind, self.name))
            handler(j)
        except JobCancelled:
            return ("lost", j)
        except Snooze as s:
            return ("snooze", j, s.seconds)
        except Fail as f:
            return ("fail", j, str(f), f.retry_in, f.terminal)
        except Exception as exc:
            log.info("job %d (%s) failed: %s", j.id, j.kind, exc)
            return ("fail", j, _error_text(exc), None, False)
        finally:
            if self.on_job_done is not None:
                try:
                    self.on_job_done(j)
                except Exception:
                    log.exception("on_job_done failed")
        if j.cancelled.is_set():
            return ("lost", j)
        return ("complete", j)

    def _record(self, client: Client, outcome: tuple) -> None:
        """Write one non-success outcome (no retries: the caller decides)."""
        what, j = outcome[0], outcome[1]
        if what == "fail":
            state = client.fail(j.id, j.run_lease, outcome[2], retry_in=outcome[3],
                                terminal=outcome[4])
            self.stats["failed" if state else "lost"] += 1
        elif what == "snooze":
            ok = client.snooze(j.id, j.run_lease, outcome[2])
            self.stats["snoozed" if ok else "lost"] += 1
        elif what == "release":
            client.snooze(j.id, j.run_lease, 0)
            self.stats["released"] += 1
        elif what == "lost":
            self.stats["lost"] += 1

    # -- retries of bookkeeping calls ----------------------------------------------

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _pause(self, seconds: float) -> None:
        """Sleep, but not past the shutdown deadline."""
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
        time.sleep(seconds)

    def _call(self, client: Client, lock: threading.Lock, what: str, fn: Callable[[Client], Any],
              statement_retries: int, transient_retries: Optional[int] = None) -> Any:
        """fn(client) under lock, retried as the module's documentation says; raises _GiveUp.

        transient_retries None: retry a lost connection until the shutdown deadline (forever
        while the worker runs); a number bounds that too.
        """
        statement_failures = transient_failures = 0
        delay = self.retry_delay
        while True:
            try:
                with lock:
                    return fn(client)
            except Exception as exc:
                transient = _is_transient(exc, client.conn)
                if transient:
                    transient_failures += 1
                    if self._past_deadline() or (transient_retries is not None
                                                 and transient_failures > transient_retries):
                        raise _GiveUp(exc, True)
                    log.warning("%s: connection error, retrying on a new connection: %s", what, exc)
                else:
                    statement_failures += 1
                    if statement_failures > statement_retries or self._past_deadline():
                        raise _GiveUp(exc, False)
                    log.warning("%s failed (%s), retrying: %s", what, _sqlstate(exc), exc)
                self._pause(delay)
                delay = min(delay * 2, self.retry_max_delay)
                if transient:
                    self._new_connection(client, lock)

    def _new_connection(self, client: Client, lock: threading.Lock) -> None:
        """Replace client's connection (best effort: the next call reports a failure)."""
        with lock:
            try:
                client.conn.close()
            except Exception:
                pass
            try:
                client.conn = self.connect()
            except Exception as exc:
                log.error("reconnect failed: %s", exc)

    def _give_up(self, r_or_job: Any, err: _GiveUp, what: str) -> None:
        """Log a job whose bookkeeping call keeps failing, stop its handler, forget it."""
        j = r_or_job.job if isinstance(r_or_job, _Running) else r_or_job
        log.error("giving up on job %d (%s): %s failed%s: %s; it stays running until its heartbeat"
                  " goes stale and awa_rescue() takes it back", j.id, j.kind, what,
                  " (SQLSTATE %s)" % _sqlstate(err.error) if _sqlstate(err.error) else "", err.error)
        self.stats["given_up"] += 1
        with self._lock:
            r = self._held.pop(j.id, None)
            self._lock.notify_all()
        if r is not None:
            r.stop()

    # -- the bookkeeping thread --------------------------------------------------------

    def _bookkeeping_loop(self, client: Client, claimer: threading.Thread) -> None:
        lock = self._bg_lock
        next_beat = time.monotonic() + self.heartbeat_interval
        claimer_grace = None
        last_cancel = 0.0
        while True:
            now = time.monotonic()
            timeout = max(0.0, min(next_beat - now, 0.2))
            batch = []
            try:
                batch.append(self._results.get(timeout=timeout))
                while True:
                    batch.append(self._results.get_nowait())
            except _queue.Empty:
                pass
            if batch:
                self._flush(client, lock, batch)
                with self._lock:
                    for outcome in batch:
                        self._held.pop(outcome[1].id, None)
                    self._lock.notify_all()
            if time.monotonic() >= next_beat:
                self._heartbeat(client, lock)
                next_beat = time.monotonic() + self.heartbeat_interval
            if self._stopping.is_set():
                if self._deadline is None:  # stopped other than by stop()
                    self._deadline = time.monotonic() + self.shutdown_timeout
                if claimer.is_alive() and time.monotonic() - last_cancel > 0.5:
                    last_cancel = time.monotonic()  # a claim that started after stop()
                    self._cancel_claim()
                with self._lock:
                    held = list(self._held.values())
                if not held and self._results.empty() and not claimer.is_alive():
                    return
                if self._past_deadline():
                    # A claimer that ignores its cancel (stuck connecting, say) gets a few
                    # seconds more, then is left behind: run() must return.
                    if claimer_grace is None:
                        claimer_grace = time.monotonic() + 5
                    if not claimer.is_alive() or time.monotonic() >= claimer_grace:
                        self._release(client, lock, held)
                        return

    def _flush(self, client: Client, lock: threading.Lock, batch: List[tuple]) -> None:
        """Record a batch of outcomes: successes in one awa_complete_many, the rest one by one."""
        done = [o[1] for o in batch if o[0] == "complete"]
        if done:
            try:
                n = self._call(client, lock, "completing %d jobs" % len(done),
                               lambda c: c.complete_many(done), statement_retries=0)
                self.stats["completed"] += n
                self.stats["lost"] += len(done) - n
            except _GiveUp as g:
                if g.transient:
                    for j in done:
                        self._give_up(j, g, "awa_complete_many")
                else:  # find the job that fails: one call each
                    for j in done:
                        self._record_one(client, lock, ("complete", j))
        for outcome in batch:
            if outcome[0] not in ("complete", "lost"):
                self._record_one(client, lock, outcome)
            elif outcome[0] == "lost":
                self.stats["lost"] += 1

    def _record_one(self, client: Client, lock: threading.Lock, outcome: tuple) -> None:
        what, j = outcome[0], outcome[1]
        name = {"complete": "awa_complete", "fail": "awa_fail"}.get(what, "awa_snooze")
        try:
            if what == "complete":
                ok = self._call(client, lock, "%s of job %d" % (name, j.id),
                                lambda c: c.complete(j.id, j.run_lease), self.statement_retries)
                self.stats["completed" if ok else "lost"] += 1
            else:
                self._call(client, lock, "%s of job %d" % (name, j.id),
                           lambda c: self._record(c, outcome), self.statement_retries)
        except _GiveUp as g:
            self._give_up(j, g, name)

    def _heartbeat(self, client: Client, lock: threading.Lock) -> None:
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        try:
            lost = set(self._call(client, lock, "heartbeat", lambda c: c.heartbeat([r.job for r in held]),
                                  statement_retries=0, transient_retries=1))
        except _GiveUp as g:
            if g.transient:
                log.error("heartbeat failed: %s", g.error)
                return
            lost = set()
            for r in held:  # find the job that fails: one call each
                try:
                    lost.update(self._call(client, lock, "heartbeat of job %d" % r.job.id,
                                           lambda c: c.heartbeat([r.job]), self.statement_retries,
                                           transient_retries=1))
                except _GiveUp as g1:
                    if g1.transient:
                        log.error("heartbeat failed: %s", g1.error)
                        return
                    self._give_up(r, g1, "awa_heartbeat")
        for r in held:
            if r.job.id in lost:
                log.warning("job %d (%s) is no longer ours (cancelled or rescued): stopping it",
                            r.job.id, r.job.kind)
                r.stop()

    def _release(self, client: Client, lock: threading.Lock, held: List[_Running]) -> None:
        """Shutdown timeout: stop the handlers still running and give their jobs back."""
        for r in held:
            r.stop()
        for r in held:
            try:
                with lock:
                    client.snooze(r.job.id, r.job.run_lease, 0)
                self.stats["released"] += 1
                log.warning("released job %d (%s) still running at shutdown", r.job.id, r.job.kind)
            except Exception as exc:
                log.error("releasing job %d (%s) failed: %s", r.job.id, r.job.kind, exc)


def _progress_fn(client: Client, j: Job, lock: Optional[threading.Lock]):
    def report_progress(data: Any) -> bool:
        """awa_progress for this job (False if it is no longer ours)."""
        if lock is None:
            return client.progress(j.id, j.run_lease, data)
        with lock:
            return client.progress(j.id, j.run_lease, data)
    return report_progress
