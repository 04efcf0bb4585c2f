/*-------------------------------------------------------------------------
 *
 * stats.c
 *		awa_queue_stats: per-queue counts by state, lag and pause state.
 *
 * Counts are exact for what the caller's snapshot sees, including its own
 * uncommitted jobs.  They come from the job counters (counters.c): the
 * newest fold plus the deltas written since, whatever the number of jobs.
 * completed_last_hour adds the counters' completions by minute and by
 * second after the second an hour ago, and counts that second's part
 * inside the hour from the retention index.  lag_seconds reads the oldest
 * available job of each priority through the claim index.
 * Against a schema without counters (an awa.so newer than the installed
 * schema) the counts are taken from awa.jobs itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "counters.h"
#include "ring_obs.h"			/* hook: robs */

PG_FUNCTION_INFO_V1(awa_queue_stats);

/*
 * Without counters: each branch reads only the rows of its states, through the partial index
 * that covers them (claim, running, settled, finalized), so the cost grows
 * with the backlog, the running and failed jobs and the last hour's
 * completions, not with the completed jobs that retention keeps.
 */
static const char recount_sql[] =
"WITH c AS ("
"  SELECT queue, state, count(*) AS n,"
"         min(run_at) FILTER (WHERE state = 'available') AS oldest"
"    FROM awa.jobs WHERE state IN " AWA_STATES_WAITING_SQL
"    GROUP BY queue, state"
"  UNION ALL"
"  SELECT queue, state, count(*), NULL FROM awa.jobs WHERE state = 'running'"
"    GROUP BY queue, state"
"  UNION ALL"
"  SELECT queue, state, count(*), NULL FROM awa.jobs"
"    WHERE state IN " AWA_STATES_RETRY_SQL " GROUP BY queue, state"
"  UNION ALL"
"  SELECT queue, state, count(*), NULL FROM awa.jobs"
"    WHERE state = 'completed' AND finalized_at > now() - interval '1 hour'"
"    GROUP BY queue, state),"
" q AS ("
"  SELECT queue,"
"    sum(n) FILTER (WHERE state IN " AWA_STATES_LIVE_SQL ") AS total_queued,"
"    sum(n) FILTER (WHERE state = 'scheduled') AS scheduled,"
"    sum(n) FILTER (WHERE state = 'available') AS available,"
"    sum(n) FILTER (WHERE state = 'retryable') AS retryable,"
"    sum(n) FILTER (WHERE state = 'running') AS running,"
"    sum(n) FILTER (WHERE state = 'waiting_external') AS waiting_external,"
"    sum(n) FILTER (WHERE state = 'failed') AS failed,"
"    sum(n) FILTER (WHERE state = 'cancelled') AS cancelled,"
"    sum(n) FILTER (WHERE state = 'completed') AS completed_last_hour,"
"    min(oldest) AS oldest"
"  FROM c GROUP BY queue)"
" SELECT coalesce(q.queue, m.queue),"
"   coalesce(q.total_queued, 0)::bigint, coalesce(q.scheduled, 0)::bigint,"
"   coalesce(q.available, 0)::bigint, coalesce(q.retryable, 0)::bigint,"
"   coalesce(q.running, 0)::bigint, coalesce(q.waiting_external, 0)::bigint,"
"   coalesce(q.failed, 0)::bigint, coalesce(q.cancelled, 0)::bigint,"
"   coalesce(q.completed_last_hour, 0)::bigint,"
"   CASE WHEN q.oldest IS NOT NULL"
"     THEN greatest(extract(epoch FROM now()) - extract(epoch FROM q.oldest), 0)::float8 END,"
"   coalesce(m.paused, false)"
" FROM q FULL JOIN awa.queue_meta m ON m.queue = q.queue"
" ORDER BY 1";

/*
 * With counters.  $1: the start of the second of T = now() - 1 hour (S),
 * $2: T, $3: the end of T's minute, $4: S + 1 second.  DONE is a query of
 * (queue, n): the jobs completed in the last hour; LAG the lag_seconds of
 * queue c from awa.jobs' table (TABLE_LAG; on the ring engine, whose
 * awa.jobs is the ring's view, NULL: the ring's lag comes from ring_obs.c).
 */
#define TABLE_LAG \
	"CASE WHEN c.available > 0 THEN" \
	"     (SELECT greatest(extract(epoch FROM now()) - extract(epoch FROM min(o.run_at)), 0)::float8" \
	"        FROM pg_catalog.generate_series(1, 4) AS p(priority)," \
	"        LATERAL (SELECT j.run_at FROM awa.jobs j" \
	"          WHERE j.queue = c.queue AND j.priority = p.priority AND j.state = 'available'" \
	"          ORDER BY j.run_at LIMIT 1) o) END"
