/*-------------------------------------------------------------------------
 *
 * engine.c
 *		awa_* functions on the ring (docs/storage.md, "Step 5: how the
 *		switch lands").  A database whose awa.jobs is the ring's view
 *		(created while awa.install_engine was 'ring': src/sql/engine.sql;
 *		schema.c's AWA_SCHEMA_RING_ENGINE) keeps its jobs in the ring; the
 *		awa_* functions call it through here (and engine_claim.c,
 *		engine_deps.c, engine_admin.c, engine_keys.c, engine_rate.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/varbit.h"

#include "awa.h"
#include "batch.h"
#include "ring.h"
#include "engine_admin.h"

/*
 * Read job id's row from awa.ring_live_jobs (the view's columns are
 * awa.jobs', in order), else from awa.ring_history (a finished job whose
 * slot was reclaimed: a unique key's holder kept for its retention), with
 * the newest snapshot of this transaction into values/nulls (desc: awa.jobs'
 * row type; the values live in the current memory context).  False when the
 * ring has no such job.  Connects to SPI itself (nested if the caller is in
 * SPI).
 */
static bool
ring_row_read(int64 id, TupleDesc desc, Datum *values, bool *nulls)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr history_plan = NULL;
	static const Oid types[] = {INT8OID};
	Datum		arg = Int64GetDatum(id);
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext spicxt;
	HeapTuple	tuple = NULL;
	uint64		n;

	SPI_connect();
	awa_plan(&plan, "SELECT * FROM awa.ring_live_jobs j WHERE j.id = $1", 1, (Oid *) types);
	n = awa_ring_run(plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_SELECT, "awa: the ring's row of a job");
	if (n == 0)
	{
		/* hook: rcrash -- a finished job in the history, by its batch's id range (ring_history.c) */
		awa_plan(&history_plan,
				 "SELECT j.* FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) j"
				 " WHERE int8range(h.id_lo, h.id_hi, '[]') @> $1 AND j.id = $1 LIMIT 1",
				 1, (Oid *) types);
		n = awa_ring_run(history_plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						 "awa: the ring's history row of a job");
	}
	if (n == 1)
	{
		if (SPI_tuptable->tupdesc->natts != desc->natts)
			elog(ERROR, "awa: awa.ring_live_jobs has %d columns, awa.jobs %d",
				 SPI_tuptable->tupdesc->natts, desc->natts);
		spicxt = MemoryContextSwitchTo(callercxt);
		tuple = heap_copytuple(SPI_tuptable->vals[0]);
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();
	if (tuple == NULL)
		return false;
	heap_deform_tuple(tuple, desc, values, nulls);
	return true;
}

/* See awa.h. */
bool
awa_engine_ring(void)
{
	return awa_schema_has(AWA_SCHEMA_RING_ENGINE);
}

/* Where the columns of a new job's row are that awa_job_row_values leaves alone. */
typedef struct FreshColumns
{
	AwaJobColumns job;
	int			id;
	int			attempt;
	int			created_at;
	int			errors;
	int			unique_key;
	int			unique_states;
	int			run_lease;
	Datum		empty_errors;	/* '{}'::jsonb[], in TopMemoryContext */
} FreshColumns;

/*
 * Enqueue the job into the ring and set values/nulls (desc's columns,
 * awa.jobs' row type) to its row.  A new job written just as the job says
 * (awa_ring_insert_job_ex's fresh) gets its row from the job itself, as
 * the table's direct insert does (awa_job_row_values: one place decides a
 * new row); a unique key's holder or a job with parents is read back from
 * awa.ring_live_jobs.  Call outside SPI; the values live in the current
 * memory context.
 */
