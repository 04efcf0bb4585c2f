"""Thin typed wrappers of awa's SQL API over any DB-API 2 connection.

Works with psycopg 3, psycopg2, and Django's ``django.db.connection`` (anything
with ``cursor()`` whose cursors take ``%s`` placeholders).  Nothing here commits:
every call runs in the connection's current transaction, so an insert made
inside the caller's transaction commits or rolls back with it.  A ``Client``
built from a DSN string opens its own connection in autocommit mode.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .states import STATES as JOB_STATES  # noqa: F401  (the name this module always had)

__all__ = ["Client", "Job", "QueueStats", "connect", "Interval"]

Interval = Union[int, float, _dt.timedelta, str]


def connect(dsn: str = "", driver: Optional[str] = None, autocommit: bool = True,
            prepare_threshold: Optional[int] = None):
    """Open a DB-API connection with psycopg 3 (preferred) or psycopg2.

    ``driver`` forces one: ``"psycopg"`` or ``"psycopg2"``.  An empty DSN uses
    the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, ...).

    ``prepare_threshold`` is psycopg 3's: None (the default here, unlike psycopg's
    own 5) never creates server-side prepared statements, so the connection works
    through a transaction pooler (pgbouncer ``pool_mode = transaction``); a number
    turns them on after that many executions of a statement.  psycopg2 never
    prepares, so it ignores this.
    """
    if driver not in (None, "psycopg", "psycopg3", "psycopg2"):
        raise ValueError("driver must be 'psycopg' or 'psycopg2', got %r" % (driver,))
    if driver in (None, "psycopg", "psycopg3"):
        try:
            import psycopg  # type: ignore
        except ImportError:
            if driver is not None:
                raise
        else:
            return psycopg.connect(dsn, autocommit=autocommit,
                                   prepare_threshold=_threshold(prepare_threshold))
    import psycopg2  # type: ignore
    conn = psycopg2.connect(dsn)
    conn.autocommit = autocommit
    return conn


def _threshold(value: Optional[int]) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("prepare_threshold must be None or a non-negative int, got %r" % (value,))
    return value


def _is_psycopg3(obj) -> bool:
    """A psycopg 3 connection or cursor (not a wrapper such as Django's)."""
    return type(obj).__module__.split(".")[0] == "psycopg"


def interval(value: Optional[Interval]) -> Optional[str]:
    """An interval for PostgreSQL: seconds (int/float), a timedelta, or text."""
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        return "%r seconds" % value.total_seconds()
    if isinstance(value, bool):
        raise TypeError("an interval must be seconds, a timedelta or text, not bool")
    if isinstance(value, (int, float)):
        return "%r seconds" % float(value)
    if isinstance(value, str):
        return value
    raise TypeError("an interval must be seconds, a timedelta or text, got %r" % (value,))


def _json_default(value):
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return interval(value)
    raise TypeError("%r is not JSON serializable" % (value,))


def _dumps(value) -> str:
    return json.dumps(value, default=_json_default)


def _json_value(value):
    """jsonb as the driver returned it: decoded already, or text (Django's psycopg2)."""
    if isinstance(value, (str, bytes, bytearray)):
        return json.loads(value)
    return value


def _json_array(value):
    if value is None:
        return None
    if isinstance(value, str):  # an array type the driver did not parse
        value = _parse_pg_array_of_json(value)
    return [_json_value(v) for v in value]


def _parse_pg_array_of_json(text: str) -> List[str]:
    """Split a text '{"...","..."}' of jsonb[] into its element texts."""
    if text in ("{}", ""):
        return []
    out, i, n = [], 1, len(text) - 1
    while i < n:
        if text[i] == '"':
            i += 1
            buf = []
            while text[i] != '"':
                if text[i] == "\\":
                    i += 1
                buf.append(text[i])
                i += 1
            out.append("".join(buf))
            i += 1
        else:
            j = text.find(",", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
        if i < n and text[i] == ",":
            i += 1
    return out


@dataclasses.dataclass
class Job:
    """One row of awa.jobs.  Columns the client does not know land in ``extra``."""

    id: int
    kind: str
    queue: str = "default"
    args: Any = None
    state: str = "available"
    priority: int = 2
    attempt: int = 0
    max_attempts: int = 25
    run_at: Optional[_dt.datetime] = None
    heartbeat_at: Optional[_dt.datetime] = None
    deadline_at: Optional[_dt.datetime] = None
    attempted_at: Optional[_dt.datetime] = None
    finalized_at: Optional[_dt.datetime] = None
    created_at: Optional[_dt.datetime] = None
    errors: List[Any] = dataclasses.field(default_factory=list)
    metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)
    tags: List[str] = dataclasses.field(default_factory=list)
    unique_key: Optional[bytes] = None
    unique_states: Optional[str] = None
    run_lease: int = 0
    progress: Any = None
    claimed_by: Optional[str] = None
    lease: Optional[_dt.timedelta] = None
    timeout: Optional[_dt.timedelta] = None
    result: Any = None
    callback_key: Optional[bytes] = None
    callback_lease: Optional[int] = None
    callback_timeout: Optional[_dt.timedelta] = None
    callback_payload: Any = None
    group_id: Optional[str] = None
    concurrency_key: Optional[str] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    _JSON = ("args", "metadata", "progress", "result", "callback_payload")

    @classmethod
    def from_row(cls, names: Sequence[str], row: Sequence[Any], json_decoded: bool = False) -> "Job":
        """The job of a row of awa.jobs (column names, values).  json_decoded: the driver
        decoded jsonb already (psycopg, psycopg2), so a str is a JSON string; otherwise
        (Django's connection gives jsonb as text) a str is JSON text to decode."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for name, value in zip(names, row):
            if name in cls._JSON and value is not None:
                if not json_decoded:
                    value = _json_value(value)
            elif name == "errors":
                value = _json_array(value) or []
            elif name == "tags" and value is None:
                value = []
            elif name == "unique_key" and value is not None and not isinstance(value, bytes):
                value = bytes(value)
            elif name == "callback_key" and value is not None and not isinstance(value, bytes):
                value = bytes(value)
            (kw if name in known else extra)[name] = value
        return cls(extra=extra, **kw)

    @property
    def last_error(self) -> Optional[Dict[str, Any]]:
        return self.errors[-1] if self.errors else None


@dataclasses.dataclass
class QueueStats:
    """One row of awa_queue_stats()."""

    queue: str
    total_queued: int = 0
    scheduled: int = 0
    available: int = 0
    retryable: int = 0
    running: int = 0
    waiting_external: int = 0
    failed: int = 0
    cancelled: int = 0
    completed_last_hour: int = 0
    lag_seconds: Optional[float] = None
    paused: bool = False
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_row(cls, names, row) -> "QueueStats":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw, extra = {}, {}
        for name, value in zip(names, row):
            (kw if name in known else extra)[name] = value
        return cls(extra=extra, **kw)


# (name, value, cast) of one named SQL argument
_Arg = Tuple[str, Any, str]

# An argument value that is passed as SQL NULL (None leaves the argument out, so the
# SQL default applies).
_NULL = object()

# claim(ALL_QUEUES, ...) and Worker(queue=ALL_QUEUES): every queue.
ALL_QUEUES = None


def _named_args(args: Iterable[_Arg]) -> Tuple[List[str], List[Any]]:
    """The named arguments of a call, "name => %s::type" each, and their values."""
    parts, params = [], []
    for name, value, cast in args:
        if value is None:
            continue  # let the SQL default apply
        if value is _NULL:
            parts.append("%s => NULL%s" % (name, cast))
            continue
        parts.append("%s => %%s%s" % (name, cast))
        params.append(value)
    return parts, params


class Client:
    """awa's SQL API on one connection.

    ``Client(conn)`` uses a DB-API connection you own (psycopg 3, psycopg2, or
    Django's ``connection``) and never commits it.  ``Client("dbname=app")``
    opens its own autocommit connection (``close()`` it, or use ``with``).

    By default no statement is prepared on the server (each psycopg 3 call runs
    with ``prepare=False``), so the client works through a transaction pooler.
    ``prepare_threshold=N`` asks for psycopg 3's prepared statements: a connection
    the client opens prepares a statement after N executions; for a connection you
    pass, its own ``prepare_threshold`` decides.
    """

    def __init__(self, conn_or_dsn: Any = "", driver: Optional[str] = None,
                 prepare_threshold: Optional[int] = None):
        self.prepare_threshold = _threshold(prepare_threshold)
        if isinstance(conn_or_dsn, str):
            self.conn = connect(conn_or_dsn, driver=driver, autocommit=True,
                                prepare_threshold=self.prepare_threshold)
            self._owned = True
        else:
            self.conn = conn_or_dsn
            self._owned = False
        self._no_claim_wait = False  # the server has no awa_claim_wait (awa < 0.3.0)
        # psycopg and psycopg2 decode jsonb themselves; Django's connection gives text
        self._json_decoded = _is_psycopg3(self.conn) or type(self.conn).__module__.split(".")[0] == "psycopg2"

    # -- plumbing ---------------------------------------------------------

    def close(self) -> None:
        if self._owned:
            self.conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tuple[List[str], List[tuple]]:
        """Run one statement; return (column names, rows)."""
        cur = self.conn.cursor()
        try:
            if self.prepare_threshold is None and _is_psycopg3(cur):
                cur.execute(sql, list(params), prepare=False)  # nothing left on the server
            else:
                cur.execute(sql, list(params))
            if cur.description is None:
                return [], []
            names = [d[0] for d in cur.description]
            return names, list(cur.fetchall())
        finally:
            cur.close()

    def _call(self, fn: str, args: Iterable[_Arg], scalar: bool = False) -> Tuple[List[str], List[tuple]]:
        parts, params = _named_args(args)
        template = "SELECT %s(%s)" if scalar else "SELECT * FROM %s(%s)"
        return self.execute(template % (fn, ", ".join(parts)), params)

    def _scalar(self, fn: str, args: Iterable[_Arg]) -> Any:
        _, rows = self._call(fn, args, scalar=True)
        return rows[0][0] if rows else None

    def _jobs(self, fn: str, args: Iterable[_Arg]) -> List[Job]:
        names, rows = self._call(fn, args)
        return [Job.from_row(names, r, self._json_decoded) for r in rows if r[0] is not None]

    def _job(self, fn: str, args: Iterable[_Arg]) -> Optional[Job]:
        jobs = self._jobs(fn, args)
        return jobs[0] if jobs else None

    # -- enqueue ----------------------------------------------------------

    def insert(self, kind: str, args: Any = None, *, queue: Optional[str] = None,
               priority: Optional[int] = None, max_attempts: Optional[int] = None,
               run_at: Optional[_dt.datetime] = None, tags: Optional[Sequence[str]] = None,
               metadata: Optional[Dict[str, Any]] = None,
               unique_by_args: Optional[bool] = None, unique_by_queue: Optional[bool] = None,
               unique_period: Optional[Interval] = None,
               unique_states: Optional[Sequence[str]] = None,
               timeout: Optional[Interval] = None, group: Optional[str] = None,
               after: Optional[Sequence[int]] = None,
               on_parent_failure: Optional[str] = None,
               concurrency_key: Optional[str] = None) -> Job:
        """awa_insert: enqueue one job in the current transaction; returns its row.

        ``timeout`` (seconds, a timedelta or interval text): a hard limit of each attempt,
        after which the job is taken back whatever its heartbeats say (needs awa 0.3.0).
        ``group``: the id of the group the job belongs to (1 to 200 characters; the server
        raises SQLSTATE 22023 otherwise), counted by ``group_stats`` and awaited by
        ``on_group_finish`` (needs awa 0.3.0); the row's ``group_id``.

        ``after`` (job ids, of this transaction or earlier): the job waits until all of them
        completed (state ``scheduled``, run_at 9999-12-30 UTC), then runs at ``run_at`` or at once.
        ``on_parent_failure``: what a parent that fails for good or is cancelled does to it:
        ``"cancel"`` (default), ``"run"`` (anyway) or ``"wait"`` (for a retry of the parent).
        A parent that does not exist raises the driver's error with SQLSTATE 23503; an
        unknown policy, 22023.  Read the parents' results with :meth:`parent_results`.
        ``concurrency_key`` (1 to 200 characters): at most the key's limit of jobs with it
        run at once across all workers (1 unless ``set_key_limit`` says otherwise; needs
        awa 0.3.0)."""
        return self._job("awa_insert", [
            ("kind", kind, "::text"),
            ("args", None if args is None else _dumps(args), "::jsonb"),
            ("queue", queue, "::text"),
            ("priority", priority, "::integer"),
            ("max_attempts", max_attempts, "::integer"),
            ("run_at", run_at, "::timestamptz"),
            ("tags", None if tags is None else list(tags), "::text[]"),
            ("metadata", None if metadata is None else _dumps(metadata), "::jsonb"),
            ("unique_by_args", unique_by_args, "::boolean"),
            ("unique_by_queue", unique_by_queue, "::boolean"),
            ("unique_period", interval(unique_period), "::interval"),
            ("unique_states", None if unique_states is None else list(unique_states),
             "::text[]::awa.job_state[]"),
            ("timeout", interval(timeout), "::interval"),
            ("group_id", group, "::text"),
            ("after", None if after is None else [int(i) for i in after], "::bigint[]"),
            ("on_parent_failure", on_parent_failure, "::text"),
            ("concurrency_key", concurrency_key, "::text"),
        ])

    def insert_many(self, jobs: Sequence[Dict[str, Any]]) -> List[Job]:
        """awa_insert_many: each dict has awa_insert's fields (kind required; ``group_id`` for
        the job's group, ``after`` and ``on_parent_failure`` for its parents); all or nothing."""
        return self._jobs("awa_insert_many", [("jobs", _dumps(list(jobs)), "::jsonb")])

    COPY_COLUMNS = ("kind", "args", "queue", "priority", "max_attempts", "run_at", "tags", "metadata")

    def insert_copy(self, jobs: Iterable[Dict[str, Any]]) -> int:
        """The COPY path for large loads: ``COPY awa.jobs (...) FROM STDIN``; returns how many rows.

        Each dict has awa_insert's fields (kind required; ``group_id`` too, awa 0.3.0); rows
        get awa_insert's checks and defaults.  Needs psycopg 3 or psycopg2 (``cursor.copy`` /
        ``copy_expert``).
        """
        jobs = list(jobs)
        cols = list(self.COPY_COLUMNS)
        # the 0.3.0 columns only when used, so that loads into older schemas still work
        if any("group_id" in job for job in jobs):
            cols.append("group_id")
        if any(job.get("concurrency_key") is not None for job in jobs):
            cols.append("concurrency_key")
        known = set(self.COPY_COLUMNS) | {"group_id", "concurrency_key"}
        lines, n = [], 0
        for job in jobs:
            unknown = set(job) - known
            if unknown:
                raise ValueError("unknown job fields: %s" % ", ".join(sorted(unknown)))
            lines.append("\t".join(_copy_text(c, job.get(c)) for c in cols) + "\n")
            n += 1
        if not n:
            return 0
        data = "".join(lines)
        sql = "COPY awa.jobs (%s) FROM STDIN" % ", ".join(cols)
        cur = self.conn.cursor()
        try:
            if hasattr(cur, "copy"):  # psycopg 3
                with cur.copy(sql) as copy:
                    copy.write(data)
            elif hasattr(cur, "copy_expert"):  # psycopg2
                import io
                cur.copy_expert(sql, io.StringIO(data))
            else:
                raise TypeError("insert_copy needs a psycopg 3 or psycopg2 connection")
        finally:
            cur.close()
        return n

    # -- lifecycle and administration --------------------------------------

    def cancel(self, job_id: int) -> Optional[Job]:
        """awa_cancel: the cancelled job, or None if it was already terminal."""
        return self._job("awa_cancel", [("job_id", job_id, "::bigint")])

    def cancel_by_unique_key(self, kind: str, args: Any = None, queue: Optional[str] = None,
                             unique_period: Optional[Interval] = None,
                             run_at: Optional[_dt.datetime] = None) -> List[Job]:
        """awa_cancel_by_unique_key: cancel by the unique key's parts; returns the cancelled jobs."""
        return self._jobs("awa_cancel_by_unique_key", [
            ("kind", kind, "::text"), ("args", None if args is None else _dumps(args), "::jsonb"),
            ("queue", queue, "::text"), ("unique_period", interval(unique_period), "::interval"),
            ("run_at", run_at, "::timestamptz")])

    def retry(self, job_id: int) -> Optional[Job]:
        """awa_retry: make a failed/cancelled/waiting_external job available now."""
        return self._job("awa_retry", [("job_id", job_id, "::bigint")])

    def retry_failed(self, kind: Optional[str] = None, queue: Optional[str] = None) -> List[Job]:
        """awa_retry_failed: failed jobs matching the filters become available again.

        ``kind="*"`` means every kind; giving neither filter is an error (22023)."""
        return self._jobs("awa_retry_failed", [("kind", kind, "::text"), ("queue", queue, "::text")])

    def discard_failed(self, kind: str) -> int:
        """awa_discard_failed: delete that kind's failed jobs (``"*"``: every kind); returns how many."""
        return int(self._scalar("awa_discard_failed", [("kind", kind, "::text")]) or 0)

    def pause_queue(self, queue: str, paused_by: Optional[str] = None) -> bool:
        """awa_pause_queue: no worker claims from this queue until resumed; False if already paused."""
        return self._scalar("awa_pause_queue", [("queue", queue, "::text"),
                                                ("paused_by", paused_by, "::text")])

    def resume_queue(self, queue: str) -> bool:
        """awa_resume_queue: False (a no-op) if the queue was not paused."""
        return self._scalar("awa_resume_queue", [("queue", queue, "::text")])

    def set_queue_limit(self, queue: str, max_running: Optional[int]) -> Dict[str, Any]:
        """awa_set_queue_limit: at most max_running jobs of the queue running at once, across all
        workers (None lifts the limit); returns the queue's settings as a dict."""
        names, rows = self.execute("SELECT * FROM awa_set_queue_limit(%s::text, %s::integer)",
                                   [queue, max_running])
        return dict(zip(names, rows[0]))

    def set_queue_rate(self, queue: str, max_claims: Optional[int],
                       per: Optional[Interval] = None) -> Dict[str, Any]:
        """awa_set_queue_rate: at most max_claims (1..1000) jobs of the queue claimed in any
        interval of length ``per`` (seconds, a timedelta or an interval string; 1 ms to 31 days),
        across all workers; None removes the rate.  Returns the queue's settings as a dict.  A
        bad limit raises the driver's error with SQLSTATE 22023 naming the field.  Needs awa
        0.3.0 in shared_preload_libraries."""
        names, rows = self.execute(
            "SELECT * FROM awa_set_queue_rate(%s::text, %s::integer, %s::interval)",
            [queue, max_claims, interval(per)])
        return dict(zip(names, rows[0]))

    def queue_limits(self) -> List[Dict[str, Any]]:
        """awa_queue_limits: one dict per queue with a concurrency limit or a rate: queue, paused,
        max_running, running, rate_max_claims, rate_period (a timedelta), window_claims (claims in
        the window ending now; None until counted since the server started) and next_slot_at
        (when the window is full: when the next slot opens).  Needs awa 0.3.0."""
        names, rows = self.execute("SELECT * FROM awa_queue_limits()")
        return [dict(zip(names, r)) for r in rows]

    def set_key_limit(self, pattern: str, max_running: Optional[int], kind: Optional[str] = None,
                      ordered: bool = False) -> Optional[Dict[str, Any]]:
        """awa_set_key_limit: at most ``max_running`` jobs whose concurrency key is LIKE
        ``pattern`` (``%`` any characters, ``_`` one, ``\\`` escapes) run at once across all
        workers; ``kind``: only for jobs of that kind (None: any kind); ``ordered``: one at a
        time in insertion order (``max_running`` must be 1).  ``max_running`` None removes the
        rule.  Returns the rule as a dict (the removed one; None if there was none).  A bad
        limit raises the driver's error with SQLSTATE 22023.  Needs awa 0.3.0."""
        names, rows = self.execute(
            "SELECT * FROM awa_set_key_limit(%s::text, %s::integer, %s::text, %s::boolean)",
            [pattern, max_running, kind, bool(ordered)])
        row = dict(zip(names, rows[0]))
        return None if row.get("pattern") is None else row

    def set_key_rate(self, pattern: str, max_claims: Optional[int], per: Optional[Interval] = None,
                     kind: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """awa_set_key_rate: at most ``max_claims`` (1..1000) jobs of each concurrency key LIKE
        ``pattern`` claimed in any interval of length ``per`` (seconds, a timedelta or an interval
        string; 1 ms to 31 days), across all workers and queues; ``kind``: only for jobs of that
        kind (None: any kind).  Without a rule for (pattern, kind) one is made with max_running
        1.  ``max_claims`` None removes the rate and keeps the rule.  Returns the rule as a dict
        (None when removing the rate of a rule that does not exist).  A bad limit raises the
        driver's error with SQLSTATE 22023 naming the field.  Needs awa 0.3.0 in
        shared_preload_libraries."""
        names, rows = self.execute(
            "SELECT * FROM awa_set_key_rate(%s::text, %s::integer, %s::interval, %s::text)",
            [pattern, max_claims, interval(per), kind])
        row = dict(zip(names, rows[0]))
        return None if row.get("pattern") is None else row

    def key_stats(self, pattern: Optional[str] = None) -> List[Dict[str, Any]]:
        """awa_key_stats: one dict per (concurrency_key, kind) with live jobs (keys LIKE
        ``pattern``; None: all): running (jobs of the key running, any kind), waiting (of this
        kind), max_running and ordered (its rule; no rule: 1, False), at_limit, rate_max_claims and
        rate_period (its rule's rate; None: none), window_claims (claims of the key in the window
        ending now; None until counted since the server started) and next_slot_at (when the
        window is full: when the next slot opens).  Needs awa 0.3.0."""
        names, rows = self._call("awa_key_stats", [("pattern", pattern, "::text")])
        return [dict(zip(names, r)) for r in rows]

    def forget_queue(self, queue: str) -> bool:
        """awa_forget_queue: remove the queue's settings (pause, concurrency limit, rate); its jobs are
        untouched.  False if it had none.  Needs awa 0.3.0."""
        return bool(self._scalar("awa_forget_queue", [("queue", queue, "::text")]))

    def drain_queue(self, queue: str) -> int:
        """awa_drain_queue: cancel the queue's waiting jobs; returns how many."""
        return int(self._scalar("awa_drain_queue", [("queue", queue, "::text")]) or 0)

    def queue_stats(self) -> List[QueueStats]:
        """awa_queue_stats: one row per queue."""
        names, rows = self.execute("SELECT * FROM awa_queue_stats()")
        return [QueueStats.from_row(names, r) for r in rows]

    def queue_history(self, queue: Optional[str] = None, since: Optional[_dt.datetime] = None,
                      bucket: Optional[Interval] = None, kind: Optional[str] = None,
                      by_kind: bool = False) -> List[Dict[str, Any]]:
        """awa_queue_history: throughput per bucket, one dict per bucket and queue (and kind).

        ``queue``/``kind``: None for all; ``since`` (an aware datetime): from the bucket that
        holds it (default: an hour ago); ``bucket``: a whole number of minutes as seconds, a
        timedelta or an interval string (default 1 minute); ``by_kind``: one row per kind too.
        Each dict has bucket_start, queue, kind, the counts enqueued, started, completed,
        failed, retried, cancelled, and wait_/run_ p50, p95, max, avg in seconds (None without
        a sample).  A bad bucket raises the driver's error with SQLSTATE 22023; a schema older
        than the history, 0A000.
        """
        names, rows = self._call("awa_queue_history", [
            ("queue", queue, "::text"), ("since", since, "::timestamptz"),
            ("bucket", interval(bucket), "::interval"), ("kind", kind, "::text"),
            ("by_kind", by_kind or None, "::boolean")])
        return [dict(zip(names, r)) for r in rows]

    # -- groups -------------------------------------------------------------
    # A group is a set of jobs inserted with the same group id (insert(..., group=...),
    # or a group_id field for insert_many).  group_stats counts them by state;
    # on_group_finish enqueues one more job, once, when every job of the group has finished
    # (completed, failed for good or cancelled).  Needs awa 0.3.0.

    def group_stats(self, group: str) -> Dict[str, Any]:
        """awa_group_stats: the group's jobs by state as a dict (total, scheduled, available,
        running, completed, retryable, failed, cancelled, waiting_external, unfinished as ints;
        callback_job_id and finished_at once its finish callback was enqueued, else None),
        exact at this transaction's snapshot.  An unknown group gives zeros; a bad id raises
        the driver's error with SQLSTATE 22023."""
        names, rows = self._call("awa_group_stats", [("group_id", group, "::text")])
        return dict(zip(names, rows[0]))

    def on_group_finish(self, group: str, kind: str, args: Any = None, *,
                        queue: Optional[str] = None, priority: Optional[int] = None,
                        max_attempts: Optional[int] = None,
                        metadata: Optional[Dict[str, Any]] = None) -> Optional[int]:
        """awa_group_on_finish: enqueue a job (insert's fields; its metadata gains
        ``finished_group``) exactly once, when every job of the group has finished.  Returns
        its id if the group has nothing unfinished now (it is enqueued at once), else None.
        Register it in the transaction that inserts the group's last jobs, or after: a group
        whose jobs all finished before more were inserted is finished.  One callback per group
        (SQLSTATE 42710 for a second); bad fields raise 22023."""
        return self._scalar("awa_group_on_finish", [
            ("group_id", group, "::text"), ("kind", kind, "::text"),
            ("args", None if args is None else _dumps(args), "::jsonb"),
            ("queue", queue, "::text"), ("priority", priority, "::integer"),
            ("max_attempts", max_attempts, "::integer"),
            ("metadata", None if metadata is None else _dumps(metadata), "::jsonb")])

    def list_jobs(self, state: Optional[str] = None, kind: Optional[str] = None,
                  queue: Optional[str] = None, tag: Optional[str] = None,
                  before_id: Optional[int] = None, limit: Optional[int] = None) -> List[Job]:
        """awa_list_jobs: newest first; pass the last id as before_id for the next page."""
        return self._jobs("awa_list_jobs", [
            ("state", state, "::awa.job_state"), ("kind", kind, "::text"),
            ("queue", queue, "::text"), ("tag", tag, "::text"),
            ("before_id", before_id, "::bigint"), ("lim", limit, "::integer")])

    def parent_results(self, job_id: int) -> List[Dict[str, Any]]:
        """awa_parent_results: the jobs ``job_id`` runs after, in id order, one dict each
        with parent_id, kind, state, satisfied, result (decoded JSON, or None) and
        finalized_at; kind and state are None for a parent already deleted."""
        names, rows = self._call("awa_parent_results", [("job_id", job_id, "::bigint")])
        out = [dict(zip(names, r)) for r in rows]
        if not self._json_decoded:
            for d in out:
                if isinstance(d.get("result"), str):
                    d["result"] = json.loads(d["result"])
        return out

    def dependents(self, job_id: int) -> List[Dict[str, Any]]:
        """awa_dependents: the jobs that run after ``job_id``, in id order, one dict each
        with dependent_id, kind, state, satisfied, waiting_for and on_parent_failure."""
        names, rows = self._call("awa_dependents", [("job_id", job_id, "::bigint")])
        return [dict(zip(names, r)) for r in rows]

    def get_job(self, job_id: int) -> Job:
        """awa_get_job: the job; an unknown id raises the driver's error with SQLSTATE P0002."""
        return self._job("awa_get_job", [("job_id", job_id, "::bigint")])

    def health_check(self) -> Dict[str, Any]:
        """awa_health_check: one row as a dict (healthy, reason, ...)."""
        names, rows = self.execute("SELECT * FROM awa_health_check()")
        return dict(zip(names, rows[0])) if rows else {}

    # -- worker calls -------------------------------------------------------

    def claim(self, queue: Union[str, Sequence[str], None], worker: Optional[str] = None,
              batch: int = 1, lease: Optional[Interval] = None,
              wait: Optional[Interval] = None) -> List[Job]:
        """awa_claim: up to batch due jobs, now running; with wait, block until work or timeout.

        ``queue`` is a queue name, a list of names (the most urgent due jobs of any of
        them, in the order of one queue's claim; a blocking claim wakes for any of them;
        needs awa 0.3.0), or None for every queue (ALL_QUEUES, needs awa 0.3.0).  An empty
        list is refused by the server (SQLSTATE 22023), a None in the list too (22004).

        A blocking claim on a connection in autocommit mode, outside a transaction, runs as
        ``CALL awa_claim_wait(...)``, which sleeps between transactions and so does not hold
        back VACUUM while it waits; the jobs it returns are committed as claimed.  Inside a
        transaction (or on a server without the procedure) it is ``awa_claim`` in the
        caller's transaction, as before."""
        if isinstance(queue, str):
            target: _Arg = ("queue", queue, "::text")
        elif queue is None:
            target = ("queues", _NULL, "::text[]")
        else:
            target = ("queues", list(queue), "::text[]")
        args = [target, ("worker", worker, "::text"),
                ("batch", batch, "::integer"), ("lease", interval(lease), "::interval"),
                ("wait", interval(wait), "::interval")]
        if _waits(wait) and not self._no_claim_wait and _idle_autocommit(self.conn):
            try:
                return self._claim_wait(args)
            except Exception as exc:
                if _sqlstate(exc) != "42883":  # no such procedure: awa older than 0.3.0
                    raise
                self._no_claim_wait = True
        return self._jobs("awa_claim", args)

    def _claim_wait(self, args: Iterable[_Arg]) -> List[Job]:
        parts, params = _named_args(args)
        _, rows = self.execute("CALL awa_claim_wait(%s)" % ", ".join(parts), params)
        jobs = rows[0][0] if rows else None
        if jobs is None:
            return []
        if not isinstance(jobs, str):
            raise TypeError("awa_claim_wait: expected awa.jobs[] as text, got %r" % (type(jobs),))
        # The driver hands an array of a composite type over as text: let the server split
        # it.  The jobs are claimed (committed) already, so a query cancel that was meant
        # for the blocking CALL (Worker.stop) and lands on this statement must not lose
        # them: it is repeated (it reads nothing, so it may run any number of times).
        for attempt in range(5):
            try:
                names, rows = self.execute("SELECT * FROM pg_catalog.unnest(%s::awa.jobs[])", [jobs])
                return [Job.from_row(names, r, self._json_decoded) for r in rows]
            except Exception as exc:
                if _sqlstate(exc) != "57014" or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def complete(self, job_id: int, run_lease: int, result: Any = None) -> bool:
        """awa_complete: False if the lease is stale (cancelled, rescued, re-claimed).

        ``result``: anything JSON can hold (``TypeError`` otherwise), at most
        ``awa.max_args_bytes`` as jsonb (the server raises SQLSTATE 54000), stored as the
        job's ``result``; None stores none (a JSON null cannot be stored)."""
        return bool(self._scalar("awa_complete", [
            ("job_id", job_id, "::bigint"), ("run_lease", run_lease, "::bigint"),
            ("result", None if result is None else _dumps(result), "::jsonb")]))

    def complete_many(self, jobs: Union[Sequence[Job], Sequence[int]],
                      leases: Optional[Sequence[int]] = None,
                      results: Optional[Sequence[Any]] = None) -> int:
        """awa_complete_many: pass Job objects, or ids plus leases; returns how many completed.

        ``results``: None, or one result per job in the same order (None: none for that
        job), each as for ``complete`` (``ValueError`` when the lengths differ)."""
        ids, leases = _ids_leases(jobs, leases)
        if not ids:
            return 0
        if results is not None:
            results = list(results)
            if len(results) != len(ids):
                raise ValueError("results must have one element per job")
            if all(r is None for r in results):
                results = None
            else:
                results = [None if r is None else _dumps(r) for r in results]
        return int(self._scalar("awa_complete_many", [("ids", ids, "::bigint[]"),
                                                      ("leases", leases, "::bigint[]"),
                                                      ("results", results, "::jsonb[]")]) or 0)

    def fail(self, job_id: int, run_lease: int, error: str, retry_in: Optional[Interval] = None,
             terminal: bool = False) -> Optional[str]:
        """awa_fail: the job's new state (retryable or failed), or None if the lease is stale.

        A NUL character, which PostgreSQL's text cannot hold, is written as ``\\x00``."""
        return self._scalar("awa_fail", [
            ("job_id", job_id, "::bigint"), ("run_lease", run_lease, "::bigint"),
            ("error", str(error).replace("\x00", "\\x00"), "::text"),
            ("retry_in", interval(retry_in), "::interval"),
            ("terminal", terminal or None, "::boolean")])

    def snooze(self, job_id: int, run_lease: int, delay: Interval) -> bool:
        """awa_snooze: back to scheduled at now() + delay, the attempt not counted."""
        return bool(self._scalar("awa_snooze", [
            ("job_id", job_id, "::bigint"), ("run_lease", run_lease, "::bigint"),
            ("delay", interval(delay), "::interval")]))

    def heartbeat(self, jobs: Union[Sequence[Job], Sequence[int]],
                  leases: Optional[Sequence[int]] = None) -> List[int]:
        """awa_heartbeat: returns the ids no longer running under their lease (stop them)."""
        ids, leases = _ids_leases(jobs, leases)
        if not ids:
            return []
        lost = self._scalar("awa_heartbeat", [("ids", ids, "::bigint[]"),
                                              ("leases", leases, "::bigint[]")])
        return [int(i) for i in (lost or [])]

    def progress(self, job_id: int, run_lease: int, progress: Any) -> bool:
        """awa_progress: store structured progress (kept across retries)."""
        return bool(self._scalar("awa_progress", [
            ("job_id", job_id, "::bigint"), ("run_lease", run_lease, "::bigint"),
            ("progress", _dumps(progress), "::jsonb")]))

    def rescue(self) -> int:
        """awa_rescue: running jobs with a stale heartbeat or passed deadline become retryable."""
        return int(self._scalar("awa_rescue", []) or 0)

    # -- external completion ----------------------------------------------------
    #
    # A running job parks to wait for an outside system: its handler registers a
    # callback (register_callback), hands the callback id to that system, and the
    # worker parks the job (wait_external), freeing its slot.  Whoever knows the id
    # later resolves the job: complete_external, fail_external, retry_external, or
    # heartbeat_callback to push its timeout out.  The job keeps only the id's SHA-256
    # (Job.callback_key): reading jobs does not reveal it.  A callback that comes before the
    # park acts at once; the park then finds the job resolved.  The id is the only
    # credential: the calling role needs EXECUTE on the function (awa_producer,
    # awa_worker and awa_admin have it).  Callback ids are UUID strings (uuid.UUID
    # is accepted too); a malformed one raises the driver's error for SQLSTATE 22P02.

    def register_callback(self, job_id: int, run_lease: int, timeout: Interval) -> Optional[str]:
        """awa_register_callback: a new callback id (a UUID string) for the job running
        under this lease, replacing any earlier one; ``timeout`` (seconds, a timedelta or
        interval text; more than 0, at most 36500 days, else SQLSTATE 22023) is how long
        the parked job waits for it.  None if the lease is stale."""
        value = self._scalar("awa_register_callback", [
            ("job_id", job_id, "::bigint"), ("run_lease", run_lease, "::bigint"),
            ("timeout", interval(timeout), "::interval")])
        return None if value is None else str(value)

    def wait_external(self, job_id: int, run_lease: int) -> bool:
        """awa_wait_external: park the job running under this lease in waiting_external
        until its callback comes or the callback timeout passes.  False if the lease is
        stale (also when its callback already resolved it); SQLSTATE 55000 when no
        callback was registered under this lease."""
        return bool(self._scalar("awa_wait_external", [("job_id", job_id, "::bigint"),
                                                       ("run_lease", run_lease, "::bigint")]))

    def complete_external(self, callback_id: Any, payload: Any = None) -> bool:
        """awa_complete_external: complete the job waiting for this callback; ``payload``
        (JSON-serializable, at most awa.max_args_bytes: SQLSTATE 54000) becomes its
        result.  False if no job waits for the callback (unknown id, or resolved,
        timed out or cancelled already)."""
        return bool(self._scalar("awa_complete_external", [
            ("callback_id", str(callback_id), "::uuid"),
            ("payload", None if payload is None else _dumps(payload), "::jsonb")]))

    def fail_external(self, callback_id: Any, error: str, payload: Any = None) -> bool:
        """awa_fail_external: fail the job waiting for this callback for good; ``error``
        joins its errors (cut to awa.max_error_bytes), ``payload`` is kept as its
        callback_payload.  False if no job waits for the callback."""
        return bool(self._scalar("awa_fail_external", [
            ("callback_id", str(callback_id), "::uuid"),
            ("error", str(error).replace("\x00", "\\x00"), "::text"),
            ("payload", None if payload is None else _dumps(payload), "::jsonb")]))

    def retry_external(self, callback_id: Any, payload: Any = None,
                       retry_in: Optional[Interval] = None) -> Optional[str]:
        """awa_retry_external: run the job waiting for this callback again, at now +
        ``retry_in`` (0 to 36500 days, else SQLSTATE 22023; None: the default backoff), or
        fail it when it has no attempts left; ``payload`` is kept as its callback_payload.
        Returns the new state (``"retryable"`` or ``"failed"``), None if no job waits."""
        return self._scalar("awa_retry_external", [
            ("callback_id", str(callback_id), "::uuid"),
            ("payload", None if payload is None else _dumps(payload), "::jsonb"),
            ("retry_in", interval(retry_in), "::interval")])

    def heartbeat_callback(self, callback_id: Any, timeout: Optional[Interval] = None) -> bool:
        """awa_heartbeat_callback: the outside system is still at work; a parked job's
        callback deadline moves to now + ``timeout`` (None: the timeout registered; more
        than 0, at most 36500 days, else SQLSTATE 22023).  False if no job waits."""
        return bool(self._scalar("awa_heartbeat_callback", [
            ("callback_id", str(callback_id), "::uuid"),
            ("timeout", interval(timeout), "::interval")]))


_COPY_DEFAULTS = {"args": {}, "queue": "default", "priority": 2, "max_attempts": 25,
                  "tags": [], "metadata": {}}


def _waits(wait: Optional[Interval]) -> bool:
    """Whether a claim with this wait may block (text is taken to)."""
    if wait is None:
        return False
    if isinstance(wait, _dt.timedelta):
        return wait.total_seconds() > 0
    if isinstance(wait, (int, float)) and not isinstance(wait, bool):
        return wait > 0
    return True


def _idle_autocommit(conn) -> bool:
    """The connection commits each statement and no transaction is open on it, so a
    procedure CALLed on it may commit (psycopg 3, psycopg2, Django's connection)."""
    if hasattr(conn, "in_atomic_block"):  # Django
        try:
            return bool(conn.get_autocommit()) and not conn.in_atomic_block
        except Exception:
            return False
    if not getattr(conn, "autocommit", False):
        return False
    info = getattr(conn, "info", None)
    if info is not None and hasattr(info, "transaction_status"):  # psycopg 3
        return int(info.transaction_status) == 0  # IDLE
    status = getattr(conn, "get_transaction_status", None)  # psycopg2
    if status is not None:
        return status() == 0  # TRANSACTION_STATUS_IDLE
    return False


def _sqlstate(exc: BaseException) -> Optional[str]:
    """The SQLSTATE of a driver's error (psycopg 3, psycopg2, or wrapped by Django)."""
    while exc is not None:
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code:
            return code
        exc = exc.__cause__
    return None


def _copy_escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\n", "\\n").replace("\r", "\\r"))


def _copy_text(column: str, value: Any) -> str:
    """One field in COPY's text format."""
    if value is None:
        value = _COPY_DEFAULTS.get(column)
        if value is None:
            return "\\N"
    if column in ("args", "metadata"):
        return _copy_escape(_dumps(value))
    if column == "tags":
        items = ['"%s"' % str(t).replace("\\", "\\\\").replace('"', '\\"') for t in value]
        return _copy_escape("{%s}" % ",".join(items))
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return _copy_escape(str(value))


def _ids_leases(jobs, leases) -> Tuple[List[int], List[int]]:
    jobs = list(jobs)
    if leases is None:
        return [j.id for j in jobs], [j.run_lease for j in jobs]
    leases = list(leases)
    if len(leases) != len(jobs):
        raise ValueError("ids and leases must have the same length")
    return [int(i) for i in jobs], [int(x) for x in leases]
