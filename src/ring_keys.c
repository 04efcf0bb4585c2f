/*-------------------------------------------------------------------------
 *
 * ring_keys.c
 *		Per-key concurrency limits, ordering and rates on the ring's claim
 *		(docs/storage.md, "Step 5: per-key limits and rates on the ring"):
 *		the rules of awa.key_limits (awa_set_key_limit, awa_set_key_rate)
 *		kept for ready rows with a concurrency key with the promises
 *		awa_claim keeps for awa.jobs (keylimit.c).
 *
 * The admission is keylimit.c's own, not a copy: a ring claim is an attempt
 * of it (awa_keylimit_begin .. awa_keylimit_end), and its statements ask
 * about each candidate with a key as awa_claim's do (ring_keys.h):
 * awa.concurrency_key_open before the row is locked (a key found at its
 * limit, busy, or at its rate is skipped without a lock), and
 * awa.ring_key_admit, above the lock and below the LIMIT, which is
 * awa.concurrency_key_admit (the key's transaction-level advisory lock,
 * the same one awa_claim takes, so both engines' claimers of a key take
 * turns; the rule of the job's kind; the count of the key's running jobs
 * with a fresh snapshot under that lock; the key's rate in shared memory)
 * that also remembers what it admitted.  The lock is held to commit once a
 * job of the key was admitted: the next claimer of the key counts after
 * this one committed, so no two claimers take the key's last slot.
 *
 * The count.  awa.jobs has a partial index of running jobs by key; the
 * ring's rows are never updated, so "running" is the absence of a done row
 * and cannot be indexed.  Instead the claim writes a row of
 * awa.ring_key_running (job_id, run_lease, key) for each admitted attempt
 * that got its receipt, under the key's lock, before it commits.  The count
 * of a key (hook: keys in keylimit.c's count_running) reads the key's rows
 * by index with the newest snapshot and probes, for each, the attempt's
 * receipt (awa.claims) and its end (a done row, not the end of a wait): an
 * attempt with a receipt and no end runs.  Rows of ended attempts (or whose
 * receipt is gone with its slot) are deleted by the claim that counted them,
 * all in one statement at its end (a count outside a ring claim, by
 * awa_claim, deletes at once), so a key's rows are its running attempts and
 * those that ended since the key's last count: nothing on the ring's paths
 * that end attempts (complete, fail, rescue, cancel, snooze, park) writes or
 * reads anything for it.  (Two claimers that delete the same row both
 * succeed: the second finds it gone.)
 *
 * In a database whose awa.jobs is the ring's view (awa.install_engine =
 * ring) the count is the ring's alone; in a database with awa.jobs a table
 * and the internal ring switched on (awa.ring_engine), both are counted: a
 * key's limit is by name, whatever engine holds its jobs.
 *
 * Ordered keys: keylimit.c asks awa.jobs for a live job of the key with a
 * smaller id; in a ring database that is the view (correct, not an index
 * probe: see the docs section).  Rates: keylimit.c and ratelimit.c, counted
 * in shared memory per key at the claim's time, now() on the ring (the
 * attempted_at its receipts give).
 *
 * Blocking claims (ring_wait.c): a claim that passed over a key (at its
 * limit, or busy) reports it as a claimer at a limit does (rechecked when a
 * running attempt ends, or within a second); one that found a key at its
 * rate reports when the key's next slot opens (awa_ring_keys_wait).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "awa.h"
#include "keylimit.h"
#include "ratelimit.h"
#include "ring.h"
#include "ring_keys.h"

PG_FUNCTION_INFO_V1(awa_ring_key_admit);
PG_FUNCTION_INFO_V1(awa_ring_keys_live);

/* keylimit.c's admission (declared there by PG_FUNCTION_INFO_V1) */
extern Datum awa_concurrency_key_admit(PG_FUNCTION_ARGS);

/* An attempt admitted with a key (and, once it got its receipt, its lease). */
typedef struct RingKeyAdmitted
{
	int64		id;
	int64		run_lease;
	bool		claimed;
	text	   *key;
} RingKeyAdmitted;

/* The running ring claim's admissions, in key_cxt (reset by the next claim). */
static MemoryContext key_cxt = NULL;
static RingKeyAdmitted *admitted = NULL;
static int	nadmitted = 0;
static int	maxadmitted = 0;
static bool claim_active = false;

