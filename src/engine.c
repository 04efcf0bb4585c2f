/*-------------------------------------------------------------------------
 *
 * engine.c
 *		awa_* functions on the ring (docs/storage.md, "Step 5: how the
 *		switch lands").  A database whose awa.jobs is the ring's view
 *		(created while awa.install_engine was 'ring': src/sql/engine.sql;
 *		schema.c's AWA_SCHEMA_RING_ENGINE) keeps its jobs in the ring; the
 *		awa_* functions that are on the ring already call it through here,
 *		the others raise 0A000 (awa_engine_not_yet).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"

#include "awa.h"
#include "ring.h"

/*
 * The row of job id in the shape of the calling function's result type
 * (awa.jobs' row type), read from awa.ring_live_jobs (the view's columns
 * are awa.jobs', in order) with the newest snapshot of this transaction.
 * NULL (*isnull) when the ring has no such job.  Call outside SPI.
 */
static Datum
ring_job_row(int64 id, FunctionCallInfo fcinfo, bool *isnull)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID};
	MemoryContext callercxt = CurrentMemoryContext;
	TupleDesc	desc;
	Datum		arg = Int64GetDatum(id);
	Datum		result = (Datum) 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa: a function returning a job must return a row type");
	SPI_connect();
	awa_plan(&plan, "SELECT * FROM awa.ring_live_jobs j WHERE j.id = $1", 1, (Oid *) types);
	*isnull = awa_ring_run(plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						   "awa: the ring's row of a job") == 0;
	if (!*isnull)
	{
		int			natts = SPI_tuptable->tupdesc->natts;
		Datum	   *values = palloc(sizeof(Datum) * natts);
		bool	   *nulls = palloc(sizeof(bool) * natts);
		MemoryContext spicxt;

		if (natts != desc->natts)
			elog(ERROR, "awa: awa.ring_live_jobs has %d columns, awa.jobs %d", natts, desc->natts);
		heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
		spicxt = MemoryContextSwitchTo(callercxt);
		result = HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();
	return result;
}

/* See awa.h. */
bool
awa_engine_ring(void)
{
	return awa_schema_has(AWA_SCHEMA_RING_ENGINE);
}

/* See awa.h. */
void
awa_engine_not_yet(const char *fn)
{
	if (awa_engine_ring())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s is not on the ring engine yet", fn),
				 errdetail("This database keeps its jobs in the ring (awa.install_engine was ring).")));
}

/* See awa.h. */
Datum
awa_engine_insert(AwaJob *job, FunctionCallInfo fcinfo)
{
	int64		id = awa_ring_insert_job(job);
	bool		isnull;
	Datum		row = ring_job_row(id, fcinfo, &isnull);

	if (isnull)
		elog(ERROR, "awa_insert: job %lld is not in the ring", (long long) id);
	return row;
}
