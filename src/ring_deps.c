/*-------------------------------------------------------------------------
 *
 * ring_deps.c
 *		Dependencies (fan-in), parent results and groups on the ring
 *		(docs/storage.md, "Step 5: dependencies and groups on the ring"):
 *		the promises of deps.c and groups.c for ring jobs.  Internal like
 *		ring.c: every function refuses to run unless awa.ring_engine is on.
 *
 * Data (src/sql/awa.sql, "The ring: dependencies and groups"): side tables
 * of their own, so that awa.jobs' triggers never see a ring job and the
 * ring never reads awa.jobs.  awa.ring_dependencies, one row per (job,
 * parent) with satisfied; awa.ring_dependents, one row per dependent:
 * waiting_for, on_parent_failure, the run_at its producer asked for;
 * awa.ring_group_jobs, one row per ring job of a group; and
 * awa.ring_group_callbacks, a group's finish callback.  A parent is a ring
 * job: an id that only awa.jobs holds is "not found" (23503), as after the
 * switch there is only the ring.
 *
 * Waiting.  A dependent that waits is a scheduled row (awa.scheduled) with
 * run_at 9999-12-30 UTC (AWA_DEPS_WAIT_RUN_AT, as deps.c parks it): never
 * due, so neither the claim's promotion nor awa.ring_promote takes it (both
 * walk run_at <= now() as an index condition: the parked rows are past the
 * end of their range, never read), while awa.ring_cancel, the counters
 * (scheduled), awa.ring_jobs and awa.ring_get need nothing new.  Released:
 * due now, its scheduled row is promoted (deleted, written as a ready row
 * of the open slot, in one statement, as ring_sched.c promotes); due later,
 * its run_at becomes the one asked for.  Either notes its run_at for the
 * floor's pin and wakes the lane at commit, as an enqueue does.
 *
 * Finishing: one trigger, awa.ring_deps_finished, AFTER INSERT FOR EACH
 * STATEMENT on awa.done with its transition table.  Every end of a ring
 * attempt is a done row (complete_many, fail, rescue, cancel, timeouts,
 * external completion and failure, any end added later), and only a
 * completed, failed or cancelled row ends a job for good; retryable,
 * scheduled (snooze), waiting_external and available (the end of a wait by
 * ring_retry) rows are not ends of the job.  The reclaim's carry copies
 * done rows into the open slot with awa_ring_counting_off set (ring.h):
 * those are the same ends again, and the trigger returns at once.  The
 * trigger reads the transition table in C; a statement without a final
 * row, or a database where no ring job ever named a parent or joined a
 * group (awa.ring_dependencies and awa.ring_group_jobs have no page: one
 * file size look-up each), costs nothing more.
 *
 * Exactly once, against a concurrent insert.  A parent finishing while a
 * dependent naming it is inserted: the insert reads the parent's state, the
 * finisher reads the parent's edges; neither sees the other's uncommitted
 * row.  They meet on a transaction-level advisory lock per parent (one of
 * RING_DEPS_BUCKETS buckets of the id, so that a completion of 1000 jobs
 * holds at most that many locks): the insert takes its parents' buckets
 * exclusively before reading them, the trigger takes the buckets of the
 * jobs it finished shared before reading their edges, and both read with
 * the newest snapshot, so whoever comes second sees the first's commit.
 * Finishers never wait for each other; inserts of dependents of one bucket
 * take turns.  The page check leaves one window: a finisher that looked
 * before the first edge ever was written.  The insert that finds
 * awa.ring_dependencies without a page therefore first locks awa.done in
 * SHARE mode: it waits for every transaction that wrote a done row and
 * holds back new ones until it commits (once per database, or after a
 * VACUUM truncated the table to nothing).
 *
 * Exactly once, between two parents.  Two transactions finishing two
 * parents of one dependent both satisfy their edge, then lock the
 * dependent's awa.ring_dependents row (FOR NO KEY UPDATE, in job id order)
 * and count it down with the newest snapshot: the second reads the first's
 * count, and only the one that takes it to 0 releases the job.
 *
 * Policies (on_parent_failure) when a parent fails for good or is
 * cancelled: "run" satisfies the edge; "wait" leaves it (a retry of the
 * parent that completes satisfies it later); "cancel" cancels a waiting
 * dependent: its scheduled row becomes a ready row of the open slot with a
 * done row 'cancelled' (as awa.ring_cancel cancels a scheduled job; the
 * error names the parent), and that done row fires this trigger again for
 * its own dependents (the cascade).
 *
 * Groups (groups.c's protocol, with its two advisory locks, awa_group_lock):
 * an insert of a ring job with group_id takes the group's enqueue lock
 * shared and writes its awa.ring_group_jobs row; the trigger takes the
 * finish lock shared for each group some job of which the statement ended
 * for good, looks for the group's pending callback in the newest snapshot,
 * and if there is one takes the enqueue lock exclusively and enqueues the
 * callback job through awa.ring_insert when, in the newest snapshot, no ring
 * job of the group is unfinished; awa.ring_group_on_finish takes both locks
 * exclusively, registers and checks the same way.  Ring groups have their
 * own callbacks (awa.ring_group_callbacks): awa_group_on_finish and
 * awa_group_stats count awa.jobs only, as before.
 *
 * Plans as in ring.c: generic, pinned (awa_ring_run), index probes only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "deps.h"
#include "floor.h"
#include "groups.h"
#include "ring.h"
#include "ring_deps.h"
#include "ring_history.h"

/* the advisory lock space of a parent's bucket (awa.h has 0x61776701-2) */
#define RING_DEPS_LOCK		0x61776703
#define RING_DEPS_BUCKETS	64

