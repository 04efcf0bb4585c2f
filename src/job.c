/*-------------------------------------------------------------------------
 *
 * job.c
 *		The job state machine: every change of a job's state, and what
 *		others are told of it.
 *
 * The states and their sets come from job_state.def.  Every statement that
 * moves a job from one state to another is here: the claim (built here,
 * run by claim.c, whose blocked claimers have their own protocol in
 * wake.c), complete, fail, snooze, rescue, cancel, drain, operator retry,
 * discard, promotion, and parking a job for an external callback with what
 * resolves it (the callback, or its timeout).  They run through
 * run_transition, which applies one policy to what the statement returns:
 *	- a job that becomes claimable now (column awa_due true, or any row of
 *	  an all_due statement) wakes its queue: NOTIFY for listeners and a
 *	  blocked claimer woken at commit;
 *	- a job that becomes claimable later (awa_due false) wakes one blocked
 *	  claimer of its queue at commit, so that it sleeps only until then;
 *	- a job that leaves running (any row of a from_running statement,
 *	  awa_stop true, or awa_left_running true) lets claimers waiting at the
 *	  queue's concurrency limit count again;
 *	- a job a worker held (awa_stop true; columns id and run_lease) gets
 *	  NOTIFY awa.cancel so the worker can stop.
 *	- a job that becomes waiting (an awa_due row, or any row of an all_due
 *	  statement) pins the claim floor of its queue at its run_at before
 *	  commit (floor.c), so that no claim starts its scan past it.
 * Enqueueing applies the same rule to each new row (awa_job_enqueued).
 * The callers (the SQL functions of insert.c, enqueue.c, copy.c, worker.c,
 * lifecycle.c, queue.c, external.c and maintain.c) check arguments and
 * shape results; none of them wakes anyone by itself.
 *
 * Every statement that changes several jobs locks them first in id order,
 * as all of awa's statements do, so two of them never wait for each other
 * in a cycle (deadlock, 40P01).  All functions here expect the caller to be
 * connected to SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "awa.h"
#include "ratelimit.h"
#include "floor.h"
#include "maintain.h"
#include "ring.h"				/* hook: rflow: RING_LANE_PREFIX */

#define AWA_RESCUE_BATCH		5000

int			awa_heartbeat_timeout = 90;
int			awa_max_error_bytes = 8192;
int			awa_max_errors_kept = 25;

