/*-------------------------------------------------------------------------
 *
 * ring_ext.c
 *		The ring's operator retry, cancel by unique key, and waits for an
 *		external callback (docs/storage.md, "Step 5: retry, cancel by
 *		unique key, external waits on the ring").  Internal like ring.c:
 *		every function refuses to run unless awa.ring_engine is on.  The
 *		rules are those of awa_retry (lifecycle.c, job.c),
 *		awa_cancel_by_unique_key (unique.c) and external.c / job.c's
 *		external completion, on the ring's rows.
 *
 * waiting_external is an end that is not final.  A parked attempt has a
 * done row 'waiting_external' with after_wait false: the key of every end
 * of a running attempt (complete, fail, snooze, rescue, cancel), so that
 * the park and those ends exclude each other, whoever commits first (ON
 * CONFLICT DO NOTHING; the second is a no-op that answers "not running").
 * The end of the wait is a second done row of the same attempt with
 * after_wait true, whose key makes its writers exclusive the same way:
 *	complete_external	completed, the payload its result;
 *	fail_external		failed, the error kept as for a failure;
 *	retry_external		retryable (the next attempt due after retry_in or
 *						the default backoff, as ring_fail writes it), or
 *						failed when out of attempts;
 *	the timeout			the same, error "callback timed out";
 *	awa.ring_cancel		cancelled (hook in ring_sched.c);
 *	awa.ring_retry		available (followed by the new ready row).
 * A callback that comes while its attempt still runs (before the park)
 * acts at once, as job.c's rule says: it writes the park row and the end
 * of the wait in one transaction, so the worker's own park or completion
 * then finds the attempt ended.
 *
 * Callbacks are rows appended to awa.callbacks (partitioned by the slot of
 * the attempt's receipt; carried and truncated with it): a registration
 * (the callback id's SHA-256, the attempt's lease, the timeout), a
 * heartbeat of the callback (a new timeout, and for a parked attempt a new
 * deadline), a park (its deadline), the payload of a callback that failed
 * or retried the job.  Each row carries the job's current key, lease and
 * timeout, so the job's newest row is its current callback (awa.jobs'
 * callback_key, callback_lease, callback_timeout): a registration replaces
 * the earlier one, and a callback id whose job has a newer registration
 * finds no job.  Nothing is updated or deleted.
 *
 * Locks: a callback, a registration, a park and a heartbeat of a callback
 * lock the attempt's receipt FOR SHARE; the timeout locks it FOR UPDATE
 * SKIP LOCKED and checks the deadline again with a newer snapshot, so it
 * never ends a wait whose callback or heartbeat is in progress or
 * committed (awa's timeout skips the locked job the same way).  The
 * retry locks the job's newest ready row FOR UPDATE, as awa.ring_cancel
 * does, so that two retries, or a retry and a cancel, take turns.
 *
 * Plans as in ring.c: generic, pinned (awa_ring_run), index probes only.
 *
 * SQLSTATEs raised:
 *	22023 (invalid_parameter_value): an argument NULL (the ring's rule),
 *		a timeout or retry_in out of range, a name of the wrong length, a
 *		unique_period not positive, max out of range
 *	54000 (program_limit_exceeded): a payload larger than awa.max_args_bytes
 *	55000 (object_not_in_prerequisite_state): the ring is off; a park
 *		without a callback registered under its lease; no open slot
 *	P0002 (no_data_found): awa.ring_retry of an unknown id (neither in the
 *		slots nor in the history: ring_revive.c, hook: rhist)
 *	23505 (unique_violation): awa.ring_retry of a unique job whose key
 *		another job holds
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
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "awa.h"
#include "ring.h"
#include "ring_history.h"		/* hook: rclean */
#include "ring_sched.h"
#include "ring_revive.h"		/* hook: rhist */

#define RING_TIMEOUTS_MAX	10000

PG_FUNCTION_INFO_V1(awa_ring_retry);
PG_FUNCTION_INFO_V1(awa_ring_cancel_by_unique_key);
PG_FUNCTION_INFO_V1(awa_ring_register_callback);
PG_FUNCTION_INFO_V1(awa_ring_wait_external);
PG_FUNCTION_INFO_V1(awa_ring_complete_external);
PG_FUNCTION_INFO_V1(awa_ring_fail_external);
PG_FUNCTION_INFO_V1(awa_ring_retry_external);
PG_FUNCTION_INFO_V1(awa_ring_heartbeat_callback);
PG_FUNCTION_INFO_V1(awa_ring_callback_timeouts);