/* the run_at of a waiting dependent, as SQL (deps.h) */
#define RING_WAIT_SQL		AWA_DEPS_WAIT_RUN_AT_SQL

#define RING_UNFINISHED_SQL \
	"('scheduled', 'available', 'running', 'retryable', 'waiting_external')"

PG_FUNCTION_INFO_V1(awa_ring_deps_finished);
PG_FUNCTION_INFO_V1(awa_ring_parent_results);
PG_FUNCTION_INFO_V1(awa_ring_group_stats);
PG_FUNCTION_INFO_V1(awa_ring_group_on_finish);

static const char *const policy_names[] = {"cancel", "run", "wait"};

static void ring_deps_before_insert(AwaJob *job);
static void ring_deps_after_insert(AwaJob *job, int64 id);

/* ring.c's hooks into this file (ring_deps.h); from _PG_init */
void
awa_ring_deps_init(void)
{
	awa_ring_deps_hooks.before_insert = ring_deps_before_insert;
	awa_ring_deps_hooks.after_insert = ring_deps_after_insert;
}

/* ---------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------
 */

/* Column col (1-based) of every row of the last SPI result, as int64s. */
static int64 *
result_int8s(int col)
{
	int64	   *v = palloc(sizeof(int64) * Max(SPI_processed, 1));
	uint64		i;
	bool		isnull;

	for (i = 0; i < SPI_processed; i++)
		v[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, col, &isnull));
	return v;
}

/*
 * Whether the relation name of schema nsp has ever held a row: it has a
 * page.  One file size look-up (deps.c's test for awa.jobs).
 */
static bool
ever_written(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);
	Relation	rel;
	BlockNumber pages;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	pages = RelationGetNumberOfBlocks(rel);
	table_close(rel, AccessShareLock);
	return pages > 0;
}

/*
 * Take the bucket locks of the jobs ids (see the top of this file) in
 * ascending order, each once: ExclusiveLock for an insert naming them as
 * parents, ShareLock for a statement that finished them.
 */
static void
lock_buckets(const int64 *ids, int n, LOCKMODE mode)
{
	bool		seen[RING_DEPS_BUCKETS] = {0};
	int			i;

	for (i = 0; i < n; i++)
		seen[DatumGetUInt32(hash_any((const unsigned char *) &ids[i], sizeof(int64))) %
			 RING_DEPS_BUCKETS] = true;
	for (i = 0; i < RING_DEPS_BUCKETS; i++)
	{
		LOCKTAG		tag;

		if (!seen[i])
			continue;
		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, RING_DEPS_LOCK, i, 2);
		(void) LockAcquire(&tag, mode, false, false);
	}
}

/* ---------------------------------------------------------------------
 * Cancelling waiting dependents (the policy "cancel")
 * ---------------------------------------------------------------------
 */

/*
 * Cancel the jobs ids[i] that still wait for parents (a scheduled row at
 * the waiting run_at, locked), naming parent_ids[i] in state states[i]: as
 * awa.ring_cancel cancels a scheduled job, the scheduled row becomes a
 * ready row of the open slot with a done row 'cancelled' (its error says
 * why).  That done row fires awa.ring_deps_finished for their own
 * dependents.  Its error needs no bound (awa_ring_errors_bound): a waiting
 * job has no error of its own, and the text is shorter than
 * awa.max_error_bytes' least value.  Caller is in SPI.
 */