/* Define the settings of the state machine (from _PG_init). */
void
awa_job_init(void)
{
	DefineCustomIntVariable("awa.heartbeat_timeout",
							"A running job whose heartbeat is older than this is rescued.",
							NULL,
							&awa_heartbeat_timeout,
							90,
							1, 86400 * 7,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.max_error_bytes",
							"Longest error text kept in an entry of a job's errors.",
							"Longer texts (of awa_fail, or older entries when the history is rewritten) are cut at a character boundary; the entry then has \"truncated\": true and \"error_bytes\": the original length.",
							&awa_max_error_bytes,
							8192,
							64, (int) (MaxAllocSize / 2),
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.max_errors_kept",
							"Most entries kept in a job's errors.",
							"A failure or rescue that would exceed it drops the oldest entries; each entry keeps its attempt number.",
							&awa_max_errors_kept,
							25,
							1, 10000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

/*
 * awa.heartbeat_timeout as an interval parameter, in buf: a running job
 * whose heartbeat is older is rescued.
 */
Datum
awa_heartbeat_timeout_param(Interval *buf)
{
	memset(buf, 0, sizeof(Interval));
	buf->time = (int64) awa_heartbeat_timeout * USECS_PER_SEC;
	return IntervalPGetDatum(buf);
}

/* ---------------------------------------------------------------------
 * The states
 * ---------------------------------------------------------------------
 */

static const struct
{
	const char *label;
	int			sets;
}			job_states[] = {
#define AWA_JOB_STATE(NAME, label, waiting, held, final, retry, unique) \
	{CppAsString(label), \
	 (waiting ? AWA_SET_WAITING : 0) | (held ? AWA_SET_HELD : 0) | \
	 (final ? AWA_SET_FINAL : 0) | (retry ? AWA_SET_RETRY : 0) | \
	 (unique ? AWA_SET_UNIQUE : 0)},
#include "job_state.def"
#undef AWA_JOB_STATE
};

StaticAssertDecl(lengthof(job_states) == AWA_NUM_JOB_STATES,
				 "one entry per job state");

/* The label of a state, as in awa.job_state. */
const char *
awa_state_label(AwaJobState state)
{
	Assert(state >= 0 && state < AWA_NUM_JOB_STATES);
	return job_states[state].label;
}

/* Whether a state belongs to any of the sets (AWA_SET_*). */
bool
awa_state_in(AwaJobState state, int sets)
{
	return (job_states[state].sets & sets) != 0;
}

/* The bit of a state label in unique_states (its state), or -1. */
int
awa_state_bit(const char *label)
{
	int			k;

	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		if (strcmp(label, job_states[k].label) == 0)
			return k;
	return -1;
}

/* ---------------------------------------------------------------------
 * Enqueueing
 * ---------------------------------------------------------------------
 */

/*
 * The state a new job starts in: scheduled when its run_at is in the
 * future (after the transaction's start), available otherwise.
 */
AwaJobState
awa_job_initial_state(const AwaJob *job)
{
	return job->has_run_at && job->run_at > GetCurrentTransactionStartTimestamp() ?
		AWA_STATE_SCHEDULED : AWA_STATE_AVAILABLE;
}

/*
 * Tell others about a job row just written in this state with this run_at:
 * a waiting job wakes its queue, now if it is due (available, or run_at
 * not after the transaction's start), else only to shorten a blocked
 * claimer's sleep to its run_at.  Jobs written in another state wake
 * nobody.
 */
void
awa_job_enqueued(const char *queue, AwaJobState state, TimestampTz run_at)
{
	if (!awa_state_in(state, AWA_SET_WAITING))
		return;
	awa_floor_note(queue, run_at);
	if (state == AWA_STATE_AVAILABLE || run_at <= GetCurrentTransactionStartTimestamp())
		awa_job_available(queue);
	else
		awa_job_scheduled(queue);
}

/*
 * A queue's jobs may have become claimable without changing state: it was
 * resumed, or its concurrency limit was changed (limit_gone: removed).  Its
 * jobs wake as if they had just come due; with limit_gone, so do claimers
 * waiting at the limit.
 */
void
awa_queue_opened(const char *queue, bool limit_gone)
{
	awa_job_available(queue);
	/* hook: rflow -- the ring's waiters of the queue too (its lane: ring.c) */
	{
		char	   *lane = psprintf("%s%s", RING_LANE_PREFIX, queue);

		awa_lane_available(lane, true);
		pfree(lane);
	}
	if (limit_gone)
		awa_running_freed();
}

/* ---------------------------------------------------------------------
 * Transitions
 * ---------------------------------------------------------------------
 */

/* A statement that changes the state of jobs, and what that means. */
typedef struct Transition
{
	AwaStmt		stmt;
	bool		from_running;	/* every job it changes was running */
	bool		all_due;		/* every row it returns is available now */
} Transition;

/*
 * A row a transition returned as waiting (awa_due not NULL, or every row
 * with due_col 0) pins the claim floor of its queue at its run_at (floor.c)
 * before commit; without a run_at column, at the lowest time there is.
 */
static void
floor_note_row(HeapTuple row, TupleDesc desc, int due_col, int queue_col, int run_col)
{
	bool		isnull = false;
	TimestampTz run_at = DT_NOBEGIN;

	if (due_col > 0)
		(void) SPI_getbinval(row, desc, due_col, &isnull);
	if (isnull)
		return;
	if (run_col > 0)
	{
		Datum		d = SPI_getbinval(row, desc, run_col, &isnull);

		if (!isnull)
			run_at = DatumGetTimestampTz(d);
	}
	awa_floor_note(SPI_getvalue(row, desc, queue_col), run_at);
}

/*
 * The policy, applied to the rows a transition just returned (see the
 * head of this file).  Columns are found by name; a statement returns only
 * those that apply to it.
 */
static void
apply_effects(const Transition *t)
{
	TupleDesc	desc;
	int			due_col;
	int			stop_col;
	int			queue_col;
	int			left_col;
	int			run_col;
	uint64		i;

	if (SPI_processed == 0)
		return;
	if (t->from_running)
		awa_running_freed();
	if (SPI_tuptable == NULL)
		return;
	desc = SPI_tuptable->tupdesc;
	due_col = SPI_fnumber(desc, "awa_due");
	stop_col = SPI_fnumber(desc, "awa_stop");
	queue_col = SPI_fnumber(desc, "queue");
	left_col = SPI_fnumber(desc, "awa_left_running");
	run_col = SPI_fnumber(desc, "run_at");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		d;

		if (t->all_due || due_col > 0)
			floor_note_row(row, desc, t->all_due ? 0 : due_col, queue_col, run_col);
		if (t->all_due)
			awa_job_available(SPI_getvalue(row, desc, queue_col));
		else if (due_col > 0)
		{
			d = SPI_getbinval(row, desc, due_col, &isnull);
			if (!isnull && DatumGetBool(d))
				awa_job_available(SPI_getvalue(row, desc, queue_col));
			else if (!isnull)
				awa_job_scheduled(SPI_getvalue(row, desc, queue_col));
		}
		if (stop_col > 0)
		{
			d = SPI_getbinval(row, desc, stop_col, &isnull);
			if (!isnull && DatumGetBool(d))
			{
				awa_running_freed();
				awa_notify_cancel(awa_stmt_int8(i, "id"), awa_stmt_int8(i, "run_lease"));
			}
		}
		if (left_col > 0)
		{
			d = SPI_getbinval(row, desc, left_col, &isnull);
			if (!isnull && DatumGetBool(d))
				awa_running_freed();
		}
	}
}

/*
 * Run a transition with these parameters (at most tcount rows, 0: all),
 * apply the policy and return how many rows it returned or changed.  The
 * rows stay in SPI_tuptable for the caller.
 */
static uint64
run_transition(Transition *t, Datum *values, const char *nulls, long tcount)
{
	awa_stmt_run(&t->stmt, values, nulls, tcount);
	apply_effects(t);
	return SPI_processed;
}

/* --- claiming --- */

static void append_claim_update(StringInfo sql, bool leases);
static void append_unclaimable(StringInfo sql);
static void append_claim_set(StringInfo sql, bool leases);

/*
 * Per-key limits (keylimit.c), when the schema has them: KEY_OPEN_SQL
 * skips, before locking, a candidate whose key this claim found at its
 * limit; KEY_ADMIT_SQL admits a locked candidate (ok: claimable) with a key.
 * Jobs without a key pass both on the IS NULL test.  The admission must
 * see the row locked (it counts what it admits), so it stands above the
 * locking subquery, which OFFSET 0 keeps the planner from pushing it into
 * (below the lock).
 */
#define KEY_OPEN_SQL(K) "(" K ".concurrency_key IS NULL OR awa.concurrency_key_open(" K ".concurrency_key))"
#define KEY_ADMIT_SQL(K) \
	"(" K ".concurrency_key IS NULL OR NOT " K ".ok" \
	" OR awa.concurrency_key_admit(" K ".concurrency_key, " K ".kind, " K ".id))"

/*
 * The SQL that claims up to $4 jobs of queue $1 at effective priority level
 * `level` (0: aging off, plain priority order).  $2 is the claim's time, $3
 * the aging interval, $5 the lease, $6 the worker, $7 and $8 the run_at and
 * id of the claim floors of priorities 1..4 (floor.c): each priority's
 * range starts there (aging off: priority 1's only).  Built from constants
 * only; user values are always parameters.  With skip_limited, a queue
 * with a concurrency limit yields nothing (its claims take the locked path).
 * The claimed jobs become running; what claimers tell each other is
 * claim.c's and wake.c's (awa_claim_begins, awa_claim_ends).
 *
 * A claim locks only the rows it hands out.  Where one index range gives
 * the order (aging off, or a level with one priority), the rows are read in
 * index order under FOR UPDATE SKIP LOCKED with the LIMIT above the lock,
 * so locking stops when the batch is full.  A level that merges several
 * priorities reads their ranges unlocked, merged in (run_at, id) order, and
 * locks each candidate through a LATERAL lookup of its row version (a TID
 * scan: the lock follows the row to its newest version and rechecks it) as
 * the LIMIT pulls it; a subquery per priority that locked its own LIMIT of
 * rows would keep up to one batch per priority locked for the rest of the
 * transaction.
 *
 * The UPDATEs find the locked rows by ctid = ANY(array), a TID scan: the
 * locks are held, so those row versions stay the current ones until the
 * statement ends, and no index is walked again (a join with the CTE would
 * be planned for the generic plan's guess of its size, a tenth of the
 * table, and could become a merge join over the primary key).
 *
 * A row that cannot be claimed without breaking a constraint (no attempts
 * left, or run_lease at its maximum: written behind awa's back) is not left
 * to fail every claim of its queue: the same statement moves it to failed
 * with the reason in its errors, and only the other rows are returned.
 *
 * With keys (the schema has per-key limits), a candidate with a concurrency
 * key is taken only if keylimit.c admits it once locked (KEY_ADMIT_SQL).
 */
char *
awa_job_claim_sql(int level, bool skip_limited, bool leases, bool keys)
{
	StringInfoData sql;
	const char *due = "queue = $1 AND state IN " AWA_STATES_WAITING_SQL;
	const char *claimable = "attempt < max_attempts AND run_lease < 9223372036854775807";
	int			first = Max(level, 1);
	int			p;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH cand AS MATERIALIZED (SELECT ctid, ok FROM (");
	if (level == 0 || level == AWA_MAX_PRIORITY)
	{
		/* one index range: lock in index order below the LIMIT */
		if (keys)
			appendStringInfoString(&sql, "SELECT x.ctid, x.ok FROM (");
		appendStringInfo(&sql,
						 "SELECT ctid, %s AS ok%s FROM awa.jobs WHERE %s AND run_at <= $2",
						 claimable, keys ? ", concurrency_key, kind, id" : "", due);
		if (level > 0)			/* priority 4, due for less than one interval */
			appendStringInfo(&sql, " AND priority = %d AND run_at > $2 - $3"
							 " AND (run_at, id) >= ($7[%d], $8[%d])", level, level, level);
		else					/* the floor of priority 1 only */
			appendStringInfoString(&sql, " AND (priority, run_at, id) >= (1, $7[1], $8[1])");
		/* with keys: admit above the lock, so the LIMIT counts admitted rows */
		if (keys)
			appendStringInfo(&sql, " AND " KEY_OPEN_SQL("jobs")
							 " ORDER BY %s FOR UPDATE SKIP LOCKED OFFSET 0) x WHERE " KEY_ADMIT_SQL("x")
							 " LIMIT $4",
							 level == 0 ? "priority, run_at, id" : "run_at, id");
		else
			appendStringInfo(&sql, " ORDER BY %s LIMIT $4 FOR UPDATE SKIP LOCKED",
							 level == 0 ? "priority, run_at, id" : "run_at, id");
	}
	else
	{
		/* several priorities: merge unlocked ranges, lock as pulled */
		appendStringInfoString(&sql, "SELECT l.ctid, l.ok FROM (");
		for (p = first; p <= AWA_MAX_PRIORITY; p++)
		{
			if (p > first)
				appendStringInfoString(&sql, " UNION ALL ");
			appendStringInfo(&sql,
							 "(SELECT ctid, run_at, id FROM awa.jobs WHERE %s AND priority = %d%s",
							 due, p, keys ? " AND " KEY_OPEN_SQL("jobs") : "");
			if (p == level)
				appendStringInfoString(&sql, " AND run_at <= $2");
			else
				appendStringInfo(&sql, " AND run_at <= $2 - %d * $3", p - level);
			if (level > 1)
				appendStringInfo(&sql, " AND run_at > $2 - %d * $3", p - level + 1);
			appendStringInfo(&sql, " AND (run_at, id) >= ($7[%d], $8[%d])"
							 " ORDER BY run_at, id)", p, p);
		}
		appendStringInfo(&sql,
						 " ORDER BY run_at, id) c CROSS JOIN LATERAL"
						 " (SELECT j.ctid, %s AS ok%s FROM awa.jobs j WHERE j.ctid = c.ctid AND j.%s"
						 " AND j.run_at <= $2"
						 " FOR UPDATE OF j SKIP LOCKED%s) l%s LIMIT $4",
						 claimable, keys ? ", j.concurrency_key, j.kind, j.id" : "", due,
						 keys ? " OFFSET 0" : "",
						 keys ? " WHERE " KEY_ADMIT_SQL("l") : "");
	}
	appendStringInfo(&sql,
					 ") u WHERE NOT EXISTS (SELECT 1 FROM awa.queue_meta m"
					 " WHERE m.queue = $1 AND (m.paused%s%s))),",
					 /* a limit or a rate (ratelimit.c): left to the counted claim */
					 skip_limited ? " OR " : "",
					 skip_limited ? awa_rate_limited_sql() : "");
	append_claim_update(&sql, leases);
	return sql.data;
}

/*
 * The part of a claim statement after its CTE "cand" (the locked rows, ctid
 * and ok): fail the rows that cannot be claimed, make the others running
 * and return them.  Parameters as for awa_job_claim_sql.
 */
static void
append_claim_update(StringInfo sql, bool leases)
{
	append_unclaimable(sql);
	append_claim_set(sql, leases);
}

/* The CTE "unclaimable" of a claim statement: fail the rows not ok. */
static void
append_unclaimable(StringInfo sql)
{
	appendStringInfoString(sql,
						   " unclaimable AS (UPDATE awa.jobs j SET state = 'failed', finalized_at = $2,"
						   " heartbeat_at = NULL, deadline_at = NULL,"
						   " errors = " AWA_ERRORS_APPEND_SQL("j.errors",
															  "jsonb_build_object('attempt', j.attempt,"
															  " 'error', 'awa_claim: cannot be claimed (attempt ' || j.attempt || ' of '"
															  " || j.max_attempts || ', run_lease ' || j.run_lease || ')', 'at', $2)")
						   " WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM cand WHERE NOT ok)))");
}

/* The UPDATE of a claim statement: the rows ok of "cand" become running. */
static void
append_claim_set(StringInfo sql, bool leases)
{
	appendStringInfoString(sql,
						   " UPDATE awa.jobs j SET state = 'running', attempt = j.attempt + 1,"
						   " run_lease = j.run_lease + 1, attempted_at = $2, heartbeat_at = $2,"
						   " claimed_by = $6,");
	/* 0.3.0: the lease is kept for heartbeats to renew; a timeout caps it */
	appendStringInfoString(sql, leases ?
						   " lease = $5, deadline_at = LEAST($2 + $5, $2 + j.timeout)" :
						   " deadline_at = $2 + $5");
	appendStringInfoString(sql,
						   " WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM cand WHERE ok)) RETURNING j.*");
}

/* --- claiming from several queues --- */

/*
 * The SQL that claims, of the candidate rows $3 (a tid[] in claim order,
 * read from the claim index by claim.c's multi-queue claim), the first $4
 * it can lock: each is locked as the LIMIT pulls it (FOR UPDATE SKIP
 * LOCKED through the row version, as in awa_job_claim_sql), so only rows
 * handed out stay locked, and taken only if it is still a waiting job of
 * one of the queues $1 (a text[]) due at $2.  $5 and $6 as in
 * awa_job_claim_sql.  With keys, candidates with a concurrency key are
 * admitted as there.
 */
char *
awa_job_claim_tids_sql(bool leases, bool keys)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH cand AS MATERIALIZED (SELECT l.ctid, l.ok FROM unnest($3::tid[]) AS s(ctid)"
					 " CROSS JOIN LATERAL"
					 " (SELECT j.ctid, attempt < max_attempts AND run_lease < 9223372036854775807 AS ok%s"
					 " FROM awa.jobs j WHERE j.ctid = s.ctid"
					 " AND j.queue = ANY ($1) AND j.state IN " AWA_STATES_WAITING_SQL
					 " AND j.run_at <= $2"
					 " FOR UPDATE OF j SKIP LOCKED%s) l%s LIMIT $4),",
					 keys ? ", j.concurrency_key, j.kind, j.id" : "",
					 keys ? " OFFSET 0" : "",
					 keys ? " WHERE " KEY_ADMIT_SQL("l") : "");
	append_claim_update(&sql, leases);
	return sql.data;
}

/* --- a worker's job: complete, fail, snooze --- */


/* Complete the job if it is running under that lease; whether it was. */
bool
awa_job_complete(Datum job_id, Datum run_lease)
{
	static Transition t = {AWA_STMT("awa_complete: update", SPI_OK_UPDATE,
		"UPDATE awa.jobs SET state = 'completed', finalized_at = now()"
		" WHERE id = $1 AND run_lease = $2 AND " AWA_RUNNING_SQL,
	2, INT8OID, INT8OID), true};
	Datum		values[2] = {job_id, run_lease};

	return run_transition(&t, values, NULL, 0) == 1;
}

/* awa_job_complete for each (ids[i], leases[i]); how many were completed. */
int64
awa_job_complete_many(Datum ids, Datum leases)
{
	static Transition t = {AWA_STMT("awa_complete_many: update", SPI_OK_UPDATE,
		"WITH l AS (" AWA_LOCK_BY_ID_LEASE_SQL ")"
		" UPDATE awa.jobs j SET state = 'completed', finalized_at = now()"
		" FROM l WHERE j.id = l.id AND l.state = 'running'",
	2, INT8ARRAYOID, INT8ARRAYOID), true};
	Datum		values[2] = {ids, leases};

	return (int64) run_transition(&t, values, NULL, 0);
}

/* See awa.h. */
void
awa_errors_bounds(Datum *values)
{
	values[0] = Int32GetDatum(awa_max_errors_kept - 1);
	values[1] = Int32GetDatum(awa_max_error_bytes);
	/* awa.max_error_bytes in characters that always fit */
	values[2] = Int32GetDatum(awa_max_error_bytes / pg_database_encoding_max_length());
}

/*
 * Fail the job if it is running under that lease: error (already cut to
 * awa.max_error_bytes; error_bytes its original length, or -1 if not cut)
 * is appended to its errors.  With attempts left and not terminal it
 * becomes retryable at now() + retry_in (NULL: the default backoff), else
 * failed.  Returns whether it was running; *state is its new state.
 */
bool
awa_job_fail(Datum job_id, Datum run_lease, text *error, int64 error_bytes,
			 Interval *retry_in, bool terminal, Datum *state)
{
	static Transition t = {AWA_STMT("awa_fail: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs SET"
		" errors = " AWA_ERRORS_SQL("errors", "$7", "$8", "$9",
									"jsonb_build_object('attempt', attempt, 'error', $3, 'at', now())"
									" || " AWA_ERROR_MARKS_SQL("$6")) ","
		" state = CASE WHEN $5 OR attempt >= max_attempts"
		"   THEN 'failed'::awa.job_state ELSE 'retryable' END,"
		" run_at = CASE WHEN $5 OR attempt >= max_attempts THEN run_at"
		"   WHEN $4 IS NOT NULL THEN now() + $4"
		"   ELSE " AWA_BACKOFF_SQL("attempt") " END,"
		" finalized_at = CASE WHEN $5 OR attempt >= max_attempts THEN now() END,"
		" heartbeat_at = NULL, deadline_at = NULL"
		" WHERE id = $1 AND run_lease = $2 AND " AWA_RUNNING_SQL
		" RETURNING queue, CASE WHEN state = 'retryable' THEN run_at <= now() END AS awa_due, state,"
		" run_at",
		9, INT8OID, INT8OID, TEXTOID, INTERVALOID, BOOLOID, INT8OID, INT4OID, INT4OID, INT4OID),
	true};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = job_id;
	values[1] = run_lease;
	values[2] = PointerGetDatum(error);
	values[3] = PointerGetDatum(retry_in);
	if (retry_in == NULL)
		nulls[3] = 'n';
	values[4] = BoolGetDatum(terminal);
	values[5] = Int64GetDatum(error_bytes);
	if (error_bytes < 0)
		nulls[5] = 'n';
	awa_errors_bounds(&values[6]);
	if (run_transition(&t, values, nulls, 0) != 1)
		return false;
	*state = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	return true;
}

/*
 * Snooze the job if it is running under that lease: scheduled again at
 * now() + delay, the attempt it was claimed for not counted.  Whether it
 * was running.
 */
bool
awa_job_snooze(Datum job_id, Datum run_lease, Interval *delay)
{
	static Transition t = {AWA_STMT("awa_snooze: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs SET state = 'scheduled', run_at = now() + $3,"
		" attempt = greatest(attempt - 1, 0), heartbeat_at = NULL, deadline_at = NULL"
		" WHERE id = $1 AND run_lease = $2 AND " AWA_RUNNING_SQL
		" RETURNING queue, run_at <= now() AS awa_due, run_at",
	3, INT8OID, INT8OID, INTERVALOID), true};
	Datum		values[3] = {job_id, run_lease, IntervalPGetDatum(delay)};

	return run_transition(&t, values, NULL, 0) == 1;
}

/* --- rescue: jobs whose worker vanished --- */

/*
 * The rescue statement: running jobs picked by PICK (a condition on id
 * using $2) whose heartbeat is older than $1 or whose deadline has passed
 * become retryable now (or failed when out of attempts), with an error
 * entry saying why (CAUSE: heartbeat stale, deadline exceeded when the
 * lease ran out, or with the 0.3.0 schema timeout exceeded), the history
 * bounded as by awa_fail ($3..$5).  Locks in id order, skipping jobs
 * locked by others.
 */
#define RESCUE_SQL(CAUSE, PICK) \
	"WITH r AS (SELECT id, " CAUSE " AS cause" \
	"   FROM awa.jobs WHERE state = 'running'" \
	"   AND (heartbeat_at < now() - $1 OR deadline_at < now()) AND " PICK \
	"   ORDER BY id LIMIT " CppAsString2(AWA_RESCUE_BATCH) \
	"   FOR NO KEY UPDATE SKIP LOCKED)" \
	" UPDATE awa.jobs j SET" \
	" errors = " AWA_ERRORS_SQL("j.errors", "$3", "$4", "$5", \
								"jsonb_build_object('attempt', j.attempt, 'error', r.cause, 'at', now())") "," \
	" state = CASE WHEN j.attempt >= j.max_attempts" \
	"   THEN 'failed'::awa.job_state ELSE 'retryable' END," \
	" run_at = now()," \
	" finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END," \
	" heartbeat_at = NULL, deadline_at = NULL" \
	" FROM r WHERE j.id = r.id" \
	" RETURNING j.queue, CASE WHEN j.state = 'retryable' THEN true END AS awa_due, j.run_at"

/* Why a job is rescued, before and since the 0.3.0 schema (timeout). */
#define RESCUE_CAUSE_0_2 \
	"CASE WHEN deadline_at < now() THEN 'deadline exceeded' ELSE 'heartbeat stale' END"
#define RESCUE_CAUSE_0_3 \
	"CASE WHEN deadline_at < now() THEN CASE" \
	" WHEN deadline_at = attempted_at + timeout THEN 'timeout exceeded'" \
	" ELSE 'deadline exceeded' END ELSE 'heartbeat stale' END"

#define RESCUE_TRANSITION(CAUSE, PICK, PICKTYPE) \
	{AWA_STMT("awa_rescue: update", SPI_OK_UPDATE_RETURNING, RESCUE_SQL(CAUSE, PICK), 5, \
			  INTERVALOID, PICKTYPE, INT4OID, INT4OID, INT4OID), true}

/*
 * Run one of a pair of rescue transitions ([0]: schema before 0.3.0, [1]:
 * with leases; PICK's argument as $2), with awa.heartbeat_timeout as $1.
 */
static int64
rescue(Transition *pair, Datum arg)
{
	Interval	timeout;
	Datum		values[5];

	values[0] = awa_heartbeat_timeout_param(&timeout);
	values[1] = arg;
	awa_errors_bounds(&values[2]);
	return (int64) run_transition(&pair[awa_schema_has(AWA_SCHEMA_LEASES) ? 1 : 0],
								  values, NULL, 0);
}

/*
 * Rescue up to AWA_RESCUE_BATCH running jobs whose heartbeat is older than
 * awa.heartbeat_timeout or whose deadline has passed, leaving alone the ids
 * in skip_ids (an int8[]: jobs maintenance could not rescue before).
 * Returns how many.  Used by awa_rescue and maintenance.
 */
int64
awa_rescue_jobs(Datum skip_ids)
{
	static Transition pair[2] = {
		RESCUE_TRANSITION(RESCUE_CAUSE_0_2, "id <> ALL($2)", INT8ARRAYOID),
		RESCUE_TRANSITION(RESCUE_CAUSE_0_3, "id <> ALL($2)", INT8ARRAYOID)
	};

	return rescue(pair, skip_ids);
}

/*
 * Rescue the one job job_id if it still needs rescue (maintenance's
 * row-at-a-time fallback); returns 1 if it was rescued, else 0.
 */
int64
awa_rescue_job(int64 job_id)
{
	static Transition pair[2] = {
		RESCUE_TRANSITION(RESCUE_CAUSE_0_2, "id = $2", INT8OID),
		RESCUE_TRANSITION(RESCUE_CAUSE_0_3, "id = $2", INT8OID)
	};

	return rescue(pair, Int64GetDatum(job_id));
}

/* --- producers and operators: cancel, retry, discard --- */

/*
 * Cancel the job if it is live; its row (all of awa.jobs' columns, then
 * awa_stop) is in SPI_tuptable.  Returns 0 or 1.  A worker that held it
 * (running or waiting_external) is told (NOTIFY awa.cancel).
 */
uint64
awa_job_cancel(Datum job_id)
{
	static Transition t = {AWA_STMT("awa_cancel: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs j SET state = 'cancelled', finalized_at = now()"
		" FROM (SELECT id, state FROM awa.jobs WHERE id = $1 FOR UPDATE) o"
		" WHERE j.id = o.id AND o.state IN " AWA_STATES_LIVE_SQL
		" RETURNING j.*, o.state IN " AWA_STATES_HELD_SQL " AS awa_stop",
	1, INT8OID), false};

	/* no row limit: a statement stopped early fires no AFTER STATEMENT trigger */
	return run_transition(&t, &job_id, NULL, 0);
}

/*
 * Cancel the live jobs holding unique key $1 (or, written before 0.3.0,
 * legacy $2); their rows are in SPI_tuptable as for awa_job_cancel.
 * A live job always holds its key (constraint jobs_unique_states_live), so
 * the unique_state_held term selects nothing less; it is there so that the
 * generic plan can read jobs_unique_idx, whose predicate it is, rather
 * than the whole table.
 */
uint64
awa_job_cancel_by_key(Datum key, Datum legacy)
{
	static Transition t = {AWA_STMT("awa_cancel_by_unique_key: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs j SET state = 'cancelled', finalized_at = now()"
		" FROM (SELECT id, state FROM awa.jobs WHERE unique_key IN ($1, $2)"
		"       AND state IN " AWA_STATES_LIVE_SQL
		"       AND awa.unique_state_held(unique_states, state)"
		"       ORDER BY id FOR NO KEY UPDATE) o"
		" WHERE j.id = o.id AND o.state IN " AWA_STATES_LIVE_SQL
		" RETURNING j.*, o.state IN " AWA_STATES_HELD_SQL " AS awa_stop",
	2, BYTEAOID, BYTEAOID), false};
	Datum		values[2] = {key, legacy};

	return run_transition(&t, values, NULL, 0);
}

/*
 * Cancel every job of the queue that waits to run or waits on an external
 * system; running jobs are left to finish.  Returns how many.  Counted in
 * SQL: a drained queue may have millions of jobs, and only the
 * waiting_external ones (few) come back, to be told.  The jobs are found
 * through two index ranges (jobs_claim_idx, jobs_settled_idx): one state
 * list spanning both partial indexes matches neither, and the generic plan
 * would read the whole table.
 */
int64
awa_job_drain(Datum queue)
{
	static Transition t = {AWA_STMT("awa_drain_queue: update", SPI_OK_SELECT,
		"WITH l AS (SELECT j.id, j.state FROM awa.jobs j"
		"   WHERE j.id IN (SELECT id FROM awa.jobs WHERE queue = $1"
		"                    AND state IN " AWA_STATES_WAITING_SQL
		"                  UNION ALL"
		"                  SELECT id FROM awa.jobs WHERE queue = $1"
		"                    AND state = 'waiting_external')"
		"   AND j.state IN " AWA_STATES_QUEUED_SQL
		"   AND j.queue = $1 ORDER BY j.id FOR NO KEY UPDATE OF j),"
		" d AS (UPDATE awa.jobs j SET state = 'cancelled', finalized_at = now()"
		"   FROM l WHERE j.id = l.id"
		"   RETURNING j.id, j.run_lease, l.state IN " AWA_STATES_HELD_SQL " AS held)"
		" SELECT c.n, h.id, h.run_lease, h.id IS NOT NULL AS awa_stop"
		" FROM (SELECT count(*) AS n FROM d) c"
		" LEFT JOIN (SELECT id, run_lease FROM d WHERE held) h ON true"
		" ORDER BY h.id",
	1, TEXTOID), false};
	bool		isnull;

	if (run_transition(&t, &queue, NULL, 0) < 1)
		elog(ERROR, "awa_drain_queue: no count");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Retry the job if it is failed, cancelled or waiting_external: available
 * now, its attempts reset.  Its row is in SPI_tuptable; returns 0 or 1.
 * Raises 23505 when it is a unique job whose key another job holds now.
 */
uint64
awa_job_retry(Datum job_id)
{
	static AwaStmt holder = AWA_QUERY("awa_retry: unique key check",
									  "SELECT h.id FROM awa.jobs j JOIN awa.jobs h"
									  " ON h.unique_key = j.unique_key AND h.id <> j.id"
									  " AND awa.unique_state_held(h.unique_states, h.state)"
									  " WHERE j.id = $1 AND j.state IN " AWA_STATES_RETRY_SQL
									  " AND awa.unique_state_held(j.unique_states, 'available')",
									  1, INT8OID);
	static Transition t = {AWA_STMT("awa_retry: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs SET state = 'available', run_at = now(),"
		" attempt = 0, finalized_at = NULL, heartbeat_at = NULL,"
		" deadline_at = NULL"
		" WHERE id = $1 AND state IN " AWA_STATES_RETRY_SQL
		" RETURNING *",
	1, INT8OID), false, true};

	/* a unique job whose key another job holds now cannot come back */
	if (awa_stmt_run(&holder, &job_id, NULL, 1) == 1)
	{
		int64		holder_id = awa_stmt_int8(0, "id");

		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("job %lld cannot be retried: job %lld holds its unique key",
						(long long) DatumGetInt64(job_id), (long long) holder_id),
				 errhint("Wait for job %lld to finish or cancel it, then retry.",
						 (long long) holder_id)));
	}
	/* no row limit: a statement stopped early fires no AFTER STATEMENT trigger */
	return run_transition(&t, &job_id, NULL, 0);
}

/*
 * Retry the failed jobs of kind $1 and queue $2 (NULL: any), like
 * awa_job_retry.  A unique job comes back only if no other job holds its
 * key now, and of failed jobs sharing a key only the newest: the others
 * stay failed.  Their rows are in SPI_tuptable, in no particular order.
 */
uint64
awa_job_retry_failed(Datum *kind_queue, const char *nulls)
{
	/*
	 * state = 'failed' is a literal so the plan can use jobs_settled_idx.
	 * The jobs are locked in id order first (l); the row values after the
	 * lock are the current ones.
	 */
	static Transition t = {AWA_STMT("awa_retry_failed: update", SPI_OK_UPDATE_RETURNING,
		"WITH l AS (SELECT id, unique_key, unique_states FROM awa.jobs"
		"   WHERE state = 'failed'"
		"   AND ($1::text IS NULL OR kind = $1)"
		"   AND ($2::text IS NULL OR queue = $2)"
		"   ORDER BY id FOR NO KEY UPDATE),"
		" c AS (SELECT id, unique_key IS NOT NULL"
		"   AND awa.unique_state_held(unique_states, 'available') AS keyed,"
		"   row_number() OVER (PARTITION BY unique_key ORDER BY id DESC) AS rn"
		"   FROM l)"
		" UPDATE awa.jobs j SET state = 'available', run_at = now(),"
		" attempt = 0, finalized_at = NULL, heartbeat_at = NULL,"
		" deadline_at = NULL"
		" FROM c WHERE j.id = c.id AND j.state = 'failed'"
		" AND (NOT c.keyed OR (c.rn = 1 AND NOT EXISTS (SELECT 1 FROM awa.jobs h"
		"   WHERE h.unique_key = j.unique_key AND h.id <> j.id"
		"   AND awa.unique_state_held(h.unique_states, h.state))))"
		" RETURNING j.*",
	2, TEXTOID, TEXTOID), false, true};

	return run_transition(&t, kind_queue, nulls, 0);
}

/* Delete the failed jobs of kind $1 (NULL: any); how many. */
int64
awa_job_discard_failed(Datum kind, bool kind_isnull)
{
	static Transition t = {AWA_STMT("awa_discard_failed: delete", SPI_OK_DELETE,
		"WITH l AS (SELECT id FROM awa.jobs WHERE state = 'failed'"
		"   AND ($1::text IS NULL OR kind = $1) ORDER BY id FOR UPDATE)"
		" DELETE FROM awa.jobs j USING l WHERE j.id = l.id",
	1, TEXTOID), false};

	return (int64) run_transition(&t, &kind, kind_isnull ? "n" : NULL, 0);
}

/* --- maintenance: promotion --- */

/*
 * Promote due scheduled and retryable jobs to available, oldest run_at
 * first, at most AWA_MAINTAIN_BATCH, leaving the ids in skip (int8[])
 * alone.  Returns how many.
 */
int64
awa_job_promote(Datum skip)
{
	static Transition t = {AWA_STMT("awa: promoting jobs", SPI_OK_SELECT,
		"WITH due AS (SELECT id FROM awa.jobs"
		"   WHERE state IN " AWA_STATES_PROMOTABLE_SQL " AND run_at <= now()"
		"   AND id <> ALL($1)"
		"   ORDER BY run_at"
		"   LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) " FOR UPDATE SKIP LOCKED),"
		" promoted AS (UPDATE awa.jobs j SET state = 'available'"
		"   FROM due WHERE j.id = due.id RETURNING j.queue, j.run_at)"
		" SELECT queue, count(*), min(run_at) AS run_at FROM promoted GROUP BY queue",
	1, INT8ARRAYOID), false, true};
	int64		total = 0;
	uint64		i;

	run_transition(&t, &skip, NULL, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		total += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 2, &isnull));
	}
	return total;
}

