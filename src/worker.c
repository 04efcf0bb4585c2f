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
 * The state changes themselves, with the wake-ups they cause, are job.c's.
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
#include "engine_deps.h"
#include "engine_admin.h"

PG_FUNCTION_INFO_V1(awa_complete);
PG_FUNCTION_INFO_V1(awa_complete_many);
PG_FUNCTION_INFO_V1(awa_fail);
PG_FUNCTION_INFO_V1(awa_snooze);
PG_FUNCTION_INFO_V1(awa_heartbeat);
PG_FUNCTION_INFO_V1(awa_progress);
PG_FUNCTION_INFO_V1(awa_rescue);

#define AWA_MAX_ARRAY			10000
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

/*
 * Heartbeat the running jobs of (ids $1, leases $2), SET being more to set
 * (the lease renewal with the 0.3.0 schema), and return as "stale" the ids
 * that are not running under their lease, in the order given.
 */
#define HEARTBEAT_SQL(SET) \
	"WITH l AS (" AWA_LOCK_BY_ID_LEASE_SQL ")," \
	" u AS (UPDATE awa.jobs j SET heartbeat_at = now()" SET \
	"   FROM l WHERE j.id = l.id AND l.state = 'running' RETURNING j.id)" \
	" SELECT coalesce(array_agg(x.id ORDER BY x.ord), '{}') AS stale" \
	" FROM unnest($1) WITH ORDINALITY AS x(id, ord)" \
	" WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = x.id)"

/* Store progress $3 of job $1 running under lease $2; a heartbeat too. */
#define PROGRESS_SQL(SET) \
	"UPDATE awa.jobs j SET progress = $3, heartbeat_at = now()" SET \
	" WHERE id = $1 AND run_lease = $2 AND j." AWA_RUNNING_SQL

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
 * The checks every call about one held job starts with: the server takes
 * writes, and job_id and run_lease are given (22004 otherwise).
 */
static void
job_lease_args(FunctionCallInfo fcinfo, const char *fn)
{
	awa_check_writable(fn);
	awa_check_not_null(fcinfo, 0, "job_id");
	awa_check_not_null(fcinfo, 1, "run_lease");
}

/*
 * awa_complete(job_id, run_lease, result) RETURNS boolean
 *
 * Running under that lease: completed, true, result (any jsonb, at most
 * awa.max_args_bytes, else 54000; NULL: none) stored.  Otherwise false, no
 * change.  Declared with two arguments before the 0.3.0 schema.
 */
Datum
awa_complete(PG_FUNCTION_ARGS)
{
	Jsonb	   *result = NULL;
	bool		done;

	job_lease_args(fcinfo, "awa_complete");
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
	{
		result = PG_GETARG_JSONB_P(2);
		awa_check_jsonb_size(result, "result");
	}
	if (awa_engine_ring())
		PG_RETURN_BOOL(awa_engine_complete_result(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), result));

	SPI_connect();
	if (result != NULL)
		done = awa_job_complete_result(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
									   JsonbPGetDatum(result));
	else
		done = awa_job_complete(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1));
	SPI_finish();
	PG_RETURN_BOOL(done);
}

/*
 * Check the results argument of awa_complete_many: one-dimensional, as long
 * as ids (n), each element within awa.max_args_bytes.
 */
static void
check_results_array(ArrayType *results, int n)
{
	ArrayIterator it;
	Datum		value;
	bool		isnull;

	if (ARR_NDIM(results) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("results must be a one-dimensional array")));
	if (ArrayGetNItems(ARR_NDIM(results), ARR_DIMS(results)) != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("results must be as long as ids, got %d and %d",
						ArrayGetNItems(ARR_NDIM(results), ARR_DIMS(results)), n)));
	it = array_create_iterator(results, 0, NULL);
	while (array_iterate(it, &value, &isnull))
		if (!isnull)
			awa_check_jsonb_size(DatumGetJsonbP(value), "a result");
	array_free_iterator(it);
}

/*
 * awa_complete_many(ids, leases, results) RETURNS bigint
 *
 * awa_complete for each (ids[i], leases[i], results[i]) in one statement
 * (results NULL: no results; declared without it before the 0.3.0
 * schema); returns how many were completed.  The jobs are locked in id order whatever the
 * order of the arrays, as every statement of awa that locks several jobs
 * does, so that two of them never wait for each other in a cycle
 * (deadlock, 40P01).
 */
Datum
awa_complete_many(PG_FUNCTION_ARGS)
{
	Datum		values[2];
	ArrayType  *results = NULL;
	int64		n;

	awa_check_writable("awa_complete_many");

	id_lease_args(fcinfo, values);
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
	{
		ArrayType  *ids = DatumGetArrayTypeP(values[0]);

		results = PG_GETARG_ARRAYTYPE_P(2);
		check_results_array(results, ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)));
	}
	if (awa_engine_ring())
		PG_RETURN_INT64(awa_engine_complete_results(values[0], values[1], results));

	SPI_connect();
	if (results != NULL)
		n = awa_job_complete_many_results(values[0], values[1], PointerGetDatum(results));
	else
		n = awa_job_complete_many(values[0], values[1]);
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * An error text argument cut to awa.max_error_bytes at a character boundary
 * before it goes anywhere: of a long stored (toasted) text only the slice
 * is read, and only the slice is copied and stored.  *error_bytes is its
 * original length when it was cut, else -1.
 */
