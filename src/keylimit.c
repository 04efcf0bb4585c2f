/*-------------------------------------------------------------------------
 *
 * keylimit.c
 *		Per-key concurrency and per-key ordering, enforced at claim time.
 *
 * A job may carry a concurrency key (awa.jobs.concurrency_key; NULL: none).
 * Rules in awa.key_limits (awa_set_key_limit) give, for the keys that match
 * a LIKE pattern -- for every kind, or for one kind -- how many jobs with
 * the key may run at once (max_running) and whether the key is ordered.
 * The rule of a job is the one for its own kind before one for every kind,
 * then an exact key (a pattern without % or _) before other patterns, then
 * the longest pattern in bytes, then the smallest in byte order; a key no rule
 * matches has max_running 1 and is not ordered.
 *
 * The claim.  Every claim statement (job.c) asks, for each candidate with a
 * key, after it has locked the row and before the LIMIT counts it,
 * awa.concurrency_key_admit(key, kind, id).  The first time an attempt of
 * awa_claim meets a key it takes the key's transaction-level advisory lock
 * without waiting in the lock manager (it tries again for up to 2 ms per
 * attempt while another claimer holds it), and with the lock held counts
 * the key's running jobs with a fresh snapshot (a scan of the partial index
 * jobs_key_running_idx, without the executor; the rules are read once per
 * attempt).  It admits the job if the running jobs plus those this attempt
 * admitted already stay under the rule's max_running.  The lock is kept to commit
 * once a job of the key was admitted: the next claimer of the key counts
 * after this one committed (or rolled back), so the limit holds exactly
 * across every worker.  A key whose lock another claimer still holds after
 * that is passed over for this attempt rather than waited for (no waiting
 * on one key while others have jobs, and no deadlock between claimers that
 * meet keys in different orders).  A key found at its limit is remembered
 * for the rest of the attempt: awa.concurrency_key_open(key), asked before a
 * candidate is locked, skips its other jobs without locking them.  Jobs
 * without a key are never asked about: they pay one IS NULL test.
 *
 * Ordered keys.  A job of an ordered key (max_running is then 1) is
 * admitted only if no job of the key runs and no job of the key with a
 * smaller id is live (scheduled, available, running, retryable or
 * waiting_external): keys run in insertion (id) order, one at a time.  The
 * previous job has finished when it is completed, failed for good, or
 * cancelled; a job that fails with attempts left becomes retryable and
 * keeps its place, and so does one whose claim rolled back.
 *
 * A claim that passed over a key tells claim.c (awa_keylimit_end), which
 * treats it as a claimer at a limit: a blocking claim rechecks within a
 * second, and is woken early when a transaction takes a job out of running.
 * Counting needs a fresh snapshot, so claiming a job with a key needs READ
 * COMMITTED.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/hash.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "awa.h"
#include "keylimit.h"
#include "ratelimit.h"

/* hook: keys -- the ring's running jobs of a key (keylimit.h; set by ring_keys.c) */
int64		(*awa_keylimit_ring_running) (text *key, bool *ring_only) = NULL;
bool		(*awa_keylimit_ring_earlier) (text *key, int64 id, bool *ring_only) = NULL;

PG_FUNCTION_INFO_V1(awa_concurrency_key_admit);
PG_FUNCTION_INFO_V1(awa_concurrency_key_open);
PG_FUNCTION_INFO_V1(awa_set_key_limit);
PG_FUNCTION_INFO_V1(awa_set_key_rate);

/* field4 of the advisory lock tag of a concurrency key (queues: 0x6177) */
#define AWA_KEY_LOCK_CLASS		0x6b79
#define AWA_KEY_LOCK_POLL_US	50	/* retry of a busy key's lock */
#define AWA_KEY_LOCK_BUDGET_US	2000	/* at most this long per attempt */

/* What an attempt knows of one key. */
typedef struct KeyEntry
{
	char		key[AWA_MAX_NAME_CHARS * 4 + 1];	/* hash key: the key's bytes */
	bool		locked;			/* this attempt holds the key's lock */
	bool		counted;		/* max_running, ordered, running are set */
	bool		blocked;		/* no more of it this attempt */
	bool		ordered;
	int32		max_running;
	bool		rated;			/* rate is the rule's rate */
	AwaRate		rate;
	int64		running;		/* running when counted */
	int64		taken;			/* admitted by this attempt */
} KeyEntry;