/* The ids awa_job_promote would take (skip as there). */
SPIPlanPtr
awa_job_promote_candidates_plan(void)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID};

	return awa_plan(&plan,
					"SELECT id FROM awa.jobs"
					" WHERE state IN " AWA_STATES_PROMOTABLE_SQL " AND run_at <= now()"
					" AND id <> ALL($1) ORDER BY run_at"
					" LIMIT " CppAsString2(AWA_MAINTAIN_BATCH),
					1, argtypes);
}

/* Promote one job if it is still due; 1 if it was. */
int64
awa_job_promote_one(int64 id)
{
	static Transition t = {AWA_STMT("awa: promoting a job", SPI_OK_UPDATE_RETURNING,
		"WITH due AS (SELECT id FROM awa.jobs WHERE id = $1"
		"   AND state IN " AWA_STATES_PROMOTABLE_SQL " AND run_at <= now()"
		"   FOR UPDATE SKIP LOCKED)"
		" UPDATE awa.jobs j SET state = 'available'"
		" FROM due WHERE j.id = due.id RETURNING j.queue, j.run_at",
	1, INT8OID), false, true};
	Datum		value = Int64GetDatum(id);

	return (int64) run_transition(&t, &value, NULL, 0);
}

/* ---------------------------------------------------------------------
 * External completion and results
 * ---------------------------------------------------------------------
 *
 * A running job may park in waiting_external to wait for an outside event,
 * under the callback id its handler registered (external.c) for that
 * attempt (callback_lease = run_lease).  Whoever knows the id then
 * completes, fails or retries it; when its callback timeout (deadline_at
 * while parked) passes, maintenance retries it with backoff or fails it.
 *
 * The rule for a callback that comes before its job parked: it acts at
 * once, on the job still running under the lease the callback was
 * registered with, exactly as on a parked job.  The worker's lease is then
 * stale: its awa_wait_external (or awa_complete, awa_fail) finds the job
 * resolved and changes nothing.  So a callback is never lost, whichever
 * commits first.  A callback for an attempt that ended otherwise (failed,
 * rescued, snoozed, cancelled, or claimed again) finds no job.
 */

