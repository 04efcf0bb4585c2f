/*-------------------------------------------------------------------------
 *
 * wake.c
 *		Waking claimers blocked in awa_claim(wait => ...) when jobs become
 *		claimable: their wait slots in shared memory (shmem.c) and latches,
 *		handed out at commit.  Listeners are told by NOTIFY (notify.c).
 *
 * A blocked claimer publishes (database, hash of its queue, its PGPROC
 * number) in a slot of shared memory, then tries to claim, then sleeps on
 * its latch.  A transaction that makes k jobs of a queue claimable
 * remembers the queue's hash and k; once its commit is visible
 * (XACT_EVENT_COMMIT) it hands a wake-up to k waiters of the queue (a flag
 * in their slot, then their latch), not to all of them.  A rolled back
 * transaction wakes nobody.  Because the slot is published before the
 * claimer's attempt, a commit either happened before that attempt (and is
 * seen by its snapshot) or finds the slot: no wake-up is lost.
 *
 * Why no due job is left behind while waiters sleep.  A waiter takes its
 * wake-up (clears the flag) before each attempt, so the attempt's snapshot
 * sees every commit that found the flag set and skipped it.  Then:
 *  - an attempt that claims fewer than its batch took every due, unlocked
 *    job of the queue; the locked ones belong to claims that either commit
 *    or, on abort, give the queue's jobs back and wake as many waiters;
 *  - a woken waiter that claims a full batch passes one wake-up on, since
 *    more jobs may wait (this also covers callers that report a batch of
 *    jobs as one);
 *  - a woken waiter that leaves before its attempt is done (cancel,
 *    timeout, error, FATAL) passes its wake-up on.
 * A queue at its concurrency limit is served the same way: a transaction
 * that ends running jobs hands one wake-up to one waiter at a limit per
 * queue, and the chain above does the rest.
 *
 * Scheduled jobs need no commit to come due, and neither does a slot of a
 * queue's rate limit (ratelimit.c): the claim treats the time the next
 * slot opens like the time a job comes due.  A waiter sleeps at most
 * until the next one only if no other waiter of its queue already keeps
 * that time (its published due_at is earlier or equal; ties go to the
 * lower slot); a timekeeper that leaves hands its role on with a wake-up,
 * and a commit that schedules a job wakes one waiter to look again.  So
 * one waiter, not all, wakes when a scheduled job comes due.
 *
 * A waiter of several queues (awa_claim(queues text[], ...)) lists their
 * hashes in its slot, up to AWA_WAIT_QUEUES of them; with more, or for
 * every queue, it waits for any queue of its database.  A commit counts
 * it among the waiters of each queue it serves, so the rules above hold
 * per queue.  A waiter of more queues than a slot lists is counted only
 * after the queue's own waiters: it claims only its queues, and a wake-up
 * it took for another queue's job would be lost to that queue's waiter
 * (who then slept to the end of its wait).  Not knowing which queue a wake-up it took was for, it passes
 * one on to a waiter of each of its queues (a waiter of every queue: to
 * every waiter of the database) when it claims a full batch or leaves
 * holding one.  It keeps the time of its own next scheduled job (other
 * waiters do not count on it, nor it on them), and at a concurrency limit
 * each completion wakes it, not one waiter per queue.
 *
 * A timekeeper that leaves from a statement whose transaction ends with
 * it (autocommit, or a procedure's CALL: not in a transaction block)
 * hands its role on at that transaction's end, not when it withdraws.
 * It usually leaves because it claimed the job whose time it kept: a
 * waiter woken before that claim commits still sees the job's scheduled
 * row (its promotion is not committed yet), takes it for a due row held
 * by another transaction and looks again every 1, 2, 4 ... ms until the
 * commit, each look a wake-up (the ring's scheduled jobs woke a claimer
 * 3 to 5 times this way; docs/storage.md "Step 5: wake-ups and deadlines
 * on the default ring").  Woken after the commit, it sees the queue's
 * next scheduled job, if any, and keeps its time.  In a transaction
 * block, whose end may be far off, the role is handed on at once, as
 * before: a next job coming due meanwhile must not wait for that end.
 *
 * A backend that exits while waiting (FATAL: pg_terminate_backend, lost
 * client) withdraws its slot and passes on what it held from a
 * before_shmem_exit callback, as it does on every other way out.
 *
 * The slots need shared memory, so they exist only when awa is in
 * shared_preload_libraries; without it a blocked claimer polls instead.
 *
 * hook: rwait -- the ring's lanes (ring_wait.c, docs/storage.md "Step 5:
 * the blocking claim on the ring") use the same slots, wake-ups and
 * timekeeping, under hashes of their own: the top bit of a hash is set
 * for a ring lane and clear for a queue of awa.jobs, so a ring queue and
 * an awa.jobs queue of the same name never share wake-ups, and a waiter
 * of every awa.jobs queue is not counted among a lane's waiters (it would
 * take a lane's wake-up and never claim the job), nor a waiter of every
 * lane (a claim of every ring queue, or of more than AWA_WAIT_QUEUES) among
 * an awa.jobs queue's.  The lanes are not NOTIFYed: listeners wait for
 * awa.jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "common/md5.h"
#include "libpq/libpq-be.h"
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
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "awa.h"
#include "ring.h"
#include "shmem.h"

/*
 * Queues made claimable by the current transaction: hash and number of
 * wake-ups owed at commit (jobs made available; at least one when a job
 * was scheduled, so that a waiter looks at the new run_at).
 */