/* Rows of ended attempts the claim's counts found: deleted by awa_ring_keys_end. */
static int64 *gone_ids = NULL;
static int64 *gone_leases = NULL;
static int	ngone = 0;
static int	maxgone = 0;

static void delete_gone(int64 *ids, int64 *leases, int n);

/* A bigint[] of n Datums. */
static Datum
int8_array(Datum *v, int n)
{
	return PointerGetDatum(construct_array(v, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* What the last ring claim found, for a blocking claim (awa_ring_keys_wait). */
static bool last_passed_over = false;
static TimestampTz last_next_slot_at = 0;

/* A claim that fails (or whose subtransaction aborts) is over: admit refuses again. */
static void
ring_keys_xact(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		claim_active = false;
}

static void
ring_keys_subxact(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		claim_active = false;
}

void
awa_ring_keys_begin(TimestampTz at)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(ring_keys_xact, NULL);
		RegisterSubXactCallback(ring_keys_subxact, NULL);
		registered = true;
	}
	if (key_cxt == NULL)
		key_cxt = AllocSetContextCreate(TopMemoryContext, "awa ring concurrency keys",
										ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(key_cxt);
	admitted = NULL;
	nadmitted = maxadmitted = 0;
	gone_ids = gone_leases = NULL;
	ngone = maxgone = 0;
	claim_active = true;
	last_passed_over = false;
	last_next_slot_at = 0;
	/* no key's (or queue's) full window found yet, nothing reserved (ratelimit.c) */
	awa_rate_attempt();
	awa_keylimit_begin(at);
}

/*
 * awa.ring_key_admit(key text, kind text, id bigint) RETURNS boolean
 *
 * Called by the ring claim's statements only (ring_keys.h), on a locked
 * ready row: awa.concurrency_key_admit, remembered when true.  A NULL key
 * is admitted.  Errors: 55000 outside a ring claim; those of
 * awa.concurrency_key_admit (0A000 in REPEATABLE READ or SERIALIZABLE for a
 * row with a key; 55000 for a key with a rate without awa preloaded).
 */
Datum
awa_ring_key_admit(PG_FUNCTION_ARGS)
{
	bool		ok;

	if (!claim_active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.ring_key_admit may only be called by awa.ring_claim")));
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	ok = DatumGetBool(DirectFunctionCall3(awa_concurrency_key_admit, PG_GETARG_DATUM(0),
										  PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)));
	if (ok)
	{
		MemoryContext old = MemoryContextSwitchTo(key_cxt);
		RingKeyAdmitted *a;

		if (nadmitted == maxadmitted)
		{
			maxadmitted = Max(16, maxadmitted * 2);
			admitted = admitted ? repalloc(admitted, sizeof(RingKeyAdmitted) * maxadmitted) :
				palloc(sizeof(RingKeyAdmitted) * maxadmitted);
		}
		a = &admitted[nadmitted++];
		a->id = PG_GETARG_INT64(2);
		a->run_lease = 0;
		a->claimed = false;
		a->key = DatumGetTextPCopy(PG_GETARG_DATUM(0));
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_BOOL(ok);
}

void
awa_ring_keys_claimed(int64 id, int64 run_lease)
{
	int			i;

	/* the newest admission of the id: a row admitted twice got one receipt */
	for (i = nadmitted - 1; i >= 0; i--)
		if (admitted[i].id == id)
		{
			admitted[i].claimed = true;
			admitted[i].run_lease = run_lease;
			return;
		}
}

void
awa_ring_keys_end(void)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
	Datum	   *ids;
	Datum	   *leases;
	Datum	   *keys;
	int			n = 0;
	int			i;
	long		ms;

	claim_active = false;
	last_passed_over = awa_keylimit_end();
	ms = awa_rate_wait_ms(GetCurrentTimestamp());
	if (ms >= 0)
		last_next_slot_at = GetCurrentTimestamp() + (int64) ms * 1000;
	if (ngone > 0)
		delete_gone(gone_ids, gone_leases, ngone);
	ngone = 0;
	if (nadmitted == 0)
		return;
	ids = palloc(sizeof(Datum) * nadmitted);
	leases = palloc(sizeof(Datum) * nadmitted);
	keys = palloc(sizeof(Datum) * nadmitted);
	for (i = 0; i < nadmitted; i++)
		if (admitted[i].claimed)
		{
			ids[n] = Int64GetDatum(admitted[i].id);
			leases[n] = Int64GetDatum(admitted[i].run_lease);
			keys[n++] = PointerGetDatum(admitted[i].key);
		}
	if (n > 0)
	{
		Datum		values[3];

		awa_plan(&plan,
				 "INSERT INTO awa.ring_key_running (job_id, run_lease, concurrency_key)"
				 " SELECT * FROM unnest($1, $2, $3) ON CONFLICT DO NOTHING",
				 3, types);
		values[0] = int8_array(ids, n);
		values[1] = int8_array(leases, n);
		values[2] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
		awa_ring_run(plan, values, NULL, InvalidSnapshot, false, SPI_OK_INSERT,
					 "awa.ring_claim: the keys' running attempts");
	}
	nadmitted = 0;
}

/*
 * hook: keys -- for ring_wait.c's attempt, after its claim and its own
 * reckoning (*due_ms: -1 none, else ms until something comes due;
 * *at_limit): a claim that passed over a key waits as at a limit, and one
 * that found a key at its rate wakes when the key's next slot opens, if
 * that is earlier.
 */
void
awa_ring_keys_wait(long *due_ms, bool *at_limit)
{
	if (last_passed_over)
		*at_limit = true;
	if (last_next_slot_at != 0)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		ms = last_next_slot_at <= now ? 0 :
			(long) Min((last_next_slot_at - now + 999) / 1000, 3600 * 1000);

		*due_ms = awa_rate_earlier(*due_ms, ms);
	}
}

void
awa_ring_keys_init(void)
{
	awa_keylimit_ring_running = awa_ring_keys_running;
	awa_keylimit_ring_earlier = awa_ring_keys_earlier;
}

/* Whether the ring holds jobs here: awa.ring_engine on, or a ring database. */
static bool
ring_in_use(bool *ring_only)
{
	const char *on;

	*ring_only = awa_schema_has(AWA_SCHEMA_RING_ENGINE);
	if (*ring_only)
		return true;
	on = GetConfigOption("awa.ring_engine", true, false);
	return on != NULL && strcmp(on, "on") == 0;
}

/*
 * Delete the rows of ended attempts (ids[i], leases[i]).  Nobody else
 * writes a key's rows while its lock is held; two claimers that delete the
 * same row after the lock was let go both succeed (the second finds it
 * gone).  Caller is in SPI.
 */
static void
delete_gone(int64 *ids, int64 *leases, int n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	Datum	   *di = palloc(sizeof(Datum) * n);
	Datum	   *dl = palloc(sizeof(Datum) * n);
	int			i;

	for (i = 0; i < n; i++)
	{
		di[i] = Int64GetDatum(ids[i]);
		dl[i] = Int64GetDatum(leases[i]);
	}
	/*
	 * Only the rows no one else holds: two claimers that count the same key
	 * one after the other (the first let go of the key's lock without
	 * admitting a job of it) both find the ended attempts; the second
	 * waiting here for the first's commit would deadlock with the first
	 * waiting for it on another key.  An ended attempt never runs again, so
	 * a row passed over goes with the other claimer's delete, or the next
	 * count.
	 */
	awa_plan(&plan,
			 "DELETE FROM awa.ring_key_running k WHERE k.ctid = ANY (ARRAY("
			 " SELECT r.ctid FROM awa.ring_key_running r JOIN unnest($1, $2) AS g(i, l)"
			 "  ON r.job_id = g.i AND r.run_lease = g.l FOR UPDATE OF r SKIP LOCKED))",
			 2, types);
	values[0] = int8_array(di, n);
	values[1] = int8_array(dl, n);
	awa_ring_run(plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_DELETE,
				 "awa.ring_claim: the keys' ended attempts");
}

/* Note a row of an ended attempt for awa_ring_keys_end (in key_cxt). */
static void
note_gone(int64 id, int64 lease)
{
	MemoryContext old = MemoryContextSwitchTo(key_cxt);

	if (ngone == maxgone)
	{
		maxgone = Max(16, maxgone * 2);
		gone_ids = gone_ids ? repalloc(gone_ids, sizeof(int64) * maxgone) : palloc(sizeof(int64) * maxgone);
		gone_leases = gone_leases ? repalloc(gone_leases, sizeof(int64) * maxgone) :
			palloc(sizeof(int64) * maxgone);
	}
	gone_ids[ngone] = id;
	gone_leases[ngone++] = lease;
	MemoryContextSwitchTo(old);
}

int64
awa_ring_keys_running(text *key, bool *ring_only)
{
	static SPIPlanPtr count_plan = NULL;
	static const Oid count_types[] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(key)};
	int64		running = 0;
	int64	   *ended_ids;
	int64	   *ended_leases;
	int			nended = 0;
	uint64		n;
	uint64		i;

	if (!ring_in_use(ring_only))
		return 0;
	SPI_connect();
	/*
	 * The key's rows by index; per row the attempt's receipt and its end, by
	 * their keys' prefix (job_id, run_lease) in each slot's partition.
	 */
	awa_plan(&count_plan,
			 "SELECT k.job_id, k.run_lease,"
			 " (SELECT 1 FROM awa.claims c WHERE c.job_id = k.job_id AND c.run_lease = k.run_lease"
			 "  LIMIT 1) IS NOT NULL"
			 " AND (SELECT 1 FROM awa.done d WHERE d.job_id = k.job_id AND d.run_lease = k.run_lease"
			 "  AND NOT d.after_wait LIMIT 1) IS NULL AS running"
			 " FROM awa.ring_key_running k WHERE k.concurrency_key = $1",
			 1, count_types);
	/* the newest snapshot, taken under the key's lock: the last holder's rows are counted */
	n = awa_ring_run(count_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
					 "awa.ring_claim: counting the key's running attempts");
	ended_ids = palloc(sizeof(int64) * Max(n, 1));
	ended_leases = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)))
			running++;
		else
		{
			ended_ids[nended] = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
			ended_leases[nended++] = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
		}
	}
	/* the ended attempts' rows: at the end of a ring claim, all at once; else now */
	if (claim_active)
		for (i = 0; i < (uint64) nended; i++)
			note_gone(ended_ids[i], ended_leases[i]);
	else if (nended > 0)
		delete_gone(ended_ids, ended_leases, nended);
	SPI_finish();
	return running;
}

