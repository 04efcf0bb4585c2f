/*-------------------------------------------------------------------------
 *
 * ring_enq.c
 *		A batch's new jobs written into the ring with one statement
 *		(ring_enq.h; docs/storage.md, "Step 5: enqueue at bulk speed on
 *		the ring").
 *
 * Inside a batch (batch.c: awa_insert_many, an INSERT or COPY into the
 * view awa.jobs) a plain new job -- due now, no unique key, no parents, no
 * group -- is not written by a statement of its own: awa_ring_insert_job_ex
 * draws its id (awa.jobs_id_seq), notes its lane's pin and wake-up as
 * before, and hands its ready row to this file, which keeps it in memory.
 * The rows are written by one INSERT ... SELECT FROM unnest() into
 * awa.ready when the batch ends (awa_batch_end, before the batch's counter
 * notes are written, so the counting triggers add them to the batch's
 * notes), and before any job of the batch that is not plain (a unique,
 * dependent or grouped job goes through the statements it always had, and
 * reads the ring: the rows before it must be there).
 *
 * Transactions.  Rows are kept only while the subtransaction that kept
 * them is the innermost batch's and the current one, and are written in
 * it: a subtransaction that aborts drops the rows kept in it (and its
 * batch), and a job enqueued inside a nested subtransaction while rows of
 * an outer one are kept is written at once, as before (an outer
 * subtransaction's rows are never written inside a nested one, which
 * could abort alone).  The batch's end writes them, so none is ever left
 * at a statement's end; one left at commit is a bug and fails the commit
 * (XX000), as an open batch does.
 *
 * What a reader inside the batch sees: its own jobs appear at the batch's
 * end, not row by row (a volatile function in an INSERT ... SELECT's
 * select list that reads awa.jobs of the same transaction sees the jobs of
 * earlier statements only).  Nothing of awa reads the ring inside an
 * insert but the unique, dependency and group paths, which write the kept
 * rows first.
 *
 * Lane order is unchanged: each job's pin (floor.c) is noted when its id
 * is drawn and published at commit, as for a job written by a statement
 * of its own, and every row of the batch commits with its transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/array.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "awa.h"
#include "batch.h"
#include "counters.h"
#include "history.h"
#include "ring.h"
#include "ring_enq.h"
#include "ring_obs.h"
#include "ring_part.h"

/* more rows than this are written before the next is kept (memory) */
#define RING_ENQ_MAX_ROWS	10000
/* rows per table_multi_insert */
#define RING_ENQ_MULTI		256

/* a kept job: its ready row's values, copied into kept_cxt */
typedef struct KeptJob
{
	int64		id;
	text	   *kind;
	text	   *queue;
	Jsonb	   *args;
	Jsonb	   *metadata;
	ArrayType  *tags;
	Interval   *timeout;		/* NULL: none */
	int16		priority;
	int16		max_attempts;
	TimestampTz run_at;
} KeptJob;

/* where the ring's relations are (looked up again when the extension was made anew) */
typedef struct RingEnqRels
{
	Oid			nsp;
	Oid			ready;			/* awa.ready */
	Oid			seqid;			/* awa.jobs_id_seq */
	Oid			owner;			/* the ring's owner: who writes the rows */
} RingEnqRels;

static RingEnqRels rels;
static MemoryContext kept_cxt = NULL;
static KeptJob *kept = NULL;
static int	nkept = 0;
static int	maxkept = 0;
static SubTransactionId kept_subid = InvalidSubTransactionId;
static bool callbacks_registered = false;

static int64 awa_ring_enq_keep(const AwaJob *job, TimestampTz run_at);

static void
forget_kept(void)
{
	nkept = 0;
	maxkept = 0;
	kept = NULL;
	kept_subid = InvalidSubTransactionId;
	if (kept_cxt != NULL)
		MemoryContextReset(kept_cxt);
}

static void
enq_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (nkept > 0)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("awa: %d job(s) of a batch not written at commit", nkept)));
			break;
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
		default:
			forget_kept();
			break;
	}
}

static void
enq_subxact_cb(SubXactEvent event, SubTransactionId mySubid,
			   SubTransactionId parentSubid, void *arg)
{
	/* rows kept in the aborted subtransaction (or below it) go with it */
	if (event == SUBXACT_EVENT_ABORT_SUB && kept_subid != InvalidSubTransactionId &&
		kept_subid >= mySubid)
		forget_kept();
}

