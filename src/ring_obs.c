/*-------------------------------------------------------------------------
 *
 * ring_obs.c
 *		What awa.jobs promises about a job's time, kept on the ring
 *		(docs/storage.md, "Step 5: timeouts, history and lag, wake-ups on
 *		the ring"): its history events and the lag of its queue.  The
 *		deadlines (a job's timeout, awa.heartbeat_timeout) are SQL
 *		expressions in ring_obs.h, used by ring.c's claim and ring_lease.c's
 *		heartbeat and rescue.
 *
 * History.  awa.jobs' statement trigger writes, per statement, one row of
 * awa.history_deltas per (queue, kind, minute) it touched (history.c).  The
 * ring's counting trigger (ring_read.c) already reads, for every row a
 * statement wrote to awa.ready, awa.claims, awa.done or awa.scheduled, the
 * attempt's ready row and receipt; it hands them here (hook: robs), and the
 * events are added up and written at the end of the statement through
 * history.c's own writer, so a ring job counts exactly as an awa.jobs job:
 *	 enqueued	a ready row of run_lease 0 whose run_at is not after its
 *				created_at (awa.ring_insert of a job due now), or a row of
 *				awa.scheduled with run_lease 0 (a job due later): at
 *				created_at.  A promoted row (run_at after created_at:
 *				awa.ring_insert put it in awa.scheduled because of that),
 *				a retry and awa.ring_retry's row are no new job;
 *	 started	a receipt, at claimed_at, waited claimed_at -
 *				greatest(run_at, created_at) of its ready row;
 *	 completed, failed, cancelled
 *				a done row of that state, at its finalized_at;
 *	 retried	a done row retryable, at the transaction's time;
 * and the end of an attempt that had a receipt (running, or parked in
 * waiting_external) ran from its claimed_at.  A done row waiting_external,
 * scheduled (a snooze) or available (awa.ring_retry ending a wait) is no
 * event, as the same changes of awa.jobs are none.  Nothing is read that
 * the counting trigger did not read already: no probe more per row, one
 * delta row per statement and (queue, kind, minute) -- per batch within a
 * batch of jobs (hook: rdelta; counters.c, "Batches": the events are noted
 * and written with the counters' notes at the batch's end).
 *
 * Lag.  awa_queue_stats' lag_seconds is the age of the oldest available
 * job of the queue.  A ring job is available while its newest ready row has
 * neither receipt nor done row; ready rows are never deleted, so the oldest
 * is found as the claim finds its candidates: per priority, the first such
 * row in the claim index's (run_at, id) order, from a key below which the
 * caller's snapshot sees no job waiting: the floor of the newest generation
 * of the lane's floors that snapshot may use (floor.c, awa_floor_begin_at;
 * lowered to the lowest run_at this transaction wrote into a waiting state,
 * whose pins are published only at its commit).  The walk reads with the
 * caller's snapshot: exact at it, as the counts are.  It then raises the
 * floors as a claim does (docs/storage.md, "Step 5: stats and admin reads
 * in constant time on the ring").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "counters.h"
#include "floor.h"
#include "history.h"
#include "ring.h"
#include "ring_maint.h"
#include "ring_obs.h"
#include "ring_sched.h"

/* ---------------------------------------------------------------------
 * History (see the head of this file)
 * ---------------------------------------------------------------------
 */

/* the statement's events, between awa_ring_history_begin and _end */
static struct History *cur = NULL;

/* A column of the slot's row by name (NULL-valued: *isnull); it must exist. */
static Datum
col(TupleTableSlot *slot, const char *name, bool *isnull)
{
	TupleDesc	d = slot->tts_tupleDescriptor;
	int			i;

	for (i = 0; i < d->natts; i++)
		if (!TupleDescAttr(d, i)->attisdropped &&
			strcmp(NameStr(TupleDescAttr(d, i)->attname), name) == 0)
			return slot_getattr(slot, i + 1, isnull);
	elog(ERROR, "awa: ring relation has no column \"%s\"", name);
	return (Datum) 0;			/* keep compiler quiet */
}

/* A timestamp column of the slot's row, or dflt when it is NULL. */
static TimestampTz
ts(TupleTableSlot *slot, const char *name, TimestampTz dflt)
{
	bool		isnull;
	Datum		d = col(slot, name, &isnull);

	return isnull ? dflt : DatumGetTimestampTz(d);
}

