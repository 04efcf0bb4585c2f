/*-------------------------------------------------------------------------
 *
 * ring_adopt.c
 *		awa.ring_adopt_jobs(): move every job of the table awa.jobs into the
 *		ring's relations (docs/storage.md, section 8 and "Step 5: moving a
 *		database's jobs into the ring").  Called by src/sql/engine.sql, the
 *		text both the install script and the upgrade script from 0.2.0 end
 *		with, while the superuser setting awa.install_engine is 'ring', just
 *		before awa.jobs becomes the ring's view: on an upgrade it moves the
 *		jobs, on a fresh install it finds none.
 *
 * Each job becomes the rows the ring writes for a job in its state, so that
 * awa.ring_jobs shows the row awa.jobs showed (L is the job's run_lease, A
 * its attempt; every row in the open slot):
 *	available		a ready row (L, A);
 *	scheduled		never claimed (L = 0): a row of awa.scheduled; snoozed
 *					(L > 0): ready row (L - 1, A), receipt L, done row L
 *					'scheduled', scheduled row (L, A);
 *	retryable		ready row (L - 1, A - 1), receipt L, done row L
 *					'retryable' (its last error), scheduled row (L, A,
 *					'retryable') at its run_at -- also when that is due:
 *					it stays retryable until a claim or the maintenance
 *					promotes it, as on the table;
 *	running			ready row (L - 1, A - 1), receipt L (attempted_at,
 *					deadline_at, lease, claimed_by), a beat L (heartbeat_at,
 *					deadline_at, progress); an attempt claimed before 0.3.0
 *					has no lease on the table: its receipt gets the one it
 *					was claimed with, deadline_at - attempted_at, as the
 *					table's first heartbeat takes it (worker.c), 0 when
 *					deadline_at is gone;
 *	waiting_external ready row (L - 1, A - 1), receipt L, done row L
 *					'waiting_external' (a parked attempt), its callback as
 *					a 'wait' row of awa.callbacks (heartbeat_at, deadline_at);
 *	completed, failed, cancelled: an element of a batch of awa.ring_history,
 *					the row itself (every column kept as it is), batches of
 *					up to 100 by id and retention class, as a reclaim
 *					writes them.
 * A live job's past is rows without a ready row, as the ring keeps a
 * retried job's (ring_revive.c): one done row per element of errors (state
 * retryable, run_lease the element's attempt -- one above the previous
 * element's when it is not above it --, finalized_at its time, the error); the receipt (and a
 * beat for its progress) of its last attempt at L with a done row at L
 * (its error, else a 'scheduled' row that no reader shows) for an
 * available job that ran before.  Its callback and callback payload: rows of
 * awa.callbacks.  Unique keys of jobs in their holding states go into
 * awa.unique_keys, dependencies and groups into the ring's side tables,
 * keyed jobs into awa.ring_key_running / awa.ring_key_live.
 *
 * One transaction, set-based: one statement per kind of row (no loop over
 * jobs; not the hot path: plain SPI statements the planner plans freely, a
 * scan of the table being what a move needs), under an ACCESS EXCLUSIVE lock of awa.jobs, with the ring's triggers
 * off (session_replication_role = replica for the move, restored after):
 * every row they would derive -- counter deltas, unique keys, key rows,
 * releases of dependents -- is written here from the job's own state.  The
 * counters are rebuilt by one fold from a full count (as the upgrade's
 * first fold), every older fold and delta dropped.  Floors of the ring's
 * lanes are lowered to each queue's oldest waiting job.  The table and its
 * side tables are then emptied (TRUNCATE); the identity sequence keeps its
 * value, so new ids continue above every moved one.
 *
 * A job the ring cannot hold as it is (e.g. a running job without
 * attempted_at, errors whose attempts overlap its current attempt): 55000
 * naming the first such job and why, how many there are, and nothing is
 * moved (the caller's transaction -- the upgrade -- is rolled back).
 * Superuser only (42501); 55000 unless awa.install_engine is 'ring' and
 * either an extension script is running (CREATE EXTENSION, ALTER EXTENSION
 * UPDATE) or the setting was set to 'ring' (not its default): it is a step
 * of engine.sql's conversion, and called alone the jobs would leave the
 * table while awa.jobs is still the table.  55000 also when awa.jobs is not a table
 * (the database is on the ring already), the ring holds jobs already, or
 * has no open slot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"

#include "awa.h"
#include "floor.h"
#include "ring.h"

/* Whether awa.install_engine was set (a SET, PGOPTIONS, a configuration file), not at its default. */
static bool
adopt_engine_set(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
		if (strcmp(vars[i]->name, "awa.install_engine") == 0)
			return vars[i]->source > PGC_S_DEFAULT;
	return false;
}

