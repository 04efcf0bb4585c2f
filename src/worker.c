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

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
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
 * Default backoff: 2^attempt seconds, the base capped at 19.2 hours, times
 * 1 to 1.25 (jitter), so at most 24 hours.  Capping the base rather than
 * the result keeps the jitter at the cap: jobs that fail together at high
 * attempts still spread over 19.2 to 24 hours instead of all retrying
 * exactly 24 hours later.
 */
#define AWA_BACKOFF_BASE_CAP	69120	/* seconds; 86400 / 1.25 */

/*
 * The new errors of a job: its newest entries, at most $KEEP_OLD of them
 * (awa.max_errors_kept - 1), then the entry NEW.  A kept entry whose error
 * text is longer than $MAX_BYTES (awa.max_error_bytes) -- written before
 * the bound existed or under a larger one -- is cut the way awa_fail cuts
 * a new one, at a character boundary: the longest prefix of at most
 * $MAX_BYTES characters if that fits, else one of $CHARS characters
 * ($MAX_BYTES / the encoding's longest character), which always fits.  A
 * cut entry gets "truncated": true and "error_bytes": its original length.
 * Entries are read once per failure; the history is bounded, so is that.
 */
#define AWA_ERRORS_SQL(ERRORS, KEEP_OLD, MAX_BYTES, CHARS, NEW) \
	"coalesce((SELECT array_agg(CASE WHEN coalesce(octet_length(x.e->>'error'), 0) <= " MAX_BYTES \
	"   THEN x.e ELSE x.e || jsonb_build_object('error', CASE" \
	"     WHEN octet_length(left(x.e->>'error', " MAX_BYTES ")) <= " MAX_BYTES \
	"     THEN left(x.e->>'error', " MAX_BYTES ") ELSE left(x.e->>'error', " CHARS ") END," \
	"     'truncated', true) || CASE WHEN x.e ? 'error_bytes' THEN '{}'::jsonb" \
	"     ELSE jsonb_build_object('error_bytes', octet_length(x.e->>'error')) END END ORDER BY x.i)" \
	"  FROM unnest(" ERRORS ") WITH ORDINALITY AS x(e, i)" \
	"  WHERE x.i > cardinality(" ERRORS ") - " KEEP_OLD "), '{}') || (" NEW ")"

/* awa.max_error_bytes in characters that always fit: see AWA_ERRORS_SQL. */
static int
error_chars_that_fit(void)
{
	return awa_max_error_bytes / pg_database_encoding_max_length();
}

/*
 * Check an interval argument against 0 (or 0 excluded, when positive) ..
 * AWA_MAX_DELAY_DAYS, and return it in microseconds.  Each field (months,
 * days, time) is bounded as well, so that adding the interval to now()
 * cannot overflow even when the fields' signs differ.  Raises 22023 naming
 * the argument and the range: a bad value changes nothing.
 */
int64
awa_check_delay(Interval *iv, const char *name, bool positive)
{
	const int64 max_us = (int64) AWA_MAX_DELAY_DAYS * USECS_PER_DAY;
	int64		us = awa_interval_usecs(iv);

	if ((positive ? us <= 0 : us < 0) || us > max_us ||
		iv->month < -AWA_MAX_DELAY_DAYS / DAYS_PER_MONTH ||
		iv->month > AWA_MAX_DELAY_DAYS / DAYS_PER_MONTH ||
		iv->day < -AWA_MAX_DELAY_DAYS || iv->day > AWA_MAX_DELAY_DAYS ||
		iv->time < -max_us || iv->time > max_us)
	{
		char	   *shown = DatumGetCString(DirectFunctionCall1(interval_out,
																IntervalPGetDatum(iv)));

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 positive ?
				 errmsg("%s must be more than 0 and at most %d days, got \"%s\"",
						name, AWA_MAX_DELAY_DAYS, shown) :
				 errmsg("%s must be between 0 and %d days, got \"%s\"",
						name, AWA_MAX_DELAY_DAYS, shown),
				 errhint("A month counts as 30 days, a year as 360.")));
	}
	return us;
}

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