static void
load_rels(void)
{
	HeapTuple	tup;

	rels.nsp = get_namespace_oid("awa", false);
	rels.ready = get_relname_relid("ready", rels.nsp);
	rels.seqid = get_relname_relid("jobs_id_seq", rels.nsp);
	if (!OidIsValid(rels.ready) || !OidIsValid(rels.seqid))
		elog(ERROR, "awa.ready or awa.jobs_id_seq does not exist");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rels.ready));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", rels.ready);
	rels.owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
}

/*
 * Whether job may be kept for the batch: a plain new job (no unique key,
 * parents, group or concurrency key) inside a batch opened in the current
 * subtransaction, while no rows of another subtransaction are kept.
 */
static bool
may_keep(const AwaJob *job)
{
	SubTransactionId cur = GetCurrentSubTransactionId();

	if (!awa_batch_active() || awa_batch_innermost_subxact() != cur)
		return false;
	return nkept == 0 || kept_subid == cur;
}

/* See ring_enq.h. */
bool
awa_ring_enq_insert(const AwaJob *job, TimestampTz run_at, int64 *id)
{
	/* hook: keys -- a keyed job's row is listed by awa.ready's trigger: the statement writes it */
	if (job->unique != NULL || job->deps != NULL || job->group_id != NULL ||
		job->concurrency_key != NULL)
		return false;
	if (may_keep(job))
	{
		*id = awa_ring_enq_keep(job, run_at);
		return true;
	}
	if (nkept > 0)
		return false;			/* an outer subtransaction's rows are kept: by the statement */
	/* alone: written at once, the same way (no executor start-up for one row) */
	*id = awa_ring_enq_keep(job, run_at);
	awa_ring_enq_flush();
	return true;
}

static void *
copy_varlena(const void *v)
{
	return DatumGetPointer(datumCopy(PointerGetDatum(v), false, -1));
}

/* Draw the job's id and keep its ready row, due at run_at. */
static int64
awa_ring_enq_keep(const AwaJob *job, TimestampTz run_at)
{
	KeptJob    *k;
	MemoryContext old;

	if (!callbacks_registered)
	{
		RegisterXactCallback(enq_xact_cb, NULL);
		RegisterSubXactCallback(enq_subxact_cb, NULL);
		callbacks_registered = true;
	}
	if (kept_cxt == NULL)
		kept_cxt = AllocSetContextCreate(TopMemoryContext, "awa ring batch",
										 ALLOCSET_DEFAULT_SIZES);
	if (nkept >= RING_ENQ_MAX_ROWS)
		awa_ring_enq_flush();
	if (nkept == 0)
	{
		load_rels();
		kept_subid = GetCurrentSubTransactionId();
	}

	old = MemoryContextSwitchTo(kept_cxt);
	if (nkept >= maxkept)
	{
		maxkept = maxkept == 0 ? 64 : maxkept * 2;
		kept = kept == NULL ? palloc(sizeof(KeptJob) * maxkept) : repalloc(kept, sizeof(KeptJob) * maxkept);
	}
	k = &kept[nkept];
	/* as nextval('awa.jobs_id_seq') in the statement did (the caller is the ring's owner) */
	k->id = nextval_internal(rels.seqid, true);
	k->kind = copy_varlena(job->kind);
	k->queue = copy_varlena(job->queue);
	k->args = copy_varlena(job->args);
	k->metadata = copy_varlena(job->metadata);
	k->tags = copy_varlena(job->tags);
	if (job->timeout != NULL)
	{
		k->timeout = palloc(sizeof(Interval));	/* fixed-length, not a varlena */
		memcpy(k->timeout, job->timeout, sizeof(Interval));
	}
	else
		k->timeout = NULL;
	k->priority = (int16) job->priority;
	k->max_attempts = (int16) job->max_attempts;
	k->run_at = run_at;
	MemoryContextSwitchTo(old);
	nkept++;
	return k->id;
}

/* the columns of a ready row, in a relation's descriptor (0-based) */
typedef struct ReadyCols
{
	int			slot,
				id,
				run_lease,
				attempt,
				kind,
				queue,
				args,
				priority,
				max_attempts,
				run_at,
				created_at,
				metadata,
				tags,
				timeout;
} ReadyCols;

