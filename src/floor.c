/*-------------------------------------------------------------------------
 *
 * floor.c
 *		Claim floors: where a claim's index scan of a (queue, priority)
 *		lane may start without passing a job it could claim.
 *
 * Why.  A claim changes the state of the rows it takes, so every job
 * claimed leaves a dead entry at the head of the claim index (queue,
 * priority, run_at, id).  While some snapshot in the cluster is older than
 * those claims, VACUUM cannot remove them and they cannot even be marked
 * dead, and every claim walks all of them before it finds a live row.  A
 * floor lets the claim start its scan of a lane at (run_at, id) >= floor.
 *
 * What a floor promises.  Every job of the lane that is committed in a
 * waiting state (claimable once due) has a key at or above the lane's
 * floor.  A floor only ever moves up by a claim, to a key no higher than:
 *	- the first job of the lane in a waiting state that a snapshot S taken
 *	  before the claim's statements sees at or above the floor the claim
 *	  started from (the probe, awa_floor_end).  S sees a job another claim
 *	  has locked or updated but not committed as still waiting, so a claim
 *	  that rolls back (or a savepoint, or a cancel) never leaves a job
 *	  below the floor; the claimer's own earlier claims in its transaction,
 *	  which S sees as running, cap its floors too (the claimed notes);
 *	- the key of every pin of the lane: a transaction that wrote a job
 *	  into a waiting state (enqueue, retry, snooze, failure with a retry,
 *	  rescue, operator retry: every row awa_job_enqueued or job.c's
 *	  transitions announce) notes the lowest run_at it wrote per queue
 *	  (awa_floor_note) and, just before it commits or prepares, publishes a
 *	  pin (xid, lane, run_at) and lowers the floors of every priority of
 *	  the lane to that run_at.
 *	  The pin stays until the transaction is no longer running (removed at
 *	  commit or abort by its backend; a prepared transaction's pin by the
 *	  first raise that finds it finished), so a claim whose S could not
 *	  see the commit does not pass the job;
 *	- the key of every pin removed since the claim read the floor (the
 *	  removal log): a pin removed after the claim read the floor belongs
 *	  to a commit its snapshot may have missed.  More removals than the log
 *	  holds, and the claim leaves the floor alone.
 * A pin must exist before the job can be seen by others (at commit), not
 * before the row is written: nobody sees an uncommitted row, and a raise
 * that happened before the pin is undone by the pin's lowering.
 *
 * What does not pin: an UPDATE by plain SQL that moves a job into a waiting
 * state or lowers its run_at, priority or queue, an INSERT with the
 * jobs_before_insert trigger disabled (session_replication_role = replica,
 * a data-only restore with --disable-triggers, logical replication), and
 * a database created from a template that holds jobs.  Such a job is found
 * by the lane's next reset, every awa.claim_floor_reset (60 s by default),
 * while the other claims go on from the floors as they are: on the table,
 * the first claim after that reads the lane from the head and lowers its
 * floors to the first waiting job its probe finds there (floor_lower); on
 * the ring (scan->walker), the lane's claims walk what lies below the
 * floors from the head, one claim at a time a chunk each, and the chunk
 * that finds a waiting job lowers the floor to it (awa_floor_walked).
 * Floors go down only these ways and by pins.  And at every server start.
 * Promotion of scheduled jobs needs no pin (the claim reads scheduled and
 * available jobs alike), nor does a queue being resumed.
 *
 * Limits.  Queues with names shorter than FLOOR_NAME_BYTES get floors in
 * a table of FLOOR_LANES lanes shared by every database; longer names are
 * always scanned from the head.  Once the table is full, a queue that
 * needs a lane takes the one least recently read that no live pin covers
 * (lane_evict): the lane starts at no floor and its count of resets moves
 * on, so a claim of the evicted queue that read before raises nothing, and
 * the evicted queue gets a fresh lane (at no floor) when next claimed.  A
 * writer whose queue finds no lane at all pins every lane of its database
 * instead.  If
 * the pin table ever fills up (it has room for FLOOR_PINS_PER_XACT pins
 * per backend and prepared transaction, and one more per prepared
 * transaction for pin_recovered, so it cannot), floors are switched off
 * until the server restarts.  Shared memory starts with no floors, so
 * after a restart or a crash the first claim of a lane walks from the
 * head; prepared transactions that survived it are pinned at no floor by
 * the first claim after the start (pin_recovered).  With aging off
 * (awa.priority_aging_interval = 0) the claim's one range uses the floor
 * of priority 1 only.
 *
 * Callers.  A claim of one queue calls awa_floor_begin, awa_floor_taken
 * for each job it took and awa_floor_end; a claim over several queues
 * calls awa_floor_begin_many (one snapshot for all its queues) and
 * awa_floor_end_with per queue, with one probe for all of them; it also
 * asks (scan->ask) about the priorities where it found no candidate, and
 * a priority whose probe then sees no waiting job at all gets its floor
 * raised to the end (run_at infinity, under the same caps), which the
 * claim over several queues does not read at all (awa_floor_at_end) until
 * a pin lowers it; that claim raises the floors of the priorities it took
 * jobs of only every FLOOR_RAISE_EVERY jobs of the queue (awa_floor_defer).  The ring (ring.c) uses lanes of its own name
 * and awa_floor_end_with, whose probe reads its relations instead.  Writers call awa_floor_note for each job they
 * make waiting; the rest happens at commit.  hook: rstats -- a reader that
 * walks a lane with its own (older) snapshot, the ring's lag and drain,
 * calls awa_floor_begin_at: the floors of the newest generation that
 * snapshot may start from (a lane keeps FLOOR_GENS older copies of its
 * floors with the highest xmax of the snapshots whose probes raised them),
 * and may raise the floors after its walk as a claim does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "awa.h"
#include "floor.h"

#define FLOOR_LANES				512
#define FLOOR_NAME_BYTES		64
#define FLOOR_PINS_PER_XACT		8
#define FLOOR_LOG				64
#define FLOOR_RAISE_EVERY		16	/* awa_floor_defer */
#define FLOOR_TRANCHE			"awa_floors"
#define FLOOR_GENS				4	/* hook: rstats -- generations kept (awa_floor_begin_at) */
#define FLOOR_GEN_USECS			INT64CONST(100000)	/* a generation's span of raises */
#define FLOOR_WALK_BUSY_USECS	INT64CONST(1000000)	/* a reset's chunk left by a claim that failed */

