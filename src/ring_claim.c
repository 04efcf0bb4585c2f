/*-------------------------------------------------------------------------
 *
 * ring_claim.c
 *		The ring's claim (docs/storage.md, "Step 5: priority aging and
 *		several queues on the ring"): awa.ring_claim of one queue or of
 *		several, in awa_claim's order.  Internal like ring.c: it refuses to
 *		run unless awa.ring_engine is on.
 *
 * Order.  As awa_claim's (claim.c): by effective priority
 * max(1, priority - floor(age / I)), then run_at, then id, where age is how
 * long the job has been due and I is awa.priority_aging_interval (0: aging
 * off, strict priority order).  The claim walks levels 1..4; level k holds
 * of priority p >= k the jobs with run_at in (lo, hi]:
 *	hi = at - (p - k) * I, lo = hi - I (level 1: no lo: every older job),
 * at being the claim's time, now() (its transaction's start, as the
 * ring's run_at <= now() was before aging).  With aging off level k is
 * priority k whole.  Each such (queue, priority, lo, hi) is a range of the
 * ring's claim index (queue, priority, run_at, id), read from the
 * (queue, priority) floor on (floor.c), as before.
 *
 * A level with one live range (the usual case: one priority has jobs; the
 * others' floors went to the end, below) is claimed as before aging, by
 * the statement that reads and locks its candidates in index order
 * (claim_direct), then writes their receipts.  A level with several live
 * ranges (several priorities, or several queues) is claimed in rounds
 * (claim_rounds), as claim.c's claim over several queues does on
 * awa.jobs: one statement reads up to per_range candidates of every range
 * without locking them; they are ordered here and taken only up to the
 * first range cut short (the frontier), so the order is exact; a second
 * statement locks them in that order (FOR UPDATE SKIP LOCKED through
 * (slot, ctid), one TID probe each; a ready row is never updated, so its
 * ctid holds), as many as the claim still wants, so only rows handed out
 * stay locked; then the receipts, as before.  A round that leaves the
 * claim short while ranges were cut reads again, further.
 *
 * Floors.  Each range starts at its (queue, priority) floor, and the
 * floors are raised after the claim by ring_probe_all under the snapshot taken
 * before it (floor.c): aging changes only which run_at range of a priority
 * a level reads, and within a priority the levels read run_at in order,
 * so a floor stays at or below the first job of its priority not taken.
 * A late commit is covered by floor.c's pins as ever.  The priorities that
 * gave nothing are asked about (scan->ask): one that holds no waiting job
 * at all gets its floor raised to the end, and later claims do not read it
 * until a pin lowers it; so a queue with jobs of one priority is claimed
 * by one statement per level again.
 *
 * Several queues (awa.ring_claim(queues text[], ...)): every range of
 * every queue at a level takes part in the level's rounds, in the same
 * order as one queue's; NULL is every queue that has ready or scheduled
 * rows.  Each queue's take is capped by its allowance, known before its
 * candidates are read (its pause, concurrency limit and rate: ring_flow.c,
 * asked in queue-name order, the order of the limits' locks).  Their floors are read together under one snapshot
 * (awa_floor_begin_many) and raised by one probe for all of them.
 *
 * awa_claim calls the claim in C (awa_ring_claim_direct, ring_claim.h):
 * the same body as the SQL functions', its attempts collected instead of
 * returned as a set, and of a first attempt claimed by claim_direct the row
 * of awa.jobs built from the ready row the candidates' statement read and
 * the receipt's deadline (ring_direct_row), so awa_claim reads nothing back.
 * (docs/storage.md, "Step 5: claim and complete at batch speed on the ring".)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "access/htup_details.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "floor.h"
#include "ring.h"
#include "ring_flow.h"
#include "ring_claim.h"
#include "ring_keys.h"		/* hook: keys */
#include "ring_obs.h"
#include "ring_part.h"
#include "ring_sched.h"

#define RING_MAX_BATCH		1000
#define RING_WALK_CHUNK		1024	/* ring_walk: ready rows a claim walks of a reset, per priority */
#define RING_LOCK_WINDOW	64	/* claim_rounds: chosen rows offered to one lock statement, at least */

/* ring_claim's result columns */
#define RING_CLAIM_NATTS	8

/*
 * The conditions on a ready row r (of awa.ready r) of the claim's
 * statements and its floor probe: the claim index's predicate (awa.sql),
 * and no receipt of the attempt the row gives (run_lease + 1), nor a done
 * row for it (hook: sched: cancelled).  One probe of each by its key.
 */
#define RING_UNCLAIMED_SQL \
	" AND r.run_at > '-infinity'" \
	" AND (SELECT 1 FROM awa.claims c WHERE c.job_id = r.id" \
	" AND c.run_lease = r.run_lease + 1 AND c.slot = r.slot LIMIT 1) IS NULL" \
	RING_NOT_DONE_SQL("r.slot", "r.id", "r.run_lease + 1")

PG_FUNCTION_INFO_V1(awa_ring_claim);
PG_FUNCTION_INFO_V1(awa_ring_claim_queues);

/* Candidate columns of both candidate statements, in this order. */
enum
{
	CAND_SLOT = 1, CAND_ID, CAND_LEASE, CAND_ATTEMPT, CAND_KIND, CAND_ARGS,
	CAND_PRIORITY, CAND_RUN_AT,
	CAND_TIMEOUT,				/* hook: robs -- the job's timeout, for the receipt's deadline */
	CAND_CTID, CAND_RANGE		/* claim_rounds' statement only */
};

/* claim_direct's statement: the rest of the ready row, after CAND_TIMEOUT (the row of awa.jobs) */
enum
{
	DIRECT_MAX_ATTEMPTS = CAND_TIMEOUT + 1, DIRECT_CREATED_AT, DIRECT_METADATA, DIRECT_TAGS,
	DIRECT_UNIQUE_KEY, DIRECT_UNIQUE_STATES, DIRECT_GROUP_ID, DIRECT_CONCURRENCY_KEY
};

/* awa.jobs' columns (the row awa_ring_claim_direct builds), in order */
#define RING_JOBS_NATTS		31

/*
 * awa_ring_claim_direct's collection (NULL: awa.ring_claim's SQL call,
 * whose result is the tuplestore): the claimed attempts and their rows.
 */
typedef struct RingOut
{
	AwaRingClaimed *out;
	int			n;
	TupleDesc	desc;			/* awa.jobs' (NULL: no rows built) */
	MemoryContext cxt;
	Datum		running;		/* 'running'::awa.job_state */
	Datum		no_errors;		/* '{}'::jsonb[] */
} RingOut;

/* One queue of a claim. */
typedef struct RingQueue
{
	text	   *queue;
	char	   *lane;			/* its floor and wake lane (awa_ring_lane) */
	int64		cap;			/* how many this claim may take of it */
	int			taken;
	AwaRingFlow flow;			/* hook: rflow: its pause, limit and rate (ring_flow.c) */
	bool		yielded[AWA_FLOOR_PRIORITIES];	/* it gave jobs of that priority */
} RingQueue;

/* One claim: its queues, arguments and what it has taken. */
typedef struct RingClaim
{
	ReturnSetInfo *rsinfo;
	RingQueue  *qs;
	AwaFloorScan *scans;		/* qs[i]'s floors */
	int			nq;
	int			batch;
	int			got;
	Interval   *lease;
	Datum		worker;
	bool		worker_null;
	TimestampTz at;				/* the claim's time: now() */
	int64		aging_us;		/* awa.priority_aging_interval; 0: off */
	bool		wrote;			/* it has written receipts (or read with locks) */
	RingOut    *direct;			/* awa_ring_claim_direct's collection, or NULL */
	struct RingProbed *seen;	/* per queue: the first ready rows its first read saw */
} RingClaim;

/* A live range of a level: priority p of queue qi, run_at in (lo, hi]. */
typedef struct RingRange
{
	int			qi;
	int			p;
	TimestampTz lo;
	TimestampTz hi;
} RingRange;

/* A candidate read by claim_rounds. */
typedef struct RingCand
{
	HeapTuple	tuple;			/* in the read statement's tuptable */
	TimestampTz run_at;
	int64		id;
	int			range;			/* index in the level's ranges */
} RingCand;

/* What the floor probe found for one queue: per priority the first waiting row. */
typedef struct RingProbed
{
	AwaFloorKey first[AWA_FLOOR_PRIORITIES];
	bool		found[AWA_FLOOR_PRIORITIES];
} RingProbed;

/*
 * The floor probe of every queue of the claim, in one statement: for each
 * (queue, priority) the claim took jobs of or asks about, the first waiting
 * row at or above the floor it started from, as the claim's floor snapshot
 * (taken before its statements, shared by its queues) sees it: a ready row
 * whose attempt has no receipt (nor a done row: hook: sched, cancel), or a
 * scheduled row (ring_sched.c: waiting jobs at their run_at too).  Into
 * probed[i] for queue i.  Caller is in SPI.
 */