#define MAX_PENDING_WAKES 32
typedef struct PendingWake
{
	uint32		hash;			/* queue_hash() of the queue */
	int			count;			/* waiters to wake */
} PendingWake;
static PendingWake pending_wakes[MAX_PENDING_WAKES];
static int	npending_wakes = 0;
static bool pending_overflow = false;	/* too many: wake every waiter of the db */
static bool running_freed = false;	/* this transaction ended a running job */

/*
 * Queues this transaction claimed from, with the savepoint level of the
 * claim: if that level rolls back, the jobs are claimable again and as many
 * waiters are woken (at least one: a claim that failed midway may have had
 * rows locked that other claimers skipped).
 */
#define MAX_CLAIMED 32
typedef struct ClaimedQueue
{
	uint32		hash;
	int			count;
	int			level;
} ClaimedQueue;
static ClaimedQueue claimed[MAX_CLAIMED];
static int	nclaimed = 0;
static bool claimed_overflow = false;
static int	current_claim = -1;	/* index in claimed[] of the running awa_claim */

/* This backend as a blocked claimer (see awa_wait_register). */
static bool registered = false;
static uint32 registered_hash = 0;
static int	registered_nqueues = 1;	/* as the slot's nqueues */
static uint32 registered_hashes[AWA_WAIT_QUEUES];
static bool took_wake = false;	/* its current attempt was woken */
static bool attempting = false;	/* an attempt is under way */
static bool slept = false;		/* the next attempt follows a sleep */
static bool keeps_time = false; /* its due_at is published */

/*
 * A timekeeper's role to hand on at the end of the current transaction
 * (awa_wait_unregister): the queues it waited on, as registered_*.
 */
static bool deferred_pass = false;
static int	deferred_nqueues = 1;
static uint32 deferred_hash = 0;
static uint32 deferred_hashes[AWA_WAIT_QUEUES];
static bool exit_callback_set = false;

static void note_queue(const char *queue, bool notify);
static void note_hash(uint32 h, bool available);
static bool register_hashes(const uint32 *hashes, int n, uint32 every);
static int	claimed_entry_hash(uint32 h);
static void pass_on_wakeup(void);
static void pass_on_wakeup_of(int nqueues, uint32 hash, const uint32 *hashes);
static void pass_deferred(void);
static bool slot_serves(AwaWaitSlot *slot, uint32 hash);
static void set_exit_callback(void);

/* hook: rwait -- the top bit marks a ring lane's hash (see the file header) */
#define LANE_HASH_BIT	UINT32_C(0x80000000)

static uint32
queue_hash(const char *queue)
{
	return hash_bytes((const unsigned char *) queue, strlen(queue)) & ~LANE_HASH_BIT;
}

