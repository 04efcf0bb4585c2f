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
 *	3a. upkeep (between the history and the rotation): the side tables'
 *	   stale rows, a batch of AWA_RING_MAINT_UPKEEP_MAX rows of each per
 *	   round, walked in key order from a kept mark (awa.ring_upkeep_mark,
 *	   one row per table, taken SKIP LOCKED: one round at a time per
 *	   table; wrapping round to the start, so a table smaller than a batch
 *	   is read whole every round): awa.ring_key_running's rows of attempts
 *	   that ended (a done row that is not the end of a wait) or whose
 *	   receipt went with its slot (what ring_keys.c's count of a key
 *	   deletes, for keys no claim counts any more); awa.ring_key_live's
 *	   rows of jobs no longer live (what the ordered-key walk deletes, for
 *	   keys without an order rule and jobs the reclaim did not take out:
 *	   deleted, cancelled while scheduled); awa.ring_dependencies' (by
 *	   job_id), awa.ring_dependents' and awa.ring_group_jobs' rows of jobs
 *	   that are gone (no ready or scheduled row, not in the history: gone
 *	   with their slot past retention, or expired from the history), as
 *	   awa.jobs' delete trigger takes a job's dependency rows along and its
 *	   group membership is a column.  Edges to a parent that is gone stay
 *	   (awa_parent_results shows such a parent with NULL kind and state, as
 *	   on awa.jobs), and so do group callbacks (awa.group_callbacks keeps
 *	   them too).  Safe against the ring's writers: the step first takes
 *	   ACCESS SHARE on ready, claims, done, scheduled and the history (and
 *	   their partitions) without waiting (a reclaim at work: the step waits
 *	   for the next round), so that its snapshots, taken after, see every
 *	   reclaim that committed; it locks the stale rows (SKIP LOCKED) and
 *	   deletes those still stale in a snapshot taken after the locks.  A
 *	   job made live again (awa_retry) locks its awa.ring_key_live row
 *	   (ring_keys.c's trigger), so that it keeps or gets back its row.  An
 *	   ended attempt and a gone job never come back.
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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
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

/* ---------------------------------------------------------------------
 * Upkeep of the side tables (see the head of this file)
 * ---------------------------------------------------------------------
 */

/* a job that is nowhere: no ready or scheduled row, not in the history (X: its id) */
#define UPKEEP_GONE_SQL(X) \
	"((SELECT 1 FROM awa.ready r WHERE r.id = " X " LIMIT 1) IS NULL" \
	" AND (SELECT 1 FROM awa.scheduled s WHERE s.id = " X " LIMIT 1) IS NULL" \
	" AND (SELECT 1 FROM awa.ring_history h WHERE int8range(h.id_lo, h.id_hi, '[]') @> " X \
	"  AND EXISTS (SELECT 1 FROM unnest(h.jobs) j WHERE j.id = " X ") LIMIT 1) IS NULL)"

/* an attempt that ended (a done row that is not the end of a wait) or whose receipt is gone */
#define UPKEEP_ENDED_SQL \
	"((SELECT 1 FROM awa.claims c WHERE c.job_id = t.job_id AND c.run_lease = t.run_lease LIMIT 1) IS NULL" \
	" OR (SELECT 1 FROM awa.done d WHERE d.job_id = t.job_id AND d.run_lease = t.run_lease" \
	"  AND NOT d.after_wait LIMIT 1) IS NOT NULL)"

/*
 * a job that is not live: no scheduled row, and its newest attempt (its
 * ready row of the highest run_lease) has ended for good (a completed,
 * failed or cancelled done row, also the end of a wait) or it has none:
 * the view's state (awa.ring_live_jobs) in three index probes
 */
#define UPKEEP_NOT_LIVE_SQL \
	"((SELECT 1 FROM awa.scheduled s WHERE s.id = t.job_id LIMIT 1) IS NULL" \
	" AND coalesce((SELECT (SELECT 1 FROM awa.done d WHERE d.job_id = n.id AND d.run_lease = n.run_lease + 1" \
	"   AND d.slot = n.slot AND d.state IN ('completed', 'failed', 'cancelled') LIMIT 1) IS NOT NULL" \
	"  FROM awa.ready n WHERE n.id = t.job_id ORDER BY n.run_lease DESC LIMIT 1), true))"

/*
 * A side table the upkeep walks, in its primary key's order (as (key, id,
 * id2): the columns it has, NULL for the others), and which of its rows
 * are stale (alias t).
 */
typedef struct UpkeepSide
{
	const char *relname;		/* its table, and its row of awa.ring_upkeep_mark */
	const char *cols;			/* its key as (text, bigint, bigint) */
	const char *after;			/* its key after the mark ($1 text, $2, $3 bigint) */
	const char *order;
	const char *match;			/* its key equal to the arrays' element g (k, i, i2) */
	const char *stale;
} UpkeepSide;

static const UpkeepSide upkeep_sides[] = {
	{"ring_key_running", "NULL::text, t.job_id, t.run_lease",
		"(t.job_id, t.run_lease) > ($2, $3)", "t.job_id, t.run_lease",
		"t.job_id = g.i AND t.run_lease = g.i2", UPKEEP_ENDED_SQL},
	{"ring_key_live", "t.concurrency_key, t.job_id, NULL::bigint",
		"(t.concurrency_key, t.job_id) > ($1, $2)", "t.concurrency_key, t.job_id",
		"t.concurrency_key = g.k AND t.job_id = g.i", UPKEEP_NOT_LIVE_SQL},
	{"ring_dependencies", "NULL::text, t.job_id, t.parent_id",
		"(t.job_id, t.parent_id) > ($2, $3)", "t.job_id, t.parent_id",
		"t.job_id = g.i AND t.parent_id = g.i2", UPKEEP_GONE_SQL("t.job_id")},
	{"ring_dependents", "NULL::text, t.job_id, NULL::bigint",
		"t.job_id > $2", "t.job_id", "t.job_id = g.i", UPKEEP_GONE_SQL("t.job_id")},
	{"ring_group_jobs", "NULL::text, t.job_id, NULL::bigint",
		"t.job_id > $2", "t.job_id", "t.job_id = g.i", UPKEEP_GONE_SQL("t.job_id")},
};
#define UPKEEP_NSIDES lengthof(upkeep_sides)

/* Kept plans of a side: its walk after the mark and from the start, lock, delete. */
typedef struct UpkeepPlans
{
	SPIPlanPtr	after;
	SPIPlanPtr	start;
	SPIPlanPtr	lock;
	SPIPlanPtr	delete;
} UpkeepPlans;

/* A batch of a side's keys. */
typedef struct UpkeepRows
{
	int			n;
	Datum	   *keys;
	bool	   *knulls;
	Datum	   *ids;
	Datum	   *ids2;
	bool	   *i2nulls;
	bool	   *stale;
} UpkeepRows;

/*
 * Take ACCESS SHARE on the relation and every partition of it without
 * waiting; false if one is locked by someone else (a reclaim truncating a
 * slot).  Held to the end of the transaction, so that a snapshot taken
 * after this sees every reclaim that finished, and none runs until the
 * round ends.
 */
static bool
lock_without_waiting(const char *relname)
{
	Oid			parent = get_relname_relid(relname, get_namespace_oid("awa", false));
	List	   *parts;
	ListCell   *lc;

	if (!OidIsValid(parent) || !ConditionalLockRelationOid(parent, AccessShareLock))
		return false;
	parts = find_inheritance_children(parent, NoLock);
	foreach(lc, parts)
	{
		if (!ConditionalLockRelationOid(lfirst_oid(lc), AccessShareLock))
			return false;
	}
	return true;
}

/* Append the (key, id, id2[, stale]) rows of SPI_tuptable to rows. */
static void
upkeep_collect(UpkeepRows *rows, bool with_stale)
{
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		int			k = rows->n++;
		bool		isnull;
		Datum		key = SPI_getbinval(t, d, 1, &rows->knulls[k]);

		rows->keys[k] = rows->knulls[k] ? (Datum) 0 : datumCopy(key, false, -1);
		rows->ids[k] = SPI_getbinval(t, d, 2, &isnull);
		rows->ids2[k] = SPI_getbinval(t, d, 3, &rows->i2nulls[k]);
		if (rows->i2nulls[k])
			rows->ids2[k] = Int64GetDatum(0);
		rows->stale[k] = with_stale ? DatumGetBool(SPI_getbinval(t, d, 4, &isnull)) : true;
	}
}

