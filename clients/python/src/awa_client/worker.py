"""A worker that runs registered handlers for the jobs of one queue, several, or all.

Threads and connections (each connection used by one thread at a time):

- the claim thread (connection 1) claims in batches with the blocking claim,
  ``CALL awa_claim_wait(queue, worker => ..., batch => free slots, wait => ...)``
  on its autocommit connection (it sleeps between transactions, so a waiting
  worker does not hold back VACUUM; ``awa_claim`` on servers without it), and
  hands the jobs to the handler threads;
- ``concurrency`` handler threads run ``handler(job)``;
- the bookkeeping thread (connection 2) records outcomes (``awa_complete_many``
  for successes, with the results handlers set, ``awa_fail`` with the exception
  text, ``awa_snooze``, ``awa_wait_external`` for a job its handler parks), and
  heartbeats the jobs it holds (``awa_heartbeat``); a job the heartbeat reports
  lost (cancelled or rescued) is stopped: ``job.cancelled`` is set and
  ``JobCancelled`` is raised inside its handler thread.

What a handler gets: the ``Job`` (its row), plus ``job.cancelled`` (a
``threading.Event`` set when the job is no longer ours), ``job.report_progress(data)``
(``awa_progress``), ``job.set_result(value)`` (stored as the job's ``result`` when it
completes; JSON-serializable, ``TypeError`` at once otherwise; a result the server
refuses as larger than ``awa.max_args_bytes`` fails the job with that error, retried
with backoff like a handler's exception),
``job.parent_results()`` (``awa_parent_results``: for a job inserted with ``after``, its
parents' rows as dicts with their ``result``) and ``job.wait_external(timeout)``: it registers a callback for the job
(``awa_register_callback``) and returns its id (a UUID string) for the handler to give
an outside system; when the handler then returns, the worker parks the job in
``waiting_external`` (``awa_wait_external``) instead of completing it, and its slot is
free.  Whoever knows the id later completes, fails or retries the job
(``Client.complete_external`` and friends).  A callback that comes before the park has
already resolved the job: the park then changes nothing (outcome ``parked``, logged
with ``early: true``).  A handler that raises after ``wait_external`` fails the job as
usual, and its callback id no longer acts.  ``timeout`` is seconds, a timedelta or
interval text (more than 0, at most 36500 days); ``wait_external`` raises
``JobCancelled`` when the job is no longer ours.

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

Observability (both off by default):

- ``metrics_port``: serve Prometheus metrics at ``http://metrics_addr:port/metrics``
  (``metrics_addr`` 127.0.0.1 unless given; port 0 picks a free one, read back from
  ``metrics_port`` once ``run()`` serves): ``awa_worker_jobs_in_flight`` (handlers
  running), ``awa_worker_jobs_total{kind,outcome}`` (outcome: completed, failed,
  snoozed, lost, released, given_up, parked), ``awa_worker_handler_seconds{kind}`` (histogram),
  plus the process's own ``process_*``/``python_*`` series.  Needs ``prometheus_client``
  (Debian: python3-prometheus-client), imported only then.
- every job outcome is logged once on the ``awa.worker`` logger with an ``awa`` attribute
  holding the event (event, job_id, kind, queue, attempt, duration, outcome, error ...);
  ``JsonFormatter`` writes each record as one JSON object per line.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import json
import logging
import os
import queue as _queue
import signal
import socket
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .client import Client, Interval, Job, _json_default, connect

__all__ = ["Worker", "Registry", "registry", "job", "Snooze", "Fail", "JobCancelled",
           "JsonFormatter"]

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


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: ts (UTC, ISO 8601), level, logger, the record's event
    fields (its ``awa`` attribute: event, job_id, kind, queue, attempt, duration, outcome,
    error, ... for job outcomes), msg, and exc (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
        obj: Dict[str, Any] = {"ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                               "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, "awa", None)
        if isinstance(fields, dict):
            obj.update(fields)
        obj["msg"] = record.getMessage()
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exc"] = record.exc_text
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, default=str, ensure_ascii=False)


# outcomes counted in Worker.stats and awa_worker_jobs_total, and their log events
OUTCOMES = ("completed", "failed", "snoozed", "lost", "released", "given_up", "parked")
_HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                    600, 1800, 3600)


class _Metrics:
    """The worker's Prometheus metrics, in a registry of its own (several workers may share a
    process), served over HTTP by start()."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ImportError("metrics_port needs the prometheus_client package (Debian: apt-get "
                              "install python3-prometheus-client; pip: prometheus-client)") from exc
        self.prom = prom
        self.registry = prom.CollectorRegistry(auto_describe=True)
        for collector in ("ProcessCollector", "PlatformCollector", "GCCollector"):
            try:
                getattr(prom, collector)(registry=self.registry)
            except Exception:  # not on this platform
                pass
        self.in_flight = prom.Gauge("awa_worker_jobs_in_flight", "Jobs whose handler is running",
                                    registry=self.registry)
        self.jobs = prom.Counter("awa_worker_jobs", "Jobs handled, by kind and recorded outcome "
                                 "(completed, failed, snoozed, lost, released, given_up, parked)",
                                 ["kind", "outcome"], registry=self.registry)
        self.seconds = prom.Histogram("awa_worker_handler_seconds", "Time spent in the handler",
                                      ["kind"], buckets=_HANDLER_BUCKETS, registry=self.registry)
        self.server: Any = None
        self.thread: Optional[threading.Thread] = None

    def init_kinds(self, kinds) -> None:
        """Series at 0 for the registered kinds, so that rates start from the first scrape."""
        for kind in kinds:
            for outcome in OUTCOMES:
                self.jobs.labels(kind, outcome)
            self.seconds.labels(kind)

    def start(self, addr: str, port: int) -> int:
        """Serve /metrics on addr:port in a daemon thread; returns the port bound."""
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True
            address_family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]

        class Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = make_server(addr, port, self.prom.make_wsgi_app(self.registry), Server,
                                  handler_class=Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, name="awa-metrics",
                                       daemon=True)
        self.thread.start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


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

    ``queue``: a queue name (default "default"), a list of names, or ``ALL_QUEUES``
    (None) for every queue (both need awa 0.3.0).  A worker of several queues claims the
    most urgent due jobs of any of them, in the order of one queue's claim (priority, then
    how long they have been due), each queue's pause and concurrency limit holding, and
    its blocking claim wakes for a job of any of them.

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
    ``metrics_port`` (None: no metrics) and ``metrics_addr`` (default 127.0.0.1): serve
    Prometheus metrics while ``run()`` runs (see the module's documentation).
    """

    def __init__(self, dsn: Optional[str] = None, *,
                 queue: Union[str, Sequence[str], None] = "default",
                 registry: Registry = registry, connect: Optional[Callable[[], Any]] = None,
                 driver: Optional[str] = None, batch: int = 10, concurrency: Optional[int] = None,
                 lease: Interval = 60, wait: Interval = 5, heartbeat_interval: float = 10,
                 shutdown_timeout: float = 30, name: Optional[str] = None,
                 on_job_done: Optional[Callable[[Job], None]] = None,
                 connection_check_interval: Optional[float] = 1.0,
                 prepare_threshold: Optional[int] = None, statement_retries: int = 3,
                 retry_delay: float = 0.2, retry_max_delay: float = 5.0,
                 metrics_port: Optional[int] = None, metrics_addr: str = "127.0.0.1") -> None:
        if dsn is None and connect is None:
            dsn = os.environ.get("AWA_DSN", "")
        self.dsn, self.driver, self._connect_fn = dsn, driver, connect
        self.queue = queue if queue is None or isinstance(queue, str) else list(queue)
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
        self.stats = {outcome: 0 for outcome in OUTCOMES}
        self.metrics_port, self.metrics_addr = metrics_port, metrics_addr
        self._metrics = _Metrics() if metrics_port is not None else None  # ImportError early
        self._deadline: Optional[float] = None  # set by stop(): the end of shutdown_timeout

        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._held: Dict[int, _Running] = {}  # job id -> running job
        self._work: "_queue.Queue[Optional[_Running]]" = _queue.Queue()
        self._results: "_queue.Queue[tuple]" = _queue.Queue()
        self._claim_conn = None
        self._claim_busy = False
        self._bg_lock = threading.Lock()  # guards the bookkeeping connection (progress calls too)
        self._once_running = 0  # handlers running in run_once()
        if self._metrics is not None:
            self._metrics.in_flight.set_function(self._in_flight)

    # -- metrics and outcome events --------------------------------------------

    @property
    def metrics_registry(self) -> Any:
        """The prometheus_client CollectorRegistry of this worker (None without metrics_port)."""
        return self._metrics.registry if self._metrics is not None else None

    def start_metrics(self) -> Optional[int]:
        """Serve /metrics (run() does it); returns the port, also stored in metrics_port."""
        m = self._metrics
        if m is None:
            return None
        if m.server is None:
            m.init_kinds(self.registry.handlers)
            self.metrics_port = m.start(self.metrics_addr, self.metrics_port)
            log.info("worker %s: metrics on http://%s:%d/metrics", self.name, self.metrics_addr,
                     self.metrics_port)
        return self.metrics_port

    def _in_flight(self) -> int:
        """Handlers running now (read from the jobs held: a JobCancelled cannot skew it)."""
        with self._lock:
            return self._once_running + sum(1 for r in self._held.values() if r.in_handler)

    def stop_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.stop()

    def _done(self, j: Job, outcome: str, level: int = logging.INFO, msg: Optional[str] = None,
              args: tuple = (), **fields: Any) -> None:
        """Count a job's recorded outcome (stats, metrics) and log its event."""
        self.stats[outcome] += 1
        if self._metrics is not None:
            self._metrics.jobs.labels(j.kind, outcome).inc()
        if not log.isEnabledFor(level):
            return
        duration = getattr(j, "_awa_seconds", None)
        event = {"event": "job_" + outcome, "job_id": j.id, "kind": j.kind, "queue": j.queue,
                 "attempt": j.attempt, "duration": None if duration is None else round(duration, 6),
                 "outcome": outcome, "worker": self.name}
        event.update(fields)
        if msg is None:
            msg, args = "job %d (%s) %s", (j.id, j.kind, outcome.replace("_", " "))
            if fields.get("state") is not None:
                msg, args = msg + " (%s)", args + (fields["state"],)
            if duration is not None:
                msg, args = msg + " after %.3f s", args + (duration,)
            if fields.get("error") is not None:
                msg, args = msg + ": %s", args + (fields["error"],)
        log.log(level, msg, *args, extra={"awa": event})

    def _completed_ids(self, client: Client, done: List[Job], n: int) -> set:
        """Which of done awa_complete_many completed (n of them; the rest were lost)."""
        if n >= len(done):
            return {j.id for j in done}
        try:
            rows = client.execute(
                "SELECT j.id FROM awa.jobs j JOIN unnest(%s::bigint[], %s::bigint[]) AS u(id, lease)"
                " ON j.id = u.id AND j.run_lease = u.lease WHERE j.state = 'completed'",
                [[j.id for j in done], [j.run_lease for j in done]])[1]
            return {int(r[0]) for r in rows}
        except Exception as exc:  # the counts stay right; which job was lost is a guess
            log.debug("cannot tell which jobs completed: %s", exc)
            return {j.id for j in done[:n]}

    # -- connections ---------------------------------------------------------

    def connect(self):
        """A new autocommit connection, named after the worker in pg_stat_activity.

        It also sets client_connection_check_interval (PostgreSQL 14+): a worker that dies
        (SIGKILL, lost host) while its backend blocks in a claim would otherwise leave that
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

    @property
    def queue_label(self) -> str:
        """The queue or queues served, for logs: "mail", "mail,sms" or "*" (every queue)."""
        if self.queue is None:
            return "*"
        return self.queue if isinstance(self.queue, str) else ",".join(self.queue)

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
                _attach(client, j, None)
                self._once_running += 1
                try:
                    outcome = self._run_handler(j)
                finally:
                    self._once_running -= 1
                if outcome[0] == "complete":
                    done.append(j)
                else:
                    self._record(client, outcome)
            if done:
                try:
                    n = client.complete_many(done, results=[_result(j) for j in done])
                except Exception as exc:
                    if _is_transient(exc, client.conn):
                        raise
                    # one job's result refused (too large): find it, one call each
                    for j in done:
                        self._done_completing(j, _complete_or_fail(client, j))
                else:
                    ok = self._completed_ids(client, done, n)
                    for j in done:
                        self._done(j, "completed" if j.id in ok else "lost")
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
        serving = self._metrics is not None and self._metrics.server is None
        self.start_metrics()  # a port in use fails here, before any connection
        try:
            bg_client = self._client(self.connect())
            self._claim_conn = self.connect()
        except BaseException:
            if serving:
                self.stop_metrics()
            raise
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
        log.info("worker %s: queue %s, batch %d, concurrency %d", self.name, self.queue_label,
                 self.batch, self.concurrency,
                 extra={"awa": {"event": "worker_started", "worker": self.name, "queue": self.queue,
                                "batch": self.batch, "concurrency": self.concurrency}})
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
            if serving:
                self.stop_metrics()
            log.info("worker %s stopped: %s", self.name, self.stats,
                     extra={"awa": {"event": "worker_stopped", "worker": self.name,
                                    "queue": self.queue, "stats": dict(self.stats)}})

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
                _attach(bg_client, j, self._bg_lock)
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
        m = self._metrics
        t0 = time.monotonic()
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
            j._awa_error = str(f)
            return ("fail", j, str(f), f.retry_in, f.terminal)
        except Exception as exc:
            j._awa_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return ("fail", j, _error_text(exc), None, False)
        finally:
            j._awa_seconds = time.monotonic() - t0
            if m is not None:
                m.seconds.labels(j.kind).observe(j._awa_seconds)
            if self.on_job_done is not None:
                try:
                    self.on_job_done(j)
                except Exception:
                    log.exception("on_job_done failed")
        if j.cancelled.is_set():
            return ("lost", j)
        if getattr(j, "_awa_park", False):
            return ("park", j)
        return ("complete", j)

    def _record(self, client: Client, outcome: tuple) -> None:
        """Write one non-success outcome (no retries: the caller decides)."""
        what, j = outcome[0], outcome[1]
        if what == "fail":
            state = client.fail(j.id, j.run_lease, outcome[2], retry_in=outcome[3],
                                terminal=outcome[4])
            error = getattr(j, "_awa_error", None) or outcome[2]
            if state:
                self._done(j, "failed", error=error, state=state)
            else:
                self._done(j, "lost", error=error)
        elif what == "snooze":
            ok = client.snooze(j.id, j.run_lease, outcome[2])
            seconds = outcome[2]
            seconds = seconds.total_seconds() if hasattr(seconds, "total_seconds") else seconds
            self._done(j, "snoozed" if ok else "lost", snooze=seconds)
        elif what == "release":
            client.snooze(j.id, j.run_lease, 0)
            self._done(j, "released")
        elif what == "park":
            parked = client.wait_external(j.id, j.run_lease)
            # not parked: its callback came first and resolved it (or it was cancelled)
            self._done(j, "parked", early=not parked)
        elif what == "lost":
            self._done(j, "lost")

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
        state = _sqlstate(err.error)
        self._done(j, "given_up", logging.ERROR,
                   "giving up on job %d (%s): %s failed%s: %s; it stays running until its heartbeat"
                   " goes stale and awa_rescue() takes it back",
                   (j.id, j.kind, what, " (SQLSTATE %s)" % state if state else "", err.error),
                   error=str(err.error), call=what, sqlstate=state)
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
                        r = self._held.get(outcome[1].id)
                        if r is not None and r.job is outcome[1]:
                            del self._held[outcome[1].id]
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
        with self._lock:  # the outcome of a job given up meanwhile was counted then
            batch = [o for o in batch if getattr(self._held.get(o[1].id), "job", None) is o[1]]
        done = [o[1] for o in batch if o[0] == "complete"]
        if done:
            try:
                n = self._call(client, lock, "completing %d jobs" % len(done),
                               lambda c: c.complete_many(done, results=[_result(j) for j in done]),
                               statement_retries=0)
                with lock:
                    ok = self._completed_ids(client, done, n)
                for j in done:
                    self._done(j, "completed" if j.id in ok else "lost")
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
                self._done(outcome[1], "lost")

    def _record_one(self, client: Client, lock: threading.Lock, outcome: tuple) -> None:
        what, j = outcome[0], outcome[1]
        name = {"complete": "awa_complete", "fail": "awa_fail",
                "park": "awa_wait_external"}.get(what, "awa_snooze")
        try:
            if what == "complete":
                self._done_completing(j, self._call(client, lock, "%s of job %d" % (name, j.id),
                                                    lambda c: _complete_or_fail(c, j),
                                                    self.statement_retries))
            else:
                self._call(client, lock, "%s of job %d" % (name, j.id),
                           lambda c: self._record(c, outcome), self.statement_retries)
        except _GiveUp as g:
            self._give_up(j, g, name)

    def _done_completing(self, j: Job, outcome: tuple) -> None:
        """Count and log what _complete_or_fail did with a job."""
        if outcome[0] == "failed":
            self._done(j, "failed", error=j._awa_error, state=outcome[1])
        else:
            self._done(j, outcome[0])

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
                self._done(r.job, "released", logging.WARNING,
                           "released job %d (%s) still running at shutdown", (r.job.id, r.job.kind))
            except Exception as exc:
                log.error("releasing job %d (%s) failed: %s", r.job.id, r.job.kind, exc)


def _complete_or_fail(client: Client, j: Job) -> tuple:
    """awa_complete of one job with its result; a result the server refuses as too large
    (SQLSTATE 54000: more than awa.max_args_bytes) fails the job with that error instead
    (awa_fail: retried with backoff while it has attempts left), rather than leaving it
    running until rescued.  Returns ("completed",), ("lost",) or ("failed", new state);
    ("lost",) also when the failure finds the lease stale."""
    try:
        return ("completed",) if client.complete(j.id, j.run_lease, _result(j)) else ("lost",)
    except Exception as exc:
        if _sqlstate(exc) != "54000":
            raise
        j._awa_error = "result refused: %s" % str(exc).strip()
        state = client.fail(j.id, j.run_lease, j._awa_error)
        return ("failed", state) if state else ("lost",)


def _result(j: Job) -> Any:
    """The result the handler set (job.set_result), or None."""
    return getattr(j, "_awa_result", None)


def _attach(client: Client, j: Job, lock: Optional[threading.Lock]) -> None:
    """Give a claimed job what its handler may call (see the module's documentation)."""
    j.report_progress = _progress_fn(client, j, lock)

    def set_result(value: Any) -> None:
        """Store value (JSON-serializable; TypeError otherwise) as the job's result when it
        completes; None: no result."""
        if value is not None:
            json.dumps(value, default=_json_default)
        j._awa_result = value

    def wait_external(timeout: Interval) -> str:
        """Register a callback for this job and return its id (a UUID string); when the
        handler returns, the worker parks the job until the callback resolves it or
        ``timeout`` (seconds, a timedelta or interval text) passes.  Raises JobCancelled
        when the job is no longer ours."""
        if lock is None:
            cb = client.register_callback(j.id, j.run_lease, timeout)
        else:
            with lock:
                cb = client.register_callback(j.id, j.run_lease, timeout)
        if cb is None:
            j.cancelled.set()
            raise JobCancelled("job %d is no longer ours" % j.id)
        j._awa_park = True
        return cb

    def parent_results() -> List[Dict[str, Any]]:
        """awa_parent_results for this job: its parents (``after``) with their results."""
        if lock is None:
            return client.parent_results(j.id)
        with lock:
            return client.parent_results(j.id)

    j.set_result = set_result
    j.wait_external = wait_external
    j.parent_results = parent_results


def _progress_fn(client: Client, j: Job, lock: Optional[threading.Lock]):
    def report_progress(data: Any) -> bool:
        """awa_progress for this job (False if it is no longer ours)."""
        if lock is None:
            return client.progress(j.id, j.run_lease, data)
        with lock:
            return client.progress(j.id, j.run_lease, data)
    return report_progress
