/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *		State changes requested by producers and operators: awa_cancel and
 *		awa_retry of one job, awa_retry_failed and awa_discard_failed of
 *		the failed jobs of a kind or queue, awa_cancel_by_unique_key of the
 *		jobs holding a unique key (built by unique.c).  The changes are
 *		job.c's (engine_admin.c's on the ring engine).
 *
 * SQLSTATEs raised:
 *	22004 (null_value_not_allowed): a required argument is NULL
 *	22023 (invalid_parameter_value): a name of the wrong length, or
 *		awa_retry_failed without any filter
 *	23505 (unique_violation): awa_retry of a unique job whose key another
 *		job holds
 *	P0002 (no_data_found): awa_cancel or awa_retry of an unknown id
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "awa.h"
#include "engine_admin.h"

PG_FUNCTION_INFO_V1(awa_cancel);
PG_FUNCTION_INFO_V1(awa_retry);
PG_FUNCTION_INFO_V1(awa_retry_failed);
PG_FUNCTION_INFO_V1(awa_discard_failed);
PG_FUNCTION_INFO_V1(awa_cancel_by_unique_key);

/* awa_retry_failed / awa_discard_failed: this kind means "every kind". */
#define AWA_ANY_KIND	"*"

/* Raise P0002 unless a job with this id exists.  Caller is in SPI. */
static void
require_job(Datum job_id)
{
	static AwaStmt stmt = AWA_QUERY("awa: looking up a job",
									"SELECT 1 FROM awa.jobs WHERE id = $1", 1, INT8OID);

	if (awa_stmt_run(&stmt, &job_id, NULL, 1) == 0)
		awa_job_not_found(DatumGetInt64(job_id));
}

/*
 * Return the row a transition of job argument 0 left in SPI_tuptable (n:
 * 0 or 1), or no row; P0002 when no such job exists.
 */
static void
return_job_or_none(FunctionCallInfo fcinfo, uint64 n)
{
	if (n == 1)
		awa_store_jobs(fcinfo, SPI_tuptable, 1, NULL);
	else
	{
		require_job(PG_GETARG_DATUM(0));
		awa_store_jobs(fcinfo, NULL, 0, NULL);
	}
}

/*
 * awa_cancel(job_id) RETURNS SETOF awa.jobs
 *
 * A job that is not terminal becomes cancelled.  If a worker held it
 * (running or waiting_external), NOTIFY awa.cancel tells it so; its lease
 * no longer completes the job since the job is no longer running.
 */