static int	ring_ext_cancel_parked(Datum *values);

/* ring_sched.c's hook into this file (ring.h); from _PG_init */
void
awa_ring_ext_init(void)
{
	awa_ring_ext_cancel_parked = ring_ext_cancel_parked;
}

/* ---------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------
 */

/* 22023 when argument argno is NULL (the ring's rule for a NULL argument). */
static void
not_null(FunctionCallInfo fcinfo, int argno, const char *field)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", field)));
}

/* Column i (1-based) of the first row of the last SPI result. */
static Datum
col(int i, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i, isnull);
}

/* The attempt an external path acts on: (id, lease) and its receipt's slot. */
typedef struct RingAttempt
{
	Datum		id;
	Datum		lease;
	int16		slot;
} RingAttempt;

/*
 * Lock the receipt of attempt (a->id, a->lease) FOR SHARE (FOR UPDATE SKIP
 * LOCKED with skip) with the newest snapshot; sets a->slot.  False when
 * there is none (never claimed) or, with skip, another holds it.
 */
static bool
lock_receipt(RingAttempt *a, bool skip)
{
	static SPIPlanPtr share_plan = NULL;
	static SPIPlanPtr skip_plan = NULL;
	static const Oid types[] = {INT8OID, INT8OID};
	Datum		values[2] = {a->id, a->lease};
	bool		isnull;

	awa_plan(&share_plan,
			 "SELECT c.slot FROM awa.claims c WHERE c.job_id = $1 AND c.run_lease = $2"
			 " LIMIT 1 FOR SHARE",
			 2, types);
	awa_plan(&skip_plan,
			 "SELECT c.slot FROM awa.claims c WHERE c.job_id = $1 AND c.run_lease = $2"
			 " LIMIT 1 FOR UPDATE SKIP LOCKED",
			 2, types);
	if (awa_ring_run(skip ? skip_plan : share_plan, values, NULL, GetLatestSnapshot(), false,
					 SPI_OK_SELECT, "awa.ring: receipt lock") == 0)
		return false;
	a->slot = DatumGetInt16(col(1, &isnull));
	return true;
}

/*
 * The ends of attempt a, with the newest snapshot: *first the state of its
 * done row (NULL: none, it is running), *wait_end the state of the end of
 * its wait (NULL: none).  Palloc'd labels.
 */
static void
attempt_ends(RingAttempt *a, char **first, char **wait_end)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID, INT8OID, INT2OID};
	Datum		values[3] = {a->id, a->lease, Int16GetDatum(a->slot)};
	bool		isnull;
	Datum		d;

	awa_plan(&plan,
			 "SELECT (SELECT d.state::text FROM awa.done d WHERE d.job_id = $1 AND d.run_lease = $2"
			 "        AND d.slot = $3 AND NOT d.after_wait LIMIT 1),"
			 " (SELECT d.state::text FROM awa.done d WHERE d.job_id = $1 AND d.run_lease = $2"
			 "        AND d.slot = $3 AND d.after_wait LIMIT 1)",
			 3, types);
	awa_ring_run(plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT, "awa.ring: attempt's ends");
	d = col(1, &isnull);
	*first = isnull ? NULL : TextDatumGetCString(d);
	d = col(2, &isnull);
	*wait_end = isnull ? NULL : TextDatumGetCString(d);
}

/*
 * A done row of attempt a: state, error (text, or NULL; cut to
 * awa.max_error_bytes, error_bytes its original length, or -1 if not cut),
 * after_wait, result (or NULL), attempt (the attempt number of a
 * retryable or failed end, as attempt_row gives it; 0: none).  Written
 * unless the key (job_id, run_lease, slot, after_wait) is taken; whether
 * it was written.  A new error bounds the job's errors as awa.jobs'
 * (awa_ring_errors_bound, ring.c).
 */
