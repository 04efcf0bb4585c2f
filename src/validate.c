/*-------------------------------------------------------------------------
 *
 * validate.c
 *		Checks of the values a caller gives awa: names, a job's fields,
 *		intervals; and the setting awa.max_args_bytes they use.
 *
 * Every check raises an error that names the argument or field, with the
 * SQLSTATE of its kind (22023 invalid_parameter_value, 22004
 * null_value_not_allowed, 54000 program_limit_exceeded), before anything
 * is written.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "awa.h"

int			awa_max_args_bytes = 1024 * 1024;

/* Define the settings of validation (from _PG_init). */
void
awa_validate_init(void)
{
	DefineCustomIntVariable("awa.max_args_bytes",
							"Largest args, metadata and result of a job, and largest callback payload.",
							"Measured as stored jsonb; larger ones are refused with SQLSTATE 54000.",
							&awa_max_args_bytes,
							1024 * 1024,
							1024, (int) (MaxAllocSize / 2),
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

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

/* Refuse args or metadata larger than awa.max_args_bytes. */
static void
check_size(Jsonb *value, const char *field)
{
	Size		size = VARSIZE(value);

	if (size > (Size) awa_max_args_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is %zu bytes, more than awa.max_args_bytes (%d)",
						field, size, awa_max_args_bytes),
				 errhint("Store large payloads elsewhere and pass a reference.")));
}

/*
 * Refuse a job's result or a callback's payload (field names it) larger
 * than awa.max_args_bytes (54000), as args.
 */
void
awa_check_jsonb_size(Jsonb *value, const char *field)
{
	check_size(value, field);
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
	check_size(job->args, "args");
	check_size(job->metadata, "metadata");
	check_tags(job->tags);
	if (job->timeout != NULL)
	{
		(void) awa_check_delay(job->timeout, "timeout", true);
		awa_require_schema(AWA_SCHEMA_LEASES, "a job's timeout");
	}
	if (job->group_id != NULL)
	{
		awa_check_name(job->group_id, "group_id");
		awa_require_schema(AWA_SCHEMA_GROUPS, "a job's group_id");
	}
	if (job->concurrency_key != NULL)
	{
		awa_check_name(job->concurrency_key, "concurrency_key");
		awa_require_schema(AWA_SCHEMA_KEYS, "a job's concurrency_key");
	}
	if (job->has_run_at && TIMESTAMP_NOT_FINITE(job->run_at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run_at must be a finite timestamp, got %s",
						TIMESTAMP_IS_NOBEGIN(job->run_at) ? "-infinity" : "infinity"),
				 errhint("Leave run_at NULL to run the job now.")));
}

/*
 * Microseconds of an interval, months counted as 30 days (as EXTRACT does),
 * clamped to the int64 range so that absurd intervals cannot wrap around.
 */
int64
awa_interval_usecs(Interval *iv)
{
	double		us = (double) iv->time + (double) iv->day * USECS_PER_DAY +
		(double) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;

	if (us >= (double) PG_INT64_MAX)
		return PG_INT64_MAX;
	if (us <= (double) PG_INT64_MIN)
		return PG_INT64_MIN;
	return (int64) us;
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