/* A rule of awa.key_limits, as an attempt read it. */
typedef struct KeyRule
{
	text	   *pattern;
	char	   *kind;			/* NULL: every kind */
	bool		exact;			/* no % or _ */
	int32		max_running;
	bool		ordered;
	bool		rated;			/* the rule has a rate (rate_max_claims) */
	AwaRate		rate;
} KeyRule;

/*
 * What an attempt knows, in key_cxt (reset by the next attempt): made when
 * the attempt meets its first job with a key, so that claims of jobs
 * without keys pay nothing.
 */
static MemoryContext key_cxt = NULL;
static bool key_cxt_used = false;
static HTAB *keys = NULL;
static KeyRule *rules = NULL;
static int	nrules = -1;		/* -1: not read yet */
static bool kind_rules = false; /* some rule is for one kind */
static bool rated_rules = false;	/* some rule has a rate */
static Oid	running_idx = InvalidOid;	/* jobs_key_running_idx */
static Oid	jobs_rel = InvalidOid;
static AttrNumber key_attno;
static AttrNumber state_attno;
static Datum running_state;
static bool attempt_active = false;
static bool held_back = false;
static int	lock_waited_us = 0;	/* this attempt, for busy keys */
static TimestampTz claim_at = 0;	/* the claim's time: its jobs' attempted_at */

/*
 * Begin an attempt of awa_claim at time at (the attempted_at its jobs get):
 * forget what the last one knew.
 */
void
awa_keylimit_begin(TimestampTz at)
{
	claim_at = at;
	if (key_cxt_used)
	{
		MemoryContextReset(key_cxt);
		key_cxt_used = false;
	}
	keys = NULL;
	rules = NULL;
	nrules = -1;
	running_idx = InvalidOid;
	attempt_active = true;
	held_back = false;
	lock_waited_us = 0;
}

/* The key table of this attempt, made at its first job with a key. */
static HTAB *
key_table(void)
{
	HASHCTL		ctl;

	if (keys != NULL)
		return keys;
	if (key_cxt == NULL)
		key_cxt = AllocSetContextCreate(TopMemoryContext, "awa concurrency keys",
										ALLOCSET_SMALL_SIZES);
	key_cxt_used = true;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(((KeyEntry *) NULL)->key);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hcxt = key_cxt;
	keys = hash_create("awa concurrency keys", 16, &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	return keys;
}

/*
 * The claim's time: its jobs' attempted_at, which keys' rates count -- the
 * attempt's, or the later one a queue's rate gave it (ratelimit.c).
 */
static TimestampTz
claim_time(void)
{
	return Max(claim_at, awa_rate_reserved_at());
}

/* End an attempt; whether it passed over a key (at its limit, or busy). */
bool
awa_keylimit_end(void)
{
	attempt_active = false;
	keys = NULL;
	return held_back;
}

static void
key_locktag(LOCKTAG *tag, const char *key)
{
	size_t		len = strlen(key);

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 DatumGetUInt32(hash_any((const unsigned char *) key, (int) len)),
						 (uint32) DatumGetUInt64(hash_any_extended((const unsigned char *) key,
																   (int) len, 0x6b6579)),
						 AWA_KEY_LOCK_CLASS);
}

/* The entry of key in this attempt, made if new. */
static KeyEntry *
key_entry(text *key, bool create)
{
	char		buf[sizeof(((KeyEntry *) NULL)->key)];
	int			len = VARSIZE_ANY_EXHDR(key);
	bool		found;
	KeyEntry   *e;

	if (len >= (int) sizeof(buf))
		len = sizeof(buf) - 1;	/* longer than any valid key */
	memcpy(buf, VARDATA_ANY(key), len);
	buf[len] = '\0';
	if (keys == NULL && !create)
		return NULL;
	e = hash_search(key_table(), buf, create ? HASH_ENTER : HASH_FIND, &found);
	if (e != NULL && !found)
	{
		e->locked = e->counted = e->blocked = e->ordered = false;
		e->max_running = 1;
		e->rated = false;
		e->running = e->taken = 0;
	}
	return e;
}

/*
 * Read the rules, once per attempt (a few rows), into key_cxt.  Caller is
 * in SPI.
 */
