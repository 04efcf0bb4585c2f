/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		awa's shared memory (see shmem.h): reserving and creating it, this
 *		backend's slot, the maintenance worker's pid and last round, and
 *		read-only settings that show its counters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "awa.h"
#include "shmem.h"
#include "floor.h"
#include "ratelimit.h"

AwaShared  *awa_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Read-only settings that show awa's shared state (see awa_wake_init). */
static int	show_dummy = 0;

static Size
awa_shmem_size(void)
{
	return add_size(offsetof(AwaShared, slots),
					mul_size(MaxBackends, sizeof(AwaWaitSlot)));
}

/* Reserve awa's shared memory (shmem_request_hook, PostgreSQL 15+). */
static void
awa_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(awa_shmem_size());
	awa_floor_shmem_request();
	awa_rate_shmem_request();	/* rate limits (ratelimit.c) */
}

/* Create or attach to awa's shared memory. */
static void
awa_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	awa_shared = ShmemInitStruct("awa", awa_shmem_size(), &found);
	if (!found)
	{
		pg_atomic_init_u32(&awa_shared->nwaiting, 0);
		pg_atomic_init_u32(&awa_shared->nlisteners, 0);
		pg_atomic_init_u64(&awa_shared->wakeups, 0);
		pg_atomic_init_u32(&awa_shared->next_start, 0);
		pg_atomic_init_u32(&awa_shared->wake_tag, 0);
		pg_atomic_init_u64(&awa_shared->maint_last_run, 0);
		pg_atomic_init_u32(&awa_shared->maint_pid, 0);
		awa_shared->nslots = MaxBackends;
		for (i = 0; i < MaxBackends; i++)
		{
			pg_atomic_init_u32(&awa_shared->slots[i].reg_gen, 0);
			pg_atomic_init_u32(&awa_shared->slots[i].woken, 0);
			pg_atomic_init_u32(&awa_shared->slots[i].at_limit, 0);
			pg_atomic_init_u64(&awa_shared->slots[i].due_at, 0);
			pg_atomic_init_u32(&awa_shared->slots[i].commit_gen, 0);
		}
	}
	awa_floor_shmem_startup();
	awa_rate_shmem_startup();	/* rate limits (ratelimit.c) */
	LWLockRelease(AddinShmemInitLock);
}

/* This backend's slot, or NULL without shared memory. */
AwaWaitSlot *
awa_my_slot(void)
{
	if (awa_shared == NULL || MyBackendId < 1 || MyBackendId > awa_shared->nslots)
		return NULL;
	return &awa_shared->slots[MyBackendId - 1];
}

/* SHOW awa.waiting_claimers: backends blocked in awa_claim now. */
static const char *
show_waiting_claimers(void)
{
	static char buf[16];

	snprintf(buf, sizeof(buf), "%u",
			 awa_shared ? pg_atomic_read_u32(&awa_shared->nwaiting) : 0);
	return buf;
}

/* SHOW awa.listening_sessions: backends counted as awa listeners now. */
static const char *
show_listening_sessions(void)
{
	static char buf[16];

	snprintf(buf, sizeof(buf), "%u",
			 awa_shared ? pg_atomic_read_u32(&awa_shared->nlisteners) : 0);
	return buf;
}

/* SHOW awa.claimer_wakeups: times blocked claimers woke and tried again. */
static const char *
show_claimer_wakeups(void)
{
	static char buf[24];

	snprintf(buf, sizeof(buf), UINT64_FORMAT,
			 awa_shared ? pg_atomic_read_u64(&awa_shared->wakeups) : 0);
	return buf;
}

/* Define one read-only setting that shows a piece of awa's shared state. */
static void
define_shown(const char *name, const char *desc, GucShowHook hook)
{
	DefineCustomIntVariable(name, desc, NULL, &show_dummy, 0, 0, INT_MAX,
							PGC_INTERNAL,
							GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE | GUC_NO_RESET_ALL,
							NULL, NULL, hook);
}

/*
 * Shared memory set-up (hooks when preloading) and the read-only settings
 * that show its counters, called from _PG_init.
 */
void
awa_shmem_init(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = awa_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = awa_shmem_startup;
	}
	define_shown("awa.waiting_claimers",
				 "Shows how many backends are blocked in awa_claim(wait => ...) now (0 unless awa is preloaded).",
				 show_waiting_claimers);
	define_shown("awa.listening_sessions",
				 "Shows how many backends have run LISTEN on an awa channel and not exited (0 unless awa is preloaded).",
				 show_listening_sessions);
	define_shown("awa.claimer_wakeups",
				 "Shows how many times blocked awa_claim callers woke up and tried again since the server started (0 unless awa is preloaded).",
				 show_claimer_wakeups);
	awa_floor_init();
}

/* Record the maintenance worker's pid (0 when it exits). */
void
awa_set_maintainer_pid(int pid)
{
	if (awa_shared)
		pg_atomic_write_u32(&awa_shared->maint_pid, (uint32) pid);
}

/* Record that a maintenance round finished now. */
void
awa_set_maintained(TimestampTz at)
{
	if (awa_shared)
		pg_atomic_write_u64(&awa_shared->maint_last_run, (uint64) at);
}

/* Last maintenance round (0 if none or no shared memory) and worker pid. */
void
awa_get_maintainer(TimestampTz *last_run, int *pid)
{
	*last_run = awa_shared ? (TimestampTz) pg_atomic_read_u64(&awa_shared->maint_last_run) : 0;
	*pid = awa_shared ? (int) pg_atomic_read_u32(&awa_shared->maint_pid) : 0;
}

/* Whether awa's shared memory exists (awa is in shared_preload_libraries). */
bool
awa_preloaded(void)
{
	return awa_shared != NULL;
}
