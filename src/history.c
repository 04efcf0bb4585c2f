/*-------------------------------------------------------------------------
 *
 * history.c
 *		Throughput history: per queue, kind and minute, the jobs enqueued,
 *		started, completed, failed, retried and cancelled, and how long
 *		jobs waited and ran (awa_queue_history).
 *
 * Events.  The job counters' statement trigger on awa.jobs (counters.c)
 * calls awa_history_changes with the statement's transition tables.  Each
 * inserted row is one job enqueued (in the minute of its created_at); each
 * updated row whose state changed is matched with its old row by id and
 * is at most one event, in the minute of the event's time:
 *	 into running	started, at attempted_at; it waited attempted_at -
 *					greatest(old run_at, old created_at): from the time it
 *					was due (or enqueued, for a run_at in the past);
 *	 into completed, failed, cancelled
 *					at finalized_at (the transaction's time if NULL);
 *	 into retryable	retried, at the transaction's time (now());
 * and a job that leaves running or waiting_external for completed, failed,
 * retryable or cancelled ran from the old attempted_at to that time.
 * Deleted rows, promotions, snoozes and awa_retry are no events.  The
 * statement writes one row per (queue, kind, minute) it touched into
 * awa.history_deltas: a job's counts are never updated in place by the
 * workers, so there is no row that they all wait for.  awa_insert's direct
 * path fires no trigger: it notes its jobs (awa_history_note_insert) and
 * they are written with the counters' notes (awa_history_write_notes).
 *
 * Durations.  Per (queue, kind, minute): the number of samples, their sum
 * and their maximum in microseconds, and a histogram of counts over fixed
 * log-scale buckets (history.h), stored as a bigint[] whose subscripts are
 * the bucket numbers and that spans only the buckets from the first to the
 * last one used (e.g. '[13:15]={2,0,1}').  Histograms add up bucket by
 * bucket (awa.history_add, awa.history_sum), so minutes and writers merge
 * exactly; a percentile is read as the upper bound of the bucket holding
 * it, never above the exact maximum.
 *
 * Folding.  Each maintenance round deletes up to AWA_MAINTAIN_BATCH delta
 * rows and adds them to awa.queue_history (one row per minute, queue and
 * kind; an upsert), in one statement of one transaction: any snapshot sees
 * either the deltas or their sum, never both nor neither, so a reader that
 * adds up both tables is exact for what it sees committed (and its own
 * transaction).  Rows older than awa.retention_history are deleted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "batch.h"
#include "history.h"
#include "maintain.h"

PG_FUNCTION_INFO_V1(awa_queue_history);
PG_FUNCTION_INFO_V1(awa_history_add);
PG_FUNCTION_INFO_V1(awa_history_percentile);

/* A fold's transaction-level advisory lock: "awa", then 3 for history. */
#define AWA_HISTORY_LOCK_KEY1	0x617761
#define AWA_HISTORY_LOCK_KEY2	3

#define MINUTE_USECS			(60 * USECS_PER_SEC)
#define NBUCKETS				(AWA_HISTORY_TOP_BUCKET + 1)

/* Longest queue or kind name in bytes, plus NUL. */
#define NAME_KEY_BYTES			(AWA_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)

/* Settings */
static bool awa_track_history = true;

/* The events of history_deltas, in the order of its columns. */
typedef enum HistoryEvent
{
	EV_ENQUEUED,
	EV_STARTED,
	EV_COMPLETED,
	EV_FAILED,
	EV_RETRIED,
	EV_CANCELLED,
	NUM_EVENTS
} HistoryEvent;

static const char *const event_columns[NUM_EVENTS] = {
	"enqueued", "started", "completed", "failed", "retried", "cancelled"
};

/* Samples of one duration: count, sum, max (microseconds), histogram. */
typedef struct Durations
{
	int64		n;
	int64		sum;
	int64		max;
	int			lo;				/* lowest and highest bucket used */
	int			hi;
	int64		hist[NBUCKETS];
} Durations;

typedef struct HistoryKey
{
	char		queue[NAME_KEY_BYTES];
	char		kind[NAME_KEY_BYTES];
	TimestampTz minute;
} HistoryKey;

typedef struct HistoryEntry
{
	HistoryKey	key;
	int64		n[NUM_EVENTS];
	Durations	wait;
	Durations	run;
} HistoryEntry;

/*
 * The events being added up.  Most statements touch one (queue, kind,
 * minute): its entry is kept alone, and a hash table is made only for a
 * second key.
 */
typedef struct History
{
	MemoryContext cxt;
	bool		own_cxt;		/* cxt is this History's (else reset by the caller) */
	bool		noted;			/* a Notes': awa_history_close leaves it */
	HistoryEntry *one;			/* the first entry */
	HTAB	   *tab;			/* all entries, once there are two */
	HistoryEntry *last;			/* the entry of the previous event */
} History;

/* Per-statement memory of the trigger, reset by each statement. */
static MemoryContext stmt_cxt = NULL;

static bool callbacks_registered = false;

/* Upper bounds of the buckets in microseconds (bucket b holds < bound[b]). */
static int64 bounds[NBUCKETS];
static bool bounds_ready = false;

/* Fill the table of bucket bounds (once per backend). */
static void
bounds_init(void)
{
	int			b;

	for (b = 0; b < NBUCKETS; b++)
		bounds[b] = (int64) rint(1000.0 * pow(2.0, (double) b / AWA_HISTORY_PER_DOUBLING));
	bounds_ready = true;
}

