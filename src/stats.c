/*-------------------------------------------------------------------------
 *
 * stats.c
 *		awa_queue_stats: per-queue counts by state, lag and pause state.
 *
 * Counts are exact for what the caller's snapshot sees, including its own
 * uncommitted jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/tuplestore.h"

#include "awa.h"

PG_FUNCTION_INFO_V1(awa_queue_stats);

/*
 * Each branch reads only the rows of its states, through the partial index
 * that covers them (claim, running, settled, finalized), so the cost grows
 * with the backlog, the running and failed jobs and the last hour's
 * completions, not with the completed jobs that retention keeps.
 */
static const char stats_sql[] =
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
 * awa_queue_stats() RETURNS TABLE (queue, total_queued, scheduled,
 *		available, retryable, running, waiting_external, failed, cancelled,
 *		completed_last_hour, lag_seconds, paused)
 */
Datum
awa_queue_stats(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_QUERY("awa_queue_stats: query",
		stats_sql,
		0, InvalidOid);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	SPI_connect();
	awa_stmt_run(&stmt, NULL, NULL, 0);
	for (i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}
