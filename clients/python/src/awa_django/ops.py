"""What the dashboard reads and does, all through awa's SQL API on Django's connection.

Reads: the awa_* functions (awa_queue_stats, awa_health_check, awa_group_stats,
awa_group_callback, ...), awa.jobs (a table, or on a database created with the
ring engine a view of it: never the tables beside it), the queues' settings
(awa.queue_meta) and the schedules (awa.cron_jobs); on the table engine the
failed jobs by kind and the stale running jobs are read through partial indexes
(jobs_settled_idx, jobs_running_idx).  Writes: only awa_* functions, never
UPDATE/DELETE.
"""

import datetime
import json

from django.db import IntegrityError, connections, transaction

import awa_client
from awa_client.states import LIVE_STATES

# The states of a job that waits to run: awa_drain_queue cancels these.
WAITING_STATES = tuple(s for s in LIVE_STATES if s != "running")

# A running job is "stale" when its heartbeat is older than awa.heartbeat_timeout
# (what awa_rescue() looks for) or its deadline has passed.
STALE_SQL = """
    (heartbeat_at < now() - coalesce(nullif(current_setting('awa.heartbeat_timeout', true), ''), '90s')::interval
     OR deadline_at < now())
"""


def _conn(using="default"):
    return connections[using]


def client(using="default"):
    return awa_client.Client(_conn(using))


def _rows(sql, params=(), using="default"):
    with _conn(using).cursor() as cur:
        cur.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


# -- reads -----------------------------------------------------------------

def queue_stats(using="default"):
    """awa_queue_stats() rows as dicts, plus stale_running per queue."""
    stats = _rows("SELECT * FROM awa_queue_stats() ORDER BY queue", using=using)
    stale = dict((r["queue"], r["n"]) for r in _rows(
        "SELECT queue, count(*) AS n FROM awa.jobs WHERE state = 'running' AND" + STALE_SQL +
        " GROUP BY queue", using=using))
    # max_running arrived in awa 0.2.0, the rate in 0.3.0; read through to_jsonb so that an
    # older schema works too
    limits = dict((r["queue"], r) for r in _rows(
        "SELECT queue, (to_jsonb(m) ->> 'max_running')::integer AS max_running,"
        " (to_jsonb(m) ->> 'rate_max_claims')::integer AS rate_max_claims,"
        " extract(epoch FROM (to_jsonb(m) ->> 'rate_period')::interval) AS rate_seconds"
        " FROM awa.queue_meta m", using=using))
    windows = {}
    if _rows("SELECT to_regprocedure('awa_queue_limits()') IS NOT NULL AS ok", using=using)[0]["ok"]:
        windows = dict((r["queue"], r) for r in _rows(
            "SELECT queue, window_claims, next_slot_at FROM awa_queue_limits()", using=using))
    for row in stats:
        row["stale_running"] = stale.get(row["queue"], 0)
        meta = limits.get(row["queue"], {})
        row["max_running"] = meta.get("max_running")
        row["rate_max_claims"] = meta.get("rate_max_claims")
        row["rate_period"] = _period_text(meta.get("rate_seconds"))
        window = windows.get(row["queue"], {})
        row["window_claims"] = window.get("window_claims")
        row["next_slot_at"] = window.get("next_slot_at")
        # a queue with settings and no job at all: maybe a misspelt name
        row["no_jobs"] = not any(row.get(k) for k in (
            "total_queued", "running", "waiting_external", "failed", "cancelled", "completed_last_hour"))
    return stats