/* hook: rwait -- the hash of a ring lane (awa_ring_lane's name) */
static uint32
lane_hash(const char *lane)
{
	return hash_bytes((const unsigned char *) lane, strlen(lane)) | LANE_HASH_BIT;
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

/*
 * Remember a queue to wake at commit (one more waiter for an available
 * job, at least one for a scheduled job); NOTIFY it when asked (notify.c).
 */
static void
note_queue(const char *queue, bool notify)
{
	note_hash(queue_hash(queue), notify);
	if (notify)
		awa_notify_queue(queue);
}

/*
 * hook: rwait -- the jobs of a ring lane (awa_ring_lane's name): available
 * counts one more waiter to wake at commit, else (a job due later) at
 * least one; available also NOTIFYs the queue's listeners (as
 * awa_job_available; a job due later tells them nothing).
 */
void
awa_lane_available(const char *lane, bool available)
{
	note_hash(lane_hash(lane), available);
	/*
	 * hook: riso -- a ring queue's job made available NOTIFYs the queue's
	 * channel as awa_job_available does (a second NOTIFY of the same
	 * channel and payload in a transaction is dropped by PostgreSQL)
	 */
	if (available && strncmp(lane, RING_LANE_PREFIX, strlen(RING_LANE_PREFIX)) == 0)
		awa_notify_queue(lane + strlen(RING_LANE_PREFIX));
}

/* note_queue's bookkeeping, by hash (available: one more waiter) */
static void
note_hash(uint32 h, bool available)
{
	PendingWake *w = NULL;
	int			i;

	for (i = 0; i < npending_wakes; i++)
		if (pending_wakes[i].hash == h)
			w = &pending_wakes[i];
	if (w == NULL && npending_wakes < MAX_PENDING_WAKES)
	{
		w = &pending_wakes[npending_wakes++];
		w->hash = h;
		w->count = 0;
	}
	else if (w == NULL)
		pending_overflow = true;
	if (w != NULL && (available || w->count == 0) && w->count < INT_MAX)
		w->count++;
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
 * Whether a waiter's slot waits for the queue with this hash: its one
 * queue, one of its several, or every queue.  Read between two reads of
 * reg_gen, like the other fields.
 */
static bool
slot_serves(AwaWaitSlot *slot, uint32 hash)
{
	uint32		n = slot->nqueues;
	uint32		i;

	if (n == 1)
		return slot->queue_hash == hash;
	/* every queue, or more than a slot lists: queue_hash's top bit says of which engine (hook: rwait) */
	if (n == 0 || n > AWA_WAIT_QUEUES)
		return (hash & LANE_HASH_BIT) == (slot->queue_hash & LANE_HASH_BIT);
	for (i = 0; i < n; i++)
		if (slot->queue_hashes[i] == hash)
			return true;
	return false;
}

/*
 * Hand a wake-up to up to k waiters of this database: those waiting on the
 * queue with this hash, or on any queue (any_queue), and only those at a
 * concurrency limit (at_limit_only).  A waiter that holds a wake-up it has
 * not taken yet is skipped: its next attempt sees our commit anyway.
 *
 * A wake-up is the slot's woken flag set to a tag of its own.  If the slot
 * was withdrawn (reg_gen moved) by the time the flag is set, the waiter
 * may have left without seeing it; then the flag is taken back, and the
 * wake-up counts only if that fails: someone cleared the tag meanwhile, a
 * claim attempt that then saw our commit, a withdrawal that passed the
 * wake-up on, or a new registration whose first attempt comes after our
 * commit.  Counting a withdrawn slot as never woken instead would wake a
 * second waiter for one job whenever the first one claimed it and left
 * before the check.  The tag makes the take-back touch only our own flag,
 * never one that another transaction set after the waiter took ours.
 * Returns the number handed out.
 */
static int
hand_wakeups(uint32 hash, bool any_queue, bool at_limit_only, int k)
{
	int			nslots;
	int			start;
	int			n;
	int			handed = 0;

	if (awa_shared == NULL || k <= 0 ||
		pg_atomic_read_u32(&awa_shared->nwaiting) == 0)
		return 0;
	pg_memory_barrier();
	nslots = awa_shared->nslots;
	/* begin where the last scan left off, so wake-ups spread over waiters */
	start = (int) (pg_atomic_fetch_add_u32(&awa_shared->next_start, 1) % (uint32) nslots);
	/*
	 * Two passes: waiters that claim from this queue first, then waiters of
	 * more queues than a slot lists (they wait for every queue but claim
	 * only theirs, so one may take a wake-up for a job it will not claim:
	 * only when no waiter of the queue is left to take it).
	 */
	for (n = 0; n < 2 * nslots && handed < k; n++)
	{
		int			i = (start + n) % nslots;
		bool		overflow_pass = n >= nslots;
		AwaWaitSlot *slot = &awa_shared->slots[i];
		uint32		gen = pg_atomic_read_u32(&slot->reg_gen);
		uint32		expected = 0;
		uint32		tag;
		int			procno;
		bool		match;

		if ((gen & 1) == 0 || i == MyBackendId - 1)
			continue;
		pg_read_barrier();
		match = slot->dboid == MyDatabaseId &&
			(any_queue ? !overflow_pass :
			 (slot->nqueues > AWA_WAIT_QUEUES) == overflow_pass && slot_serves(slot, hash));
		procno = slot->procno;
		pg_read_barrier();
		if (!match || pg_atomic_read_u32(&slot->reg_gen) != gen)
			continue;
		if (at_limit_only && pg_atomic_read_u32(&slot->at_limit) == 0)
			continue;
		do
			tag = pg_atomic_add_fetch_u32(&awa_shared->wake_tag, 1);
		while (tag == 0);
		if (!pg_atomic_compare_exchange_u32(&slot->woken, &expected, tag))
			continue;
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
		if (pg_atomic_read_u32(&slot->reg_gen) == gen ||
			!pg_atomic_compare_exchange_u32(&slot->woken, &tag, 0))
			handed++;
	}
	return handed;
}

/*
 * Hand a wake-up to the waiter of slot i (a waiter of several queues at a
 * concurrency limit, which is not counted per queue), unless it holds one.
 */
static void
wake_slot(int i)
{
	AwaWaitSlot *slot = &awa_shared->slots[i];
	uint32		gen = pg_atomic_read_u32(&slot->reg_gen);
	uint32		expected = 0;
	uint32		tag;
	int			procno;

	if ((gen & 1) == 0 || i == MyBackendId - 1)
		return;
	pg_read_barrier();
	procno = slot->procno;
	pg_read_barrier();
	if (pg_atomic_read_u32(&slot->reg_gen) != gen)
		return;
	do
		tag = pg_atomic_add_fetch_u32(&awa_shared->wake_tag, 1);
	while (tag == 0);
	if (!pg_atomic_compare_exchange_u32(&slot->woken, &expected, tag))
		return;
	SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/*
 * After a commit: wake as many waiters of each queue as the transaction
 * made jobs claimable, every waiter of the database if it fed too many
 * queues to remember, and, if it ended running jobs, one waiter at a limit
 * per queue (the chain of wake-ups does the rest, see the file header).
 */
static void
wake_waiters(void)
{
	int			k;

	if (awa_shared == NULL || pg_atomic_read_u32(&awa_shared->nwaiting) == 0)
		return;
	if (pending_overflow)
		(void) hand_wakeups(0, true, false, INT_MAX);
	else
		for (k = 0; k < npending_wakes; k++)
			(void) hand_wakeups(pending_wakes[k].hash, false, false,
								pending_wakes[k].count);
	if (running_freed)
	{
		uint32		seen[MAX_PENDING_WAKES];
		int			nseen = 0;
		int			i;

		for (i = 0; i < awa_shared->nslots; i++)
		{
			AwaWaitSlot *slot = &awa_shared->slots[i];
			uint32		h;
			int			j;

			if ((pg_atomic_read_u32(&slot->reg_gen) & 1) == 0 ||
				pg_atomic_read_u32(&slot->at_limit) == 0)
				continue;
			pg_read_barrier();
			if (slot->dboid != MyDatabaseId)
				continue;
			if (slot->nqueues != 1)
			{
				/* a waiter of several queues: counts again on its own */
				wake_slot(i);
				continue;
			}
			h = slot->queue_hash;
			for (j = 0; j < nseen && seen[j] != h; j++)
				;
			if (j < nseen)
				continue;
			if (nseen == MAX_PENDING_WAKES)
			{
				/* many limited queues waited on: wake every waiter at a limit */
				(void) hand_wakeups(0, true, true, INT_MAX);
				break;
			}
			seen[nseen++] = h;
			(void) hand_wakeups(h, false, true, 1);
		}
	}
}

/*
 * After a rollback of claims (of the whole transaction, or of savepoints
 * from level `from` up): their jobs are claimable again; wake as many
 * waiters of each queue, and forget those claims.
 */
static void
wake_for_rolled_back_claims(int from)
{
	int			i;
	int			kept = 0;
	int			current = -1;

	/* too many queues to remember: every waiter of the database */
	if (claimed_overflow)
		(void) hand_wakeups(0, true, false, INT_MAX);
	for (i = 0; i < nclaimed; i++)
	{
		if (claimed[i].level >= from)
		{
			if (!claimed_overflow)
				(void) hand_wakeups(claimed[i].hash, false, false,
									Max(claimed[i].count, 1));
			continue;
		}
		if (i == current_claim)
			current = kept;
		claimed[kept++] = claimed[i];
	}
	nclaimed = kept;
	current_claim = current;
	if (from <= 1)
		claimed_overflow = false;
}

/*
 * Transaction end: wake claimers after a commit; after an abort, wake
 * claimers for the jobs its claims give back.
 */
static void
wake_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
			if (nclaimed > 0 || claimed_overflow)
				wake_for_rolled_back_claims(1);
			/* FALLTHROUGH */
		case XACT_EVENT_COMMIT:
			if (event == XACT_EVENT_COMMIT &&
				(npending_wakes > 0 || pending_overflow || running_freed))
				wake_waiters();
			/* FALLTHROUGH */
		case XACT_EVENT_PREPARE:
			pass_deferred();	/* a timekeeper that left (awa_wait_unregister) */
			npending_wakes = 0;
			pending_overflow = false;
			running_freed = false;
			nclaimed = 0;
			claimed_overflow = false;
			current_claim = -1;
			break;
		default:
			break;
	}
}

/*
 * Savepoints: a rolled-back one gives back the jobs it claimed; a released
 * one hands its claims up.
 */
static void
wake_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;

	if (event == SUBXACT_EVENT_ABORT_SUB && nclaimed > 0)
		wake_for_rolled_back_claims(level);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		for (i = 0; i < nclaimed; i++)
			if (claimed[i].level >= level)
				claimed[i].level = level - 1;
}

