/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *		Rate limits of queues: at most max_claims claims of a queue in any
 *		interval of length period, across every worker and session.
 *
 * What is promised.  A claim's time is the attempted_at it gives its jobs.
 * For a queue with a rate (awa_set_queue_rate), in every half-open
 * interval [s, s + period) at most max_claims jobs of the queue are
 * claimed: a sliding window, not fixed buckets, so no burst of 2N can
 * straddle a bucket edge.  A claim that is rolled back still counts until
 * it leaves the window (it was handed out; counting it can only make the
 * limit stricter, never exceed it).  Jobs over the limit stay where they
 * are, due, and are claimed as slots open.
 *
 * How.  Shared memory holds, per rated queue of a database (a lane), the
 * times of its last AWA_RATE_MAX_CLAIMS claims, oldest first, and one
 * lock for all lanes.  A claim of a rated queue reserves under that lock:
 * it picks its time t, strictly later than every time reserved before in
 * the cluster, counts the lane's claims in (t - period, t], and appends
 * min(wanted, max_claims - count) copies of t.  Because times only grow,
 * the windows that contain t hold no claim after t, so that count is the
 * whole check.  The claim then runs its statement with t as its time, for
 * at most what was granted, outside the lock, and gives back the copies it
 * did not use (fewer jobs were due).  max_claims <= AWA_RATE_MAX_CLAIMS,
 * so the lane always holds every claim a check can need, whatever the
 * period: a changed rate applies exactly from its commit on.
 *
 * Nothing on the hot path writes a row: the claims are counted in shared
 * memory, so a held snapshot does not make the limit a bottleneck.
 *
 * After a restart.  Shared memory starts empty.  A lane is (re)built from
 * awa.jobs the first time a claim needs it: every job of the queue whose
 * attempted_at is within the period counts as min(attempt, max_claims)
 * claims at that time (a job claimed again since keeps only its latest
 * attempted_at, so its earlier attempts are placed there too: later than
 * they were, which only makes the limit stricter).  Claims rolled back
 * before the restart are not counted, as they never happened.  The lane is
 * read again from awa.jobs when the queue gets a rate after having none
 * (rate_set_at changed: claims made meanwhile were not counted; the lane
 * is replaced by what awa.jobs shows), and merged with it when the period
 * grows past what the lane covers (per time, the larger count of the two,
 * so a claim seen in both counts once).  No index covers attempted_at, so
 * that read goes through the partial index of each state a claimed job can
 * be in now, bounded by a time it cannot be older than: running and parked
 * jobs (few), finished ones by finalized_at, and waiting ones (retried,
 * snoozed, put back) by run_at in the claim index, as each of these is set
 * after the claim (a second of slack covers a claim time reserved a little
 * ahead of the clock).  It costs the jobs finished, retried and enqueued
 * within the period, not the table: once per rated queue after a start or a
 * new rate, not per claim.
 *
 * Limits.  RATE_LANES rated queues per cluster are counted at once; a lane
 * whose newest claim left its period is reused.  A rate needs awa in
 * shared_preload_libraries (55000 otherwise).  A claim that is under way
 * while a rate is first set, or a claim of a job changed behind awa's back
 * (a plain UPDATE to running), is not counted.
 *
 * Concurrency keys with a rate (awa_set_key_rate) have lanes of their own,
 * found by (database, key) whatever the queue; see "Rates of concurrency
 * keys" below.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "ratelimit.h"

PG_FUNCTION_INFO_V1(awa_queue_limits);
PG_FUNCTION_INFO_V1(awa_key_rate_window);

#define RATE_LANES			64
#define RATE_NAME_BYTES		(AWA_MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)
#define RATE_TRANCHE		"awa_rates"
#define RATE_CAP			AWA_RATE_MAX_CLAIMS

/* The claims of one rated queue of one database. */
typedef struct RateLane
{
	Oid			dboid;			/* InvalidOid: free */
	bool		key;			/* a concurrency key's lane, not a queue's */
	uint32		hash;
	char		queue[RATE_NAME_BYTES];	/* the queue's or key's name */
	TimestampTz set_at;			/* the rate_set_at it was merged with */
	TimestampTz covered_from;	/* every claim after this is in times */
	int32		max_claims;		/* the rate it was last used with */
	int64		period_us;
	int			head;			/* times[head] is the oldest */
	int			n;
	TimestampTz times[RATE_CAP];	/* a ring, oldest first */
} RateLane;

typedef struct RateShared
{
	LWLock	   *lock;
	TimestampTz last;			/* the latest time reserved, any lane */
	RateLane	lanes[RATE_LANES];
} RateShared;

static RateShared *rs = NULL;

/* When the next slot of a queue this attempt found full opens (DT_NOEND: none). */
static TimestampTz next_slot = DT_NOEND;

