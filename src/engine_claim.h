/*-------------------------------------------------------------------------
 *
 * engine_claim.h
 *		awa_claim on the ring (engine_claim.c): one attempt of awa_claim's
 *		loop (claim.c) for a database whose jobs are in the ring, the
 *		wait's wake-up lanes and the rate window's seed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_ENGINE_CLAIM_H
#define AWA_ENGINE_CLAIM_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"

/*
 * A claimed job's row in awa.jobs' shape (desc), and its place in the
 * claim's order: by level, then run_at, then id (claim.c sorts by them).
 */
typedef struct AwaClaimedRow
{
	HeapTuple	tuple;
	TupleDesc	desc;
	int			level;
	TimestampTz run_at;
	int64		id;
} AwaClaimedRow;

/*
 * awa_engine_try_claim: one attempt of awa_claim on the ring, at the
 * claim's time at: up to batch jobs of queue (or of the nqueues queues
 * names, sorted, none NULL; nqueues 0 and queue NULL: every queue) into
 * rows[0..], in claim order; returns how many.  *at_limit: a queue of the
 * claim is at its concurrency limit.  The arguments are checked
 * (claim.c).  Caller is in SPI.
 *
 * awa_engine_due_ms: after an attempt that claimed nothing, in how many
 * ms a claimer must look again without a wake-up (-1: never): the first
 * scheduled job of its queues comes due, or a rate's next slot opens.
 *
 * awa_engine_wait_register: publish a blocking claim of those queues in
 * wake.c under the ring's lanes (every queue, or more queues than a wait
 * slot holds: every lane of the database); false: the caller polls (no
 * shared memory).
 *
 * awa_engine_rate_init (engine_rate.c, from _PG_init): sets ratelimit.c's
 * awa_rate_seed_ring, which rebuilds a rate's window on the ring from its
 * receipts (ratelimit.h).
 */
extern int	awa_engine_try_claim(text *queue, char **names, int nqueues, TimestampTz at,
								 Interval *lease, text *worker, int batch, AwaClaimedRow *rows,
								 bool *at_limit);
extern long awa_engine_due_ms(TimestampTz now);
extern bool awa_engine_wait_register(text *queue, char **names, int nqueues);
extern void awa_engine_rate_init(void);

#endif							/* AWA_ENGINE_CLAIM_H */
