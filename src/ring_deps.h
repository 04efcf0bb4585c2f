/*-------------------------------------------------------------------------
 *
 * ring_deps.h
 *		Dependencies and groups on the ring (ring_deps.c): the hooks
 *		ring.c calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_DEPS_H
#define AWA_RING_DEPS_H

struct AwaJob;

/*
 * ring_deps.c's entry points that ring.c calls (its hooks), set by
 * awa_ring_deps_init (from _PG_init), so that ring.c does not name
 * ring_deps.c's functions while ring_deps.c uses ring.c's helpers
 * (scripts/lint.sh: no circles between the C files).  The variable is
 * defined in ring.c.
 *
 * before_insert: a job that names parents (job->deps): lock and read them
 *		(23503 for a parent that is not a ring job), decide whether it waits;
 *		a waiting job's run_at becomes AWA_DEPS_WAIT_RUN_AT (it is written as
 *		a scheduled row that no claim or promotion takes).
 * after_insert: the job (id) was written: its edges (job->deps), its group
 *		membership and the group's enqueue lock (job->group_id); a job whose
 *		parent already failed under "cancel" is cancelled at once.
 */
typedef struct AwaRingDepsHooks
{
	void		(*before_insert) (struct AwaJob *job);
	void		(*after_insert) (struct AwaJob *job, int64 id);
} AwaRingDepsHooks;

extern AwaRingDepsHooks awa_ring_deps_hooks;
extern void awa_ring_deps_init(void);

#endif							/* AWA_RING_DEPS_H */
