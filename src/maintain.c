/*-------------------------------------------------------------------------
 *
 * maintain.c
 *		Maintenance: awa_maintain(), the background workers that call it,
 *		and retention.  Periodic jobs are fired by schedule.c.
 *
 * One maintenance round, in one transaction of one database:
 *	 0. fold the job counters (counters.c), first, before the round has
 *		written anything (a fold needs a transaction without an ID yet);
 *	 1. promote scheduled and retryable jobs whose run_at has come to
 *		available, so listeners get their NOTIFY and blocked claimers wake
 *		(awa_claim takes such jobs by itself; promotion is for them and for
 *		the statistics);
 *	 2. rescue running jobs with a stale heartbeat or a passed deadline,
 *		and retry (with backoff) or fail parked jobs whose callback timed
 *		out (step "callbacks", counted as rescued);
 *	 3. enqueue the jobs of due periodic schedules;
 *	 4. delete completed jobs older than awa.retention_completed and failed
 *		or cancelled ones older than awa.retention_failed;
 *	 5. fold the throughput history's deltas into its minutes (history.c)
 *		and delete minutes older than awa.retention_history.
 *	 6. when the ring (docs/storage.md) is in use: its promotion, rescue
 *		(job timeouts included), rotation and reclaiming (ring_maint.c; hook: rmaint),
 *		last, as the reclaim's locks are held to the commit.
 * Steps 1, 3, 4 and 5 touch at most AWA_MAINTAIN_BATCH rows each, so a round
 * never holds locks for long; what is left is done by the next round.
 *
 * Each step runs in its own subtransaction, and when its batch statement
 * fails it goes row by row, each row in a subtransaction, so that a job it
 * cannot process (a user trigger or constraint raises, a unique collision)
 * or a failing step costs only itself.  Such failures are logged (WARNING
 * naming the database, the step and the error), recorded in
 * awa.maintenance_failures (read by awa_health_check), and the skipped jobs
 * are left out of later batches and retried one by one with backoff.
 *
 * Rounds of one database never overlap: a round first takes the
 * transaction-level advisory lock (AWA_LOCK_KEY1, AWA_LOCK_KEY2), the same
 * lock as pg_try_advisory_xact_lock(6387553, 1); a caller that cannot get
 * it returns at once with a row of zeros.  Holding that lock, e.g. with
 * pg_advisory_lock(6387553, 1), therefore pauses maintenance in a database.
 *
 * Background workers (only with shared_preload_libraries = 'awa')
 * ----------------------------------------------------------------
 * A launcher, started by the postmaster and connected to no database,
 * keeps one worker running for each database named in awa.databases.
 * A worker connects to its database and runs a round every
 * awa.maintenance_interval; a database where the extension is not
 * installed is skipped (logged once).  The launcher checks pg_database
 * itself, so a database that does not exist, or does not accept
 * connections, is logged once and tried again every second without
 * starting a worker.  Both processes show in pg_stat_activity with
 * backend_type and application_name "awa maintenance".
 *
 * A worker steps aside when somebody needs its database alone: every half
 * second it checks whether it could take the lock that DROP DATABASE,
 * ALTER DATABASE RENAME and CREATE DATABASE ... TEMPLATE take on the
 * database, and exits if not, so those commands are not refused because of
 * it.  The launcher starts the worker again once the database is free.
 *
 * SIGHUP reloads the settings (awa.databases included: workers of
 * databases no longer listed are stopped).  SIGTERM ends a process the
 * usual way (FATAL, "terminating background worker ... due to
 * administrator command").  At shutdown that is the end; otherwise the
 * postmaster starts the launcher again after AWA_LAUNCHER_RESTART_SECS
 * (also after a crash), and the launcher restarts a worker that stopped
 * (at most once every AWA_WORKER_RESTART_MS).  Workers exit by themselves
 * when the launcher that started them is gone.  An error that escapes a
 * round (a query cancel, or a failure outside the steps) is logged, the
 * transaction rolled back and the next round runs; after consecutive
 * errors the rounds back off up to AWA_ERROR_BACKOFF_MAX_MS.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "awa.h"
#include "maintain.h"
#include "deps.h"
#include "history.h"
#include "ring_maint.h"
#include "engine_admin.h"

PG_FUNCTION_INFO_V1(awa_maintain);
PG_FUNCTION_INFO_V1(awa_maintain_for);

PGDLLEXPORT void awa_maintenance_launcher_main(Datum main_arg);
PGDLLEXPORT void awa_maintenance_worker_main(Datum main_arg);

/* The advisory lock of a round: "awa" in ASCII, then 1 for maintenance. */
#define AWA_LOCK_KEY1				0x617761
#define AWA_LOCK_KEY2				1

#define AWA_BGW_TYPE				"awa maintenance"
#define AWA_MAX_LISTED_DATABASES	64	/* names in awa.databases */
#define AWA_NO_AWA_RECHECK_MS		(5 * 60 * 1000)
#define AWA_LAUNCHER_RESTART_SECS	1
#define AWA_WORKER_RESTART_MS		5000
#define AWA_LAUNCHER_TICK_MS		1000
#define AWA_WORKER_CHECK_MS			500
#define AWA_ERROR_BACKOFF_MAX_MS	60000

/* Recorded failures read per round, and the longest wait between retries. */
#define AWA_MAX_RECORDED			1000
#define AWA_RETRY_MAX_SECS			300
/* WARNINGs for newly skipped items per step and round; the rest is counted. */
#define AWA_MAX_WARNINGS			10
/* Failing job rows in a row, none done, after which a step gives up. */
#define AWA_MAX_ROW_FAILURES		10

/* Settings */
int			awa_maintenance_interval = 1000;	/* ms */
static char *awa_databases = NULL;
static int	awa_retention_completed = 86400;	/* s, -1 keeps forever */
static int	awa_retention_failed = 7 * 86400;	/* s, -1 keeps forever */
static int	awa_retention_history = 7 * 86400;	/* s, -1 keeps forever */
static int	awa_maintenance_log_level = DEBUG1;

/* Levels of awa.maintenance_log_level, as log_min_messages spells them. */
static const struct config_enum_entry log_level_options[] = {
	{"debug5", DEBUG5, false},
	{"debug4", DEBUG4, false},
	{"debug3", DEBUG3, false},
	{"debug2", DEBUG2, false},
	{"debug1", DEBUG1, false},
	{"info", INFO, false},
	{"notice", NOTICE, false},
	{"log", LOG, false},
	{NULL, 0, false}
};

/* The outcome of one round. */
typedef struct AwaRound
{
	int64		promoted;
	int64		rescued;
	int64		deleted;
	int64		periodic;
	int64		ring_rotated;	/* hook: rmaint -- slots sealed */
	int64		ring_reclaimed; /* slots truncated */
	double		duration_ms;
} AwaRound;

/* ---------------------------------------------------------------------
 * Isolated steps and their failures
 * ---------------------------------------------------------------------
 */

/* The steps of a round, as named in logs, awa.maintenance_failures and the health check. */
typedef enum AwaStep
{
	STEP_PROMOTE,
	STEP_RESCUE,
	STEP_SCHEDULES,
	STEP_RETENTION,
	STEP_CALLBACKS,
	STEP_COUNTERS,
	STEP_HISTORY,
	/* hook: rmaint -- the ring's steps (ring_maint.c), in AwaRingStep's order */
	STEP_RING_FIRST,
	STEP_RING_LAST = STEP_RING_FIRST + AWA_RING_NUM_STEPS - 1,
	AWA_NUM_STEPS
} AwaStep;

static const char *const step_names[AWA_NUM_STEPS] = {
	"promote", "rescue", "schedules", "retention", "callbacks", "counters", "history",
	/* hook: rmaint */
	"ring promote", "ring rescue", "ring callbacks", "ring history", "ring upkeep", "ring rotate", "ring reclaim"
};
/* hook: robs -- "ring timeouts" went: a job's timeout caps its deadline (ring_obs.h) */
StaticAssertDecl(AWA_RING_NUM_STEPS == 7, "ring steps and their names (hook: rmaint)");