/* One event of the job whose ready (or scheduled) row is job. */
static void
event(TupleTableSlot *job, AwaHistoryEvent ev, TimestampTz at, bool has_from, TimestampTz from)
{
	bool		qnull,
				knull;
	Datum		q = col(job, "queue", &qnull);
	Datum		k = col(job, "kind", &knull);

	if (qnull || knull)			/* NOT NULL columns */
		return;
	awa_history_event(cur, DatumGetTextPP(q), DatumGetTextPP(k), ev, at, has_from, from);
}

bool
awa_ring_history_begin(void)
{
	cur = awa_history_open_statement();	/* hook: rdelta */
	return cur != NULL;
}

void
awa_ring_history_ready(TupleTableSlot *row, int64 lease)
{
	TimestampTz created;

	if (lease != 0)
		return;					/* a retry, awa.ring_retry: no new job */
	created = ts(row, "created_at", GetCurrentTransactionStartTimestamp());
	if (ts(row, "run_at", DT_NOBEGIN) > created)
		return;					/* promoted: enqueued when its scheduled row was */
	event(row, AWA_HISTORY_ENQUEUED, created, false, 0);
}

void
awa_ring_history_scheduled(TupleTableSlot *row)
{
	bool		isnull;

	if (DatumGetInt64(col(row, "run_lease", &isnull)) != 0)
		return;					/* a retry or snooze waiting: no new job */
	event(row, AWA_HISTORY_ENQUEUED, ts(row, "created_at", GetCurrentTransactionStartTimestamp()),
		  false, 0);
}

void
awa_ring_history_receipt(TupleTableSlot *row, TupleTableSlot *ready)
{
	TimestampTz at = ts(row, "claimed_at", GetCurrentTransactionStartTimestamp());
	TimestampTz due = Max(ts(ready, "run_at", DT_NOBEGIN), ts(ready, "created_at", DT_NOBEGIN));

	event(ready, AWA_HISTORY_STARTED, at, true, due);
}

void
awa_ring_history_done(TupleTableSlot *row, TupleTableSlot *ready, TupleTableSlot *receipt)
{
	bool		isnull;
	char	   *state = DatumGetCString(DirectFunctionCall1(enum_out, col(row, "state", &isnull)));
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	AwaHistoryEvent ev;
	TimestampTz at;

	if (strcmp(state, "completed") == 0)
		ev = AWA_HISTORY_COMPLETED;
	else if (strcmp(state, "failed") == 0)
		ev = AWA_HISTORY_FAILED;
	else if (strcmp(state, "cancelled") == 0)
		ev = AWA_HISTORY_CANCELLED;
	else if (strcmp(state, "retryable") == 0)
		ev = AWA_HISTORY_RETRIED;
	else
		return;					/* parked, snoozed, made available again: no event */
	at = ev == AWA_HISTORY_RETRIED ? now : ts(row, "finalized_at", now);
	/* an attempt that was running (or parked: it has its receipt) ran from its claim */
	if (receipt != NULL)
		event(ready, ev, at, true, ts(receipt, "claimed_at", now));
	else
		event(ready, ev, at, false, 0);
}

void
awa_ring_history_end(void)
{
	struct History *h = cur;

	cur = NULL;
	awa_history_close(h);
}

/* ---------------------------------------------------------------------
 * Lag (see the head of this file)
 * ---------------------------------------------------------------------
 */

/* The ready half of the walk: per priority, the first available ready row from a key. */
#define LAG_READY_SQL \
	"SELECT f.p::integer, x.run_at, x.id," \
	"  greatest(extract(epoch FROM now()) - extract(epoch FROM x.run_at), 0)::float8" \
	" FROM unnest($2, $3) WITH ORDINALITY AS f(run_at, id, p) CROSS JOIN LATERAL" \
	" (SELECT r.run_at, r.id FROM awa.ready r" \
	"  WHERE r.queue = $1 AND r.priority = f.p AND (r.run_at, r.id) >= (f.run_at, f.id)" \
	"  AND r.run_at > '-infinity'"	/* the claim index's predicate */ \
	"  AND (SELECT 1 FROM awa.claims c WHERE c.job_id = r.id" \
	"       AND c.run_lease = r.run_lease + 1 AND c.slot = r.slot LIMIT 1) IS NULL" \
	RING_NOT_DONE_SQL("r.slot", "r.id", "r.run_lease + 1") \
	"  ORDER BY r.run_at, r.id LIMIT 1) x"

/* Per priority, the first ready row found (or none) by one walk. */
typedef struct LagWalk
{
	bool		found[AWA_FLOOR_PRIORITIES];
	AwaFloorKey first[AWA_FLOOR_PRIORITIES];
	double		lag[AWA_FLOOR_PRIORITIES];
} LagWalk;