/* Complete the job if it is running under that lease, with a result. */
bool
awa_job_complete_result(Datum job_id, Datum run_lease, Datum result)
{
	static Transition t = {AWA_STMT("awa_complete: update", SPI_OK_UPDATE,
		"UPDATE awa.jobs SET state = 'completed', finalized_at = now(), result = $3"
		" WHERE id = $1 AND run_lease = $2 AND " AWA_RUNNING_SQL,
	3, INT8OID, INT8OID, JSONBOID), true};
	Datum		values[3] = {job_id, run_lease, result};

	return run_transition(&t, values, NULL, 0) == 1;
}

/*
 * awa_job_complete_many with results[i] (a jsonb[] as long as ids, NULL
 * elements: no result) stored on job i; how many were completed.
 */
int64
awa_job_complete_many_results(Datum ids, Datum leases, Datum results)
{
	static Transition t = {AWA_STMT("awa_complete_many: update", SPI_OK_UPDATE,
		"WITH l AS (" AWA_LOCK_BY_ID_LEASE_SQL ")"
		" UPDATE awa.jobs j SET state = 'completed', finalized_at = now(), result = u.result"
		" FROM l, unnest($1, $2, $3) AS u(id, lease, result)"
		" WHERE j.id = l.id AND l.state = 'running'"
		" AND u.id = j.id AND u.lease = j.run_lease",
	3, INT8ARRAYOID, INT8ARRAYOID, JSONBARRAYOID), true};
	Datum		values[3] = {ids, leases, results};

	return (int64) run_transition(&t, values, NULL, 0);
}

