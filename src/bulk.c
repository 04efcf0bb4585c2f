/*-------------------------------------------------------------------------
 *
 * bulk.c
 *		Enqueueing many jobs at once: awa_insert_many (a JSON array, one
 *		statement) and the COPY path (a row trigger on awa.jobs).
 *
 * Both give every job the validation and defaults of awa_insert: the same
 * checks (awa_validate_job) with the same messages, state scheduled when
 * run_at is in the future and available otherwise, and the wake-ups of
 * awa_job_enqueued (job.c): NOTIFY and blocked claimers at commit for
 * available jobs, a shorter sleep of blocked claimers for scheduled ones.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "nodes/params.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_insert_many);
PG_FUNCTION_INFO_V1(awa_jobs_before_insert);

/*
 * True while awa's own INSERT of prepared rows runs (awa_insert,
 * awa_insert_many): its rows are validated, given their state and woken
 * already, so the row trigger lets them pass.  See awa_execute_prepared.
 */
bool		awa_rows_prepared = false;

/* Columns of awa.jobs that an enqueue sets, found by name in a row type. */
typedef struct JobColumns
{
	Oid			rowtype;		/* row type they were found in */
	int			kind;			/* 0-based attribute numbers */
	int			queue;
	int			args;
	int			state;
	int			priority;
	int			max_attempts;
	int			run_at;
	int			tags;
	int			metadata;
	int			timeout;		/* -1 before 0.3.0 */
	Datum		states[AWA_NUM_JOB_STATES]; /* the enum value of each state */
} JobColumns;

/* The 0-based number of a column of the job row type. */
static int
job_column(TupleDesc desc, const char *name)
{
	int			n = SPI_fnumber(desc, name);

	if (n <= 0)
		elog(ERROR, "awa: awa.jobs has no column \"%s\"", name);
	return n - 1;
}

/* Fill cols for the job row type desc, unless already done for it. */
static void
job_columns(TupleDesc desc, Oid rowtype, JobColumns *cols)
{
	Oid			statetype;
	int			k;

	if (cols->rowtype == rowtype && OidIsValid(rowtype))
		return;
	cols->kind = job_column(desc, "kind");
	cols->queue = job_column(desc, "queue");
	cols->args = job_column(desc, "args");
	cols->state = job_column(desc, "state");
	cols->priority = job_column(desc, "priority");
	cols->max_attempts = job_column(desc, "max_attempts");
	cols->run_at = job_column(desc, "run_at");
	cols->tags = job_column(desc, "tags");
	cols->metadata = job_column(desc, "metadata");
	cols->timeout = SPI_fnumber(desc, "timeout") > 0 ? SPI_fnumber(desc, "timeout") - 1 : -1;
	statetype = TupleDescAttr(desc, cols->state)->atttypid;
	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		cols->states[k] = DirectFunctionCall2(enum_in,
											  CStringGetDatum(awa_state_label((AwaJobState) k)),
											  ObjectIdGetDatum(statetype));
	cols->rowtype = rowtype;
}

/* ---------------------------------------------------------------------
 * awa_insert_many
 * ---------------------------------------------------------------------
 */

/* The state whose enum value (of cols' row type) is v. */
static AwaJobState
state_of(const JobColumns *cols, Datum v)
{
	int			k;

	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		if (cols->states[k] == v)
			return (AwaJobState) k;
	elog(ERROR, "awa: unknown job state %u", DatumGetObjectId(v));
	return AWA_STATE_AVAILABLE;	/* keep compiler quiet */
}

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
 * misspelt field is not silently ignored.  For a unique job, *key is its
 * unique key and *legacy the key an earlier awa built for the same parts
 * (NULL when it is the same; see awa_unique_key); both NULL otherwise.
 */
