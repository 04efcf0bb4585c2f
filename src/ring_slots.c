/*-------------------------------------------------------------------------
 *
 * ring_slots.c
 *		The ring's slots (docs/storage.md, section 5 "Reclaiming space" and
 *		"Step 4: sealing and reclaiming slots"): seal the open slot and open
 *		the next free one (awa.ring_rotate), carry the jobs a sealed slot
 *		still holds into the open slot and give the slot's space back by
 *		TRUNCATE (awa.ring_reclaim).  Internal maintenance steps, refused
 *		unless awa.ring_engine is on; awa's maintenance round runs both
 *		(maintain.c, ring_maint.c), the tests and bench/ring_slots.sh call
 *		them directly.
 *
 * Which relations make a slot.  Every relation of schema awa that is LIST
 * partitioned by a single column named slot (pg_partitioned_table), each
 * partition found by its bound (FOR VALUES IN ('<slot>')): ready, claims,
 * done today, and any other such relation (heartbeats) without naming it.
 * A slot is free when every one of them has a partition for it and every
 * such partition is empty.  A relation of the slot that has neither
 * (id, run_lease) (a ready row: the attempt run_lease + 1) nor
 * (job_id, run_lease) (the attempt itself) cannot be carried: 55000.
 *
 * Rotation (awa.ring_rotate).  Seal the open slot once it holds max_rows
 * ready rows or was opened max_age ago (and holds any), and open the first
 * free slot after it in slot order (wrapping).  No free slot: nothing
 * changes, the open slot keeps receiving, and the result says so.  Writers
 * (ring_insert, ring_fail's retry) read the open slot from awa.ring_slots
 * in the statement that inserts, without locking it, so a rotation never
 * waits for them nor they for it, and a writer whose snapshot predates the
 * rotation's commit puts its row into the slot just sealed.  That is
 * correct by construction: a sealed slot is read by every claim like any
 * other (the claim walks every partition), and a reclaim sees every ready
 * row of the slot before it decides (step 1 below): a writer still in
 * progress holds ROW EXCLUSIVE on the partition, so the reclaim's SHARE
 * lock fails and the slot is skipped; a writer that routes its row there
 * later waits for the reclaim's commit and leaves a claimable job in a
 * sealed slot, which is then not free until a later round carries it on.
 *
 * Reclaiming (awa.ring_reclaim), per sealed slot, oldest first:
 *	1. SHARE on the slot's ready partition, conditionally
 *	   (ConditionalLockRelationOid: never queued; busy: the slot is skipped,
 *	   "busy").  No ready row can come into the slot until the reclaim
 *	   commits; claims (ROW SHARE) are not stopped.  Then, with a snapshot S
 *	   taken after that lock: the attempts of the slot (its ready rows)
 *	   whose row is not an end past retention (no done row: waiting or
 *	   running; a held state: running, waiting_external; completed within
 *	   awa.retention_completed; failed or cancelled within
 *	   awa.retention_failed; -1 keeps forever: maintain.c's retention).  An
 *	   end that hands the job over (retryable: its next attempt is a row of
 *	   its own elsewhere) has ended, unless that next attempt still waits in
 *	   awa.scheduled (a retry's backoff, a snooze: the job is this attempt
 *	   until promoted; hook: rhist).  The unfinished ones are carried (step
 *	   4), the retained finished ones go into the history (step 2b); more
 *	   than carry_max unfinished ones: "kept".
 *	2. the youngest xmin X of every row of the slot, as S sees it (a full
 *	   pass, holding nothing but step 1's SHARE).  X must precede the oldest
 *	   snapshot of the database (GetOldestNonRemovableTransactionId):
 *	   TRUNCATE is not MVCC-safe, and a snapshot that does not see the
 *	   slot's last write yet would see the slot vanish; else "snapshot".  A
 *	   held snapshot therefore keeps every slot, and the next round after it
 *	   ends truncates.
 *	2b. (hook: rhist) the jobs of the retained finished attempts become
 *	   elements of batches of awa.ring_history, their rows of the view as
 *	   they are (ring_history.c, docs/storage.md "Step 5: history of
 *	   finished jobs"), before any lock of step 3: their rows no longer
 *	   change.  Deleted again if step 3 finds the slot busy.
 *	2c. still with S: the jobs that go with the slot (ended for good past
 *	   retention, not picked by step 1) are counted for the counters and
 *	   their unique keys listed (reclaim_gone: a pass over the slot, which
 *	   nothing waits for); written in step 4, under the locks.
 *	3. once every sealed slot is checked: ACCESS EXCLUSIVE on every
 *	   partition of each slot found reclaimable, conditionally ("busy"), held
 *	   to the commit, a few milliseconds (steps 4 and 5).  Claimers wait for
 *	   that much, never for a lock that is itself waiting, and never for the
 *	   checks of steps 1 and 2.
 *	4. carry: every row, in every relation of the slot, of the unfinished
 *	   attempts of step 1, copied into the open slot with the same id,
 *	   run_lease and attempt (ready row; receipt, done row and beats if
 *	   any), read with the newest snapshot under the lock: a receipt or an
 *	   end written since S (a claim of a waiting job, the end of a running
 *	   one) is carried too.  With them (hook: rhist) the receipts, done rows and beats of
 *	   the slot's earlier, ended attempts of the jobs that go on (their
 *	   errors, their newest receipt), without ready rows.  The attempts not
 *	   carried had ended past retention by S, or went into the history, and
 *	   never get another row.  Their run_at is noted for the floors' pins.
 *	   Step 2c's counts are written, the unique keys it listed released.
 *	5. TRUNCATE of the slot's partitions, in the same transaction as the
 *	   carry: no one ever reads both copies.
 *
 * A carry racing a claim of the same job.  A claim in progress holds ROW
 * SHARE on the ready partition (its row lock) and, once it wrote its
 * receipt, ROW EXCLUSIVE on the claims partition, until it ends: step 3
 * fails and the slot is skipped; the next round carries the running
 * attempt with its receipt (so does this round if the claim committed
 * before step 3: step 4 reads after the lock).  A claim that comes while
 * step 3's locks are held waits for the carry's commit; its statement took
 * its snapshot before it waited, so it finds the truncated partition empty
 * and the carried row not yet visible: it misses the job in that pass, and
 * the next pass or claim (a newer snapshot) takes it from the open slot.
 * A floor raised by such a claim cannot pass the job: the carry noted its
 * run_at, pinned at the carry's commit (floor.c).  At no time can two
 * ready rows of one attempt be read, so there is one receipt per attempt.
 * An end of a carried running attempt that waited on the locks:
 * ring_complete_many's statement takes its snapshot after its locks (SPI,
 * not read-only) and finds the carried receipt; ring_fail's lookup is
 * read-only and runs with the caller's snapshot, taken before the wait, so
 * it looks once more with a newer one when it finds none (ring.c, hook:
 * slots; isolation ring_slots_carry_claim returns NULL, "not running",
 * without it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "counters.h"
#include "floor.h"
#include "job_state_sql.h"
#include "ring.h"
#include "ring_history.h"
#include "ring_needed.h"		/* hook: rmisc */
#include "ring_part.h"

