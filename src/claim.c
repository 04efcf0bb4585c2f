/*-------------------------------------------------------------------------
 *
 * claim.c
 *		awa_claim: hand due jobs of a queue to a worker, optionally blocking
 *		until there are some.
 *
 * Order.  Jobs are taken by effective priority, then run_at, then id.  A
 * job's effective priority is max(1, priority - floor(age / I)) where age is
 * how long it has been due and I is awa.priority_aging_interval, so a
 * waiting job gains one level per interval and low priorities never starve.
 * That order cannot come from one index (it moves with the clock), but each
 * (level k, priority p) pair is a range of run_at in the index on
 * (queue, priority, run_at, id): level 1 holds priority p jobs due for at
 * least (p-1)*I, level k > 1 those due for [(p-k)*I, (p-k+1)*I).  A claim
 * walks levels 1..4; for each it merges the ranges of its priorities in
 * (run_at, id) order, locks each candidate as it takes it (FOR UPDATE SKIP
 * LOCKED, so only what it hands out), and stops as soon as the batch is
 * full (see awa_job_claim_sql in job.c).  Typical backlogs need one or two statements.
 *
 * Concurrency limits.  A queue with awa.queue_meta.max_running set (0.2.0,
 * awa_set_queue_limit) is left out of those statements.  When they claim
 * nothing, a claimer of a limited queue takes a transaction-level advisory
 * lock on the queue, counts its running jobs with a fresh snapshot, and
 * claims at most the difference; the lock is held until its transaction
 * commits, so the next claimer counts those jobs too.  A claimer that gets
 * nothing lets go of the lock at once.  Counting needs a fresh snapshot per
 * statement, so claims from a limited queue need READ COMMITTED.  Queues
 * without a limit pay one primary-key lookup, and only on an empty claim.
 * A claimer waiting on a queue at its limit says so in its wait slot
 * (wake.c) and counts once more before it sleeps; a transaction that takes
 * a job out of running through awa's functions wakes such claimers at
 * commit.  Changes made behind awa's back are caught by a recheck every
 * AWA_LIMIT_POLL_MS.
 *
 * Rate limits.  A queue with a rate (awa_set_queue_rate, ratelimit.c) is
 * left out of those statements too.  Its claim reserves slots under the
 * rate in shared memory first, which also fixes the claim's time (the
 * jobs' attempted_at), claims at most what was granted, and gives back
 * what it did not use.  When the rate grants nothing, the attempt learns
 * when the next slot opens, and a blocking claim sleeps until then (as it
 * would until a scheduled job comes due: one waiter per queue keeps the
 * time).  Unlimited queues pay nothing more: the test of the queue's
 * settings in the claim statement names the rate as well.
 *
 * Per-key limits.  A job with a concurrency key is taken only if
 * keylimit.c admits it: every claim statement asks once it has locked the
 * row.  An attempt that passed a key over (at its limit, or another
 * claimer taking jobs of it) reports at_limit, like a queue at its limit.
 *
 * Leases.  A claim stores its lease on the job (0.3.0); awa_heartbeat and
 * awa_progress push deadline_at to now + lease, so a job lives as long as
 * its worker renews it.  A job's optional hard timeout caps deadline_at at
 * attempted_at + timeout whatever the heartbeats say.
 *
 * Older schemas.  Between installing a new awa.so and ALTER EXTENSION awa
 * UPDATE, the library runs against the previous version's tables; the
 * claim asks schema.c what they have (max_running: 0.2.0; lease and
 * timeout: 0.3.0) and builds its statements for that.  They are rebuilt
 * when the answer changes.
 *
 * Blocking.  With wait > 0 and nothing claimable, the backend publishes
 * itself in shared memory (wake.c) and sleeps on its latch until a
 * transaction that made jobs of this queue claimable commits, a scheduled
 * job of the queue comes due, or the wait ends.  It is one statement: it
 * works through a transaction-pooling proxy and needs no LISTEN.  Each
 * attempt of a blocking claim runs in a subtransaction that is rolled back
 * when it claims nothing, so a sleeping claimer holds no row lock; an
 * attempt that had to take a transaction ID returns no rows instead of
 * sleeping.  The wait ends a little before statement_timeout would cancel
 * it, and needs READ COMMITTED (a transaction snapshot would never show the
 * jobs it waits for).
 *
 * The horizon.  A function that waits inside a statement keeps the
 * statement's snapshot registered for the whole wait, so a blocked
 * awa_claim holds back VACUUM of every table.  CALL awa_claim_wait, a
 * procedure, waits between transactions instead: each attempt is
 * awa_claim(wait => 0), through SQL (a procedure that commits cannot be
 * SECURITY DEFINER, awa_claim is); an empty one is committed, which drops
 * the portal's snapshots, before the backend sleeps.  Inside a transaction
 * block it cannot commit and runs awa_claim with the whole wait instead.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/hash.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/libpq-be.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/wait_event.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "floor.h"
#include "ratelimit.h"
#include "keylimit.h"
#include "engine_claim.h"

PG_FUNCTION_INFO_V1(awa_claim);
PG_FUNCTION_INFO_V1(awa_claim_wait);
PG_FUNCTION_INFO_V1(awa_claim_queues);
PG_FUNCTION_INFO_V1(awa_claim_wait_queues);

#define AWA_MAX_BATCH			1000
#define AWA_POLL_INTERVAL_MS	100 /* wait without shared memory */
#define AWA_LIMIT_POLL_MS		1000	/* recheck of a queue at its limit */
#define AWA_TIMEOUT_MARGIN_MS	100 /* a wait ends this long before statement_timeout */
#define NLEVELS					AWA_MAX_PRIORITY

/* field4 of the advisory lock tag of a queue's limit (users' locks: 1, 2) */
#define AWA_LIMIT_LOCK_CLASS	0x6177

/* The two kinds of claim statements. */
typedef enum ClaimPlans
{
	PLANS_ANY_QUEUE,			/* every unpaused queue (limit checked apart) */
	PLANS_UNLIMITED,			/* also skip queues with max_running set */
	NPLANS
} ClaimPlans;

/* A claimed row and where it sorts. */
typedef AwaClaimedRow ClaimedRow;	/* engine_claim.h */

static SPIPlanPtr level_plans[NPLANS][NLEVELS + 1];	/* [][0]: aging off */

/*
 * What a claim serves: one queue (queue), or several (queue NULL; names
 * sorted and distinct, nqueues of them; 0: every queue).
 */
typedef struct ClaimTarget
{
	text	   *queue;
	int			nqueues;
	char	  **names;
} ClaimTarget;

static int	try_claim_many(const ClaimTarget *target, TimestampTz at, Interval *lease,
						   text *worker, int batch, ClaimedRow *rows, bool *at_limit);
static long ms_until_next_due_many(const ClaimTarget *target, TimestampTz now);
static void free_many_plans(void);

/*
 * What one attempt of awa_claim_wait learned besides the jobs: set by
 * awa_claim (wait => 0) while awa_claim_wait's attempt runs it, read by
 * awa_claim_wait between its transactions.
 */
typedef struct ClaimProbe
{
	bool		done;			/* awa_claim ran its attempt */
	bool		at_limit;		/* the queue is at its concurrency limit */
	long		due_ms;			/* next scheduled job due in (ms), -1: none */
} ClaimProbe;

static ClaimProbe *claim_probe = NULL;


static const Oid claim_argtypes[] = {TEXTOID, TIMESTAMPTZOID, INTERVALOID,
	INT4OID, INTERVALOID, TEXTOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};

int			awa_priority_aging_interval = 60;

