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
#include "utils/array.h"

#include "awa.h"
#include "ring.h"
#include "engine_admin.h"

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

/*
 * Run a kept statement (cache, sql: nargs parameters of types) in SPI and
 * return its first column of its first row (*isnull; no row: NULL),
 * copied out of SPI.  byval/len: the value's type's.
 */
static Datum
engine_value(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types, Datum *values,
			 const char *nulls, bool byval, int len, bool *isnull)
{
	Datum		v = (Datum) 0;

	SPI_connect();
	awa_plan(cache, sql, nargs, (Oid *) types);
	*isnull = true;
	if (SPI_execute_plan(*cache, values, nulls, false, 1) < 0)
		elog(ERROR, "awa: the ring's statement failed: %s", sql);
	if (SPI_processed > 0)
	{
		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
		if (!*isnull)
			v = SPI_datumTransfer(v, byval, len);
	}
	SPI_finish();
	return v;
}

/*
 * The rows of the jobs ids[0..n-1] in the ring, in that order, as fcinfo's
 * materialized SETOF result (awa.jobs' row type).  Caller is in SPI and
 * called InitMaterializedSRF.
 */
static void
put_rows(FunctionCallInfo fcinfo, const int64 *ids, uint64 n)
{
	static SPIPlanPtr row_plan = NULL;
	static const Oid id_type[] = {INT8OID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			natts = rsinfo->setDesc->natts;
	Datum	   *v = palloc(sizeof(Datum) * natts);
	bool	   *nl = palloc(sizeof(bool) * natts);
	uint64		i;

	awa_plan(&row_plan, "SELECT * FROM awa.ring_live_jobs j WHERE j.id = $1", 1, (Oid *) id_type);
	for (i = 0; i < n; i++)
	{
		Datum		arg = Int64GetDatum(ids[i]);

		if (awa_ring_run(row_plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						 "awa: the ring's row of a job") != 1)
			elog(ERROR, "awa: job %lld is not in the ring", (long long) ids[i]);
		if (SPI_tuptable->tupdesc->natts != natts)
			elog(ERROR, "awa: awa.ring_live_jobs has %d columns, awa.jobs %d",
				 SPI_tuptable->tupdesc->natts, natts);
		heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, v, nl);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nl);
	}
}

/*
 * Run a kept statement whose rows' first column is a job id (in the order
 * the caller's result should have) and return the row of each id in the
 * ring as fcinfo's materialized SETOF result.
 */
static Datum
engine_rows(FunctionCallInfo fcinfo, SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types,
			Datum *values, const char *nulls)
{
	uint64		n;
	uint64		i;
	int64	   *ids;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	awa_plan(cache, sql, nargs, (Oid *) types);
	if (SPI_execute_plan(*cache, values, nulls, false, 0) < 0)
		elog(ERROR, "awa: the ring's statement failed: %s", sql);
	n = SPI_processed;
	ids = palloc(sizeof(int64) * (n + 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	put_rows(fcinfo, ids, n);
	SPI_finish();
	return (Datum) 0;
}

/* See awa.h. */
Datum
awa_engine_insert_many(AwaJob *jobs, int n, FunctionCallInfo fcinfo)
{
	int64	   *ids = palloc(sizeof(int64) * (n + 1));
	int			i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (i = 0; i < n; i++)
		ids[i] = awa_ring_insert_job(&jobs[i]);
	SPI_connect();
	put_rows(fcinfo, ids, n);
	SPI_finish();
	return (Datum) 0;
}

/* See awa.h. */
Datum
awa_engine_claim(FunctionCallInfo fcinfo, text *queue, text *worker, int32 batch, Interval *lease)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTOID, INT4OID, INTERVALOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = PointerGetDatum(queue);
	values[1] = Int32GetDatum(batch);
	values[2] = IntervalPGetDatum(lease);
	values[3] = PointerGetDatum(worker);
	if (worker == NULL)
		nulls[3] = 'n';
	return engine_rows(fcinfo, &plan, "SELECT c.id FROM awa.ring_claim($1, $2, $3, $4) c",
					   4, types, values, nulls);
}

/* See awa.h. */
Datum
awa_engine_cancel(FunctionCallInfo fcinfo, Datum id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID};

	return engine_rows(fcinfo, &plan, "SELECT $1 WHERE awa.ring_cancel($1)", 1, types, &id, NULL);
}

