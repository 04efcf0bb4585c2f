/*-------------------------------------------------------------------------
 *
 * ring_wait.c
 *		The ring's blocking claim (docs/storage.md, "Step 5: the blocking
 *		claim on the ring"): CALL awa.ring_claim_wait, a procedure that
 *		claims, commits and sleeps holding no snapshot, woken by wake.c
 *		when work for its queue commits.  Internal like ring.c: it refuses
 *		to run unless awa.ring_engine is on.
 *
 * Waking.  A ring queue is a lane of wake.c under a hash of its own (the
 * lane's name, awa_ring_lane): awa.ring_insert, and ring_sched.c's next
 * attempt after a retryable failure or a snooze, note the lane (hooks in
 * ring.c and ring_sched.c), and wake.c hands one wake-up per job made
 * claimable to a waiter of that lane once the transaction's commit is
 * visible; a rolled-back insert wakes nobody.  A job due later wakes one
 * waiter to look at its due time again.  awa.ring_claim counts its claims
 * for wake.c as awa_claim does (a rollback gives the jobs back and wakes as
 * many waiters; a woken waiter that claims a full batch passes one on).
 *
 * The loop, outside a transaction block (non-atomic, SPI_OPT_NONATOMIC):
 *	1. reset the latch and take the wake-up handed to this waiter, if any
 *	   (awa_wait_attempt);
 *	2. commit: the attempt runs in a new transaction whose start, now(),
 *	   comes after that wake-up was taken.  awa.ring_claim takes jobs whose
 *	   run_at <= now(), and a ready row's run_at is its inserter's
 *	   transaction start: any insert whose commit handed the wake-up began
 *	   before now(), so its job is due for the attempt.  (In a non-atomic
 *	   context PostgreSQL starts the next transaction at the commit, before
 *	   the sleep; without this commit the attempt's now() would be the time
 *	   the waiter fell asleep, and a job inserted during the sleep would
 *	   not be due for it.)
 *	3. awa.ring_claim through SPI (its promotion of due scheduled rows
 *	   included), and, if it claimed nothing, the earliest run_at of the
 *	   queue's scheduled rows (one index probe per priority);
 *	4. jobs: returned, their receipts commit when the CALL ends.  None:
 *	   commit (the snapshot goes, backend_xmin is NULL) and sleep on the
 *	   latch until a wake-up, the queue's next scheduled job (if this
 *	   waiter keeps its time: awa_wait_before_sleep, one waiter per lane)
 *	   or the end of the wait, then go to 1.  A scheduled row that is due
 *	   but was not promoted is held by another transaction (a claim's
 *	   promotion, awa.ring_promote); its end wakes nobody when it commits
 *	   (the rows it promoted and did not claim are ready then), so the
 *	   waiter looks again after 1, 2, 4 ... ms, at most 1 s apart, until
 *	   the row is gone: the one case where it polls.
 * A commit either came before step 1's take (its job is due and visible at
 * step 3) or sets the flag after it (the sleep ends at once): no wake-up
 * is lost.  The slot is published before the first attempt and withdrawn
 * on every way out (wake.c passes on a wake-up it held).
 *
 * In a transaction block (atomic) the procedure cannot commit: wait 0 runs
 * one awa.ring_claim, a positive wait is refused (25001).
 *
 * hook: rflow -- a queue's pause, concurrency limit and rate (ring_flow.c):
 * the attempt learns from a probe armed around its claim why it got
 * nothing.  Paused: sleep until a wake-up (awa_resume_queue wakes the
 * lane).  At the limit: publish it in the slot (awa_wait_at_limit), count
 * once more, then sleep at most RING_WAIT_LIMIT_POLL_MS; a commit that
 * ended a running job wakes one waiter at a limit.  Rate used up: the next
 * slot's time is kept like a scheduled row's due time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "floor.h"
#include "ring.h"
#include "ring_flow.h"		/* hook: rflow */
#include "ring_keys.h"		/* hook: keys */

