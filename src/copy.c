/*-------------------------------------------------------------------------
 *
 * copy.c
 *		COPY and plain INSERT into awa.jobs: the row trigger that gives
 *		every row awa_insert's validation, defaults, state and wake-up.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "awa.h"
#include "batch.h"
#include "ring.h"

PG_FUNCTION_INFO_V1(awa_jobs_before_insert);

/* The state whose enum value (of cols' row type) is v. */
static AwaJobState
state_of(const AwaJobColumns *cols, Datum v)
{
	int			k;

	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		if (cols->states[k] == v)
			return (AwaJobState) k;
	elog(ERROR, "awa: unknown job state %u", DatumGetObjectId(v));
	return AWA_STATE_AVAILABLE;	/* keep compiler quiet */
}

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
 * A row INSERTed into the view awa.jobs of a database on the ring must be a
 * new job: its id drawn by awa (NULL), available or scheduled, no attempt,
 * lease, error, progress, result, callback or unique key of its own (the
 * ring has no way to write a job in another state behind the awa_*
 * functions' back, and a given id could collide with a job's).  0A000
 * naming the first column that is not.
 */
/* the columns ring_check_new_row reads, found once per row type (a COPY calls it for every row) */
static const char *const must_be_null[] = {"id", "heartbeat_at", "deadline_at", "attempted_at",
	"finalized_at", "unique_key", "unique_states", "progress", "claimed_by", "lease", "result",
"callback_key", "callback_lease", "callback_timeout", "callback_payload"};

typedef struct NewRowColumns
{
	Oid			rowtype;
	int			must_be_null[lengthof(must_be_null)];
	int			attempt;
	int			run_lease;
	int			errors;
	int			created_at;
} NewRowColumns;

static const NewRowColumns *
new_row_columns(TupleDesc desc)
{
	static NewRowColumns c = {InvalidOid};
	int			i;

	if (c.rowtype == desc->tdtypeid && OidIsValid(desc->tdtypeid))
		return &c;
	for (i = 0; i < lengthof(must_be_null); i++)
		c.must_be_null[i] = awa_job_column(desc, must_be_null[i]);
	c.attempt = awa_job_column(desc, "attempt");
	c.run_lease = awa_job_column(desc, "run_lease");
	c.errors = awa_job_column(desc, "errors");
	c.created_at = awa_job_column(desc, "created_at");
	c.rowtype = desc->tdtypeid;
	return &c;
}

static void
ring_check_new_row(TupleDesc desc, const AwaJobColumns *cols, const Datum *values, const bool *nulls)
{
	const NewRowColumns *c = new_row_columns(desc);
	const char *bad = NULL;
	int			a;
	int			i;

	for (i = 0; i < lengthof(must_be_null) && bad == NULL; i++)
	{
		if (!nulls[c->must_be_null[i]])
			bad = must_be_null[i];
	}
	if (bad == NULL && !nulls[cols->state] && values[cols->state] != cols->states[AWA_STATE_AVAILABLE] &&
		values[cols->state] != cols->states[AWA_STATE_SCHEDULED])
		bad = "state";
	a = c->attempt;
	if (bad == NULL && !nulls[a] && DatumGetInt16(values[a]) != 0)
		bad = "attempt";
	a = c->run_lease;
	if (bad == NULL && !nulls[a] && DatumGetInt64(values[a]) != 0)
		bad = "run_lease";
	a = c->errors;
	if (bad == NULL && !nulls[a] && ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(values[a])),
												   ARR_DIMS(DatumGetArrayTypeP(values[a]))) > 0)
		bad = "errors";
	a = c->created_at;
	if (bad == NULL && !nulls[a] && DatumGetTimestampTz(values[a]) != GetCurrentTransactionStartTimestamp())
		bad = "created_at";
	if (bad != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("awa.jobs: column \"%s\" cannot be written", bad),
				 errdetail("A row inserted into awa.jobs enqueues a new job: its id is drawn by awa, it is available or scheduled, and it has no attempt, lease, error, result, callback or unique key yet."),
				 errhint("Insert the job's fields only (kind, args, queue, priority, max_attempts, run_at, tags, metadata, timeout, group_id, concurrency_key); change jobs with the awa_* functions.")));
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
 * every row, so it is the COPY path's whole overhead.  As an INSTEAD OF
 * trigger on the view awa.jobs of a database on the ring (src/sql/
 * engine.sql), it enqueues the checked job into the ring instead; a row
 * that is not a new job is refused there (ring_check_new_row, 0A000).
 */
Datum
awa_jobs_before_insert(PG_FUNCTION_ARGS)
{
	static AwaJobColumns cols;
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

	/*
	 * hook: rdelta -- BEFORE and AFTER INSERT ... FOR EACH STATEMENT on the
	 * view (src/sql/engine_batch.sql): the statement's jobs are one batch of
	 * the counters (batch.h), one delta row per key, not per job.
	 */
	if (CALLED_AS_TRIGGER(fcinfo) && TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) &&
		TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) &&
		trigdata->tg_relation->rd_rel->relkind == RELKIND_VIEW)
	{
		if (TRIGGER_FIRED_BEFORE(trigdata->tg_event))
			awa_batch_begin();
		else
			awa_batch_end();
		return PointerGetDatum(NULL);
	}
	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!(TRIGGER_FIRED_BEFORE(trigdata->tg_event) || TRIGGER_FIRED_INSTEAD(trigdata->tg_event)) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "awa_jobs_before_insert: must be a BEFORE (or INSTEAD OF) INSERT FOR EACH ROW trigger, or on a view FOR EACH STATEMENT");

	tuple = trigdata->tg_trigtuple;
	if (awa_rows_prepared)
		return PointerGetDatum(tuple);
	desc = RelationGetDescr(trigdata->tg_relation);
	awa_job_columns(desc, &cols);
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
	if (cols.group_id >= 0 && !nulls[cols.group_id])
	{
		job.group_id = DatumGetTextPP(values[cols.group_id]);
		awa_group_lock_enqueue(job.group_id);
	}
	if (cols.concurrency_key >= 0 && !nulls[cols.concurrency_key])
		job.concurrency_key = DatumGetTextPP(values[cols.concurrency_key]);
	isnull = nulls[cols.state];
	state = values[cols.state];
	awa_validate_job(&job);

	/*
	 * On the view of a database whose jobs are in the ring (engine.c): the
	 * job goes into the ring, which decides its state and wakes its queue;
	 * the row returned (with its id and state) counts as inserted and is
	 * what RETURNING shows.
	 */
	if (TRIGGER_FIRED_INSTEAD(trigdata->tg_event))
	{
		Oid			save_userid;
		int			save_sec;

		ring_check_new_row(desc, &cols, values, nulls);

		/*
		 * As the view's owner (awa's), as awa_insert runs (SECURITY
		 * DEFINER): who may insert into awa.jobs (the column grants of the
		 * COPY path) may enqueue, the ring's relations granting no role.
		 */
		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(trigdata->tg_relation->rd_rel->relowner,
							   save_sec | SECURITY_LOCAL_USERID_CHANGE);
		PG_TRY();
		{
			replvals[0] = Int64GetDatum(awa_ring_insert_job(&job));
		}
		PG_FINALLY();
		{
			SetUserIdAndSecContext(save_userid, save_sec);
		}
		PG_END_TRY();
		replcols[0] = new_row_columns(desc)->must_be_null[0] + 1;	/* id */
		replcols[1] = cols.state + 1;
		replvals[1] = cols.states[awa_job_initial_state(&job)];
		return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 2, replcols, replvals, replnulls));
	}

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