static void
read_rules(void)
{
	static AwaStmt stmt = AWA_QUERY("awa_claim: reading the concurrency key rules",
		"SELECT pattern, kind, max_running, ordered FROM awa.key_limits", 0);
	static AwaStmt with_rates = AWA_QUERY("awa_claim: reading the concurrency key rules",
		"SELECT pattern, kind, max_running, ordered, rate_max_claims, rate_period,"
		" rate_set_at FROM awa.key_limits", 0);
	bool		has_rates = awa_schema_has(AWA_SCHEMA_KEY_RATES);
	uint64		n = awa_stmt_run(has_rates ? &with_rates : &stmt, NULL, NULL, 0);
	MemoryContext old = MemoryContextSwitchTo(key_cxt);
	uint64		i;

	key_cxt_used = true;
	rules = palloc(sizeof(KeyRule) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		KeyRule    *r = &rules[i];
		bool		isnull;
		char	   *pat;

		r->pattern = DatumGetTextPCopy(SPI_getbinval(row, desc, 1, &isnull));
		r->kind = SPI_getvalue(row, desc, 2);
		r->max_running = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		r->ordered = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
		r->rated = has_rates && awa_rate_read((int) i, &r->rate);
		pat = text_to_cstring(r->pattern);
		r->exact = strpbrk(pat, "%_") == NULL;
	}
	nrules = (int) n;
	kind_rules = false;
	rated_rules = false;
	for (i = 0; i < n; i++)
	{
		kind_rules |= (rules[i].kind != NULL);
		rated_rules |= rules[i].rated;
	}
	MemoryContextSwitchTo(old);
}

/* Whether rule a takes precedence over rule b (see the file header). */
static bool
rule_before(const KeyRule *a, const KeyRule *b)
{
	int			la = VARSIZE_ANY_EXHDR(a->pattern);
	int			lb = VARSIZE_ANY_EXHDR(b->pattern);
	int			cmp;

	if ((a->kind != NULL) != (b->kind != NULL))
		return a->kind != NULL;
	if (a->exact != b->exact)
		return a->exact;
	if (la != lb)
		return la > lb;
	cmp = memcmp(VARDATA_ANY(a->pattern), VARDATA_ANY(b->pattern), Min(la, lb));
	return cmp < 0;
}

/* The rule of jobs of kind with key (NULL: none; the limit is then 1). */
static const KeyRule *
rule_of(text *key, text *kind)
{
	const KeyRule *best = NULL;
	char	   *kindstr = text_to_cstring(kind);
	int			i;

	for (i = 0; i < nrules; i++)
	{
		const KeyRule *r = &rules[i];

		if (r->kind != NULL && strcmp(r->kind, kindstr) != 0)
			continue;
		if (!DatumGetBool(DirectFunctionCall2Coll(textlike, DEFAULT_COLLATION_OID,
												  PointerGetDatum(key),
												  PointerGetDatum(r->pattern))))
			continue;
		if (best == NULL || rule_before(r, best))
			best = r;
	}
	pfree(kindstr);
	return best;
}

/*
 * How many jobs with the key are running, at a fresh snapshot: a scan of
 * the partial index jobs_key_running_idx, without the executor (this runs
 * for each key a claim meets).  Each row found is checked to be running
 * still.
 */
static int64
count_running(text *key)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData skey;
	Snapshot	snap;
	HeapTuple	tup;
	int64		n = 0;
	bool		ring_only = false;
	int64		ring = awa_keylimit_ring_running ?	/* hook: keys */
		awa_keylimit_ring_running(key, &ring_only) : 0;

	if (ring_only)
		return ring;
	n = ring;
	if (!OidIsValid(running_idx))
	{
		Oid			nsp = get_namespace_oid("awa", false);

		jobs_rel = get_relname_relid("jobs", nsp);
		running_idx = get_relname_relid("jobs_key_running_idx", nsp);
		if (!OidIsValid(jobs_rel) || !OidIsValid(running_idx))
			elog(ERROR, "awa_claim: awa.jobs_key_running_idx is missing");
		key_attno = get_attnum(jobs_rel, "concurrency_key");
		state_attno = get_attnum(jobs_rel, "state");
		running_state = DirectFunctionCall2(enum_in, CStringGetDatum("running"),
											ObjectIdGetDatum(get_atttype(jobs_rel, state_attno)));
	}
	rel = table_open(jobs_rel, AccessShareLock);
	ScanKeyEntryInitialize(&skey, 0, key_attno, BTEqualStrategyNumber, InvalidOid,
						   DEFAULT_COLLATION_OID, F_TEXTEQ, PointerGetDatum(key));
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, running_idx, true, snap, 1, &skey);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull;
		Datum		state = heap_getattr(tup, state_attno, RelationGetDescr(rel), &isnull);

		if (!isnull && state == running_state)
			n++;
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return n;
}

