/*-------------------------------------------------------------------------
 *
 * ring_lease.c
 *		Heartbeats, progress and the rescue of attempts past their deadline
 *		on the ring (docs/storage.md, section 5 and "Step 4: heartbeats,
 *		progress, rescue").  Internal like ring.c: awa.ring_heartbeat and
 *		awa.ring_rescue refuse to run unless awa.ring_engine is on.
 *
 * Beats.  A heartbeat of a running attempt (a receipt, no done row) appends
 * a row to awa.beats, in the slot of the attempt's receipt: when (at), the
 * attempt's new deadline (at + the lease given, else the receipt's) and
 * the job's progress.  Progress replaces, as awa_progress's does, and is
 * kept across retries: a beat without progress carries the progress of the
 * job's latest beat (of this attempt or an earlier one) forward, so the
 * latest beat of a job always holds its progress (AWA_RING_PROGRESS_SQL).
 * An attempt's deadline is its latest beat's, else its receipt's
 * (AWA_RING_DEADLINE_SQL).  Short jobs never write a beat.  Nothing is
 * updated: a beat is one insert.
 *
 * Rescue (awa.ring_rescue) ends every running attempt that is due as
 * awa's rescue decides it (job.c, RESCUE_SQL), with the awa.heartbeat_timeout
 * of the session that rescues: its deadline (its latest heartbeat, or its
 * claim, + the lease that heartbeat gave, never later than claimed_at + the
 * job's timeout) has passed, or its latest heartbeat is older than that
 * setting.  It ends it as awa's rescue does: retryable, retried now, while
 * attempts remain, else failed, with awa's cause; it does so through
 * ring_fail's own logic (awa_ring_fail_attempt, ring.c), so that it writes
 * a retry exactly as a failure does.
 *
 * Walking only what can be due.  Receipts and beats are never updated and
 * most receipts have a done row, so the rescue must not look at every
 * receipt ever written.  Both have an index on deadline_at, and a kept
 * position, awa.ring_rescue_mark.passed, says: every attempt whose deadline
 * is at or before it has been looked at when it was due, and either ended
 * or had a later deadline by then.  A round walks only the receipts and
 * beats whose deadline_at lies between the mark and now(), takes those
 * whose attempt is running (no done row) with a current deadline before
 * now(), and ends them; then it raises the mark.  An attempt's current
 * deadline is the deadline_at of one of its rows (the receipt or its latest
 * beat), so every attempt that falls due is found by the round after its
 * deadline passed, and every receipt and beat is walked once or twice in
 * its life (once as its deadline passes, and again while the mark lags
 * behind, below), never once per round.
 *
 * The mark lags behind rows not committed yet.  A receipt or beat gets
 * deadline_at = now() + lease (a receipt; now() being its transaction's
 * start) or at + lease (a beat; at read from the clock, so no earlier), and
 * may commit long after that: a mark raised to now() could pass a row the round
 * did not see.  So the mark is raised at most to the start of the oldest
 * transaction of this database still in progress (as the activity of the
 * backends shows it, read before the round's snapshot; a backend that does
 * not report its activity counts from its own start), less a second for
 * the moment between a transaction's start and its report of it; and not at
 * all while a prepared transaction of this database exists (its start is
 * not known).  A long transaction therefore widens the rounds' walk to the
 * rows due since it began; it never makes a round miss an attempt.  The
 * mark is also capped below the first attempt the round found due but did
 * not end (another round's lock, a heartbeat holding its receipt, max
 * reached), so that the next round finds it again.
 *
 * Races (isolation specs ring_lease_*).  A heartbeat takes the receipt's
 * row lock FOR SHARE, then checks for a done row with a fresh snapshot and
 * writes its beat; the rescue takes the receipt FOR UPDATE SKIP LOCKED,
 * then checks the deadline and the done row with a fresh snapshot, then
 * ends the attempt.  So a heartbeat in progress makes the rescue skip the
 * attempt; a heartbeat that committed is seen by the rescue's check; a
 * rescue in progress makes the heartbeat wait, then see its done row and
 * return NULL without writing: exactly one of them wins.  A rescue and a
 * completion both write the attempt's done row, whose unique key lets only
 * the first commit (ON CONFLICT DO NOTHING, ring_fail's no-op: the rescue
 * then writes no retry either).  A row lock writes no new row version: no
 * receipt is updated.
 *
 * Caps (ring_obs.h).  A beat's deadline, like the claim's receipt's, is
 * never later than the attempt's claimed_at + the job's timeout (the
 * timeout column of its ready row) nor than now() + awa.heartbeat_timeout
 * (the writer's), so an attempt that runs too long, or whose worker
 * stopped beating for longer than that setting, falls due and this walk
 * finds it.  That stored deadline is the walk's key only; whether the
 * attempt is due is decided when it is found, by the rule above with the
 * rescuer's setting, and the cause is awa's (job.c, RESCUE_CAUSE_0_3):
 * "timeout exceeded" when the deadline is claimed_at + timeout, "deadline
 * exceeded" when it is the heartbeat + its lease, else "heartbeat stale".
 * A beat keeps the lease it renewed by (awa.beats.lease) for that.  A
 * capped deadline may lie in the past when a beat writes it (a beat after
 * the timeout); the mark cannot have passed it: it is at least every
 * earlier deadline of the attempt, and a round that raised the mark past
 * one of those found the attempt due.
 *
 * The rescuer's setting.  awa.heartbeat_timeout is a session's setting:
 * the claimer's and the rescuer's may differ.  A rescuer whose setting is
 * longer than the one that capped a key finds the attempt when the key
 * passes, sees it is not due yet, and keeps the mark below the key, so
 * that a later round looks again (the walk widens until it is due, ends or
 * heartbeats).  A rescuer whose setting is shorter than its default (a
 * session that SET it lower, to rescue sooner) also walks the keys up to
 * now() + the difference and ends those whose latest heartbeat is older
 * than its setting: every attempt written by a session at that default (or
 * lower) is among them, and so is one written by a session whose own setting
 * was longer (hook: rclean -- keys are capped by the writer's default too:
 * awa_ring_heartbeat_cap).  Only a writer whose default itself is longer
 * than the rescuer's (a setting per role or database the rescuer does not
 * share) is found when its key passes, up to that difference late.
 *
 * Not here: counters (the view's helper owns them).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "ring.h"
#include "ring_lease.h"
#include "ring_obs.h"

#define RING_RESCUE_MAX			100000

/* the moment between a transaction's start and its report of it (above) */
#define RING_RESCUE_MARGIN		USECS_PER_SEC

