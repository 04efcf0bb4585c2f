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

static const char *stats_sql =
"WITH c AS ("
"  SELECT queue,"
"    count(*) FILTER (WHERE state IN ('scheduled', 'available', 'running',"
"                     'retryable', 'waiting_external')) AS total_queued,"
"    count(*) FILTER (WHERE state = 'scheduled') AS scheduled,"
"    count(*) FILTER (WHERE state = 'available') AS available,"
"    count(*) FILTER (WHERE state = 'retryable') AS retryable,"
"    count(*) FILTER (WHERE state = 'running') AS running,"
"    count(*) FILTER (WHERE state = 'waiting_external') AS waiting_external,"
"    count(*) FILTER (WHERE state = 'failed') AS failed,"
"    count(*) FILTER (WHERE state = 'cancelled') AS cancelled,"
"    count(*) FILTER (WHERE state = 'completed'"
"                     AND finalized_at > now() - interval '1 hour') AS completed_last_hour,"
"    min(run_at) FILTER (WHERE state = 'available') AS oldest"
"  FROM awa.jobs GROUP BY queue)"
" SELECT coalesce(c.queue, m.queue),"
"   coalesce(c.total_queued, 0), coalesce(c.scheduled, 0),"
"   coalesce(c.available, 0), coalesce(c.retryable, 0),"
"   coalesce(c.running, 0), coalesce(c.waiting_external, 0),"
"   coalesce(c.failed, 0), coalesce(c.cancelled, 0),"
"   coalesce(c.completed_last_hour, 0),"
"   CASE WHEN c.oldest IS NOT NULL THEN greatest(extract(epoch FROM now() - c.oldest), 0)::float8 END,"
"   coalesce(m.paused, false)"
" FROM c FULL JOIN awa.queue_meta m ON m.queue = c.queue"
" ORDER BY 1";

/*
 * awa_queue_stats() RETURNS TABLE (queue, total_queued, scheduled,
 *		available, retryable, running, waiting_external, failed, cancelled,
 *		completed_last_hour, lag_seconds, paused)
 */
Datum
awa_queue_stats(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		i;
	int			ret;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	SPI_connect();
	ret = SPI_execute_plan(awa_plan(&plan, stats_sql, 0, NULL), NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa_queue_stats: query failed: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}
