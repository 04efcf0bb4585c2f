/*-------------------------------------------------------------------------
 *
 * ring_due.c
 *		When the next scheduled row of a ring queue, of several, or of any
 *		comes due: what a blocking claim that found nothing sleeps until
 *		(ring_wait.c's procedure, awa_claim's loop through engine_claim.c).
 *		Internal like ring.c.  A file of its own so that the C files call
 *		each other in no circle (scripts/lint.sh).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "floor.h"
#include "ring.h"

/* See ring.h. */
long
awa_ring_due_ms(Datum *values, const char *nulls, bool several)
{
	static SPIPlanPtr due_plan = NULL;
	static SPIPlanPtr due_many_plan = NULL;
	static SPIPlanPtr due_any_plan = NULL;
	static const Oid due_types[] = {TEXTOID};
	static const Oid due_many_types[] = {TEXTARRAYOID};
	Datum		due;
	bool		due_null;

	/* the earliest scheduled row of the queue: the index's first row per priority */
	awa_plan(&due_plan,
			 "SELECT pg_catalog.min(f.run_at) FROM pg_catalog.generate_series(1, "
			 CppAsString2(AWA_FLOOR_PRIORITIES) ") AS p(p) CROSS JOIN LATERAL"
			 " (SELECT s.run_at FROM awa.scheduled s WHERE s.queue = $1 AND s.priority = p.p::smallint"
			 "  ORDER BY s.run_at LIMIT 1) f",
			 1, due_types);
	/* hook: rclaim -- of several queues: the same per queue; of every queue: the due index's first row */
	awa_plan(&due_many_plan,
			 "SELECT pg_catalog.min(f.run_at) FROM pg_catalog.unnest($1) AS q(q)"
			 " CROSS JOIN pg_catalog.generate_series(1, "
			 CppAsString2(AWA_FLOOR_PRIORITIES) ") AS p(p) CROSS JOIN LATERAL"
			 " (SELECT s.run_at FROM awa.scheduled s WHERE s.queue = q.q AND s.priority = p.p::smallint"
			 "  ORDER BY s.run_at LIMIT 1) f",
			 1, due_many_types);
	awa_plan(&due_any_plan,
			 "SELECT s.run_at FROM awa.scheduled s ORDER BY s.run_at LIMIT 1",
			 0, NULL);
	if (!several)
		awa_ring_run(due_plan, values, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa.ring_claim_wait: next due");
	else if (nulls[0] == 'n')
		awa_ring_run(due_any_plan, NULL, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa.ring_claim_wait: next due");
	else
		awa_ring_run(due_many_plan, values, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa.ring_claim_wait: next due");
	if (SPI_processed == 0)
		return -1;
	due = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &due_null);
	if (!due_null)
	{
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz at = DatumGetTimestampTz(due);

		return at <= now ? 0 : (long) Min((at - now + 999) / 1000, 3600 * 1000);
	}
	return -1;
}