#define RING_WAIT_MAX_BATCH		1000	/* as awa.ring_claim's */
#define RING_WAIT_POLL_MS		100 /* without shared memory (awa not preloaded) */
#define RING_WAIT_TIMEOUT_MARGIN_MS	100 /* the wait ends this long before statement_timeout */
#define RING_WAIT_HELD_MAX_MS	1000	/* longest retry of a due row held by another transaction */
#define RING_WAIT_LIMIT_POLL_MS	1000	/* hook: rflow: recheck of a queue at its limit (claim.c's) */

PG_FUNCTION_INFO_V1(awa_ring_claim_wait);
PG_FUNCTION_INFO_V1(awa_ring_claim_wait_queues);

/*
 * One attempt: awa.ring_claim as jsonb (NULL: nothing claimed), and with
 * *due_ms how long until the queue's earliest scheduled row comes due (-1:
 * none; 0: due already).  The result is copied out of SPI's memory.
 * hook: rflow -- when the queue's flow control held the claim back
 * (ring_flow.c): *at_limit that the queue is at its concurrency limit, and
 * *due_ms when its rate's next slot opens (-1 for a paused queue or one at
 * its limit: its scheduled rows are not claimable before a wake-up).
 */
static Datum
ring_wait_attempt(Datum *values, const char *nulls, bool several, bool *isnull, long *due_ms,
				  bool *at_limit)
{
	static SPIPlanPtr claim_plan = NULL;
	/* hook: rclaim -- the several-queue forms (queues text[]; NULL: every queue) */
	static SPIPlanPtr claim_many_plan = NULL;
	static const Oid claim_types[] = {TEXTOID, INT4OID, INTERVALOID, TEXTOID};
	static const Oid claim_many_types[] = {TEXTARRAYOID, INT4OID, INTERVALOID, TEXTOID};
	Datum		jobs;
	AwaRingFlowProbe flow;		/* hook: rflow */

	awa_plan(&claim_plan,
			 "SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c))"
			 " FROM awa.ring_claim($1, $2, $3, $4) c",
			 4, claim_types);
	awa_plan(&claim_many_plan,
			 "SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(c))"
			 " FROM awa.ring_claim($1, $2, $3, $4) c",
			 4, claim_many_types);
	awa_ring_flow_probe_arm();	/* hook: rflow: why the claim is empty */
	if (SPI_execute_plan(several ? claim_many_plan : claim_plan, values, nulls, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "awa.ring_claim_wait: the claim failed");
	awa_ring_flow_probe_read(&flow);
	jobs = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	*due_ms = -1;
	*at_limit = false;
	if (!*isnull)
		return SPI_datumTransfer(jobs, false, -1);
	/*
	 * hook: rflow: held back by the queue's pause, limit or rate (one queue:
	 * of several, a queue held back says nothing of the others; the waiter
	 * is woken by their commits and a resume, and rechecks no limit)
	 */
	if (!several && (flow.paused || flow.at_limit || flow.next_slot_at != 0))
	{
		TimestampTz now = GetCurrentTimestamp();

		*at_limit = flow.at_limit;
		if (flow.next_slot_at != 0 && !flow.paused && !flow.at_limit)
			*due_ms = flow.next_slot_at <= now ? 0 :
				(long) Min((flow.next_slot_at - now + 999) / 1000, 3600 * 1000);
		return (Datum) 0;
	}

	*due_ms = awa_ring_due_ms(values, nulls, several);	/* hook: rclaimx */
	awa_ring_keys_wait(due_ms, at_limit);	/* hook: keys: a key passed over, or at its rate */
	return (Datum) 0;
}

/*
 * When the wait ends: after wait_us, and a little before statement_timeout
 * would cancel the CALL (the wait then ends with jobs NULL, no error).
 */
static TimestampTz
ring_wait_deadline(int64 wait_us)
{
	TimestampTz give_up;

	if (pg_add_s64_overflow(GetCurrentTimestamp(), wait_us, &give_up))
		give_up = PG_INT64_MAX;
	if (StatementTimeout > 0)
	{
		int64		timeout_us = (int64) StatementTimeout * 1000;
		int64		margin = Min(timeout_us / 10, RING_WAIT_TIMEOUT_MARGIN_MS * 1000);

		give_up = Min(give_up, GetCurrentStatementStartTimestamp() + timeout_us - margin);
	}
	return give_up;
}

/*
 * The loop of the file header, non-atomic (caller connected to SPI with
 * SPI_OPT_NONATOMIC).  Returns the claimed jobs (still uncommitted), or
 * *isnull when the wait ended without any.
 */
static pg_noinline Datum
ring_wait_loop(Datum *values, const char *nulls, bool several, const char *const *lanes, int nlanes,
			   int64 wait_us, bool *isnull)
{
	/* hook: rclaim: several lanes (more than wake.c's slot holds, or every queue: every lane) */
	volatile bool registered = several ? awa_wait_register_lanes(lanes, nlanes) :
		awa_wait_register_lane(lanes[0]);
	Datum		jobs = (Datum) 0;
	long		held_ms = 1;	/* the retry of a due row another transaction holds */
	bool		limit_published = false;	/* hook: rflow */

	*isnull = true;
	PG_TRY();
	{
		TimestampTz give_up = ring_wait_deadline(wait_us);

		for (;;)
		{
			long		due_ms;
			long		timeout_ms;
			TimestampTz now;
			bool		at_limit;

			ResetLatch(MyLatch);
			if (registered)
				awa_wait_attempt();
			/* a new transaction: its now() comes after the wake-up was taken */
			SPI_commit();
			jobs = ring_wait_attempt(values, nulls, several, isnull, &due_ms, &at_limit);
			if (!*isnull)
				break;			/* committed when the CALL ends */
			/* hook: rflow: at a limit, published first, then counted again before the sleep */
			if (registered && at_limit != limit_published)
			{
				awa_wait_at_limit(at_limit);
				limit_published = at_limit;
				if (at_limit)
					continue;
			}
			/* a due scheduled row not promoted: held by another transaction, retried with backoff */
			if (due_ms == 0)
			{
				due_ms = held_ms;
				held_ms = Min(held_ms * 2, RING_WAIT_HELD_MAX_MS);
			}
			else
				held_ms = 1;
			/* nothing: end the attempt's transaction and drop its snapshot */
			SPI_commit();
			now = GetCurrentTimestamp();
			if (now >= give_up)
				break;
			timeout_ms = (long) Min((give_up - now) / 1000 + 1, 3600 * 1000);
			if (!registered)
				timeout_ms = Min(timeout_ms, RING_WAIT_POLL_MS);
			if (at_limit)		/* hook: rflow: changes behind awa's back */
				timeout_ms = Min(timeout_ms, RING_WAIT_LIMIT_POLL_MS);
			if (registered)
				due_ms = awa_wait_before_sleep(due_ms);
			if (due_ms >= 0)
				timeout_ms = Min(timeout_ms, due_ms);
			awa_wait_sleep(timeout_ms, registered);
		}
	}
	PG_FINALLY();
	{
		if (registered)
			awa_wait_unregister();
	}
	PG_END_TRY();
	return jobs;
}

/* ---------------------------------------------------------------------
 * CALL awa.ring_claim_wait(queue, batch, lease, worker, wait, INOUT jobs)
 *
 * queue: 1 to 200 characters; batch: 1 to 1000 jobs; lease: a positive
 * interval; worker: any text or NULL; wait: 0 to 36500 days (0: one claim,
 * as awa.ring_claim).  Returns jobs, a jsonb array of awa.ring_claim's
 * rows (id, run_lease, attempt, kind, queue, args, priority, run_at) in
 * claim order, or NULL when the wait ended with none.  Errors: 55000 with
 * awa.ring_engine off; 22023 naming the field for a NULL or out-of-range
 * argument; 25001 for a positive wait in a transaction block (it cannot
 * commit there, and a wait inside a statement would hold the horizon).
 * ---------------------------------------------------------------------
 */
/* hook: rclaim -- both forms; several: queues text[] (NULL: every queue) */
static Datum
ring_claim_wait_common(FunctionCallInfo fcinfo, bool several)
{
	static const char *const fields[] = {"queue", "batch", "lease", "worker", "wait"};
	MemoryContext outer = CurrentMemoryContext;
	TupleDesc	desc;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Interval   *lease;
	int64		wait_us;
	int32		batch;
	bool		nonatomic;
	const char **lanes = NULL;
	int			nlanes = 1;
	Datum		jobs;
	bool		jobs_null = true;
	HeapTuple	result;
	int			i;

	awa_ring_check_enabled("awa.ring_claim_wait");
	for (i = 0; i < 5; i++)
		if (i != 3 && (i != 0 || !several) && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be null", fields[i])));
	if (!several)
		awa_ring_check_name(PG_GETARG_TEXT_PP(0), "queue");
	batch = PG_GETARG_INT32(1);
	if (batch < 1 || batch > RING_WAIT_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch must be between 1 and %d", RING_WAIT_MAX_BATCH)));
	lease = PG_GETARG_INTERVAL_P(2);
	(void) awa_check_delay(lease, "lease", true);
	wait_us = awa_check_delay(PG_GETARG_INTERVAL_P(4), "wait", false);
	if (several)
	{
		text	  **names;

		/* checked here (22023/22004) so that a bad array fails before any wait */
		if (awa_ring_queues_arg(PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0), &names, &nlanes))
		{
			lanes = palloc(sizeof(char *) * nlanes);
			for (i = 0; i < nlanes; i++)
				lanes[i] = awa_ring_lane(names[i]);
		}
		else
		{
			lanes = NULL;		/* every queue: waits for every lane */
			nlanes = 0;
		}
	}
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE || desc->natts != 1)
		elog(ERROR, "awa.ring_claim_wait: wrong result type");
	desc = BlessTupleDesc(desc);
	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (wait_us > 0 && !nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("awa.ring_claim_wait with a wait must be called outside a transaction block"),
				 errhint("CALL it as a statement of its own, or pass wait => '0'.")));

	/* the arguments, in memory that outlives the attempts' transactions */
	if (PG_ARGISNULL(0))
		nulls[0] = 'n';
	else
		values[0] = datumCopy(PG_GETARG_DATUM(0), false, -1);
	values[1] = Int32GetDatum(batch);
	values[2] = datumCopy(IntervalPGetDatum(lease), false, sizeof(Interval));
	if (PG_ARGISNULL(3))
		nulls[3] = 'n';
	else
		values[3] = datumCopy(PG_GETARG_DATUM(3), false, -1);
	if (!several)
	{
		lanes = palloc(sizeof(char *));
		lanes[0] = awa_ring_lane(DatumGetTextPP(values[0]));
	}

	if (wait_us == 0)
	{
		long		due_ms;
		bool		at_limit;

		SPI_connect();
		jobs = ring_wait_attempt(values, nulls, several, &jobs_null, &due_ms, &at_limit);
		SPI_finish();
	}
	else
	{
		SPI_connect_ext(SPI_OPT_NONATOMIC);
		jobs = ring_wait_loop(values, nulls, several, lanes, nlanes, wait_us, &jobs_null);
		SPI_finish();
	}
	MemoryContextSwitchTo(outer);
	result = heap_form_tuple(desc, &jobs, &jobs_null);
	PG_RETURN_DATUM(HeapTupleGetDatum(result));
}

Datum
awa_ring_claim_wait(PG_FUNCTION_ARGS)
{
	return ring_claim_wait_common(fcinfo, false);
}

/* ---------------------------------------------------------------------
 * CALL awa.ring_claim_wait(queues text[], batch, lease, worker, wait, INOUT jobs)
 *
 * hook: rclaim -- awa.ring_claim_wait over several queues: each attempt is
 * awa.ring_claim(queues, ...) (ring_claim.c), woken by a commit that makes
 * a job of any of them claimable (wake.c, one slot listing every lane, up
 * to 16 of them), or by the earliest scheduled row of any of them coming
 * due.  queues: as awa.ring_claim(queues text[], ...); NULL, or more than
 * 16 queues, and the waiter is not published: it looks again every
 * 100 ms.  The other arguments, the result and the errors as the
 * single-queue form's, plus 22023/22004 for a bad array.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_claim_wait_queues(PG_FUNCTION_ARGS)
{
	return ring_claim_wait_common(fcinfo, true);
}