/*
 * hook: rstats -- a lane's floors as they were, and the highest xmax of
 * the snapshots whose probes raised them (awa_floor_begin_at).
 */
typedef struct FloorGen
{
	AwaFloorKey floors[AWA_FLOOR_PRIORITIES];
	TransactionId xmax;			/* invalid: never raised since the reset */
} FloorGen;

/* One queue of one database: its floor per priority. */
typedef struct FloorLane
{
	Oid			dboid;			/* InvalidOid: free */
	uint32		hash;
	char		queue[FLOOR_NAME_BYTES];
	TimestampTz reset_at;		/* when its floors were last set to none */
	uint32		resets;			/* how many times */
	pg_atomic_uint64 read_at;	/* when a claim last read it (lane_evict) */
	AwaFloorKey floors[AWA_FLOOR_PRIORITIES];
	TransactionId xmax;			/* hook: rstats -- floors' FloorGen.xmax */
	TimestampTz gen_at;			/* when floors began this generation */
	FloorGen	older[FLOOR_GENS];	/* earlier generations, newest first */
	/* a reset walked a chunk at a time by the lane's claims (awa_floor_walked) */
	bool		walking;		/* a walk is under way */
	TimestampTz walk_busy_at;	/* when a claim took the next chunk (0: none has it) */
	uint32		walk_gen;		/* which walk: moves on at each start */
	bool		walk_left[AWA_FLOOR_PRIORITIES];	/* priorities not walked yet */
	AwaFloorKey walk_from[AWA_FLOOR_PRIORITIES];	/* where their next chunk starts (after) */
} FloorLane;

/* A committing (or prepared) transaction that wrote waiting jobs. */
typedef struct FloorPin
{
	TransactionId xid;			/* InvalidTransactionId: free */
	Oid			dboid;
	int			lane;			/* -1: every lane of dboid */
	bool		prepared;		/* its backend has let go of it */
	TimestampTz run_at;			/* lowest run_at it wrote there */
} FloorPin;

/* A pin removed (its transaction ended), for claims that read before. */
typedef struct FloorRemoved
{
	Oid			dboid;
	int			lane;
	TimestampTz run_at;
} FloorRemoved;

typedef struct FloorShared
{
	LWLock	   *lock;
	bool		off;			/* the pin table overflowed */
	bool		recovered;		/* prepared transactions from before the
								 * start are pinned (or there are none) */
	uint64		seq;			/* pins removed so far */
	uint64		raises;			/* floors raised so far */
	int			npins;
	int			pins_used;		/* pins[pins_used..] are free */
	FloorRemoved log[FLOOR_LOG];	/* removal seq is at log[seq % FLOOR_LOG] */
	FloorLane	lanes[FLOOR_LANES];
	FloorPin	pins[FLEXIBLE_ARRAY_MEMBER];
} FloorShared;

/* A queue and the lowest run_at this transaction wrote or claimed there. */
typedef struct FloorNote
{
	char		queue[FLOOR_NAME_BYTES];
	TimestampTz run_at;
} FloorNote;

/* The notes of a transaction: FLOOR_PINS_PER_XACT - 1 queues, then all. */
typedef struct FloorNotes
{
	int			n;
	bool		all;			/* more queues: all_min covers them all */
	TimestampTz all_min;
	FloorNote	q[FLOOR_PINS_PER_XACT - 1];
} FloorNotes;

static FloorShared *fs = NULL;
static bool awa_claim_floors = true;
static int	awa_claim_floor_reset = 60;
static int	show_dummy = 0;

static FloorNotes written;		/* jobs this transaction made waiting */
static FloorNotes claimed;		/* jobs this transaction claimed */
static TransactionId pinned_xid = InvalidTransactionId;

static const AwaFloorKey no_floor = {DT_NOBEGIN, PG_INT64_MIN};

static void floor_xact_callback(XactEvent event, void *arg);

static int
key_cmp(AwaFloorKey a, AwaFloorKey b)
{
	if (a.run_at != b.run_at)
		return a.run_at < b.run_at ? -1 : 1;
	if (a.id != b.id)
		return a.id < b.id ? -1 : 1;
	return 0;
}

/* The key just below every job of that run_at. */
static AwaFloorKey
key_at(TimestampTz run_at)
{
	AwaFloorKey k = {run_at, PG_INT64_MIN};

	return k;
}

/* Room for the pins (see Limits above). */
static int
floor_npins(void)
{
	return FLOOR_PINS_PER_XACT * (MaxBackends + max_prepared_xacts) + max_prepared_xacts;
}

static Size
floor_shmem_size(void)
{
	return add_size(offsetof(FloorShared, pins),
					mul_size(floor_npins(), sizeof(FloorPin)));
}

/* Reserve the floors' shared memory and lock (from shmem.c's request hook). */
void
awa_floor_shmem_request(void)
{
	RequestAddinShmemSpace(floor_shmem_size());
	RequestNamedLWLockTranche(FLOOR_TRANCHE, 1);
}

/*
 * Create or attach to the floors (from shmem.c's startup hook, which holds
 * AddinShmemInitLock).  Every floor starts as no floor.
 */
void
awa_floor_shmem_startup(void)
{
	bool		found;

	fs = ShmemInitStruct("awa floors", floor_shmem_size(), &found);
	if (!found)
	{
		int			i;

		memset(fs, 0, floor_shmem_size());
		fs->lock = &(GetNamedLWLockTranche(FLOOR_TRANCHE))->lock;
		fs->npins = floor_npins();
		for (i = 0; i < FLOOR_LANES; i++)
			pg_atomic_init_u64(&fs->lanes[i].read_at, 0);
	}
}

/* SHOW awa.claim_floor_raises */
static const char *
show_raises(void)
{
	static char buf[24];
	uint64		n = 0;

	if (fs != NULL)
	{
		LWLockAcquire(fs->lock, LW_SHARED);
		n = fs->raises;
		LWLockRelease(fs->lock);
	}
	snprintf(buf, sizeof(buf), UINT64_FORMAT, n);
	return buf;
}

