/*-------------------------------------------------------------------------
 *
 * observe.c
 *		Reading jobs: awa_list_jobs (pages of jobs, newest first, filtered)
 *		and awa_get_job.  Queue statistics are stats.c's, the health check
 *		health.c's.
 *
 * SQLSTATEs raised:
 *	22023 (invalid_parameter_value): a name of the wrong length, a limit
 *		outside 1..1000
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
#include "engine_admin.h"

PG_FUNCTION_INFO_V1(awa_list_jobs);
PG_FUNCTION_INFO_V1(awa_get_job);

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
	if (awa_engine_ring())		/* hook: rjit -- the ring's page (engine_admin.c) */
		return awa_engine_list_jobs(fcinfo, slot > 0 ? awa_state_label((AwaJobState) (slot - 1)) : NULL,
									values, nulls);

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
	static AwaStmt stmt = AWA_QUERY("awa_get_job: query",
		"SELECT * FROM awa.jobs WHERE id = $1",
		1, INT8OID);
	MemoryContext callercxt = CurrentMemoryContext;
	TupleDesc	jobdesc;
	Datum		values[1];
	Datum		result;
	int64		job_id;

	awa_check_not_null(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	values[0] = Int64GetDatum(job_id);
	if (get_call_result_type(fcinfo, NULL, &jobdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa_get_job: return type must be a row type");
	if (awa_engine_ring())
		return awa_engine_get_job(fcinfo, values[0]);

	SPI_connect();
	awa_stmt_run(&stmt, values, NULL, 1);
	if (SPI_processed == 0)
		awa_job_not_found(job_id);
	result = awa_job_datum(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						   jobdesc, callercxt);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
