/*-------------------------------------------------------------------------
 *
 * external.c
 *		External completion: a running job parks to wait for an outside
 *		event, and whoever knows its callback id resolves it.
 *
 * The worker's handler calls awa_register_callback(job_id, run_lease,
 * timeout), which gives the job a new callback id for this attempt (a
 * random version 4 UUID from gen_random_uuid(), i.e. pg_strong_random: 122
 * random bits, not guessable), and hands the id to the outside system; then
 * it parks the job with awa_wait_external(job_id, run_lease), which frees
 * its worker and its place under the queue's concurrency limit (the limits
 * count running jobs only).  The outside system later calls
 * awa_complete_external (its payload becomes the job's result),
 * awa_fail_external or awa_retry_external with the id, or
 * awa_heartbeat_callback to push the timeout out.  A parked job whose
 * timeout passes is retried with backoff, or failed when out of attempts,
 * by maintenance.
 *
 * The callback id is a capability: any role that may execute these
 * functions (awa_producer, awa_worker, awa_admin) and knows it may resolve
 * its job; nothing else is checked.  awa keeps only the id's SHA-256
 * (callback_key), so whoever reads awa.jobs -- awa_get_job, a dashboard, a
 * backup -- does not learn it.  A callback that comes before its job
 * parked acts at once on the running attempt; that rule, and every state
 * change here, are job.c's.
 *
 * SQLSTATEs raised:
 *	22004 (null_value_not_allowed): a required argument is NULL
 *	22023 (invalid_parameter_value): a timeout or retry_in out of range
 *	54000 (program_limit_exceeded): a payload larger than awa.max_args_bytes
 *	55000 (object_not_in_prerequisite_state): awa_wait_external of a job
 *		with no callback registered under its lease
 *	25006 (read_only_sql_transaction): on a standby
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_register_callback);
PG_FUNCTION_INFO_V1(awa_wait_external);
PG_FUNCTION_INFO_V1(awa_complete_external);
PG_FUNCTION_INFO_V1(awa_fail_external);
PG_FUNCTION_INFO_V1(awa_retry_external);
PG_FUNCTION_INFO_V1(awa_heartbeat_callback);

/*
 * The checks every callback call starts with: the server takes writes, the
 * callback id is given and the payload argument (argno, or -1: none) is
 * not too large.  Returns whether the payload is NULL.
 */
static bool
callback_args(FunctionCallInfo fcinfo, const char *fn, int payload_argno)
{
	awa_check_writable(fn);
	awa_check_not_null(fcinfo, 0, "callback_id");
	if (payload_argno < 0 || PG_ARGISNULL(payload_argno))
		return true;
	awa_check_jsonb_size(PG_GETARG_JSONB_P(payload_argno), "payload");
	return false;
}

/*
 * awa_register_callback(job_id, run_lease, timeout) RETURNS uuid
 *
 * The job running under that lease gets a new callback id, replacing any
 * earlier one, valid for this attempt (the job keeps only its SHA-256), and
 * timeout (more than 0, at most AWA_MAX_DELAY_DAYS, else 22023): how long
 * it will wait once parked.  NULL (and no change) when the lease is stale.
 */
Datum
awa_register_callback(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_STMT("awa_register_callback: update", SPI_OK_UPDATE_RETURNING,
		"WITH g AS (SELECT gen_random_uuid() AS id)"
		" UPDATE awa.jobs j SET callback_key = sha256(uuid_send(g.id)),"
		" callback_lease = j.run_lease, callback_timeout = $3"
		" FROM g WHERE j.id = $1 AND j.run_lease = $2 AND j." AWA_RUNNING_SQL
		" RETURNING g.id AS callback_id",
		3, INT8OID, INT8OID, INTERVALOID);
	Datum		values[3];
	Datum		id = (Datum) 0;
	bool		found;
	bool		isnull;

	awa_check_writable("awa_register_callback");
	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	awa_check_not_null(fcinfo, 2, "timeout");
	(void) awa_check_delay(PG_GETARG_INTERVAL_P(2), "timeout", true);
	if (awa_engine_ring())
	{
		static SPIPlanPtr ring_plan = NULL;
		static const Oid types[] = {INT8OID, INT8OID, INTERVALOID};

		return awa_engine_call(fcinfo, &ring_plan, "SELECT awa.ring_register_callback($1, $2, $3)",
							   3, types, false, UUID_LEN);
	}
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);

	SPI_connect();
	found = awa_stmt_run(&stmt, values, NULL, 0) == 1;
	if (found)
		id = SPI_datumTransfer(awa_stmt_value(0, "callback_id", &isnull), false, UUID_LEN);
	SPI_finish();
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(id);
}