/*
 * Walk the queue's lanes from start[] with the snapshot snap
 * (InvalidSnapshot: the caller's): ready, the first available ready row of
 * each priority into w (emptied first); sched, the first scheduled row of
 * each priority where it is lower (a waiting job to the floors; lag[] not
 * set for it).  Caller is in SPI.
 */
static void
lag_walk(text *queue, const AwaFloorKey *start, Snapshot snap, bool ready, bool sched, LagWalk *w)
{
	static SPIPlanPtr ready_plan = NULL;
	static SPIPlanPtr sched_plan = NULL;
	static const Oid types[] = {TEXTOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	AwaFloorScan keys;
	Datum		values[3];
	uint64		i;
	int			p;

	memcpy(keys.floors, start, sizeof(keys.floors));
	values[0] = PointerGetDatum(queue);
	values[1] = awa_floor_run_ats(&keys);
	values[2] = awa_floor_ids(&keys);
	if (ready)
	{
		memset(w, 0, sizeof(*w));
		awa_plan(&ready_plan, LAG_READY_SQL, 3, (Oid *) types);
		awa_ring_run(ready_plan, values, NULL, snap, true, SPI_OK_SELECT, "awa_queue_stats: ring lag");
	}
	for (i = 0; ready && i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		p = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull)) - 1;
		if (p < 0 || p >= AWA_FLOOR_PRIORITIES)
			continue;
		w->first[p].run_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull));
		w->first[p].id = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
		w->lag[p] = DatumGetFloat8(SPI_getbinval(row, desc, 4, &isnull));
		w->found[p] = true;
	}
	if (!sched)
		return;
	/* hook: sched: scheduled rows are waiting jobs at their run_at (ring_claim.c's probe) */
	awa_plan(&sched_plan,
			 "SELECT f.p::integer, x.run_at, x.id"
			 " FROM unnest($2, $3) WITH ORDINALITY AS f(run_at, id, p) CROSS JOIN LATERAL"
			 " (SELECT s.run_at, s.id FROM awa.scheduled s"
			 "  WHERE s.queue = $1 AND s.priority = f.p AND (s.run_at, s.id) >= (f.run_at, f.id)"
			 "  ORDER BY s.run_at, s.id LIMIT 1) x",
			 3, (Oid *) types);
	awa_ring_run(sched_plan, values, NULL, snap, true, SPI_OK_SELECT, "awa_queue_stats: ring floor probe");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		AwaFloorKey k;

		p = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull)) - 1;
		if (p < 0 || p >= AWA_FLOOR_PRIORITIES)
			continue;
		k.run_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull));
		k.id = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
		if (!w->found[p] || k.run_at < w->first[p].run_at ||
			(k.run_at == w->first[p].run_at && k.id < w->first[p].id))
		{
			w->first[p] = k;
			w->found[p] = true;
		}
	}
}

/* AwaFloorProbe: what the stats' walk found (arg: its LagWalk). */
static void
lag_probed(AwaFloorScan *scan, Datum arg, AwaFloorKey *first, bool *found)
{
	LagWalk    *w = (LagWalk *) DatumGetPointer(arg);
	int			p;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		found[p] = w->found[p];
		if (found[p])
			first[p] = w->first[p];
	}
}

/*
 * The lag of the ring's oldest available job of the queue, in seconds as
 * awa_queue_stats computes it (the same expression), as the caller's
 * snapshot sees it; *found false: the ring has none.  Caller is in SPI.
 *
 * hook: rstats -- the walk starts, per priority, at the floor of the
 * newest generation of the lane's floors that the caller's snapshot may
 * use (floor.c, awa_floor_begin_at): past the claimed and ended head, yet
 * below every job that snapshot sees available.  Then the floors are
 * raised as a claim raises them, from the walk itself when the caller's
 * snapshot has seen every commit of the one taken after the read
 * (awa_floor_seen_all: nothing committed in between), else from a probe
 * with that one: after a
 * restart or a floor reset, only the first call walks the head.
 */