/* The floors' setting, counter and transaction hook (from _PG_init). */
void
awa_floor_init(void)
{
	DefineCustomBoolVariable("awa.claim_floors",
							 "Claims start their index scans at the claim floors in shared memory.",
							 "Off: every claim scans its queue's lanes from the head of the claim index. Jobs are never skipped either way.",
							 &awa_claim_floors,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("awa.claim_floor_reset",
							"How often the claims of each queue look below its claim floors for waiting jobs and lower the floors to the first they find.",
							"A job written into a waiting state behind awa's back (a plain UPDATE, an INSERT with triggers disabled, logical replication) may wait about this long to be claimed. 0: never.",
							&awa_claim_floor_reset,
							60,
							0, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("awa.claim_floor_raises",
							"Shows how many times a claim raised a claim floor since the server started (0 unless awa is preloaded).",
							NULL, &show_dummy, 0, 0, INT_MAX,
							PGC_INTERNAL,
							GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE | GUC_NO_RESET_ALL,
							NULL, NULL, show_raises);
	RegisterXactCallback(floor_xact_callback, NULL);
}

/* ---------------------------------------------------------------------
 * Lanes, pins and the removal log (caller holds fs->lock)
 * ---------------------------------------------------------------------
 */

/* Set a lane's floors to none. */
static void
lane_reset(FloorLane *l)
{
	int			p;

	int			g;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		l->floors[p] = no_floor;
	/* hook: rstats -- every generation starts again from the head */
	l->xmax = InvalidTransactionId;
	for (g = 0; g < FLOOR_GENS; g++)
	{
		for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
			l->older[g].floors[p] = no_floor;
		l->older[g].xmax = InvalidTransactionId;
	}
	l->reset_at = GetCurrentTimestamp();
	l->gen_at = l->reset_at;
	l->resets++;
	/* nothing below no floor to walk */
	l->walking = false;
	l->walk_gen++;
}

/*
 * Give lane k to this database's queue: it starts at no floor, and its
 * count of resets moves on, so a claim that read it for another queue
 * raises nothing.
 */
static void
lane_take(int k, const char *queue, uint32 h)
{
	FloorLane  *l = &fs->lanes[k];

	l->dboid = MyDatabaseId;
	l->hash = h;
	strlcpy(l->queue, queue, FLOOR_NAME_BYTES);
	pg_atomic_write_u64(&l->read_at, (uint64) GetCurrentTimestamp());
	lane_reset(l);
}

/*
 * The table is full: the lane least recently read that no live pin covers
 * (a pin of a lane, or of every lane of that lane's database), or -1.  Its
 * queue loses its floors; it is scanned from the head until a claim gives
 * it a lane again.  Caller holds fs->lock exclusively.
 */
static int
lane_evict(void)
{
	bool		pinned[FLOOR_LANES];
	int			best = -1;
	uint64		best_at = PG_UINT64_MAX;
	int			i;
	int			k;

	memset(pinned, 0, sizeof(pinned));
	for (i = 0; i < fs->pins_used; i++)
	{
		FloorPin   *pin = &fs->pins[i];

		if (!TransactionIdIsValid(pin->xid))
			continue;
		if (pin->lane >= 0)
			pinned[pin->lane] = true;
		else
			for (k = 0; k < FLOOR_LANES; k++)
				if (fs->lanes[k].dboid == pin->dboid)
					pinned[k] = true;
	}
	for (k = 0; k < FLOOR_LANES; k++)
	{
		uint64		at = pg_atomic_read_u64(&fs->lanes[k].read_at);

		if (!pinned[k] && at < best_at)
		{
			best = k;
			best_at = at;
		}
	}
	return best;
}

/*
 * The lane of this database's queue, created if asked (create needs
 * fs->lock exclusively); -1 if it has none (with create: every lane is
 * pinned).  Lanes are never freed, only taken over (lane_evict), so the
 * probe for a missing queue ends at the first free lane or after all.
 */
static int
lane_find(const char *queue, bool create)
{
	uint32		h = hash_bytes((const unsigned char *) queue, strlen(queue)) ^ MyDatabaseId;
	int			i;
	int			k;

	for (i = 0; i < FLOOR_LANES; i++)
	{
		FloorLane  *l;

		k = (h + i) % FLOOR_LANES;
		l = &fs->lanes[k];
		if (l->dboid == InvalidOid)
		{
			if (!create)
				return -1;
			lane_take(k, queue, h);
			return k;
		}
		if (l->dboid == MyDatabaseId && l->hash == h && strcmp(l->queue, queue) == 0)
			return k;
	}
	if (!create)
		return -1;
	k = lane_evict();
	if (k >= 0)
		lane_take(k, queue, h);
	return k;
}

/* Lower a lane's floors to run_at (hook: rstats -- its older generations too). */
static void
lane_lower(FloorLane *l, TimestampTz run_at)
{
	AwaFloorKey k = key_at(run_at);
	int			p;
	int			g;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		if (key_cmp(k, l->floors[p]) < 0)
			l->floors[p] = k;
		for (g = 0; g < FLOOR_GENS; g++)
			if (key_cmp(k, l->older[g].floors[p]) < 0)
				l->older[g].floors[p] = k;
	}
}

/*
 * Publish a pin of database dboid and lower the floors it covers; false if
 * there is no room.
 */
static bool
pin_add(TransactionId xid, Oid dboid, int lane, TimestampTz run_at, bool prepared)
{
	int			i;

	if (lane >= 0)
		lane_lower(&fs->lanes[lane], run_at);
	else
		for (i = 0; i < FLOOR_LANES; i++)
			if (fs->lanes[i].dboid == dboid)
				lane_lower(&fs->lanes[i], run_at);
	for (i = 0; i < fs->npins; i++)
	{
		FloorPin   *pin = &fs->pins[i];

		if (TransactionIdIsValid(pin->xid))
			continue;
		pin->xid = xid;
		pin->dboid = dboid;
		pin->lane = lane;
		pin->prepared = prepared;
		pin->run_at = run_at;
		if (i >= fs->pins_used)
			fs->pins_used = i + 1;
		return true;
	}
	return false;
}

/* Remove a pin, logging it for the claims that read their floors before. */
static void
pin_remove(FloorPin *pin)
{
	FloorRemoved *r = &fs->log[fs->seq % FLOOR_LOG];

	r->dboid = pin->dboid;
	r->lane = pin->lane;
	r->run_at = pin->run_at;
	fs->seq++;
	pin->xid = InvalidTransactionId;
}

/* ---------------------------------------------------------------------
 * Writers: notes and pins
 * ---------------------------------------------------------------------
 */

/* Add (queue, run_at) to a transaction's notes, keeping the lowest run_at. */
static void
notes_add(FloorNotes *notes, const char *queue, TimestampTz run_at)
{
	int			i;

	for (i = 0; i < notes->n; i++)
		if (strcmp(notes->q[i].queue, queue) == 0)
		{
			notes->q[i].run_at = Min(notes->q[i].run_at, run_at);
			return;
		}
	if (notes->n < lengthof(notes->q))
	{
		strlcpy(notes->q[notes->n].queue, queue, FLOOR_NAME_BYTES);
		notes->q[notes->n++].run_at = run_at;
	}
	else if (!notes->all)
	{
		notes->all = true;
		notes->all_min = run_at;
	}
	else
		notes->all_min = Min(notes->all_min, run_at);
}

/* The lowest run_at noted for the queue (DT_NOEND: none). */
static TimestampTz
notes_min(const FloorNotes *notes, const char *queue)
{
	TimestampTz m = notes->all ? notes->all_min : DT_NOEND;
	int			i;

	for (i = 0; i < notes->n; i++)
		if (strcmp(notes->q[i].queue, queue) == 0)
			m = Min(m, notes->q[i].run_at);
	return m;
}

/*
 * This transaction wrote a job of the queue into a waiting state with this
 * run_at (or a lower bound of it).  Called for every such row (enqueue
 * paths through awa_job_enqueued, job.c's transitions); the pin itself is
 * published just before commit.  Queues whose names are too long for a
 * lane never have floors and need no pin.
 */
void
awa_floor_note(const char *queue, TimestampTz run_at)
{
	if (fs == NULL || strlen(queue) >= FLOOR_NAME_BYTES)
		return;
	notes_add(&written, queue, run_at);
}

/*
 * hook: robs -- the lowest run_at this transaction noted for the queue and
 * has not pinned yet (DT_NOEND: none): its own waiting jobs, which a floor
 * read in the transaction may be above until its commit lowers it (the
 * ring's lag, ring_obs.c, starts no higher).
 */
TimestampTz
awa_floor_noted(const char *queue)
{
	return fs == NULL ? DT_NOEND : notes_min(&written, queue);
}

/* Publish this transaction's pins (at pre-commit or pre-prepare). */
static void
pins_publish(void)
{
	TransactionId xid = GetTopTransactionIdIfAny();
	bool		full = false;
	bool		all = written.all;
	TimestampTz all_min = written.all ? written.all_min : DT_NOEND;
	int			i;

	if (!TransactionIdIsValid(xid))
		return;					/* it wrote nothing after all */
	LWLockAcquire(fs->lock, LW_EXCLUSIVE);
	for (i = 0; i < written.n && !full; i++)
	{
		int			lane = lane_find(written.q[i].queue, true);

		if (lane >= 0)
			full = !pin_add(xid, MyDatabaseId, lane, written.q[i].run_at, false);
		else
		{
			/* no lane now, maybe one before its commit: cover them all */
			all_min = Min(all_min, written.q[i].run_at);
			all = true;
		}
	}
	if (all && !full)
		full = !pin_add(xid, MyDatabaseId, -1, all_min, false);
	if (full)
		fs->off = true;
	LWLockRelease(fs->lock);
	pinned_xid = xid;
	if (full)
		elog(LOG, "awa: the claim floors' pin table is full; claims scan from the head until the server restarts");
}

/*
 * This transaction is over: remove its pins (commit, abort), or leave them
 * to whoever finds the prepared transaction finished (prepare).
 */
static void
pins_release(bool prepared)
{
	int			i;

	LWLockAcquire(fs->lock, LW_EXCLUSIVE);
	for (i = 0; i < fs->pins_used; i++)
	{
		FloorPin   *pin = &fs->pins[i];

		if (pin->xid != pinned_xid || pin->prepared)
			continue;
		if (prepared)
			pin->prepared = true;
		else
			pin_remove(pin);
	}
	LWLockRelease(fs->lock);
}

static void
floor_xact_callback(XactEvent event, void *arg)
{
	if (fs == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (written.n > 0 || written.all)
				pins_publish();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			if (TransactionIdIsValid(pinned_xid))
				pins_release(event == XACT_EVENT_PREPARE);
			pinned_xid = InvalidTransactionId;
			memset(&written, 0, offsetof(FloorNotes, q));
			memset(&claimed, 0, offsetof(FloorNotes, q));
			break;
		default:
			break;
	}
}

/* ---------------------------------------------------------------------
 * Claims: read, probe, raise
 * ---------------------------------------------------------------------
 */

/* Whether the lane's floors are due to go back to the head. */
static bool
reset_due(FloorLane *l)
{
	return awa_claim_floor_reset > 0 &&
		GetCurrentTimestamp() - l->reset_at > (int64) awa_claim_floor_reset * USECS_PER_SEC;
}

/*
 * Prepared transactions survive a restart, their pins do not: once after
 * the start, pin every prepared transaction there is to every lane of its
 * database at no floor (one prepared since has its own pins as well).
 * Caller is in SPI.
 */
static void
pin_recovered(void)
{
	uint64		i;
	bool		full = false;

	if (max_prepared_xacts == 0)
	{
		fs->recovered = true;
		return;
	}
	if (SPI_execute("SELECT p.transaction, d.oid FROM pg_catalog.pg_prepared_xacts p"
					" JOIN pg_catalog.pg_database d ON d.datname = p.database",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa_claim: could not read the prepared transactions");
	LWLockAcquire(fs->lock, LW_EXCLUSIVE);
	for (i = 0; i < SPI_processed && !full && !fs->recovered; i++)
	{
		bool		isnull;
		TransactionId xid = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc, 1, &isnull));
		Oid			dboid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2, &isnull));

		full = !pin_add(xid, dboid, -1, DT_NOBEGIN, true);
	}
	if (full)
		fs->off = true;
	fs->recovered = true;
	LWLockRelease(fs->lock);
}

