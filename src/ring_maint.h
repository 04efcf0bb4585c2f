/*-------------------------------------------------------------------------
 *
 * ring_maint.h
 *		The ring's steps of the maintenance round (ring_maint.c), for
 *		maintain.c (hook: rmaint).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_MAINT_H
#define AWA_RING_MAINT_H

/* The ring's steps, in the order a round runs them. */
typedef enum AwaRingStep
{
	AWA_RING_STEP_PROMOTE,		/* awa.ring_promote: due scheduled rows become ready */
	AWA_RING_STEP_RESCUE,		/* awa.ring_rescue: attempts past their deadline */
	AWA_RING_STEP_CALLBACKS,	/* awa.ring_callback_timeouts: external waits past their deadline */
	AWA_RING_STEP_HISTORY,		/* awa.ring_history_expire: finished jobs past retention */
	AWA_RING_STEP_UPKEEP,		/* side tables: rows of ended attempts and of jobs gone */
	AWA_RING_STEP_ROTATE,		/* awa.ring_rotate: seal the open slot when due */
	AWA_RING_STEP_RECLAIM,		/* awa.ring_reclaim: carry and truncate sealed slots */
	AWA_RING_NUM_STEPS
} AwaRingStep;

/* At most this many rows per round: promoted, rescued, timed out callbacks, carried per slot. */
#define AWA_RING_MAINT_PROMOTE_MAX	10000
#define AWA_RING_MAINT_RESCUE_MAX	1000
#define AWA_RING_MAINT_CALLBACKS_MAX	1000
#define AWA_RING_MAINT_CARRY_MAX	1000
/* rows of each side table the upkeep step looks at per round */
#define AWA_RING_MAINT_UPKEEP_MAX	1000

/*
 * Run one ring step in the current (sub)transaction, connected to SPI or
 * not.  Does nothing and returns 0 unless the ring is in use in this
 * database (awa_ring_maint_in_use).  Returns what the step counts: jobs
 * promoted, attempts rescued (deadline, timeout), external waits timed out,
 * jobs expired from the history, side-table rows removed, slots rotated,
 * slots reclaimed.  Errors propagate: the caller runs each step isolated.
 */
extern int64 awa_ring_maint_step(AwaRingStep step);

/*
 * Whether the ring holds anything in this database: some partition of
 * awa.ready, or awa.scheduled, has a block (the size of their files: no
 * scan, no wait; a relation locked by someone else counts as in use).
 * False on a schema without the ring.
 */
extern bool awa_ring_maint_in_use(void);

#endif							/* AWA_RING_MAINT_H */
