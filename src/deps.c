/*-------------------------------------------------------------------------
 *
 * deps.c
 *		Job dependencies: a job inserted to run after other jobs (its
 *		parents) waits until every one of them completed (fan-in).
 *
 * Data.  awa.job_dependencies holds one row per (job, parent) with
 * satisfied: whether that parent no longer holds the job back (it
 * completed, or failed for good or was cancelled under the policy "run").
 * awa.dependent_jobs holds one row per dependent: waiting_for, the number
 * of its edges not yet satisfied; on_parent_failure, its policy; and the
 * run_at its producer asked for.
 *
 * Waiting.  A job that waits for parents is an ordinary scheduled job
 * whose run_at is 9999-12-30 UTC (AWA_DEPS_WAIT_RUN_AT): it is never due,
 * so no claim, promotion or retry path takes it, while cancel, drain, the
 * counters (as scheduled), the history and the dashboard need nothing new.  It is released by
 * setting run_at to what its producer asked for (available now, or
 * scheduled at that time).
 *
 * Insert (awa_deps_before_insert, awa_deps_after_insert, called by the
 * enqueue path for a job that names parents).  The parents are locked FOR
 * SHARE in id order before the job is written: a parent that does not
 * exist is an error (23503), so only jobs that exist can be named and no
 * cycle can be made; a parent that a concurrent transaction is finishing
 * is read after that transaction ended (the lock waits for it), and a
 * parent that finishes after the lock waits for this transaction, whose
 * edges its finishing then sees.  Completed parents are satisfied at once;
 * failed or cancelled ones get the policy at once (cancel: the job is
 * written and cancelled in the same call; run: satisfied; wait: not).
 *
 * Finishing (the trigger awa.jobs_dependencies_changes, AFTER UPDATE FOR
 * EACH STATEMENT on awa.jobs).  Every statement that leaves jobs completed,
 * failed or cancelled -- awa_complete, awa_complete_many, external
 * completion, awa_fail, rescue, callback timeouts, cancel, drain, plain
 * SQL -- satisfies their dependents' edges (completed; or failed and
 * cancelled under "run") and subtracts them from waiting_for, locking the
 * dependent_jobs rows in job id order: two parents finishing at once in
 * two transactions serialize on the dependent's row, and only the one
 * that takes waiting_for to 0 releases it (exactly once, whatever the
 * order of commits).  Dependents under "cancel" of a parent that failed or
 * was cancelled are cancelled; that UPDATE fires the trigger again, which
 * applies their own dependents' policies (a cascade).  Edges already
 * satisfied are left alone, so a statement that touches a finished job
 * again changes nothing.
 *
 * Deleting jobs (AFTER DELETE, TRUNCATE) deletes their own rows of both
 * tables; retention (maintain.c) keeps a finished parent while a job that
 * names it is not finished (AWA_DEPS_NOT_NEEDED_SQL).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "deps.h"

PG_FUNCTION_INFO_V1(awa_jobs_dependencies_changes);

static const char *const policy_names[] = {"cancel", "run", "wait"};

/* ---------------------------------------------------------------------
 * Reading the option
 * ---------------------------------------------------------------------
 */

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Sort and deduplicate the parents of deps (22023 past AWA_MAX_PARENTS). */
static void
finish_parents(AwaDeps *deps)
{
	int			i,
				n = 0;

	qsort(deps->parents, deps->n, sizeof(int64), cmp_int64);
	for (i = 0; i < deps->n; i++)
		if (n == 0 || deps->parents[n - 1] != deps->parents[i])
			deps->parents[n++] = deps->parents[i];
	deps->n = n;
	if (n > AWA_MAX_PARENTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after names at most %d jobs, got %d", AWA_MAX_PARENTS, n)));
}

/* The policy named by name (22023 for another name). */
static AwaParentFailure
policy_of(const char *name, int len)
{
	int			i;

	for (i = 0; i < lengthof(policy_names); i++)
		if (strlen(policy_names[i]) == len && memcmp(policy_names[i], name, len) == 0)
			return (AwaParentFailure) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("on_parent_failure must be cancel, run or wait, got \"%s\"",
					pnstrdup(name, len))));
	return AWA_ON_PARENT_FAILURE_CANCEL;	/* keep the compiler quiet */
}