/* Define the settings of claiming (from _PG_init). */
void
awa_claim_init(void)
{
	DefineCustomIntVariable("awa.priority_aging_interval",
							"A waiting job gains one priority level per this interval.",
							"0 turns aging off.",
							&awa_priority_aging_interval,
							60,
							0, 86400 * 365,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * Run a claim statement with sorts and bitmap scans disabled.  Its plan is
 * generic (built once, without the parameter values), and when the due
 * range of a priority looks small in the statistics the planner may read
 * it with a bitmap scan and sort it, which is a full sort of that range on
 * every claim once the backlog grows.  An index scan in (run_at, id) order
 * reads only as far as the batch needs, whatever the backlog; the plan is
 * (re)built under these settings, which end with the statement.
 */
static int
execute_claim_plan(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	int			nestlevel = NewGUCNestLevel();
	int			ret;

	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_plan(plan, values, nulls, false, 0);
	AtEOXact_GUC(true, nestlevel);
	return ret;
}

/* qsort order of claimed rows: level, run_at, id. */
static int
claimed_cmp(const void *a, const void *b)
{
	const ClaimedRow *x = a;
	const ClaimedRow *y = b;

	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	if (x->run_at != y->run_at)
		return x->run_at < y->run_at ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

/*
 * Claim up to batch jobs with the statements of one kind, level by level,
 * appending them to rows.  Returns the number claimed.  Caller is in SPI.
 * Each priority's range starts at its claim floor, which the claim then
 * raises (floor.c).
 */
static int
claim_levels(ClaimPlans kind, text *queue, TimestampTz at, Interval *lease,
			 text *worker, int batch, ClaimedRow *rows)
{
	Interval	aging;
	int			nrows = 0;
	int			first = awa_priority_aging_interval > 0 ? 1 : 0;
	int			last = awa_priority_aging_interval > 0 ? NLEVELS : 0;
	int			level;
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', worker ? ' ' : 'n', ' ', ' '};
	AwaFloorScan floors;

	memset(&aging, 0, sizeof(aging));
	aging.time = (int64) awa_priority_aging_interval * USECS_PER_SEC;

	values[0] = PointerGetDatum(queue);
	values[1] = TimestampTzGetDatum(at);
	values[2] = IntervalPGetDatum(&aging);
	values[4] = IntervalPGetDatum(lease);
	values[5] = worker ? PointerGetDatum(worker) : (Datum) 0;
	awa_floor_begin(&floors, text_to_cstring(queue), false);
	values[6] = awa_floor_run_ats(&floors);
	values[7] = awa_floor_ids(&floors);

	for (level = first; level <= last && nrows < batch; level++)
	{
		SPIPlanPtr	plan;
		int			ret;
		uint64		i;
		int			idcol;
		int			runcol;
		int			priocol;

		if (level_plans[kind][level] == NULL)
		{
			char	   *sql = awa_job_claim_sql(level, kind == PLANS_UNLIMITED,
											awa_schema_has(AWA_SCHEMA_LEASES),
											awa_schema_has(AWA_SCHEMA_KEYS));

			awa_plan(&level_plans[kind][level], sql, lengthof(claim_argtypes),
					 claim_argtypes);
			pfree(sql);
		}
		plan = level_plans[kind][level];
		values[3] = Int32GetDatum(batch - nrows);
		ret = execute_claim_plan(plan, values, nulls);
		if (ret != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "awa_claim: claim failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == 0)
			continue;
		idcol = SPI_fnumber(SPI_tuptable->tupdesc, "id");
		runcol = SPI_fnumber(SPI_tuptable->tupdesc, "run_at");
		priocol = SPI_fnumber(SPI_tuptable->tupdesc, "priority");
		for (i = 0; i < SPI_processed && nrows < batch; i++)
		{
			ClaimedRow *r = &rows[nrows++];
			bool		isnull;

			r->tuple = SPI_tuptable->vals[i];
			r->desc = SPI_tuptable->tupdesc;
			r->level = level;
			r->id = DatumGetInt64(SPI_getbinval(r->tuple, r->desc, idcol, &isnull));
			r->run_at = DatumGetTimestampTz(SPI_getbinval(r->tuple, r->desc, runcol, &isnull));
			awa_floor_taken(&floors,
							DatumGetInt16(SPI_getbinval(r->tuple, r->desc, priocol, &isnull)),
							r->run_at);
		}
	}
	awa_floor_end(&floors, PointerGetDatum(queue));
	return nrows;
}

/*
 * The schema features the claim statements are built for; they are
 * rebuilt when that changes (e.g. after ALTER EXTENSION awa UPDATE in
 * another session).
 */
static int
claim_schema(void)
{
	static int	plans_built_for = -1;
	int			features = awa_schema_features();

	if (plans_built_for != features)
	{
		int			k;
		int			level;

		for (k = 0; k < NPLANS; k++)
			for (level = 0; level <= NLEVELS; level++)
				if (level_plans[k][level] != NULL)
				{
					SPI_freeplan(level_plans[k][level]);
					level_plans[k][level] = NULL;
				}
		free_many_plans();
		plans_built_for = features;
	}
	return features;
}

/*
 * How many more jobs of the queue may run now: max_running minus the jobs
 * running, or -1 if the queue has no limit (or is paused, or unknown).
 * With count false, only whether it has a limit (0 or -1).  Caller is in
 * SPI; each query takes a fresh snapshot (READ COMMITTED).
 */
static int64
queue_allowance(text *queue, bool count)
{
	static AwaStmt stmts[2] = {
		AWA_STMT("awa_claim: reading the queue's limit", SPI_OK_SELECT,
				 "SELECT 0::bigint AS n FROM awa.queue_meta m"
				 " WHERE m.queue = $1 AND NOT m.paused AND m.max_running IS NOT NULL",
				 1, TEXTOID),
		AWA_STMT("awa_claim: reading the queue's limit", SPI_OK_SELECT,
				 "SELECT m.max_running - (SELECT count(*) FROM awa.jobs j"
				 " WHERE j.state = 'running' AND j.queue = $1) AS n"
				 " FROM awa.queue_meta m"
				 " WHERE m.queue = $1 AND NOT m.paused AND m.max_running IS NOT NULL",
				 1, TEXTOID)
	};
	Datum		values[1] = {PointerGetDatum(queue)};

	if (awa_stmt_run(&stmts[count ? 1 : 0], values, NULL, 1) == 0)
		return -1;
	return Max(awa_stmt_int8(0, "n"), 0);
}

/* The advisory lock a claimer holds while it counts a limited queue. */
static void
limit_locktag(LOCKTAG *tag, text *queue)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 DatumGetUInt32(hash_any((unsigned char *) VARDATA_ANY(queue),
												 VARSIZE_ANY_EXHDR(queue))),
						 0, AWA_LIMIT_LOCK_CLASS);
}

/*
 * Whether the queue is left to the counted claim (not paused, with a
 * concurrency limit or a rate): *limited tells a concurrency limit, *rated
 * a rate, read into *rate.  Caller is in SPI; a fresh snapshot.
 */
static bool
queue_counted(text *queue, bool *limited, bool *rated, AwaRate *rate)
{
	static AwaStmt with_rates = AWA_STMT("awa_claim: reading the queue's limits", SPI_OK_SELECT,
		"SELECT m.max_running, m.rate_max_claims, m.rate_period, m.rate_set_at"
		" FROM awa.queue_meta m WHERE m.queue = $1 AND NOT m.paused"
		" AND (m.max_running IS NOT NULL OR m.rate_max_claims IS NOT NULL)",
		1, TEXTOID);
	Datum		values[1] = {PointerGetDatum(queue)};
	bool		isnull;

	*limited = *rated = false;
	if (!awa_schema_has(AWA_SCHEMA_QUEUE_RATES))
		return (*limited = queue_allowance(queue, false) >= 0);
	if (awa_stmt_run(&with_rates, values, NULL, 1) == 0)
		return false;
	(void) awa_stmt_value(0, "max_running", &isnull);
	*limited = !isnull;
	*rated = awa_rate_read(0, rate);
	return true;
}

/*
 * One attempt: claim up to batch jobs, appending them to rows.  Returns the
 * number claimed; *at_limit tells that the queue has a limit and as many
 * jobs running.  A queue with a rate takes at most what its rate grants
 * (ratelimit.c), at the time the grant gives; when the rate grants nothing
 * the attempt records when its next slot opens.  Caller is connected to
 * SPI.
 */
static int
try_claim(text *queue, TimestampTz at, Interval *lease, text *worker,
		  int batch, ClaimedRow *rows, bool *at_limit)
{
	LOCKTAG		tag;
	int64		allowance = batch;
	int			nrows;
	bool		limits = (claim_schema() & AWA_SCHEMA_QUEUE_LIMITS) != 0;
	bool		limited;
	bool		rated;
	AwaRateAsk	ask;

	*at_limit = false;
	nrows = claim_levels(limits ? PLANS_UNLIMITED : PLANS_ANY_QUEUE,
						 queue, at, lease, worker, batch, rows);
	if (nrows > 0 || !limits || !queue_counted(queue, &limited, &rated, &ask.rate))
		return nrows;

	if (limited)
	{
		/* A limited queue: count and claim under the queue's lock. */
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("claiming from queue \"%s\", which has a concurrency limit, needs READ COMMITTED",
							text_to_cstring(queue)),
					 errdetail("The count of running jobs must see claims committed by other workers."),
					 errhint("Call awa_claim outside REPEATABLE READ and SERIALIZABLE transactions.")));
		limit_locktag(&tag, queue);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		allowance = queue_allowance(queue, true);
		*at_limit = (allowance == 0);
	}
	if (rated && allowance > 0)
	{
		/* A rated queue: reserve claims under the rate, give back the rest. */
		ask.queue = text_to_cstring(queue);
		ask.want = (int) Min(allowance, batch);
		at = awa_rate_reserve(&ask, 1, at);
		allowance = ask.granted;
	}
	if (allowance > 0)
		nrows = claim_levels(PLANS_ANY_QUEUE, queue, at, lease, worker,
							 (int) Min(allowance, batch), rows);
	if (rated && allowance > 0)
		awa_rate_release(ask.queue, at, ask.granted - nrows);
	/* Claimed nothing: nothing for the next claimer to count; let go. */
	if (limited && nrows == 0)
		LockRelease(&tag, ExclusiveLock, false);
	return nrows;
}

/*
 * How long until the next scheduled or retryable job of the queue comes
 * due, in milliseconds (-1 if there is none).  Caller is in SPI.
 */
static long
ms_until_next_due(text *queue, TimestampTz now)
{
	static AwaStmt stmt = AWA_STMT("awa_claim: looking for the next due job", SPI_OK_SELECT,
								   "SELECT min(run_at) AS next FROM awa.jobs"
								   " WHERE queue = $1 AND state IN " AWA_STATES_WAITING_SQL
								   " AND state <> 'available' AND run_at > $2",
								   2, TEXTOID, TIMESTAMPTZOID);
	Datum		values[2] = {PointerGetDatum(queue), TimestampTzGetDatum(now)};
	bool		isnull;
	TimestampTz next;

	if (awa_stmt_run(&stmt, values, NULL, 1) != 1)
		return -1;
	next = DatumGetTimestampTz(awa_stmt_value(0, "next", &isnull));
	if (isnull)
		return -1;
	return (long) ((next - now) / 1000) + 1;
}

/* One attempt on a claim's queue or queues (see try_claim). */
static int
try_claim_target(const ClaimTarget *target, TimestampTz at, Interval *lease,
				 text *worker, int batch, ClaimedRow *rows, bool *at_limit)
{
	int			nrows;

	if (awa_engine_ring())		/* the ring (engine_claim.c) */
		return awa_engine_try_claim(target->queue, target->names, target->nqueues, at, lease,
									worker, batch, rows, at_limit);
	awa_rate_attempt();			/* rates: no full window found yet */
	/* per-key limits (keylimit.c): a key passed over counts as a limit */
	awa_keylimit_begin(at);
	if (target->queue != NULL)
		nrows = try_claim(target->queue, at, lease, worker, batch, rows, at_limit);
	else
		nrows = try_claim_many(target, at, lease, worker, batch, rows, at_limit);
	if (awa_keylimit_end())
		*at_limit = true;
	return nrows;
}

/* ms_until_next_due for a claim's queue or queues. */
static long
next_due_ms(const ClaimTarget *target, TimestampTz now)
{
	if (target->queue != NULL)
		return ms_until_next_due(target->queue, now);
	return ms_until_next_due_many(target, now);
}

/*
 * When a claimer that claimed nothing must look again without a commit to
 * wake it, in milliseconds (-1: never): the next scheduled job of its
 * queues comes due, or the next slot opens on a queue whose rate the last
 * attempt found used up (ratelimit.c).  The wait code treats both alike:
 * one waiter of a queue keeps the time and wakes then.
 */
static long
wake_due_ms(const ClaimTarget *target, TimestampTz now)
{
	if (awa_engine_ring())
		return awa_engine_due_ms(now);
	return awa_rate_earlier(next_due_ms(target, now), awa_rate_wait_ms(now));
}