/* hook: rclaimx -- set by awa_engine_rate_init (ratelimit.h) */
int			(*awa_rate_seed_ring) (const char *queue, TimestampTz from, int max_claims,
								   TimestampTz **t, int **count) = NULL;

/* The claim time the last reservation of this attempt gave (0: none). */
static TimestampTz reserved_at = 0;

static Size
rate_shmem_size(void)
{
	return sizeof(RateShared);
}

/* Reserve the lanes and their lock (from shmem.c's request hook). */
void
awa_rate_shmem_request(void)
{
	RequestAddinShmemSpace(rate_shmem_size());
	RequestNamedLWLockTranche(RATE_TRANCHE, 1);
}

/* Create or attach to the lanes (from shmem.c's startup hook). */
void
awa_rate_shmem_startup(void)
{
	bool		found;

	rs = ShmemInitStruct("awa rates", rate_shmem_size(), &found);
	if (!found)
	{
		memset(rs, 0, rate_shmem_size());
		rs->lock = &(GetNamedLWLockTranche(RATE_TRANCHE))->lock;
		rs->last = 0;
	}
}

/* Whether rates can be counted: awa is preloaded (the lanes exist). */
bool
awa_rate_available(void)
{
	return rs != NULL;
}

/*
 * The predicate of a queue_meta row "m" whose queue a plain claim leaves
 * to the counted path: a concurrency limit, or a rate when the schema has
 * rates.  The claim statements are rebuilt when the schema changes.
 */
const char *
awa_rate_limited_sql(void)
{
	return awa_schema_has(AWA_SCHEMA_QUEUE_RATES) ?
		"(m.max_running IS NOT NULL OR m.rate_max_claims IS NOT NULL)" :
		"m.max_running IS NOT NULL";
}

/*
 * Read a queue's rate from row `row` of the last statement (columns
 * rate_max_claims, rate_period, rate_set_at).  False if it has none.
 */
bool
awa_rate_read(int row, AwaRate *rate)
{
	bool		isnull;
	Datum		d;

	d = awa_stmt_value(row, "rate_max_claims", &isnull);
	if (isnull)
		return false;
	rate->max_claims = DatumGetInt32(d);
	d = awa_stmt_value(row, "rate_period", &isnull);
	if (isnull)
		return false;
	rate->period_us = awa_interval_usecs(DatumGetIntervalP(d));
	d = awa_stmt_value(row, "rate_set_at", &isnull);
	rate->set_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	return true;
}

/* ---------------------------------------------------------------------
 * Lanes (caller holds rs->lock)
 * ---------------------------------------------------------------------
 */

static inline TimestampTz
ring_get(const RateLane *l, int i)
{
	return l->times[(l->head + i) % RATE_CAP];
}

/* Append a claim at t (the newest), dropping the oldest when full. */
static void
ring_push(RateLane *l, TimestampTz t)
{
	if (l->n == RATE_CAP)
	{
		l->head = (l->head + 1) % RATE_CAP;
		l->n--;
	}
	l->times[(l->head + l->n) % RATE_CAP] = t;
	l->n++;
}

/* How many claims of the lane are later than from, counting up to limit. */
static int
ring_count_after(const RateLane *l, TimestampTz from, int limit)
{
	int			c = 0;
	int			i;

	for (i = l->n - 1; i >= 0 && c < limit && ring_get(l, i) > from; i--)
		c++;
	return c;
}

static uint32
lane_hash(const char *queue)
{
	return hash_bytes((const unsigned char *) queue, strlen(queue)) ^ MyDatabaseId;
}

/* The lane of this database's queue (key: concurrency key), or -1. */
static int
lane_find_of(bool key, const char *queue)
{
	uint32		h = lane_hash(queue);
	int			i;

	for (i = 0; i < RATE_LANES; i++)
	{
		RateLane   *l = &rs->lanes[i];

		if (l->dboid == MyDatabaseId && l->key == key && l->hash == h &&
			strcmp(l->queue, queue) == 0)
			return i;
	}
	return -1;
}

static int
lane_find(const char *queue)
{
	return lane_find_of(false, queue);
}

/*
 * Whether nothing in the lane can count again: its newest claim left its
 * period, or it holds none and was (re)built more than a period ago (an
 * empty lane rebuilt just now is in use: two claimers rebuilding lanes
 * must not take each other's).
 */
static bool
lane_idle(const RateLane *l, TimestampTz now)
{
	if (l->n > 0)
		return ring_get(l, l->n - 1) <= now - l->period_us;
	return l->covered_from == DT_NOEND ||
		l->covered_from <= now - 2 * l->period_us;
}

