/*-------------------------------------------------------------------------
 *
 * ring_obs.h
 *		Job timeouts and awa.heartbeat_timeout on the ring's deadlines, the
 *		ring's history events and lag (ring_obs.c; docs/storage.md, "Step 5:
 *		timeouts, history and lag, wake-ups on the ring").
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_OBS_H
#define AWA_RING_OBS_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/timestamp.h"

/*
 * awa.heartbeat_timeout (seconds, job.c) as an interval, read when the
 * statement runs: the setting of whoever claims or beats, never longer than
 * its default (hook: rclean -- awa.ring_heartbeat_cap, ring_lease.c: a
 * claimer's longer setting made the rescue find its attempt that much late).
 */
#define AWA_RING_HEARTBEAT_TIMEOUT_SQL \
	"awa.ring_heartbeat_cap()"

/*
 * The job's timeout as seen from the attempt (id I, run_lease L, slot S):
 * the timeout column of the attempt's ready row (id, L - 1, S); NULL: none.
 * One probe of the ready row's unique key, the slot pruned at run time.
 */
#define AWA_RING_TIMEOUT_SQL(S, I, L) \
	"(SELECT r.timeout FROM awa.ready r WHERE r.id = " I " AND r.run_lease = " L " - 1" \
	" AND r.slot = " S " LIMIT 1)"

/*
 * hook: robs -- the deadline of a new receipt (ring.c's receipt statement,
 * claimed with LEASE at now(), the job's timeout TIMEOUT as its candidate
 * row read it): as awa.jobs' claim, never later than now() + the job's
 * timeout; and, like awa.jobs' rescue of a job whose heartbeat is older than
 * awa.heartbeat_timeout, no later than now() + that setting (LEAST ignores
 * a NULL timeout).
 */
/* hook: rclaimx -- AT: the claim's time (was now()) */
#define AWA_RING_CLAIM_DEADLINE_SQL(AT, LEASE, TIMEOUT) \
	"LEAST(" AT " + LEAST(" LEASE ", " AWA_RING_HEARTBEAT_TIMEOUT_SQL "), " AT " + " TIMEOUT ")"

/*
 * hook: robs -- the timeouts of the n candidates (column att of each row of
 * cand) as an interval[] with NULLs, for the receipt statement (ring.c).
 * Inline: ring_obs.c calls ring.c's helpers, and the C files of src/ call
 * each other in no circle (scripts/lint.sh).
 */
static inline Datum
awa_ring_claim_timeouts(SPITupleTable *cand, int n, int att)
{
	Datum	   *elems = (Datum *) palloc(sizeof(Datum) * (n + 1));
	bool	   *nulls = (bool *) palloc(sizeof(bool) * (n + 1));
	int			lbs = 1;
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = SPI_getbinval(cand->vals[i], cand->tupdesc, att, &nulls[i]);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, &n, &lbs, INTERVALOID,
											  sizeof(Interval), false, TYPALIGN_DOUBLE));
}

/*
 * ring_read.c's counting trigger hands every row it counts to these
 * (hook: robs): one statement's history events of ring jobs, written to
 * awa.history_deltas at its end as awa.jobs' trigger writes them.
 *
 * awa_ring_history_begin: start a statement (false: awa.track_history off,
 *		or no awa.history_deltas; then call nothing else).
 * awa_ring_history_ready: a ready row written (row: its tuple; lease its
 *		run_lease).
 * awa_ring_history_scheduled: a scheduled row inserted.
 * awa_ring_history_receipt: a receipt written (row), ready: its attempt's
 *		ready row.
 * awa_ring_history_done: a done row written (row, also the end of a wait),
 *		ready: its attempt's ready row, receipt: its receipt or NULL.
 * awa_ring_history_end: write what the statement added up.
 */
extern bool awa_ring_history_begin(void);
extern void awa_ring_history_ready(TupleTableSlot *row, int64 lease);
extern void awa_ring_history_scheduled(TupleTableSlot *row);
extern void awa_ring_history_receipt(TupleTableSlot *row, TupleTableSlot *ready);
extern void awa_ring_history_done(TupleTableSlot *row, TupleTableSlot *ready,
								  TupleTableSlot *receipt);
extern void awa_ring_history_end(void);

/*
 * hook: robs -- awa_queue_stats (stats.c): the row of a queue with its
 * lag_seconds (column lag_att, 1-based) raised to the lag of the ring's
 * oldest available job of the queue when that is older; the row itself
 * when the ring has none.  Caller is in SPI.  awa_ring_stats_in_use: whether
 * to call it at all (the ring holds something in this database).
 */
extern bool awa_ring_oldest_lag(double *lag);	/* hook: rstats */
extern bool awa_ring_stats_in_use(void);
extern HeapTuple awa_ring_stats_lag(HeapTuple row, TupleDesc desc, int queue_att,
									int available_att, int lag_att);

#endif							/* AWA_RING_OBS_H */