/* Read the rules for this attempt (outside SPI). */
static void
read_rules_now(void)
{
	int			nestlevel = NewGUCNestLevel();

	/* the claim runs with sorts off (claim.c): no use here */
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
	read_rules();
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
}

/* Take the rule's limits into the key's entry (rule NULL: none matched). */
static void
set_rule(KeyEntry *e, const KeyRule *rule)
{
	e->max_running = rule ? rule->max_running : 1;
	e->ordered = rule ? rule->ordered : false;
	e->rated = rule ? rule->rated : false;
	if (e->rated)
		e->rate = rule->rate;
}

/*
 * Read the rule of (key, kind) and count the key's running jobs, with a
 * fresh snapshot.  Caller holds the key's lock.
 */
static void
count_key(KeyEntry *e, text *key, text *kind)
{
	const KeyRule *rule;

	if (nrules < 0)
		read_rules_now();
	rule = rule_of(key, kind);
	set_rule(e, rule);
	e->running = count_running(key);
	e->counted = true;
}

/* Whether a job of the key with an id below id is live (fresh snapshot). */
static bool
earlier_live(text *key, int64 id)
{
	static AwaStmt stmt = AWA_STMT("awa_claim: looking for an earlier job of a key", SPI_OK_SELECT,
		"SELECT EXISTS (SELECT 1 FROM awa.jobs WHERE concurrency_key = $1"
		" AND state IN " AWA_STATES_LIVE_SQL " AND id < $2) AS earlier",
		2, TEXTOID, INT8OID);
	Datum		values[2] = {PointerGetDatum(key), Int64GetDatum(id)};
	bool		ring_only = false;

	/* hook: keys -- the ring's earlier live jobs of the key (ring_keys.c) */
	if (awa_keylimit_ring_earlier && awa_keylimit_ring_earlier(key, id, &ring_only))
		return true;
	if (ring_only)
		return false;
	if (awa_stmt_run(&stmt, values, NULL, 1) != 1)
		elog(ERROR, "awa_claim: looking for an earlier job of a key: expected 1 row");
	return awa_stmt_bool(0, "earlier");
}

/* Let go of the key's lock when this attempt admitted none of its jobs. */
static void
unlock_if_unused(KeyEntry *e)
{
	LOCKTAG		tag;

	if (!e->locked || e->taken > 0)
		return;
	key_locktag(&tag, e->key);
	LockRelease(&tag, ExclusiveLock, false);
	e->locked = false;
	e->counted = false;			/* count again once locked again */
}

/*
 * Take the key's lock without waiting in the lock manager: another claimer
 * holds it only from its admission of a job of the key to its commit,
 * usually a fraction of a millisecond, so try again every
 * AWA_KEY_LOCK_POLL_US for up to AWA_KEY_LOCK_BUDGET_US in all per attempt
 * (a claimer that holds the lock inside a long transaction costs each
 * attempt no more).  Whether it got the lock.
 */
