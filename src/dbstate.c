/*-------------------------------------------------------------------------
 *
 * dbstate.c
 *		Who maintains each database, and when its last maintenance round
 *		finished.
 *
 * With awa preloaded, the maintenance launcher keeps a worker in every
 * database where the extension is installed (see maintain.c).  It learns
 * which those are here: a table in shared memory holds, per database, what
 * the launcher found (awa installed or not, a worker running, no worker
 * slot free) and when a maintenance round last finished there, whoever ran
 * it (the worker, or awa_maintain() called by pg_cron or a script).
 *
 * CREATE EXTENSION awa, DROP EXTENSION awa and CREATE DATABASE are seen by
 * a ProcessUtility hook in the backend that runs them; when that
 * transaction commits, the launcher is asked to look again (its latch is
 * set), so a new database is maintained within a second or so.  A worker
 * that finds the extension gone records it and exits.
 *
 * Without preloading there is no shared memory: awa_maintain() records its
 * rounds in the table awa.maintenance_rounds instead (0.3.0 schema), so
 * that awa_health_check() can tell a database maintained by pg_cron from
 * one that nobody maintains.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"

#include "awa.h"

typedef struct AwaDbEntry
{
	Oid			dboid;			/* InvalidOid: free entry */
	AwaDbStatus status;
	int			worker_pid;		/* while status is AWA_DB_WORKER */
	TimestampTz last_round;		/* last round finished here, by anyone */
	TimestampTz status_at;		/* when status was set */
	bool		recheck;		/* awa was created or dropped here: look again */
} AwaDbEntry;

typedef struct AwaDbShared
{
	slock_t		mutex;
	int			launcher_pgprocno;	/* -1 when no launcher runs */
	AwaDbEntry	dbs[AWA_MAX_DATABASES];
} AwaDbShared;

static AwaDbShared *dbshared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* This transaction created or dropped awa or a database: tell at commit. */
static bool rescan_at_commit = false;

/* Reserve the shared table (shmem_request_hook). */
static void
dbstate_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(AwaDbShared));
}