/* The bucket of a duration in microseconds (negative counts as 0). */
static int
bucket_of(int64 us)
{
	int			b;

	if (!bounds_ready)
		bounds_init();
	if (us < bounds[0])
		return 0;
	b = 1 + (int) floor(AWA_HISTORY_PER_DOUBLING * log2((double) us / 1000.0));
	if (b < 1)
		b = 1;
	if (b > AWA_HISTORY_TOP_BUCKET)
		return AWA_HISTORY_TOP_BUCKET;
	/* the table decides at the edges, not the floating-point log */
	while (b > 1 && us < bounds[b - 1])
		b--;
	while (b < AWA_HISTORY_TOP_BUCKET && us >= bounds[b])
		b++;
	return b;
}

/* Count one duration (microseconds) in d. */
static void
durations_add(Durations *d, int64 us)
{
	int			b;

	if (us < 0)
		us = 0;
	b = bucket_of(us);
	if (d->n == 0 || b < d->lo)
		d->lo = b;
	if (d->n == 0 || b > d->hi)
		d->hi = b;
	d->n++;
	d->sum += us;
	if (us > d->max)
		d->max = us;
	d->hist[b]++;
}

/* The histogram as a bigint[] subscripted by bucket, from lo to hi. */
static Datum
durations_array(const Durations *d)
{
	int			n = d->hi - d->lo + 1;
	int			lbs = d->lo;
	Datum	   *elems = palloc(sizeof(Datum) * n);
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = Int64GetDatum(d->hist[d->lo + i]);
	return PointerGetDatum(construct_md_array(elems, NULL, 1, &n, &lbs,
											  INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* The start of the minute of t (minutes of the Unix epoch, any time zone). */
static TimestampTz
minute_of(TimestampTz t)
{
	int64		r;

	if (TIMESTAMP_NOT_FINITE(t))
		return t;
	r = t % MINUTE_USECS;
	if (r < 0)
		r += MINUTE_USECS;
	return t - r;
}

/* Start adding up in a context of its own under parent, or in cxt (own: false). */
static void
history_init(History *h, MemoryContext cxt, bool own)
{
	h->cxt = own ? AllocSetContextCreate(cxt, "awa history", ALLOCSET_SMALL_SIZES) : cxt;
	h->own_cxt = own;
	h->noted = false;
	h->one = NULL;
	h->tab = NULL;
	h->last = NULL;
}

/* Forget what h added up (and its memory, if it has a context of its own). */
static void
history_free(History *h)
{
	if (h->cxt != NULL && h->own_cxt)
		MemoryContextDelete(h->cxt);
	h->cxt = NULL;
	h->one = NULL;
	h->tab = NULL;
	h->last = NULL;
}

/* Whether e is the entry of (queue, kind, minute); names are not NUL-terminated. */
static bool
key_is(const HistoryEntry *e, const char *queue, int qlen, const char *kind, int klen,
	   TimestampTz minute)
{
	return e->key.minute == minute &&
		e->key.queue[qlen] == '\0' && memcmp(e->key.queue, queue, qlen) == 0 &&
		e->key.kind[klen] == '\0' && memcmp(e->key.kind, kind, klen) == 0;
}

/*
 * The hash table's key functions: only the names' bytes up to their NULs
 * count, not the whole buffers (names are usually a few bytes of the
 * AWA_MAX_NAME_CHARS characters a key has room for).
 */
static uint32
history_key_hash(const void *key, Size keysize)
{
	const HistoryKey *k = key;
	uint32		h = hash_bytes((const unsigned char *) k->queue, strlen(k->queue));

	h = hash_combine(h, hash_bytes((const unsigned char *) k->kind, strlen(k->kind)));
	return hash_combine(h, hash_bytes((const unsigned char *) &k->minute, sizeof(k->minute)));
}

static int
history_key_match(const void *a, const void *b, Size keysize)
{
	const HistoryKey *x = a;
	const HistoryKey *y = b;

	if (x->minute != y->minute || strcmp(x->queue, y->queue) != 0)
		return 1;
	return strcmp(x->kind, y->kind);
}

static void *
history_key_copy(void *dest, const void *src, Size keysize)
{
	HistoryKey *d = dest;
	const HistoryKey *k = src;

	strcpy(d->queue, k->queue);
	strcpy(d->kind, k->kind);
	d->minute = k->minute;
	return dest;
}

/* The entry of (queue, kind, minute of at), made if new. */
static HistoryEntry *
history_entry(History *h, text *queue, text *kind, TimestampTz at)
{
	TimestampTz minute = minute_of(at);
	int			qlen = VARSIZE_ANY_EXHDR(queue);
	int			klen = VARSIZE_ANY_EXHDR(kind);
	HistoryEntry *e = h->last;
	HistoryKey	key;
	bool		found;

	if (qlen >= NAME_KEY_BYTES || klen >= NAME_KEY_BYTES)
		elog(ERROR, "awa: queue or kind name too long to count");
	if (e != NULL && key_is(e, VARDATA_ANY(queue), qlen, VARDATA_ANY(kind), klen, minute))
		return e;
	memcpy(key.queue, VARDATA_ANY(queue), qlen);
	key.queue[qlen] = '\0';
	memcpy(key.kind, VARDATA_ANY(kind), klen);
	key.kind[klen] = '\0';
	key.minute = minute;
	if (h->one == NULL)
	{
		e = MemoryContextAllocZero(h->cxt, sizeof(HistoryEntry));
		history_key_copy(&e->key, &key, sizeof(HistoryKey));
		h->one = e;
	}
	else
	{
		if (h->tab == NULL)
		{
			HASHCTL		ctl;

			memset(&ctl, 0, sizeof(ctl));
			ctl.keysize = sizeof(HistoryKey);
			ctl.entrysize = sizeof(HistoryEntry);
			ctl.hash = history_key_hash;
			ctl.match = history_key_match;
			ctl.keycopy = history_key_copy;
			ctl.hcxt = h->cxt;
			h->tab = hash_create("awa history", 16, &ctl,
								 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_KEYCOPY |
								 HASH_CONTEXT);
			e = hash_search(h->tab, &h->one->key, HASH_ENTER, &found);
			memcpy(&e->n, &h->one->n, sizeof(HistoryEntry) - offsetof(HistoryEntry, n));
		}
		e = hash_search(h->tab, &key, HASH_ENTER, &found);
		if (!found)
		{
			memset(e->n, 0, sizeof(e->n));
			memset(&e->wait, 0, sizeof(e->wait));
			memset(&e->run, 0, sizeof(e->run));
		}
	}
	h->last = e;
	return e;
}

/* The relation awa.history_deltas, or InvalidOid (a schema before 0.3.0). */
static Oid
deltas_relid(void)
{
	Oid			nsp = get_namespace_oid("awa", true);

	return OidIsValid(nsp) ? get_relname_relid("history_deltas", nsp) : InvalidOid;
}

/* The 0-based number of a column of awa.history_deltas; it must exist. */
static int
deltas_column(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	elog(ERROR, "awa: awa.history_deltas has no column \"%s\"", name);
	return -1;					/* keep compiler quiet */
}

/* Where a duration's columns are in awa.history_deltas. */
typedef struct DurationColumns
{
	int			count;
	int			total;
	int			max;
	int			hist;
} DurationColumns;

/* The columns of awa.history_deltas, found once per relation. */
typedef struct DeltaColumns
{
	Oid			relid;
	int			natts;
	int			queue;
	int			kind;
	int			minute;
	int			n[NUM_EVENTS];
	DurationColumns wait;
	DurationColumns run;
} DeltaColumns;

/* Find the four columns of a duration (prefix wait or run). */
static void
duration_columns(TupleDesc desc, const char *prefix, DurationColumns *dc)
{
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "%s_count", prefix);
	dc->count = deltas_column(desc, name);
	snprintf(name, sizeof(name), "%s_total_us", prefix);
	dc->total = deltas_column(desc, name);
	snprintf(name, sizeof(name), "%s_max_us", prefix);
	dc->max = deltas_column(desc, name);
	snprintf(name, sizeof(name), "%s_hist", prefix);
	dc->hist = deltas_column(desc, name);
}

/* The columns of awa.history_deltas, looked up again only when the relation changes. */
static const DeltaColumns *
delta_columns(Relation rel)
{
	static DeltaColumns c = {InvalidOid};
	TupleDesc	desc = RelationGetDescr(rel);
	int			k;

	if (c.relid == RelationGetRelid(rel) && c.natts == desc->natts)
		return &c;
	c.relid = InvalidOid;
	c.queue = deltas_column(desc, "queue");
	c.kind = deltas_column(desc, "kind");
	c.minute = deltas_column(desc, "minute");
	for (k = 0; k < NUM_EVENTS; k++)
		c.n[k] = deltas_column(desc, event_columns[k]);
	duration_columns(desc, "wait", &c.wait);
	duration_columns(desc, "run", &c.run);
	c.natts = desc->natts;
	c.relid = RelationGetRelid(rel);
	return &c;
}

/* Put a duration's count, sum, max and histogram (NULLs: no samples) into the slot. */
static void
put_durations(TupleTableSlot *slot, const DurationColumns *dc, const Durations *d)
{
	slot->tts_values[dc->count] = Int64GetDatum(d->n);
	slot->tts_isnull[dc->count] = false;
	if (d->n == 0)
		return;
	slot->tts_values[dc->total] = Int64GetDatum(d->sum);
	slot->tts_isnull[dc->total] = false;
	slot->tts_values[dc->max] = Int64GetDatum(d->max);
	slot->tts_isnull[dc->max] = false;
	slot->tts_values[dc->hist] = durations_array(d);
	slot->tts_isnull[dc->hist] = false;
}

/* Put one entry into slot as a row of rel. */
static void
entry_slot(const DeltaColumns *c, TupleTableSlot *slot, const HistoryEntry *e)
{
	int			k;

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	slot->tts_values[c->queue] = CStringGetTextDatum(e->key.queue);
	slot->tts_isnull[c->queue] = false;
	slot->tts_values[c->kind] = CStringGetTextDatum(e->key.kind);
	slot->tts_isnull[c->kind] = false;
	slot->tts_values[c->minute] = TimestampTzGetDatum(e->key.minute);
	slot->tts_isnull[c->minute] = false;
	for (k = 0; k < NUM_EVENTS; k++)
	{
		slot->tts_values[c->n[k]] = Int64GetDatum(e->n[k]);
		slot->tts_isnull[c->n[k]] = false;
	}
	put_durations(slot, &c->wait, &e->wait);
	put_durations(slot, &c->run, &e->run);
	ExecStoreVirtualTuple(slot);
}

/*
 * Write the entries of h to awa.history_deltas (relid), one row each,
 * directly and all at once (one table_multi_insert: a statement over many
 * queues writes many rows): no executor start-up (none at all while the
 * table has no index), and no privilege on the table needed by whoever
 * changed awa.jobs.
 */
static void
history_write(History *h, Oid relid)
{
	Relation	rel;
	const DeltaColumns *c;
	TupleTableSlot **slots;
	int			n = 0;
	int			i;
	MemoryContext old;

	if (h->one == NULL || !OidIsValid(relid))
		return;
	old = MemoryContextSwitchTo(h->cxt);
	rel = table_open(relid, RowExclusiveLock);
	c = delta_columns(rel);
	if (h->tab == NULL)
	{
		slots = palloc(sizeof(TupleTableSlot *));
		slots[n] = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
		entry_slot(c, slots[n++], h->one);
	}
	else
	{
		HASH_SEQ_STATUS seq;
		HistoryEntry *e;

		slots = palloc(sizeof(TupleTableSlot *) * hash_get_num_entries(h->tab));
		hash_seq_init(&seq, h->tab);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			slots[n] = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
			entry_slot(c, slots[n++], e);
		}
	}
	table_multi_insert(rel, slots, n, GetCurrentCommandId(true), 0, NULL);
	if (rel->rd_rel->relhasindex)
	{
		EState	   *estate = CreateExecutorState();
		ResultRelInfo *rri = makeNode(ResultRelInfo);

		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		for (i = 0; i < n; i++)
		{
			(void) ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
			ResetPerTupleExprContext(estate);
		}
		ExecCloseIndices(rri);
		FreeExecutorState(estate);
	}
	for (i = 0; i < n; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	table_close(rel, NoLock);
	MemoryContextSwitchTo(old);
}

/* ---------------------------------------------------------------------
 * The direct insert path
 *
 * As the job counters' notes (counters.c), which write these: notes
 * belong to the subtransaction that made them, are written at the end of
 * the statement while it is the current one (or all before commit), handed
 * to the parent when it commits and dropped when it aborts.
 * ---------------------------------------------------------------------
 */

typedef struct Notes
{
	SubTransactionId subid;
	History		h;
	struct Notes *next;
} Notes;

static Notes *notes = NULL;		/* in TopTransactionContext */

/* At commit, write what is left; when the transaction ends, forget the notes. */
static void
history_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* the counters write them first; this guards against a slip */
			awa_history_write_notes(true);
			break;
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
		default:
			/* ended: the notes went with TopTransactionContext */
			notes = NULL;
			break;
	}
}