static void
parse_job(JsonbValue *elem, AwaJob *job, bytea **key, bytea **legacy, char *bits)
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
		else if (KEY_IS("unique_states"))
		{
			json_unique_states(&v, bits);
			has_states = true;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown field \"%s\"", pnstrdup(key, len)),
					 errhint("A job has the fields kind, args, queue, priority, max_attempts, run_at, tags, metadata, timeout, unique_by_args, unique_by_queue, unique_period and unique_states.")));
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

	/* a unique job: its key, as awa_insert builds it */
	*key = NULL;
	*legacy = NULL;
	if (by_args || by_queue || period_us > 0 || has_states)
	{
		TimestampTz at = job->has_run_at ? job->run_at : GetCurrentTransactionStartTimestamp();

		*key = awa_unique_key(job->kind, by_queue ? job->queue : NULL,
							  by_args ? job->args : NULL, period_us, at, legacy);
		if (!has_states)
			strcpy(bits, AWA_DEFAULT_UNIQUE_STATES);
	}
}

/*
 * Receiver of the rows RETURNING gives awa_insert_many: each goes into the
 * function's result set, in the order of insertion (the input order, as
 * INSERT ... SELECT FROM unnest inserts in array order).  Dropped columns of
 * the job row type, absent from RETURNING *, are NULL in the result.
 */
typedef struct JobsReceiver
{
	DestReceiver pub;
	Tuplestorestate *tstore;
	TupleDesc	jobdesc;
	Datum	   *values;
	bool	   *nulls;
} JobsReceiver;

static bool
jobs_receive(TupleTableSlot *slot, DestReceiver *self)
{
	JobsReceiver *r = (JobsReceiver *) self;
	int			src = 0;
	int			i;

	slot_getallattrs(slot);
	for (i = 0; i < r->jobdesc->natts; i++)
	{
		if (TupleDescAttr(r->jobdesc, i)->attisdropped || src >= slot->tts_nvalid)
		{
			r->values[i] = (Datum) 0;
			r->nulls[i] = true;
			continue;
		}
		r->values[i] = slot->tts_values[src];
		r->nulls[i] = slot->tts_isnull[src];
		src++;
	}
	tuplestore_putvalues(r->tstore, r->jobdesc, r->values, r->nulls);
	return true;
}

static void
jobs_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
jobs_shutdown(DestReceiver *self)
{
}

/*
 * awa_insert_many(jobs jsonb) RETURNS SETOF awa.jobs
 *
 * Enqueue every job of a JSON array of objects with awa_insert's fields, in
 * one INSERT, and return their rows in input order.  All elements are read
 * and validated before anything is written; an error names the element
 * ("jobs[3]: priority must be between 1 and 4, got 7") and keeps its
 * SQLSTATE (22004 for a missing kind or a null field, 22023 for a wrong
 * type or value, 22007/22008 for a bad run_at).
 */
