/*-------------------------------------------------------------------------
 *
 * insert.c
 *		awa_insert and awa_insert_many: validate jobs and hand them to the
 *		enqueue path (enqueue.c); unique keys; awa_cancel_by_unique_key.
 *
 * All validation happens before anything is written, so bad input raises
 * an error that names the field and changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_insert);
PG_FUNCTION_INFO_V1(awa_insert_many);
PG_FUNCTION_INFO_V1(awa_cancel_by_unique_key);

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
	if (job->has_run_at && TIMESTAMP_NOT_FINITE(job->run_at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run_at must be a finite timestamp, got %s",
						TIMESTAMP_IS_NOBEGIN(job->run_at) ? "-infinity" : "infinity"),
				 errhint("Leave run_at NULL to run the job now.")));
}

/*
 * args with every number written in its shortest equal form: jsonb keeps a
 * number's scale (1, 1.0 and 1.00 print differently) although it compares
 * them as equal, so a key built from the printed form would tell equal
 * arguments apart.  trim_scale drops trailing fractional zeros; the
 * exponent and sign forms are already normalized by numeric input.
 * Returns args itself when no number changes.
 */
static Jsonb *
canonical_numbers(Jsonb *args)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it = JsonbIteratorInit(&args->root);
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue *res = NULL;
	bool		changed = false;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvNumeric)
		{
			Numeric		trimmed = DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale,
																	  NumericGetDatum(v.val.numeric)));

			if (VARSIZE(trimmed) != VARSIZE(v.val.numeric) ||
				memcmp(trimmed, v.val.numeric, VARSIZE(trimmed)) != 0)
			{
				v.val.numeric = trimmed;
				changed = true;
			}
		}
		res = pushJsonbValue(&state, tok,
							 tok == WJB_KEY || tok == WJB_VALUE || tok == WJB_ELEM ? &v : NULL);
	}
	return changed ? JsonbValueToJsonb(res) : args;
}

/* SHA-256 of the key's parts (args already in the form to hash, or NULL). */
static bytea *
hash_key_parts(text *kind, text *queue, Jsonb *args, int64 period_us,
			   TimestampTz run_at)
{
	StringInfoData buf;
	pg_cryptohash_ctx *ctx;
	bytea	   *key = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(kind), VARSIZE_ANY_EXHDR(kind));
	appendStringInfoChar(&buf, '\0');
	if (queue)
		appendBinaryStringInfo(&buf, VARDATA_ANY(queue), VARSIZE_ANY_EXHDR(queue));
	appendStringInfoChar(&buf, '\0');
	if (args)
		(void) JsonbToCString(&buf, &args->root, VARSIZE(args));
	appendStringInfoChar(&buf, '\0');
	if (period_us > 0)
	{
		int64		bucket = run_at / period_us - (run_at < 0 && run_at % period_us != 0);

		appendStringInfo(&buf, INT64_FORMAT, bucket);
	}

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(key), PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "awa: could not compute a unique key: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	SET_VARSIZE(key, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	pfree(buf.data);
	return key;
}

/*
 * The unique key of a job: SHA-256 over the kind and the parts asked for
 * (the queue; args as canonical jsonb text, so key order, whitespace and a
 * number's scale do not matter; the run_at bucket of the period).
 *
 * Before 0.3.0 numbers were hashed as written.  When args has a number
 * whose written form is not its shortest, *legacy gets the key such a
 * version built, so that jobs enqueued then are still found; otherwise
 * NULL.  legacy may be NULL when the caller does not need it.
 */
bytea *
awa_unique_key(text *kind, text *queue, Jsonb *args, int64 period_us,
			   TimestampTz run_at, bytea **legacy)
{
	Jsonb	   *canonical = args ? canonical_numbers(args) : NULL;

	if (legacy)
		*legacy = canonical != args ?
			hash_key_parts(kind, queue, args, period_us, run_at) : NULL;
	return hash_key_parts(kind, queue, canonical, period_us, run_at);
}

/*
 * Make job unique when any of the parts is asked for: by_args, by_queue, a
 * period (us > 0), or unique_states given (bits, "0"/"1" text, checked;
 * NULL: the default, AWA_DEFAULT_UNIQUE_STATES).  The period bucket is the
 * one of run_at, or of the transaction's start without one.  Otherwise
 * job->unique is NULL.
 */
void
awa_job_set_unique(AwaJob *job, bool by_args, bool by_queue, int64 period_us,
				   const char *bits)
{
	AwaUnique  *u;

	job->unique = NULL;
	if (!by_args && !by_queue && period_us <= 0 && bits == NULL)
		return;
	u = palloc(sizeof(AwaUnique));
	u->key = awa_unique_key(job->kind, by_queue ? job->queue : NULL,
							by_args ? job->args : NULL, period_us,
							job->has_run_at ? job->run_at : GetCurrentTransactionStartTimestamp(),
							&u->legacy);
	strlcpy(u->bits, bits ? bits : AWA_DEFAULT_UNIQUE_STATES, sizeof(u->bits));
	job->unique = u;
}

