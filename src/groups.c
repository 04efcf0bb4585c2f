/*-------------------------------------------------------------------------
 *
 * groups.c
 *		Groups of jobs: a job may belong to one (awa.jobs.group_id);
 *		awa_group_stats counts a group's jobs by state, and
 *		awa_group_on_finish registers a job to enqueue, exactly once, when
 *		every job of the group has finished (completed, failed or cancelled).
 *
 * When a group is finished.  A group is finished when it has a callback
 * registered and none of its jobs is unfinished in the newest committed
 * state of the database, counting no job that a still open transaction is
 * enqueueing into it.  Three parties meet on two transaction-level advisory
 * locks per group (a hash of its id; a collision only makes two groups wait
 * for each other):
 *
 *   the enqueue lock: every write of a job of the group takes it shared
 *	   (awa_job_row and the COPY trigger, so every way of enqueueing does;
 *	   grouplock.c),
 *	   until its transaction ends; the check below takes it exclusively, so
 *	   it waits for open enqueueing transactions and then sees their jobs;
 *   the finish lock: every statement that finishes a job of the group takes
 *	   it shared (the counting trigger of awa.jobs calls awa_groups_changes),
 *	   awa_group_on_finish exclusively.
 *
 * A statement that finishes a job of a group takes the finish lock shared,
 * then looks for the group's pending callback in the newest snapshot; if
 * there is one it takes the enqueue lock exclusively and checks, again in
 * the newest snapshot, that the callback is still pending and no job of
 * the group is unfinished; then it enqueues the callback job and records
 * its id.  Two transactions finishing the group's last two jobs at once
 * serialize on the exclusive enqueue lock: the one that gets it second
 * reads after the first committed (or rolled back), so it sees both jobs
 * finished, and the first, which saw the other job unfinished, enqueued
 * nothing.  awa_group_on_finish takes the finish lock exclusively, so it
 * waits for the transactions finishing jobs of the group that could not
 * see its callback, and those that come later see it; it then takes the
 * enqueue lock and does the same check (a group with nothing unfinished
 * gets its callback job at once).  The newest snapshot (not the
 * transaction's) makes this hold in REPEATABLE READ and SERIALIZABLE too.
 *
 * Costs.  Without groups: the statement trigger reads group_id of each row
 * it already reads for the counters; no lock, no query.  A job of a group:
 * one lock at enqueue (grouplock.c); per statement that
 * finishes jobs of a group, one lock and one index probe of
 * awa.group_callbacks per group; with a callback pending, the finishing
 * transactions of that group take turns between the check and their
 * commit, and wait for open transactions enqueueing into it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lockdefs.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "engine_deps.h"
#include "groups.h"

PG_FUNCTION_INFO_V1(awa_group_stats);
PG_FUNCTION_INFO_V1(awa_group_on_finish);

/* The unfinished states, as SQL (job_state.def: not final). */
#define UNFINISHED_SQL \
	"('scheduled', 'available', 'running', 'retryable', 'waiting_external')"

/* Run a prepared statement in the newest snapshot (caller in SPI). */
static int
run_latest(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	return SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
								InvalidSnapshot, false, true, 0);
}

/*
 * If the group has a pending callback and no unfinished job, in the newest
 * snapshot, enqueue the callback job and record it; returns its id, or 0.
 * One statement: the callback job goes in through a plain INSERT, which the
 * BEFORE INSERT trigger of awa.jobs checks and announces as it does COPY's
 * rows (copy.c).  Caller is in SPI and holds the group's enqueue lock
 * exclusively.
 */