static bool
insert_done(RingAttempt *a, const char *state, text *error, int64 error_bytes, bool after_wait,
			Datum result, bool result_isnull, int32 attempt)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT2OID, INT8OID, INT8OID, TEXTOID, TEXTOID, BOOLOID, JSONBOID, INT8OID,
		INT4OID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	awa_plan(&plan,
			 "INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at, error, after_wait, result,"
			 " attempt)"
			 " VALUES ($1, $2, $3, $4::awa.job_state, now(), " AWA_RING_ERROR_SQL("$5", "$8") ", $6, $7, $9)"
			 " ON CONFLICT DO NOTHING RETURNING job_id",
			 9, types);
	values[0] = Int16GetDatum(a->slot);
	values[1] = a->id;
	values[2] = a->lease;
	values[3] = CStringGetTextDatum(state);
	values[4] = PointerGetDatum(error);
	if (error == NULL)
		nulls[4] = 'n';
	values[5] = BoolGetDatum(after_wait);
	values[6] = result;
	if (result_isnull)
		nulls[6] = 'n';
	values[7] = Int64GetDatum(error_bytes);
	if (error_bytes < 0)
		nulls[7] = 'n';
	values[8] = Int32GetDatum(attempt);
	if (attempt <= 0)
		nulls[8] = 'n';
	if (awa_ring_run(plan, values, nulls, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
					 "awa.ring: done row") != 1)
		return false;
	if (error != NULL)
		awa_ring_errors_bound(a->id);
	return true;
}

/*
 * A row of awa.callbacks for attempt a: kind, the key (bytea), the timeout
 * in force, a deadline at now() + timeout when with_deadline, a payload.
 */
static void
insert_callback(RingAttempt *a, const char *kind, Datum key, Datum timeout, bool with_deadline,
				Datum payload, bool payload_isnull)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT2OID, INT8OID, INT8OID, TEXTOID, BYTEAOID, INTERVALOID, BOOLOID, JSONBOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	awa_plan(&plan,
			 "INSERT INTO awa.callbacks (slot, job_id, run_lease, at, kind, callback_key, timeout,"
			 " deadline_at, payload)"
			 " VALUES ($1, $2, $3, now(), $4, $5, $6, CASE WHEN $7 THEN now() + $6 END, $8)",
			 8, types);
	values[0] = Int16GetDatum(a->slot);
	values[1] = a->id;
	values[2] = a->lease;
	values[3] = CStringGetTextDatum(kind);
	values[4] = key;
	values[5] = timeout;
	values[6] = BoolGetDatum(with_deadline);
	values[7] = payload;
	if (payload_isnull)
		nulls[7] = 'n';
	awa_ring_run(plan, values, nulls, GetLatestSnapshot(), false, SPI_OK_INSERT, "awa.ring: callback row");
}

/*
 * The ready row of attempt a: its attempt number once claimed (attempts
 * before it + 1), max_attempts and queue (palloc'd).
 */
