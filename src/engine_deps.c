/*-------------------------------------------------------------------------
 *
 * engine_deps.c
 *		Results, dependencies and groups of the awa_* functions on the ring
 *		engine (docs/storage.md, "Step 5: results and dependents on the
 *		ring"), called by one dispatch line each in worker.c and groups.c
 *		as engine.c's functions are: awa_complete and awa_complete_many with
 *		results (awa.ring_complete_results, ring_results.c), awa_group_stats
 *		and awa_group_on_finish (awa.ring_group_stats and
 *		awa.ring_group_on_finish, ring_deps.c).  awa_parent_results and
 *		awa_dependents are SQL functions: on the ring engine they are
 *		declared again over the ring's (src/sql/engine_deps.sql).  Inserts
 *		with after and group_id, and the release or cancel of dependents,
 *		are the ring's own (ring_deps.c's hooks of awa.ring_insert and its
 *		trigger on awa.done).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "deps.h"
#include "engine_deps.h"

/* See engine_deps.h. */
int64
awa_engine_complete_results(Datum ids, Datum leases, ArrayType *results)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8ARRAYOID, INT8ARRAYOID, JSONBARRAYOID};
	Datum		values[3];
	bool		isnull;
	int64		n;

	if (results == NULL)
		return awa_engine_complete_many(ids, leases);
	values[0] = ids;
	values[1] = leases;
	values[2] = PointerGetDatum(results);
	SPI_connect();
	awa_plan(&plan, "SELECT count(*) FROM awa.ring_complete_results($1, $2, $3)", 3, (Oid *) types);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "awa: completing ring jobs with results failed");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return n;
}

/* See engine_deps.h. */
bool
awa_engine_complete_result(Datum id, Datum lease, Jsonb *result)
{
	int64		i = DatumGetInt64(id);
	int64		l = DatumGetInt64(lease);
	Datum		r = JsonbPGetDatum(result);

	if (result == NULL)
		return awa_engine_complete(id, lease);
	return awa_engine_complete_results(awa_int8_array(&i, 1), awa_int8_array(&l, 1),
									   construct_array(&r, 1, JSONBOID, -1, false, TYPALIGN_INT)) == 1;
}

/* See engine_deps.h. */
Datum
awa_engine_group_stats(FunctionCallInfo fcinfo, Datum group_id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			natts;
	Datum	   *values;
	bool	   *nulls;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	natts = rsinfo->setDesc->natts;
	values = palloc(sizeof(Datum) * natts);
	nulls = palloc(sizeof(bool) * natts);
	SPI_connect();
	awa_plan(&plan, "SELECT * FROM awa.ring_group_stats($1)", 1, (Oid *) types);
	if (SPI_execute_plan(plan, &group_id, NULL, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "awa_group_stats: no result from the ring");
	if (SPI_tuptable->tupdesc->natts != natts)
		elog(ERROR, "awa: awa.ring_group_stats has %d columns, awa_group_stats %d",
			 SPI_tuptable->tupdesc->natts, natts);
	heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
	/* put before SPI_finish frees the row (the tuplestore copies it) */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	SPI_finish();
	return (Datum) 0;
}

/* See engine_deps.h. */
Datum
awa_engine_group_on_finish(FunctionCallInfo fcinfo)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, INT4OID, JSONBOID};

	return awa_engine_call(fcinfo, &plan, "SELECT awa.ring_group_on_finish($1, $2, $3, $4, $5, $6, $7)",
						   7, types, true, sizeof(int64));
}