/*
 * A lane for the queue: its own, a free one, or one whose newest claim has
 * left its period (nothing in it can count again at that rate; if its
 * queue's rate grows, the lane is rebuilt from awa.jobs).  -1 if all are
 * in use.
 */
static int
lane_get(bool key, const char *queue, TimestampTz now)
{
	int			i = lane_find_of(key, queue);
	RateLane   *l;

	if (i >= 0)
		return i;
	/* a free lane first: one just rebuilt may be empty yet in use */
	for (i = 0; i < RATE_LANES; i++)
		if (rs->lanes[i].dboid == InvalidOid)
			break;
	for (i = (i < RATE_LANES) ? i : 0; i < RATE_LANES; i++)
	{
		l = &rs->lanes[i];
		if (l->dboid == InvalidOid || lane_idle(l, now))
			break;
	}
	if (i == RATE_LANES)
		return -1;
	l = &rs->lanes[i];
	l->dboid = MyDatabaseId;
	l->key = key;
	l->hash = lane_hash(queue);
	strlcpy(l->queue, queue, RATE_NAME_BYTES);
	l->set_at = DT_NOBEGIN;
	l->covered_from = DT_NOEND;
	l->max_claims = 0;
	l->period_us = 0;
	l->head = 0;
	l->n = 0;
	return i;
}

/* ---------------------------------------------------------------------
 * Rebuilding a lane from awa.jobs
 * ---------------------------------------------------------------------
 */

/* Claims read from awa.jobs: count claims at each time, oldest first. */
typedef struct RateSeed
{
	int			n;
	TimestampTz *t;
	int		   *count;
} RateSeed;

/*
 * The claims of the queue after `from` that awa.jobs shows (see the file
 * header), the newest max_claims of them.  Caller is in SPI.
 */
static void
seed_read(bool key, const char *queue, TimestampTz from, int max_claims, RateSeed *seed)
{
	static AwaStmt stmt = AWA_QUERY("awa_claim: reading a queue's recent claims",
		"SELECT t, LEAST(GREATEST(a, 1), $3)::bigint AS c FROM ("
		" SELECT attempted_at AS t, attempt AS a FROM awa.jobs"
		"  WHERE state = 'running' AND queue = $1 AND attempted_at > $2"
		" UNION ALL"
		" SELECT attempted_at, attempt FROM awa.jobs"
		"  WHERE state = 'waiting_external' AND queue = $1 AND attempted_at > $2"
		" UNION ALL"
		" SELECT attempted_at, attempt FROM awa.jobs"
		"  WHERE state IN ('completed', 'failed', 'cancelled')"
		"  AND finalized_at > $4 AND finalized_at < $5 AND queue = $1 AND attempted_at > $2"
		" UNION ALL"
		" SELECT attempted_at, attempt FROM awa.jobs"
		"  WHERE state IN ('available', 'scheduled', 'retryable') AND queue = $1"
		"  AND priority = ANY ('{1,2,3,4}'::smallint[]) AND run_at > $4"
		"  AND attempted_at > $2"
		") s ORDER BY t DESC LIMIT $3",
		5, TEXTOID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID);
	/* a key's: its live jobs through jobs_key_live_idx, finished ones as above */
	static AwaStmt key_stmt = AWA_QUERY("awa_claim: reading a key's recent claims",
		"SELECT t, LEAST(GREATEST(a, 1), $3)::bigint AS c FROM ("
		" SELECT attempted_at AS t, attempt AS a FROM awa.jobs"
		"  WHERE state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')"
		"  AND concurrency_key = $1 AND attempted_at > $2"
		" UNION ALL"
		" SELECT attempted_at, attempt FROM awa.jobs"
		"  WHERE state IN ('completed', 'failed', 'cancelled')"
		"  AND finalized_at > $4 AND finalized_at < $5 AND concurrency_key = $1"
		"  AND attempted_at > $2"
		") s ORDER BY t DESC LIMIT $3",
		5, TEXTOID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID);
	Datum		values[5];
	TimestampTz noend;
	uint64		rows;
	uint64		i;
	int			total = 0;

	/* hook: rclaimx -- a database whose jobs are in the ring: its receipts (engine_rate.c) */
	if (!key && awa_rate_seed_ring != NULL && awa_schema_has(AWA_SCHEMA_RING_ENGINE))
	{
		seed->n = awa_rate_seed_ring(queue, from, max_claims, &seed->t, &seed->count);
		return;
	}
	values[0] = CStringGetTextDatum(queue);
	values[1] = TimestampTzGetDatum(from);
	values[2] = Int32GetDatum(max_claims);
	/* $4: a second of slack; $5 (no end) makes the finished branch a range,
	 * which the generic plan reads through jobs_finalized_idx (an open
	 * bound alone is guessed to match a third of the table) */
	values[3] = TimestampTzGetDatum(from - USECS_PER_SEC);
	TIMESTAMP_NOEND(noend);
	values[4] = TimestampTzGetDatum(noend);
	rows = awa_stmt_run(key ? &key_stmt : &stmt, values, NULL, 0);
	seed->t = palloc(sizeof(TimestampTz) * Max(rows, 1));
	seed->count = palloc(sizeof(int) * Max(rows, 1));
	seed->n = 0;
	/* newest first: keep up to max_claims claims, then store oldest first */
	for (i = 0; i < rows && total < max_claims; i++)
	{
		bool		isnull;
		int			c = (int) awa_stmt_int8(i, "c");

		c = Min(c, max_claims - total);
		seed->t[seed->n] = DatumGetTimestampTz(awa_stmt_value(i, "t", &isnull));
		seed->count[seed->n] = c;
		seed->n++;
		total += c;
	}
	for (i = 0; i < (uint64) seed->n / 2; i++)
	{
		int			j = seed->n - 1 - (int) i;
		TimestampTz tt = seed->t[i];
		int			cc = seed->count[i];

		seed->t[i] = seed->t[j];
		seed->count[i] = seed->count[j];
		seed->t[j] = tt;
		seed->count[j] = cc;
	}
}