static AwaDeps *
new_deps(void)
{
	AwaDeps    *deps = palloc0(sizeof(AwaDeps));

	deps->on_failure = AWA_ON_PARENT_FAILURE_CANCEL;
	return deps;
}

/*
 * awa_insert's after (bigint[], NULL or empty: none) and on_parent_failure
 * (text, NULL: cancel): the job's dependencies, or NULL when it names no
 * parent.  22004 for a NULL element, 22023 for too many parents or an
 * unknown policy.
 */
AwaDeps *
awa_deps_from_array(ArrayType *after, text *on_failure)
{
	AwaDeps    *deps;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	AwaParentFailure policy = AWA_ON_PARENT_FAILURE_CANCEL;

	if (on_failure != NULL)
		policy = policy_of(VARDATA_ANY(on_failure), VARSIZE_ANY_EXHDR(on_failure));
	if (after == NULL)
		return NULL;
	deconstruct_array(after, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	if (n == 0)
		return NULL;
	deps = new_deps();
	deps->on_failure = policy;
	deps->parents = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("after must not contain NULL")));
		deps->parents[i] = DatumGetInt64(elems[i]);
	}
	deps->n = n;
	finish_parents(deps);
	return deps;
}

/*
 * awa_insert_many's "after" field, a JSON array of job ids, into deps
 * (made if NULL); returns deps, or NULL for an empty array.  22023 for
 * another JSON type or an id that is not an integer, 22004 for a null.
 */
AwaDeps *
awa_deps_from_json(JsonbValue *v, AwaDeps *deps)
{
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			size;

	if (v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("after must not be NULL")));
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after must be an array of job ids")));
	if (deps == NULL)
		deps = new_deps();
	size = JsonContainerSize(v->val.binary.data);
	deps->parents = palloc(sizeof(int64) * Max(size, 1));
	deps->n = 0;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		Datum		id;

		if (tok != WJB_ELEM)
			continue;
		if (e.type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("after must not contain NULL")));
		if (e.type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("after must be an array of job ids")));
		id = DirectFunctionCall1(numeric_int8, NumericGetDatum(e.val.numeric));
		if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(e.val.numeric),
											  DirectFunctionCall1(int8_numeric, id))) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("after must be an array of job ids, got %s",
							DatumGetCString(DirectFunctionCall1(numeric_out,
																NumericGetDatum(e.val.numeric))))));
		deps->parents[deps->n++] = DatumGetInt64(id);
	}
	finish_parents(deps);
	return deps;
}

/*
 * awa_insert_many's "on_parent_failure" field (a string) into deps (made
 * if NULL); returns deps.
 */
AwaDeps *
awa_deps_policy_from_json(JsonbValue *v, AwaDeps *deps)
{
	if (v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("on_parent_failure must not be NULL")));
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_parent_failure must be cancel, run or wait")));
	if (deps == NULL)
		deps = new_deps();
	deps->on_failure = policy_of(v->val.string.val, v->val.string.len);
	return deps;
}

/* ---------------------------------------------------------------------
 * Insert
 * ---------------------------------------------------------------------
 */