/* Hand a committed subtransaction's notes to its parent; drop an aborted one's. */
static void
history_subxact_cb(SubXactEvent event, SubTransactionId mySubid,
				   SubTransactionId parentSubid, void *arg)
{
	Notes	  **pp = &notes;

	while (*pp != NULL)
	{
		Notes	   *n = *pp;

		if (n->subid == mySubid && event == SUBXACT_EVENT_COMMIT_SUB)
			n->subid = parentSubid;
		else if (n->subid == mySubid && event == SUBXACT_EVENT_ABORT_SUB)
		{
			*pp = n->next;
			history_free(&n->h);
			continue;
		}
		pp = &n->next;
	}
}

/* The notes of the current subtransaction, made if it has none. */
static History *
notes_current(void)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	Notes	   *n;

	if (!callbacks_registered)
	{
		RegisterXactCallback(history_xact_cb, NULL);
		RegisterSubXactCallback(history_subxact_cb, NULL);
		callbacks_registered = true;
	}
	for (n = notes; n != NULL; n = n->next)
		if (n->subid == cur)
			break;
	if (n == NULL)
	{
		n = MemoryContextAllocZero(TopTransactionContext, sizeof(Notes));
		n->subid = cur;
		history_init(&n->h, TopTransactionContext, true);
		n->h.noted = true;
		n->next = notes;
		notes = n;
	}
	return &n->h;
}