static void
cancel_waiting(Datum ids, Datum parent_ids, Datum states)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
	Datum		values[3];

	awa_plan(&plan,
			 "WITH x AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS x(id, parent_id, pstate)),"
			 " s AS (SELECT w.id FROM x CROSS JOIN LATERAL"
			 "   (SELECT s.id FROM awa.scheduled s WHERE s.id = x.id AND s.run_at = " RING_WAIT_SQL
			 "    FOR UPDATE OF s) w),"
			 " d AS (DELETE FROM awa.scheduled o USING s WHERE o.id = s.id RETURNING o.*),"
			 " r AS (INSERT INTO awa.ready (slot, id, run_lease, attempt, run_at, " RING_JOB_COLS ")"
			 "   SELECT (SELECT o.slot FROM awa.ring_slots o WHERE o.state = 'open'), d.id, d.run_lease,"
			 "   d.attempt, d.run_at, " RING_JOB_COLS_OF("d.") " FROM d"
			 "   RETURNING slot, id, run_lease)"
			 " INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at, error)"
			 " SELECT r.slot, r.id, r.run_lease + 1, 'cancelled', now(),"
			 "   (SELECT pg_catalog.to_jsonb(pg_catalog.format('cancelled: job %s it runs after is %s',"
			 "     x.parent_id, x.pstate)) FROM x WHERE x.id = r.id LIMIT 1)"
			 " FROM r",
			 3, (Oid *) argtypes);
	values[0] = ids;
	values[1] = parent_ids;
	values[2] = states;
	awa_ring_run(plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT,
				 "awa.ring: cancelling dependents of a failed job");
}

/* ---------------------------------------------------------------------
 * Insert (hooks of awa.ring_insert)
 * ---------------------------------------------------------------------
 */

/*
 * Before a job that names parents is written: lock and read them (see the
 * top of this file), 23503 naming the first that is not a ring job; decide
 * from their states whether the job waits (its run_at becomes
 * AWA_DEPS_WAIT_RUN_AT, the one asked for kept in deps), is cancelled at
 * once, or runs as if it named none.  deps.c's rules.
 */
static void
ring_deps_before_insert(AwaJob *job)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID};
	AwaDeps    *deps = job->deps;
	Datum		ids;
	uint64		r;
	int			i;

	/* allocated before SPI_connect: they outlive SPI_finish */
	deps->satisfied = palloc0(sizeof(bool) * deps->n);
	SPI_connect();
	/* no reclaim or expiry drops a finished parent between this read and the commit (ring_history.c) */
	awa_ring_finished_need();
	/* the first edge of this database: no finisher may have skipped it (top of file) */
	if (!ever_written(get_namespace_oid("awa", false), "ring_dependencies"))
		LockRelationOid(get_relname_relid("done", get_namespace_oid("awa", false)), ShareLock);
	lock_buckets(deps->parents, deps->n, ExclusiveLock);

	awa_plan(&plan,
			 "SELECT p.id, j.state::text AS state FROM unnest($1::bigint[]) AS p(id)"
			 " LEFT JOIN LATERAL awa.ring_get(p.id) j ON true"
			 " WHERE j.id IS NOT NULL ORDER BY p.id",
			 1, (Oid *) argtypes);
	ids = awa_int8_array(deps->parents, deps->n);
	/* the newest snapshot, after the locks: a finisher that went first has committed */
	awa_ring_run(plan, &ids, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
				 "awa.ring_insert: reading the parents");
	deps->waiting_for = 0;
	deps->cancel_by = 0;
	/* both lists ascend: walk them together */
	for (i = 0, r = 0; i < deps->n; i++)
	{
		bool		isnull;
		char	   *state;
		bool		final_bad;

		if (r >= SPI_processed ||
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)) !=
			deps->parents[i])
		{
			/* hook: rresults -- where the ring is the engine (awa.jobs is its view): awa_insert's words (deps.c) */
			if (awa_schema_has(AWA_SCHEMA_RING_ENGINE))
				ereport(ERROR,
						(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
						 errmsg("job %lld named in after does not exist", (long long) deps->parents[i]),
						 errdetail("A job can run only after jobs that exist in the same database.")));
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("job %lld named in after does not exist in the ring",
							(long long) deps->parents[i]),
					 errdetail("A ring job can run only after ring jobs of the same database.")));
		}
		state = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
		r++;
		final_bad = strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0;
		deps->satisfied[i] = strcmp(state, "completed") == 0 ||
			(final_bad && deps->on_failure == AWA_ON_PARENT_FAILURE_RUN);
		if (final_bad && deps->on_failure == AWA_ON_PARENT_FAILURE_CANCEL && deps->cancel_by == 0)
		{
			deps->cancel_by = deps->parents[i];
			deps->cancel_state = strcmp(state, "failed") == 0 ? "failed" : "cancelled";
		}
		if (!deps->satisfied[i])
			deps->waiting_for++;
	}
	SPI_finish();

	deps->has_run_at = job->has_run_at;
	deps->run_at = job->run_at;
	if (deps->waiting_for > 0)
	{
		job->has_run_at = true;
		job->run_at = AWA_DEPS_WAIT_RUN_AT;
	}
}

/*
 * After the job (id) was written: its edges and policy; cancelled at once
 * when a parent already failed or was cancelled under "cancel"; its group
 * membership (and the group's enqueue lock, held until commit).  Caller is
 * in SPI.
 */
