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
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "awa.h"
#include "deps.h"
#include "engine_admin.h"
#include "engine_drain.h"
#include "job_state_sql.h"
#include "ring.h"
#include "ring_admin.h"

PG_FUNCTION_INFO_V1(awa_jobs_instead_of_update);
PG_FUNCTION_INFO_V1(awa_jobs_instead_of_delete);
PG_FUNCTION_INFO_V1(awa_jobs_delete_statement);

/*
 * The ring's failed jobs, as rows g (id, kind, queue, unique_key,
 * unique_states): the jobs with a done row of a failed attempt
 * (done_ended_idx), each one's state read as it is now by index probes
 * (RING_JOB_STATE_SQL: a failed attempt may have been retried since), and
 * the history's failed jobs (batches of failed and cancelled jobs), each
 * read again with awa.ring_get (one retried from the history since has
 * rows in the slots again and is read there).
 */
#define RING_FAILED_SQL \
	"SELECT g.id, g.kind, g.queue, g.unique_key, g.unique_states FROM" \
	" (SELECT DISTINCT d.job_id AS id FROM awa.done d WHERE d.state = 'failed') i" \
	" CROSS JOIN LATERAL " RING_JOB_STATE_SQL("i.id") " g WHERE g.state = 'failed'" \
	" UNION ALL" \
	" SELECT g.id, g.kind, g.queue, g.unique_key, g.unique_states FROM" \
	" (SELECT DISTINCT e.id FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) e" \
	"  WHERE h.failed AND e.state = 'failed'" \
	"   AND NOT EXISTS (SELECT 1 FROM awa.ready r WHERE r.id = e.id)) i" \
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
						   "WITH f AS MATERIALIZED (SELECT g.* FROM (" RING_FAILED_SQL ") g"
						   "  WHERE ($1::text IS NULL OR g.kind = $1) AND ($2::text IS NULL OR g.queue = $2)),"
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
						   "SELECT coalesce(array_agg(f.id ORDER BY f.id), '{}') FROM (" RING_FAILED_SQL ") f"
						   " WHERE ($1::text IS NULL OR f.kind = $1)",
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
			 errmsg("awa.jobs cannot be updated: change jobs with"
					" awa_cancel, awa_retry, awa_retry_failed, awa_drain_queue or awa_cancel_by_unique_key"),
			 errdetail("awa.jobs is a view of awa's storage (awa.install_engine = ring when the extension"
					   " was created)."),
			 errhint("Delete jobs with DELETE FROM awa.jobs or awa_discard_failed.")));
	PG_RETURN_NULL();
}

/*
 * DELETE FROM awa.jobs on the ring engine deletes its jobs together at the
 * statement's end (docs/storage.md, "Step 5: DELETE and retry of many jobs
 * on the default storage"): the INSTEAD OF DELETE row trigger only notes
 * the job's id, and the AFTER DELETE statement trigger deletes the noted
 * jobs, DELETE_CHUNK ids per awa_ring_delete_jobs call -- one job at a
 * time cost about 1 ms each (a dozen statements), 2,500 jobs 2.5 s.
 *
 * The notes of each DELETE statement are a frame, pushed by its BEFORE
 * DELETE statement trigger and taken by its AFTER one; frames nest as the
 * statements do (a DELETE of awa.jobs run by a function that a DELETE of
 * awa.jobs calls).  A frame belongs to the subtransaction that pushed it:
 * its abort drops the frames pushed in it (an error between the two
 * triggers, caught by a PL/pgSQL exception block), the transaction's end
 * drops them all.  They live in TopTransactionContext.
 */
#define DELETE_CHUNK	10000

typedef struct DeleteFrame
{
	SubTransactionId subid;		/* the subtransaction that pushed it */
	int64	   *ids;
	int			n;
	int			max;
	struct DeleteFrame *prev;
} DeleteFrame;

static DeleteFrame *delete_top = NULL;
static bool delete_callbacks = false;

static void
delete_xact_callback(XactEvent event, void *arg)
{
	delete_top = NULL;			/* its memory goes with TopTransactionContext */
}

static void
delete_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
						void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	/* subtransaction ids grow within a transaction: frames of it and of its children */
	while (delete_top != NULL && delete_top->subid >= mySubid)
		delete_top = delete_top->prev;
}

/*
 * awa.jobs_delete_statement() -- BEFORE and AFTER DELETE FOR EACH
 * STATEMENT trigger of the view awa.jobs on the ring engine: push a frame
 * for the statement's ids, or delete the jobs of its frame.
 */