/*
 * The partition's columns, or false when it has one this file does not
 * fill that has a default or is NOT NULL (a newer awa.ready: the statement
 * path writes it).
 */
static bool
ready_cols(Relation rel, ReadyCols *c)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	c->slot = awa_column_if_any(desc, "slot");
	c->id = awa_column_if_any(desc, "id");
	c->run_lease = awa_column_if_any(desc, "run_lease");
	c->attempt = awa_column_if_any(desc, "attempt");
	c->kind = awa_column_if_any(desc, "kind");
	c->queue = awa_column_if_any(desc, "queue");
	c->args = awa_column_if_any(desc, "args");
	c->priority = awa_column_if_any(desc, "priority");
	c->max_attempts = awa_column_if_any(desc, "max_attempts");
	c->run_at = awa_column_if_any(desc, "run_at");
	c->created_at = awa_column_if_any(desc, "created_at");
	c->metadata = awa_column_if_any(desc, "metadata");
	c->tags = awa_column_if_any(desc, "tags");
	c->timeout = awa_column_if_any(desc, "timeout");
	if (c->slot < 0 || c->id < 0 || c->run_lease < 0 || c->attempt < 0 || c->kind < 0 ||
		c->queue < 0 || c->args < 0 || c->priority < 0 || c->max_attempts < 0 || c->run_at < 0 ||
		c->created_at < 0 || c->metadata < 0 || c->tags < 0 || c->timeout < 0)
		return false;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || i == c->slot || i == c->id || i == c->run_lease ||
			i == c->attempt || i == c->kind || i == c->queue || i == c->args ||
			i == c->priority || i == c->max_attempts || i == c->run_at ||
			i == c->created_at || i == c->metadata || i == c->tags || i == c->timeout)
			continue;
		if (att->attnotnull || att->atthasdef || att->attgenerated)
			return false;
	}
	return true;
}

/*
 * Whether the partition's triggers are only awa's statement trigger for a
 * restore's load (<partition>_restore_counting, ring_dump.c), which does
 * nothing outside a COPY into the partition itself.
 */
static bool
part_triggers_ok(Relation part)
{
	TriggerDesc *td = part->trigdesc;
	int			i;

	if (td == NULL)
		return true;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];
		size_t		len = strlen(t->tgname);
		static const char suffix[] = "_restore_counting";

		if (TRIGGER_FOR_ROW(t->tgtype) || len < sizeof(suffix) - 1 ||
			strcmp(t->tgname + len - (sizeof(suffix) - 1), suffix) != 0)
			return false;
	}
	return true;
}

/*
 * Whether rel's CHECK constraints are only awa's own ready_run_lease
 * (run_lease below its maximum) and ready_attempts (attempt below
 * max_attempts), which every row the direct path writes meets (run_lease
 * 0, attempt 0, max_attempts checked to be 1 or more): any other CHECK (a
 * user's) sends the rows through the INSERT, which evaluates it.
 */
static bool
only_own_checks(Relation rel)
{
	TupleConstr *constr = rel->rd_att->constr;
	int			i;

	if (constr == NULL)
		return true;
	for (i = 0; i < constr->num_check; i++)
		if (strcmp(constr->check[i].ccname, "ready_run_lease") != 0 &&
			strcmp(constr->check[i].ccname, "ready_attempts") != 0)
			return false;
	return true;
}

/*
 * Whether the ring's awa.ready has only its own triggers (the counting
 * one, and the keyed rows' list, which has nothing to do for a row without
 * a key), both firing, no row-level security, no CHECK constraint but
 * awa's own (only_own_checks), and
 * the partition no trigger of its own but awa's (part_triggers_ok): then
 * writing the rows directly and counting them as ready_count would is
 * exactly what the INSERT does.
 */
static bool
direct_ok(Relation parent, Relation part)
{
	TriggerDesc *td = parent->trigdesc;
	bool		counted = false;
	int			i;

	if (SessionReplicationRole != SESSION_REPLICATION_ROLE_ORIGIN || awa_ring_counting_off)
		return false;
	if (parent->rd_rel->relrowsecurity || part->rd_rel->relrowsecurity ||
		!part_triggers_ok(part) || td == NULL ||
		!only_own_checks(parent) || !only_own_checks(part))
		return false;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (t->tgenabled != TRIGGER_FIRES_ON_ORIGIN && t->tgenabled != TRIGGER_FIRES_ALWAYS)
			return false;
		if (strcmp(t->tgname, "ready_count") == 0)
			counted = true;
		else if (strcmp(t->tgname, "ready_keys_live") != 0)
			return false;
	}
	return counted;
}

