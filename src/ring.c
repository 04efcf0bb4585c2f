/*-------------------------------------------------------------------------
 *
 * ring.c
 *		The ring (docs/storage.md, section 5): the hot path of the storage
 *		engine that is to replace awa.jobs, on its own relations beside it.
 *		Internal: the awa.ring_* functions are not the API, no role may call
 *		them, and they refuse to run unless awa.ring_engine is on (a
 *		superuser setting that only the ring's test suites and benchmark
 *		turn on).  Nothing of awa's API uses them yet (step 5 does).
 *
 * Relations (src/sql/awa.sql, "The ring"): awa.ready, one immutable row per
 * claimable attempt; awa.claims, one receipt per claim; awa.done, one row
 * per ended attempt; each LIST-partitioned by slot; awa.ring_slots names
 * the open slot.  Nothing here updates or deletes a row.
 *
 * Claim (awa.ring_claim, in ring_claim.c), per range of its levels (ring_claim.c:
 * priority aging, several queues):
 *	1. candidates: the lane's ready rows from its floor on, due, whose
 *	   attempt (id, run_lease + 1) has no receipt the statement's snapshot
 *	   sees, in (run_at, id) order, locked FOR UPDATE SKIP LOCKED.  The
 *	   statement runs with the newest snapshot, also in REPEATABLE READ: a
 *	   transaction snapshot would show the same claimed rows as candidates
 *	   at every pass (ready rows are never updated, so locking them raises
 *	   no serialization error either way);
 *	2. receipts for the candidates, written by a statement that runs with
 *	   a fresh snapshot (the newest, also in REPEATABLE READ) and skips the
 *	   candidates it sees a receipt of: a claimer that locked a row before
 *	   us committed its receipt before it released the lock, so its
 *	   receipt is visible now even if step 1's snapshot missed it;
 *	3. the unique key of awa.claims (job_id, run_lease, slot) with ON
 *	   CONFLICT DO NOTHING as the last word: two receipts of one attempt
 *	   cannot both commit.
 * Candidates lost to a race are replaced by another pass, until the claim
 * has its batch or a pass finds fewer candidates than it asked for (the
 * lane has no more).  A pass loses a candidate only to a claimer that
 * committed its receipt after the pass's snapshot, so every lost pass is
 * another claimer's progress; with two claimers walking the same lane in
 * step, that can repeat several times in a row (measured: 3.7% of passes
 * lost rows in a 2-client drain, the longest run 9 passes), which is why
 * the number of passes is not capped: a cap returned an empty claim while
 * the queue still held jobs.
 *
 * Floors (floor.c) are reused as they are, on lanes of their own: the
 * lane of a ring queue is named RING_LANE_PREFIX + queue, so that it never
 * shares floors with the awa.jobs queue of the same name (a queue of
 * awa.jobs whose name starts with that control byte would; none of awa's
 * own does).  Enqueue and retry note their run_at (the pins); the claim
 * reads the floors, starts each priority's range there, and raises them
 * with a probe of its own relations (ring_probe) through
 * awa_floor_end_with.
 *
 * Ends (awa.ring_complete_many, awa.ring_fail) find the attempt's receipt
 * by (job_id, run_lease) and append a done row with the receipt's slot;
 * no receipt (a lease that was never given) or a done row already there
 * (the attempt ended, also by a racing end) and the call is a no-op: the
 * run_lease guard.
 *
 * Plans.  Every statement is a generic plan made with sequential, bitmap,
 * hash and merge joins, materialisation and sorts switched off, and the
 * receipt probes are correlated scalar subqueries or LATERAL ... LIMIT 1
 * (one index probe per row), never joins: a plan made while a partition
 * was empty cannot turn into a scan of a whole partition when it fills
 * (docs/storage.md, section 9: the prototype's anti join that went
 * O(claims) per candidate).
 *
 * Elsewhere: scheduled jobs, backoff, snooze, cancel (ring_sched.c);
 * heartbeats, progress and rescue (ring_lease.c); reading the ring and its
 * counters (ring_read.c); sealing and reclaiming slots (ring_slots.c);
 * unique jobs (ring_unique.c).
 * The wake: an insert notes its lane for wake.c (woken at commit), the
 * claim counts its jobs for a rollback (hook: rwait; the blocking claim is
 * ring_wait.c).  Pauses, queue limits and rates: ring_flow.c (hook: rflow).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "floor.h"
#include "ring.h"
#include "ring_flow.h"		/* hook: rflow */
#include "ring_deps.h"		/* hook: rdeps */
#include "ring_enq.h"		/* hook: renq */
#include "ring_obs.h"			/* hook: robs */
#include "ring_part.h"
#include "ring_sched.h"
#include "ring_unique.h"

