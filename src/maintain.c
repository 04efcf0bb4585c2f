/*-------------------------------------------------------------------------
 *
 * maintain.c
 *		Maintenance: awa_maintain(), the background workers that call it,
 *		and retention.  Periodic jobs are fired by schedule.c.
 *
 * One maintenance round, in one transaction of one database:
 *	 1. promote scheduled and retryable jobs whose run_at has come to
 *		available, so listeners get their NOTIFY and blocked claimers wake
 *		(awa_claim takes such jobs by itself; promotion is for them and for
 *		the statistics);
 *	 2. rescue running jobs with a stale heartbeat or a passed deadline;
 *	 3. enqueue the jobs of due periodic schedules;
 *	 4. delete completed jobs older than awa.retention_completed and failed
 *		or cancelled ones older than awa.retention_failed.
 * Steps 1, 3 and 4 touch at most AWA_MAINTAIN_BATCH rows each, so a round
 * never holds locks for long; what is left is done by the next round.
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
 * when the launcher that started them is gone.  An error in a round is
 * logged, the transaction rolled back and the next round runs; after
 * consecutive errors the rounds back off up to AWA_ERROR_BACKOFF_MAX_MS.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
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
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "awa.h"
#include "maintain.h"

PG_FUNCTION_INFO_V1(awa_maintain);

PGDLLEXPORT void awa_maintenance_launcher_main(Datum main_arg);
PGDLLEXPORT void awa_maintenance_worker_main(Datum main_arg);

/* The advisory lock of a round: "awa" in ASCII, then 1 for maintenance. */
#define AWA_LOCK_KEY1				0x617761
#define AWA_LOCK_KEY2				1

#define AWA_BGW_TYPE				"awa maintenance"
#define AWA_MAX_DATABASES			64
#define AWA_LAUNCHER_RESTART_SECS	1
#define AWA_WORKER_RESTART_MS		5000
#define AWA_LAUNCHER_TICK_MS		1000
#define AWA_WORKER_CHECK_MS			500
#define AWA_ERROR_BACKOFF_MAX_MS	60000

/* Settings */
static int	awa_maintenance_interval = 1000;	/* ms */
static char *awa_databases = NULL;
static int	awa_retention_completed = 86400;	/* s, -1 keeps forever */
static int	awa_retention_failed = 7 * 86400;	/* s, -1 keeps forever */

/* The outcome of one round. */
typedef struct AwaRound
{
	int64		promoted;
	int64		rescued;
	int64		deleted;
	int64		periodic;
	double		duration_ms;
} AwaRound;

/* ---------------------------------------------------------------------
 * One round
 * ---------------------------------------------------------------------
 */

/*
 * Promote due scheduled and retryable jobs to available, oldest run_at
 * first, and tell each queue that got some.  Caller is in SPI.
 */
static int64
promote_due_jobs(void)
{
	static SPIPlanPtr plan = NULL;
	int64		total = 0;
	uint64		i;
	int			ret;

	ret = SPI_execute_plan(awa_plan(&plan,
									"WITH due AS (SELECT id FROM awa.jobs"
									"   WHERE state IN ('scheduled', 'retryable') AND run_at <= now()"
									"   ORDER BY run_at"
									"   LIMIT " CppAsString2(AWA_MAINTAIN_BATCH) " FOR UPDATE SKIP LOCKED),"
									" promoted AS (UPDATE awa.jobs j SET state = 'available'"
									"   FROM due WHERE j.id = due.id RETURNING j.queue)"
									" SELECT queue, count(*) FROM promoted GROUP BY queue",
									0, NULL),
						   NULL, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa: promoting jobs failed: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		awa_job_available(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		total += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
											 SPI_tuptable->tupdesc, 2, &isnull));
	}
	return total;
}

/*
 * Delete up to limit jobs in the given terminal states finalized more than
 * age_secs ago.  Caller is in SPI.
 */
static int64
delete_old_jobs(SPIPlanPtr *cache, const char *states, int age_secs, int64 limit)
{
	static const Oid argtypes[] = {FLOAT8OID, INT8OID};
	char		sql[512];
	Datum		values[2];
	int			ret;

	if (age_secs < 0 || limit <= 0)
		return 0;
	snprintf(sql, sizeof(sql),
			 "WITH old AS (SELECT id FROM awa.jobs"
			 "   WHERE state IN (%s) AND finalized_at < now() - make_interval(secs => $1)"
			 "   LIMIT $2 FOR UPDATE SKIP LOCKED)"
			 " DELETE FROM awa.jobs j USING old WHERE j.id = old.id",
			 states);
	values[0] = Float8GetDatum((double) age_secs);
	values[1] = Int64GetDatum(limit);
	ret = SPI_execute_plan(awa_plan(cache, sql, 2, argtypes), values, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "awa: deleting old jobs failed: %s", SPI_result_code_string(ret));
	return (int64) SPI_processed;
}