/*
 * Merge the seed into the lane: per time, the larger of the two counts (a
 * claim seen in both counts once), keeping the newest RATE_CAP claims.
 */
static void
lane_merge(RateLane *l, const RateSeed *seed)
{
	TimestampTz *out = palloc(sizeof(TimestampTz) * (l->n + RATE_CAP));
	int			nout = 0;
	int			i = 0;
	int			j = 0;
	int			k;

	while (i < l->n || j < seed->n)
	{
		TimestampTz t;
		int			cl = 0;
		int			cs = 0;

		if (j >= seed->n || (i < l->n && ring_get(l, i) <= seed->t[j]))
			t = ring_get(l, i);
		else
			t = seed->t[j];
		while (i < l->n && ring_get(l, i) == t)
		{
			cl++;
			i++;
		}
		if (j < seed->n && seed->t[j] == t)
			cs = seed->count[j++];
		for (k = 0; k < Max(cl, cs); k++)
			out[nout++] = t;
	}
	l->head = 0;
	l->n = 0;
	for (k = Max(nout - RATE_CAP, 0); k < nout; k++)
		l->times[l->n++] = out[k];
	pfree(out);
}

/* ---------------------------------------------------------------------
 * Claiming under a rate
 * ---------------------------------------------------------------------
 */

/* Before each claim attempt: it has found no full window yet, reserved nothing. */
void
awa_rate_attempt(void)
{
	next_slot = DT_NOEND;
	reserved_at = 0;
}

/*
 * The time this attempt's queue rates gave the claim (awa_rate_reserve), or
 * 0 if none did yet: the claim statements that follow give it to their jobs.
 */
TimestampTz
awa_rate_reserved_at(void)
{
	return reserved_at;
}

/* Whether the asked queue's lane can be used as it is at time t. */
static bool
lane_ready(int i, const AwaRateAsk *ask, TimestampTz t)
{
	RateLane   *l;

	if (i < 0)
		return false;
	l = &rs->lanes[i];
	return l->set_at == ask->rate.set_at && l->covered_from <= t - ask->rate.period_us;
}

/*
 * Reserve claims for n queues of one claim, each under its rate: sets each
 * ask's granted (0..want) and returns the claim's time, which the claim
 * must give its jobs (no earlier than at).  Every granted claim is counted
 * at that time until awa_rate_release gives back the unused ones.  A queue
 * granted nothing records when its next slot opens (awa_rate_wait_ms).
 * Caller is in SPI (a lane may have to be rebuilt from awa.jobs).
 */