/* values[0..n) as a bigint[] (also ring_deps.c's) */
Datum
awa_int8_array(const int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Before a job that names parents is written (caller in SPI): lock them,
 * check that they exist (23503 naming the first that does not), and decide
 * from their states whether the job waits -- then it is written with
 * run_at AWA_DEPS_WAIT_RUN_AT, the run_at asked for kept in deps -- or is cancelled
 * at once, or runs as if it named none.
 */
void
awa_deps_before_insert(AwaJob *job)
{
	static AwaStmt lock = AWA_STMT("awa: locking the parents of a job", SPI_OK_SELECT,
		"SELECT id, state::text AS state FROM awa.jobs WHERE id = ANY($1)"
		" ORDER BY id FOR SHARE",
		1, INT8ARRAYOID);
	AwaDeps    *deps = job->deps;
	Datum		ids;
	uint64		found;
	uint64		r;
	bool		isnull;
	int			i;

	awa_require_schema(AWA_SCHEMA_DEPENDENCIES, "running a job after other jobs");
	ids = awa_int8_array(deps->parents, deps->n);
	found = awa_stmt_run(&lock, &ids, NULL, 0);
	deps->satisfied = palloc0(sizeof(bool) * deps->n);
	deps->waiting_for = 0;
	deps->cancel_by = 0;
	/* both lists ascend: walk them together */
	for (i = 0, r = 0; i < deps->n; i++)
	{
		char	   *state;

		if (r >= found || awa_stmt_int8(r, "id") != deps->parents[i])
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("job %lld named in after does not exist",
							(long long) deps->parents[i]),
					 errdetail("A job can run only after jobs that exist in the same database.")));
		state = TextDatumGetCString(awa_stmt_value(r, "state", &isnull));
		r++;
		if (strcmp(state, "completed") == 0)
			deps->satisfied[i] = true;
		else if (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0)
		{
			if (deps->on_failure == AWA_ON_PARENT_FAILURE_RUN)
				deps->satisfied[i] = true;
			else if (deps->on_failure == AWA_ON_PARENT_FAILURE_CANCEL && deps->cancel_by == 0)
			{
				deps->cancel_by = deps->parents[i];
				deps->cancel_state = state;
			}
		}
		if (!deps->satisfied[i])
			deps->waiting_for++;
	}

	deps->has_run_at = job->has_run_at;
	deps->run_at = job->run_at;
	if (deps->waiting_for > 0)
	{
		job->has_run_at = true;
		job->run_at = AWA_DEPS_WAIT_RUN_AT;
	}
}

/*
 * After the job was written (its row in e): record its edges and its
 * policy; cancel it if a parent already failed or was cancelled under
 * "cancel", its row in e becoming the cancelled one.  A unique job whose
 * key another job holds was not written: nothing is recorded.
 */
void
awa_deps_after_insert(AwaEnqueue *e, AwaJob *job)
{
	static AwaStmt edges = AWA_STMT("awa: recording the parents of a job", SPI_OK_INSERT,
		"WITH w AS (INSERT INTO awa.dependent_jobs (job_id, waiting_for, on_parent_failure, run_at)"
		"   VALUES ($1, $4, $5, $6))"
		" INSERT INTO awa.job_dependencies (job_id, parent_id, satisfied)"
		" SELECT $1, p, s FROM unnest($2::bigint[], $3::boolean[]) AS u(p, s)",
		6, INT8OID, INT8ARRAYOID, BOOLARRAYOID, INT4OID, TEXTOID, TIMESTAMPTZOID);
	static AwaStmt cancel = AWA_STMT("awa: cancelling a job whose parent failed", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.jobs j SET state = 'cancelled', finalized_at = now(),"
		" errors = " AWA_ERRORS_SQL("j.errors", "$4", "$5", "$6",
									"jsonb_build_object('attempt', j.attempt, 'at', now(),"
									" 'error', format('cancelled: job %s it runs after is %s', $2, $3))")
		" WHERE j.id = $1 RETURNING *",
		6, INT8OID, INT8OID, TEXTOID, INT4OID, INT4OID, INT4OID);
	AwaDeps    *deps = job->deps;
	Datum		values[6];
	char		nulls[6] = "      ";
	Datum	   *sat;
	bool		isnull;
	int64		id;
	int			i;

	if (!e->inserted)
		return;
	if (e->slot != NULL)
		id = DatumGetInt64(slot_getattr(e->slot, 1, &isnull));
	else
		id = DatumGetInt64(SPI_getbinval(e->tuple, e->desc, 1, &isnull));
	sat = palloc(sizeof(Datum) * deps->n);
	for (i = 0; i < deps->n; i++)
		sat[i] = BoolGetDatum(deps->satisfied[i]);
	values[0] = Int64GetDatum(id);
	values[1] = awa_int8_array(deps->parents, deps->n);
	values[2] = PointerGetDatum(construct_array(sat, deps->n, BOOLOID, 1, true, TYPALIGN_CHAR));
	values[3] = Int32GetDatum(deps->waiting_for);
	values[4] = CStringGetTextDatum(policy_names[deps->on_failure]);
	values[5] = TimestampTzGetDatum(deps->run_at);
	if (!deps->has_run_at)
		nulls[5] = 'n';
	awa_stmt_run(&edges, values, nulls, 0);

	if (deps->cancel_by != 0)
	{
		values[1] = Int64GetDatum(deps->cancel_by);
		values[2] = CStringGetTextDatum(deps->cancel_state);
		awa_errors_bounds(&values[3]);
		if (awa_stmt_run(&cancel, values, NULL, 0) != 1)
			elog(ERROR, "awa: cancelling job %lld failed", (long long) id);
		e->slot = NULL;
		e->tuple = SPI_tuptable->vals[0];
		e->desc = SPI_tuptable->tupdesc;
	}
}

