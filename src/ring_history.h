/*-------------------------------------------------------------------------
 *
 * ring_history.h
 *		The history of finished ring jobs (ring_history.c): what the reclaim
 *		of a slot (ring_slots.c) and awa.ring_get (ring_read.c) call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_HISTORY_H
#define AWA_RING_HISTORY_H

#include "postgres.h"
#include "utils/snapshot.h"

#include "counters.h"

extern int	awa_ring_retention(const char *name);
extern AwaCounts *awa_ring_uncounts(const char *who, int64 *total);
extern int64 awa_ring_uncount(const char *who);
extern Datum awa_ring_history_move(Datum *ids, uint64 n);
extern void awa_ring_history_unmove(Datum tids);
extern void awa_ring_history_carry_earlier(const char *parent, const char *cols, int16 slot, int16 open,
										   Datum carried_ids, Datum carried_leases);
extern Datum awa_ring_history_get(Datum id, Snapshot snapshot, bool *isnull);

/*
 * The lock on which a step that drops finished jobs (the reclaim of a slot,
 * the history's expiry) and a write that makes a finished job needed or live
 * again (an insert naming parents, awa.ring_retry) meet (ring_history.c):
 * awa_ring_finished_hold, without waiting, before the step's snapshot (false:
 * such a write is in progress, the step skips; awa_ring_finished_unhold
 * gives one hold back when the step drops nothing after all);
 * awa_ring_finished_need, waiting, before the write reads the job.  Both
 * to the end of the transaction.
 */
extern bool awa_ring_finished_hold(void);
extern void awa_ring_finished_unhold(void);
extern void awa_ring_finished_need(void);

#endif							/* AWA_RING_HISTORY_H */
