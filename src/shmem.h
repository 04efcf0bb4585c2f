/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		awa's shared memory (shmem.c): a slot per backend, for a claimer
 *		blocked in awa_claim (wake.c) and for the commit mark of a backend
 *		committing with NOTIFYs held (notify.c), and a few counters.
 *		Exists only when awa is in shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_SHMEM_H
#define AWA_SHMEM_H

#include "port/atomics.h"

/* A waiter of more queues than this waits for every queue. */
#define AWA_WAIT_QUEUES 16

/* One claimer blocked in awa_claim; also the backend's commit mark. */
typedef struct AwaWaitSlot
{
	pg_atomic_uint32 reg_gen;	/* odd while the fields below describe a waiter */
	Oid			dboid;
	uint32		queue_hash;
	uint32		nqueues;		/* 1: queue_hash; 2..AWA_WAIT_QUEUES: queue_hashes; 0: every queue */
	uint32		queue_hashes[AWA_WAIT_QUEUES];
	int			procno;
	pg_atomic_uint32 woken;		/* not 0: handed a wake-up it has not taken
								 * yet (the hand's tag, see hand_wakeups) */
	pg_atomic_uint32 at_limit;	/* 1: its queue is at its concurrency limit */
	pg_atomic_uint64 due_at;	/* keeps the time of a scheduled job, or 0 */
	pg_atomic_uint32 commit_gen;	/* odd while committing with NOTIFYs held */
} AwaWaitSlot;

typedef struct AwaShared
{
	pg_atomic_uint32 nwaiting;	/* slots in use, to skip the scan when 0 */
	pg_atomic_uint32 nlisteners;	/* backends that ran LISTEN on awa channels */
	pg_atomic_uint64 wakeups;	/* times a blocked claimer woke and tried again */
	pg_atomic_uint32 next_start;	/* where the next scan for waiters begins */
	pg_atomic_uint32 wake_tag;	/* tags of wake-ups handed (wake.c) */
	pg_atomic_uint64 maint_last_run;	/* TimestampTz of the last round */
	pg_atomic_uint32 maint_pid; /* pid of the maintenance worker, or 0 */
	int			nslots;
	AwaWaitSlot slots[FLEXIBLE_ARRAY_MEMBER];
} AwaShared;

extern AwaShared *awa_shared;	/* NULL without shared memory */

extern AwaWaitSlot *awa_my_slot(void);

#endif							/* AWA_SHMEM_H */