/* What became of a failure this round. */
typedef enum FailureOutcome
{
	FAILURE_UNCHANGED,			/* recorded before, not tried this round */
	FAILURE_NEW,				/* failed this round, not recorded before */
	FAILURE_AGAIN,				/* recorded before and failed again */
	FAILURE_RESOLVED			/* recorded before, fine now (or gone) */
} FailureOutcome;

/*
 * A failure of a step as a whole (item "") or of one item of it (a job id,
 * or a periodic job's name), as recorded in awa.maintenance_failures or
 * found this round.
 */
typedef struct Failure
{
	AwaStep		step;
	char	   *item;
	bool		recorded;		/* a row of awa.maintenance_failures */
	bool		retry;			/* recorded, and due for another try */
	FailureOutcome outcome;
	int			sqlerrcode;
	char	   *message;
} Failure;

/*
 * Without awa.maintenance_failures (a schema older than 0.3.0), failures
 * are remembered in this backend instead, so that a long-lived caller (the
 * background worker) still leaves a bad job alone between its retries.
 */
typedef struct LocalFailure
{
	AwaStep		step;
	char	   *item;			/* in TopMemoryContext */
	int			failures;
	TimestampTz retry_at;
} LocalFailure;

static LocalFailure *local_failures = NULL; /* in TopMemoryContext */
static int	nlocal_failures = 0;

/* The state of the round being run. */
typedef struct RoundState
{
	char	   *dbname;
	bool		has_table;		/* awa.maintenance_failures exists (0.3.0 schema) */
	List	   *failures;		/* of Failure */
	int			warned[AWA_NUM_STEPS];	/* WARNINGs for skipped items */
} RoundState;


/* Parse a recorded item as a job id; false if it is not one. */
static bool
item_job_id(const char *item, int64 *id)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(item, &end, 10);
	if (errno != 0 || end == item || *end != '\0')
		return false;
	*id = (int64) v;
	return true;
}

/* Whether awa.maintenance_failures exists (it does from schema 0.3.0 on). */
static bool
failures_table_exists(void)
{
	Oid			nsp = get_namespace_oid("awa", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("maintenance_failures", nsp));
}

/* The recorded or new failure of (step, item), or NULL. */
static Failure *
find_failure(RoundState *rs, AwaStep step, const char *item)
{
	ListCell   *lc;

	foreach(lc, rs->failures)
	{
		Failure    *f = (Failure *) lfirst(lc);

		if (f->step == step && strcmp(f->item, item) == 0)
			return f;
	}
	return NULL;
}

/* Read the recorded failures (at most AWA_MAX_RECORDED).  Caller is in SPI. */
static void
load_failures(void *arg)
{
	static AwaStmt stmt = AWA_QUERY("awa: reading maintenance failures",
		"SELECT step, item, retry_at <= now()"
		" FROM awa.maintenance_failures ORDER BY step, item"
		" LIMIT " CppAsString2(AWA_MAX_RECORDED),
		0, InvalidOid);
	RoundState *rs = (RoundState *) arg;
	uint64		i;

	awa_stmt_run(&stmt, NULL, NULL, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		char	   *step = SPI_getvalue(t, SPI_tuptable->tupdesc, 1);
		bool		isnull;
		Datum		due = SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &isnull);
		int			k;

		for (k = 0; k < AWA_NUM_STEPS; k++)
		{
			if (strcmp(step, step_names[k]) == 0)
			{
				Failure    *f = palloc0(sizeof(Failure));

				f->step = (AwaStep) k;
				f->item = SPI_getvalue(t, SPI_tuptable->tupdesc, 2);
				f->recorded = true;
				f->retry = !isnull && DatumGetBool(due);
				f->outcome = FAILURE_UNCHANGED;
				rs->failures = lappend(rs->failures, f);
			}
		}
	}
}

/*
 * Note that a step (item "") or one item of it (what says what became of
 * it in the log, e.g. "skipped job 17") failed this round.  A WARNING names the database, the step
 * and the error, except for an item that failed before as well (it is
 * retried with backoff and stays visible in the health check).  Returns
 * whether the failure is new.
 */
static bool
note_failure(RoundState *rs, AwaStep step, const char *item, const char *what,
			 ErrorData *edata)
{
	Failure    *f = find_failure(rs, step, item);
	bool		isnew = (f == NULL || !f->recorded);

	if (f == NULL)
	{
		f = palloc0(sizeof(Failure));
		f->step = step;
		f->item = pstrdup(item);
		rs->failures = lappend(rs->failures, f);
	}
	f->outcome = isnew ? FAILURE_NEW : FAILURE_AGAIN;
	f->sqlerrcode = edata->sqlerrcode;
	f->message = pstrdup(edata->message ? edata->message : "unknown error");

	if (item[0] == '\0')
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("awa maintenance in database \"%s\": step \"%s\" failed: %s",
						rs->dbname, step_names[step], f->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 errhint("The other steps of the round ran; see awa_health_check().")));
	else if (isnew && ++rs->warned[step] > AWA_MAX_WARNINGS)
		ereport(DEBUG1,
				(errmsg("awa maintenance in database \"%s\": step \"%s\" %s: %s",
						rs->dbname, step_names[step], what, f->message)));
	else if (isnew)
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("awa maintenance in database \"%s\": step \"%s\" %s: %s",
						rs->dbname, step_names[step], what, f->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 step == STEP_SCHEDULES
				 ? errhint("Fix it with awa_schedule(); until then it does not fire.")
				 : errhint("It is retried with backoff, and shown by awa_health_check() until it succeeds.")));
	return isnew;
}

/* Note that a step (item "") or an item of it succeeded this round. */
static void
note_success(RoundState *rs, AwaStep step, const char *item)
{
	Failure    *f = find_failure(rs, step, item);

	if (f != NULL && f->recorded)
		f->outcome = FAILURE_RESOLVED;
}

/*
 * The job ids recorded as failing in a step, as an int8[] Datum: the
 * batch statements leave them alone (they are retried one by one).
 */
static Datum
skip_ids(RoundState *rs, AwaStep step)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(list_length(rs->failures), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, rs->failures)
	{
		Failure    *f = (Failure *) lfirst(lc);
		int64		id;

		if (f->step == step && f->recorded && f->item[0] != '\0' &&
			item_job_id(f->item, &id))
			ids[n++] = Int64GetDatum(id);
	}
	return PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* The failures remembered in this backend, as if read from the table. */
static void
load_local_failures(RoundState *rs)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			i;

	for (i = 0; i < nlocal_failures; i++)
	{
		Failure    *f = palloc0(sizeof(Failure));

		f->step = local_failures[i].step;
		f->item = pstrdup(local_failures[i].item);
		f->recorded = true;
		f->retry = local_failures[i].retry_at <= now;
		f->outcome = FAILURE_UNCHANGED;
		rs->failures = lappend(rs->failures, f);
	}
}

/*
 * Remember this round's outcomes in this backend, with the table's retry
 * rule (after 1 s, then 2^failures s, at most AWA_RETRY_MAX_SECS).
 */
static void
save_local_failures(RoundState *rs)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	ListCell   *lc;

	if (local_failures == NULL)
		local_failures = MemoryContextAllocZero(TopMemoryContext,
												sizeof(LocalFailure) * AWA_MAX_RECORDED);
	foreach(lc, rs->failures)
	{
		Failure    *f = (Failure *) lfirst(lc);
		int64		secs;
		int			i;
		int			k;

		if (f->outcome == FAILURE_UNCHANGED)
			continue;
		for (i = 0; i < nlocal_failures; i++)
			if (local_failures[i].step == f->step && strcmp(local_failures[i].item, f->item) == 0)
				break;
		if (f->outcome == FAILURE_RESOLVED)
		{
			if (i < nlocal_failures)
			{
				pfree(local_failures[i].item);
				local_failures[i] = local_failures[--nlocal_failures];
			}
			continue;
		}
		if (i == nlocal_failures)
		{
			if (nlocal_failures >= AWA_MAX_RECORDED)
				continue;
			nlocal_failures++;
			local_failures[i].step = f->step;
			local_failures[i].item = MemoryContextStrdup(TopMemoryContext, f->item);
			local_failures[i].failures = 0;
		}
		secs = 1;
		for (k = 0; k < local_failures[i].failures && secs < AWA_RETRY_MAX_SECS; k++)
			secs *= 2;
		local_failures[i].retry_at = now + USECS_PER_SEC * Min(secs, AWA_RETRY_MAX_SECS);
		local_failures[i].failures++;
	}
}