/*
 * awa_wait_external(job_id, run_lease) RETURNS boolean
 *
 * Park the job running under that lease: waiting_external until its
 * callback comes or its callback timeout, from now, passes.  False (and no
 * change) when the lease is stale, which includes a job its callback
 * already resolved.  55000 when it runs under that lease but no callback
 * was registered under it.
 */
Datum
awa_wait_external(PG_FUNCTION_ARGS)
{
	/*
	 * Not read-only: it must see, with a new snapshot, what made the park
	 * find nothing (a callback that completed the job while the park waited
	 * for its lock), not the job as the calling statement began.
	 */
	static AwaStmt running = AWA_STMT("awa_wait_external: lookup", SPI_OK_SELECT,
		"SELECT 1 FROM awa.jobs WHERE id = $1 AND run_lease = $2 AND " AWA_RUNNING_SQL,
		2, INT8OID, INT8OID);
	Datum		values[2];
	bool		parked;

	awa_check_writable("awa_wait_external");
	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	if (awa_engine_ring())
	{
		static SPIPlanPtr ring_plan = NULL;
		static const Oid types[] = {INT8OID, INT8OID};

		return awa_engine_call(fcinfo, &ring_plan, "SELECT awa.ring_wait_external($1, $2)",
							   2, types, true, 1);
	}
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);

	SPI_connect();
	parked = awa_job_wait_external(values[0], values[1]);
	if (!parked && awa_stmt_run(&running, values, NULL, 1) == 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld has no callback registered under run_lease %lld",
						(long long) DatumGetInt64(values[0]),
						(long long) DatumGetInt64(values[1])),
				 errhint("Call awa_register_callback first and give the outside system its id.")));
	SPI_finish();
	PG_RETURN_BOOL(parked);
}

/*
 * awa_complete_external(callback_id, payload) RETURNS boolean
 *
 * The job waiting for the callback is completed, payload its result.
 * False when no job waits for it (unknown id, or its attempt ended).
 */
Datum
awa_complete_external(PG_FUNCTION_ARGS)
{
	bool		payload_isnull = callback_args(fcinfo, "awa_complete_external", 1);
	bool		done;

	if (awa_engine_ring())
	{
		static SPIPlanPtr ring_plan = NULL;
		static const Oid types[] = {UUIDOID, JSONBOID};

		return awa_engine_call(fcinfo, &ring_plan, "SELECT awa.ring_complete_external($1, $2)",
							   2, types, true, 1);
	}

	SPI_connect();
	done = awa_job_complete_external(PG_GETARG_DATUM(0),
									 payload_isnull ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(1)),
									 payload_isnull);
	SPI_finish();
	PG_RETURN_BOOL(done);
}

/*
 * awa_fail_external(callback_id, error, payload) RETURNS boolean
 *
 * The job waiting for the callback fails for good: error (cut to
 * awa.max_error_bytes, as by awa_fail) joins its errors, payload is kept
 * as callback_payload.  False when no job waits for it.
 */
Datum
awa_fail_external(PG_FUNCTION_ARGS)
{
	bool		payload_isnull = callback_args(fcinfo, "awa_fail_external", 2);
	text	   *error;
	int64		error_bytes;
	bool		done;

	awa_check_not_null(fcinfo, 1, "error");
	if (awa_engine_ring())
	{
		static SPIPlanPtr ring_plan = NULL;
		static const Oid types[] = {UUIDOID, TEXTOID, JSONBOID};

		return awa_engine_call(fcinfo, &ring_plan, "SELECT awa.ring_fail_external($1, $2, $3)",
							   3, types, true, 1);
	}
	error = awa_error_arg(PG_GETARG_DATUM(1), &error_bytes);

	SPI_connect();
	done = awa_job_fail_external(PG_GETARG_DATUM(0), error, error_bytes,
								 payload_isnull ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(2)),
								 payload_isnull);
	SPI_finish();
	PG_RETURN_BOOL(done);
}

