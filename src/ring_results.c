/*-------------------------------------------------------------------------
 *
 * ring_results.c
 *		Results of completions and the dependents of a job on the ring
 *		(docs/storage.md, "Step 5: results and dependents on the ring"):
 *		what awa_complete(_many) with results and awa_dependents need there.
 *		Internal like ring.c: every function refuses to run unless
 *		awa.ring_engine is on.
 *
 * A result is written with the completion, in the done row of the attempt
 * (awa.done.result): one INSERT, as awa.ring_complete_many writes its done
 * rows, never an UPDATE of a row written before (the ring's rows are
 * append-only: docs/storage.md).  awa.ring_live_jobs shows it as the
 * job's result while the job is completed, and the history keeps it.
 *
 * Plans as in ring.c: generic, pinned (awa_ring_run), index probes only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "ring.h"

PG_FUNCTION_INFO_V1(awa_ring_complete_results);
PG_FUNCTION_INFO_V1(awa_ring_dependents);

/* Put every row of the last SPI result into fcinfo's materialized result. */
static void
put_spi_rows(FunctionCallInfo fcinfo, int natts)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *values = palloc(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);
	uint64		i;
	int			c;

	for (i = 0; i < SPI_processed; i++)
	{
		for (c = 0; c < natts; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* ---------------------------------------------------------------------
 * awa.ring_complete_results(ids bigint[], run_leases bigint[],
 * results jsonb[]) RETURNS SETOF bigint
 *
 * awa.ring_complete_many, each completion storing results[i] (NULL: none)
 * as job i's result: the attempts (ids[i], run_leases[i]) that are running
 * get a done row 'completed' carrying it; returns their ids.  22023: the
 * arrays not one-dimensional or not all as long as ids; 54000: a result
 * larger than awa.max_args_bytes; 55000: the ring is off.  Nothing is
 * written on an error.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_complete_results(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8ARRAYOID, INT8ARRAYOID, JSONBARRAYOID};
	ArrayType  *ids = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *leases = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *results = PG_GETARG_ARRAYTYPE_P(2);
	int			n = ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids));
	ArrayIterator it;
	Datum		value;
	bool		isnull;
	Datum		values[3];

	awa_ring_check_enabled("awa.ring_complete_results");
	if (ARR_NDIM(ids) > 1 || ARR_NDIM(leases) > 1 || ARR_NDIM(results) > 1 ||
		ArrayGetNItems(ARR_NDIM(leases), ARR_DIMS(leases)) != n ||
		ArrayGetNItems(ARR_NDIM(results), ARR_DIMS(results)) != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids, run_leases and results must be one-dimensional arrays of the same length")));
	it = array_create_iterator(results, 0, NULL);
	while (array_iterate(it, &value, &isnull))
		if (!isnull)
			awa_check_jsonb_size(DatumGetJsonbP(value), "a result");
	array_free_iterator(it);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	values[0] = PointerGetDatum(ids);
	values[1] = PointerGetDatum(leases);
	values[2] = PointerGetDatum(results);
	SPI_connect();
	awa_plan(&plan,
			 "INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at, result)"
			 " SELECT c.slot, d.id, d.lease, 'completed', now(), d.result"
			 " FROM unnest($1, $2, $3) AS d(id, lease, result) CROSS JOIN LATERAL"
			 " (SELECT cl.slot FROM awa.claims cl WHERE cl.job_id = d.id AND cl.run_lease = d.lease"
			 "  LIMIT 1) c"
			 /* hook: rmisc -- in id order, as awa.jobs' bulk calls lock: two calls never deadlock */
			 " ORDER BY d.id, d.lease"
			 " ON CONFLICT DO NOTHING RETURNING job_id",
			 3, (Oid *) argtypes);
	awa_ring_run(plan, values, NULL, InvalidSnapshot, false, SPI_OK_INSERT_RETURNING,
				 "awa.ring_complete_results: done rows");
	put_spi_rows(fcinfo, 1);
	SPI_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * awa.ring_dependents(job_id bigint) RETURNS TABLE (dependent_id, kind,
 * state, satisfied, waiting_for, on_parent_failure)
 *
 * awa_dependents for a ring job: the ring jobs that run after it, in id
 * order, each read through awa.ring_get at the caller's snapshot (kind and
 * state NULL for one the ring no longer holds), whether this job no longer
 * holds it back, how many parents it still waits for and its policy.
 * 22023: job_id NULL; 55000: the ring is off.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_dependents(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INT8OID};
	Datum		id;

	awa_ring_check_enabled("awa.ring_dependents");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job_id must not be null")));
	id = PG_GETARG_DATUM(0);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	awa_plan(&plan,
			 "SELECT d.job_id, j.kind, j.state, d.satisfied, w.waiting_for, w.on_parent_failure"
			 " FROM awa.ring_dependencies d"
			 " LEFT JOIN LATERAL awa.ring_get(d.job_id) j ON true"
			 " LEFT JOIN LATERAL (SELECT w.waiting_for, w.on_parent_failure FROM awa.ring_dependents w"
			 "   WHERE w.job_id = d.job_id) w ON true"
			 " WHERE d.parent_id = $1 ORDER BY d.job_id",
			 1, (Oid *) argtypes);
	awa_ring_run(plan, &id, NULL, InvalidSnapshot, true, SPI_OK_SELECT, "awa.ring_dependents");
	put_spi_rows(fcinfo, 6);
	SPI_finish();
	return (Datum) 0;
}
