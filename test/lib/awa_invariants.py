"""The invariants of awa's data, shared by the fuzz and crash tests.

check(conn) returns a list of violations (empty when all hold), read in one
REPEATABLE READ snapshot: each job in exactly one valid state with the
timestamps that state needs, attempts within bounds, and awa_queue_stats()
(counts, completed in the last hour, lag) equal to a full recount of awa.jobs.
"""
import collections

STATES = ("scheduled", "available", "running", "completed", "retryable", "failed", "cancelled",
          "waiting_external")
TERMINAL = ("completed", "failed", "cancelled")

CHECKS = [
    ("running job without heartbeat_at or deadline_at",
     "SELECT id FROM awa.jobs WHERE state = 'running' AND (heartbeat_at IS NULL OR deadline_at IS NULL)"),
    ("waiting_external job without a callback of its attempt or a callback deadline",
     "SELECT id FROM awa.jobs WHERE state = 'waiting_external'"
     " AND (callback_key IS NULL OR callback_lease IS DISTINCT FROM run_lease OR deadline_at IS NULL)"),
    ("running job with attempt 0",
     "SELECT id FROM awa.jobs WHERE state = 'running' AND attempt < 1"),
    ("terminal job (completed/failed/cancelled) without finalized_at",
     "SELECT id FROM awa.jobs WHERE state IN ('completed', 'failed', 'cancelled') AND finalized_at IS NULL"),
    ("non-terminal job with finalized_at",
     "SELECT id FROM awa.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled') AND finalized_at IS NOT NULL"),
    ("attempt > max_attempts",
     "SELECT id FROM awa.jobs WHERE attempt > max_attempts"),
    ("job with NULL state",
     "SELECT id FROM awa.jobs WHERE state IS NULL"),
    ("duplicate job id",
     "SELECT id FROM awa.jobs GROUP BY id HAVING count(*) > 1"),
    ("job args not an object/array",
     "SELECT id FROM awa.jobs WHERE jsonb_typeof(args) NOT IN ('object', 'array')"),
]


def check(conn):
    """Violations of awa's invariants in one snapshot; conn is a psycopg 3 connection."""
    errs = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for msg, query in CHECKS:
            ids = [r[0] for r in conn.execute(query + " LIMIT 10").fetchall()]
            if ids:
                errs.append("%s: job ids %s" % (msg, ids))
        cur = conn.execute("SELECT * FROM awa_queue_stats()")
        cols = [d.name for d in cur.description]
        stats = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
        recount = collections.defaultdict(collections.Counter)
        lag = {}
        for queue, state, cnt, recent, wait in conn.execute(
                "SELECT queue, state::text, count(*), count(*) FILTER (WHERE finalized_at > now() - interval '1 hour'),"
                " greatest(extract(epoch FROM now()) - extract(epoch FROM min(run_at)), 0)::float8"
                " FROM awa.jobs GROUP BY 1, 2"):
            recount[queue][state] = cnt
            if state == "completed":
                recount[queue]["completed_last_hour"] = recent
            if state == "available":
                lag[queue] = wait
        paused = dict(conn.execute("SELECT queue, paused FROM awa.queue_meta").fetchall())
    for queue in set(recount) | set(stats):
        got = stats.get(queue)
        want = recount.get(queue, collections.Counter())
        if got is None:
            errs.append("awa_queue_stats has no row for queue %r, which has jobs %s" % (queue, dict(want)))
            continue
        for col, v in got.items():
            if col in STATES:
                exp = want[col]
            elif col == "total_queued":
                exp = sum(c for s, c in want.items() if s in STATES and s not in TERMINAL)
            elif col == "completed_last_hour":
                exp = want["completed_last_hour"]
            elif col == "paused":
                exp = paused.get(queue, False)
            elif col == "lag_seconds":
                exp = lag.get(queue)
            else:
                continue
            if v != exp:
                errs.append("awa_queue_stats queue %r: %s = %r, recount says %r" % (queue, col, v, exp))
    return errs