/* Retention: delete old finished jobs, at most AWA_MAINTAIN_BATCH a round. */
static int64
delete_finished_jobs(void)
{
	static SPIPlanPtr completed_plan = NULL;
	static SPIPlanPtr failed_plan = NULL;
	int64		n;

	n = delete_old_jobs(&completed_plan, "'completed'", awa_retention_completed,
						AWA_MAINTAIN_BATCH);
	n += delete_old_jobs(&failed_plan, "'failed', 'cancelled'", awa_retention_failed,
						 AWA_MAINTAIN_BATCH - n);
	return n;
}

/*
 * Run one round in the current transaction of the current database, unless
 * another session is running one: then return false at once.
 */
static bool
maintain_round(AwaRound *r)
{
	LOCKTAG		tag;
	TimestampTz start;

	memset(r, 0, sizeof(*r));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, AWA_LOCK_KEY1, AWA_LOCK_KEY2, 2);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;

	start = GetCurrentTimestamp();
	SPI_connect();
	r->promoted = promote_due_jobs();
	r->rescued = awa_rescue_jobs();
	r->periodic = awa_fire_schedules();
	r->deleted = delete_finished_jobs();
	SPI_finish();

	awa_set_maintained(GetCurrentTimestamp());
	r->duration_ms = (double) (GetCurrentTimestamp() - start) / 1000.0;
	return true;
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
	return list_length(*names) <= AWA_MAX_DATABASES;
}

/* check_hook of awa.databases: reject a malformed list. */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	List	   *names;

	if (!split_databases(*newval, &names))
	{
		GUC_check_errdetail("List syntax is invalid: give at most %d database names separated by commas.",
							AWA_MAX_DATABASES);
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
 * error is logged and the transaction rolled back).  *missing_logged
 * remembers that "not installed" was logged already.
 */
static bool
worker_round(const char *dbname, bool *missing_logged)
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

			if (*missing_logged)
				ereport(LOG,
						(errmsg("awa maintenance: extension \"awa\" is now installed in database \"%s\"",
								dbname)));
			*missing_logged = false;

			/* pushed inside PG_TRY, so that PG_END_TRY and PG_CATCH pop it */
			errcallback.callback = round_error_callback;
			errcallback.arg = (void *) dbname;
			errcallback.previous = error_context_stack;
			error_context_stack = &errcallback;
			(void) maintain_round(&r);
			error_context_stack = errcallback.previous;
		}
		else if (!*missing_logged)
		{
			ereport(LOG,
					(errmsg("awa maintenance: extension \"awa\" is not installed in database \"%s\", skipping it",
							dbname),
					 errhint("Run CREATE EXTENSION awa in that database, or remove it from awa.databases.")));
			*missing_logged = true;
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
	bool		missing_logged = false;
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
			if (worker_round(dbname, &missing_logged))
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
 * Launcher: one worker per database of awa.databases
 * ---------------------------------------------------------------------
 */

typedef struct DbSlot
{
	char		name[NAMEDATALEN];
	BackgroundWorkerHandle *handle; /* NULL when no worker runs */
	TimestampTz started_at;		/* last start, to pace restarts */
	bool		logged;			/* "cannot start" logged since last success */
} DbSlot;

static DbSlot db_slots[AWA_MAX_DATABASES];
static int	ndb_slots = 0;

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

/* Launcher exit: stop the workers and clear the pid others look at. */
static void
launcher_on_exit(int code, Datum arg)
{
	int			i;

	for (i = 0; i < ndb_slots; i++)
		stop_slot(&db_slots[i]);
	awa_set_maintainer_pid(0);
}

/*
 * (Re)read awa.databases: keep the slots of databases still listed, stop
 * the workers of the others, add new slots.
 */
static void
load_databases(void)
{
	DbSlot		old[AWA_MAX_DATABASES];
	int			nold = ndb_slots;
	List	   *names;
	ListCell   *lc;
	int			i;

	if (!split_databases(awa_databases, &names))
		names = NIL;			/* cannot happen: the check hook refused it */

	memcpy(old, db_slots, sizeof(DbSlot) * nold);
	ndb_slots = 0;
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);
		DbSlot	   *slot = &db_slots[ndb_slots];
		bool		dup = false;

		for (i = 0; i < ndb_slots; i++)
			dup |= (strcmp(db_slots[i].name, name) == 0);
		if (dup)
			continue;
		memset(slot, 0, sizeof(*slot));
		strlcpy(slot->name, name, NAMEDATALEN);
		for (i = 0; i < nold; i++)
		{
			if (old[i].name[0] != '\0' && strcmp(old[i].name, name) == 0)
			{
				*slot = old[i];
				old[i].name[0] = '\0';
				old[i].handle = NULL;
			}
		}
		ndb_slots++;
	}
	for (i = 0; i < nold; i++)
		if (old[i].name[0] != '\0')
			stop_slot(&old[i]);
}