def _period_text(seconds):
    """A rate's period for people: "500 ms", "1 s", "1.5 s", "2 min", "1 h", else h:mm:ss."""
    if seconds is None:
        return None
    seconds = float(seconds)
    if seconds < 1:
        return "%g ms" % round(seconds * 1000, 3)
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return "%d %s" % (seconds // size, unit)
    if seconds < 60:
        return "%g s" % seconds
    return str(datetime.timedelta(seconds=seconds))


def failed_by_kind(limit=50, using="default"):
    """(kind, queue, count, newest id) of failed jobs; reads the partial index jobs_settled_idx."""
    return _rows("SELECT kind, queue, count(*) AS n, max(id) AS newest_id FROM awa.jobs"
                 " WHERE state = 'failed' GROUP BY kind, queue ORDER BY n DESC, kind, queue LIMIT %s",
                 [limit], using=using)


def busy_keys(limit=50, using="default"):
    """The concurrency keys with running or waiting jobs (awa_key_stats, awa 0.3.0), keys at
    their limit first, then by waiting jobs: dicts with concurrency_key, kind, running, waiting,
    max_running, ordered, at_limit.  Empty on a schema without per-key limits."""
    if not _rows("SELECT to_regprocedure('awa_key_stats(text)') IS NOT NULL AS has", using=using)[0]["has"]:
        return []
    return _rows("SELECT * FROM awa_key_stats() ORDER BY at_limit DESC, waiting DESC, concurrency_key, kind"
                 " LIMIT %s", [limit], using=using)


def health(using="default"):
    rows = _rows("SELECT * FROM awa_health_check()", using=using)
    return rows[0] if rows else {}


def lease_and_timeout(job_id, using="default"):
    """(lease, timeout) of a job as text, or (None, None); both arrived in awa 0.3.0 and
    are read through to_jsonb so that an older schema works too."""
    rows = _rows("SELECT to_jsonb(j) ->> 'lease' AS lease, to_jsonb(j) ->> 'timeout' AS timeout"
                 " FROM awa.jobs j WHERE id = %s", [int(job_id)], using=using)
    return (rows[0]["lease"], rows[0]["timeout"]) if rows else (None, None)


def result_and_callback(job_id, using="default"):
    """A job's result and callback as a dict (result, registered: whether it has a callback, callback_lease,
    callback_timeout as text, callback_payload, state, run_lease, deadline_at, heartbeat_at: when
    a parked job parked or its callback last heartbeated), or None.
    These columns arrived in awa 0.3.0 and are read through to_jsonb, so that an older
    schema works too (they are then None)."""
    rows = _rows("SELECT to_jsonb(j) -> 'result' AS result, (to_jsonb(j) ->> 'callback_key') IS NOT NULL AS registered,"
                 " (to_jsonb(j) ->> 'callback_lease')::bigint AS callback_lease,"
                 " to_jsonb(j) ->> 'callback_timeout' AS callback_timeout,"
                 " to_jsonb(j) -> 'callback_payload' AS callback_payload,"
                 " state::text AS state, run_lease, deadline_at, heartbeat_at"
                 " FROM awa.jobs j WHERE id = %s", [int(job_id)], using=using)
    if not rows:
        return None
    row = rows[0]
    for key in ("result", "callback_payload"):   # jsonb as text (Django) or decoded
        if isinstance(row[key], (str, bytes)):
            row[key] = json.loads(row[key])
    return row


# -- groups (awa 0.3.0) --------------------------------------------------------

# A group id as awa takes it (awa_group_stats raises 22023 otherwise).
MAX_GROUP_CHARS = 200


def valid_group(group):
    return isinstance(group, str) and 1 <= len(group) <= MAX_GROUP_CHARS


def has_groups(using="default"):
    """Whether the installed schema has groups (awa.jobs.group_id, awa 0.3.0)."""
    return bool(_rows("SELECT 1 AS yes FROM pg_catalog.pg_attribute WHERE attrelid = 'awa.jobs'::regclass"
                      " AND attname = 'group_id' AND NOT attisdropped", using=using))


def job_group(job_id, using="default"):
    """The group id of a job, or None (none, or a schema without groups: read through to_jsonb)."""
    rows = _rows("SELECT to_jsonb(j) ->> 'group_id' AS group_id FROM awa.jobs j WHERE id = %s",
                 [int(job_id)], using=using)
    return rows[0]["group_id"] if rows else None


def group_stats(group, using="default"):
    """awa_group_stats(group) as a dict (counts by state, unfinished, callback_job_id,
    finished_at) plus callback_kind: the kind of its finish callback, None when none is
    registered.  None for an id awa would refuse or a schema without groups."""
    if not valid_group(group) or not has_groups(using):
        return None
    rows = _rows("SELECT * FROM awa_group_stats(%s)", [group], using=using)
    if not rows:
        return None
    callback = _rows("SELECT kind FROM awa_group_callback(%s)", [group], using=using)
    return dict(rows[0], group_id=group, callback_kind=callback[0]["kind"] if callback else None)


# The condition on awa.jobs of a group's jobs (one parameter: the group id), for the job list's filter:
# on the job list's own relation (a semi-join with a second read of awa.jobs is 3x slower on the ring).
GROUP_FILTER_SQL = "group_id = %s"


def dependencies(job_id, using="default"):
    """(parents, children) of a job as lists of dicts (id, kind, state, satisfied; a parent
    also result, a child waiting_for and on_parent_failure), ids ascending.  Both empty when
    the schema has no job dependencies (before awa 0.3.0)."""
    if not _rows("SELECT to_regprocedure('awa_parent_results(bigint)') IS NOT NULL AS has", using=using)[0]["has"]:
        return [], []
    parents = _rows("SELECT parent_id AS id, kind, state::text AS state, satisfied, result"
                    " FROM awa_parent_results(%s)", [int(job_id)], using=using)
    for row in parents:
        if isinstance(row["result"], (str, bytes)):
            row["result"] = json.loads(row["result"])
        row["result_json"] = "" if row["result"] is None else json.dumps(row["result"], sort_keys=True)
    children = _rows("SELECT dependent_id AS id, kind, state::text AS state, satisfied, waiting_for,"
                     " on_parent_failure FROM awa_dependents(%s)", [int(job_id)], using=using)
    return parents, children


def stale_job_ids(ids, using="default"):
    """Which of these job ids are running with a stale heartbeat or past their deadline."""
    ids = [int(i) for i in ids]
    if not ids:
        return set()
    return {r["id"] for r in _rows(
        "SELECT id FROM awa.jobs WHERE id = ANY(%s::bigint[]) AND state = 'running' AND" + STALE_SQL,
        [ids], using=using)}


def count_failed(kind=None, queue=None, using="default"):
    sql, params = "SELECT count(*) AS n FROM awa.jobs WHERE state = 'failed'", []
    if kind and kind != "*":
        sql += " AND kind = %s"
        params.append(kind)
    if queue:
        sql += " AND queue = %s"
        params.append(queue)
    return _rows(sql, params, using=using)[0]["n"]


def count_drainable(queue, using="default"):
    return _rows("SELECT count(*) AS n FROM awa.jobs WHERE queue = %s AND state IN"
                 " (" + ", ".join("'%s'" % s for s in WAITING_STATES) + ")",
                 [queue], using=using)[0]["n"]


# -- actions (SQL API only) ------------------------------------------------

def retry_jobs(ids, using="default"):
    """awa_retry on each id; returns (ids that became available, ids left failed because another
    job holds their unique key: awa_retry's 23505, each in its own savepoint)."""
    done, held = [], []
    with transaction.atomic(using=using):
        c = client(using)
        for job_id in ids:
            try:
                with transaction.atomic(using=using):
                    if c.retry(int(job_id)) is not None:
                        done.append(int(job_id))
            except IntegrityError:
                held.append(int(job_id))
    return done, held


def cancel_jobs(ids, using="default"):
    """awa_cancel on each id; returns the ids that were cancelled."""
    done = []
    with transaction.atomic(using=using):
        c = client(using)
        for job_id in ids:
            if c.cancel(int(job_id)) is not None:
                done.append(int(job_id))
    return done


def retry_failed(kind=None, queue=None, using="default"):
    with transaction.atomic(using=using):
        return len(client(using).retry_failed(kind=kind or None, queue=queue or None))


def discard_failed(kind, using="default"):
    with transaction.atomic(using=using):
        return client(using).discard_failed(kind)


def pause_queue(queue, paused_by=None, using="default"):
    with transaction.atomic(using=using):
        return bool(client(using).pause_queue(queue, paused_by=paused_by))


def resume_queue(queue, using="default"):
    with transaction.atomic(using=using):
        return bool(client(using).resume_queue(queue))


def forget_queue(queue, using="default"):
    with transaction.atomic(using=using):
        return client(using).forget_queue(queue)


def drain_queue(queue, using="default"):
    with transaction.atomic(using=using):
        return client(using).drain_queue(queue)


def _schedule_call(fn, names, using):
    """awa_pause_schedule / awa_resume_schedule on each name; returns the names whose paused flag changed."""
    changed = []
    want = fn == "awa_pause_schedule"
    with transaction.atomic(using=using):
        for name in names:
            before = _rows("SELECT paused FROM awa.cron_jobs WHERE name = %s", [name], using=using)
            if not before:
                continue
            _rows("SELECT name, paused FROM %s(%%s)" % fn, [name], using=using)
            if before[0]["paused"] != want:
                changed.append(name)
    return changed


def pause_schedules(names, using="default"):
    return _schedule_call("awa_pause_schedule", names, using)


def resume_schedules(names, using="default"):
    return _schedule_call("awa_resume_schedule", names, using)
