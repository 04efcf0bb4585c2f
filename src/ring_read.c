/*-------------------------------------------------------------------------
 *
 * ring_read.c
 *		Reading the ring (docs/storage.md, "Step 4: reading the ring,
 *		counters"): awa.ring_get, a ring job by id as a row of awa.jobs.
 *
 * The job is assembled by the view awa.ring_jobs (src/sql/awa.sql, "The
 * ring: reading the ring, counters"): the newest ready row of the id, the
 * job's newest receipt and newest done row, and the errors of its failed
 * attempts -- each a correlated probe of the (id, run_lease, slot) key of
 * every slot.  Here that view is read for one id with the plan pinned
 * like ring.c's (index probes only, whatever the statistics say).
 *
 * Counters (awa.ring_count_changes, an AFTER INSERT ... FOR EACH STATEMENT
 * trigger of awa.ready, awa.claims and awa.done with a transition table,
 * and of awa.scheduled's inserts and deletes: ring_count_scheduled):
 * each row written moves its job from one state to another; the trigger
 * adds -1 for the state before and +1 for the state after, per queue
 * (completed by the second of finalized_at), and writes the sums as delta
 * rows through counters.c, as awa.jobs' counting triggers do (hook:
 * rdelta -- within a batch of jobs, awa_insert_many or one INSERT or COPY
 * into the view awa.jobs, whose every job is an SPI statement of its own,
 * the sums are kept as notes and written once at the batch's end:
 * counters.c, "Batches"):
 *	ready row (id, L):	 before: the state of the done row (id, L) if any,
 *						 else running if the receipt (id, L) exists, else
 *						 none (a new job); after: available;
 *	receipt (id, L, s):	 before: the waiting state of the ready row
 *						 (id, L - 1, s); after: running;
 *	done row (id, L, s): before: running if the receipt (id, L, s) exists,
 *						 else the waiting state of the ready row
 *						 (id, L - 1, s) (an attempt ended before any claim:
 *						 cancel); waiting_external for the end of a parked
 *						 attempt's wait (after_wait; hook: rext); after: its
 *						 state.  A ready row's "before" is the attempt's
 *						 last done row in key order (the end of its wait).
 * The queue is the ready row's.  The probes read the newest snapshot after
 * the statement (its rows, every earlier one of the transaction, and what
 * others committed: a REPEATABLE READ claim takes ready rows committed
 * after its snapshot), straight through the unique (id, run_lease, slot)
 * index of each slot's partition -- no executor, no plan: the first
 * version, one SQL statement per trigger call, cost a claim + completion
 * of 10 about a third more than without counting, a third of that in
 * starting its plan.  So rows of one job written by one statement or by
 * several add up to the same, whichever function wrote them.  A row whose
 * ready row is not there (written by hand) is not counted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "counters.h"
#include "ring.h"
#include "ring_history.h"
#include "ring_obs.h"			/* hook: robs */

PG_FUNCTION_INFO_V1(awa_ring_get);
PG_FUNCTION_INFO_V1(awa_ring_count_changes);

/*
 * awa.ring_get(id bigint) returns awa.jobs
 *
 * The ring job with this id (its newest attempt), or NULL if the ring has
 * none.  55000 while awa.ring_engine is off.  STRICT: NULL id, NULL.
 */