Datum
awa_cancel(PG_FUNCTION_ARGS)
{
	awa_check_writable("awa_cancel");

	awa_check_not_null(fcinfo, 0, "job_id");
	if (awa_engine_ring())
		return awa_engine_cancel(fcinfo, PG_GETARG_DATUM(0));
	SPI_connect();
	return_job_or_none(fcinfo, awa_job_cancel(PG_GETARG_DATUM(0)));
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa_retry(job_id) RETURNS SETOF awa.jobs
 *
 * A failed, cancelled or waiting_external job becomes available now, with
 * its attempts reset.  Other states are left alone and return no row.
 * 23505 when it is a unique job whose key another job holds now.
 */
Datum
awa_retry(PG_FUNCTION_ARGS)
{
	awa_check_writable("awa_retry");

	awa_check_not_null(fcinfo, 0, "job_id");
	if (awa_engine_ring())
		return awa_engine_retry(fcinfo, PG_GETARG_DATUM(0));
	SPI_connect();
	return_job_or_none(fcinfo, awa_job_retry(PG_GETARG_DATUM(0)));
	SPI_finish();
	return (Datum) 0;
}

/*
 * The kind argument of awa_retry_failed / awa_discard_failed: a valid name,
 * or '*' for every kind, which becomes NULL (no filter) in the query.
 */
static Datum
kind_filter(text *kind, bool *isnull)
{
	awa_check_name(kind, "kind");
	if (VARSIZE_ANY_EXHDR(kind) == 1 && *VARDATA_ANY(kind) == '*')
	{
		*isnull = true;
		return (Datum) 0;
	}
	*isnull = false;
	return PointerGetDatum(kind);
}

/* qsort order of the rows of an SPI result by their int8 first column. */
static SPITupleTable *sort_table;

static int
id_cmp(const void *a, const void *b)
{
	bool		isnull;
	int64		x = DatumGetInt64(SPI_getbinval(sort_table->vals[*(const int *) a],
											   sort_table->tupdesc, 1, &isnull));
	int64		y = DatumGetInt64(SPI_getbinval(sort_table->vals[*(const int *) b],
											   sort_table->tupdesc, 1, &isnull));

	return (x > y) - (x < y);
}

/* The positions of the rows of the last SPI result, ordered by id. */
static int *
order_by_id(void)
{
	int		   *order = palloc(sizeof(int) * Max(SPI_processed, 1));
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
		order[i] = (int) i;
	sort_table = SPI_tuptable;
	qsort(order, SPI_processed, sizeof(int), id_cmp);
	sort_table = NULL;
	return order;
}

/*
 * awa_retry_failed(kind text DEFAULT NULL, queue text DEFAULT NULL)
 *		RETURNS SETOF awa.jobs
 *
 * Failed jobs of this kind (or of every kind, kind => '*') and, when given,
 * of this queue become available now with their attempts reset, like
 * awa_retry.  Returns them ordered by id.  With neither filter it refuses
 * (22023): retrying everything must be asked for with kind => '*'.
 */
Datum
awa_retry_failed(PG_FUNCTION_ARGS)
{
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	int		   *order;

	awa_check_writable("awa_retry_failed");

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("awa_retry_failed needs a kind or a queue"),
				 errhint("Pass kind => '*' to retry every failed job.")));
	if (PG_ARGISNULL(0))
		nulls[0] = 'n';
	else
	{
		values[0] = kind_filter(PG_GETARG_TEXT_PP(0), &isnull);
		if (isnull)
			nulls[0] = 'n';
	}
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
	{
		values[1] = PointerGetDatum(PG_GETARG_TEXT_PP(1));
		awa_check_name(DatumGetTextPP(values[1]), "queue");
	}

	if (awa_engine_ring())
		return awa_engine_retry_failed(fcinfo, values, nulls);
	SPI_connect();
	awa_job_retry_failed(values, nulls);
	order = order_by_id();
	awa_store_jobs(fcinfo, SPI_tuptable, SPI_processed, order);
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa_discard_failed(kind text) RETURNS bigint
 *
 * Delete the failed jobs of this kind (kind => '*': of every kind) and
 * return how many were deleted.
 */
Datum
awa_discard_failed(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	char		nulls[1] = {' '};
	bool		isnull;
	int64		n;

	awa_check_writable("awa_discard_failed");

	awa_check_not_null(fcinfo, 0, "kind");
	values[0] = kind_filter(PG_GETARG_TEXT_PP(0), &isnull);
	if (isnull)
		nulls[0] = 'n';
	if (awa_engine_ring())
		PG_RETURN_INT64(awa_engine_discard_failed(values[0], nulls[0] == 'n'));

	SPI_connect();
	n = awa_job_discard_failed(values[0], nulls[0] == 'n');
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * awa_cancel_by_unique_key(kind, args, queue, unique_period, run_at)
 *		RETURNS SETOF awa.jobs
 *
 * Cancel the non-terminal jobs holding the unique key built from the same
 * parts as awa_insert would: args given = by args, queue given = by queue,
 * unique_period given = by the period bucket of run_at (default now()).
 * Locks the jobs in id order, as every statement of awa that locks several
 * jobs does, so it never deadlocks with another of them.
 */
Datum
awa_cancel_by_unique_key(PG_FUNCTION_ARGS)
{
	bytea	   *legacy;
	Datum		values[2];
	uint64		n;

	awa_check_writable("awa_cancel_by_unique_key");

	awa_check_not_null(fcinfo, 0, "kind");
	values[0] = PointerGetDatum(awa_unique_key_args(fcinfo, awa_check_name, &legacy));
	/* jobs enqueued before 0.3.0 may hold the key in its old form */
	values[1] = legacy ? PointerGetDatum(legacy) : values[0];
	if (awa_engine_ring())
		return awa_engine_cancel_by_unique_key(fcinfo);

	SPI_connect();
	n = awa_job_cancel_by_key(values[0], values[1]);
	awa_store_jobs(fcinfo, SPI_tuptable, n, NULL);
	SPI_finish();
	return (Datum) 0;
}
