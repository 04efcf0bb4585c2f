/*-------------------------------------------------------------------------
 *
 * worker.c
 *		What a worker does with a job it holds: complete, fail, snooze,
 *		heartbeat, progress; and awa_rescue for jobs whose worker vanished.
 *
 * Every call names the job and the run_lease it was claimed under.  A call
 * changes the job only while it is still running under that lease, so a
 * worker whose job was cancelled, rescued or re-claimed meanwhile cannot
 * touch it any more: the call reports the lease as stale instead.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_complete);
PG_FUNCTION_INFO_V1(awa_complete_many);
PG_FUNCTION_INFO_V1(awa_fail);
PG_FUNCTION_INFO_V1(awa_snooze);
PG_FUNCTION_INFO_V1(awa_heartbeat);
PG_FUNCTION_INFO_V1(awa_progress);
PG_FUNCTION_INFO_V1(awa_rescue);

#define AWA_MAX_ARRAY			10000
#define AWA_RESCUE_BATCH		5000

/*
 * Check that ids and leases are one-dimensional bigint arrays of equal
 * length without NULLs and no longer than AWA_MAX_ARRAY.
 */
static void
check_id_lease_arrays(ArrayType *ids, ArrayType *leases)
{
	int			n = ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids));
	int			m = ArrayGetNItems(ARR_NDIM(leases), ARR_DIMS(leases));

	if (ARR_NDIM(ids) > 1 || ARR_NDIM(leases) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids and leases must be one-dimensional arrays")));
	if (n != m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids and leases must have the same length, got %d and %d", n, m)));
	if (n > AWA_MAX_ARRAY)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most %d jobs per call, got %d", AWA_MAX_ARRAY, n)));
	if (array_contains_nulls(ids) || array_contains_nulls(leases))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ids and leases must not contain NULL")));
}

/* The (ids, leases) arguments, checked, as the first two SPI parameters. */
static void
id_lease_args(FunctionCallInfo fcinfo, Datum *values)
{
	awa_check_not_null(fcinfo, 0, "ids");
	awa_check_not_null(fcinfo, 1, "leases");
	check_id_lease_arrays(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_ARRAYTYPE_P(1));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
}

/* Reject a negative interval argument, naming it. */
static Interval *
get_nonnegative_interval(FunctionCallInfo fcinfo, int argno, const char *name)
{
	Interval   *iv = PG_GETARG_INTERVAL_P(argno);

	if (awa_interval_usecs(iv) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", name)));
	return iv;
}

/*
 * Run a saved plan that changes jobs and returns (queue, due) for each:
 * due true means claimable now (NOTIFY and wake its queue), false means
 * claimable later (wake blocked claimers so they sleep only until then),
 * NULL means never.  Returns SPI_processed.  Caller is in SPI.
 */
static uint64
run_job_update(SPIPlanPtr plan, Datum *values, const char *nulls, const char *who)
{
	int			ret = SPI_execute_plan(plan, values, nulls, false, 0);
	uint64		i;

	if (ret != SPI_OK_UPDATE_RETURNING && ret != SPI_OK_SELECT)
		elog(ERROR, "%s: update failed: %s", who, SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		due = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		if (isnull)
			continue;
		if (DatumGetBool(due))
			awa_job_available(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		else
			awa_job_scheduled(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	}
	return SPI_processed;
}

/*
 * awa_complete(job_id, run_lease) RETURNS boolean
 *
 * Running under that lease: completed, true.  Otherwise false, no change.
 */
Datum
awa_complete(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID, INT8OID};
	Datum		values[2];
	int			ret;
	bool		done;

	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan,
									"UPDATE awa.jobs SET state = 'completed', finalized_at = now()"
									" WHERE id = $1 AND run_lease = $2 AND state = 'running'",
									2, argtypes),
						   values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "awa_complete: update failed: %s", SPI_result_code_string(ret));
	done = (SPI_processed == 1);
	if (done)
		awa_running_freed();
	SPI_finish();
	PG_RETURN_BOOL(done);
}

/*
 * awa_complete_many(ids, leases) RETURNS bigint
 *
 * awa_complete for each (ids[i], leases[i]) pair in one statement; returns
 * how many were completed.
 */
Datum
awa_complete_many(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	int			ret;
	uint64		n;

	id_lease_args(fcinfo, values);

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan,
									"UPDATE awa.jobs j SET state = 'completed', finalized_at = now()"
									" FROM unnest($1, $2) AS u(id, lease)"
									" WHERE j.id = u.id AND j.run_lease = u.lease AND j.state = 'running'",
									2, argtypes),
						   values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "awa_complete_many: update failed: %s", SPI_result_code_string(ret));
	n = SPI_processed;
	if (n > 0)
		awa_running_freed();
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}