/* The arguments of save_failure. */
typedef struct SaveArgs
{
	Failure    *f;
} SaveArgs;

/*
 * Write one failure's outcome to awa.maintenance_failures: a new or
 * repeated failure is upserted (retried after 2^failures seconds, at most
 * AWA_RETRY_MAX_SECS), a resolved one deleted.
 */
static void
save_failure(void *arg)
{
	static AwaStmt upsert_stmt = AWA_STMT("awa: recording a maintenance failure", SPI_OK_INSERT,
		"INSERT INTO awa.maintenance_failures AS f"
		" (step, item, sqlstate, error, retry_at)"
		" VALUES ($1, $2, $3, $4, now() + interval '1 second')"
		" ON CONFLICT (step, item) DO UPDATE SET"
		" sqlstate = EXCLUDED.sqlstate, error = EXCLUDED.error,"
		" failures = f.failures + 1, last_failed_at = now(),"
		" retry_at = now() + make_interval(secs => least(power(2, f.failures),"
		CppAsString2(AWA_RETRY_MAX_SECS) "))",
		4, TEXTOID, TEXTOID, TEXTOID, TEXTOID);
	static AwaStmt delete_stmt = AWA_STMT("awa: deleting a maintenance failure", SPI_OK_DELETE,
		"DELETE FROM awa.maintenance_failures"
		" WHERE step = $1 AND item = $2",
		2, TEXTOID, TEXTOID);
	Failure    *f = ((SaveArgs *) arg)->f;
	Datum		values[4];

	values[0] = CStringGetTextDatum(step_names[f->step]);
	values[1] = CStringGetTextDatum(f->item);
	if (f->outcome == FAILURE_RESOLVED)
	{
		awa_stmt_run(&delete_stmt, values, NULL, 0);
		return;
	}
	values[2] = CStringGetTextDatum(unpack_sql_state(f->sqlerrcode));
	values[3] = CStringGetTextDatum(f->message);
	awa_stmt_run(&upsert_stmt, values, NULL, 0);
}

/*
 * Write what changed this round to awa.maintenance_failures, each row on
 * its own: a round without failures, before or now, writes nothing.
 */
static void
save_failures(RoundState *rs)
{
	ListCell   *lc;

	if (!rs->has_table)
	{
		save_local_failures(rs);
		return;
	}
	foreach(lc, rs->failures)
	{
		Failure    *f = (Failure *) lfirst(lc);
		SaveArgs	a = {f};
		ErrorData  *edata;

		if (f->outcome == FAILURE_UNCHANGED)
			continue;
		edata = awa_run_isolated(save_failure, &a);
		if (edata)
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("awa maintenance in database \"%s\": could not record a failure of step \"%s\": %s",
							rs->dbname, step_names[f->step], edata->message)));
	}
}

/* ---------------------------------------------------------------------
 * The steps
 * ---------------------------------------------------------------------
 */

/*
 * A step that works on job rows: a batch statement for the normal case,
 * and for when it fails, the ids it would have taken and a statement for
 * one of them, so that the others are still done and the bad ones skipped.
 */
typedef struct RowStep
{
	AwaStep		step;
	const char *errors_prefix;	/* appended to a skipped job's errors, or NULL */
	int64		(*batch) (Datum skip);
	int64	   *(*candidates) (Datum skip, int *n);
	int64		(*one) (int64 id);
} RowStep;

/* The arguments and result of a RowStep's statements run isolated. */
typedef struct RowCall
{
	const RowStep *rs;
	Datum		skip;
	int64		id;
	int64		n;
	const char *text;
} RowCall;

static void
call_batch(void *arg)
{
	RowCall    *c = (RowCall *) arg;

	c->n = c->rs->batch(c->skip);
}

static void
call_one(void *arg)
{
	RowCall    *c = (RowCall *) arg;

	c->n = c->rs->one(c->id);
}

/*
 * Record why a job was skipped in its errors ({"attempt", "error", "at"},
 * as awa_fail does: the text cut to awa.max_error_bytes with its marks, the
 * history bounded by awa.max_errors_kept), so that whoever looks at the job
 * sees it; not again when its last entry says the same.
 */
static void
call_annotate(void *arg)
{
	static AwaStmt stmt = AWA_STMT("awa: annotating a job", SPI_OK_UPDATE,
		"UPDATE awa.jobs SET errors = " AWA_ERRORS_SQL("errors", "$4", "$5", "$6",
													   "jsonb_build_object('attempt', attempt, 'error', $2, 'at', now())"
													   " || " AWA_ERROR_MARKS_SQL("$3"))
		" WHERE id = $1 AND (errors[cardinality(errors)]->>'error') IS DISTINCT FROM $2",
		6, INT8OID, TEXTOID, INT8OID, INT4OID, INT4OID, INT4OID);
	RowCall    *c = (RowCall *) arg;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int64		bytes;

	values[0] = Int64GetDatum(c->id);
	values[1] = PointerGetDatum(awa_error_arg(CStringGetTextDatum(c->text), &bytes));
	values[2] = Int64GetDatum(bytes);
	if (bytes < 0)
		nulls[2] = 'n';
	awa_errors_bounds(&values[3]);
	awa_stmt_run(&stmt, values, nulls, 0);
}

/* A job of a row step failed: note it and, the first time, annotate the job. */
static void
job_failed(RoundState *state, const RowStep *rs, int64 id, ErrorData *edata)
{
	char		item[32];
	char		what[64];

	snprintf(item, sizeof(item), INT64_FORMAT, id);
	snprintf(what, sizeof(what), "skipped job " INT64_FORMAT, id);
	if (note_failure(state, rs->step, item, what, edata) && rs->errors_prefix)
	{
		RowCall		c = {rs, (Datum) 0, id, 0, NULL};
		ErrorData  *e;

		c.text = psprintf("%s: %s", rs->errors_prefix, edata->message);
		e = awa_run_isolated(call_annotate, &c);
		if (e)
			FreeErrorData(e);
	}
}

/*
 * Run a row step: the batch, isolated; if it fails, row by row, each row
 * isolated.  Then the jobs recorded as failing before whose retry is due,
 * one by one.  After AWA_MAX_ROW_FAILURES rows in a row failed with none
 * done, the step gives up for this round and is reported as failing.
 */
static int64
run_row_step(RoundState *state, const RowStep *rs)
{
	RowCall		c = {rs, skip_ids(state, rs->step), 0, 0, NULL};
	ErrorData  *edata;
	int64		total = 0;
	ListCell   *lc;

	edata = awa_run_isolated(call_batch, &c);
	if (edata == NULL)
		total = c.n;
	else
	{
		int			n;
		int64	   *ids = rs->candidates(c.skip, &n);
		int			failed_in_row = 0;
		int			i;

		ereport(DEBUG1,
				(errmsg("awa maintenance in database \"%s\": step \"%s\" goes row by row after: %s",
						state->dbname, step_names[rs->step], edata->message)));
		FreeErrorData(edata);
		for (i = 0; i < n; i++)
		{
			c.id = ids[i];
			edata = awa_run_isolated(call_one, &c);
			if (edata == NULL)
			{
				total += c.n;
				failed_in_row = 0;
				continue;
			}
			job_failed(state, rs, ids[i], edata);
			if (++failed_in_row >= AWA_MAX_ROW_FAILURES && total == 0)
			{
				edata->message = psprintf("%d jobs in a row failed, the last with \"%s\", so the step gave up for this round",
										  failed_in_row, edata->message);
				(void) note_failure(state, rs->step, "", NULL, edata);
				FreeErrorData(edata);
				return total;
			}
			FreeErrorData(edata);
		}
	}

	foreach(lc, state->failures)
	{
		Failure    *f = (Failure *) lfirst(lc);

		if (f->step != rs->step || !f->retry || f->item[0] == '\0' ||
			!item_job_id(f->item, &c.id))
			continue;
		edata = awa_run_isolated(call_one, &c);
		if (edata == NULL)
		{
			total += c.n;
			note_success(state, rs->step, f->item);
		}
		else
		{
			job_failed(state, rs, c.id, edata);
			FreeErrorData(edata);
		}
	}
	return total;
}

