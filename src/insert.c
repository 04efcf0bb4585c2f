/*-------------------------------------------------------------------------
 *
 * insert.c
 *		awa_insert and awa_insert_many: read and validate jobs (validate.c,
 *		jobs_json.c, unique.c) and hand them to the enqueue path (enqueue.c).
 *
 * All validation happens before anything is written, so bad input raises
 * an error that names the field and changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_insert);
PG_FUNCTION_INFO_V1(awa_insert_many);

/*
 * awa_insert(kind, args, queue, priority, max_attempts, run_at, tags,
 *			  metadata, unique_by_args, unique_by_queue, unique_period,
 *			  unique_states, timeout, group_id, after, on_parent_failure,
 *			  concurrency_key) RETURNS awa.jobs
 *
 * Enqueue one job in the caller's transaction and return its row.  With
 * after (job ids), it runs once they all completed (deps.c).
 */
Datum
awa_insert(PG_FUNCTION_ARGS)
{
	MemoryContext callercxt = CurrentMemoryContext;
	AwaJob		job;
	AwaEnqueue	e;
	Datum		result;

	awa_check_writable("awa_insert");
	awa_insert_job_args(fcinfo, &job);
	if (awa_engine_ring())
		PG_RETURN_DATUM(awa_engine_insert(&job, fcinfo));

	awa_enqueue_begin(&e, false);
	awa_enqueue(&e, &job);
	result = awa_enqueued_datum(&e, fcinfo, callercxt);
	awa_enqueue_end(&e);
	PG_RETURN_DATUM(result);
}

/*
 * awa_insert_many(jobs jsonb) RETURNS SETOF awa.jobs
 *
 * Enqueue every job of a JSON array of objects with awa_insert's fields
 * (read by jobs_json.c), and return their rows in input order.  All
 * elements are read and validated before anything is written; an error
 * names the element ("jobs[3]: priority must be between 1 and 4, got 7")
 * and keeps its SQLSTATE (22004 for a missing kind or a null field, 22023
 * for a wrong type or value, 22007/22008 for a bad run_at, 54000 for more
 * than AWA_MAX_INSERT_MANY jobs).
 */
Datum
awa_insert_many(PG_FUNCTION_ARGS)
{
	AwaJob	   *jobs;
	int			n;

	awa_check_writable("awa_insert_many");

	awa_check_not_null(fcinfo, 0, "jobs");
	jobs = awa_jobs_from_json(PG_GETARG_JSONB_P(0), &n);
	if (awa_engine_ring())
		return awa_engine_insert_many(jobs, n, fcinfo);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	awa_enqueue_many(jobs, n, fcinfo);
	return (Datum) 0;
}