static int64
fire_if_finished(Datum group_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			textoid = TEXTOID;
	bool		isnull;

	if (run_latest(awa_plan(&plan,
							"WITH c AS (SELECT c.group_id, c.kind, c.args, c.queue, c.priority,"
							"   c.max_attempts, c.metadata FROM awa.group_callbacks c"
							"   WHERE c.group_id = $1 AND c.callback_job_id IS NULL"
							"   AND NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.group_id = c.group_id"
							"     AND j.state IN " UNFINISHED_SQL ")),"
							" j AS (INSERT INTO awa.jobs (kind, args, queue, priority, max_attempts, metadata)"
							"   SELECT kind, args, queue, priority, max_attempts,"
							"     metadata || pg_catalog.jsonb_build_object('finished_group', group_id)"
							"   FROM c RETURNING id)"
							" UPDATE awa.group_callbacks g SET callback_job_id = j.id,"
							"   finished_at = pg_catalog.statement_timestamp()"
							" FROM j WHERE g.group_id = $1 RETURNING j.id",
							1, &textoid),
				   &group_id, NULL) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "awa: enqueueing a group's callback failed");
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * A statement finished jobs of this group: take its finish lock, and if it
 * has a pending callback, take its enqueue lock and enqueue the callback
 * when nothing of the group is unfinished (see the top of this file).
 */
static void
group_finished_jobs(const char *group_id, int len)
{
	static SPIPlanPtr pending = NULL;
	Oid			textoid = TEXTOID;
	Datum		g = PointerGetDatum(cstring_to_text_with_len(group_id, len));

	awa_group_lock(AWA_GROUP_FINISH_LOCK, group_id, len, ShareLock);
	SPI_connect();
	if (run_latest(awa_plan(&pending,
							"SELECT 1 FROM awa.group_callbacks"
							" WHERE group_id = $1 AND callback_job_id IS NULL",
							1, &textoid),
				   &g, NULL) != SPI_OK_SELECT)
		elog(ERROR, "awa: reading a group's callback failed");
	if (SPI_processed > 0)
	{
		awa_group_lock(AWA_GROUP_ENQUEUE_LOCK, group_id, len, ExclusiveLock);
		(void) fire_if_finished(g);
	}
	SPI_finish();
}

typedef struct GroupName
{
	char	   *name;
	int			len;
} GroupName;

static int
group_name_cmp(const void *a, const void *b)
{
	const GroupName *x = a;
	const GroupName *y = b;
	int			c = memcmp(x->name, y->name, Min(x->len, y->len));

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * Add to names the group of each row of a transition table whose state is
 * finished (final) or not, as wanted.
 */
static void
collect_groups(Tuplestorestate *ts, TupleDesc desc, int a_group, int a_state,
			   const Datum *states, bool want_final, GroupName **names, int *n, int *cap)
{
	TupleTableSlot *slot;

	if (ts == NULL)
		return;
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		gnull,
					snull;
		Datum		g = slot_getattr(slot, a_group + 1, &gnull);
		Datum		s = slot_getattr(slot, a_state + 1, &snull);
		bool		final;
		text	   *gt;

		if (gnull || snull)
			continue;
		final = (s == states[AWA_STATE_COMPLETED] || s == states[AWA_STATE_FAILED] ||
				 s == states[AWA_STATE_CANCELLED]);
		if (final != want_final)
			continue;
		if (*n == *cap)
		{
			*cap = *cap == 0 ? 16 : *cap * 2;
			*names = *names == NULL ? palloc(sizeof(GroupName) * *cap) :
				repalloc(*names, sizeof(GroupName) * *cap);
		}
		gt = DatumGetTextPP(g);
		(*names)[*n].len = VARSIZE_ANY_EXHDR(gt);
		(*names)[*n].name = pnstrdup(VARDATA_ANY(gt), (*names)[*n].len);
		(*n)++;
	}
	tuplestore_rescan(ts);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * Called by the counting statement trigger of awa.jobs (counters.c) with
 * the statement's transition tables: each group some job of which the
 * statement left finished (UPDATE), or deleted unfinished (DELETE), may now
 * be finished; check each once, in the order of their ids.
 */
void
awa_groups_changes(TriggerData *td)
{
	static AwaJobColumns cols;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	GroupName  *names = NULL;
	int			n = 0;
	int			cap = 0;
	int			i;

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		return;
	awa_job_columns(desc, &cols);
	if (cols.group_id < 0 || !awa_schema_has(AWA_SCHEMA_GROUPS))
		return;
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		collect_groups(td->tg_newtable, desc, cols.group_id, cols.state, cols.states,
					   true, &names, &n, &cap);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		collect_groups(td->tg_oldtable, desc, cols.group_id, cols.state, cols.states,
					   false, &names, &n, &cap);
	if (n == 0)
		return;
	qsort(names, n, sizeof(GroupName), group_name_cmp);
	for (i = 0; i < n; i++)
		if (i == 0 || group_name_cmp(&names[i - 1], &names[i]) != 0)
			group_finished_jobs(names[i].name, names[i].len);
}

/* A group id argument: not NULL (22004), 1 to 200 characters (22023). */
static text *
group_id_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *g;

	awa_check_not_null(fcinfo, argno, "group_id");
	g = PG_GETARG_TEXT_PP(argno);
	awa_check_name(g, "group_id");
	awa_require_schema(AWA_SCHEMA_GROUPS, "groups");
	return g;
}

/*
 * awa_group_stats(group_id text) RETURNS TABLE (total, scheduled, ...,
 * unfinished, callback_job_id, finished_at)
 *
 * One row: the group's jobs by state, read at the caller's snapshot (an
 * index scan of the group's jobs), and its callback's job id and time once
 * enqueued.  A group nobody enqueued into gives zeros.
 */
Datum
awa_group_stats(PG_FUNCTION_ARGS)
{
	static AwaStmt stats = AWA_QUERY("awa_group_stats: counting a group's jobs",
									 "SELECT count(*) AS total,"
									 " count(*) FILTER (WHERE state = 'scheduled') AS scheduled,"
									 " count(*) FILTER (WHERE state = 'available') AS available,"
									 " count(*) FILTER (WHERE state = 'running') AS running,"
									 " count(*) FILTER (WHERE state = 'completed') AS completed,"
									 " count(*) FILTER (WHERE state = 'retryable') AS retryable,"
									 " count(*) FILTER (WHERE state = 'failed') AS failed,"
									 " count(*) FILTER (WHERE state = 'cancelled') AS cancelled,"
									 " count(*) FILTER (WHERE state = 'waiting_external') AS waiting_external,"
									 " count(*) FILTER (WHERE state IN " UNFINISHED_SQL ") AS unfinished,"
									 " (SELECT c.callback_job_id FROM awa.group_callbacks c"
									 "   WHERE c.group_id = $1) AS callback_job_id,"
									 " (SELECT c.finished_at FROM awa.group_callbacks c"
									 "   WHERE c.group_id = $1) AS finished_at"
									 " FROM awa.jobs WHERE group_id = $1",
									 1, TEXTOID);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		g = PointerGetDatum(group_id_arg(fcinfo, 0));
	Datum		values[12];
	bool		nulls[12];
	int			i;

	if (awa_engine_ring())
		return awa_engine_group_stats(fcinfo, g);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	if (awa_stmt_run(&stats, &g, NULL, 0) != 1)
		elog(ERROR, "awa_group_stats: no result");
	for (i = 0; i < 12; i++)
		values[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &nulls[i]);
	/* put before SPI_finish frees the row (the tuplestore copies it) */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	SPI_finish();
	return (Datum) 0;
}

/*
 * A finish callback's job, arguments 1 to 6 of awa_group_on_finish's
 * signature (kind, args, queue, priority, max_attempts, metadata; the
 * caller has refused NULLs): checked as awa_insert checks them (22023), and
 * the values of a row of the callbacks' table (group_callbacks' columns
 * group_id to metadata) in values[0..6].  Then the group's finish and
 * enqueue locks, exclusively (the top of this file).  Also
 * awa.ring_group_on_finish's (ring_deps.c).
 */
void
awa_group_callback_args(FunctionCallInfo fcinfo, text *g, Datum *values)
{
	AwaJob		job = {0};

	job.kind = PG_GETARG_TEXT_PP(1);
	job.args = PG_GETARG_JSONB_P(2);
	job.queue = PG_GETARG_TEXT_PP(3);
	job.priority = PG_GETARG_INT32(4);
	job.max_attempts = PG_GETARG_INT32(5);
	job.metadata = PG_GETARG_JSONB_P(6);
	job.tags = construct_empty_array(TEXTOID);
	awa_validate_job(&job);

	awa_group_lock(AWA_GROUP_FINISH_LOCK, VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g), ExclusiveLock);
	awa_group_lock(AWA_GROUP_ENQUEUE_LOCK, VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g), ExclusiveLock);

	values[0] = PointerGetDatum(g);
	values[1] = PointerGetDatum(job.kind);
	values[2] = JsonbPGetDatum(job.args);
	values[3] = PointerGetDatum(job.queue);
	values[4] = Int16GetDatum((int16) job.priority);
	values[5] = Int16GetDatum((int16) job.max_attempts);
	values[6] = JsonbPGetDatum(job.metadata);
}

