/*-------------------------------------------------------------------------
 *
 * ring_read.c
 *		Reading the ring (docs/storage.md, "Step 4: reading the ring,
 *		counters"): awa.ring_get, a ring job by id as a row of awa.jobs.
 *
 * The job is assembled by the view awa.ring_jobs (src/sql/awa.sql, "The
 * ring: reading the ring, counters"): the newest ready row of the id, the
 * job's newest receipt and newest done row, and the errors of its failed
 * attempts -- each a correlated probe of the (id, run_lease, slot) key of
 * every slot.  Here that view is read for one id with the plan pinned
 * like ring.c's (index probes only, whatever the statistics say).
 *
 * The counters of ring jobs are written by the view's companion trigger,
 * awa.ring_count_changes() (PL/pgSQL, same section), not here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"

#include "awa.h"
#include "ring.h"

PG_FUNCTION_INFO_V1(awa_ring_get);

/*
 * awa.ring_get(id bigint) returns awa.jobs
 *
 * The ring job with this id (its newest attempt), or NULL if the ring has
 * none.  55000 while awa.ring_engine is off.  STRICT: NULL id, NULL.
 */
Datum
awa_ring_get(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	Datum		values[1];
	Datum		row = (Datum) 0;
	bool		isnull = true;

	awa_ring_check_enabled("awa.ring_get");
	values[0] = PG_GETARG_DATUM(0);

	SPI_connect();
	awa_plan(&plan,
			 "SELECT ROW(j.*)::awa.jobs FROM awa.ring_jobs j WHERE j.id = $1",
			 1, argtypes);
	if (awa_ring_run(plan, values, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa.ring_get: read") > 0)
	{
		row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			row = SPI_datumTransfer(row, false, -1);
	}
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(row);
}
