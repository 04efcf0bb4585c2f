/*-------------------------------------------------------------------------
 *
 * ring_flow.h
 *		Queue flow control on the ring's claim (ring_flow.c): a paused
 *		queue, its concurrency limit and its rate, read from
 *		awa.queue_meta by the queue's name as awa_claim reads them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_FLOW_H
#define AWA_RING_FLOW_H

#include "datatype/timestamp.h"

#include "ratelimit.h"

/* Why a queue's allowance is smaller than what the claim wanted. */
typedef enum AwaRingFlowWhy
{
	AWA_RING_FLOW_OPEN = 0,		/* nothing held it back */
	AWA_RING_FLOW_PAUSED,		/* awa_pause_queue: nothing */
	AWA_RING_FLOW_AT_LIMIT,		/* max_running jobs of the queue run */
	AWA_RING_FLOW_RATE			/* the rate granted less (next_slot_at) */
} AwaRingFlowWhy;

/*
 * One queue of one claim, from awa_ring_flow_begin to awa_ring_flow_end
 * (the caller's, on its stack; nothing of it outlives the claim).
 */
typedef struct AwaRingFlow
{
	char	   *queue;			/* the queue's name (palloc'd) */
	bool		limited;		/* max_running set: the queue's lock is held */
	bool		rated;			/* a rate: ask holds the reservation */
	AwaRingFlowWhy why;
	int64		allowance;		/* what awa_ring_flow_begin returned */
	AwaRateAsk	ask;
	TimestampTz reserved_at;	/* the rate reservation's time */
	TimestampTz next_slot_at;	/* the rate granted nothing: when its next slot opens; else 0 */
} AwaRingFlow;

/*
 * awa_ring_flow_begin: how many jobs of the queue this claim may take now,
 * at most want (>= 0): 0 for a paused queue; for a queue with a
 * concurrency limit, at most max_running minus the jobs of the queue
 * running (the counters' count with the newest snapshot), under the
 * queue's transaction-level lock, held to commit if the claim takes jobs;
 * for a queue with a rate, at most what the rate grants now (reserved in
 * shared memory).  Caller is in SPI.  Errors: 55000 for a queue with a rate
 * when awa is not preloaded; 54000 when too many rated queues are in use.
 *
 * awa_ring_flow_end: the claim took got jobs of the queue: give back the
 * rate's unused reservations, let go of the queue's lock if it took none,
 * and tell an armed probe (below) why it got fewer.
 */
extern int64 awa_ring_flow_begin(text *queue, int64 want, AwaRingFlow *st);
extern void awa_ring_flow_end(AwaRingFlow *st, int64 got);

/*
 * hook: rflow -- ring.c's claim calls the two through these pointers, set
 * by awa_ring_flow_init (from _PG_init), so that ring.c does not name
 * ring_flow.c's functions (ring_flow.c runs its statements through
 * ring.c's awa_ring_run).  A claim of several queues calls them per queue.
 */
typedef struct AwaRingFlowHooks
{
	int64		(*begin) (text *queue, int64 want, AwaRingFlow *st);
	void		(*end) (AwaRingFlow *st, int64 got);
} AwaRingFlowHooks;

extern AwaRingFlowHooks awa_ring_flow_hooks;
extern void awa_ring_flow_init(void);

/*
 * For a blocking claim (ring_wait.c), which runs awa.ring_claim through SQL:
 * arm the probe before the claim, read it after.  awa_ring_flow_end of each
 * queue the claim served adds to it: paused (a queue it served was
 * paused), at_limit (one was at its concurrency limit), next_slot_at (when
 * the earliest next slot opens of a rate that granted nothing; 0: none).
 */
typedef struct AwaRingFlowProbe
{
	bool		paused;
	bool		at_limit;
	TimestampTz next_slot_at;
} AwaRingFlowProbe;

extern void awa_ring_flow_probe_arm(void);
extern void awa_ring_flow_probe_read(AwaRingFlowProbe *out);

#endif							/* AWA_RING_FLOW_H */
