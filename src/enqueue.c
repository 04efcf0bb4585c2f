/*-------------------------------------------------------------------------
 *
 * enqueue.c
 *		The one enqueue path: what a new job row holds, and how it is
 *		written -- directly (fastinsert.c), or through SPI.
 *
 * awa_insert, awa_insert_many and the periodic enqueuer (schedule.c) hand
 * validated jobs (awa_validate_job) to awa_enqueue or awa_enqueue_many.
 * Every row's columns are decided by awa_job_row (jobrow.c), its state by
 * awa_job_initial_state (job.c), and every written row is announced by
 * awa_job_enqueued (job.c), whichever way it is written:
 *	- the direct path: heap and index inserts without the executor, when
 *	  awa.jobs has no trigger but awa's, no row-level security, and the
 *	  caller may INSERT into it (fastinsert.c);
 *	- otherwise one saved INSERT through SPI a job, or, for a batch without
 *	  unique jobs, one INSERT ... SELECT FROM unnest() of prepared rows;
 *	- a unique job always through SPI: INSERT ... ON CONFLICT on its key,
 *	  or the row of the job that holds the key.
 * COPY and plain INSERT into awa.jobs go through the row trigger of
 * copy.c, which uses the same column map and rules.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "nodes/params.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "deps.h"
#include "ring.h"

/* Announce a row just written from job in this state (job.c). */
static void
announce(const AwaJob *job, AwaJobState state)
{
	awa_job_enqueued(text_to_cstring(job->queue), state,
					 job->has_run_at ? job->run_at : GetCurrentTransactionStartTimestamp());
}

/* ---------------------------------------------------------------------
 * Through SPI, one job
 * ---------------------------------------------------------------------
 */

/* Parameters of awa's INSERT of a job; concurrency_key is the last of them. */
#define JOB_PARAMS			12

/*
 * The parameters of awa's INSERT of a job as a column map: $1 kind, $2
 * queue, $3 args, $4 state (text), ..., $10 timeout, $11 group_id, $12
 * concurrency_key.
 */
static AwaJobColumns param_cols = {InvalidOid, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

/*
 * Which INSERT the installed schema takes: 0 before 0.3.0 (no timeout), 1
 * with timeout, 2 with group_id and concurrency_key too (both 0.3.0).
 */
static int
insert_variant(void)
{
	if (awa_schema_has(AWA_SCHEMA_GROUPS) && awa_schema_has(AWA_SCHEMA_KEYS))
		return 2;
	return awa_schema_has(AWA_SCHEMA_LEASES) ? 1 : 0;
}

/*
 * The JOB_PARAMS parameters of awa's INSERT of a job into values and nulls
 * (awa_job_row); returns the job's state.
 */
static AwaJobState
job_values(AwaJob *job, Datum *values, char *nulls)
{
	bool		isnull[JOB_PARAMS];
	AwaJobState state;
	int			i;

	if (param_cols.states[0] == (Datum) 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		for (i = 0; i < AWA_NUM_JOB_STATES; i++)
			param_cols.states[i] = CStringGetTextDatum(awa_state_label((AwaJobState) i));
		MemoryContextSwitchTo(old);
	}
	state = awa_job_row(job, &param_cols, values, isnull);
	for (i = 0; i < JOB_PARAMS; i++)
		nulls[i] = isnull[i] ? 'n' : ' ';
	return state;
}

/*
 * Write one validated job through SPI and return the SPI tuple of its row
 * (valid until SPI_finish).  The caller is connected to SPI.  A job whose
 * run_at is in the future is scheduled, otherwise available; the row is
 * announced (awa_job_enqueued).
 */
static HeapTuple
insert_job(AwaJob *job, TupleDesc *desc)
{
	static SPIPlanPtr plans[3] = {NULL, NULL, NULL};	/* [insert_variant()] */
	static const Oid argtypes[] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID,
	INT2OID, INT2OID, TIMESTAMPTZOID, TEXTARRAYOID, JSONBOID, INTERVALOID, TEXTOID, TEXTOID};
	Datum		values[JOB_PARAMS];
	char		nulls[JOB_PARAMS];
	AwaJobState state = job_values(job, values, nulls);
	int			variant = insert_variant();
	int			ret;

	ret = awa_execute_prepared(awa_plan(&plans[variant], variant == 2 ?
										"INSERT INTO awa.jobs (kind, queue, args, state, priority,"
										" max_attempts, run_at, tags, metadata, timeout, group_id, concurrency_key)"
										" VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9, $10, $11, $12)"
										" RETURNING *" : variant == 1 ?
										"INSERT INTO awa.jobs (kind, queue, args, state, priority,"
										" max_attempts, run_at, tags, metadata, timeout)"
										" VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9, $10)"
										" RETURNING *" :
										"INSERT INTO awa.jobs (kind, queue, args, state, priority,"
										" max_attempts, run_at, tags, metadata)"
										" VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9)"
										" RETURNING *",
										JOB_PARAMS, argtypes),
							   values, nulls, 1);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "awa: inserting a job failed: %s", SPI_result_code_string(ret));

	announce(job, state);

	*desc = SPI_tuptable->tupdesc;
	return SPI_tuptable->vals[0];
}

