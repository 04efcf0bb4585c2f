/*-------------------------------------------------------------------------
 *
 * jobs_json.c
 *		Reading awa_insert_many's argument: a JSON array of job objects
 *		with awa_insert's fields, each read into an AwaJob and validated.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "awa.h"
#include "deps.h"

/* The JSON type of a value, for error messages. */
static const char *
json_type_name(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "array" : "object";
		default:
			return "scalar";
	}
}

/* Reject a value that is not of the JSON type a field needs (22023). */
static void
wrong_type(const char *field, const char *expected, JsonbValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be %s, got %s", field, expected, json_type_name(v))));
}

/* Reject an explicit JSON null for a field that needs a value (22004). */
static void
check_not_null(const char *field, JsonbValue *v)
{
	if (v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", field)));
}

static text *
json_text(const char *field, JsonbValue *v)
{
	check_not_null(field, v);
	if (v->type != jbvString)
		wrong_type(field, "a string", v);
	return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

/* A whole JSON number that fits in int4; ranges are checked later. */
static int32
json_int(const char *field, JsonbValue *v)
{
	Datum		num;
	bool		overflow = false;
	int32		result;

	check_not_null(field, v);
	if (v->type != jbvNumeric)
		wrong_type(field, "an integer", v);
	num = NumericGetDatum(v->val.numeric);
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, num,
										  DirectFunctionCall2(numeric_trunc, num,
															  Int32GetDatum(0)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an integer, got %s", field,
						DatumGetCString(DirectFunctionCall1(numeric_out, num)))));
	result = numeric_int4_opt_error(v->val.numeric, &overflow);
	if (overflow)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is out of range, got %s", field,
						DatumGetCString(DirectFunctionCall1(numeric_out, num)))));
	return result;
}

/* args or metadata: any JSON value except null (shape is checked later). */
static Jsonb *
json_doc(const char *field, JsonbValue *v)
{
	check_not_null(field, v);
	return JsonbValueToJsonb(v);
}

/* tags: a JSON array of strings (a null element is reported later). */
static ArrayType *
json_tags(JsonbValue *v)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	Datum	   *elems;
	bool	   *nulls;
	int			n = 0;
	int			dims[1];
	int			lbs[1] = {1};

	check_not_null("tags", v);
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		wrong_type("tags", "an array of strings", v);
	dims[0] = JsonContainerSize(v->val.binary.data);
	elems = palloc(sizeof(Datum) * Max(dims[0], 1));
	nulls = palloc(sizeof(bool) * Max(dims[0], 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type == jbvNull)
		{
			elems[n] = (Datum) 0;
			nulls[n++] = true;
			continue;
		}
		if (e.type != jbvString)
			wrong_type("tags", "an array of strings", &e);
		elems[n] = PointerGetDatum(cstring_to_text_with_len(e.val.string.val,
															e.val.string.len));
		nulls[n++] = false;
	}
	if (n == 0)
		return construct_empty_array(TEXTOID);
	dims[0] = n;
	return construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false,
							  TYPALIGN_INT);
}

/* run_at: a timestamptz as a JSON string, or null for now. */
static void
json_run_at(JsonbValue *v, AwaJob *job)
{
	if (v->type == jbvNull)
	{
		job->has_run_at = false;
		return;
	}
	if (v->type != jbvString)
		wrong_type("run_at", "a timestamp string", v);
	job->run_at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
														  CStringGetDatum(pnstrdup(v->val.string.val,
																				   v->val.string.len)),
														  ObjectIdGetDatum(InvalidOid),
														  Int32GetDatum(-1)));
	job->has_run_at = true;
}

/* The default of args and metadata, {}. */
static Jsonb *
empty_object(void)
{
	JsonbValue	v;

	v.type = jbvObject;
	v.val.object.nPairs = 0;
	v.val.object.pairs = NULL;
	return JsonbValueToJsonb(&v);
}