/*
 * awa_fail(job_id, run_lease, error, retry_in, terminal) RETURNS awa.job_state
 *
 * Append {"attempt", "error", "at"} to errors.  With attempts left and not
 * terminal: retryable at now() + retry_in, or after the default backoff of
 * 2^attempt seconds plus up to 25% jitter, capped at 24 hours.  Otherwise
 * failed.  NULL (and no change) when the lease is stale.
 */
Datum
awa_fail(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID, INT8OID, TEXTOID, INTERVALOID, BOOLOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	Datum		state = (Datum) 0;
	bool		found;

	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	awa_check_not_null(fcinfo, 2, "error");
	awa_check_not_null(fcinfo, 4, "terminal");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	if (PG_ARGISNULL(3))
		nulls[3] = 'n';
	else
		values[3] = IntervalPGetDatum(get_nonnegative_interval(fcinfo, 3, "retry_in"));
	values[4] = PG_GETARG_DATUM(4);

	SPI_connect();
	run_job_update(awa_plan(&plan,
							"UPDATE awa.jobs SET"
							" errors = errors || jsonb_build_object('attempt', attempt, 'error', $3, 'at', now()),"
							" state = CASE WHEN $5 OR attempt >= max_attempts"
							"   THEN 'failed'::awa.job_state ELSE 'retryable' END,"
							" run_at = CASE WHEN $5 OR attempt >= max_attempts THEN run_at"
							"   WHEN $4 IS NOT NULL THEN now() + $4"
							"   ELSE now() + make_interval(secs => least(power(2, attempt) * (1 + 0.25 * random()), 86400)) END,"
							" finalized_at = CASE WHEN $5 OR attempt >= max_attempts THEN now() END,"
							" heartbeat_at = NULL, deadline_at = NULL"
							" WHERE id = $1 AND run_lease = $2 AND state = 'running'"
							" RETURNING queue, CASE WHEN state = 'retryable' THEN run_at <= now() END, state",
							5, argtypes),
				   values, nulls, "awa_fail");
	found = (SPI_processed == 1);
	if (found)
	{
		bool		isnull;

		awa_running_freed();
		state = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull),
								  true, sizeof(Oid));
	}
	SPI_finish();
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(state);
}

/*
 * awa_snooze(job_id, run_lease, delay) RETURNS boolean
 *
 * Back to scheduled at now() + delay; the attempt it was claimed for is not
 * counted.  False (and no change) when the lease is stale.
 */
Datum
awa_snooze(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID, INT8OID, INTERVALOID};
	Datum		values[3];
	bool		found;

	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	awa_check_not_null(fcinfo, 2, "delay");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = IntervalPGetDatum(get_nonnegative_interval(fcinfo, 2, "delay"));

	SPI_connect();
	found = run_job_update(awa_plan(&plan,
									"UPDATE awa.jobs SET state = 'scheduled', run_at = now() + $3,"
									" attempt = greatest(attempt - 1, 0), heartbeat_at = NULL, deadline_at = NULL"
									" WHERE id = $1 AND run_lease = $2 AND state = 'running'"
									" RETURNING queue, run_at <= now()",
									3, argtypes),
						   values, NULL, "awa_snooze") == 1;
	if (found)
		awa_running_freed();
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/*
 * awa_heartbeat(ids, leases) RETURNS bigint[]
 *
 * Refresh heartbeat_at of the jobs still running under their lease; return
 * the ids that are not (cancelled, rescued, re-claimed or unknown), in the
 * order given, so the worker can stop them.
 */