/*
 * Lock the jobs of the (ids $1, leases $2) pairs in id order, whatever the
 * order of the arrays, and return their id and state as of the lock.  Every
 * statement of awa that locks several jobs does so in id order, so that two
 * of them never wait for each other in a cycle (deadlock, 40P01).
 *
 * The state is checked by the caller, after the lock, not here: with
 * "state = 'running'" in this join the planner may read the running jobs
 * through jobs_running_idx and compare each with every array element, which
 * is quadratic (a batch of 1,000 with 3,000 jobs running: 3 million
 * comparisons, 0.37 s).  Without it the jobs are found through the primary
 * key.  A job locked needlessly (same lease, no longer running) is one this
 * worker held; the lock ends with the transaction.
 */
#define LOCK_BY_ID_LEASE_SQL \
	"SELECT j.id, j.state FROM unnest($1, $2) AS u(id, lease)" \
	" JOIN awa.jobs j ON j.id = u.id AND j.run_lease = u.lease" \
	" ORDER BY j.id FOR NO KEY UPDATE OF j"

/*
 * A heartbeat renews the lease (0.3.0 schema): deadline_at becomes now +
 * the lease the job was claimed with, but never later than attempted_at +
 * its hard timeout.  A job claimed before the update has no lease stored:
 * the one it was claimed with is deadline_at - attempted_at, kept from the
 * first heartbeat on.
 */
#define RENEW_LEASE_SQL \
	"lease = coalesce(j.lease, j.deadline_at - j.attempted_at)," \
	" deadline_at = LEAST(now() + coalesce(j.lease, j.deadline_at - j.attempted_at)," \
	" j.attempted_at + j.timeout)"

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

/* A delay argument (0 .. AWA_MAX_DELAY_DAYS), checked, naming it. */
static Interval *
get_delay_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	Interval   *iv = PG_GETARG_INTERVAL_P(argno);

	awa_check_delay(iv, name, false);
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

	awa_check_writable("awa_complete");

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
 * how many were completed.  The jobs are locked in id order whatever the
 * order of the arrays, as every statement of awa that locks several jobs
 * does, so that two of them never wait for each other in a cycle
 * (deadlock, 40P01).
 */