/*
 * Insert a job that holds a unique key, or return the row of the job that
 * already holds it (the insert then writes nothing).  Concurrent inserts of
 * the same key wait for each other in the unique index: exactly one wins.
 */
static HeapTuple
insert_unique_job(AwaJob *job, TupleDesc *desc, bool *inserted)
{
	static SPIPlanPtr plans[3] = {NULL, NULL, NULL};	/* [insert_variant()] */
	static AwaStmt holder = AWA_STMT("awa: looking up a unique job", SPI_OK_SELECT,
									 "SELECT * FROM awa.jobs WHERE unique_key = $1"
									 " AND awa.unique_state_held(unique_states, state)",
									 1, BYTEAOID);
	static const Oid argtypes[] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID,
		INT2OID, INT2OID, TIMESTAMPTZOID, TEXTARRAYOID, JSONBOID, INTERVALOID,
	TEXTOID, TEXTOID, BYTEAOID, TEXTOID};
	Datum		values[JOB_PARAMS + 2];
	char		nulls[JOB_PARAMS + 2];
	AwaJobState state = job_values(job, values, nulls);
	int			variant = insert_variant();
	int			tries;
	bytea	   *legacy = job->unique->legacy;

	/* a job enqueued before 0.3.0 may hold the key in its old form */
	if (legacy != NULL)
	{
		Datum		legacy_value = PointerGetDatum(legacy);

		if (awa_stmt_run(&holder, &legacy_value, NULL, 1) == 1)
		{
			*desc = SPI_tuptable->tupdesc;
			return SPI_tuptable->vals[0];
		}
	}

	values[JOB_PARAMS] = PointerGetDatum(job->unique->key);
	values[JOB_PARAMS + 1] = CStringGetTextDatum(job->unique->bits);
	nulls[JOB_PARAMS] = nulls[JOB_PARAMS + 1] = ' ';

	/* the holder can leave its unique states between the two statements */
	for (tries = 0; tries < 10; tries++)
	{
		int			ret;

		ret = awa_execute_prepared(awa_plan(&plans[variant], variant == 2 ?
										"INSERT INTO awa.jobs (kind, queue, args, state, priority,"
										" max_attempts, run_at, tags, metadata, timeout, group_id, concurrency_key, unique_key,"
										" unique_states)"
										" VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9, $10, $11,"
										" $12, $13, $14::bit(8))"
										" ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL"
										" AND awa.unique_state_held(unique_states, state) DO NOTHING"
										" RETURNING *" : variant == 1 ?
										"INSERT INTO awa.jobs (kind, queue, args, state, priority,"
										" max_attempts, run_at, tags, metadata, timeout, unique_key, unique_states)"
										" VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9, $10, $13, $14::bit(8))"
										" ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL"
										" AND awa.unique_state_held(unique_states, state) DO NOTHING"
										" RETURNING *" :
										"INSERT INTO awa.jobs (kind, queue, args, state, priority,"
										" max_attempts, run_at, tags, metadata, unique_key, unique_states)"
										" VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9, $13, $14::bit(8))"
										" ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL"
										" AND awa.unique_state_held(unique_states, state) DO NOTHING"
										" RETURNING *",
										JOB_PARAMS + 2, argtypes),
							   values, nulls, 1);
		if (ret != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "awa: inserting a unique job failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == 1)
		{
			announce(job, state);
			*inserted = true;
			break;
		}
		if (awa_stmt_run(&holder, &values[JOB_PARAMS], NULL, 1) == 1)
			break;
	}
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not insert or find the job holding unique key"),
				 errhint("Retry the transaction.")));
	*desc = SPI_tuptable->tupdesc;
	return SPI_tuptable->vals[0];
}

