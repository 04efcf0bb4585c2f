/*-------------------------------------------------------------------------
 *
 * ring_maint.c
 *		The ring's part of the maintenance round (docs/storage.md, "Step 5:
 *		the maintenance round on the ring"), and the hard timeout of ring
 *		jobs (awa.ring_set_timeout, awa.ring_timeouts).
 *
 * maintain.c runs these steps after its own (hook: rmaint), each in its own
 * subtransaction through its run_step, so that a failing step is logged,
 * recorded in awa.maintenance_failures ("ring promote", "ring rescue",
 * "ring timeouts", "ring callbacks", "ring history", "ring rotate", "ring
 * reclaim") and costs only itself (callbacks: awa.ring_callback_timeouts,
 * external waits past their deadline, ring_ext.c; history:
 * awa.ring_history_expire, finished jobs past retention, ring_history.c):
 *	1. promote: awa.ring_promote(AWA_RING_MAINT_PROMOTE_MAX), due scheduled
 *	   rows (SKIP LOCKED) become ready rows;
 *	2. rescue: awa.ring_rescue(AWA_RING_MAINT_RESCUE_MAX), attempts whose
 *	   deadline (the claim's lease, extended by heartbeats) has passed end
 *	   as awa's rescue ends them (retryable and due now, failed at
 *	   max_attempts); the rescue mark is taken SKIP LOCKED;
 *	3. timeouts: attempts running longer than their job's timeout
 *	   (awa.ring_timeouts, below) end the same way, error "timeout exceeded";
 *	4. rotate: awa.ring_rotate() (100,000 rows or an hour), called only when
 *	   the open slot may be due (below); its advisory lock is a try-lock;
 *	5. reclaim: awa.ring_reclaim(AWA_RING_MAINT_CARRY_MAX), called only when
 *	   the ready partition of a sealed slot has a block (a truncated slot
 *	   has none: ring_reclaim's own check of empty slots plans a statement
 *	   per relation and slot, some 400 buffers of catalog reads), and not
 *	   for AWA_RING_RECLAIM_PAUSE_MS after a call that found every sealed
 *	   slot kept by retention or pinned by a snapshot, nor for ten times
 *	   the last call's duration after one that reclaimed nothing (below);
 *	   every lock it takes is conditional ("busy": skipped, never queued
 *	   behind a claimer).
 * They come last in the round: the reclaim's ACCESS EXCLUSIVE locks are
 * held to the end of the transaction, so nothing of the round may follow
 * it, and the round's snapshot is as young as the round (the reclaim's
 * horizon check counts this backend too: a round must not hold a snapshot
 * older than its own start).  A round that finds the ring not in use does
 * nothing here.
 *
 * In use.  The ring is in use in a database when a partition of awa.ready
 * or awa.scheduled has a block: the size of their files (smgr), no scan, no
 * lock waited for (a relation locked by another session, e.g. a reclaim
 * truncating it, counts as in use).  Ready rows are never deleted (a slot
 * is truncated), so an emptied ring has no blocks there once its slots
 * are reclaimed; scheduled rows are deleted, so awa.scheduled keeps its
 * blocks until a vacuum truncates it (the steps then find nothing).
 *
 * The switch.  The ring's functions refuse to run unless awa.ring_engine
 * is on.  The round sets it for the step only (a GUC nest level, PGC_SUSET
 * as the maintenance round is run by the extension's owner or the
 * background worker), and puts it back.
 *
 * Rotation's check.  ring_rotate counts the open slot's ready rows up to
 * max_rows (an index walk of up to 100,000 entries); a round every second
 * would pay it every second.  So the round first estimates them: the
 * blocks of the open slot's ready partition times its rows per block
 * (pg_class.reltuples / relpages once analyzed, else
 * MaxHeapTuplesPerPage, an upper bound), and calls ring_rotate only when
 * that reaches max_rows or the slot is older than max_age and not empty.
 * An estimate below the truth delays a rotation by rows until the next
 * analyze of the partition; the age limit still seals it.
 *
 * Timeouts.  awa.ready has no timeout column (awa.jobs has: a hard limit
 * of each attempt, whatever the heartbeats say).  awa.ring_set_timeout(id,
 * timeout) records one in awa.ring_timeouts, a mutable side table of one
 * row per ring job that has one (nothing on the ring's hot path reads it).
 * The round's timeouts step looks at up to AWA_RING_MAINT_TIMEOUTS_MAX of
 * its rows, in id order from where the last round of this backend stopped
 * (wrapping): for each, the job's newest attempt (the reading rule of
 * docs/storage.md: a scheduled row: waiting; else the newest ready row R
 * and the attempt (id, R.run_lease + 1): a final done row (completed,
 * failed, cancelled): the row is deleted, the job ended; no done row and a
 * receipt claimed more than timeout ago: it ends like ring_rescue's
 * attempts, the receipt locked FOR UPDATE SKIP LOCKED first (a heartbeat
 * in progress holds it FOR SHARE: next round) and checked again with a
 * snapshot taken after the lock; a job with neither ready nor scheduled row
 * (gone with its slot): the row is deleted.  A round costs a few index
 * probes per row looked at, so this is for jobs that need a hard limit, not
 * for every job: the claim does not cap its receipt's deadline by it.
 *
 * Not here: awa.heartbeat_timeout.  awa.jobs also rescues a running job
 * whose last heartbeat is older than awa.heartbeat_timeout, whatever its
 * lease.  On the ring the lease is the deadline and each beat extends it.
 * The same outcome needs the claim and the heartbeat to cap the deadline
 * they write at awa.heartbeat_timeout (ring.c, ring_lease.c), or an index
 * on the receipts' claim time (one more index entry per claim, on the hot
 * path) and a walk like the rescue's.  See docs/storage.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "ring.h"
#include "ring_maint.h"

PG_FUNCTION_INFO_V1(awa_ring_set_timeout);

/* ring_rotate's defaults (awa.sql): the round rotates at these limits */
#define RING_ROTATE_ROWS		100000
#define RING_ROTATE_AGE_SECS	3600

