/*-------------------------------------------------------------------------
 *
 * ring_revive.c
 *		awa.ring_retry of a failed or cancelled job that a reclaim moved
 *		into awa.ring_history (docs/storage.md, "Step 5: retrying jobs from
 *		the history"), called by awa.ring_retry (ring_ext.c) when the job
 *		has no row in the slots.
 *
 * The job comes back as the retry awa_retry makes of it on awa.jobs
 * (job.c): available now, attempt 0, finalized_at, heartbeat_at and
 * deadline_at cleared; its id, payload, errors, attempted_at, claimed_by,
 * lease, run_lease and progress kept.  The slots hold a job's past as rows
 * without a ready row (the carry of earlier attempts, ring_history.c), and
 * so does this: from the history element, in the open slot,
 *	- a done row per error (state retryable, attempt the error's attempt,
 *	  run_lease the attempt raised to one above the previous error's --
 *	  below the attempt's own lease when snoozes took leases --,
 *	  finalized_at its time), unless the slots still hold that error's
 *	  done row (the same attempt and time; a row without attempt: the same
 *	  lease);
 *	- the end: a done row of the job's state at lease N, its finalized_at,
 *	  with the last error when it is the failed attempt's own (its attempt
 *	  the element's; lease N: the failed attempt's lease, the element's
 *	  run_lease R; for a cancelled job R + 1, the lease a cancel before any
 *	  claim ends);
 *	- a receipt at lease N (attempted_at, claimed_by, lease of the element)
 *	  when the job was ever claimed, and a beat at lease N with its progress;
 *	- then the ready row (id, N), attempt 0, run_at now().
 * The view reads them as the slot's retry reads: the ready row is the
 * newest attempt and waits (no receipt or done row at N + 1); the errors
 * are the done rows; the newest receipt (N) is not the ready row's
 * attempt's, so heartbeat_at and deadline_at are NULL.  Counters: the done
 * rows and the receipt have no ready row at lease - 1, so the counting
 * trigger (ring_read.c) passes over them; the ready row's "before" is the
 * done row at N, the job's state and finalized_at: -1 there, +1 available,
 * exactly what the slot's retry counts.
 *
 * The element leaves its batch (the batch row rewritten, deleted when it
 * held only this job), as a delete does (ring_admin.c).  The batch is
 * locked FOR UPDATE first, then the element read with the newest snapshot:
 * two retries of one job, or a retry and a delete or the expiry, take
 * turns; the second finds the element gone (RING_REVIVE_AGAIN: the caller
 * looks in the slots again and finds the first one's ready row).  Not the
 * hot path: the batch's old version is a dead tuple of awa.ring_history.
 *
 * Errors: 23505 (ring_ext.c's awa_ring_retry_take_key) for a unique job
 * whose key another job holds; 55000 without an open slot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "awa.h"
#include "floor.h"
#include "ring.h"
#include "ring_revive.h"

/* Column i (1-based) of the first row of the last SPI result. */
static Datum
col1(int i, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i, isnull);
}

#define RING_RETRY_KEY_TRIES	3

/*
 * See ring_revive.h.  A unique job coming back holds its key again (it let
 * go of it when it failed or was cancelled, unless those states are among
 * its unique_states): 23505 when another job holds it now.  Moved here from
 * ring_ext.c, which calls it for a retry of a job in the slots.
 */
void
awa_ring_retry_take_key(Datum id, Datum key, Datum states)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr holder_plan = NULL;
	static const Oid types[] = {BYTEAOID, INT8OID, TEXTOID};
	Datum		values[3] = {key, id, states};
	int			try;

	awa_plan(&insert_plan,
			 "INSERT INTO awa.unique_keys (unique_key, job_id, unique_states)"
			 " VALUES ($1, $2, $3::bit(8)) ON CONFLICT (unique_key) DO NOTHING RETURNING job_id",
			 3, types);
	awa_plan(&holder_plan,
			 "SELECT u.job_id FROM awa.unique_keys u WHERE u.unique_key = $1",
			 1, types);
	for (try = 0; try < RING_RETRY_KEY_TRIES; try++)
	{
		bool		isnull;
		int64		holder;

		if (awa_ring_run(insert_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
						 "awa.ring_retry: unique key") == 1)
			return;
		if (awa_ring_run(holder_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa.ring_retry: unique key holder") == 0)
			continue;			/* let go of since: again */
		holder = DatumGetInt64(col1(1, &isnull));
		if (holder == DatumGetInt64(id))
			return;				/* it kept its key */
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("job %lld cannot be retried: job %lld holds its unique key",
						(long long) DatumGetInt64(id), (long long) holder),
				 errhint("Wait for job %lld to finish or cancel it, then retry.", (long long) holder)));
	}
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not take or find the holder of job %lld's unique key", (long long) DatumGetInt64(id)),
			 errhint("The holder changed state while this retry ran; retry the transaction.")));
}