/* Run an SPI plan that returns one bigint column; return its values. */
static int64 *
fetch_ids(SPIPlanPtr plan, Datum *values, int *n)
{
	int64	   *ids;
	uint64		i;
	int			ret = SPI_execute_plan(plan, values, NULL, true, 0);

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa: reading job ids failed: %s", SPI_result_code_string(ret));
	ids = palloc(sizeof(int64) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 1, &isnull));
	}
	*n = (int) SPI_processed;
	return ids;
}

/* The ids awa_job_promote would take. */
static int64 *
promote_candidates(Datum skip, int *n)
{
	return fetch_ids(awa_job_promote_candidates_plan(), &skip, n);
}

/* The ids awa_rescue_jobs would take. */
static int64 *
rescue_candidates(Datum skip, int *n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {INTERVALOID, INT8ARRAYOID};
	Interval	timeout;
	Datum		values[2];

	values[0] = awa_heartbeat_timeout_param(&timeout);
	values[1] = skip;
	return fetch_ids(awa_plan(&plan,
							  "SELECT id FROM awa.jobs WHERE state = 'running'"
							  " AND (heartbeat_at < now() - $1 OR deadline_at < now())"
							  " AND id <> ALL($2) LIMIT " CppAsString2(AWA_MAINTAIN_BATCH),
							  2, argtypes),
					 values, n);
}

/*
 * The finished jobs that retention deletes: completed ones older than
 * awa.retention_completed ($1 seconds) or failed and cancelled ones older
 * than awa.retention_failed ($2), -1 meaning never.  One branch per
 * setting, each in finalized_at order so that its plan, generic as every
 * saved plan, walks jobs_finalized_idx from the oldest job and stops at the
 * first one that is not old enough, instead of reading the table.
 */
#define RETENTION_OLD(cols, extra) \
	"(SELECT " cols " FROM awa.jobs WHERE state = 'completed' AND $1 >= 0" \
	"   AND finalized_at < now() - make_interval(secs => $1)" extra \
	"   ORDER BY finalized_at LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) ")" \
	" UNION ALL" \
	" (SELECT " cols " FROM awa.jobs WHERE state IN ('failed', 'cancelled') AND $2 >= 0" \
	"   AND finalized_at < now() - make_interval(secs => $2)" extra \
	"   ORDER BY finalized_at LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) ")"

/*
 * Retention: delete old finished jobs, at most AWA_MAINTAIN_BATCH a round,
 * leaving skip alone.  Caller is in SPI.
 */
#define DELETE_FINISHED_SQL(extra) \
	"WITH old AS (SELECT id FROM (" RETENTION_OLD("id", " AND id <> ALL($3)" extra) \
	"   ) o LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) ")," \
	" locked AS (SELECT j.id FROM awa.jobs j JOIN old ON j.id = old.id" \
	"   WHERE j.state IN " AWA_STATES_FINAL_SQL \
	"   FOR UPDATE OF j SKIP LOCKED)" \
	" DELETE FROM awa.jobs j USING locked WHERE j.id = locked.id"

/*
 * With job dependencies, a finished job stays while a job that runs after it
 * has not finished (deps.c).  Checked twice: when choosing the jobs, and
 * again after locking them, in a statement of its own and so with a newer
 * snapshot.  A dependent that named a job after the first check's snapshot
 * was taken has committed before the lock (its insert holds the job FOR
 * SHARE until it commits, and the lock waits for that) and is seen by the
 * second check; one that comes after the lock waits for this transaction
 * and then finds the job gone (23503).
 */
#define LOCK_FINISHED_DEPS_SQL \
	"SELECT j.id FROM awa.jobs j JOIN (SELECT id FROM (" \
	RETENTION_OLD("id", " AND id <> ALL($3)" AWA_DEPS_NOT_NEEDED_SQL("jobs")) \
	"   ) o LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) ") old ON j.id = old.id" \
	" WHERE j.state IN " AWA_STATES_FINAL_SQL \
	" FOR UPDATE OF j SKIP LOCKED"
#define DELETE_LOCKED_DEPS_SQL \
	"DELETE FROM awa.jobs j WHERE j.id = ANY($1)" AWA_DEPS_NOT_NEEDED_SQL("j")

/* Delete the jobs of ids (locked by this transaction) no dependent needs. */
static int64
delete_unneeded(Datum ids)
{
	static AwaStmt stmt = AWA_STMT("awa: deleting old jobs", SPI_OK_DELETE,
								   DELETE_LOCKED_DEPS_SQL, 1, INT8ARRAYOID);

	awa_stmt_run(&stmt, &ids, NULL, 0);
	return (int64) SPI_processed;
}

static int64
delete_finished_jobs(Datum skip)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};	/* [schema has dependencies] */
	static const Oid argtypes[] = {FLOAT8OID, FLOAT8OID, INT8ARRAYOID};
	Datum		values[3];
	Datum	   *ids;
	int			deps = awa_schema_has(AWA_SCHEMA_DEPENDENCIES) ? 1 : 0;
	int			ret;
	uint64		i;

	if (awa_retention_completed < 0 && awa_retention_failed < 0)
		return 0;
	values[0] = Float8GetDatum((double) awa_retention_completed);
	values[1] = Float8GetDatum((double) awa_retention_failed);
	values[2] = skip;
	if (!deps)
	{
		ret = SPI_execute_plan(awa_plan(&plans[0], DELETE_FINISHED_SQL(""), 3, argtypes),
							   values, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "awa: deleting old jobs failed: %s", SPI_result_code_string(ret));
		return (int64) SPI_processed;
	}
	/* deps.c: lock the candidates, then delete those no dependent needs */
	ret = SPI_execute_plan(awa_plan(&plans[1], LOCK_FINISHED_DEPS_SQL, 3, argtypes),
						   values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa: locking old jobs failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return 0;
	ids = palloc(sizeof(Datum) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	}
	return delete_unneeded(PointerGetDatum(construct_array(ids, (int) i, INT8OID, sizeof(int64),
														   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)));
}

/* The ids delete_finished_jobs would take. */
static int64 *
retention_candidates(Datum skip, int *n)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};	/* [schema has dependencies] */
	static const Oid argtypes[] = {FLOAT8OID, FLOAT8OID, INT8ARRAYOID};
	Datum		values[3];
	int			deps = awa_schema_has(AWA_SCHEMA_DEPENDENCIES) ? 1 : 0;

	values[0] = Float8GetDatum((double) awa_retention_completed);
	values[1] = Float8GetDatum((double) awa_retention_failed);
	values[2] = skip;
	return fetch_ids(awa_plan(&plans[deps], deps ?
							  "SELECT id FROM (" RETENTION_OLD("id", " AND id <> ALL($3)"
															   AWA_DEPS_NOT_NEEDED_SQL("jobs"))
							  ") o LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) :
							  "SELECT id FROM (" RETENTION_OLD("id", " AND id <> ALL($3)")
							  ") o LIMIT " CppAsString2(AWA_MAINTAIN_BATCH),
							  3, argtypes),
					 values, n);
}