/*
 * Backend exit, however it happens (FATAL included, where awa_claim's
 * PG_FINALLY does not run): withdraw the wait slot, passing on a wake-up
 * or a timekeeping it held.
 */
static void
wake_exit(int code, Datum arg)
{
	awa_wait_unregister();
}

/* Make sure wake_exit runs when this backend exits. */
static void
set_exit_callback(void)
{
	if (!exit_callback_set)
	{
		before_shmem_exit(wake_exit, (Datum) 0);
		exit_callback_set = true;
	}
}

/*
 * Publish this backend as waiting for jobs of queue (until
 * awa_wait_unregister).  Returns false when there is no shared memory
 * (awa not preloaded): the caller then polls.
 */
bool
awa_wait_register(const char *queue)
{
	return awa_wait_register_many(&queue, 1);
}

/*
 * Publish this backend as waiting for jobs of any of the n queues (n = 0:
 * of every queue; more than AWA_WAIT_QUEUES also waits for every queue),
 * until awa_wait_unregister.  A commit that makes jobs of one of them
 * claimable counts this waiter among the queue's waiters.  Returns false
 * without shared memory, as awa_wait_register.
 */
bool
awa_wait_register_many(const char *const *queues, int n)
{
	uint32		hashes[AWA_WAIT_QUEUES];
	int			i;

	for (i = 0; i < n && n <= AWA_WAIT_QUEUES; i++)
		hashes[i] = queue_hash(queues[i]);
	return register_hashes(hashes, n, 0);
}