/* See ring_revive.h. */
void
awa_ring_retry_claimable(const char *queue)
{
	awa_floor_note(psprintf("%s%s", RING_LANE_PREFIX, queue), GetCurrentTransactionStartTimestamp());
	/* hook: robs -- a job claimable now: a blocking claimer of its queue is woken at commit */
	awa_lane_available(psprintf("%s%s", RING_LANE_PREFIX, queue), true);
}

/* The element of the locked batch (ctid $2) with id $1, as e. */
#define REVIVE_ELEMENT \
	"(SELECT x.* FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) x" \
	" WHERE h.ctid = $2 AND x.id = $1)"

/* The lease of the end and of the new ready row: see the file's comment. */
#define REVIVE_LEASE "(e.run_lease + CASE WHEN e.state = 'failed' THEN 0 ELSE 1 END)"

/* See ring_revive.h. */
int
awa_ring_revive(Datum id)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr ready_plan = NULL;
	static SPIPlanPtr done_plan = NULL;
	static SPIPlanPtr receipt_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr keep_plan = NULL;
	static SPIPlanPtr drop_plan = NULL;
	static const Oid types[] = {INT8OID, TIDOID};
	Datum		values[2];
	bool		isnull;
	char	   *state;
	char	   *queue;
	int64		size;
	bool		keyed;
	Datum		key = (Datum) 0;
	Datum		states = (Datum) 0;

	values[0] = id;
	/* the batch holding the job, locked; its element read after the lock */
	awa_plan(&lock_plan,
			 "SELECT h.ctid, e.state::text, e.queue, cardinality(h.jobs), e.unique_key, e.unique_states::text,"
			 " e.unique_key IS NOT NULL AND awa.unique_state_held(e.unique_states, 'available')"
			 " FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) e"
			 " WHERE int8range(h.id_lo, h.id_hi, '[]') @> $1 AND e.id = $1 LIMIT 1 FOR UPDATE OF h",
			 1, (Oid *) types);
	if (awa_ring_run(lock_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
					 "awa.ring_retry: history batch") == 0)
	{
		/* not in the history; or another transaction took it out while this waited */
		awa_plan(&ready_plan, "SELECT 1 FROM awa.ready r WHERE r.id = $1 LIMIT 1", 1, (Oid *) types);
		return awa_ring_run(ready_plan, values, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
							"awa.ring_retry: ready again") > 0 ? RING_REVIVE_AGAIN : RING_REVIVE_NONE;
	}
	values[1] = col1(1, &isnull);
	state = TextDatumGetCString(col1(2, &isnull));
	queue = TextDatumGetCString(col1(3, &isnull));
	size = DatumGetInt32(col1(4, &isnull));
	if (strcmp(state, "failed") != 0 && strcmp(state, "cancelled") != 0)
		return RING_REVIVE_NOT; /* completed: as in the slots, nothing to retry */
	keyed = DatumGetBool(col1(7, &isnull));
	if (keyed)
	{
		key = SPI_datumTransfer(col1(5, &isnull), false, -1);
		states = SPI_datumTransfer(col1(6, &isnull), false, -1);
	}

	/*
	 * The job's past: a done row per error (leases kept; two errors of one
	 * attempt, a cancel's error after a failure, take the next lease), not
	 * those the slots still hold, and the end at lease N.
	 */
	awa_plan(&done_plan,
			 "WITH e AS MATERIALIZED " REVIVE_ELEMENT ","
			 " o AS (SELECT s.slot FROM awa.ring_slots s WHERE s.state = 'open'),"
			 " x AS (SELECT u.ord, (u.err ->> 'attempt')::bigint AS attempt, " AWA_RING_ERROR_OF_ENTRY_SQL("u.err") " AS error,"
			 "  (u.err ->> 'at')::timestamptz AS at FROM e CROSS JOIN LATERAL unnest(e.errors) WITH ORDINALITY u(err, ord)),"
			 " y AS (SELECT x.*, x.ord + coalesce(max(x.attempt - x.ord) OVER (ORDER BY x.ord), 0) AS lease,"
			 "  x.ord = max(x.ord) OVER () AS last FROM x),"
			 " f AS (SELECT y.* FROM y CROSS JOIN e WHERE e.state = 'failed' AND y.last"
			 "  AND (y.lease = e.run_lease OR y.attempt = e.attempt))"
			 " INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at, error, attempt)"
			 " SELECT o.slot, $1, y.lease, 'retryable', y.at, y.error, y.attempt FROM y CROSS JOIN o"
			 "  WHERE y.ord NOT IN (SELECT f.ord FROM f)"
			 "  AND NOT EXISTS (SELECT 1 FROM awa.done d WHERE d.job_id = $1"
			 "   AND d.state IN ('retryable', 'failed') AND CASE WHEN d.attempt IS NULL THEN d.run_lease = y.lease"
			 "    ELSE d.attempt = y.attempt AND d.finalized_at = y.at END)"
			 " UNION ALL"
			 " SELECT o.slot, $1, " REVIVE_LEASE ", e.state, e.finalized_at, (SELECT f.error FROM f),"
			 "  (SELECT f.attempt FROM f)"
			 "  FROM e CROSS JOIN o",
			 2, (Oid *) types);
	if (awa_ring_run(done_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT,
					 "awa.ring_retry: the job's past") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the ring has no open slot")));
	/*
	 * A unique job takes its key again: after the end's done row, whose
	 * trigger (ring_unique.c) lets go of the key of a job ending outside
	 * its unique_states.
	 */
	if (keyed)
		awa_ring_retry_take_key(id, key, states);
	/* its newest receipt and progress, at lease N (the end's done row is their attempt's) */
	awa_plan(&receipt_plan,
			 "WITH e AS MATERIALIZED " REVIVE_ELEMENT ","
			 " o AS (SELECT s.slot FROM awa.ring_slots s WHERE s.state = 'open'),"
			 " c AS (INSERT INTO awa.claims (slot, job_id, run_lease, claimed_at, deadline_at, lease, claimed_by)"
			 "  SELECT o.slot, $1, " REVIVE_LEASE ", e.attempted_at, e.attempted_at, coalesce(e.lease, '0'),"
			 "  e.claimed_by FROM e CROSS JOIN o WHERE e.attempted_at IS NOT NULL)"
			 " INSERT INTO awa.beats (job_id, run_lease, slot, at, deadline_at, progress)"
			 " SELECT $1, " REVIVE_LEASE ", o.slot, e.finalized_at, e.finalized_at, e.progress"
			 " FROM e CROSS JOIN o WHERE e.progress IS NOT NULL",
			 2, (Oid *) types);
	awa_ring_run(receipt_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT,
				 "awa.ring_retry: the job's receipt");
	/* the new attempt: available now, attempts reset, in the open slot; counted from the end's done row */
	awa_plan(&insert_plan,
			 "WITH e AS MATERIALIZED " REVIVE_ELEMENT
			 " INSERT INTO awa.ready (slot, id, run_lease, attempt, run_at, " RING_JOB_COLS ")"
			 " SELECT o.slot, e.id, " REVIVE_LEASE ", 0, now(), " RING_JOB_COLS_OF("e.")
			 " FROM e CROSS JOIN LATERAL (SELECT s.slot FROM awa.ring_slots s WHERE s.state = 'open') o",
			 2, (Oid *) types);
	if (awa_ring_run(insert_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT,
					 "awa.ring_retry: ready row from the history") != 1)
		elog(ERROR, "awa.ring_retry: job %lld's ready row was not written", (long long) DatumGetInt64(id));
	/* the element leaves its batch; a batch of this job alone goes */
	if (size > 1)
	{
		awa_plan(&keep_plan,
				 "UPDATE awa.ring_history h SET jobs = ARRAY(SELECT x FROM unnest(h.jobs) x WHERE x.id <> $1)"
				 " WHERE h.ctid = $2",
				 2, (Oid *) types);
		if (awa_ring_run(keep_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_UPDATE,
						 "awa.ring_retry: history batch without the job") != 1)
			elog(ERROR, "awa.ring_retry: job %lld's history batch was not rewritten", (long long) DatumGetInt64(id));
	}
	else
	{
		awa_plan(&drop_plan, "DELETE FROM awa.ring_history h WHERE h.ctid = $2 AND $1 IS NOT NULL",
				 2, (Oid *) types);
		if (awa_ring_run(drop_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_DELETE,
						 "awa.ring_retry: emptied history batch") != 1)
			elog(ERROR, "awa.ring_retry: job %lld's history batch was not deleted", (long long) DatumGetInt64(id));
	}
	awa_ring_retry_claimable(queue);
	return RING_REVIVED;
}
