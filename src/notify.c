/*-------------------------------------------------------------------------
 *
 * notify.c
 *		NOTIFYs of awa's channels: a queue's channel when its jobs become
 *		available, awa.cancel when a held job is cancelled; held until
 *		pre-commit and sent only while someone may listen.
 *
 * NOTIFY only when someone may listen.  A NOTIFY makes its transaction
 * take the cluster-wide notification queue lock at commit, which
 * serializes committing enqueuers; it is wasted when no session listens.
 * So the notifications of a transaction are kept aside until
 * XACT_EVENT_PRE_COMMIT (just before PostgreSQL queues NOTIFYs) and sent
 * only if some backend of the cluster has run LISTEN on an awa channel
 * (see awa_channel_is_ours; counted by a ProcessUtility hook; a backend
 * stays counted until it exits).  The race between a listener arriving and an enqueuer that
 * found no listener is closed by a handshake: the enqueuer marks itself
 * committing (an odd counter in its slot) before it reads the listener
 * count and clears the mark once its commit is visible; a new listener
 * raises the count first and then waits for every backend it sees marked.
 * Either the enqueuer sees the listener, or the listener waits until the
 * enqueuer's commit is visible, before its own LISTEN takes effect, so its
 * first look at the queue finds the job.  Without shared memory every
 * notification is sent.
 *
 * Channel names.  A queue name may be any string of 1 to 200 characters,
 * so "awa:" followed by anything that fits belongs to queues: a queue's
 * channel is "awa:<queue>" when that fits in a channel name (63 bytes).
 * Longer names use "awa#<MD5 of the name>" and awa's own channel is
 * "awa.cancel": no queue name can produce either, and the two differ from
 * each other.  The payload of a queue's NOTIFY is always its full name.
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
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "awa.h"
#include "shmem.h"

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

static bool exit_callback_set = false;

static void awa_process_utility(PlannedStmt *pstmt, const char *queryString,
								bool readOnlyTree, ProcessUtilityContext context,
								ParamListInfo params, QueryEnvironment *queryEnv,
								DestReceiver *dest, QueryCompletion *qc);
static void clear_commit_mark(void);
static void notify_xact_callback(XactEvent event, void *arg);
static void notify_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);

/*
 * The NOTIFY channel of a queue: "awa:<queue>" when that fits in a
 * channel name, else "awa#" followed by the MD5 of the queue name.  No
 * queue's literal channel starts with "awa#" and awa's own channels start
 * with "awa.", so queues never share a channel with each other's hashes or
 * with awa.
 */
void
awa_queue_channel(const char *queue, char *channel)
{
	size_t		len = strlen(queue);

	if (len + strlen(AWA_QUEUE_CHANNEL_PREFIX) < NAMEDATALEN)
		snprintf(channel, NAMEDATALEN, AWA_QUEUE_CHANNEL_PREFIX "%s", queue);
	else
	{
		char		hex[33];
		const char *errstr = NULL;

		if (!pg_md5_hash(queue, len, hex, &errstr))
			elog(ERROR, "awa: could not hash queue name: %s", errstr);
		snprintf(channel, NAMEDATALEN, AWA_HASHED_CHANNEL_PREFIX "%s", hex);
	}
}

/*
 * Whether a channel is one awa sends on ("awa:", "awa#" or "awa."
 * followed by anything): LISTEN on it makes enqueuers notify.
 */
bool
awa_channel_is_ours(const char *channel)
{
	return strncmp(channel, AWA_QUEUE_CHANNEL_PREFIX, 4) == 0 ||
		strncmp(channel, AWA_HASHED_CHANNEL_PREFIX, 4) == 0 ||
		strncmp(channel, AWA_OWN_CHANNEL_PREFIX, 4) == 0;
}

bool		awa_notify = true;

/*
 * Define awa.notify (from _PG_init, before the awa. prefix is reserved),
 * count LISTENs on awa's channels (when preloading) and hook into
 * transaction end.
 */
void
awa_notify_init(void)
{
	DefineCustomBoolVariable("awa.notify",
							 "Sends NOTIFY awa:<queue> when a job becomes available.",
							 "Listeners use it to wake up (a queue name longer than 59 bytes uses awa#<md5 of the name>).  With awa preloaded it is sent only while some session listens on an awa channel (awa:, awa# or awa.).",
							 &awa_notify,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
		prev_ProcessUtility = ProcessUtility_hook;
		ProcessUtility_hook = awa_process_utility;
	}
	RegisterXactCallback(notify_xact_callback, NULL);
	RegisterSubXactCallback(notify_subxact_callback, NULL);
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

/*
 * NOTIFY a queue's channel at commit (deduplicated per transaction; the
 * payload is the queue name) when awa.notify is on: its jobs became
 * available.
 */
void
awa_notify_queue(const char *queue)
{
	char		channel[NAMEDATALEN];

	if (!awa_notify)
		return;
	awa_queue_channel(queue, channel);
	hold_notify(channel, queue);
}

/* NOTIFY awa.cancel for a running job that was cancelled. */
void
awa_notify_cancel(int64 job_id, int64 run_lease)
{
	char		payload[64];

	snprintf(payload, sizeof(payload), "{\"id\": %lld, \"run_lease\": %lld}",
			 (long long) job_id, (long long) run_lease);
	hold_notify(AWA_CANCEL_CHANNEL, payload);
}

/* Backend exit, however it happens: take down a commit mark. */
static void
notify_exit(int code, Datum arg)
{
	clear_commit_mark();
}

/*
 * Pre-commit: send the held NOTIFYs if any backend may listen.  The mark
 * goes up before the listener count is read (both full barriers), and
 * comes down after the commit is visible (clear_commit_mark).
 */
static void
send_held_notifies(void)
{
	AwaWaitSlot *slot = awa_my_slot();
	bool		send = true;
	ListCell   *lc;

	if (held_notifies == NIL)
		return;
	if (slot != NULL)
	{
		if (!exit_callback_set)
		{
			before_shmem_exit(notify_exit, (Datum) 0);
			exit_callback_set = true;
		}
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
	AwaWaitSlot *slot = awa_my_slot();

	if (commit_marked && slot != NULL)
		pg_atomic_fetch_add_u32(&slot->commit_gen, 1);
	commit_marked = false;
}

static void
listener_exit(int code, Datum arg)
{
	if (counted_listener && awa_shared != NULL)
		pg_atomic_fetch_sub_u32(&awa_shared->nlisteners, 1);
	counted_listener = false;
}

/*
 * A LISTEN on an awa channel: count this backend as a listener (once,
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
		awa_channel_is_ours(((ListenStmt *) stmt)->conditionname))
		listener_arrives();

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * Transaction end: send the held NOTIFYs at pre-commit; afterwards (or on
 * abort or PREPARE, where nothing is sent: PostgreSQL cannot PREPARE a
 * NOTIFY) forget them and take the commit mark down.
 */
static void
notify_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			send_held_notifies();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			clear_commit_mark();
			held_notifies = NIL;
			held_index = NULL;
			break;
		default:
			break;
	}
}

/*
 * Savepoints: a rolled-back one takes its NOTIFYs back; a released one
 * hands them up.
 */
static void
notify_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
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