TimestampTz
awa_rate_reserve(AwaRateAsk *asks, int n, TimestampTz at)
{
	int			tries;

	if (rs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("queue \"%s\" has a rate limit, which needs awa in shared_preload_libraries",
						asks[0].queue),
				 errhint("Add awa to shared_preload_libraries and restart, or remove the rate with awa_set_queue_rate(queue, NULL, NULL).")));
	for (tries = 0; tries < 100; tries++)
	{
		TimestampTz t;
		int			need = -1;
		int			k;
		RateSeed	seed;
		TimestampTz from;
		int			i;

		LWLockAcquire(rs->lock, LW_EXCLUSIVE);
		t = Max(Max(GetCurrentTimestamp(), at), rs->last + 1);
		for (k = 0; k < n && need < 0; k++)
			if (!lane_ready(lane_find(asks[k].queue), &asks[k], t))
				need = k;
		if (need < 0)
		{
			for (k = 0; k < n; k++)
			{
				AwaRateAsk *a = &asks[k];
				RateLane   *l = &rs->lanes[lane_find(a->queue)];
				int			used = ring_count_after(l, t - a->rate.period_us,
													a->rate.max_claims);
				int			c;

				a->granted = Max(Min(a->want, a->rate.max_claims - used), 0);
				for (c = 0; c < a->granted; c++)
					ring_push(l, t);
				l->max_claims = a->rate.max_claims;
				l->period_us = a->rate.period_us;
				if (a->granted == 0 && a->want > 0 && l->n >= a->rate.max_claims)
				{
					/* the oldest claim that must leave the window first */
					TimestampTz open = ring_get(l, l->n - a->rate.max_claims) +
						a->rate.period_us;

					next_slot = Min(next_slot, open);
				}
			}
			rs->last = t;
			LWLockRelease(rs->lock);
			reserved_at = t;	/* keys' rates count at t too (keylimit.c) */
			return t;
		}
		LWLockRelease(rs->lock);

		/* rebuild that lane from awa.jobs, outside the lock */
		from = t - asks[need].rate.period_us;
		seed_read(false, asks[need].queue, from, asks[need].rate.max_claims, &seed);
		LWLockAcquire(rs->lock, LW_EXCLUSIVE);
		i = lane_get(false, asks[need].queue, GetCurrentTimestamp());
		if (i < 0)
		{
			LWLockRelease(rs->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many queues with a rate limit are in use at once (at most %d)",
							RATE_LANES),
					 errdetail("Queue \"%s\" has a rate limit but no room is left to count its claims.",
							   asks[need].queue),
					 errhint("Remove the rates of queues that do not need one (awa_set_queue_rate(queue, NULL, NULL)).")));
		}
		{
			RateLane   *l = &rs->lanes[i];

			if (l->set_at != asks[need].rate.set_at)
			{
				/* a rate set anew: its window is what awa.jobs shows */
				l->head = 0;
				l->n = 0;
				l->covered_from = from;
			}
			else
				l->covered_from = Min(l->covered_from, from);
			lane_merge(l, &seed);
			l->set_at = asks[need].rate.set_at;
			l->max_claims = asks[need].rate.max_claims;
			l->period_us = asks[need].rate.period_us;
		}
		LWLockRelease(rs->lock);
	}
	elog(ERROR, "awa_claim: could not count the claims of queue \"%s\"", asks[0].queue);
	return at;					/* not reached */
}

/*
 * Give back `unused` of the claims reserved at t for the queue (its claim
 * took fewer jobs): they were never made.  Times are unique to a
 * reservation, so the claims at t are this claim's own.
 */
void
awa_rate_release(const char *queue, TimestampTz at, int unused)
{
	int			i;

	if (unused <= 0 || rs == NULL)
		return;
	LWLockAcquire(rs->lock, LW_EXCLUSIVE);
	i = lane_find(queue);
	if (i >= 0)
	{
		RateLane   *l = &rs->lanes[i];
		int			last = l->n - 1;
		int			k;

		/* the claims at `at` end at the last index whose time is <= at */
		while (last >= 0 && ring_get(l, last) > at)
			last--;
		k = 0;
		while (k < unused && last - k >= 0 && ring_get(l, last - k) == at)
			k++;
		if (k > 0)
		{
			int			from = last - k + 1;
			int			j;

			for (j = last + 1; j < l->n; j++)
				l->times[(l->head + from + (j - last - 1)) % RATE_CAP] = ring_get(l, j);
			l->n -= k;
		}
	}
	LWLockRelease(rs->lock);
}

/*
 * How long until a slot opens on a queue that the last attempt found at
 * its rate, in milliseconds (-1: none was).
 */
long
awa_rate_wait_ms(TimestampTz now)
{
	if (next_slot == DT_NOEND)
		return -1;
	if (next_slot <= now)
		return 0;
	return (long) Min((next_slot - now) / 1000 + 1, (int64) LONG_MAX / 2);
}

/* The earlier of two waits in milliseconds, -1 meaning none. */
long
awa_rate_earlier(long a, long b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return Min(a, b);
}

/* ---------------------------------------------------------------------
 * Rates of concurrency keys
 *
 * A key's lane is found by (database, key), apart from the queues'.  Its
 * claims are counted one by one as the claim statement admits each job
 * (keylimit.c), at the claim's time x, the attempted_at the statement gives
 * the job.  Claims of one key by different claimers do not reach the lane
 * in time order (each claim's time was fixed before its statement ran), so
 * a claim at x is admitted only if every window [s, s + period) that
 * contains x holds fewer than max_claims claims, counting those after x
 * too; the lane is kept in time order (a claim lands near its end).  The
 * lane must hold every claim after x - period: if it is full and its oldest
 * claim is later, the claim is refused (stricter, never over).  Admitted
 * claims are not given back: the statement claims every job it admitted.
 * ---------------------------------------------------------------------
 */

