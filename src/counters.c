/*-------------------------------------------------------------------------
 *
 * counters.c
 *		Exact job counts per queue and state without counting jobs: delta
 *		rows written with every change of awa.jobs, folded by maintenance.
 *
 * Writers.  Statement-level AFTER triggers on awa.jobs, with transition
 * tables (awa.jobs_count_changes), add up how each INSERT, UPDATE or
 * DELETE changed the number of jobs per (queue, state) and write one row
 * of signed deltas per queue to awa.counter_deltas, stamped with the
 * transaction's ID: awa's own statements, users' plain SQL and COPY alike.
 * Completed jobs are counted by the minute of their finalized_at (for
 * completed_last_hour), so a statement that completes jobs in another
 * minute than its others writes one more row.  A statement that changes no
 * count (a heartbeat) writes nothing.  TRUNCATE writes the negated counts.
 * awa_insert's direct path (fastinsert.c) fires no trigger: it notes its
 * jobs here (awa_counters_note_insert), written at the end of the statement.
 *
 * Folds.  A maintenance round (awa_counters_fold), in a transaction that
 * has written nothing yet, deletes the deltas the previous fold did not
 * cover and that its own snapshot sees, and stores previous fold + those
 * deltas with its snapshot (pg_current_snapshot()) as the new fold.
 *
 * Readers (stats.c, AWA_COUNTER_SOURCE_SQL) take the newest fold their
 * snapshot sees and add the deltas of the transactions that fold's
 * snapshot did not see: xid >= its xmax, or xid in its xip list -- two
 * index lookups, whatever the number of jobs.  That is the count at the
 * reader's snapshot: a transaction the fold saw committed before the fold
 * did, so the reader sees it too; the others are added if and only if the
 * reader sees them (its own uncommitted ones included).  The fold's own
 * transaction gets its ID only after its snapshot was taken, so what it
 * writes afterwards lies at or above that snapshot's xmax and is counted
 * from its deltas.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"

#include "awa.h"
#include "counters.h"

PG_FUNCTION_INFO_V1(awa_jobs_count_changes);

/* A fold's transaction-level advisory lock: "awa", then 2 for counters. */
#define AWA_FOLD_LOCK_KEY1		0x617761
#define AWA_FOLD_LOCK_KEY2		2

/* Longest queue name in bytes (AWA_MAX_NAME_CHARS characters), plus NUL. */
#define QUEUE_KEY_BYTES		(AWA_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)

/* What a delta row is keyed by: queue, and the minute of its completions. */
typedef struct CounterKey
{
	char		queue[QUEUE_KEY_BYTES];
	bool		has_minute;		/* false: the counts of the other states */
	TimestampTz minute;
} CounterKey;

typedef struct CounterEntry
{
	CounterKey	key;
	int64		n[AWA_NUM_JOB_STATES];
} CounterEntry;

/* Changes of the counts being added up, in a memory context of their own. */
typedef struct Counts
{
	MemoryContext cxt;
	HTAB	   *tab;
	CounterEntry *last;			/* the entry of the previous row */
} Counts;

/*
 * Jobs the direct insert path wrote whose deltas are not written yet: one
 * Counts per subtransaction that noted some, in TopTransactionContext.
 */
typedef struct Pending
{
	SubTransactionId subid;
	Counts		c;
	struct Pending *next;
} Pending;

static Pending *pending = NULL;
static bool callbacks_registered = false;
static ExecutorEnd_hook_type prev_executor_end = NULL;

/* The start of the minute of t, in any time zone (see counters.h). */
TimestampTz
awa_counter_minute(TimestampTz t)
{
	int64		r;

	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	r = t % AWA_MINUTE_USECS;
	if (r < 0)
		r += AWA_MINUTE_USECS;
	return t - r;
}

