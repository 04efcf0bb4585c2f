/*-------------------------------------------------------------------------
 *
 * counters.h
 *		The job counters (counters.c) as stats.c reads them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_COUNTERS_H
#define AWA_COUNTERS_H

#include "datatype/timestamp.h"
#include "job_state.h"

/* The columns of the states counted whatever the time (all but completed). */
#define AWA_COUNTER_STATES \
	"scheduled, available, running, retryable, failed, cancelled, waiting_external"
#define AWA_COUNTER_STATES_OF(t) \
	t ".scheduled, " t ".available, " t ".running, " t ".retryable, " \
	t ".failed, " t ".cancelled, " t ".waiting_external"

/*
 * CTEs f (the newest fold the snapshot sees: fold, snapshot,
 * completed_from; no row before the first fold), d (the deltas of every
 * transaction its snapshot did not see: queue, the counts of the states,
 * completed and completed_second) and src (queue and the counts of the
 * states, from the fold and from d).  Summed per queue, src gives the
 * counts at the snapshot of the statement; the completed jobs are in
 * awa.counter_completed (as of that fold) and in d.
 */
#define AWA_COUNTER_SOURCE_SQL \
	"WITH f AS (SELECT fold, snapshot, completed_from FROM awa.counter_folds" \
	"   ORDER BY fold DESC LIMIT 1)," \
	" d AS (" \
	"  SELECT d.queue, " AWA_COUNTER_STATES_OF("d") ", d.completed, d.completed_second" \
	"    FROM awa.counter_deltas d" \
	"    WHERE d.xid >= coalesce((SELECT pg_catalog.pg_snapshot_xmax(snapshot) FROM f), '0'::xid8)" \
	"  UNION ALL" \
	"  SELECT d.queue, " AWA_COUNTER_STATES_OF("d") ", d.completed, d.completed_second" \
	"    FROM awa.counter_deltas d" \
	"    WHERE d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(snapshot) FROM f)))," \
	" src AS (" \
	"  SELECT c.queue, " AWA_COUNTER_STATES_OF("c") \
	"    FROM awa.counter_fold_counts c WHERE c.fold = (SELECT fold FROM f)" \
	"  UNION ALL" \
	"  SELECT d.queue, " AWA_COUNTER_STATES_OF("d") " FROM d)"

/* Seconds and minutes of the Unix epoch (the same in every time zone). */
#define AWA_SECOND_USECS	INT64CONST(1000000)
#define AWA_MINUTE_USECS	INT64CONST(60000000)

/* The start of the period (AWA_SECOND_USECS, AWA_MINUTE_USECS) t is in. */
extern TimestampTz awa_counter_bucket(TimestampTz t, int64 usecs);

/*
 * hook: ring -- changes of the counts added up and written as delta rows
 * (counters.c) by the ring's counting trigger (ring_read.c): create, add
 * n jobs of a queue (len bytes) in a state (completed: by the second of
 * finalized_at), write the non-zero sums and free.
 */
typedef struct AwaCounts AwaCounts;
extern AwaCounts *awa_counts_create(void);
extern void awa_counts_add(AwaCounts *c, const char *queue, int len, AwaJobState state,
						   TimestampTz finalized_at, bool isnull, int64 n);
extern void awa_counts_write(AwaCounts *c);

/*
 * hook: rdelta -- within a batch of jobs (batch.h) the ring's counting
 * trigger adds its sums to the transaction's notes: awa_counts_statement
 * gives them (awa_counts_write then leaves them, written at the batch's
 * end), and outside a batch awa_counts_create's counts.
 */
extern AwaCounts *awa_counts_statement(void);

#endif							/* AWA_COUNTERS_H */
