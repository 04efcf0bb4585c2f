/*-------------------------------------------------------------------------
 *
 * ring_claim.h
 *		awa_claim's direct call of the ring's claim (ring_claim.c), without
 *		the SQL function awa.ring_claim between them (docs/storage.md,
 *		"Step 5: claim and complete at batch speed on the ring").
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_CLAIM_H
#define AWA_RING_CLAIM_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/timestamp.h"

/*
 * One claimed attempt: its job id and run_lease, and, for a first attempt
 * (run_lease 1) claimed by a single-range read, its row of awa.jobs (of
 * the caller's desc) built from the ready row the claim read and the
 * receipt it wrote; NULL: the caller reads it (awa_engine_claimed_rows).
 */
typedef struct AwaRingClaimed
{
	int64		id;
	int64		run_lease;
	HeapTuple	row;
} AwaRingClaimed;

/*
 * awa_ring_claim_direct: what awa.ring_claim(queue, ...) returns (queue
 * not NULL) or awa.ring_claim(queues, ...) (queue NULL; names[0..n) sorted
 * without duplicates, or n = 0: every queue), in the same order, into
 * out[0..batch); returns how many.  batch 1..1000, lease positive (the
 * caller checked them: awa_claim's own checks); worker may be NULL.  The
 * rows (desc: awa.jobs' columns, NULL: none built) and out live in cxt.
 * Errors as awa.ring_claim's.  Caller is not required to be in SPI.
 */
extern int	awa_ring_claim_direct(text *queue, text **names, int n, int batch, Interval *lease,
								  text *worker, TupleDesc desc, MemoryContext cxt, AwaRingClaimed *out);

/*
 * hook: rclaim -- engine_claim.c calls awa_ring_claim_direct through this
 * pointer (defined there, set at load by awa_ring_claim_init), so that the
 * C files call each other in no circle (ring_claim.c reads claim.c's
 * settings; claim.c calls engine_claim.c).
 */
extern int	(*awa_engine_ring_claim) (text *queue, text **names, int n, int batch, Interval *lease,
									  text *worker, TupleDesc desc, MemoryContext cxt,
									  AwaRingClaimed *out);
extern void awa_ring_claim_init(void);

#endif
