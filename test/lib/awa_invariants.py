"""The invariants of awa's data, shared by the fuzz and crash tests.

check(conn) returns a list of violations (empty when all hold), read in one
REPEATABLE READ snapshot: each job in exactly one valid state with the
timestamps that state needs, attempts within bounds, and awa_queue_stats()
(counts, completed in the last hour, lag) equal to a full recount of awa.jobs.
In a database on the ring engine (awa.jobs a view), also the ring's own
invariants (check_ring): its relations agree with each other and with the
view, and awa.ring_recount() finds no difference.
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
    """Violations of awa's invariants in one snapshot; conn is a psycopg 3 connection.  On the ring engine
    awa_queue_stats() reads the ring's part of lag_seconds with the newest snapshot (docs/storage.md, "Step 5:
    timeouts, history and lag, wake-ups on the ring"), so a job the maintenance worker makes available meanwhile
    may move it: a difference in lag_seconds alone is looked at again (up to 3 times) before it counts."""
    ring = on_ring(conn)
    for _ in range(3):
        errs = check_once(conn)
        if ring:
            errs += check_ring(conn)
        if not ring or not errs or not all(LAG_ERROR in e for e in errs):
            return errs
    return errs


LAG_ERROR = ": lag_seconds = "


def check_once(conn):
    """check() in one snapshot, without the ring's own invariants."""
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


# ---------------------------------------------------------------------------
# The ring engine (a database created with awa.install_engine = ring: awa.jobs is a view of the ring;
# docs/storage.md, "Step 5: crash and fuzz tests on the ring").  Besides the checks above, which read the view,
# the ring's own relations must agree with each other and with the view.

def on_ring(conn):
    """Whether awa.jobs is the ring's view in this database."""
    return conn.execute("SELECT relkind = 'v' FROM pg_class WHERE oid = 'awa.jobs'::regclass").fetchone()[0]