static void
counts_init(Counts *c, MemoryContext parent)
{
	HASHCTL		ctl;

	c->cxt = AllocSetContextCreate(parent, "awa counters", ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(CounterKey);
	ctl.entrysize = sizeof(CounterEntry);
	ctl.hcxt = c->cxt;
	c->tab = hash_create("awa counters", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	c->last = NULL;
}

static void
counts_free(Counts *c)
{
	if (c->cxt != NULL)
		MemoryContextDelete(c->cxt);
	c->cxt = NULL;
	c->tab = NULL;
	c->last = NULL;
}

/*
 * Add n jobs in this state of this queue (len bytes, not NUL-terminated);
 * finalized_at (NULL: isnull) matters for completed jobs only, which are
 * counted by its minute; a completed job without one counts nowhere.
 */
static void
counts_add(Counts *c, const char *queue, int len, AwaJobState state,
		   TimestampTz finalized_at, bool isnull, int64 n)
{
	bool		has_minute = (state == AWA_STATE_COMPLETED);
	TimestampTz minute = 0;
	CounterEntry *e = c->last;
	bool		found;

	if (has_minute)
	{
		if (isnull)
			return;
		minute = awa_counter_minute(finalized_at);
	}
	if (len >= QUEUE_KEY_BYTES)
		elog(ERROR, "awa: queue name of %d bytes is too long to count", len);
	if (e == NULL || e->key.has_minute != has_minute || e->key.minute != minute ||
		strncmp(e->key.queue, queue, len) != 0 || e->key.queue[len] != '\0')
	{
		CounterKey	key;

		memset(&key, 0, sizeof(key));
		memcpy(key.queue, queue, len);
		key.has_minute = has_minute;
		key.minute = minute;
		e = hash_search(c->tab, &key, HASH_ENTER, &found);
		if (!found)
			memset(e->n, 0, sizeof(e->n));
		c->last = e;
	}
	e->n[state] += n;
}

static bool
entry_is_zero(const CounterEntry *e)
{
	int			k;

	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		if (e->n[k] != 0)
			return false;
	return true;
}

/* Order entries by queue, the other states' entry first, then minutes. */
static int
entry_cmp(const void *a, const void *b)
{
	const CounterEntry *x = *(CounterEntry *const *) a;
	const CounterEntry *y = *(CounterEntry *const *) b;
	int			r = strcmp(x->key.queue, y->key.queue);

	if (r != 0)
		return r;
	if (x->key.has_minute != y->key.has_minute)
		return x->key.has_minute ? 1 : -1;
	return x->key.minute < y->key.minute ? -1 : x->key.minute > y->key.minute ? 1 : 0;
}

/* The 0-based number of a column of rel; it must exist. */
static int
column_of(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	elog(ERROR, "awa: awa.counter_deltas has no column \"%s\"", name);
	return -1;					/* keep compiler quiet */
}

/*
 * Write the non-zero changes in c to awa.counter_deltas, one row per queue
 * (its completions of one minute in the same row, those of other minutes
 * in rows of their own), directly: no executor start-up per statement, and
 * no privilege on the table needed by whoever changed awa.jobs.  Nothing
 * is written when the table does not exist (a schema before 0.3.0).
 */
static void
counts_write(Counts *c)
{
	HASH_SEQ_STATUS seq;
	CounterEntry *e;
	CounterEntry **v;
	int			nv = 0;
	int			cap;
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	int			a_xid,
				a_queue,
				a_minute,
				a_n[AWA_NUM_JOB_STATES];
	Datum		xid;
	int			i,
				k;
	MemoryContext old;

	if (c->tab == NULL || hash_get_num_entries(c->tab) == 0)
		return;
	old = MemoryContextSwitchTo(c->cxt);
	cap = hash_get_num_entries(c->tab);
	v = palloc(sizeof(CounterEntry *) * cap);
	hash_seq_init(&seq, c->tab);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (!entry_is_zero(e))
			v[nv++] = e;
	if (nv == 0)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	qsort(v, nv, sizeof(CounterEntry *), entry_cmp);

	nsp = get_namespace_oid("awa", true);
	relid = OidIsValid(nsp) ? get_relname_relid("counter_deltas", nsp) : InvalidOid;
	if (!OidIsValid(relid))
	{
		MemoryContextSwitchTo(old);
		return;
	}
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	a_xid = column_of(desc, "xid");
	a_queue = column_of(desc, "queue");
	a_minute = column_of(desc, "minute");
	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		a_n[k] = column_of(desc, awa_state_label((AwaJobState) k));
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	xid = FullTransactionIdGetDatum(GetTopFullTransactionId());

	for (i = 0; i < nv; i++)
	{
		CounterEntry *row = v[i];
		CounterEntry *done = NULL;

		ExecClearTuple(slot);
		memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		{
			slot->tts_values[a_n[k]] = Int64GetDatum(0);
			slot->tts_isnull[a_n[k]] = false;
		}
		slot->tts_values[a_xid] = xid;
		slot->tts_isnull[a_xid] = false;
		slot->tts_values[a_queue] = CStringGetTextDatum(row->key.queue);
		slot->tts_isnull[a_queue] = false;

		/* the queue's other states, with its first minute of completions */
		if (!row->key.has_minute && i + 1 < nv && v[i + 1]->key.has_minute &&
			strcmp(v[i + 1]->key.queue, row->key.queue) == 0)
			done = v[++i];
		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
			if (!row->key.has_minute && k != AWA_STATE_COMPLETED)
				slot->tts_values[a_n[k]] = Int64GetDatum(row->n[k]);
		if (row->key.has_minute)
			done = row;
		if (done != NULL)
		{
			slot->tts_values[a_n[AWA_STATE_COMPLETED]] = Int64GetDatum(done->n[AWA_STATE_COMPLETED]);
			slot->tts_values[a_minute] = TimestampTzGetDatum(done->key.minute);
			slot->tts_isnull[a_minute] = false;
		}
		ExecStoreVirtualTuple(slot);
		table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, NULL);
		if (rri->ri_NumIndices > 0)
			(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
		ResetPerTupleExprContext(estate);
	}

	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	MemoryContextSwitchTo(old);
}

/* ---------------------------------------------------------------------
 * The direct insert path
 *
 * awa_insert and awa_insert_many note the jobs they write directly; the
 * notes are written as deltas at the end of the statement that called
 * them (ExecutorEnd: one row per queue for 100 awa_insert calls in one
 * SELECT), or before the transaction commits or prepares.  Notes belong to
 * the subtransaction that made them: written only while it is the current
 * one, handed to its parent when it commits, dropped when it aborts -- so
 * a delta is never written in a subtransaction that could roll it back
 * without the jobs.
 * ---------------------------------------------------------------------
 */

/* Write and drop the notes of the current subtransaction (all: at commit). */
static void
pending_write(bool all)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	Pending   **pp = &pending;

	while (*pp != NULL)
	{
		Pending    *p = *pp;

		if (all || p->subid == cur)
		{
			*pp = p->next;		/* unlinked first: an error drops it */
			counts_write(&p->c);
			counts_free(&p->c);
		}
		else
			pp = &p->next;
	}
}

static void
counters_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			pending_write(true);
			break;
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
		default:
			/* ended: the notes went with TopTransactionContext */
			pending = NULL;
			break;
	}
}

