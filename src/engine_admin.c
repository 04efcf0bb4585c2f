/*-------------------------------------------------------------------------
 *
 * engine_admin.c
 *		The administration functions on the ring engine (docs/storage.md,
 *		"Step 5: administration on the ring engine"): awa_retry_failed,
 *		awa_discard_failed, awa_drain_queue, awa_cancel_by_unique_key and
 *		awa_get_job in a database
 *		whose awa.jobs is the ring's view, and what a direct UPDATE or
 *		DELETE of that view does.  The awa_* functions check their arguments
 *		as on the table, then call here (one line each); the answer has the
 *		same shape, states and errors on both engines.
 *
 *		awa_list_jobs, the queue functions (pause, resume, forget: by queue
 *		name, whatever engine holds its jobs) and the health check read or
 *		write the same relations on both engines and need nothing here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"

#include "awa.h"
#include "deps.h"
#include "engine_admin.h"
#include "engine_drain.h"
#include "job_state_sql.h"
#include "ring_admin.h"

PG_FUNCTION_INFO_V1(awa_jobs_instead_of_update);
PG_FUNCTION_INFO_V1(awa_jobs_instead_of_delete);

/*
 * The ring's failed jobs, as rows g of awa.ring_get: from the slots' done
 * rows of failed attempts (done_ended_idx) and the history's batches of
 * failed and cancelled jobs, each read again as it is now (a failed attempt
 * may have been retried since).
 */
#define RING_FAILED_SQL \
	"SELECT g.id, g.kind, g.queue, g.unique_key, g.unique_states FROM" \
	" (SELECT DISTINCT d.job_id AS id FROM awa.done d WHERE d.state = 'failed'" \
	"  UNION SELECT e.id FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) e" \
	"  WHERE h.failed AND e.state = 'failed') i" \
	" CROSS JOIN LATERAL awa.ring_get(i.id) g WHERE g.state = 'failed'"

/* See engine_admin.h. */
Datum
awa_engine_retry_failed(FunctionCallInfo fcinfo, Datum *kind_queue, const char *nulls)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTOID, TEXTOID};

	/*
	 * As awa_job_retry_failed (job.c): a unique job comes back only if no
	 * other job holds its key now (the ring's awa.unique_keys), and of
	 * failed jobs sharing a key only the newest.  The candidates are fixed
	 * first (MATERIALIZED) so that the retry runs on them only, in id order;
	 * awa.ring_retry is false for one no longer failed.  A job a reclaim
	 * moved into the history comes back from there (ring_revive.c).
	 */
	return awa_engine_rows(fcinfo, &plan,
						   "WITH f AS MATERIALIZED (" RING_FAILED_SQL
						   "  AND ($1::text IS NULL OR g.kind = $1) AND ($2::text IS NULL OR g.queue = $2)),"
						   " c AS MATERIALIZED (SELECT f.id FROM"
						   "  (SELECT f.*, f.unique_key IS NOT NULL"
						   "   AND awa.unique_state_held(f.unique_states, 'available') AS keyed,"
						   "   row_number() OVER (PARTITION BY f.unique_key ORDER BY f.id DESC) AS rn FROM f) f"
						   "  WHERE NOT f.keyed OR (f.rn = 1 AND NOT EXISTS (SELECT 1 FROM awa.unique_keys u"
						   "   WHERE u.unique_key = f.unique_key AND u.job_id <> f.id)))"
						   /* hook: rmisc -- a candidate deleted meanwhile is passed over */
						   " SELECT r.id FROM (SELECT c.id, awa.ring_retry(c.id, true) AS ok FROM c ORDER BY c.id) r"
						   " WHERE r.ok ORDER BY r.id",
						   2, types, kind_queue, nulls);
}

/* See engine_admin.h. */
int64
awa_engine_discard_failed(Datum kind, bool kind_isnull)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTOID};
	bool		isnull;
	Datum		ids;

	ids = awa_engine_value(&plan,
						   "SELECT coalesce(array_agg(f.id ORDER BY f.id), '{}') FROM (" RING_FAILED_SQL
						   "  AND ($1::text IS NULL OR g.kind = $1)) f",
						   1, types, &kind, kind_isnull ? "n" : NULL, false, -1, &isnull);
	/* a job retried since it was read stays: only the finished ones go */
	return awa_ring_delete_jobs(ids, true);
}