/* hook: rstats -- a transaction that no snapshot has seen commit: running now, or aborted. */
static bool
not_committed(TransactionId xid)
{
	return TransactionIdIsInProgress(xid) || !TransactionIdDidCommit(xid);
}

/*
 * hook: rstats -- whether snapshot at has seen every commit of the
 * transactions below xmax that has happened so far: each one below xmax
 * that at does not see is running now or aborted.  At most 64 xids past
 * at's xmax are looked up (more: false).
 */
bool
awa_floor_seen_all(Snapshot at, TransactionId xmax)
{
	TransactionId x;
	int			i;

	if (!TransactionIdIsNormal(xmax))
		return true;
	if (TransactionIdPrecedes(at->xmax, xmax))
	{
		if (xmax - at->xmax > 64)
			return false;
		for (x = at->xmax; TransactionIdPrecedes(x, xmax);)
		{
			if (!not_committed(x))
				return false;
			TransactionIdAdvance(x);
		}
	}
	for (i = 0; i < at->xcnt; i++)
		if (TransactionIdPrecedes(at->xip[i], xmax) && !not_committed(at->xip[i]))
			return false;
	/* a subtransaction committed with its top one: the top one is in xip (or overflowed into it) */
	for (i = 0; i < at->subxcnt; i++)
		if (TransactionIdPrecedes(at->subxip[i], xmax) && !not_committed(at->subxip[i]))
			return false;
	return true;
}