/* ---------------------------------------------------------------------
 * The enqueue path
 * ---------------------------------------------------------------------
 */

/* Begin enqueueing; in_spi: the caller is connected to SPI already. */
void
awa_enqueue_begin(AwaEnqueue *e, bool in_spi)
{
	memset(e, 0, sizeof(AwaEnqueue));
	e->in_spi = in_spi;
}

/*
 * Write one validated job: directly when it is not unique and the direct
 * path can be used, else through SPI (connecting to it if the caller is
 * not).  Its row is then e->slot (direct; valid until the next write) or
 * e->tuple with e->desc (SPI; valid until awa_enqueue_end): use
 * awa_enqueued_datum or awa_enqueued_put.  Once SPI is connected,
 * CurrentMemoryContext is SPI's until awa_enqueue_end.  On the ring engine
 * the job goes into the ring and neither is set (e->inserted says whether
 * it is a new job).
 */
void
awa_enqueue(AwaEnqueue *e, AwaJob *job)
{
	e->slot = NULL;
	e->tuple = NULL;
	e->inserted = false;
	/*
	 * A database whose jobs are in the ring (engine.c): the job goes there
	 * (a periodic job's fire, schedule.c), and no row is kept (awa_insert
	 * and awa_insert_many go to the ring before they get here).
	 */
	if (awa_engine_ring())
	{
		bool		scheduled;

		(void) awa_ring_insert_job_ex(job, &e->inserted, &scheduled);
		return;
	}
	/* deps.c: a job that runs after others -- lock them, maybe wait */
	if (job->deps != NULL)
	{
		if (!e->in_spi && !e->connected)
		{
			SPI_connect();
			e->connected = true;
		}
		awa_deps_before_insert(job);
	}
	if (job->unique == NULL)
	{
		e->slot = awa_fast_insert_slot(job);
		if (e->slot != NULL)
		{
			e->inserted = true;
			if (job->deps != NULL)
				awa_deps_after_insert(e, job);
			return;
		}
	}
	if (!e->in_spi && !e->connected)
	{
		SPI_connect();
		e->connected = true;
	}
	if (job->unique)
		e->tuple = insert_unique_job(job, &e->desc, &e->inserted);
	else
	{
		e->tuple = insert_job(job, &e->desc);
		e->inserted = true;
	}
	if (job->deps != NULL)
		awa_deps_after_insert(e, job);
}

/*
 * The row just written as a composite Datum in cxt, of the result row type
 * of fcinfo's function (awa.jobs).
 */