/*
 * The direct writer's set-up, kept for the transaction (as fastinsert.c's
 * for awa.jobs): awa.ready and the partition of the slot it last wrote,
 * opened under TopTransactionResourceOwner with ROW EXCLUSIVE (held to the
 * end of the transaction anyway, as the INSERT's), the partition's indexes
 * and compiled partial-index predicate, and awa.ring_slots.  Any relcache
 * invalidation of them drops it; the next write builds it again.
 */
typedef struct DirectWriter
{
	LocalTransactionId lxid;	/* the transaction it belongs to */
	Relation	slots_rel;		/* awa.ring_slots */
	int			a_slots_slot;	/* its columns (1-based) */
	int			a_slots_state;
	/* the open slot last read, and when: the statement, awa_ring_slots_gen, the time (see open_slot) */
	int16		open;
	TimestampTz open_stmt;
	uint64		open_gen;
	TimestampTz open_read;
	Relation	parent;			/* awa.ready */
	bool		ok;				/* direct_ok and ready_cols held for part */
	int16		slot;			/* the slot of part */
	Relation	part;			/* its partition, NULL: none open */
	EState	   *estate;
	ResultRelInfo *rri;
	TupleDesc	desc;			/* a copy of part's (slots need no pin) */
	TupleTableSlot *slots[RING_ENQ_MULTI];
	int			nslots;
	BulkInsertState bis;
	ReadyCols	c;
} DirectWriter;

static DirectWriter *dw = NULL;
static bool dw_callbacks = false;

static void
dw_relcache_cb(Datum arg, Oid relid)
{
	if (dw != NULL && (relid == InvalidOid || relid == RelationGetRelid(dw->parent) ||
					   relid == RelationGetRelid(dw->slots_rel) ||
					   (dw->part != NULL && relid == RelationGetRelid(dw->part))))
		dw->lxid = InvalidLocalTransactionId;	/* rebuilt after closing */
}

/* Close the partition's set-up (the relation stays locked to the end of the transaction). */
static void
dw_close_part(void)
{
	int			i;

	if (dw->part == NULL)
		return;
	for (i = 0; i < dw->nslots; i++)
		ExecDropSingleTupleTableSlot(dw->slots[i]);
	dw->nslots = 0;
	FreeBulkInsertState(dw->bis);
	ExecCloseIndices(dw->rri);
	FreeExecutorState(dw->estate);
	FreeTupleDesc(dw->desc);
	table_close(dw->part, NoLock);
	dw->part = NULL;
}

/* Close what the set-up holds open, under the resource owner that opened it. */
static void
dw_close(void)
{
	ResourceOwner oldowner = CurrentResourceOwner;

	if (dw == NULL)
		return;
	if (TopTransactionResourceOwner != NULL)
		CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		dw_close_part();
		table_close(dw->parent, NoLock);
		table_close(dw->slots_rel, NoLock);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	dw = NULL;
}

static void
dw_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			dw_close();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			dw = NULL;			/* released by the abort, memory gone with the transaction */
			break;
		default:
			break;
	}
}

/* A subtransaction that created the ring (CREATE EXTENSION after a SAVEPOINT) aborts: close first. */
static void
dw_subxact_cb(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && dw != NULL &&
		(dw->parent->rd_createSubid == mySubid || dw->slots_rel->rd_createSubid == mySubid ||
		 (dw->part != NULL && dw->part->rd_createSubid == mySubid)))
		dw_close();
}

