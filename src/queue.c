/*-------------------------------------------------------------------------
 *
 * queue.c
 *		Queue administration: pause, resume, a concurrency limit, a rate
 *		limit (counted by ratelimit.c), forget a queue's settings, drain its
 *		waiting jobs.
 *
 * Every function checks all of its arguments before it touches a row, so
 * bad input raises an error and changes nothing.  SQLSTATEs raised:
 *	22004 (null_value_not_allowed): a required argument is NULL
 *	22023 (invalid_parameter_value): a name of the wrong length, a limit
 *		outside 1..1000, a rate outside its ranges (awa_set_queue_rate)
 *	55000 (object_not_in_prerequisite_state): a rate without awa preloaded
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
#include "ratelimit.h"

PG_FUNCTION_INFO_V1(awa_pause_queue);
PG_FUNCTION_INFO_V1(awa_resume_queue);
PG_FUNCTION_INFO_V1(awa_set_queue_limit);
PG_FUNCTION_INFO_V1(awa_set_queue_rate);
PG_FUNCTION_INFO_V1(awa_forget_queue);
PG_FUNCTION_INFO_V1(awa_drain_queue);

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
 * Tell the caller (NOTICE) when a queue whose settings are being changed
 * has no waiting or running job: often a misspelt name, since settings of
 * any name are accepted (a queue exists as soon as a job names it).  Reads
 * only the claim index and the running jobs.  Caller is in SPI.
 */
static void
notice_if_unused(Datum queue)
{
	static AwaStmt stmt = AWA_QUERY("awa: looking for the jobs of a queue",
		"SELECT EXISTS (SELECT FROM awa.jobs WHERE queue = $1"
		"   AND state IN " AWA_STATES_WAITING_SQL ")"
		" OR EXISTS (SELECT FROM awa.jobs WHERE state = 'running' AND queue = $1) AS used",
		1, TEXTOID);

	if (awa_stmt_run(&stmt, &queue, NULL, 1) != 1)
		elog(ERROR, "awa: looking for the jobs of a queue: expected 1 row");
	if (!awa_stmt_bool(0, "used"))
		ereport(NOTICE,
				(errmsg("queue \"%s\" has no waiting or running jobs", TextDatumGetCString(queue)),
				 errhint("Check the name: the setting applies to this name alone. awa_forget_queue removes the settings of a queue.")));
}

/*
 * Run a setting's upsert of awa.queue_meta (RETURNING the row; values[0] is
 * the queue) and return the row.  A raised, lifted or removed limit or rate
 * may let waiting claimers claim: they are woken at commit.
 */
static Datum
queue_meta_upsert(FunctionCallInfo fcinfo, AwaStmt *stmt, Datum *values, const char *nulls)
{
	MemoryContext callercxt = CurrentMemoryContext;
	Datum		result;

	SPI_connect();
	notice_if_unused(values[0]);
	awa_stmt_run(stmt, values, nulls, 0);
	if (SPI_processed != 1)
		elog(ERROR, "%s: expected 1 row", stmt->name);
	result = awa_row_datum(fcinfo, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						   callercxt);
	awa_queue_opened(TextDatumGetCString(values[0]), false);
	SPI_finish();
	PG_RETURN_DATUM(result);
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
	static AwaStmt stmt = AWA_STMT("awa_pause_queue: upsert", SPI_OK_INSERT,
		"INSERT INTO awa.queue_meta AS m (queue, paused, paused_at, paused_by)"
		" VALUES ($1, true, now(), $2)"
		" ON CONFLICT (queue) DO UPDATE"
		" SET paused = true, paused_at = now(), paused_by = $2"
		" WHERE NOT m.paused",
		2, TEXTOID, TEXTOID);
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		paused;

	awa_check_writable("awa_pause_queue");

	values[0] = PointerGetDatum(queue_arg(fcinfo, 0));
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
		values[1] = PG_GETARG_DATUM(1);

	SPI_connect();
	notice_if_unused(values[0]);
	awa_stmt_run(&stmt, values, nulls, 0);
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
	static AwaStmt stmt = AWA_STMT("awa_resume_queue: update", SPI_OK_UPDATE,
		"UPDATE awa.queue_meta SET paused = false, paused_at = NULL,"
		" paused_by = NULL WHERE queue = $1 AND paused",
		1, TEXTOID);
	text	   *queue = queue_arg(fcinfo, 0);
	Datum		values[1] = {PointerGetDatum(queue)};
	bool		resumed;

	awa_check_writable("awa_resume_queue");

	SPI_connect();
	notice_if_unused(values[0]);
	awa_stmt_run(&stmt, values, NULL, 0);
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
	static AwaStmt stmt = AWA_STMT("awa_set_queue_limit: upsert", SPI_OK_INSERT_RETURNING,
		"INSERT INTO awa.queue_meta AS m (queue, max_running)"
		" VALUES ($1, $2)"
		" ON CONFLICT (queue) DO UPDATE SET max_running = $2"
		" RETURNING *",
		2, TEXTOID, INT4OID);
	text	   *queue = queue_arg(fcinfo, 0);
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

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

	return queue_meta_upsert(fcinfo, &stmt, values, nulls);
}