/* Whether the job of awa.ring_key_live's row l is live (true or false). */
#define KEY_LIVE_JOB_SQL \
	"((SELECT j.state FROM awa.ring_live_jobs j WHERE j.id = l.job_id" \
	"  AND j.state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')" \
	"  LIMIT 1) IS NOT NULL)"

/*
 * Ordered keys.  awa.ring_key_live holds (key, job_id) of every ring job
 * with a key that has had a ready or scheduled row: the AFTER INSERT
 * statement triggers of awa.ready and awa.scheduled (awa.ring_keys_live)
 * add the keyed rows of each insert (a row already there stays).  Whether a
 * job of the key with a smaller id is live: the key's rows below id by
 * index, in id order, each job's state read from awa.ring_live_jobs by id
 * (index probes), until the first live one; the rows of jobs found not
 * live (finished, or moved to the history) are deleted on the way, so a
 * key's rows are its live jobs and those that finished since the key's last
 * look.  A job made live again (awa_retry) gets a new ready row, and its
 * row back.  Caller holds the key's lock; not in SPI.
 */
bool
awa_ring_keys_earlier(text *key, int64 id, bool *ring_only)
{
	static SPIPlanPtr walk_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr gone_plan = NULL;
	static const Oid walk_types[] = {TEXTOID, INT8OID};
	static const Oid gone_types[] = {TEXTOID, INT8ARRAYOID};
	Datum		values[2] = {PointerGetDatum(key), Int64GetDatum(id)};
	Datum	   *gone;
	int			ngone_here = 0;
	bool		live = false;
	uint64		n;
	uint64		i;

	if (!ring_in_use(ring_only))
		return false;
	SPI_connect();
	awa_plan(&walk_plan,
			 "SELECT l.job_id, " KEY_LIVE_JOB_SQL " AS live"
			 " FROM awa.ring_key_live l WHERE l.concurrency_key = $1 AND l.job_id < $2"
			 " ORDER BY l.job_id",
			 2, walk_types);
	/* the newest snapshot, taken under the key's lock */
	n = awa_ring_run(walk_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
					 "awa.ring_claim: an earlier live job of the key");
	gone = palloc(sizeof(Datum) * Max(n, 1));
	for (i = 0; i < n && !live; i++)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)))
			live = true;
		else
			gone[ngone_here++] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	}
	if (ngone_here > 0)
	{
		/*
		 * The rows of the jobs found finished: first locked, those no one
		 * else holds (another claimer that walked the key before this one
		 * and has not committed yet deletes them too; waiting for it could
		 * deadlock, see delete_gone), then deleted if their job is still not
		 * live in a snapshot taken after the locks: a job made live again
		 * (awa_retry) meanwhile keeps its row, as in the maintenance
		 * round's upkeep (ring_maint.c).
		 */
		awa_plan(&lock_plan,
				 "SELECT l.job_id FROM awa.ring_key_live l"
				 " WHERE l.concurrency_key = $1 AND l.job_id = ANY ($2)"
				 " FOR UPDATE SKIP LOCKED",
				 2, gone_types);
		awa_plan(&gone_plan,
				 "DELETE FROM awa.ring_key_live l"
				 " WHERE l.concurrency_key = $1 AND l.job_id = ANY ($2)"
				 " AND NOT " KEY_LIVE_JOB_SQL,
				 2, gone_types);
		values[1] = int8_array(gone, ngone_here);
		n = awa_ring_run(lock_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_SELECT,
						 "awa.ring_claim: locking the rows of the key's finished jobs");
		if (n > 0)
		{
			for (i = 0; i < n; i++)
			{
				bool		isnull;

				gone[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			}
			values[1] = int8_array(gone, (int) n);
			awa_ring_run(gone_plan, values, NULL, GetLatestSnapshot(), false, SPI_OK_DELETE,
						 "awa.ring_claim: the key's finished jobs");
		}
	}
	SPI_finish();
	return live;
}