PG_FUNCTION_INFO_V1(awa_ring_adopt_jobs);

#define ADOPT_LIVE	"('scheduled', 'available', 'running', 'retryable', 'waiting_external')"

/*
 * The errors of live jobs, one row each: e(id, state, l, ord, error, at,
 * lease, last).  lease: the element's attempt, raised to one above the
 * previous element's lease when it would not be (revive's rule); a
 * retryable job's last error is the end of its attempt L.  An element
 * written by hand is read as far as it goes: an attempt that is not a
 * number counts as none, an at that is not a timestamp as the job's
 * attempted_at (else created_at).
 */
#define ADOPT_ERRORS \
	" x AS (SELECT j.id, j.state, j.run_lease AS l, u.ord," \
	"  CASE WHEN jsonb_typeof(u.err -> 'attempt') = 'number' AND abs((u.err ->> 'attempt')::numeric) < 1e9" \
	"   THEN floor((u.err ->> 'attempt')::numeric)::bigint END AS attempt," \
	"  " AWA_RING_ERROR_OF_ENTRY_SQL("u.err") " AS error," \
	"  coalesce(CASE WHEN u.err ->> 'at' ~ '^\\d{4}-\\d\\d-\\d\\d[ T]\\d\\d:\\d\\d:\\d\\d'" \
	"   THEN (u.err ->> 'at')::timestamptz END, j.attempted_at, j.created_at) AS at," \
	"  cardinality(j.errors) AS n" \
	"  FROM awa.jobs j CROSS JOIN LATERAL unnest(j.errors) WITH ORDINALITY u(err, ord)" \
	"  WHERE j.state IN " ADOPT_LIVE ")," \
	" e AS (SELECT x.id, x.state, x.l, x.ord, x.error, x.at, x.attempt," \
	"  CASE WHEN x.state = 'retryable' AND x.ord = x.n THEN x.l" \
	"  ELSE x.ord + coalesce(max(x.attempt - x.ord) OVER (PARTITION BY x.id ORDER BY x.ord), 0) END AS lease," \
	"  x.state = 'retryable' AND x.ord = x.n AS last FROM x)"

/* Jobs the ring cannot hold as they are: (id, why). */
static const char bad_sql[] =
	"WITH" ADOPT_ERRORS ","
	" b AS ("
	"  SELECT j.id, CASE"
	"   WHEN j.state IN ('running', 'retryable', 'waiting_external') AND j.run_lease < 1"
	"    THEN 'a ' || j.state || ' job with run_lease ' || j.run_lease || ' (a claim gives 1 or more)'"
	"   WHEN j.state IN ('running', 'retryable', 'waiting_external') AND j.attempted_at IS NULL"
	"    THEN 'a ' || j.state || ' job without attempted_at'"
	"   WHEN j.state = 'scheduled' AND j.run_lease < 0 THEN 'a negative run_lease'"
	"   WHEN j.state IN ('available', 'scheduled', 'retryable') AND j.run_lease = 9223372036854775807"
	"    THEN 'an unfinished job at run_lease''s maximum (no claim can take it)'"
	"   WHEN j.state IN ('available', 'scheduled', 'retryable') AND j.attempt >= j.max_attempts"
	"    THEN 'an unfinished job with no attempts left (attempt ' || j.attempt || ' of ' || j.max_attempts || ')'"
	"   WHEN j.state = 'scheduled' AND j.run_lease > 0 AND j.attempted_at IS NULL"
	"    THEN 'a snoozed job (run_lease > 0) without attempted_at'"
	"   WHEN j.state = 'scheduled' AND j.run_lease = 0 AND (cardinality(j.errors) > 0"
	"     OR j.attempted_at IS NOT NULL OR j.progress IS NOT NULL OR j.callback_key IS NOT NULL"
	"     OR j.callback_payload IS NOT NULL)"
	"    THEN 'a scheduled job never claimed (run_lease 0) with errors, attempted_at, progress or a callback'"
	"   WHEN j.state = 'running' AND j.deadline_at IS NULL THEN 'a running job without deadline_at'"
	"   WHEN j.state = 'available' AND j.attempted_at IS NULL AND (j.progress IS NOT NULL"
	"     OR j.callback_key IS NOT NULL OR j.callback_payload IS NOT NULL)"
	"    THEN 'an available job with progress or a callback but no attempted_at'"
	"   END AS why"
	"  FROM awa.jobs j WHERE j.state IN " ADOPT_LIVE
	"  UNION ALL"
	"  SELECT e.id, 'error ' || e.ord || ' (attempt ' || e.lease || ') is not before its current attempt (run_lease '"
	"   || e.l || ')'"
	"  FROM e WHERE NOT e.last AND (e.lease > e.l OR (e.lease = e.l AND e.state <> 'available')))"
	" SELECT count(DISTINCT b.id), (array_agg(b.id ORDER BY b.id))[1], (array_agg(b.why ORDER BY b.id))[1]"
	" FROM b WHERE b.why IS NOT NULL";