text *
awa_error_arg(Datum error, int64 *error_bytes)
{
	int64		len = (int64) toast_raw_datum_size(error) - VARHDRSZ;

	*error_bytes = -1;
	if (len > awa_max_error_bytes)
	{
		text	   *slice = DatumGetTextPSlice(error, 0, awa_max_error_bytes);
		const char *data = VARDATA_ANY(slice);

		*error_bytes = len;
		return cstring_to_text_with_len(data, pg_mbcliplen(data, VARSIZE_ANY_EXHDR(slice),
														   awa_max_error_bytes));
	}
	return DatumGetTextPP(error);
}

/*
 * awa_fail(job_id, run_lease, error, retry_in, terminal) RETURNS awa.job_state
 *
 * Append {"attempt", "error", "at"} to errors, the error cut to
 * awa.max_error_bytes and the history to awa.max_errors_kept entries (see
 * AWA_ERRORS_SQL in awa.h).  With attempts left and not terminal: retryable at
 * now() + retry_in (0 .. AWA_MAX_DELAY_DAYS, else 22023), or after the
 * default backoff (AWA_BACKOFF_BASE_CAP, job.c).  Otherwise failed.  NULL (and no
 * change) when the lease is stale.
 */
Datum
awa_fail(PG_FUNCTION_ARGS)
{
	Interval   *retry_in = NULL;
	Datum		state = (Datum) 0;
	text	   *error;
	int64		error_bytes;
	bool		found;

	job_lease_args(fcinfo, "awa_fail");
	awa_check_not_null(fcinfo, 2, "error");
	awa_check_not_null(fcinfo, 4, "terminal");
	if (!PG_ARGISNULL(3))
		retry_in = get_delay_arg(fcinfo, 3, "retry_in");

	error = awa_error_arg(PG_GETARG_DATUM(2), &error_bytes);
	if (awa_engine_ring())
	{
		bool		isnull;

		state = awa_engine_fail(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), error, error_bytes, retry_in,
								PG_GETARG_BOOL(4), &isnull);
		if (isnull)
			PG_RETURN_NULL();
		PG_RETURN_DATUM(state);
	}

	SPI_connect();
	found = awa_job_fail(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), error, error_bytes,
						 retry_in, PG_GETARG_BOOL(4), &state);
	if (found)
		state = SPI_datumTransfer(state, true, sizeof(Oid));
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
	bool		found;

	job_lease_args(fcinfo, "awa_snooze");
	awa_check_not_null(fcinfo, 2, "delay");
	if (awa_engine_ring())
		PG_RETURN_BOOL(awa_engine_snooze(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
										 get_delay_arg(fcinfo, 2, "delay")));

	SPI_connect();
	found = awa_job_snooze(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
						   get_delay_arg(fcinfo, 2, "delay"));
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
	static AwaStmt stmts[2] = { /* [schema has leases] */
		AWA_STMT("awa_heartbeat: update", SPI_OK_SELECT, HEARTBEAT_SQL(""),
				 2, INT8ARRAYOID, INT8ARRAYOID),
		AWA_STMT("awa_heartbeat: update", SPI_OK_SELECT, HEARTBEAT_SQL(", " RENEW_LEASE_SQL),
				 2, INT8ARRAYOID, INT8ARRAYOID)
	};
	Datum		values[2];
	Datum		result;
	bool		isnull;

	awa_check_writable("awa_heartbeat");

	id_lease_args(fcinfo, values);
	if (awa_engine_ring())
		PG_RETURN_DATUM(awa_engine_heartbeat(values[0], values[1]));

	SPI_connect();
	if (awa_stmt_run(&stmts[awa_schema_has(AWA_SCHEMA_LEASES) ? 1 : 0], values, NULL, 0) != 1)
		elog(ERROR, "awa_heartbeat: expected 1 row");
	result = SPI_datumTransfer(awa_stmt_value(0, "stale", &isnull), false, -1);
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
	static AwaStmt stmts[2] = { /* [schema has leases] */
		AWA_STMT("awa_progress: update", SPI_OK_UPDATE, PROGRESS_SQL(""),
				 3, INT8OID, INT8OID, JSONBOID),
		AWA_STMT("awa_progress: update", SPI_OK_UPDATE, PROGRESS_SQL(", " RENEW_LEASE_SQL),
				 3, INT8OID, INT8OID, JSONBOID)
	};
	Datum		values[3];
	bool		found;

	job_lease_args(fcinfo, "awa_progress");
	awa_check_not_null(fcinfo, 2, "progress");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	if (awa_engine_ring())
		PG_RETURN_BOOL(awa_engine_progress(values[0], values[1], values[2]));

	SPI_connect();
	found = awa_stmt_run(&stmts[awa_schema_has(AWA_SCHEMA_LEASES) ? 1 : 0], values, NULL, 0) == 1;
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/* awa_rescue() RETURNS bigint: see awa_rescue_jobs. */
Datum
awa_rescue(PG_FUNCTION_ARGS)
{
	int64		n;

	awa_check_writable("awa_rescue");
	if (awa_engine_ring())
		PG_RETURN_INT64(awa_engine_rescue());

	SPI_connect();
	n = awa_rescue_jobs(PointerGetDatum(construct_empty_array(INT8OID)));
	SPI_finish();
	PG_RETURN_INT64(n);
}