static void
attempt_row(RingAttempt *a, int32 *attempt, int32 *max_attempts, char **queue)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID, INT8OID, INT2OID};
	Datum		values[3] = {a->id, a->lease, Int16GetDatum(a->slot)};
	bool		isnull;

	awa_plan(&plan,
			 "SELECT r.attempt + 1, r.max_attempts::integer, r.queue FROM awa.ready r"
			 " WHERE r.id = $1 AND r.run_lease = $2 - 1 AND r.slot = $3 LIMIT 1",
			 3, types);
	if (awa_ring_run(plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring: attempt's ready row") != 1)
		elog(ERROR, "awa.ring: the ready row of job %lld's attempt %lld is missing",
			 (long long) DatumGetInt64(a->id), (long long) DatumGetInt64(a->lease));
	*attempt = DatumGetInt32(col(1, &isnull));
	*max_attempts = DatumGetInt32(col(2, &isnull));
	*queue = TextDatumGetCString(col(3, &isnull));
}

/*
 * End the wait of attempt a as failed, or retryable while attempts remain
 * (the next attempt due after retry_in; NULL: awa's default backoff), with
 * error.  Returns the state written, NULL when another end of the wait was
 * written first.
 */
static const char *
end_wait_failed(RingAttempt *a, const char *error, Interval *retry_in)
{
	int32		attempt;
	int32		max_attempts;
	char	   *queue;
	bool		retryable;
	Datum		values[3];

	attempt_row(a, &attempt, &max_attempts, &queue);
	retryable = attempt < max_attempts;
	if (!insert_done(a, retryable ? "retryable" : "failed", cstring_to_text(error), -1, true, (Datum) 0, true,
					 attempt))
		return NULL;
	if (retryable)
	{
		values[0] = Int16GetDatum(a->slot);
		values[1] = a->id;
		values[2] = a->lease;
		awa_ring_sched_hooks.next(values, attempt, attempt, retry_in, "retryable", queue, InvalidSnapshot);
	}
	return retryable ? "retryable" : "failed";
}

/* ---------------------------------------------------------------------
 * Callbacks
 * ---------------------------------------------------------------------
 */

/*
 * The attempt waiting for callback_id (uuid), its receipt locked FOR SHARE:
 * the attempt of the newest row with that key, when it is still the job's
 * current callback.  *timeout: the timeout in force.  *parked: parked
 * already (else running; a callback that ends it writes the park row
 * first, through ensure_parked).  False when no attempt waits for it.
 */
static bool
callback_attempt(Datum callback_id, RingAttempt *a, Datum *key, Datum *timeout, bool *parked)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {UUIDOID};
	bool		isnull;
	char	   *first;
	char	   *wait_end;

	awa_plan(&plan,
			 "SELECT k.job_id, k.run_lease, k.callback_key, cur.timeout"
			 " FROM (SELECT cb.job_id, cb.run_lease, cb.callback_key FROM awa.callbacks cb"
			 "       WHERE cb.callback_key = sha256(uuid_send($1)) ORDER BY cb.written_at DESC LIMIT 1) k"
			 " CROSS JOIN LATERAL (SELECT n.callback_key, n.run_lease, n.timeout FROM awa.callbacks n"
			 "       WHERE n.job_id = k.job_id ORDER BY n.written_at DESC LIMIT 1) cur"
			 " WHERE cur.callback_key = k.callback_key AND cur.run_lease = k.run_lease",
			 1, types);
	if (awa_ring_run(plan, &callback_id, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring: callback") == 0)
		return false;
	a->id = col(1, &isnull);
	a->lease = col(2, &isnull);
	*key = SPI_datumTransfer(col(3, &isnull), false, -1);
	*timeout = SPI_datumTransfer(col(4, &isnull), false, sizeof(Interval));
	if (!lock_receipt(a, false))
		return false;
	attempt_ends(a, &first, &wait_end);
	if (first == NULL)
		*parked = false;		/* running under the callback's lease */
	else if (strcmp(first, "waiting_external") == 0 && wait_end == NULL)
		*parked = true;
	else
		return false;			/* ended otherwise, or its wait ended */
	return true;
}

/*
 * For a callback that ends the attempt: a running attempt is parked first
 * (job.c's rule: a callback before the park acts at once).  False when
 * another end of the running attempt came first and it is not parked.
 */
static bool
ensure_parked(RingAttempt *a, bool parked)
{
	char	   *first;
	char	   *wait_end;

	if (parked || insert_done(a, "waiting_external", NULL, -1, false, (Datum) 0, true, 0))
		return true;
	/* an end came first: the worker's park is as good as ours */
	attempt_ends(a, &first, &wait_end);
	return first != NULL && strcmp(first, "waiting_external") == 0 && wait_end == NULL;
}

/*
 * The checks every callback call starts with: the ring is on, callback_id
 * given, the payload argument (argno, or -1: none) not too large.  Returns
 * whether the payload is NULL.
 */
static bool
callback_args(FunctionCallInfo fcinfo, const char *fn, int payload_argno)
{
	awa_ring_check_enabled(fn);
	not_null(fcinfo, 0, "callback_id");
	if (payload_argno < 0 || PG_ARGISNULL(payload_argno))
		return true;
	awa_check_jsonb_size(PG_GETARG_JSONB_P(payload_argno), "payload");
	return false;
}

/* awa.ring_register_callback(id, run_lease, timeout) RETURNS uuid */
Datum
awa_ring_register_callback(PG_FUNCTION_ARGS)
{
	RingAttempt a;
	Datum		callback_id;
	Datum		key;
	char	   *first;
	char	   *wait_end;

	awa_ring_check_enabled("awa.ring_register_callback");
	not_null(fcinfo, 0, "id");
	not_null(fcinfo, 1, "run_lease");
	not_null(fcinfo, 2, "timeout");
	(void) awa_check_delay(PG_GETARG_INTERVAL_P(2), "timeout", true);
	a.id = PG_GETARG_DATUM(0);
	a.lease = PG_GETARG_DATUM(1);

	SPI_connect();
	if (!lock_receipt(&a, false))
	{
		SPI_finish();
		PG_RETURN_NULL();		/* never claimed under this lease */
	}
	attempt_ends(&a, &first, &wait_end);
	if (first != NULL)
	{
		SPI_finish();
		PG_RETURN_NULL();		/* not running: ended, or parked */
	}
	callback_id = DirectFunctionCall1(gen_random_uuid, (Datum) 0);
	key = DirectFunctionCall1(sha256_bytea, DirectFunctionCall1(uuid_send, callback_id));
	insert_callback(&a, "register", key, PG_GETARG_DATUM(2), false, (Datum) 0, true);
	SPI_finish();
	PG_RETURN_DATUM(callback_id);
}

/* awa.ring_wait_external(id, run_lease) RETURNS boolean */
Datum
awa_ring_wait_external(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr current_plan = NULL;
	static const Oid types[] = {INT8OID};
	RingAttempt a;
	char	   *first;
	char	   *wait_end;
	bool		isnull;
	Datum		key;
	Datum		timeout;

	awa_ring_check_enabled("awa.ring_wait_external");
	not_null(fcinfo, 0, "id");
	not_null(fcinfo, 1, "run_lease");
	a.id = PG_GETARG_DATUM(0);
	a.lease = PG_GETARG_DATUM(1);

	SPI_connect();
	if (!lock_receipt(&a, false))
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	attempt_ends(&a, &first, &wait_end);
	if (first != NULL)
	{
		SPI_finish();
		PG_RETURN_BOOL(false);	/* ended (also by its callback), or parked */
	}
	/* the job's current callback, registered under this lease */
	awa_plan(&current_plan,
			 "SELECT n.run_lease, n.callback_key, n.timeout FROM awa.callbacks n"
			 " WHERE n.job_id = $1 ORDER BY n.written_at DESC LIMIT 1",
			 1, types);
	if (awa_ring_run(current_plan, &a.id, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring_wait_external: callback") == 0 ||
		DatumGetInt64(col(1, &isnull)) != DatumGetInt64(a.lease))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld has no callback registered under run_lease %lld",
						(long long) DatumGetInt64(a.id), (long long) DatumGetInt64(a.lease)),
				 /* where the ring is the engine: awa_wait_external's hint (external.c) */
				 awa_schema_has(AWA_SCHEMA_RING_ENGINE)
				 ? errhint("Call awa_register_callback first and give the outside system its id.")
				 : errhint("Call awa.ring_register_callback first and give the outside system its id.")));
	key = SPI_datumTransfer(col(2, &isnull), false, -1);
	timeout = SPI_datumTransfer(col(3, &isnull), false, sizeof(Interval));
	if (!insert_done(&a, "waiting_external", NULL, -1, false, (Datum) 0, true, 0))
	{
		SPI_finish();
		PG_RETURN_BOOL(false);	/* another end came first */
	}
	insert_callback(&a, "wait", key, timeout, true, (Datum) 0, true);
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/* awa.ring_complete_external(callback_id, payload) RETURNS boolean */
Datum
awa_ring_complete_external(PG_FUNCTION_ARGS)
{
	bool		payload_isnull = callback_args(fcinfo, "awa.ring_complete_external", 1);
	RingAttempt a;
	Datum		key;
	Datum		timeout;
	bool		parked;
	bool		done;

	SPI_connect();
	done = callback_attempt(PG_GETARG_DATUM(0), &a, &key, &timeout, &parked) &&
		ensure_parked(&a, parked) &&
		insert_done(&a, "completed", NULL, -1, true,
					payload_isnull ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(1)), payload_isnull, 0);
	SPI_finish();
	PG_RETURN_BOOL(done);
}