static void
ring_probe_all(RingClaim *c, RingProbed *probed)
{
	static SPIPlanPtr any_plan = NULL;
	static SPIPlanPtr slot_plans[AWA_RING_SLOT_PLANS];	/* ring_part.h */
	static const Oid argtypes[] = {TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, BOOLARRAYOID};
	static const char probe_sql[] =
		"SELECT f.k::integer, f.p, w.run_at, w.id"
		" FROM unnest($1, $2, $3, $4, $5) WITH ORDINALITY AS f(q, p, fr, fi, r, k) CROSS JOIN LATERAL"
		" (SELECT r.run_at, r.id FROM awa.ready r"
		"  WHERE r.queue = f.q AND r.priority = f.p AND (r.run_at, r.id) >= (f.fr, f.fi)"
		RING_UNCLAIMED_SQL
		"  ORDER BY r.run_at, r.id LIMIT 1) w"
		" WHERE f.r"
		" UNION ALL"
		/* hook: sched: scheduled rows are waiting jobs at their run_at too */
		" SELECT f.k::integer, f.p, w.run_at, w.id"
		" FROM unnest($1, $2, $3, $4, $5) WITH ORDINALITY AS f(q, p, fr, fi, r, k) CROSS JOIN LATERAL"
		" (SELECT s.run_at, s.id FROM awa.scheduled s"
		"  WHERE s.queue = f.q AND s.priority = f.p AND (s.run_at, s.id) >= (f.fr, f.fi)"
		"  ORDER BY s.run_at, s.id LIMIT 1) w";
	SPIPlanPtr	plan;
	int			slot;
	int			max = c->nq * AWA_FLOOR_PRIORITIES;
	Datum	   *rd = palloc(sizeof(Datum) * max);
	Datum	   *q = palloc(sizeof(Datum) * max);
	Datum	   *pr = palloc(sizeof(Datum) * max);
	Datum	   *fr = palloc(sizeof(Datum) * max);
	Datum	   *fi = palloc(sizeof(Datum) * max);
	int		   *qi = palloc(sizeof(int) * max);
	Datum		values[5];
	Snapshot	snap = NULL;
	int			n = 0;
	uint64		k;
	int			i;
	int			p;

	for (i = 0; i < c->nq; i++)
	{
		AwaFloorScan *scan = &c->scans[i];

		probed[i] = c->seen[i];
		if (scan->lane < 0)
			continue;
		snap = scan->snapshot;
		for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		{
			if (!scan->taken[p] && !scan->ask[p])
				continue;
			q[n] = PointerGetDatum(c->qs[i].queue);
			pr[n] = Int32GetDatum(p + 1);
			fr[n] = TimestampTzGetDatum(scan->floors[p].run_at);
			fi[n] = Int64GetDatum(scan->floors[p].id);
			/* the ready half: unless the claim's first read saw it (claim_rounds) */
			rd[n] = BoolGetDatum(!c->seen[i].found[p]);
			qi[n++] = i;
		}
	}
	if (n == 0)
		return;
	/* one slot holds every ready row: its partitions' plan (ring_part.c) */
	slot = awa_ring_sole_slot("ready", false, NULL);
	plan = slot >= 0 ? awa_ring_slot_plan(slot_plans, slot, probe_sql, 5, argtypes)
		: awa_plan(&any_plan, probe_sql, 5, argtypes);
	values[0] = PointerGetDatum(construct_array(q, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(pr, n, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(fr, n, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(fi, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_array(rd, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	awa_ring_run(plan, values, NULL, snap, true, SPI_OK_SELECT, "awa.ring_claim: floor probe");
	for (k = 0; k < SPI_processed; k++)
	{
		HeapTuple	row = SPI_tuptable->vals[k];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			e = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull)) - 1;
		int			pp = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull)) - 1;
		AwaFloorKey key;
		RingProbed *r;

		if (e < 0 || e >= n || pp < 0 || pp >= AWA_FLOOR_PRIORITIES)
			elog(ERROR, "awa.ring_claim: floor probe returned a row of no range");
		key.run_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
		key.id = DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
		r = &probed[qi[e]];
		if (!r->found[pp] || key.run_at < r->first[pp].run_at ||
			(key.run_at == r->first[pp].run_at && key.id < r->first[pp].id))
		{
			r->first[pp] = key;
			r->found[pp] = true;
		}
	}
}

/* AwaFloorProbe of one queue: what ring_probe_all found for it (arg: its RingProbed). */
static void
ring_probed(AwaFloorScan *scan, Datum arg, AwaFloorKey *first, bool *found)
{
	RingProbed *r = (RingProbed *) DatumGetPointer(arg);
	int			p;

	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
	{
		found[p] = r->found[p];
		if (found[p])
			first[p] = r->first[p];
	}
}

/*
 * hook: sched -- the several-queue claim's promotion of due scheduled rows:
 * ring_sched.c's promote_lane for every queue at once, in one statement (one
 * per queue cost a fifth of a 10-queue claim's time): of each (queue,
 * priority) from its floor on, up to the queue's cap (at most the batch),
 * due rows in (run_at, id) order, locked SKIP LOCKED, moved into ready rows
 * of the open slot.  Priorities whose floor is at the end hold no scheduled
 * row (a scheduled row's insert pins its run_at): not read.
 */
static void
ring_promote_all(RingClaim *c)
{
	static SPIPlanPtr plan = NULL;
	static const Oid argtypes[] = {TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID,
	INT4ARRAYOID, TIMESTAMPTZOID};	/* hook: rclaimx: $6 the claim's time */
	int			max = c->nq * AWA_FLOOR_PRIORITIES;
	Datum	   *q = palloc(sizeof(Datum) * max);
	Datum	   *pr = palloc(sizeof(Datum) * max);
	Datum	   *fr = palloc(sizeof(Datum) * max);
	Datum	   *fi = palloc(sizeof(Datum) * max);
	Datum	   *lim = palloc(sizeof(Datum) * max);
	Datum		values[6];
	int			n = 0;
	int			i;
	int			p;

	for (i = 0; i < c->nq; i++)
		for (p = 1; p <= AWA_FLOOR_PRIORITIES && c->qs[i].cap > 0; p++)
		{
			if (awa_floor_at_end(&c->scans[i], p))
				continue;
			q[n] = PointerGetDatum(c->qs[i].queue);
			pr[n] = Int32GetDatum(p);
			fr[n] = TimestampTzGetDatum(c->scans[i].floors[p - 1].run_at);
			fi[n] = Int64GetDatum(c->scans[i].floors[p - 1].id);
			lim[n++] = Int32GetDatum((int32) Min(c->qs[i].cap, c->batch));
		}
	if (n == 0)
		return;
	awa_plan(&plan,
			 RING_PROMOTE_SQL(
				"SELECT w.id FROM unnest($1, $2, $3, $4, $5) AS f(q, p, fr, fi, n) CROSS JOIN LATERAL"
				" (SELECT s.id FROM awa.scheduled s"
				"  WHERE s.queue = f.q AND s.priority = f.p AND (s.run_at, s.id) >= (f.fr, f.fi)"
				"  AND s.run_at <= $6"
				"  ORDER BY s.run_at, s.id LIMIT f.n FOR UPDATE OF s SKIP LOCKED) w",
				"id"),
			 6, argtypes);
	values[0] = PointerGetDatum(construct_array(q, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(pr, n, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(fr, n, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(fi, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_array(lim, n, INT4OID, 4, true, TYPALIGN_INT));
	values[5] = TimestampTzGetDatum(c->at);
	/* the newest snapshot, as the claim's candidates */
	awa_ring_run(plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_INSERT_RETURNING,
				 "awa.ring_claim: promotion");
}

/*
 * Lock every partition of awa.ready, awa.claims and awa.done (ACCESS
 * SHARE, to the end of the transaction, as the claim's statements would)
 * before any snapshot of the claim is taken.  A claim that comes while
 * awa.ring_reclaim holds a slot's partitions (ring_slots.c, step 3) waits
 * here, not inside a statement whose snapshot predates the carry, so none
 * of its statements misses the carried jobs.  From the relation cache: no
 * catalog reads once cached.
 */
static void
ring_lock_partitions(void)
{
	static const char *const parents[] = {"ready", "claims", "done"};
	Oid			nsp = get_namespace_oid("awa", false);
	int			k;

	for (k = 0; k < lengthof(parents); k++)
	{
		Oid			relid = get_relname_relid(parents[k], nsp);
		Relation	rel;
		PartitionDesc pd;
		int			i;

		if (!OidIsValid(relid))
			elog(ERROR, "awa.ring_claim: awa.%s is missing", parents[k]);
		rel = relation_open(relid, AccessShareLock);
		pd = RelationGetPartitionDesc(rel, false);
		for (i = 0; i < pd->nparts; i++)
			LockRelationOid(pd->oids[i], AccessShareLock);
		relation_close(rel, NoLock);
	}
}

/*
 * After awa_floor_begin(_many) of queue qi: lower its floors to the jobs
 * this transaction wrote there itself (their pin comes at commit; until
 * then only this claim can see them, and a floor raised past them, or to
 * the end, by another claim must not hide them from it).
 */
static void
ring_floors_own(RingClaim *c, int qi)
{
	AwaFloorScan *scan = &c->scans[qi];
	TimestampTz own = awa_floor_noted(c->qs[qi].lane);
	int			p;

	if (own == DT_NOEND)
		return;
	for (p = 0; p < AWA_FLOOR_PRIORITIES; p++)
		if (scan->floors[p].run_at >= own)
		{
			scan->floors[p].run_at = own;
			scan->floors[p].id = PG_INT64_MIN;
		}
}

/*
 * Whether priority p (1..4) has a range at this level, and its run_at
 * bounds (lo, hi] (lo DT_NOBEGIN: none); see the head of this file.
 */
static bool
level_range(const RingClaim *c, int level, int p, TimestampTz *lo, TimestampTz *hi)
{
	if (c->aging_us <= 0)
	{
		if (p != level)
			return false;
		*lo = DT_NOBEGIN;
		*hi = c->at;
		return true;
	}
	if (p < level)
		return false;
	*hi = c->at - (p - level) * c->aging_us;
	*lo = level > 1 ? *hi - c->aging_us : DT_NOBEGIN;
	return true;
}

/*
 * Write the receipts of n candidates (slots, ids, leases: Datums of the
 * candidates' columns; timeouts: their timeouts, interval[] with NULLs,
 * awa_ring_claim_timeouts) with a fresh snapshot; returns the ids of those
 * that got one (*nwon of them).  See ring.c's head: steps 2 and 3.  The
 * deadline: now() + the lease, capped by awa.heartbeat_timeout and the
 * job's timeout (hook: robs, ring_obs.h).
 */
static int64 *
ring_receipts(RingClaim *c, Datum *slots, Datum *ids, Datum *leases, Datum timeouts, int n, uint64 *nwon,
			  TimestampTz **deadlines)
{
	static SPIPlanPtr receipt_plan = NULL;
	static const Oid receipt_types[] = {INT2ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INTERVALOID, TEXTOID,
	INTERVALARRAYOID, TIMESTAMPTZOID};	/* hook: rclaimx: $7 the claim's time */
	static SPIPlanPtr receipt_slot_plans[AWA_RING_SLOT_PLANS];	/* ring_part.h */
	static const char receipt_sql[] =
		"INSERT INTO awa.claims (slot, job_id, run_lease, claimed_at, deadline_at, lease, claimed_by)"
		" SELECT c.s, c.i, c.l, $7, " AWA_RING_CLAIM_DEADLINE_SQL("$7", "$4", "c.t") /* hook: robs, rclaimx */
		", $4, $5"
		" FROM unnest($1, $2, $3, $6) AS c(s, i, l, t)"
		" WHERE (SELECT 1 FROM awa.claims cl WHERE cl.job_id = c.i"
		"        AND cl.run_lease = c.l AND cl.slot = c.s LIMIT 1) IS NULL"
		RING_NOT_DONE_SQL("c.s", "c.i", "c.l")	/* hook: sched (cancel) */
		" ON CONFLICT DO NOTHING RETURNING job_id, deadline_at";
	Datum		rvals[7];
	char		rnulls[7] = {' ', ' ', ' ', ' ', c->worker_null ? 'n' : ' ', ' ', ' '};
	int64	   *won;
	uint64		j;
	int			slot = n > 0 ? DatumGetInt16(slots[0]) : -1;
	int			i;
	SPIPlanPtr	plan;

	/*
	 * every candidate of one slot (the usual case): its probes read only
	 * that slot's partitions, where "cl.slot = c.s" finds all it can
	 */
	for (i = 1; i < n && slot >= 0; i++)
		if (DatumGetInt16(slots[i]) != slot)
			slot = -1;
	plan = slot >= 0 && slot < AWA_RING_SLOT_PLANS
		? awa_ring_slot_plan(receipt_slot_plans, slot, receipt_sql, 7, receipt_types)
		: awa_plan(&receipt_plan, receipt_sql, 7, receipt_types);
	rvals[0] = PointerGetDatum(construct_array(slots, n, INT2OID, 2, true, TYPALIGN_SHORT));
	rvals[1] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64),
											   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	rvals[2] = PointerGetDatum(construct_array(leases, n, INT8OID, sizeof(int64),
											   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	rvals[3] = IntervalPGetDatum(c->lease);
	rvals[4] = c->worker;
	rvals[5] = timeouts;
	rvals[6] = TimestampTzGetDatum(c->at);
	/* a fresh snapshot: receipts committed by whoever locked these rows before us */
	*nwon = awa_ring_run(plan, rvals, rnulls, GetLatestSnapshot(), false,
						 SPI_OK_INSERT_RETURNING, "awa.ring_claim: receipts");
	won = palloc(sizeof(int64) * (*nwon + 1));
	if (deadlines)
		*deadlines = palloc(sizeof(TimestampTz) * (*nwon + 1));
	for (j = 0; j < *nwon; j++)
	{
		bool		isnull;

		won[j] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc,
											 1, &isnull));
		if (deadlines)
			(*deadlines)[j] = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[j],
																SPI_tuptable->tupdesc, 2, &isnull));
	}
	return won;
}

/*
 * awa.jobs' row of a first attempt handed out by claim_direct (tuple: a
 * row of its statement, desc its desc; deadline: its receipt's), as
 * awa.ring_live_jobs shows it (engine.c's first_claims_read reads the same
 * from the receipt and the ready row): no earlier attempt, so no errors,
 * progress, result or callback; attempted_at and heartbeat_at the claim's
 * time.  In d->cxt.
 */
static HeapTuple
ring_direct_row(RingClaim *c, RingOut *d, int qi, HeapTuple tuple, TupleDesc desc, TimestampTz deadline)
{
	Datum		v[RING_JOBS_NATTS];
	bool		nl[RING_JOBS_NATTS];
	bool		isnull;
	MemoryContext old;
	HeapTuple	row;
	int			a;

	for (a = 0; a < RING_JOBS_NATTS; a++)
	{
		v[a] = (Datum) 0;
		nl[a] = true;
	}
#define DCOL(i, att) (v[i] = SPI_getbinval(tuple, desc, att, &nl[i]))
#define DSET(i, val) (v[i] = (val), nl[i] = false)
	DCOL(0, CAND_ID);
	DCOL(1, CAND_KIND);
	DSET(2, PointerGetDatum(c->qs[qi].queue));
	DCOL(3, CAND_ARGS);
	DSET(4, d->running);
	DSET(5, Int16GetDatum((int16) DatumGetInt32(SPI_getbinval(tuple, desc, CAND_PRIORITY, &isnull))));
	DSET(6, Int16GetDatum((int16) DatumGetInt32(SPI_getbinval(tuple, desc, CAND_ATTEMPT, &isnull))));
	DCOL(7, DIRECT_MAX_ATTEMPTS);
	DCOL(8, CAND_RUN_AT);
	DSET(9, TimestampTzGetDatum(c->at));	/* heartbeat_at: the claim */
	DSET(10, TimestampTzGetDatum(deadline));
	DSET(11, TimestampTzGetDatum(c->at));	/* attempted_at */
	/* 12 finalized_at: NULL */
	DCOL(13, DIRECT_CREATED_AT);
	DSET(14, d->no_errors);
	DCOL(15, DIRECT_METADATA);
	DCOL(16, DIRECT_TAGS);
	DCOL(17, DIRECT_UNIQUE_KEY);
	DCOL(18, DIRECT_UNIQUE_STATES);
	DCOL(19, CAND_LEASE);
	/* 20 progress: NULL */
	if (!c->worker_null)
		DSET(21, c->worker);
	DSET(22, IntervalPGetDatum(c->lease));
	DCOL(23, CAND_TIMEOUT);
	/* 24..28 result, callback_key, callback_lease, callback_timeout, callback_payload: NULL */
	DCOL(29, DIRECT_GROUP_ID);
	DCOL(30, DIRECT_CONCURRENCY_KEY);
#undef DCOL
#undef DSET
	old = MemoryContextSwitchTo(d->cxt);
	row = heap_form_tuple(d->desc, v, nl);
	MemoryContextSwitchTo(old);
	return row;
}

/*
 * Hand out a candidate row (desc: its statement's) of queue qi that got its
 * receipt; direct: a row of claim_direct's statement, whose receipt's
 * deadline is deadline.
 */
static void
ring_emit(RingClaim *c, int qi, HeapTuple tuple, TupleDesc desc, bool direct, TimestampTz deadline)
{
	Datum		out[RING_CLAIM_NATTS];
	bool		outnulls[RING_CLAIM_NATTS];
	int			p;

	/* id, run_lease, attempt, kind, queue, args, priority, run_at */
	out[0] = SPI_getbinval(tuple, desc, CAND_ID, &outnulls[0]);
	out[1] = SPI_getbinval(tuple, desc, CAND_LEASE, &outnulls[1]);
	out[2] = SPI_getbinval(tuple, desc, CAND_ATTEMPT, &outnulls[2]);
	out[3] = SPI_getbinval(tuple, desc, CAND_KIND, &outnulls[3]);
	out[4] = PointerGetDatum(c->qs[qi].queue);
	outnulls[4] = false;
	out[5] = SPI_getbinval(tuple, desc, CAND_ARGS, &outnulls[5]);
	out[6] = SPI_getbinval(tuple, desc, CAND_PRIORITY, &outnulls[6]);
	out[7] = SPI_getbinval(tuple, desc, CAND_RUN_AT, &outnulls[7]);
	if (c->direct == NULL)
		tuplestore_putvalues(c->rsinfo->setResult, c->rsinfo->setDesc, out, outnulls);
	else
	{
		RingOut    *d = c->direct;
		AwaRingClaimed *o = &d->out[d->n++];

		o->id = DatumGetInt64(out[0]);
		o->run_lease = DatumGetInt64(out[1]);
		o->row = (direct && d->desc != NULL && o->run_lease == 1) ?
			ring_direct_row(c, d, qi, tuple, desc, deadline) : NULL;
	}
	awa_ring_keys_claimed(DatumGetInt64(out[0]), DatumGetInt64(out[1]));	/* hook: keys */
	p = DatumGetInt32(out[6]);
	awa_floor_taken(&c->scans[qi], p, DatumGetTimestampTz(out[7]));
	if (p >= 1 && p <= AWA_FLOOR_PRIORITIES)
		c->qs[qi].yielded[p - 1] = true;
	c->qs[qi].taken++;
	c->got++;
}

/* Whether id is among won[0..nwon). */
static bool
ring_won(const int64 *won, uint64 nwon, int64 id)
{
	uint64		j;

	for (j = 0; j < nwon; j++)
		if (won[j] == id)
			return true;
	return false;
}

/*
 * A level with one live range (r): its candidates read and locked in index
 * order by one statement, receipts by another, pass after pass until the
 * claim has its batch (or the queue its cap) or the range runs out (see
 * ring.c's head).
 */
static void
claim_direct(RingClaim *c, const RingRange *r)
{
	static SPIPlanPtr cand_plan = NULL;
	static const Oid cand_types[] = {TEXTOID, INT4OID, TIMESTAMPTZOID, INT8OID, INT4OID,
	TIMESTAMPTZOID, TIMESTAMPTZOID};
	static SPIPlanPtr cand_slot_plans[AWA_RING_SLOT_PLANS];	/* ring_part.h */

	/*
	 * hook: keys -- a row with a concurrency key is admitted above the lock
	 * and below the LIMIT (ring_keys.h; OFFSET 0 keeps the admission out of
	 * the locking subquery), so that the LIMIT counts admitted rows
	 */
	static const char cand_sql[] =
		"SELECT x.slot, x.id, x.lease, x.attempt, x.kind, x.args, x.priority, x.run_at, x.timeout,"
		" x.max_attempts, x.created_at, x.metadata, x.tags, x.unique_key, x.unique_states, x.group_id,"
		" x.concurrency_key"	/* the rest of the row: ring_direct_row */
		" FROM (SELECT r.slot, r.id, r.run_lease + 1 AS lease, r.attempt + 1 AS attempt,"
		" r.kind, r.args, r.priority::integer AS priority, r.run_at, r.timeout"	/* hook: robs */
		", r.concurrency_key"	/* hook: keys */
		", r.max_attempts, r.created_at, r.metadata, r.tags, r.unique_key, r.unique_states, r.group_id"
		" FROM awa.ready r"
		" WHERE r.queue = $1 AND r.priority = $2 AND (r.run_at, r.id) >= ($3, $4)"
		" AND r.run_at <= $6 AND r.run_at > $7"	/* the level's range */
		RING_UNCLAIMED_SQL
		RING_KEY_OPEN_SQL("r")	/* hook: keys */
		" ORDER BY r.run_at, r.id"
		" FOR UPDATE OF r SKIP LOCKED OFFSET 0) x"
		" WHERE " RING_KEY_ADMIT_SQL("x") " LIMIT $5";	/* hook: keys */
	RingQueue  *q = &c->qs[r->qi];
	AwaFloorScan *scan = &c->scans[r->qi];

	while (c->got < c->batch && q->taken < q->cap)
	{
		Datum		cvals[7];
		SPITupleTable *cand;
		uint64		ncand;
		uint64		nwon;
		Datum	   *slots;
		Datum	   *ids;
		Datum	   *leases;
		int64	   *won;
		TimestampTz *deadlines;
		int			want = (int) Min(c->batch - c->got, q->cap - q->taken);
		uint64		i;
		Snapshot	snap;
		int			slot;
		SPIPlanPtr	plan;

		CHECK_FOR_INTERRUPTS();
		cvals[0] = PointerGetDatum(q->queue);
		cvals[1] = Int32GetDatum(r->p);
		cvals[2] = TimestampTzGetDatum(scan->floors[r->p - 1].run_at);
		cvals[3] = Int64GetDatum(scan->floors[r->p - 1].id);
		cvals[4] = Int32GetDatum(want);
		cvals[5] = TimestampTzGetDatum(r->hi);
		cvals[6] = TimestampTzGetDatum(r->lo);
		c->wrote = true;
		/*
		 * the newest snapshot, also in REPEATABLE READ (see ring.c's head);
		 * then, when one slot holds every ready row that snapshot can see,
		 * only that slot's partitions are read (ring_part.c)
		 */
		slot = awa_ring_sole_slot("ready", true, &snap);
		plan = slot >= 0 ? awa_ring_slot_plan(cand_slot_plans, slot, cand_sql, 7, cand_types)
			: awa_plan(&cand_plan, cand_sql, 7, cand_types);
		ncand = awa_ring_run(plan, cvals, NULL, snap, false, SPI_OK_SELECT,
							 "awa.ring_claim: candidates");
		UnregisterSnapshot(snap);
		if (ncand == 0)
			break;
		cand = SPI_tuptable;

		slots = palloc(sizeof(Datum) * ncand);
		ids = palloc(sizeof(Datum) * ncand);
		leases = palloc(sizeof(Datum) * ncand);
		for (i = 0; i < ncand; i++)
		{
			bool		isnull;

			slots[i] = SPI_getbinval(cand->vals[i], cand->tupdesc, CAND_SLOT, &isnull);
			ids[i] = SPI_getbinval(cand->vals[i], cand->tupdesc, CAND_ID, &isnull);
			leases[i] = SPI_getbinval(cand->vals[i], cand->tupdesc, CAND_LEASE, &isnull);
		}
		won = ring_receipts(c, slots, ids, leases, awa_ring_claim_timeouts(cand, (int) ncand, CAND_TIMEOUT),
							(int) ncand, &nwon, &deadlines);
		/* the candidates that got their receipt, in claim order */
		for (i = 0; i < ncand; i++)
		{
			uint64		j;

			for (j = 0; j < nwon; j++)
				if (won[j] == DatumGetInt64(ids[i]))
				{
					ring_emit(c, r->qi, cand->vals[i], cand->tupdesc, true, deadlines[j]);
					break;
				}
		}
		/* fewer candidates than asked for: the range has no more */
		if (ncand < (uint64) want)
			break;
	}
}

/* qsort order of candidates: (run_at, id). */
static int
cand_cmp(const void *a, const void *b)
{
	const RingCand *x = a;
	const RingCand *y = b;

	if (x->run_at != y->run_at)
		return x->run_at < y->run_at ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

/*
 * A level with several live ranges (ranges[0..nr)), claimed in rounds (see
 * the head of this file): read up to per_range candidates of each range,
 * take them in (run_at, id) order up to the frontier and within each
 * queue's cap, lock them in that order (as many as the claim still wants),
 * write their receipts.  When a round leaves the claim short while ranges
 * were cut, read again, further by the rest shared by the ranges cut, or
 * four times as far when it took none (candidates locked by others).
 */
static void
claim_rounds(RingClaim *c, const RingRange *ranges, int nr)
{
	static SPIPlanPtr read_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static const Oid read_types[] = {TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, INT4ARRAYOID};
	static const Oid lock_types[] = {INT2ARRAYOID, TIDARRAYOID, INT4OID};
	Datum	   *rq = palloc(sizeof(Datum) * nr);
	Datum	   *rp = palloc(sizeof(Datum) * nr);
	Datum	   *rfr = palloc(sizeof(Datum) * nr);
	Datum	   *rfi = palloc(sizeof(Datum) * nr);
	Datum	   *rhi = palloc(sizeof(Datum) * nr);
	Datum	   *rlo = palloc(sizeof(Datum) * nr);
	Datum	   *rlim = palloc(sizeof(Datum) * nr);
	int		   *lim = palloc(sizeof(int) * nr);
	int		   *nread = palloc(sizeof(int) * nr);
	int		   *given = palloc(sizeof(int) * c->nq);
	bool	   *live_q = palloc0(sizeof(bool) * c->nq);
	int64	   *skipped = NULL;	/* rows another transaction held locked (SKIP LOCKED) */
	int			nskipped = 0;
	int			maxskipped = 0;
	int			active = 0;
	int			nq_live;		/* queues among the ranges */
	int			left = c->batch - c->got;
	int			per_range;
	int			k;

	awa_plan(&read_plan,
			 "SELECT r.slot, r.id, r.run_lease + 1 AS lease, r.attempt + 1 AS attempt,"
			 " r.kind, r.args, r.priority::integer, r.run_at, r.timeout, r.ctid, g.k::integer"
			 " FROM unnest($1, $2, $3, $4, $5, $6, $7) WITH ORDINALITY AS g(q, p, fr, fi, hi, lo, n, k)"
			 " CROSS JOIN LATERAL"
			 " (SELECT r.slot, r.id, r.run_lease, r.attempt, r.kind, r.args, r.priority, r.run_at, r.timeout,"
			 "  r.ctid"
			 "  FROM awa.ready r"
			 "  WHERE r.queue = g.q AND r.priority = g.p AND (r.run_at, r.id) >= (g.fr, g.fi)"
			 "  AND r.run_at <= g.hi AND r.run_at > g.lo"	/* the level's range */
			 RING_UNCLAIMED_SQL
			 RING_KEY_OPEN_SQL("r")	/* hook: keys */
			 "  ORDER BY r.run_at, r.id LIMIT g.n) r",
			 7, read_types);
	/* lock in the order given, as the LIMIT pulls them: only rows handed out stay locked */
	awa_plan(&lock_plan,
			 "SELECT t.k::integer FROM unnest($1, $2) WITH ORDINALITY AS t(s, c, k) CROSS JOIN LATERAL"
			 " (SELECT r.concurrency_key, r.kind, r.id FROM awa.ready r WHERE r.slot = t.s AND r.ctid = t.c"
			 RING_UNCLAIMED_SQL	/* claimed since the read: not locked, not counted */
			 "  FOR UPDATE OF r SKIP LOCKED OFFSET 0) l"
			 " WHERE " RING_KEY_ADMIT_SQL("l")	/* hook: keys: admitted above the lock */
			 " LIMIT $3",
			 3, lock_types);

	for (k = 0; k < nr; k++)
		if (!live_q[ranges[k].qi])
		{
			live_q[ranges[k].qi] = true;
			active++;
		}
	/*
	 * Candidates per range: each queue's share of what is left and two
	 * more, at most what is left.  (claim.c reads twice the share and two
	 * more from awa.jobs' index in C; here every candidate read costs two
	 * probes, of its receipt and its done row, so reading less pays: a
	 * claimer that finds the head locked by another reads further in a
	 * second round.)
	 */
	nq_live = active;
	active = Max(active, 1);
	per_range = Min(left, (left + active - 1) / active + 2);

	for (;;)
	{
		Datum		vals[7];
		SPITupleTable *tt;
		uint64		ncand;
		RingCand   *cands;
		RingCand	frontier;
		bool		have_frontier = false;
		int			cut = 0;
		int			nrun = 0;
		int			want = c->batch - c->got;
		int			nchosen = 0;
		int			lock_limit;
		RingCand  **chosen;
		Datum	   *cslots;
		Datum	   *ctids;
		Datum		lvals[3];
		uint64		nlocked;
		Datum	   *slots;
		Datum	   *ids;
		Datum	   *leases;
		Datum	   *touts;
		bool	   *tnulls;
		int		   *locked;
		int64	   *won;
		uint64		nwon;
		int			before = c->got;
		int			next;
		bool		isnull0;
		uint64		i;

		CHECK_FOR_INTERRUPTS();
		memset(&frontier, 0, sizeof(frontier));
		for (k = 0; k < nr; k++)
		{
			const RingRange *r = &ranges[k];
			RingQueue  *q = &c->qs[r->qi];
			AwaFloorScan *scan = &c->scans[r->qi];

			lim[k] = per_range;
			nread[k] = 0;
			rq[nrun] = PointerGetDatum(q->queue);
			rp[nrun] = Int32GetDatum(r->p);
			rfr[nrun] = TimestampTzGetDatum(scan->floors[r->p - 1].run_at);
			rfi[nrun] = Int64GetDatum(scan->floors[r->p - 1].id);
			rhi[nrun] = TimestampTzGetDatum(r->hi);
			rlo[nrun] = TimestampTzGetDatum(r->lo);
			rlim[nrun] = Int32GetDatum(Max(lim[k], 0));
			nrun++;
		}
		vals[0] = PointerGetDatum(construct_array(rq, nrun, TEXTOID, -1, false, TYPALIGN_INT));
		vals[1] = PointerGetDatum(construct_array(rp, nrun, INT4OID, 4, true, TYPALIGN_INT));
		vals[2] = PointerGetDatum(construct_array(rfr, nrun, TIMESTAMPTZOID, sizeof(TimestampTz),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[3] = PointerGetDatum(construct_array(rfi, nrun, INT8OID, sizeof(int64),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[4] = PointerGetDatum(construct_array(rhi, nrun, TIMESTAMPTZOID, sizeof(TimestampTz),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[5] = PointerGetDatum(construct_array(rlo, nrun, TIMESTAMPTZOID, sizeof(TimestampTz),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[6] = PointerGetDatum(construct_array(rlim, nrun, INT4OID, 4, true, TYPALIGN_INT));
		/* the newest snapshot: this claim's own receipts and other claimers' */
		ncand = awa_ring_run(read_plan, vals, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
							 "awa.ring_claim: candidates");
		tt = SPI_tuptable;
		cands = palloc(sizeof(RingCand) * Max(ncand, 1));
		for (i = 0; i < ncand; i++)
		{
			bool		isnull;
			RingCand   *cd = &cands[i];

			cd->tuple = tt->vals[i];
			cd->run_at = DatumGetTimestampTz(SPI_getbinval(cd->tuple, tt->tupdesc, CAND_RUN_AT, &isnull));
			cd->id = DatumGetInt64(SPI_getbinval(cd->tuple, tt->tupdesc, CAND_ID, &isnull));
			cd->range = DatumGetInt32(SPI_getbinval(cd->tuple, tt->tupdesc, CAND_RANGE, &isnull)) - 1;
			if (cd->range < 0 || cd->range >= nr)
				elog(ERROR, "awa.ring_claim: candidate of no range");
			nread[cd->range]++;
		}
		/*
		 * The claim's first read, before it wrote anything: the first row of
		 * each range (read from its floor, any run_at up to hi) is what the
		 * floor probe would find among the ready rows (ring_probe_all),
		 * under a snapshot taken after the floors were read (ring_seen).
		 */
		if (!c->wrote)
			for (i = 0; i < ncand; i++)
			{
				RingCand   *cd = &cands[i];
				struct RingProbed *sn = &c->seen[ranges[cd->range].qi];
				int			pp = ranges[cd->range].p - 1;

				if (ranges[cd->range].lo == DT_NOBEGIN && !sn->found[pp])
				{
					sn->first[pp].run_at = cd->run_at;
					sn->first[pp].id = cd->id;
					sn->found[pp] = true;
				}
			}

		/* the ranges cut at their limit while their queue allows more: the frontier */
		for (i = 0; i < ncand; i++)
		{
			RingCand   *cd = &cands[i];
			const RingQueue *q = &c->qs[ranges[cd->range].qi];

			if (nread[cd->range] < lim[cd->range] || q->cap - q->taken <= lim[cd->range])
				continue;
			/* rows of a range come in index order: its last one is its bound */
			if (!have_frontier || cand_cmp(cd, &frontier) < 0)
			{
				bool		last = (i + 1 == ncand || cands[i + 1].range != cd->range);

				if (last)
				{
					frontier = *cd;
					have_frontier = true;
				}
			}
		}
		/* ranges read to their limit: they may hold more (read again if short) */
		for (k = 0; k < nr; k++)
			if (nread[k] >= lim[k])
				cut++;
		qsort(cands, ncand, sizeof(RingCand), cand_cmp);

		/* claim order, up to the frontier, each queue within its cap */
		memset(given, 0, sizeof(int) * c->nq);
		chosen = palloc(sizeof(RingCand *) * Max(ncand, 1));
		cslots = palloc(sizeof(Datum) * Max(ncand, 1));
		ctids = palloc(sizeof(Datum) * Max(ncand, 1));
		for (i = 0; i < ncand; i++)
		{
			RingCand   *cd = &cands[i];
			int			qi = ranges[cd->range].qi;

			if (have_frontier && cand_cmp(cd, &frontier) > 0)
				break;
			/*
			 * One queue: every candidate up to the frontier, its cap on the
			 * lock's LIMIT instead; the rows ahead of it that another claimer
			 * took or holds meanwhile are passed over by the lock, which takes
			 * the next ones, rather than leaving the round empty.  (Capped
			 * here, the same rows as the other claimer's head were tried each
			 * round, read four times further from the floor each time: seconds
			 * against a fast claimer, ending with no rows.)
			 */
			if ((nq_live > 1 && given[qi] >= c->qs[qi].cap - c->qs[qi].taken) ||
				ring_won(skipped, nskipped, cd->id))
				continue;
			given[qi]++;
			chosen[nchosen++] = cd;
		}
		/*
		 * Lock and take the chosen rows in order, as many as the claim still
		 * wants, a window of them at a time, until the claim has its batch
		 * or every chosen row was tried.  A row locked here may be lost to
		 * another claimer whose receipt committed after the lock's snapshot
		 * (its lock gone, its receipt unseen): the claim goes on with the
		 * rows after it rather than give up the rest of the round.  (Ending
		 * the round there left a claim that walked a long way behind a fast
		 * claimer with no rows at all while thousands waited.)
		 */
		next = 0;
		while (c->got < c->batch && next < nchosen)
		{
			int			still = c->batch - c->got;
			int			nwin;
			int			last_ord = -1;
			int			tried;
			int			t;

			lock_limit = nq_live > 1 ? still :
				(int) Min(still, c->qs[ranges[0].qi].cap - c->qs[ranges[0].qi].taken);
			if (lock_limit <= 0)
				break;
			nwin = Min(nchosen - next, Max(4 * lock_limit, RING_LOCK_WINDOW));
			for (t = 0; t < nwin; t++)
			{
				cslots[t] = SPI_getbinval(chosen[next + t]->tuple, tt->tupdesc, CAND_SLOT, &isnull0);
				ctids[t] = SPI_getbinval(chosen[next + t]->tuple, tt->tupdesc, CAND_CTID, &isnull0);
			}
			lvals[0] = PointerGetDatum(construct_array(cslots, nwin, INT2OID, 2, true, TYPALIGN_SHORT));
			lvals[1] = PointerGetDatum(construct_array(ctids, nwin, TIDOID, sizeof(ItemPointerData),
													   false, TYPALIGN_SHORT));
			lvals[2] = Int32GetDatum(lock_limit);
			c->wrote = true;
			nlocked = awa_ring_run(lock_plan, lvals, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
								   "awa.ring_claim: locks");
			if (nlocked > (uint64) lock_limit)
				elog(ERROR, "awa.ring_claim: locked more rows than asked for");
			locked = palloc(sizeof(int) * Max(nlocked, 1));
			slots = palloc(sizeof(Datum) * Max(nlocked, 1));
			ids = palloc(sizeof(Datum) * Max(nlocked, 1));
			leases = palloc(sizeof(Datum) * Max(nlocked, 1));
			touts = palloc(sizeof(Datum) * Max(nlocked, 1));
			tnulls = palloc(sizeof(bool) * Max(nlocked, 1));
			for (i = 0; i < nlocked; i++)
			{
				bool		isnull;
				int			ord = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
															  1, &isnull)) - 1;
				HeapTuple	tup;

				if (ord < 0 || ord >= nwin)
					elog(ERROR, "awa.ring_claim: locked a row that was not chosen");
				last_ord = Max(last_ord, ord);
				locked[i] = next + ord;
				tup = chosen[locked[i]]->tuple;
				slots[i] = SPI_getbinval(tup, tt->tupdesc, CAND_SLOT, &isnull);
				ids[i] = SPI_getbinval(tup, tt->tupdesc, CAND_ID, &isnull);
				leases[i] = SPI_getbinval(tup, tt->tupdesc, CAND_LEASE, &isnull);
				touts[i] = SPI_getbinval(tup, tt->tupdesc, CAND_TIMEOUT, &tnulls[i]);	/* hook: robs */
			}
			SPI_freetuptable(SPI_tuptable);
			/*
			 * The rows tried and not locked (held by another transaction, or
			 * claimed since the read): the whole window when fewer than asked
			 * for were locked, else those before the last one locked.  Later
			 * rounds pass over them, as SKIP LOCKED would, rather than try
			 * them again.
			 */
			tried = nlocked < (uint64) lock_limit ? nwin : last_ord + 1;
			for (t = 0; t < tried; t++)
			{
				bool		got_it = false;

				for (i = 0; i < nlocked && !got_it; i++)
					got_it = (locked[i] == next + t);
				if (got_it)
					continue;
				if (nskipped == maxskipped)
				{
					maxskipped = Max(16, maxskipped * 2);
					skipped = skipped ? repalloc(skipped, sizeof(int64) * maxskipped) :
						palloc(sizeof(int64) * maxskipped);
				}
				skipped[nskipped++] = chosen[next + t]->id;
			}
			next += tried;
			if (nlocked > 0)
			{
				int			lbs = 1;
				int			nl = (int) nlocked;

				won = ring_receipts(c, slots, ids, leases,
									PointerGetDatum(construct_md_array(touts, tnulls, 1, &nl, &lbs,
																	   INTERVALOID, sizeof(Interval),
																	   false, TYPALIGN_DOUBLE)),
									nl, &nwon, NULL);
				for (i = 0; i < nlocked; i++)
					if (ring_won(won, nwon, DatumGetInt64(ids[i])))
					{
						RingCand   *cd = chosen[locked[i]];

						ring_emit(c, ranges[cd->range].qi, cd->tuple, tt->tupdesc, false, 0);
					}
				SPI_freetuptable(SPI_tuptable);
			}
			pfree(locked);
			pfree(slots);
			pfree(ids);
			pfree(leases);
			pfree(touts);
			pfree(tnulls);
		}
		if (c->got >= c->batch || cut == 0 || per_range >= INT_MAX / 4)
			break;
		per_range = c->got == before ? per_range * 4 :
			(int) Min(per_range + ((int64) (want - (c->got - before)) + cut - 1) / cut + 1, INT_MAX / 4);
	}
}

/*
 * Claim up to c->batch jobs of c's queues, level by level, into the
 * result; the floors read and raised around it.  Caller is in SPI, c's
 * queues, caps, arguments set.
 */
static void
ring_claim_levels(RingClaim *c)
{
	RingRange  *ranges = palloc(sizeof(RingRange) * c->nq * AWA_FLOOR_PRIORITIES);
	int			level;
	int			i;
	int			p;

	for (level = 1; level <= AWA_FLOOR_PRIORITIES && c->got < c->batch; level++)
	{
		int			nr = 0;

		for (i = 0; i < c->nq; i++)
		{
			if (c->qs[i].taken >= c->qs[i].cap)
				continue;
			for (p = level; p <= AWA_FLOOR_PRIORITIES; p++)
			{
				RingRange  *r = &ranges[nr];

				if (!level_range(c, level, p, &r->lo, &r->hi))
					continue;
				/* floor at the end: no waiting job there; above hi: none due in range */
				if (awa_floor_at_end(&c->scans[i], p) ||
					c->scans[i].floors[p - 1].run_at > r->hi || r->lo >= r->hi)
					continue;
				r->qi = i;
				r->p = p;
				nr++;
			}
		}
		if (nr == 1)
			claim_direct(c, &ranges[0]);
		else if (nr > 1)
			claim_rounds(c, ranges, nr);
	}
}

/*
 * A chunk of the reset's walk (floor.c, awa_floor_walked) of each queue of
 * the claim whose lane has one under way: per priority not walked yet, up
 * to RING_WALK_CHUNK ready rows of the claim index from where the walk
 * stands up to the floor the claim read, under the claim's floor snapshot,
 * and whether each is waiting (no receipt of its attempt, no done row);
 * and the first scheduled row below the floor (every scheduled row is
 * waiting).  The first waiting job found lowers the floor to it; a chunk
 * cut short got to the floor.  The rows claimed since the floors were
 * last reset are walked once per reset, a chunk a claim, not by one claim
 * (docs/storage.md, "Step 5: a slow claim behind a fast one, and the
 * floors' reset").  Caller is in SPI.
 */
static void
ring_walk(RingClaim *c)
{
	static SPIPlanPtr ready_plan = NULL;
	static SPIPlanPtr sched_plan = NULL;
	static const Oid types[] = {TEXTOID, INT4OID, TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, INT8OID, INT4OID};
	int			i;
	int			p;

	awa_plan(&ready_plan,
			 "SELECT r.run_at, r.id, ((SELECT 1 FROM awa.claims c WHERE c.job_id = r.id"
			 "  AND c.run_lease = r.run_lease + 1 AND c.slot = r.slot LIMIT 1) IS NULL"
			 RING_NOT_DONE_SQL("r.slot", "r.id", "r.run_lease + 1") ") AS waiting"
			 " FROM awa.ready r WHERE r.queue = $1 AND r.priority = $2"
			 " AND (r.run_at, r.id) > ($3, $4) AND (r.run_at, r.id) < ($5, $6) AND r.run_at > '-infinity'"
			 " ORDER BY r.run_at, r.id LIMIT $7",
			 7, (Oid *) types);
	awa_plan(&sched_plan,
			 "SELECT s.run_at, s.id FROM awa.scheduled s WHERE s.queue = $1 AND s.priority = $2"
			 " AND (s.run_at, s.id) < ($3, $4) ORDER BY s.run_at, s.id LIMIT 1",
			 4, (Oid *) types);
	for (i = 0; i < c->nq; i++)
	{
		AwaFloorScan *scan = &c->scans[i];

		if (!scan->walk || scan->snapshot == NULL)
			continue;
		for (p = 1; p <= AWA_FLOOR_PRIORITIES; p++)
		{
			Datum		vals[7];
			AwaFloorKey first = {0};
			AwaFloorKey last = scan->walk_from[p - 1];
			bool		found = false;
			uint64		n;
			uint64		k;

			if (!scan->walk_left[p - 1])
				continue;
			vals[0] = PointerGetDatum(c->qs[i].queue);
			vals[1] = Int32GetDatum(p);
			vals[2] = TimestampTzGetDatum(scan->walk_from[p - 1].run_at);
			vals[3] = Int64GetDatum(scan->walk_from[p - 1].id);
			vals[4] = TimestampTzGetDatum(scan->floors[p - 1].run_at);
			vals[5] = Int64GetDatum(scan->floors[p - 1].id);
			vals[6] = Int32GetDatum(RING_WALK_CHUNK);
			n = awa_ring_run(ready_plan, vals, NULL, scan->snapshot, true, SPI_OK_SELECT,
							 "awa.ring_claim: the reset's walk");
			for (k = 0; k < n && !found; k++)
			{
				bool		isnull;
				HeapTuple	row = SPI_tuptable->vals[k];
				TupleDesc	desc = SPI_tuptable->tupdesc;

				last.run_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 1, &isnull));
				last.id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
				if (DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)))
				{
					first = last;
					found = true;
				}
			}
			SPI_freetuptable(SPI_tuptable);
			/* hook: sched -- a scheduled row below the floor is a waiting job below it */
			vals[2] = vals[4];
			vals[3] = vals[5];
			if (awa_ring_run(sched_plan, vals, NULL, scan->snapshot, true, SPI_OK_SELECT,
							 "awa.ring_claim: the reset's walk") > 0)
			{
				bool		isnull;
				AwaFloorKey s;

				s.run_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
				s.id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
				if (!found || s.run_at < first.run_at || (s.run_at == first.run_at && s.id < first.id))
					first = s;
				found = true;
			}
			SPI_freetuptable(SPI_tuptable);
			awa_floor_walked(scan, p, found, first, n < RING_WALK_CHUNK, last);
		}
	}
}

/*
 * The floors after the claim: ask about the priorities of each queue that
 * gave nothing (floor.c raises one that holds no waiting job to the end),
 * raise those taken, all with one probe (ring_probe_all); release the
 * snapshots.  A claim over several queues raises the floors of what it
 * took every time (claim.c's multi-queue claim defers that): on the ring a
 * claimed row stays in the claim index until its slot is reclaimed, and
 * each one left below a floor costs every later read of its range a
 * receipt probe until the next raise.  A claim of one queue defers the
 * raise (below): its probe is a statement of its own, and the walk the
 * deferral adds is bounded.
 */
static void
ring_claim_floors(RingClaim *c)
{
	RingProbed *probed = palloc(sizeof(RingProbed) * Max(c->nq, 1));
	int			i;
	int			p;

	for (i = 0; i < c->nq; i++)
	{
		AwaFloorScan *scan = &c->scans[i];

		for (p = 1; p <= AWA_FLOOR_PRIORITIES; p++)
			scan->ask[p - 1] = scan->lane >= 0 && c->qs[i].cap > 0 &&
				!c->qs[i].yielded[p - 1] && !awa_floor_at_end(scan, p);
		/*
		 * A claim of one queue raises the floors of what it took only every
		 * FLOOR_RAISE_EVERY jobs this backend took of the lane, as claim.c's
		 * claim over several queues does (awa_floor_defer): the probe was
		 * 12 % of a claim of ten, a skipped raise costs later reads a walk
		 * over at most that many more claimed rows of the range, and the
		 * other priorities are asked about as ever (docs/storage.md,
		 * "Step 5: claim and complete, fewer statements").
		 */
		if (c->nq == 1)
			awa_floor_defer(scan, c->qs[i].taken);
	}
	ring_probe_all(c, probed);
	ring_walk(c);
	for (i = 0; i < c->nq; i++)
		awa_floor_end_with(&c->scans[i], c->qs[i].lane, ring_probed, PointerGetDatum(&probed[i]));
}

/*
 * The arguments shared by both forms (batch, lease, worker: arguments 1..3)
 * into c; 22023 naming the field.
 */
static void ring_claim_init(RingClaim *c, int batch, Interval *lease, text *worker);
static void ring_claim_many(RingClaim *c, text **names, int n, bool every);

/* batch in 1..RING_MAX_BATCH and lease positive, else 22023 naming the argument. */
static void
ring_claim_check(int batch, Interval *lease)
{
	if (batch < 1 || batch > RING_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch must be between 1 and %d", RING_MAX_BATCH)));
	if (lease->month < 0 || lease->day < 0 || lease->time < 0 ||
		(lease->month == 0 && lease->day == 0 && lease->time == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease must be positive")));
}

static void
ring_claim_args(FunctionCallInfo fcinfo, RingClaim *c, const char *queue_field)
{
	Interval   *lease;
	int			i;

	awa_ring_check_enabled("awa.ring_claim");
	for (i = 1; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be null", (const char *[]) {queue_field, "batch", "lease"}[i])));
	c->batch = PG_GETARG_INT32(1);
	lease = PG_GETARG_INTERVAL_P(2);
	ring_claim_check(c->batch, lease);
	ring_claim_init(c, c->batch, lease, PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3));
	c->rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
}

/* The claim's arguments (checked) and clock into c. */
static void
ring_claim_init(RingClaim *c, int batch, Interval *lease, text *worker)
{
	c->batch = batch;
	c->lease = lease;
	c->worker_null = (worker == NULL);
	c->worker = PointerGetDatum(worker);
	c->rsinfo = NULL;
	c->direct = NULL;
	c->got = 0;
	/* hook: rclaimx: awa_claim's clock (engine_claim.c), else now(), as run_at <= now() */
	c->at = awa_ring_claim_clock != 0 ? awa_ring_claim_clock : GetCurrentTransactionStartTimestamp();
	c->aging_us = (int64) awa_priority_aging_interval * USECS_PER_SEC;
}

/*
 * c->qs[0..n) for the queue names (text, in byte order: the order of the
 * limits' locks), each capped by its pause, concurrency limit and rate
 * (ring_flow.c).  Caller is in SPI.
 */
static void
ring_claim_queues_init(RingClaim *c, text **names, int n)
{
	int			i;

	c->nq = n;
	c->qs = palloc0(sizeof(RingQueue) * Max(n, 1));
	c->seen = palloc0(sizeof(struct RingProbed) * Max(n, 1));
	c->wrote = false;
	c->scans = palloc0(sizeof(AwaFloorScan) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		c->qs[i].queue = names[i];
		c->qs[i].lane = awa_ring_lane(names[i]);
		/* hook: rflow: per-queue cap -- how many this claim may take of the queue (ring_flow.c) */
		c->qs[i].cap = awa_ring_flow_hooks.begin(names[i], c->batch, &c->qs[i].flow);
		/* hook: rclaimx: a rate's reservation is the claim's time, as on awa.jobs (ratelimit.c) */
		if (c->qs[i].flow.rated && c->qs[i].flow.reserved_at > c->at)
			c->at = c->qs[i].flow.reserved_at;
	}
	awa_ring_claim_at = c->at;	/* hook: rclaimx: for the promotion (ring_sched.c) */
}

/* The claim of one queue (c's arguments set): its body. */
static void
ring_claim_one(RingClaim *c, text *queue)
{
	SPI_connect();
	ring_lock_partitions();
	awa_ring_keys_begin(c->at);	/* hook: keys: an attempt of keylimit.c's admission */
	ring_claim_queues_init(c, &queue, 1);
	awa_floor_begin(&c->scans[0], c->qs[0].lane, true);	/* resets walked a chunk a claim: ring_walk */
	ring_floors_own(c, 0);
	/* hook: rwait: a rollback of these claims wakes the lane's waiters (wake.c) */
	awa_lane_claim_begins(c->qs[0].lane);
	/* hook: sched: due scheduled rows of the queue become ready rows first */
	awa_ring_sched_hooks.promote_lane(queue, &c->scans[0], c->batch);
	ring_claim_levels(c);
	ring_claim_floors(c);
	/* hook: rflow: per-queue end -- unused rate reservations back; a limit's lock kept only with jobs taken */
	awa_ring_flow_hooks.end(&c->qs[0].flow, c->qs[0].taken);
	awa_ring_keys_end();		/* hook: keys: the admitted attempts' rows */
	/* hook: rwait: counted for a rollback; a woken waiter's full batch passes a wake-up on */
	awa_claim_ends(c->got, c->got == c->batch);
	awa_ring_claim_at = 0;		/* hook: rclaimx */
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * awa.ring_claim(queue, batch, lease, worker)
 *
 * queue: 1 to 200 characters; batch: 1 to 1000 jobs; lease: a positive
 * interval; worker: any text or NULL.  Returns the claimed attempts (id,
 * run_lease, attempt, kind, queue, args, priority, run_at) in claim order
 * (effective priority, run_at, id).  Errors: 55000 with awa.ring_engine
 * off; 22023 naming the field for a NULL or out-of-range argument.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_claim(PG_FUNCTION_ARGS)
{
	RingClaim	c;
	text	   *queue;

	if (PG_ARGISNULL(0))
	{
		awa_ring_check_enabled("awa.ring_claim");
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue must not be null")));
	}
	ring_claim_args(fcinfo, &c, "queue");
	queue = PG_GETARG_TEXT_PP(0);
	awa_ring_check_name(queue, "queue");

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ring_claim_one(&c, queue);
	return (Datum) 0;
}

/* qsort order of queue names (text *): byte order. */
static int
text_cmp(const void *a, const void *b)
{
	text	   *x = *(text *const *) a;
	text	   *y = *(text *const *) b;
	int			lx = VARSIZE_ANY_EXHDR(x);
	int			ly = VARSIZE_ANY_EXHDR(y);
	int			r = memcmp(VARDATA_ANY(x), VARDATA_ANY(y), Min(lx, ly));

	return r != 0 ? r : (lx > ly) - (lx < ly);
}

/*
 * The queues argument of the several-queue forms, as awa_claim(queues
 * text[], ...) reads its own (claim.c): NULL is every queue (returns
 * false); else a non-empty one-dimensional array of names of 1 to 200
 * characters, none NULL, into *names sorted without duplicates.  Errors:
 * 22023 (dimensions, empty, a name's length), 22004 (a NULL element).
 * Exported for ring_wait.c (ring.h).
 */
bool
awa_ring_queues_arg(ArrayType *arr, text ***names, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			count;
	int			kept = 0;
	int			i;

	*names = NULL;
	*n = 0;
	if (arr == NULL)
		return false;
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queues must be a one-dimensional array, got %d dimensions", ARR_NDIM(arr))));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
	if (count == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queues must name at least one queue"),
				 errhint("Pass NULL::text[] to claim from every queue.")));
	*names = palloc(sizeof(text *) * count);
	for (i = 0; i < count; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("queues must not contain NULL (element %d)", i + 1),
					 errhint("Pass NULL for the whole array to claim from every queue.")));
		(*names)[i] = DatumGetTextPP(elems[i]);
		awa_ring_check_name((*names)[i], "queues");
	}
	qsort(*names, count, sizeof(text *), text_cmp);
	for (i = 0; i < count; i++)
		if (kept == 0 || text_cmp(&(*names)[kept - 1], &(*names)[i]) != 0)
			(*names)[kept++] = (*names)[i];
	*n = kept;
	return true;
}

/*
 * Every queue that has ready or scheduled rows, in byte order (one descent
 * of each claim index per queue).  A queue whose ready rows have all been
 * claimed is among them until its slot is reclaimed; its ranges' floors go
 * to the end at its first claim (ring_claim_floors), after which it costs
 * an array element.  Caller is in SPI.
 */
static text **
ring_queues_with_rows(int *n)
{
	static SPIPlanPtr plan = NULL;
	text	  **names;
	uint64		count;
	uint64		i;

	awa_plan(&plan,
			 "WITH RECURSIVE q(queue) AS ("
			 " (SELECT r.queue FROM awa.ready r WHERE r.run_at > '-infinity' ORDER BY r.queue LIMIT 1)"
			 " UNION ALL"
			 " SELECT (SELECT r.queue FROM awa.ready r WHERE r.run_at > '-infinity' AND r.queue > q.queue"
			 "  ORDER BY r.queue LIMIT 1) FROM q WHERE q.queue IS NOT NULL),"
			 " s(queue) AS ("
			 " (SELECT x.queue FROM awa.scheduled x ORDER BY x.queue LIMIT 1)"
			 " UNION ALL"
			 " SELECT (SELECT x.queue FROM awa.scheduled x WHERE x.queue > s.queue"
			 "  ORDER BY x.queue LIMIT 1) FROM s WHERE s.queue IS NOT NULL)"
			 " SELECT queue FROM q WHERE queue IS NOT NULL"
			 " UNION SELECT queue FROM s WHERE queue IS NOT NULL",
			 0, NULL);
	count = awa_ring_run(plan, NULL, NULL, GetLatestSnapshot(), true, SPI_OK_SELECT,
						 "awa.ring_claim: the queues with rows");
	names = palloc(sizeof(text *) * Max(count, 1));
	for (i = 0; i < count; i++)
	{
		bool		isnull;

		names[i] = DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
												   1, &isnull));
	}
	qsort(names, count, sizeof(text *), text_cmp);
	*n = (int) count;
	return names;
}

/* ---------------------------------------------------------------------
 * awa.ring_claim(queues text[], batch, lease, worker)
 *
 * queues: a one-dimensional array of queue names (1 to 200 characters
 * each, no NULL element; duplicates count once), or NULL for every queue
 * that has ready or scheduled rows; batch, lease, worker as for one queue.
 * Returns the claimed attempts of any of the queues, in the single-queue
 * order across all of them.  Errors: 55000 with awa.ring_engine off; 22023
 * naming the field for a NULL or out-of-range argument, an empty or
 * multi-dimensional array or a bad name; 22004 for a NULL element.
 * ---------------------------------------------------------------------
 */
Datum
awa_ring_claim_queues(PG_FUNCTION_ARGS)
{
	RingClaim	c;
	text	  **names;
	int			n;

	ring_claim_args(fcinfo, &c, "queues");
	(void) awa_ring_queues_arg(PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0), &names, &n);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ring_claim_many(&c, names, n, PG_ARGISNULL(0));
	return (Datum) 0;
}

/* The claim of several queues (names[0..n), sorted; every: all with rows; c's arguments set): its body. */
static void
ring_claim_many(RingClaim *c, text **names, int n, bool every)
{
	char	  **lanes;
	int			i;

	SPI_connect();
	ring_lock_partitions();
	if (every)
		names = ring_queues_with_rows(&n);
	awa_ring_keys_begin(c->at);	/* hook: keys: an attempt of keylimit.c's admission */
	ring_claim_queues_init(c, names, n);
	if (n > 0)
	{
		lanes = palloc(sizeof(char *) * n);
		for (i = 0; i < n; i++)
		{
			lanes[i] = c->qs[i].lane;
			/* hook: rwait: a rollback of these claims wakes the lanes' waiters (wake.c) */
			awa_lane_claim_noted(lanes[i], 0);
		}
		awa_floor_begin_many(c->scans, lanes, n, true);
		for (i = 0; i < n; i++)
			ring_floors_own(c, i);
		/* hook: sched: due scheduled rows of the queues become ready rows first */
		ring_promote_all(c);
		ring_claim_levels(c);
		ring_claim_floors(c);
		for (i = 0; i < n; i++)
		{
			/* hook: rflow: per-queue end (as for one queue) */
			awa_ring_flow_hooks.end(&c->qs[i].flow, c->qs[i].taken);
			if (c->qs[i].taken > 0)
				awa_lane_claim_noted(lanes[i], c->qs[i].taken);
		}
	}
	awa_ring_keys_end();		/* hook: keys: the admitted attempts' rows */
	/* hook: rwait: a woken waiter's full batch passes a wake-up on */
	awa_claim_ends(0, c->got == c->batch);
	awa_ring_claim_at = 0;		/* hook: rclaimx */
	SPI_finish();
}

/* See ring_claim.h. */
int
awa_ring_claim_direct(text *queue, text **names, int n, int batch, Interval *lease, text *worker,
					  TupleDesc desc, MemoryContext cxt, AwaRingClaimed *out)
{
	static Oid	state_type = InvalidOid;
	RingClaim	c;
	RingOut		d;

	awa_ring_check_enabled("awa.ring_claim");
	ring_claim_check(batch, lease);
	if (queue != NULL)
		awa_ring_check_name(queue, "queue");
	ring_claim_init(&c, batch, lease, worker);
	memset(&d, 0, sizeof(d));
	d.out = out;
	d.cxt = cxt;
	d.desc = desc;
	if (desc != NULL)
	{
		if (!OidIsValid(state_type) || desc->natts != RING_JOBS_NATTS ||
			TupleDescAttr(desc, 4)->atttypid != state_type)
		{
			/* the columns' types the row is built of (state: awa.job_state, column 5) */
			static const Oid types[RING_JOBS_NATTS] = {
				INT8OID, TEXTOID, TEXTOID, JSONBOID, InvalidOid, INT2OID, INT2OID, INT2OID,
				TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
				TIMESTAMPTZOID, JSONBARRAYOID, JSONBOID, TEXTARRAYOID, BYTEAOID, BITOID, INT8OID,
				JSONBOID, TEXTOID, INTERVALOID, INTERVALOID, JSONBOID, BYTEAOID, INT8OID,
				INTERVALOID, JSONBOID, TEXTOID, TEXTOID};
			int			a;

			if (desc->natts != RING_JOBS_NATTS)
				elog(ERROR, "awa_claim: awa.jobs has %d columns, the ring's claim builds %d",
					 desc->natts, RING_JOBS_NATTS);
			for (a = 0; a < RING_JOBS_NATTS; a++)
				if (OidIsValid(types[a]) && TupleDescAttr(desc, a)->atttypid != types[a])
					elog(ERROR, "awa_claim: awa.jobs' column %d is not of the type the ring's claim builds",
						 a + 1);
			state_type = TupleDescAttr(desc, 4)->atttypid;
		}
		d.running = DirectFunctionCall2(enum_in, CStringGetDatum("running"), ObjectIdGetDatum(state_type));
		d.no_errors = PointerGetDatum(construct_empty_array(JSONBOID));
	}
	c.direct = &d;
	if (queue != NULL)
		ring_claim_one(&c, queue);
	else
		ring_claim_many(&c, names, n, n == 0);
	return d.n;
}

/* See ring_claim.h. */
void
awa_ring_claim_init(void)
{
	awa_engine_ring_claim = awa_ring_claim_direct;
}
