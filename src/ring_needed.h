/*-------------------------------------------------------------------------
 *
 * ring_needed.h
 *		Whether a finished ring job is still needed by a job that runs
 *		after it (docs/storage.md, "Step 5: leases, messages and side-table
 *		upkeep"), for the reclaim (ring_slots.c) and the history's expiry
 *		(ring_history.c).  A macro only: no C file of its own.
 *
 * awa.jobs' retention keeps a finished job while a job that names it in
 * after has not finished (deps.h, AWA_DEPS_NOT_NEEDED_SQL), so that its
 * state and result stay readable (awa_parent_results) until its dependents
 * ran.  The ring keeps the same rule: a slot's finished job past retention
 * that such a dependent needs goes into the history instead of going with
 * the slot, and a history batch holding one does not expire.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_NEEDED_H
#define AWA_RING_NEEDED_H

/*
 * SQL: true when the ring job with id P (an SQL expression) is named in
 * after by a ring job that has not finished (scheduled, available, running,
 * retryable, waiting_external as awa.ring_live_jobs shows it).  An index
 * probe of awa.ring_dependencies by parent, then one view lookup by id per
 * dependent found; nothing more where no job ever named a parent.
 */
#define AWA_RING_NEEDED_SQL(P) \
	"EXISTS (SELECT 1 FROM awa.ring_dependencies awa_e WHERE awa_e.parent_id = " P \
	" AND (SELECT 1 FROM awa.ring_live_jobs awa_c WHERE awa_c.id = awa_e.job_id" \
	"  AND awa_c.state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')" \
	"  LIMIT 1) IS NOT NULL)"

#endif							/* AWA_RING_NEEDED_H */
