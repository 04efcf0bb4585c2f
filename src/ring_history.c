/*-------------------------------------------------------------------------
 *
 * ring_history.c
 *		What a finished ring job keeps once its slot is reclaimed
 *		(docs/storage.md, "Step 5: history of finished jobs").
 *
 * The reclaim of a sealed slot (ring_slots.c) carries the slot's unfinished
 * jobs into the open slot and truncates the slot.  A finished job that its
 * retention still keeps (completed within awa.retention_completed, failed
 * or cancelled within awa.retention_failed) is not carried: its row of
 * awa.ring_live_jobs, as it is at the reclaim (every column: state,
 * attempt, errors of every attempt, finalized_at, ...), becomes one element
 * of a batch row of awa.ring_history (awa_ring_history_move), so that a slot
 * holding only finished jobs is truncated at once.  awa.ring_jobs reads the
 * live view and the unnested batches; awa.ring_get finds a batch by the
 * range of its ids (awa_ring_history_get).
 *
 * Batches.  Up to RING_HISTORY_BATCH jobs, by id, over a range of at most
 * RING_HISTORY_SPAN ids, one retention class each (completed; failed or
 * cancelled), with the newest finalized_at of the
 * batch: the batch expires when that one is past its class's retention
 * (awa.ring_history_expire, maintenance), so a job is kept at least its
 * retention and at most as long as the newest job of its batch.  An array
 * of 100 jobs is larger than TOAST's threshold (2 kB): stored compressed.
 * One row per 100 jobs makes one index entry and, at expiry, one dead tuple
 * per 100 jobs; nothing on the claim/complete path reads or writes it.
 *
 * Counters.  A move changes no count (the same jobs in the same states:
 * awa.ring_jobs shows them); the expiry writes -1 per job by queue, state
 * and finalized_at, as the reclaim does for the jobs it drops, and releases
 * their unique keys (awa.unique_keys), which they held while kept.
 *
 * Earlier attempts (awa_ring_history_carry_earlier).  A job's errors are
 * the done rows of its retryable and failed attempts, in whatever slot each
 * attempt ran, and its attempted_at, claimed_by and lease those of its
 * newest receipt, of any attempt.  When a slot is truncated, the receipts,
 * done rows and beats of its ended attempts of a job that goes on (a newer
 * ready row in another slot or carried from this one, or a retry waiting in
 * awa.scheduled) are copied into the open slot with the carry: without
 * their ready rows they are no attempt of the view's (nor of the claim's,
 * the rescue's or the counters'), only the job's past.  A job that is moved
 * into the history takes its past along (its row's columns).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "counters.h"
#include "ring.h"
#include "ring_history.h"
#include "ring_needed.h"		/* hook: rmisc */

/* the advisory lock of awa_ring_finished_hold/_need (awa.h has 0x61776701-2, ring_deps.c 0x61776703) */
#define RING_FINISHED_LOCK	0x61776704

#define RING_HISTORY_BATCH	100
#define RING_HISTORY_SPAN	10000	/* ids: see awa_ring_history_move */

PG_FUNCTION_INFO_V1(awa_ring_history_expire);

/* qsort: int64 ascending */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Finished jobs dropped against writes that need them (ring_history.h).  The
 * reclaim of a slot decides with one snapshot which of its finished jobs go
 * with it (past retention, no unfinished dependent: ring_needed.h) and
 * truncates the slot later in its transaction; the expiry decides and
 * deletes in one statement, whose row locks a write that needs a job in a
 * batch does not take.  A write committed in between (a dependent naming
 * such a job, awa.ring_retry of it) made a job needed or live that was then
 * dropped: a dependent waiting for a parent that was gone, a retried job
 * without its failed attempt and counted -1 twice.  One advisory lock
 * orders them: the dropping step takes it SHARE without waiting before its
 * snapshot (busy: the step skips, as for its other locks), the writers take
 * it ROW EXCLUSIVE (not among themselves, nor with finishers) before they
 * read the job, so a write either committed before the step's snapshot (the
 * step sees it) or reads after the step's commit (the job is in the history,
 * or gone, as awa.jobs' retention delete leaves it).  Both held to the end
 * of the transaction.
 */
static void
finished_locktag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, RING_FINISHED_LOCK, 0, 2);
}

