/*-------------------------------------------------------------------------
 *
 * ring_revive.h
 *		awa.ring_retry of a job a reclaim moved into awa.ring_history
 *		(ring_revive.c; docs/storage.md, "Step 5: retrying jobs from the
 *		history").
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_REVIVE_H
#define AWA_RING_REVIVE_H

#include "postgres.h"

/*
 * awa_ring_revive: bring job id back from its history batch as the retry
 * awa.ring_retry makes of a job in the slots: a ready row in the open slot,
 * available now, attempt 0, its errors, attempted_at, claimed_by, lease and
 * progress kept; the element leaves its batch (the batch goes once empty);
 * a unique job takes its key again (23505 when another job holds it).
 * Returns RING_REVIVED (done), RING_REVIVE_NOT (in the history, neither
 * failed nor cancelled: nothing done), RING_REVIVE_NONE (not in the
 * history) or RING_REVIVE_AGAIN (another transaction took it out of the
 * history while this one waited for its batch: look in the slots again).
 * Caller is in SPI and checked that the ring may run.
 */
#define RING_REVIVED		1
#define RING_REVIVE_NOT		0
#define RING_REVIVE_NONE	(-1)
#define RING_REVIVE_AGAIN	(-2)
extern int	awa_ring_revive(Datum id);

/*
 * awa_ring_retry_take_key: a unique job coming back takes its key again
 * (awa.unique_keys); 23505 naming the holder when another job holds it.
 * Caller is in SPI.
 */
extern void awa_ring_retry_take_key(Datum id, Datum key, Datum states);

/*
 * awa_ring_retry_claimable: a job of queue is claimable now: its floor lane
 * noted, a blocking claimer of the queue woken at commit.
 */
extern void awa_ring_retry_claimable(const char *queue);

#endif							/* AWA_RING_REVIVE_H */