Datum
awa_ring_get(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	Datum		values[1];
	Datum		row = (Datum) 0;
	bool		isnull = true;

	awa_ring_check_enabled("awa.ring_get");
	values[0] = PG_GETARG_DATUM(0);

	SPI_connect();
	/* hook: rhist -- the slots and awa.scheduled here, the history by its id range (ring_history.c) */
	awa_plan(&plan,
			 "SELECT ROW(j.*)::awa.jobs FROM awa.ring_live_jobs j WHERE j.id = $1",
			 1, argtypes);
	if (awa_ring_run(plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa.ring_get: read") > 0)
		row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	else
	{
		row = awa_ring_history_get(values[0], InvalidSnapshot, &isnull);

		/*
		 * hook: rhist -- a job moved into the history (or carried) by a
		 * reclaim this statement waited for: its snapshot, taken before the
		 * wait, sees the truncated slot empty and not the new rows.  Once
		 * more with a newer snapshot, unless the transaction has one
		 * snapshot (REPEATABLE READ, SERIALIZABLE).
		 */
		if (isnull && !IsolationUsesXactSnapshot())
		{
			Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

			if (awa_ring_run(plan, values, NULL, snap, true, SPI_OK_SELECT, "awa.ring_get: read") > 0)
				row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			else
				row = awa_ring_history_get(values[0], snap, &isnull);
			UnregisterSnapshot(snap);
		}
	}
	if (!isnull)
		row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(row);
}

/* ---------------------------------------------------------------------
 * Counting (see the top of this file)
 * ---------------------------------------------------------------------
 */

#define RING_MAX_PARTS	64

/* One of the ring's partitioned relations, its partitions opened as needed. */
typedef struct RingRel
{
	Relation	parent;
	int			nparts;
	Oid			oids[RING_MAX_PARTS];
	int16		slots[RING_MAX_PARTS];	/* the slot each partition holds */
	Relation	part[RING_MAX_PARTS];	/* NULL until opened */
	Relation	key[RING_MAX_PARTS];	/* its unique (id, run_lease, slot) index */
	TupleTableSlot *tslot[RING_MAX_PARTS];
} RingRel;

/* The (0-based) column of a relation; it must exist. */
static int
ring_column(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped &&
			strcmp(NameStr(TupleDescAttr(desc, i)->attname), name) == 0)
			return i;
	elog(ERROR, "awa: ring relation has no column \"%s\"", name);
	return -1;					/* keep compiler quiet */
}

/* Open awa.<name> and note its partitions and the slot of each. */
static void
ring_rel_open(RingRel *r, const char *name)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid("awa", false));
	PartitionDesc pd;
	PartitionBoundInfo b;
	int			i;

	if (!OidIsValid(relid))
		elog(ERROR, "awa: relation awa.%s does not exist", name);
	r->parent = table_open(relid, AccessShareLock);
	pd = RelationGetPartitionDesc(r->parent, true);
	b = pd->boundinfo;
	if (pd->nparts > RING_MAX_PARTS || b == NULL || b->strategy != PARTITION_STRATEGY_LIST)
		elog(ERROR, "awa: awa.%s is not LIST-partitioned by slot into at most %d partitions",
			 name, RING_MAX_PARTS);
	r->nparts = pd->nparts;
	for (i = 0; i < pd->nparts; i++)
	{
		r->oids[i] = pd->oids[i];
		r->slots[i] = -1;
		r->part[i] = NULL;
	}
	for (i = 0; i < b->ndatums; i++)
		if (b->indexes[i] >= 0 && b->indexes[i] < r->nparts)
			r->slots[b->indexes[i]] = DatumGetInt16(b->datums[i][0]);
}

/* Open partition i and its unique (id, run_lease, slot) index. */
static void
ring_part_open(RingRel *r, int i)
{
	List	   *indexes;
	ListCell   *lc;

	r->part[i] = table_open(r->oids[i], AccessShareLock);
	r->key[i] = NULL;
	indexes = RelationGetIndexList(r->part[i]);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);

		/* hook: rext -- done's key has a fourth column, after_wait */
		if (r->key[i] == NULL && idx->rd_index->indisunique &&
			idx->rd_index->indnkeyatts >= 3)
			r->key[i] = idx;
		else
			index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	if (r->key[i] == NULL)
		elog(ERROR, "awa: partition %s of the ring has no unique (id, run_lease, slot) index",
			 RelationGetRelationName(r->part[i]));
	r->tslot[i] = table_slot_create(r->part[i], NULL);
}

static void
ring_rel_close(RingRel *r)
{
	int			i;

	if (r->parent == NULL)
		return;
	for (i = 0; i < r->nparts; i++)
		if (r->part[i] != NULL)
		{
			ExecDropSingleTupleTableSlot(r->tslot[i]);
			index_close(r->key[i], AccessShareLock);
			table_close(r->part[i], AccessShareLock);
		}
	table_close(r->parent, AccessShareLock);
	r->parent = NULL;
}

static TupleTableSlot *ring_probe_dir(RingRel *r, int64 id, int64 lease, int slot, Snapshot snap,
									  ScanDirection dir);