/*
 * One attempt of a blocking claim, in a subtransaction that is kept only if
 * it claimed something.  An attempt that hands out nothing may still have
 * locked rows: FOR UPDATE in READ COMMITTED locks the newest version of a
 * row that another worker claimed meanwhile before rechecking it (and then
 * skips it).  Rolling the attempt back releases those locks, so a claimer
 * that goes back to sleep holds no row lock that a completing worker would
 * have to wait for.  An error in the attempt (a lock_timeout, a cancel, a
 * deadlock) rolls the subtransaction back before it goes on up: an internal
 * subtransaction left open when the error reaches the top level would
 * leave a statement outside a transaction block in an aborted transaction
 * (the next statement fails with 25P02, a ROLLBACK ends the session).
 */
static int
try_claim_isolated(const ClaimTarget *target, TimestampTz at, Interval *lease,
				   text *worker, int batch, ClaimedRow *rows, bool *at_limit)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int nrows = 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		nrows = try_claim_target(target, at, lease, worker, batch, rows, at_limit);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	if (nrows > 0)
		ReleaseCurrentSubTransaction();
	else
	{
		/* it gives back no job: its rollback is no reason to wake anyone */
		awa_claim_attempt_empty();
		RollbackAndReleaseCurrentSubTransaction();
	}
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	return nrows;
}

/*
 * When a blocking claim must give up: after wait_us, and in any case a
 * little before statement_timeout would cancel the statement (so an idle
 * worker's claim returns no rows instead of failing with 57014).
 */
static TimestampTz
claim_deadline(TimestampTz start, int64 wait_us)
{
	TimestampTz give_up;

	if (pg_add_s64_overflow(start, wait_us, &give_up))
		give_up = PG_INT64_MAX;	/* waits until interrupted */
	if (StatementTimeout > 0)
	{
		int64		timeout_us = (int64) StatementTimeout * 1000;
		int64		margin = Min(timeout_us / 10, AWA_TIMEOUT_MARGIN_MS * 1000);
		TimestampTz cancel_at = GetCurrentStatementStartTimestamp() + timeout_us - margin;

		give_up = Min(give_up, cancel_at);
	}
	return give_up;
}

/*
 * How long a waiter that claimed nothing sleeps at most: until give_up,
 * a poll interval when it is not registered (no shared memory) or its
 * queue is at its limit, and until the queue's next scheduled job
 * (due_ms, -1: none) if it keeps that time for its queue (wake.c).
 */
static long
sleep_budget(TimestampTz now, TimestampTz give_up, bool registered,
			 bool at_limit, long due_ms)
{
	long		timeout_ms = (long) Min((give_up - now) / 1000 + 1, 3600 * 1000);

	if (!registered)
		timeout_ms = Min(timeout_ms, AWA_POLL_INTERVAL_MS);
	if (at_limit)
		timeout_ms = Min(timeout_ms, AWA_LIMIT_POLL_MS);
	if (registered)
		due_ms = awa_wait_before_sleep(due_ms);
	if (due_ms >= 0)
		timeout_ms = Min(timeout_ms, due_ms);
	return timeout_ms;
}

/*
 * Claim, and while nothing is claimable and the wait is not over, sleep on
 * the latch and try again.  Returns the number of rows claimed.  Each
 * attempt takes the clock's time as the claim's time: a job is due once its
 * run_at has passed, whenever the statement or transaction began (a
 * procedure that commits between claims, or a long transaction, sees what
 * came due meanwhile); attempted_at and heartbeat_at get that time too.
 * With wait 0 under awa_claim_wait (claim_probe set), the single attempt
 * reports whether the queue is at its limit and when its next scheduled
 * job comes due.
 */
static int
claim_loop(const ClaimTarget *target, text *worker, int batch, Interval *lease,
		   int64 wait_us, bool registered, ClaimedRow *rows)
{
	TimestampTz at = GetCurrentTimestamp();
	TimestampTz give_up = claim_deadline(GetCurrentTimestamp(), wait_us);
	bool		had_xid = TransactionIdIsValid(GetTopTransactionIdIfAny());
	int			nrows;
	bool		limit_published = false;

	for (;;)
	{
		TimestampTz now;
		bool		at_limit;

		ResetLatch(MyLatch);
		if (registered)
			awa_wait_attempt();
		if (wait_us == 0)
			nrows = try_claim_target(target, at, lease, worker, batch, rows, &at_limit);
		else
			nrows = try_claim_isolated(target, at, lease, worker, batch, rows, &at_limit);
		if (wait_us == 0 && claim_probe != NULL)
		{
			claim_probe->at_limit = at_limit;
			claim_probe->due_ms = nrows > 0 ? -1 :
				wake_due_ms(target, GetCurrentTimestamp());
			claim_probe->done = true;
		}
		if (nrows > 0 || wait_us == 0)
			break;

		/*
		 * An attempt that locked a row and then skipped it (another worker
		 * claimed it first) gave the transaction an ID.  Rather than sleep
		 * holding one, return no rows: the caller asks again.
		 */
		if (!had_xid && TransactionIdIsValid(GetTopTransactionIdIfAny()))
			break;
		if (registered && at_limit != limit_published)
		{
			/* publish first, then count again before sleeping */
			awa_wait_at_limit(at_limit);
			limit_published = at_limit;
			if (at_limit)
			{
				at = GetCurrentTimestamp();
				continue;
			}
		}
		now = GetCurrentTimestamp();
		if (now >= give_up)
			break;
		awa_wait_sleep(sleep_budget(now, give_up, registered, at_limit,
								 wake_due_ms(target, now)),
					registered);
		at = GetCurrentTimestamp();
	}
	return nrows;
}

/*
 * Check awa_claim's arguments (the first five of fcinfo, in its order and
 * with its errors); fn names the routine in the errors that say which.
 * With queue NULL the first argument is left to the caller (queues).
 * Returns wait in microseconds.
 */
static int64
claim_args(FunctionCallInfo fcinfo, const char *fn, text **queue,
		   text **worker, int32 *batch, Interval **lease)
{
	Interval   *wait;
	int64		wait_us;

	awa_check_writable(fn);

	if (queue != NULL)
		awa_check_not_null(fcinfo, 0, "queue");
	awa_check_not_null(fcinfo, 2, "batch");
	awa_check_not_null(fcinfo, 3, "lease");
	awa_check_not_null(fcinfo, 4, "wait");
	if (queue != NULL)
		*queue = PG_GETARG_TEXT_PP(0);
	*worker = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	*batch = PG_GETARG_INT32(2);
	*lease = PG_GETARG_INTERVAL_P(3);
	wait = PG_GETARG_INTERVAL_P(4);

	if (queue != NULL)
		awa_check_name(*queue, "queue");
	if (*batch < 1 || *batch > AWA_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch must be between 1 and %d, got %d", AWA_MAX_BATCH, *batch)));
	(void) awa_check_delay(*lease, "lease", true);
	wait_us = awa_check_delay(wait, "wait", false);
	if (wait_us > 0 && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a blocking %s needs READ COMMITTED", fn),
				 errdetail("In REPEATABLE READ and SERIALIZABLE the transaction's snapshot never shows jobs committed during the wait."),
				 errhint("Call %s with wait => '0' in this transaction, or outside REPEATABLE READ and SERIALIZABLE transactions.", fn)));
	return wait_us;
}

/*
 * Register a blocking claim's wait (wake.c) for its queue or queues.
 */
static bool
wait_register(const ClaimTarget *target)
{
	if (awa_engine_ring())		/* the ring's lanes (engine_claim.c) */
		return awa_engine_wait_register(target->queue, target->names, target->nqueues);
	if (target->queue != NULL)
	{
		const char *name = text_to_cstring(target->queue);

		return awa_wait_register(name);
	}
	return awa_wait_register_many((const char *const *) target->names,
								  target->nqueues);
}

/*
 * Run a claim of target with checked arguments and return its rows as
 * awa_claim's result set.
 */