static bool awa_ring_engine = false;

/* hook: sched -- set by awa_ring_sched_init (ring_sched.h) */
AwaRingSchedHooks awa_ring_sched_hooks;
bool		awa_ring_counting_off = false;

/* hook: unique -- set by awa_ring_unique_init (ring_unique.h) */
AwaRingUniqueReserve awa_ring_unique_reserve;

/* hook: rflow -- set by awa_ring_flow_init (ring_flow.h) */
AwaRingFlowHooks awa_ring_flow_hooks;

/* hook: renq -- set by awa_ring_enq_init (ring_enq.h) */
bool		(*awa_ring_enq_insert_hook) (const struct AwaJob *job, TimestampTz run_at, int64 *id) = NULL;

/* hook: rdeps -- set by awa_ring_deps_init (ring_deps.h) */
AwaRingDepsHooks awa_ring_deps_hooks;

/* hook: rclaimx -- a claim's time (ring.h) */
TimestampTz awa_ring_claim_clock = 0;
TimestampTz awa_ring_claim_at = 0;

/* hook: rext -- set by awa_ring_ext_init (ring.h) */
int			(*awa_ring_ext_cancel_parked) (Datum *values);

PG_FUNCTION_INFO_V1(awa_ring_insert);
PG_FUNCTION_INFO_V1(awa_ring_complete_many);
PG_FUNCTION_INFO_V1(awa_ring_fail);

/* awa.install_engine's values (src/sql/engine.sql reads it); ring is the default */
static int	awa_install_engine = 1;
static const struct config_enum_entry install_engine_options[] = {
	{"table", 0, false},
	{"ring", 1, false},
	{NULL, 0, false}
};

void
awa_ring_init(void)
{
	DefineCustomBoolVariable("awa.ring_engine",
							 "Lets the internal awa.ring_* functions run (the storage engine in development).",
							 "Only the ring's own tests and benchmark turn it on.",
							 &awa_ring_engine, false, PGC_SUSET,
							 GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomEnumVariable("awa.install_engine",
							 "Where CREATE EXTENSION awa and ALTER EXTENSION awa UPDATE keep a database's jobs: ring (the default) or table (the legacy engine).",
							 "ring: awa.jobs is a view of awa's storage; table: awa.jobs is a plain table, as before 0.3.0.",
							 &awa_install_engine, 1, install_engine_options, PGC_SUSET,
							 GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}

void
awa_ring_check_enabled(const char *fn)
{
	/* a database whose jobs are in the ring (src/sql/engine.sql) needs no switch */
	if (!awa_ring_engine && !awa_schema_has(AWA_SCHEMA_RING_ENGINE))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: the ring engine is internal and switched off", fn),
				 errhint("It is for awa's own tests (SET awa.ring_engine = on, as a superuser).")));
}

/* The floor lane of a ring queue (see the head of this file). */
char *
awa_ring_lane(text *queue)
{
	return psprintf("%s%s", RING_LANE_PREFIX, text_to_cstring(queue));
}

/*
 * Pin the plans' shape: index walks only (see the head of this file).
 * Returns the GUC nest level to pass to AtEOXact_GUC after the statement.
 */