/* Create or attach to the shared table (shmem_startup_hook). */
static void
dbstate_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	dbshared = ShmemInitStruct("awa databases", sizeof(AwaDbShared), &found);
	if (!found)
	{
		memset(dbshared, 0, sizeof(AwaDbShared));
		SpinLockInit(&dbshared->mutex);
		dbshared->launcher_pgprocno = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

static AwaDbEntry *find_entry(Oid dboid, bool create);

/*
 * Ask the launcher to look at this database again (awa was created or
 * dropped here; a new database it finds by itself), and wake it.
 */
static void
request_recheck(void)
{
	AwaDbEntry *e;
	int			procno;

	if (dbshared == NULL)
		return;
	SpinLockAcquire(&dbshared->mutex);
	e = find_entry(MyDatabaseId, true);
	if (e != NULL)
		e->recheck = true;
	procno = dbshared->launcher_pgprocno;
	SpinLockRelease(&dbshared->mutex);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/* At commit of a transaction that changed awa's databases: rescan. */
static void
dbstate_xact_callback(XactEvent event, void *arg)
{
	if (!rescan_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		request_recheck();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		rescan_at_commit = false;
}

/*
 * Whether a utility statement changes whether this database has awa:
 * CREATE/DROP EXTENSION awa.  A new database (CREATE DATABASE, maybe from
 * a template with awa) and a dropped one the launcher sees by itself in
 * pg_database within a second.
 */
static bool
changes_awa_databases(Node *stmt)
{
	if (IsA(stmt, CreateExtensionStmt))
		return strcmp(((CreateExtensionStmt *) stmt)->extname, "awa") == 0;
	if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
			if (strcmp(strVal(lfirst(lc)), "awa") == 0)
				return true;
		return false;
	}
	return false;
}

/* ProcessUtility hook: note statements that change awa's databases. */
static void
dbstate_process_utility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	if (changes_awa_databases(pstmt->utilityStmt))
		rescan_at_commit = true;
	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * Set up the shared table and the hooks; only when awa is being preloaded
 * (called from _PG_init).
 */
void
awa_dbstate_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = dbstate_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = dbstate_shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = dbstate_process_utility;
	RegisterXactCallback(dbstate_xact_callback, NULL);
}

/* The entry of a database, or NULL; with create, a free one if needed. */
static AwaDbEntry *
find_entry(Oid dboid, bool create)
{
	AwaDbEntry *free_entry = NULL;
	int			i;

	for (i = 0; i < AWA_MAX_DATABASES; i++)
	{
		AwaDbEntry *e = &dbshared->dbs[i];

		if (e->dboid == dboid)
			return e;
		if (free_entry == NULL && !OidIsValid(e->dboid))
			free_entry = e;
	}
	if (create && free_entry != NULL)
	{
		memset(free_entry, 0, sizeof(*free_entry));
		free_entry->dboid = dboid;
	}
	return create ? free_entry : NULL;
}

/*
 * Launcher: record what it knows of a database (pid for AWA_DB_WORKER).
 * Returns false when the table is full.
 */
bool
awa_dbstate_set(Oid dboid, AwaDbStatus status, int pid)
{
	AwaDbEntry *e;

	if (dbshared == NULL)
		return false;
	SpinLockAcquire(&dbshared->mutex);
	e = find_entry(dboid, true);
	if (e != NULL)
	{
		if (e->status != status || e->worker_pid != pid)
			e->status_at = GetCurrentTimestamp();
		e->status = status;
		e->worker_pid = pid;
	}
	SpinLockRelease(&dbshared->mutex);
	return e != NULL;
}

/* Launcher: forget a database that no longer exists. */
void
awa_dbstate_forget(Oid dboid)
{
	AwaDbEntry *e;

	if (dbshared == NULL)
		return;
	SpinLockAcquire(&dbshared->mutex);
	e = find_entry(dboid, false);
	if (e != NULL)
		e->dboid = InvalidOid;
	SpinLockRelease(&dbshared->mutex);
}

/* Launcher: publish (or, with -1, withdraw) its PGPROC number. */
void
awa_dbstate_launcher(int pgprocno)
{
	if (dbshared == NULL)
		return;
	SpinLockAcquire(&dbshared->mutex);
	dbshared->launcher_pgprocno = pgprocno;
	SpinLockRelease(&dbshared->mutex);
}

/*
 * Launcher: the status recorded for a database (a worker that found no
 * extension records AWA_DB_NO_AWA before it exits), and whether awa was
 * created or dropped there since a worker was last started for it.
 */
AwaDbStatus
awa_dbstate_status(Oid dboid, bool *recheck)
{
	AwaDbEntry *e;
	AwaDbStatus status = AWA_DB_UNKNOWN;

	*recheck = false;
	if (dbshared == NULL)
		return status;
	SpinLockAcquire(&dbshared->mutex);
	e = find_entry(dboid, false);
	if (e != NULL)
	{
		status = e->status;
		*recheck = e->recheck;
	}
	SpinLockRelease(&dbshared->mutex);
	return status;
}

/*
 * Launcher: a worker is being started for the database; it will see every
 * CREATE/DROP EXTENSION committed so far, so the request is answered.
 */
void
awa_dbstate_clear_recheck(Oid dboid)
{
	AwaDbEntry *e;

	if (dbshared == NULL)
		return;
	SpinLockAcquire(&dbshared->mutex);
	e = find_entry(dboid, false);
	if (e != NULL)
		e->recheck = false;
	SpinLockRelease(&dbshared->mutex);
}

/*
 * A maintenance round finished in this database (any caller).  Recorded in
 * shared memory when preloaded; the caller records it in the table
 * otherwise.  Returns whether it was recorded here.
 */
bool
awa_dbstate_round_finished(TimestampTz at)
{
	AwaDbEntry *e;

	if (dbshared == NULL)
		return false;
	SpinLockAcquire(&dbshared->mutex);
	e = find_entry(MyDatabaseId, true);
	if (e != NULL)
		e->last_round = at;
	SpinLockRelease(&dbshared->mutex);
	return true;
}

/*
 * What the shared table says of this database: false when there is no
 * shared memory (not preloaded).  A database the launcher never saw has
 * status AWA_DB_UNKNOWN.
 */
bool
awa_dbstate_get(AwaDbInfo *info)
{
	AwaDbEntry *e;

	memset(info, 0, sizeof(*info));
	if (dbshared == NULL)
		return false;
	SpinLockAcquire(&dbshared->mutex);
	e = find_entry(MyDatabaseId, false);
	if (e != NULL)
	{
		info->status = e->status;
		info->worker_pid = e->worker_pid;
		info->last_round = e->last_round;
		info->status_at = e->status_at;
	}
	info->launcher_running = dbshared->launcher_pgprocno >= 0;
	SpinLockRelease(&dbshared->mutex);
	return true;
}