Datum
awa_jobs_delete_statement(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	DeleteFrame *f;
	int			from;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_DELETE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || TRIGGER_FIRED_INSTEAD(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.jobs_delete_statement() must be called by a BEFORE or AFTER DELETE FOR EACH STATEMENT trigger")));
	if (!delete_callbacks)
	{
		RegisterXactCallback(delete_xact_callback, NULL);
		RegisterSubXactCallback(delete_subxact_callback, NULL);
		delete_callbacks = true;
	}
	if (TRIGGER_FIRED_BEFORE(td->tg_event))
	{
		f = MemoryContextAllocZero(TopTransactionContext, sizeof(DeleteFrame));
		f->subid = GetCurrentSubTransactionId();
		f->prev = delete_top;
		delete_top = f;
		return PointerGetDatum(NULL);
	}
	f = delete_top;
	if (f == NULL)
		return PointerGetDatum(NULL);	/* its frame went with an aborted subtransaction */
	delete_top = f->prev;
	for (from = 0; from < f->n; from += DELETE_CHUNK)
		(void) awa_ring_delete_jobs(awa_int8_array(f->ids + from, Min(f->n - from, DELETE_CHUNK)), false);
	if (f->ids != NULL)
		pfree(f->ids);
	pfree(f);
	return PointerGetDatum(NULL);
}

/*
 * awa.jobs_instead_of_delete() -- INSTEAD OF DELETE FOR EACH ROW trigger of
 * the view awa.jobs on the ring engine (src/sql/engine.sql).
 *
 * DELETE FROM awa.jobs deletes the job from the ring (ring_admin.c): a job
 * not finished is cancelled first -- its group may finish, its dependents
 * follow their policy for a cancelled parent --, then every row of it, its
 * unique key, its dependency and group rows and its count go.  The row is
 * noted here and deleted at the statement's end with the statement's other
 * rows (above); a job another transaction deleted meanwhile is counted in
 * the statement's rows but deleted once.  Without a frame (a database whose
 * statement triggers are missing) it is deleted at once.
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
	if (isnull)
		return PointerGetDatum(NULL);
	if (delete_top != NULL)
	{
		DeleteFrame *f = delete_top;

		if (f->n == f->max)
		{
			f->max = Max(64, f->max * 2);
			f->ids = f->ids == NULL ? MemoryContextAlloc(TopTransactionContext, sizeof(int64) * f->max)
				: repalloc(f->ids, sizeof(int64) * f->max);
		}
		f->ids[f->n++] = id;
		return PointerGetDatum(td->tg_trigtuple);
	}
	if (awa_ring_delete_jobs(awa_int8_array(&id, 1), false) == 0)
		return PointerGetDatum(NULL);
	return PointerGetDatum(td->tg_trigtuple);
}

/*
 * awa_list_jobs on the ring: the candidates below the cursor ($1), up to
 * $2 of each source, newest first, and the floor down to which every
 * source was read whole (NULL: every source ran out).  A source gives the
 * ids of the jobs that may be in the state asked for ($3), by an index of
 * the relation that holds that state: any job (no state, completed): its
 * ready rows, scheduled rows of run_lease 0 and the history's; failed,
 * cancelled, waiting_external: done rows of that state (done_ended_idx)
 * and the history's; running: receipts without a done row; available:
 * ready rows without receipt or done row; scheduled, retryable: rows of
 * awa.scheduled.  awa_engine_list_jobs then reads each candidate's state
 * by index probes (RING_JOB_STATE_SQL) and the rows of those that may
 * match with awa.ring_get, whose filters keep the page's rows.  The floor:
 * a source that gave $2 rows was read whole down to its smallest id only,
 * so the batch is the candidates down to the greatest such id.
 */
#define RING_LIST_FLOOR_SQL(SOURCES) \
	"WITH " SOURCES "," \
	" f AS (SELECT greatest(" \
	"   (SELECT min(a.id) FROM a HAVING count(*) >= $2), (SELECT min(b.id) FROM b HAVING count(*) >= $2)," \
	"   (SELECT min(h.id) FROM h HAVING count(*) >= $2)) AS floor)" \
	" SELECT i.id, f.floor FROM (SELECT a.id FROM a UNION SELECT b.id FROM b UNION SELECT h.id FROM h) i, f" \
	" WHERE f.floor IS NULL OR i.id >= f.floor ORDER BY i.id DESC"
#define RING_LIST_ATTRS_SQL(p) \
	" AND ($4::text IS NULL OR " p "kind = $4) AND ($5::text IS NULL OR " p "queue = $5)" \
	" AND ($6::text IS NULL OR " p "tags @> ARRAY[$6])"
/* the attributes of the attempt of done row or receipt p (its ready row) */
#define RING_LIST_ATTEMPT_SQL(p) \
	" AND (($4::text IS NULL AND $5::text IS NULL AND $6::text IS NULL) OR EXISTS (SELECT 1 FROM awa.ready q" \
	"  WHERE q.id = " p "job_id AND q.run_lease = " p "run_lease - 1 AND q.slot = " p "slot" \
	RING_LIST_ATTRS_SQL("q.") "))"
#define RING_LIST_HISTORY_SQL(COND) \
	" h AS (SELECT e.id FROM awa.ring_history x CROSS JOIN LATERAL unnest(x.jobs) e" \
	"  WHERE x.id_lo < $1 AND e.id < $1 " COND RING_LIST_ATTRS_SQL("e.") " ORDER BY e.id DESC LIMIT $2)"
#define RING_LIST_NONE_SQL " h AS (SELECT NULL::bigint AS id WHERE false)"

static const char *const ring_list_sources[] = {
	/* 0: any state (and completed) */
	RING_LIST_FLOOR_SQL(
		" a AS (SELECT r.id FROM awa.ready r WHERE r.id < $1" RING_LIST_ATTRS_SQL("r.")
		"  ORDER BY r.id DESC LIMIT $2),"
		" b AS (SELECT s.id FROM awa.scheduled s WHERE s.id < $1 AND s.run_lease = 0 AND $3::text IS NULL"
		RING_LIST_ATTRS_SQL("s.") " ORDER BY s.id DESC LIMIT $2),"
		RING_LIST_HISTORY_SQL("")),
	/* 1: failed, cancelled, waiting_external */
	RING_LIST_FLOOR_SQL(
		" a AS (SELECT d.job_id AS id FROM awa.done d WHERE d.state = $3::awa.job_state AND d.job_id < $1"
		RING_LIST_ATTEMPT_SQL("d.") " ORDER BY d.job_id DESC LIMIT $2),"
		" b AS (SELECT NULL::bigint AS id WHERE false),"
		RING_LIST_HISTORY_SQL("AND e.state = $3::awa.job_state")),
	/* 2: running */
	RING_LIST_FLOOR_SQL(
		" a AS (SELECT c.job_id AS id FROM awa.claims c WHERE c.job_id < $1 AND $3::text IS NOT NULL"
		"  AND NOT EXISTS (SELECT 1 FROM awa.done x WHERE x.job_id = c.job_id AND x.run_lease = c.run_lease"
		"   AND x.slot = c.slot)" RING_LIST_ATTEMPT_SQL("c.") " ORDER BY c.job_id DESC LIMIT $2),"
		" b AS (SELECT NULL::bigint AS id WHERE false),"
		RING_LIST_NONE_SQL),
	/* 3: available */
	RING_LIST_FLOOR_SQL(
		" a AS (SELECT w.id FROM awa.ready w WHERE w.id < $1 AND $3::text IS NOT NULL" RING_LIST_ATTRS_SQL("w.")
		"  AND NOT EXISTS (SELECT 1 FROM awa.claims x WHERE x.job_id = w.id AND x.run_lease = w.run_lease + 1"
		"   AND x.slot = w.slot)"
		"  AND NOT EXISTS (SELECT 1 FROM awa.done x WHERE x.job_id = w.id AND x.run_lease = w.run_lease + 1"
		"   AND x.slot = w.slot) ORDER BY w.id DESC LIMIT $2),"
		" b AS (SELECT NULL::bigint AS id WHERE false),"
		RING_LIST_NONE_SQL),
	/* 4: scheduled, retryable */
	RING_LIST_FLOOR_SQL(
		" a AS (SELECT s.id FROM awa.scheduled s WHERE s.id < $1 AND $3::text IS NOT NULL" RING_LIST_ATTRS_SQL("s.")
		"  ORDER BY s.id DESC LIMIT $2),"
		" b AS (SELECT NULL::bigint AS id WHERE false),"
		RING_LIST_NONE_SQL),
};

/* Which of ring_list_sources finds the jobs of state (NULL: any). */
static int
ring_list_source(const char *state)
{
	if (state == NULL || strcmp(state, "completed") == 0)
		return 0;
	if (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0 ||
		strcmp(state, "waiting_external") == 0)
		return 1;
	if (strcmp(state, "running") == 0)
		return 2;
	if (strcmp(state, "available") == 0)
		return 3;
	return 4;
}

/* See engine_admin.h. */
Datum
awa_engine_list_jobs(FunctionCallInfo fcinfo, const char *state, Datum *values, const char *nulls)
{
	static SPIPlanPtr source_plans[lengthof(ring_list_sources)];
	static SPIPlanPtr check_plan = NULL;
	static SPIPlanPtr read_plan = NULL;
	static const Oid source_types[] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	static const Oid read_types[] = {INT8ARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	int			source = ring_list_source(state);
	int64		cursor = nulls[3] == 'n' ? PG_INT64_MAX : DatumGetInt64(values[3]);
	int32		lim = DatumGetInt32(values[4]);
	int64		found = 0;
	int64		batch = Max(lim * 2, 100);
	bool		more = true;
	Datum		args[5];
	char		argnulls[5];
	int			i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	awa_plan(&source_plans[source], ring_list_sources[source], 6, (Oid *) source_types);
	/* the candidates that may match, in their order: state, kind and queue by index probes */
	awa_plan(&check_plan,
			 "SELECT k.id FROM unnest($1::int8[]) WITH ORDINALITY AS k(id, o)"
			 " LEFT JOIN LATERAL " RING_JOB_STATE_SQL("k.id") " s ON true"
			 " WHERE s.id IS NULL OR (($2::text IS NULL OR s.state = $2::awa.job_state)"
			 "  AND ($3::text IS NULL OR s.kind = $3) AND ($4::text IS NULL OR s.queue = $4))"
			 " ORDER BY k.o",
			 5, (Oid *) read_types);
	/*
	 * their rows, as they are, and the filters: hook: rstats -- those in
	 * the slots or awa.scheduled read by one statement (one plan run for
	 * the page, not one per job: docs/storage.md, "Step 5: stats and admin
	 * reads in constant time on the ring"), the rest (the history, or a
	 * job a reclaim moved meanwhile) by awa.ring_get, one at a time
	 */
	awa_plan(&read_plan,
			 "SELECT g.* FROM unnest($1::int8[]) WITH ORDINALITY AS k(id, o)"
			 " LEFT JOIN LATERAL (SELECT ROW(j.*)::awa.jobs AS r FROM awa.ring_live_jobs j"
			 "  WHERE j.id = k.id LIMIT 1) x ON true"
			 " CROSS JOIN LATERAL (SELECT coalesce(x.r, awa.ring_get(k.id)) AS r OFFSET 0) y"
			 " CROSS JOIN LATERAL (SELECT (y.r).*) g"
			 " WHERE g.id IS NOT NULL AND ($2::text IS NULL OR g.state = $2::awa.job_state)"
			 " AND ($3::text IS NULL OR g.kind = $3) AND ($4::text IS NULL OR g.queue = $4)"
			 " AND ($5::text IS NULL OR g.tags @> ARRAY[$5])"
			 " ORDER BY k.o",
			 5, (Oid *) read_types);
	args[1] = state == NULL ? (Datum) 0 : CStringGetTextDatum(state);
	argnulls[0] = ' ';
	argnulls[1] = state == NULL ? 'n' : ' ';
	for (i = 0; i < 3; i++)
	{
		args[2 + i] = values[i];
		argnulls[2 + i] = nulls[i];
	}
	/* batch by batch of candidates, newest first, until the page is full or no job is left */
	while (more && found < lim)
	{
		Datum		sargs[6];
		char		snulls[6] = {' ', ' ', argnulls[1], nulls[0], nulls[1], nulls[2]};
		Datum	   *ids;
		int			n;
		int			done;
		bool		isnull;

		sargs[0] = Int64GetDatum(cursor);
		sargs[1] = Int64GetDatum(batch);
		sargs[2] = args[1];
		sargs[3] = values[0];
		sargs[4] = values[1];
		sargs[5] = values[2];
		n = (int) awa_ring_run(source_plans[source], sargs, snulls, InvalidSnapshot, true, SPI_OK_SELECT,
							   "awa_list_jobs: the ring's candidates");
		if (n == 0)
			break;
		ids = palloc(sizeof(Datum) * n);
		for (i = 0; i < n; i++)
			ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		more = !isnull;
		cursor = DatumGetInt64(ids[n - 1]);

		args[0] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		/*
		 * hook: rstats -- no filter the source did not apply already (any
		 * job; available: a ready row without receipt or done row is the
		 * newest attempt of an available job, of the kind and queue asked
		 * for): every candidate matches, but for one that ended meanwhile,
		 * which the rows' own filters drop; no probe of their states
		 */
		if (!((source == 0 && state == NULL) || source == 3))
		{
			n = (int) awa_ring_run(check_plan, args, argnulls, InvalidSnapshot, true, SPI_OK_SELECT,
								   "awa_list_jobs: the ring's candidates' states");
			for (i = 0; i < n; i++)
				ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		}
		/* the rows, as many at a time as the page still needs */
		for (done = 0; done < n && found < lim;)
		{
			int			take = Min(n - done, (int) (lim - found));
			uint64		got;
			uint64		j;

			args[0] = PointerGetDatum(construct_array(ids + done, take, INT8OID, sizeof(int64),
													  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			got = awa_ring_run(read_plan, args, argnulls, InvalidSnapshot, true, SPI_OK_SELECT,
							   "awa_list_jobs: the ring's rows");
			for (j = 0; j < got && found < lim; j++, found++)
				awa_put_job(fcinfo, SPI_tuptable->vals[j], SPI_tuptable->tupdesc);
			done += take;
		}
		batch = Min(batch * 2, 5000);
	}
	SPI_finish();
	return (Datum) 0;
}