/* hook: rdelta -- *snap, taken (after a CommandCounterIncrement) if not yet */
static Snapshot
ring_snapshot(Snapshot *snap)
{
	if (*snap == InvalidSnapshot)
	{
		CommandCounterIncrement();
		*snap = RegisterSnapshot(GetLatestSnapshot());
	}
	return *snap;
}

/*
 * The row (id, run_lease, slot) of r, or with slot < 0 the first row
 * (id, run_lease) of any slot: a slot of r's holding it, filled, or NULL.
 */
static TupleTableSlot *
ring_probe(RingRel *r, int64 id, int64 lease, int slot, Snapshot snap)
{
	return ring_probe_dir(r, id, lease, slot, snap, ForwardScanDirection);
}

/*
 * hook: rext -- as ring_probe, the last matching row of a slot in the key's
 * order with BackwardScanDirection: of a parked attempt's two done rows,
 * the end of its wait (after_wait) when it has one.
 */
static TupleTableSlot *
ring_probe_dir(RingRel *r, int64 id, int64 lease, int slot, Snapshot snap, ScanDirection dir)
{
	int			i;

	for (i = 0; i < r->nparts; i++)
	{
		ScanKeyData keys[3];
		IndexScanDesc scan;
		bool		found;

		if (slot >= 0 && r->slots[i] != slot)
			continue;
		if (r->part[i] == NULL)
			ring_part_open(r, i);
		ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
		ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(lease));
		if (slot >= 0)
			ScanKeyInit(&keys[2], 3, BTEqualStrategyNumber, F_INT2EQ, Int16GetDatum((int16) slot));
		scan = index_beginscan(r->part[i], r->key[i], snap, slot >= 0 ? 3 : 2, 0);
		index_rescan(scan, keys, slot >= 0 ? 3 : 2, NULL, 0);
		found = index_getnext_slot(scan, dir, r->tslot[i]);
		index_endscan(scan);
		if (found)
			return r->tslot[i];
	}
	return NULL;
}

/* The state of each value of awa.job_state (enum OIDs), for its type. */
static AwaJobState
ring_state_of(Oid typid, Datum value)
{
	static Oid	cached_type = InvalidOid;
	static Oid	values[AWA_NUM_JOB_STATES];
	int			k;

	if (cached_type != typid)
	{
		for (k = 0; k < AWA_NUM_JOB_STATES; k++)
			values[k] = DatumGetObjectId(DirectFunctionCall2(enum_in,
															 CStringGetDatum(awa_state_label((AwaJobState) k)),
															 ObjectIdGetDatum(typid)));
		cached_type = typid;
	}
	for (k = 0; k < AWA_NUM_JOB_STATES; k++)
		if (values[k] == DatumGetObjectId(value))
			return (AwaJobState) k;
	elog(ERROR, "awa: unknown job state %u", DatumGetObjectId(value));
	return AWA_STATE_AVAILABLE;	/* keep compiler quiet */
}

/*
 * A ready row's queue and waiting state (ready is the slot it is in): always
 * available, since a job due later is a row of awa.scheduled until it is due.
 */
typedef struct ReadyRow
{
	text	   *queue;
	AwaJobState state;
} ReadyRow;

static bool
ring_ready_row(TupleTableSlot *ready, ReadyRow *out)
{
	TupleDesc	d;
	bool		isnull;
	Datum		q;

	if (ready == NULL)
		return false;
	d = ready->tts_tupleDescriptor;
	q = slot_getattr(ready, ring_column(d, "queue") + 1, &isnull);
	if (isnull)					/* a NOT NULL column */
		return false;
	out->queue = DatumGetTextPP(q);
	out->state = AWA_STATE_AVAILABLE;
	return true;
}

static void
ring_add(AwaCounts *c, text *queue, AwaJobState state, TimestampTz fin, bool finnull, int64 n)
{
	awa_counts_add(c, VARDATA_ANY(queue), VARSIZE_ANY_EXHDR(queue), state, fin, finnull, n);
}

/*
 * The rows of awa.scheduled a statement inserted (+1) or deleted (-1): a row
 * with run_lease 0 is a job enqueued for later that was never ready, counted
 * by its own state (scheduled) while the row is there.  A row with a later
 * run_lease (a retry waiting out its backoff, a snooze) is counted by the
 * done row of the attempt that wrote it, and its promotion by the ready row
 * it becomes (the state before: that done row's).
 */
