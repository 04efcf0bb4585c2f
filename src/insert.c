/*-------------------------------------------------------------------------
 *
 * insert.c
 *		awa_insert: validate one job and write it to awa.jobs.
 *
 * All validation happens before anything is written, so bad input raises
 * an error that names the field and changes nothing.  The row is written
 * through one saved SPI plan.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_insert);

/* Reject a kind or queue name that is empty or longer than the limit. */
void
awa_check_name(text *value, const char *field)
{
	int			len = pg_mbstrlen_with_len(VARDATA_ANY(value),
										   VARSIZE_ANY_EXHDR(value));

	if (len < 1 || len > AWA_MAX_NAME_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 1 to %d characters long, got %d",
						field, AWA_MAX_NAME_CHARS, len)));
}

/* Reject an integer outside [lo, hi], naming the field and the range. */
static void
check_range(int32 value, int32 lo, int32 hi, const char *field)
{
	if (value < lo || value > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %d and %d, got %d",
						field, lo, hi, value)));
}

/*
 * Validate the shape of a tags array: one dimension, at most AWA_MAX_TAGS
 * elements, none NULL or empty.
 */
static void
check_tags(ArrayType *tags)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	if (ARR_NDIM(tags) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tags must be a one-dimensional array")));
	deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n > AWA_MAX_TAGS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at most %d tags are allowed, got %d", AWA_MAX_TAGS, n)));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tags must not contain NULL")));
		if (VARSIZE_ANY_EXHDR(DatumGetTextPP(elems[i])) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tags must not contain an empty string")));
	}
}

/*
 * Validate a job as awa_insert receives it.  Every error names the field,
 * the allowed values and what was given.
 */
void
awa_validate_job(AwaJob *job)
{
	awa_check_name(job->kind, "kind");
	awa_check_name(job->queue, "queue");
	check_range(job->priority, AWA_MIN_PRIORITY, AWA_MAX_PRIORITY, "priority");
	check_range(job->max_attempts, 1, AWA_MAX_ATTEMPTS, "max_attempts");
	if (JB_ROOT_IS_SCALAR(job->args))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("args must be a JSON object or array, not a scalar")));
	if (!JB_ROOT_IS_OBJECT(job->metadata))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("metadata must be a JSON object")));
	check_tags(job->tags);
}

/*
 * Write one validated job and return the SPI tuple of its row (valid until
 * SPI_finish).  The caller is connected to SPI.  A job whose run_at is in
 * the future is scheduled; otherwise it is available and wakes its queue.
 */
HeapTuple
awa_insert_job(AwaJob *job, TupleDesc *desc)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID,
		INT2OID, INT2OID, TIMESTAMPTZOID, TEXTARRAYOID, JSONBOID};
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	bool		scheduled = job->has_run_at && job->run_at > now;
	Datum		values[9];
	int			ret;

	values[0] = PointerGetDatum(job->kind);
	values[1] = PointerGetDatum(job->queue);
	values[2] = JsonbPGetDatum(job->args);
	values[3] = CStringGetTextDatum(scheduled ? "scheduled" : "available");
	values[4] = Int16GetDatum((int16) job->priority);
	values[5] = Int16GetDatum((int16) job->max_attempts);
	values[6] = TimestampTzGetDatum(job->has_run_at ? job->run_at : now);
	values[7] = PointerGetDatum(job->tags);
	values[8] = JsonbPGetDatum(job->metadata);

	ret = SPI_execute_plan(awa_plan(&plan,
									"INSERT INTO awa.jobs (kind, queue, args, state, priority,"
									" max_attempts, run_at, tags, metadata)"
									" VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9)"
									" RETURNING *",
									9, argtypes),
						   values, NULL, false, 1);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "awa: inserting a job failed: %s", SPI_result_code_string(ret));

	if (scheduled)
		awa_job_scheduled(text_to_cstring(job->queue));
	else
		awa_job_available(text_to_cstring(job->queue));

	*desc = SPI_tuptable->tupdesc;
	return SPI_tuptable->vals[0];
}

/*
 * awa_insert(kind, args, queue, priority, max_attempts, run_at, tags,
 *			  metadata) RETURNS awa.jobs
 *
 * Enqueue one job in the caller's transaction and return its row.
 */
Datum
awa_insert(PG_FUNCTION_ARGS)
{
	MemoryContext callercxt = CurrentMemoryContext;
	TupleDesc	jobdesc;
	TupleDesc	spidesc;
	AwaJob		job;
	HeapTuple	tuple;
	Datum		result;

	awa_check_not_null(fcinfo, 0, "kind");
	awa_check_not_null(fcinfo, 1, "args");
	awa_check_not_null(fcinfo, 2, "queue");
	awa_check_not_null(fcinfo, 3, "priority");
	awa_check_not_null(fcinfo, 4, "max_attempts");
	awa_check_not_null(fcinfo, 6, "tags");
	awa_check_not_null(fcinfo, 7, "metadata");

	job.kind = PG_GETARG_TEXT_PP(0);
	job.args = PG_GETARG_JSONB_P(1);
	job.queue = PG_GETARG_TEXT_PP(2);
	job.priority = PG_GETARG_INT32(3);
	job.max_attempts = PG_GETARG_INT32(4);
	job.has_run_at = !PG_ARGISNULL(5);
	job.run_at = job.has_run_at ? PG_GETARG_TIMESTAMPTZ(5) : 0;
	job.tags = PG_GETARG_ARRAYTYPE_P(6);
	job.metadata = PG_GETARG_JSONB_P(7);
	awa_validate_job(&job);

	if (get_call_result_type(fcinfo, NULL, &jobdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa_insert: return type must be a row type");

	SPI_connect();
	tuple = awa_insert_job(&job, &spidesc);
	result = awa_job_datum(tuple, spidesc, jobdesc, callercxt);
	SPI_finish();

	PG_RETURN_DATUM(result);
}