/*
 * Look a database up in pg_database (a shared catalog, readable without a
 * database connection).  A heap scan, not the index: until the first client
 * connects after initdb, the shared relcache init file that holds the
 * index's descriptor does not exist, and building it would need pg_class.  Returns its OID, or InvalidOid if it does not
 * exist; *allowconn tells whether it accepts connections.
 */
static Oid
find_database(const char *name, bool *allowconn)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			dboid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_database_datname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(name));
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = systable_beginscan(rel, DatabaseNameIndexId, false, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		dboid = db->oid;
		*allowconn = db->datallowconn;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return dboid;
}

/* Start the worker of one database if it is not running and may start. */
static void
launch_one(DbSlot *slot, TimestampTz now)
{
	BackgroundWorker worker;
	Oid			dboid;
	bool		allowconn = false;
	pid_t		pid;

	if (slot->handle != NULL)
	{
		switch (GetBackgroundWorkerPid(slot->handle, &pid))
		{
			case BGWH_STARTED:
			case BGWH_NOT_YET_STARTED:
				return;
			case BGWH_POSTMASTER_DIED:
				proc_exit(1);
				break;
			case BGWH_STOPPED:
				pfree(slot->handle);
				slot->handle = NULL;
				break;
		}
	}
	if (slot->started_at != 0 &&
		now < TimestampTzPlusMilliseconds(slot->started_at, AWA_WORKER_RESTART_MS))
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	dboid = find_database(slot->name, &allowconn);
	CommitTransactionCommand();

	if (!OidIsValid(dboid) || !allowconn)
	{
		if (!slot->logged)
			ereport(LOG,
					(errmsg(OidIsValid(dboid)
							? "awa maintenance: database \"%s\" does not allow connections, skipping it"
							: "awa maintenance: database \"%s\" does not exist, skipping it",
							slot->name),
					 errhint("Correct awa.databases, or create the database.")));
		slot->logged = true;
		return;
	}
	if (database_wanted_elsewhere(dboid))
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "awa", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "awa_maintenance_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "awa maintenance worker for database %s", slot->name);
	strlcpy(worker.bgw_type, AWA_BGW_TYPE, BGW_MAXLEN);
	strlcpy(worker.bgw_extra, slot->name, BGW_EXTRALEN);
	worker.bgw_main_arg = Int32GetDatum(MyProcPid);
	worker.bgw_notify_pid = MyProcPid;

	slot->started_at = now;
	if (!RegisterDynamicBackgroundWorker(&worker, &slot->handle))
	{
		slot->handle = NULL;
		if (!slot->logged)
			ereport(LOG,
					(errmsg("awa maintenance: could not start a worker for database \"%s\"",
							slot->name),
					 errhint("Raise max_worker_processes: awa needs one for its launcher and one per database in awa.databases.")));
		slot->logged = true;
		return;
	}
	if (slot->logged)
		ereport(LOG,
				(errmsg("awa maintenance: started a worker for database \"%s\"", slot->name)));
	slot->logged = false;
}

/* Main of the launcher (registered in awa_maintain_init). */
void
awa_maintenance_launcher_main(Datum main_arg)
{
	int			i;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	set_application_name();

	awa_set_maintainer_pid(MyProcPid);
	before_shmem_exit(launcher_on_exit, (Datum) 0);
	ereport(LOG, (errmsg("awa maintenance launcher started")));

	load_databases();
	for (;;)
	{
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			load_databases();
		}

		now = GetCurrentTimestamp();
		for (i = 0; i < ndb_slots; i++)
			launch_one(&db_slots[i], now);
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
							   "Databases the awa maintenance worker keeps, separated by commas.",
							   "A database where the extension is not installed is skipped. Empty means none.",
							   &awa_databases,
							   "postgres",
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

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = AWA_LAUNCHER_RESTART_SECS;
	strlcpy(worker.bgw_library_name, "awa", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "awa_maintenance_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "awa maintenance launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, AWA_BGW_TYPE, BGW_MAXLEN);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}