/*
 * hook: rstats -- of the generations (the current floors first, then the
 * older ones, newest first), the floors of the first every raise of which
 * was made by a probe whose snapshot's commits at has all seen
 * (awa_floor_seen_all with their highest xmax), into start; none if no
 * generation is.  Why that is enough: a floor passes only jobs its raising
 * probe saw in no waiting state, through commits (a claim in progress
 * leaves its jobs waiting to every snapshot); a snapshot that has seen
 * those commits sees them so too; a job made waiting since is below every
 * generation by its pin, which lowers them all (lane_lower).
 */
static void
gen_for(const FloorGen *gens, Snapshot at, AwaFloorKey *start)
{
	int			g;
	int			p;

	for (g = 0; g <= FLOOR_GENS; g++)
		if (!TransactionIdIsValid(gens[g].xmax) ||
			(at != NULL && awa_floor_seen_all(at, gens[g].xmax)))
		{
			memcpy(start, gens[g].floors, sizeof(gens[g].floors));
			return;
		}
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		start[p] = no_floor;
}

/*
 * Read the queue's floors into scan (none when floors are off, unavailable
 * or the queue has no lane); no snapshot yet.  hook: rstats -- start not
 * NULL: also, per priority, the floor of the newest generation that the
 * snapshot at may start from (awa_floor_begin_at).
 */
static void
floor_read_at(AwaFloorScan *scan, const char *queue, Snapshot at, AwaFloorKey *start, bool walker)
{
	int			p;
	FloorGen	gens[FLOOR_GENS + 1];

	scan->lane = -1;
	scan->snapshot = NULL;
	scan->taken_min = DT_NOEND;
	scan->resetting = false;
	scan->walker = walker;
	scan->walk = false;
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		scan->floors[p] = no_floor;
		scan->taken[p] = false;
		scan->ask[p] = false;
	}
	if (fs == NULL || !awa_claim_floors || strlen(queue) >= FLOOR_NAME_BYTES)
		return;
	if (!fs->recovered)
		pin_recovered();

	LWLockAcquire(fs->lock, LW_SHARED);
	scan->lane = fs->off ? -1 : lane_find(queue, false);
	if (scan->lane < 0 && !fs->off)
	{
		LWLockRelease(fs->lock);
		LWLockAcquire(fs->lock, LW_EXCLUSIVE);
		scan->lane = fs->off ? -1 : lane_find(queue, true);
	}
	/*
	 * hook: rstats -- a reader (start) leaves the safety net to the claims.
	 * The safety net for writes that did not pin: this claim reads the lane
	 * from the head and its probe lowers the floors to what it finds there
	 * (awa_floor_end_with); the other claims go on from the floors as they
	 * are meanwhile, so one claim an interval walks what lies below them,
	 * not every claim until a probe raises them again.
	 */
	if (scan->lane >= 0 && start == NULL && reset_due(&fs->lanes[scan->lane]))
	{
		LWLockRelease(fs->lock);
		LWLockAcquire(fs->lock, LW_EXCLUSIVE);
		if (reset_due(&fs->lanes[scan->lane]))
		{
			FloorLane  *l = &fs->lanes[scan->lane];

			l->reset_at = GetCurrentTimestamp();
			if (scan->walker && l->walking)
				;				/* the last one is not done yet: it goes on */
			else if (scan->walker)
			{
				/* from the head, a chunk a claim (awa_floor_walked) */
				l->walking = true;
				l->walk_gen++;
				for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
				{
					l->walk_left[p] = true;
					l->walk_from[p] = no_floor;
				}
			}
			else
				scan->resetting = true;
		}
	}
	/*
	 * One claim at a time walks the next chunk (two would walk the same
	 * rows); one that did not say it is done (an error) is taken over after
	 * FLOOR_WALK_BUSY_USECS.  Taking it writes: under the exclusive lock.
	 */
	if (scan->lane >= 0 && start == NULL && scan->walker && fs->lanes[scan->lane].walking &&
		GetCurrentTimestamp() - fs->lanes[scan->lane].walk_busy_at > FLOOR_WALK_BUSY_USECS)
	{
		FloorLane  *l = &fs->lanes[scan->lane];
		TimestampTz now = GetCurrentTimestamp();

		LWLockRelease(fs->lock);
		LWLockAcquire(fs->lock, LW_EXCLUSIVE);
		if (l->walking && now - l->walk_busy_at > FLOOR_WALK_BUSY_USECS)
		{
			l->walk_busy_at = now;
			scan->walk = true;
			scan->walk_gen = l->walk_gen;
			memcpy(scan->walk_left, l->walk_left, sizeof(scan->walk_left));
			memcpy(scan->walk_from, l->walk_from, sizeof(scan->walk_from));
		}
	}
	if (scan->lane >= 0)
	{
		FloorLane  *l = &fs->lanes[scan->lane];
		uint64		now = (uint64) GetCurrentTimestamp();

		/* a second's precision is plenty for lane_evict: write seldom */
		if (pg_atomic_read_u64(&l->read_at) + USECS_PER_SEC < now)
			pg_atomic_write_u64(&l->read_at, now);
		if (!scan->resetting)
			memcpy(scan->floors, fs->lanes[scan->lane].floors, sizeof(scan->floors));
		scan->seq = fs->seq;
		scan->resets = fs->lanes[scan->lane].resets;
		if (start != NULL)
		{
			/* looked at once the lock is released */
			memcpy(gens[0].floors, l->floors, sizeof(l->floors));
			gens[0].xmax = l->xmax;
			memcpy(&gens[1], l->older, sizeof(l->older));
		}
	}
	LWLockRelease(fs->lock);
	if (start != NULL && scan->lane >= 0)
		gen_for(gens, at, start);

	/*
	 * This transaction's own waiting jobs of the queue: their pins are
	 * published only at commit, and a floor raised since may be above them,
	 * but the transaction sees them, so its claims must too.  Every
	 * priority's floor goes down to the earliest (their priorities are not
	 * noted); only a transaction that wrote jobs behind a floor pays.
	 */
	if (scan->lane >= 0)
	{
		TimestampTz own = notes_min(&written, queue);

		for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		{
			if (own < scan->floors[p].run_at)
			{
				scan->floors[p].run_at = own;
				scan->floors[p].id = PG_INT64_MIN;
			}
			if (start != NULL && own < start[p].run_at)
				start[p] = key_at(own);
		}
	}
}