/*
 * Note a job the direct insert path wrote (its created_at is now()); the
 * job counters write the notes (awa_history_write_notes).
 */
void
awa_history_note_insert(const char *queue, const char *kind)
{
	History    *h;
	HistoryEntry *e;
	MemoryContext old;
	text	   *q;
	text	   *k;

	if (!awa_track_history)
		return;
	h = notes_current();
	old = MemoryContextSwitchTo(h->cxt);
	q = cstring_to_text(queue);
	k = cstring_to_text(kind);
	e = history_entry(h, q, k, GetCurrentTransactionStartTimestamp());
	e->n[EV_ENQUEUED]++;
	pfree(q);
	pfree(k);
	MemoryContextSwitchTo(old);
}

/* Write and drop the notes of the current subtransaction (all: at commit). */
void
awa_history_write_notes(bool all)
{
	SubTransactionId cur;
	Notes	  **pp = &notes;

	if (notes == NULL)
		return;
	cur = GetCurrentSubTransactionId();
	while (*pp != NULL)
	{
		Notes	   *n = *pp;

		if (all || n->subid == cur)
		{
			*pp = n->next;		/* unlinked first: an error drops it */
			history_write(&n->h, deltas_relid());
			history_free(&n->h);
		}
		else
			pp = &n->next;
	}
}

/* ---------------------------------------------------------------------
 * The trigger
 * ---------------------------------------------------------------------
 */

/* What an updated row's event needs of its old version. */
typedef struct OldJob
{
	int64		id;				/* hash key */
	int			state;
	bool		has_attempted;
	TimestampTz attempted_at;
	TimestampTz due;			/* greatest(run_at, created_at) */
} OldJob;

/* Where the columns the events read are, in awa.jobs. */
typedef struct HistoryColumns
{
	Oid			rowtype;
	AwaJobColumns cols;
	int			id;
	int			created_at;
	int			attempted_at;
	int			finalized_at;
} HistoryColumns;

/* The AwaJobState of a job_state value (an enum OID). */
static int
state_of(const HistoryColumns *hc, Datum s)
{
	int			k;

	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		if (hc->cols.states[k] == s)
			return k;
	elog(ERROR, "awa: unknown job state %u", DatumGetObjectId(s));
	return -1;					/* keep compiler quiet */
}

/* A timestamp column of the slot, or dflt when it is NULL (*isnull tells, if asked). */
static TimestampTz
ts_or(TupleTableSlot *slot, int att, TimestampTz dflt, bool *isnull)
{
	bool		n;
	Datum		d = slot_getattr(slot, att + 1, &n);

	if (isnull)
		*isnull = n;
	return n ? dflt : DatumGetTimestampTz(d);
}