static void
ring_deps_after_insert(AwaJob *job, int64 id)
{
	static SPIPlanPtr edges = NULL;
	static SPIPlanPtr member = NULL;
	static const Oid edge_types[] = {INT8OID, INT8ARRAYOID, BOOLARRAYOID, INT4OID, TEXTOID,
	TIMESTAMPTZOID};
	static const Oid member_types[] = {INT8OID, TEXTOID};
	AwaDeps    *deps = job->deps;

	if (deps != NULL)
	{
		Datum		values[6];
		char		nulls[6] = "      ";
		Datum	   *sat = palloc(sizeof(Datum) * deps->n);
		int			i;

		for (i = 0; i < deps->n; i++)
			sat[i] = BoolGetDatum(deps->satisfied[i]);
		awa_plan(&edges,
				 "WITH w AS (INSERT INTO awa.ring_dependents (job_id, waiting_for, on_parent_failure, run_at)"
				 "   VALUES ($1, $4, $5, $6))"
				 " INSERT INTO awa.ring_dependencies (job_id, parent_id, satisfied)"
				 " SELECT $1, p, s FROM unnest($2::bigint[], $3::boolean[]) AS u(p, s)",
				 6, (Oid *) edge_types);
		values[0] = Int64GetDatum(id);
		values[1] = awa_int8_array(deps->parents, deps->n);
		values[2] = PointerGetDatum(construct_array(sat, deps->n, BOOLOID, 1, true, TYPALIGN_CHAR));
		values[3] = Int32GetDatum(deps->waiting_for);
		values[4] = CStringGetTextDatum(policy_names[deps->on_failure]);
		values[5] = TimestampTzGetDatum(deps->run_at);
		if (!deps->has_run_at)
			nulls[5] = 'n';
		awa_ring_run(edges, values, nulls, InvalidSnapshot, false, SPI_OK_INSERT,
					 "awa.ring_insert: recording the parents");
		if (deps->cancel_by != 0)
		{
			Datum		st = CStringGetTextDatum(deps->cancel_state);

			cancel_waiting(awa_int8_array(&id, 1), awa_int8_array(&deps->cancel_by, 1),
						   PointerGetDatum(construct_array(&st, 1, TEXTOID, -1, false, TYPALIGN_INT)));
		}
	}
	if (job->group_id != NULL)
	{
		Datum		values[2];

		/* groups.c's enqueue lock, shared, until commit */
		awa_group_lock_enqueue(job->group_id);
		awa_plan(&member,
				 "INSERT INTO awa.ring_group_jobs (job_id, group_id) VALUES ($1, $2)",
				 2, (Oid *) member_types);
		values[0] = Int64GetDatum(id);
		values[1] = PointerGetDatum(job->group_id);
		awa_ring_run(member, values, NULL, InvalidSnapshot, false, SPI_OK_INSERT,
					 "awa.ring_insert: group membership");
	}
}

/* ---------------------------------------------------------------------
 * Finishing: releasing dependents
 * ---------------------------------------------------------------------
 */

/*
 * Release the dependents that the finished jobs ids (completed: those of
 * them that completed) let go.  Caller is in SPI and holds the ids' bucket
 * locks.
 */