static void
ring_insert_row(AwaJob *job, TupleDesc desc, Datum *values, bool *nulls)
{
	static FreshColumns fc;
	static Oid	fc_type = InvalidOid;
	bool		fresh;
	bool		scheduled;
	int64		id = awa_ring_insert_job_ex(job, &fresh, &scheduled);

	if (!fresh)
	{
		if (!ring_row_read(id, desc, values, nulls))
			elog(ERROR, "awa_insert: job %lld is not in the ring", (long long) id);
		return;
	}
	if (fc_type != desc->tdtypeid || !OidIsValid(fc_type))
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		awa_job_columns(desc, &fc.job);
		fc.id = awa_job_column(desc, "id");
		fc.attempt = awa_job_column(desc, "attempt");
		fc.created_at = awa_job_column(desc, "created_at");
		fc.errors = awa_job_column(desc, "errors");
		fc.unique_key = awa_job_column(desc, "unique_key");
		fc.unique_states = awa_job_column(desc, "unique_states");
		fc.run_lease = awa_job_column(desc, "run_lease");
		fc.empty_errors = PointerGetDatum(construct_empty_array(JSONBOID));
		MemoryContextSwitchTo(old);
		fc_type = desc->tdtypeid;
	}
	memset(nulls, true, sizeof(bool) * desc->natts);
	(void) awa_job_row_values(job, &fc.job, values, nulls);
	/* the ring's own word on the state: due later is scheduled, else available */
	values[fc.job.state] = fc.job.states[scheduled ? AWA_STATE_SCHEDULED : AWA_STATE_AVAILABLE];
	values[fc.id] = Int64GetDatum(id);
	values[fc.attempt] = Int16GetDatum(0);
	values[fc.created_at] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[fc.errors] = fc.empty_errors;
	values[fc.run_lease] = Int64GetDatum(0);
	nulls[fc.id] = nulls[fc.attempt] = nulls[fc.created_at] = false;
	nulls[fc.errors] = nulls[fc.run_lease] = false;
	if (job->unique != NULL)
	{
		values[fc.unique_key] = PointerGetDatum(job->unique->key);
		values[fc.unique_states] = DirectFunctionCall3(bit_in, CStringGetDatum(job->unique->bits),
													   ObjectIdGetDatum(InvalidOid), Int32GetDatum(8));
		nulls[fc.unique_key] = nulls[fc.unique_states] = false;
	}
}

/* See awa.h. */
Datum
awa_engine_insert(AwaJob *job, FunctionCallInfo fcinfo)
{
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa: a function returning a job must return a row type");
	desc = BlessTupleDesc(desc);
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	ring_insert_row(job, desc, values, nulls);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * hook: rmisc -- run a dispatched statement (sql, kept in plan) in SPI; an
 * error raised inside the ring's function it calls leaves out the context
 * lines of the ring's own statements (SQL statement "SELECT awa.ring_...",
 * and any inside it): awa.jobs' functions raise theirs without one, so a
 * user sees the same error on both engines; the caller's context lines
 * (a PL/pgSQL function around the awa_* call) stay.
 */
static void
engine_execute(SPIPlanPtr plan, const char *sql, Datum *values, const char *nulls, long count)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		if (SPI_execute_plan(plan, values, nulls, false, count) < 0)
			elog(ERROR, "awa: the ring's statement failed: %s", sql);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		awa_rethrow_outside_statement(edata, sql);
	}
	PG_END_TRY();
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
	engine_execute(*cache, sql, values, nulls, 1);
	if (SPI_processed > 0)
	{
		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
		if (!*isnull)
			v = SPI_datumTransfer(v, byval, len);
	}
	SPI_finish();
	return v;
}

/* ids read by one statement of put_rows */
#define PUT_ROWS_CHUNK	500

/*
 * The rows of the jobs ids[0..n-1] in the ring, in that order, as fcinfo's
 * materialized SETOF result (awa.jobs' row type).  Caller is in SPI and
 * called InitMaterializedSRF.
 *
 * The rows of the view awa.ring_live_jobs are read PUT_ROWS_CHUNK ids per
 * statement, not one statement per id: the view's plan is dozens of
 * correlated probes of partitioned relations, and starting it cost about
 * 0.8 ms per job (awa_retry_failed of 2,500 jobs: 2.4 s, of which 0.4 s
 * retried them).  A job the view does not show (a finished one in the
 * history) is read by ring_row_read, alone.  Same snapshot rule as
 * ring_row_read: this transaction's newest.
 */