/* Delete one job if retention still wants it deleted; 1 if it was. */
static int64
retention_one(int64 id)
{
#define RETENTION_ONE_OLD_SQL \
		"SELECT id FROM awa.jobs WHERE id = $3" \
		"   AND ((state = 'completed' AND $1 >= 0" \
		"     AND finalized_at < now() - make_interval(secs => $1))" \
		"   OR (state IN ('failed', 'cancelled') AND $2 >= 0" \
		"     AND finalized_at < now() - make_interval(secs => $2)))"
	static AwaStmt delete_one = AWA_STMT("awa: deleting a job", SPI_OK_DELETE,
										 "WITH old AS (" RETENTION_ONE_OLD_SQL " FOR UPDATE SKIP LOCKED)"
										 " DELETE FROM awa.jobs j USING old WHERE j.id = old.id",
										 3, FLOAT8OID, FLOAT8OID, INT8OID);
	/* with dependencies: lock, then delete if no dependent needs it (above) */
	static AwaStmt lock_one = AWA_STMT("awa: locking a job", SPI_OK_SELECT,
									   RETENTION_ONE_OLD_SQL AWA_DEPS_NOT_NEEDED_SQL("jobs")
									   " FOR UPDATE SKIP LOCKED",
									   3, FLOAT8OID, FLOAT8OID, INT8OID);
	Datum		values[3];
	Datum		one;

	values[0] = Float8GetDatum((double) awa_retention_completed);
	values[1] = Float8GetDatum((double) awa_retention_failed);
	values[2] = Int64GetDatum(id);
	if (!awa_schema_has(AWA_SCHEMA_DEPENDENCIES))
	{
		awa_stmt_run(&delete_one, values, NULL, 0);
		return (int64) SPI_processed;
	}
	if (awa_stmt_run(&lock_one, values, NULL, 0) == 0)
		return 0;
	one = Int64GetDatum(id);
	return delete_unneeded(PointerGetDatum(construct_array(&one, 1, INT8OID, sizeof(int64),
														   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)));
}

static const RowStep promote_step = {
	STEP_PROMOTE, "not promoted by maintenance",
	awa_job_promote, promote_candidates, awa_job_promote_one
};
static const RowStep rescue_step = {
	STEP_RESCUE, "not rescued by maintenance",
	awa_rescue_jobs, rescue_candidates, awa_rescue_job
};
/* The ids awa_job_callback_timeouts would take. */
static int64 *
callback_candidates(Datum skip, int *n)
{
	return fetch_ids(awa_job_callback_timeout_candidates_plan(), &skip, n);
}

static const RowStep callback_step = {
	STEP_CALLBACKS, "callback not timed out by maintenance",
	awa_job_callback_timeouts, callback_candidates, awa_job_callback_timeout_one
};
static const RowStep retention_step = {
	STEP_RETENTION, NULL,
	delete_finished_jobs, retention_candidates, retention_one
};

/* on_failure of awa_fire_schedules: a periodic job was stopped. */
static void
schedule_failed(const char *name, ErrorData *edata, void *arg)
{
	RoundState *state = (RoundState *) arg;
	char	   *what = psprintf("stopped periodic job \"%s\"", name);

	(void) note_failure(state, STEP_SCHEDULES, name, what, edata);
}

/*
 * Periodic jobs stopped after a failure in an earlier round stay recorded
 * while they are stopped; once fixed (next_fire_at set again, by
 * awa_schedule) or gone, the record goes.
 */
static void
check_stopped_schedules(RoundState *state)
{
	static AwaStmt stmt = AWA_QUERY("awa: reading a periodic job",
		"SELECT 1 FROM awa.cron_jobs WHERE name = $1"
		" AND next_fire_at IS NULL",
		1, TEXTOID);
	ListCell   *lc;

	foreach(lc, state->failures)
	{
		Failure    *f = (Failure *) lfirst(lc);
		Datum		value;
	
		if (f->step != STEP_SCHEDULES || !f->recorded || f->item[0] == '\0' ||
			f->outcome != FAILURE_UNCHANGED)
			continue;
		value = CStringGetTextDatum(f->item);
		awa_stmt_run(&stmt, &value, NULL, 1);
		if (SPI_processed == 0)
			f->outcome = FAILURE_RESOLVED;
	}
}

/* The arguments and result of one step run isolated. */
typedef struct StepCall
{
	RoundState *state;
	AwaStep		step;
	int64		n;
} StepCall;

static void
call_step(void *arg)
{
	StepCall   *c = (StepCall *) arg;

	/* hook: radmin -- steps of awa.jobs' table, done by the ring's own steps there */
	if (awa_engine_table_step_skipped(c->step == STEP_PROMOTE || c->step == STEP_RESCUE ||
									  c->step == STEP_RETENTION || c->step == STEP_CALLBACKS))
		return;
	switch (c->step)
	{
		case STEP_PROMOTE:
			c->n = run_row_step(c->state, &promote_step);
			break;
		case STEP_RESCUE:
			c->n = run_row_step(c->state, &rescue_step);
			break;
		case STEP_SCHEDULES:
			c->n = awa_fire_schedules(schedule_failed, c->state);
			check_stopped_schedules(c->state);
			break;
		case STEP_RETENTION:
			c->n = run_row_step(c->state, &retention_step);
			break;
		case STEP_CALLBACKS:
			/* parked jobs exist only from the 0.3.0 schema on */
			if (awa_schema_has(AWA_SCHEMA_EXTERNAL))
				c->n = run_row_step(c->state, &callback_step);
			break;
		case STEP_COUNTERS:
			c->n = awa_counters_fold();
			break;
		case STEP_HISTORY:
			c->n = awa_history_fold();
			(void) awa_history_expire(awa_retention_history);
			break;
		default:
			/* hook: rmaint */
			if (c->step >= STEP_RING_FIRST && c->step <= STEP_RING_LAST)
			{
				c->n = awa_ring_maint_step((AwaRingStep) (c->step - STEP_RING_FIRST));
				break;
			}
			elog(ERROR, "awa: unknown maintenance step %d", (int) c->step);
	}
}

/*
 * Run one step in its own subtransaction, so that its failure costs only
 * its own work: it is logged, recorded and the round goes on.  Returns the
 * step's count (0 when it failed).
 */
static int64
run_step(RoundState *state, AwaStep step)
{
	StepCall	c = {state, step, 0};
	Failure    *f = find_failure(state, step, "");
	ErrorData  *edata;

	edata = awa_run_isolated(call_step, &c);
	if (state->warned[step] > AWA_MAX_WARNINGS)
		ereport(WARNING,
				(errmsg("awa maintenance in database \"%s\": step \"%s\" skipped %d more, not logged one by one",
						state->dbname, step_names[step],
						state->warned[step] - AWA_MAX_WARNINGS),
				 errhint("See awa.maintenance_failures.")));
	if (edata != NULL)
	{
		(void) note_failure(state, step, "", NULL, edata);
		FreeErrorData(edata);
		return 0;
	}
	/* unless it gave up row by row, the step as a whole worked */
	if (f == NULL || f->outcome == FAILURE_UNCHANGED)
		note_success(state, step, "");
	return c.n;
}

static void
call_load_failures(void *arg)
{
	load_failures(arg);
}

/* ---------------------------------------------------------------------
 * One round
 * ---------------------------------------------------------------------
 */

/*
 * Run one round in the current transaction of the current database, unless
 * another session is running one: then return false at once.  Each step
 * runs isolated (see run_step), so a failing step or job row stops only
 * itself; failures are logged as WARNINGs and, from schema 0.3.0 on,
 * recorded in awa.maintenance_failures for awa_health_check (before
 * that, remembered in this backend only).
 */
static void record_round(void);

