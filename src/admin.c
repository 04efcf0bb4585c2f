/*-------------------------------------------------------------------------
 *
 * admin.c
 *		Operator functions: retry or discard failed jobs, pause, resume and
 *		drain a queue, list and read jobs, and the health check.
 *
 * Every function checks all of its arguments before it touches a row, so
 * bad input raises an error and changes nothing.  Every statement that
 * changes several jobs locks them first in id order (a SELECT ... ORDER BY
 * id FOR NO KEY UPDATE in front of the UPDATE, FOR UPDATE in front of a
 * DELETE), as all of awa's statements do, so two of them never wait for
 * each other in a cycle (deadlock).  SQLSTATEs raised:
 *	22004 (null_value_not_allowed): a required argument is NULL
 *	22023 (invalid_parameter_value): a name of the wrong length, a limit
 *		outside 1..1000, or awa_retry_failed without any filter
 *	P0002 (no_data_found): awa_get_job of an id that does not exist
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_retry_failed);
PG_FUNCTION_INFO_V1(awa_discard_failed);
PG_FUNCTION_INFO_V1(awa_pause_queue);
PG_FUNCTION_INFO_V1(awa_resume_queue);
PG_FUNCTION_INFO_V1(awa_set_queue_limit);
PG_FUNCTION_INFO_V1(awa_forget_queue);
PG_FUNCTION_INFO_V1(awa_drain_queue);
PG_FUNCTION_INFO_V1(awa_list_jobs);
PG_FUNCTION_INFO_V1(awa_get_job);
PG_FUNCTION_INFO_V1(awa_health_check);

/* awa_retry_failed / awa_discard_failed: this kind means "every kind". */
#define AWA_ANY_KIND	"*"

/* Largest page awa_list_jobs returns. */
#define AWA_MAX_LIST	1000

/* How many of the newest jobs awa_list_jobs looks at before searching all. */
#define AWA_LIST_WINDOW	20000


/*
 * Whether a state slot (1-based, as in awa_list_jobs) has its own index:
 * jobs_settled_idx covers the states an operator may retry.
 */
static bool
settled_state(int slot)
{
	return awa_state_in((AwaJobState) (slot - 1), AWA_SET_RETRY);
}

/* The queue argument of the queue functions: required, a valid name. */
static text *
queue_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *queue;

	awa_check_not_null(fcinfo, argno, "queue");
	queue = PG_GETARG_TEXT_PP(argno);
	awa_check_name(queue, "queue");
	return queue;
}

/*
 * The kind argument of awa_retry_failed / awa_discard_failed: a valid name,
 * or '*' for every kind, which becomes NULL (no filter) in the query.
 */
static Datum
kind_filter(text *kind, bool *isnull)
{
	awa_check_name(kind, "kind");
	if (VARSIZE_ANY_EXHDR(kind) == 1 && *VARDATA_ANY(kind) == '*')
	{
		*isnull = true;
		return (Datum) 0;
	}
	*isnull = false;
	return PointerGetDatum(kind);
}

/* qsort order of the rows of an SPI result by their int8 first column. */
static SPITupleTable *sort_table;

static int
id_cmp(const void *a, const void *b)
{
	bool		isnull;
	int64		x = DatumGetInt64(SPI_getbinval(sort_table->vals[*(const int *) a],
											   sort_table->tupdesc, 1, &isnull));
	int64		y = DatumGetInt64(SPI_getbinval(sort_table->vals[*(const int *) b],
											   sort_table->tupdesc, 1, &isnull));

	return (x > y) - (x < y);
}

/* The positions of the rows of the last SPI result, ordered by id. */
static int *
order_by_id(void)
{
	int		   *order = palloc(sizeof(int) * Max(SPI_processed, 1));
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
		order[i] = (int) i;
	sort_table = SPI_tuptable;
	qsort(order, SPI_processed, sizeof(int), id_cmp);
	sort_table = NULL;
	return order;
}