static Datum
claim_rows(FunctionCallInfo fcinfo, const ClaimTarget *target, text *worker,
		   int32 batch, Interval *lease, int64 wait_us)
{
	ClaimedRow *rows;
	volatile int nrows = 0;
	volatile bool registered = false;
	int			i;

	rows = palloc(sizeof(ClaimedRow) * batch);

	SPI_connect();
	if (target->queue != NULL)
		awa_claim_begins(text_to_cstring(target->queue));
	if (wait_us > 0)
		registered = wait_register(target);
	PG_TRY();
	{
		nrows = claim_loop(target, worker, batch, lease, wait_us, registered, rows);
		awa_claim_ends(nrows, nrows == batch);
	}
	PG_FINALLY();
	{
		if (registered)
			awa_wait_unregister();
	}
	PG_END_TRY();

	qsort(rows, nrows, sizeof(ClaimedRow), claimed_cmp);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (i = 0; i < nrows; i++)
		awa_put_job(fcinfo, rows[i].tuple, rows[i].desc);
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa_claim(queue, worker, batch, lease, wait) RETURNS SETOF awa.jobs
 *
 * Claim up to batch due jobs: each becomes running with attempt + 1, a new
 * run_lease, attempted_at = heartbeat_at = the claim's time and
 * deadline_at = that time + lease.  With wait > 0, block until at least one
 * job could be claimed or the wait ends.
 */
Datum
awa_claim(PG_FUNCTION_ARGS)
{
	ClaimTarget target = {0};
	text	   *worker;
	int32		batch;
	Interval   *lease;
	int64		wait_us;

	wait_us = claim_args(fcinfo, "awa_claim", &target.queue, &worker, &batch, &lease);
	return claim_rows(fcinfo, &target, worker, batch, lease, wait_us);
}

/*
 * Run awa_claim(queue or queues, worker, batch, lease, wait) through SPI,
 * as the caller, and return its rows as one awa.jobs[] (NULL if none),
 * copied to the memory of the caller of SPI.  With probe set, awa_claim
 * (wait 0) fills it in.  Going through SQL keeps awa_claim's SECURITY
 * DEFINER: a procedure that commits cannot be one.
 */
static Datum
claim_through_spi(const char *sql, Oid queue_type, Datum *values,
				  const char *nulls, ClaimProbe *probe, bool *isnull)
{
	Oid			argtypes[] = {queue_type, TEXTOID, INT4OID, INTERVALOID, INTERVALOID};
	Datum		jobs;

	if (probe != NULL)
		memset(probe, 0, sizeof(*probe));
	claim_probe = probe;
	PG_TRY();
	{
		if (SPI_execute_with_args(sql, 5, argtypes, values, nulls,
								  false, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "awa_claim_wait: the claim failed");
	}
	PG_FINALLY();
	{
		claim_probe = NULL;
	}
	PG_END_TRY();
	if (probe != NULL && !probe->done)
		elog(ERROR, "awa_claim_wait: the claim made no attempt");
	jobs = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	return *isnull ? (Datum) 0 : SPI_datumTransfer(jobs, false, -1);
}

/*
 * awa_claim_wait's loop in a non-atomic context: attempts of awa_claim
 * (wait 0) until one claims jobs (returned, still uncommitted) or the wait
 * ends (NULL); an empty attempt's transaction is committed before the
 * sleep.  Caller is connected to SPI with SPI_OPT_NONATOMIC.
 */
static pg_noinline Datum
wait_committing(const char *sql, Oid queue_type, Datum *values, const char *nulls,
				const ClaimTarget *target, int64 wait_us, bool *jobs_null)
{
	volatile bool registered = wait_register(target);
	Datum		jobs = (Datum) 0;

	*jobs_null = true;
	PG_TRY();
	{
		TimestampTz give_up = claim_deadline(GetCurrentTimestamp(), wait_us);
		bool		limit_published = false;

		for (;;)
		{
			ClaimProbe	probe;
			TimestampTz now;

			ResetLatch(MyLatch);
			if (registered)
				awa_wait_attempt();
			jobs = claim_through_spi(sql, queue_type, values, nulls, &probe, jobs_null);
			if (!*jobs_null)
				break;			/* committed when the CALL ends */
			/* nothing: end the attempt's transaction, and its snapshot */
			SPI_commit();
			if (registered && probe.at_limit != limit_published)
			{
				/* publish first, then count again before sleeping */
				awa_wait_at_limit(probe.at_limit);
				limit_published = probe.at_limit;
				if (probe.at_limit)
					continue;
			}
			now = GetCurrentTimestamp();
			if (now >= give_up)
				break;
			awa_wait_sleep(sleep_budget(now, give_up, registered, probe.at_limit,
									 probe.due_ms),
						registered);
		}
	}
	PG_FINALLY();
	{
		if (registered)
			awa_wait_unregister();
	}
	PG_END_TRY();
	return jobs;
}

/*
 * The body of CALL awa_claim_wait for a queue (queue_type TEXTOID) or
 * queues (TEXTARRAYOID), arguments checked: see awa_claim_wait.
 * queue_value is the first argument as awa_claim is to get it ((Datum) 0:
 * NULL); it and target are in memory that outlives the transactions.
 */
static Datum
claim_wait(FunctionCallInfo fcinfo, Oid queue_type, Datum queue_value,
		   const ClaimTarget *target, text *worker, int32 batch,
		   Interval *lease, int64 wait_us)
{
	bool		nonatomic;
	char	   *sql;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	Interval   *no_wait;
	Datum		jobs = (Datum) 0;
	bool		jobs_null = true;
	TupleDesc	desc;
	Datum		result;
	bool		result_null;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE ||
		desc->natts != 1)
		elog(ERROR, "awa_claim_wait: wrong result type");
	desc = BlessTupleDesc(desc);
	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;

	/* the arguments, in memory that outlives the transactions */
	values[0] = queue_value;
	if (queue_value == (Datum) 0)
		nulls[0] = 'n';
	if (worker)
		worker = DatumGetTextPP(datumCopy(PointerGetDatum(worker), false, -1));
	lease = DatumGetIntervalP(datumCopy(IntervalPGetDatum(lease), false, sizeof(Interval)));
	no_wait = palloc0(sizeof(Interval));
	sql = psprintf("SELECT pg_catalog.array_agg(c) FROM %s.awa_claim($1, $2, $3, $4, $5) c",
				   quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid))));
	values[1] = worker ? PointerGetDatum(worker) : (Datum) 0;
	nulls[1] = worker ? ' ' : 'n';
	values[2] = Int32GetDatum(batch);
	values[3] = IntervalPGetDatum(lease);

	if (!nonatomic || wait_us == 0)
	{
		/* one awa_claim with the whole wait, in this statement */
		values[4] = PG_GETARG_DATUM(4);
		SPI_connect();
		jobs = claim_through_spi(sql, queue_type, values, nulls, NULL, &jobs_null);
		SPI_finish();
	}
	else
	{
		values[4] = IntervalPGetDatum(no_wait);
		SPI_connect_ext(SPI_OPT_NONATOMIC);
		jobs = wait_committing(sql, queue_type, values, nulls, target, wait_us, &jobs_null);
		SPI_finish();
	}

	result_null = jobs_null;
	result = HeapTupleGetDatum(heap_form_tuple(desc, &jobs, &result_null));
	PG_RETURN_DATUM(result);
}

/*
 * CALL awa_claim_wait(queue, worker, batch, lease, wait, INOUT jobs)
 *
 * awa_claim's blocking claim as a procedure that holds no snapshot while it
 * sleeps.  A function that waits inside a statement keeps the statement's
 * snapshot registered for the whole wait, so its backend_xmin holds back
 * VACUUM of every table; a procedure CALLed outside a transaction block
 * runs non-atomic and can commit, which drops the portal's snapshots.
 *
 * Each attempt is awa_claim(..., wait => 0) in its own transaction.  Jobs
 * claimed: returned in jobs, in awa_claim's order; their claim commits when
 * the CALL ends.  None: the attempt's transaction is committed and the
 * backend sleeps on its latch, published in its wait slot (wake.c) from
 * before the first attempt to the end, exactly as a blocking awa_claim:
 * a commit that makes jobs claimable either came before an attempt's
 * snapshot or finds the slot and sets the latch, which is reset only before
 * an attempt, so no wake-up is lost across the commit.  The queue's next
 * scheduled job and its concurrency limit shorten the sleep as they do for
 * awa_claim; the wait ends with jobs = NULL after wait, or a little before
 * statement_timeout.
 *
 * In an atomic context (inside a transaction block, or CALLed from a
 * function) it cannot commit: it runs one awa_claim with the whole wait in
 * the statement, which keeps the snapshot like awa_claim does.
 */
Datum
awa_claim_wait(PG_FUNCTION_ARGS)
{
	ClaimTarget target = {0};
	text	   *worker;
	int32		batch;
	Interval   *lease;
	int64		wait_us;

	wait_us = claim_args(fcinfo, "awa_claim_wait", &target.queue, &worker, &batch, &lease);
	target.queue = DatumGetTextPP(datumCopy(PointerGetDatum(target.queue), false, -1));
	return claim_wait(fcinfo, TEXTOID, PointerGetDatum(target.queue), &target,
					  worker, batch, lease, wait_us);
}

/* ---------------------------------------------------------------------
 * Multi-queue claim
 *
 * awa_claim(queues text[], ...) and CALL awa_claim_wait(queues text[], ...)
 * serve several queues (NULL: every queue that has waiting jobs) with one
 * claim, in the order of a single queue's claim across all of them: level
 * by level, each level in rounds.  A round reads the first candidates of
 * each (queue, priority) range straight from the claim index (read_round:
 * one index scan restarted per range, no statement), orders them in C, and
 * one statement locks and claims them in that order as it takes them
 * (awa_job_claim_tids_sql).  Setting up a statement's nodes for a few rows
 * of each of many ranges, and sorting them there, cost more than the rows:
 * over 10 busy queues that statement was about twice a single queue's.  A
 * round reads a few candidates per range (twice a busy queue's share of the
 * batch, and two more) and takes them only up to the first range cut
 * short, so the order is exact; when that, or candidates locked by other
 * claimers, leaves the claim short while ranges were cut, it reads again,
 * further.
 *
 * Each range starts at its claim floor (floor.c), as a single queue's
 * claim does, so dead entries left by earlier claims are not walked while
 * an old snapshot keeps them; the floors of all the queues are read at
 * once, under one snapshot, and one probe raises them for all.  A range
 * where the claim found no candidate is asked about in that probe, and if
 * it holds no waiting job at all its floor goes to the end: later claims
 * do not read it until a job made waiting there lowers the floor again
 * (the pin of its transaction).  So idle queues and unused priorities
 * cost a claim nothing but an array element.
 *
 * Pauses and limits hold per queue.  A paused queue yields nothing.  A
 * queue with a concurrency limit is counted as in the single-queue path:
 * under its advisory lock (taken in name order, held to commit if jobs of
 * the queue were claimed), and the claim takes at most the difference
 * from it, in the same order as the other queues' jobs.  Finding which of
 * the queues are paused or have a limit or a rate costs one lookup of
 * awa.queue_meta per attempt.
 *
 * A blocking claim publishes all its queues in its wait slot (more than
 * AWA_WAIT_QUEUES, or every queue: it waits for any queue), so a commit on
 * any of them wakes it (wake.c).
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr tids_plan = NULL;	/* awa_job_claim_tids_sql's */

static const Oid claim_tids_argtypes[] = {TEXTARRAYOID, TIMESTAMPTZOID, TIDARRAYOID,
	INT4OID, INTERVALOID, TEXTOID};

/* What the probe of a claim over several queues found for one queue. */
typedef struct ManyProbed
{
	AwaFloorKey first[AWA_FLOOR_PRIORITIES];
	bool		found[AWA_FLOOR_PRIORITIES];
} ManyProbed;

/*
 * Run the statement that claims a multi-queue claim's candidates, with
 * bitmap scans and JIT off: its plan is generic, a lookup by row version
 * per candidate in the order given.
 */
static int
execute_many_plan(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	int			nestlevel = NewGUCNestLevel();
	int			ret;

	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_plan(plan, values, nulls, false, 0);
	AtEOXact_GUC(true, nestlevel);
	return ret;
}

/* Forget the statement of multi-queue claims (the schema changed). */
static void
free_many_plans(void)
{
	if (tids_plan != NULL)
	{
		SPI_freeplan(tids_plan);
		tids_plan = NULL;
	}
}

/* qsort order of queue names: byte order. */
static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The queues argument (argument 0) of awa_claim(queues text[], ...): NULL
 * is every queue (target->nqueues 0); else a non-empty one-dimensional
 * array of valid names, none NULL, kept sorted without duplicates.
 */