static bool
lock_key(LOCKTAG *tag)
{
	for (;;)
	{
		if (LockAcquire(tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return true;
		if (lock_waited_us >= AWA_KEY_LOCK_BUDGET_US)
			return false;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(AWA_KEY_LOCK_POLL_US);
		lock_waited_us += AWA_KEY_LOCK_POLL_US;
	}
}

/*
 * Whether the job (key, kind, id), locked by the claim, may run now; if so
 * it counts as running for the rest of the attempt.  See the file header.
 */
static bool
admit(text *key, text *kind, int64 id)
{
	KeyEntry   *e = key_entry(key, true);
	bool		ok;
	int			nestlevel;

	if (e->blocked)
		return false;
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("claiming job %lld, which has concurrency key \"%s\", needs READ COMMITTED",
						(long long) id, e->key),
				 errdetail("The count of the key's running jobs must see claims committed by other workers."),
				 errhint("Call awa_claim outside REPEATABLE READ and SERIALIZABLE transactions.")));
	if (!e->locked)
	{
		LOCKTAG		tag;

		key_locktag(&tag, e->key);
		if (!lock_key(&tag))
		{
			/* another claimer is taking a job of this key: pass it over */
			e->blocked = true;
			held_back = true;
			return false;
		}
		e->locked = true;
	}
	if (!e->counted)
		count_key(e, key, kind);
	else if (kind_rules)
	{
		/* the rule is the job's kind's: the key's other jobs may differ */
		set_rule(e, rule_of(key, kind));
	}
	if (e->running + e->taken >= e->max_running)
	{
		/* skip the key's other jobs unless another kind's rule may differ */
		e->blocked = !kind_rules;
		ok = false;
	}
	else if (e->ordered)
	{
		/* sorts are off in the claim (claim.c): no JIT for a tiny plan */
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		SPI_connect();
		ok = !earlier_live(key, id);
		SPI_finish();
		AtEOXact_GUC(true, nestlevel);
	}
	else
		ok = true;
	if (!ok)
	{
		held_back = true;
		unlock_if_unused(e);
		return false;
	}
	if (e->rated && !awa_rate_admit_key(e->key, &e->rate, claim_time()))
	{
		/*
		 * At its rate: skip the key's other jobs (unless another kind's rule
		 * may differ).  Not held back: the claim sleeps until the key's next
		 * slot opens (ratelimit.c recorded it), not a second at a time.
		 */
		e->blocked = !kind_rules;
		unlock_if_unused(e);
		return false;
	}
	e->taken++;
	return true;
}

/*
 * awa.concurrency_key_admit(key text, kind text, id bigint) RETURNS boolean
 *
 * Called by the claim statements only (see the file header).
 */
Datum
awa_concurrency_key_admit(PG_FUNCTION_ARGS)
{
	if (!attempt_active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.concurrency_key_admit may only be called by awa_claim")));
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(admit(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), PG_GETARG_INT64(2)));
}

/*
 * Whether a key this attempt has not met yet is at its rate already, as
 * far as the counted claims tell (ratelimit.c): its jobs are then skipped
 * before they are locked, so that a claim that finds only such jobs takes
 * no row lock and sleeps until the next slot opens.  The job's kind is not
 * known here: a job takes a matching rule of its kind if there is one,
 * else the first matching rule for every kind, so the key is full only if
 * that rule and every matching rule of one kind have a rate that is full.
 */
static bool
rate_full(text *key)
{
	const KeyRule *any_kind = NULL;
	char	   *keystr;
	KeyEntry   *e;
	int			i;

	if (!awa_schema_has(AWA_SCHEMA_KEY_RATES))
		return false;
	if (nrules < 0)
	{
		if (keys == NULL)
			(void) key_table();
		read_rules_now();
	}
	if (!rated_rules)
		return false;
	for (i = 0; i < nrules; i++)
	{
		const KeyRule *r = &rules[i];

		if (r->kind != NULL || (any_kind != NULL && !rule_before(r, any_kind)))
			continue;
		if (DatumGetBool(DirectFunctionCall2Coll(textlike, DEFAULT_COLLATION_OID,
												 PointerGetDatum(key),
												 PointerGetDatum(r->pattern))))
			any_kind = r;
	}
	if (any_kind == NULL || !any_kind->rated)
		return false;
	keystr = text_to_cstring(key);
	if (!awa_rate_key_full(keystr, &any_kind->rate, claim_time()))
		return false;
	for (i = 0; i < nrules && kind_rules; i++)
	{
		const KeyRule *r = &rules[i];

		if (r->kind == NULL ||
			!DatumGetBool(DirectFunctionCall2Coll(textlike, DEFAULT_COLLATION_OID,
												  PointerGetDatum(key),
												  PointerGetDatum(r->pattern))))
			continue;
		if (!r->rated || !awa_rate_key_full(keystr, &r->rate, claim_time()))
			return false;
	}
	e = key_entry(key, true);
	e->blocked = true;
	return true;
}

/*
 * awa.concurrency_key_open(key text) RETURNS boolean
 *
 * False when this claim attempt already found the key at its limit (or
 * busy): the claim then skips the job without locking it.  No side effect.
 */
Datum
awa_concurrency_key_open(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(awa_keylimit_open(PG_GETARG_TEXT_PP(0)));
}