static void
release_dependents(int64 *ids, int n, int64 *completed, int ncompleted)
{
	static SPIPlanPtr satisfy = NULL;
	static SPIPlanPtr lock = NULL;
	static SPIPlanPtr count_down = NULL;
	static SPIPlanPtr now_plan = NULL;
	static SPIPlanPtr later_plan = NULL;
	static const Oid satisfy_types[] = {INT8ARRAYOID, INT8ARRAYOID};
	static const Oid count_types[] = {INT8ARRAYOID, INT4ARRAYOID};
	static const Oid later_types[] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[2];
	Datum	   *counts;
	int64	   *now_ids;
	int64	   *later_ids;
	Datum	   *later_at;
	int			nnow = 0,
				nlater = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	uint64		k,
				i;
	bool		isnull;

	/* the edges of the finished jobs that release their dependent */
	awa_plan(&satisfy,
			 "WITH e AS (UPDATE awa.ring_dependencies d SET satisfied = true"
			 "   FROM awa.ring_dependents w"
			 "   WHERE d.parent_id = ANY($1) AND NOT d.satisfied AND w.job_id = d.job_id"
			 "     AND (d.parent_id = ANY($2) OR w.on_parent_failure = 'run')"
			 "   RETURNING d.job_id)"
			 " SELECT job_id, count(*)::integer AS n FROM e GROUP BY job_id ORDER BY job_id",
			 2, (Oid *) satisfy_types);
	args[0] = awa_int8_array(ids, n);
	args[1] = awa_int8_array(completed, ncompleted);
	k = awa_ring_run(satisfy, args, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
					 "awa.ring: satisfying dependencies");
	if (k == 0)
		return;
	args[0] = awa_int8_array(result_int8s(1), (int) k);
	counts = palloc(sizeof(Datum) * k);
	for (i = 0; i < k; i++)
		counts[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
	args[1] = PointerGetDatum(construct_array(counts, (int) k, INT4OID, 4, true, TYPALIGN_INT));

	/* in id order: two finishers of parents of the same dependents queue up */
	awa_plan(&lock,
			 "SELECT job_id FROM awa.ring_dependents WHERE job_id = ANY($1)"
			 " ORDER BY job_id FOR NO KEY UPDATE",
			 1, (Oid *) count_types);
	awa_ring_run(lock, args, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
				 "awa.ring: locking dependents");
	awa_plan(&count_down,
			 "UPDATE awa.ring_dependents w SET waiting_for = w.waiting_for - u.n"
			 " FROM unnest($1::bigint[], $2::integer[]) AS u(job_id, n)"
			 " WHERE w.job_id = u.job_id"
			 " RETURNING w.job_id, w.waiting_for, w.run_at",
			 2, (Oid *) count_types);
	k = awa_ring_run(count_down, args, NULL, GetLatestSnapshot(), false, SPI_OK_UPDATE_RETURNING,
					 "awa.ring: counting down dependents");

	/* the dependents now waiting for nothing: due now, or later */
	now_ids = palloc(sizeof(int64) * Max(k, 1));
	later_ids = palloc(sizeof(int64) * Max(k, 1));
	later_at = palloc(sizeof(Datum) * Max(k, 1));
	for (i = 0; i < k; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		atnull;
		Datum		at;

		if (DatumGetInt32(SPI_getbinval(t, d, 2, &isnull)) != 0)
			continue;
		at = SPI_getbinval(t, d, 3, &atnull);
		if (!atnull && DatumGetTimestampTz(at) > now)
		{
			later_ids[nlater] = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
			later_at[nlater++] = at;
		}
		else
			now_ids[nnow++] = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
	}

	if (nnow > 0)
	{
		/* promoted: a ready row of the open slot, due now (ring_sched.c's promotion) */
		awa_plan(&now_plan,
				 "WITH s AS (SELECT s.id FROM awa.scheduled s WHERE s.id = ANY($1)"
				 "   AND s.run_at = " RING_WAIT_SQL " ORDER BY s.id FOR UPDATE),"
				 " d AS (DELETE FROM awa.scheduled o USING s WHERE o.id = s.id RETURNING o.*)"
				 " INSERT INTO awa.ready (slot, id, run_lease, attempt, run_at, " RING_JOB_COLS ")"
				 " SELECT (SELECT o.slot FROM awa.ring_slots o WHERE o.state = 'open'), d.id, d.run_lease,"
				 " d.attempt, now(), " RING_JOB_COLS_OF("d.") " FROM d"
				 " RETURNING queue",
				 1, (Oid *) later_types);
		args[0] = awa_int8_array(now_ids, nnow);
		k = awa_ring_run(now_plan, args, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
						 "awa.ring: releasing dependents");
		for (i = 0; i < k; i++)
		{
			char	   *lane = psprintf("%s%s", RING_LANE_PREFIX,
										TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
																		  SPI_tuptable->tupdesc, 1, &isnull)));

			/* the pin, and the lane's waiters woken at commit, as an enqueue */
			awa_floor_note(lane, now);
			awa_lane_available(lane, true);
		}
	}
	if (nlater > 0)
	{
		awa_plan(&later_plan,
				 "UPDATE awa.scheduled s SET run_at = r.run_at"
				 " FROM unnest($1::bigint[], $2::timestamptz[]) AS r(id, run_at)"
				 " WHERE s.id = r.id AND s.run_at = " RING_WAIT_SQL
				 " RETURNING s.queue, s.run_at",
				 2, (Oid *) later_types);
		args[0] = awa_int8_array(later_ids, nlater);
		args[1] = PointerGetDatum(construct_array(later_at, nlater, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		k = awa_ring_run(later_plan, args, NULL, GetLatestSnapshot(), false, SPI_OK_UPDATE_RETURNING,
						 "awa.ring: releasing dependents due later");
		for (i = 0; i < k; i++)
		{
			char	   *lane = psprintf("%s%s", RING_LANE_PREFIX,
										TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
																		  SPI_tuptable->tupdesc, 1, &isnull)));

			awa_floor_note(lane, DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i],
																   SPI_tuptable->tupdesc, 2, &isnull)));
			awa_lane_available(lane, false);
		}
	}
}

/*
 * The dependents under "cancel" of the failed or cancelled jobs ids
 * (states: theirs) that still wait for them: cancelled.  Caller is in SPI.
 */