int
awa_ring_pin_planner(void)
{
	static const char *const off[] = {
		"enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_hashjoin",
		"enable_mergejoin", "enable_material", "jit",
		/* hook: sched: else awa.scheduled's run_at index + an incremental sort on id */
		"enable_incremental_sort", NULL
	};
	int			nestlevel = NewGUCNestLevel();
	int			i;

	for (i = 0; off[i] != NULL; i++)
		(void) set_config_option(off[i], "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/*
 * Run a kept plan with the plan shape pinned; snapshot InvalidSnapshot: the
 * usual one.  Returns SPI_processed; any result but `expect` is an error.
 */
uint64
awa_ring_run(SPIPlanPtr plan, Datum *values, const char *nulls, Snapshot snapshot,
		 bool read_only, int expect, const char *what)
{
	int			nestlevel = awa_ring_pin_planner();
	MemoryContext cxt = CurrentMemoryContext;
	volatile int ret = 0;

	PG_TRY();
	{
		/*
		 * hook: counters -- fire_triggers: the counting triggers of the
		 * ring's relations (ring_read.c) run at the end of each statement
		 */
		if (snapshot != InvalidSnapshot)
			ret = SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot,
									   read_only, true, 0);
		else
			ret = SPI_execute_plan(plan, values, nulls, read_only, 0);
	}
	PG_CATCH();
	{
		/*
		 * An error the statement met (a user's: a concurrency key claimed in
		 * REPEATABLE READ, a lock_timeout) without the statement's text in
		 * its context: the user called awa_*, not this SQL
		 */
		ErrorData  *edata;
		List	   *sources = SPI_plan_get_plan_sources(plan);

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		awa_rethrow_outside_statement(edata, sources != NIL ?
									  ((CachedPlanSource *) linitial(sources))->query_string : "");
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	if (ret != expect)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
	return SPI_processed;
}

void
awa_ring_check_name(text *t, const char *field)
{
	int			len = pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));

	if (len < 1 || len > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 1 to 200 characters long", field)));
}

/* ---------------------------------------------------------------------
 * awa.ring_insert(kind, args, queue, priority, max_attempts, run_at, tags,
 *				   metadata, unique_by_args, unique_by_queue, unique_period,
 *				   unique_states, timeout, group_id, after, on_parent_failure,
 *				   concurrency_key)
 *
 * awa_insert's signature, read and checked by its code (insert.c), so that
 * both refuse the same input with the same errors.  "after" and group_id:
 * ring_deps.c (hook: rdeps).  A job's timeout and concurrency_key are kept
 * on its rows; the claim does not read them yet.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_insert(PG_FUNCTION_ARGS)
{
	AwaJob		job;

	awa_ring_check_enabled("awa.ring_insert");
	awa_insert_job_args(fcinfo, &job);
	PG_RETURN_INT64(awa_ring_insert_job(&job));
}

/* See ring.h. */
int64
awa_ring_insert_job(AwaJob *job_in)
{
	bool		fresh;
	bool		scheduled;

	return awa_ring_insert_job_ex(job_in, &fresh, &scheduled);
}

/* See ring.h. */
int64
awa_ring_insert_job_ex(AwaJob *job_in, bool *fresh, bool *scheduled_out)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[RING_INSERT_NARGS] = {TEXTOID, JSONBOID, TEXTOID, INT4OID, INT4OID,
		TIMESTAMPTZOID, INT8OID, BYTEAOID, TEXTOID, TEXTARRAYOID, JSONBOID, INTERVALOID, TEXTOID,
	TEXTOID};
	Datum		values[RING_INSERT_NARGS];
	char		nulls[RING_INSERT_NARGS];
	AwaJob		job = *job_in;
	int64		holder;
	TimestampTz run_at;
	int64		id;
	bool		scheduled;
	bool		isnull;

	/*
	 * hook: renq -- a plain job due now is written directly, inside a batch
	 * with the batch's others in one go (ring_enq.c); any other job reads
	 * the ring, so the kept rows are written first.
	 */
	run_at = job.has_run_at ? job.run_at : GetCurrentTransactionStartTimestamp();
	if (run_at <= GetCurrentTransactionStartTimestamp() && awa_ring_enq_insert_hook != NULL &&
		awa_ring_enq_insert_hook(&job, run_at, &id))
	{
		char	   *lane = awa_ring_lane(job.queue);

		awa_floor_note(lane, run_at);
		awa_lane_available(lane, true);
		*fresh = true;
		*scheduled_out = false;
		return id;
	}
	if (awa_ring_enq_flush_hook != NULL)
		awa_ring_enq_flush_hook();

	/* hook: rdeps: parents locked and read (23503); a waiting job is parked (ring_deps.c) */
	if (job.deps != NULL)
		awa_ring_deps_hooks.before_insert(&job);
	run_at = job.has_run_at ? job.run_at : GetCurrentTransactionStartTimestamp();

	memset(nulls, ' ', sizeof(nulls));
	values[0] = PointerGetDatum(job.kind);
	values[1] = JsonbPGetDatum(job.args);
	values[2] = PointerGetDatum(job.queue);
	values[3] = Int32GetDatum(job.priority);
	values[4] = Int32GetDatum(job.max_attempts);
	values[5] = TimestampTzGetDatum(run_at);
	values[9] = PointerGetDatum(job.tags);
	values[10] = JsonbPGetDatum(job.metadata);
	values[11] = PointerGetDatum(job.timeout);
	nulls[11] = job.timeout ? ' ' : 'n';
	values[12] = PointerGetDatum(job.group_id);
	nulls[12] = job.group_id ? ' ' : 'n';
	values[13] = PointerGetDatum(job.concurrency_key);
	nulls[13] = job.concurrency_key ? ' ' : 'n';

	SPI_connect();
	/* hook: unique: a unique job's key is taken first; when it is held, its holder's id (ring_unique.c) */
	holder = awa_ring_unique_reserve(&job, values, nulls);
	*fresh = false;
	*scheduled_out = false;
	if (holder != 0)
	{
		SPI_finish();
		return holder;
	}
	/* hook: sched: a job due later waits in awa.scheduled (ring_sched.c) */
	scheduled = run_at > GetCurrentTransactionStartTimestamp();
	id = scheduled ? awa_ring_sched_hooks.insert(values, nulls) : 0;
	awa_plan(&plan,
			 "INSERT INTO awa.ready (slot, id, kind, args, queue, priority, max_attempts, run_at,"
			 " unique_key, unique_states, tags, metadata, timeout, group_id, concurrency_key)"
			 " SELECT s.slot, coalesce($7, nextval('awa.jobs_id_seq')), $1, $2, $3, $4, $5, $6,"
			 " $8, $9::bit(8), $10, $11, $12, $13, $14"
			 " FROM awa.ring_slots s WHERE s.state = 'open'"
			 " RETURNING id",
			 RING_INSERT_NARGS, argtypes);
	if (id == 0 && awa_ring_run(plan, values, nulls, InvalidSnapshot, false, SPI_OK_INSERT_RETURNING,
				 "awa.ring_insert: insert") != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.ring_insert: the ring has no open slot")));
	if (id == 0)
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* hook: rdeps: the job's edges and its group membership (ring_deps.c) */
	if (job.deps != NULL || job.group_id != NULL)
		awa_ring_deps_hooks.after_insert(&job, id);
	/* the pin: the floor of this lane must not pass the job once committed */
	awa_floor_note(awa_ring_lane(job.queue), run_at);
	/* hook: rwait: waiters of the lane are woken at commit (a job due later: one looks again) */
	awa_lane_available(awa_ring_lane(job.queue), !scheduled);
	SPI_finish();
	*fresh = job.deps == NULL;
	*scheduled_out = scheduled;
	return id;
}

/* awa.ring_claim (one queue or several): ring_claim.c */

/*
 * The body of awa.ring_complete_many: a done row 'completed' for each
 * (ids[i], run_leases[i]) attempt that has a receipt and no done row yet;
 * rsinfo (NULL: none) gets the completed ids.  Returns how many.
 */
static uint64
ring_complete_many(ArrayType *ids, ArrayType *leases, ReturnSetInfo *rsinfo)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr slot_plans[AWA_RING_SLOT_PLANS];	/* ring_part.h */
	static const Oid argtypes[] = {INT8ARRAYOID, INT8ARRAYOID};
	static const char sql[] =
		"INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at)"
		" SELECT c.slot, d.id, d.lease, 'completed', now()"
		" FROM unnest($1, $2) AS d(id, lease) CROSS JOIN LATERAL"
		" (SELECT cl.slot FROM awa.claims cl WHERE cl.job_id = d.id AND cl.run_lease = d.lease"
		"  LIMIT 1) c"
	/* hook: rmisc -- in id order, as awa.jobs' bulk calls lock: two calls never deadlock */
		" ORDER BY d.id, d.lease"
		" ON CONFLICT DO NOTHING RETURNING job_id";
	Datum		values[2];
	uint64		n;
	uint64		i;
	Snapshot	snap;
	int			slot;

	awa_ring_check_enabled("awa.ring_complete_many");
	if (ARR_NDIM(ids) > 1 || ARR_NDIM(leases) > 1 ||
		ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)) !=
		ArrayGetNItems(ARR_NDIM(leases), ARR_DIMS(leases)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids and run_leases must be one-dimensional arrays of the same length")));

	values[0] = PointerGetDatum(ids);
	values[1] = PointerGetDatum(leases);
	SPI_connect();

	/*
	 * The receipts' partitions locked, the statement's snapshot, and when
	 * one slot holds every receipt it can see, only that slot's receipts
	 * are read (ring_part.c)
	 */
	slot = awa_ring_sole_slot("claims", false, &snap);
	n = awa_ring_run(slot >= 0 ? awa_ring_slot_plan(slot_plans, slot, sql, 2, argtypes)
					 : awa_plan(&plan, sql, 2, argtypes),
					 values, NULL, snap, false, SPI_OK_INSERT_RETURNING,
					 "awa.ring_complete_many: done rows");
	UnregisterSnapshot(snap);
	for (i = 0; rsinfo != NULL && i < n; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, &isnull);
	}
	SPI_finish();
	return n;
}