/*
 * awa_group_on_finish(group_id, kind, args, queue, priority, max_attempts,
 * metadata) RETURNS bigint
 *
 * Register the job to enqueue when every job of the group has finished
 * (awa_insert's fields and checks; its metadata gains finished_group, the
 * group's id).  If nothing of the group is unfinished now, the job is
 * enqueued at once and its id returned; else NULL, and the transaction
 * that finishes the group's last job enqueues it.  One callback per group:
 * 42710 if it has one (enqueued or not).
 */
Datum
awa_group_on_finish(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT2OID,
	INT2OID, JSONBOID};
	static const char *const names[] = {"group_id", "kind", "args", "queue", "priority",
	"max_attempts", "metadata"};
	text	   *g;
	Datum		values[7];
	int64		id;
	int			i;

	awa_check_writable("awa_group_on_finish");
	for (i = 0; i < 7; i++)
		awa_check_not_null(fcinfo, i, names[i]);
	g = group_id_arg(fcinfo, 0);
	if (awa_engine_ring())
		return awa_engine_group_on_finish(fcinfo);
	awa_group_callback_args(fcinfo, g, values);
	SPI_connect();
	if (SPI_execute_plan(awa_plan(&plan,
								  "INSERT INTO awa.group_callbacks (group_id, kind, args, queue,"
								  " priority, max_attempts, metadata)"
								  " VALUES ($1, $2, $3, $4, $5, $6, $7)"
								  " ON CONFLICT (group_id) DO NOTHING",
								  7, (Oid *) argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "awa_group_on_finish: insert failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("group \"%s\" has a finish callback already", text_to_cstring(g)),
				 errhint("A group has at most one; use another group id for another batch.")));
	id = fire_if_finished(PointerGetDatum(g));
	SPI_finish();
	if (id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}