static Datum
ring_count_scheduled(TriggerData *td)
{
	bool		inserted = TRIGGER_FIRED_BY_INSERT(td->tg_event);
	Tuplestorestate *rows = inserted ? td->tg_newtable : td->tg_oldtable;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	int			a_queue = ring_column(desc, "queue");
	int			a_lease = ring_column(desc, "run_lease");
	int			a_state = ring_column(desc, "state");
	TupleTableSlot *row = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	AwaCounts  *c = awa_counts_statement();	/* hook: rdelta */
	/* hook: robs -- a job enqueued for later is enqueued (history, ring_obs.c) */
	bool		hist = inserted && awa_ring_history_begin();

	tuplestore_rescan(rows);
	while (tuplestore_gettupleslot(rows, true, false, row))
	{
		bool		isnull;

		if (DatumGetInt64(slot_getattr(row, a_lease + 1, &isnull)) != 0)
			continue;
		if (hist)
			awa_ring_history_scheduled(row);
		ring_add(c, DatumGetTextPP(slot_getattr(row, a_queue + 1, &isnull)),
				 ring_state_of(TupleDescAttr(desc, a_state)->atttypid,
							   slot_getattr(row, a_state + 1, &isnull)),
				 0, true, inserted ? 1 : -1);
	}
	tuplestore_rescan(rows);
	ExecDropSingleTupleTableSlot(row);
	if (hist)
		awa_ring_history_end();
	awa_counts_write(c);
	return PointerGetDatum(NULL);
}

/*
 * awa.ring_count_changes() — AFTER INSERT ... REFERENCING NEW TABLE ... FOR
 * EACH STATEMENT trigger of awa.ready, awa.claims and awa.done
 */
