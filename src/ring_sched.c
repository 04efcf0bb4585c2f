/*-------------------------------------------------------------------------
 *
 * ring_sched.c
 *		The ring's scheduled jobs, retry with backoff, snooze and cancel
 *		(docs/storage.md, section 5 and "Step 4: scheduled jobs, backoff,
 *		snooze, cancel").  Internal like ring.c: every function refuses to
 *		run unless awa.ring_engine is on.
 *
 * awa.scheduled holds the jobs due later: one row per job at most (primary
 * key id), with the payload of a ready row, run_lease (the lease of the
 * previous attempt, 0 for a new job) and attempt (attempts counted before
 * it), and state: 'scheduled' (enqueued for later, or snoozed) or
 * 'retryable' (a failed attempt waiting out its backoff).  It is the one
 * mutable relation here: promotion deletes its rows.
 *
 * Writes:
 *	- ring_insert with a run_at after now(): a scheduled row (hook in
 *	  ring.c), pinned at its run_at like a ready row;
 *	- ring_fail with attempts left: a done row 'retryable' (ring.c), then
 *	  the next attempt (awa_ring_sched_next): a scheduled row at now() +
 *	  retry_in, or now() + awa's default backoff (AWA_BACKOFF_SQL, the
 *	  formula of awa_fail) when retry_in is NULL; retry_in 0 writes the
 *	  ready row at once, as before;
 *	- ring_snooze: a done row 'scheduled' (awa_snooze makes a job
 *	  'scheduled'), then the next attempt the same way at now() + delay,
 *	  with the snoozed attempt not counted (attempt as before the claim);
 *	- promotion (the claim, for its queue; ring_promote, for any queue): a
 *	  due scheduled row is locked FOR UPDATE SKIP LOCKED, deleted and
 *	  written as a ready row of the open slot, in one statement: a row
 *	  locked by another promoter is skipped, a row another promoter deleted
 *	  and committed is not seen (newest snapshot), so a scheduled row
 *	  becomes exactly one ready row;
 *	- ring_cancel: a done row 'cancelled' for the attempt a claim would
 *	  give next (or the one running), after locking the newest ready row;
 *	  a scheduled job is moved to a ready row and cancelled there.
 *
 * Floors.  A scheduled row is a waiting job at its (run_at, id): the floor
 * of its lane must never pass it.  Its writer notes its run_at (the pin),
 * and the claim's floor probe looks at scheduled rows as well as ready
 * rows (awa_ring_sched_probe).  Promotion moves a row from scheduled to
 * ready at the same key in one transaction: any snapshot sees it in one
 * of the two, waiting at that key, so it needs no pin of its own.
 *
 * Plans as in ring.c: generic, pinned (awa_ring_run), index probes only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "floor.h"
#include "ring.h"
#include "ring_sched.h"

#define RING_PROMOTE_MAX	10000

PG_FUNCTION_INFO_V1(awa_ring_promote);
PG_FUNCTION_INFO_V1(awa_ring_snooze);
PG_FUNCTION_INFO_V1(awa_ring_cancel);

static int64 awa_ring_sched_insert(Datum *values, const char *nulls);
static void awa_ring_sched_promote_lane(text *queue, AwaFloorScan *scan, int n);
static void awa_ring_sched_probe(AwaFloorScan *scan, Datum queue, AwaFloorKey *first, bool *found);
static void awa_ring_sched_next(Datum *values, int32 next_attempt, int32 backoff_attempt,
								Interval *delay, const char *state, const char *queue,
								Snapshot snap);

/* ring.c's hooks into this file (ring_sched.h); from _PG_init */
void
awa_ring_sched_init(void)
{
	awa_ring_sched_hooks.insert = awa_ring_sched_insert;
	awa_ring_sched_hooks.promote_lane = awa_ring_sched_promote_lane;
	awa_ring_sched_hooks.probe = awa_ring_sched_probe;
	awa_ring_sched_hooks.next = awa_ring_sched_next;
}

