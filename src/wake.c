/*-------------------------------------------------------------------------
 *
 * wake.c
 *		Telling others that jobs became claimable: NOTIFY for listeners, and
 *		latches for claimers blocked in awa_claim(wait => ...).
 *
 * A blocked claimer publishes (database, hash of its queue, its PGPROC
 * number) in a slot of shared memory, then tries to claim, then sleeps on
 * its latch.  A transaction that makes jobs of a queue claimable remembers
 * the queue's hash; once its commit is visible (XACT_EVENT_COMMIT) it sets
 * the latch of every claimer waiting on one of those queues.  A rolled back
 * transaction wakes nobody.  Because the slot is published before the
 * claimer's attempt, a commit either happened before that attempt (and is
 * seen by its snapshot) or finds the slot and wakes it: no wake-up is lost.
 * Hash collisions and concurrent claimers only cause harmless extra
 * wake-ups.
 *
 * The slots need shared memory, so they exist only when awa is in
 * shared_preload_libraries; without it a blocked claimer polls instead.
 *
 * NOTIFY only when someone may listen.  A NOTIFY makes its transaction
 * take the cluster-wide notification queue lock at commit, which
 * serializes committing enqueuers; it is wasted when no session listens.
 * So the notifications of a transaction are kept aside until
 * XACT_EVENT_PRE_COMMIT (just before PostgreSQL queues NOTIFYs) and sent
 * only if some backend of the cluster has run LISTEN on an "awa:" channel
 * (counted by a ProcessUtility hook; a backend stays counted until it
 * exits).  The race between a listener arriving and an enqueuer that
 * found no listener is closed by a handshake: the enqueuer marks itself
 * committing (an odd counter in its slot) before it reads the listener
 * count and clears the mark once its commit is visible; a new listener
 * raises the count first and then waits for every backend it sees marked.
 * Either the enqueuer sees the listener, or the listener waits until the
 * enqueuer's commit is visible, before its own LISTEN takes effect, so its
 * first look at the queue finds the job.  Without shared memory every
 * notification is sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "common/md5.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "awa.h"

/* One claimer blocked in awa_claim; also the backend's commit mark. */
typedef struct AwaWaitSlot
{
	pg_atomic_uint32 active;	/* 1 while the fields below describe a waiter */
	Oid			dboid;
	uint32		queue_hash;
	int			procno;
	pg_atomic_uint32 at_limit;	/* 1: its queue is at its concurrency limit */
	pg_atomic_uint32 commit_gen;	/* odd while committing with NOTIFYs held */
} AwaWaitSlot;

typedef struct AwaShared
{
	pg_atomic_uint32 nwaiting;	/* slots in use, to skip the scan when 0 */
	pg_atomic_uint32 nlisteners;	/* backends that ran LISTEN "awa:..." */
	pg_atomic_uint64 maint_last_run;	/* TimestampTz of the last round */
	pg_atomic_uint32 maint_pid; /* pid of the maintenance worker, or 0 */
	int			nslots;
	AwaWaitSlot slots[FLEXIBLE_ARRAY_MEMBER];
} AwaShared;

AwaShared  *awa_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * NOTIFYs of the current transaction, sent at pre-commit if anyone may
 * listen; each with the subtransaction level that asked for it, so that a
 * rolled-back savepoint takes its own back.  Kept in TopTransactionContext.
 */
typedef struct HeldNotify
{
	char		channel[NAMEDATALEN];
	char	   *payload;
	int			level;
} HeldNotify;
static List *held_notifies = NIL;

/*
 * An index of held_notifies by (level, channel, payload hash), built once
 * the list is long, so that a transaction enqueueing many jobs into a few
 * queues in turn holds one NOTIFY per queue, not one per job.  Dropped when
 * savepoints end (rebuilt on demand) and with TopTransactionContext.
 */
typedef struct HeldKey
{
	int			level;
	uint32		payload_hash;
	char		channel[NAMEDATALEN];
} HeldKey;
typedef struct HeldEntry
{
	HeldKey		key;
	HeldNotify *notify;
} HeldEntry;
#define HELD_INDEX_FROM 8
static HTAB *held_index = NULL;
static bool commit_marked = false;	/* our commit_gen is odd */
static bool counted_listener = false;