/*
 * Park the job if it is running under that lease with a callback registered
 * under it (callback_lease is set only with callback_key): waiting_external
 * until now() + its callback_timeout.  Whether it was parked.
 */
bool
awa_job_wait_external(Datum job_id, Datum run_lease)
{
	static Transition t = {AWA_STMT("awa_wait_external: update", SPI_OK_UPDATE,
		"UPDATE awa.jobs SET state = 'waiting_external', heartbeat_at = now(),"
		" deadline_at = now() + callback_timeout"
		" WHERE id = $1 AND run_lease = $2 AND " AWA_RUNNING_SQL
		" AND callback_lease = run_lease",
	2, INT8OID, INT8OID), true};
	Datum		values[2] = {job_id, run_lease};

	return run_transition(&t, values, NULL, 0) == 1;
}

/*
 * The job waiting for callback $1, locked (o: its id and state as of the
 * lock), and the condition that it still waits for it: parked, or running
 * under the lease the callback was registered with.  Every statement on a
 * callback uses them.
 */
#define CALLBACK_JOB_SQL \
	" FROM (SELECT id, state FROM awa.jobs WHERE " AWA_CALLBACK_KEY_SQL("$1") \
	"   FOR NO KEY UPDATE) o" \
	" WHERE j.id = o.id AND " AWA_CALLBACK_WAITS_SQL("o.state", "j")