/* Insert a claim at x, keeping the lane in time order. */
static void
ring_insert(RateLane *l, TimestampTz x)
{
	int			i;

	ring_push(l, x);
	for (i = l->n - 1; i > 0 && ring_get(l, i - 1) > x; i--)
	{
		l->times[(l->head + i) % RATE_CAP] = ring_get(l, i - 1);
		l->times[(l->head + i - 1) % RATE_CAP] = x;
	}
}

/*
 * The most claims of the lane in any window [s, s + period) that contains
 * x (x - period < s <= x).  The count only grows as s passes a claim's
 * time minus period, so the candidates are s = x - period + 1 and s = t -
 * period + 1 for each claim t in [x, x + period).
 */
static int
lane_most_around(const RateLane *l, TimestampTz x, int64 period)
{
	int			lo = 0;
	int			hi = 0;
	int			best = 0;
	int			k;
	TimestampTz s = x - period + 1;

	/* k walks the claims in [x, x + period): each gives a candidate s */
	for (k = 0; k < l->n && ring_get(l, k) < x; k++)
		;
	for (;;)
	{
		while (lo < l->n && ring_get(l, lo) < s)
			lo++;
		if (hi < lo)
			hi = lo;
		while (hi < l->n && ring_get(l, hi) < s + period)
			hi++;
		best = Max(best, hi - lo);
		if (k >= l->n || ring_get(l, k) >= x + period)
			break;
		s = Max(s, ring_get(l, k) - period + 1);
		k++;
	}
	return best;
}

/* The key's lane if it can be used for a claim at x as it is, or -1. */
static int
key_lane_ready(const char *key, const AwaRate *rate, TimestampTz x)
{
	int			i = lane_find_of(true, key);

	if (i >= 0 && rs->lanes[i].set_at >= rate->set_at &&
		rs->lanes[i].covered_from <= x - rate->period_us)
		return i;
	return -1;
}

/*
 * Whether the rate allows one more claim at x in the (ready) lane; if not,
 * record when the next slot opens for a claim after every claim counted.
 */
static bool
key_lane_admits(const RateLane *l, const AwaRate *rate, TimestampTz x)
{
	if (l->n == RATE_CAP && ring_get(l, 0) > x - rate->period_us)
		;						/* claims it needs may have left the lane */
	else if (lane_most_around(l, x, rate->period_us) < rate->max_claims)
		return true;
	if (l->n >= rate->max_claims)
		next_slot = Min(next_slot,
						ring_get(l, l->n - rate->max_claims) + rate->period_us);
	else
		next_slot = Min(next_slot, GetCurrentTimestamp() + rate->period_us);
	return false;
}

/*
 * Whether the key's rate is known, without reading awa.jobs, to allow no
 * claim at x (then the next slot is recorded as by awa_rate_admit_key):
 * lets a claim skip the key's jobs without locking them.
 */
bool
awa_rate_key_full(const char *key, const AwaRate *rate, TimestampTz x)
{
	int			i;
	bool		full = false;

	if (rs == NULL)
		return false;
	LWLockAcquire(rs->lock, LW_SHARED);
	i = key_lane_ready(key, rate, x);
	if (i >= 0)
		full = !key_lane_admits(&rs->lanes[i], rate, x);
	LWLockRelease(rs->lock);
	return full;
}

/*
 * Count one claim of the key at time x under its rate, if the rate allows
 * it: whether it did.  If not, the attempt records when the key's next
 * slot opens (awa_rate_wait_ms), so a blocking claim sleeps until then.
 * Caller is a claim statement (the lane may be rebuilt from awa.jobs,
 * through SPI).
 */