/* ---------------------------------------------------------------------
 * Finishing and deleting jobs: the trigger
 * ---------------------------------------------------------------------
 */

/*
 * Finishing jobs takes a few small statements, each planned once for any
 * number of rows (index lookups driven by arrays), rather than one
 * statement whose generic plan would have to guess the rows of each step:
 * the common case -- a job that nobody runs after -- is then one index
 * lookup that finds nothing.
 *
 * Satisfy the edges of the finished jobs $1 that release their dependent:
 * completed ones ($2), and failed or cancelled ones under "run".  Returns
 * each dependent once, ascending, with the number of its edges satisfied.
 */
static AwaStmt satisfy_stmt = AWA_STMT("awa: satisfying the dependencies on finished jobs",
	SPI_OK_SELECT,
	"WITH e AS (UPDATE awa.job_dependencies d SET satisfied = true"
	"   FROM awa.dependent_jobs w"
	"   WHERE d.parent_id = ANY($1) AND NOT d.satisfied AND w.job_id = d.job_id"
	"     AND (d.parent_id = ANY($2) OR w.on_parent_failure = 'run')"
	"   RETURNING d.job_id)"
	" SELECT job_id, count(*)::integer AS n FROM e GROUP BY job_id ORDER BY job_id",
	2, INT8ARRAYOID, INT8ARRAYOID);

/*
 * Lock the dependent_jobs rows of those dependents in id order, so that two
 * transactions finishing parents of the same dependents queue up instead
 * of deadlocking; the next statement reads them as the lock left them.
 */
static AwaStmt lock_dependents_stmt = AWA_STMT("awa: locking dependent jobs",
	SPI_OK_SELECT,
	"SELECT job_id FROM awa.dependent_jobs WHERE job_id = ANY($1)"
	" ORDER BY job_id FOR NO KEY UPDATE",
	1, INT8ARRAYOID);

/* Take the satisfied edges off waiting_for; returns the rows, ascending. */
static AwaStmt count_down_stmt = AWA_STMT("awa: counting down dependent jobs",
	SPI_OK_SELECT,
	"WITH c AS (UPDATE awa.dependent_jobs w SET waiting_for = w.waiting_for - u.n"
	"   FROM unnest($1::bigint[], $2::integer[]) AS u(job_id, n)"
	"   WHERE w.job_id = u.job_id"
	"   RETURNING w.job_id, w.waiting_for, w.run_at)"
	" SELECT job_id, waiting_for, run_at FROM c ORDER BY job_id",
	2, INT8ARRAYOID, INT4ARRAYOID);