/* awa.ring_fail_external(callback_id, error, payload) RETURNS boolean */
Datum
awa_ring_fail_external(PG_FUNCTION_ARGS)
{
	bool		payload_isnull = callback_args(fcinfo, "awa.ring_fail_external", 2);
	RingAttempt a;
	Datum		key;
	Datum		timeout;
	bool		parked;
	bool		done;
	text	   *error;
	int64		error_bytes;

	not_null(fcinfo, 1, "error");
	error = awa_error_arg(PG_GETARG_DATUM(1), &error_bytes);

	SPI_connect();
	done = callback_attempt(PG_GETARG_DATUM(0), &a, &key, &timeout, &parked) &&
		ensure_parked(&a, parked);
	if (done)
	{
		int32		attempt;
		int32		max_attempts;
		char	   *queue;

		attempt_row(&a, &attempt, &max_attempts, &queue);
		done = insert_done(&a, "failed", error, error_bytes, true, (Datum) 0, true, attempt);
	}
	if (done)
		insert_callback(&a, "payload", key, timeout, false,
						payload_isnull ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(2)), payload_isnull);
	SPI_finish();
	PG_RETURN_BOOL(done);
}

/* awa.ring_retry_external(callback_id, payload, retry_in) RETURNS awa.job_state */
Datum
awa_ring_retry_external(PG_FUNCTION_ARGS)
{
	bool		payload_isnull = callback_args(fcinfo, "awa.ring_retry_external", 1);
	Interval   *retry_in = NULL;
	RingAttempt a;
	Datum		key;
	Datum		timeout;
	bool		parked;
	const char *state = NULL;
	Datum		result = (Datum) 0;

	if (!PG_ARGISNULL(2))
	{
		retry_in = PG_GETARG_INTERVAL_P(2);
		(void) awa_check_delay(retry_in, "retry_in", false);
	}

	SPI_connect();
	if (callback_attempt(PG_GETARG_DATUM(0), &a, &key, &timeout, &parked) &&
		ensure_parked(&a, parked) &&
		(state = end_wait_failed(&a, "retry asked for by the callback", retry_in)) != NULL)
	{
		insert_callback(&a, "payload", key, timeout, false,
						payload_isnull ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(1)), payload_isnull);
		result = DirectFunctionCall2(enum_in, CStringGetDatum(state),
									 ObjectIdGetDatum(get_func_rettype(fcinfo->flinfo->fn_oid)));
	}
	SPI_finish();
	if (state == NULL)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/* awa.ring_heartbeat_callback(callback_id, timeout) RETURNS boolean */