static void
counters_subxact_cb(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	Pending   **pp = &pending;

	while (*pp != NULL)
	{
		Pending    *p = *pp;

		if (p->subid != mySubid)
			pp = &p->next;
		else if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			p->subid = parentSubid;
			pp = &p->next;
		}
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			*pp = p->next;
			counts_free(&p->c);
		}
		else
			pp = &p->next;
	}
}

/* At the end of every statement (any executor run): write what it noted. */
static void
counters_executor_end(QueryDesc *queryDesc)
{
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (pending != NULL)
		pending_write(false);
}

/* Install the executor hook (from _PG_init). */
void
awa_counters_init(void)
{
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = counters_executor_end;
}

/* Note a job the direct insert path wrote (queue, initial state). */
void
awa_counters_note_insert(const char *queue, AwaJobState state)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	Pending    *p;

	if (!callbacks_registered)
	{
		RegisterXactCallback(counters_xact_cb, NULL);
		RegisterSubXactCallback(counters_subxact_cb, NULL);
		callbacks_registered = true;
	}
	for (p = pending; p != NULL; p = p->next)
		if (p->subid == cur)
			break;
	if (p == NULL)
	{
		p = MemoryContextAllocZero(TopTransactionContext, sizeof(Pending));
		p->subid = cur;
		counts_init(&p->c, TopTransactionContext);
		p->next = pending;
		pending = p;
	}
	counts_add(&p->c, queue, strlen(queue), state, 0, true, 1);
}

/* ---------------------------------------------------------------------
 * The triggers
 * ---------------------------------------------------------------------
 */