static void
floor_read(AwaFloorScan *scan, const char *queue, bool walker)
{
	floor_read_at(scan, queue, NULL, NULL, walker);
}

/*
 * Before a claim of the queue: read its floors and take the snapshot the
 * raise will trust.  The snapshot is taken after the read and before the
 * claim's statements, so it sees every commit whose pin was removed before
 * the read, and sees the jobs this claim is about to lock as they were.
 * walker: the claim walks a reset's chunk when one is due (the ring's:
 * awa_floor_walked), else the first claim after the interval reads from
 * the head (scan->resetting, the table's).
 */
void
awa_floor_begin(AwaFloorScan *scan, const char *queue, bool walker)
{
	floor_read(scan, queue, walker);
	if (scan->lane >= 0)
		scan->snapshot = RegisterSnapshot(GetLatestSnapshot());
}

/*
 * hook: rstats -- awa_floor_begin for a reader that walks the lane with
 * snapshot at (older than the one this takes, or as old), which never
 * resets the lane (awa.claim_floor_reset is the claims' safety net for jobs
 * written behind awa's back: they are found once the next claim after it
 * has reset the lane): also, per
 * priority, a key that no job waiting as at sees sorts below (start; none
 * when the lane has no floors), the floor of the newest generation at may
 * use (gen_for), lowered like the floors to this transaction's own
 * unpinned jobs.  The scan may then raise the floors as a claim's does
 * (awa_floor_end_with, with scan->ask set).
 */
void
awa_floor_begin_at(AwaFloorScan *scan, const char *queue, Snapshot at, AwaFloorKey *start)
{
	int			p;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		start[p] = no_floor;
	floor_read_at(scan, queue, at, start, false);
	if (scan->lane >= 0)
		scan->snapshot = RegisterSnapshot(GetLatestSnapshot());
}

/*
 * awa_floor_begin for each of n queues (a claim over several queues; walker
 * as there): the
 * floors of all are read first, then one snapshot, taken after every read,
 * serves all of them (registered once per scan that has a lane).
 */
void
awa_floor_begin_many(AwaFloorScan *scans, char **queues, int n, bool walker)
{
	Snapshot	snap = NULL;
	int			i;

	for (i = 0; i < n; i++)
		floor_read(&scans[i], queues[i], walker);
	for (i = 0; i < n; i++)
	{
		if (scans[i].lane < 0)
			continue;
		if (snap == NULL)
			snap = RegisterSnapshot(GetLatestSnapshot());
		else
			snap = RegisterSnapshot(snap);
		scans[i].snapshot = snap;
	}
}

/*
 * Whether a lane's floor of this priority (1..4) is at the end: its probe
 * saw no waiting job there, and nothing was made waiting there since (a pin
 * lowers it), so a claim need not read that range at all.
 */
bool
awa_floor_at_end(const AwaFloorScan *scan, int priority)
{
	return scan->lane >= 0 && priority >= 1 && priority <= AWA_FLOOR_PRIORITIES &&
		scan->floors[priority - 1].run_at == DT_NOEND;
}

/* The claim took a job of this priority (1..4) with this run_at. */
void
awa_floor_taken(AwaFloorScan *scan, int priority, TimestampTz run_at)
{
	if (priority >= 1 && priority <= AWA_FLOOR_PRIORITIES)
		scan->taken[priority - 1] = true;
	scan->taken_min = Min(scan->taken_min, run_at);
}

/*
 * A claim over several queues that took njobs of the scan's lane: raise the
 * lane's floors (probe them in awa_floor_end_with) only once this backend
 * has taken FLOOR_RAISE_EVERY jobs of the lane since it last did; until
 * then forget which priorities it took, so the probe leaves them alone.
 * A raise left out is always safe (a floor only ever caps where a claim
 * starts); it costs later claims a walk over at most that many more dead
 * entries per range while an old snapshot keeps them, and saves a descent
 * per queue and priority in most claims: such a claim takes a few jobs of
 * each queue.  What it took still caps this transaction's later raises
 * (taken_min is kept), and the priorities asked about are probed as ever.
 */
void
awa_floor_defer(AwaFloorScan *scan, int njobs)
{
	static uint16 since_raise[FLOOR_LANES];
	int			p;

	/* a claim that resets the lane probes what it took: that is the reset */
	if (scan->lane < 0 || scan->lane >= FLOOR_LANES || njobs <= 0 || scan->resetting)
		return;
	if (since_raise[scan->lane] + njobs >= FLOOR_RAISE_EVERY)
	{
		since_raise[scan->lane] = 0;
		return;
	}
	since_raise[scan->lane] += njobs;
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		if (scan->taken[p])
		{
			scan->taken[p] = false;
			scan->ask[p] = false;
		}
}