/*
 * awa.concurrency_key_open for C callers (the claim over several queues
 * reads its candidates itself): false when this claim attempt already
 * found the key at its limit, busy or over its rate.  No side effect.
 */
bool
awa_keylimit_open(text *key)
{
	KeyEntry   *e;

	if (!attempt_active)
		return true;
	e = key_entry(key, false);
	if (e != NULL)
		return !e->blocked;
	return !rate_full(key);
}

/*
 * The rule's name arguments of awa_set_key_limit and awa_set_key_rate into
 * values[0] (pattern, argument 0) and values[1] (kind, argument kind_arg;
 * NULL: every kind).  22004 for a NULL pattern, 22023 for a pattern or kind
 * not 1 to 200 characters or a pattern ending with the LIKE escape
 * character (an odd number of trailing backslashes).
 */
static void
key_rule_args(FunctionCallInfo fcinfo, int kind_arg, Datum *values, char *nulls)
{
	text	   *pattern;
	const char *p;
	int			len;
	int			trailing = 0;

	awa_check_not_null(fcinfo, 0, "pattern");
	pattern = PG_GETARG_TEXT_PP(0);
	awa_check_name(pattern, "pattern");
	/* LIKE refuses a pattern ending with its escape character at every match (like_match.c) */
	p = VARDATA_ANY(pattern);
	len = VARSIZE_ANY_EXHDR(pattern);
	while (trailing < len && p[len - 1 - trailing] == '\\')
		trailing++;
	if (trailing % 2 == 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pattern must not end with the LIKE escape character (\\)"),
				 errhint("Write \\\\ for a backslash at the end of a key.")));
	values[0] = PointerGetDatum(pattern);
	if (PG_ARGISNULL(kind_arg))
		nulls[1] = 'n';
	else
	{
		awa_check_name(PG_GETARG_TEXT_PP(kind_arg), "kind");
		values[1] = PointerGetDatum(PG_GETARG_TEXT_PP(kind_arg));
	}
}

/*
 * Run a rule's write (RETURNING the awa.key_limits row) and return that row,
 * or NULL when it touched none.  A raised or removed limit or rate may let
 * waiting claimers take jobs: they are woken at commit.
 */
static Datum
key_rule_write(FunctionCallInfo fcinfo, AwaStmt *stmt, Datum *values, const char *nulls)
{
	MemoryContext callercxt = CurrentMemoryContext;
	Datum		result = (Datum) 0;
	bool		found;

	SPI_connect();
	awa_stmt_run(stmt, values, nulls, 0);
	found = SPI_processed == 1;
	if (found)
		result = awa_row_datum(fcinfo, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							   callercxt);
	awa_running_freed();
	SPI_finish();
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * awa_set_key_limit(pattern text, max_running integer, kind text DEFAULT
 *					 NULL, ordered boolean DEFAULT false)
 *		RETURNS awa.key_limits
 *
 * Set the rule for the concurrency keys matching pattern (LIKE: % any
 * characters, _ one, \ escapes), for jobs of kind (NULL: every kind): at
 * most max_running (1..AWA_MAX_KEY_LIMIT) jobs with such a key run at once,
 * across every worker; ordered: one at a time in insertion order
 * (max_running must then be 1).  max_running NULL removes the rule (ordered
 * must then be false) and returns the removed row, or NULL if there was
 * none.  From the commit on, claims follow the new rule; jobs already
 * running above a lowered limit finish.  Errors (changing nothing):
 * 22004 pattern or ordered NULL; 22023 pattern or kind not 1 to 200
 * characters, max_running out of range, ordered with max_running other
 * than 1; 25006 in a read-only transaction.
 */
Datum
awa_set_key_limit(PG_FUNCTION_ARGS)
{
	static AwaStmt upsert = AWA_STMT("awa_set_key_limit: upsert", SPI_OK_INSERT_RETURNING,
		"INSERT INTO awa.key_limits AS l (pattern, kind, max_running, ordered)"
		" VALUES ($1, $2, $3, $4)"
		" ON CONFLICT (pattern, kind) DO UPDATE SET max_running = $3, ordered = $4"
		" RETURNING *",
		4, TEXTOID, TEXTOID, INT4OID, BOOLOID);
	static AwaStmt remove = AWA_STMT("awa_set_key_limit: delete", SPI_OK_DELETE_RETURNING,
		"DELETE FROM awa.key_limits WHERE pattern = $1 AND kind IS NOT DISTINCT FROM $2"
		" RETURNING *",
		2, TEXTOID, TEXTOID);
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		ordered;

	awa_check_writable("awa_set_key_limit");
	awa_require_schema(AWA_SCHEMA_KEYS, "awa_set_key_limit");
	key_rule_args(fcinfo, 2, values, nulls);
	awa_check_not_null(fcinfo, 3, "ordered");
	ordered = PG_GETARG_BOOL(3);
	if (!PG_ARGISNULL(1))
	{
		int32		limit = PG_GETARG_INT32(1);

		if (limit < 1 || limit > AWA_MAX_KEY_LIMIT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_running must be between 1 and %d, got %d",
							AWA_MAX_KEY_LIMIT, limit),
					 errhint("Pass NULL to remove the rule; a key no rule matches runs one job at a time.")));
		if (ordered && limit != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_running must be 1 for an ordered key, got %d", limit),
					 errdetail("An ordered key runs its jobs one at a time, in insertion order.")));
		values[2] = Int32GetDatum(limit);
	}
	else if (ordered)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ordered must be false when max_running is NULL"),
				 errhint("max_running NULL removes the rule.")));
	values[3] = BoolGetDatum(ordered);

	return key_rule_write(fcinfo, PG_ARGISNULL(1) ? &remove : &upsert, values, nulls);
}