RING_CHECKS = [
    # every job once: the slots and awa.ring_history never both hold a job (awa.jobs' duplicate check above
    # reads them together; this says which)
    ("job both in the slots and in awa.ring_history",
     "SELECT l.id FROM awa.ring_live_jobs l WHERE EXISTS (SELECT 1 FROM awa.ring_history h"
     " CROSS JOIN LATERAL unnest(h.jobs) j WHERE j.id = l.id)"),
    # one row per attempt: a carry into the open slot must not leave a copy behind
    ("attempt with two ready rows",
     "SELECT id FROM awa.ready GROUP BY id, run_lease HAVING count(*) > 1"),
    ("attempt with two receipts",
     "SELECT job_id FROM awa.claims GROUP BY job_id, run_lease HAVING count(*) > 1"),
    ("attempt with two done rows of one kind",
     "SELECT job_id FROM awa.done GROUP BY job_id, run_lease, after_wait HAVING count(*) > 1"),
    # a receipt, an end: of an attempt whose ready row is in the same slot; a reclaim carries the receipts and
    # ends of a job's earlier attempts without their ready rows (ring_slots.c, step 4), so only an attempt with
    # no ready row of its own or of a later attempt has lost it
    ("receipt of an attempt whose ready row is in another slot",
     "SELECT c.job_id FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id AND r.run_lease = c.run_lease - 1"
     " WHERE r.slot <> c.slot"),
    ("receipt of a job with no ready row for its attempt or a later one",
     "SELECT c.job_id FROM awa.claims c WHERE NOT EXISTS (SELECT 1 FROM awa.ready r"
     " WHERE r.id = c.job_id AND r.run_lease >= c.run_lease - 1)"),
    ("done row of an attempt whose ready row is in another slot",
     "SELECT d.job_id FROM awa.done d JOIN awa.ready r ON r.id = d.job_id AND r.run_lease = d.run_lease - 1"
     " WHERE r.slot <> d.slot"),
    ("done row of a job with no ready row for its attempt or a later one",
     "SELECT d.job_id FROM awa.done d WHERE NOT EXISTS (SELECT 1 FROM awa.ready r"
     " WHERE r.id = d.job_id AND r.run_lease >= d.run_lease - 1)"),
    # (a done row with no ready row of its attempt is the job's past: carried without it, or written by a retry
    # from the history, ring_revive.c)
    ("done row of an attempt (other than a cancel of an unclaimed one) without a receipt",
     "SELECT d.job_id FROM awa.done d WHERE d.state <> 'cancelled' AND NOT EXISTS (SELECT 1 FROM awa.claims c"
     " WHERE c.job_id = d.job_id AND c.run_lease = d.run_lease AND c.slot = d.slot) AND EXISTS (SELECT 1"
     " FROM awa.ready r WHERE r.id = d.job_id AND r.run_lease = d.run_lease - 1 AND r.slot = d.slot)"),
    ("end of a wait without the wait",
     "SELECT d.job_id FROM awa.done d WHERE d.after_wait AND NOT EXISTS (SELECT 1 FROM awa.done w"
     " WHERE w.job_id = d.job_id AND w.run_lease = d.run_lease AND NOT w.after_wait"
     " AND w.state = 'waiting_external')"),
    ("beat without the receipt of its attempt",
     "SELECT b.job_id FROM awa.beats b WHERE NOT EXISTS (SELECT 1 FROM awa.claims c"
     " WHERE c.job_id = b.job_id AND c.run_lease = b.run_lease AND c.slot = b.slot)"),
    ("callback row without the receipt of its attempt",
     "SELECT b.job_id FROM awa.callbacks b WHERE NOT EXISTS (SELECT 1 FROM awa.claims c"
     " WHERE c.job_id = b.job_id AND c.run_lease = b.run_lease AND c.slot = b.slot)"),
    # a later attempt starts only after the one before ended
    ("ready row of a later attempt while the one before has not ended",
     "SELECT r.id FROM awa.ready r JOIN awa.ready p ON p.id = r.id AND p.run_lease < r.run_lease"
     " WHERE NOT EXISTS (SELECT 1 FROM awa.done d WHERE d.job_id = p.id AND d.run_lease = p.run_lease + 1"
     " AND (d.state <> 'waiting_external' OR d.after_wait))"),
    # awa.scheduled: a job never made ready (lease 0), or the next attempt of one whose attempt ended
    ("scheduled row of a job that also has ready rows at or past it",
     "SELECT s.id FROM awa.scheduled s WHERE EXISTS (SELECT 1 FROM awa.ready r WHERE r.id = s.id"
     " AND r.run_lease >= s.run_lease)"),
    ("scheduled row of a later attempt whose attempt before did not end",
     "SELECT s.id FROM awa.scheduled s WHERE s.run_lease > 0 AND NOT EXISTS (SELECT 1 FROM awa.done d"
     " WHERE d.job_id = s.id AND d.run_lease = s.run_lease AND (d.state <> 'waiting_external' OR d.after_wait))"),
    ("not exactly one open slot",
     "SELECT count(*) FROM awa.ring_slots WHERE state = 'open' HAVING count(*) <> 1"),
    # unique keys: a holder for every held key, a key for every holder
    ("unique key held by a job that does not hold it (other key, or a state outside its unique_states)",
     "SELECT u.job_id FROM awa.unique_keys u WHERE NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.id = u.job_id"
     " AND j.unique_key = u.unique_key AND awa.unique_state_held(j.unique_states, j.state))"),
    ("job in one of its unique_states without its unique key",
     "SELECT j.id FROM awa.jobs j WHERE j.unique_key IS NOT NULL AND awa.unique_state_held(j.unique_states, j.state)"
     " AND NOT EXISTS (SELECT 1 FROM awa.unique_keys u WHERE u.unique_key = j.unique_key AND u.job_id = j.id)"),
    # per-key limits: every running attempt with a key is counted for its key; every live keyed job is known
    ("running job with a concurrency key not in awa.ring_key_running",
     "SELECT j.id FROM awa.jobs j WHERE j.state = 'running' AND j.concurrency_key IS NOT NULL"
     " AND NOT EXISTS (SELECT 1 FROM awa.ring_key_running k WHERE k.job_id = j.id AND k.run_lease = j.run_lease"
     " AND k.concurrency_key = j.concurrency_key)"),
    ("live job with a concurrency key not in awa.ring_key_live",
     "SELECT j.id FROM awa.jobs j WHERE j.state NOT IN ('completed', 'failed', 'cancelled')"
     " AND j.concurrency_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM awa.ring_key_live k"
     " WHERE k.job_id = j.id AND k.concurrency_key = j.concurrency_key)"),
    # dependencies: a waiting dependent waits for as many parents as it has unsatisfied edges; a parent that
    # completed satisfied its edges; a job released is not parked any more (an edge a failed parent satisfied,
    # policy run, stays satisfied when the parent is retried)
    ("waiting dependent whose count differs from its unsatisfied edges",
     "SELECT d.job_id FROM awa.ring_dependents d JOIN awa.jobs j ON j.id = d.job_id"
     " WHERE j.state = 'scheduled' AND j.run_at = '9999-12-30 00:00:00+00'"
     " AND d.waiting_for IS DISTINCT FROM (SELECT count(*) FROM awa.ring_dependencies e"
     " WHERE e.job_id = d.job_id AND NOT e.satisfied)"),
    ("dependent still parked although every parent satisfied it",
     "SELECT d.job_id FROM awa.ring_dependents d JOIN awa.jobs j ON j.id = d.job_id"
     " WHERE j.state = 'scheduled' AND j.run_at = '9999-12-30 00:00:00+00' AND d.waiting_for = 0"),
    ("edge of a completed parent not satisfied (the dependent was not told)",
     "SELECT e.job_id FROM awa.ring_dependencies e JOIN awa.jobs p ON p.id = e.parent_id"
     " WHERE p.state = 'completed' AND NOT e.satisfied"),
    ("dependent of a parent that ended, parked, policy cancel",
     "SELECT d.job_id FROM awa.ring_dependents d JOIN awa.jobs j ON j.id = d.job_id"
     " WHERE j.state = 'scheduled' AND j.run_at = '9999-12-30 00:00:00+00' AND d.on_parent_failure = 'cancel'"
     " AND EXISTS (SELECT 1 FROM awa.ring_dependencies e JOIN awa.jobs p ON p.id = e.parent_id"
     " WHERE e.job_id = d.job_id AND p.state IN ('failed', 'cancelled'))"),
    # groups: a member row per job with a group, and a pending callback only while a member is unfinished
    ("job with a group_id without its awa.ring_group_jobs row",
     "SELECT j.id FROM awa.jobs j WHERE j.group_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM awa.ring_group_jobs g"
     " WHERE g.job_id = j.id AND g.group_id = j.group_id)"),
    ("group finished, its callback pending (group id in place of a job id)",
     "SELECT 0 FROM awa.ring_group_callbacks c WHERE c.callback_job_id IS NULL"
     " AND EXISTS (SELECT 1 FROM awa.ring_group_jobs g WHERE g.group_id = c.group_id)"
     " AND NOT EXISTS (SELECT 1 FROM awa.ring_group_jobs g JOIN awa.jobs j ON j.id = g.job_id"
     " WHERE g.group_id = c.group_id AND j.state NOT IN ('completed', 'failed', 'cancelled'))"),
    # (the callback job may be gone since: retention, awa_discard_failed, DELETE; but never two)
    ("group whose callback jobs are not the one recorded",
     "SELECT c.callback_job_id FROM awa.ring_group_callbacks c WHERE c.callback_job_id IS NOT NULL"
     " AND (SELECT count(*) FROM awa.jobs j WHERE j.metadata ->> 'finished_group' = c.group_id)"
     " <> (SELECT count(*) FROM awa.jobs j WHERE j.id = c.callback_job_id)"),
]


def check_ring(conn):
    """The ring's own invariants (RING_CHECKS) and awa.ring_recount(), in one REPEATABLE READ snapshot."""
    errs = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for msg, query in RING_CHECKS:
            ids = [r[0] for r in conn.execute(query + " LIMIT 10").fetchall()]
            if ids:
                errs.append("ring: %s: job ids %s" % (msg, ids))
        # the counters against a recount of the view (counting the view in SQL; check() above compares them in
        # Python with the same snapshot rule)
        for queue, state, counted, recounted in conn.execute(
                "SELECT queue, state, counted, recounted FROM awa.ring_recount() WHERE state <> 'lag_us'"):
            errs.append("ring: awa.ring_recount(): queue %r state %s counted %d, recounted %d"
                        % (queue, state, counted, recounted))
    return errs