/*
 * awa_retry_failed(kind text DEFAULT NULL, queue text DEFAULT NULL)
 *		RETURNS SETOF awa.jobs
 *
 * Failed jobs of this kind (or of every kind, kind => '*') and, when given,
 * of this queue become available now with their attempts reset, like
 * awa_retry.  Returns them ordered by id.  With neither filter it refuses
 * (22023): retrying everything must be asked for with kind => '*'.
 */
Datum
awa_retry_failed(PG_FUNCTION_ARGS)
{
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	int		   *order;

	awa_check_writable("awa_retry_failed");

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("awa_retry_failed needs a kind or a queue"),
				 errhint("Pass kind => '*' to retry every failed job.")));
	if (PG_ARGISNULL(0))
		nulls[0] = 'n';
	else
	{
		values[0] = kind_filter(PG_GETARG_TEXT_PP(0), &isnull);
		if (isnull)
			nulls[0] = 'n';
	}
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
	{
		values[1] = PointerGetDatum(PG_GETARG_TEXT_PP(1));
		awa_check_name(DatumGetTextPP(values[1]), "queue");
	}

	SPI_connect();
	awa_job_retry_failed(values, nulls);
	order = order_by_id();
	awa_store_jobs(fcinfo, SPI_tuptable, SPI_processed, order);
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa_discard_failed(kind text) RETURNS bigint
 *
 * Delete the failed jobs of this kind (kind => '*': of every kind) and
 * return how many were deleted.
 */
Datum
awa_discard_failed(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	char		nulls[1] = {' '};
	bool		isnull;
	int64		n;

	awa_check_writable("awa_discard_failed");

	awa_check_not_null(fcinfo, 0, "kind");
	values[0] = kind_filter(PG_GETARG_TEXT_PP(0), &isnull);
	if (isnull)
		nulls[0] = 'n';

	SPI_connect();
	n = awa_job_discard_failed(values[0], nulls[0] == 'n');
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * Tell the caller (NOTICE) when a queue whose settings are being changed
 * has no waiting or running job: often a misspelt name, since settings of
 * any name are accepted (a queue exists as soon as a job names it).  Reads
 * only the claim index and the running jobs.  Caller is in SPI.
 */
static void
notice_if_unused(Datum queue)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID};
	bool		isnull;

	if (SPI_execute_plan(awa_plan(&plan,
								  "SELECT EXISTS (SELECT FROM awa.jobs WHERE queue = $1"
								  "   AND state IN " AWA_STATES_WAITING_SQL ")"
								  " OR EXISTS (SELECT FROM awa.jobs WHERE state = 'running' AND queue = $1)",
								  1, argtypes),
						 &queue, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "awa: looking for the jobs of a queue failed");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(NOTICE,
				(errmsg("queue \"%s\" has no waiting or running jobs", TextDatumGetCString(queue)),
				 errhint("Check the name: the setting applies to this name alone. awa_forget_queue removes the settings of a queue.")));
}

/*
 * awa_pause_queue(queue text, paused_by text DEFAULT NULL) RETURNS boolean
 *
 * Mark the queue paused in awa.queue_meta: from the commit on, awa_claim
 * hands out none of its jobs, to every worker.  A queue may be paused
 * before it has jobs.  Returns false (and keeps the first pause's time and
 * author) when it was already paused.
 */
Datum
awa_pause_queue(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int			ret;
	bool		paused;

	awa_check_writable("awa_pause_queue");

	values[0] = PointerGetDatum(queue_arg(fcinfo, 0));
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
		values[1] = PG_GETARG_DATUM(1);

	SPI_connect();
	notice_if_unused(values[0]);
	ret = SPI_execute_plan(awa_plan(&plan,
									"INSERT INTO awa.queue_meta AS m (queue, paused, paused_at, paused_by)"
									" VALUES ($1, true, now(), $2)"
									" ON CONFLICT (queue) DO UPDATE"
									" SET paused = true, paused_at = now(), paused_by = $2"
									" WHERE NOT m.paused",
									2, argtypes),
						   values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "awa_pause_queue: upsert failed: %s", SPI_result_code_string(ret));
	paused = (SPI_processed == 1);
	SPI_finish();
	PG_RETURN_BOOL(paused);
}