PG_FUNCTION_INFO_V1(awa_ring_heartbeat);
PG_FUNCTION_INFO_V1(awa_ring_attempt_lease_sql);
PG_FUNCTION_INFO_V1(awa_ring_heartbeat_cap);
PG_FUNCTION_INFO_V1(awa_ring_rescue);

/* ---------------------------------------------------------------------
 * awa_ring_attempt_lease (ring_lease.h)
 * ---------------------------------------------------------------------
 */
bool
awa_ring_attempt_lease(int64 job_id, int64 run_lease, TimestampTz *deadline, Jsonb **progress)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID, INT8OID};
	Datum		values[2];
	Datum		d;
	bool		isnull;

	awa_plan(&plan,
			 "SELECT " AWA_RING_DEADLINE_SQL("c") ", " AWA_RING_PROGRESS_SQL("$1", "$2")
			 " FROM awa.claims c WHERE c.job_id = $1 AND c.run_lease = $2 LIMIT 1",
			 2, argtypes);
	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(run_lease);
	if (awa_ring_run(plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa_ring_attempt_lease") == 0)
		return false;
	*deadline = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*progress = isnull ? NULL : DatumGetJsonbP(datumCopy(d, false, -1));
	return true;
}

/*
 * awa.ring_attempt_lease(id, run_lease) -> (deadline_at, progress): the same
 * from SQL; both NULL if the attempt was never claimed.
 */
Datum
awa_ring_attempt_lease_sql(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	TimestampTz deadline;
	Jsonb	   *progress;
	Datum		out[2];
	bool		outnulls[2] = {false, false};
	bool		found;
	int			i;

	awa_ring_check_enabled("awa.ring_attempt_lease");
	for (i = 0; i < 2; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be null", (const char *[]) {"id", "run_lease"}[i])));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa.ring_attempt_lease: return type must be a row type");

	SPI_connect();
	found = awa_ring_attempt_lease(PG_GETARG_INT64(0), PG_GETARG_INT64(1), &deadline, &progress);
	if (found && progress != NULL)
		progress = DatumGetJsonbP(SPI_datumTransfer(JsonbPGetDatum(progress), false, -1));
	SPI_finish();
	if (!found)
		PG_RETURN_NULL();
	out[0] = TimestampTzGetDatum(deadline);
	if (progress == NULL)
		outnulls[1] = true;
	else
		out[1] = JsonbPGetDatum(progress);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), out, outnulls)));
}