/* The floors as SQL arrays for the claim statements ($7 run_at, $8 id). */
Datum
awa_floor_run_ats(const AwaFloorScan *scan)
{
	Datum		d[AWA_FLOOR_PRIORITIES];
	int			p;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		d[p] = TimestampTzGetDatum(scan->floors[p].run_at);
	return PointerGetDatum(construct_array(d, AWA_FLOOR_PRIORITIES, TIMESTAMPTZOID,
										   sizeof(TimestampTz), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

Datum
awa_floor_ids(const AwaFloorScan *scan)
{
	Datum		d[AWA_FLOOR_PRIORITIES];
	int			p;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		d[p] = Int64GetDatum(scan->floors[p].id);
	return PointerGetDatum(construct_array(d, AWA_FLOOR_PRIORITIES, INT8OID,
										   sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * A probe's parameters: $1 the queue, $2..$4 the priorities the claim took
 * jobs of (int4[]) and their floors (timestamptz[] run_at, int8[] id).
 * Returns false (found[] all false) when it took none: nothing to probe.
 */
bool
awa_floor_probe_args(const AwaFloorScan *scan, Datum queue, Datum *values, bool *found)
{
	Datum		prio[AWA_FLOOR_PRIORITIES];
	Datum		at[AWA_FLOOR_PRIORITIES];
	Datum		ids[AWA_FLOOR_PRIORITIES];
	int			n = 0;
	int			p;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		found[p] = false;
		if (!scan->taken[p] && !scan->ask[p])
			continue;
		prio[n] = Int32GetDatum(p + 1);
		at[n] = TimestampTzGetDatum(scan->floors[p].run_at);
		ids[n++] = Int64GetDatum(scan->floors[p].id);
	}
	if (n == 0)
		return false;
	values[0] = queue;
	values[1] = PointerGetDatum(construct_array(prio, n, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(at, n, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	return true;
}

/* A probe's result rows (priority, run_at, id) in SPI_tuptable into first[]/found[]. */
void
awa_floor_probe_read(AwaFloorKey *first, bool *found)
{
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			pr = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));

		if (pr < 1 || pr > AWA_FLOOR_PRIORITIES)
			continue;
		first[pr - 1].run_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull));
		first[pr - 1].id = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
		found[pr - 1] = true;
	}
}

/*
 * The probe: for each priority the claim took jobs of, the first job of
 * the lane in a waiting state at or above its floor, as the claim's
 * snapshot sees it.  found[p] false: none.  Caller is in SPI.
 */
static void
probe(AwaFloorScan *scan, Datum queue, AwaFloorKey *first, bool *found)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	Datum		values[4];
	int			ret;
	int			nestlevel;

	if (!awa_floor_probe_args(scan, queue, values, found))
		return;
	awa_plan(&plan,
			 "SELECT f.p, r.run_at, r.id"
			 " FROM unnest($2, $3, $4) AS f(p, fr, fi) CROSS JOIN LATERAL"
			 " (SELECT j.run_at, j.id FROM awa.jobs j"
			 "  WHERE j.queue = $1 AND j.priority = f.p AND j.state IN " AWA_STATES_WAITING_SQL
			 "  AND (j.run_at, j.id) >= (f.fr, f.fi)"
			 "  ORDER BY j.run_at, j.id LIMIT 1) r",
			 4, argtypes);
	/* an index scan in (run_at, id) order, as the claim's own (claim.c) */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_snapshot(plan, values, NULL, scan->snapshot, InvalidSnapshot,
							   true, false, 0);
	AtEOXact_GUC(true, nestlevel);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "awa_claim: floor probe failed: %s", SPI_result_code_string(ret));
	awa_floor_probe_read(first, found);
}

/*
 * After a claim of the queue (SPI connected): remember what this
 * transaction claimed, and raise the floors of the priorities it took jobs
 * of (and of those in scan->ask: where the claim found nothing) to the
 * first waiting job the probe found (an asked priority where it found none:
 * to the end, awa_floor_at_end), capped by this transaction's
 * own earlier claims, by the pins of the lane and by the pins removed since
 * the read (see the head of this file).  Releases the snapshot.
 */
void
awa_floor_end(AwaFloorScan *scan, Datum queue)
{
	if (scan->taken_min == DT_NOEND && scan->lane < 0)
		return;
	awa_floor_end_with(scan, TextDatumGetCString(queue), probe, queue);
}

/*
 * A claim of a lane whose reset is walked in chunks (scan->walk, see
 * floor_read_at) walked priority p (1..4) from scan->walk_from[p - 1] up
 * to its floor, under scan->snapshot, at most a chunk: first is the first
 * waiting job it saw there (found), last the last key it passed, and
 * reached whether it got to the floor.  A job found lowers the floors of p
 * (the current and every older generation's) to it, and the lane's count
 * of resets moves on, so a claim that read the floors before raises
 * nothing past it; found or reached, p is walked; else its next chunk
 * starts after last.  Nothing happens if another walk has started since.
 */
void
awa_floor_walked(AwaFloorScan *scan, int priority, bool found, AwaFloorKey first,
				 bool reached, AwaFloorKey last)
{
	FloorLane  *l;
	int			p = priority - 1;
	int			g;

	if (fs == NULL || !scan->walk || scan->lane < 0 || p < 0 || p >= AWA_FLOOR_PRIORITIES)
		return;
	LWLockAcquire(fs->lock, LW_EXCLUSIVE);
	l = &fs->lanes[scan->lane];
	if (!l->walking || l->walk_gen != scan->walk_gen || !l->walk_left[p])
	{
		LWLockRelease(fs->lock);
		return;
	}
	if (found)
	{
		if (key_cmp(first, l->floors[p]) < 0)
		{
			l->floors[p] = first;
			l->resets++;
		}
		for (g = 0; g < FLOOR_GENS; g++)
			if (key_cmp(first, l->older[g].floors[p]) < 0)
				l->older[g].floors[p] = first;
		l->walk_left[p] = false;
	}
	else if (reached)
		l->walk_left[p] = false;
	else if (key_cmp(last, l->walk_from[p]) > 0)
		l->walk_from[p] = last;
	l->walking = false;
	for (g = 0; g < AWA_FLOOR_PRIORITIES; g++)
		l->walking |= l->walk_left[g];
	LWLockRelease(fs->lock);
}

/*
 * The end of a claim that reset lane l (scan->resetting: it read from the
 * head): each priority's floors, the current and every older generation's
 * (hook: rstats), go down to what its probe found there (first[p] where
 * found[p], capped by cap, the pins and removals it saw); a priority it
 * did not probe (it took nothing there and did not ask) goes back to the
 * head, as every priority did before.  When a floor went down, the lane's count of resets moves on, so
 * a claim that read the floors before raises nothing past what was found
 * below them.  Caller
 * holds fs->lock exclusively.
 */
static void
floor_lower(FloorLane *l, const AwaFloorKey *first, const bool *found, TimestampTz cap)
{
	bool		lowered = false;
	int			p;
	int			g;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		AwaFloorKey to = found[p] ? first[p] : no_floor;

		if (key_cmp(key_at(cap), to) < 0)
			to = key_at(cap);
		if (key_cmp(to, l->floors[p]) < 0)
		{
			l->floors[p] = to;
			lowered = true;
		}
		for (g = 0; g < FLOOR_GENS; g++)
			if (key_cmp(to, l->older[g].floors[p]) < 0)
				l->older[g].floors[p] = to;
	}
	if (lowered)
		l->resets++;
}