/* The set-up for this transaction (awa.ready and awa.ring_slots open). */
static DirectWriter *
dw_get(void)
{
	MemoryContext oldcxt;
	ResourceOwner oldowner;
	Oid			slots_id;

	if (!dw_callbacks)
	{
		CacheRegisterRelcacheCallback(dw_relcache_cb, (Datum) 0);
		RegisterXactCallback(dw_xact_cb, NULL);
		RegisterSubXactCallback(dw_subxact_cb, NULL);
		dw_callbacks = true;
	}
	if (dw != NULL && dw->lxid == MyProc->lxid)
		return dw;
	dw_close();					/* invalidated: start again */
	slots_id = get_relname_relid("ring_slots", rels.nsp);
	if (!OidIsValid(slots_id))
		elog(ERROR, "awa.ring_slots does not exist");

	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	oldowner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		DirectWriter *d = palloc0(sizeof(DirectWriter));
		TupleDesc	sd;

		/* the INSERT's locks: the parent, then (dw_part) the partition */
		d->slots_rel = table_open(slots_id, AccessShareLock);
		d->parent = table_open(rels.ready, RowExclusiveLock);
		sd = RelationGetDescr(d->slots_rel);
		d->a_slots_slot = awa_column_if_any(sd, "slot") + 1;
		d->a_slots_state = awa_column_if_any(sd, "state") + 1;
		if (d->a_slots_slot <= 0 || d->a_slots_state <= 0)
			elog(ERROR, "awa.ring_slots lacks its columns");
		d->open = -1;
		d->lxid = MyProc->lxid;
		dw = d;
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = oldowner;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	return dw;
}

/*
 * The open slot (55000 without one), read as the INSERT read it: with a
 * snapshot taken now (a new one per statement in READ COMMITTED).
 */