/*
 * awa.ring_keys_live(): AFTER INSERT FOR EACH STATEMENT trigger of
 * awa.ready and awa.scheduled (transition table ring_new): the keyed rows'
 * (concurrency_key, id) into awa.ring_key_live.  Rows without a key cost a
 * NULL test each; a statement without keyed rows runs no SQL.  A row
 * already there (a job made live again: awa_retry) is locked, not written
 * (ON CONFLICT DO UPDATE ... WHERE false), so that the maintenance round's
 * upkeep (ring_maint.c), which locks a row (SKIP LOCKED) before it looks
 * whether its job is live, either passes the row over while this
 * transaction holds it, or has deleted it first (this insert then waits
 * for the upkeep's commit and writes it again): the row of a job made live
 * is never lost to it.
 */
Datum
awa_ring_keys_live(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const Oid types[] = {TEXTARRAYOID, INT8ARRAYOID};
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	TupleTableSlot *slot;
	int			key_att;
	int			id_att;
	Datum	   *keys = NULL;
	Datum	   *ids = NULL;
	int			n = 0;
	int			max = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		td->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_keys_live must be an AFTER INSERT FOR EACH STATEMENT trigger"
						" with a new table")));
	if (awa_ring_restoring(td->tg_relation))
		return PointerGetDatum(NULL);	/* a restore's load: awa.ring_key_live is in the dump (ring_dump.c) */
	desc = RelationGetDescr(td->tg_relation);
	key_att = SPI_fnumber(desc, "concurrency_key");
	id_att = SPI_fnumber(desc, "id");
	if (key_att <= 0 || id_att <= 0)
		elog(ERROR, "awa.ring_keys_live: %s has no concurrency_key or id",
			 RelationGetRelationName(td->tg_relation));
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(td->tg_newtable);
	while (tuplestore_gettupleslot(td->tg_newtable, true, false, slot))
	{
		bool		isnull;
		Datum		key = slot_getattr(slot, key_att, &isnull);

		if (isnull)
			continue;
		if (n == max)
		{
			max = Max(16, max * 2);
			keys = keys ? repalloc(keys, sizeof(Datum) * max) : palloc(sizeof(Datum) * max);
			ids = ids ? repalloc(ids, sizeof(Datum) * max) : palloc(sizeof(Datum) * max);
		}
		keys[n] = datumCopy(key, false, -1);
		ids[n++] = slot_getattr(slot, id_att, &isnull);
	}
	ExecDropSingleTupleTableSlot(slot);
	if (n > 0)
	{
		Datum		values[2];

		SPI_connect();
		awa_plan(&plan,
				 "INSERT INTO awa.ring_key_live (concurrency_key, job_id)"
				 " SELECT DISTINCT u.k, u.i FROM unnest($1, $2) AS u(k, i)"
				 " ON CONFLICT (concurrency_key, job_id) DO UPDATE SET job_id = EXCLUDED.job_id WHERE false",
				 2, types);
		values[0] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[1] = int8_array(ids, n);
		awa_ring_run(plan, values, NULL, InvalidSnapshot, false, SPI_OK_INSERT,
					 "awa.ring_keys_live");
		SPI_finish();
	}
	return PointerGetDatum(NULL);
}