/* Lock jobs $1 in id order (a statement that changes several does). */
static AwaStmt lock_jobs_stmt = AWA_STMT("awa: locking dependent jobs",
	SPI_OK_SELECT,
	"SELECT id FROM awa.jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
	1, INT8ARRAYOID);

/*
 * Release the jobs $1 that still wait: available now, or scheduled at the
 * run_at asked for ($2, NULL: now).  Returns what awa_job_enqueued needs.
 */
static AwaStmt release_stmt = AWA_STMT("awa: releasing dependent jobs",
	SPI_OK_UPDATE_RETURNING,
	"UPDATE awa.jobs j SET"
	"   state = CASE WHEN r.run_at > now() THEN 'scheduled' ELSE 'available' END::awa.job_state,"
	"   run_at = CASE WHEN r.run_at > now() THEN r.run_at ELSE now() END"
	" FROM unnest($1::bigint[], $2::timestamptz[]) AS r(id, run_at)"
	" WHERE j.id = r.id AND j.state = 'scheduled' AND j.run_at = " AWA_DEPS_WAIT_RUN_AT_SQL
	" RETURNING j.queue, j.state::text AS state, j.run_at",
	2, INT8ARRAYOID, TIMESTAMPTZARRAYOID);

/*
 * The dependents under "cancel" of the failed or cancelled jobs $1 that
 * they still wait for, ascending, each with the first such parent.
 */
static AwaStmt to_cancel_stmt = AWA_STMT("awa: finding the dependents of failed jobs",
	SPI_OK_SELECT,
	"SELECT d.job_id, min(d.parent_id) AS parent_id FROM awa.job_dependencies d"
	" JOIN awa.dependent_jobs w ON w.job_id = d.job_id"
	" WHERE d.parent_id = ANY($1) AND NOT d.satisfied AND w.on_parent_failure = 'cancel'"
	" GROUP BY d.job_id ORDER BY d.job_id",
	1, INT8ARRAYOID);

/*
 * Cancel the jobs $1 that still wait, naming the parent $2 that did it; the
 * entry goes under the bounds $3..$5 (awa_errors_bounds; it is shorter
 * than awa.max_error_bytes' least value, so it needs no cut).
 */
static AwaStmt cancel_stmt = AWA_STMT("awa: cancelling the dependents of failed jobs",
	SPI_OK_UPDATE,
	"UPDATE awa.jobs j SET state = 'cancelled', finalized_at = now(),"
	"   errors = " AWA_ERRORS_SQL("j.errors", "$3", "$4", "$5",
								  "jsonb_build_object('attempt', j.attempt, 'at', now(),"
								  " 'error', format('cancelled: job %s it runs after is %s', x.parent_id, p.state))")
	" FROM unnest($1::bigint[], $2::bigint[]) AS x(id, parent_id), awa.jobs p"
	" WHERE j.id = x.id AND p.id = x.parent_id"
	"   AND j.state = 'scheduled' AND j.run_at = " AWA_DEPS_WAIT_RUN_AT_SQL,
	5, INT8ARRAYOID, INT8ARRAYOID, INT4OID, INT4OID, INT4OID);

/* Column col (1-based) of every row of the last result, as a bigint[]. */
static Datum
result_int8_array(int col)
{
	int64	   *v = palloc(sizeof(int64) * Max(SPI_processed, 1));
	uint64		i;
	bool		isnull;

	for (i = 0; i < SPI_processed; i++)
		v[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, col, &isnull));
	return awa_int8_array(v, (int) SPI_processed);
}

/*
 * Release what the finished jobs ids (completed: those of them that
 * completed) let go.  Caller is in SPI.
 */