/* See awa.h. */
Datum
awa_engine_retry(FunctionCallInfo fcinfo, Datum id)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID};

	return engine_rows(fcinfo, &plan, "SELECT $1 WHERE awa.ring_retry($1)", 1, types, &id, NULL);
}

/* See awa.h. */
int64
awa_engine_complete_many(Datum ids, Datum leases, bool results)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	bool		isnull;

	if (results)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a completion's result is not on the ring engine yet")));
	values[0] = ids;
	values[1] = leases;
	return DatumGetInt64(engine_value(&plan, "SELECT count(*) FROM awa.ring_complete_many($1, $2)",
									  2, types, values, NULL, true, sizeof(int64), &isnull));
}

/* See awa.h. */
bool
awa_engine_complete(Datum id, Datum lease, bool result)
{
	Datum		ids = PointerGetDatum(construct_array(&id, 1, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
													  TYPALIGN_DOUBLE));
	Datum		leases = PointerGetDatum(construct_array(&lease, 1, INT8OID, sizeof(int64),
														 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	return awa_engine_complete_many(ids, leases, result) == 1;
}

/* See awa.h. */
Datum
awa_engine_fail(Datum id, Datum lease, text *error, Interval *retry_in, bool terminal, bool *isnull)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID, INT8OID, TEXTOID, BOOLOID, INTERVALOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = id;
	values[1] = lease;
	values[2] = PointerGetDatum(error);
	values[3] = BoolGetDatum(!terminal);
	values[4] = IntervalPGetDatum(retry_in);
	if (retry_in == NULL)
		nulls[4] = 'n';
	return engine_value(&plan, "SELECT awa.ring_fail($1, $2, to_jsonb($3), $4, $5)",
						5, types, values, nulls, true, sizeof(Oid), isnull);
}

/* See awa.h. */
bool
awa_engine_snooze(Datum id, Datum lease, Interval *delay)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID, INT8OID, INTERVALOID};
	Datum		values[3];
	bool		isnull;
	Datum		v;

	values[0] = id;
	values[1] = lease;
	values[2] = IntervalPGetDatum(delay);
	v = engine_value(&plan, "SELECT awa.ring_snooze($1, $2, $3)", 3, types, values, NULL, true, 1, &isnull);
	return !isnull && DatumGetBool(v);
}

/* See awa.h. */
Datum
awa_engine_heartbeat(Datum ids, Datum leases)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	bool		isnull;

	values[0] = ids;
	values[1] = leases;
	/* the ids not running under their lease, in the order given */
	return engine_value(&plan,
						"SELECT coalesce(array_agg(u.i ORDER BY u.o) FILTER (WHERE b.at IS NULL), '{}')"
						" FROM unnest($1, $2) WITH ORDINALITY AS u(i, l, o)"
						" CROSS JOIN LATERAL (SELECT awa.ring_heartbeat(u.i, u.l) AS at) b",
						2, types, values, NULL, false, -1, &isnull);
}

/* See awa.h. */
bool
awa_engine_progress(Datum id, Datum lease, Datum progress)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID, INT8OID, JSONBOID};
	Datum		values[3];
	bool		isnull;
	Datum		v;

	values[0] = id;
	values[1] = lease;
	values[2] = progress;
	v = engine_value(&plan, "SELECT awa.ring_heartbeat($1, $2, NULL, $3) IS NOT NULL",
					 3, types, values, NULL, true, 1, &isnull);
	return !isnull && DatumGetBool(v);
}

/* See awa.h. */
Datum
awa_engine_call(FunctionCallInfo fcinfo, SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types,
				bool byval, int len)
{
	Datum	   *values = palloc(sizeof(Datum) * (nargs + 1));
	char	   *nulls = palloc(nargs + 1);
	bool		isnull;
	Datum		v;
	int			i;

	for (i = 0; i < nargs; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	v = engine_value(cache, sql, nargs, types, values, nulls, byval, len, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	return v;
}

/* hook: radmin -- engine_rows and engine_value for engine_admin.c (engine_admin.h) */
Datum
awa_engine_rows(FunctionCallInfo fcinfo, SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types,
				Datum *values, const char *nulls)
{
	return engine_rows(fcinfo, cache, sql, nargs, types, values, nulls);
}

Datum
awa_engine_value(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types, Datum *values,
				 const char *nulls, bool byval, int len, bool *isnull)
{
	return engine_value(cache, sql, nargs, types, values, nulls, byval, len, isnull);
}
