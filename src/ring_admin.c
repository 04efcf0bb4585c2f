/*-------------------------------------------------------------------------
 *
 * ring_admin.c
 *		Deleting jobs from the ring (docs/storage.md, "Step 5: administration
 *		on the ring engine"): what awa_discard_failed and a DELETE of the
 *		view awa.jobs do in a database whose jobs are in the ring.
 *
 *	A job leaves the ring whole: every row of every attempt (ready rows,
 *	claim receipts, done rows, beats, callback rows, in whichever slot), its
 *	element of a history batch, its unique key, its own dependency and group
 *	rows, and its count in the counters (-1 in its state, as the history's
 *	expiry uncounts).  A job not finished yet is cancelled first (the
 *	ring's cancel: its group may finish, its dependents follow their policy
 *	for a cancelled parent), then deleted.
 *
 *	Not the hot path: the rows deleted from a slot are dead tuples there
 *	until the slot's reclaim truncates it, and a batch of the history is
 *	rewritten without the job (one dead tuple per batch).  The jobs are
 *	locked (their ready rows, FOR UPDATE, as the cancel and the retry lock
 *	them; their history batches) before they are read, so two deletes of a
 *	job serialize and the second finds nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "awa.h"
#include "counters.h"
#include "deps.h"
#include "engine_admin.h"
#include "job_state_sql.h"
#include "ring.h"
#include "ring_admin.h"
#include "ring_history.h"

/* See ring_admin.h. */
int64
awa_ring_delete_jobs(Datum ids, bool finished_only)
{
	static SPIPlanPtr cancel_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr lock_history_plan = NULL;
	static SPIPlanPtr read_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	static SPIPlanPtr history_plan = NULL;
	static SPIPlanPtr empty_plan = NULL;
	static const Oid types[] = {INT8ARRAYOID};
	static const Oid read_types[] = {INT8ARRAYOID, BOOLOID};
	AwaCounts  *counts;
	Datum		read_args[2];
	Datum		gone;
	int64	   *gone_ids;
	int64		n;
	uint64		i;

	SPI_connect();
	/* live jobs end first, as a cancel ends them (groups, dependents) */
	if (!finished_only)
	{
		/* a live job is in the slots or awa.scheduled: its state by index probes (engine_admin.h) */
		awa_plan(&cancel_plan,
				 "SELECT awa.ring_cancel(i.id) FROM unnest($1::int8[]) i(id)"
				 " WHERE EXISTS (SELECT 1 FROM " RING_JOB_STATE_SQL("i.id") " s"
				 "  WHERE s.state IN " AWA_STATES_LIVE_SQL ")",
				 1, (Oid *) types);
		awa_ring_run(cancel_plan, &ids, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa: cancelling the jobs to delete");
	}
	awa_plan(&lock_plan,
			 "SELECT 1 FROM awa.ready r WHERE r.id = ANY($1) ORDER BY r.id, r.run_lease, r.slot FOR UPDATE",
			 1, (Oid *) types);
	awa_ring_run(lock_plan, &ids, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
				 "awa: locking the jobs to delete");
	awa_plan(&lock_history_plan,
			 "SELECT 1 FROM unnest($1::int8[]) i(id) CROSS JOIN LATERAL"
			 " (SELECT 1 FROM awa.ring_history h WHERE int8range(h.id_lo, h.id_hi, '[]') @> i.id"
			 "  FOR UPDATE) h",
			 1, (Oid *) types);
	awa_ring_run(lock_history_plan, &ids, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
				 "awa: locking the history of the jobs to delete");

	/*
	 * The jobs as they read now, after the locks: what leaves the counters
	 * (each job in its state), and which go (finished_only: the finished
	 * ones; else all, every one finished by now).
	 */
	awa_plan(&read_plan,
			 "SELECT g.queue, g.state::text, g.finalized_at, 1::bigint, g.id,"
			 " g.state IN " AWA_STATES_FINAL_SQL
			 " FROM unnest($1::int8[]) i(id)"
			 /*
			  * hook: rstats -- the jobs in the slots or awa.scheduled by one
			  * read of the view, the rest (the history) by awa.ring_get
			  */
			 " LEFT JOIN LATERAL (SELECT ROW(j.*)::awa.jobs AS r FROM awa.ring_live_jobs j"
			 "  WHERE j.id = i.id LIMIT 1) x ON true"
			 " CROSS JOIN LATERAL (SELECT coalesce(x.r, awa.ring_get(i.id)) AS r OFFSET 0) y"
			 " CROSS JOIN LATERAL (SELECT (y.r).*) g"
			 " WHERE g.id IS NOT NULL AND (NOT $2 OR g.state IN " AWA_STATES_FINAL_SQL ")",
			 2, (Oid *) read_types);
	read_args[0] = ids;
	read_args[1] = BoolGetDatum(finished_only);
	awa_ring_run(read_plan, read_args, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
				 "awa: reading the jobs to delete");
	gone_ids = palloc(sizeof(int64) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 6, &isnull)))
			elog(ERROR, "awa: job %s to delete did not end when cancelled",
				 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5));
		gone_ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5, &isnull));
	}
	counts = awa_ring_uncounts("awa: deleting jobs", &n);
	if (n == 0)
	{
		SPI_finish();
		return 0;
	}
	gone = awa_int8_array(gone_ids, (int) n);

	awa_plan(&delete_plan,
			 "WITH r AS (DELETE FROM awa.ready WHERE id = ANY($1)),"
			 " c AS (DELETE FROM awa.claims WHERE job_id = ANY($1)),"
			 " d AS (DELETE FROM awa.done WHERE job_id = ANY($1)),"
			 " b AS (DELETE FROM awa.beats WHERE job_id = ANY($1)),"
			 " w AS (DELETE FROM awa.callbacks WHERE job_id = ANY($1)),"
			 " u AS (DELETE FROM awa.unique_keys WHERE job_id = ANY($1)),"
			 " p AS (DELETE FROM awa.ring_dependencies WHERE job_id = ANY($1)),"
			 " q AS (DELETE FROM awa.ring_dependents WHERE job_id = ANY($1)),"
			 " g AS (DELETE FROM awa.ring_group_jobs WHERE job_id = ANY($1))"
			 " SELECT 1",
			 1, (Oid *) types);
	awa_ring_run(delete_plan, &gone, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
				 "awa: deleting the jobs' rows");
	/* the batches of the history that hold one of them, without it */
	awa_plan(&history_plan,
			 "UPDATE awa.ring_history h"
			 " SET jobs = ARRAY(SELECT e FROM unnest(h.jobs) e WHERE e.id <> ALL($1))"
			 " FROM unnest($1::int8[]) i(id)"
			 " WHERE int8range(h.id_lo, h.id_hi, '[]') @> i.id"
			 " AND EXISTS (SELECT 1 FROM unnest(h.jobs) e WHERE e.id = i.id)",
			 1, (Oid *) types);
	awa_ring_run(history_plan, &gone, NULL, InvalidSnapshot, false, SPI_OK_UPDATE,
				 "awa: deleting the jobs from the history");
	awa_plan(&empty_plan,
			 "DELETE FROM awa.ring_history h USING unnest($1::int8[]) i(id)"
			 " WHERE int8range(h.id_lo, h.id_hi, '[]') @> i.id AND cardinality(h.jobs) = 0",
			 1, (Oid *) types);
	awa_ring_run(empty_plan, &gone, NULL, InvalidSnapshot, false, SPI_OK_DELETE,
				 "awa: deleting emptied batches of the history");
	awa_counts_write(counts);
	SPI_finish();
	return n;
}