Datum
awa_ring_heartbeat_callback(PG_FUNCTION_ARGS)
{
	RingAttempt a;
	Datum		key;
	Datum		timeout;
	bool		parked;
	bool		found;

	(void) callback_args(fcinfo, "awa.ring_heartbeat_callback", -1);
	if (!PG_ARGISNULL(1))
		(void) awa_check_delay(PG_GETARG_INTERVAL_P(1), "timeout", true);

	SPI_connect();
	found = callback_attempt(PG_GETARG_DATUM(0), &a, &key, &timeout, &parked);
	/* parked: a new deadline; running: a given timeout is kept for the park */
	if (found && (parked || !PG_ARGISNULL(1)))
		insert_callback(&a, "heartbeat", key, PG_ARGISNULL(1) ? timeout : PG_GETARG_DATUM(1), parked,
						(Datum) 0, true);
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/* awa.ring_callback_timeouts(max) RETURNS bigint */
Datum
awa_ring_callback_timeouts(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr due_plan = NULL;
	static SPIPlanPtr deadline_plan = NULL;
	static const Oid due_types[] = {INT4OID};
	static const Oid deadline_types[] = {INT8OID, INT8OID};
	int32		max;
	uint64		n;
	uint64		i;
	int64		ended = 0;
	Datum	   *ids;
	Datum	   *leases;

	awa_ring_check_enabled("awa.ring_callback_timeouts");
	max = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0);
	if (max < 1 || max > RING_TIMEOUTS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 1 and %d", RING_TIMEOUTS_MAX)));

	SPI_connect();
	/* parked attempts (done_ended_idx) whose wait has not ended and whose deadline passed */
#define RING_WAIT_DEADLINE_SQL(J, L) \
	"(SELECT w.deadline_at FROM awa.callbacks w WHERE w.job_id = " J " AND w.run_lease = " L \
	" AND w.deadline_at IS NOT NULL ORDER BY w.written_at DESC LIMIT 1)"
	awa_plan(&due_plan,
			 "SELECT d.job_id, d.run_lease FROM awa.done d"
			 " WHERE d.state = 'waiting_external' AND NOT d.after_wait"
			 " AND (SELECT 1 FROM awa.done x WHERE x.job_id = d.job_id AND x.run_lease = d.run_lease"
			 "      AND x.slot = d.slot AND x.after_wait LIMIT 1) IS NULL"
			 " AND " RING_WAIT_DEADLINE_SQL("d.job_id", "d.run_lease") " < now()"
			 " ORDER BY d.job_id LIMIT $1",
			 1, due_types);
	awa_plan(&deadline_plan,
			 "SELECT " RING_WAIT_DEADLINE_SQL("$1", "$2") " < now()",
			 2, deadline_types);
	{
		Datum		v = Int32GetDatum(max);

		n = awa_ring_run(due_plan, &v, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
						 "awa.ring_callback_timeouts: due");
	}
	ids = palloc(sizeof(Datum) * (n + 1));
	leases = palloc(sizeof(Datum) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		leases[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
	}
	for (i = 0; i < n; i++)
	{
		RingAttempt a;
		char	   *first;
		char	   *wait_end;
		Datum		values[2];
		bool		isnull;
		Datum		due;

		CHECK_FOR_INTERRUPTS();
		a.id = ids[i];
		a.lease = leases[i];
		/* skip an attempt a callback (or its heartbeat) holds; then look again */
		if (!lock_receipt(&a, true))
			continue;
		attempt_ends(&a, &first, &wait_end);
		if (first == NULL || strcmp(first, "waiting_external") != 0 || wait_end != NULL)
			continue;
		values[0] = a.id;
		values[1] = a.lease;
		awa_ring_run(deadline_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring_callback_timeouts: deadline");
		due = col(1, &isnull);
		if (isnull || !DatumGetBool(due))
			continue;			/* a heartbeat pushed it out */
		if (end_wait_failed(&a, "callback timed out", NULL) != NULL)
			ended++;
	}
	SPI_finish();
	PG_RETURN_INT64(ended);
}

/* ---------------------------------------------------------------------
 * Cancel of a parked attempt (hook in awa.ring_cancel)
 * ---------------------------------------------------------------------
 */

/* See ring.h. */
static int
ring_ext_cancel_parked(Datum *values)
{
	RingAttempt a;
	char	   *first;
	char	   *wait_end;

	a.slot = DatumGetInt16(values[0]);
	a.id = values[1];
	a.lease = Int64GetDatum(DatumGetInt64(values[2]) + 1);
	attempt_ends(&a, &first, &wait_end);
	if (first == NULL || strcmp(first, "waiting_external") != 0)
		return 0;
	if (wait_end == NULL && insert_done(&a, "cancelled", NULL, -1, true, (Datum) 0, true, 0))
		return 1;
	/* its wait ended: by a retry (a next attempt: cancel that), or for good */
	attempt_ends(&a, &first, &wait_end);
	return wait_end != NULL && (strcmp(wait_end, "retryable") == 0 || strcmp(wait_end, "available") == 0)
		? -1 : 0;
}

/* ---------------------------------------------------------------------
 * awa.ring_retry(id)
 * ---------------------------------------------------------------------
 */

/* hook: rhist -- the unique key of a retried job and the wake-up of its queue: ring_revive.c */

Datum
awa_ring_retry(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr newer_plan = NULL;
	static SPIPlanPtr ready_plan = NULL;
	static const Oid id_type[] = {INT8OID, INT8OID, INT2OID};
	Datum		id;
	bool		missing_ok;

	awa_ring_check_enabled("awa.ring_retry");
	not_null(fcinfo, 0, "id");
	id = PG_GETARG_DATUM(0);
	/* hook: rmisc -- awa.ring_retry(id, missing_ok): false, not P0002, for a job that is gone */
	if (PG_NARGS() > 1)
		not_null(fcinfo, 1, "missing_ok");
	missing_ok = PG_NARGS() > 1 && PG_GETARG_BOOL(1);

	/* hook: rclean -- no reclaim or expiry drops the job between this read and the commit (ring_history.c) */
	awa_ring_finished_need();
	SPI_connect();
	/* the newest ready row of the job, locked: a cancel or another retry holding it is waited for */
	awa_plan(&lock_plan,
			 "SELECT r.slot, r.run_lease, r.unique_key, r.unique_states::text, r.queue,"
			 " r.unique_key IS NOT NULL AND awa.unique_state_held(r.unique_states, 'available')"
			 " FROM awa.ready r WHERE r.id = $1 ORDER BY r.run_lease DESC LIMIT 1 FOR UPDATE",
			 1, id_type);
	/* a newer ready row (written by whom this lock waited for), or a scheduled row */
	awa_plan(&newer_plan,
			 "SELECT (SELECT 1 FROM awa.ready n WHERE n.id = $1 AND n.run_lease > $2 LIMIT 1) IS NOT NULL,"
			 " (SELECT 1 FROM awa.scheduled s WHERE s.id = $1) IS NOT NULL",
			 2, id_type);
	/* the new attempt: available now, attempts reset, in the open slot */
	awa_plan(&ready_plan,
			 "INSERT INTO awa.ready (slot, id, run_lease, attempt, run_at, " RING_JOB_COLS ")"
			 " SELECT o.slot, r.id, r.run_lease + 1, 0, now(), " RING_JOB_COLS_OF("r.")
			 " FROM awa.ready r CROSS JOIN LATERAL"
			 " (SELECT s.slot FROM awa.ring_slots s WHERE s.state = 'open') o"
			 " WHERE r.id = $1 AND r.run_lease = $2 AND r.slot = $3",
			 3, id_type);

	for (;;)
	{
		Datum		values[3];
		bool		isnull;
		bool		keyed;
		Datum		key = (Datum) 0;
		Datum		states = (Datum) 0;
		char	   *queue;
		RingAttempt a;
		char	   *first;
		char	   *wait_end;
		const char *state;

		CHECK_FOR_INTERRUPTS();
		values[0] = id;
		if (awa_ring_run(lock_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa.ring_retry: lock") == 0)
		{
			values[1] = Int64GetDatum(-1);
			awa_ring_run(newer_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
						 "awa.ring_retry: scheduled");
			if (DatumGetBool(col(2, &isnull)))
			{
				SPI_finish();
				PG_RETURN_BOOL(false);	/* scheduled, never ready */
			}
			/* hook: rhist -- a failed or cancelled job a reclaim moved into the history comes back */
			switch (awa_ring_revive(id))
			{
				case RING_REVIVED:
					SPI_finish();
					PG_RETURN_BOOL(true);
				case RING_REVIVE_NOT:
					SPI_finish();
					PG_RETURN_BOOL(false);
				case RING_REVIVE_AGAIN:
					continue;
			}
			/* hook: rmisc -- awa_retry_failed's candidates: one deleted meanwhile is not retried */
			if (missing_ok)
			{
				SPI_finish();
				PG_RETURN_BOOL(false);
			}
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("job %lld does not exist", (long long) DatumGetInt64(id))));
		}
		a.slot = DatumGetInt16(col(1, &isnull));
		values[1] = col(2, &isnull);
		a.id = id;
		a.lease = Int64GetDatum(DatumGetInt64(values[1]) + 1);
		keyed = DatumGetBool(col(6, &isnull));
		if (keyed)
		{
			key = SPI_datumTransfer(col(3, &isnull), false, -1);
			states = SPI_datumTransfer(col(4, &isnull), false, -1);
		}
		queue = TextDatumGetCString(col(5, &isnull));
		values[2] = Int16GetDatum(a.slot);
		awa_ring_run(newer_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring_retry: newer");
		if (DatumGetBool(col(1, &isnull)))
			continue;			/* its newest attempt moved on while this waited */
		if (DatumGetBool(col(2, &isnull)))
			break;				/* retryable or snoozed, waiting in awa.scheduled */

		attempt_ends(&a, &first, &wait_end);
		state = wait_end != NULL ? wait_end : first;
		if (state == NULL)
			break;				/* available or running */
		if (strcmp(state, "waiting_external") == 0)
		{
			/* its wait ends here, unless a callback, the timeout or a cancel ended it first */
			if (keyed)
				awa_ring_retry_take_key(id, key, states);
			if (!insert_done(&a, "available", NULL, -1, true, (Datum) 0, true, 0))
				continue;
		}
		else if (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0)
		{
			if (keyed)
				awa_ring_retry_take_key(id, key, states);
		}
		else
			break;				/* completed; or retryable, snoozed, available again */

		if (awa_ring_run(ready_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT,
						 "awa.ring_retry: ready row") != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the ring has no open slot")));
		awa_ring_retry_claimable(queue);	/* hook: rhist -- shared with ring_revive.c */
		SPI_finish();
		PG_RETURN_BOOL(true);
	}
	SPI_finish();
	PG_RETURN_BOOL(false);
}

/* ---------------------------------------------------------------------
 * awa.ring_cancel_by_unique_key(kind, args, queue, unique_period, run_at)
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_cancel_by_unique_key(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr holder_plan = NULL;
	static SPIPlanPtr cancel_plan = NULL;
	static const Oid key_type[] = {BYTEAOID};
	static const Oid id_type[] = {INT8OID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		key;
	bool		isnull;

	awa_ring_check_enabled("awa.ring_cancel_by_unique_key");
	not_null(fcinfo, 0, "kind");
	key = PointerGetDatum(awa_unique_key_args(fcinfo, awa_ring_check_name, NULL));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	SPI_connect();
	awa_plan(&holder_plan,
			 "SELECT u.job_id FROM awa.unique_keys u WHERE u.unique_key = $1",
			 1, key_type);
	awa_plan(&cancel_plan, "SELECT awa.ring_cancel($1)", 1, id_type);
	if (awa_ring_run(holder_plan, &key, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring_cancel_by_unique_key: holder") == 1)
	{
		Datum		id = col(1, &isnull);

		/* the holder, unless it has ended (a completed job keeping its key) */
		if (awa_ring_run(cancel_plan, &id, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						 "awa.ring_cancel_by_unique_key: cancel") == 1 &&
			DatumGetBool(col(1, &isnull)))
		{
			bool		nulls[1] = {false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &id, nulls);
		}
	}
	SPI_finish();
	return (Datum) 0;
}