static bool
maintain_round(AwaRound *r)
{
	LOCKTAG		tag;
	TimestampTz start;
	RoundState	state;
	ErrorData  *edata;
	int			gucnest;

	memset(r, 0, sizeof(*r));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, AWA_LOCK_KEY1, AWA_LOCK_KEY2, 2);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;

	start = GetCurrentTimestamp();

	/*
	 * No JIT: a round's statements are short index scans, but their generic
	 * plans are costed for a full batch (retention: 10000 deletes), above
	 * jit_above_cost, and compiling them took 30-70 ms every round.
	 */
	gucnest = NewGUCNestLevel();
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	SPI_connect();
	memset(&state, 0, sizeof(state));
	state.dbname = get_database_name(MyDatabaseId);
	if (state.dbname == NULL)
		state.dbname = "?";
	state.has_table = failures_table_exists();
	if (state.has_table && (edata = awa_run_isolated(call_load_failures, &state)) != NULL)
	{
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("awa maintenance in database \"%s\": could not read awa.maintenance_failures: %s",
						state.dbname, edata->message)));
		state.has_table = false;
		state.failures = NIL;
	}
	if (!state.has_table)
		load_local_failures(&state);

	(void) run_step(&state, STEP_COUNTERS);
	r->promoted = run_step(&state, STEP_PROMOTE);
	r->rescued = run_step(&state, STEP_RESCUE);
	r->rescued += run_step(&state, STEP_CALLBACKS);
	r->periodic = run_step(&state, STEP_SCHEDULES);
	r->deleted = run_step(&state, STEP_RETENTION);
	(void) run_step(&state, STEP_HISTORY);
	/*
	 * hook: rmaint -- the ring's steps last (ring_maint.c): the reclaim's
	 * locks are held to the commit; rotated and reclaimed slots are logged.
	 */
	r->promoted += run_step(&state, STEP_RING_FIRST + AWA_RING_STEP_PROMOTE);
	r->rescued += run_step(&state, STEP_RING_FIRST + AWA_RING_STEP_RESCUE);
	r->rescued += run_step(&state, STEP_RING_FIRST + AWA_RING_STEP_CALLBACKS);
	r->deleted += run_step(&state, STEP_RING_FIRST + AWA_RING_STEP_HISTORY);
	(void) run_step(&state, STEP_RING_FIRST + AWA_RING_STEP_UPKEEP);	/* hook: rmisc */
	r->ring_rotated = run_step(&state, STEP_RING_FIRST + AWA_RING_STEP_ROTATE);
	r->ring_reclaimed = run_step(&state, STEP_RING_FIRST + AWA_RING_STEP_RECLAIM);
	save_failures(&state);
	record_round();
	SPI_finish();
	AtEOXact_GUC(true, gucnest);

	awa_set_maintained(GetCurrentTimestamp());
	r->duration_ms = (double) (GetCurrentTimestamp() - start) / 1000.0;
	if (r->promoted + r->rescued + r->periodic + r->deleted > 0)
		ereport(awa_maintenance_log_level,
				(errmsg("awa maintenance in database \"%s\": promoted %lld, rescued %lld, periodic jobs enqueued %lld, deleted %lld",
						state.dbname, (long long) r->promoted, (long long) r->rescued,
						(long long) r->periodic, (long long) r->deleted),
				 errdetail("The round took %.1f ms.", r->duration_ms)));
	/* hook: rmaint */
	if (r->ring_rotated + r->ring_reclaimed > 0)
		ereport(awa_maintenance_log_level,
				(errmsg("awa maintenance in database \"%s\": ring slots sealed %lld, reclaimed %lld",
						state.dbname, (long long) r->ring_rotated, (long long) r->ring_reclaimed)));
	return true;
}

/*
 * Record that a round finished in this database, for awa_health_check: in
 * shared memory when awa is preloaded, else (rounds driven by pg_cron or a
 * script) in awa.maintenance_rounds, when the schema has it.  Caller is in
 * SPI; the row commits with the round.
 */