#define COUNTER_STATS_SQL(DONE, LAG) \
	AWA_COUNTER_SOURCE_SQL "," \
	" q AS (SELECT queue, sum(scheduled) AS scheduled, sum(available) AS available," \
	"   sum(running) AS running, sum(retryable) AS retryable, sum(failed) AS failed," \
	"   sum(cancelled) AS cancelled, sum(waiting_external) AS waiting_external" \
	"   FROM src GROUP BY queue)," \
	" done AS (" DONE ")," \
	" c AS (SELECT coalesce(q.queue, done.queue) AS queue," \
	"   coalesce(q.scheduled, 0)::bigint AS scheduled, coalesce(q.available, 0)::bigint AS available," \
	"   coalesce(q.running, 0)::bigint AS running, coalesce(q.retryable, 0)::bigint AS retryable," \
	"   coalesce(q.failed, 0)::bigint AS failed, coalesce(q.cancelled, 0)::bigint AS cancelled," \
	"   coalesce(q.waiting_external, 0)::bigint AS waiting_external," \
	"   coalesce(done.n, 0)::bigint AS completed_last_hour" \
	"   FROM q FULL JOIN done ON done.queue = q.queue)" \
	" SELECT coalesce(c.queue, m.queue)," \
	"   coalesce(c.scheduled + c.available + c.running + c.retryable + c.waiting_external, 0)::bigint," \
	"   coalesce(c.scheduled, 0), coalesce(c.available, 0), coalesce(c.retryable, 0)," \
	"   coalesce(c.running, 0), coalesce(c.waiting_external, 0), coalesce(c.failed, 0)," \
	"   coalesce(c.cancelled, 0), coalesce(c.completed_last_hour, 0)," \
	"   " LAG "," \
	"   coalesce(m.paused, false)" \
	" FROM (SELECT * FROM c WHERE scheduled <> 0 OR available <> 0 OR running <> 0" \
	"   OR retryable <> 0 OR failed <> 0 OR cancelled <> 0 OR waiting_external <> 0" \
	"   OR completed_last_hour <> 0) c" \
	" FULL JOIN awa.queue_meta m ON m.queue = c.queue" \
	" ORDER BY 1"

/*
 * hook: ring -- completed jobs of the ring (awa.done, through its partial
 * index done_completed_idx) finalized in RANGE, by the queue of the ready
 * row of their attempt (one probe each): the ring's part of the edge second
 * (and of the last hour when counted from the jobs).  docs/storage.md,
 * "Step 4: reading the ring, counters".
 */
#define RING_COMPLETED_IN(RANGE) \
	"  UNION ALL" \
	"  SELECT r.queue, count(*) FROM awa.done dn" \
	"   CROSS JOIN LATERAL (SELECT r.queue FROM awa.ready r WHERE r.id = dn.job_id" \
	"     AND r.run_lease = dn.run_lease - 1 AND r.slot = dn.slot LIMIT 1) r" \
	"   WHERE dn.state = 'completed' AND " RANGE " GROUP BY r.queue"

/*
 * completed_last_hour from the counters: the minutes after T's and the
 * seconds after S in T's minute (as of the fold), the deltas of seconds
 * after S, and the part of S after T counted from the jobs (through
 * jobs_finalized_idx, which includes queue: an index-only scan of at most
 * one second of completions).
 */
#define DONE_FROM_COUNTERS(TABLE) \
	"SELECT queue, sum(n) AS n FROM (" \
	"  SELECT queue, completed AS n FROM awa.counter_completed" \
	"   WHERE seconds = 60 AND bucket >= $3" \
	"  UNION ALL" \
	"  SELECT queue, completed FROM awa.counter_completed" \
	"   WHERE seconds = 1 AND bucket > $1 AND bucket < $3" \
	"  UNION ALL" \
	"  SELECT queue, completed FROM d WHERE completed_second > $1" \
	TABLE( \
	"  UNION ALL" \
	"  SELECT queue, count(*) FROM awa.jobs" \
	"   WHERE state = 'completed' AND finalized_at > $2 AND finalized_at < $4 GROUP BY queue") \
	RING_COMPLETED_IN("dn.finalized_at > $2 AND dn.finalized_at < $4") ") x" \
	" GROUP BY queue"

/*
 * The same from the jobs alone, when the fold no longer has T's minute
 * (T written as now() - 1 hour: a generic plan costed with $2 would read
 * every completed job).
 */