bool
awa_rate_admit_key(const char *key, const AwaRate *rate, TimestampTz x)
{
	int			tries;

	if (rs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("concurrency key \"%s\" has a rate limit, which needs awa in shared_preload_libraries",
						key),
				 errhint("Add awa to shared_preload_libraries and restart, or remove the rate with awa_set_key_rate(pattern, NULL, NULL).")));
	for (tries = 0; tries < 100; tries++)
	{
		int			i;
		int			nestlevel;
		RateSeed	seed;
		TimestampTz from = x - rate->period_us;

		LWLockAcquire(rs->lock, LW_EXCLUSIVE);
		i = key_lane_ready(key, rate, x);
		if (i >= 0)
		{
			RateLane   *l = &rs->lanes[i];
			bool		ok = key_lane_admits(l, rate, x);

			if (ok)
				ring_insert(l, x);
			l->max_claims = rate->max_claims;
			l->period_us = rate->period_us;
			LWLockRelease(rs->lock);
			return ok;
		}
		LWLockRelease(rs->lock);

		/*
		 * (Re)build the lane from awa.jobs, outside the lock.  This runs
		 * inside the claim statement, which turns sorts off (claim.c): the
		 * read sorts its few rows, and needs no JIT.
		 */
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("enable_sort", "on", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		SPI_connect();
		seed_read(true, key, from, rate->max_claims, &seed);
		LWLockAcquire(rs->lock, LW_EXCLUSIVE);
		i = lane_get(true, key, GetCurrentTimestamp());
		if (i < 0)
		{
			LWLockRelease(rs->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many queues and concurrency keys with a rate limit are in use at once (at most %d)",
							RATE_LANES),
					 errdetail("Concurrency key \"%s\" has a rate limit but no room is left to count its claims.",
							   key),
					 errhint("Give rates to fewer keys (awa_set_key_rate(pattern, NULL, NULL) removes one).")));
		}
		{
			RateLane   *l = &rs->lanes[i];

			/*
			 * A rate set anew after the lane was built: its window is what
			 * awa.jobs shows (claims made without a rate were not counted).
			 * A rate set before (the period grew, or the rule of another
			 * kind of the key): merge, keeping what is counted.
			 */
			if (l->set_at < rate->set_at)
			{
				l->head = 0;
				l->n = 0;
				l->covered_from = from;
				l->set_at = rate->set_at;
			}
			else
				l->covered_from = Min(l->covered_from, from);
			lane_merge(l, &seed);
			l->max_claims = rate->max_claims;
			l->period_us = rate->period_us;
		}
		LWLockRelease(rs->lock);
		SPI_finish();
		AtEOXact_GUC(true, nestlevel);
	}
	elog(ERROR, "awa_claim: could not count the claims of concurrency key \"%s\"", key);
	return false;				/* not reached */
}

/*
 * Check a rate's arguments: max_claims (argument mi) and per (pi) of fcinfo;
 * false when max_claims is NULL (no rate).  Errors 22023 naming the field,
 * 55000 when awa is not preloaded.
 */
bool
awa_rate_args(FunctionCallInfo fcinfo, int mi, int pi, AwaRate *rate)
{
	int32		max_claims;
	Interval   *per;
	int64		us;

	if (PG_ARGISNULL(mi))
		return false;
	max_claims = PG_GETARG_INT32(mi);
	if (max_claims < 1 || max_claims > AWA_RATE_MAX_CLAIMS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_claims must be between 1 and %d, got %d",
						AWA_RATE_MAX_CLAIMS, max_claims),
				 errhint("Pass NULL to remove the rate; for more claims, use a shorter period.")));
	if (PG_ARGISNULL(pi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per must not be NULL when max_claims is given"),
				 errhint("Give the period, e.g. interval '1 second'.")));
	per = PG_GETARG_INTERVAL_P(pi);
	us = awa_interval_usecs(per);
	if (per->month != 0 || us < AWA_RATE_MIN_PERIOD_US ||
		us > (int64) AWA_RATE_MAX_PERIOD_DAYS * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per must be between 1 millisecond and %d days, without months, got \"%s\"",
						AWA_RATE_MAX_PERIOD_DAYS,
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(per))))));
	if (!awa_rate_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rate limits need awa in shared_preload_libraries"),
				 errdetail("The claims under a rate are counted in shared memory."),
				 errhint("Add awa to shared_preload_libraries and restart the server.")));
	rate->max_claims = max_claims;
	rate->period_us = us;
	rate->set_at = DT_NOBEGIN;
	return true;
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/*
 * awa_queue_limits() RETURNS TABLE (queue, paused, max_running, running,
 * rate_max_claims, rate_period, window_claims, next_slot_at)
 *
 * Every queue with a concurrency limit or a rate: the limit and its jobs
 * running now; the rate, the claims counted in the window that ends now
 * (NULL until a claim of the queue has counted them since the server
 * started) and, when that window is full, when the next slot opens.
 */