/* The rows (those stale) as the arrays $1 text[], $2 bigint[], $3 bigint[] in values. */
static int
upkeep_arrays(UpkeepRows *rows, Datum *values)
{
	int			dims[1];
	int			lbs[1] = {1};
	int			n = 0;
	int			i;

	for (i = 0; i < rows->n; i++)
	{
		if (!rows->stale[i])
			continue;
		rows->keys[n] = rows->keys[i];
		rows->knulls[n] = rows->knulls[i];
		rows->ids[n] = rows->ids[i];
		rows->ids2[n] = rows->ids2[i];
		n++;
	}
	dims[0] = n;
	values[0] = PointerGetDatum(construct_md_array(rows->keys, rows->knulls, 1, dims, lbs, TEXTOID, -1,
												   false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(rows->ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(rows->ids2, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	return n;
}

/*
 * One side: read up to AWA_RING_MAINT_UPKEEP_MAX rows after its mark
 * (wrapping round to the start), move the mark past them, lock the stale
 * ones SKIP LOCKED, and delete those still stale in a snapshot taken after
 * the locks.  Returns the rows deleted.  Caller is in SPI and holds the
 * relation locks (step_upkeep).
 */
static int64
upkeep_side(const UpkeepSide *side, UpkeepPlans *plans)
{
	static SPIPlanPtr mark_plan = NULL;
	static SPIPlanPtr move_plan = NULL;
	static const Oid walk_types[] = {TEXTOID, INT8OID, INT8OID, INT4OID};
	static const Oid array_types[] = {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	static const Oid mark_types[] = {TEXTOID};
	static const Oid move_types[] = {TEXTOID, TEXTOID, INT8OID, INT8OID};
	const int	max = AWA_RING_MAINT_UPKEEP_MAX;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	UpkeepRows	rows;
	bool		has_mark;
	bool		isnull;
	int			i;

	rows.n = 0;
	rows.keys = palloc(sizeof(Datum) * max);
	rows.knulls = palloc(sizeof(bool) * max);
	rows.ids = palloc(sizeof(Datum) * max);
	rows.ids2 = palloc(sizeof(Datum) * max);
	rows.i2nulls = palloc(sizeof(bool) * max);
	rows.stale = palloc(sizeof(bool) * max);

	/* the side's mark: a round that holds it does this side now */
	values[0] = CStringGetTextDatum(side->relname);
	awa_plan(&mark_plan,
			 "SELECT m.after_key, m.after_id, m.after_id2, m.after_id IS NOT NULL FROM awa.ring_upkeep_mark m"
			 " WHERE m.side = $1 FOR UPDATE SKIP LOCKED",
			 1, mark_types);
	if (awa_ring_run(mark_plan, values, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa maintenance: the upkeep's mark") == 0)
		return 0;
	for (i = 0; i < 3; i++)
	{
		values[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
		if (isnull)
			nulls[i] = 'n';
		else if (i == 0)
			values[i] = datumCopy(values[i], false, -1);
	}
	has_mark = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));

	/* the walk: after the mark, then from the start for what is left of the batch (each plan kept once made) */
	if (plans->after == NULL)
		awa_plan(&plans->after,
				 psprintf("SELECT %s, %s FROM awa.%s t WHERE %s ORDER BY %s LIMIT $4",
						  side->cols, side->stale, side->relname, side->after, side->order),
				 4, walk_types);
	if (plans->start == NULL)
		awa_plan(&plans->start,
				 psprintf("SELECT %s, %s FROM awa.%s t ORDER BY %s LIMIT $4",
						  side->cols, side->stale, side->relname, side->order),
				 4, walk_types);
	if (plans->lock == NULL)
		awa_plan(&plans->lock,
				 psprintf("SELECT %s FROM awa.%s t, unnest($1, $2, $3) g(k, i, i2) WHERE %s"
						  " FOR UPDATE OF t SKIP LOCKED",
						  side->cols, side->relname, side->match),
				 3, array_types);
	if (plans->delete == NULL)
		awa_plan(&plans->delete,
				 psprintf("DELETE FROM awa.%s t USING unnest($1, $2, $3) g(k, i, i2) WHERE %s AND %s",
						  side->relname, side->match, side->stale),
				 3, array_types);
	if (has_mark)
	{
		values[3] = Int32GetDatum(max);
		awa_ring_run(plans->after, values, nulls, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa maintenance: the upkeep's walk");
		upkeep_collect(&rows, true);
	}
	if (rows.n < max)
	{
		values[3] = Int32GetDatum(max - rows.n);
		awa_ring_run(plans->start, values, nulls, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa maintenance: the upkeep's walk");
		upkeep_collect(&rows, true);
	}

	/* the next mark: the last row read; the start when this walk read the whole table */
	values[0] = CStringGetTextDatum(side->relname);
	memset(nulls, 'n', sizeof(nulls));
	nulls[0] = ' ';
	if (rows.n == max)
	{
		if (!rows.knulls[max - 1])
		{
			values[1] = rows.keys[max - 1];
			nulls[1] = ' ';
		}
		values[2] = rows.ids[max - 1];
		nulls[2] = ' ';
		if (!rows.i2nulls[max - 1])
		{
			values[3] = rows.ids2[max - 1];
			nulls[3] = ' ';
		}
	}
	awa_plan(&move_plan,
			 "UPDATE awa.ring_upkeep_mark SET after_key = $2, after_id = $3, after_id2 = $4 WHERE side = $1",
			 4, move_types);
	awa_ring_run(move_plan, values, nulls, InvalidSnapshot, false, SPI_OK_UPDATE,
				 "awa maintenance: the upkeep's mark");

	/* the stale rows: locked (a row locked by someone else waits for a later round) */
	if (upkeep_arrays(&rows, values) == 0)
		return 0;
	if (awa_ring_run(plans->lock, values, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa maintenance: the upkeep's locks") == 0)
		return 0;
	rows.n = 0;
	upkeep_collect(&rows, false);
	(void) upkeep_arrays(&rows, values);
	/* and deleted if still stale in a snapshot taken after the locks */
	return (int64) awa_ring_run(plans->delete, values, NULL, GetLatestSnapshot(), false, SPI_OK_DELETE,
								"awa maintenance: the upkeep's delete");
}

/* Step: the side tables' stale rows; how many were removed. */
static int64
step_upkeep(void)
{
	static UpkeepPlans plans[UPKEEP_NSIDES];
	static const char *const locked[] = {"ready", "claims", "done", "scheduled", "ring_history"};
	Oid			nsp = get_namespace_oid("awa", true);
	bool		busy[UPKEEP_NSIDES];
	bool		any = false;
	int64		n = 0;
	int			i;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("ring_upkeep_mark", nsp)))
		return 0;
	/* only the side tables with a block (one size look-up each: an empty one costs nothing more) */
	for (i = 0; i < (int) UPKEEP_NSIDES; i++)
	{
		Oid			rel = get_relname_relid(upkeep_sides[i].relname, nsp);

		busy[i] = OidIsValid(rel) && relation_blocks(rel) != 0;
		any |= busy[i];
	}
	if (!any)
		return 0;
	for (i = 0; i < (int) lengthof(locked); i++)
		if (!lock_without_waiting(locked[i]))
			return 0;			/* a reclaim is at work: the next round */
	for (i = 0; i < (int) UPKEEP_NSIDES; i++)
		if (busy[i])
			n += upkeep_side(&upkeep_sides[i], &plans[i]);
	return n;
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

	/* the side tables' upkeep also once the ring has emptied (step_upkeep looks at them) */
	if (step != AWA_RING_STEP_UPKEEP && !awa_ring_maint_in_use())
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
		case AWA_RING_STEP_UPKEEP:
			n = step_upkeep();
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