/* where the timeouts step of this backend goes on from (a job id) */
static int64 timeouts_cursor = 0;

/*
 * A reclaim that found the sealed slots only kept by retention (more
 * finished jobs within retention than AWA_RING_MAINT_CARRY_MAX, none
 * unfinished) or pinned by an older snapshot is not called again by this
 * backend before this time, unless a rotation seals another slot: each call
 * re-reads up to AWA_RING_MAINT_CARRY_MAX rows of each such slot (a pinned
 * one: every row), and retention or a snapshot does not end within a
 * second.  A slot kept by unfinished jobs (being drained) is looked at again
 * sooner, but never before AWA_RING_RECLAIM_DUTY times the last call's
 * duration has passed: its check walks the part of the slot that has
 * drained, so rounds spend at most about a tenth of their time on it.
 * Never longer than AWA_RING_RECLAIM_PAUSE_MS.
 */
#define AWA_RING_RECLAIM_PAUSE_MS	5000
#define AWA_RING_RECLAIM_DUTY		10
static TimestampTz reclaim_pause_until = 0;

/* ---------------------------------------------------------------------
 * In use
 * ---------------------------------------------------------------------
 */

/* The blocks of a relation, or -1 if someone else holds a lock that conflicts with reading it. */
static int64
relation_blocks(Oid relid)
{
	Relation	rel;
	int64		blocks;

	if (!ConditionalLockRelationOid(relid, AccessShareLock))
		return -1;
	rel = try_relation_open(relid, NoLock);
	if (rel == NULL)
	{
		UnlockRelationOid(relid, AccessShareLock);
		return 0;
	}
	blocks = RELKIND_HAS_STORAGE(rel->rd_rel->relkind) ? (int64) RelationGetNumberOfBlocks(rel) : 0;
	relation_close(rel, NoLock);
	UnlockRelationOid(relid, AccessShareLock);
	return blocks;
}