/*
 * awa_resume_queue(queue text) RETURNS boolean
 *
 * Let awa_claim hand out the queue's jobs again, and wake claimers that
 * wait on it (NOTIFY and latches at commit).  Returns false, a no-op, when
 * the queue was not paused, including a queue awa has never seen.
 */
Datum
awa_resume_queue(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID};
	text	   *queue = queue_arg(fcinfo, 0);
	Datum		values[1] = {PointerGetDatum(queue)};
	int			ret;
	bool		resumed;

	awa_check_writable("awa_resume_queue");

	SPI_connect();
	notice_if_unused(values[0]);
	ret = SPI_execute_plan(awa_plan(&plan,
									"UPDATE awa.queue_meta SET paused = false, paused_at = NULL,"
									" paused_by = NULL WHERE queue = $1 AND paused",
									1, argtypes),
						   values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "awa_resume_queue: update failed: %s", SPI_result_code_string(ret));
	resumed = (SPI_processed == 1);
	if (resumed)
		awa_queue_opened(text_to_cstring(queue), false);
	SPI_finish();
	PG_RETURN_BOOL(resumed);
}

/*
 * awa_set_queue_limit(queue text, max_running integer) RETURNS awa.queue_meta
 *
 * From the commit on, awa_claim keeps at most max_running jobs of the queue
 * running at once, across every worker (claim.c); NULL lifts the limit.
 * Jobs already running above a lowered limit finish; no new ones start
 * until the count is under it.  Claimers waiting on the queue are woken at
 * commit, since a raised or lifted limit may let them claim.
 */
Datum
awa_set_queue_limit(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID, INT4OID};
	text	   *queue = queue_arg(fcinfo, 0);
	MemoryContext callercxt = CurrentMemoryContext;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	Datum		result;
	int			ret;

	awa_check_writable("awa_set_queue_limit");

	values[0] = PointerGetDatum(queue);
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
	{
		int32		limit = PG_GETARG_INT32(1);

		if (limit < 1 || limit > AWA_MAX_QUEUE_LIMIT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_running must be between 1 and %d, got %d",
							AWA_MAX_QUEUE_LIMIT, limit),
					 errhint("Pass NULL to lift the limit; awa_pause_queue stops a queue.")));
		values[1] = Int32GetDatum(limit);
	}

	SPI_connect();
	notice_if_unused(values[0]);
	ret = SPI_execute_plan(awa_plan(&plan,
									"INSERT INTO awa.queue_meta AS m (queue, max_running)"
									" VALUES ($1, $2)"
									" ON CONFLICT (queue) DO UPDATE SET max_running = $2"
									" RETURNING *",
									2, argtypes),
						   values, nulls, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "awa_set_queue_limit: upsert failed: %s", SPI_result_code_string(ret));
	result = awa_row_datum(fcinfo, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						   callercxt);
	awa_queue_opened(text_to_cstring(queue), false);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * awa_forget_queue(queue) RETURNS boolean
 *
 * Remove a queue's settings (paused or not, concurrency limit): the queue
 * then behaves as one that was never configured.  Its jobs are untouched.
 * True if it had settings.
 */
