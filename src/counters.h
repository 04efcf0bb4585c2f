/*-------------------------------------------------------------------------
 *
 * counters.h
 *		The job counters (counters.c) as stats.c reads them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_COUNTERS_H
#define AWA_COUNTERS_H

/* The count columns of awa.counter_deltas and awa.counter_fold_counts. */
#define AWA_COUNTER_COLUMNS \
	"scheduled, available, running, completed, retryable, failed, cancelled, waiting_external"
#define AWA_COUNTER_COLUMNS_OF(t) \
	t ".scheduled, " t ".available, " t ".running, " t ".completed, " t ".retryable, " \
	t ".failed, " t ".cancelled, " t ".waiting_external"

/*
 * CTEs f (the newest fold the snapshot sees: fold, snapshot,
 * completed_from; no row before the first fold) and src (queue, minute
 * and the count columns: the rows of that fold and the deltas of every
 * transaction its snapshot did not see).  Summed per queue (and minute for
 * completed), src gives the counts at the snapshot of the statement.
 */
#define AWA_COUNTER_SOURCE_SQL \
	"WITH f AS (SELECT fold, snapshot, completed_from FROM awa.counter_folds" \
	"   ORDER BY fold DESC LIMIT 1)," \
	" src AS (" \
	"  SELECT c.queue, c.minute, " AWA_COUNTER_COLUMNS_OF("c") \
	"    FROM awa.counter_fold_counts c WHERE c.fold = (SELECT fold FROM f)" \
	"  UNION ALL" \
	"  SELECT d.queue, d.minute, " AWA_COUNTER_COLUMNS_OF("d") \
	"    FROM awa.counter_deltas d" \
	"    WHERE d.xid >= coalesce((SELECT pg_catalog.pg_snapshot_xmax(snapshot) FROM f), '0'::xid8)" \
	"  UNION ALL" \
	"  SELECT d.queue, d.minute, " AWA_COUNTER_COLUMNS_OF("d") \
	"    FROM awa.counter_deltas d" \
	"    WHERE d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(snapshot) FROM f)))"

/* The start of the minute of t (minutes of the Unix epoch, any time zone). */
#define AWA_MINUTE_USECS	INT64CONST(60000000)

extern TimestampTz awa_counter_minute(TimestampTz t);

#endif							/* AWA_COUNTERS_H */