/* Queues made claimable by the current transaction (hashes). */
#define MAX_PENDING_WAKES 32
typedef struct PendingWake
{
	uint32		hash;			/* queue_hash() of the queue */
} PendingWake;
static PendingWake pending_wakes[MAX_PENDING_WAKES];
static int	npending_wakes = 0;
static bool pending_overflow = false;	/* too many: wake every waiter of the db */
static bool running_freed = false;	/* this transaction ended a running job */

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
		pg_atomic_init_u64(&awa_shared->maint_last_run, 0);
		pg_atomic_init_u32(&awa_shared->maint_pid, 0);
		awa_shared->nslots = MaxBackends;
		for (i = 0; i < MaxBackends; i++)
		{
			pg_atomic_init_u32(&awa_shared->slots[i].active, 0);
			pg_atomic_init_u32(&awa_shared->slots[i].at_limit, 0);
			pg_atomic_init_u32(&awa_shared->slots[i].commit_gen, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

static void note_queue(const char *queue, bool notify);

static uint32
queue_hash(const char *queue)
{
	return hash_bytes((const unsigned char *) queue, strlen(queue));
}

/*
 * The NOTIFY channel of a queue: "awa:<queue>", or "awa:" followed by the
 * MD5 of the queue name when that would not fit in a channel name.
 */
void
awa_queue_channel(const char *queue, char *channel)
{
	size_t		len = strlen(queue);

	if (len + 4 < NAMEDATALEN)
		snprintf(channel, NAMEDATALEN, "awa:%s", queue);
	else
	{
		char		hex[33];
		const char *errstr = NULL;

		if (!pg_md5_hash(queue, len, hex, &errstr))
			elog(ERROR, "awa: could not hash queue name: %s", errstr);
		snprintf(channel, NAMEDATALEN, "awa:%s", hex);
	}
}

/*
 * Record that jobs of this queue became claimable in the current
 * transaction: NOTIFY its channel (delivered at commit, deduplicated per
 * transaction; payload is the queue name) when awa.notify is on, and
 * remember it so blocked claimers are woken at commit.
 */
void
awa_job_available(const char *queue)
{
	note_queue(queue, true);
}

/*
 * Record that this transaction added a job of the queue that comes due
 * later: blocked claimers are woken at commit only to shorten their sleep
 * to its run_at; listeners are not told.
 */
void
awa_job_scheduled(const char *queue)
{
	note_queue(queue, false);
}

static void
held_key(HeldKey *key, int level, const char *channel, const char *payload)
{
	memset(key, 0, sizeof(HeldKey));
	key->level = level;
	key->payload_hash = hash_bytes((const unsigned char *) payload, strlen(payload));
	strlcpy(key->channel, channel, NAMEDATALEN);
}

/* Index a held NOTIFY; returns an equal one already held, or NULL. */
static HeldNotify *
held_index_add(HeldNotify *n)
{
	HeldKey		key;
	HeldEntry  *e;
	bool		found;

	held_key(&key, n->level, n->channel, n->payload);
	e = hash_search(held_index, &key, HASH_ENTER, &found);
	if (!found)
		e->notify = n;
	else if (strcmp(e->notify->payload, n->payload) == 0)
		return e->notify;
	return NULL;				/* new, or a hash collision: keep both */
}

/*
 * Keep a NOTIFY for pre-commit, once per (channel, payload, savepoint
 * level).  PostgreSQL would drop the duplicates too, but only after they
 * piled up here.
 */
static void
hold_notify(const char *channel, const char *payload)
{
	MemoryContext old;
	HeldNotify *n;
	int			level = GetCurrentTransactionNestLevel();

	if (held_notifies != NIL)
	{
		n = llast(held_notifies);
		if (n->level == level && strcmp(n->channel, channel) == 0 &&
			strcmp(n->payload, payload) == 0)
			return;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	if (held_index == NULL && list_length(held_notifies) >= HELD_INDEX_FROM)
	{
		HASHCTL		ctl;
		ListCell   *lc;

		ctl.keysize = sizeof(HeldKey);
		ctl.entrysize = sizeof(HeldEntry);
		ctl.hcxt = TopTransactionContext;
		held_index = hash_create("awa held notifies", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		foreach(lc, held_notifies)
			(void) held_index_add(lfirst(lc));
	}
	n = palloc(sizeof(HeldNotify));
	strlcpy(n->channel, channel, NAMEDATALEN);
	n->payload = pstrdup(payload);
	n->level = level;
	if (held_index != NULL && held_index_add(n) != NULL)
	{
		pfree(n->payload);
		pfree(n);
	}
	else
		held_notifies = lappend(held_notifies, n);
	MemoryContextSwitchTo(old);
}

/* Remember a queue to wake at commit; NOTIFY it when asked. */
static void
note_queue(const char *queue, bool notify)
{
	uint32		h = queue_hash(queue);
	PendingWake *w = NULL;
	int			i;

	for (i = 0; i < npending_wakes; i++)
		if (pending_wakes[i].hash == h)
			w = &pending_wakes[i];
	if (w == NULL && npending_wakes < MAX_PENDING_WAKES)
	{
		w = &pending_wakes[npending_wakes++];
		w->hash = h;
	}
	else if (w == NULL)
		pending_overflow = true;

	if (notify && awa_notify)
	{
		char		channel[NAMEDATALEN];

		awa_queue_channel(queue, channel);
		hold_notify(channel, queue);
	}
}

/* NOTIFY awa:cancel for a running job that was cancelled. */
void
awa_notify_cancel(int64 job_id, int64 run_lease)
{
	char		payload[64];

	snprintf(payload, sizeof(payload), "{\"id\": %lld, \"run_lease\": %lld}",
			 (long long) job_id, (long long) run_lease);
	hold_notify("awa:cancel", payload);
}

/* This backend's slot (for its commit mark), or NULL without shared memory. */
static AwaWaitSlot *
my_slot(void)
{
	if (awa_shared == NULL || MyBackendId < 1 || MyBackendId > awa_shared->nslots)
		return NULL;
	return &awa_shared->slots[MyBackendId - 1];
}

/*
 * Pre-commit: send the held NOTIFYs if any backend may listen.  The mark
 * goes up before the listener count is read (both full barriers), and
 * comes down after the commit is visible (clear_commit_mark).
 */
static void
send_held_notifies(void)
{
	AwaWaitSlot *slot = my_slot();
	bool		send = true;
	ListCell   *lc;

	if (held_notifies == NIL)
		return;
	if (slot != NULL)
	{
		pg_atomic_fetch_add_u32(&slot->commit_gen, 1);
		commit_marked = true;
		send = pg_atomic_read_u32(&awa_shared->nlisteners) > 0;
	}
	if (send)
		foreach(lc, held_notifies)
		{
			HeldNotify *n = lfirst(lc);

			Async_Notify(n->channel, n->payload);
		}
	held_notifies = NIL;
	held_index = NULL;
}

static void
clear_commit_mark(void)
{
	AwaWaitSlot *slot = my_slot();

	if (commit_marked && slot != NULL)
		pg_atomic_fetch_add_u32(&slot->commit_gen, 1);
	commit_marked = false;
}

/*
 * Record that the current transaction took a job out of running (complete,
 * fail, snooze, cancel, rescue): at commit, claimers waiting on a queue at
 * its concurrency limit are woken to count again.
 */
void
awa_running_freed(void)
{
	running_freed = true;
}

/*
 * Set the latch of every claimer waiting on a queue this transaction fed,
 * and, if it ended running jobs, of every claimer waiting at a limit.
 */
static void
wake_waiters(void)
{
	int			i;

	if (awa_shared == NULL || pg_atomic_read_u32(&awa_shared->nwaiting) == 0)
		return;

	for (i = 0; i < awa_shared->nslots; i++)
	{
		AwaWaitSlot *slot = &awa_shared->slots[i];
		bool		match = pending_overflow;
		int			k;

		if (pg_atomic_read_u32(&slot->active) == 0)
			continue;
		pg_read_barrier();
		if (slot->dboid != MyDatabaseId)
			continue;
		if (running_freed && pg_atomic_read_u32(&slot->at_limit) != 0)
			match = true;
		for (k = 0; !match && k < npending_wakes; k++)
			match = (pending_wakes[k].hash == slot->queue_hash);
		if (match)
			SetLatch(&GetPGProcByNumber(slot->procno)->procLatch);
	}
}

/*
 * Transaction end: NOTIFY at pre-commit; wake claimers after a commit;
 * forget on abort.  A prepared transaction notifies nobody (PostgreSQL
 * cannot PREPARE a NOTIFY).
 */
static void
awa_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			send_held_notifies();
			break;
		case XACT_EVENT_COMMIT:
			if (npending_wakes > 0 || pending_overflow || running_freed)
				wake_waiters();
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			clear_commit_mark();
			held_notifies = NIL;
			held_index = NULL;
			npending_wakes = 0;
			pending_overflow = false;
			running_freed = false;
			break;
		default:
			break;
	}
}

/* Savepoints: a rolled-back one takes its NOTIFYs back; a released one hands them up. */
static void
awa_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (held_notifies == NIL)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB || event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* levels change or entries go: the index is rebuilt when needed */
		if (held_index != NULL)
			hash_destroy(held_index);
		held_index = NULL;
	}
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, held_notifies)
		{
			HeldNotify *n = lfirst(lc);

			if (n->level >= level)
				held_notifies = foreach_delete_current(held_notifies, lc);
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, held_notifies)
		{
			HeldNotify *n = lfirst(lc);

			if (n->level >= level)
				n->level = level - 1;
		}
	}
}

