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

#include "datatype/timestamp.h"
#include "utils/snapshot.h"
#include "floor.h"
#include "ring.h"

/*
 * ring_sched.c's entry points that ring.c calls (its hooks): set by
 * awa_ring_sched_init (from _PG_init), so that ring.c does not name
 * ring_sched.c's functions while ring_sched.c uses ring.c's helpers
 * (scripts/lint.sh: no circles between the C files).  The variable is
 * defined in ring.c.
 *
 * insert: ring_insert of a job due later, its scheduled row (values and
 *		nulls as ring_insert's statement); returns the id.
 * promote_lane: the claim's promotion of due scheduled rows of its queue.
 * probe: the scheduled half of the claim's floor probe.
 * next: the attempt after a retryable failure or a snooze, its ended
 *		attempt's ready row read with snap (InvalidSnapshot: the usual one;
 *		ring_fail passes the newest after finding a receipt that
 *		awa.ring_reclaim carried forward while it waited).
 */
typedef struct AwaRingSchedHooks
{
	int64		(*insert) (Datum *values, const char *nulls);
	void		(*promote_lane) (text *queue, AwaFloorScan *scan, int n);
	void		(*probe) (AwaFloorScan *scan, Datum queue, AwaFloorKey *first, bool *found);
	void		(*next) (Datum *values, int32 next_attempt, int32 backoff_attempt,
						 Interval *delay, const char *state, const char *queue, Snapshot snap);
} AwaRingSchedHooks;

extern AwaRingSchedHooks awa_ring_sched_hooks;
extern void awa_ring_sched_init(void);

/*
 * The claim's candidates, its receipts and the floor probe skip an attempt
 * that has a done row (cancelled before any claim): appended to their
 * WHERE clauses with the attempt's slot, id and lease (an index probe of
 * done's key, never a join).
 */
#define RING_NOT_DONE_SQL(SLOT, ID, LEASE) \
	" AND (SELECT 1 FROM awa.done dn WHERE dn.job_id = " ID \
	" AND dn.run_lease = " LEASE " AND dn.slot = " SLOT " LIMIT 1) IS NULL"

/* hook: rclaim -- moved here from ring_sched.c for ring_claim.c's promotion over several queues */
/*
 * Moving scheduled rows into ready rows of the open slot, in one statement:
 * RING_PROMOTE_CTES(PICK) locks the rows PICK (a SELECT of their ids,
 * locking them) picks and deletes them (d), RING_PROMOTE_INSERT writes
 * their ready rows.  Without an open slot the ready row's slot is NULL and
 * the statement fails (23502): nothing is deleted.
 */
#define RING_PROMOTE_CTES(PICK) \
	"s AS (" PICK ")," \
	" d AS (DELETE FROM awa.scheduled x USING s WHERE x.id = s.id RETURNING x.*)"
#define RING_PROMOTE_INSERT \
	" INSERT INTO awa.ready (slot, id, run_lease, attempt, run_at, " RING_JOB_COLS ")" \
	" SELECT (SELECT o.slot FROM awa.ring_slots o WHERE o.state = 'open'), d.id, d.run_lease," \
	" d.attempt, d.run_at, " RING_JOB_COLS_OF("d.") " FROM d"
#define RING_PROMOTE_SQL(PICK, RET) \
	"WITH " RING_PROMOTE_CTES(PICK) RING_PROMOTE_INSERT " RETURNING " RET

#endif							/* AWA_RING_SCHED_H */