/* See ring.h. */
int64
awa_ring_complete_direct(Datum ids, Datum leases)
{
	return (int64) ring_complete_many(DatumGetArrayTypeP(ids), DatumGetArrayTypeP(leases), NULL);
}

/* ---------------------------------------------------------------------
 * awa.ring_complete_many(ids, run_leases)
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_complete_many(PG_FUNCTION_ARGS)
{
	ArrayType  *ids = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *leases = PG_GETARG_ARRAYTYPE_P(1);

	awa_ring_check_enabled("awa.ring_complete_many");
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ring_complete_many(ids, leases, (ReturnSetInfo *) fcinfo->resultinfo);
	return (Datum) 0;
}

/* See ring.h. */
void
awa_ring_errors_bound(Datum id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[4];

	/*
	 * One statement: the job's error rows, newest first (an index probe of
	 * each slot's done rows by job), the ones beyond the bound or too long
	 * rewritten.  The done rows are the job's own, bounded as its errors.
	 */
	awa_plan(&plan,
			 "UPDATE awa.done d SET error = CASE WHEN x.n > $2 + 1 THEN 'false'::jsonb"
			 " ELSE " AWA_ERROR_CUT_SQL("x.e", "$3", "$4") " END"
			 " FROM (SELECT e.slot, e.run_lease, e.after_wait,"
			 "  CASE WHEN " AWA_RING_ERROR_MARKED_SQL("e.error") " THEN e.error"
			 "  ELSE jsonb_build_object('error', e.error) END AS e,"
			 "  row_number() OVER (ORDER BY e.run_lease DESC, e.after_wait DESC) AS n"
			 "  FROM awa.done e WHERE e.job_id = $1 AND " AWA_RING_ERROR_ROW_SQL("e") ") x"
			 " WHERE d.job_id = $1 AND d.slot = x.slot AND d.run_lease = x.run_lease"
			 " AND d.after_wait = x.after_wait"
			 " AND (x.n > $2 + 1 OR coalesce(octet_length(x.e->>'error'), 0) > $3)",
			 4, types);
	values[0] = id;
	awa_errors_bounds(&values[1]);
	(void) awa_ring_run(plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_UPDATE,
						"awa.ring: bounding a job's errors");
}

