/*-------------------------------------------------------------------------
 *
 * engine_claim.c
 *		awa_claim on the ring (docs/storage.md, "Step 5: awa_claim on the
 *		ring"): of one queue or of several (text[], NULL: every queue),
 *		blocking (wait > 0) or not, and CALL awa_claim_wait, on a database
 *		whose jobs are in the ring (awa_engine_ring).
 *
 * claim.c keeps the whole of awa_claim: its arguments and errors, its
 * loop (the subtransaction per attempt of a blocking claim, the deadline
 * before statement_timeout, the sleep on the latch, the at-limit
 * publication, awa_claim_wait's commits between attempts) and its result.
 * Only three things dispatch here: an attempt (awa_engine_try_claim), when
 * to look again without a wake-up (awa_engine_due_ms) and which wake-ups
 * to wait for (awa_engine_wait_register).  So both engines wait, wake and
 * give up alike.
 *
 * An attempt is the ring's claim (ring_claim.c) of the queue or queues,
 * called in C (awa_ring_claim_direct: what awa.ring_claim returns, without
 * the SQL function between), in the claim's order; a first attempt's row of
 * awa.jobs is built by the claim from the ready row it read and the receipt
 * it wrote, the others are read from awa.ring_live_jobs (the view's columns
 * are awa.jobs'; awa_engine_claimed_rows).  Its time is the
 * clock's at the attempt, as awa.jobs' claim takes it (awa_ring_claim_clock,
 * ring.h), not the transaction's start: a blocking claim inside one
 * statement, or awa_claim_wait's attempt in the transaction that began
 * before it slept, sees the jobs committed and come due meanwhile (a ring
 * job's run_at is its inserter's transaction start), and its jobs'
 * attempted_at and deadline_at are those of the claim.  A queue's rate may
 * move that time later, to its reservation (ring_claim.c), as on awa.jobs.
 *
 * Waking: a ring queue's waiters wait on its lane (wake.c, ring_wait.c):
 * the ring's insert, retry and snooze wake them at commit, a queue's rate
 * and scheduled rows are looked at again when due (ring_wait.c's probe of
 * awa.scheduled, awa_ring_due_ms), a due scheduled row held by another
 * transaction's claim is looked at again after 1, 2, 4 ... ms (at most
 * 1 s), as in ring_wait.c.  A claim of every queue, or of more queues than
 * a wait slot lists, waits for every lane of the database (a wake-up of any
 * ring queue counts it among that queue's waiters).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "engine_claim.h"
#include "ring.h"
#include "ring_claim.h"
#include "ring_flow.h"
#include "ring_keys.h"

#define ENGINE_HELD_MAX_MS	1000	/* longest retry of a due row another transaction holds */

/* hook: rclaim -- awa_ring_claim_direct, set at load by awa_ring_claim_init (ring_claim.h) */
int			(*awa_engine_ring_claim) (text *queue, text **names, int n, int batch, Interval *lease,
									  text *worker, TupleDesc desc, MemoryContext cxt,
									  AwaRingClaimed *out) = NULL;

/* The last attempt's answer for awa_engine_due_ms, and the held row's backoff. */
static long due_ms_after = -1;
static long held_ms = 1;