/* the advisory lock that serialises rotation and reclaiming: (ring_slots' oid, 6) */
#define RING_SLOTS_LOCK_KEY2	6

PG_FUNCTION_INFO_V1(awa_ring_rotate);
PG_FUNCTION_INFO_V1(awa_ring_reclaim);

/* One relation of a slot: its parent and the slot's partition. */
typedef struct SlotRel
{
	char	   *parent;			/* qualified name of the partitioned relation */
	Oid			part;			/* the slot's partition; InvalidOid: none */
	char	   *partname;		/* its qualified name */
	char	   *cols;			/* its columns but slot, comma-separated, quoted */
	char	   *attempt;		/* its attempt key: "(id, run_lease + 1)" or "(job_id, run_lease)" */
} SlotRel;

/*
 * The relations of a slot (see the head of this file): one per relation of
 * schema awa LIST-partitioned by slot.  Caller is in SPI.
 */
static SlotRel *
slot_rels(int16 slot, int *n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT2OID};
	Datum		values[1];
	SlotRel    *rels;
	uint64		i;

	awa_plan(&plan,
			 "SELECT p.partrelid::regclass::text, c.oid, c.oid::regclass::text,"
			 " (SELECT string_agg(quote_ident(x.attname), ', ' ORDER BY x.attnum)"
			 "  FROM pg_catalog.pg_attribute x WHERE x.attrelid = p.partrelid AND x.attnum > 0"
			 "  AND NOT x.attisdropped AND x.attgenerated = '' AND x.attname <> 'slot'),"
			 " CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute x WHERE x.attrelid = p.partrelid"
			 "   AND x.attname = 'id' AND NOT x.attisdropped) THEN '(id, run_lease + 1)'"
			 "  WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute x WHERE x.attrelid = p.partrelid"
			 "   AND x.attname = 'job_id' AND NOT x.attisdropped) THEN '(job_id, run_lease)' END"
			 " FROM pg_catalog.pg_partitioned_table p"
			 " JOIN pg_catalog.pg_class pc ON pc.oid = p.partrelid"
			 " JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]"
			 " LEFT JOIN (pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid)"
			 "  ON i.inhparent = p.partrelid"
			 "  AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = pg_catalog.format('FOR VALUES IN (%L)', $1)"
			 " WHERE pc.relnamespace = 'awa'::regnamespace AND p.partstrat = 'l' AND p.partnatts = 1"
			 " AND a.attname = 'slot'"
			 " ORDER BY p.partrelid",
			 1, argtypes);
	values[0] = Int16GetDatum(slot);
	if (SPI_execute_plan(plan, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa.ring_slots: the slot's relations could not be read");
	*n = (int) SPI_processed;
	rels = palloc0(sizeof(SlotRel) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		v;

		rels[i].parent = SPI_getvalue(t, d, 1);
		v = SPI_getbinval(t, d, 2, &isnull);
		rels[i].part = isnull ? InvalidOid : DatumGetObjectId(v);
		rels[i].partname = SPI_getvalue(t, d, 3);
		rels[i].cols = SPI_getvalue(t, d, 4);
		rels[i].attempt = SPI_getvalue(t, d, 5);
	}
	return rels;
}

/* Whether every relation of the slot has a partition for it and all are empty. */
static bool
slot_free(int16 slot)
{
	int			n;
	SlotRel    *rels = slot_rels(slot, &n);
	int			i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
	{
		if (rels[i].part == InvalidOid)
			return false;
		if (SPI_execute(psprintf("SELECT 1 FROM %s LIMIT 1", rels[i].partname), true, 1) != SPI_OK_SELECT)
			elog(ERROR, "awa.ring_rotate: could not read %s", rels[i].partname);
		if (SPI_processed > 0)
			return false;
	}
	return true;
}

/* The advisory try-lock shared by rotation and reclaiming (transaction-level). */
static bool
slots_try_lock(void)
{
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.pg_try_advisory_xact_lock('awa.ring_slots'::regclass::oid::integer, "
					CppAsString2(RING_SLOTS_LOCK_KEY2) ")", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "awa.ring_slots: advisory lock failed");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Run sql with the newest snapshot (also in REPEATABLE READ); returns SPI_processed. */
static uint64
run_latest(const char *sql, int nargs, Oid *types, Datum *values, bool read_only, int expect,
		   bool pinned)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);
	int			nestlevel = 0;
	int			ret;

	if (plan == NULL)
		elog(ERROR, "awa.ring_slots: could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (pinned)
		nestlevel = awa_ring_pin_planner();
	/* fire_triggers: the counting triggers' transition tables need it (they count nothing during a carry) */
	ret = SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
							   read_only, true, 0);
	if (pinned)
		AtEOXact_GUC(true, nestlevel);
	if (ret != expect)
		elog(ERROR, "awa.ring_slots: \"%s\" failed: %s", sql, SPI_result_code_string(ret));
	return SPI_processed;
}