/*
 * awa_floor_end for a lane named qname whose waiting jobs the given probe
 * finds (the ring's claim, ring.c, probes its own relations); probe_arg is
 * passed to it.
 */
void
awa_floor_end_with(AwaFloorScan *scan, const char *qname, AwaFloorProbe probe_fn,
				   Datum probe_arg)
{
	AwaFloorKey first[AWA_FLOOR_PRIORITIES];
	bool		found[AWA_FLOOR_PRIORITIES];
	TimestampTz cap;
	TransactionId xmax;
	int			p;
	int			i;

	if (scan->taken_min == DT_NOEND && scan->lane < 0)
		return;
	if (scan->walk && fs != NULL)
	{
		/* its chunk of the reset's walk is done (awa_floor_walked): the next claim may take one */
		LWLockAcquire(fs->lock, LW_EXCLUSIVE);
		if (fs->lanes[scan->lane].walk_gen == scan->walk_gen)
			fs->lanes[scan->lane].walk_busy_at = 0;
		LWLockRelease(fs->lock);
		scan->walk = false;
	}
	if (scan->lane < 0)
	{
		if (fs != NULL && strlen(qname) < FLOOR_NAME_BYTES)
			notes_add(&claimed, qname, scan->taken_min);
		return;
	}
	/* the snapshot sees this transaction's earlier claims, not this one */
	cap = notes_min(&claimed, qname);
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		first[p] = no_floor;	/* read only where the probe set found[p] */
	for (p = 0; p < AWA_FLOOR_PRIORITIES && !scan->ask[p]; p++)
		;
	if (scan->taken_min != DT_NOEND || p < AWA_FLOOR_PRIORITIES)
	{
		probe_fn(scan, probe_arg, first, found);
		/* asked about and seen empty: to the end, until a pin lowers it */
		for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
			if (scan->ask[p] && !scan->taken[p] && !found[p])
			{
				first[p] = key_at(DT_NOEND);
				found[p] = true;
			}
		if (scan->taken_min != DT_NOEND)
			notes_add(&claimed, qname, scan->taken_min);
	}
	else
		memset(found, 0, sizeof(found));
	/* hook: rstats -- the commits the probe's snapshot saw are below its xmax */
	xmax = scan->snapshot->xmax;
	UnregisterSnapshot(scan->snapshot);
	scan->snapshot = NULL;

	for (p = 0; p < AWA_FLOOR_PRIORITIES && !found[p]; p++)
		;
	if (p == AWA_FLOOR_PRIORITIES && !scan->resetting)
		return;

	LWLockAcquire(fs->lock, LW_EXCLUSIVE);
	if (fs->off || !fs->recovered || fs->seq - scan->seq > FLOOR_LOG ||
		fs->lanes[scan->lane].resets != scan->resets)
	{
		/* a reset not done is due again */
		if (scan->resetting && !fs->off && fs->lanes[scan->lane].resets == scan->resets)
			fs->lanes[scan->lane].reset_at = 0;
		LWLockRelease(fs->lock);
		return;
	}
	for (i = 0; i < fs->pins_used; i++)
	{
		FloorPin   *pin = &fs->pins[i];

		if (!TransactionIdIsValid(pin->xid) || pin->dboid != MyDatabaseId ||
			(pin->lane != scan->lane && pin->lane != -1))
			continue;
		cap = Min(cap, pin->run_at);
		if (pin->prepared && !TransactionIdIsInProgress(pin->xid))
			pin_remove(pin);
	}
	for (; scan->seq < fs->seq; scan->seq++)
	{
		FloorRemoved *r = &fs->log[scan->seq % FLOOR_LOG];

		if (r->dboid == MyDatabaseId && (r->lane == scan->lane || r->lane == -1))
			cap = Min(cap, r->run_at);
	}
	if (scan->resetting)
	{
		floor_lower(&fs->lanes[scan->lane], first, found, cap);
		LWLockRelease(fs->lock);
		return;
	}
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		FloorLane  *l = &fs->lanes[scan->lane];
		AwaFloorKey *floor = &l->floors[p];
		AwaFloorKey to = first[p];

		if (!found[p])
			continue;
		if (key_cmp(key_at(cap), to) < 0)
			to = key_at(cap);
		if (key_cmp(to, *floor) > 0)
		{
			/*
			 * hook: rstats -- the first raise of a generation's span keeps
			 * the floors as they were for readers whose snapshot has not
			 * seen this probe's (gen_for)
			 */
			TimestampTz now = GetCurrentTimestamp();

			if (now - l->gen_at >= FLOOR_GEN_USECS)
			{
				memmove(&l->older[1], &l->older[0], sizeof(FloorGen) * (FLOOR_GENS - 1));
				memcpy(l->older[0].floors, l->floors, sizeof(l->floors));
				l->older[0].xmax = l->xmax;
				l->gen_at = now;
			}
			*floor = to;
			if (!TransactionIdIsValid(l->xmax) || TransactionIdFollows(xmax, l->xmax))
				l->xmax = xmax;
			fs->raises++;
		}
	}
	LWLockRelease(fs->lock);
}