bool
awa_ring_finished_hold(void)
{
	LOCKTAG		tag;

	finished_locktag(&tag);
	return LockAcquire(&tag, ShareLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

void
awa_ring_finished_unhold(void)
{
	LOCKTAG		tag;

	finished_locktag(&tag);
	LockRelease(&tag, ShareLock, false);
}

void
awa_ring_finished_need(void)
{
	LOCKTAG		tag;

	finished_locktag(&tag);
	(void) LockAcquire(&tag, RowExclusiveLock, false, false);
}

/* hook: rhist -- also ring_slots.c's: a setting of maintain.c's, in seconds (-1: keep forever) */
int
awa_ring_retention(const char *name)
{
	const char *v = GetConfigOption(name, true, false);

	return v == NULL ? -1 : pg_strtoint32(v);
}

/*
 * hook: rhist -- also ring_slots.c's: jobs that leave the ring leave the
 * counters.  SPI_tuptable holds rows (queue text, state text, finalized_at
 * timestamptz, count bigint, ...): -count each, by queue, state and
 * (completed) finalized_at, gathered into counts not yet written
 * (awa_counts_write writes them).  who names the caller in errors; *total
 * is set to the sum of the counts.
 */
AwaCounts *
awa_ring_uncounts(const char *who, int64 *total)
{
	AwaCounts  *c = awa_counts_create();
	uint64		i;

	*total = 0;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *queue = SPI_getvalue(t, d, 1);
		char	   *label = SPI_getvalue(t, d, 2);
		Datum		fin = SPI_getbinval(t, d, 3, &isnull);
		int64		k = DatumGetInt64(SPI_getbinval(t, d, 4, &isnull));
		int			s;

		for (s = 0; s < AWA_NUM_JOB_STATES && strcmp(awa_state_label((AwaJobState) s), label) != 0; s++)
			;
		if (s == AWA_NUM_JOB_STATES)
			elog(ERROR, "%s: unknown job state \"%s\"", who, label);
		awa_counts_add(c, queue, strlen(queue), (AwaJobState) s, DatumGetTimestampTz(fin), false, -k);
		*total += k;
	}
	return c;
}

/* awa_ring_uncounts, written at once; returns the sum of the counts. */
int64
awa_ring_uncount(const char *who)
{
	int64		total;

	awa_counts_write(awa_ring_uncounts(who, &total));
	return total;
}

/*
 * Run sql once with the newest snapshot and the planner steered to hash
 * joins (a batch of ids against a full pass of a view: never a probe of the
 * view per id) and without JIT.  Returns SPI_processed.
 */
static uint64
history_run(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types, Datum *values,
			int expect, const char *what)
{
	static const char *const off[] = {"enable_nestloop", "enable_mergejoin", "jit", NULL};
	int			nestlevel = NewGUCNestLevel();
	int			ret;
	int			i;

	for (i = 0; off[i] != NULL; i++)
		(void) set_config_option(off[i], "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	awa_plan(cache, sql, nargs, (Oid *) types);
	ret = SPI_execute_snapshot(*cache, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
							   false, true, 0);
	AtEOXact_GUC(true, nestlevel);
	if (ret != expect)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * hook: rhist -- ring_slots.c's reclaim, once a slot passed its checks
 * (before the locks of its truncation: a full pass of the view takes about
 * a second per 50,000 jobs, and claims must not wait for it): the finished
 * jobs ids[0..n-1] (their newest attempt ended in the slot, and their rows
 * no longer change) become elements of new batches of awa.ring_history,
 * their rows of awa.ring_live_jobs as they are now.  Returns the new rows'
 * ctids (tid[]) for awa_ring_history_unmove.  An id the view does not show
 * as finished is an error (nothing is lost quietly).  Caller is in SPI.
 */
Datum
awa_ring_history_move(Datum *ids, uint64 n)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *tids;
	static const Oid types[] = {INT8ARRAYOID, INT4ARRAYOID};
	int64	   *sorted;
	Datum	   *idv;
	Datum	   *batch;
	Datum		vals[2];
	uint64		i;
	uint64		first;
	int32		b;
	uint64		moved = 0;

	if (n == 0)
		return PointerGetDatum(construct_empty_array(TIDOID));
	sorted = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
		sorted[i] = DatumGetInt64(ids[i]);
	qsort(sorted, n, sizeof(int64), cmp_int64);
	idv = palloc(sizeof(Datum) * n);
	batch = palloc(sizeof(Datum) * n);
	/*
	 * batches of RING_HISTORY_BATCH ids in order, a new one also where the
	 * ids jump by more than RING_HISTORY_SPAN from the batch's first: a job
	 * carried for long (a low id among new ones) does not stretch a batch's
	 * range over many others', which every lookup in it would then unpack
	 */
	for (i = 0, b = 0, first = 0; i < n; i++)
	{
		if (i > first && (i - first >= RING_HISTORY_BATCH || sorted[i] - sorted[first] > RING_HISTORY_SPAN))
		{
			b++;
			first = i;
		}
		idv[i] = Int64GetDatum(sorted[i]);
		batch[i] = Int32GetDatum(b);
	}
	vals[0] = PointerGetDatum(construct_array(idv, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	vals[1] = PointerGetDatum(construct_array(batch, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
	history_run(&plan,
				"INSERT INTO awa.ring_history (id_lo, id_hi, failed, finalized_hi, jobs)"
				" SELECT min(v.id), max(v.id), v.state <> 'completed', max(v.finalized_at),"
				"  array_agg(ROW(v.*)::awa.ring_history_job ORDER BY v.id)"
				" FROM unnest($1, $2) AS u(i, b)"
				" JOIN (SELECT * FROM awa.ring_live_jobs j"
				"  WHERE j.state IN ('completed', 'failed', 'cancelled') OFFSET 0) v ON v.id = u.i"
				" GROUP BY v.state <> 'completed', u.b"
				" RETURNING pg_catalog.cardinality(jobs), ctid",
				2, types, vals, SPI_OK_INSERT_RETURNING, "awa.ring_reclaim: moving finished jobs into the history");
	tids = palloc(sizeof(Datum) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		moved += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		tids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
	}
	if (moved != n)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("awa.ring_reclaim: %llu of %llu finished jobs found to move into the history",
						(unsigned long long) moved, (unsigned long long) n)));
	return PointerGetDatum(construct_array(tids, (int) SPI_processed, TIDOID, sizeof(ItemPointerData),
										   false, TYPALIGN_SHORT));
}

/*
 * hook: rhist -- ring_slots.c's reclaim, when the slot it moved jobs from
 * turned out busy: the history rows awa_ring_history_move wrote (its
 * result) deleted again, in the same transaction.  Caller is in SPI.
 */
void
awa_ring_history_unmove(Datum tids)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TIDARRAYOID};
	Datum		vals[1];

	vals[0] = tids;
	awa_plan(&plan, "DELETE FROM awa.ring_history WHERE ctid = ANY ($1)", 1, (Oid *) types);
	if (SPI_execute_plan(plan, vals, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "awa.ring_reclaim: taking moved jobs out of the history failed");
}

/*
 * hook: rhist -- ring_slots.c's carry, for each relation of the slot keyed
 * by the attempt itself (job_id, run_lease): receipts, done rows, beats
 * (counting off, under the slot's locks, before the truncation).  The rows
 * of the slot's earlier, ended attempts (a done row in the slot that is
 * not completed or cancelled: those end their job for good) of jobs
 * that go on -- a carried attempt (carried_ids, carried_leases, int8[], the
 * ready rows (id, run_lease) carried), a newer ready row in another slot, a
 * retry waiting in awa.scheduled -- are copied into the open slot without
 * their ready rows: the view takes from them the job's errors and its
 * newest receipt (attempted_at, claimed_by, lease), and progress; an
 * attempt of its own they are not (no ready row).  parent: the qualified
 * relation; cols: its columns but slot.  Caller is in SPI.
 */
void
awa_ring_history_carry_earlier(const char *parent, const char *cols, int16 slot, int16 open,
							   Datum carried_ids, Datum carried_leases)
{
	static const Oid types[] = {INT2OID, INT2OID, INT8ARRAYOID, INT8ARRAYOID};
	SPIPlanPtr	plan = NULL;
	Datum		vals[4];

	vals[0] = Int16GetDatum(open);
	vals[1] = Int16GetDatum(slot);
	vals[2] = carried_ids;
	vals[3] = carried_leases;
	history_run(&plan,
				psprintf("INSERT INTO %s (slot, %s) OVERRIDING SYSTEM VALUE SELECT $1, %s FROM %s x"
						 " WHERE x.slot = $2 AND (x.job_id, x.run_lease) IN"
						 /*
						  * the ended attempts of the slot whose job may go on: a
						  * completed or cancelled attempt is its job's last
						  * (most rows of a slot: a pass over its done rows, then
						  * the few left probed)
						  */
						 "  (SELECT d.job_id, d.run_lease FROM awa.done d WHERE d.slot = $2"
						 "   AND d.state NOT IN ('completed', 'cancelled')"
						 /* a carried attempt's own rows are carried as its rows */
						 "   AND (d.job_id, d.run_lease) NOT IN (SELECT u.i, u.l + 1 FROM unnest($3, $4) AS u(i, l))"
						 "   AND (d.job_id IN (SELECT u.i FROM unnest($3) AS u(i))"
						 "    OR EXISTS (SELECT 1 FROM awa.ready r WHERE r.id = d.job_id AND r.run_lease >= d.run_lease"
						 "     AND r.slot <> $2)"
						 "    OR EXISTS (SELECT 1 FROM awa.scheduled s WHERE s.id = d.job_id)))",
						 parent, cols, cols, parent),
				4, types, vals, SPI_OK_INSERT, "awa.ring_reclaim: carrying earlier attempts' rows");
	SPI_freeplan(plan);
}

/*
 * hook: rhist -- awa.ring_get: the job with this id from its history batch
 * (as a row of awa.jobs), or isnull.  Caller is in SPI; snapshot as
 * awa_ring_run's.
 */
Datum
awa_ring_history_get(Datum id, Snapshot snapshot, bool *isnull)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID};
	Datum		vals[1];

	vals[0] = id;
	*isnull = true;
	awa_plan(&plan,
			 "SELECT ROW(j.*)::awa.jobs FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) j"
			 " WHERE int8range(h.id_lo, h.id_hi, '[]') @> $1 AND j.id = $1 LIMIT 1",
			 1, (Oid *) types);
	if (awa_ring_run(plan, vals, NULL, snapshot, true, SPI_OK_SELECT, "awa.ring_get: history") == 0)
		return (Datum) 0;
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
}

/* ---------------------------------------------------------------------
 * awa.ring_history_expire() returns table (batches bigint, jobs bigint)
 *
 * Deletes the batches whose newest finalized_at is past its class's
 * retention (awa.retention_completed for completed jobs,
 * awa.retention_failed for failed and cancelled ones; -1: kept forever);
 * their jobs leave the counters and let go of their unique keys.  One
 * statement; a round that finds nothing writes nothing.  55000 while
 * awa.ring_engine is off.  No arguments.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_history_expire(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {FLOAT8OID, FLOAT8OID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		vals[2];
	Datum		out[2];
	bool		outnulls[2] = {false, false};
	int64		batches = 0;
	int64		jobs = 0;
	bool		isnull;

	awa_ring_check_enabled("awa.ring_history_expire");
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	/* a write that needs a finished job is in progress: next round (awa_ring_finished_hold) */
	if (!awa_ring_finished_hold())
	{
		out[0] = Int64GetDatum(0);
		out[1] = Int64GetDatum(0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
		return (Datum) 0;
	}
	SPI_connect();
	vals[0] = Float8GetDatum((double) awa_ring_retention("awa.retention_completed"));
	vals[1] = Float8GetDatum((double) awa_ring_retention("awa.retention_failed"));
	awa_plan(&plan,
			 "WITH gone AS (DELETE FROM awa.ring_history h"
			 "  WHERE ((NOT h.failed AND $1 >= 0 AND h.finalized_hi < now() - make_interval(secs => $1))"
			 "   OR (h.failed AND $2 >= 0 AND h.finalized_hi < now() - make_interval(secs => $2)))"
			 /* hook: rmisc -- a batch holding a job a dependent still needs stays (ring_needed.h) */
			 "  AND NOT EXISTS (SELECT 1 FROM unnest(h.jobs) x WHERE " AWA_RING_NEEDED_SQL("x.id") ")"
			 "  RETURNING h.jobs),"
			 " j AS (SELECT x.id, x.queue, x.state, x.finalized_at FROM gone g CROSS JOIN LATERAL unnest(g.jobs) x),"
			 " k AS (DELETE FROM awa.unique_keys u WHERE u.job_id IN (SELECT j.id FROM j))"
			 " SELECT j.queue, j.state::text, j.finalized_at, count(*), (SELECT count(*) FROM gone) FROM j"
			 " GROUP BY 1, 2, 3",
			 2, (Oid *) types);
	if (SPI_execute_plan(plan, vals, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa.ring_history_expire: the expiry failed");
	if (SPI_processed > 0)
		batches = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	jobs = awa_ring_uncount("awa.ring_history_expire");
	out[0] = Int64GetDatum(batches);
	out[1] = Int64GetDatum(jobs);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
	SPI_finish();
	return (Datum) 0;
}