Datum
awa_complete_many(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	int			ret;
	uint64		n;

	awa_check_writable("awa_complete_many");

	id_lease_args(fcinfo, values);

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan,
									"WITH l AS (" LOCK_BY_ID_LEASE_SQL ")"
									" UPDATE awa.jobs j SET state = 'completed', finalized_at = now()"
									" FROM l WHERE j.id = l.id AND l.state = 'running'",
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
 * Append {"attempt", "error", "at"} to errors, the error cut to
 * awa.max_error_bytes and the history to awa.max_errors_kept entries (see
 * AWA_ERRORS_SQL).  With attempts left and not terminal: retryable at
 * now() + retry_in (0 .. AWA_MAX_DELAY_DAYS, else 22023), or after the
 * default backoff (AWA_BACKOFF_BASE_CAP).  Otherwise failed.  NULL (and no
 * change) when the lease is stale.
 */
Datum
awa_fail(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID, INT8OID, TEXTOID, INTERVALOID, BOOLOID,
	INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', 'n', ' ', ' ', ' '};
	Datum		state = (Datum) 0;
	text	   *error;
	int64		len;
	bool		found;

	awa_check_writable("awa_fail");

	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	awa_check_not_null(fcinfo, 2, "error");
	awa_check_not_null(fcinfo, 4, "terminal");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	if (PG_ARGISNULL(3))
		nulls[3] = 'n';
	else
		values[3] = IntervalPGetDatum(get_delay_arg(fcinfo, 3, "retry_in"));
	values[4] = PG_GETARG_DATUM(4);

	/*
	 * Cut the error to awa.max_error_bytes at a character boundary before
	 * it goes anywhere: of a long stored (toasted) text only the slice is
	 * read, and only the slice is copied and stored.
	 */
	len = (int64) toast_raw_datum_size(PG_GETARG_DATUM(2)) - VARHDRSZ;
	if (len > awa_max_error_bytes)
	{
		text	   *slice = DatumGetTextPSlice(PG_GETARG_DATUM(2), 0, awa_max_error_bytes);
		const char *data = VARDATA_ANY(slice);

		values[5] = Int64GetDatum(len);
		nulls[5] = ' ';
		error = cstring_to_text_with_len(data, pg_mbcliplen(data, VARSIZE_ANY_EXHDR(slice),
															awa_max_error_bytes));
	}
	else
		error = PG_GETARG_TEXT_PP(2);
	values[2] = PointerGetDatum(error);
	values[6] = Int32GetDatum(awa_max_errors_kept - 1);
	values[7] = Int32GetDatum(awa_max_error_bytes);
	values[8] = Int32GetDatum(error_chars_that_fit());

	SPI_connect();
	run_job_update(awa_plan(&plan,
							"UPDATE awa.jobs SET"
							" errors = " AWA_ERRORS_SQL("errors", "$7", "$8", "$9",
														"jsonb_build_object('attempt', attempt, 'error', $3, 'at', now())"
														" || CASE WHEN $6 IS NULL THEN '{}'::jsonb ELSE"
														" jsonb_build_object('truncated', true, 'error_bytes', $6) END") ","
							" state = CASE WHEN $5 OR attempt >= max_attempts"
							"   THEN 'failed'::awa.job_state ELSE 'retryable' END,"
							" run_at = CASE WHEN $5 OR attempt >= max_attempts THEN run_at"
							"   WHEN $4 IS NOT NULL THEN now() + $4"
							"   ELSE now() + make_interval(secs => least(power(2, attempt), "
							CppAsString2(AWA_BACKOFF_BASE_CAP) ") * (1 + 0.25 * random())) END,"
							" finalized_at = CASE WHEN $5 OR attempt >= max_attempts THEN now() END,"
							" heartbeat_at = NULL, deadline_at = NULL"
							" WHERE id = $1 AND run_lease = $2 AND state = 'running'"
							" RETURNING queue, CASE WHEN state = 'retryable' THEN run_at <= now() END, state",
							9, argtypes),
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
 * Back to scheduled at now() + delay (0 .. AWA_MAX_DELAY_DAYS, else 22023);
 * the attempt it was claimed for is not counted.  False (and no change)
 * when the lease is stale.
 */
Datum
awa_snooze(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID, INT8OID, INTERVALOID};
	Datum		values[3];
	bool		found;

	awa_check_writable("awa_snooze");

	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	awa_check_not_null(fcinfo, 2, "delay");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = IntervalPGetDatum(get_delay_arg(fcinfo, 2, "delay"));

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
 * order given, so the worker can stop them.  Locks in id order, like
 * awa_complete_many.
 */
Datum
awa_heartbeat(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};	/* [schema has leases] */
	int			leases;
	static const Oid argtypes[] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	Datum		result;
	bool		isnull;
	int			ret;

	awa_check_writable("awa_heartbeat");

	id_lease_args(fcinfo, values);

	SPI_connect();
	leases = awa_schema_has(AWA_SCHEMA_LEASES) ? 1 : 0;
	ret = SPI_execute_plan(awa_plan(&plans[leases], leases ?
									"WITH l AS (" LOCK_BY_ID_LEASE_SQL "),"
									" u AS (UPDATE awa.jobs j SET heartbeat_at = now(), " RENEW_LEASE_SQL
									"   FROM l WHERE j.id = l.id AND l.state = 'running' RETURNING j.id)"
									" SELECT coalesce(array_agg(x.id ORDER BY x.ord), '{}')"
									" FROM unnest($1) WITH ORDINALITY AS x(id, ord)"
									" WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = x.id)" :
									"WITH l AS (" LOCK_BY_ID_LEASE_SQL "),"
									" u AS (UPDATE awa.jobs j SET heartbeat_at = now()"
									"   FROM l WHERE j.id = l.id AND l.state = 'running' RETURNING j.id)"
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
	static SPIPlanPtr plans[2] = {NULL, NULL};	/* [schema has leases] */
	int			leases;
	static const Oid argtypes[] = {INT8OID, INT8OID, JSONBOID};
	Datum		values[3];
	int			ret;
	bool		found;

	awa_check_writable("awa_progress");

	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
	awa_check_not_null(fcinfo, 2, "progress");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);

	SPI_connect();
	leases = awa_schema_has(AWA_SCHEMA_LEASES) ? 1 : 0;
	ret = SPI_execute_plan(awa_plan(&plans[leases], leases ?
									"UPDATE awa.jobs j SET progress = $3, heartbeat_at = now(), " RENEW_LEASE_SQL
									" WHERE id = $1 AND run_lease = $2 AND state = 'running'" :
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
 * The rescue statement: running jobs picked by PICK (a condition on id
 * using $2) whose heartbeat is older than $1 or whose deadline has passed
 * become retryable now (or failed when out of attempts), with an error
 * entry saying why (CAUSE: heartbeat stale, deadline exceeded when the
 * lease ran out, or with the 0.3.0 schema timeout exceeded), the history
 * bounded as by awa_fail ($3..$5).  Locks in id order, skipping jobs
 * locked by others.
 */
#define RESCUE_SQL(CAUSE, PICK) \
	"WITH r AS (SELECT id, " CAUSE " AS cause" \
	"   FROM awa.jobs WHERE state = 'running'" \
	"   AND (heartbeat_at < now() - $1 OR deadline_at < now()) AND " PICK \
	"   ORDER BY id LIMIT " CppAsString2(AWA_RESCUE_BATCH) \
	"   FOR NO KEY UPDATE SKIP LOCKED)" \
	" UPDATE awa.jobs j SET" \
	" errors = " AWA_ERRORS_SQL("j.errors", "$3", "$4", "$5", \
								"jsonb_build_object('attempt', j.attempt, 'error', r.cause, 'at', now())") "," \
	" state = CASE WHEN j.attempt >= j.max_attempts" \
	"   THEN 'failed'::awa.job_state ELSE 'retryable' END," \
	" run_at = now()," \
	" finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END," \
	" heartbeat_at = NULL, deadline_at = NULL" \
	" FROM r WHERE j.id = r.id" \
	" RETURNING j.queue, CASE WHEN j.state = 'retryable' THEN true END"

/* Why a job is rescued, before and since the 0.3.0 schema (timeout). */
#define RESCUE_CAUSE_0_2 \
	"CASE WHEN deadline_at < now() THEN 'deadline exceeded' ELSE 'heartbeat stale' END"
#define RESCUE_CAUSE_0_3 \
	"CASE WHEN deadline_at < now() THEN CASE" \
	" WHEN deadline_at = attempted_at + timeout THEN 'timeout exceeded'" \
	" ELSE 'deadline exceeded' END ELSE 'heartbeat stale' END"

/*
 * Run one of a pair of rescue plans ([0]: schema before 0.3.0, [1]: with
 * leases; PICK's argument of type argtype as $2), with
 * awa.heartbeat_timeout as $1 and the errors bounds as $3..$5.
 */
static int64
rescue(SPIPlanPtr *plans, const char *const *sql, Oid argtype, Datum arg)
{
	Oid			argtypes[5] = {INTERVALOID, argtype, INT4OID, INT4OID, INT4OID};
	int			leases = awa_schema_has(AWA_SCHEMA_LEASES) ? 1 : 0;
	Interval	timeout;
	Datum		values[5];
	int64		n;

	memset(&timeout, 0, sizeof(timeout));
	timeout.time = (int64) awa_heartbeat_timeout * USECS_PER_SEC;
	values[0] = IntervalPGetDatum(&timeout);
	values[1] = arg;
	values[2] = Int32GetDatum(awa_max_errors_kept - 1);
	values[3] = Int32GetDatum(awa_max_error_bytes);
	values[4] = Int32GetDatum(error_chars_that_fit());
	n = (int64) run_job_update(awa_plan(&plans[leases], sql[leases], 5, argtypes),
							   values, NULL, "awa_rescue");
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
	static SPIPlanPtr plans[2] = {NULL, NULL};
	static const char *const sql[2] = {
		RESCUE_SQL(RESCUE_CAUSE_0_2, "id <> ALL($2)"),
		RESCUE_SQL(RESCUE_CAUSE_0_3, "id <> ALL($2)")
	};

	return rescue(plans, sql, INT8ARRAYOID, skip_ids);
}

/*
 * Rescue the one job job_id if it still needs rescue (maintenance's
 * row-at-a-time fallback); returns 1 if it was rescued, else 0.
 */
int64
awa_rescue_job(int64 job_id)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	static const char *const sql[2] = {
		RESCUE_SQL(RESCUE_CAUSE_0_2, "id = $2"),
		RESCUE_SQL(RESCUE_CAUSE_0_3, "id = $2")
	};

	return rescue(plans, sql, INT8OID, Int64GetDatum(job_id));
}

/* awa_rescue() RETURNS bigint: see awa_rescue_jobs. */
Datum
awa_rescue(PG_FUNCTION_ARGS)
{
	int64		n;

	awa_check_writable("awa_rescue");

	SPI_connect();
	n = awa_rescue_jobs(PointerGetDatum(construct_empty_array(INT8OID)));
	SPI_finish();
	PG_RETURN_INT64(n);
}