/*
 * awa_retry_external(callback_id, payload, retry_in) RETURNS awa.job_state
 *
 * The job waiting for the callback runs again: retryable at now() +
 * retry_in (0 .. AWA_MAX_DELAY_DAYS, else 22023; NULL: the default
 * backoff), or failed when it has no attempts left; an entry in its errors
 * says why, payload is kept as callback_payload.  Returns the new state,
 * NULL when no job waits for it.
 */
Datum
awa_retry_external(PG_FUNCTION_ARGS)
{
	bool		payload_isnull = callback_args(fcinfo, "awa_retry_external", 1);
	Interval   *retry_in = NULL;
	Datum		state = (Datum) 0;
	bool		found;

	if (!PG_ARGISNULL(2))
	{
		retry_in = PG_GETARG_INTERVAL_P(2);
		(void) awa_check_delay(retry_in, "retry_in", false);
	}
	if (awa_engine_ring())
	{
		static SPIPlanPtr ring_plan = NULL;
		static const Oid types[] = {UUIDOID, JSONBOID, INTERVALOID};

		return awa_engine_call(fcinfo, &ring_plan, "SELECT awa.ring_retry_external($1, $2, $3)",
							   3, types, true, sizeof(Oid));
	}

	SPI_connect();
	found = awa_job_retry_external(PG_GETARG_DATUM(0),
								   payload_isnull ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(1)),
								   payload_isnull, retry_in, &state);
	if (found)
		state = SPI_datumTransfer(state, true, sizeof(Oid));
	SPI_finish();
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(state);
}

/*
 * awa_heartbeat_callback(callback_id, timeout) RETURNS boolean
 *
 * The outside system is still at work.  A parked job's callback deadline
 * (deadline_at) becomes now() + timeout (more than 0, at most
 * AWA_MAX_DELAY_DAYS, else 22023; NULL: the timeout registered), and
 * heartbeat_at now(); a given timeout also replaces the registered one,
 * which is all a heartbeat does to a job that has not parked yet (it parks
 * with that timeout).  Not a change of state.  False when no job waits for
 * the callback.
 */
Datum
awa_heartbeat_callback(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_STMT("awa_heartbeat_callback: update", SPI_OK_UPDATE,
		"UPDATE awa.jobs j SET callback_timeout = coalesce($2, j.callback_timeout),"
		" deadline_at = CASE WHEN o.state = 'waiting_external'"
		"   THEN now() + coalesce($2, j.callback_timeout) ELSE j.deadline_at END,"
		" heartbeat_at = CASE WHEN o.state = 'waiting_external'"
		"   THEN now() ELSE j.heartbeat_at END"
		" FROM (SELECT id, state FROM awa.jobs WHERE " AWA_CALLBACK_KEY_SQL("$1")
		"   FOR NO KEY UPDATE) o"
		" WHERE j.id = o.id AND " AWA_CALLBACK_WAITS_SQL("o.state", "j"),
		2, UUIDOID, INTERVALOID);
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		found;

	(void) callback_args(fcinfo, "awa_heartbeat_callback", -1);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = (Datum) 0;
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
	{
		(void) awa_check_delay(PG_GETARG_INTERVAL_P(1), "timeout", true);
		values[1] = PG_GETARG_DATUM(1);
	}
	if (awa_engine_ring())
	{
		static SPIPlanPtr ring_plan = NULL;
		static const Oid types[] = {UUIDOID, INTERVALOID};

		return awa_engine_call(fcinfo, &ring_plan, "SELECT awa.ring_heartbeat_callback($1, $2)",
							   2, types, true, 1);
	}

	SPI_connect();
	found = awa_stmt_run(&stmt, values, nulls, 0) == 1;
	SPI_finish();
	PG_RETURN_BOOL(found);
}