/* RING_PROMOTE_SQL and its parts: ring_sched.h (hook: rclaim: ring_claim.c promotes for several queues) */

/* ---------------------------------------------------------------------
 * Hooks called by ring.c
 * ---------------------------------------------------------------------
 */

/*
 * ring_insert of a job due later: its scheduled row.  values/nulls:
 * ring_insert's statement's (RING_INSERT_NARGS, ring.h).  Caller is in SPI
 * and notes the pin.  Returns the id.
 */
static int64
awa_ring_sched_insert(Datum *values, const char *nulls)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[RING_INSERT_NARGS] = {TEXTOID, JSONBOID, TEXTOID, INT4OID, INT4OID,
		TIMESTAMPTZOID, INT8OID, BYTEAOID, TEXTOID, TEXTARRAYOID, JSONBOID, INTERVALOID, TEXTOID,
	TEXTOID};
	bool		isnull;

	awa_plan(&plan,
			 "INSERT INTO awa.scheduled (id, kind, args, queue, priority, max_attempts, run_at,"
			 " unique_key, unique_states, tags, metadata, timeout, group_id, concurrency_key)"
			 " VALUES (coalesce($7, nextval('awa.jobs_id_seq')), $1, $2, $3, $4, $5, $6, $8, $9::bit(8),"
			 " $10, $11, $12, $13, $14)"
			 " RETURNING id",
			 RING_INSERT_NARGS, argtypes);
	awa_ring_run(plan, values, nulls, InvalidSnapshot, false, SPI_OK_INSERT_RETURNING,
				 "awa.ring_insert: scheduled row");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Whether the queue has a scheduled row the promotion below could move: of
 * a priority whose floor is not at the end (a scheduled row's insert pins
 * its run_at, so such a priority holds none: ring_claim.c's
 * ring_promote_all skips them too), at or above its floor's run_at and due
 * by at, as the newest snapshot sees it (the promotion's own).  Read from
 * scheduled_claim_idx directly: one descent per priority, no statement.
 * Most queues have no scheduled rows, and the promotion statement (a
 * DELETE and an INSERT into the partitioned awa.ready) cost a claim of
 * ten about 4 % of its time even when it moved nothing (docs/storage.md,
 * "Step 5: claim and complete, fewer statements").  Conservative: a row
 * below its floor's id, or one another promoter holds, still says yes.
 */
static bool
sched_due_exists(text *queue, AwaFloorScan *scan, TimestampTz at)
{
	Oid			nsp = get_namespace_oid("awa", false);
	Oid			relid = get_relname_relid("scheduled", nsp);
	Oid			idxid = get_relname_relid("scheduled_claim_idx", nsp);
	Relation	heap;
	Relation	idx;
	TupleTableSlot *slot;
	Snapshot	snap;
	bool		found = false;
	int			p;

	if (!OidIsValid(relid) || !OidIsValid(idxid))
		return true;			/* let the statement say what is missing */
	heap = table_open(relid, AccessShareLock);
	idx = index_open(idxid, AccessShareLock);
	slot = table_slot_create(heap, NULL);
	snap = RegisterSnapshot(GetLatestSnapshot());
	for (p = 1; p <= AWA_FLOOR_PRIORITIES && !found; p++)
	{
		ScanKeyData key[4];
		IndexScanDesc iscan;

		if (awa_floor_at_end(scan, p))
			continue;
		ScanKeyEntryInitialize(&key[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(queue));
		ScanKeyEntryInitialize(&key[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[1], F_INT2EQ, Int16GetDatum((int16) p));
		ScanKeyEntryInitialize(&key[2], 0, 3, BTGreaterEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[2], F_TIMESTAMPTZ_GE,
							   TimestampTzGetDatum(scan->floors[p - 1].run_at));
		ScanKeyEntryInitialize(&key[3], 0, 3, BTLessEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[2], F_TIMESTAMPTZ_LE, TimestampTzGetDatum(at));
		iscan = index_beginscan(heap, idx, snap, 4, 0);
		index_rescan(iscan, key, 4, NULL, 0);
		found = index_getnext_slot(iscan, ForwardScanDirection, slot);
		index_endscan(iscan);
	}
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(heap, NoLock);
	return found;
}

/*
 * The claim, before its passes: promote up to n due scheduled rows of each
 * priority of the queue, from the lane's floors, in (run_at, id) order,
 * skipping rows another claimer holds.  The claim's passes then choose
 * among ready and promoted rows alike, in (priority, run_at, id) order:
 * the first n of their union are among the first n of each.  Promoted rows
 * the claim does not take stay ready (they were due).  Skipped when no such row is due
 * (sched_due_exists).  Caller is in SPI.
 */
static void
awa_ring_sched_promote_lane(text *queue, AwaFloorScan *scan, int n)
{
	static SPIPlanPtr plan = NULL;
	/* hook: rclaimx: $5 the claim's time (ring.h) */
	static const Oid argtypes[] = {TEXTOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[5];
	TimestampTz at = awa_ring_claim_at != 0 ? awa_ring_claim_at : GetCurrentTransactionStartTimestamp();

	if (!sched_due_exists(queue, scan, at))
		return;
	awa_plan(&plan,
			 RING_PROMOTE_SQL(
				"SELECT w.id FROM unnest($2, $3) WITH ORDINALITY AS f(fr, fi, p) CROSS JOIN LATERAL"
				" (SELECT s.id FROM awa.scheduled s"
				"  WHERE s.queue = $1 AND s.priority = f.p AND (s.run_at, s.id) >= (f.fr, f.fi)"
				"  AND s.run_at <= $5"
				"  ORDER BY s.run_at, s.id LIMIT $4 FOR UPDATE OF s SKIP LOCKED) w",
				"id"),
			 5, argtypes);
	values[0] = PointerGetDatum(queue);
	values[1] = awa_floor_run_ats(scan);
	values[2] = awa_floor_ids(scan);
	values[3] = Int32GetDatum(n);
	values[4] = TimestampTzGetDatum(at);
	/* the newest snapshot, as the claim's candidates (ring.c) */
	awa_ring_run(plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
				 "awa.ring_claim: promotion");
}

/*
 * The floor probe's scheduled half: lowers first[p] to the first scheduled
 * row of the lane at or above the floor, as the claim's snapshot sees it.
 * Caller is in SPI (ring.c's ring_probe, after its ready rows).
 */
static void
awa_ring_sched_probe(AwaFloorScan *scan, Datum queue, AwaFloorKey *first, bool *found)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	Datum		values[4];
	AwaFloorKey sfirst[AWA_FLOOR_PRIORITIES];
	bool		sfound[AWA_FLOOR_PRIORITIES];
	int			p;

	if (!awa_floor_probe_args(scan, queue, values, sfound))
		return;
	awa_plan(&plan,
			 "SELECT f.p, w.run_at, w.id"
			 " FROM unnest($2, $3, $4) AS f(p, fr, fi) CROSS JOIN LATERAL"
			 " (SELECT s.run_at, s.id FROM awa.scheduled s"
			 "  WHERE s.queue = $1 AND s.priority = f.p AND (s.run_at, s.id) >= (f.fr, f.fi)"
			 "  ORDER BY s.run_at, s.id LIMIT 1) w",
			 4, argtypes);
	awa_ring_run(plan, values, NULL, scan->snapshot, true, SPI_OK_SELECT,
				 "awa.ring_claim: floor probe of scheduled rows");
	awa_floor_probe_read(sfirst, sfound);
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		if (sfound[p] && (!found[p] || sfirst[p].run_at < first[p].run_at ||
						  (sfirst[p].run_at == first[p].run_at && sfirst[p].id < first[p].id)))
		{
			first[p] = sfirst[p];
			found[p] = true;
		}
}

/*
 * The attempt after the one (values[0] slot, values[1] id, values[2]
 * run_lease) that just ended as retryable (ring_fail) or snoozed
 * (ring_snooze): its ready row's payload, run_lease = the ended lease,
 * attempt = next_attempt (attempts counted before it), due after delay
 * (NULL: awa's default backoff after attempt backoff_attempt).  Due now
 * (delay 0): a ready row of the open slot; later: a scheduled row of the
 * given state.  Notes its run_at for the floor's pin.  Caller is in SPI.
 */
static void
awa_ring_sched_next(Datum *values, int32 next_attempt, int32 backoff_attempt,
					Interval *delay, const char *state, const char *queue, Snapshot snap)
{
	static SPIPlanPtr now_plan = NULL;
	static SPIPlanPtr later_plan = NULL;
	static const Oid now_types[] = {INT2OID, INT8OID, INT8OID, INT4OID};
	static const Oid later_types[] = {INT2OID, INT8OID, INT8OID, INT4OID, INTERVALOID, INT4OID, TEXTOID};
	Datum		v[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	v[0] = values[0];
	v[1] = values[1];
	v[2] = values[2];
	v[3] = Int32GetDatum(next_attempt);
	if (delay != NULL && awa_interval_usecs(delay) == 0)
	{
		/* due now: the next attempt's ready row, in the open slot */
		awa_plan(&now_plan,
				 "INSERT INTO awa.ready (slot, id, run_lease, attempt, run_at, " RING_JOB_COLS ")"
				 " SELECT s.slot, r.id, r.run_lease + 1, $4, now(), " RING_JOB_COLS_OF("r.")
				 " FROM awa.ready r CROSS JOIN LATERAL"
				 " (SELECT s.slot FROM awa.ring_slots s WHERE s.state = 'open') s"
				 " WHERE r.id = $2 AND r.run_lease = $3 - 1 AND r.slot = $1",
				 4, now_types);
		if (awa_ring_run(now_plan, v, NULL, snap, false, SPI_OK_INSERT,
						 "awa.ring_fail: retry") != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the ring has no open slot")));
		awa_floor_note(psprintf("%s%s", RING_LANE_PREFIX, queue), GetCurrentTransactionStartTimestamp());
		/* hook: rwait: the lane's waiters are woken at commit */
		awa_lane_available(psprintf("%s%s", RING_LANE_PREFIX, queue), true);
		return;
	}
	/* later: a scheduled row ($5 NULL: the default backoff after attempt $6) */
	awa_plan(&later_plan,
			 "INSERT INTO awa.scheduled (id, run_lease, attempt, state, run_at, " RING_JOB_COLS ")"
			 " SELECT r.id, r.run_lease + 1, $4, $7::awa.job_state,"
			 " CASE WHEN $5 IS NULL THEN " AWA_BACKOFF_SQL("$6") " ELSE now() + $5 END, "
			 RING_JOB_COLS_OF("r.")
			 " FROM awa.ready r"
			 " WHERE r.id = $2 AND r.run_lease = $3 - 1 AND r.slot = $1"
			 " RETURNING run_at",
			 7, later_types);
	v[4] = PointerGetDatum(delay);
	if (delay == NULL)
		nulls[4] = 'n';
	v[5] = Int32GetDatum(backoff_attempt);
	v[6] = CStringGetTextDatum(state);
	if (awa_ring_run(later_plan, v, nulls, snap, false, SPI_OK_INSERT_RETURNING,
					 "awa.ring_fail: scheduled retry") != 1)
		elog(ERROR, "awa.ring_fail: the ended attempt's ready row is missing");
	awa_floor_note(psprintf("%s%s", RING_LANE_PREFIX, queue),
				   DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													 1, &isnull)));
	/* hook: rwait: a waiter of the lane looks again at commit (its next due time) */
	awa_lane_available(psprintf("%s%s", RING_LANE_PREFIX, queue), false);
}

/* ---------------------------------------------------------------------
 * awa.ring_promote(max)
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_promote(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT4OID};
	Datum		values[1];
	int32		max;
	uint64		n;
	uint64		i;

	awa_ring_check_enabled("awa.ring_promote");
	max = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0);
	if (max < 1 || max > RING_PROMOTE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 1 and %d", RING_PROMOTE_MAX)));
	values[0] = Int32GetDatum(max);
	SPI_connect();
	awa_plan(&plan,
			 RING_PROMOTE_SQL(
				"SELECT s.id FROM awa.scheduled s WHERE s.run_at <= now()"
				" ORDER BY s.run_at LIMIT $1 FOR UPDATE SKIP LOCKED",
				"queue, run_at"),
			 1, argtypes);
	n = awa_ring_run(plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
					 "awa.ring_promote: promotion");
	/*
	 * hook: robs -- each job promoted wakes a blocking claimer of its queue
	 * at commit (one keeping its due time may have found the row locked by
	 * this promotion and be backing off, ring_wait.c), and pins its run_at:
	 * a run_at lowered behind the ring's back (a plain UPDATE) would else be
	 * below the lane's floor until its next reset
	 */
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *lane = awa_ring_lane(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[i],
																	  SPI_tuptable->tupdesc, 1, &isnull)));

		awa_floor_note(lane, DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i],
																SPI_tuptable->tupdesc, 2, &isnull)));
		awa_lane_available(lane, true);
	}
	SPI_finish();
	PG_RETURN_INT32((int32) n);
}