/* Add the jobs a statement inserted, each enqueued at its created_at. */
static void
history_inserted(History *h, Tuplestorestate *ts, TupleTableSlot *slot,
				 const HistoryColumns *hc, TimestampTz now)
{
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		qnull,
					knull;
		Datum		q = slot_getattr(slot, hc->cols.queue + 1, &qnull);
		Datum		k = slot_getattr(slot, hc->cols.kind + 1, &knull);

		if (qnull || knull)		/* NOT NULL columns */
			continue;
		history_entry(h, DatumGetTextPP(q), DatumGetTextPP(k),
					  ts_or(slot, hc->created_at, now, NULL))->n[EV_ENQUEUED]++;
	}
	tuplestore_rescan(ts);
}

/* What an updated row's old version tells: read from the slot. */
static void
old_job(TupleTableSlot *slot, const HistoryColumns *hc, OldJob *o)
{
	bool		isnull;
	Datum		s = slot_getattr(slot, hc->cols.state + 1, &isnull);
	TimestampTz run_at;
	TimestampTz created;

	o->state = isnull ? -1 : state_of(hc, s);
	o->attempted_at = ts_or(slot, hc->attempted_at, 0, &isnull);
	o->has_attempted = !isnull;
	run_at = ts_or(slot, hc->cols.run_at, DT_NOBEGIN, NULL);
	created = ts_or(slot, hc->created_at, DT_NOBEGIN, NULL);
	o->due = Max(run_at, created);
}

/* The job id of the slot's row. */
static int64
id_of(TupleTableSlot *slot, const HistoryColumns *hc, bool *isnull)
{
	Datum		id = slot_getattr(slot, hc->id + 1, isnull);

	return *isnull ? 0 : DatumGetInt64(id);
}

/* Add the event (if any) of one updated row, given its old version. */
static void
history_row_updated(History *h, TupleTableSlot *slot, const HistoryColumns *hc, const OldJob *o,
					TimestampTz now)
{
	bool		isnull;
	Datum		s = slot_getattr(slot, hc->cols.state + 1, &isnull);
	int			state;
	Datum		q,
				k;
	bool		qnull,
				knull;
	HistoryEntry *e;
	HistoryEvent ev;
	TimestampTz at;

	if (isnull || o->state < 0)
		return;
	state = state_of(hc, s);
	if (state == o->state)
		return;					/* a heartbeat, progress, ... */
	switch (state)
	{
		case AWA_STATE_RUNNING:
			ev = EV_STARTED;
			at = ts_or(slot, hc->attempted_at, now, NULL);
			break;
		case AWA_STATE_COMPLETED:
		case AWA_STATE_FAILED:
		case AWA_STATE_CANCELLED:
			ev = state == AWA_STATE_COMPLETED ? EV_COMPLETED :
				state == AWA_STATE_FAILED ? EV_FAILED : EV_CANCELLED;
			at = ts_or(slot, hc->finalized_at, now, NULL);
			break;
		case AWA_STATE_RETRYABLE:
			ev = EV_RETRIED;
			at = now;
			break;
		default:
			return;				/* promoted, snoozed, retried by hand, ... */
	}
	q = slot_getattr(slot, hc->cols.queue + 1, &qnull);
	k = slot_getattr(slot, hc->cols.kind + 1, &knull);
	if (qnull || knull)
		return;
	e = history_entry(h, DatumGetTextPP(q), DatumGetTextPP(k), at);
	e->n[ev]++;
	if (ev == EV_STARTED)
		durations_add(&e->wait, at - o->due);
	else if ((o->state == AWA_STATE_RUNNING || o->state == AWA_STATE_WAITING_EXTERNAL) &&
			 o->has_attempted)
		durations_add(&e->run, at - o->attempted_at);
}

/*
 * Add the events of the rows a statement updated.  PostgreSQL stores the
 * old and new versions of each row at the same position of the two
 * transition tables, so they are read side by side; should the ids ever
 * differ, the rest is matched through a hash table of the old rows by id.
 */
static void
history_updated(History *h, Tuplestorestate *oldts, Tuplestorestate *newts,
				TupleTableSlot *oldslot, TupleTableSlot *slot, const HistoryColumns *hc,
				TimestampTz now)
{
	HTAB	   *olds = NULL;
	OldJob		o;

	tuplestore_rescan(oldts);
	tuplestore_rescan(newts);
	while (tuplestore_gettupleslot(newts, true, false, slot))
	{
		bool		isnull;
		int64		id = id_of(slot, hc, &isnull);

		if (isnull)
			continue;
		if (olds == NULL)
		{
			bool		oldnull;

			if (tuplestore_gettupleslot(oldts, true, false, oldslot) &&
				id_of(oldslot, hc, &oldnull) == id && !oldnull)
			{
				old_job(oldslot, hc, &o);
				history_row_updated(h, slot, hc, &o, now);
				continue;
			}
			else
			{
				/* not side by side: look the old rows up by id from here on */
				HASHCTL		ctl;

				memset(&ctl, 0, sizeof(ctl));
				ctl.keysize = sizeof(int64);
				ctl.entrysize = sizeof(OldJob);
				ctl.hcxt = h->cxt;
				olds = hash_create("awa history old jobs", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
				tuplestore_rescan(oldts);
				while (tuplestore_gettupleslot(oldts, true, false, oldslot))
				{
					int64		oid = id_of(oldslot, hc, &oldnull);

					if (!oldnull)
						old_job(oldslot, hc, hash_search(olds, &oid, HASH_ENTER, NULL));
				}
			}
		}
		{
			OldJob	   *found = hash_search(olds, &id, HASH_FIND, NULL);

			if (found != NULL)
				history_row_updated(h, slot, hc, found, now);
		}
	}
	tuplestore_rescan(oldts);
	tuplestore_rescan(newts);
}

/*
 * Called by the job counters' statement trigger on awa.jobs (counters.c)
 * after an INSERT or UPDATE: write the statement's events to
 * awa.history_deltas (see the top of this file).  DELETE and TRUNCATE are
 * no events.
 */
void
awa_history_changes(TriggerData *td)
{
	static HistoryColumns hc;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	History		h;
	TupleTableSlot *slot;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Oid			relid;
	MemoryContext old;

	if (!awa_track_history || td->tg_newtable == NULL)
		return;
	relid = deltas_relid();
	if (!OidIsValid(relid))
		return;
	if (hc.rowtype != desc->tdtypeid || !OidIsValid(hc.rowtype))
	{
		awa_job_columns(desc, &hc.cols);
		hc.id = awa_job_column(desc, "id");
		hc.created_at = awa_job_column(desc, "created_at");
		hc.attempted_at = awa_job_column(desc, "attempted_at");
		hc.finalized_at = awa_job_column(desc, "finalized_at");
		hc.rowtype = desc->tdtypeid;
	}

	/* one context for every statement, emptied here (also after an error) */
	if (stmt_cxt == NULL)
		stmt_cxt = AllocSetContextCreate(TopMemoryContext, "awa history statement",
										 ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(stmt_cxt);
	history_init(&h, stmt_cxt, false);
	old = MemoryContextSwitchTo(stmt_cxt);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		history_inserted(&h, td->tg_newtable, slot, &hc, now);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) && td->tg_oldtable != NULL)
	{
		TupleTableSlot *oldslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);

		history_updated(&h, td->tg_oldtable, td->tg_newtable, oldslot, slot, &hc, now);
		ExecDropSingleTupleTableSlot(oldslot);
	}
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextSwitchTo(old);
	history_write(&h, relid);
	MemoryContextReset(stmt_cxt);
}