/* ---------------------------------------------------------------------
 * awa.ring_rotate(max_rows, max_age)
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_rotate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		max_rows;
	Interval   *max_age;
	Datum		out[3];	/* open_slot, opened, outcome */
	bool		outnulls[3] = {true, true, false};
	const char *outcome;
	bool		isnull;
	int16		open;
	int16		chosen = -1;
	bool		due;
	uint64		nslots;
	int16	   *slots;
	uint64		i;
	Oid			types[2] = {INT2OID, INT8OID};
	Datum		vals[2];

	awa_ring_check_enabled("awa.ring_rotate");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "max_rows" : "max_age")));
	max_rows = PG_GETARG_INT64(0);
	max_age = PG_GETARG_INTERVAL_P(1);
	if (max_rows < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be at least 1")));
	if (max_age->month < 0 || max_age->day < 0 || max_age->time < 0 ||
		(max_age->month == 0 && max_age->day == 0 && max_age->time == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_age must be positive")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	if (!slots_try_lock())
	{
		outcome = "busy";
		goto done;
	}

	/* the open slot, and whether it is due: max_rows ready rows, or max_age old and not empty */
	vals[0] = Int64GetDatum(max_rows);
	vals[1] = IntervalPGetDatum(max_age);
	types[0] = INT8OID;
	types[1] = INTERVALOID;
	if (run_latest("SELECT s.slot,"
				   " EXISTS (SELECT 1 FROM awa.ready r WHERE r.slot = s.slot OFFSET $1 - 1 LIMIT 1)"
				   " OR (s.opened_at <= now() - $2"
				   "     AND EXISTS (SELECT 1 FROM awa.ready r WHERE r.slot = s.slot))"
				   " FROM awa.ring_slots s WHERE s.state = 'open'",
				   2, types, vals, true, SPI_OK_SELECT, true) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.ring_rotate: the ring has no open slot")));
	open = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	due = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	out[0] = Int16GetDatum(open);
	outnulls[0] = false;
	if (!due)
	{
		outcome = "below limits";
		goto done;
	}

	/* the first free slot after the open one, in slot order, wrapping */
	nslots = run_latest("SELECT slot FROM awa.ring_slots WHERE state = 'sealed' ORDER BY slot",
						0, NULL, NULL, true, SPI_OK_SELECT, false);
	slots = palloc(sizeof(int16) * (nslots + 1));
	for (i = 0; i < nslots; i++)
		slots[i] = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	for (i = 0; i < nslots && chosen < 0; i++)
	{
		uint64		j;
		int16		best = -1;

		/* the i-th sealed slot after open, wrapping */
		for (j = 0; j < nslots; j++)
			if (slots[j] > open)
				break;
		best = slots[(j + i) % nslots];
		if (slot_free(best))
			chosen = best;
	}
	if (chosen < 0)
	{
		outcome = "no free slot";
		goto done;
	}

	types[0] = INT2OID;
	types[1] = INT2OID;
	vals[0] = Int16GetDatum(open);
	vals[1] = Int16GetDatum(chosen);
	awa_ring_slots_gen++;		/* ring_part.h */
	run_latest("UPDATE awa.ring_slots SET state = 'sealed' WHERE slot = $1",
			   2, types, vals, false, SPI_OK_UPDATE, false);
	run_latest("UPDATE awa.ring_slots SET state = 'open', opened_at = now() WHERE slot = $2",
			   2, types, vals, false, SPI_OK_UPDATE, false);
	out[1] = Int16GetDatum(chosen);
	outnulls[1] = false;
	outcome = "rotated";

done:
	out[2] = CStringGetTextDatum(outcome);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
	SPI_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * awa.ring_reclaim(carry_max)
 * ---------------------------------------------------------------------
 */

/* Release the conditional locks of this mode taken on the first n partitions. */
static void
unlock_parts(SlotRel *rels, int n, LOCKMODE mode)
{
	int			i;

	for (i = 0; i < n; i++)
		if (rels[i].part != InvalidOid)
			UnlockRelationOid(rels[i].part, mode);
}

/*
 * Take a lock of this mode on every partition of the slot, each one
 * conditionally (never queued); false, with none of them held in this mode,
 * if one is busy.
 */
static bool
lock_parts(SlotRel *rels, int nrels, LOCKMODE mode)
{
	int			i;

	for (i = 0; i < nrels; i++)
	{
		if (rels[i].part == InvalidOid)
			continue;
		if (!ConditionalLockRelationOid(rels[i].part, mode))
		{
			unlock_parts(rels, i, mode);
			return false;
		}
	}
	return true;
}

/* A sealed slot found reclaimable (steps 1-2), to be carried and truncated (steps 3-5). */
typedef struct SlotReclaim
{
	int16		slot;
	int16		open;
	SlotRel    *rels;
	int			nrels;
	SlotRel    *ready;
	uint64		nattempts;
	Datum	   *ids;
	Datum	   *leases;
	char	  **lanes;
	TimestampTz *run_ats;
	bool	   *finished;		/* hook: rhist -- a retained finished job: into the history */
	Datum		history;		/* hook: rhist -- the history rows written for them (tid[]) */
	int64		unfinished;
	int64		retained;
	AwaCounts  *gone;			/* the counts of the jobs that go with the slot */
	Datum		gone_keys;		/* ... and of those the ids that hold a unique key (int8[]) */
} SlotReclaim;

/* Result columns: slot, outcome, unfinished, retained, carried. */
static void
reclaim_row(ReturnSetInfo *rsinfo, int16 slot, const char *outcome, int64 unfinished, int64 retained,
			int64 carried)
{
	Datum		out[5];
	bool		outnulls[5] = {false, false, false, false, false};

	out[0] = Int16GetDatum(slot);
	out[1] = CStringGetTextDatum(outcome);
	out[2] = Int64GetDatum(unfinished);
	out[3] = Int64GetDatum(retained);
	out[4] = Int64GetDatum(carried);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
}

/*
 * The jobs whose newest attempt ended for good in the slot (completed,
 * failed, cancelled past retention) and that step 1 did not pick (to carry,
 * or into the history) leave the counters with the slot, as awa.jobs'
 * retention deletes leave them: -1 per job by queue, state and (completed)
 * finalized_at.  Earlier attempts of a job (a retryable end with a newer
 * ready row) are not counted: the job is counted by its newest attempt.
 * Their unique keys (awa.unique_keys, ring_unique.c) go with them.
 *
 * Counted with step 1's snapshot S, before the locks of step 3, and only
 * written under them (reclaim_finish): the pass over the slot's ready and
 * done rows (a group-by; tens of milliseconds at tens of thousands of jobs)
 * then keeps no claimer waiting.  The set cannot change after S: an attempt
 * step 1 did not pick had its final done row by S, and nothing is added to
 * an ended attempt (one parked in waiting_external is held, so picked); no
 * ready row comes into the slot while step 1's SHARE lock is held.  ids and
 * leases: step 1's attempts, n of them.  Caller is in SPI.
 */
static void
reclaim_gone(SlotReclaim *r, Snapshot snap, Datum *ids, Datum *leases, uint64 n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT2OID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		vals[3];
	int64		total;
	uint64		i;
	int			nkeys = 0;
	Datum	   *keys;

	awa_plan(&plan,
			 "SELECT r.queue, d.state::text, d.finalized_at, count(*),"
			 " array_agg(r.id) FILTER (WHERE r.unique_key IS NOT NULL)"
			 " FROM awa.ready r JOIN awa.done d ON d.job_id = r.id AND d.run_lease = r.run_lease + 1"
			 "  AND d.slot = r.slot"
			 " WHERE r.slot = $1 AND d.state IN ('completed', 'failed', 'cancelled')"
			 "  AND (r.id, r.run_lease) NOT IN (SELECT u.i, u.l FROM unnest($2, $3) AS u(i, l))"
			 /* an earlier attempt of a job made live again (awa_retry) is not the job's count */
			 "  AND NOT EXISTS (SELECT 1 FROM awa.ready n WHERE n.id = r.id AND n.run_lease > r.run_lease)"
			 " GROUP BY 1, 2, 3",
			 3, types);
	vals[0] = Int16GetDatum(r->slot);
	vals[1] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[2] = PointerGetDatum(construct_array(leases, n, INT8OID, sizeof(int64),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_snapshot(plan, vals, NULL, snap, InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa.ring_reclaim: counting the slot's finished jobs failed");
	/* hook: rhist -- shared with the history's expiry */
	r->gone = awa_ring_uncounts("awa.ring_reclaim", &total);

	/* the ids holding unique keys, for step 4's release */
	keys = palloc(sizeof(Datum) * (total + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		a = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5, &isnull);
		Datum	   *elems;
		int			nelems;
		int			k;

		if (isnull)
			continue;
		deconstruct_array(DatumGetArrayTypeP(a), INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, NULL, &nelems);
		for (k = 0; k < nelems; k++)
			keys[nkeys++] = elems[k];
	}
	r->gone_keys = nkeys == 0 ? (Datum) 0 :
		PointerGetDatum(construct_array(keys, nkeys, INT8OID, sizeof(int64),
										FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Under step 3's locks: the counts reclaim_gone gathered are written, the
 * unique keys of those jobs released (a probe of unique_keys_job_idx per
 * id).  Caller is in SPI.
 */
static void
reclaim_uncount(SlotReclaim *r)
{
	static SPIPlanPtr keys_plan = NULL;
	static SPIPlanPtr key_live_plan = NULL;
	static const Oid types[] = {INT8ARRAYOID};
	static const Oid slot_type[] = {INT2OID};
	Datum		slot = Int16GetDatum(r->slot);

	awa_counts_write(r->gone);
	r->gone = NULL;

	/*
	 * hook: keys -- the slot's finished jobs of a concurrency key leave
	 * awa.ring_key_live (ring_keys.c), whether they go or move into the
	 * history: a key's rows are for its live jobs, and a key without an
	 * order rule is never walked, so nothing else would delete them.  A job
	 * made live again since (a newer ready row) keeps its row.
	 */
	awa_plan(&key_live_plan,
			 "DELETE FROM awa.ring_key_live l USING awa.ready r, awa.done d"
			 " WHERE r.slot = $1 AND r.concurrency_key IS NOT NULL"
			 "  AND d.job_id = r.id AND d.run_lease = r.run_lease + 1 AND d.slot = r.slot"
			 "  AND d.state IN ('completed', 'failed', 'cancelled')"
			 "  AND l.concurrency_key = r.concurrency_key AND l.job_id = r.id"
			 "  AND NOT EXISTS (SELECT 1 FROM awa.ready n WHERE n.id = r.id AND n.run_lease > r.run_lease)",
			 1, slot_type);
	if (SPI_execute_plan(key_live_plan, &slot, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "awa.ring_reclaim: releasing the slot's keyed jobs failed");
	if (r->gone_keys == (Datum) 0)
		return;
	awa_plan(&keys_plan, "DELETE FROM awa.unique_keys u WHERE u.job_id = ANY ($1)", 1, types);
	if (SPI_execute_plan(keys_plan, &r->gone_keys, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "awa.ring_reclaim: releasing the slot's unique keys failed");
}

/*
 * hook: rcrash -- a job's newest attempt (r: its ready row; no newer one) that
 * still has a ready row of an earlier attempt in another slot is carried,
 * finished or not: the view takes a job's newest ready row for the job, so
 * once this one went (into the history, or past retention) the earlier
 * attempt would be read as the job again, in its old state (retryable), next
 * to its history row.  Carried, it is the job until that other slot is
 * reclaimed too (its earlier rows then go, or are carried without their
 * ready row: ring_history.c), and a later reclaim moves it on.  So is one
 * whose earlier attempt's done row (with its receipt) is in another slot
 * without its ready row (carried so, ring_history.c): gone with this slot
 * or into the history, the job would leave those rows behind, a receipt
 * and an end of no attempt the ring still has, until their slot went too;
 * carried, it stays with them, and the reclaim of either slot brings the
 * two together in the open slot, where they go as one.  A first attempt
 * (run_lease 0: most rows) has none and costs no probe; the others one
 * index probe of each relation by job.
 */
#define RECLAIM_EARLIER_ELSEWHERE_SQL \
	"(r.run_lease > 0 AND (EXISTS (SELECT 1 FROM awa.ready e WHERE e.id = r.id AND e.run_lease < r.run_lease AND e.slot <> r.slot)" \
	"  OR EXISTS (SELECT 1 FROM awa.done e WHERE e.job_id = r.id AND e.run_lease <= r.run_lease AND e.slot <> r.slot))" \
	" AND NOT EXISTS (SELECT 1 FROM awa.ready n WHERE n.id = r.id AND n.run_lease > r.run_lease))"

/*
 * Steps 1-2 (the head of this file) for one sealed slot: the slot to carry
 * and truncate, or NULL after writing its result row (kept, busy,
 * snapshot, empty).  Caller is in SPI and holds the advisory lock.
 */
static SlotReclaim *
reclaim_check(ReturnSetInfo *rsinfo, int16 slot, int16 open, int32 carry_max)
{
	static SPIPlanPtr attempts_plan = NULL;
	static const Oid attempts_types[] = {INT2OID, FLOAT8OID, FLOAT8OID, INT4OID};
	int			nrels;
	SlotRel    *rels = slot_rels(slot, &nrels);
	SlotRel    *ready;
	Snapshot	snap;
	Datum		vals[4];
	uint64		nattempts;
	Datum	   *ids;
	Datum	   *leases;
	char	  **lanes;
	TimestampTz *run_ats;
	bool	   *finished;
	int64		unfinished = 0;
	int64		retained = 0;
	bool		any = false;
	TransactionId youngest = InvalidTransactionId;
	TransactionId horizon;
	int			i;
	uint64		j;

	for (i = 0; i < nrels; i++)
	{
		if (rels[i].part == InvalidOid)
			continue;
		if (rels[i].attempt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("awa.ring_reclaim: %s is partitioned by slot but has no attempt key",
							rels[i].parent),
					 errdetail("A relation of a slot needs (id, run_lease) or (job_id, run_lease) to be carried.")));
		if (SPI_execute(psprintf("SELECT 1 FROM %s LIMIT 1", rels[i].partname), true, 1) != SPI_OK_SELECT)
			elog(ERROR, "awa.ring_reclaim: could not read %s", rels[i].partname);
		any = any || SPI_processed > 0;
	}
	if (!any)
	{
		reclaim_row(rsinfo, slot, "empty", 0, 0, 0);
		return NULL;
	}

	/*
	 * 1. SHARE on the slot's ready partition, never queued: no ready row can
	 * come into the slot until this transaction ends (a writer racing a
	 * rotation waits for it), and none is being written (busy otherwise).
	 */
	for (i = 0; i < nrels && (rels[i].part == InvalidOid || strcmp(rels[i].attempt, "(id, run_lease + 1)") != 0); i++)
		;
	if (i == nrels)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.ring_reclaim: slot %d has no partition of awa.ready", slot)));
	ready = &rels[i];
	if (!lock_parts(ready, 1, ShareLock))
	{
		reclaim_row(rsinfo, slot, "busy", 0, 0, 0);
		return NULL;
	}
	/*
	 * 1a. and no write that makes a finished job of the slot needed or live
	 * again (a dependent naming it, awa.ring_retry) is in progress, none
	 * comes until this transaction ends (ring_history.c)
	 */
	if (!awa_ring_finished_hold())
	{
		unlock_parts(ready, 1, ShareLock);
		reclaim_row(rsinfo, slot, "busy", 0, 0, 0);
		return NULL;
	}

	/* the attempts to carry, with one snapshot S taken after that lock */
	awa_plan(&attempts_plan,
			 "SELECT r.id, r.run_lease, r.queue, r.run_at, d.state IS NULL OR d.state IN " AWA_STATES_HELD_SQL
			 "  OR d.waits OR " RECLAIM_EARLIER_ELSEWHERE_SQL
			 " FROM awa.ready r LEFT JOIN LATERAL"
			 " (SELECT d.state, d.finalized_at,"
			 /*
			  * hook: rhist -- an end whose next attempt waits in
			  * awa.scheduled (a retry's backoff, a snooze) has not handed
			  * the job over yet: the job is this attempt until promoted
			  */
			 "   EXISTS (SELECT 1 FROM awa.scheduled s WHERE s.id = d.job_id AND s.run_lease = d.run_lease) AS waits"
			 "  FROM awa.done d WHERE d.job_id = r.id"
			 /*
			  * hook: rcrash -- the attempt's end: of an attempt parked in
			  * waiting_external, the end of its wait (after_wait) if there
			  * is one; its waiting_external row, read instead, made an
			  * attempt whose wait had ended (a job failed or retried since)
			  * look held: carried, it was the job again beside its newer
			  * attempt
			  */
			 "  AND d.run_lease = r.run_lease + 1 AND d.slot = r.slot ORDER BY d.after_wait DESC LIMIT 1) d ON true"
			 " WHERE r.slot = $1 AND (d.state IS NULL OR d.state IN " AWA_STATES_HELD_SQL " OR d.waits"
			 "  OR " RECLAIM_EARLIER_ELSEWHERE_SQL
			 "  OR (((d.state = 'completed' AND ($2 < 0 OR d.finalized_at >= now() - make_interval(secs => $2)))"
			 "    OR (d.state IN ('failed', 'cancelled')"
			 "      AND ($3 < 0 OR d.finalized_at >= now() - make_interval(secs => $3)))"
			 /* hook: rmisc -- a finished job a dependent still needs: kept, as awa.jobs' retention keeps it */
			 "    OR (d.state IN ('completed', 'failed', 'cancelled') AND " AWA_RING_NEEDED_SQL("r.id") "))"
			 /*
			  * a finished attempt of a job made live again since (awa_retry:
			  * a newer ready row) is an earlier attempt, not a finished
			  * job: it goes with the slot (its error carried with the job)
			  */
			 "   AND NOT EXISTS (SELECT 1 FROM awa.ready n WHERE n.id = r.id AND n.run_lease > r.run_lease)))"
			 " LIMIT $4",
			 4, attempts_types);
	snap = RegisterSnapshot(GetLatestSnapshot());
	vals[0] = Int16GetDatum(slot);
	vals[1] = Float8GetDatum((double) awa_ring_retention("awa.retention_completed"));
	vals[2] = Float8GetDatum((double) awa_ring_retention("awa.retention_failed"));
	/* hook: rhist -- every attempt: the retained finished ones go into the history, not counted in carry_max */
	vals[3] = Int32GetDatum(PG_INT32_MAX);
	nattempts = awa_ring_run(attempts_plan, vals, NULL, snap, true, SPI_OK_SELECT,
							 "awa.ring_reclaim: attempts");
	ids = palloc(sizeof(Datum) * (nattempts + 1));
	leases = palloc(sizeof(Datum) * (nattempts + 1));
	lanes = palloc(sizeof(char *) * (nattempts + 1));
	run_ats = palloc(sizeof(TimestampTz) * (nattempts + 1));
	finished = palloc(sizeof(bool) * (nattempts + 1));
	for (j = 0; j < nattempts; j++)
	{
		HeapTuple	t = SPI_tuptable->vals[j];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		ids[j] = SPI_getbinval(t, d, 1, &isnull);
		leases[j] = SPI_getbinval(t, d, 2, &isnull);
		lanes[j] = psprintf("%s%s", RING_LANE_PREFIX, SPI_getvalue(t, d, 3));
		run_ats[j] = DatumGetTimestampTz(SPI_getbinval(t, d, 4, &isnull));
		finished[j] = !DatumGetBool(SPI_getbinval(t, d, 5, &isnull));
		if (!finished[j])
			unfinished++;
		else
			retained++;
	}
	/* hook: rhist -- only the unfinished are carried: the retained finished go into the history */
	if (unfinished > carry_max)
	{
		UnregisterSnapshot(snap);
		awa_ring_finished_unhold();
		unlock_parts(ready, 1, ShareLock);
		reclaim_row(rsinfo, slot, "kept", unfinished, retained, 0);
		return NULL;
	}

	/* 2. the youngest row of the slot, as S sees it: a full pass, no lock waited for */
	for (i = 0; i < nrels; i++)
	{
		bool		isnull;
		Datum		age;

		if (rels[i].part == InvalidOid)
			continue;
		if (awa_ring_run(SPI_prepare(psprintf("SELECT min(age(xmin)) FROM %s", rels[i].partname), 0, NULL),
						 NULL, NULL, snap, true, SPI_OK_SELECT, "awa.ring_reclaim: youngest row") != 1)
			elog(ERROR, "awa.ring_reclaim: no youngest row");
		age = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull && DatumGetInt32(age) != PG_INT32_MAX)
		{
			/* age() counts back from this stable xid (xid.c) */
			TransactionId x = GetStableLatestTransactionId() - (uint32) DatumGetInt32(age);

			if (!TransactionIdIsValid(youngest) || TransactionIdFollows(x, youngest))
				youngest = x;
		}
	}
	if (TransactionIdIsValid(youngest))
	{
		Relation	rel = relation_open(ready->part, NoLock);

		horizon = GetOldestNonRemovableTransactionId(rel);
		relation_close(rel, NoLock);
		if (!TransactionIdPrecedes(youngest, horizon))
		{
			UnregisterSnapshot(snap);
			awa_ring_finished_unhold();
			unlock_parts(ready, 1, ShareLock);
			reclaim_row(rsinfo, slot, "snapshot", unfinished, retained, 0);
			return NULL;
		}
	}

	{
		SlotReclaim *r = palloc0(sizeof(SlotReclaim));
		Datum	   *hids = palloc(sizeof(Datum) * (nattempts + 1));
		uint64		nhist = 0;

		/*
		 * hook: rhist -- the retained finished jobs into the history now,
		 * before step 3's locks (their rows no longer change: nothing waits
		 * for this); taken out again if step 3 finds the slot busy
		 */
		for (j = 0; j < nattempts; j++)
			if (finished[j])
				hids[nhist++] = ids[j];
		r->history = awa_ring_history_move(hids, nhist);
		r->slot = slot;
		r->open = open;
		r->rels = rels;
		r->nrels = nrels;
		r->ready = ready;
		r->nattempts = nattempts;
		r->ids = ids;
		r->leases = leases;
		r->lanes = lanes;
		r->run_ats = run_ats;
		r->finished = finished;
		r->unfinished = unfinished;
		r->retained = retained;
		/* what goes with the slot, counted now with S: nothing waits for this pass */
		reclaim_gone(r, snap, ids, leases, nattempts);
		UnregisterSnapshot(snap);
		return r;
	}
}

/*
 * Steps 3-5 for a slot that reclaim_check found reclaimable; writes its
 * result row.  Run for every such slot after every slot was checked, so
 * that the ACCESS EXCLUSIVE locks are held from here to the commit only.
 */
static void
reclaim_finish(ReturnSetInfo *rsinfo, SlotReclaim *r)
{
	int16		slot = r->slot;
	int16		open = r->open;
	SlotRel    *rels = r->rels;
	int			nrels = r->nrels;
	SlotRel    *ready = r->ready;
	uint64		nattempts = r->nattempts;
	Datum	   *ids = r->ids;
	Datum	   *leases = r->leases;
	char	  **lanes = r->lanes;
	TimestampTz *run_ats = r->run_ats;
	int64		unfinished = r->unfinished;
	int64		retained = r->retained;
	int			i;
	uint64		j;
	StringInfoData truncate;
	Datum		carried_ids;
	Datum		carried_leases;
	Datum	   *cids;
	Datum	   *cleases;
	volatile uint64 ncarried = 0;	/* read after PG_TRY */

	/* 3. ACCESS EXCLUSIVE on every partition of the slot, for the carry and the truncation only */
	if (!lock_parts(rels, nrels, AccessExclusiveLock))
	{
		/* hook: rhist -- the jobs stay in the slot: not in the history too */
		awa_ring_history_unmove(r->history);
		awa_ring_finished_unhold();
		unlock_parts(ready, 1, ShareLock);
		reclaim_row(rsinfo, slot, "busy", unfinished, retained, 0);
		return;
	}

	/* hook: rhist -- the unfinished are carried (the retained finished went into the history) */
	cids = palloc(sizeof(Datum) * (nattempts + 1));
	cleases = palloc(sizeof(Datum) * (nattempts + 1));
	for (j = 0; j < nattempts; j++)
	{
		if (!r->finished[j])
		{
			cids[ncarried] = ids[j];
			cleases[ncarried++] = leases[j];
		}
	}
	carried_ids = PointerGetDatum(construct_array(cids, ncarried, INT8OID, sizeof(int64),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	carried_leases = PointerGetDatum(construct_array(cleases, ncarried, INT8OID, sizeof(int64),
													 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	/* 4. carry the attempts of step 1 into the open slot, every relation of the slot */
	{
		Oid			types[4] = {INT2OID, INT2OID, INT8ARRAYOID, INT8ARRAYOID};
		Datum		cvals[4];

		cvals[0] = Int16GetDatum(open);
		cvals[1] = Int16GetDatum(slot);
		cvals[2] = carried_ids;
		cvals[3] = carried_leases;
		/* the same jobs in the same states: counted already (ring.h) */
		awa_ring_counting_off = true;
		PG_TRY();
		{
			for (i = 0; i < nrels; i++)
			{
				if (rels[i].part == InvalidOid)
					continue;
				run_latest(psprintf("INSERT INTO %s (slot, %s) OVERRIDING SYSTEM VALUE SELECT $1, %s FROM %s"
									" WHERE slot = $2 AND %s IN (SELECT u.i, u.l + 1 FROM unnest($3, $4) AS u(i, l))",
									rels[i].parent, rels[i].cols, rels[i].cols, rels[i].parent, rels[i].attempt),
						   4, types, cvals, false, SPI_OK_INSERT, true);
				/* hook: rhist -- the rows of earlier attempts of the jobs that go on (their past) */
				if (strcmp(rels[i].attempt, "(job_id, run_lease)") == 0)
					awa_ring_history_carry_earlier(rels[i].parent, rels[i].cols, slot, open,
												   carried_ids, carried_leases);
			}
		}
		PG_FINALLY();
		{
			awa_ring_counting_off = false;
		}
		PG_END_TRY();
		/* the pins: no floor may pass a carried job once the carry commits */
		for (j = 0; j < nattempts; j++)
			if (!r->finished[j])
				awa_floor_note(lanes[j], run_ats[j]);
	}

	/* the jobs that go with the slot leave the counters (not those carried or moved into the history) */
	reclaim_uncount(r);

	/* 5. the space back */
	initStringInfo(&truncate);
	appendStringInfoString(&truncate, "TRUNCATE ");
	for (i = 0; i < nrels; i++)
		if (rels[i].part != InvalidOid)
			appendStringInfo(&truncate, "%s%s", truncate.len > 9 ? ", " : "", rels[i].partname);
	if (SPI_execute(truncate.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "awa.ring_reclaim: %s failed", truncate.data);
	reclaim_row(rsinfo, slot, "reclaimed", unfinished, retained, (int64) ncarried);
}

Datum
awa_ring_reclaim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		carry_max;
	int16		open;
	int16	   *sealed;
	SlotReclaim **todo;
	uint64		nsealed;
	uint64		i;
	bool		isnull;

	awa_ring_check_enabled("awa.ring_reclaim");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("carry_max must not be null")));
	carry_max = PG_GETARG_INT32(0);
	if (carry_max < 0 || carry_max > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("carry_max must be between 0 and 1000000")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	if (!slots_try_lock())
	{
		Datum		out[5] = {0, CStringGetTextDatum("busy"), 0, 0, 0};
		bool		outnulls[5] = {true, false, true, true, true};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
		SPI_finish();
		return (Datum) 0;
	}
	if (run_latest("SELECT slot FROM awa.ring_slots WHERE state = 'open'", 0, NULL, NULL, true,
				   SPI_OK_SELECT, false) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.ring_reclaim: the ring has no open slot")));
	open = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* sealed slots, oldest first: in slot order after the open one, wrapping */
	nsealed = run_latest("SELECT slot FROM awa.ring_slots WHERE state = 'sealed'"
						 " ORDER BY slot <= (SELECT slot FROM awa.ring_slots WHERE state = 'open'), slot",
						 0, NULL, NULL, true, SPI_OK_SELECT, false);
	sealed = palloc(sizeof(int16) * (nsealed + 1));
	for (i = 0; i < nsealed; i++)
		sealed[i] = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	todo = palloc(sizeof(SlotReclaim *) * (nsealed + 1));
	for (i = 0; i < nsealed; i++)
	{
		CHECK_FOR_INTERRUPTS();
		todo[i] = reclaim_check(rsinfo, sealed[i], open, carry_max);
	}
	for (i = 0; i < nsealed; i++)
		if (todo[i] != NULL)
			reclaim_finish(rsinfo, todo[i]);
	SPI_finish();
	return (Datum) 0;
}