/*
 * hook: rwait -- publish this backend as waiting for jobs of one ring lane
 * (awa_ring_lane's name), as awa_wait_register does for a queue.
 */
bool
awa_wait_register_lane(const char *lane)
{
	uint32		h = lane_hash(lane);

	return register_hashes(&h, 1, 0);
}

/*
 * hook: rclaim -- publish this backend as waiting for jobs of any of n
 * ring lanes (awa_ring_lane's names), as awa_wait_register_many does for
 * queues: n = 0, or more than AWA_WAIT_QUEUES, waits for every lane of the
 * database.  Returns false without shared memory: the caller then polls.
 */
bool
awa_wait_register_lanes(const char *const *lanes, int n)
{
	uint32		hashes[AWA_WAIT_QUEUES];
	int			i;

	for (i = 0; i < n && n <= AWA_WAIT_QUEUES; i++)
		hashes[i] = lane_hash(lanes[i]);
	return register_hashes(hashes, n, LANE_HASH_BIT);
}

/*
 * Publish the slot for these n hashes; n = 0: every queue of one engine,
 * the one every names (0 for awa.jobs, LANE_HASH_BIT for the ring's
 * lanes); more than AWA_WAIT_QUEUES: as 0, with nothing listed (a waiter
 * of that many queues, woken after the waiters of the queue, see
 * hand_wakeups).
 */