/*
 * awa_set_queue_rate(queue text, max_claims integer, per interval)
 * RETURNS awa.queue_meta
 *
 * From the commit on, awa_claim hands out at most max_claims jobs of the
 * queue in any interval of length per, across every worker; NULL
 * max_claims removes the rate (per is then ignored).  Claimers waiting on
 * the queue are woken at commit.  Errors: 22004 for a NULL queue; 22023 for
 * max_claims outside 1..AWA_RATE_MAX_CLAIMS, a NULL per with max_claims, a
 * per outside 1 ms..AWA_RATE_MAX_PERIOD_DAYS days or with months; 55000
 * when awa is not preloaded (the claims are counted in shared memory).
 */
Datum
awa_set_queue_rate(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_STMT("awa_set_queue_rate: upsert", SPI_OK_INSERT_RETURNING,
		"INSERT INTO awa.queue_meta AS m (queue, rate_max_claims, rate_period, rate_set_at)"
		" VALUES ($1, $2, $3, CASE WHEN $2 IS NULL THEN NULL ELSE clock_timestamp() END)"
		" ON CONFLICT (queue) DO UPDATE SET rate_max_claims = $2, rate_period = $3,"
		" rate_set_at = CASE WHEN $2 IS NULL THEN NULL"
		"   WHEN m.rate_max_claims IS NULL THEN clock_timestamp() ELSE m.rate_set_at END"
		" RETURNING *",
		3, TEXTOID, INT4OID, INTERVALOID);
	text	   *queue;
	Datum		values[3];
	char		nulls[3] = {' ', 'n', 'n'};
	AwaRate		rate;

	awa_check_writable("awa_set_queue_rate");
	queue = queue_arg(fcinfo, 0);
	awa_require_schema(AWA_SCHEMA_QUEUE_RATES, "awa_set_queue_rate");
	values[0] = PointerGetDatum(queue);
	if (awa_rate_args(fcinfo, 1, 2, &rate))
	{
		values[1] = Int32GetDatum(rate.max_claims);
		values[2] = IntervalPGetDatum(PG_GETARG_INTERVAL_P(2));
		nulls[1] = nulls[2] = ' ';
	}

	return queue_meta_upsert(fcinfo, &stmt, values, nulls);
}

/*
 * awa_forget_queue(queue) RETURNS boolean
 *
 * Remove a queue's settings (paused or not, concurrency limit, rate): the queue
 * then behaves as one that was never configured.  Its jobs are untouched.
 * True if it had settings.
 */
Datum
awa_forget_queue(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_STMT("awa_forget_queue: delete", SPI_OK_DELETE,
		"DELETE FROM awa.queue_meta WHERE queue = $1", 1, TEXTOID);
	Datum		values[1];
	bool		found;

	awa_check_writable("awa_forget_queue");

	values[0] = PointerGetDatum(queue_arg(fcinfo, 0));
	SPI_connect();
	found = awa_stmt_run(&stmt, values, NULL, 0) == 1;
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
	if (awa_engine_ring())
		PG_RETURN_INT64(awa_engine_drain(values[0]));

	SPI_connect();
	n = awa_job_drain(values[0]);
	SPI_finish();
	PG_RETURN_INT64(n);
}
