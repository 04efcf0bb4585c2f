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
 * Completed jobs are counted by the second of their finalized_at (for
 * completed_last_hour), so a statement that completes jobs in another
 * second than its others writes one more row.  A statement that changes no
 * count (a heartbeat) writes nothing.  TRUNCATE writes the negated counts.
 * awa_insert's direct path (fastinsert.c) fires no trigger: it notes its
 * jobs here (awa_counters_note_insert), written at the end of the statement.
 *
 * Folds.  A maintenance round (awa_counters_fold), in a transaction that
 * has written nothing yet, deletes the deltas the previous fold did not
 * cover and that its own snapshot sees, and stores previous fold + those
 * deltas with its snapshot (pg_current_snapshot()) as the new fold; their
 * completions are added to the rows of their second and minute in
 * awa.counter_completed, which therefore hold the counts of the newest
 * fold (a fold's changes become visible together with it).
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

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
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
#include "batch.h"
#include "counters.h"
#include "groups.h"
#include "history.h"

PG_FUNCTION_INFO_V1(awa_jobs_count_changes);

/* A fold's transaction-level advisory lock: "awa", then 2 for counters. */
#define AWA_FOLD_LOCK_KEY1		0x617761
#define AWA_FOLD_LOCK_KEY2		2

/* Longest queue name in bytes (AWA_MAX_NAME_CHARS characters), plus NUL. */
#define QUEUE_KEY_BYTES		(AWA_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)

/* What a delta row is keyed by: queue, and the second of its completions. */
typedef struct CounterKey
{
	char		queue[QUEUE_KEY_BYTES];
	bool		has_second;		/* false: the counts of the other states */
	TimestampTz second;
} CounterKey;

typedef struct CounterEntry
{
	CounterKey	key;
	int64		n[AWA_NUM_JOB_STATES];
} CounterEntry;

/*
 * Changes of the counts being added up: the first few keys in place (a
 * statement usually touches one or two), more in a hash table in a memory
 * context of their own, made when needed.
 */
#define COUNTS_SMALL		4

typedef struct Counts
{
	bool		noted;			/* a Pending's: awa_counts_write leaves it */
	MemoryContext parent;
	MemoryContext cxt;			/* of tab, or NULL */
	HTAB	   *tab;
	int			nsmall;
	CounterEntry small[COUNTS_SMALL];
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

/* The start of the second or minute t is in, in any time zone (counters.h). */
TimestampTz
awa_counter_bucket(TimestampTz t, int64 usecs)
{
	int64		r;

	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	r = t % usecs;
	if (r < 0)
		r += usecs;
	return t - r;
}

static void
counts_init(Counts *c, MemoryContext parent)
{
	c->noted = false;
	c->parent = parent;
	c->cxt = NULL;
	c->tab = NULL;
	c->nsmall = 0;
	c->last = NULL;
}

static void
counts_free(Counts *c)
{
	if (c->cxt != NULL)
		MemoryContextDelete(c->cxt);
	c->cxt = NULL;
	c->tab = NULL;
	c->nsmall = 0;
	c->last = NULL;
}

/* Whether e is the entry of this key. */
static inline bool
entry_is(const CounterEntry *e, const char *queue, int len, bool has_second,
		 TimestampTz second)
{
	return e->key.has_second == has_second && e->key.second == second &&
		strncmp(e->key.queue, queue, len) == 0 && e->key.queue[len] == '\0';
}

/*
 * The hash table's key functions: only the queue name's bytes up to its
 * NUL count, not the whole buffer (a name is usually a few bytes of the
 * AWA_MAX_NAME_CHARS characters a key has room for).
 */
static uint32
counter_key_hash(const void *key, Size keysize)
{
	const CounterKey *k = key;
	uint32		h = hash_bytes((const unsigned char *) k->queue, strlen(k->queue));

	if (k->has_second)
		h = hash_combine(h, hash_bytes((const unsigned char *) &k->second, sizeof(k->second)));
	return h;
}

static int
counter_key_match(const void *a, const void *b, Size keysize)
{
	const CounterKey *x = a;
	const CounterKey *y = b;

	if (x->has_second != y->has_second || x->second != y->second)
		return 1;
	return strcmp(x->queue, y->queue);
}

static void *
counter_key_copy(void *dest, const void *src, Size keysize)
{
	CounterKey *d = dest;
	const CounterKey *k = src;

	strcpy(d->queue, k->queue);
	d->has_second = k->has_second;
	d->second = k->second;
	return dest;
}

/*
 * Add n jobs in this state of this queue (len bytes, not NUL-terminated);
 * finalized_at (NULL: isnull) matters for completed jobs only, which are
 * counted by its second; a completed job without one counts nowhere.
 */
static void
counts_add(Counts *c, const char *queue, int len, AwaJobState state,
		   TimestampTz finalized_at, bool isnull, int64 n)
{
	bool		has_second = (state == AWA_STATE_COMPLETED);
	TimestampTz second = 0;
	CounterEntry *e = c->last;
	int			i;

	if (has_second)
	{
		if (isnull)
			return;
		second = awa_counter_bucket(finalized_at, AWA_SECOND_USECS);
	}
	if (len >= QUEUE_KEY_BYTES)
		elog(ERROR, "awa: queue name of %d bytes is too long to count", len);
	if (e == NULL || !entry_is(e, queue, len, has_second, second))
	{
		e = NULL;
		for (i = 0; i < c->nsmall && e == NULL; i++)
			if (entry_is(&c->small[i], queue, len, has_second, second))
				e = &c->small[i];
		if (e == NULL && c->nsmall < COUNTS_SMALL && c->tab == NULL)
		{
			e = &c->small[c->nsmall++];
			memcpy(e->key.queue, queue, len);
			e->key.queue[len] = '\0';
			e->key.has_second = has_second;
			e->key.second = second;
			memset(e->n, 0, sizeof(e->n));
		}
		if (e == NULL)
		{
			CounterKey	key;
			bool		found;

			if (c->tab == NULL)
			{
				HASHCTL		ctl;

				c->cxt = AllocSetContextCreate(c->parent, "awa counters", ALLOCSET_SMALL_SIZES);
				memset(&ctl, 0, sizeof(ctl));
				ctl.keysize = sizeof(CounterKey);
				ctl.entrysize = sizeof(CounterEntry);
				ctl.hash = counter_key_hash;
				ctl.match = counter_key_match;
				ctl.keycopy = counter_key_copy;
				ctl.hcxt = c->cxt;
				c->tab = hash_create("awa counters", 64, &ctl,
									 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_KEYCOPY |
									 HASH_CONTEXT);
			}
			memcpy(key.queue, queue, len);
			key.queue[len] = '\0';
			key.has_second = has_second;
			key.second = second;
			e = hash_search(c->tab, &key, HASH_ENTER, &found);
			if (!found)
				memset(e->n, 0, sizeof(e->n));
		}
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

/* Order entries by queue, the other states' entry first, then seconds. */
static int
entry_cmp(const void *a, const void *b)
{
	const CounterEntry *x = *(CounterEntry *const *) a;
	const CounterEntry *y = *(CounterEntry *const *) b;
	int			r = strcmp(x->key.queue, y->key.queue);

	if (r != 0)
		return r;
	if (x->key.has_second != y->key.has_second)
		return x->key.has_second ? 1 : -1;
	return x->key.second < y->key.second ? -1 : x->key.second > y->key.second ? 1 : 0;
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

/* Where the columns of awa.counter_deltas are (0-based), for the descriptor desc. */
typedef struct DeltaColumns
{
	TupleDesc	desc;			/* the descriptor they were found in */
	int			natts;
	int			xid;
	int			queue;
	int			second;
	int			n[AWA_NUM_JOB_STATES];
} DeltaColumns;

static DeltaColumns delta_cols = {NULL};

/*
 * Insert the rows in slots (virtual tuples of rel) with one heap_multi_insert
 * and their index entries directly, each index opened once.  An index with
 * expressions or a predicate (none of awa's) goes through the executor.
 */
static void
insert_deltas(Relation rel, TupleTableSlot **slots, int n)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	int			i;

	heap_multi_insert(rel, slots, n, GetCurrentCommandId(true), 0, NULL);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *ii = BuildIndexInfo(idx);
		IndexUniqueCheck check = idx->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO;
		Datum		iv[INDEX_MAX_KEYS];
		bool		in[INDEX_MAX_KEYS];
		int			k;

		for (i = 0; i < n; i++)
		{
			TupleTableSlot *slot = slots[i];

			if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL)
			{
				EState	   *estate = CreateExecutorState();
				ExprContext *econtext = GetPerTupleExprContext(estate);

				econtext->ecxt_scantuple = slot;
				if (ii->ii_Predicate == NIL ||
					ExecQual(ExecPrepareQual(ii->ii_Predicate, estate), econtext))
				{
					FormIndexDatum(ii, slot, estate, iv, in);
					index_insert(idx, iv, in, &slot->tts_tid, rel, check, false, ii);
				}
				FreeExecutorState(estate);
				continue;
			}
			for (k = 0; k < ii->ii_NumIndexAttrs; k++)
			{
				AttrNumber	a = ii->ii_IndexAttrNumbers[k];

				iv[k] = a > 0 ? slot->tts_values[a - 1] : (Datum) 0;
				in[k] = a > 0 ? slot->tts_isnull[a - 1] : true;
			}
			index_insert(idx, iv, in, &slot->tts_tid, rel, check, false, ii);
		}
		index_close(idx, NoLock);
	}
	list_free(indexes);
}

/*
 * Write the non-zero changes in c to awa.counter_deltas, one row per queue
 * (its completions of one second in the same row, those of other seconds
 * in rows of their own), directly and all at once (one heap_multi_insert,
 * each index opened once: a statement over many queues writes many rows):
 * no executor start-up per statement, and no privilege on the table needed
 * by whoever changed awa.jobs.  Nothing
 * is written when the table does not exist (a schema before 0.3.0).
 */
static void
counts_write(Counts *c)
{
	CounterEntry **v;
	int			nv = 0;
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot **slots;
	int			nslots = 0;
	Datum		xid;
	int			i,
				k;

	if (c->nsmall == 0)
		return;
	v = palloc(sizeof(CounterEntry *) * (c->nsmall + (c->tab ? hash_get_num_entries(c->tab) : 0)));
	for (i = 0; i < c->nsmall; i++)
		if (!entry_is_zero(&c->small[i]))
			v[nv++] = &c->small[i];
	if (c->tab != NULL)
	{
		HASH_SEQ_STATUS seq;
		CounterEntry *e;

		hash_seq_init(&seq, c->tab);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (!entry_is_zero(e))
				v[nv++] = e;
	}
	if (nv == 0)
		return;
	if (nv > 1)
		qsort(v, nv, sizeof(CounterEntry *), entry_cmp);

	nsp = get_namespace_oid("awa", true);
	relid = OidIsValid(nsp) ? get_relname_relid("counter_deltas", nsp) : InvalidOid;
	if (!OidIsValid(relid))
		return;
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	if (delta_cols.desc != desc || delta_cols.natts != desc->natts)
	{
		delta_cols.xid = column_of(desc, "xid");
		delta_cols.queue = column_of(desc, "queue");
		delta_cols.second = column_of(desc, "completed_second");
		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
			delta_cols.n[k] = column_of(desc, awa_state_label((AwaJobState) k));
		delta_cols.desc = desc;
		delta_cols.natts = desc->natts;
	}
	slots = palloc(sizeof(TupleTableSlot *) * nv);
	xid = FullTransactionIdGetDatum(GetTopFullTransactionId());

	for (i = 0; i < nv; i++)
	{
		CounterEntry *row = v[i];
		CounterEntry *done = NULL;
		TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
		Datum	   *values = slot->tts_values;
		bool	   *nulls = slot->tts_isnull;

		memset(nulls, true, sizeof(bool) * desc->natts);
		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		{
			values[delta_cols.n[k]] = Int64GetDatum(0);
			nulls[delta_cols.n[k]] = false;
		}
		values[delta_cols.xid] = xid;
		nulls[delta_cols.xid] = false;
		values[delta_cols.queue] = CStringGetTextDatum(row->key.queue);
		nulls[delta_cols.queue] = false;

		/* the queue's other states, with its first second of completions */
		if (!row->key.has_second && i + 1 < nv && v[i + 1]->key.has_second &&
			strcmp(v[i + 1]->key.queue, row->key.queue) == 0)
			done = v[++i];
		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
			if (!row->key.has_second && k != AWA_STATE_COMPLETED)
				values[delta_cols.n[k]] = Int64GetDatum(row->n[k]);
		if (row->key.has_second)
			done = row;
		if (done != NULL)
		{
			values[delta_cols.n[AWA_STATE_COMPLETED]] = Int64GetDatum(done->n[AWA_STATE_COMPLETED]);
			values[delta_cols.second] = TimestampTzGetDatum(done->key.second);
			nulls[delta_cols.second] = false;
		}
		ExecStoreVirtualTuple(slot);
		slots[nslots++] = slot;
	}
	insert_deltas(rel, slots, nslots);
	for (i = 0; i < nslots; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	table_close(rel, NoLock);
}

/*
 * hook: ring -- the ring's counting trigger (ring_read.c) adds its rows'
 * changes with the same machinery: counts made, added to and written
 * (then freed) by the caller, in its memory context.
 */
AwaCounts *
awa_counts_create(void)
{
	Counts	   *c = palloc(sizeof(Counts));

	counts_init(c, CurrentMemoryContext);
	return (AwaCounts *) c;
}

void
awa_counts_add(AwaCounts *c, const char *queue, int len, AwaJobState state,
			   TimestampTz finalized_at, bool isnull, int64 n)
{
	counts_add((Counts *) c, queue, len, state, finalized_at, isnull, n);
}

void
awa_counts_write(AwaCounts *c)
{
	if (((Counts *) c)->noted)
		return;					/* a batch's: written at its end */
	counts_write((Counts *) c);
	counts_free((Counts *) c);
	pfree(c);
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

	awa_history_write_notes(all);
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

/* the end of the outermost batch (batch.c): write its notes */
static void
counters_batch_end(void)
{
	pending_write(false);
}

/* At the end of every statement (any executor run): write what it noted. */
static void
counters_executor_end(QueryDesc *queryDesc)
{
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (pending != NULL && !awa_batch_active())
		pending_write(false);
}

/* Install the executor hook (from _PG_init). */
void
awa_counters_init(void)
{
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = counters_executor_end;
	awa_batch_end_hook = counters_batch_end;	/* hook: rdelta */
}

static void
register_callbacks(void)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(counters_xact_cb, NULL);
		RegisterSubXactCallback(counters_subxact_cb, NULL);
		callbacks_registered = true;
	}
}

/* The notes of the current subtransaction, made if it has none. */
static Counts *
pending_current(void)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	Pending    *p;

	register_callbacks();
	for (p = pending; p != NULL; p = p->next)
		if (p->subid == cur)
			break;
	if (p == NULL)
	{
		p = MemoryContextAllocZero(TopTransactionContext, sizeof(Pending));
		p->subid = cur;
		counts_init(&p->c, TopTransactionContext);
		p->c.noted = true;
		p->next = pending;
		pending = p;
	}
	return &p->c;
}

/* Note a job the direct insert path wrote (queue, initial state). */
void
awa_counters_note_insert(const char *queue, AwaJobState state)
{
	counts_add(pending_current(), queue, strlen(queue), state, 0, true, 1);
}

/* ---------------------------------------------------------------------
 * Batches (hook: rdelta; counters.h)
 *
 * The ring writes a batch of jobs one SPI statement per job
 * (awa_insert_many, INSERT or COPY into the view awa.jobs), and its
 * counting trigger adds up per statement: one delta row per job.  Within a
 * batch its sums go to the notes above instead (awa_counts_statement), so
 * they follow the same rules -- kept by the subtransaction that made them,
 * handed to its parent when it commits, dropped when it aborts -- and
 * nothing is written at the end of a statement inside the batch; its end
 * (batch.c, awa_batch_end_hook) writes the current subtransaction's notes:
 * one row per key for the whole batch.  A batch opened in a subtransaction
 * that aborts ends with it (an error inside the batch, batch.c), and one
 * still open at commit is a bug (ERROR there): its notes would be written
 * late.
 * ---------------------------------------------------------------------
 */

AwaCounts *
awa_counts_statement(void)
{
	if (awa_batch_active())
		return (AwaCounts *) pending_current();
	return awa_counts_create();
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
										" SELECT queue, NULL::timestamptz, sum(scheduled), sum(available),"
										"   sum(running), NULL::numeric, sum(retryable), sum(failed),"
										"   sum(cancelled), sum(waiting_external) FROM src GROUP BY queue"
										" UNION ALL"
										" SELECT queue, second, NULL, NULL, NULL, sum(completed), NULL, NULL,"
										"   NULL, NULL FROM ("
										"   SELECT queue, bucket AS second, completed FROM awa.counter_completed"
										"    WHERE seconds = 1"
										"   UNION ALL"
										"   SELECT queue, completed_second, completed FROM d"
										"    WHERE completed <> 0 AND completed_second IS NOT NULL) x"
										" GROUP BY queue, second",
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
		bool		snull;
		Datum		second = SPI_getbinval(t, d, 2, &snull);
		int			k;

		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		{
			Datum		n = SPI_getbinval(t, d, 3 + k, &isnull);

			if (isnull)
				continue;
			/* sum(bigint) is numeric */
			n = DirectFunctionCall1(numeric_int8, n);
			counts_add(c, queue, strlen(queue), (AwaJobState) k,
					   snull ? 0 : DatumGetTimestampTz(second), snull, -DatumGetInt64(n));
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
	awa_history_changes(td);
	awa_groups_changes(td);		/* groups.c: finished groups */
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * Folding (maintenance)
 * ---------------------------------------------------------------------
 */

/*
 * One statement, so that everything in it reads at the snapshot it stores:
 * delete the previous fold and the deltas it did not cover that this
 * snapshot sees, store their sums as the new fold, add their completions
 * to awa.counter_completed (by second and by minute) and forget there the
 * seconds and minutes before $1 (never earlier than the previous fold kept
 * them).  Returns the deltas folded.
 */
static const char fold_sql[] =
"WITH prev AS (SELECT fold, snapshot, completed_from FROM awa.counter_folds"
"   ORDER BY fold DESC LIMIT 1),"
" d AS (DELETE FROM awa.counter_deltas d"
"   WHERE d.xid >= coalesce((SELECT pg_catalog.pg_snapshot_xmax(snapshot) FROM prev), '0'::xid8)"
"      OR d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(snapshot) FROM prev))"
"   RETURNING d.queue, " AWA_COUNTER_STATES_OF("d") ", d.completed, d.completed_second),"
" old AS (DELETE FROM awa.counter_fold_counts c WHERE c.fold = (SELECT fold FROM prev)"
"   RETURNING c.queue, " AWA_COUNTER_STATES_OF("c") "),"
" gone AS (DELETE FROM awa.counter_folds WHERE fold = (SELECT fold FROM prev)),"
" f AS (INSERT INTO awa.counter_folds (fold, snapshot, completed_from)"
"   SELECT coalesce((SELECT fold FROM prev), 0) + 1, pg_catalog.pg_current_snapshot(),"
"          greatest($1, coalesce((SELECT completed_from FROM prev), '-infinity'))"
"   RETURNING fold, completed_from),"
" ins AS (INSERT INTO awa.counter_fold_counts (fold, queue, " AWA_COUNTER_STATES ")"
"   SELECT (SELECT fold FROM f), x.queue, sum(x.scheduled), sum(x.available), sum(x.running),"
"          sum(x.retryable), sum(x.failed), sum(x.cancelled), sum(x.waiting_external)"
"     FROM (SELECT queue, " AWA_COUNTER_STATES_OF("old") " FROM old"
"           UNION ALL SELECT queue, " AWA_COUNTER_STATES_OF("d") " FROM d) x"
"    GROUP BY x.queue"
"   HAVING sum(x.scheduled) <> 0 OR sum(x.available) <> 0 OR sum(x.running) <> 0"
"       OR sum(x.retryable) <> 0 OR sum(x.failed) <> 0 OR sum(x.cancelled) <> 0"
"       OR sum(x.waiting_external) <> 0),"
" c AS (SELECT queue, completed_second AS second, sum(completed) AS n FROM d"
"   WHERE completed <> 0 AND completed_second >= (SELECT completed_from FROM f)"
"   GROUP BY 1, 2),"
" c1 AS (INSERT INTO awa.counter_completed AS cc (seconds, bucket, queue, completed)"
"   SELECT 1, second, queue, n FROM c"
"   ON CONFLICT (seconds, bucket, queue) DO UPDATE SET completed = cc.completed + excluded.completed),"
" c60 AS (INSERT INTO awa.counter_completed AS cc (seconds, bucket, queue, completed)"
"   SELECT 60, pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM second) / 60) * 60),"
"          queue, sum(n) FROM c GROUP BY 2, 3"
"   ON CONFLICT (seconds, bucket, queue) DO UPDATE SET completed = cc.completed + excluded.completed),"
" forgotten AS (DELETE FROM awa.counter_completed"
"   WHERE seconds IN (1, 60) AND bucket < (SELECT completed_from FROM f)"
"     AND (SELECT completed_from FROM f) > coalesce((SELECT completed_from FROM prev), '-infinity'))"
" SELECT (SELECT count(*) FROM d) AS folded";

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
	 * Keep completions from 5 minutes before the earliest minute
	 * completed_last_hour needs now, so that readers whose transaction began
	 * a little earlier are served from the fold too.
	 */
	from = TimestampTzGetDatum(awa_counter_bucket(GetCurrentTransactionStartTimestamp() -
												  USECS_PER_HOUR - 5 * AWA_MINUTE_USECS,
												  AWA_MINUTE_USECS));
	if (awa_stmt_run(&due, &from, NULL, 0) != 1 || !awa_stmt_bool(0, "due"))
		return 0;
	awa_stmt_run(&fold, &from, NULL, 0);
	return awa_stmt_int8(0, "folded");
}
