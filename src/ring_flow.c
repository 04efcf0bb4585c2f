/*-------------------------------------------------------------------------
 *
 * ring_flow.c
 *		Queue flow control on the ring's claim (docs/storage.md, "Step 5:
 *		queue flow control on the ring"): a paused queue hands out nothing,
 *		a queue's concurrency limit caps its running jobs, its rate caps
 *		its claims per period -- the settings of awa.queue_meta, by the
 *		queue's name, with the promises awa_claim keeps (claim.c).
 *
 * Per queue of a claim (awa_ring_flow_begin, before the claim's loop):
 *	1. the queue's awa.queue_meta row, one primary-key probe with the
 *	   newest snapshot (as the claim's candidates, also in REPEATABLE
 *	   READ).  No row, or neither paused nor a limit nor a rate: the claim
 *	   may take what it wants; this probe is all an unlimited queue pays;
 *	2. paused: nothing;
 *	3. a concurrency limit: the queue's transaction-level lock (the
 *	   advisory lock awa_claim takes for the queue: one lock per queue name
 *	   whatever the engine), then max_running minus the jobs of the queue
 *	   running, read again with the newest snapshot taken after the lock:
 *	   a claimer that held the lock before committed its receipts first.
 *	   The running jobs are the counters' (counters.c): the newest fold's
 *	   running count of the queue plus the running deltas of the
 *	   transactions that fold did not see -- the ring's counting trigger
 *	   (ring_read.c) writes the deltas in the claim's own statement, so
 *	   this claim's earlier claims in the transaction count too.  The
 *	   count is the queue's running jobs of both engines (awa.jobs' and
 *	   the ring's): a queue's limit is by name.  Its cost is the deltas
 *	   written since the last fold (the counters' index is by transaction
 *	   ID, not by queue), not the jobs -- see "The count" below;
 *	4. a rate: claims reserved under it in shared memory (ratelimit.c),
 *	   at most what step 3 allows.
 * The claim takes at most the allowance, then awa_ring_flow_end gives the
 * unused reservations back and, if it took nothing, lets go of the lock
 * (nothing for the next claimer to count).  With jobs taken the lock is
 * held to commit, so the next claimer of the queue counts them.
 *
 * The count.  To keep the deltas read small between two folds, a backend
 * keeps its last count per queue (ROOM_COUNTS queues) with the snapshot it
 * was made at (pg_current_snapshot(), the active one), and its next count
 * adds only the running deltas of the transactions that snapshot did not
 * see (ID at or above its xmax, or in its list of transactions in
 * progress), as long as the newest fold is the one it started from (its
 * number and the OID of awa.counter_folds: a fold deletes the deltas it
 * folds, and a new extension numbers its folds from 1 again).  A count is
 * kept only if its transaction had no ID yet: every row the transaction
 * writes later then has an ID at or above the snapshot's xmax.
 *
 * Nothing else is kept between the queues of a claim or between claims but
 * the probe a blocking claim arms (awa_ring_flow_probe_arm): ring_wait.c
 * runs awa.ring_claim through SQL and learns from it why the claim was
 * empty.
 *
 * Waking (wake.c): every ring path that ends a running attempt (complete,
 * fail, rescue, cancel, snooze, park for an external wait) writes a done
 * row whose counting (ring_read.c) sees the attempt's receipt: that one
 * place calls awa_running_freed, and at commit one waiter at a limit per
 * queue or lane is woken to count again (hook: rflow in ring_read.c).
 * Resuming a queue, and changing its limit or rate, wakes its ring waiters
 * as its awa.jobs waiters (hook: rflow in job.c's awa_queue_opened, which
 * wakes the queue's ring lane itself: job.c may not call this file).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/hash.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "ratelimit.h"
#include "ring.h"
#include "ring_flow.h"

/* field4 of the advisory lock tag of a queue's limit: claim.c's limit_locktag */
#define RING_FLOW_LIMIT_LOCK_CLASS	0x6177

static AwaRingFlowProbe probe;
static bool probe_armed = false;

/* The queue's limit lock, the one awa_claim takes (claim.c, limit_locktag). */
static void
ring_flow_locktag(LOCKTAG *tag, const char *queue)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 DatumGetUInt32(hash_any((const unsigned char *) queue, strlen(queue))),
						 0, RING_FLOW_LIMIT_LOCK_CLASS);
}

static void
ring_flow_unlock(AwaRingFlow *st)
{
	LOCKTAG		tag;

	if (!st->limited)
		return;
	ring_flow_locktag(&tag, st->queue);
	LockRelease(&tag, ExclusiveLock, false);
	st->limited = false;
}

/*
 * The count of a queue's running jobs this backend made last ("The count"
 * at the head of this file): at snapshot `snap` (a pg_snapshot,
 * taken while its transaction had no ID), from fold `fold` of the
 * counters in the awa.counter_folds whose OID is `folds`.
 */
typedef struct RoomCount
{
	char	   *queue;
	Oid			folds;
	int64		fold;
	Datum		snap;
	int64		running;
} RoomCount;