Datum
awa_heartbeat(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	Datum		result;
	bool		isnull;
	int			ret;

	id_lease_args(fcinfo, values);

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan,
									"WITH u AS (UPDATE awa.jobs j SET heartbeat_at = now()"
									"   FROM unnest($1, $2) AS x(id, lease)"
									"   WHERE j.id = x.id AND j.run_lease = x.lease AND j.state = 'running'"
									"   RETURNING j.id)"
									" SELECT coalesce(array_agg(x.id ORDER BY x.ord), '{}')"
									" FROM unnest($1) WITH ORDINALITY AS x(id, ord)"
									" WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = x.id)",
									2, argtypes),
						   values, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "awa_heartbeat: update failed: %s", SPI_result_code_string(ret));
	result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							   false, -1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * awa_progress(job_id, run_lease, progress) RETURNS boolean
 *
 * Store structured progress (kept across retries, readable by anyone); it
 * also counts as a heartbeat.  False (and no change) when the lease is stale.
 */
Datum
awa_progress(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID, INT8OID, JSONBOID};
	Datum		values[3];
	int			ret;
	bool		found;

	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	awa_check_not_null(fcinfo, 2, "progress");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan,
									"UPDATE awa.jobs SET progress = $3, heartbeat_at = now()"
									" WHERE id = $1 AND run_lease = $2 AND state = 'running'",
									3, argtypes),
						   values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "awa_progress: update failed: %s", SPI_result_code_string(ret));
	found = (SPI_processed == 1);
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/*
 * The rescue statement: running jobs picked by "pick" (a condition on id
 * using $2) whose heartbeat is older than $1 or whose deadline has passed
 * become retryable now (or failed when out of attempts), with an error
 * entry naming the cause.
 */
#define RESCUE_SQL(pick) \
	"WITH r AS (SELECT id, CASE WHEN deadline_at < now()" \
	"   THEN 'deadline exceeded' ELSE 'heartbeat stale' END AS cause" \
	"   FROM awa.jobs WHERE state = 'running'" \
	"   AND (heartbeat_at < now() - $1 OR deadline_at < now()) AND " pick \
	"   LIMIT " CppAsString2(AWA_RESCUE_BATCH) " FOR UPDATE SKIP LOCKED)" \
	" UPDATE awa.jobs j SET" \
	" errors = j.errors || jsonb_build_object('attempt', j.attempt, 'error', r.cause, 'at', now())," \
	" state = CASE WHEN j.attempt >= j.max_attempts" \
	"   THEN 'failed'::awa.job_state ELSE 'retryable' END," \
	" run_at = now()," \
	" finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END," \
	" heartbeat_at = NULL, deadline_at = NULL" \
	" FROM r WHERE j.id = r.id" \
	" RETURNING j.queue, CASE WHEN j.state = 'retryable' THEN true END"

/* Run a rescue plan with awa.heartbeat_timeout as $1 and arg as $2. */
static int64
rescue(SPIPlanPtr plan, Datum arg)
{
	Interval	timeout;
	Datum		values[2];
	int64		n;

	memset(&timeout, 0, sizeof(timeout));
	timeout.time = (int64) awa_heartbeat_timeout * USECS_PER_SEC;
	values[0] = IntervalPGetDatum(&timeout);
	values[1] = arg;
	n = (int64) run_job_update(plan, values, NULL, "awa_rescue");
	if (n > 0)
		awa_running_freed();
	return n;
}

/*
 * Rescue up to AWA_RESCUE_BATCH running jobs whose heartbeat is older than
 * awa.heartbeat_timeout or whose deadline has passed, leaving alone the ids
 * in skip_ids (an int8[]: jobs maintenance could not rescue before).
 * Returns how many.  Caller is in SPI.  Used by awa_rescue and maintenance.
 */
int64
awa_rescue_jobs(Datum skip_ids)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INTERVALOID, INT8ARRAYOID};

	return rescue(awa_plan(&plan, RESCUE_SQL("id <> ALL($2)"), 2, argtypes),
				  skip_ids);
}

/*
 * Rescue the one job job_id if it still needs rescue (maintenance's
 * row-at-a-time fallback); returns 1 if it was rescued, else 0.
 */
int64
awa_rescue_job(int64 job_id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INTERVALOID, INT8OID};

	return rescue(awa_plan(&plan, RESCUE_SQL("id = $2"), 2, argtypes),
				  Int64GetDatum(job_id));
}

/* awa_rescue() RETURNS bigint: see awa_rescue_jobs. */
Datum
awa_rescue(PG_FUNCTION_ARGS)
{
	int64		n;

	SPI_connect();
	n = awa_rescue_jobs(PointerGetDatum(construct_empty_array(INT8OID)));
	SPI_finish();
	PG_RETURN_INT64(n);
}