/* Counters: one fold of a full count of awa.jobs (the upgrade's first fold), numbered $1. */
static const char fold_sql[] =
	"WITH s AS ("
	" SELECT pg_catalog.pg_current_snapshot() AS cur, pg_catalog.pg_current_xact_id() AS me,"
	"  pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM now() - interval '65 minutes') / 60) * 60) AS since"
	"), f AS ("
	" INSERT INTO awa.counter_folds (fold, snapshot, completed_from)"
	" SELECT $1, CASE WHEN s.me >= pg_catalog.pg_snapshot_xmax(s.cur) THEN s.cur"
	"  ELSE (least(pg_catalog.pg_snapshot_xmin(s.cur), s.me)::text || ':'"
	"   || pg_catalog.pg_snapshot_xmax(s.cur)::text || ':'"
	"   || (SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x)"
	"    FROM (SELECT pg_catalog.pg_snapshot_xip(s.cur) UNION SELECT s.me) AS t(x)))::pg_snapshot END,"
	"  s.since"
	" FROM s RETURNING fold, completed_from"
	"), counts AS ("
	" INSERT INTO awa.counter_fold_counts (fold, queue, scheduled, available, running, retryable, failed,"
	"  cancelled, waiting_external)"
	" SELECT f.fold, j.queue,"
	"  count(*) FILTER (WHERE j.state = 'scheduled'), count(*) FILTER (WHERE j.state = 'available'),"
	"  count(*) FILTER (WHERE j.state = 'running'), count(*) FILTER (WHERE j.state = 'retryable'),"
	"  count(*) FILTER (WHERE j.state = 'failed'), count(*) FILTER (WHERE j.state = 'cancelled'),"
	"  count(*) FILTER (WHERE j.state = 'waiting_external')"
	" FROM awa.jobs j, f WHERE j.state <> 'completed' GROUP BY f.fold, j.queue"
	"), done AS ("
	" SELECT j.queue, pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM j.finalized_at))) AS second,"
	"  count(*) AS n"
	" FROM awa.jobs j, f WHERE j.state = 'completed' AND j.finalized_at >= f.completed_from GROUP BY 1, 2"
	")"
	" INSERT INTO awa.counter_completed (seconds, bucket, queue, completed)"
	" SELECT 1, second, queue, n FROM done"
	" UNION ALL"
	" SELECT 60, pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM second) / 60) * 60), queue, sum(n)"
	" FROM done GROUP BY 2, 3";

