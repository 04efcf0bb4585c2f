/*-------------------------------------------------------------------------
 *
 * engine_rate.c
 *		A queue's rate on the ring (docs/storage.md, "Step 5: awa_claim on
 *		the ring"): ratelimit.c rebuilds a rate's window in shared memory
 *		from the claims the jobs show after a restart or a new rate; on a
 *		database whose jobs are in the ring it reads them here, from the
 *		ring's receipts.  A file apart from engine_claim.c (which calls
 *		ring_flow.c, which calls ratelimit.c), reached through a hook
 *		pointer, so that the C files call each other in no circle.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "awa.h"
#include "engine_claim.h"
#include "ratelimit.h"
#include "ring.h"

/*
 * awa_rate_seed_ring (ratelimit.h): a queue's claims since from, as the
 * ring's receipts show them (their claimed_at is the claim's time, its
 * rate's reservation: ring_claim.c), the newest max_claims of them, oldest
 * first, equal times counted together.  Caller is in SPI.
 */
static int
ring_rate_seed(const char *queue, TimestampTz from, int max_claims, TimestampTz **t, int **count)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[3];
	uint64		rows;
	uint64		i;
	int			n = 0;

	/*
	 * Every attempt of the queue in the ring (its ready rows, through the
	 * claim index by queue) whose receipt (one probe of its key) is newer
	 * than from: one claim each, at its claimed_at.
	 */
	awa_plan(&plan,
			 "SELECT x.claimed_at FROM awa.ready r CROSS JOIN LATERAL"
			 " (SELECT cl.claimed_at FROM awa.claims cl WHERE cl.job_id = r.id"
			 "  AND cl.run_lease = r.run_lease + 1 AND cl.slot = r.slot LIMIT 1) x"
			 " WHERE r.queue = $1 AND r.run_at > '-infinity' AND x.claimed_at > $2"
			 " ORDER BY x.claimed_at DESC LIMIT $3",
			 3, (Oid *) types);
	values[0] = CStringGetTextDatum(queue);
	values[1] = TimestampTzGetDatum(from);
	values[2] = Int32GetDatum(max_claims);
	rows = awa_ring_run(plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
						"awa_claim: a queue's recent claims on the ring");
	*t = palloc(sizeof(TimestampTz) * Max(rows, 1));
	*count = palloc(sizeof(int) * Max(rows, 1));
	/* newest first in the result: store oldest first, equal times counted together */
	for (i = rows; i-- > 0;)
	{
		bool		isnull;
		TimestampTz at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull));

		if (n > 0 && (*t)[n - 1] == at)
			(*count)[n - 1]++;
		else
		{
			(*t)[n] = at;
			(*count)[n++] = 1;
		}
	}
	return n;
}

/* See engine_claim.h. */
void
awa_engine_rate_init(void)
{
	awa_rate_seed_ring = ring_rate_seed;
}