static void
listener_exit(int code, Datum arg)
{
	if (counted_listener && awa_shared != NULL)
		pg_atomic_fetch_sub_u32(&awa_shared->nlisteners, 1);
	counted_listener = false;
}

/*
 * A LISTEN on an "awa:" channel: count this backend as a listener (once,
 * until it exits), then wait until every backend that was committing with
 * NOTIFYs held, and may have seen no listener, has finished its commit.
 */
static void
listener_arrives(void)
{
	int			i;

	if (counted_listener || awa_shared == NULL)
		return;
	before_shmem_exit(listener_exit, (Datum) 0);
	counted_listener = true;
	pg_atomic_fetch_add_u32(&awa_shared->nlisteners, 1);

	for (i = 0; i < awa_shared->nslots; i++)
	{
		pg_atomic_uint32 *gen = &awa_shared->slots[i].commit_gen;
		uint32		seen = pg_atomic_read_u32(gen);
		long		sleep_ms = 1;

		if (i == MyBackendId - 1)
			continue;
		/* a commit takes microseconds to milliseconds; back off to 10 ms */
		while ((seen & 1) && pg_atomic_read_u32(gen) == seen)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			sleep_ms = Min(sleep_ms * 2, 10);
		}
	}
}

static void
awa_process_utility(PlannedStmt *pstmt, const char *queryString,
					bool readOnlyTree, ProcessUtilityContext context,
					ParamListInfo params, QueryEnvironment *queryEnv,
					DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (IsA(stmt, ListenStmt) &&
		strncmp(((ListenStmt *) stmt)->conditionname, "awa:", 4) == 0)
		listener_arrives();

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * Publish this backend as waiting for jobs of queue (until
 * awa_wait_unregister).  Returns false when there is no shared memory
 * (awa not preloaded): the caller then polls.
 */
bool
awa_wait_register(const char *queue)
{
	AwaWaitSlot *slot;

	if (awa_shared == NULL || MyBackendId < 1 || MyBackendId > awa_shared->nslots)
		return false;
	slot = &awa_shared->slots[MyBackendId - 1];
	slot->dboid = MyDatabaseId;
	slot->queue_hash = queue_hash(queue);
	slot->procno = MyProc->pgprocno;
	pg_atomic_write_u32(&slot->at_limit, 0);
	pg_write_barrier();
	pg_atomic_write_u32(&slot->active, 1);
	pg_atomic_fetch_add_u32(&awa_shared->nwaiting, 1);
	pg_memory_barrier();
	return true;
}

/*
 * Tell completing transactions that this waiter's queue is at its limit
 * (or no longer).  Publish before counting again: a completion that
 * commits later finds the flag and wakes the waiter.
 */
void
awa_wait_at_limit(bool at_limit)
{
	AwaWaitSlot *slot;

	if (awa_shared == NULL || MyBackendId < 1 || MyBackendId > awa_shared->nslots)
		return;
	slot = &awa_shared->slots[MyBackendId - 1];
	pg_atomic_write_u32(&slot->at_limit, at_limit ? 1 : 0);
	pg_memory_barrier();
}

/* Withdraw the slot published by awa_wait_register. */
void
awa_wait_unregister(void)
{
	AwaWaitSlot *slot;

	if (awa_shared == NULL || MyBackendId < 1 || MyBackendId > awa_shared->nslots)
		return;
	slot = &awa_shared->slots[MyBackendId - 1];
	if (pg_atomic_read_u32(&slot->active) == 0)
		return;
	pg_atomic_write_u32(&slot->active, 0);
	pg_atomic_fetch_sub_u32(&awa_shared->nwaiting, 1);
}

/* Wake-up machinery set-up, called from _PG_init. */
void
awa_wake_init(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = awa_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = awa_shmem_startup;
		prev_ProcessUtility = ProcessUtility_hook;
		ProcessUtility_hook = awa_process_utility;
	}
	RegisterXactCallback(awa_xact_callback, NULL);
	RegisterSubXactCallback(awa_subxact_callback, NULL);
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