static bool
register_hashes(const uint32 *hashes, int n, uint32 every)
{
	AwaWaitSlot *slot = awa_my_slot();
	int			i;

	if (slot == NULL)
		return false;
	set_exit_callback();
	if (registered)
		awa_wait_unregister();
	slot->dboid = MyDatabaseId;
	slot->nqueues = (uint32) Min(n, AWA_WAIT_QUEUES + 1);
	slot->queue_hash = n == 1 ? hashes[0] : (n == 0 || n > AWA_WAIT_QUEUES) ? every : 0;
	for (i = 0; i < n && n <= AWA_WAIT_QUEUES; i++)
		slot->queue_hashes[i] = registered_hashes[i] = hashes[i];
	slot->procno = MyProc->pgprocno;
	pg_atomic_write_u32(&slot->woken, 0);
	pg_atomic_write_u32(&slot->at_limit, 0);
	pg_atomic_write_u64(&slot->due_at, 0);
	pg_write_barrier();
	/* odd: registered (a slot left odd by a backend that died keeps its count) */
	if ((pg_atomic_read_u32(&slot->reg_gen) & 1) == 0)
	{
		pg_atomic_fetch_add_u32(&slot->reg_gen, 1);
		pg_atomic_fetch_add_u32(&awa_shared->nwaiting, 1);
	}
	else
		pg_atomic_fetch_add_u32(&slot->reg_gen, 2);
	pg_memory_barrier();
	registered = true;
	registered_hash = slot->queue_hash;
	registered_nqueues = (int) slot->nqueues;
	took_wake = false;
	attempting = false;
	slept = false;
	keeps_time = false;
	return true;
}

/*
 * Pass one wake-up on from this waiter (it claimed a full batch after a
 * wake-up, or leaves holding one or the timekeeping): to another waiter of
 * its queue.  A waiter of several queues does not know which of them the
 * wake-up was for, so it passes one to a waiter of each; a waiter of every
 * queue wakes every waiter of the database.
 */
static void
pass_on_wakeup(void)
{
	pass_on_wakeup_of(registered_nqueues, registered_hash, registered_hashes);
}

/* pass_on_wakeup for a registration's queues (nqueues, hash, hashes: as registered_*) */
static void
pass_on_wakeup_of(int nqueues, uint32 hash, const uint32 *hashes)
{
	int			i;

	if (nqueues == 1)
		(void) hand_wakeups(hash, false, false, 1);
	else if (nqueues == 0 || nqueues > AWA_WAIT_QUEUES)
		(void) hand_wakeups(0, true, false, INT_MAX);
	else
		for (i = 0; i < nqueues; i++)
			(void) hand_wakeups(hashes[i], false, false, 1);
}

/* Hand on the timekeeping deferred to this transaction's end (awa_wait_unregister), if any. */
static void
pass_deferred(void)
{
	if (!deferred_pass)
		return;
	deferred_pass = false;
	pass_on_wakeup_of(deferred_nqueues, deferred_hash, deferred_hashes);
}

/*
 * Before each claim attempt of a registered waiter: take the wake-up it
 * was handed, if any, before the attempt takes its snapshot (so the
 * attempt sees the commit that handed it, and every commit that skipped
 * this waiter because it held one).
 */
void
awa_wait_attempt(void)
{
	AwaWaitSlot *slot = awa_my_slot();

	if (!registered || slot == NULL)
		return;
	took_wake = pg_atomic_exchange_u32(&slot->woken, 0) != 0;
	attempting = true;
	if (slept)
		pg_atomic_fetch_add_u64(&awa_shared->wakeups, 1);
	slept = false;
}

/*
 * Whether a wake-up was handed to this registered waiter and not taken yet.
 * Every wake-up of awa sets the flag before it sets the latch, so a latch
 * set without it came from elsewhere (a signal, catch-up of the shared
 * invalidation queue): the waiter sleeps on rather than try again.  Call it
 * after ResetLatch, so that a wake-up handed after the check still ends the
 * next sleep.  Not registered (no shared memory): true, every wake counts.
 */
bool
awa_wait_woken(void)
{
	AwaWaitSlot *slot = awa_my_slot();

	if (!registered || slot == NULL)
		return true;
	return pg_atomic_read_u32(&slot->woken) != 0;
}

/*
 * A registered waiter's attempt claimed nothing and it is about to sleep;
 * due_ms is how long until the queue's next scheduled job comes due (-1:
 * none).  Returns the time to sleep at most for that job: due_ms if this
 * waiter keeps that time for its queue, -1 if another waiter already keeps
 * it (an earlier or equal time; ties go to the lower slot).  The time is
 * published before the others are read, so of two waiters deciding at
 * once at least one keeps it.
 */
