/*-------------------------------------------------------------------------
 *
 * engine_drain.c
 *		awa_drain_queue on the ring engine (engine_admin.c's
 *		awa_engine_drain calls here; hook: riso).
 *
 *		awa_drain_queue cancels the queue's jobs that wait to run or wait on
 *		an external system and leaves running ones to finish.  On awa.jobs
 *		its UPDATE waits for a claim in progress of such a job and then,
 *		reading the row again, leaves it alone if that claim committed.  The
 *		ring's cancel (awa.ring_cancel) cancels a job whatever attempt it is
 *		in, running ones too, so the jobs read as waiting are taken thus, a
 *		batch of DRAIN_BATCH at a time and one statement per step (below):
 *		their newest ready rows are locked (waiting for a claim that holds
 *		one, and keeping later claims off them), then read again with the
 *		newest snapshot, and those that still wait are cancelled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/snapmgr.h"

#include "awa.h"
#include "deps.h"
#include "floor.h"
#include "engine_drain.h"
#include "job_state_sql.h"
#include "engine_admin.h"
#include "ring.h"
#include "ring_sched.h"

/* Jobs locked and cancelled per statement (hook: rstats). */
#define DRAIN_BATCH		1000

/* See engine_drain.h. */
int64
awa_engine_drain_waiting(Datum queue)
{
	static SPIPlanPtr ids_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr cancel_plan = NULL;
	static SPIPlanPtr sched_plan = NULL;
	static SPIPlanPtr ready_plan = NULL;
	static const Oid ids_types[] = {TEXTOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	static const Oid ids_type[] = {INT8ARRAYOID};
	int64		drained = 0;
	int64	   *ids;
	uint64		n;
	uint64		i;

	SPI_connect();
	/*
	 * The queue's jobs that wait, by id (hook: rstats -- by their rows, not
	 * the view's): ready rows without receipt or done row, per priority from
	 * the floor of the newest generation the caller's snapshot may start
	 * from (floor.c, awa_floor_begin_at: past the claimed head, below every
	 * job waiting as it sees them); rows of awa.scheduled; parked attempts
	 * (waiting_external).  Each is read again below before it is cancelled.
	 */
	awa_plan(&ids_plan,
			 "SELECT x.id FROM ("
			 " SELECT w.id FROM unnest($2::timestamptz[], $3::int8[]) WITH ORDINALITY AS f(run_at, id, p)"
			 "  CROSS JOIN LATERAL (SELECT w.id FROM awa.ready w"
			 "  WHERE w.queue = $1 AND w.priority = f.p AND (w.run_at, w.id) >= (f.run_at, f.id)"
			 "  AND w.run_at > '-infinity'"
			 "  AND (SELECT 1 FROM awa.claims c WHERE c.job_id = w.id AND c.run_lease = w.run_lease + 1"
			 "   AND c.slot = w.slot LIMIT 1) IS NULL"
			 RING_NOT_DONE_SQL("w.slot", "w.id", "w.run_lease + 1") ") w"
			 " UNION ALL"
			 " SELECT s.id FROM awa.scheduled s WHERE s.queue = $1"
			 " UNION ALL"
			 " SELECT d.job_id FROM awa.done d WHERE d.state = 'waiting_external' AND NOT d.after_wait"
			 "  AND (SELECT q.queue FROM awa.ready q WHERE q.id = d.job_id AND q.run_lease = d.run_lease - 1"
			 "   AND q.slot = d.slot LIMIT 1) = $1) x"
			 " ORDER BY x.id",
			 3, ids_types);
	{
		AwaFloorScan scan;
		AwaFloorKey start[AWA_FLOOR_PRIORITIES];
		char	   *lane = awa_ring_lane(DatumGetTextPP(queue));
		Datum		args[3];
		Snapshot	caller = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();

		awa_floor_begin_at(&scan, lane, caller, start);
		if (scan.lane >= 0)
			UnregisterSnapshot(scan.snapshot);
		memcpy(scan.floors, start, sizeof(scan.floors));
		args[0] = queue;
		args[1] = awa_floor_run_ats(&scan);
		args[2] = awa_floor_ids(&scan);
		n = awa_ring_run(ids_plan, args, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
						 "awa_drain_queue: jobs");
	}
	ids = palloc(sizeof(int64) * Max(n, 1));
	{
		uint64		k = 0;

		for (i = 0; i < n; i++)
		{
			bool		isnull;
			int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
														 &isnull));

			if (k == 0 || ids[k - 1] != id)
				ids[k++] = id;
		}
		n = k;
	}

	/*
	 * hook: rstats -- a batch at a time, a statement per step (not per
	 * job), each with a snapshot taken after the locks before it, as
	 * awa.ring_cancel does them one job at a time (ring_sched.c): the
	 * batch's rows of awa.scheduled (scheduled, retryable), locked, become
	 * cancelled ready rows; the newest ready row of each job is locked, in
	 * id order (a claim holding one is waited for; later claims kept off),
	 * and each that no claim took and nothing ended gets its cancelled done
	 * row; what still waits then (parked in waiting_external) is cancelled
	 * by awa.ring_cancel, job by job.  A waiting job is in the slots or
	 * awa.scheduled, never in the history.
	 */
	awa_plan(&sched_plan,
			 "WITH " RING_PROMOTE_CTES("SELECT s.id FROM awa.scheduled s WHERE s.id = ANY($1)"
									   " ORDER BY s.id FOR UPDATE") ","
			 " r AS (" RING_PROMOTE_INSERT " RETURNING slot, id, run_lease)"
			 " INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at)"
			 " SELECT r.slot, r.id, r.run_lease + 1, 'cancelled', now() FROM r"
			 " RETURNING job_id",
			 1, ids_type);
	awa_plan(&lock_plan,
			 "SELECT 1 FROM unnest($1::int8[]) AS i(id) CROSS JOIN LATERAL"
			 " (SELECT 1 FROM awa.ready r WHERE r.id = i.id"
			 "  ORDER BY r.run_lease DESC LIMIT 1 FOR UPDATE) r",
			 1, ids_type);
	awa_plan(&ready_plan,
			 "INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at)"
			 " SELECT r.slot, r.id, r.run_lease + 1, 'cancelled', now()"
			 " FROM unnest($1::int8[]) AS i(id) CROSS JOIN LATERAL"
			 " (SELECT r.slot, r.id, r.run_lease FROM awa.ready r WHERE r.id = i.id"
			 "  ORDER BY r.run_lease DESC LIMIT 1) r"
			 " WHERE (SELECT 1 FROM awa.claims c WHERE c.job_id = r.id AND c.run_lease = r.run_lease + 1"
			 "  AND c.slot = r.slot LIMIT 1) IS NULL"
			 RING_NOT_DONE_SQL("r.slot", "r.id", "r.run_lease + 1")
			 " AND (SELECT 1 FROM awa.scheduled s WHERE s.id = r.id LIMIT 1) IS NULL"
			 " ON CONFLICT DO NOTHING RETURNING job_id",
			 1, ids_type);
	awa_plan(&cancel_plan,
			 "SELECT count(*) FILTER (WHERE awa.ring_cancel(g.id))"
			 " FROM unnest($1::int8[]) AS i(id) CROSS JOIN LATERAL " RING_JOB_STATE_SQL("i.id") " g"
			 " WHERE g.state IN " AWA_STATES_QUEUED_SQL,
			 1, ids_type);
	for (i = 0; i < n; i += DRAIN_BATCH)
	{
		int			take = (int) Min(n - i, DRAIN_BATCH);
		Datum		batch = awa_int8_array(ids + i, take);
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		drained += awa_ring_run(sched_plan, &batch, NULL, GetLatestSnapshot(), false,
								SPI_OK_INSERT_RETURNING, "awa_drain_queue: scheduled jobs");
		awa_ring_run(lock_plan, &batch, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
					 "awa_drain_queue: lock");
		drained += awa_ring_run(ready_plan, &batch, NULL, GetLatestSnapshot(), false,
								SPI_OK_INSERT_RETURNING, "awa_drain_queue: available jobs");
		if (awa_ring_run(cancel_plan, &batch, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa_drain_queue: the rest") == 1)
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				drained += DatumGetInt64(d);
		}
	}
	SPI_finish();
	return drained;
}