/* ---------------------------------------------------------------------
 * hook: robs -- events of ring jobs (history.h)
 * ---------------------------------------------------------------------
 */
StaticAssertDecl((int) AWA_HISTORY_ENQUEUED == (int) EV_ENQUEUED &&
				 (int) AWA_HISTORY_STARTED == (int) EV_STARTED &&
				 (int) AWA_HISTORY_COMPLETED == (int) EV_COMPLETED &&
				 (int) AWA_HISTORY_FAILED == (int) EV_FAILED &&
				 (int) AWA_HISTORY_RETRIED == (int) EV_RETRIED &&
				 (int) AWA_HISTORY_CANCELLED == (int) EV_CANCELLED,
				 "history.h's events are history.c's");

History *
awa_history_open(void)
{
	History    *h;

	if (!awa_track_history || !OidIsValid(deltas_relid()))
		return NULL;
	h = palloc0(sizeof(History));
	history_init(h, CurrentMemoryContext, true);
	return h;
}

void
awa_history_event(History *h, text *queue, text *kind, AwaHistoryEvent ev, TimestampTz at,
				  bool has_from, TimestampTz from)
{
	HistoryEntry *e;
	MemoryContext old;

	old = MemoryContextSwitchTo(h->cxt);
	e = history_entry(h, queue, kind, at);
	e->n[ev]++;
	if (has_from && ev == AWA_HISTORY_STARTED)
		durations_add(&e->wait, at - from);
	else if (has_from && ev != AWA_HISTORY_ENQUEUED)
		durations_add(&e->run, at - from);
	MemoryContextSwitchTo(old);
}

/*
 * hook: rdelta -- as awa_history_open, but within a batch of jobs
 * (batch.h) the notes of the current subtransaction, written with the
 * counters' at the batch's end (awa_history_close leaves them).
 */
History *
awa_history_open_statement(void)
{
	if (!awa_batch_active())
		return awa_history_open();
	if (!awa_track_history || !OidIsValid(deltas_relid()))
		return NULL;
	return notes_current();
}

void
awa_history_close(History *h)
{
	if (h == NULL || h->noted)
		return;
	history_write(h, deltas_relid());
	history_free(h);
	pfree(h);
}

/* ---------------------------------------------------------------------
 * Histograms as bigint[] (SQL-callable helpers)
 * ---------------------------------------------------------------------
 */

/* Check that a is a histogram: one dimension, no NULLs, buckets in range. */
static void
check_histogram(ArrayType *a, int *lo, int *n, int64 **counts)
{
	Datum	   *elems;
	bool	   *nulls;
	int			i;

	if (ARR_ELEMTYPE(a) != INT8OID)
		elog(ERROR, "awa: a histogram is a bigint[]");
	if (ARR_NDIM(a) == 0)
	{
		*lo = 0;
		*n = 0;
		*counts = NULL;
		return;
	}
	if (ARR_NDIM(a) != 1 || ARR_LBOUND(a)[0] < 0 ||
		ARR_LBOUND(a)[0] + ARR_DIMS(a)[0] - 1 > AWA_HISTORY_TOP_BUCKET)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a histogram must be a one-dimensional bigint[] subscripted by bucket numbers 0 to %d",
						AWA_HISTORY_TOP_BUCKET)));
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, n);
	*lo = ARR_LBOUND(a)[0];
	*counts = palloc(sizeof(int64) * *n);
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a histogram must not contain NULLs")));
		(*counts)[i] = DatumGetInt64(elems[i]);
	}
}

/*
 * awa.history_add(a bigint[], b bigint[]) RETURNS bigint[]
 *
 * The bucket-by-bucket sum of two histograms (see the top of this file);
 * NULL counts as empty, so it is also the transition of awa.history_sum.
 * Errors: 22023 (not a histogram), 22004 (a NULL count).
 */