/* ---------------------------------------------------------------------
 * awa.ring_fail(id, run_lease, error, retry, retry_in)
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_fail(PG_FUNCTION_ARGS)
{
	bool		ended;
	Datum		state;

	Interval   *retry_in;

	awa_ring_check_enabled("awa.ring_fail");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id and run_lease must not be null")));
	/* hook: sched: retry_in (NULL: the default backoff), checked as awa_fail does */
	retry_in = PG_NARGS() > 4 && !PG_ARGISNULL(4) ? PG_GETARG_INTERVAL_P(4) : NULL;
	if (retry_in != NULL)
		(void) awa_check_delay(retry_in, "retry_in", false);
	state = awa_ring_fail_attempt(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
								  PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2), PG_ARGISNULL(2),
								  PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3), retry_in, &ended);
	if (!ended)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(state);
}

/*
 * hook: lease -- ring_fail's logic, callable from C (ring_lease.c's rescue
 * ends an attempt past its deadline through it): end the attempt (id,
 * run_lease) as failed, retryable while retry and attempts remain (the
 * next attempt due after retry_in; NULL: awa's default backoff).  Returns
 * the state written with *ended true, or *ended false when that attempt was
 * not running (never claimed, already ended).
 */
Datum
awa_ring_fail_attempt(Datum id, Datum run_lease, Datum error, bool error_isnull, bool retry,
					  Interval *retry_in, bool *ended)
{
	static SPIPlanPtr attempt_plan = NULL;
	static SPIPlanPtr done_plan = NULL;
	static const Oid attempt_types[] = {INT8OID, INT8OID};
	static const Oid done_types[] = {INT2OID, INT8OID, INT8OID, TEXTOID, JSONBOID, INT4OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int16		slot;
	int32		attempt;
	int32		max_attempts;
	bool		retryable;
	Datum		state;
	char	   *queue = NULL;
	Snapshot	seen = InvalidSnapshot;	/* hook: slots */

	*ended = false;
	SPI_connect();
	awa_plan(&attempt_plan,
			 "SELECT c.slot, r.attempt + 1 AS attempt, r.max_attempts::integer, r.queue"
			 " FROM awa.claims c CROSS JOIN LATERAL"
			 " (SELECT r.attempt, r.max_attempts, r.queue FROM awa.ready r"
			 "  WHERE r.id = c.job_id AND r.run_lease = c.run_lease - 1 AND r.slot = c.slot LIMIT 1) r"
			 " WHERE c.job_id = $1 AND c.run_lease = $2 LIMIT 1",
			 2, attempt_types);
	values[0] = id;
	values[1] = run_lease;
	/*
	 * hook: slots.  No receipt with this snapshot: once more with a newer one,
	 * for a receipt carried forward by awa.ring_reclaim while this statement
	 * waited on its locks: this lookup is read-only and so runs with the
	 * caller's snapshot, taken before that wait (ring_slots.c).  Statements
	 * that are not read-only, as awa_ring_complete_many's, take theirs after
	 * their locks and need no retry.  The retry's ready row is then read with
	 * a newer snapshot too.
	 */
	if (awa_ring_run(attempt_plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
				 "awa.ring_fail: attempt") == 0 &&
		awa_ring_run(attempt_plan, values, NULL, (seen = GetLatestSnapshot()), true, SPI_OK_SELECT,
					 "awa.ring_fail: attempt") == 0)
	{
		SPI_finish();
		return (Datum) 0;		/* no such attempt was claimed */
	}
	slot = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	attempt = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	max_attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	queue = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	retryable = retry && attempt < max_attempts;

	awa_plan(&done_plan,
			 "INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at, error, attempt)"
			 " VALUES ($1, $2, $3, $4::awa.job_state, now(), $5, $6)"
			 " ON CONFLICT DO NOTHING RETURNING state",
			 6, done_types);
	values[0] = Int16GetDatum(slot);
	values[1] = id;
	values[2] = run_lease;
	values[3] = CStringGetTextDatum(retryable ? "retryable" : "failed");
	if (error_isnull)
		nulls[4] = 'n';
	else
		values[4] = error;
	/* the error's attempt number: run_lease counts snoozes too */
	values[5] = Int32GetDatum(attempt);
	if (awa_ring_run(done_plan, values, nulls, InvalidSnapshot, false, SPI_OK_INSERT_RETURNING,
				 "awa.ring_fail: done row") == 0)
	{
		SPI_finish();
		return (Datum) 0;		/* the attempt had already ended */
	}
	state = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	awa_ring_errors_bound(id);

	/* hook: sched: the next attempt, due after retry_in or the default backoff */
	if (retryable)
		awa_ring_sched_hooks.next(values, attempt, attempt, retry_in, "retryable", queue,
								  seen == InvalidSnapshot ? InvalidSnapshot : GetLatestSnapshot());
	SPI_finish();
	*ended = true;
	return state;
}