/* What every callback statement returns (see apply_effects). */
#define CALLBACK_RETURNING \
	" RETURNING j.id, j.queue, j.state, o.state = 'running' AS awa_left_running"

/*
 * Complete the job waiting for callback callback_id, payload (or NULL) as
 * its result.  Whether one was waiting.
 */
bool
awa_job_complete_external(Datum callback_id, Datum payload, bool payload_isnull)
{
	static Transition t = {AWA_STMT("awa_complete_external: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs j SET state = 'completed', finalized_at = now(), result = $2,"
		" heartbeat_at = NULL, deadline_at = NULL"
		CALLBACK_JOB_SQL CALLBACK_RETURNING,
	2, UUIDOID, JSONBOID), false};
	Datum		values[2] = {callback_id, payload};
	char		nulls[2] = {' ', payload_isnull ? 'n' : ' '};

	return run_transition(&t, values, nulls, 0) == 1;
}

/*
 * Fail the job waiting for callback callback_id for good: error (cut as by
 * awa_fail; error_bytes its original length, or -1) appended to its
 * errors, payload (or NULL) its callback_payload.  Whether one was waiting.
 */
bool
awa_job_fail_external(Datum callback_id, text *error, int64 error_bytes,
					  Datum payload, bool payload_isnull)
{
	static Transition t = {AWA_STMT("awa_fail_external: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs j SET"
		" errors = " AWA_ERRORS_SQL("j.errors", "$5", "$6", "$7",
									"jsonb_build_object('attempt', j.attempt, 'error', $2, 'at', now())"
									" || " AWA_ERROR_MARKS_SQL("$3")) ","
		" state = 'failed', finalized_at = now(), callback_payload = $4,"
		" heartbeat_at = NULL, deadline_at = NULL"
		CALLBACK_JOB_SQL CALLBACK_RETURNING,
	7, UUIDOID, TEXTOID, INT8OID, JSONBOID, INT4OID, INT4OID, INT4OID), false};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = callback_id;
	values[1] = PointerGetDatum(error);
	values[2] = Int64GetDatum(error_bytes);
	if (error_bytes < 0)
		nulls[2] = 'n';
	values[3] = payload;
	if (payload_isnull)
		nulls[3] = 'n';
	awa_errors_bounds(&values[4]);
	return run_transition(&t, values, nulls, 0) == 1;
}