#define ROOM_COUNTS		16
static RoomCount room_counts[ROOM_COUNTS];
static int	nroom_counts = 0;
static int	next_room_count = 0;	/* the entry replaced next when all are in use */

static RoomCount *
room_count_find(const char *queue)
{
	int			i;

	for (i = 0; i < nroom_counts; i++)
		if (strcmp(room_counts[i].queue, queue) == 0)
			return &room_counts[i];
	return NULL;
}

/* Keep a count (its strings and snapshot copied to TopMemoryContext). */
static void
room_count_keep(const char *queue, Oid folds, int64 fold, Datum snap, int64 running)
{
	RoomCount  *c = room_count_find(queue);
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	if (c == NULL)
	{
		if (nroom_counts < ROOM_COUNTS)
			c = &room_counts[nroom_counts++];
		else
		{
			c = &room_counts[next_room_count];
			next_room_count = (next_room_count + 1) % ROOM_COUNTS;
			pfree(c->queue);
			pfree(DatumGetPointer(c->snap));
		}
		c->queue = pstrdup(queue);
	}
	else
		pfree(DatumGetPointer(c->snap));
	c->folds = folds;
	c->fold = fold;
	c->snap = datumCopy(snap, false, -1);
	c->running = running;
	MemoryContextSwitchTo(old);
}

/* The columns both counts return: the settings, the fold and the snapshot. */
#define ROOM_COLUMNS_SQL \
	"SELECT m.paused, m.max_running::bigint AS max_running, f.tableoid AS folds, f.fold," \
	" pg_catalog.pg_current_snapshot() AS snap, "
#define ROOM_FROM_SQL \
	" FROM awa.queue_meta m LEFT JOIN LATERAL" \
	" (SELECT l.tableoid, l.fold, l.snapshot FROM awa.counter_folds l ORDER BY l.fold DESC LIMIT 1) f ON true" \
	" WHERE m.queue = $1"
/* the running deltas of the queue's transactions that snapshot S did not see */
#define ROOM_DELTAS_SQL(S) \
	"coalesce((SELECT sum(d.running)::bigint FROM awa.counter_deltas d" \
	"  WHERE d.xid >= coalesce(pg_catalog.pg_snapshot_xmax(" S "), '0'::xid8) AND d.queue = m.queue), 0)" \
	" + coalesce((SELECT sum(d.running)::bigint FROM awa.counter_deltas d" \
	"  WHERE d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(" S "))) AND d.queue = m.queue), 0)"

/*
 * The queue's limit under its lock: max_running minus its running jobs
 * (>= 0), or -1 when the limit was lifted (or the row removed) since the
 * first read, -2 when the queue was paused since.  Caller is in SPI and
 * holds the lock.
 */