/* 22023 unless the interval is positive (field names it) */
static void
check_positive_interval(Interval *i, const char *field)
{
	if (i->month < 0 || i->day < 0 || i->time < 0 ||
		(i->month == 0 && i->day == 0 && i->time == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", field)));
}

/* ---------------------------------------------------------------------
 * awa.ring_heartbeat(id, run_lease, lease, progress)
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_heartbeat(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr beat_plan = NULL;
	static const Oid lock_types[] = {INT8OID, INT8OID};
	static const Oid beat_types[] = {INT8OID, INT8OID, INT2OID, INTERVALOID, JSONBOID, TIMESTAMPTZOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	TimestampTz deadline;
	int			i;

	awa_ring_check_enabled("awa.ring_heartbeat");
	for (i = 0; i < 2; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be null", (const char *[]) {"id", "run_lease"}[i])));
	if (!PG_ARGISNULL(2))
		check_positive_interval(PG_GETARG_INTERVAL_P(2), "lease");

	SPI_connect();
	/* the receipt, locked against a rescue (see the head of this file) */
	awa_plan(&lock_plan,
			 "SELECT c.slot, c.lease,"
			 " c.claimed_at + " AWA_RING_TIMEOUT_SQL("c.slot", "c.job_id", "c.run_lease")
			 " FROM awa.claims c WHERE c.job_id = $1 AND c.run_lease = $2"
			 " LIMIT 1 FOR SHARE OF c",
			 2, lock_types);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	if (awa_ring_run(lock_plan, values, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa.ring_heartbeat: receipt") == 0)
	{
		SPI_finish();
		PG_RETURN_NULL();		/* never claimed under this lease */
	}
	values[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	values[3] = PG_ARGISNULL(2)
		? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)
		: PG_GETARG_DATUM(2);
	if (PG_ARGISNULL(3))
		nulls[4] = 'n';
	else
		values[4] = PG_GETARG_DATUM(3);
	/* the job's timeout caps every deadline of the attempt (NULL: none) */
	values[5] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (isnull)
		nulls[5] = 'n';

	/*
	 * The beat, unless the attempt has ended: read with a snapshot taken
	 * after the lock, which shows the done row of a rescue that held it.
	 * Its time and its deadline come from one reading of the clock, so that
	 * deadline_at = at + lease (uncapped) as on awa.jobs, whose heartbeat
	 * sets both from now(); the clock, not the transaction's start, keeps
	 * two beats of one transaction ordered.  The deadline is no earlier than
	 * the transaction's start + lease, which the rescue's mark relies on.
	 */
	awa_plan(&beat_plan,
			 "INSERT INTO awa.beats (job_id, run_lease, slot, at, deadline_at, progress, lease)"
			 " SELECT $1, $2, $3, t.at,"
			 " LEAST(t.at + LEAST($4, " AWA_RING_HEARTBEAT_TIMEOUT_SQL "), $6),"
			 " coalesce($5, " AWA_RING_PROGRESS_SQL("$1", "$2") "), $4"
			 " FROM (SELECT clock_timestamp() AS at) t"
			 " WHERE (SELECT 1 FROM awa.done d WHERE d.job_id = $1 AND d.run_lease = $2"
			 "        AND d.slot = $3 LIMIT 1) IS NULL"
			 " RETURNING deadline_at",
			 6, beat_types);
	if (awa_ring_run(beat_plan, values, nulls, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
					 "awa.ring_heartbeat: beat") == 0)
	{
		SPI_finish();
		PG_RETURN_NULL();		/* the attempt has ended */
	}
	deadline = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_TIMESTAMPTZ(deadline);
}

/* ---------------------------------------------------------------------
 * awa.ring_rescue(max)
 * ---------------------------------------------------------------------
 */

/* An attempt found due. */
typedef struct RescueCandidate
{
	int64		job_id;
	int64		run_lease;
	int16		slot;
	TimestampTz deadline;
} RescueCandidate;

static int
candidate_cmp(const void *a, const void *b)
{
	const RescueCandidate *x = a;
	const RescueCandidate *y = b;

	if (x->deadline != y->deadline)
		return x->deadline < y->deadline ? -1 : 1;
	if (x->job_id != y->job_id)
		return x->job_id < y->job_id ? -1 : 1;
	if (x->run_lease != y->run_lease)
		return x->run_lease < y->run_lease ? -1 : 1;
	return 0;
}

/*
 * The start of the oldest transaction of this database in progress as the
 * backends' activity shows it (a backend that does not report its activity:
 * its own start), less RING_RESCUE_MARGIN; DT_NOEND if none.  Autovacuum
 * writes no receipt or beat and is left out.
 */
static TimestampTz
oldest_transaction_start(void)
{
	TimestampTz oldest = DT_NOEND;
	int			n = pgstat_fetch_stat_numbackends();
	int			i;

	for (i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;
		TimestampTz start;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_databaseid != MyDatabaseId || be->st_backendType == B_AUTOVAC_WORKER)
			continue;
		if (be->st_state == STATE_DISABLED)
			start = be->st_proc_start_timestamp;
		else if (be->st_xact_start_timestamp != 0)
			start = be->st_xact_start_timestamp;
		else
			continue;			/* not in a transaction */
		if (start < oldest)
			oldest = start;
	}
	return oldest == DT_NOEND ? oldest : oldest - RING_RESCUE_MARGIN;
}

/* Append the rows of SPI_tuptable (job_id, run_lease, slot, deadline) to c. */
static void
collect(RescueCandidate **c, int *n, int *cap)
{
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;

		if (*n == *cap)
		{
			*cap *= 2;
			*c = repalloc(*c, sizeof(RescueCandidate) * *cap);
		}
		(*c)[*n].job_id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		(*c)[*n].run_lease = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
		(*c)[*n].slot = DatumGetInt16(SPI_getbinval(t, d, 3, &isnull));
		(*c)[*n].deadline = DatumGetTimestampTz(SPI_getbinval(t, d, 4, &isnull));
		(*n)++;
	}
}

/*
 * The time of an attempt's latest heartbeat (its latest beat's, else its
 * claim's; C: the receipt), as awa.jobs' heartbeat_at.
 */
#define RING_BEAT_AT_SQL(C) \
	"coalesce((SELECT b.at FROM awa.beats b WHERE b.job_id = " C ".job_id" \
	" AND b.run_lease = " C ".run_lease AND b.slot = " C ".slot ORDER BY b.at DESC LIMIT 1)," \
	" " C ".claimed_at)"

/* The attempts' done-row probe, for the statements below (alias c: the receipt). */
#define NOT_ENDED_SQL(C) \
	"(SELECT 1 FROM awa.done d WHERE d.job_id = " C ".job_id AND d.run_lease = " C ".run_lease" \
	" AND d.slot = " C ".slot LIMIT 1) IS NULL"

Datum
awa_ring_rescue(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr mark_plan = NULL;
	static SPIPlanPtr prepared_plan = NULL;
	static SPIPlanPtr receipts_plan = NULL;
	static SPIPlanPtr beats_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr check_plan = NULL;
	static SPIPlanPtr raise_plan = NULL;
	static const Oid window_types[] = {TIMESTAMPTZOID, INTERVALOID, INTERVALOID};
	static const Oid mark_types[] = {TIMESTAMPTZOID};
	static const Oid lock_types[] = {INT8OID, INT8OID, INT2OID};
	static const Oid check_types[] = {INT8OID, INT8OID, INT2OID, INTERVALOID};
	int32		max;
	bool		isnull;
	TimestampTz mark;
	TimestampTz horizon;
	TimestampTz new_mark;
	Datum		values[4];
	Interval	setting;
	Interval	ahead = {0};
	RescueCandidate *cand;
	int			ncand = 0;
	int			capacity = 64;
	int64		rescued = 0;
	Datum		error;
	Interval	retry_now = {0};
	int			i;

	awa_ring_check_enabled("awa.ring_rescue");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must not be null")));
	max = PG_GETARG_INT32(0);
	if (max < 1 || max > RING_RESCUE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 1 and %d", RING_RESCUE_MAX)));

	/*
	 * How far ahead of now() a deadline may lie and its attempt still be
	 * due by this rescuer's awa.heartbeat_timeout: by how much the setting
	 * is shorter than its default (the cap of deadlines written by sessions
	 * that kept the default).
	 */
	{
		const char *reset = GetConfigOptionResetString("awa.heartbeat_timeout");
		int			dflt = reset ? atoi(reset) : awa_heartbeat_timeout;

		if (dflt > awa_heartbeat_timeout)
			ahead.time = (int64) (dflt - awa_heartbeat_timeout) * USECS_PER_SEC;
	}

	/* before the snapshot the walk reads with (see the head of this file) */
	horizon = oldest_transaction_start();
	if (GetCurrentTransactionStartTimestamp() - RING_RESCUE_MARGIN < horizon)
		horizon = GetCurrentTransactionStartTimestamp() - RING_RESCUE_MARGIN;

	SPI_connect();
	/* one round at a time: another holds the mark, this one does nothing */
	awa_plan(&mark_plan, "SELECT passed FROM awa.ring_rescue_mark WHERE one FOR UPDATE SKIP LOCKED", 0, NULL);
	if (awa_ring_run(mark_plan, NULL, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
					 "awa.ring_rescue: mark") == 0)
	{
		SPI_finish();
		PG_RETURN_INT64(0);
	}
	mark = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	awa_plan(&prepared_plan,
			 "SELECT 1 FROM pg_catalog.pg_prepared_xacts p"
			 " WHERE p.database = pg_catalog.current_database() LIMIT 1",
			 0, NULL);
	if (awa_ring_run(prepared_plan, NULL, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa.ring_rescue: prepared transactions") > 0)
		horizon = mark;

	/*
	 * The attempts due: receipts and beats whose deadline passed since the
	 * mark, and (when the rescuer's setting is shorter than its default, the
	 * deadlines' cap) those whose deadline is still ahead but whose latest
	 * heartbeat is older than the rescuer's setting ($2: how far ahead,
	 * $3: the setting; see the head of this file).
	 */
	awa_plan(&receipts_plan,
			 "SELECT c.job_id, c.run_lease, c.slot, x.deadline_at"
			 " FROM awa.claims c CROSS JOIN LATERAL (SELECT " AWA_RING_DEADLINE_SQL("c") " AS deadline_at,"
			 " " RING_BEAT_AT_SQL("c") " AS at) x"
			 " WHERE c.deadline_at > $1 AND c.deadline_at < now() + $2 AND " NOT_ENDED_SQL("c")
			 " AND (x.deadline_at < now() OR (x.deadline_at < now() + $2 AND x.at < now() - $3))",
			 3, window_types);
	awa_plan(&beats_plan,
			 "SELECT b.job_id, b.run_lease, b.slot, x.deadline_at"
			 " FROM awa.beats b CROSS JOIN LATERAL"
			 " (SELECT l.deadline_at, l.at FROM awa.beats l WHERE l.job_id = b.job_id AND l.run_lease = b.run_lease"
			 "  AND l.slot = b.slot ORDER BY l.at DESC LIMIT 1) x"
			 " WHERE b.deadline_at > $1 AND b.deadline_at < now() + $2"
			 " AND (x.deadline_at < now() OR (x.deadline_at < now() + $2 AND x.at < now() - $3))"
			 " AND " NOT_ENDED_SQL("b"),
			 3, window_types);
	cand = palloc(sizeof(RescueCandidate) * capacity);
	values[0] = TimestampTzGetDatum(mark);
	values[1] = IntervalPGetDatum(&ahead);
	values[2] = awa_heartbeat_timeout_param(&setting);
	awa_ring_run(receipts_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
				 "awa.ring_rescue: receipts due");
	collect(&cand, &ncand, &capacity);
	awa_ring_run(beats_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
				 "awa.ring_rescue: beats due");
	collect(&cand, &ncand, &capacity);
	if (ncand > 1)
		qsort(cand, ncand, sizeof(RescueCandidate), candidate_cmp);

	awa_plan(&lock_plan,
			 "SELECT 1 FROM awa.claims c WHERE c.job_id = $1 AND c.run_lease = $2 AND c.slot = $3"
			 " FOR UPDATE OF c SKIP LOCKED",
			 3, lock_types);

	/*
	 * Whether it is due by the rescuer's rule, as awa.jobs' rescue decides
	 * (job.c, RESCUE_SQL): its deadline (latest heartbeat + its lease, never
	 * later than claimed_at + the job's timeout) has passed, or its latest
	 * heartbeat is older than the rescuer's awa.heartbeat_timeout ($4); and
	 * why, as awa's rescue says it (RESCUE_CAUSE_0_3).  No row: it ended;
	 * NULL: not due.
	 */
	awa_plan(&check_plan,
			 "SELECT to_jsonb(CASE WHEN y.deadline_at < now() THEN CASE WHEN y.deadline_at = x.cap"
			 " THEN 'timeout exceeded' ELSE 'deadline exceeded' END"
			 " WHEN x.at < now() - $4 THEN 'heartbeat stale' END)"
			 " FROM awa.claims c"
			 " LEFT JOIN LATERAL (SELECT b.at, b.lease FROM awa.beats b WHERE b.job_id = c.job_id"
			 "  AND b.run_lease = c.run_lease AND b.slot = c.slot ORDER BY b.at DESC LIMIT 1) b ON true"
			 " CROSS JOIN LATERAL (SELECT coalesce(b.at, c.claimed_at) AS at, coalesce(b.lease, c.lease) AS lease,"
			 "  c.claimed_at + " AWA_RING_TIMEOUT_SQL("c.slot", "c.job_id", "c.run_lease") " AS cap) x"
			 " CROSS JOIN LATERAL (SELECT LEAST(x.at + x.lease, x.cap) AS deadline_at) y"
			 " WHERE c.job_id = $1 AND c.run_lease = $2 AND c.slot = $3 AND " NOT_ENDED_SQL("c"),
			 4, check_types);
	new_mark = horizon;
	for (i = 0; i < ncand; i++)
	{
		bool		ended;

		CHECK_FOR_INTERRUPTS();
		/* the same attempt found by its receipt and its beat */
		if (i > 0 && cand[i].job_id == cand[i - 1].job_id && cand[i].run_lease == cand[i - 1].run_lease)
			continue;
		if (rescued >= max)
		{
			/* the rest wait for the next round: the mark stays below them */
			if (cand[i].deadline - 1 < new_mark)
				new_mark = cand[i].deadline - 1;
			break;
		}
		values[0] = Int64GetDatum(cand[i].job_id);
		values[1] = Int64GetDatum(cand[i].run_lease);
		values[2] = Int16GetDatum(cand[i].slot);
		if (awa_ring_run(lock_plan, values, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						 "awa.ring_rescue: lock") == 0)
		{
			/* a heartbeat (or another rescue) holds it: look again next round */
			if (cand[i].deadline - 1 < new_mark)
				new_mark = cand[i].deadline - 1;
			continue;
		}
		/* still running and due, as a snapshot taken after the lock sees it */
		values[3] = IntervalPGetDatum(&setting);
		if (awa_ring_run(check_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
						 "awa.ring_rescue: check") == 0)
			continue;			/* it ended */
		error = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
		{
			/*
			 * Not due by this rescuer's rule (its awa.heartbeat_timeout is
			 * longer than the one that capped the deadline): the mark stays
			 * below it, a later round looks again.
			 */
			if (cand[i].deadline - 1 < new_mark)
				new_mark = cand[i].deadline - 1;
			continue;
		}
		/* retried now, as awa's own rescue does (job.c, RESCUE_SQL) */
		(void) awa_ring_fail_attempt(values[0], values[1], error, false, true, &retry_now, &ended);
		if (ended)
			rescued++;
	}

	if (new_mark > mark)
	{
		values[0] = TimestampTzGetDatum(new_mark);
		awa_plan(&raise_plan, "UPDATE awa.ring_rescue_mark SET passed = $1 WHERE one", 1, mark_types);
		awa_ring_run(raise_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_UPDATE,
					 "awa.ring_rescue: raise the mark");
	}
	SPI_finish();
	PG_RETURN_INT64(rescued);
}

/*
 * hook: rclean -- awa.ring_heartbeat_cap() RETURNS interval: the least of
 * this session's awa.heartbeat_timeout and its default (its reset value),
 * the cap of the deadlines a claim or a beat writes (ring_obs.h).  A
 * deadline is the rescue's walk key: capped by a claimer's own longer
 * setting, the walk found the attempt up to that difference after a
 * rescuer at the default must end it (awa.jobs' rescue goes by the
 * rescuer's setting).  Capped by the default, a rescuer at the default (or
 * lower: its walk looks ahead by the difference) finds it when it is due;
 * one with a longer setting finds it early, sees it is not due yet and
 * keeps the mark below it (the head of this file).  No arguments, no errors.
 */
Datum
awa_ring_heartbeat_cap(PG_FUNCTION_ARGS)
{
	const char *reset = GetConfigOptionResetString("awa.heartbeat_timeout");
	int			dflt = reset ? atoi(reset) : awa_heartbeat_timeout;
	Interval   *cap = palloc0(sizeof(Interval));

	cap->time = (int64) Min(awa_heartbeat_timeout, dflt) * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(cap);
}