static int16
open_slot(DirectWriter *d)
{
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	int			found = 0;
	int16		slot = -1;

	/*
	 * Read again for each statement, after this transaction rotated the
	 * slots (awa_ring_slots_gen), and at least every second within a long
	 * statement (a DO loop that enqueues): the awa_insert calls of one
	 * statement (100 in a SELECT) read it once, as one INSERT of their rows
	 * would.  (A slot sealed meanwhile by another session is still right:
	 * see ring_slots.c, "Rotation".)  Not at each command counter
	 * increment: each awa_insert makes one, and the read then cost a quarter
	 * of an awa_insert.
	 */
	if (d->open >= 0 && d->open_stmt == GetCurrentStatementStartTimestamp() &&
		d->open_gen == awa_ring_slots_gen &&
		GetCurrentTimestamp() - d->open_read < USECS_PER_SEC)
		return d->open;
	snap = RegisterSnapshot(GetTransactionSnapshot());
	scan = table_beginscan(d->slots_rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		st = heap_getattr(tup, d->a_slots_state, RelationGetDescr(d->slots_rel), &isnull);

		if (isnull || strcmp(TextDatumGetCString(st), "open") != 0)
			continue;
		slot = DatumGetInt16(heap_getattr(tup, d->a_slots_slot, RelationGetDescr(d->slots_rel), &isnull));
		found++;
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	if (found != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.ring_insert: the ring has no open slot")));
	d->open = slot;
	d->open_stmt = GetCurrentStatementStartTimestamp();
	d->open_gen = awa_ring_slots_gen;
	d->open_read = GetCurrentTimestamp();
	return slot;
}

/* The partition of awa.ready that holds slot, InvalidOid if none. */
static Oid
slot_partition(Relation parent, int16 slot)
{
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);
	PartitionBoundInfo bi = pd->boundinfo;
	int			i;

	if (bi == NULL || bi->strategy != PARTITION_STRATEGY_LIST)
		return InvalidOid;
	for (i = 0; i < bi->ndatums; i++)
		if (DatumGetInt16(bi->datums[i][0]) == slot && bi->indexes[i] >= 0)
			return pd->oids[bi->indexes[i]];
	return InvalidOid;
}

/*
 * Make d's partition the one of slot (opened with ROW EXCLUSIVE: a reclaim
 * of the slot holds ACCESS EXCLUSIVE, and the rows go in after it commits,
 * as the INSERT's would).  False: no partition, or awa.ready is not as awa
 * made it (the statement writes the rows then).
 */
static bool
dw_part(DirectWriter *d, int16 slot)
{
	MemoryContext oldcxt;
	ResourceOwner oldowner;
	Oid			partid;

	if (d->part != NULL && d->slot == slot)
		return d->ok;
	partid = slot_partition(d->parent, slot);
	if (!OidIsValid(partid))
		return false;
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	oldowner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		dw_close_part();
		d->part = table_open(partid, RowExclusiveLock);
		d->slot = slot;
		d->ok = direct_ok(d->parent, d->part) && ready_cols(d->part, &d->c);
		d->estate = CreateExecutorState();
		d->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(d->rri, d->part, 1, NULL, 0);
		ExecOpenIndices(d->rri, false);
		d->bis = GetBulkInsertState();
		d->desc = CreateTupleDescCopy(RelationGetDescr(d->part));
		d->nslots = 0;			/* made as needed (a lone job needs one) */
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = oldowner;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	return d->ok;
}

/*
 * Write the rows into the open slot's partition as the INSERT would: heap
 * (table_multi_insert), index entries (the unique key checked), and what
 * awa.ready's counting trigger does for a new job's ready row, as notes of
 * the transaction (counters.c, history.c: the same notes awa.jobs' direct
 * path keeps, written at the end of the batch, else of the statement, or
 * before the commit): one more available job of its queue and its
 * "enqueued" event.  Returns false, having written nothing, when awa.ready
 * is not as awa made it (direct_ok): the statement writes the rows then.
 */
static bool
write_direct(void)
{
	DirectWriter *d = dw_get();
	ReadyCols  *c = &d->c;
	CommandId	cid;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			done;
	int			i;

	if (!dw_part(d, open_slot(d)))
		return false;
	if (d->nslots < Min(nkept, RING_ENQ_MULTI))
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);

		while (d->nslots < Min(nkept, RING_ENQ_MULTI))
			d->slots[d->nslots++] = MakeSingleTupleTableSlot(d->desc, &TTSOpsHeapTuple);
		MemoryContextSwitchTo(oldcxt);
	}
	cid = GetCurrentCommandId(true);
	for (done = 0; done < nkept;)
	{
		int			n = Min(nkept - done, RING_ENQ_MULTI);

		for (i = 0; i < n; i++)
		{
			KeptJob    *k = &kept[done + i];
			TupleTableSlot *s = d->slots[i];
			Datum	   *v;
			bool	   *isnull;

			ExecClearTuple(s);
			v = s->tts_values;
			isnull = s->tts_isnull;
			memset(isnull, true, sizeof(bool) * s->tts_tupleDescriptor->natts);
			v[c->slot] = Int16GetDatum(d->slot);
			v[c->id] = Int64GetDatum(k->id);
			v[c->run_lease] = Int64GetDatum(0);
			v[c->attempt] = Int16GetDatum(0);
			v[c->kind] = PointerGetDatum(k->kind);
			v[c->queue] = PointerGetDatum(k->queue);
			v[c->args] = JsonbPGetDatum(k->args);
			v[c->priority] = Int16GetDatum(k->priority);
			v[c->max_attempts] = Int16GetDatum(k->max_attempts);
			v[c->run_at] = TimestampTzGetDatum(k->run_at);
			v[c->created_at] = TimestampTzGetDatum(now);
			v[c->metadata] = JsonbPGetDatum(k->metadata);
			v[c->tags] = PointerGetDatum(k->tags);
			isnull[c->slot] = isnull[c->id] = isnull[c->run_lease] = isnull[c->attempt] = false;
			isnull[c->kind] = isnull[c->queue] = isnull[c->args] = isnull[c->priority] = false;
			isnull[c->max_attempts] = isnull[c->run_at] = isnull[c->created_at] = false;
			isnull[c->metadata] = isnull[c->tags] = false;
			if (k->timeout != NULL)
			{
				v[c->timeout] = IntervalPGetDatum(k->timeout);
				isnull[c->timeout] = false;
			}
			ExecStoreVirtualTuple(s);
		}
		table_multi_insert(d->part, d->slots, n, cid, 0, n > 1 ? d->bis : NULL);
		for (i = 0; i < n; i++)
		{
			KeptJob    *k = &kept[done + i];
			char	   *queue = text_to_cstring(k->queue);

			if (d->rri->ri_NumIndices > 0)
				(void) ExecInsertIndexTuples(d->rri, d->slots[i], d->estate, false, false, NULL, NIL);
			ResetPerTupleExprContext(d->estate);
			/* what ready_count adds up for a new job's ready row (ring_read.c, ring_obs.c) */
			awa_counters_note_insert(queue, AWA_STATE_AVAILABLE);
			awa_history_note_insert(queue, text_to_cstring(k->kind));
			ExecClearTuple(d->slots[i]);
		}
		done += n;
	}
	if (nkept > 1)
		ReleaseBulkInsertStatePin(d->bis);
	return true;
}