static void
claim_queues_arg(FunctionCallInfo fcinfo, ClaimTarget *target)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int			kept;

	target->queue = NULL;
	target->nqueues = 0;
	target->names = NULL;
	if (PG_ARGISNULL(0))
		return;
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queues must be a one-dimensional array, got %d dimensions",
						ARR_NDIM(arr))));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queues must name at least one queue"),
				 errhint("Pass NULL::text[] to claim from every queue.")));
	target->names = palloc(sizeof(char *) * n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("queues must not contain NULL (element %d)", i + 1),
					 errhint("Pass NULL for the whole array to claim from every queue.")));
		awa_check_name(DatumGetTextPP(elems[i]), "queues");
		target->names[i] = TextDatumGetCString(elems[i]);
	}
	qsort(target->names, n, sizeof(char *), name_cmp);
	kept = 0;
	for (i = 0; i < n; i++)
		if (kept == 0 || strcmp(target->names[kept - 1], target->names[i]) != 0)
			target->names[kept++] = target->names[i];
	target->nqueues = kept;
}

/*
 * The queues that have waiting jobs (scheduled, available or retryable),
 * in name order: one descent of the claim index per queue.  Caller is in
 * SPI; a fresh snapshot (a blocking claim's next attempt sees new queues).
 */
static char **
queues_with_jobs(int *n)
{
	static AwaStmt stmt = AWA_STMT("awa_claim: finding the queues with waiting jobs", SPI_OK_SELECT,
		"WITH RECURSIVE q(queue) AS ("
		" (SELECT queue FROM awa.jobs WHERE state IN " AWA_STATES_WAITING_SQL
		"  ORDER BY queue LIMIT 1)"
		" UNION ALL"
		" SELECT (SELECT j.queue FROM awa.jobs j WHERE j.state IN " AWA_STATES_WAITING_SQL
		"  AND j.queue > q.queue ORDER BY j.queue LIMIT 1) FROM q WHERE q.queue IS NOT NULL)"
		" SELECT queue FROM q WHERE queue IS NOT NULL",
		0);
	uint64		count = awa_stmt_run(&stmt, NULL, NULL, 0);
	char	  **names = palloc(sizeof(char *) * Max(count, 1));
	uint64		i;

	for (i = 0; i < count; i++)
		names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	/* index order is the database's collation: byte order for the claim */
	qsort(names, count, sizeof(char *), name_cmp);
	*n = (int) count;
	return names;
}

/* names[0..n) as a text[]. */
static Datum
names_array(char **names, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(names[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * The queues among names[0..n) that are paused, or have a concurrency
 * limit or (with AWA_SCHEMA_QUEUE_RATES) a rate, in one statement: their
 * names in column queue, whether they are paused in column paused, limited
 * (and not paused) in column limited, their rates (NULL when paused) in the
 * columns awa_rate_read reads.  Returns the number of rows, which are in
 * SPI_tuptable.  Caller is in SPI.
 */
static uint64
find_limited(char **names, int n)
{
	static AwaStmt stmts[3] = {
		AWA_STMT("awa_claim: finding paused queues", SPI_OK_SELECT,
				 "SELECT queue, paused, false AS limited FROM awa.queue_meta"
				 " WHERE queue = ANY ($1) AND paused",
				 1, TEXTARRAYOID),
		AWA_STMT("awa_claim: finding queues paused or with a limit", SPI_OK_SELECT,
				 "SELECT queue, paused, NOT paused AND max_running IS NOT NULL AS limited"
				 " FROM awa.queue_meta WHERE queue = ANY ($1)"
				 " AND (paused OR max_running IS NOT NULL)",
				 1, TEXTARRAYOID),
		AWA_STMT("awa_claim: finding queues paused or with a limit or a rate", SPI_OK_SELECT,
				 "SELECT queue, paused, NOT paused AND max_running IS NOT NULL AS limited,"
				 " CASE WHEN NOT paused THEN rate_max_claims END AS rate_max_claims, rate_period,"
				 " rate_set_at FROM awa.queue_meta WHERE queue = ANY ($1)"
				 " AND (paused OR max_running IS NOT NULL OR rate_max_claims IS NOT NULL)",
				 1, TEXTARRAYOID)
	};
	Datum		arr = names_array(names, n);
	int			which = awa_schema_has(AWA_SCHEMA_QUEUE_RATES) ? 2 :
		(claim_schema() & AWA_SCHEMA_QUEUE_LIMITS) != 0 ? 1 : 0;

	return awa_stmt_run(&stmts[which], &arr, NULL, 0);
}

/*
 * The queues among names[0..n) that have a concurrency limit and are not
 * paused: their allowance under their advisory lock (taken here, in name
 * order) in caps[i]; 0 for paused queues (they yield nothing), -1 for the
 * others.  locks[i] tells which were locked.  Returns whether one of them
 * is at its limit.  *rates_read tells that no statement ran after
 * find_limited's, whose rows (still in SPI_tuptable, *nfound of them)
 * reserve_rated may use.  Caller is in SPI.
 */
static bool
count_limited(char **names, int n, int64 *caps, bool *locks, uint64 *nfound, bool *rates_read)
{
	uint64		nlimited = 0;
	uint64		k;
	char	  **limited;
	bool		at_limit = false;
	int			i;

	for (i = 0; i < n; i++)
	{
		caps[i] = -1;
		locks[i] = false;
	}
	*nfound = find_limited(names, n);
	*rates_read = true;
	if (*nfound == 0)
		return false;
	limited = palloc(sizeof(char *) * *nfound);
	for (k = 0; k < *nfound; k++)
	{
		char	   *queue = SPI_getvalue(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1);

		if (awa_stmt_bool(k, "limited"))
			limited[nlimited++] = queue;
		else if (awa_stmt_bool(k, "paused"))
		{
			char	  **found = bsearch(&queue, names, n, sizeof(char *), name_cmp);

			if (found != NULL)
				caps[found - names] = 0;
		}
	}
	if (nlimited == 0)
		return false;
	*rates_read = false;
	qsort(limited, nlimited, sizeof(char *), name_cmp);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("claiming from queue \"%s\", which has a concurrency limit, needs READ COMMITTED",
						limited[0]),
				 errdetail("The count of running jobs must see claims committed by other workers."),
				 errhint("Call awa_claim outside REPEATABLE READ and SERIALIZABLE transactions.")));
	for (k = 0; k < nlimited; k++)
	{
		char	  **found = bsearch(&limited[k], names, n, sizeof(char *), name_cmp);
		text	   *queue;
		LOCKTAG		tag;

		if (found == NULL)
			continue;
		i = (int) (found - names);
		queue = cstring_to_text(names[i]);
		limit_locktag(&tag, queue);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		locks[i] = true;
		/* paused or the limit lifted since: claim none of it this time */
		caps[i] = Max(queue_allowance(queue, true), 0);
		if (caps[i] == 0 && queue_allowance(queue, false) == 0)
			at_limit = true;
	}
	return at_limit;
}

/*
 * The queues among names[0..n) that have a rate and may claim (caps[i]
 * not 0): reserve claims for them under their rates at one time
 * (ratelimit.c) and cap each at what it was granted.  With rates_read, the
 * rows of find_limited (nfound of them, in SPI_tuptable) tell the rates;
 * else, once limits were counted, they are read again now.  Returns the
 * claim's time (at when none has a rate); *asks, *idx (their index in
 * names) and *nasks say what to give back after the claim.  Caller is in
 * SPI.
 */
static TimestampTz
reserve_rated(char **names, int n, int batch, int64 *caps, TimestampTz at,
			  uint64 nfound, bool rates_read, AwaRateAsk **asks, int **idx, int *nasks)
{
	static AwaStmt stmt = AWA_STMT("awa_claim: finding queues with a rate", SPI_OK_SELECT,
		"SELECT queue, rate_max_claims, rate_period, rate_set_at FROM awa.queue_meta"
		" WHERE queue = ANY ($1) AND NOT paused AND rate_max_claims IS NOT NULL",
		1, TEXTARRAYOID);
	Datum		arr;
	uint64		nrated;
	uint64		k;
	int			m = 0;

	*nasks = 0;
	if (!awa_schema_has(AWA_SCHEMA_QUEUE_RATES))
		return at;
	if (rates_read)
		nrated = nfound;
	else
	{
		arr = names_array(names, n);
		nrated = awa_stmt_run(&stmt, &arr, NULL, 0);
	}
	if (nrated == 0)
		return at;
	*asks = palloc(sizeof(AwaRateAsk) * nrated);
	*idx = palloc(sizeof(int) * nrated);
	for (k = 0; k < nrated; k++)
	{
		char	   *queue = SPI_getvalue(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1);
		char	  **found = bsearch(&queue, names, n, sizeof(char *), name_cmp);
		int			i;

		if (found == NULL)
			continue;
		i = (int) (found - names);
		/* awa_rate_read is false for a row of find_limited without a rate */
		if (caps[i] == 0 || !awa_rate_read((int) k, &(*asks)[m].rate))
			continue;
		(*asks)[m].queue = names[i];
		(*asks)[m].want = (int) (caps[i] < 0 ? batch : Min(caps[i], batch));
		(*idx)[m] = i;
		m++;
	}
	if (m == 0)
		return at;
	at = awa_rate_reserve(*asks, m, at);
	for (k = 0; k < (uint64) m; k++)
		caps[(*idx)[k]] = (*asks)[k].granted;
	*nasks = m;
	return at;
}

/* AwaFloorProbe of one queue of a claim over several queues: probe_many's. */
static void
probed_read(AwaFloorScan *scan, Datum arg, AwaFloorKey *first, bool *found)
{
	ManyProbed *probed = (ManyProbed *) DatumGetPointer(arg);
	int			p;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		found[p] = probed->found[p];
		if (found[p])
			first[p] = probed->first[p];
	}
}

/*
 * How many of the n queues may give candidates at this level (at least
 * 1): not capped at 0 by their limit, and with a range of the level's
 * priorities whose floor is not at the end (no floors: any).
 */
static int
live_queues(const AwaFloorScan *scans, const int64 *caps, int n, int level)
{
	int			live = 0;
	int			i;
	int			p;

	for (i = 0; i < n; i++)
	{
		if (caps[i] == 0)
			continue;
		for (p = Max(level, 1); p <= AWA_FLOOR_PRIORITIES; p++)
			if (!awa_floor_at_end(&scans[i], p))
				break;
		if (p <= AWA_FLOOR_PRIORITIES)
			live++;
	}
	return Max(live, 1);
}

