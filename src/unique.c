/*-------------------------------------------------------------------------
 *
 * unique.c
 *		Unique jobs: the key a job holds (built from its kind and the parts
 *		asked for), the states it holds it in, and the key that the
 *		arguments of awa_cancel_by_unique_key (lifecycle.c) name.
 *
 * A job with a unique_key holds it while its state is one of its
 * unique_states (a bit per state, see job_state.def); the partial unique
 * index jobs_unique_idx enforces it.  The insert itself is enqueue.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "awa.h"

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
int64
awa_unique_period_arg(FunctionCallInfo fcinfo, int argno)
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
void
awa_unique_states_bits(ArrayType *states, char *bits)
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
 * The unique key that the arguments (kind text, args jsonb, queue text,
 * unique_period interval, run_at timestamptz) of awa_cancel_by_unique_key
 * (and the storage engine's awa.ring_cancel_by_unique_key) name, as
 * awa_insert builds it: kind (argument 0, not NULL: the caller checks) and
 * queue (argument 2, NULL: none) pass check_name, 22023 naming the field;
 * the period is taken at run_at (NULL: the transaction's start).  *legacy
 * as awa_unique_key's (NULL: not wanted).
 */
bytea *
awa_unique_key_args(FunctionCallInfo fcinfo, void (*check_name) (text *name, const char *field),
					bytea **legacy)
{
	text	   *kind = PG_GETARG_TEXT_PP(0);
	int64		period_us;
	TimestampTz at;

	check_name(kind, "kind");
	if (!PG_ARGISNULL(2))
		check_name(PG_GETARG_TEXT_PP(2), "queue");
	period_us = awa_unique_period_arg(fcinfo, 3);
	at = PG_ARGISNULL(4) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(4);
	return awa_unique_key(kind, PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2),
						  PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1), period_us, at, legacy);
}