/* The ring's rows of every job; %d is the open slot. */
static const char *const move_sql[] = {
	/* ready rows */
	"INSERT INTO awa.ready (slot, id, run_lease, attempt, run_at, " RING_JOB_COLS ")"
	" SELECT %d, j.id,"
	"  CASE WHEN j.state = 'available' THEN j.run_lease ELSE j.run_lease - 1 END,"
	"  CASE WHEN j.state IN ('available', 'scheduled') THEN j.attempt ELSE j.attempt - 1 END,"
	"  j.run_at, " RING_JOB_COLS_OF("j.")
	" FROM awa.jobs j"
	" WHERE j.state IN ('available', 'running', 'retryable', 'waiting_external')"
	"  OR (j.state = 'scheduled' AND j.run_lease > 0)",
	/* jobs due later: scheduled (never claimed or snoozed) and retryable */
	"INSERT INTO awa.scheduled (id, run_lease, attempt, state, run_at, " RING_JOB_COLS ")"
	" SELECT j.id, j.run_lease, j.attempt, j.state, j.run_at, " RING_JOB_COLS_OF("j.")
	" FROM awa.jobs j WHERE j.state IN ('scheduled', 'retryable') AND %d IS NOT NULL",
	/* the receipt of the current (or, available, the last) attempt */
	"INSERT INTO awa.claims (slot, job_id, run_lease, claimed_at, deadline_at, lease, claimed_by)"
	" SELECT %d, j.id, j.run_lease, j.attempted_at,"
	"  CASE WHEN j.state = 'running' THEN j.deadline_at ELSE coalesce(j.deadline_at, j.attempted_at) END,"
	"  coalesce(j.lease, j.deadline_at - j.attempted_at, interval '0'), j.claimed_by"
	" FROM awa.jobs j WHERE j.state IN " ADOPT_LIVE " AND j.attempted_at IS NOT NULL"
	"  AND (j.state <> 'scheduled' OR j.run_lease > 0)",
	/* ends: one per error, and the end of attempt L */
	"WITH" ADOPT_ERRORS
	" INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at, error, attempt)"
	" SELECT %d, e.id, e.lease, 'retryable', e.at, e.error, e.attempt FROM e"
	" UNION ALL"
	" SELECT %d, j.id, j.run_lease,"
	"  CASE WHEN j.state IN ('retryable', 'waiting_external') THEN j.state ELSE 'scheduled' END,"
	"  coalesce(j.heartbeat_at, j.attempted_at), NULL, NULL"
	" FROM awa.jobs j"
	" WHERE (j.state IN ('retryable', 'waiting_external') OR (j.state = 'scheduled' AND j.run_lease > 0)"
	"   OR (j.state = 'available' AND j.attempted_at IS NOT NULL))"
	"  AND NOT EXISTS (SELECT 1 FROM e WHERE e.id = j.id AND e.lease = j.run_lease)",
	/* beats: a running attempt's heartbeat and progress; an earlier attempt's progress */
	"INSERT INTO awa.beats (job_id, run_lease, slot, at, deadline_at, progress)"
	" SELECT j.id, j.run_lease, %d, coalesce(j.heartbeat_at, j.attempted_at),"
	"  CASE WHEN j.state = 'running' THEN j.deadline_at ELSE coalesce(j.heartbeat_at, j.attempted_at) END,"
	"  j.progress"
	" FROM awa.jobs j WHERE j.state = 'running'"
	"  OR (j.state IN " ADOPT_LIVE " AND j.progress IS NOT NULL AND j.attempted_at IS NOT NULL)",
	/* callbacks: the newest payload, then the current callback (the job's newest row) */
	"INSERT INTO awa.callbacks (slot, job_id, run_lease, written_at, at, kind, callback_key, timeout,"
	"  deadline_at, payload)"
	" SELECT %d, j.id, coalesce(j.callback_lease, j.run_lease), clock_timestamp(),"
	"  coalesce(j.heartbeat_at, j.attempted_at), 'payload', coalesce(j.callback_key, '\\x'::bytea),"
	"  coalesce(j.callback_timeout, interval '0'), NULL, j.callback_payload"
	" FROM awa.jobs j WHERE j.state IN " ADOPT_LIVE " AND j.callback_payload IS NOT NULL",
	"INSERT INTO awa.callbacks (slot, job_id, run_lease, written_at, at, kind, callback_key, timeout,"
	"  deadline_at, payload)"
	" SELECT %d, j.id, coalesce(j.callback_lease, j.run_lease), clock_timestamp(),"
	"  coalesce(j.heartbeat_at, j.attempted_at),"
	"  CASE WHEN j.state = 'waiting_external' THEN 'wait' ELSE 'register' END, j.callback_key,"
	"  coalesce(j.callback_timeout, interval '0'),"
	"  CASE WHEN j.state = 'waiting_external' THEN j.deadline_at END, NULL"
	" FROM awa.jobs j WHERE j.state IN " ADOPT_LIVE " AND j.callback_key IS NOT NULL",
	/* finished jobs: the history, as a reclaim writes it */
	"INSERT INTO awa.ring_history (id_lo, id_hi, failed, finalized_hi, jobs)"
	" SELECT min(b.id), max(b.id), b.f, coalesce(max(b.finalized_at), now()), array_agg(b.job ORDER BY b.id)"
	" FROM (SELECT j.id, j.finalized_at, j.state <> 'completed' AS f,"
	"  (row_number() OVER (PARTITION BY j.state <> 'completed' ORDER BY j.id) - 1) / 100 AS n,"
	"  ROW(j.*)::awa.ring_history_job AS job"
	"  FROM awa.jobs j WHERE j.state IN ('completed', 'failed', 'cancelled') AND %d IS NOT NULL) b"
	" GROUP BY b.f, b.n",
	/* unique keys held */
	"INSERT INTO awa.unique_keys (unique_key, job_id, unique_states)"
	" SELECT j.unique_key, j.id, j.unique_states FROM awa.jobs j"
	" WHERE j.unique_key IS NOT NULL AND j.unique_states IS NOT NULL"
	"  AND awa.unique_state_held(j.unique_states, j.state) AND %d IS NOT NULL",
	/* dependencies and groups */
	"INSERT INTO awa.ring_dependencies (job_id, parent_id, satisfied)"
	" SELECT d.job_id, d.parent_id, d.satisfied FROM awa.job_dependencies d WHERE %d IS NOT NULL",
	"INSERT INTO awa.ring_dependents (job_id, waiting_for, on_parent_failure, run_at)"
	" SELECT d.job_id, d.waiting_for, d.on_parent_failure, d.run_at FROM awa.dependent_jobs d WHERE %d IS NOT NULL",
	"INSERT INTO awa.ring_group_jobs (job_id, group_id)"
	" SELECT j.id, j.group_id FROM awa.jobs j WHERE j.group_id IS NOT NULL AND %d IS NOT NULL",
	"INSERT INTO awa.ring_group_callbacks (group_id, kind, args, queue, priority, max_attempts, metadata,"
	"  registered_at, finished_at, callback_job_id)"
	" SELECT g.group_id, g.kind, g.args, g.queue, g.priority, g.max_attempts, g.metadata, g.registered_at,"
	"  g.finished_at, g.callback_job_id FROM awa.group_callbacks g WHERE %d IS NOT NULL",
	/* per-key state */
	"INSERT INTO awa.ring_key_running (job_id, run_lease, concurrency_key)"
	" SELECT j.id, j.run_lease, j.concurrency_key FROM awa.jobs j"
	" WHERE j.state = 'running' AND j.concurrency_key IS NOT NULL AND %d IS NOT NULL",
	"INSERT INTO awa.ring_key_live (concurrency_key, job_id)"
	" SELECT j.concurrency_key, j.id FROM awa.jobs j"
	" WHERE j.state IN " ADOPT_LIVE " AND j.concurrency_key IS NOT NULL AND %d IS NOT NULL",
};