long
awa_wait_before_sleep(long due_ms)
{
	AwaWaitSlot *slot = awa_my_slot();
	uint64		due;
	int			i;

	if (!registered || slot == NULL)
		return due_ms;
	attempting = false;
	took_wake = false;
	slept = true;
	if (registered_nqueues != 1)
		return due_ms;			/* a waiter of several queues keeps its own time */
	if (due_ms < 0)
	{
		if (keeps_time)
			pg_atomic_write_u64(&slot->due_at, 0);
		keeps_time = false;
		return -1;
	}
	due = (uint64) (GetCurrentTimestamp() + (TimestampTz) due_ms * 1000);
	pg_atomic_write_u64(&slot->due_at, due);
	pg_memory_barrier();
	for (i = 0; i < awa_shared->nslots; i++)
	{
		AwaWaitSlot *other = &awa_shared->slots[i];
		uint32		gen = pg_atomic_read_u32(&other->reg_gen);
		uint64		other_due;

		if ((gen & 1) == 0 || other == slot)
			continue;
		pg_read_barrier();
		if (other->dboid != MyDatabaseId || other->nqueues != 1 ||
			other->queue_hash != registered_hash)
			continue;
		other_due = pg_atomic_read_u64(&other->due_at);
		pg_read_barrier();
		if (pg_atomic_read_u32(&other->reg_gen) != gen)
			continue;
		if (other_due != 0 &&
			(other_due < due || (other_due == due && i < MyBackendId - 1)))
		{
			/* that one keeps the time: withdraw ours and sleep */
			pg_atomic_write_u64(&slot->due_at, 0);
			keeps_time = false;
			return -1;
		}
	}
	keeps_time = true;
	return due_ms;
}

/*
 * Tell completing transactions that this waiter's queue is at its limit
 * (or no longer).  Publish before counting again: a completion that
 * commits later finds the flag and wakes the waiter.
 */
void
awa_wait_at_limit(bool at_limit)
{
	AwaWaitSlot *slot = awa_my_slot();

	if (!registered || slot == NULL)
		return;
	pg_atomic_write_u32(&slot->at_limit, at_limit ? 1 : 0);
	pg_memory_barrier();
}

/*
 * Withdraw the slot published by awa_wait_register.  A wake-up handed to
 * it and not taken, or taken by an attempt that did not finish, goes to
 * another waiter of the queue; so does the timekeeping of a scheduled job,
 * at the end of the transaction when it ends with the statement (outside
 * a transaction block; see the file header), else at once.
 */
void
awa_wait_unregister(void)
{
	AwaWaitSlot *slot = awa_my_slot();
	bool		pass_on;
	bool		timekeeper;

	if (!registered || slot == NULL)
		return;
	registered = false;
	pg_atomic_write_u64(&slot->due_at, 0);
	pg_atomic_fetch_add_u32(&slot->reg_gen, 1);	/* even: withdrawn */
	pg_atomic_fetch_sub_u32(&awa_shared->nwaiting, 1);
	pass_on = pg_atomic_exchange_u32(&slot->woken, 0) != 0 ||
		(took_wake && attempting);
	timekeeper = keeps_time;
	took_wake = false;
	attempting = false;
	keeps_time = false;
	if (!pass_on && timekeeper && !proc_exit_inprogress &&
		IsTransactionState() && !IsTransactionBlock())
	{
		/* the timekeeping, at this statement's transaction end (file header) */
		pass_deferred();		/* an earlier one of this transaction: now */
		deferred_pass = true;
		deferred_nqueues = registered_nqueues;
		deferred_hash = registered_hash;
		if (registered_nqueues > 1 && registered_nqueues <= AWA_WAIT_QUEUES)
			memcpy(deferred_hashes, registered_hashes, sizeof(uint32) * registered_nqueues);
		return;
	}
	if (pass_on || timekeeper)
		pass_on_wakeup();
}

/*
 * The entry of claimed[] for queue at the current savepoint level, added
 * (with count 0) if there is none; -1 when there is no room left, after
 * which every rollback of a claim wakes every waiter of the database.
 */
static int
claimed_entry(const char *queue)
{
	return claimed_entry_hash(queue_hash(queue));
}

/* claimed_entry by hash */
static int
claimed_entry_hash(uint32 h)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;

	for (i = 0; i < nclaimed; i++)
		if (claimed[i].hash == h && claimed[i].level == level)
			return i;
	if (nclaimed == MAX_CLAIMED)
	{
		claimed_overflow = true;
		return -1;
	}
	claimed[nclaimed].hash = h;
	claimed[nclaimed].count = 0;
	claimed[nclaimed].level = level;
	return nclaimed++;
}

