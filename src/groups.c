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
 *	   (awa_job_row and the COPY trigger, so every way of enqueueing does),
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
 * Costs.  Without groups, nothing (one column-index test per statement
 * trigger call).  A job of a group: one lock at enqueue; per statement that
 * finishes jobs of a group, one lock and one index probe of
 * awa.group_callbacks per group; with a callback pending, the finishing
 * transactions of that group take turns between the check and their
 * commit, and wait for open transactions enqueueing into it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/hash.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "groups.h"

PG_FUNCTION_INFO_V1(awa_group_stats);
PG_FUNCTION_INFO_V1(awa_group_on_finish);

/* The first key of a group's two advisory locks (the second: its hash). */
#define AWA_GROUP_ENQUEUE_LOCK	0x61776701
#define AWA_GROUP_FINISH_LOCK	0x61776702

/* The unfinished states, as SQL (job_state.def: not final). */
#define UNFINISHED_SQL \
	"('scheduled', 'available', 'running', 'retryable', 'waiting_external')"

/* Take one of a group's locks until the end of the transaction. */
static void
group_lock(uint32 space, const char *group_id, int len, LOCKMODE mode)
{
	LOCKTAG		tag;
	uint32		h = DatumGetUInt32(hash_any((const unsigned char *) group_id, len));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, space, h, 2);
	(void) LockAcquire(&tag, mode, false, false);
}

/*
 * A job of this group is being written: hold the group's enqueue lock
 * shared until the transaction ends, so that no callback of the group is
 * enqueued before its jobs are visible (see the top of this file).
 */
void
awa_group_lock_enqueue(text *group_id)
{
	group_lock(AWA_GROUP_ENQUEUE_LOCK, VARDATA_ANY(group_id),
			   VARSIZE_ANY_EXHDR(group_id), ShareLock);
}

/* Run a prepared statement in the newest snapshot (caller in SPI). */
static int
run_latest(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	return SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
								InvalidSnapshot, false, false, 0);
}

/*
 * If the group has a pending callback and no unfinished job, in the newest
 * snapshot, enqueue the callback job and record it; returns its id, or 0.
 * Caller is in SPI and holds the group's enqueue lock exclusively.
 */
static int64
fire_if_finished(Datum group_id)
{
	static SPIPlanPtr pending = NULL;
	static SPIPlanPtr record = NULL;
	Oid			textoid = TEXTOID;
	Oid			recordtypes[2] = {TEXTOID, INT8OID};
	AwaJob		job = {0};
	AwaEnqueue	e;
	TupleDesc	d;
	HeapTuple	t;
	bool		isnull;
	int64		id;
	Datum		values[2];

	if (run_latest(awa_plan(&pending,
							"SELECT c.kind, c.args, c.queue, c.priority, c.max_attempts,"
							" c.metadata || pg_catalog.jsonb_build_object('finished_group', c.group_id)"
							"   AS metadata,"
							" EXISTS (SELECT 1 FROM awa.jobs j WHERE j.group_id = c.group_id"
							"   AND j.state IN " UNFINISHED_SQL ") AS busy"
							" FROM awa.group_callbacks c"
							" WHERE c.group_id = $1 AND c.callback_job_id IS NULL",
							1, &textoid),
				   &group_id, NULL) != SPI_OK_SELECT)
		elog(ERROR, "awa: reading a group's callback failed");
	if (SPI_processed == 0)
		return 0;
	d = SPI_tuptable->tupdesc;
	t = SPI_tuptable->vals[0];
	if (DatumGetBool(SPI_getbinval(t, d, 7, &isnull)))
		return 0;

	job.kind = DatumGetTextPP(SPI_getbinval(t, d, 1, &isnull));
	job.args = DatumGetJsonbP(SPI_getbinval(t, d, 2, &isnull));
	job.queue = DatumGetTextPP(SPI_getbinval(t, d, 3, &isnull));
	job.priority = DatumGetInt16(SPI_getbinval(t, d, 4, &isnull));
	job.max_attempts = DatumGetInt16(SPI_getbinval(t, d, 5, &isnull));
	job.metadata = DatumGetJsonbP(SPI_getbinval(t, d, 6, &isnull));
	job.tags = construct_empty_array(TEXTOID);
	awa_validate_job(&job);

	awa_enqueue_begin(&e, true);
	awa_enqueue(&e, &job);
	if (e.slot != NULL)
		id = DatumGetInt64(slot_getattr(e.slot, awa_job_column(e.slot->tts_tupleDescriptor, "id") + 1,
										&isnull));
	else
		id = DatumGetInt64(SPI_getbinval(e.tuple, e.desc, SPI_fnumber(e.desc, "id"), &isnull));
	awa_enqueue_end(&e);

	values[0] = group_id;
	values[1] = Int64GetDatum(id);
	if (run_latest(awa_plan(&record,
							"UPDATE awa.group_callbacks SET callback_job_id = $2,"
							" finished_at = pg_catalog.statement_timestamp()"
							" WHERE group_id = $1 AND callback_job_id IS NULL",
							2, recordtypes),
				   values, NULL) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "awa: recording a group's callback job failed");
	return id;
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

	group_lock(AWA_GROUP_FINISH_LOCK, group_id, len, ShareLock);
	SPI_connect();
	if (run_latest(awa_plan(&pending,
							"SELECT 1 FROM awa.group_callbacks"
							" WHERE group_id = $1 AND callback_job_id IS NULL",
							1, &textoid),
				   &g, NULL) != SPI_OK_SELECT)
		elog(ERROR, "awa: reading a group's callback failed");
	if (SPI_processed > 0)
	{
		group_lock(AWA_GROUP_ENQUEUE_LOCK, group_id, len, ExclusiveLock);
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
	AwaJob		job = {0};
	text	   *g;
	Datum		values[7];
	int64		id;
	int			i;

	awa_check_writable("awa_group_on_finish");
	for (i = 0; i < 7; i++)
		awa_check_not_null(fcinfo, i, names[i]);
	g = group_id_arg(fcinfo, 0);
	job.kind = PG_GETARG_TEXT_PP(1);
	job.args = PG_GETARG_JSONB_P(2);
	job.queue = PG_GETARG_TEXT_PP(3);
	job.priority = PG_GETARG_INT32(4);
	job.max_attempts = PG_GETARG_INT32(5);
	job.metadata = PG_GETARG_JSONB_P(6);
	job.tags = construct_empty_array(TEXTOID);
	awa_validate_job(&job);

	group_lock(AWA_GROUP_FINISH_LOCK, VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g), ExclusiveLock);
	group_lock(AWA_GROUP_ENQUEUE_LOCK, VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g), ExclusiveLock);

	values[0] = PointerGetDatum(g);
	values[1] = PointerGetDatum(job.kind);
	values[2] = JsonbPGetDatum(job.args);
	values[3] = PointerGetDatum(job.queue);
	values[4] = Int16GetDatum((int16) job.priority);
	values[5] = Int16GetDatum((int16) job.max_attempts);
	values[6] = JsonbPGetDatum(job.metadata);
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
