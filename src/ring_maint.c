/*-------------------------------------------------------------------------
 *
 * ring_maint.c
 *		The ring's part of the maintenance round (docs/storage.md, "Step 5:
 *		the maintenance round on the ring").
 *
 * maintain.c runs these steps after its own (hook: rmaint), each in its own
 * subtransaction through its run_step, so that a failing step is logged,
 * recorded in awa.maintenance_failures ("ring promote", "ring rescue",
 * "ring callbacks", "ring history", "ring rotate", "ring
 * reclaim") and costs only itself (callbacks: awa.ring_callback_timeouts,
 * external waits past their deadline, ring_ext.c; history:
 * awa.ring_history_expire, finished jobs past retention, ring_history.c):
 *	1. promote: awa.ring_promote(AWA_RING_MAINT_PROMOTE_MAX), due scheduled
 *	   rows (SKIP LOCKED) become ready rows;
 *	2. rescue: awa.ring_rescue(AWA_RING_MAINT_RESCUE_MAX), attempts whose
 *	   deadline (the claim's lease, extended by heartbeats) has passed end
 *	   as awa's rescue ends them (retryable and due now, failed at
 *	   max_attempts), with the cause of the deadline: the lease, the job's
 *	   timeout or awa.heartbeat_timeout (below); the rescue mark is taken
 *	   SKIP LOCKED; its rows ready now wake the queue's blocking claimers
 *	   (ring_sched.c's retry);
 *	3. rotate: awa.ring_rotate() (100,000 rows or an hour), called only when
 *	   the open slot may be due (below); its advisory lock is a try-lock;
 *	4. reclaim: awa.ring_reclaim(AWA_RING_MAINT_CARRY_MAX), called only when
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
 * Job timeouts and awa.heartbeat_timeout are deadlines (ring_obs.h): the
 * claim caps a receipt's deadline at claimed_at + the job's timeout and at
 * now() + awa.heartbeat_timeout, a heartbeat likewise, so the rescue's walk
 * ends such attempts with the cause awa's rescue gives ("timeout exceeded",
 * "heartbeat stale"); no step of its own.
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

/* ring_rotate's defaults (awa.sql): the round rotates at these limits */
#define RING_ROTATE_ROWS		100000
#define RING_ROTATE_AGE_SECS	3600


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