/*
 * awa_claim begins on queue: remember it, so that if the claim's
 * transaction or savepoint rolls back, waiters are woken for the jobs it
 * gives back.
 */
void
awa_claim_begins(const char *queue)
{
	current_claim = claimed_entry(queue);
}

/*
 * hook: rwait -- awa.ring_claim begins on a ring lane (awa_ring_lane's
 * name): as awa_claim_begins, so that a rollback of its claims wakes the
 * lane's waiters; awa_claim_ends ends it.
 */
void
awa_lane_claim_begins(const char *lane)
{
	current_claim = claimed_entry_hash(lane_hash(lane));
}

/*
 * hook: rclaim -- awa.ring_claim over several queues (ring_claim.c) claims
 * n jobs of a ring lane (n = 0 before it starts): as awa_claim_noted.
 */
void
awa_lane_claim_noted(const char *lane, int n)
{
	int			i = claimed_entry_hash(lane_hash(lane));

	if (i >= 0)
		claimed[i].count += n;
}

/*
 * A claim of several queues claims n jobs of queue (n = 0 before it
 * starts): counted like awa_claim_begins and awa_claim_ends do for one
 * queue, so that a rollback wakes that many waiters of the queue (at least
 * one).
 */
void
awa_claim_noted(const char *queue, int n)
{
	int			i = claimed_entry(queue);

	if (i >= 0)
		claimed[i].count += n;
}

/*
 * An attempt of a blocking claim claimed nothing and its savepoint is about
 * to be rolled back: forget the queues it noted at this level with no job
 * (awa_claim_noted(queue, 0) of a multi-queue claim), so that the rollback
 * wakes nobody.  It gives back no claimable job (rows it locked and
 * skipped were claimed by others), and waking a waiter for it would make
 * two waiters of the same queues wake each other without end.
 */
void
awa_claim_attempt_empty(void)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;
	int			kept = 0;
	int			current = -1;

	for (i = 0; i < nclaimed; i++)
	{
		if (claimed[i].level >= level && claimed[i].count == 0)
			continue;
		if (i == current_claim)
			current = kept;
		claimed[kept++] = claimed[i];
	}
	nclaimed = kept;
	current_claim = current;
}

/*
 * awa_claim claimed n jobs; full: as many as its batch.  A waiter that was
 * woken and claimed a full batch passes a wake-up on: more jobs may wait.
 */
void
awa_claim_ends(int n, bool full)
{
	if (current_claim >= 0 && current_claim < nclaimed)
		claimed[current_claim].count += n;
	current_claim = -1;
	if (registered && took_wake && full)
		pass_on_wakeup();
	took_wake = false;
	attempting = false;
}

/*
 * Sleep on the latch for up to timeout_ms (at least 1) as a waiter
 * (registered: it returns early only for a wake-up handed to it, see
 * awa_wait_woken, so that a stray latch does not cost a claim attempt; not
 * registered: for any setting of the latch), an interrupt (checked), or a
 * client that hung up (then a FATAL at the check).  The blocking claims'
 * sleep: awa_claim's (claim.c) and the ring's (ring_wait.c).
 */
void
awa_wait_sleep(long timeout_ms, bool registered)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Max(timeout_ms, 1));

	for (;;)
	{
		int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
		pgsocket	sock = PGINVALID_SOCKET;
		TimestampTz now;

		if (MyProcPort != NULL && MyProcPort->sock != PGINVALID_SOCKET &&
			WaitEventSetCanReportClosed())
		{
			events |= WL_SOCKET_CLOSED;
			sock = MyProcPort->sock;
		}
		if (WaitLatchOrSocket(MyLatch, events, sock, Max(timeout_ms, 1),
							  PG_WAIT_EXTENSION) & WL_SOCKET_CLOSED)
		{
			ClientConnectionLost = true;
			InterruptPending = true;
		}
		CHECK_FOR_INTERRUPTS();
		if (!registered)
			return;
		ResetLatch(MyLatch);
		if (awa_wait_woken())
			return;
		now = GetCurrentTimestamp();
		if (now >= end)
			return;
		timeout_ms = (long) ((end - now) / 1000) + 1;
	}
}

/* Wake-up machinery set-up, called from _PG_init. */
void
awa_wake_init(void)
{
	RegisterXactCallback(wake_xact_callback, NULL);
	RegisterSubXactCallback(wake_subxact_callback, NULL);
}
