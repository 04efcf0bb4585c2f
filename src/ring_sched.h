/*-------------------------------------------------------------------------
 *
 * ring_sched.h
 *		The ring's scheduled jobs, retries with backoff, snooze and cancel
 *		(ring_sched.c): the hooks ring.c calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_SCHED_H
#define AWA_RING_SCHED_H

#include "floor.h"

extern int64 awa_ring_sched_insert(Datum *values);
extern void awa_ring_sched_promote_lane(text *queue, AwaFloorScan *scan, int n);
extern void awa_ring_sched_probe(AwaFloorScan *scan, Datum queue, AwaFloorKey *first, bool *found);
extern void awa_ring_sched_next(Datum *values, int32 next_attempt, int32 backoff_attempt,
								Interval *delay, const char *state, const char *queue);

/*
 * The claim's candidates, its receipts and the floor probe skip an attempt
 * that has a done row (cancelled before any claim): appended to their
 * WHERE clauses with the attempt's slot, id and lease (an index probe of
 * done's key, never a join).
 */
#define RING_NOT_DONE_SQL(SLOT, ID, LEASE) \
	" AND (SELECT 1 FROM awa.done dn WHERE dn.job_id = " ID \
	" AND dn.run_lease = " LEASE " AND dn.slot = " SLOT " LIMIT 1) IS NULL"

#endif							/* AWA_RING_SCHED_H */