/* Run one statement; any result but expect is an ERROR naming what. */
static uint64
adopt_exec(const char *sql, int expect, const char *what)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expect)
		elog(ERROR, "awa.ring_adopt_jobs: %s: %s", what, SPI_result_code_string(rc));
	return SPI_processed;
}

/* Column i (1-based) of the first row of the last result, as int64 (0 if NULL). */
static int64
adopt_int8(int i)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

Datum
awa_ring_adopt_jobs(PG_FUNCTION_ARGS)
{
	Oid			nsp;
	Oid			jobs;
	int			slot;
	int64		n;
	int64		fold;
	int			nestlevel;
	int			i;
	bool		isnull;
	Oid			fold_type[1] = {INT8OID};
	Datum		fold_value[1];

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may move the jobs of awa.jobs into the ring")));
	/*
	 * a step of engine.sql's conversion, not a function of its own: the jobs would leave the table's readers.
	 * 'ring' is the setting's default, so outside an extension script it must have been set on purpose.
	 */
	{
		const char *engine = GetConfigOption("awa.install_engine", true, false);

		if (engine == NULL || strcmp(engine, "ring") != 0 ||
			(!creating_extension && !adopt_engine_set()))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("awa.ring_adopt_jobs() runs only inside CREATE or ALTER EXTENSION awa, or while awa.install_engine is set to 'ring'"),
					 errhint("It is a step of ALTER EXTENSION awa UPDATE onto the ring engine (src/sql/engine.sql).")));
	}
	nsp = get_namespace_oid("awa", false);
	jobs = get_relname_relid("jobs", nsp);
	if (!OidIsValid(jobs) || get_rel_relkind(jobs) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.jobs is not a table: this database keeps its jobs in the ring already")));

	SPI_connect();
	adopt_exec("LOCK TABLE awa.jobs IN ACCESS EXCLUSIVE MODE", SPI_OK_UTILITY, "locking awa.jobs");
	adopt_exec("SELECT (SELECT s.slot FROM awa.ring_slots s WHERE s.state = 'open'),"
			   " EXISTS (SELECT 1 FROM awa.ready) OR EXISTS (SELECT 1 FROM awa.scheduled)"
			   " OR EXISTS (SELECT 1 FROM awa.done) OR EXISTS (SELECT 1 FROM awa.ring_history)",
			   SPI_OK_SELECT, "the ring's state");
	slot = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the ring has no open slot")));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the ring holds jobs already: the jobs of awa.jobs are moved into an empty ring only")));

	/* nothing to move (a fresh install): the counters the script made stay as they are */
	adopt_exec("SELECT EXISTS (SELECT 1 FROM awa.jobs) OR EXISTS (SELECT 1 FROM awa.job_dependencies)"
			   " OR EXISTS (SELECT 1 FROM awa.dependent_jobs) OR EXISTS (SELECT 1 FROM awa.group_callbacks)",
			   SPI_OK_SELECT, "anything to move");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		SPI_finish();
		PG_RETURN_INT64(0);
	}

	/* every job must have a place first: nothing is moved otherwise */
	adopt_exec(bad_sql, SPI_OK_SELECT, "checking the jobs");
	if (adopt_int8(1) > 0)
	{
		char	   *why = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot be moved into the ring: %s", (long long) adopt_int8(2), why),
				 errdetail("%lld job(s) cannot be moved; nothing was moved.", (long long) adopt_int8(1)),
				 errhint("Change or delete those jobs through the awa_* functions and try again, or keep the table engine.")));
	}

	/* the counters: one fold of a full count replaces every earlier fold and delta */
	adopt_exec("SELECT coalesce(max(fold), 0) + 1 FROM awa.counter_folds", SPI_OK_SELECT, "the next fold");
	fold = adopt_int8(1);
	adopt_exec("DELETE FROM awa.counter_deltas", SPI_OK_DELETE, "dropping the counter deltas");
	adopt_exec("DELETE FROM awa.counter_fold_counts", SPI_OK_DELETE, "dropping the folded counts");
	adopt_exec("DELETE FROM awa.counter_completed", SPI_OK_DELETE, "dropping the completed counts");
	adopt_exec("DELETE FROM awa.counter_folds", SPI_OK_DELETE, "dropping the folds");
	fold_value[0] = Int64GetDatum(fold);
	if (SPI_execute_with_args(fold_sql, 1, fold_type, fold_value, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "awa.ring_adopt_jobs: the counters' fold was not written");

	/* the waiting jobs' queues: their ring lanes' floors start at or below their oldest */
	adopt_exec("SELECT j.queue, min(j.run_at) FROM awa.jobs j"
			   " WHERE j.state IN ('scheduled', 'available', 'retryable') GROUP BY j.queue",
			   SPI_OK_SELECT, "the waiting jobs' queues");
	for (i = 0; i < (int) SPI_processed; i++)
	{
		text	   *queue = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		TimestampTz at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2,
														   &isnull));

		awa_floor_note(awa_ring_lane(queue), at);
	}

	/* the move, with the ring's triggers off: every row they derive is written here */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("session_replication_role", "replica", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	for (i = 0; i < lengthof(move_sql); i++)
		adopt_exec(psprintf(move_sql[i], slot, slot), SPI_OK_INSERT, "moving the jobs");
	adopt_exec("SELECT count(*) FROM awa.jobs", SPI_OK_SELECT, "counting the jobs");
	n = adopt_int8(1);
	adopt_exec("TRUNCATE awa.jobs, awa.job_dependencies, awa.dependent_jobs, awa.group_callbacks",
			   SPI_OK_UTILITY, "emptying awa.jobs");
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	PG_RETURN_INT64(n);
}