/* Reject a unique_period (in microseconds) that is not positive. */
void
awa_check_unique_period(int64 us)
{
	if (us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_period must be a positive interval")));
}

/* A positive unique_period in microseconds (argument argno), or 0 if NULL. */
static int64
unique_period_arg(FunctionCallInfo fcinfo, int argno)
{
	int64		us;

	if (PG_ARGISNULL(argno))
		return 0;
	us = awa_interval_usecs(PG_GETARG_INTERVAL_P(argno));
	awa_check_unique_period(us);
	return us;
}

/*
 * Reject a unique_states bitmask that leaves out a live state (one awa moves
 * jobs between by itself: scheduled, available, running, retryable,
 * waiting_external).  Only completed, failed and cancelled are optional:
 * with every live state held, no transition of awa's can make two jobs hold
 * one key, so claims, completions, promotions and rescues never collide.
 */
void
awa_check_unique_states(const char *bits)
{
	StringInfoData missing;
	int			k;

	initStringInfo(&missing);
	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		if (awa_state_in((AwaJobState) k, AWA_SET_LIVE) && bits[k] != '1')
			appendStringInfo(&missing, "%s%s", missing.len ? ", " : "",
							 awa_state_label((AwaJobState) k));
	if (missing.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_states must include every live state; missing: %s", missing.data),
				 errdetail("awa moves jobs between scheduled, available, running, retryable and waiting_external by itself; a key held in some of them and not the others would make those moves collide."),
				 errhint("Add the missing states; only completed, failed and cancelled may be left out.")));
	pfree(missing.data);
}

/* The unique_states bitmask ("01..." text) of an awa.job_state[] argument. */
static void
unique_states_bits(ArrayType *states, char *bits)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int			k;

	if (ARR_NDIM(states) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_states must be a one-dimensional array")));
	deconstruct_array(states, ARR_ELEMTYPE(states), sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unique_states must not be empty"),
				 errhint("Leave it NULL for the default: every state but failed and cancelled.")));
	memset(bits, '0', 8);
	bits[8] = '\0';
	for (i = 0; i < n; i++)
	{
		char	   *label;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("unique_states must not contain NULL")));
		label = DatumGetCString(DirectFunctionCall1(enum_out, elems[i]));
		k = awa_state_bit(label);
		if (k >= 0)
			bits[k] = '1';
	}
	awa_check_unique_states(bits);
}

/*
 * awa_insert(kind, args, queue, priority, max_attempts, run_at, tags,
 *			  metadata, unique_by_args, unique_by_queue, unique_period,
 *			  unique_states) RETURNS awa.jobs
 *
 * Enqueue one job in the caller's transaction and return its row.
 */
Datum
awa_insert(PG_FUNCTION_ARGS)
{
	MemoryContext callercxt = CurrentMemoryContext;
	AwaJob		job = {0};
	AwaEnqueue	e;
	Datum		result;
	char		bits[9];
	int			i;

	awa_check_writable("awa_insert");

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
	/* 0.3.0's awa_insert has a 13th argument, timeout */
	job.timeout = PG_NARGS() > 12 && !PG_ARGISNULL(12) ? PG_GETARG_INTERVAL_P(12) : NULL;
	awa_validate_job(&job);

	for (i = 8; i <= 9; i++)
		awa_check_not_null(fcinfo, i, i == 8 ? "unique_by_args" : "unique_by_queue");
	if (!PG_ARGISNULL(11))
		unique_states_bits(PG_GETARG_ARRAYTYPE_P(11), bits);
	awa_job_set_unique(&job, PG_GETARG_BOOL(8), PG_GETARG_BOOL(9),
					   unique_period_arg(fcinfo, 10), PG_ARGISNULL(11) ? NULL : bits);

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
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	awa_enqueue_many(jobs, n, fcinfo);
	return (Datum) 0;
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
	text	   *kind;
	int64		period_us;
	TimestampTz at;
	bytea	   *legacy;
	Datum		values[2];
	uint64		n;

	awa_check_writable("awa_cancel_by_unique_key");

	awa_check_not_null(fcinfo, 0, "kind");
	kind = PG_GETARG_TEXT_PP(0);
	awa_check_name(kind, "kind");
	if (!PG_ARGISNULL(2))
		awa_check_name(PG_GETARG_TEXT_PP(2), "queue");
	period_us = unique_period_arg(fcinfo, 3);
	at = PG_ARGISNULL(4) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(4);
	values[0] = PointerGetDatum(awa_unique_key(kind,
										   PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2),
										   PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
										   period_us, at, &legacy));
	/* jobs enqueued before 0.3.0 may hold the key in its old form */
	values[1] = legacy ? PointerGetDatum(legacy) : values[0];

	SPI_connect();
	n = awa_job_cancel_by_key(values[0], values[1]);
	awa_store_jobs(fcinfo, SPI_tuptable, n, NULL);
	SPI_finish();
	return (Datum) 0;
}