static void
release_dependents(Datum ids, Datum completed)
{
	Datum		args[2];
	Datum	   *counts;
	Datum	   *run_ats;
	bool	   *run_nulls;
	int64	   *ready;
	uint64		n,
				i;
	int			nready = 0;
	int			dims[1];
	int			lbs[1] = {1};
	bool		isnull;

	args[0] = ids;
	args[1] = completed;
	n = awa_stmt_run(&satisfy_stmt, args, NULL, 0);
	if (n == 0)
		return;
	args[0] = result_int8_array(1);
	counts = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		counts[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
	args[1] = PointerGetDatum(construct_array(counts, (int) n, INT4OID, 4, true, TYPALIGN_INT));
	awa_stmt_run(&lock_dependents_stmt, args, NULL, 0);
	n = awa_stmt_run(&count_down_stmt, args, NULL, 0);

	/* the dependents now waiting for nothing */
	ready = palloc(sizeof(int64) * Max(n, 1));
	run_ats = palloc(sizeof(Datum) * Max(n, 1));
	run_nulls = palloc(sizeof(bool) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;

		if (DatumGetInt32(SPI_getbinval(t, d, 2, &isnull)) != 0)
			continue;
		ready[nready] = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		run_ats[nready] = SPI_getbinval(t, d, 3, &run_nulls[nready]);
		nready++;
	}
	if (nready == 0)
		return;
	args[0] = awa_int8_array(ready, nready);
	awa_stmt_run(&lock_jobs_stmt, args, NULL, 0);
	dims[0] = nready;
	args[1] = PointerGetDatum(construct_md_array(run_ats, run_nulls, 1, dims, lbs,
												 TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	n = awa_stmt_run(&release_stmt, args, NULL, 0);
	for (i = 0; i < n; i++)
	{
		char	   *state = TextDatumGetCString(awa_stmt_value(i, "state", &isnull));

		awa_job_enqueued(TextDatumGetCString(awa_stmt_value(i, "queue", &isnull)),
						 strcmp(state, "available") == 0 ? AWA_STATE_AVAILABLE : AWA_STATE_SCHEDULED,
						 DatumGetTimestampTz(awa_stmt_value(i, "run_at", &isnull)));
	}
}

/*
 * Cancel the waiting dependents under "cancel" of the failed or cancelled
 * jobs ids.  The UPDATE fires this trigger again for them: their own
 * dependents get their policies in turn.  Caller is in SPI.
 */
static void
cancel_dependents(Datum ids)
{
	Datum		args[5];

	if (awa_stmt_run(&to_cancel_stmt, &ids, NULL, 0) == 0)
		return;
	args[0] = result_int8_array(1);
	args[1] = result_int8_array(2);
	awa_stmt_run(&lock_jobs_stmt, args, NULL, 0);
	awa_errors_bounds(&args[2]);
	awa_stmt_run(&cancel_stmt, args, NULL, 0);
}

/* The dependency rows of deleted jobs $1 go with them. */
static AwaStmt forget_stmt = AWA_STMT("awa: deleting the dependencies of deleted jobs",
	SPI_OK_DELETE,
	"WITH d AS (DELETE FROM awa.job_dependencies WHERE job_id = ANY($1))"
	" DELETE FROM awa.dependent_jobs WHERE job_id = ANY($1)",
	1, INT8ARRAYOID);

static AwaStmt forget_all_stmt = AWA_STMT("awa: deleting every dependency",
	SPI_OK_DELETE,
	"WITH d AS (DELETE FROM awa.job_dependencies)"
	" DELETE FROM awa.dependent_jobs",
	0);

/*
 * The ids of a transition table's rows: all of them (nstates 0), or those
 * whose state is one of states[0..nstates) (enum Datums), those in
 * states[0] also into first (when not NULL; *nfirst of them).
 */
static int64 *
transition_ids(Tuplestorestate *ts, Relation rel, const Datum *states, int nstates,
			   int *n, int64 **first, int *nfirst)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			a_id = awa_job_column(desc, "id");
	int			a_state = awa_job_column(desc, "state");
	TupleTableSlot *slot;
	int64	   *ids = NULL;
	int			cap = 0;

	*n = 0;
	if (nfirst != NULL)
		*nfirst = 0;
	if (ts == NULL)
		return NULL;
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		isnull;
		int			k = 0;
		int64		id;

		if (nstates > 0)
		{
			Datum		s = slot_getattr(slot, a_state + 1, &isnull);

			if (isnull)
				continue;
			for (k = 0; k < nstates; k++)
				if (states[k] == s)
					break;
			if (k == nstates)
				continue;
		}
		id = DatumGetInt64(slot_getattr(slot, a_id + 1, &isnull));
		if (*n >= cap)
		{
			cap = cap == 0 ? 16 : cap * 2;
			ids = ids == NULL ? palloc(sizeof(int64) * cap) : repalloc(ids, sizeof(int64) * cap);
			if (first != NULL)
				*first = *first == NULL ? palloc(sizeof(int64) * cap) :
					repalloc(*first, sizeof(int64) * cap);
		}
		ids[(*n)++] = id;
		if (first != NULL && nstates > 0 && k == 0)
			(*first)[(*nfirst)++] = id;
	}
	tuplestore_rescan(ts);
	ExecDropSingleTupleTableSlot(slot);
	return ids;
}

/*
 * Whether awa.job_dependencies (in the schema of jobs) has ever held a row:
 * it has a page.  One file size look-up, so that finishing jobs costs
 * nothing more where dependencies are not used.
 */
static bool
dependencies_ever(Relation jobs)
{
	Oid			relid = get_relname_relid("job_dependencies", RelationGetNamespace(jobs));
	Relation	rel;
	BlockNumber pages;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	pages = RelationGetNumberOfBlocks(rel);
	table_close(rel, AccessShareLock);
	return pages > 0;
}

/*
 * awa.jobs_dependencies_changes() — AFTER UPDATE (new table), DELETE (old
 * table) and TRUNCATE FOR EACH STATEMENT trigger on awa.jobs
 *
 * Applies what finishing or deleting jobs means to the jobs that run after
 * them (see the top of this file).
 */
Datum
awa_jobs_dependencies_changes(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	static AwaJobColumns cols;
	Datum		finished[3];
	int64	   *ids;
	int64	   *completed = NULL;
	int			n,
				ncompleted;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.jobs_dependencies_changes() must be called by an AFTER ... FOR EACH STATEMENT trigger of awa.jobs")));

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		SPI_connect();
		awa_stmt_run(&forget_all_stmt, NULL, NULL, 0);
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		Datum		arr;

		ids = transition_ids(td->tg_oldtable, td->tg_relation, NULL, 0, &n, NULL, NULL);
		if (n == 0)
			return PointerGetDatum(NULL);
		arr = awa_int8_array(ids, n);
		SPI_connect();
		awa_stmt_run(&forget_stmt, &arr, NULL, 0);
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		return PointerGetDatum(NULL);

	/*
	 * Nobody has ever run after a job: awa.job_dependencies has no page.
	 * An edge is written (the file extended) before its parents' lock is
	 * released, so a parent finishing after that sees the page.
	 */
	if (!dependencies_ever(td->tg_relation))
		return PointerGetDatum(NULL);

	awa_job_columns(RelationGetDescr(td->tg_relation), &cols);
	finished[0] = cols.states[AWA_STATE_COMPLETED];
	finished[1] = cols.states[AWA_STATE_FAILED];
	finished[2] = cols.states[AWA_STATE_CANCELLED];
	ids = transition_ids(td->tg_newtable, td->tg_relation, finished, 3, &n,
						 &completed, &ncompleted);
	if (n == 0)
		return PointerGetDatum(NULL);

	SPI_connect();
	release_dependents(awa_int8_array(ids, n), awa_int8_array(completed, ncompleted));
	/* some failed or were cancelled: their "cancel" dependents go */
	if (ncompleted < n)
		cancel_dependents(awa_int8_array(ids, n));
	SPI_finish();
	return PointerGetDatum(NULL);
}