/*
 * Reading a multi-queue claim's candidates.  The claim index (awa.jobs on
 * (queue, priority, run_at, id), partial on the waiting states) is read
 * here directly, not by a statement: one index scan, restarted for each
 * (queue, priority) range of a level, from the range's floor, for at most
 * the range's share of candidates, under a fresh snapshot that sees this
 * transaction's own claims.  What a statement would spend on setting up
 * nodes for a few rows of each of many ranges, sorting them and finding
 * the frontier is spent here on the rows alone; the statement that locks
 * and claims the candidates (awa_job_claim_tids_sql) looks each up by row
 * version and checks it again, so a candidate another claimer took since
 * is skipped, never handed out twice.  A range's rows are read in index
 * order, so a range cut at its share holds no row before its last
 * candidate; candidates after the first such last candidate (the
 * frontier) wait for the next round, so the order is exact.
 */

/* A candidate: a waiting job read from the claim index. */
typedef struct ManyCand
{
	TimestampTz run_at;
	int64		id;
	int16		priority;
	int			qi;				/* its queue: index in names */
	ItemPointerData tid;
} ManyCand;

/* The relations and state of one multi-queue claim's reading. */
typedef struct ManyReader
{
	Relation	heap;
	Relation	index;
	Oid			collation;		/* of the index's queue column */
	AttrNumber	att_run_at;
	AttrNumber	att_id;
	AttrNumber	att_key;		/* concurrency_key; 0: no keys */
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ManyCand   *cands;
	int			ncands;
	int			maxcands;
	ManyCand   *chosen;			/* the round's candidates to claim, in order */
	int			nchosen;
	/* the first row of each (queue, priority) at or above its floor, as the
	 * floor snapshot sees it: seen[i * 4 + p - 1] (see probe_many) */
	bool		recording;		/* the scans use the floor snapshot */
	bool	   *seen_set;
	AwaFloorKey *seen;
} ManyReader;

/* The attribute number of awa.jobs' column name; ERROR if it has none. */
static AttrNumber
jobs_attnum(Relation heap, const char *name)
{
	AttrNumber	att = get_attnum(RelationGetRelid(heap), name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "awa_claim: awa.jobs has no column %s", name);
	return att;
}

/*
 * Open awa.jobs and its claim index for reading (AccessShareLock, kept to
 * the end of the transaction as a statement would), checking the index's
 * columns.
 */
static void
reader_open(ManyReader *rd, bool keys, int n)
{
	Oid			nsp = get_namespace_oid("awa", false);
	Oid			relid = get_relname_relid("jobs", nsp);
	Oid			idxid = get_relname_relid("jobs_claim_idx", nsp);
	static const char *const cols[] = {"queue", "priority", "run_at", "id"};
	int			k;

	if (!OidIsValid(relid) || !OidIsValid(idxid))
		elog(ERROR, "awa_claim: awa.jobs or awa.jobs_claim_idx is missing");
	rd->heap = table_open(relid, AccessShareLock);
	rd->index = index_open(idxid, AccessShareLock);
	if (rd->index->rd_index->indrelid != relid ||
		rd->index->rd_index->indnkeyatts != lengthof(cols))
		elog(ERROR, "awa_claim: awa.jobs_claim_idx is not the claim index");
	for (k = 0; k < lengthof(cols); k++)
		if (rd->index->rd_index->indkey.values[k] != jobs_attnum(rd->heap, cols[k]))
			elog(ERROR, "awa_claim: awa.jobs_claim_idx is not the claim index");
	rd->collation = rd->index->rd_indcollation[0];
	rd->att_run_at = jobs_attnum(rd->heap, "run_at");
	rd->att_id = jobs_attnum(rd->heap, "id");
	rd->att_key = keys ? jobs_attnum(rd->heap, "concurrency_key") : InvalidAttrNumber;
	rd->slot = table_slot_create(rd->heap, NULL);
	rd->scan = NULL;
	rd->maxcands = 64;
	rd->cands = palloc(sizeof(ManyCand) * rd->maxcands);
	rd->ncands = 0;
	rd->recording = false;
	rd->seen_set = palloc0(sizeof(bool) * n * AWA_FLOOR_PRIORITIES);
	rd->seen = palloc(sizeof(AwaFloorKey) * n * AWA_FLOOR_PRIORITIES);
}

static void
reader_close(ManyReader *rd)
{
	ExecDropSingleTupleTableSlot(rd->slot);
	index_close(rd->index, NoLock);
	table_close(rd->heap, NoLock);
}

/*
 * Append to rd->cands up to limit candidates of queue names[qi] (a text
 * datum in queue) and priority p: waiting jobs with (run_at, id) >= from,
 * run_at <= hi and (lo not DT_NOBEGIN) run_at > lo, in index order,
 * skipping (keyed) jobs whose concurrency key this attempt found closed.  Returns
 * how many it appended.  With at_floor (from is the range's floor), the
 * first row seen is noted for probe_many while rd->recording.  The scan has four keys: the lower bounds are one
 * (the tighter; a redundant key would cost a comparison per rescan).  The
 * index's leaf page is read in one go up to the first entry past hi, so a
 * tight hi saves checking every entry of the page (read_range).
 */
static int
scan_range(ManyReader *rd, Datum queue, int qi, int p, AwaFloorKey from,
		   TimestampTz hi, TimestampTz lo, int limit, bool keyed, bool at_floor)
{
	ScanKeyData keys[4];
	int			got = 0;
	int			r = qi * AWA_FLOOR_PRIORITIES + p - 1;

	if (limit <= 0 || from.run_at > hi || lo >= hi)
		return 0;
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   rd->collation, F_TEXTEQ, queue);
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_INT2EQ, Int16GetDatum((int16) p));
	if (lo != DT_NOBEGIN && lo >= from.run_at)
		ScanKeyEntryInitialize(&keys[2], 0, 3, BTGreaterStrategyNumber, InvalidOid,
							   InvalidOid, F_TIMESTAMPTZ_GT, TimestampTzGetDatum(lo));
	else
		ScanKeyEntryInitialize(&keys[2], 0, 3, BTGreaterEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_TIMESTAMPTZ_GE, TimestampTzGetDatum(from.run_at));
	ScanKeyEntryInitialize(&keys[3], 0, 3, BTLessEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(hi));
	index_rescan(rd->scan, keys, lengthof(keys), NULL, 0);
	while (got < limit && index_getnext_slot(rd->scan, ForwardScanDirection, rd->slot))
	{
		bool		isnull;
		TimestampTz run_at;
		int64		id;
		ManyCand   *c;

		CHECK_FOR_INTERRUPTS();
		run_at = DatumGetTimestampTz(slot_getattr(rd->slot, rd->att_run_at, &isnull));
		id = DatumGetInt64(slot_getattr(rd->slot, rd->att_id, &isnull));
		/* the floor is a (run_at, id) position: the scan key holds run_at */
		if (run_at == from.run_at && id < from.id)
			continue;
		if (at_floor && rd->recording && !rd->seen_set[r])
		{
			rd->seen[r].run_at = run_at;
			rd->seen[r].id = id;
			rd->seen_set[r] = true;
		}
		if (keyed && rd->att_key != InvalidAttrNumber)
		{
			Datum		key = slot_getattr(rd->slot, rd->att_key, &isnull);

			if (!isnull && !awa_keylimit_open(DatumGetTextPP(key)))
				continue;
		}
		if (rd->ncands == rd->maxcands)
		{
			rd->maxcands *= 2;
			rd->cands = repalloc(rd->cands, sizeof(ManyCand) * rd->maxcands);
		}
		c = &rd->cands[rd->ncands++];
		c->run_at = run_at;
		c->id = id;
		c->priority = (int16) p;
		c->qi = qi;
		c->tid = rd->slot->tts_tid;
		got++;
	}
	return got;
}

/*
 * Where the previous read of a (queue, priority) range by this backend
 * ended: a leaf page holds some hundred entries of a busy range, and
 * nbtree checks every one of them up to the scan's upper bound whenever a
 * scan lands on the page, while a claim over many queues wants a few rows
 * of each.  So a range is read first up to a guess (upto: the last row of
 * the previous read plus what that read spanned) and, if that gives too
 * few rows, on from there to its real bound: the same rows in the same
 * order, in two scans instead of one when the guess was short.
 */
typedef struct RangeHint
{
	char		key[1 + AWA_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1];	/* priority, queue */
	TimestampTz upto;			/* DT_NOEND: no guess */
	int64		span;			/* what the last full read spanned, us; -1: unknown */
} RangeHint;

#define RANGE_HINTS_MAX		4096	/* forget them all beyond this many */

static HTAB *range_hints = NULL;