/*
 * awa_set_key_rate(pattern text, max_claims integer, per interval, kind
 *					text DEFAULT NULL)
 *		RETURNS awa.key_limits
 *
 * Give the rule of the concurrency keys matching pattern (LIKE, as
 * awa_set_key_limit), for jobs of kind (NULL: every kind), a rate: from the
 * commit on, awa_claim hands out at most max_claims (1..AWA_RATE_MAX_CLAIMS)
 * jobs of each such key in any interval of length per (1 ms to
 * AWA_RATE_MAX_PERIOD_DAYS days, no months), across every worker and queue
 * (counted per key, ratelimit.c).  Without a rule for (pattern, kind) one is
 * made with max_running 1 (what a key without a rule has).  max_claims NULL
 * removes the rate (per is then ignored) and keeps the rule; it returns
 * NULL when there is no rule.  Errors (changing nothing): 22004 pattern
 * NULL; 22023 pattern or kind not 1 to 200 characters, max_claims out of
 * range, per NULL with max_claims, per out of range; 25006 in a read-only
 * transaction; 55000 without awa preloaded.
 */
Datum
awa_set_key_rate(PG_FUNCTION_ARGS)
{
	static AwaStmt upsert = AWA_STMT("awa_set_key_rate: upsert", SPI_OK_INSERT_RETURNING,
		"INSERT INTO awa.key_limits AS l (pattern, kind, max_running, rate_max_claims,"
		" rate_period, rate_set_at)"
		" VALUES ($1, $2, 1, $3, $4, clock_timestamp())"
		" ON CONFLICT (pattern, kind) DO UPDATE SET rate_max_claims = $3, rate_period = $4,"
		" rate_set_at = CASE WHEN l.rate_max_claims IS NULL THEN clock_timestamp()"
		"   ELSE l.rate_set_at END"
		" RETURNING *",
		4, TEXTOID, TEXTOID, INT4OID, INTERVALOID);
	static AwaStmt unrate = AWA_STMT("awa_set_key_rate: remove", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.key_limits SET rate_max_claims = NULL, rate_period = NULL,"
		" rate_set_at = NULL WHERE pattern = $1 AND kind IS NOT DISTINCT FROM $2"
		" RETURNING *",
		2, TEXTOID, TEXTOID);
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	AwaRate		rate;
	bool		rated;

	awa_check_writable("awa_set_key_rate");
	awa_require_schema(AWA_SCHEMA_KEY_RATES, "awa_set_key_rate");
	key_rule_args(fcinfo, 3, values, nulls);
	rated = awa_rate_args(fcinfo, 1, 2, &rate);
	if (rated)
	{
		values[2] = Int32GetDatum(rate.max_claims);
		values[3] = IntervalPGetDatum(PG_GETARG_INTERVAL_P(2));
	}

	return key_rule_write(fcinfo, rated ? &upsert : &unrate, values, nulls);
}