Datum
awa_history_add(PG_FUNCTION_ARGS)
{
	int			lo[2],
				n[2];
	int64	   *c[2];
	int			a,
				from = INT_MAX,
				to = -1,
				len,
				i;
	Datum	   *elems;

	for (a = 0; a < 2; a++)
	{
		n[a] = 0;
		lo[a] = 0;
		c[a] = NULL;
		if (!PG_ARGISNULL(a))
			check_histogram(PG_GETARG_ARRAYTYPE_P(a), &lo[a], &n[a], &c[a]);
		if (n[a] > 0)
		{
			from = Min(from, lo[a]);
			to = Max(to, lo[a] + n[a] - 1);
		}
	}
	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (to < 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	len = to - from + 1;
	elems = palloc0(sizeof(Datum) * len);
	for (i = 0; i < len; i++)
	{
		int64		sum = 0;

		for (a = 0; a < 2; a++)
		{
			int			j = from + i - lo[a];

			if (c[a] != NULL && j >= 0 && j < n[a])
				sum += c[a][j];
		}
		elems[i] = Int64GetDatum(sum);
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, NULL, 1, &len, &from,
											 INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * awa.history_percentile(hist bigint[], fraction float8, max_us bigint)
 * RETURNS float8
 *
 * The fraction-quantile (0 < fraction <= 1) of the durations counted in
 * hist, in seconds, to bucket precision: the upper bound of the bucket
 * that holds it (at most 19% above the exact value), but never above
 * max_us, the exact maximum.  NULL for an empty histogram.  Errors: 22023
 * (not a histogram, fraction out of range), 22004 (a NULL count).
 */
Datum
awa_history_percentile(PG_FUNCTION_ARGS)
{
	int			lo,
				n,
				i;
	int64	   *c;
	int64		total = 0,
				rank,
				cum = 0;
	float8		fraction = PG_GETARG_FLOAT8(1);
	int64		max_us = PG_GETARG_INT64(2);

	if (!(fraction > 0.0 && fraction <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fraction must be greater than 0 and at most 1, not %g", fraction)));
	check_histogram(PG_GETARG_ARRAYTYPE_P(0), &lo, &n, &c);
	for (i = 0; i < n; i++)
		total += c[i];
	if (total <= 0)
		PG_RETURN_NULL();
	if (!bounds_ready)
		bounds_init();
	rank = (int64) ceil(fraction * (double) total);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < n; i++)
	{
		cum += c[i];
		if (cum >= rank)
			break;
	}
	if (i == n)
		i = n - 1;
	PG_RETURN_FLOAT8((double) Min(bounds[lo + i], max_us) / 1e6);
}

/* ---------------------------------------------------------------------
 * Reading: awa_queue_history
 * ---------------------------------------------------------------------
 */

#define HISTORY_COLUMNS \
	"minute, queue, kind, enqueued, started, completed, failed, retried, cancelled," \
	" wait_count, wait_total_us, wait_max_us, wait_hist," \
	" run_count, run_total_us, run_max_us, run_hist"

/* from the start of the bucket ($4) that holds $1 */
#define HISTORY_FILTER \
	" WHERE minute >= pg_catalog.date_bin($4, $1, '1970-01-01 00:00:00+00')" \
	" AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR kind = $3)"

#define DURATION_COLUMNS(P) \
	" CASE WHEN sum(" P "_count) > 0 THEN awa.history_percentile(awa.history_sum(" P "_hist), 0.5," \
	"   max(" P "_max_us)) END," \
	" CASE WHEN sum(" P "_count) > 0 THEN awa.history_percentile(awa.history_sum(" P "_hist), 0.95," \
	"   max(" P "_max_us)) END," \
	" max(" P "_max_us) / 1e6::float8," \
	" (sum(" P "_total_us) / nullif(sum(" P "_count), 0) / 1e6)::float8"

static const char history_sql[] =
"WITH src AS ("
"  SELECT " HISTORY_COLUMNS " FROM awa.queue_history" HISTORY_FILTER
"  UNION ALL"
"  SELECT " HISTORY_COLUMNS " FROM awa.history_deltas" HISTORY_FILTER ")"
" SELECT pg_catalog.date_bin($4, minute, '1970-01-01 00:00:00+00') AS bucket_start, queue,"
"   CASE WHEN $5 OR $3::text IS NOT NULL THEN kind END AS kind,"
"   sum(enqueued)::bigint, sum(started)::bigint, sum(completed)::bigint, sum(failed)::bigint,"
"   sum(retried)::bigint, sum(cancelled)::bigint,"
DURATION_COLUMNS("wait") ","
DURATION_COLUMNS("run")
" FROM src GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

/*
 * awa_queue_history(queue text, since timestamptz, bucket interval,
 *		kind text, by_kind boolean) RETURNS TABLE (bucket_start, queue, kind,
 *		enqueued, started, completed, failed, retried, cancelled, wait_p50,
 *		wait_p95, wait_max, wait_avg, run_p50, run_p95, run_max, run_avg)
 *
 * The history, in buckets of a whole number of minutes aligned to the Unix
 * epoch, from the bucket that holds since; one row per bucket and queue
 * that had any event (and per kind, when by_kind or kind is given).
 * Exact at the caller's snapshot (folded rows plus unfolded deltas).
 * Errors: 22004 (since, bucket or by_kind NULL), 22023 (bucket not a
 * positive whole number of minutes, or with months).
 */
Datum
awa_queue_history(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_QUERY("awa_queue_history: query", history_sql,
									5, TIMESTAMPTZOID, TEXTOID, TEXTOID, INTERVALOID, BOOLOID);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Interval   *bucket;
	int64		bucket_us;
	TimestampTz since;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	uint64		i;

	awa_check_not_null(fcinfo, 1, "since");
	awa_check_not_null(fcinfo, 2, "bucket");
	awa_check_not_null(fcinfo, 4, "by_kind");
	since = PG_GETARG_TIMESTAMPTZ(1);
	bucket = PG_GETARG_INTERVAL_P(2);
	bucket_us = bucket->time + (int64) bucket->day * USECS_PER_DAY;
	if (bucket->month != 0 || bucket->day < 0 || bucket->day > 366 ||
		bucket_us <= 0 || bucket_us % MINUTE_USECS != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bucket must be a positive whole number of minutes (at most 366 days)"),
				 errdetail("Days count as 24 hours; months are not allowed.")));
	if (TIMESTAMP_NOT_FINITE(since))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must be a finite timestamp")));

	if (!OidIsValid(deltas_relid()))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("awa_queue_history needs a newer awa schema than the one installed in this database"),
				 errhint("Run ALTER EXTENSION awa UPDATE.")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	values[0] = TimestampTzGetDatum(since);
	values[1] = PG_GETARG_DATUM(0);
	nulls[1] = PG_ARGISNULL(0) ? 'n' : ' ';
	values[2] = PG_GETARG_DATUM(3);
	nulls[2] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[3] = IntervalPGetDatum(bucket);
	values[4] = PG_GETARG_DATUM(4);

	SPI_connect();
	awa_stmt_run(&stmt, values, nulls, 0);
	for (i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * Maintenance: folding and retention
 * ---------------------------------------------------------------------
 */

#define FOLD_SUM(C)		" sum(" C ")::bigint"
#define FOLD_ADD(C)		" " C " = h." C " + excluded." C
#define FOLD_ADD_DURATIONS(P) \
	FOLD_ADD(P "_count") "," \
	" " P "_total_us = CASE WHEN h." P "_total_us IS NULL THEN excluded." P "_total_us" \
	"   WHEN excluded." P "_total_us IS NULL THEN h." P "_total_us" \
	"   ELSE h." P "_total_us + excluded." P "_total_us END," \
	" " P "_max_us = greatest(h." P "_max_us, excluded." P "_max_us)," \
	" " P "_hist = awa.history_add(h." P "_hist, excluded." P "_hist)"

/*
 * One statement: delete a batch of deltas and add them up into their
 * minutes' rows.  Returns the deltas folded.
 */
static const char fold_sql[] =
"WITH d AS (DELETE FROM awa.history_deltas WHERE ctid = ANY (ARRAY("
"   SELECT ctid FROM awa.history_deltas LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) "))"
"   RETURNING " HISTORY_COLUMNS "),"
" ins AS (INSERT INTO awa.queue_history AS h (" HISTORY_COLUMNS ")"
"   SELECT minute, queue, kind," FOLD_SUM("enqueued") "," FOLD_SUM("started") ","
FOLD_SUM("completed") "," FOLD_SUM("failed") "," FOLD_SUM("retried") "," FOLD_SUM("cancelled") ","
FOLD_SUM("wait_count") "," FOLD_SUM("wait_total_us") ", max(wait_max_us), awa.history_sum(wait_hist),"
FOLD_SUM("run_count") "," FOLD_SUM("run_total_us") ", max(run_max_us), awa.history_sum(run_hist)"
"     FROM d GROUP BY minute, queue, kind"
"   ON CONFLICT (minute, queue, kind) DO UPDATE SET"
FOLD_ADD("enqueued") "," FOLD_ADD("started") "," FOLD_ADD("completed") ","
FOLD_ADD("failed") "," FOLD_ADD("retried") "," FOLD_ADD("cancelled") ","
FOLD_ADD_DURATIONS("wait") "," FOLD_ADD_DURATIONS("run")
"   RETURNING 1)"
" SELECT (SELECT count(*) FROM d) AS folded";

/*
 * Fold a batch of history deltas into awa.queue_history, unless another
 * session is folding (a try-lock: skip rather than wait).  Caller is in
 * SPI.  Returns the number of deltas folded, or -1 if it did not fold.
 */
int64
awa_history_fold(void)
{
	static AwaStmt fold = AWA_STMT("awa maintenance: folding the history", SPI_OK_SELECT,
								   fold_sql, 0, InvalidOid);
	static AwaStmt any = AWA_QUERY("awa maintenance: checking the history",
								   "SELECT 1 FROM awa.history_deltas LIMIT 1", 0, InvalidOid);
	LOCKTAG		tag;

	if (!OidIsValid(deltas_relid()))
		return -1;
	if (awa_stmt_run(&any, NULL, NULL, 1) == 0)
		return 0;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, AWA_HISTORY_LOCK_KEY1, AWA_HISTORY_LOCK_KEY2, 2);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return -1;
	awa_stmt_run(&fold, NULL, NULL, 0);
	return awa_stmt_int8(0, "folded");
}

/*
 * Delete a batch of history rows older than retention_secs (-1: keep
 * forever).  Caller is in SPI.  Returns the rows deleted.
 */
int64
awa_history_expire(int retention_secs)
{
	static AwaStmt expire = AWA_STMT("awa maintenance: deleting old history", SPI_OK_DELETE,
		"DELETE FROM awa.queue_history WHERE ctid = ANY (ARRAY("
		" SELECT ctid FROM awa.queue_history"
		"  WHERE minute < now() - make_interval(secs => $1)"
		"  LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) "))",
		1, INT4OID);
	Datum		secs = Int32GetDatum(retention_secs);

	if (retention_secs < 0 || !OidIsValid(deltas_relid()))
		return 0;
	return (int64) awa_stmt_run(&expire, &secs, NULL, 0);
}

/* Define the history's settings; called from _PG_init. */
void
awa_history_init(void)
{
	DefineCustomBoolVariable("awa.track_history",
							 "Records per-minute throughput history (awa_queue_history) with every change of awa.jobs.",
							 "Off, statements that enqueue, claim or finish jobs write no history rows; the history then misses their events.",
							 &awa_track_history,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}