/* A JSON boolean (unique_by_args, unique_by_queue). */
static bool
json_bool(const char *field, JsonbValue *v)
{
	check_not_null(field, v);
	if (v->type != jbvBool)
		wrong_type(field, "a boolean", v);
	return v->val.boolean;
}

/*
 * A duration field: an interval as a JSON string ("1 hour") or a number of
 * seconds.  Huge numbers are clamped to the int64 range of microseconds,
 * so that the caller's range check refuses them.
 */
static Interval *
json_interval(const char *field, JsonbValue *v)
{
	Interval   *iv;

	check_not_null(field, v);
	if (v->type == jbvString)
		return DatumGetIntervalP(DirectFunctionCall3(interval_in,
													 CStringGetDatum(pnstrdup(v->val.string.val,
																			  v->val.string.len)),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
	if (v->type != jbvNumeric)
		wrong_type(field, "an interval string or a number of seconds", v);
	iv = palloc0(sizeof(Interval));
	{
		double		secs = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
															  NumericGetDatum(v->val.numeric)));

		if (secs >= (double) PG_INT64_MAX / USECS_PER_SEC)
			iv->time = PG_INT64_MAX;
		else if (secs <= (double) PG_INT64_MIN / USECS_PER_SEC)
			iv->time = PG_INT64_MIN;
		else
			iv->time = (int64) (secs * USECS_PER_SEC);
	}
	return iv;
}

/* unique_period: a positive duration (json_interval); microseconds. */
static int64
json_period(JsonbValue *v)
{
	int64		us = awa_interval_usecs(json_interval("unique_period", v));

	awa_check_unique_period(us);
	return us;
}

/* unique_states: a non-empty JSON array of state names, as a bitmask. */
static void
json_unique_states(JsonbValue *v, char *bits)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	check_not_null("unique_states", v);
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		wrong_type("unique_states", "an array of job states", v);
	memset(bits, '0', 8);
	bits[8] = '\0';
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		char	   *label;
		int			k;

		if (tok != WJB_ELEM)
			continue;
		check_not_null("an element of unique_states", &e);
		if (e.type != jbvString)
			wrong_type("unique_states", "an array of job states", &e);
		label = pnstrdup(e.val.string.val, e.val.string.len);
		k = awa_state_bit(label);
		if (k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unique_states: \"%s\" is not a job state", label),
					 errhint("The states are scheduled, available, running, completed, retryable, failed, cancelled and waiting_external.")));
		bits[k] = '1';
		n++;
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_states must not be empty"),
				 errhint("Leave it out for the default: every state but failed and cancelled.")));
	awa_check_unique_states(bits);
}

/*
 * Read one element of the jobs array into job, with awa_insert's defaults
 * for absent fields, and validate it.  Unknown fields are errors, so a
 * misspelt field is not silently ignored.  A unique job gets its key
 * (awa_job_set_unique).
 */