static int64
ring_flow_room(text *queue, const char *name)
{
	static SPIPlanPtr full_plan = NULL;
	static SPIPlanPtr since_plan = NULL;
	static const Oid full_types[] = {TEXTOID};
	static const Oid since_types[] = {TEXTOID, PG_SNAPSHOTOID};
	Datum		values[2] = {PointerGetDatum(queue), (Datum) 0};
	RoomCount  *kept = room_count_find(name);
	bool		isnull;
	bool		fold_null;
	Datum		max_running;
	Oid			folds;
	int64		fold;
	int64		running;
	TupleDesc	desc;
	HeapTuple	row;

	/* the newest snapshot, after the lock: the previous holder's receipts are counted */
	if (kept != NULL)
	{
		/* the deltas since the kept count, if the counters were not folded since */
		awa_plan(&since_plan,
				 ROOM_COLUMNS_SQL ROOM_DELTAS_SQL("$2") " AS running" ROOM_FROM_SQL,
				 2, since_types);
		values[1] = kept->snap;
		if (awa_ring_run(since_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa.ring_claim: counting the queue's running jobs") == 0)
			return -1;
		desc = SPI_tuptable->tupdesc;
		row = SPI_tuptable->vals[0];
		fold = DatumGetInt64(SPI_getbinval(row, desc, 4, &fold_null));
		folds = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
		if (fold_null || folds != kept->folds || fold != kept->fold)
			kept = NULL;
		else
			running = kept->running + DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
	}
	if (kept == NULL)
	{
		/* from the newest fold */
		awa_plan(&full_plan,
				 ROOM_COLUMNS_SQL
				 "coalesce((SELECT c.running FROM awa.counter_fold_counts c"
				 "  WHERE c.fold = f.fold AND c.queue = m.queue), 0) + "
				 ROOM_DELTAS_SQL("f.snapshot") " AS running" ROOM_FROM_SQL,
				 1, full_types);
		if (awa_ring_run(full_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa.ring_claim: counting the queue's running jobs") == 0)
			return -1;
		desc = SPI_tuptable->tupdesc;
		row = SPI_tuptable->vals[0];
		running = DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
	}
	if (DatumGetBool(SPI_getbinval(row, desc, 1, &isnull)))
		return -2;
	max_running = SPI_getbinval(row, desc, 2, &isnull);
	if (isnull)
		return -1;

	/*
	 * Kept for the next count only if this transaction has no ID yet: every
	 * row it writes later then has an ID at or above the snapshot's xmax,
	 * which the next count adds.  (Rows written before the snapshot by a
	 * transaction with an ID are seen by it as its own, and later ones of
	 * the same ID would be missed.)
	 */
	fold = DatumGetInt64(SPI_getbinval(row, desc, 4, &fold_null));
	folds = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
	if (!fold_null && !TransactionIdIsValid(GetTopTransactionIdIfAny()))
		room_count_keep(name, folds, fold, SPI_getbinval(row, desc, 5, &isnull), running);
	return Max(DatumGetInt64(max_running) - running, 0);
}

int64
awa_ring_flow_begin(text *queue, int64 want, AwaRingFlow *st)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(queue)};
	bool		isnull;
	bool		limited;
	int64		allowance = Max(want, 0);

	memset(st, 0, sizeof(*st));
	st->queue = text_to_cstring(queue);
	st->why = AWA_RING_FLOW_OPEN;
	st->allowance = allowance;
	if (allowance == 0)
		return 0;

	awa_plan(&plan,
			 "SELECT m.paused, m.max_running, m.rate_max_claims, m.rate_period, m.rate_set_at"
			 " FROM awa.queue_meta m WHERE m.queue = $1",
			 1, argtypes);
	/* the newest snapshot, as the claim's candidates (ring.c) */
	if (awa_ring_run(plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
					 "awa.ring_claim: reading the queue's settings") == 0)
		return allowance;		/* a queue never configured */
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		st->why = AWA_RING_FLOW_PAUSED;
		st->allowance = 0;
		return 0;
	}
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &limited);
	limited = !limited;
	st->rated = awa_rate_read(0, &st->ask.rate);

	if (limited)
	{
		LOCKTAG		tag;
		int64		room;

		ring_flow_locktag(&tag, st->queue);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		st->limited = true;
		room = ring_flow_room(queue, st->queue);
		if (room == -2)
		{
			/* paused while this claim waited for the lock */
			ring_flow_unlock(st);
			st->rated = false;
			st->why = AWA_RING_FLOW_PAUSED;
			st->allowance = 0;
			return 0;
		}
		if (room == -1)
			ring_flow_unlock(st);	/* the limit was lifted meanwhile */
		else if (room < allowance)
		{
			allowance = room;
			st->why = AWA_RING_FLOW_AT_LIMIT;
		}
	}
	if (st->rated && allowance > 0)
	{
		st->ask.queue = st->queue;
		st->ask.want = (int) Min(allowance, AWA_RATE_MAX_CLAIMS);
		awa_rate_attempt();
		st->reserved_at = awa_rate_reserve(&st->ask, 1, GetCurrentTimestamp());
		if (st->ask.granted < allowance)
		{
			allowance = st->ask.granted;
			st->why = AWA_RING_FLOW_RATE;
			if (allowance == 0)
			{
				TimestampTz now = GetCurrentTimestamp();
				long		ms = awa_rate_wait_ms(now);

				if (ms >= 0)
					st->next_slot_at = now + (int64) ms * 1000;
			}
		}
	}
	else
		st->rated = false;		/* nothing reserved */
	if (allowance == 0)
		ring_flow_unlock(st);	/* nothing will be claimed: nothing to count */
	st->allowance = allowance;
	return allowance;
}

void
awa_ring_flow_end(AwaRingFlow *st, int64 got)
{
	if (st->rated && st->ask.granted > got)
		awa_rate_release(st->queue, st->reserved_at, (int) (st->ask.granted - got));
	st->rated = false;
	/* took nothing: nothing for the next claimer to count; let go */
	if (got == 0)
		ring_flow_unlock(st);
	if (probe_armed && got == 0)
	{
		if (st->why == AWA_RING_FLOW_PAUSED)
			probe.paused = true;
		else if (st->why == AWA_RING_FLOW_AT_LIMIT)
			probe.at_limit = true;
		else if (st->why == AWA_RING_FLOW_RATE && st->next_slot_at != 0 &&
				 (probe.next_slot_at == 0 || st->next_slot_at < probe.next_slot_at))
			probe.next_slot_at = st->next_slot_at;
	}
}

/* hook: rflow -- ring.c's claim calls begin and end through awa_ring_flow_hooks */
void
awa_ring_flow_init(void)
{
	awa_ring_flow_hooks.begin = awa_ring_flow_begin;
	awa_ring_flow_hooks.end = awa_ring_flow_end;
}

void
awa_ring_flow_probe_arm(void)
{
	probe.paused = false;
	probe.at_limit = false;
	probe.next_slot_at = 0;
	probe_armed = true;
}

void
awa_ring_flow_probe_read(AwaRingFlowProbe *out)
{
	*out = probe;
	probe_armed = false;
}