/* See engine_admin.h. */
int64
awa_engine_drain(Datum queue)
{
	/*
	 * hook: riso -- the queue's jobs waiting to run or waiting on an external
	 * system, each cancelled only if it still waits after a claim in progress
	 * of it ended; running ones are left to finish (engine_drain.c).
	 */
	return awa_engine_drain_waiting(queue);
}

/* See engine_admin.h. */
Datum
awa_engine_cancel_by_unique_key(FunctionCallInfo fcinfo)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTOID, JSONBOID, TEXTOID, INTERVALOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5];
	int			i;

	for (i = 0; i < 5; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	return awa_engine_rows(fcinfo, &plan,
						   "SELECT c.id FROM awa.ring_cancel_by_unique_key($1, $2, $3, $4, $5) c(id) ORDER BY c.id",
						   5, types, values, nulls);
}

/* See engine_admin.h. */
int64
awa_engine_rescue(void)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT4OID};
	Datum		max = Int32GetDatum(AWA_ENGINE_RESCUE_BATCH);
	bool		isnull;

	return DatumGetInt64(awa_engine_value(&plan, "SELECT awa.ring_rescue($1)", 1, types, &max, NULL,
										  true, sizeof(int64), &isnull));
}

/* See engine_admin.h. */
bool
awa_engine_table_step_skipped(bool of_table)
{
	return of_table && awa_engine_ring();
}

/* See engine_admin.h. */
Datum
awa_engine_get_job(FunctionCallInfo fcinfo, Datum id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID};
	bool		isnull;
	Datum		row;

	row = awa_engine_value(&plan, "SELECT awa.ring_get($1)", 1, types, &id, NULL, false, -1, &isnull);
	if (isnull)
		awa_job_not_found(DatumGetInt64(id));
	PG_RETURN_DATUM(row);
}

/*
 * awa.jobs_instead_of_update() -- INSTEAD OF UPDATE FOR EACH ROW trigger of
 * the view awa.jobs on the ring engine (src/sql/engine.sql).
 *
 * A job's row is the ring's account of what happened to it and cannot be
 * written directly: 0A000, naming the functions that change jobs.  Nothing
 * changes (the statement fails at its first row).
 */
Datum
awa_jobs_instead_of_update(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_INSTEAD(td->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.jobs_instead_of_update() must be called by an INSTEAD OF UPDATE trigger")));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("awa.jobs cannot be updated in a database on the ring engine: change jobs with"
					" awa_cancel, awa_retry, awa_retry_failed, awa_drain_queue or awa_cancel_by_unique_key"),
			 errdetail("This database keeps its jobs in the ring (awa.install_engine was ring);"
					   " awa.jobs is a view of it."),
			 errhint("Delete jobs with DELETE FROM awa.jobs or awa_discard_failed.")));
	PG_RETURN_NULL();
}

/*
 * awa.jobs_instead_of_delete() -- INSTEAD OF DELETE FOR EACH ROW trigger of
 * the view awa.jobs on the ring engine (src/sql/engine.sql).
 *
 * DELETE FROM awa.jobs deletes the job from the ring (ring_admin.c): a job
 * not finished is cancelled first -- its group may finish, its dependents
 * follow their policy for a cancelled parent --, then every row of it, its
 * unique key, its dependency and group rows and its count go.  A row the
 * ring no longer holds (another transaction deleted it) is not counted.
 */
Datum
awa_jobs_instead_of_delete(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	bool		isnull;
	int64		id;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_INSTEAD(td->tg_event) ||
		!TRIGGER_FIRED_BY_DELETE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.jobs_instead_of_delete() must be called by an INSTEAD OF DELETE FOR EACH ROW trigger")));
	id = DatumGetInt64(heap_getattr(td->tg_trigtuple, SPI_fnumber(RelationGetDescr(td->tg_relation), "id"),
									RelationGetDescr(td->tg_relation), &isnull));
	if (isnull || awa_ring_delete_jobs(awa_int8_array(&id, 1), false) == 0)
		return PointerGetDatum(NULL);
	return PointerGetDatum(td->tg_trigtuple);
}