Datum
awa_ring_count_changes(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *name;
	TupleDesc	desc;
	TupleTableSlot *row;
	RingRel		ready = {0},
				claims = {0},
				done = {0};
	AwaCounts  *c;
	Snapshot	snap;
	int			a_id,
				a_lease,
				a_slot;
	Oid			statetype = InvalidOid;
	bool		hist;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) ? td->tg_newtable != NULL :
		  TRIGGER_FIRED_BY_DELETE(td->tg_event) && td->tg_oldtable != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_count_changes() must be called by an AFTER INSERT ... REFERENCING NEW TABLE or AFTER DELETE ... REFERENCING OLD TABLE ... FOR EACH STATEMENT trigger")));
	if (awa_ring_counting_off || awa_ring_restoring(td->tg_relation))
		return PointerGetDatum(NULL);	/* a carry (ring.h); a restore's load (ring_dump.c) */
	name = RelationGetRelationName(td->tg_relation);
	desc = RelationGetDescr(td->tg_relation);
	if (strcmp(name, "scheduled") == 0)
		return ring_count_scheduled(td);
	if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_count_changes() counts the deletes of awa.scheduled only")));
	if (strcmp(name, "ready") == 0)
		a_id = ring_column(desc, "id");
	else if (strcmp(name, "claims") == 0 || strcmp(name, "done") == 0)
		a_id = ring_column(desc, "job_id");
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_count_changes() counts rows of awa.ready, awa.claims, awa.done and awa.scheduled, not of %s",
						name)));
	a_lease = ring_column(desc, "run_lease");
	a_slot = ring_column(desc, "slot");

	/*
	 * The probes see the statement's rows, and the newest committed ones:
	 * the snapshot is taken for the first probe (hook: rdelta -- a new
	 * job's ready row probes nothing, and a batch writes one per statement).
	 */
	snap = InvalidSnapshot;
	c = awa_counts_statement();	/* hook: rdelta: a batch's notes */
	/* hook: robs -- the statement's history events (ring_obs.c), from the rows probed here */
	hist = awa_ring_history_begin();
	row = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(td->tg_newtable);
	while (tuplestore_gettupleslot(td->tg_newtable, true, false, row))
	{
		bool		isnull;
		int64		id = DatumGetInt64(slot_getattr(row, a_id + 1, &isnull));
		int64		lease = DatumGetInt64(slot_getattr(row, a_lease + 1, &isnull));
		int			slot = DatumGetInt16(slot_getattr(row, a_slot + 1, &isnull));
		ReadyRow	r;
		TupleTableSlot *rs;

		if (name[0] == 'r')		/* ready */
		{
			TupleTableSlot *prev;

			if (!ring_ready_row(row, &r))
				continue;
			if (hist)
				awa_ring_history_ready(row, lease);
			ring_add(c, r.queue, r.state, 0, true, 1);
			if (lease <= 0)
				continue;
			if (done.parent == NULL)
				ring_rel_open(&done, "done");
			/* hook: rext -- a parked attempt's wait ended: the state after_wait */
			if ((prev = ring_probe_dir(&done, id, lease, -1, ring_snapshot(&snap), BackwardScanDirection)) != NULL)
			{
				TupleDesc	pd = prev->tts_tupleDescriptor;
				bool		fnull;
				Datum		st = slot_getattr(prev, ring_column(pd, "state") + 1, &isnull);
				Datum		fin = slot_getattr(prev, ring_column(pd, "finalized_at") + 1, &fnull);

				ring_add(c, r.queue, ring_state_of(TupleDescAttr(pd, ring_column(pd, "state"))->atttypid, st),
						 fnull ? 0 : DatumGetTimestampTz(fin), fnull, -1);
				continue;
			}
			if (claims.parent == NULL)
				ring_rel_open(&claims, "claims");
			if (ring_probe(&claims, id, lease, -1, ring_snapshot(&snap)) != NULL)
				ring_add(c, r.queue, AWA_STATE_RUNNING, 0, true, -1);
			continue;
		}
		if (ready.parent == NULL)
			ring_rel_open(&ready, "ready");
		rs = ring_probe(&ready, id, lease - 1, slot, ring_snapshot(&snap));
		if (!ring_ready_row(rs, &r))
			continue;			/* no ready row: nothing to count it by */
		if (name[0] == 'c')		/* claims */
		{
			if (hist)
				awa_ring_history_receipt(row, rs);
			ring_add(c, r.queue, r.state, 0, true, -1);
			ring_add(c, r.queue, AWA_STATE_RUNNING, 0, true, 1);
		}
		else					/* done */
		{
			bool		fnull;
			int			a_state = ring_column(desc, "state");
			Datum		st = slot_getattr(row, a_state + 1, &isnull);
			Datum		fin = slot_getattr(row, ring_column(desc, "finalized_at") + 1, &fnull);
			bool		parked;
			TupleTableSlot *rc = NULL;

			if (!OidIsValid(statetype))
				statetype = TupleDescAttr(desc, a_state)->atttypid;
			if (claims.parent == NULL)
				ring_rel_open(&claims, "claims");
			/* hook: rext -- the end of a wait (after_wait) leaves waiting_external */
			parked = DatumGetBool(slot_getattr(row, ring_column(desc, "after_wait") + 1, &isnull));
			if (!parked || hist)
				rc = ring_probe(&claims, id, lease, slot, ring_snapshot(&snap));
			if (parked)
				ring_add(c, r.queue, AWA_STATE_WAITING_EXTERNAL, 0, true, -1);
			else if (rc != NULL)
			{
				ring_add(c, r.queue, AWA_STATE_RUNNING, 0, true, -1);
				/* hook: rflow -- an attempt left running: waiters at a limit count again at commit */
				awa_running_freed();
			}
			else
				ring_add(c, r.queue, r.state, 0, true, -1);
			/* hook: riso -- a held attempt (running or parked) cancelled: NOTIFY awa.cancel, as awa.jobs does */
			if ((parked || rc != NULL) && ring_state_of(statetype, st) == AWA_STATE_CANCELLED)
				awa_notify_cancel(id, lease);
			/* hook: robs -- history: the event of this end, run from the receipt's claim */
			if (hist)
				awa_ring_history_done(row, rs, rc);
			ring_add(c, r.queue, ring_state_of(statetype, st), fnull ? 0 : DatumGetTimestampTz(fin),
					 fnull, 1);
		}
	}
	tuplestore_rescan(td->tg_newtable);
	ExecDropSingleTupleTableSlot(row);
	ring_rel_close(&ready);
	ring_rel_close(&claims);
	ring_rel_close(&done);
	if (snap != InvalidSnapshot)
		UnregisterSnapshot(snap);
	if (hist)
		awa_ring_history_end();
	awa_counts_write(c);
	return PointerGetDatum(NULL);
}
