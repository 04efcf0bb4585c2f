/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *		State changes of a single job requested by producers and operators:
 *		awa_cancel and awa_retry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_cancel);
PG_FUNCTION_INFO_V1(awa_retry);

/* Raise P0002 unless a job with this id exists.  Caller is in SPI. */
static void
require_job(Datum job_id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};

	SPI_execute_plan(awa_plan(&plan, "SELECT 1 FROM awa.jobs WHERE id = $1",
							  1, argtypes),
					 &job_id, NULL, true, 1);
	if (SPI_processed == 0)
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
	SPI_connect();
	return_job_or_none(fcinfo, awa_job_retry(PG_GETARG_DATUM(0)));
	SPI_finish();
	return (Datum) 0;
}