static double
ring_lag(text *queue, bool *found)
{
	static SPIPlanPtr any_plan = NULL;
	static const Oid types[] = {TEXTOID};
	AwaFloorScan scan;
	AwaFloorKey start[AWA_FLOOR_PRIORITIES];
	Snapshot	caller = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	LagWalk		w;
	Datum		values[1];
	double		lag = 0;
	char	   *lane;
	int			p;

	/*
	 * A queue the ring never held (an awa.jobs queue): no walk, and no
	 * floor lane taken for it (floor.c has 512).  One probe per slot.  On
	 * the ring engine every queue is the ring's (hook: rstats).
	 */
	awa_plan(&any_plan,
			 "SELECT 1 FROM awa.ready r WHERE r.queue = $1 AND r.run_at > '-infinity' LIMIT 1",
			 1, (Oid *) types);
	values[0] = PointerGetDatum(queue);
	if (!awa_engine_ring() &&
		awa_ring_run(any_plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa_queue_stats: ring queue") == 0)
	{
		*found = false;
		return 0;
	}

	lane = awa_ring_lane(queue);
	awa_floor_begin_at(&scan, lane, caller, start);
	/* an error releases the scan's snapshot with the resource owner */
	lag_walk(queue, start, InvalidSnapshot, true, false, &w);
	*found = false;
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		if (w.found[p] && (!*found || w.lag[p] > lag))
		{
			lag = w.lag[p];
			*found = true;
		}
	/*
	 * Nothing to raise: the walk found each priority's first available row
	 * at or below the floor read (or none where the floor is at the end
	 * already), the steady state between claims.
	 */
	if (scan.lane >= 0)
	{
		bool		raise = false;

		for (p = 0; p < AWA_FLOOR_PRIORITIES && !raise; p++)
			raise = w.found[p] ? (w.first[p].run_at > scan.floors[p].run_at ||
								  (w.first[p].run_at == scan.floors[p].run_at &&
								   w.first[p].id > scan.floors[p].id))
				: scan.floors[p].run_at != DT_NOEND;
		if (!raise)
		{
			UnregisterSnapshot(scan.snapshot);
			scan.lane = -1;
		}
	}
	if (scan.lane >= 0)
	{
		LagWalk		r;

		if (awa_floor_seen_all(caller, scan.snapshot->xmax))
		{
			/*
			 * the same commits seen: the walk is the probe's ready half
			 * (from a key no higher than the floor read)
			 */
			r = w;
			lag_walk(queue, scan.floors, InvalidSnapshot, false, true, &r);
		}
		else
			lag_walk(queue, scan.floors, scan.snapshot, true, true, &r);
		for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
			scan.ask[p] = true;
		awa_floor_end_with(&scan, lane, lag_probed, PointerGetDatum(&r));
	}
	return lag;
}

/*
 * hook: rstats -- awa_health_check's oldest_available_seconds on the ring
 * engine: the largest lag of the queues the counters show available jobs
 * of (counters.h: at the caller's snapshot), each as awa_queue_stats has
 * it; false: none.  Caller is in SPI.
 */
bool
awa_ring_oldest_lag(double *lag)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	text	  **queues;
	uint64		n;
	uint64		i;
	bool		any = false;

	awa_plan(&plan,
			 AWA_COUNTER_SOURCE_SQL
			 " SELECT queue FROM src GROUP BY queue HAVING sum(available) > 0",
			 0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa_health_check: reading the counters failed");
	n = SPI_processed;
	queues = MemoryContextAlloc(cxt, sizeof(text *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		queues[i] = isnull ? NULL : DatumGetTextPCopy(d);
		MemoryContextSwitchTo(old);
	}
	*lag = 0;
	for (i = 0; i < n; i++)
	{
		bool		found;
		double		l;

		if (queues[i] == NULL)
			continue;
		l = ring_lag(queues[i], &found);
		if (found && (!any || l > *lag))
		{
			*lag = l;
			any = true;
		}
	}
	return any;
}

bool
awa_ring_stats_in_use(void)
{
	return awa_ring_maint_in_use();
}

HeapTuple
awa_ring_stats_lag(HeapTuple row, TupleDesc desc, int queue_att, int available_att, int lag_att)
{
	bool		isnull;
	Datum		d;
	Datum	   *values;
	bool	   *nulls;
	bool	   *repl;
	double		lag;
	bool		found;
	HeapTuple	out;

	d = heap_getattr(row, available_att, desc, &isnull);
	if (isnull || DatumGetInt64(d) <= 0)
		return row;				/* lag_seconds is NULL without available jobs */
	d = heap_getattr(row, queue_att, desc, &isnull);
	if (isnull)
		return row;
	lag = ring_lag(DatumGetTextPP(d), &found);
	if (!found)
		return row;
	d = heap_getattr(row, lag_att, desc, &isnull);
	if (!isnull && DatumGetFloat8(d) >= lag)
		return row;				/* an awa.jobs job of the queue is older */
	values = palloc0(sizeof(Datum) * desc->natts);
	nulls = palloc0(sizeof(bool) * desc->natts);
	repl = palloc0(sizeof(bool) * desc->natts);
	values[lag_att - 1] = Float8GetDatum(lag);
	repl[lag_att - 1] = true;
	out = heap_modify_tuple(row, desc, values, nulls, repl);
	return out;
}