bool
awa_ring_maint_in_use(void)
{
	Oid			nsp = get_namespace_oid("awa", true);
	Oid			ready;
	Oid			scheduled;
	List	   *parts;
	ListCell   *lc;

	if (!OidIsValid(nsp))
		return false;
	ready = get_relname_relid("ready", nsp);
	scheduled = get_relname_relid("scheduled", nsp);
	if (!OidIsValid(ready) || !OidIsValid(get_relname_relid("ring_slots", nsp)))
		return false;
	if (OidIsValid(scheduled) && relation_blocks(scheduled) != 0)
		return true;
	parts = find_inheritance_children(ready, NoLock);
	foreach(lc, parts)
	{
		if (relation_blocks(lfirst_oid(lc)) != 0)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------
 * The steps
 * ---------------------------------------------------------------------
 */

/*
 * Run sql (kept in *plan) with the int4 argument arg (or none, nargs 0):
 * it must return one row.  Returns the first column as an int64 (0 if NULL)
 * for sql that returns a count.
 */
static int64
run_one(SPIPlanPtr *plan, const char *sql, int nargs, int32 arg)
{
	static const Oid types[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	Oid			type;

	values[0] = Int32GetDatum(arg);
	awa_plan(plan, sql, nargs, types);
	if (SPI_execute_plan(*plan, values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "awa maintenance: %s failed", sql);
	type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	if (type != INT4OID && type != INT8OID)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return 0;
	return type == INT4OID ? DatumGetInt32(d) : DatumGetInt64(d);
}

/*
 * Whether the open slot may be due for rotation (see the head of this
 * file): old enough and not empty, or estimated to hold max_rows.
 */
static bool
rotation_may_be_due(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	bool		old;
	Oid			part;
	double		relpages;
	double		reltuples;
	double		per_block;
	int64		blocks;

	awa_plan(&plan,
			 "SELECT s.opened_at <= now() - make_interval(secs => " CppAsString2(RING_ROTATE_AGE_SECS) "),"
			 " c.oid, c.relpages::float8, c.reltuples::float8"
			 " FROM awa.ring_slots s, pg_catalog.pg_inherits i, pg_catalog.pg_class c"
			 " WHERE s.state = 'open' AND i.inhparent = 'awa.ready'::regclass AND c.oid = i.inhrelid"
			 " AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (''%s'')', s.slot)",
			 0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa maintenance: reading the open slot failed");
	if (SPI_processed != 1)
		return true;			/* no open slot, or no partition: ring_rotate says what is wrong */
	old = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	part = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	relpages = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	reltuples = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	blocks = relation_blocks(part);
	if (blocks < 0)
		return false;			/* busy: next round */
	if (blocks == 0)
		return false;			/* empty: never due */
	if (old)
		return true;
	per_block = (relpages > 0 && reltuples > 0) ? reltuples / relpages : (double) MaxHeapTuplesPerPage;
	return (double) blocks * per_block >= (double) RING_ROTATE_ROWS;
}

/* Step: rotate the open slot if it is due; 1 if it did. */
static int64
step_rotate(void)
{
	static SPIPlanPtr plan = NULL;

	if (!rotation_may_be_due())
		return 0;
	(void) run_one(&plan, "SELECT outcome FROM awa.ring_rotate()", 0, 0);
	{
		bool		isnull;
		Datum		outcome = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull || strcmp(TextDatumGetCString(outcome), "rotated") != 0)
			return 0;
		reclaim_pause_until = 0;	/* a slot was sealed: reclaim may have work */
		return 1;
	}
}

/*
 * Whether a sealed slot may hold anything: its ready partition has a block
 * (every row of a slot belongs to an attempt of one of its ready rows, and
 * a truncated partition has none), or is locked by someone else.
 */
static bool
sealed_slot_in_use(void)
{
	static SPIPlanPtr plan = NULL;
	uint64		n;
	uint64		i;
	Oid		   *parts;

	awa_plan(&plan,
			 "SELECT c.oid FROM awa.ring_slots s, pg_catalog.pg_inherits i, pg_catalog.pg_class c"
			 " WHERE s.state = 'sealed' AND i.inhparent = 'awa.ready'::regclass AND c.oid = i.inhrelid"
			 " AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (''%s'')', s.slot)",
			 0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa maintenance: reading the sealed slots failed");
	n = SPI_processed;
	parts = palloc(sizeof(Oid) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		parts[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (i = 0; i < n; i++)
		if (relation_blocks(parts[i]) != 0)
			return true;
	return false;
}

/* Step: reclaim sealed slots; how many were reclaimed. */
static int64
step_reclaim(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	int64		reclaimed;
	int64		waiting;
	int64		draining;
	TimestampTz start = GetCurrentTimestamp();
	int64		pause_ms;

	if (start < reclaim_pause_until || !sealed_slot_in_use())
		return 0;
	reclaimed = run_one(&plan,
						"SELECT count(*) FILTER (WHERE outcome = 'reclaimed'),"
						" count(*) FILTER (WHERE outcome IN ('kept', 'snapshot')),"
						" count(*) FILTER (WHERE outcome = 'kept' AND unfinished > 0)"
						" FROM awa.ring_reclaim($1)",
						1, AWA_RING_MAINT_CARRY_MAX);
	waiting = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	draining = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	/*
	 * Nothing reclaimed: look again after a pause (or after a rotation) of
	 * AWA_RING_RECLAIM_PAUSE_MS when only retention or a snapshot keeps the
	 * slots, and at least AWA_RING_RECLAIM_DUTY times as long as this call
	 * took.
	 */
	if (reclaimed == 0)
	{
		pause_ms = (GetCurrentTimestamp() - start) / 1000 * AWA_RING_RECLAIM_DUTY;
		if (waiting > 0 && draining == 0)
			pause_ms = Max(pause_ms, AWA_RING_RECLAIM_PAUSE_MS);
		reclaim_pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  Min(pause_ms, AWA_RING_RECLAIM_PAUSE_MS));
	}
	return reclaimed;
}

/* ---------------------------------------------------------------------
 * Timeouts
 * ---------------------------------------------------------------------
 */

/* The attempt a timeouts row is about (see the head of this file). */
typedef struct TimedJob
{
	int64		id;
	Interval	timeout;
} TimedJob;

/* Step: end the attempts running past their job's timeout; how many it ended. */
static int64
step_timeouts(void)
{
	static SPIPlanPtr rows_plan = NULL;
	static SPIPlanPtr job_plan = NULL;
	static SPIPlanPtr forget_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr check_plan = NULL;
	static const Oid rows_types[] = {INT8OID, INT4OID};
	static const Oid job_types[] = {INT8OID, INTERVALOID};
	static const Oid id_types[] = {INT8OID};
	static const Oid attempt_types[] = {INT8OID, INT8OID, INT2OID};
	TimedJob   *jobs;
	uint64		njobs;
	uint64		i;
	int64		ended_count = 0;
	Datum		values[3];
	Datum		error;
	Interval	retry_now = {0};

	/* the rows to look at, from the cursor on */
	awa_plan(&rows_plan,
			 "SELECT t.job_id, t.timeout FROM awa.ring_timeouts t WHERE t.job_id > $1 ORDER BY t.job_id LIMIT $2",
			 2, (Oid *) rows_types);
	values[0] = Int64GetDatum(timeouts_cursor);
	values[1] = Int32GetDatum(AWA_RING_MAINT_TIMEOUTS_MAX);
	njobs = awa_ring_run(rows_plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
						 "awa maintenance: ring timeouts");
	jobs = palloc(sizeof(TimedJob) * (njobs + 1));
	for (i = 0; i < njobs; i++)
	{
		bool		isnull;

		jobs[i].id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		jobs[i].timeout = *DatumGetIntervalP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2,
														   &isnull));
	}
	timeouts_cursor = njobs < AWA_RING_MAINT_TIMEOUTS_MAX ? 0 : jobs[njobs - 1].id;

	/*
	 * The job's newest attempt: (lease, slot, final, running past its
	 * timeout); no row: neither scheduled nor ready (gone); a scheduled row
	 * makes it waiting.
	 */
	awa_plan(&job_plan,
			 "SELECT r.run_lease + 1, r.slot,"
			 " coalesce(d.state IN ('completed', 'failed', 'cancelled'), false),"
			 " d.state IS NULL AND (SELECT c.claimed_at FROM awa.claims c WHERE c.job_id = r.id"
			 "   AND c.run_lease = r.run_lease + 1 AND c.slot = r.slot LIMIT 1) + $2 < now(),"
			 " (SELECT 1 FROM awa.scheduled s WHERE s.id = r.id) IS NOT NULL"
			 " FROM (SELECT r.id, r.run_lease, r.slot FROM awa.ready r WHERE r.id = $1"
			 "   ORDER BY r.run_lease DESC LIMIT 1) r"
			 " LEFT JOIN LATERAL (SELECT d.state FROM awa.done d WHERE d.job_id = r.id"
			 "   AND d.run_lease = r.run_lease + 1 AND d.slot = r.slot LIMIT 1) d ON true"
			 " UNION ALL SELECT NULL, NULL, false, false, true FROM awa.scheduled s WHERE s.id = $1"
			 " LIMIT 1",
			 2, (Oid *) job_types);
	awa_plan(&forget_plan, "DELETE FROM awa.ring_timeouts WHERE job_id = $1", 1, (Oid *) id_types);
	awa_plan(&lock_plan,
			 "SELECT 1 FROM awa.claims c WHERE c.job_id = $1 AND c.run_lease = $2 AND c.slot = $3"
			 " FOR UPDATE OF c SKIP LOCKED",
			 3, (Oid *) attempt_types);
	awa_plan(&check_plan,
			 "SELECT 1 FROM awa.claims c WHERE c.job_id = $1 AND c.run_lease = $2 AND c.slot = $3"
			 " AND c.claimed_at + (SELECT t.timeout FROM awa.ring_timeouts t WHERE t.job_id = c.job_id) < now()"
			 " AND (SELECT 1 FROM awa.done d WHERE d.job_id = c.job_id AND d.run_lease = c.run_lease"
			 "  AND d.slot = c.slot LIMIT 1) IS NULL",
			 3, (Oid *) attempt_types);
	error = DirectFunctionCall1(jsonb_in, CStringGetDatum("\"timeout exceeded\""));

	for (i = 0; i < njobs; i++)
	{
		bool		isnull;
		HeapTuple	t;
		TupleDesc	d;
		bool		scheduled;
		bool		ended;

		CHECK_FOR_INTERRUPTS();
		values[0] = Int64GetDatum(jobs[i].id);
		values[1] = IntervalPGetDatum(&jobs[i].timeout);
		if (awa_ring_run(job_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
						 "awa maintenance: a timed job") == 0)
		{
			/* gone with its slot */
			awa_ring_run(forget_plan, values, NULL, InvalidSnapshot, false, SPI_OK_DELETE,
						 "awa maintenance: forget a timeout");
			continue;
		}
		t = SPI_tuptable->vals[0];
		d = SPI_tuptable->tupdesc;
		scheduled = DatumGetBool(SPI_getbinval(t, d, 5, &isnull));
		if (scheduled)
			continue;			/* waiting */
		if (DatumGetBool(SPI_getbinval(t, d, 3, &isnull)))
		{
			/* ended for good */
			awa_ring_run(forget_plan, values, NULL, InvalidSnapshot, false, SPI_OK_DELETE,
						 "awa maintenance: forget a timeout");
			continue;
		}
		{
			Datum		over = SPI_getbinval(t, d, 4, &isnull);

			if (isnull || !DatumGetBool(over))
				continue;		/* waiting, or running within its timeout */
		}
		values[1] = SPI_getbinval(t, d, 1, &isnull);
		values[2] = SPI_getbinval(t, d, 2, &isnull);
		if (awa_ring_run(lock_plan, values, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						 "awa maintenance: lock a timed out attempt") == 0)
			continue;			/* a heartbeat or an end holds it: next round */
		if (awa_ring_run(check_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
						 "awa maintenance: check a timed out attempt") == 0)
			continue;
		/* retried now, as awa's own rescue does (job.c, RESCUE_SQL) */
		(void) awa_ring_fail_attempt(values[0], values[1], error, false, true, &retry_now, &ended);
		if (ended)
			ended_count++;
	}
	return ended_count;
}

int64
awa_ring_maint_step(AwaRingStep step)
{
	static SPIPlanPtr promote_plan = NULL;
	static SPIPlanPtr rescue_plan = NULL;
	static SPIPlanPtr callbacks_plan = NULL;
	static SPIPlanPtr history_plan = NULL;
	int			gucnest;
	int64		n = 0;

	if (!awa_ring_maint_in_use())
		return 0;
	gucnest = NewGUCNestLevel();
	(void) set_config_option("awa.ring_engine", "on", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
	switch (step)
	{
		case AWA_RING_STEP_PROMOTE:
			n = run_one(&promote_plan, "SELECT awa.ring_promote($1)", 1, AWA_RING_MAINT_PROMOTE_MAX);
			break;
		case AWA_RING_STEP_RESCUE:
			n = run_one(&rescue_plan, "SELECT awa.ring_rescue($1)", 1, AWA_RING_MAINT_RESCUE_MAX);
			break;
		case AWA_RING_STEP_TIMEOUTS:
			n = step_timeouts();
			break;
		case AWA_RING_STEP_CALLBACKS:
			n = run_one(&callbacks_plan, "SELECT awa.ring_callback_timeouts($1)", 1,
						AWA_RING_MAINT_CALLBACKS_MAX);
			break;
		case AWA_RING_STEP_HISTORY:
			n = run_one(&history_plan, "SELECT jobs FROM awa.ring_history_expire()", 0, 0);
			break;
		case AWA_RING_STEP_ROTATE:
			n = step_rotate();
			break;
		case AWA_RING_STEP_RECLAIM:
			n = step_reclaim();
			break;
		default:
			elog(ERROR, "awa maintenance: unknown ring step %d", (int) step);
	}
	SPI_finish();
	AtEOXact_GUC(true, gucnest);
	return n;
}

/* ---------------------------------------------------------------------
 * awa.ring_set_timeout(id bigint, timeout interval) RETURNS void
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_set_timeout(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr exists_plan = NULL;
	static SPIPlanPtr set_plan = NULL;
	static SPIPlanPtr clear_plan = NULL;
	static const Oid set_types[] = {INT8OID, INTERVALOID};
	Datum		values[2];
	int			gucnest;

	awa_ring_check_enabled("awa.ring_set_timeout");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id must not be null")));
	values[0] = PG_GETARG_DATUM(0);
	if (!PG_ARGISNULL(1))
	{
		(void) awa_check_delay(PG_GETARG_INTERVAL_P(1), "timeout", true);
		values[1] = PG_GETARG_DATUM(1);
	}

	SPI_connect();
	gucnest = awa_ring_pin_planner();
	awa_plan(&exists_plan,
			 "SELECT 1 WHERE EXISTS (SELECT 1 FROM awa.ready r WHERE r.id = $1)"
			 " OR EXISTS (SELECT 1 FROM awa.scheduled s WHERE s.id = $1)",
			 1, (Oid *) set_types);
	if (SPI_execute_plan(exists_plan, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa.ring_set_timeout: lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("awa.ring_set_timeout: no ring job with id %lld",
						(long long) DatumGetInt64(values[0]))));
	if (PG_ARGISNULL(1))
	{
		awa_plan(&clear_plan, "DELETE FROM awa.ring_timeouts WHERE job_id = $1", 1, (Oid *) set_types);
		if (SPI_execute_plan(clear_plan, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "awa.ring_set_timeout: delete failed");
	}
	else
	{
		awa_plan(&set_plan,
				 "INSERT INTO awa.ring_timeouts AS t (job_id, timeout) VALUES ($1, $2)"
				 " ON CONFLICT (job_id) DO UPDATE SET timeout = excluded.timeout",
				 2, (Oid *) set_types);
		if (SPI_execute_plan(set_plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "awa.ring_set_timeout: insert failed");
	}
	AtEOXact_GUC(true, gucnest);
	SPI_finish();
	PG_RETURN_VOID();
}