#define DONE_FROM_JOBS(TABLE) \
	"SELECT queue, sum(n) AS n FROM (" \
	"  SELECT NULL::text AS queue, 0::bigint AS n WHERE false" \
	TABLE( \
	"  UNION ALL" \
	"  SELECT queue, count(*) FROM awa.jobs" \
	"   WHERE state = 'completed' AND finalized_at > now() - interval '1 hour' GROUP BY queue") \
	RING_COMPLETED_IN("dn.finalized_at > now() - interval '1 hour'") ") x" \
	" GROUP BY queue"

/*
 * hook: rjit -- the part of a statement that reads awa.jobs' table: kept
 * (WITH_TABLE), or left out (NO_TABLE) in a database on the ring engine,
 * whose awa.jobs is the ring's view (its table is empty there), so that
 * the statement reads the ring's relations by their indexes, never the
 * view (docs/storage.md, "Step 5: reading the ring's view fast").
 */
#define WITH_TABLE(sql)	sql
#define NO_TABLE(sql)	""

/*
 * awa_queue_stats() RETURNS TABLE (queue, total_queued, scheduled,
 *		available, retryable, running, waiting_external, failed, cancelled,
 *		completed_last_hour, lag_seconds, paused)
 *
 * One row per queue that has jobs in a state counted here (completed: in
 * the last hour) or settings in awa.queue_meta, by name.  Exact at the
 * caller's snapshot.
 */
Datum
awa_queue_stats(PG_FUNCTION_ARGS)
{
	static AwaStmt recount = AWA_QUERY("awa_queue_stats: query",
		recount_sql,
		0, InvalidOid);
	static AwaStmt newest = AWA_QUERY("awa_queue_stats: newest fold",
		"SELECT completed_from FROM awa.counter_folds ORDER BY fold DESC LIMIT 1",
		0, InvalidOid);
	/* [ring engine][from the jobs] */
	static AwaStmt stats[2][2] = {
		{
			AWA_QUERY("awa_queue_stats: counters",
					  COUNTER_STATS_SQL(DONE_FROM_COUNTERS(WITH_TABLE), TABLE_LAG),
					  4, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID),
			AWA_QUERY("awa_queue_stats: counters",
					  COUNTER_STATS_SQL(DONE_FROM_JOBS(WITH_TABLE), TABLE_LAG),
					  4, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID),
		},
		{
			AWA_QUERY("awa_queue_stats: counters (ring engine)",
					  COUNTER_STATS_SQL(DONE_FROM_COUNTERS(NO_TABLE), "NULL::float8"),
					  4, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID),
			AWA_QUERY("awa_queue_stats: counters (ring engine)",
					  COUNTER_STATS_SQL(DONE_FROM_JOBS(NO_TABLE), "NULL::float8"),
					  4, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID),
		},
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	SPI_connect();
	if (!awa_schema_has(AWA_SCHEMA_COUNTERS))
		awa_stmt_run(&recount, NULL, NULL, 0);
	else
	{
		/* completed_last_hour: finalized_at > T, as the recount has it */
		TimestampTz t = GetCurrentTransactionStartTimestamp() - USECS_PER_HOUR;
		TimestampTz sec = awa_counter_bucket(t, AWA_SECOND_USECS);
		TimestampTz min = awa_counter_bucket(t, AWA_MINUTE_USECS);
		Datum		args[4];
		bool		isnull = true;
		Datum		from = (Datum) 0;
		int			which;

		/* all read-only: one snapshot, the caller's */
		if (awa_stmt_run(&newest, NULL, NULL, 1) == 1)
			from = awa_stmt_value(0, "completed_from", &isnull);
		/* the fold's awa.counter_completed must hold T's minute */
		which = (!isnull && DatumGetTimestampTz(from) > min) ? 1 : 0;
		args[0] = TimestampTzGetDatum(sec);
		args[1] = TimestampTzGetDatum(t);
		args[2] = TimestampTzGetDatum(min + AWA_MINUTE_USECS);
		args[3] = TimestampTzGetDatum(sec + AWA_SECOND_USECS);
		awa_stmt_run(&stats[awa_engine_ring() ? 1 : 0][which], args, NULL, 0);
	}
	{
		/* hook: robs -- the lag of ring jobs (ring_obs.c), which runs statements of its own */
		SPITupleTable *rows = SPI_tuptable;
		uint64		n = SPI_processed;
		bool		ring = awa_ring_stats_in_use();

		for (i = 0; i < n; i++)
			tuplestore_puttuple(rsinfo->setResult,
								ring ? awa_ring_stats_lag(rows->vals[i], rows->tupdesc, 1, 4, 11)
								: rows->vals[i]);
	}
	SPI_finish();
	return (Datum) 0;
}
