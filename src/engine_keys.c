/*-------------------------------------------------------------------------
 *
 * engine_keys.c
 *		awa_key_stats on either engine (docs/storage.md, "Step 5: per-key
 *		limits and rates on the ring"): the same rows, read from awa.jobs
 *		(the table) or from the ring's live jobs (a database whose jobs are
 *		in the ring: awa_engine_ring()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "awa.h"
#include "engine_admin.h"

PG_FUNCTION_INFO_V1(awa_key_stats);

/* The rule of each (key, kind) and the key's rate window: both engines' (keylimit.c's rule order). */
#define KEY_STATS_RULE_SQL \
	" LEFT JOIN LATERAL (SELECT l.max_running, l.ordered, l.rate_max_claims, l.rate_period" \
	"  FROM awa.key_limits l" \
	"  WHERE k.concurrency_key OPERATOR(pg_catalog.~~) l.pattern AND (l.kind IS NULL OR l.kind = k.kind)" \
	"  ORDER BY l.kind IS NULL, pg_catalog.strpos(l.pattern, '%') > 0 OR pg_catalog.strpos(l.pattern, '_') > 0," \
	"   pg_catalog.octet_length(l.pattern) DESC, l.pattern COLLATE \"C\" LIMIT 1) rule ON true" \
	" LEFT JOIN LATERAL awa.key_rate_window(k.concurrency_key, rule.rate_max_claims, rule.rate_period) w ON true" \
	" ORDER BY 1, 2"
#define KEY_STATS_COLUMNS_SQL \
	"SELECT k.concurrency_key, k.kind, coalesce(r.n, 0), k.waiting," \
	" coalesce(rule.max_running, 1), coalesce(rule.ordered, false)," \
	" coalesce(r.n, 0) >= coalesce(rule.max_running, 1)," \
	" rule.rate_max_claims, rule.rate_period, w.window_claims, w.next_slot_at"

/*
 * awa_key_stats(pattern text DEFAULT NULL) RETURNS TABLE (concurrency_key,
 * kind, running, waiting, max_running, ordered, at_limit, rate_max_claims,
 * rate_period, window_claims, next_slot_at)
 *
 * One row per (concurrency_key, kind) with live jobs, keys LIKE pattern
 * (NULL: every key), ordered by key and kind: running, the key's running
 * jobs (any kind); waiting, its jobs of this kind in scheduled, available
 * or retryable; the rule's max_running and ordered (no rule: 1, false);
 * at_limit, running >= max_running; the rule's rate and the key's window
 * (awa.key_rate_window).  On the table: through awa.jobs' key indexes; on
 * the ring: the jobs of awa.ring_key_live (every ring job with a key that
 * may be live), each one's state by index probes (RING_JOB_STATE_SQL), the
 * running jobs of a key summed over its kinds' groups.  No errors of its
 * own.
 */
Datum
awa_key_stats(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr table_plan = NULL;
	static SPIPlanPtr ring_plan = NULL;
	static const Oid types[] = {TEXTOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[1];
	char		nulls[1];
	bool		ring = awa_engine_ring();
	SPIPlanPtr	plan;
	uint64		n;
	uint64		i;

	values[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	if (!ring)
		plan = awa_plan(&table_plan,
						KEY_STATS_COLUMNS_SQL
						" FROM (SELECT j.concurrency_key, j.kind,"
						"   count(*) FILTER (WHERE j.state IN ('scheduled', 'available', 'retryable')) AS waiting"
						"  FROM awa.jobs j"
						"  WHERE j.concurrency_key IS NOT NULL AND j.state IN ('scheduled', 'available', 'running',"
						"   'retryable', 'waiting_external')"
						"   AND ($1 IS NULL OR j.concurrency_key OPERATOR(pg_catalog.~~) $1)"
						"  GROUP BY j.concurrency_key, j.kind) k"
						" LEFT JOIN LATERAL (SELECT pg_catalog.count(*) AS n FROM awa.jobs j"
						"  WHERE j.concurrency_key = k.concurrency_key AND j.state = 'running') r ON true"
						KEY_STATS_RULE_SQL,
						1, types);
	else
		plan = awa_plan(&ring_plan,
						KEY_STATS_COLUMNS_SQL
						" FROM (SELECT j.concurrency_key, j.kind,"
						"   count(*) FILTER (WHERE j.state IN ('scheduled', 'available', 'retryable')) AS waiting,"
						"   (pg_catalog.sum(count(*) FILTER (WHERE j.state = 'running'))"
						"    OVER (PARTITION BY j.concurrency_key))::bigint AS n"
						"  FROM awa.ring_key_live l CROSS JOIN LATERAL " RING_JOB_STATE_SQL("l.job_id") " j"
						"  WHERE j.concurrency_key IS NOT NULL AND j.state IN ('scheduled', 'available', 'running',"
						"   'retryable', 'waiting_external')"
						"   AND ($1 IS NULL OR l.concurrency_key OPERATOR(pg_catalog.~~) $1)"
						"  GROUP BY j.concurrency_key, j.kind) k"
						" CROSS JOIN LATERAL (SELECT k.n) r"
						KEY_STATS_RULE_SQL,
						1, types);
	if (SPI_execute_plan(plan, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa_key_stats: reading the keys failed");
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		Datum		row[11];
		bool		rownulls[11];

		if (SPI_tuptable->tupdesc->natts != 11)
			elog(ERROR, "awa_key_stats: expected 11 columns");
		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, rownulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	SPI_finish();
	return (Datum) 0;
}