/* Add each row of a transition table to c, with sign. */
static void
count_rows(Counts *c, Tuplestorestate *ts, Relation rel, int64 sign)
{
	static AwaJobColumns cols;
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot;
	int			a_finalized;

	if (ts == NULL)
		return;
	awa_job_columns(desc, &cols);
	a_finalized = awa_job_column(desc, "finalized_at");
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		qnull,
					snull,
					fnull;
		Datum		q = slot_getattr(slot, cols.queue + 1, &qnull);
		Datum		s = slot_getattr(slot, cols.state + 1, &snull);
		Datum		f = slot_getattr(slot, a_finalized + 1, &fnull);
		text	   *qt;
		int			k;

		if (qnull || snull)		/* NOT NULL columns */
			continue;
		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
			if (cols.states[k] == s)
				break;
		if (k == AWA_NUM_JOB_STATES)
			elog(ERROR, "awa: unknown job state %u", DatumGetObjectId(s));
		qt = DatumGetTextPP(q);
		counts_add(c, VARDATA_ANY(qt), VARSIZE_ANY_EXHDR(qt), (AwaJobState) k,
				   fnull ? 0 : DatumGetTimestampTz(f), fnull, sign);
		if ((Pointer) qt != DatumGetPointer(q))
			pfree(qt);
	}
	tuplestore_rescan(ts);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * TRUNCATE of awa.jobs: write the negated counts.  TRUNCATE holds an
 * ACCESS EXCLUSIVE lock on awa.jobs, so no other transaction that changed
 * it is still running: the counts of the newest snapshot (also in
 * REPEATABLE READ, where the transaction's own snapshot may be older) are
 * what was truncated, own changes included.
 */
static void
count_truncate(Counts *c)
{
	static SPIPlanPtr plan = NULL;
	uint64		i;
	int			ret;

	SPI_connect();
	ret = SPI_execute_snapshot(awa_plan(&plan,
										AWA_COUNTER_SOURCE_SQL
										" SELECT queue, minute, sum(scheduled), sum(available), sum(running),"
										" sum(completed), sum(retryable), sum(failed), sum(cancelled),"
										" sum(waiting_external) FROM src GROUP BY queue, minute",
										0, NULL),
							   NULL, NULL, GetLatestSnapshot(), InvalidSnapshot,
							   true, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa: reading the job counts failed: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *queue = TextDatumGetCString(SPI_getbinval(t, d, 1, &isnull));
		bool		mnull;
		Datum		minute = SPI_getbinval(t, d, 2, &mnull);
		int			k;

		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		{
			Datum		n = SPI_getbinval(t, d, 3 + k, &isnull);

			if (isnull)
				continue;
			/* sum(bigint) is numeric */
			n = DirectFunctionCall1(numeric_int8, n);
			if (k == AWA_STATE_COMPLETED)
				counts_add(c, queue, strlen(queue), (AwaJobState) k,
						   mnull ? 0 : DatumGetTimestampTz(minute), mnull, -DatumGetInt64(n));
			else
				counts_add(c, queue, strlen(queue), (AwaJobState) k, 0, true, -DatumGetInt64(n));
		}
	}
	SPI_finish();
}

/*
 * awa.jobs_count_changes() — AFTER INSERT, UPDATE, DELETE (with transition
 * tables) and TRUNCATE FOR EACH STATEMENT trigger on awa.jobs
 *
 * Writes how the statement changed the number of jobs per queue and state
 * to awa.counter_deltas (see the top of this file).
 */
Datum
awa_jobs_count_changes(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Counts		c;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.jobs_count_changes() must be called by an AFTER ... FOR EACH STATEMENT trigger of awa.jobs")));

	/* a child of the trigger call's memory context, which goes on an error */
	counts_init(&c, CurrentMemoryContext);
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		count_truncate(&c);
	else
	{
		count_rows(&c, td->tg_oldtable, td->tg_relation, -1);
		count_rows(&c, td->tg_newtable, td->tg_relation, 1);
	}
	counts_write(&c);
	counts_free(&c);
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * Folding (maintenance)
 * ---------------------------------------------------------------------
 */

/*
 * One statement, so that everything in it reads at the snapshot it stores:
 * delete the previous fold and the deltas it did not cover that this
 * snapshot sees, and store their sums as the new fold.  Completions are
 * kept by minute from $1 on (never from earlier than the previous fold
 * kept them).  Returns the deltas folded.
 */
static const char fold_sql[] =
"WITH prev AS (SELECT fold, snapshot, completed_from FROM awa.counter_folds"
"   ORDER BY fold DESC LIMIT 1),"
" d AS (DELETE FROM awa.counter_deltas d"
"   WHERE d.xid >= coalesce((SELECT pg_catalog.pg_snapshot_xmax(snapshot) FROM prev), '0'::xid8)"
"      OR d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(snapshot) FROM prev))"
"   RETURNING d.queue, d.minute, " AWA_COUNTER_COLUMNS_OF("d") "),"
" old AS (DELETE FROM awa.counter_fold_counts c WHERE c.fold = (SELECT fold FROM prev)"
"   RETURNING c.queue, c.minute, " AWA_COUNTER_COLUMNS_OF("c") "),"
" gone AS (DELETE FROM awa.counter_folds WHERE fold = (SELECT fold FROM prev)),"
" f AS (INSERT INTO awa.counter_folds (fold, snapshot, completed_from)"
"   SELECT coalesce((SELECT fold FROM prev), 0) + 1, pg_catalog.pg_current_snapshot(),"
"          greatest($1, coalesce((SELECT completed_from FROM prev), '-infinity'))"
"   RETURNING fold, completed_from),"
" src AS (SELECT * FROM old UNION ALL SELECT * FROM d),"
" r AS (SELECT queue, NULL::timestamptz AS minute, scheduled, available, running,"
"          0::bigint AS completed, retryable, failed, cancelled, waiting_external FROM src"
"   UNION ALL"
"   SELECT queue, minute, 0, 0, 0, completed, 0, 0, 0, 0 FROM src"
"    WHERE completed <> 0 AND minute >= (SELECT completed_from FROM f)),"
" ins AS (INSERT INTO awa.counter_fold_counts (fold, queue, minute, " AWA_COUNTER_COLUMNS ")"
"   SELECT (SELECT fold FROM f), queue, minute, sum(scheduled), sum(available), sum(running),"
"          sum(completed), sum(retryable), sum(failed), sum(cancelled), sum(waiting_external)"
"     FROM r GROUP BY queue, minute"
"   HAVING sum(scheduled) <> 0 OR sum(available) <> 0 OR sum(running) <> 0 OR sum(completed) <> 0"
"       OR sum(retryable) <> 0 OR sum(failed) <> 0 OR sum(cancelled) <> 0"
"       OR sum(waiting_external) <> 0"
"   RETURNING 1)"
" SELECT (SELECT count(*) FROM d) AS folded, (SELECT count(*) FROM ins) AS fold_rows";

/*
 * Whether a fold has anything to do: deltas it would fold, no fold yet, or
 * minutes of completions to forget ($1: the new fold's completed_from).
 */
static const char fold_due_sql[] =
"WITH prev AS (SELECT fold, snapshot, completed_from FROM awa.counter_folds"
"   ORDER BY fold DESC LIMIT 1)"
" SELECT NOT EXISTS (SELECT 1 FROM prev)"
"     OR (SELECT completed_from FROM prev) < $1 - interval '10 minutes'"
"     OR EXISTS (SELECT 1 FROM awa.counter_deltas d"
"       WHERE d.xid >= (SELECT pg_catalog.pg_snapshot_xmax(snapshot) FROM prev))"
"     OR EXISTS (SELECT 1 FROM awa.counter_deltas d"
"       WHERE d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(snapshot) FROM prev))) AS due";

/*
 * Fold the counters, when this can be done here: in READ COMMITTED (each
 * statement sees the latest folds), in a transaction that has no ID yet
 * (see the top of this file), and unless another session is folding
 * (a try-lock: skip rather than wait).  Caller is in SPI.  Returns the
 * number of deltas folded, or -1 if it did not fold.
 */
int64
awa_counters_fold(void)
{
	static AwaStmt due = AWA_STMT("awa maintenance: checking the counters", SPI_OK_SELECT,
								  fold_due_sql, 1, TIMESTAMPTZOID);
	static AwaStmt fold = AWA_STMT("awa maintenance: folding the counters", SPI_OK_SELECT,
								   fold_sql, 1, TIMESTAMPTZOID);
	LOCKTAG		tag;
	Datum		from;

	if (!awa_schema_has(AWA_SCHEMA_COUNTERS) ||
		XactIsoLevel != XACT_READ_COMMITTED ||
		TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return -1;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, AWA_FOLD_LOCK_KEY1, AWA_FOLD_LOCK_KEY2, 2);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return -1;

	/*
	 * Keep completions by minute from 5 minutes before the earliest minute
	 * completed_last_hour needs now, so that readers whose transaction began
	 * a little earlier are served from the fold too.
	 */
	from = TimestampTzGetDatum(awa_counter_minute(GetCurrentTransactionStartTimestamp() -
												  USECS_PER_HOUR - 5 * AWA_MINUTE_USECS));
	if (awa_stmt_run(&due, &from, NULL, 0) != 1 || !awa_stmt_bool(0, "due"))
		return 0;
	awa_stmt_run(&fold, &from, NULL, 0);
	return awa_stmt_int8(0, "folded");
}