/* The rows as composite values of awa.ready's row type, for write_statement's unnest. */
static Datum
rows_array(Oid *arraytype)
{
	Relation	parent = table_open(rels.ready, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(parent);
	ReadyCols	c;
	Datum	   *rows = palloc(sizeof(Datum) * nkept);
	Datum	   *v = palloc(sizeof(Datum) * desc->natts);
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);
	Oid			typid = desc->tdtypeid;
	int			i;

	(void) ready_cols(parent, &c);
	if (c.id < 0 || c.kind < 0 || c.queue < 0 || c.args < 0 || c.priority < 0 ||
		c.max_attempts < 0 || c.run_at < 0 || c.metadata < 0 || c.tags < 0 || c.timeout < 0)
		elog(ERROR, "awa.ready lacks a column of a job");
	for (i = 0; i < nkept; i++)
	{
		KeptJob    *k = &kept[i];

		memset(isnull, true, sizeof(bool) * desc->natts);
		v[c.id] = Int64GetDatum(k->id);
		v[c.kind] = PointerGetDatum(k->kind);
		v[c.queue] = PointerGetDatum(k->queue);
		v[c.args] = JsonbPGetDatum(k->args);
		v[c.priority] = Int16GetDatum(k->priority);
		v[c.max_attempts] = Int16GetDatum(k->max_attempts);
		v[c.run_at] = TimestampTzGetDatum(k->run_at);
		v[c.metadata] = JsonbPGetDatum(k->metadata);
		v[c.tags] = PointerGetDatum(k->tags);
		isnull[c.id] = isnull[c.kind] = isnull[c.queue] = isnull[c.args] = false;
		isnull[c.priority] = isnull[c.max_attempts] = isnull[c.run_at] = false;
		isnull[c.metadata] = isnull[c.tags] = false;
		if (k->timeout != NULL)
		{
			v[c.timeout] = IntervalPGetDatum(k->timeout);
			isnull[c.timeout] = false;
		}
		rows[i] = heap_copy_tuple_as_datum(heap_form_tuple(desc, v, isnull), desc);
	}
	*arraytype = get_array_type(typid);
	table_close(parent, AccessShareLock);
	return PointerGetDatum(construct_array(rows, nkept, typid, -1, false, TYPALIGN_DOUBLE));
}

/*
 * The rows written by one INSERT ... SELECT FROM unnest() (its triggers
 * fire): for an awa.ready that is not as awa made it.
 */
static void
write_statement(void)
{
	static SPIPlanPtr plan = NULL;
	static Oid	plan_argtype = InvalidOid;
	Oid			arraytype;
	Datum		arg = rows_array(&arraytype);

	SPI_connect();
	/* the row type's OID changes when the extension is made anew: prepare anew then */
	if (plan_argtype != arraytype && plan != NULL)
	{
		SPI_freeplan(plan);
		plan = NULL;
	}
	plan_argtype = arraytype;
	awa_plan(&plan,
			 "INSERT INTO awa.ready (slot, id, kind, args, queue, priority, max_attempts, run_at,"
			 " tags, metadata, timeout)"
			 " SELECT s.slot, u.id, u.kind, u.args, u.queue, u.priority, u.max_attempts, u.run_at,"
			 " u.tags, u.metadata, u.timeout"
			 " FROM awa.ring_slots s CROSS JOIN pg_catalog.unnest($1) u WHERE s.state = 'open'",
			 1, &plan_argtype);
	if (awa_ring_run(plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_INSERT,
					 "awa.ring_insert: insert of a batch") != (uint64) nkept)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.ring_insert: the ring has no open slot")));
	SPI_finish();
}

/* See ring_enq.h. */
void
awa_ring_enq_flush(void)
{
	Oid			save_userid;
	int			save_sec;

	if (nkept == 0 || kept_subid != GetCurrentSubTransactionId())
		return;					/* nothing, or an outer subtransaction's: written there */

	/* as the ring's owner, as the statement per job ran (the rows were admitted as such) */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(rels.owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (!write_direct())
			write_statement();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	forget_kept();
	/*
	 * the rows visible to what the statement does next, as the statement
	 * path's INSERT made them through SPI: a dependent enqueued in the same
	 * statement reads its parent's row (awa_insert(..., after =>
	 * ARRAY[(awa_insert(...)).id]))
	 */
	CommandCounterIncrement();
}

/* Install the hooks (from _PG_init). */
void
awa_ring_enq_init(void)
{
	awa_ring_enq_insert_hook = awa_ring_enq_insert;
	awa_ring_enq_flush_hook = awa_ring_enq_flush;
}