/*
 * Run the job waiting for callback callback_id again: retryable at now() +
 * retry_in (NULL: the default backoff), or failed when it has no attempts
 * left, with an entry in its errors; payload (or NULL) its
 * callback_payload.  Returns whether one was waiting; *state is its new
 * state.
 */
bool
awa_job_retry_external(Datum callback_id, Datum payload, bool payload_isnull,
					   Interval *retry_in, Datum *state)
{
	static Transition t = {AWA_STMT("awa_retry_external: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs j SET"
		" errors = " AWA_ERRORS_SQL("j.errors", "$4", "$5", "$6",
									"jsonb_build_object('attempt', j.attempt,"
									" 'error', 'retry asked for by the callback', 'at', now())") ","
		" state = CASE WHEN j.attempt >= j.max_attempts"
		"   THEN 'failed'::awa.job_state ELSE 'retryable' END,"
		" run_at = CASE WHEN j.attempt >= j.max_attempts THEN j.run_at"
		"   WHEN $3 IS NOT NULL THEN now() + $3"
		"   ELSE " AWA_BACKOFF_SQL("j.attempt") " END,"
		" finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,"
		" callback_payload = $2, heartbeat_at = NULL, deadline_at = NULL"
		CALLBACK_JOB_SQL CALLBACK_RETURNING
		", CASE WHEN j.state = 'retryable' THEN j.run_at <= now() END AS awa_due",
	6, UUIDOID, JSONBOID, INTERVALOID, INT4OID, INT4OID, INT4OID), false};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = callback_id;
	values[1] = payload;
	if (payload_isnull)
		nulls[1] = 'n';
	values[2] = PointerGetDatum(retry_in);
	if (retry_in == NULL)
		nulls[2] = 'n';
	awa_errors_bounds(&values[3]);
	if (run_transition(&t, values, nulls, 0) != 1)
		return false;
	*state = awa_stmt_value(0, "state", &isnull);
	return true;
}