/* The hint of (queue, priority), created empty if new. */
static RangeHint *
range_hint(const char *queue, int p)
{
	char		key[sizeof(((RangeHint *) NULL)->key)];
	RangeHint  *h;
	bool		found;

	if (range_hints != NULL && hash_get_num_entries(range_hints) >= RANGE_HINTS_MAX)
	{
		hash_destroy(range_hints);
		range_hints = NULL;
	}
	if (range_hints == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(RangeHint);
		range_hints = hash_create("awa claim range hints", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	key[0] = (char) ('0' + p);
	strlcpy(key + 1, queue, sizeof(key) - 1);
	h = hash_search(range_hints, key, HASH_ENTER, &found);
	if (!found)
	{
		h->upto = DT_NOEND;
		h->span = -1;
	}
	return h;
}

/*
 * scan_range of (queue qname, priority p), read first up to the range's
 * hint (see RangeHint); with learn, the hint is set for the next read from
 * what this one found.  at_floor: from is the range's floor and lo does not
 * cut it (scan_range).
 */
static int
read_range(ManyReader *rd, const char *qname, Datum queue, int qi, int p, AwaFloorKey from,
		   TimestampTz hi, TimestampTz lo, int limit, bool keyed, bool learn, bool at_floor)
{
	RangeHint  *h = range_hint(qname, p);
	int			start = rd->ncands;
	int			got;

	if (limit <= 0)
		return 0;
	if (h->upto < hi && h->upto >= from.run_at && h->upto > lo)
	{
		got = scan_range(rd, queue, qi, p, from, h->upto, lo, limit, keyed, at_floor);
		if (got < limit)
			got += scan_range(rd, queue, qi, p, from, hi, h->upto, limit - got, keyed, at_floor);
	}
	else
		got = scan_range(rd, queue, qi, p, from, hi, lo, limit, keyed, at_floor);
	if (!learn)
		return got;
	if (got < limit)
		h->upto = DT_NOEND;		/* the range ran out: no guess */
	else
	{
		TimestampTz last = rd->cands[rd->ncands - 1].run_at;

		if (got >= 2)
			h->span = last - rd->cands[start].run_at;
		if (h->span < 0 || pg_add_s64_overflow(last, h->span + 1, &h->upto) ||
			h->upto >= DT_NOEND)
			h->upto = DT_NOEND;
	}
	return got;
}

/* Claim order within a level: (run_at, id); aging off, (priority, run_at, id). */
static int
cand_cmp_level(const ManyCand *a, const ManyCand *b, bool by_priority)
{
	if (by_priority && a->priority != b->priority)
		return a->priority < b->priority ? -1 : 1;
	if (a->run_at != b->run_at)
		return a->run_at < b->run_at ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return 0;
}

static int
cand_cmp(const void *a, const void *b)
{
	return cand_cmp_level(a, b, false);
}

static int
cand_cmp_priority(const void *a, const void *b)
{
	return cand_cmp_level(a, b, true);
}

/*
 * One round of reading at a level: up to per_range candidates of each
 * range of the level (aging off, level 0: one range per queue, its
 * priorities in order; priority 1 from its floor) of the queues not capped
 * at 0, under a fresh snapshot.  Then the candidates the claim may take,
 * in claim order, as a tid[] into *tids (*ntids of them): up to the
 * frontier, and of a queue with an allowance (caps[i] - taken[i] when
 * caps[i] >= 0) at most that many.  Returns how many ranges were cut at
 * per_range while their queue allowed more; notes in read[] (aging on)
 * the ranges that gave candidates.  The claim's first round reads under
 * floor_snap, the snapshot its floors were read with (taken just before
 * the claim): probe_many then finds there, for the ranges read from their
 * floor, the row it would look for, without a scan of its own.  Later
 * rounds (floor_snap NULL) read under a fresh snapshot that sees this
 * claim's own earlier rounds.
 */
static int64
read_round(ManyReader *rd, Snapshot floor_snap, char **names, int n, const AwaFloorScan *scans,
		   const int64 *caps, const int *taken, int level, TimestampTz at,
		   int per_range, bool *read, Datum *tids, int *ntids)
{
	int64		aging = (int64) awa_priority_aging_interval * USECS_PER_SEC;
	bool		have_frontier = false;
	ManyCand	frontier;
	int64		cut = 0;
	int		   *given;
	ItemPointerData *out;
	Datum	   *elems;
	int			m = 0;
	int			i;
	int			k;

	memset(&frontier, 0, sizeof(frontier));
	rd->ncands = 0;
	if (floor_snap != NULL)
	{
		/* the first round: the floors' snapshot, the probe reuses its rows */
		rd->recording = true;
		rd->scan = index_beginscan(rd->heap, rd->index, floor_snap, 4, 0);
	}
	else
	{
		/* see this transaction's own claims (earlier rounds and levels) */
		rd->recording = false;
		CommandCounterIncrement();
		PushCopiedSnapshot(GetTransactionSnapshot());
		UpdateActiveSnapshotCommandId();
		rd->scan = index_beginscan(rd->heap, rd->index, GetActiveSnapshot(), 4, 0);
	}
	for (i = 0; i < n; i++)
	{
		Datum		queue;
		int			limit = per_range;
		int			pi;
		int			start;

		if (caps[i] == 0)
			continue;
		if (caps[i] > 0)
			limit = (int) Min(limit, Max(caps[i] - taken[i], 0));
		if (limit <= 0)
			continue;
		queue = CStringGetTextDatum(names[i]);
		start = rd->ncands;
		for (pi = level > 1 ? level - 1 : 0; pi < AWA_FLOOR_PRIORITIES; pi++)
		{
			int			p = pi + 1; /* the priority */
			AwaFloorKey from = scans[i].floors[pi];
			TimestampTz hi = at - (p - Max(level, 1)) * aging;
			TimestampTz lo = level > 1 ? hi - aging : DT_NOBEGIN;
			int			got;

			if (level == 0)
			{
				/* aging off: priority 1 from its floor, the others whole */
				hi = at;
				if (p > 1)
				{
					from.run_at = DT_NOBEGIN;
					from.id = PG_INT64_MIN;
				}
				limit = per_range - (rd->ncands - start);
				if (caps[i] > 0)
					limit = (int) Min(limit, Max(caps[i] - taken[i], 0) - (rd->ncands - start));
			}
			if (from.run_at == DT_NOEND)
				continue;		/* no waiting job there: not read at all */
			got = read_range(rd, names[i], queue, i, p, from, hi, lo, limit, true, true,
							 level <= 1 && (level == 1 || p == 1));
			if (level > 0 && got > 0)
				read[i * AWA_FLOOR_PRIORITIES + pi] = true;
			if (level > 0 && got >= per_range && (caps[i] < 0 || caps[i] - taken[i] > per_range))
			{
				/* cut: its last candidate may be the frontier */
				cut++;
				if (!have_frontier || cand_cmp(&rd->cands[rd->ncands - 1], &frontier) < 0)
					frontier = rd->cands[rd->ncands - 1];
				have_frontier = true;
			}
		}
		if (level == 0 && rd->ncands - start >= per_range &&
			(caps[i] < 0 || caps[i] - taken[i] > per_range))
		{
			cut++;
			if (!have_frontier || cand_cmp_priority(&rd->cands[rd->ncands - 1], &frontier) < 0)
				frontier = rd->cands[rd->ncands - 1];
			have_frontier = true;
		}
	}
	index_endscan(rd->scan);
	rd->scan = NULL;
	if (floor_snap == NULL)
		PopActiveSnapshot();
	rd->recording = false;

	/* claim order; up to the frontier; a queue's allowance in its own order */
	qsort(rd->cands, rd->ncands, sizeof(ManyCand), level == 0 ? cand_cmp_priority : cand_cmp);
	given = palloc0(sizeof(int) * n);
	out = palloc(sizeof(ItemPointerData) * Max(rd->ncands, 1));
	rd->chosen = palloc(sizeof(ManyCand) * Max(rd->ncands, 1));
	for (k = 0; k < rd->ncands; k++)
	{
		ManyCand   *c = &rd->cands[k];

		if (have_frontier && cand_cmp_level(c, &frontier, level == 0) > 0)
			break;
		if (caps[c->qi] >= 0 && ++given[c->qi] > caps[c->qi] - taken[c->qi])
			continue;
		rd->chosen[m] = *c;
		out[m++] = c->tid;
	}
	*ntids = m;
	rd->nchosen = m;
	if (m > 0)
	{
		elems = palloc(sizeof(Datum) * m);
		for (k = 0; k < m; k++)
			elems[k] = PointerGetDatum(&out[k]);
		*tids = PointerGetDatum(construct_array(elems, m, TIDOID, sizeof(ItemPointerData),
												false, TYPALIGN_SHORT));
	}
	return cut;
}

/*
 * The floor probe of a claim over several queues: for each (queue,
 * priority) the claim took jobs of or asks about, the first waiting job at
 * or above its floor (any run_at), as the claim's floor snapshot (shared by
 * all its scans, taken before this claim's own changes) sees it, into
 * probed[].  Read from the claim index like the candidates.
 */
static void
probe_many(ManyReader *rd, AwaFloorScan *scans, char **names, int n, ManyProbed *probed)
{
	Snapshot	snap = NULL;
	int			i;
	int			p;

	for (i = 0; i < n; i++)
	{
		Datum		queue = (Datum) 0;

		for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		{
			probed[i].found[p] = false;
			if (scans[i].lane < 0 || (!scans[i].taken[p] && !scans[i].ask[p]))
				continue;
			if (rd->scan == NULL || scans[i].snapshot != snap)
			{
				if (rd->scan != NULL)
					index_endscan(rd->scan);
				snap = scans[i].snapshot;
				rd->scan = index_beginscan(rd->heap, rd->index, snap, 4, 0);
			}
			if (queue == (Datum) 0)
				queue = CStringGetTextDatum(names[i]);
			rd->ncands = 0;
			if (rd->seen_set[i * AWA_FLOOR_PRIORITIES + p])
			{
				/* the claim's first round read it under this snapshot */
				probed[i].first[p] = rd->seen[i * AWA_FLOOR_PRIORITIES + p];
				probed[i].found[p] = true;
				continue;
			}
			if (read_range(rd, names[i], queue, i, p + 1, scans[i].floors[p], DT_NOEND,
						   DT_NOBEGIN, 1, false, false, false) == 1)
			{
				probed[i].first[p].run_at = rd->cands[0].run_at;
				probed[i].first[p].id = rd->cands[0].id;
				probed[i].found[p] = true;
			}
		}
	}
	if (rd->scan != NULL)
		index_endscan(rd->scan);
	rd->scan = NULL;
}

/*
 * Claim up to batch jobs of names[0..n), level by level, appending them to
 * rows.  Returns the number claimed; *at_limit is set when one of the
 * queues is at its concurrency limit.  Each round of a level reads up to
 * `per_range` candidates of each (queue, priority) range (read_round) and
 * claims those the order allows; when it claims fewer than it asked for
 * while ranges were cut there (the order allowed no more, or candidates
 * locked by other claimers were skipped), it reads again, further by the
 * rest shared by the ranges cut, or four times as far when it took none.
 */
static int
claim_queues(char **names, int n, TimestampTz at, Interval *lease, text *worker,
			 int batch, ClaimedRow *rows, bool *at_limit)
{
	bool		limits = (claim_schema() & AWA_SCHEMA_QUEUE_LIMITS) != 0;
	int64	   *caps = palloc(sizeof(int64) * n);
	bool	   *locks = palloc0(sizeof(bool) * n);
	int		   *taken = palloc0(sizeof(int) * n);
	int			first = awa_priority_aging_interval > 0 ? 1 : 0;
	int			last = awa_priority_aging_interval > 0 ? NLEVELS : 0;
	int			level;
	int			nrows = 0;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', worker ? ' ' : 'n'};
	int			i;
	AwaFloorScan *scans = palloc(sizeof(AwaFloorScan) * n);
	bool	   *read = palloc0(sizeof(bool) * n * AWA_FLOOR_PRIORITIES);
	ManyProbed *probed;
	AwaRateAsk *asks = NULL;
	int		   *ask_idx = NULL;
	int			nasks = 0;
	uint64		nfound = 0;
	bool		rates_read = false;
	ManyReader	rd;
	Snapshot	floor_snap = NULL;
	bool		first_round = true;

	for (i = 0; i < n; i++)
	{
		caps[i] = -1;
		awa_claim_noted(names[i], 0);
	}
	/* paused queues: nothing; limited ones: counted under their locks */
	if (count_limited(names, n, caps, locks, &nfound, &rates_read))
		*at_limit = true;
	/* queues with a rate: what they may claim, and the claim's time */
	if (limits)
		at = reserve_rated(names, n, batch, caps, at, nfound, rates_read, &asks, &ask_idx, &nasks);

	values[0] = names_array(names, n);
	values[1] = TimestampTzGetDatum(at);
	values[4] = IntervalPGetDatum(lease);
	values[5] = worker ? PointerGetDatum(worker) : (Datum) 0;
	/*
	 * The floors' snapshot (taken after their read, before the claim) sees
	 * this transaction's earlier claims, also those of the same statement;
	 * the first round reads under it (read_round) unless the transaction
	 * reads under its own snapshot (REPEATABLE READ and SERIALIZABLE).
	 */
	CommandCounterIncrement();
	awa_floor_begin_many(scans, names, n, false);
	for (i = 0; i < n && floor_snap == NULL && !IsolationUsesXactSnapshot(); i++)
		floor_snap = scans[i].snapshot;
	if (tids_plan == NULL)
	{
		char	   *sql = awa_job_claim_tids_sql(awa_schema_has(AWA_SCHEMA_LEASES),
												 awa_schema_has(AWA_SCHEMA_KEYS));

		awa_plan(&tids_plan, sql, lengthof(claim_tids_argtypes), claim_tids_argtypes);
		pfree(sql);
	}
	reader_open(&rd, awa_schema_has(AWA_SCHEMA_KEYS), n);

	for (level = first; level <= last && nrows < batch; level++)
	{
		/*
		 * Candidates per range: twice each queue's share of what is left
		 * and two more, counting only the queues that may give some at this
		 * level (idle queues' ranges are not read: their floors are at the
		 * end), at most what is left.  With the backlog spread evenly one
		 * round fills the batch, even when another claimer holds the first
		 * candidates locked; when it is skewed the frontier stops the claim
		 * early and it reads again, further.
		 */
		int			active = live_queues(scans, caps, n, level);
		int			left = batch - nrows;
		int			per_range = Min(left, 2 * ((left + active - 1) / active) + 2);

		for (;;)
		{
			int			asked = batch - nrows;
			int			got = 0;
			int			ntids = 0;
			int64		cut;
			uint64		k;
			int			idcol;

			cut = read_round(&rd, first_round ? floor_snap : NULL, names, n, scans, caps, taken,
							 level, at, per_range, read, &values[2], &ntids);
			first_round = false;
			if (ntids > 0)
			{
				int			ret;

				values[3] = Int32GetDatum(asked);
				ret = execute_many_plan(tids_plan, values, nulls);
				if (ret != SPI_OK_UPDATE_RETURNING)
					elog(ERROR, "awa_claim: claim failed: %s", SPI_result_code_string(ret));
				if (SPI_processed > (uint64) asked)
					elog(ERROR, "awa_claim: the claim returned more rows than asked for");
				idcol = SPI_fnumber(SPI_tuptable->tupdesc, "id");
				for (k = 0; k < SPI_processed; k++)
				{
					HeapTuple	tuple = SPI_tuptable->vals[k];
					bool		isnull;
					ClaimedRow *r = &rows[nrows++];
					const ManyCand *c = NULL;
					int			j;

					got++;
					r->tuple = tuple;
					r->desc = SPI_tuptable->tupdesc;
					r->level = level;
					r->id = DatumGetInt64(SPI_getbinval(tuple, r->desc, idcol, &isnull));
					/* the row is a candidate's version: its queue, priority, run_at */
					for (j = 0; j < rd.nchosen && c == NULL; j++)
						if (rd.chosen[j].id == r->id)
							c = &rd.chosen[j];
					if (c == NULL)
						elog(ERROR, "awa_claim: claimed job %lld was not a candidate",
							 (long long) r->id);
					r->run_at = c->run_at;
					taken[c->qi]++;
					awa_floor_taken(&scans[c->qi], c->priority, c->run_at);
				}
			}
			if (got >= asked || cut == 0 || per_range >= INT_MAX / 4)
				break;
			/*
			 * Read further: past what this round read (the candidates other
			 * claimers hold locked come first again) by the rest shared by
			 * the ranges cut; none taken: four times as far.
			 */
			per_range = got == 0 ? per_range * 4 :
				(int) Min(per_range + ((int64) (asked - got) + cut - 1) / cut + 1, INT_MAX / 4);
		}
	}
	/*
	 * Floors: raise those of the priorities taken, and ask about the ranges
	 * that gave no candidate (aging on; not a queue this claim could take
	 * none of), so that an empty one is not read again until a job is made
	 * waiting there; one probe for all the queues.
	 */
	if (first > 0)
		for (i = 0; i < n; i++)
			for (level = 0; level < AWA_FLOOR_PRIORITIES; level++)
				scans[i].ask[level] = scans[i].lane >= 0 && caps[i] != 0 &&
					!read[i * AWA_FLOOR_PRIORITIES + level] &&
					!awa_floor_at_end(&scans[i], level + 1);
	/* the priorities taken: raised every few claims of each queue */
	for (i = 0; i < n; i++)
		awa_floor_defer(&scans[i], taken[i]);
	probed = palloc(sizeof(ManyProbed) * n);
	probe_many(&rd, scans, names, n, probed);
	reader_close(&rd);
	for (i = 0; i < n; i++)
		awa_floor_end_with(&scans[i], names[i], probed_read, PointerGetDatum(&probed[i]));

	/* rates: give back the claims reserved and not made */
	for (i = 0; i < nasks; i++)
		awa_rate_release(asks[i].queue, at, asks[i].granted - taken[ask_idx[i]]);
	for (i = 0; i < n; i++)
	{
		if (taken[i] > 0)
			awa_claim_noted(names[i], taken[i]);
		else if (locks[i])
		{
			/* claimed nothing there: nothing for the next claimer to count */
			LOCKTAG		tag;

			limit_locktag(&tag, cstring_to_text(names[i]));
			LockRelease(&tag, ExclusiveLock, false);
		}
	}
	return nrows;
}

/*
 * One attempt of a multi-queue claim: up to batch jobs of the target's
 * queues (or of every queue with waiting jobs), appended to rows.  Returns
 * the number claimed; *at_limit tells that one of the queues is at its
 * concurrency limit.  Caller is connected to SPI.
 */
static int
try_claim_many(const ClaimTarget *target, TimestampTz at, Interval *lease,
			   text *worker, int batch, ClaimedRow *rows, bool *at_limit)
{
	char	  **names = target->names;
	int			n = target->nqueues;

	*at_limit = false;
	if (n == 0)
		names = queues_with_jobs(&n);
	if (n == 0)
		return 0;
	return claim_queues(names, n, at, lease, worker, batch, rows, at_limit);
}

/*
 * How long until the next scheduled or retryable job of the target's
 * queues (of any queue: every queue) comes due, in milliseconds (-1 if
 * there is none).  Caller is in SPI.
 */
static long
ms_until_next_due_many(const ClaimTarget *target, TimestampTz now)
{
	static AwaStmt some = AWA_STMT("awa_claim: looking for the next due job", SPI_OK_SELECT,
								   "SELECT min(run_at) AS next FROM awa.jobs"
								   " WHERE queue = ANY ($1) AND state IN " AWA_STATES_WAITING_SQL
								   " AND state <> 'available' AND run_at > $2",
								   2, TEXTARRAYOID, TIMESTAMPTZOID);
	static AwaStmt every = AWA_STMT("awa_claim: looking for the next due job", SPI_OK_SELECT,
									"SELECT min(run_at) AS next FROM awa.jobs"
									" WHERE state IN " AWA_STATES_WAITING_SQL
									" AND state <> 'available' AND run_at > $1",
									1, TIMESTAMPTZOID);
	Datum		values[2];
	bool		isnull;
	TimestampTz next;
	uint64		found;

	if (target->nqueues == 0)
	{
		values[0] = TimestampTzGetDatum(now);
		found = awa_stmt_run(&every, values, NULL, 1);
	}
	else
	{
		values[0] = names_array(target->names, target->nqueues);
		values[1] = TimestampTzGetDatum(now);
		found = awa_stmt_run(&some, values, NULL, 1);
	}
	if (found != 1)
		return -1;
	next = DatumGetTimestampTz(awa_stmt_value(0, "next", &isnull));
	if (isnull)
		return -1;
	return (long) ((next - now) / 1000) + 1;
}

/*
 * awa_claim(queues text[], worker, batch, lease, wait) RETURNS SETOF awa.jobs
 *
 * awa_claim over several queues: the most urgent due jobs of any of them,
 * in the single-queue order across all; NULL claims from every queue.
 */
Datum
awa_claim_queues(PG_FUNCTION_ARGS)
{
	ClaimTarget target;
	text	   *worker;
	int32		batch;
	Interval   *lease;
	int64		wait_us;

	wait_us = claim_args(fcinfo, "awa_claim", NULL, &worker, &batch, &lease);
	claim_queues_arg(fcinfo, &target);
	return claim_rows(fcinfo, &target, worker, batch, lease, wait_us);
}

/*
 * CALL awa_claim_wait(queues text[], worker, batch, lease, wait, INOUT jobs)
 *
 * awa_claim_wait over several queues (NULL: every queue), each attempt
 * awa_claim(queues, ..., wait => 0); woken by a commit on any of them.
 */
Datum
awa_claim_wait_queues(PG_FUNCTION_ARGS)
{
	ClaimTarget target;
	text	   *worker;
	int32		batch;
	Interval   *lease;
	int64		wait_us;
	Datum		queues = (Datum) 0;

	wait_us = claim_args(fcinfo, "awa_claim_wait", NULL, &worker, &batch, &lease);
	claim_queues_arg(fcinfo, &target);
	if (!PG_ARGISNULL(0))
		queues = datumCopy(PointerGetDatum(PG_GETARG_ARRAYTYPE_P(0)), false, -1);
	return claim_wait(fcinfo, TEXTARRAYOID, queues, &target, worker, batch,
					  lease, wait_us);
}
