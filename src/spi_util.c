/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *		Small helpers around SPI shared by the awa_* functions: turning a
 *		row of awa.jobs read through SPI into the function's result, and
 *		the errors every function raises the same way.  Statements
 *		themselves are stmt.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "funcapi.h"
#include "utils/resowner.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "awa.h"

/*
 * Build a heap tuple of the job row type from a tuple read through SPI whose
 * leading columns are the job's columns (RETURNING * of awa.jobs, possibly
 * followed by extra columns).  Dropped columns of the row type are skipped,
 * so a future release that drops a column keeps working.
 */
static HeapTuple
job_tuple(HeapTuple tuple, TupleDesc spidesc, TupleDesc jobdesc)
{
	Datum	   *values = palloc(sizeof(Datum) * jobdesc->natts);
	bool	   *nulls = palloc(sizeof(bool) * jobdesc->natts);
	int			src = 0;
	int			i;

	for (i = 0; i < jobdesc->natts; i++)
	{
		if (TupleDescAttr(jobdesc, i)->attisdropped)
		{
			values[i] = (Datum) 0;
			nulls[i] = true;
			continue;
		}
		src++;
		if (src > spidesc->natts)
			elog(ERROR, "awa: job row has fewer columns than expected");
		values[i] = SPI_getbinval(tuple, spidesc, src, &nulls[i]);
	}
	return heap_form_tuple(jobdesc, values, nulls);
}

/*
 * Whether a tuple of spidesc can be stored as a row of jobdesc unchanged:
 * as many columns, none dropped, of the same types.
 */
static bool
same_layout(TupleDesc spidesc, TupleDesc jobdesc)
{
	int			i;

	if (spidesc->natts != jobdesc->natts)
		return false;
	for (i = 0; i < jobdesc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(jobdesc, i);

		if (a->attisdropped || a->atttypid != TupleDescAttr(spidesc, i)->atttypid)
			return false;
	}
	return true;
}

/*
 * A composite Datum of the row type jobdesc (awa.jobs, or any row type
 * whose leading columns the SPI tuple holds in order), built in cxt — the
 * caller's context, outside SPI — including the flattening of any TOASTed
 * values, for functions that return exactly one row.
 */
Datum
awa_job_datum(HeapTuple tuple, TupleDesc spidesc, TupleDesc jobdesc,
			  MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	HeapTuple	result = job_tuple(tuple, spidesc, jobdesc);
	Datum		d = HeapTupleGetDatum(result);

	MemoryContextSwitchTo(old);
	return d;
}

/*
 * Materialize the job rows of an SPI result as the set returned by a
 * SETOF awa.jobs function.  When order is given, order[i] is the index in
 * tuptable of the i-th row to return.  Must run before SPI_finish.
 */
void
awa_store_jobs(FunctionCallInfo fcinfo, SPITupleTable *tuptable,
			   uint64 ntuples, const int *order)
{
	uint64		i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (i = 0; i < ntuples; i++)
	{
		uint64		k = order ? (uint64) order[i] : i;

		awa_put_job(fcinfo, tuptable->vals[k], tuptable->tupdesc);
	}
}

/*
 * Append one job row read through SPI to the result set of a SETOF
 * awa.jobs function whose tuplestore InitMaterializedSRF has set up.
 */
void
awa_put_job(FunctionCallInfo fcinfo, HeapTuple tuple, TupleDesc spidesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HeapTuple	t;

	/* the same columns in the same places: store the row as it is */
	if (same_layout(spidesc, rsinfo->setDesc))
	{
		tuplestore_puttuple(rsinfo->setResult, tuple);
		return;
	}
	t = job_tuple(tuple, spidesc, rsinfo->setDesc);
	tuplestore_puttuple(rsinfo->setResult, t);
	heap_freetuple(t);
}

/*
 * True while awa's own INSERT of prepared rows runs (awa_insert,
 * awa_insert_many): its rows are validated, given their state and woken
 * already, so the row trigger of awa.jobs (copy.c) lets them pass.
 */
bool		awa_rows_prepared = false;

/*
 * Run a saved INSERT of job rows that awa has validated and given their
 * state already: the BEFORE INSERT trigger of awa.jobs (copy.c), which does
 * that for plain INSERT and COPY, lets them pass.  tcount is not applied:
 * the INSERT runs to its end (see awa_stmt_run on statement triggers).
 */
int
awa_execute_prepared(SPIPlanPtr plan, Datum *values, const char *nulls,
					 long tcount)
{
	volatile int ret = 0;

	awa_rows_prepared = true;
	PG_TRY();
	{
		/* to its end: see awa_stmt_run on statement triggers */
		ret = SPI_execute_plan(plan, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		awa_rows_prepared = false;
	}
	PG_END_TRY();
	return ret;
}

/* The error every function raises for a job id that does not exist. */
void
awa_job_not_found(int64 job_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("job %lld does not exist", (long long) job_id)));
}

/*
 * Refuse, with a short error naming the function, a call that would write
 * on a hot standby or in a read-only transaction (25006), instead of
 * letting the write fail deep inside one of awa's statements, whose text
 * would fill the error's context.
 */
void
awa_check_writable(const char *fn)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("%s cannot run on a hot standby", fn),
				 errdetail("A standby is read-only: jobs are enqueued, claimed and changed on the primary."),
				 errhint("Connect to the primary server.")));
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("%s cannot run in a read-only transaction", fn),
				 errhint("Call it in a read-write transaction (see default_transaction_read_only).")));
}

/* Reject a NULL argument that needs a value, naming the parameter. */
void
awa_check_not_null(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
}

/*
 * Turn a row read through SPI (RETURNING *) of the table whose row type the
 * function returns into the function's composite result, allocated in cxt
 * (outside SPI).  Dropped columns of the row type are skipped.
 */
Datum
awa_row_datum(FunctionCallInfo fcinfo, HeapTuple tuple, TupleDesc spidesc,
			  MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa: return type must be a row type");
	desc = BlessTupleDesc(desc);
	MemoryContextSwitchTo(old);
	/* builds and flattens the row in cxt, so it outlives SPI_finish */
	return awa_job_datum(tuple, spidesc, desc, cxt);
}

/*
 * Run fn(arg) in its own subtransaction, the way PL/pgSQL runs a block with
 * an EXCEPTION clause.  Returns NULL when it succeeded, else its error (in
 * the caller's memory context), everything it did rolled back.  A query
 * cancel (statement_timeout, pg_cancel_backend) is thrown on, not caught.
 * The caller must not use SPI_tuptable across the call.
 */
ErrorData *
awa_run_isolated(void (*fn) (void *), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

/*
 * Throw edata again without the context lines of the statement sql and of
 * everything inside it (SQL statement "...", a function it called): what a
 * user sees of an error that awa's own statement met is the message and
 * the context of the user's call around it.  Does not return.
 */
void
awa_rethrow_outside_statement(ErrorData *edata, const char *sql)
{
	char	   *line = psprintf("SQL statement \"%s\"", sql);
	char	   *at = edata->context ? strstr(edata->context, line) : NULL;

	if (at != NULL)
	{
		at += strlen(line);
		if (*at == '\n')
			at++;
		edata->context = *at ? pstrdup(at) : NULL;
	}
	ReThrowError(edata);
}