static void
cancel_dependents(int64 *ids, char **states, int n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID};
	Datum		arg = awa_int8_array(ids, n);
	int64	   *deps;
	int64	   *parents;
	Datum	   *pstates;
	uint64		k,
				i;
	int			j;

	awa_plan(&plan,
			 "SELECT d.job_id, min(d.parent_id) AS parent_id FROM awa.ring_dependencies d"
			 " JOIN awa.ring_dependents w ON w.job_id = d.job_id"
			 " WHERE d.parent_id = ANY($1) AND NOT d.satisfied AND w.on_parent_failure = 'cancel'"
			 " GROUP BY d.job_id ORDER BY d.job_id",
			 1, (Oid *) argtypes);
	k = awa_ring_run(plan, &arg, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring: finding the dependents of failed jobs");
	if (k == 0)
		return;
	deps = result_int8s(1);
	parents = result_int8s(2);
	pstates = palloc(sizeof(Datum) * k);
	for (i = 0; i < k; i++)
	{
		const char *s = "failed";

		for (j = 0; j < n; j++)
			if (ids[j] == parents[i])
				s = states[j];
		pstates[i] = CStringGetTextDatum(s);
	}
	cancel_waiting(awa_int8_array(deps, (int) k), awa_int8_array(parents, (int) k),
				   PointerGetDatum(construct_array(pstates, (int) k, TEXTOID, -1, false, TYPALIGN_INT)));
}

/* ---------------------------------------------------------------------
 * Finishing: groups
 * ---------------------------------------------------------------------
 */

/*
 * If the ring group has a pending callback and no unfinished ring job, in
 * the newest snapshot, enqueue the callback job through awa.ring_insert and
 * record it; returns its id, or 0.  The members are read newest first (the
 * index on (group_id, job_id) backward) and the walk stops at the first
 * unfinished one: jobs are mostly claimed in id order, so while a group
 * runs its newest job is usually unfinished and the check is one probe (an
 * unordered walk read every finished member first: a completion of 10 of
 * a 2000-job group took 760 ms at the end).  Caller is in SPI and holds the
 * group's enqueue lock exclusively.
 */
static int64
ring_fire_if_finished(Datum group_id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID};
	bool		isnull;

	awa_plan(&plan,
			 "WITH c AS (SELECT c.group_id, c.kind, c.args, c.queue, c.priority, c.max_attempts, c.metadata"
			 "   FROM awa.ring_group_callbacks c"
			 "   WHERE c.group_id = $1 AND c.callback_job_id IS NULL"
			 "   AND (SELECT 1 FROM awa.ring_group_jobs g CROSS JOIN LATERAL awa.ring_get(g.job_id) j"
			 "     WHERE g.group_id = c.group_id AND j.state IN " RING_UNFINISHED_SQL
			 "     ORDER BY g.job_id DESC LIMIT 1) IS NULL),"
			 " j AS (SELECT awa.ring_insert(c.kind, c.args, c.queue, c.priority::integer,"
			 "   c.max_attempts::integer,"
			 "   metadata => c.metadata || pg_catalog.jsonb_build_object('finished_group', c.group_id)) AS id"
			 "   FROM c)"
			 " UPDATE awa.ring_group_callbacks g SET callback_job_id = j.id,"
			 "   finished_at = pg_catalog.statement_timestamp()"
			 " FROM j WHERE g.group_id = $1 RETURNING j.id",
			 1, (Oid *) argtypes);
	if (awa_ring_run(plan, &group_id, NULL, GetLatestSnapshot(), false, SPI_OK_UPDATE_RETURNING,
					 "awa.ring: enqueueing a group's callback") == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * A statement ended ring jobs ids of some groups for good: for each group,
 * in name order, groups.c's protocol (the top of this file).  Caller is in
 * SPI.
 */
static void
finish_groups(int64 *ids, int n)
{
	static SPIPlanPtr groups = NULL;
	static SPIPlanPtr pending = NULL;
	static const Oid ids_type[] = {INT8ARRAYOID};
	static const Oid text_type[] = {TEXTOID};
	Datum		arg = awa_int8_array(ids, n);
	Datum	   *names;
	uint64		k,
				i;
	bool		isnull;

	awa_plan(&groups,
			 "SELECT DISTINCT g.group_id COLLATE \"C\" FROM awa.ring_group_jobs g WHERE g.job_id = ANY($1)"
			 " ORDER BY 1",
			 1, (Oid *) ids_type);
	k = awa_ring_run(groups, &arg, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa.ring: the groups of finished jobs");
	if (k == 0)
		return;
	names = palloc(sizeof(Datum) * k);
	for (i = 0; i < k; i++)
		names[i] = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull),
									 false, -1);
	awa_plan(&pending,
			 "SELECT 1 FROM awa.ring_group_callbacks WHERE group_id = $1 AND callback_job_id IS NULL",
			 1, (Oid *) text_type);
	for (i = 0; i < k; i++)
	{
		text	   *g = DatumGetTextPP(names[i]);

		awa_group_lock(AWA_GROUP_FINISH_LOCK, VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g), ShareLock);
		if (awa_ring_run(pending, &names[i], NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
						 "awa.ring: a group's pending callback") == 0)
			continue;
		awa_group_lock(AWA_GROUP_ENQUEUE_LOCK, VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g), ExclusiveLock);
		(void) ring_fire_if_finished(names[i]);
	}
}