/*
 * Parked jobs picked by PICK (a condition on id using $1) whose callback
 * timeout has passed (a job put in waiting_external by hand, without a
 * callback, is left alone): retryable after the default backoff, or failed when
 * out of attempts, with an error entry saying so ($2..$4 bound the history
 * as for awa_fail).  Locks in id order, skipping jobs locked by others (a
 * callback resolving the job: once it commits, the job no longer waits).
 */
#define CALLBACK_TIMEOUT_SQL(PICK) \
	"WITH r AS (SELECT id FROM awa.jobs" \
	"   WHERE state = 'waiting_external' AND deadline_at < now()" \
	"   AND callback_key IS NOT NULL AND " PICK \
	"   ORDER BY id LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) \
	"   FOR NO KEY UPDATE SKIP LOCKED)" \
	" UPDATE awa.jobs j SET" \
	" errors = " AWA_ERRORS_SQL("j.errors", "$2", "$3", "$4", \
								"jsonb_build_object('attempt', j.attempt, 'error', 'callback timed out', 'at', now())") "," \
	" state = CASE WHEN j.attempt >= j.max_attempts" \
	"   THEN 'failed'::awa.job_state ELSE 'retryable' END," \
	" run_at = CASE WHEN j.attempt >= j.max_attempts THEN j.run_at" \
	"   ELSE " AWA_BACKOFF_SQL("j.attempt") " END," \
	" finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END," \
	" heartbeat_at = NULL, deadline_at = NULL" \
	" FROM r WHERE j.id = r.id" \
	" RETURNING j.queue, CASE WHEN j.state = 'retryable' THEN j.run_at <= now() END AS awa_due"

static int64
callback_timeouts(Transition *t, Datum pick)
{
	Datum		values[4];

	values[0] = pick;
	awa_errors_bounds(&values[1]);
	return (int64) run_transition(t, values, NULL, 0);
}

/*
 * Time out up to AWA_MAINTAIN_BATCH parked jobs whose callback timeout has
 * passed, leaving the ids in skip (int8[]) alone; how many.  Maintenance.
 */
int64
awa_job_callback_timeouts(Datum skip)
{
	static Transition t = {AWA_STMT("awa: timing out callbacks", SPI_OK_UPDATE_RETURNING,
		CALLBACK_TIMEOUT_SQL("id <> ALL($1)"),
	4, INT8ARRAYOID, INT4OID, INT4OID, INT4OID), false};

	return callback_timeouts(&t, skip);
}

/* The same for the one job id (row-by-row fallback); 1 if it timed out. */
int64
awa_job_callback_timeout_one(int64 id)
{
	static Transition t = {AWA_STMT("awa: timing out a callback", SPI_OK_UPDATE_RETURNING,
		CALLBACK_TIMEOUT_SQL("id = $1"),
	4, INT8OID, INT4OID, INT4OID, INT4OID), false};

	return callback_timeouts(&t, Int64GetDatum(id));
}

/* The ids awa_job_callback_timeouts would take (skip as there). */
SPIPlanPtr
awa_job_callback_timeout_candidates_plan(void)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID};

	return awa_plan(&plan,
					"SELECT id FROM awa.jobs"
					" WHERE state = 'waiting_external' AND deadline_at < now()"
					" AND callback_key IS NOT NULL AND id <> ALL($1) ORDER BY id"
					" LIMIT " CppAsString2(AWA_MAINTAIN_BATCH),
					1, argtypes);
}
