/*-------------------------------------------------------------------------
 *
 * jobrow.c
 *		What a new job row holds: the one column map of the job row type
 *		and the one function that fills its enqueue columns, for every way
 *		a job is written (enqueue.c, fastinsert.c, the COPY trigger).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/builtins.h"

#include "awa.h"

/* See awa.h. */
int
awa_column_if_any(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	return -1;
}

/* The 0-based number of a column of the job row type; it must exist. */
int
awa_job_column(TupleDesc desc, const char *name)
{
	int			i = awa_column_if_any(desc, name);

	if (i < 0)
		elog(ERROR, "awa: awa.jobs has no column \"%s\"", name);
	return i;
}

/*
 * Fill cols for the job row type desc (awa.jobs or a copy of its row type),
 * unless already done for it.  The states are the enum's values (OIDs).
 */
void
awa_job_columns(TupleDesc desc, AwaJobColumns *cols)
{
	Oid			statetype;
	int			k;

	if (cols->rowtype == desc->tdtypeid && OidIsValid(desc->tdtypeid))
		return;
	cols->kind = awa_job_column(desc, "kind");
	cols->queue = awa_job_column(desc, "queue");
	cols->args = awa_job_column(desc, "args");
	cols->state = awa_job_column(desc, "state");
	cols->priority = awa_job_column(desc, "priority");
	cols->max_attempts = awa_job_column(desc, "max_attempts");
	cols->run_at = awa_job_column(desc, "run_at");
	cols->tags = awa_job_column(desc, "tags");
	cols->metadata = awa_job_column(desc, "metadata");
	cols->timeout = awa_column_if_any(desc, "timeout");
	cols->group_id = awa_column_if_any(desc, "group_id");
	cols->concurrency_key = awa_column_if_any(desc, "concurrency_key");
	statetype = TupleDescAttr(desc, cols->state)->atttypid;
	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		cols->states[k] = DirectFunctionCall2(enum_in,
											  CStringGetDatum(awa_state_label((AwaJobState) k)),
											  ObjectIdGetDatum(statetype));
	cols->rowtype = desc->tdtypeid;
}

/*
 * The one place that decides what a new job row holds: set the enqueue
 * columns of cols (kind, queue, args, state, priority, max_attempts,
 * run_at, tags, metadata, timeout, group_id and concurrency_key if the row
 * has them) in values and nulls from a validated job, and return its state.
 * run_at NULL means the transaction's start; the state is
 * awa_job_initial_state's.
 * Other columns are left alone (their defaults are the caller's).  No
 * lock is taken (awa_job_row below takes the group's).
 */
AwaJobState
awa_job_row_values(const AwaJob *job, const AwaJobColumns *cols, Datum *values, bool *nulls)
{
	AwaJobState state = awa_job_initial_state(job);

	values[cols->kind] = PointerGetDatum(job->kind);
	values[cols->queue] = PointerGetDatum(job->queue);
	values[cols->args] = JsonbPGetDatum(job->args);
	values[cols->state] = cols->states[state];
	values[cols->priority] = Int16GetDatum((int16) job->priority);
	values[cols->max_attempts] = Int16GetDatum((int16) job->max_attempts);
	values[cols->run_at] = TimestampTzGetDatum(job->has_run_at ? job->run_at :
											   GetCurrentTransactionStartTimestamp());
	values[cols->tags] = PointerGetDatum(job->tags);
	values[cols->metadata] = JsonbPGetDatum(job->metadata);
	nulls[cols->kind] = nulls[cols->queue] = nulls[cols->args] = false;
	nulls[cols->state] = nulls[cols->priority] = nulls[cols->max_attempts] = false;
	nulls[cols->run_at] = nulls[cols->tags] = nulls[cols->metadata] = false;
	if (cols->timeout >= 0)
	{
		values[cols->timeout] = PointerGetDatum(job->timeout);
		nulls[cols->timeout] = (job->timeout == NULL);
	}
	else if (job->timeout != NULL)	/* awa_validate_job refuses that */
		elog(ERROR, "awa: awa.jobs has no column \"timeout\"");
	/* groups: the row's group (groups.c) */
	if (cols->group_id >= 0)
	{
		values[cols->group_id] = PointerGetDatum(job->group_id);
		nulls[cols->group_id] = (job->group_id == NULL);
	}
	else if (job->group_id != NULL) /* awa_validate_job refuses that */
		elog(ERROR, "awa: awa.jobs has no column \"group_id\"");
	if (cols->concurrency_key >= 0)
	{
		values[cols->concurrency_key] = PointerGetDatum(job->concurrency_key);
		nulls[cols->concurrency_key] = (job->concurrency_key == NULL);
	}
	else if (job->concurrency_key != NULL)	/* awa_validate_job refuses that */
		elog(ERROR, "awa: awa.jobs has no column \"concurrency_key\"");
	return state;
}

/*
 * A new job's row as awa_job_row_values sets it; a job of a group takes the
 * group's enqueue lock (awa_group_lock_enqueue), whichever way it is
 * written.
 */
AwaJobState
awa_job_row(const AwaJob *job, const AwaJobColumns *cols, Datum *values, bool *nulls)
{
	AwaJobState state = awa_job_row_values(job, cols, values, nulls);

	if (job->group_id != NULL)
		awa_group_lock_enqueue(job->group_id);
	return state;
}