/* ---------------------------------------------------------------------
 * The trigger
 * ---------------------------------------------------------------------
 */

/*
 * awa.ring_deps_finished() — AFTER INSERT REFERENCING NEW TABLE FOR EACH
 * STATEMENT trigger of awa.done: the jobs the statement ended for good
 * release or cancel their dependents and may finish their groups (see the
 * top of this file).
 */
Datum
awa_ring_deps_finished(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	static Oid	enum_type = InvalidOid;
	static Datum finals[3];		/* completed, failed, cancelled */
	static const char *const final_names[] = {"completed", "failed", "cancelled"};
	TupleDesc	desc;
	TupleTableSlot *row;
	int			a_id,
				a_state;
	int64	   *ids = NULL;
	int64	   *completed = NULL;
	char	  **states = NULL;
	int			n = 0,
				ncompleted = 0,
				cap = 0;
	Oid			nsp;
	bool		deps_ever,
				groups_ever;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		td->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_deps_finished must be an AFTER INSERT FOR EACH STATEMENT trigger"
						" with a new table")));
	if (awa_ring_counting_off)
		return PointerGetDatum(NULL);	/* a carry: the same ends again (ring.h) */

	desc = RelationGetDescr(td->tg_relation);
	a_id = SPI_fnumber(desc, "job_id");
	a_state = SPI_fnumber(desc, "state");
	if (a_id <= 0 || a_state <= 0)
		elog(ERROR, "awa.ring_deps_finished: awa.done has no job_id or state");
	if (enum_type != TupleDescAttr(desc, a_state - 1)->atttypid)
	{
		int			i;

		for (i = 0; i < 3; i++)
			finals[i] = DirectFunctionCall2(enum_in, CStringGetDatum(final_names[i]),
											ObjectIdGetDatum(TupleDescAttr(desc, a_state - 1)->atttypid));
		enum_type = TupleDescAttr(desc, a_state - 1)->atttypid;
	}

	/* the jobs the statement ended for good */
	row = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(td->tg_newtable);
	while (tuplestore_gettupleslot(td->tg_newtable, true, false, row))
	{
		bool		isnull;
		Datum		s = slot_getattr(row, a_state, &isnull);
		int			k;

		if (isnull)
			continue;
		for (k = 0; k < 3; k++)
			if (s == finals[k])
				break;
		if (k == 3)
			continue;
		if (n == cap)
		{
			cap = cap == 0 ? 16 : cap * 2;
			ids = ids == NULL ? palloc(sizeof(int64) * cap) : repalloc(ids, sizeof(int64) * cap);
			completed = completed == NULL ? palloc(sizeof(int64) * cap) :
				repalloc(completed, sizeof(int64) * cap);
			states = states == NULL ? palloc(sizeof(char *) * cap) : repalloc(states, sizeof(char *) * cap);
		}
		ids[n] = DatumGetInt64(slot_getattr(row, a_id, &isnull));
		states[n++] = (char *) final_names[k];
		if (k == 0)
			completed[ncompleted++] = ids[n - 1];
	}
	tuplestore_rescan(td->tg_newtable);
	ExecDropSingleTupleTableSlot(row);
	if (n == 0)
		return PointerGetDatum(NULL);

	/* no ring job ever named a parent or joined a group: nothing to do */
	nsp = RelationGetNamespace(td->tg_relation);
	deps_ever = ever_written(nsp, "ring_dependencies");
	groups_ever = ever_written(nsp, "ring_group_jobs");
	if (!deps_ever && !groups_ever)
		return PointerGetDatum(NULL);

	SPI_connect();
	if (deps_ever)
	{
		lock_buckets(ids, n, ShareLock);
		release_dependents(ids, n, completed, ncompleted);
		/* some failed or were cancelled: their "cancel" dependents go (a cascade) */
		if (ncompleted < n)
			cancel_dependents(ids, states, n);
	}
	if (groups_ever)
		finish_groups(ids, n);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * awa.ring_parent_results(job_id bigint) RETURNS TABLE (parent_id, kind,
 * state, satisfied, result, finalized_at)
 *
 * awa_parent_results for a ring job: its parents in id order, each read
 * through awa.ring_get at the caller's snapshot (kind and state NULL for a
 * parent the ring no longer holds).  22023: job_id NULL; 55000: the ring is
 * off.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_parent_results(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		id;
	uint64		k,
				i;

	awa_ring_check_enabled("awa.ring_parent_results");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job_id must not be null")));
	id = PG_GETARG_DATUM(0);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	awa_plan(&plan,
			 "SELECT d.parent_id, j.kind, j.state, d.satisfied, j.result, j.finalized_at"
			 " FROM awa.ring_dependencies d LEFT JOIN LATERAL awa.ring_get(d.parent_id) j ON true"
			 " WHERE d.job_id = $1 ORDER BY d.parent_id",
			 1, (Oid *) argtypes);
	k = awa_ring_run(plan, &id, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa.ring_parent_results");
	for (i = 0; i < k; i++)
	{
		Datum		values[6];
		bool		nulls[6];
		int			c;

		for (c = 0; c < 6; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * awa.ring_group_stats(group_id), awa.ring_group_on_finish(...)
 * ---------------------------------------------------------------------
 */

/* A ring function's argument that must not be NULL (22023 naming it). */
static void
ring_not_null(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", name)));
}

/*
 * awa.ring_group_stats(group_id text) RETURNS TABLE (total, scheduled, ...,
 * unfinished, callback_job_id, finished_at)
 *
 * awa_group_stats' row for the group's ring jobs, read at the caller's
 * snapshot (each member through awa.ring_get), and its ring callback.
 * 22023: group_id NULL or not 1 to 200 characters; 55000: the ring is off.
 */
Datum
awa_ring_group_stats(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		g;
	Datum		values[12];
	bool		nulls[12];
	int			i;

	awa_ring_check_enabled("awa.ring_group_stats");
	ring_not_null(fcinfo, 0, "group_id");
	awa_ring_check_name(PG_GETARG_TEXT_PP(0), "group_id");
	g = PG_GETARG_DATUM(0);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	awa_plan(&plan,
			 "SELECT count(*) AS total,"
			 " count(*) FILTER (WHERE j.state = 'scheduled') AS scheduled,"
			 " count(*) FILTER (WHERE j.state = 'available') AS available,"
			 " count(*) FILTER (WHERE j.state = 'running') AS running,"
			 " count(*) FILTER (WHERE j.state = 'completed') AS completed,"
			 " count(*) FILTER (WHERE j.state = 'retryable') AS retryable,"
			 " count(*) FILTER (WHERE j.state = 'failed') AS failed,"
			 " count(*) FILTER (WHERE j.state = 'cancelled') AS cancelled,"
			 " count(*) FILTER (WHERE j.state = 'waiting_external') AS waiting_external,"
			 " count(*) FILTER (WHERE j.state IN " RING_UNFINISHED_SQL ") AS unfinished,"
			 " (SELECT c.callback_job_id FROM awa.ring_group_callbacks c WHERE c.group_id = $1),"
			 " (SELECT c.finished_at FROM awa.ring_group_callbacks c WHERE c.group_id = $1)"
			 " FROM awa.ring_group_jobs g CROSS JOIN LATERAL awa.ring_get(g.job_id) j"
			 " WHERE g.group_id = $1 AND j.id IS NOT NULL",
			 1, (Oid *) argtypes);
	if (awa_ring_run(plan, &g, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa.ring_group_stats") != 1)
		elog(ERROR, "awa.ring_group_stats: no result");
	for (i = 0; i < 12; i++)
		values[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &nulls[i]);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa.ring_group_on_finish(group_id, kind, args, queue, priority,
 * max_attempts, metadata) RETURNS bigint
 *
 * awa_group_on_finish for ring groups: register the ring job to enqueue
 * (through awa.ring_insert; metadata gains finished_group) when every ring
 * job of the group has finished; enqueued at once, its id returned, when
 * none is unfinished now, else NULL.  22023: a NULL argument, a bad field
 * (awa_insert's checks); 42710: the group has a ring callback already;
 * 55000: the ring is off.
 */
Datum
awa_ring_group_on_finish(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT2OID, INT2OID, JSONBOID};
	static const char *const names[] = {"group_id", "kind", "args", "queue", "priority",
	"max_attempts", "metadata"};
	text	   *g;
	Datum		values[7];
	int64		id;
	int			i;

	awa_ring_check_enabled("awa.ring_group_on_finish");
	for (i = 0; i < 7; i++)
		ring_not_null(fcinfo, i, names[i]);
	g = PG_GETARG_TEXT_PP(0);
	awa_ring_check_name(g, "group_id");
	/* awa_group_on_finish's checks and locks (groups.c) */
	awa_group_callback_args(fcinfo, g, values);
	SPI_connect();
	awa_plan(&plan,
			 "INSERT INTO awa.ring_group_callbacks (group_id, kind, args, queue, priority, max_attempts, metadata)"
			 " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (group_id) DO NOTHING",
			 7, (Oid *) argtypes);
	if (awa_ring_run(plan, values, NULL, InvalidSnapshot, false, SPI_OK_INSERT,
					 "awa.ring_group_on_finish: insert") != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 /* hook: rresults -- awa_group_on_finish's message (groups.c): the same on both engines */
				 errmsg("group \"%s\" has a finish callback already", text_to_cstring(g)),
				 errhint("A group has at most one; use another group id for another batch.")));
	id = ring_fire_if_finished(PointerGetDatum(g));
	SPI_finish();
	if (id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}