static void
put_rows(FunctionCallInfo fcinfo, const int64 *ids, uint64 n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8ARRAYOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			natts = rsinfo->setDesc->natts;
	Datum	   *v = palloc(sizeof(Datum) * natts);
	bool	   *nl = palloc(sizeof(bool) * natts);
	Datum	   *d = palloc(sizeof(Datum) * (Min(n, PUT_ROWS_CHUNK) + 1));
	uint64		from;

	awa_plan(&plan,
			 "SELECT k.o, j.* FROM unnest($1::int8[]) WITH ORDINALITY AS k(id, o)"
			 " CROSS JOIN LATERAL (SELECT * FROM awa.ring_live_jobs j WHERE j.id = k.id LIMIT 1) j"
			 " ORDER BY k.o",
			 1, (Oid *) types);
	for (from = 0; from < n; from += PUT_ROWS_CHUNK)
	{
		int			m = (int) Min(n - from, PUT_ROWS_CHUNK);
		Datum		arg;
		uint64		got;
		uint64		r = 0;
		int			i;

		for (i = 0; i < m; i++)
			d[i] = Int64GetDatum(ids[from + i]);
		arg = PointerGetDatum(construct_array(d, m, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
		got = awa_ring_run(plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						   "awa: the ring's rows of jobs");
		if (got > 0 && SPI_tuptable->tupdesc->natts != natts + 1)
			elog(ERROR, "awa: awa.ring_live_jobs has %d columns, awa.jobs %d",
				 SPI_tuptable->tupdesc->natts - 1, natts);
		/* the statement's rows stay in SPI_tuptable while the history's reads nest SPI */
		{
			SPITupleTable *rows = SPI_tuptable;
			TupleDesc	rdesc = rows->tupdesc;

			for (i = 0; i < m; i++)
			{
				bool		isnull;

				if (r < got && DatumGetInt64(SPI_getbinval(rows->vals[r], rdesc, 1, &isnull)) == i + 1)
				{
					int			a;

					for (a = 0; a < natts; a++)
						v[a] = SPI_getbinval(rows->vals[r], rdesc, a + 2, &nl[a]);
					r++;
				}
				else if (!ring_row_read(ids[from + i], rsinfo->setDesc, v, nl))
					elog(ERROR, "awa: job %lld is not in the ring", (long long) ids[from + i]);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nl);
			}
		}
	}
}

/*
 * Read the rows of jobs just claimed for their first attempt (run_lease 1,
 * the usual claim: ids[0..n-1]) into SPI_tuptable, in that order, from
 * their receipt and ready row alone.  Such a job has no earlier attempt, so
 * no errors, progress or callback yet, and no beat after the claim: its row
 * in awa.ring_live_jobs is exactly this (01_claim_rows holds the two to the
 * same answer), at two index probes instead of the view's dozens.  The
 * columns are awa.jobs', in order, of its types (checked once).  Caller is
 * in SPI.
 */
static void
first_claims_read(const int64 *ids, int n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8ARRAYOID};
	static bool checked = false;
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));
	Datum		arg;
	int			j;

	awa_plan(&plan,
			 "SELECT r.id, r.kind, r.queue, r.args, 'running'::awa.job_state, r.priority,"
			 " (r.attempt + 1)::smallint, r.max_attempts, r.run_at, c.claimed_at,"
			 " LEAST(c.claimed_at + c.lease, c.claimed_at + r.timeout), c.claimed_at,"
			 " NULL::timestamptz, r.created_at, '{}'::jsonb[], r.metadata, r.tags, r.unique_key,"
			 " r.unique_states, c.run_lease, NULL::jsonb, c.claimed_by, c.lease, r.timeout, NULL::jsonb,"
			 " NULL::bytea, NULL::bigint, NULL::interval, NULL::jsonb, r.group_id, r.concurrency_key"
			 " FROM unnest($1::bigint[]) WITH ORDINALITY AS k(id, ord)"
			 " CROSS JOIN LATERAL (SELECT c.slot, c.run_lease, c.claimed_at, c.deadline_at, c.lease, c.claimed_by"
			 "  FROM awa.claims c WHERE c.job_id = k.id AND c.run_lease = 1 LIMIT 1) c"
			 " CROSS JOIN LATERAL (SELECT r.* FROM awa.ready r"
			 "  WHERE r.id = k.id AND r.run_lease = 0 AND r.slot = c.slot LIMIT 1) r"
			 " ORDER BY k.ord",
			 1, (Oid *) types);
	for (j = 0; j < n; j++)
		d[j] = Int64GetDatum(ids[j]);
	arg = PointerGetDatum(construct_array(d, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (awa_ring_run(plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
					 "awa: the rows of claimed jobs") != (uint64) n)
		elog(ERROR, "awa: a claimed job's receipt or ready row is missing");
	if (!checked)
	{
		TupleDesc	want = RelationNameGetTupleDesc("awa.jobs");
		int			a;

		if (SPI_tuptable->tupdesc->natts != want->natts)
			elog(ERROR, "awa: the claimed rows have %d columns, awa.jobs %d",
				 SPI_tuptable->tupdesc->natts, want->natts);
		for (a = 0; a < want->natts; a++)
			if (TupleDescAttr(SPI_tuptable->tupdesc, a)->atttypid != TupleDescAttr(want, a)->atttypid)
				elog(ERROR, "awa: the claimed rows' column %d is not of awa.jobs' type", a + 1);
		checked = true;
	}
}

/* See awa.h. */
void
awa_engine_claimed_rows(const int64 *ids, const int64 *leases, int n, MemoryContext cxt,
						HeapTuple *tuples, TupleDesc *descs)
{
	static SPIPlanPtr row_plan = NULL;
	static const Oid id_type[] = {INT8OID};
	bool		first = true;
	int			i;

	for (i = 0; i < n; i++)
		if (leases[i] != 1)
			first = false;
	if (n == 0)
		return;
	if (first)
	{
		MemoryContext spicxt;
		TupleDesc	desc;

		first_claims_read(ids, n);
		spicxt = MemoryContextSwitchTo(cxt);
		desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		for (i = 0; i < n; i++)
		{
			tuples[i] = heap_copytuple(SPI_tuptable->vals[i]);
			descs[i] = desc;
		}
		MemoryContextSwitchTo(spicxt);
		return;
	}
	awa_plan(&row_plan, "SELECT * FROM awa.ring_live_jobs j WHERE j.id = $1", 1, (Oid *) id_type);
	for (i = 0; i < n; i++)
	{
		Datum		arg = Int64GetDatum(ids[i]);
		MemoryContext spicxt;

		if (awa_ring_run(row_plan, &arg, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						 "awa_claim: the ring's row of a claimed job") != 1)
			elog(ERROR, "awa_claim: job %lld is not in the ring", (long long) ids[i]);
		spicxt = MemoryContextSwitchTo(cxt);
		tuples[i] = heap_copytuple(SPI_tuptable->vals[0]);
		descs[i] = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		MemoryContextSwitchTo(spicxt);
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
	engine_execute(*cache, sql, values, nulls, 0);
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
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *values;
	bool	   *nulls;
	int			i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	values = palloc(sizeof(Datum) * rsinfo->setDesc->natts);
	nulls = palloc(sizeof(bool) * rsinfo->setDesc->natts);
	/* hook: rdelta -- one delta row per key for the whole call, not per job (batch.h) */
	awa_batch_begin();
	for (i = 0; i < n; i++)
	{
		ring_insert_row(&jobs[i], rsinfo->setDesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	awa_batch_end();
	return (Datum) 0;
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
awa_engine_complete_many(Datum ids, Datum leases)
{
	/*
	 * awa.ring_complete_many's body, without the SQL call around it: a
	 * statement and a set-returning function's tuplestore fewer per
	 * completion (docs/storage.md, "Step 5: claim and complete, fewer
	 * statements")
	 */
	return awa_ring_complete_direct(ids, leases);
}

/* See awa.h. */
bool
awa_engine_complete(Datum id, Datum lease)
{
	Datum		ids = PointerGetDatum(construct_array(&id, 1, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
													  TYPALIGN_DOUBLE));
	Datum		leases = PointerGetDatum(construct_array(&lease, 1, INT8OID, sizeof(int64),
														 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	return awa_engine_complete_many(ids, leases) == 1;
}

/* See awa.h. */
Datum
awa_engine_fail(Datum id, Datum lease, text *error, int64 error_bytes, Interval *retry_in, bool terminal,
				bool *isnull)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8OID, INT8OID, TEXTOID, BOOLOID, INTERVALOID, INT8OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = id;
	values[1] = lease;
	values[2] = PointerGetDatum(error);
	values[3] = BoolGetDatum(!terminal);
	values[4] = IntervalPGetDatum(retry_in);
	if (retry_in == NULL)
		nulls[4] = 'n';
	values[5] = Int64GetDatum(error_bytes);
	if (error_bytes < 0)
		nulls[5] = 'n';
	return engine_value(&plan, "SELECT awa.ring_fail($1, $2, " AWA_RING_ERROR_SQL("$3", "$6") ", $4, $5)",
						6, types, values, nulls, true, sizeof(Oid), isnull);
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