/* ---------------------------------------------------------------------
 * awa.ring_snooze(id, run_lease, delay)
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_snooze(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr attempt_plan = NULL;
	static SPIPlanPtr done_plan = NULL;
	static const Oid attempt_types[] = {INT8OID, INT8OID};
	static const Oid done_types[] = {INT2OID, INT8OID, INT8OID};
	Datum		values[3];
	Interval   *delay;
	bool		isnull;
	int32		attempt;
	char	   *queue;
	int			i;

	awa_ring_check_enabled("awa.ring_snooze");
	for (i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be null", (const char *[]) {"id", "run_lease", "delay"}[i])));
	delay = PG_GETARG_INTERVAL_P(2);
	(void) awa_check_delay(delay, "delay", false);

	SPI_connect();
	/* the running attempt: its receipt and ready row */
	awa_plan(&attempt_plan,
			 "SELECT c.slot, r.attempt::integer, r.queue"
			 " FROM awa.claims c CROSS JOIN LATERAL"
			 " (SELECT r.attempt, r.queue FROM awa.ready r"
			 "  WHERE r.id = c.job_id AND r.run_lease = c.run_lease - 1 AND r.slot = c.slot LIMIT 1) r"
			 " WHERE c.job_id = $1 AND c.run_lease = $2 LIMIT 1",
			 2, attempt_types);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	if (awa_ring_run(attempt_plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa.ring_snooze: attempt") == 0)
	{
		SPI_finish();
		PG_RETURN_BOOL(false);	/* no such attempt was claimed */
	}
	values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	attempt = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	queue = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	values[1] = PG_GETARG_DATUM(0);
	values[2] = PG_GETARG_DATUM(1);

	/* the end of the attempt, guarded like the other ends: one done row per lease */
	awa_plan(&done_plan,
			 "INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at)"
			 " VALUES ($1, $2, $3, 'scheduled', now())"
			 " ON CONFLICT DO NOTHING RETURNING job_id",
			 3, done_types);
	if (awa_ring_run(done_plan, values, NULL, InvalidSnapshot, false, SPI_OK_INSERT_RETURNING,
					 "awa.ring_snooze: done row") == 0)
	{
		SPI_finish();
		PG_RETURN_BOOL(false);	/* the attempt had already ended */
	}
	/* the snoozed attempt is not counted: the next claim gives the same attempt number */
	awa_ring_sched_next(values, attempt, attempt, delay, "scheduled", queue, InvalidSnapshot);
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/* ---------------------------------------------------------------------
 * awa.ring_cancel(id)
 * ---------------------------------------------------------------------
 */

Datum
awa_ring_cancel(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr sched_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr done_plan = NULL;
	static SPIPlanPtr check_plan = NULL;
	static const Oid id_type[] = {INT8OID};
	static const Oid done_types[] = {INT2OID, INT8OID, INT8OID};
	Datum		id;

	awa_ring_check_enabled("awa.ring_cancel");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id must not be null")));
	id = PG_GETARG_DATUM(0);

	SPI_connect();
	/* a scheduled job: its row, locked (waits for a promoter), becomes a cancelled ready row */
	awa_plan(&sched_plan,
			 "WITH " RING_PROMOTE_CTES("SELECT s.id FROM awa.scheduled s WHERE s.id = $1 FOR UPDATE") ","
			 " r AS (" RING_PROMOTE_INSERT " RETURNING slot, id, run_lease)"
			 " INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at)"
			 " SELECT r.slot, r.id, r.run_lease + 1, 'cancelled', now() FROM r"
			 " RETURNING job_id",
			 1, id_type);
	/* the newest ready row of the job, locked: a claim holding it is waited for */
	awa_plan(&lock_plan,
			 "SELECT r.slot, r.run_lease FROM awa.ready r WHERE r.id = $1"
			 " ORDER BY r.run_lease DESC LIMIT 1 FOR UPDATE",
			 1, id_type);
	/*
	 * The cancel of the attempt (id, run_lease + 1): the one running, or the
	 * one a claim would give next.  Not if a newer attempt exists.
	 */
	awa_plan(&done_plan,
			 "INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at)"
			 " SELECT $1, $2, $3 + 1, 'cancelled', now()"
			 " WHERE (SELECT 1 FROM awa.ready n WHERE n.id = $2 AND n.run_lease > $3 LIMIT 1) IS NULL"
			 " ON CONFLICT DO NOTHING RETURNING job_id",
			 3, done_types);
	/* why not: whether the end that won wrote a next attempt */
	awa_plan(&check_plan,
			 "SELECT (SELECT 1 FROM awa.ready n WHERE n.id = $2 AND n.run_lease > $3 LIMIT 1) IS NOT NULL"
			 " OR (SELECT 1 FROM awa.scheduled s WHERE s.id = $2) IS NOT NULL",
			 3, done_types);

	/*
	 * Each turn of this loop but the last lost to another transaction that
	 * ended the attempt and wrote the next one (a retry, a snooze, a
	 * promotion): that is progress, so it ends.  Every statement reads the
	 * newest snapshot, also in REPEATABLE READ, so that it sees what the
	 * lock it waited for protected.
	 */
	for (;;)
	{
		Datum		values[3];
		bool		isnull;
		bool		newer;

		CHECK_FOR_INTERRUPTS();
		if (awa_ring_run(sched_plan, &id, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
						 "awa.ring_cancel: scheduled job") == 1)
			break;
		if (awa_ring_run(lock_plan, &id, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa.ring_cancel: lock") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("job %lld does not exist", (long long) DatumGetInt64(id))));
		values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		values[1] = id;
		values[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (awa_ring_run(done_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
						 "awa.ring_cancel: done row") == 1)
			break;
		awa_ring_run(check_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring_cancel: check");
		newer = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (!newer)
		{
			/* hook: rext -- a parked attempt (waiting_external): its wait ends cancelled */
			int			parked = awa_ring_ext_cancel_parked(values);

			if (parked > 0)
				break;
			if (parked < 0)
				continue;

			/* ended for good (completed, failed, cancelled) */
			SPI_finish();
			PG_RETURN_BOOL(false);
		}
	}
	SPI_finish();
	PG_RETURN_BOOL(true);
}
