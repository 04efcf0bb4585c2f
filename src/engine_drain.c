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
 *		in, running ones too, so each job read as waiting is taken thus: its
 *		newest ready row is locked (waiting for a claim that holds it, and
 *		keeping later claims off it), then the job is read again with the
 *		newest snapshot and cancelled only if it still waits.
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
#include "engine_drain.h"
#include "job_state_sql.h"
#include "engine_admin.h"
#include "ring.h"

/* See engine_drain.h. */
int64
awa_engine_drain_waiting(Datum queue)
{
	static SPIPlanPtr ids_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr cancel_plan = NULL;
	static const Oid text_type[] = {TEXTOID};
	static const Oid id_type[] = {INT8OID};
	int64		drained = 0;
	int64	   *ids;
	uint64		n;
	uint64		i;

	SPI_connect();
	/* the queue's jobs that wait, by id */
	awa_plan(&ids_plan,
			 "SELECT j.id FROM awa.ring_live_jobs j"
			 " WHERE j.queue = $1 AND j.state IN " AWA_STATES_QUEUED_SQL " ORDER BY j.id",
			 1, text_type);
	n = awa_ring_run(ids_plan, &queue, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa_drain_queue: jobs");
	ids = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* the newest ready row of a job, locked: a claim holding it is waited for */
	awa_plan(&lock_plan,
			 "SELECT 1 FROM awa.ready r WHERE r.id = $1"
			 " ORDER BY r.run_lease DESC LIMIT 1 FOR UPDATE",
			 1, id_type);
	/*
	 * the job read again: cancelled if it still waits (hook: rjit -- its
	 * state by index probes, engine_admin.h; a waiting job is in the slots
	 * or awa.scheduled, never in the history)
	 */
	awa_plan(&cancel_plan,
			 "SELECT awa.ring_cancel(g.id) FROM " RING_JOB_STATE_SQL("$1") " g"
			 " WHERE g.state IN " AWA_STATES_QUEUED_SQL,
			 1, id_type);
	for (i = 0; i < n; i++)
	{
		Datum		id = Int64GetDatum(ids[i]);
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		awa_ring_run(lock_plan, &id, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
					 "awa_drain_queue: lock");
		if (awa_ring_run(cancel_plan, &id, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa_drain_queue: cancel") == 1 &&
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
			!isnull)
			drained++;
	}
	SPI_finish();
	return drained;
}
