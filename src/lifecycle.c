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
require_job(int64 job_id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};

	SPI_execute_plan(awa_plan(&plan, "SELECT 1 FROM awa.jobs WHERE id = $1",
							  1, argtypes),
					 values, NULL, true, 1);
	if (SPI_processed == 0)
		awa_job_not_found(job_id);
}

/*
 * For a job row just cancelled, read through SPI with a last boolean column
 * telling whether a worker held it (it was running or waiting_external):
 * if so, NOTIFY awa.cancel with its id and lease so the worker can stop.
 */
void
awa_notify_if_held(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;

	if (DatumGetBool(SPI_getbinval(tup, desc, desc->natts, &isnull)) && !isnull)
	{
		awa_running_freed();
		awa_notify_cancel(DatumGetInt64(SPI_getbinval(tup, desc, SPI_fnumber(desc, "id"), &isnull)),
						  DatumGetInt64(SPI_getbinval(tup, desc, SPI_fnumber(desc, "run_lease"), &isnull)));
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
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	int64		job_id;
	Datum		values[1];
	int			ret;

	awa_check_writable("awa_cancel");

	awa_check_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	values[0] = Int64GetDatum(job_id);

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan,
									"UPDATE awa.jobs j SET state = 'cancelled', finalized_at = now()"
									" FROM (SELECT id, state FROM awa.jobs WHERE id = $1 FOR UPDATE) o"
									" WHERE j.id = o.id AND o.state IN ('scheduled', 'available',"
									" 'running', 'retryable', 'waiting_external')"
									" RETURNING j.*, o.state IN ('running', 'waiting_external')",
									1, argtypes),
						   values, NULL, false, 1);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "awa_cancel: update failed: %s", SPI_result_code_string(ret));

	if (SPI_processed == 1)
	{
		awa_notify_if_held(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
		awa_store_jobs(fcinfo, SPI_tuptable, 1, NULL);
	}
	else
	{
		require_job(job_id);
		awa_store_jobs(fcinfo, NULL, 0, NULL);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa_retry(job_id) RETURNS SETOF awa.jobs
 *
 * A failed, cancelled or waiting_external job becomes available now, with
 * its attempts reset.  Other states are left alone and return no row.
 */
Datum
awa_retry(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr holder_plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	int64		job_id;
	Datum		values[1];
	int			ret;

	awa_check_writable("awa_retry");

	awa_check_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	values[0] = Int64GetDatum(job_id);

	SPI_connect();

	/* a unique job whose key another job holds now cannot come back */
	ret = SPI_execute_plan(awa_plan(&holder_plan,
									"SELECT h.id FROM awa.jobs j JOIN awa.jobs h"
									" ON h.unique_key = j.unique_key AND h.id <> j.id"
									" AND awa.unique_state_held(h.unique_states, h.state)"
									" WHERE j.id = $1 AND j.state IN ('failed', 'cancelled', 'waiting_external')"
									" AND awa.unique_state_held(j.unique_states, 'available')",
									1, argtypes),
						   values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa_retry: unique key check failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool		isnull;
		int64		holder = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));

		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("job %lld cannot be retried: job %lld holds its unique key",
						(long long) job_id, (long long) holder),
				 errhint("Wait for job %lld to finish or cancel it, then retry.",
						 (long long) holder)));
	}

	ret = SPI_execute_plan(awa_plan(&plan,
									"UPDATE awa.jobs SET state = 'available', run_at = now(),"
									" attempt = 0, finalized_at = NULL, heartbeat_at = NULL,"
									" deadline_at = NULL"
									" WHERE id = $1 AND state IN ('failed', 'cancelled', 'waiting_external')"
									" RETURNING *",
									1, argtypes),
						   values, NULL, false, 1);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "awa_retry: update failed: %s", SPI_result_code_string(ret));

	if (SPI_processed == 1)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *queue = SPI_getvalue(SPI_tuptable->vals[0], desc,
										 SPI_fnumber(desc, "queue"));

		awa_job_available(queue);
		awa_store_jobs(fcinfo, SPI_tuptable, 1, NULL);
	}
	else
	{
		require_job(job_id);
		awa_store_jobs(fcinfo, NULL, 0, NULL);
	}
	SPI_finish();
	return (Datum) 0;
}