Datum
awa_enqueued_datum(AwaEnqueue *e, FunctionCallInfo fcinfo, MemoryContext cxt)
{
	TupleDesc	jobdesc;
	MemoryContext old;
	Datum		d;

	if (e->slot != NULL)
	{
		old = MemoryContextSwitchTo(cxt);
		d = ExecFetchSlotHeapTupleDatum(e->slot);
		MemoryContextSwitchTo(old);
		return d;
	}
	if (e->tuple == NULL)
		elog(ERROR, "awa: no row is kept of a job enqueued into the ring");
	/* the row type (a copy of awa.jobs' descriptor) only off the direct path */
	if (get_call_result_type(fcinfo, NULL, &jobdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa: return type must be a row type");
	return awa_job_datum(e->tuple, e->desc, jobdesc, cxt);
}

/* Append the row just written to the result set of fcinfo's function. */
void
awa_enqueued_put(AwaEnqueue *e, FunctionCallInfo fcinfo)
{
	if (e->slot != NULL)
		tuplestore_puttupleslot(((ReturnSetInfo *) fcinfo->resultinfo)->setResult, e->slot);
	else if (e->tuple == NULL)
		elog(ERROR, "awa: no row is kept of a job enqueued into the ring");
	else
	{
		awa_put_job(fcinfo, e->tuple, e->desc);
		SPI_freetuptable(SPI_tuptable);
	}
}

/* End enqueueing: disconnect from SPI if awa_enqueue connected. */
void
awa_enqueue_end(AwaEnqueue *e)
{
	if (e->connected)
		SPI_finish();
	e->connected = false;
}

/*
 * Receiver of the rows RETURNING gives insert_rows: each goes into the
 * function's result set, in the order of insertion (the input order, as
 * INSERT ... SELECT FROM unnest inserts in array order).  Dropped columns of
 * the job row type, absent from RETURNING *, are NULL in the result.
 */
typedef struct JobsReceiver
{
	DestReceiver pub;
	Tuplestorestate *tstore;
	TupleDesc	jobdesc;
	Datum	   *values;
	bool	   *nulls;
} JobsReceiver;

static bool
jobs_receive(TupleTableSlot *slot, DestReceiver *self)
{
	JobsReceiver *r = (JobsReceiver *) self;
	int			src = 0;
	int			i;

	slot_getallattrs(slot);
	for (i = 0; i < r->jobdesc->natts; i++)
	{
		if (TupleDescAttr(r->jobdesc, i)->attisdropped || src >= slot->tts_nvalid)
		{
			r->values[i] = (Datum) 0;
			r->nulls[i] = true;
			continue;
		}
		r->values[i] = slot->tts_values[src];
		r->nulls[i] = slot->tts_isnull[src];
		src++;
	}
	tuplestore_putvalues(r->tstore, r->jobdesc, r->values, r->nulls);
	return true;
}

static void
jobs_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
jobs_shutdown(DestReceiver *self)
{
}

/*
 * Write n validated jobs, none unique, through SPI in one INSERT ... SELECT
 * FROM unnest() of rows made by awa_job_row, their rows going straight
 * into the result set of fcinfo's function, in input order.  For when the
 * direct path cannot be used.
 */
static void
insert_rows(AwaJob *jobs, int n, FunctionCallInfo fcinfo)
{
	static SPIPlanPtr plans[3] = {NULL, NULL, NULL};	/* [variant, as insert_variant()] */
	static Oid	plan_argtype = InvalidOid;
	static AwaJobColumns cols;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	jobdesc = rsinfo->setDesc;
	Oid			arraytype;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *rows;
	Datum	   *values;
	bool	   *nulls;
	AwaJobState *states;
	ParamListInfo params;
	SPIExecuteOptions options;
	JobsReceiver receiver;
	int			variant;
	int			ret;
	int			i;

	awa_job_columns(jobdesc, &cols);
	arraytype = get_array_type(jobdesc->tdtypeid);
	if (!OidIsValid(arraytype))
		elog(ERROR, "awa_insert_many: no array type for awa.jobs");
	get_typlenbyvalalign(jobdesc->tdtypeid, &typlen, &typbyval, &typalign);

	rows = palloc(sizeof(Datum) * n);
	states = palloc(sizeof(AwaJobState) * n);
	values = palloc(sizeof(Datum) * jobdesc->natts);
	nulls = palloc(sizeof(bool) * jobdesc->natts);
	for (i = 0; i < n; i++)
	{
		memset(nulls, true, sizeof(bool) * jobdesc->natts);
		states[i] = awa_job_row(&jobs[i], &cols, values, nulls);
		rows[i] = HeapTupleGetDatum(heap_form_tuple(jobdesc, values, nulls));
	}

	params = makeParamList(1);
	params->params[0].value = PointerGetDatum(construct_array(rows, n, jobdesc->tdtypeid,
															  typlen, typbyval, typalign));
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = arraytype;

	/* the inserted rows go straight from RETURNING into the result set */
	receiver.pub.receiveSlot = jobs_receive;
	receiver.pub.rStartup = jobs_startup;
	receiver.pub.rShutdown = jobs_shutdown;
	receiver.pub.rDestroy = jobs_shutdown;
	receiver.pub.mydest = DestNone;
	receiver.tstore = rsinfo->setResult;
	receiver.jobdesc = jobdesc;
	receiver.values = values;
	receiver.nulls = nulls;
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.dest = (DestReceiver *) &receiver;

	SPI_connect();

	/*
	 * The parameter is an array of the job row type, whose OID changes when
	 * the extension is dropped and created again: prepare anew then.
	 */
	if (plan_argtype != arraytype)
	{
		for (i = 0; i < 3; i++)
			if (plans[i] != NULL)
			{
				SPI_freeplan(plans[i]);
				plans[i] = NULL;
			}
	}
	plan_argtype = arraytype;
	variant = cols.group_id >= 0 && cols.concurrency_key >= 0 ? 2 : cols.timeout >= 0 ? 1 : 0;
	awa_plan(&plans[variant], variant == 2 ?
			 "INSERT INTO awa.jobs (kind, queue, args, state, priority,"
			 " max_attempts, run_at, tags, metadata, timeout, group_id, concurrency_key)"
			 " SELECT kind, queue, args, state, priority, max_attempts,"
			 " run_at, tags, metadata, timeout, group_id, concurrency_key FROM pg_catalog.unnest($1)"
			 " RETURNING *" : variant == 1 ?
			 "INSERT INTO awa.jobs (kind, queue, args, state, priority,"
			 " max_attempts, run_at, tags, metadata, timeout)"
			 " SELECT kind, queue, args, state, priority, max_attempts,"
			 " run_at, tags, metadata, timeout FROM pg_catalog.unnest($1)"
			 " RETURNING *" :
			 "INSERT INTO awa.jobs (kind, queue, args, state, priority,"
			 " max_attempts, run_at, tags, metadata)"
			 " SELECT kind, queue, args, state, priority, max_attempts,"
			 " run_at, tags, metadata FROM pg_catalog.unnest($1)"
			 " RETURNING *",
			 1, &arraytype);
	awa_rows_prepared = true;
	PG_TRY();
	{
		ret = SPI_execute_plan_extended(plans[variant], &options);
	}
	PG_FINALLY();
	{
		awa_rows_prepared = false;
	}
	PG_END_TRY();
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != (uint64) n)
		elog(ERROR, "awa_insert_many: insert failed: %s", SPI_result_code_string(ret));

	for (i = 0; i < n; i++)
		announce(&jobs[i], states[i]);
	SPI_finish();
}

/*
 * Write n validated jobs, their rows going into the result set of fcinfo's
 * function (InitMaterializedSRF done) in input order.  Without unique jobs:
 * all directly, or all in one INSERT.  With some: one at a time, in input
 * order, each as awa_enqueue writes it (a unique job whose key is held,
 * also by an earlier element, gives the holder's row).
 */
void
awa_enqueue_many(AwaJob *jobs, int n, FunctionCallInfo fcinfo)
{
	Tuplestorestate *tstore = ((ReturnSetInfo *) fcinfo->resultinfo)->setResult;
	TupleTableSlot *slot;
	AwaEnqueue	e;
	bool		any_unique = false;
	int			i;

	if (n == 0)
		return;
	/* unique jobs, and jobs that run after others (deps.c), one at a time */
	for (i = 0; i < n; i++)
		any_unique |= (jobs[i].unique != NULL || jobs[i].deps != NULL);
	if (!any_unique)
	{
		slot = awa_fast_insert_slot(&jobs[0]);
		if (slot == NULL)
		{
			insert_rows(jobs, n, fcinfo);
			return;
		}
		tuplestore_puttupleslot(tstore, slot);
		for (i = 1; i < n; i++)
		{
			slot = awa_fast_insert_slot(&jobs[i]);
			if (slot == NULL)
				elog(ERROR, "awa_insert_many: the direct insert path became unusable");
			tuplestore_puttupleslot(tstore, slot);
		}
		return;
	}
	awa_enqueue_begin(&e, false);
	for (i = 0; i < n; i++)
	{
		awa_enqueue(&e, &jobs[i]);
		awa_enqueued_put(&e, fcinfo);
	}
	awa_enqueue_end(&e);
}