Datum
awa_insert_many(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static Oid	plan_argtype = InvalidOid;
	static JobColumns cols;
	Jsonb	   *jobs;
	TupleDesc	jobdesc;
	Oid			arraytype;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum	   *rows;
	Datum	   *values;
	bool	   *nulls;
	AwaJobState *states;
	AwaJob	   *parsed;
	bytea	  **keys;
	bytea	  **legacies;
	char	  (*bits)[9];
	bool		any_unique = false;
	ReturnSetInfo *rsinfo;
	TupleTableSlot *slot;
	volatile int i = 0;
	int			n;
	ParamListInfo params;
	SPIExecuteOptions options;
	JobsReceiver receiver;
	int			ret;
	MemoryContext cxt = CurrentMemoryContext;

	awa_check_writable("awa_insert_many");

	awa_check_not_null(fcinfo, 0, "jobs");
	jobs = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(jobs) || JB_ROOT_IS_SCALAR(jobs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobs must be a JSON array of job objects")));
	n = JB_ROOT_COUNT(jobs);
	if (n > AWA_MAX_INSERT_MANY)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most %d jobs per call, got %d", AWA_MAX_INSERT_MANY, n),
				 errhint("Split the array, or use COPY awa.jobs for the largest loads.")));

	if (get_call_result_type(fcinfo, NULL, &jobdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa_insert_many: return type must be a row type");
	jobdesc = BlessTupleDesc(jobdesc);
	job_columns(jobdesc, jobdesc->tdtypeid, &cols);
	arraytype = get_array_type(jobdesc->tdtypeid);
	if (!OidIsValid(arraytype))
		elog(ERROR, "awa_insert_many: no array type for awa.jobs");
	get_typlenbyvalalign(jobdesc->tdtypeid, &typlen, &typbyval, &typalign);

	if (n == 0)
	{
		InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
		return (Datum) 0;
	}

	/* read and validate every element; an error names the element */
	parsed = palloc(sizeof(AwaJob) * n);
	keys = palloc(sizeof(bytea *) * n);
	legacies = palloc(sizeof(bytea *) * n);
	bits = palloc(sizeof(*bits) * n);
	PG_TRY();
	{
		for (i = 0; i < n; i++)
		{
			parse_job(getIthJsonbValueFromContainer(&jobs->root, i), &parsed[i],
					  &keys[i], &legacies[i], bits[i]);
			any_unique |= (keys[i] != NULL);
		}
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

	/*
	 * Every job is valid: write them straight into the heap and indexes
	 * (fastinsert.c), each row going into the result set as it is written.
	 * When that path cannot be used (other triggers on awa.jobs, ...), one
	 * INSERT ... SELECT FROM unnest() of prepared rows does it.
	 */
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	/*
	 * Unique jobs among them: one row at a time, in input order, each
	 * unique one as awa_insert writes it (a job whose key is held, also by
	 * an earlier element, gives the holder's row).
	 */
	if (any_unique)
	{
		SPI_connect();
		for (i = 0; i < n; i++)
		{
			TupleDesc	spidesc;
			HeapTuple	tuple;

			if (keys[i] != NULL)
				tuple = awa_insert_unique_job(&parsed[i], keys[i], legacies[i], bits[i],
											  &spidesc);
			else
				tuple = awa_insert_job(&parsed[i], &spidesc);
			awa_put_job(fcinfo, tuple, spidesc);
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_finish();
		return (Datum) 0;
	}

	slot = awa_fast_insert_slot(&parsed[0]);
	if (slot != NULL)
	{
		tuplestore_puttupleslot(rsinfo->setResult, slot);
		for (i = 1; i < n; i++)
		{
			slot = awa_fast_insert_slot(&parsed[i]);
			if (slot == NULL)
				elog(ERROR, "awa_insert_many: the direct insert path became unusable");
			tuplestore_puttupleslot(rsinfo->setResult, slot);
		}
		return (Datum) 0;
	}

	rows = palloc(sizeof(Datum) * n);
	states = palloc(sizeof(AwaJobState) * n);
	values = palloc(sizeof(Datum) * jobdesc->natts);
	nulls = palloc(sizeof(bool) * jobdesc->natts);
	{
		for (i = 0; i < n; i++)
		{
			AwaJob		job = parsed[i];

			states[i] = awa_job_initial_state(&job);
			memset(nulls, true, sizeof(bool) * jobdesc->natts);
			values[cols.kind] = PointerGetDatum(job.kind);
			values[cols.queue] = PointerGetDatum(job.queue);
			values[cols.args] = JsonbPGetDatum(job.args);
			values[cols.state] = cols.states[states[i]];
			values[cols.priority] = Int16GetDatum((int16) job.priority);
			values[cols.max_attempts] = Int16GetDatum((int16) job.max_attempts);
			values[cols.run_at] = TimestampTzGetDatum(job.has_run_at ? job.run_at : now);
			values[cols.tags] = PointerGetDatum(job.tags);
			values[cols.metadata] = JsonbPGetDatum(job.metadata);
			nulls[cols.kind] = nulls[cols.queue] = nulls[cols.args] = false;
			nulls[cols.state] = nulls[cols.priority] = nulls[cols.max_attempts] = false;
			nulls[cols.run_at] = nulls[cols.tags] = nulls[cols.metadata] = false;
			rows[i] = HeapTupleGetDatum(heap_form_tuple(jobdesc, values, nulls));
		}
	}

	params = makeParamList(1);
	params->params[0].value = PointerGetDatum(construct_array(rows, n, jobdesc->tdtypeid,
															  typlen, typbyval, typalign));
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = arraytype;

	/* the inserted rows go straight from RETURNING into the result set */
	receiver.pub.receiveSlot = jobs_receive;
	receiver.pub.rStartup = jobs_startup;
	receiver.pub.rShutdown = jobs_shutdown;
	receiver.pub.rDestroy = jobs_shutdown;
	receiver.pub.mydest = DestNone;
	receiver.tstore = ((ReturnSetInfo *) fcinfo->resultinfo)->setResult;
	receiver.jobdesc = ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc;
	receiver.values = values;
	receiver.nulls = nulls;
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.dest = (DestReceiver *) &receiver;

	SPI_connect();

	/*
	 * The parameter is an array of the job row type, whose OID changes when
	 * the extension is dropped and created again: prepare anew then.
	 */
	if (plan != NULL && plan_argtype != arraytype)
	{
		SPI_freeplan(plan);
		plan = NULL;
	}
	plan_argtype = arraytype;
	awa_plan(&plan,
			 "INSERT INTO awa.jobs (kind, queue, args, state, priority,"
			 " max_attempts, run_at, tags, metadata)"
			 " SELECT kind, queue, args, state, priority, max_attempts,"
			 " run_at, tags, metadata FROM pg_catalog.unnest($1)"
			 " RETURNING *",
			 1, &arraytype);
	awa_rows_prepared = true;
	PG_TRY();
	{
		ret = SPI_execute_plan_extended(plan, &options);
	}
	PG_FINALLY();
	{
		awa_rows_prepared = false;
	}
	PG_END_TRY();
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != (uint64) n)
		elog(ERROR, "awa_insert_many: insert failed: %s", SPI_result_code_string(ret));

	for (i = 0; i < n; i++)
		awa_job_enqueued(text_to_cstring(parsed[i].queue), states[i],
						 parsed[i].has_run_at ? parsed[i].run_at : now);

	SPI_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * The COPY path
 * ---------------------------------------------------------------------
 */

/* A NULL in a column COPY must not leave NULL (22004). */
static void
copy_not_null(bool isnull, const char *field)
{
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", field)));
}

/*
 * awa_jobs_before_insert() — BEFORE INSERT FOR EACH ROW trigger on awa.jobs
 *
 * Makes a plain INSERT or COPY into awa.jobs behave like awa_insert:
 * the checks of awa_validate_job (same messages and SQLSTATEs), run_at NULL
 * meaning now, an available job whose run_at is in the future stored as
 * scheduled, and the wake-up of awa_job_enqueued (a due job wakes its queue,
 * a scheduled one shortens blocked claimers' sleep to its run_at).  Rows written
 * by awa_insert pass through unchanged (they are already valid), so the
 * trigger only costs them the checks; awa_insert_many's rows skip them.
 * Jobs written in another state (tests, tools) are validated but keep
 * their state.  Works on one deformed copy of the row: COPY calls it for
 * every row, so it is the COPY path's whole overhead.
 */
Datum
awa_jobs_before_insert(PG_FUNCTION_ARGS)
{
	static JobColumns cols;
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	Datum	   *values;
	bool	   *nulls;
	Datum		state;
	bool		isnull;
	AwaJob		job = {0};
	int			replcols[2];
	Datum		replvals[2];
	bool		replnulls[2] = {false, false};
	int			nrepl = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "awa_jobs_before_insert: must be a BEFORE INSERT FOR EACH ROW trigger");

	tuple = trigdata->tg_trigtuple;
	if (awa_rows_prepared)
		return PointerGetDatum(tuple);
	desc = RelationGetDescr(trigdata->tg_relation);
	job_columns(desc, desc->tdtypeid, &cols);
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(tuple, desc, values, nulls);

	copy_not_null(nulls[cols.kind], "kind");
	copy_not_null(nulls[cols.args], "args");
	copy_not_null(nulls[cols.queue], "queue");
	copy_not_null(nulls[cols.priority], "priority");
	copy_not_null(nulls[cols.max_attempts], "max_attempts");
	copy_not_null(nulls[cols.tags], "tags");
	copy_not_null(nulls[cols.metadata], "metadata");
	job.kind = DatumGetTextPP(values[cols.kind]);
	job.queue = DatumGetTextPP(values[cols.queue]);
	job.args = DatumGetJsonbP(values[cols.args]);
	job.priority = DatumGetInt16(values[cols.priority]);
	job.max_attempts = DatumGetInt16(values[cols.max_attempts]);
	job.tags = DatumGetArrayTypeP(values[cols.tags]);
	job.metadata = DatumGetJsonbP(values[cols.metadata]);
	job.has_run_at = !nulls[cols.run_at];
	job.run_at = job.has_run_at ? DatumGetTimestampTz(values[cols.run_at]) : 0;
	if (cols.timeout >= 0 && !nulls[cols.timeout])
		job.timeout = DatumGetIntervalP(values[cols.timeout]);
	isnull = nulls[cols.state];
	state = values[cols.state];
	awa_validate_job(&job);

	if (!job.has_run_at)
	{
		replcols[nrepl] = cols.run_at + 1;
		replvals[nrepl++] = TimestampTzGetDatum(now);
	}
	if (!isnull && state == cols.states[AWA_STATE_AVAILABLE] &&
		awa_job_initial_state(&job) == AWA_STATE_SCHEDULED)
	{
		replcols[nrepl] = cols.state + 1;
		replvals[nrepl++] = cols.states[AWA_STATE_SCHEDULED];
		state = cols.states[AWA_STATE_SCHEDULED];
	}
	if (!isnull)
		awa_job_enqueued(text_to_cstring(job.queue), state_of(&cols, state),
						 job.has_run_at ? job.run_at : now);

	if (nrepl > 0)
		tuple = heap_modify_tuple_by_cols(tuple, desc, nrepl, replcols,
										  replvals, replnulls);
	return PointerGetDatum(tuple);
}

PG_FUNCTION_INFO_V1(awa_job_import_insert);

/*
 * awa_job_import_insert() — INSTEAD OF INSERT FOR EACH ROW trigger for a
 * view of the enqueue columns (kind, args, queue, priority, max_attempts,
 * run_at, tags, metadata), writing each row with awa_insert_job.
 *
 * Not part of the SQL API: the other COPY design, kept so that
 * bench/bulk_measure.sh can measure it against the table trigger.
 */
Datum
awa_job_import_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	TupleDesc	spidesc;
	AwaJob		job = {0};
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_INSTEAD(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "awa_job_import_insert: must be an INSTEAD OF INSERT trigger");
	desc = RelationGetDescr(trigdata->tg_relation);
	tuple = trigdata->tg_trigtuple;

	job.kind = DatumGetTextPP(heap_getattr(tuple, 1, desc, &isnull));
	copy_not_null(isnull, "kind");
	job.args = DatumGetJsonbP(heap_getattr(tuple, 2, desc, &isnull));
	copy_not_null(isnull, "args");
	job.queue = DatumGetTextPP(heap_getattr(tuple, 3, desc, &isnull));
	copy_not_null(isnull, "queue");
	job.priority = DatumGetInt32(heap_getattr(tuple, 4, desc, &isnull));
	copy_not_null(isnull, "priority");
	job.max_attempts = DatumGetInt32(heap_getattr(tuple, 5, desc, &isnull));
	copy_not_null(isnull, "max_attempts");
	job.run_at = DatumGetTimestampTz(heap_getattr(tuple, 6, desc, &isnull));
	job.has_run_at = !isnull;
	job.tags = DatumGetArrayTypeP(heap_getattr(tuple, 7, desc, &isnull));
	copy_not_null(isnull, "tags");
	job.metadata = DatumGetJsonbP(heap_getattr(tuple, 8, desc, &isnull));
	copy_not_null(isnull, "metadata");
	awa_validate_job(&job);

	SPI_connect();
	(void) awa_insert_job(&job, &spidesc);
	SPI_finish();
	return PointerGetDatum(tuple);
}