static void
record_round(void)
{
	static SPIPlanPtr plan = NULL;

	if (awa_dbstate_round_finished(GetCurrentTimestamp()) ||
		!awa_schema_has(AWA_SCHEMA_ROUNDS))
		return;
	if (SPI_execute_plan(awa_plan(&plan,
								  "INSERT INTO awa.maintenance_rounds AS m (last_round_at)"
								  " VALUES (clock_timestamp())"
								  " ON CONFLICT (singleton) DO UPDATE SET last_round_at = excluded.last_round_at",
								  0, NULL),
						 NULL, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "awa maintenance: recording the round failed");
}

/*
 * awa_maintain() RETURNS TABLE (promoted, rescued, deleted,
 *		periodic_enqueued, duration_ms)
 *
 * One maintenance round (see the top of this file) in the caller's
 * transaction.  When another session is running a round in this database,
 * returns at once with zeros and a NULL duration.
 */
Datum
awa_maintain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AwaRound	r;
	bool		done;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	awa_check_writable("awa_maintain");

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	done = maintain_round(&r);
	values[0] = Int64GetDatum(r.promoted);
	values[1] = Int64GetDatum(r.rescued);
	values[2] = Int64GetDatum(r.deleted);
	values[3] = Int64GetDatum(r.periodic);
	values[4] = Float8GetDatum(r.duration_ms);
	nulls[4] = !done;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * CALL awa_maintain_for(duration, every)
 *
 * Maintenance rounds, each in its own transaction, every `every` for
 * `duration`: for schedulers that run a command at most once a minute
 * (pg_cron 1.4), CALL awa_maintain_for('58 seconds') every minute gives
 * rounds every second.  Must be CALLed outside a transaction block (it
 * commits after each round); a cancel or statement_timeout ends it.
 */
Datum
awa_maintain_for(PG_FUNCTION_ARGS)
{
	Interval   *duration;
	Interval   *every;
	int64		duration_us;
	int64		every_us;
	TimestampTz end;
	bool		nonatomic;
	char	   *schema;
	char	   *round_sql;

	awa_check_not_null(fcinfo, 0, "duration");
	awa_check_not_null(fcinfo, 1, "every");
	duration = PG_GETARG_INTERVAL_P(0);
	every = PG_GETARG_INTERVAL_P(1);
	duration_us = awa_check_delay(duration, "duration", false);
	every_us = awa_check_delay(every, "every", true);
	if (every_us < 10 * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every must be at least 10 milliseconds")));
	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (!nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("awa_maintain_for must be called with CALL outside a transaction block"),
				 errdetail("It commits after each maintenance round."),
				 errhint("Run CALL awa_maintain_for(...) on its own, or call awa_maintain() instead.")));
	awa_check_writable("awa_maintain_for");

	/*
	 * A procedure that commits cannot be SECURITY DEFINER: each round runs
	 * through awa_maintain(), which is, so the caller needs only EXECUTE.
	 */
	schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	round_sql = psprintf("SELECT * FROM %s.awa_maintain()", quote_identifier(schema));

	end = GetCurrentTimestamp() + duration_us;
	for (;;)
	{
		TimestampTz now;

		SPI_connect_ext(SPI_OPT_NONATOMIC);
		if (SPI_execute(round_sql, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "awa_maintain_for: the round failed");
		SPI_commit();
		SPI_finish();

		now = GetCurrentTimestamp();
		if (now + every_us > end)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 every_us / 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------------
 */

/*
 * Split a copy of an awa.databases value into a list of names.  Names are
 * taken as written (case kept); double quotes allow commas in a name.
 * Returns false if the list is malformed.
 */
static bool
split_databases(const char *value, List **names)
{
	char	   *copy = pstrdup(value);
	ListCell   *lc;

	*names = NIL;
	if (!SplitGUCList(copy, ',', names))
		return false;
	foreach(lc, *names)
	{
		const char *name = (const char *) lfirst(lc);

		if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
			return false;
	}
	return list_length(*names) <= AWA_MAX_LISTED_DATABASES;
}

/* check_hook of awa.databases: reject a malformed list. */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	List	   *names;

	if (!split_databases(*newval, &names))
	{
		GUC_check_errdetail("List syntax is invalid: give at most %d database names separated by commas.",
							AWA_MAX_LISTED_DATABASES);
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------------
 * Shared by the launcher and the workers
 * ---------------------------------------------------------------------
 */

/*
 * Whether somebody holds or waits for a lock on the database that
 * conflicts with a connection (DROP DATABASE, ALTER DATABASE RENAME,
 * CREATE DATABASE ... TEMPLATE): try the lock a new connection takes
 * (see InitPostgres) without waiting, and let it go at once.
 */
static bool
database_wanted_elsewhere(Oid dboid)
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, dboid, 0);
	if (LockAcquire(&tag, RowExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, RowExclusiveLock, true);
	return false;
}

/* Name the process "awa maintenance" in pg_stat_activity and in logs. */
static void
set_application_name(void)
{
	SetConfigOption("application_name", AWA_BGW_TYPE, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname(AWA_BGW_TYPE);
}

/* ---------------------------------------------------------------------
 * Worker: one database
 * ---------------------------------------------------------------------
 */

/* Error context of a round in a worker: name the database. */
static void
round_error_callback(void *arg)
{
	errcontext("awa maintenance round in database \"%s\"", (const char *) arg);
}

/*
 * Run one round in its own transaction.  Returns false if it failed (the
 * error is logged and the transaction rolled back).  *not_installed tells
 * that the extension is not (or no longer) installed in the database.
 */
static bool
worker_round(const char *dbname, volatile bool *not_installed)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorContextCallback errcallback;
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "awa maintenance round");

	PG_TRY();
	{
		if (OidIsValid(get_extension_oid("awa", true)))
		{
			AwaRound	r;

			/* pushed inside PG_TRY, so that PG_END_TRY and PG_CATCH pop it */
			errcallback.callback = round_error_callback;
			errcallback.arg = (void *) dbname;
			errcallback.previous = error_context_stack;
			error_context_stack = &errcallback;
			(void) maintain_round(&r);
			error_context_stack = errcallback.previous;
		}
		else
		{
			/*
			 * Not (or no longer) installed: say so to the launcher and leave;
			 * it starts a worker again when CREATE EXTENSION awa commits here.
			 */
			ereport(DEBUG1,
					(errmsg("awa maintenance: extension \"awa\" is not installed in database \"%s\"",
							dbname)));
			(void) awa_dbstate_set(MyDatabaseId, AWA_DB_NO_AWA, 0);
			*not_installed = true;
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		RESUME_INTERRUPTS();
		ok = false;
	}
	PG_END_TRY();

	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * Main of a worker: bgw_extra is the database name, main_arg the pid of
 * the launcher that started it.
 */
void
awa_maintenance_worker_main(Datum main_arg)
{
	int			launcher_pid = DatumGetInt32(main_arg);
	char		dbname[NAMEDATALEN];
	MemoryContext loopcxt;
	volatile bool not_installed = false;
	bool		ok;
	int			failures = 0;
	TimestampTz last_round = 0;
	TimestampTz next_round = 0;

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, sizeof(dbname));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	set_application_name();
	pgstat_report_activity(STATE_IDLE, NULL);
	ereport(DEBUG1,
			(errmsg("awa maintenance worker started in database \"%s\"", dbname)));

	loopcxt = AllocSetContextCreate(TopMemoryContext, "awa maintenance round",
									ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		TimestampTz now;
		long		wait_ms;
		TimestampTz launcher_seen;
		int			current_pid;

		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (failures == 0 && last_round != 0)
				next_round = TimestampTzPlusMilliseconds(last_round, awa_maintenance_interval);
		}

		/* Exit when the launcher that started this worker is gone. */
		awa_get_maintainer(&launcher_seen, &current_pid);
		if (current_pid != launcher_pid)
			proc_exit(0);

		/* Step aside for DROP DATABASE and friends. */
		if (database_wanted_elsewhere(MyDatabaseId))
		{
			ereport(LOG,
					(errmsg("awa maintenance worker leaves database \"%s\", which another session needs alone",
							dbname)));
			proc_exit(0);
		}

		now = GetCurrentTimestamp();
		if (now >= next_round)
		{
			MemoryContext old = MemoryContextSwitchTo(loopcxt);

			last_round = now;
			ok = worker_round(dbname, &not_installed);
			if (not_installed)
				proc_exit(0);	/* the launcher looks again on CREATE EXTENSION */
			if (ok)
			{
				failures = 0;
				next_round = TimestampTzPlusMilliseconds(now, awa_maintenance_interval);
			}
			else
			{
				int64		backoff = awa_maintenance_interval;
				int			k;

				failures++;
				for (k = 0; k < failures && backoff < AWA_ERROR_BACKOFF_MAX_MS; k++)
					backoff *= 2;
				next_round = TimestampTzPlusMilliseconds(now, Min(backoff, AWA_ERROR_BACKOFF_MAX_MS));
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(loopcxt);
			now = GetCurrentTimestamp();
		}

		wait_ms = (long) ((next_round - now) / 1000);
		wait_ms = Max(wait_ms, 1);
		wait_ms = Min(wait_ms, AWA_WORKER_CHECK_MS);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * Launcher: one worker per database that has awa
 * ---------------------------------------------------------------------
 */

/* What the launcher knows of one database of pg_database. */
typedef struct DbSlot
{
	BackgroundWorkerHandle *handle; /* NULL when no worker runs */
	TimestampTz started_at;		/* last start, to pace restarts */
	TimestampTz no_awa_since;	/* when a worker found no extension there */
	Oid			dboid;			/* InvalidOid: free */
	AwaDbStatus status;			/* as published in dbstate.c */
	bool		seen;			/* in pg_database at the last scan */
	bool		logged;			/* a problem was logged since the last success */
	char		name[NAMEDATALEN];
} DbSlot;

static DbSlot db_slots[AWA_MAX_DATABASES];
static bool too_many_logged = false;

/* Ask a worker to stop, and forget it. */
static void
stop_slot(DbSlot *slot)
{
	if (slot->handle)
	{
		TerminateBackgroundWorker(slot->handle);
		pfree(slot->handle);
		slot->handle = NULL;
	}
}

/* Launcher exit: stop the workers and clear what others look at. */
static void
launcher_on_exit(int code, Datum arg)
{
	int			i;

	for (i = 0; i < AWA_MAX_DATABASES; i++)
		if (OidIsValid(db_slots[i].dboid))
		{
			stop_slot(&db_slots[i]);
			awa_dbstate_forget(db_slots[i].dboid);
		}
	awa_dbstate_launcher(-1);
	awa_set_maintainer_pid(0);
}

/* Whether awa.databases lets the launcher maintain this database. */
static bool
database_listed(const char *name, bool is_template, bool *explicitly)
{
	List	   *names;
	ListCell   *lc;

	*explicitly = false;
	if (!split_databases(awa_databases, &names))
		return false;			/* cannot happen: the check hook refused it */
	foreach(lc, names)
	{
		const char *listed = (const char *) lfirst(lc);

		if (strcmp(listed, "*") == 0 && !is_template)
			return true;
		if (strcmp(listed, name) == 0)
		{
			*explicitly = true;
			return true;
		}
	}
	return false;
}

/* Publish a slot's status for awa_health_check. */
static void
set_status(DbSlot *slot, AwaDbStatus status, int pid)
{
	slot->status = status;
	(void) awa_dbstate_set(slot->dboid, status, pid);
}

/* The slot of a database, or a free one (NULL when all are taken). */
static DbSlot *
slot_for(Oid dboid, const char *name)
{
	DbSlot	   *free_slot = NULL;
	int			i;

	for (i = 0; i < AWA_MAX_DATABASES; i++)
	{
		if (db_slots[i].dboid == dboid)
			return &db_slots[i];
		if (free_slot == NULL && !OidIsValid(db_slots[i].dboid))
			free_slot = &db_slots[i];
	}
	if (free_slot == NULL)
	{
		if (!too_many_logged)
			ereport(LOG,
					(errmsg("awa maintenance: more than %d databases; database \"%s\" and any later ones are not maintained",
							AWA_MAX_DATABASES, name),
					 errhint("List the databases that have awa in awa.databases.")));
		too_many_logged = true;
		return NULL;
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->dboid = dboid;
	strlcpy(free_slot->name, name, NAMEDATALEN);
	return free_slot;
}

/*
 * What the launcher and each database's worker have in common: a
 * background worker of awa.so with a database connection, started once
 * recovery is over, running function, restarted after restart_secs
 * (BGW_NEVER_RESTART: not).  The caller fills in its name and argument.
 */
static void
describe_worker(BackgroundWorker *worker, const char *function, int restart_secs)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = restart_secs;
	strlcpy(worker->bgw_library_name, "awa", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_type, AWA_BGW_TYPE, BGW_MAXLEN);
}

/* Start the worker of one database if it is not running and may start. */
static void
launch_one(DbSlot *slot, TimestampTz now)
{
	BackgroundWorker worker;
	pid_t		pid;
	bool		recheck;
	AwaDbStatus published = awa_dbstate_status(slot->dboid, &recheck);

	if (slot->handle != NULL)
	{
		switch (GetBackgroundWorkerPid(slot->handle, &pid))
		{
			case BGWH_STARTED:
				if (slot->status != AWA_DB_WORKER)
					set_status(slot, AWA_DB_WORKER, (int) pid);
				return;
			case BGWH_NOT_YET_STARTED:
				return;
			case BGWH_POSTMASTER_DIED:
				proc_exit(1);
				break;
			case BGWH_STOPPED:
				pfree(slot->handle);
				slot->handle = NULL;
				/* a worker that found no extension said so before leaving */
				if (published == AWA_DB_NO_AWA)
				{
					slot->status = AWA_DB_NO_AWA;
					slot->no_awa_since = now;
				}
				else
					set_status(slot, AWA_DB_UNKNOWN, 0);
				break;
		}
	}

	/*
	 * No extension there: look again when CREATE EXTENSION awa commits
	 * there (recheck), or after a while.  Otherwise pace restarts.
	 */
	if (slot->status == AWA_DB_NO_AWA && !recheck &&
		now < TimestampTzPlusMilliseconds(slot->no_awa_since, AWA_NO_AWA_RECHECK_MS))
		return;
	if (slot->started_at != 0 && !recheck &&
		now < TimestampTzPlusMilliseconds(slot->started_at, AWA_WORKER_RESTART_MS))
		return;
	if (database_wanted_elsewhere(slot->dboid))
		return;

	describe_worker(&worker, "awa_maintenance_worker_main", BGW_NEVER_RESTART);
	snprintf(worker.bgw_name, BGW_MAXLEN, "awa maintenance worker for database %s", slot->name);
	strlcpy(worker.bgw_extra, slot->name, BGW_EXTRALEN);
	worker.bgw_main_arg = Int32GetDatum(MyProcPid);
	worker.bgw_notify_pid = MyProcPid;

	slot->started_at = now;
	awa_dbstate_clear_recheck(slot->dboid);
	if (!RegisterDynamicBackgroundWorker(&worker, &slot->handle))
	{
		slot->handle = NULL;
		if (slot->status != AWA_DB_NO_SLOT)
			ereport(LOG,
					(errmsg("awa maintenance: no background worker slot is free for database \"%s\", which is not maintained",
							slot->name),
					 errhint("Raise max_worker_processes: awa needs one for its launcher and one per database that has awa.")));
		set_status(slot, AWA_DB_NO_SLOT, 0);
		return;
	}
	if (slot->status == AWA_DB_NO_SLOT)
		ereport(LOG,
				(errmsg("awa maintenance: started a worker for database \"%s\"", slot->name)));
	/* the worker publishes AWA_DB_WORKER once it runs; until then: unknown */
	if (slot->status != AWA_DB_NO_AWA)
		set_status(slot, AWA_DB_UNKNOWN, 0);
}

/*
 * Look at every database of pg_database (a shared catalog, readable
 * without a database connection): start or keep a worker in each one that
 * awa.databases lets in, stop the workers of databases gone or no longer
 * listed.  A heap scan, not the index: until the first client connects
 * after initdb, the shared relcache init file that holds the index's
 * descriptor does not exist, and building it would need pg_class.
 */
static void
scan_databases(TimestampTz now)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	int			i;

	for (i = 0; i < AWA_MAX_DATABASES; i++)
		db_slots[i].seen = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		const char *name = NameStr(db->datname);
		bool		explicitly;
		DbSlot	   *slot;

		if (!database_listed(name, db->datistemplate, &explicitly))
		{
			/* say so where it matters: a listed-only setup */
			(void) awa_dbstate_set(db->oid, AWA_DB_NOT_LISTED, 0);
			continue;
		}
		slot = slot_for(db->oid, name);
		if (slot == NULL)
			continue;
		slot->seen = true;
		if (!db->datallowconn || db->datconnlimit == DATCONNLIMIT_INVALID_DB)
		{
			if (explicitly && !slot->logged)
				ereport(LOG,
						(errmsg("awa maintenance: database \"%s\" does not allow connections, skipping it",
								name)));
			slot->logged = true;
			stop_slot(slot);
			set_status(slot, AWA_DB_UNREACHABLE, 0);
			continue;
		}
		if (slot->status == AWA_DB_UNREACHABLE)
			set_status(slot, AWA_DB_UNKNOWN, 0);
		slot->logged = false;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	for (i = 0; i < AWA_MAX_DATABASES; i++)
	{
		DbSlot	   *slot = &db_slots[i];

		if (!OidIsValid(slot->dboid))
			continue;
		if (!slot->seen)
		{
			/* dropped, or no longer in awa.databases */
			stop_slot(slot);
			awa_dbstate_forget(slot->dboid);
			slot->dboid = InvalidOid;
			continue;
		}
		if (slot->status != AWA_DB_UNREACHABLE)
			launch_one(slot, now);
	}
}

/* Main of the launcher (registered in awa_maintain_init). */
void
awa_maintenance_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	set_application_name();

	awa_set_maintainer_pid(MyProcPid);
	before_shmem_exit(launcher_on_exit, (Datum) 0);
	ereport(LOG, (errmsg("awa maintenance launcher started")));

	/* backends that create or drop awa wake us through our latch */
	awa_dbstate_launcher(MyProc->pgprocno);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		scan_databases(GetCurrentTimestamp());
		pgstat_report_activity(STATE_IDLE, NULL);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 AWA_LAUNCHER_TICK_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Define the maintenance settings and, when awa is being preloaded,
 * register the launcher.  Called from _PG_init before the awa prefix is
 * reserved.
 */
void
awa_maintain_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("awa.maintenance_interval",
							"Time between two maintenance rounds of the background worker in each database.",
							NULL,
							&awa_maintenance_interval,
							1000,
							10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("awa.databases",
							   "Databases the awa maintenance launcher may keep a worker in, separated by commas; * for every one.",
							   "The launcher keeps a worker in each of them where the extension is installed (* leaves out template databases). Empty means none.",
							   &awa_databases,
							   "*",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_databases, NULL, NULL);

	DefineCustomIntVariable("awa.retention_completed",
							"Completed jobs older than this are deleted by maintenance.",
							"-1 keeps them forever.",
							&awa_retention_completed,
							86400,
							-1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.retention_failed",
							"Failed and cancelled jobs older than this are deleted by maintenance.",
							"-1 keeps them forever.",
							&awa_retention_failed,
							7 * 86400,
							-1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.retention_history",
							"Throughput history (awa_queue_history) older than this is deleted by maintenance.",
							"-1 keeps it forever.",
							&awa_retention_history,
							7 * 86400,
							-1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("awa.maintenance_log_level",
							 "Level of the message a maintenance round that did something writes (what it promoted, rescued, enqueued and deleted).",
							 "log writes it to the server log as long as log_min_messages lets LOG through; debug1 (the default) keeps it out.",
							 &awa_maintenance_log_level,
							 DEBUG1,
							 log_level_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	describe_worker(&worker, "awa_maintenance_launcher_main", AWA_LAUNCHER_RESTART_SECS);
	strlcpy(worker.bgw_name, "awa maintenance launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}