static void
parse_job(JsonbValue *elem, AwaJob *job)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		has_kind = false;
	bool		by_args = false;
	bool		by_queue = false;
	bool		has_states = false;
	int64		period_us = 0;
	char		bits[9];

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		wrong_type("a job", "a JSON object", elem);

	job->queue = NULL;
	job->args = NULL;
	job->priority = 2;
	job->max_attempts = 25;
	job->has_run_at = false;
	job->run_at = 0;
	job->tags = NULL;
	job->metadata = NULL;
	job->timeout = NULL;
	job->group_id = NULL;
	job->deps = NULL;
	job->concurrency_key = NULL;

	it = JsonbIteratorInit(elem->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		const char *key;
		int			len;

		if (tok != WJB_KEY)
			continue;
		if (JsonbIteratorNext(&it, &v, true) != WJB_VALUE)
			elog(ERROR, "awa: malformed jsonb object");
		key = k.val.string.val;
		len = k.val.string.len;
#define KEY_IS(name) (len == sizeof(name) - 1 && memcmp(key, name, len) == 0)
		if (KEY_IS("kind"))
		{
			job->kind = json_text("kind", &v);
			has_kind = true;
		}
		else if (KEY_IS("args"))
			job->args = json_doc("args", &v);
		else if (KEY_IS("queue"))
			job->queue = json_text("queue", &v);
		else if (KEY_IS("priority"))
			job->priority = json_int("priority", &v);
		else if (KEY_IS("max_attempts"))
			job->max_attempts = json_int("max_attempts", &v);
		else if (KEY_IS("run_at"))
			json_run_at(&v, job);
		else if (KEY_IS("tags"))
			job->tags = json_tags(&v);
		else if (KEY_IS("metadata"))
			job->metadata = json_doc("metadata", &v);
		else if (KEY_IS("unique_by_args"))
			by_args = json_bool("unique_by_args", &v);
		else if (KEY_IS("unique_by_queue"))
			by_queue = json_bool("unique_by_queue", &v);
		else if (KEY_IS("unique_period"))
			period_us = json_period(&v);
		else if (KEY_IS("timeout"))
			job->timeout = json_interval("timeout", &v);
		else if (KEY_IS("group_id"))
			job->group_id = v.type == jbvNull ? NULL : json_text("group_id", &v);
		else if (KEY_IS("after"))
			job->deps = awa_deps_from_json(&v, job->deps);
		else if (KEY_IS("on_parent_failure"))
			job->deps = awa_deps_policy_from_json(&v, job->deps);
		else if (KEY_IS("concurrency_key"))
			job->concurrency_key = v.type == jbvNull ? NULL : json_text("concurrency_key", &v);
		else if (KEY_IS("unique_states"))
		{
			json_unique_states(&v, bits);
			has_states = true;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown field \"%s\"", pnstrdup(key, len)),
					 errhint("A job has the fields kind, args, queue, priority, max_attempts, run_at, tags, metadata, timeout, group_id, concurrency_key, unique_by_args, unique_by_queue, unique_period, unique_states, after and on_parent_failure.")));
#undef KEY_IS
	}
	if (!has_kind)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kind is required")));
	if (job->queue == NULL)
		job->queue = cstring_to_text("default");
	if (job->args == NULL)
		job->args = empty_object();
	if (job->metadata == NULL)
		job->metadata = empty_object();
	if (job->tags == NULL)
		job->tags = construct_empty_array(TEXTOID);
	awa_validate_job(job);
	/* on_parent_failure alone, or an empty after: runs after no job */
	if (job->deps != NULL && job->deps->n == 0)
		job->deps = NULL;

	/* a unique job: its key, as awa_insert builds it */
	awa_job_set_unique(job, by_args, by_queue, period_us, has_states ? bits : NULL);
}

/*
 * The jobs of a JSON array of job objects, all read and validated (*n of
 * them) before anything is written.  An error names the element
 * ("jobs[3]: ...") and keeps its SQLSTATE.  22023 when jobs is not an
 * array, 54000 when it has more than AWA_MAX_INSERT_MANY elements.
 */
AwaJob *
awa_jobs_from_json(Jsonb *jobs, int *n)
{
	MemoryContext cxt = CurrentMemoryContext;
	AwaJob	   *parsed;
	volatile int i = 0;

	if (!JB_ROOT_IS_ARRAY(jobs) || JB_ROOT_IS_SCALAR(jobs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobs must be a JSON array of job objects")));
	*n = JB_ROOT_COUNT(jobs);
	if (*n > AWA_MAX_INSERT_MANY)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most %d jobs per call, got %d", AWA_MAX_INSERT_MANY, *n),
				 errhint("Split the array, or use COPY awa.jobs for the largest loads.")));

	parsed = palloc0(sizeof(AwaJob) * Max(*n, 1));
	PG_TRY();
	{
		for (i = 0; i < *n; i++)
			parse_job(getIthJsonbValueFromContainer(&jobs->root, i), &parsed[i]);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->message = psprintf("jobs[%d]: %s", i, edata->message);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return parsed;
}