Datum
awa_forget_queue(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID};
	Datum		values[1];
	bool		found;

	awa_check_writable("awa_forget_queue");

	values[0] = PointerGetDatum(queue_arg(fcinfo, 0));
	SPI_connect();
	if (SPI_execute_plan(awa_plan(&plan, "DELETE FROM awa.queue_meta WHERE queue = $1", 1, argtypes),
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "awa_forget_queue: delete failed");
	found = (SPI_processed == 1);
	if (found)
		awa_queue_opened(TextDatumGetCString(values[0]), true);
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/*
 * awa_drain_queue(queue text) RETURNS bigint
 *
 * Cancel every job of the queue that waits to run or waits on an external
 * system (available, scheduled, retryable, waiting_external) and return how
 * many were cancelled.  Running jobs are left to finish.  Holders of
 * waiting_external jobs get NOTIFY awa.cancel, as with awa_cancel.  One
 * statement, locking in id order.
 */
Datum
awa_drain_queue(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	int64		n;

	awa_check_writable("awa_drain_queue");

	values[0] = PointerGetDatum(queue_arg(fcinfo, 0));

	SPI_connect();
	n = awa_job_drain(values[0]);
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * Prepare and keep a plan that is planned afresh, with its parameter values,
 * at every execution.  awa_list_jobs needs that: its optional filters are
 * written "$n IS NULL OR ...", which only a plan that sees the values folds
 * away, and the row estimate of LIMIT $n is only right with the value.
 */
static SPIPlanPtr
custom_plan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes)
{
	return awa_plan_opts(cache, sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
}

/*
 * The state (as a literal, see below), kind ($1), queue ($2) and tag ($3)
 * filters of awa_list_jobs, and its order and limit ($5).
 */
static void
append_list_filters(StringInfo sql, int slot)
{
	if (slot > 0)
		appendStringInfo(sql, " AND state = '%s'", awa_state_label((AwaJobState) (slot - 1)));
	appendStringInfoString(sql,
						   " AND ($1::text IS NULL OR kind = $1)"
						   " AND ($2::text IS NULL OR queue = $2)"
						   " AND ($3::text IS NULL OR tags @> ARRAY[$3])"
						   " ORDER BY id DESC LIMIT $5");
}

/*
 * awa_list_jobs(state, kind, queue, tag, before_id, lim) RETURNS SETOF awa.jobs
 *
 * One page of jobs, newest (highest id) first, matching every filter given;
 * the next page is asked for with before_id => the last id of this one.
 *
 * How a page comes from an index with millions of jobs: the state is put in
 * the query text as a literal (one plan per state), so partial indexes whose
 * predicate names states can be proved usable.
 *  - no state, or a state most jobs are in (completed): a backward scan of
 *	  the primary key, filtered, stops after lim rows.
 *  - failed, cancelled, waiting_external: jobs_settled_idx (state, id), a
 *	  partial index on exactly those states, gives the page directly even
 *	  when they are a few among millions of completed jobs.  New jobs and the
 *	  claim/complete path never enter it, so it costs the hot path nothing.
 *  - scheduled, available, retryable: jobs_claim_idx; running:
 *	  jobs_running_idx.  These states hold the in-flight jobs, few next to
 *	  the history, so reading them all and sorting by id is cheap.
 * kind, queue and tag are filters on top: a page of a kind or tag that is
 * rare among recent jobs, without a state, may scan far back (see README).
 */
Datum
awa_list_jobs(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plans[AWA_NUM_JOB_STATES + 1];
	static SPIPlanPtr window_plans[AWA_NUM_JOB_STATES + 1];
	static const Oid argtypes[] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			slot = 0;
	int32		lim;
	int			ret;

	awa_check_not_null(fcinfo, 5, "lim");
	lim = PG_GETARG_INT32(5);
	if (lim < 1 || lim > AWA_MAX_LIST)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lim must be between 1 and %d, got %d", AWA_MAX_LIST, lim),
				 errhint("Page through more jobs with before_id.")));

	if (!PG_ARGISNULL(0))
	{
		char	   *label = DatumGetCString(DirectFunctionCall1(enum_out,
																PG_GETARG_DATUM(0)));

		for (slot = 1; slot <= (int) AWA_NUM_JOB_STATES; slot++)
			if (strcmp(label, awa_state_label((AwaJobState) (slot - 1))) == 0)
				break;
		if (slot > (int) AWA_NUM_JOB_STATES)
			elog(ERROR, "awa_list_jobs: unknown job state \"%s\"", label);
	}
	values[0] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	values[1] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	values[2] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	values[3] = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
	values[4] = Int32GetDatum(lim);
	nulls[0] = PG_ARGISNULL(1) ? 'n' : ' ';
	nulls[1] = PG_ARGISNULL(2) ? 'n' : ' ';
	nulls[2] = PG_ARGISNULL(3) ? 'n' : ' ';
	nulls[3] = PG_ARGISNULL(4) ? 'n' : ' ';

	SPI_connect();
	if (plans[slot] == NULL)
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfoString(&sql, "SELECT * FROM awa.jobs WHERE ($4::bigint IS NULL OR id < $4)");
		append_list_filters(&sql, slot);
		custom_plan(&plans[slot], sql.data, 5, argtypes);
		pfree(sql.data);
	}
	/*
	 * First look among the newest AWA_LIST_WINDOW jobs only (a bounded
	 * backward scan of the primary key): the newest jobs are where pages of
	 * in-flight states usually are, and a full page found there is the right
	 * answer, because the window is every job below before_id down to some
	 * id.  Otherwise the plan above searches everything.  Failed, cancelled
	 * and waiting_external pages come straight from their own index.
	 */
	if (slot == 0 || !settled_state(slot))
	{
		if (window_plans[slot] == NULL)
		{
			StringInfoData sql;

			initStringInfo(&sql);
			appendStringInfo(&sql,
							 "SELECT * FROM (SELECT * FROM awa.jobs"
							 " WHERE ($4::bigint IS NULL OR id < $4)"
							 " ORDER BY id DESC LIMIT %d) w WHERE true", AWA_LIST_WINDOW);
			append_list_filters(&sql, slot);
			custom_plan(&window_plans[slot], sql.data, 5, argtypes);
			pfree(sql.data);
		}
		ret = SPI_execute_plan(window_plans[slot], values, nulls, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "awa_list_jobs: query failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == (uint64) lim)
		{
			awa_store_jobs(fcinfo, SPI_tuptable, SPI_processed, NULL);
			SPI_finish();
			return (Datum) 0;
		}
	}
	ret = SPI_execute_plan(plans[slot], values, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa_list_jobs: query failed: %s", SPI_result_code_string(ret));
	awa_store_jobs(fcinfo, SPI_tuptable, SPI_processed, NULL);
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa_get_job(job_id bigint) RETURNS awa.jobs
 *
 * The job's row; P0002 (no_data_found) when no job has this id, 22004 for
 * NULL.
 */
Datum
awa_get_job(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	MemoryContext callercxt = CurrentMemoryContext;
	TupleDesc	jobdesc;
	Datum		values[1];
	Datum		result;
	int64		job_id;
	int			ret;

	awa_check_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	values[0] = Int64GetDatum(job_id);
	if (get_call_result_type(fcinfo, NULL, &jobdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa_get_job: return type must be a row type");

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan, "SELECT * FROM awa.jobs WHERE id = $1",
									1, argtypes),
						   values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa_get_job: query failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		awa_job_not_found(job_id);
	result = awa_job_datum(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						   jobdesc, callercxt);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * Append to reason what awa.maintenance_failures holds (maintain.c): the
 * maintenance steps that are failing, and per step how many jobs (or
 * periodic jobs) it skipped, with the oldest one and its error.  Nothing on
 * a 0.2.0 schema, which has no such table.  Caller is in SPI; the text is
 * built in the caller's context.
 */
static void
maintenance_reasons(StringInfo reason)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			nsp = get_namespace_oid("awa", true);
	uint64		i;
	int			ret;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("maintenance_failures", nsp)))
		return;
	ret = SPI_execute_plan(awa_plan(&plan,
									"SELECT step, max(error) FILTER (WHERE item = ''),"
									" count(*) FILTER (WHERE item <> ''),"
									" (array_agg(item ORDER BY first_failed_at, item) FILTER (WHERE item <> ''))[1],"
									" (array_agg(error ORDER BY first_failed_at, item) FILTER (WHERE item <> ''))[1]"
									" FROM awa.maintenance_failures GROUP BY step ORDER BY step",
									0, NULL),
						   NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa_health_check: query failed: %s", SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		char	   *step = SPI_getvalue(t, d, 1);
		char	   *step_error = SPI_getvalue(t, d, 2);
		bool		isnull;
		int64		skipped = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
		bool		schedules = strcmp(step, "schedules") == 0;

		if (step_error != NULL)
			appendStringInfo(reason, "%smaintenance step \"%s\" is failing: %s",
							 reason->len > 0 ? "; " : "", step, step_error);
		if (skipped > 0)
			appendStringInfo(reason, "%smaintenance step \"%s\" %s %lld %s (first %s%s%s: %s)",
							 reason->len > 0 ? "; " : "", step,
							 schedules ? "stopped" : "skipped", (long long) skipped,
							 schedules ? "periodic job(s)" : "job(s)",
							 schedules ? "\"" : "job ", SPI_getvalue(t, d, 4),
							 schedules ? "\"" : "", SPI_getvalue(t, d, 5));
	}
}

/* Notification queue usage from which the health check reports a problem. */
#define AWA_NOTIFY_QUEUE_WARN	0.5

/*
 * Who maintains this database and when its last round finished, for
 * awa_health_check: sets *by ("background worker", "awa_maintain() calls",
 * "primary (hot standby)" or "nobody"), *pid (the worker's, or 0) and
 * *last_round (0 if none is known), and appends a reason to reason when
 * nobody does.  A round counts as recent within ten maintenance intervals
 * (at least ten seconds).  Caller is in SPI.
 */
static void
who_maintains(StringInfo reason, const char **by, int *pid, TimestampTz *last_round)
{
	static SPIPlanPtr plan = NULL;
	AwaDbInfo	info;
	bool		preloaded = awa_dbstate_get(&info);
	int64		stale_ms = Max((int64) awa_maintenance_interval * 10, 10000);
	TimestampTz now = GetCurrentTimestamp();
	bool		recent;

	*pid = 0;
	*last_round = info.last_round;
	if (!preloaded && awa_schema_has(AWA_SCHEMA_ROUNDS))
	{
		bool		isnull;

		/* rounds driven by pg_cron or a script, recorded by awa_maintain */
		if (SPI_execute_plan(awa_plan(&plan, "SELECT last_round_at FROM awa.maintenance_rounds", 0, NULL),
							 NULL, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "awa_health_check: reading awa.maintenance_rounds failed");
		if (SPI_processed == 1)
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			*last_round = isnull ? 0 : DatumGetTimestampTz(d);
		}
	}
	recent = *last_round != 0 &&
		now - *last_round <= stale_ms * (int64) 1000;

	if (RecoveryInProgress())
	{
		*by = "primary (hot standby)";
		return;
	}
	if (info.status == AWA_DB_WORKER)
	{
		*by = "background worker";
		*pid = info.worker_pid;
		/* a worker that runs but finishes no round (rounds failing, stuck) */
		if (!recent && now - info.status_at > stale_ms * (int64) 1000)
			appendStringInfo(reason, "%sno maintenance round finished in the last %lld s although the maintenance worker runs (pid %d)",
							 reason->len > 0 ? "; " : "", (long long) (stale_ms / 1000), info.worker_pid);
		return;
	}
	if (recent)
	{
		*by = "awa_maintain() calls";
		return;
	}
	*by = "nobody";
	appendStringInfo(reason, "%snothing maintains this database: no maintenance round finished in the last %lld s",
					 reason->len > 0 ? "; " : "", (long long) (stale_ms / 1000));
	if (!preloaded)
		appendStringInfoString(reason, " (awa is not in shared_preload_libraries: schedule awa_maintain() with pg_cron, or preload awa)");
	else if (!info.launcher_running)
		appendStringInfoString(reason, " (the maintenance launcher is not running)");
	else if (info.status == AWA_DB_NO_SLOT)
		appendStringInfoString(reason, " (no background worker slot was free for its maintenance worker: raise max_worker_processes)");
	else if (info.status == AWA_DB_NOT_LISTED)
		appendStringInfoString(reason, " (it is not in awa.databases)");
	else if (info.status == AWA_DB_UNREACHABLE)
		appendStringInfoString(reason, " (it does not allow connections)");
	else
		appendStringInfoString(reason, " (its maintenance worker has not started yet)");
}

/*
 * awa_health_check() RETURNS TABLE (version, preloaded, worker_running,
 *		worker_pid, worker_last_run, stale_heartbeats, oldest_available_seconds,
 *		paused_queues, notification_queue_usage, healthy, reason,
 *		maintained_by)
 *
 * One row for monitoring this database.  maintained_by says who runs its
 * maintenance rounds (a background worker, awa_maintain() calls from
 * pg_cron or a script, its primary on a hot standby, or nobody);
 * worker_running and worker_pid are about this database's worker, and
 * worker_last_run is when a round last finished here, whoever ran it.
 * healthy is false, with every reason in reason (joined by "; "), when
 * nobody maintains the database or its worker finishes no round, running
 * jobs have heartbeats older than awa.heartbeat_timeout, the NOTIFY queue
 * is half full, or a maintenance step is failing or skipping jobs it cannot
 * process (awa.maintenance_failures).  Paused queues and the age of the
 * oldest available job are reported, not judged: both can be intended.
 * Before ALTER EXTENSION awa UPDATE to 0.3.0 the row has no maintained_by.
 */
Datum
awa_health_check(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT4OID};
	MemoryContext callercxt = CurrentMemoryContext;
	TupleDesc	desc;
	Datum		args[1] = {Int32GetDatum(awa_heartbeat_timeout)};
	Datum		values[12];
	bool		nulls[12];
	TimestampTz last_round;
	int			pid;
	const char *by;
	int64		stale;
	double		usage;
	StringInfoData reason;
	HeapTuple	t;
	TupleDesc	spidesc;
	bool		isnull;
	int			ret;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa_health_check: return type must be a row type");

	SPI_connect();
	initStringInfo(&reason);
	who_maintains(&reason, &by, &pid, &last_round);
	ret = SPI_execute_plan(awa_plan(&plan,
									"SELECT (SELECT extversion FROM pg_catalog.pg_extension"
									"        WHERE extname = 'awa'),"
									" (SELECT count(*) FROM awa.jobs WHERE state = 'running'"
									"        AND heartbeat_at < now() - make_interval(secs => $1)),"
									" (SELECT CASE WHEN min(run_at) IS NOT NULL THEN greatest(extract(epoch FROM now())"
									"        - extract(epoch FROM min(run_at)), 0)::float8 END"
									"        FROM awa.jobs WHERE state = 'available'),"
									" (SELECT coalesce(array_agg(queue ORDER BY queue), '{}')"
									"        FROM awa.queue_meta WHERE paused),"
									" pg_catalog.pg_notification_queue_usage()",
									1, argtypes),
						   args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "awa_health_check: query failed: %s", SPI_result_code_string(ret));
	t = SPI_tuptable->vals[0];
	spidesc = SPI_tuptable->tupdesc;

	MemoryContextSwitchTo(callercxt);
	memset(nulls, 0, sizeof(nulls));
	values[0] = SPI_getbinval(t, spidesc, 1, &nulls[0]);
	values[0] = nulls[0] ? (Datum) 0 : datumCopy(values[0], false, -1);
	values[1] = BoolGetDatum(awa_preloaded());
	values[2] = BoolGetDatum(pid != 0);
	values[3] = Int32GetDatum(pid);
	nulls[3] = (pid == 0);
	values[4] = TimestampTzGetDatum(last_round);
	nulls[4] = (last_round == 0);
	stale = DatumGetInt64(SPI_getbinval(t, spidesc, 2, &isnull));
	values[5] = Int64GetDatum(stale);
	values[6] = SPI_getbinval(t, spidesc, 3, &nulls[6]);
	values[7] = datumCopy(SPI_getbinval(t, spidesc, 4, &isnull), false, -1);
	usage = DatumGetFloat8(SPI_getbinval(t, spidesc, 5, &isnull));
	values[8] = Float8GetDatum(usage);

	if (stale > 0)
		appendStringInfo(&reason, "%s%lld running jobs have heartbeats older than awa.heartbeat_timeout",
						 reason.len > 0 ? "; " : "", (long long) stale);
	if (usage >= AWA_NOTIFY_QUEUE_WARN)
		appendStringInfo(&reason, "%sthe notification queue is %.0f%% full",
						 reason.len > 0 ? "; " : "", usage * 100.0);
	maintenance_reasons(&reason);
	values[9] = BoolGetDatum(reason.len == 0);
	values[10] = reason.len > 0 ? CStringGetTextDatum(reason.data) : (Datum) 0;
	nulls[10] = (reason.len == 0);
	/* 0.3.0: who maintains the database (absent from older row types) */
	values[11] = CStringGetTextDatum(by);

	t = heap_form_tuple(desc, values, nulls);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(t));
}