Datum
awa_queue_limits(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_QUERY("awa_queue_limits: reading the queues' limits",
		"SELECT m.queue, m.paused, m.max_running,"
		" (SELECT count(*) FROM awa.jobs j WHERE j.state = 'running' AND j.queue = m.queue) AS running,"
		" m.rate_max_claims, m.rate_period, m.rate_set_at"
		" FROM awa.queue_meta m"
		" WHERE m.max_running IS NOT NULL OR m.rate_max_claims IS NOT NULL"
		" ORDER BY m.queue",
		0);
	/*
	 * On the ring engine (engine.c) the running jobs are the counters'
	 * (counters.c: the newest fold's count plus the deltas it did not see,
	 * exact at the caller's snapshot), a few index probes per queue instead
	 * of a pass over the awa.jobs view.
	 */
	static AwaStmt ring_stmt = AWA_QUERY("awa_queue_limits: reading the queues' limits",
		"WITH f AS (SELECT l.fold, l.snapshot FROM awa.counter_folds l ORDER BY l.fold DESC LIMIT 1)"
		" SELECT m.queue, m.paused, m.max_running,"
		" (coalesce((SELECT c.running FROM awa.counter_fold_counts c, f WHERE c.fold = f.fold AND c.queue = m.queue), 0)"
		"  + coalesce((SELECT sum(d.running) FROM awa.counter_deltas d WHERE d.queue = m.queue"
		"   AND d.xid >= coalesce((SELECT pg_catalog.pg_snapshot_xmax(f.snapshot) FROM f), '0'::xid8)), 0)"
		"  + coalesce((SELECT sum(d.running) FROM awa.counter_deltas d WHERE d.queue = m.queue"
		"   AND d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(f.snapshot) FROM f))), 0))::bigint AS running,"
		" m.rate_max_claims, m.rate_period, m.rate_set_at"
		" FROM awa.queue_meta m"
		" WHERE m.max_running IS NOT NULL OR m.rate_max_claims IS NOT NULL"
		" ORDER BY m.queue",
		0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	uint64		rows;
	uint64		r;

	awa_require_schema(AWA_SCHEMA_QUEUE_RATES, "awa_queue_limits");
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	rows = awa_stmt_run(awa_schema_has(AWA_SCHEMA_RING_ENGINE) ? &ring_stmt : &stmt, NULL, NULL, 0);
	for (r = 0; r < rows; r++)
	{
		Datum		values[8];
		bool		nulls[8];
		AwaRate		rate;
		int			c;

		for (c = 0; c < 8; c++)
			values[c] = awa_stmt_value(r, c == 0 ? "queue" : c == 1 ? "paused" :
									   c == 2 ? "max_running" : c == 3 ? "running" :
									   c == 4 ? "rate_max_claims" : "rate_period",
									   &nulls[c]);
		/* copy the by-reference values out of SPI's memory */
		values[0] = SPI_datumTransfer(values[0], false, -1);
		if (!nulls[5])
			values[5] = SPI_datumTransfer(values[5], false, sizeof(Interval));
		if (nulls[2])
			nulls[3] = true;	/* running: shown with a limit only */
		nulls[6] = nulls[7] = true;
		if (awa_rate_read((int) r, &rate) && rs != NULL)
		{
			char	   *queue = TextDatumGetCString(values[0]);
			int			i;

			LWLockAcquire(rs->lock, LW_SHARED);
			i = lane_find(queue);
			if (i >= 0 && rs->lanes[i].set_at == rate.set_at &&
				rs->lanes[i].covered_from <= now - rate.period_us)
			{
				RateLane   *l = &rs->lanes[i];
				int			used = ring_count_after(l, now - rate.period_us, RATE_CAP);

				values[6] = Int32GetDatum(used);
				nulls[6] = false;
				if (used >= rate.max_claims)
				{
					values[7] = TimestampTzGetDatum(ring_get(l, l->n - rate.max_claims) +
													rate.period_us);
					nulls[7] = false;
				}
			}
			LWLockRelease(rs->lock);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * awa.key_rate_window(key text, max_claims integer, per interval,
 *		OUT window_claims integer, OUT next_slot_at timestamptz)
 *
 * The claims of a concurrency key counted in the window of length per that
 * ends now, and when that window is full (max_claims), when the next slot
 * opens; NULLs until a claim of the key has counted them since the server
 * started (or without awa preloaded).  For awa_key_stats.
 */
Datum
awa_key_rate_window(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2] = {0, 0};
	bool		nulls[2] = {true, true};
	TimestampTz now = GetCurrentTimestamp();

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa.key_rate_window: return type must be a row type");
	desc = BlessTupleDesc(desc);
	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1) && !PG_ARGISNULL(2) && rs != NULL)
	{
		char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
		int32		max_claims = PG_GETARG_INT32(1);
		int64		period = awa_interval_usecs(PG_GETARG_INTERVAL_P(2));
		int			i;

		LWLockAcquire(rs->lock, LW_SHARED);
		i = lane_find_of(true, key);
		if (i >= 0 && rs->lanes[i].covered_from <= now - period)
		{
			RateLane   *l = &rs->lanes[i];
			int			used = ring_count_after(l, now - period, RATE_CAP) -
				ring_count_after(l, now, RATE_CAP);

			values[0] = Int32GetDatum(used);
			nulls[0] = false;
			if (used >= max_claims && max_claims >= 1 && l->n >= max_claims)
			{
				values[1] = TimestampTzGetDatum(ring_get(l, l->n - max_claims) + period);
				nulls[1] = false;
			}
		}
		LWLockRelease(rs->lock);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