/* The queues as a text[] (names sorted, none NULL). */
static Datum
names_datum(char **names, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(names[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * When the claimer must look again after an empty attempt (values, nulls:
 * the attempt's queue arguments), from the flow probe and the queues'
 * scheduled rows: as ring_wait.c's attempt, except that a rate's next slot
 * of one of several queues counts too (awa.jobs' claim keeps that time for
 * all its queues).
 */
static long
empty_due_ms(Datum *values, const char *nulls, bool several, const AwaRingFlowProbe *flow)
{
	TimestampTz now = GetCurrentTimestamp();
	long		slot_ms = -1;
	long		due;

	if (flow->next_slot_at != 0)
		slot_ms = flow->next_slot_at <= now ? 0 :
			(long) Min((flow->next_slot_at - now + 999) / 1000, 3600 * 1000);
	/* one queue paused or at its limit: its scheduled rows wait for a wake-up too */
	if (!several && (flow->paused || flow->at_limit))
		return -1;
	if (!several && slot_ms >= 0)
		return slot_ms;
	due = awa_ring_due_ms(values, nulls, several);
	if (due == 0)
	{
		/* due but not promoted: held by another transaction; look again with backoff */
		due = held_ms;
		held_ms = Min(held_ms * 2, ENGINE_HELD_MAX_MS);
	}
	else
		held_ms = 1;
	if (slot_ms >= 0 && (due < 0 || slot_ms < due))
		due = slot_ms;
	return due;
}

/*
 * The ring's claim called in C (ring_claim.h): no SQL function between, its
 * rows built from what it read.  As the statement that called it through
 * SPI did: the commands so far counted, a fresh snapshot active for its
 * statements that run under the active one.  Its time: at.
 */
static int
claim_call(text *queue, text **names, int n, TimestampTz at, Interval *lease, text *worker, int batch,
		   TupleDesc desc, MemoryContext cxt, AwaRingClaimed *out)
{
	int			got = 0;

	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	awa_ring_claim_clock = at;
	PG_TRY();
	{
		got = awa_engine_ring_claim(queue, names, n, batch, lease, worker, desc, cxt, out);
	}
	PG_FINALLY();
	{
		awa_ring_claim_clock = 0;
	}
	PG_END_TRY();
	PopActiveSnapshot();
	return got;
}

/* See engine_claim.h. */
int
awa_engine_try_claim(text *queue, char **names, int nqueues, TimestampTz at, Interval *lease,
					 text *worker, int batch, AwaClaimedRow *rows, bool *at_limit)
{
	MemoryContext keep = CurrentMemoryContext;	/* the rows: outlive the attempt */
	MemoryContext attempt;		/* the rest: gone with the attempt (a long wait makes many) */
	bool		several = (queue == NULL);
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	AwaRingFlowProbe flow;
	AwaRingClaimed *claimed;
	text	  **qnames = NULL;
	TupleDesc	desc;
	int64	   *ids;
	int64	   *leases;
	HeapTuple  *tuples;
	TupleDesc  *descs;
	bool		built = true;
	int			n;
	int			i;

	attempt = AllocSetContextCreate(keep, "awa_claim on the ring", ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(attempt);
	/* the queue arguments, as the ring's wait probe takes them (empty_due_ms) */
	values[0] = !several ? PointerGetDatum(queue) :
		nqueues > 0 ? names_datum(names, nqueues) : (Datum) 0;
	if (several && nqueues == 0)
		nulls[0] = 'n';
	if (several && nqueues > 0)
	{
		qnames = palloc(sizeof(text *) * nqueues);
		for (i = 0; i < nqueues; i++)
			qnames[i] = cstring_to_text(names[i]);
	}
	claimed = palloc(sizeof(AwaRingClaimed) * (batch + 1));
	/* the rows are built of awa.jobs' columns; their desc outlives the attempt */
	MemoryContextSwitchTo(keep);
	desc = RelationNameGetTupleDesc("awa.jobs");
	MemoryContextSwitchTo(attempt);

	awa_ring_flow_probe_arm();	/* why the claim is short (ring_flow.c) */
	n = claim_call(queue, qnames, several ? nqueues : 0, at, lease, worker, batch, desc, keep, claimed);
	awa_ring_flow_probe_read(&flow);
	ids = palloc(sizeof(int64) * (n + 1));
	leases = palloc(sizeof(int64) * (n + 1));
	tuples = palloc(sizeof(HeapTuple) * (n + 1));
	descs = palloc(sizeof(TupleDesc) * (n + 1));
	for (i = 0; i < n; i++)
	{
		ids[i] = claimed[i].id;
		leases[i] = claimed[i].run_lease;
		if (claimed[i].row == NULL)
			built = false;
	}
	if (built)
		for (i = 0; i < n; i++)
		{
			tuples[i] = claimed[i].row;
			descs[i] = desc;
		}
	else						/* the rows outlive the attempt */
		awa_engine_claimed_rows(ids, leases, n, keep, tuples, descs);
	for (i = 0; i < n; i++)
	{
		rows[i].tuple = tuples[i];
		rows[i].desc = descs[i];
		rows[i].level = i;		/* the ring's claim order */
		rows[i].run_at = 0;
		rows[i].id = ids[i];
	}
	*at_limit = flow.at_limit;
	due_ms_after = n > 0 ? -1 : empty_due_ms(values, nulls, several, &flow);
	/* hook: keys -- a key passed over waits as at a limit; a key at its rate until its next slot (ring_keys.c) */
	if (n == 0)
		awa_ring_keys_wait(&due_ms_after, at_limit);
	MemoryContextSwitchTo(keep);
	MemoryContextDelete(attempt);
	return n;
}

/* See engine_claim.h. */
long
awa_engine_due_ms(TimestampTz now)
{
	return due_ms_after;
}

/* See engine_claim.h. */
bool
awa_engine_wait_register(text *queue, char **names, int nqueues)
{
	const char **lanes;
	int			i;

	held_ms = 1;
	if (queue != NULL)
		return awa_wait_register_lane(awa_ring_lane(queue));
	if (nqueues == 0)
		return awa_wait_register_lanes(NULL, 0);	/* every lane */
	lanes = palloc(sizeof(char *) * nqueues);
	for (i = 0; i < nqueues; i++)
		lanes[i] = awa_ring_lane(cstring_to_text(names[i]));
	return awa_wait_register_lanes(lanes, nqueues);
}
