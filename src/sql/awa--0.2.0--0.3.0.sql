/* src/sql/awa--0.2.0--0.3.0.sql — ALTER EXTENSION awa UPDATE TO '0.3.0'
 *
 * The build writes awa--0.2.0--0.3.0.sql from this file followed by
 * src/sql/privileges.sql, which gives the objects created here their
 * privileges.  The result must equal a fresh install (src/sql/awa.sql):
 * test/integration/upgrade.sh compares pg_dump --schema-only of both. */

\echo Use "ALTER EXTENSION awa UPDATE TO '0.3.0'" to load this file. \quit

-- Unique jobs hold their key in every live state --------------------------
-- 0.2.0 accepted any unique_states set, so awa's own transitions (claim,
-- promotion, snooze, rescue...) could move a job into a state where its key
-- collides with another job's, failing whole batches with 23505.  From 0.3.0
-- every set includes scheduled, available, running, retryable and
-- waiting_external (bits 11101001).  Existing jobs with a narrower set get
-- those states added.  Where that would make two jobs hold one key, the job
-- that holds it now (else the oldest) keeps it; the others keep everything
-- but the key (unique_key NULL) and say why in their errors.
WITH widened AS (
	SELECT id, state, unique_key,
		awa.unique_state_held(unique_states, state) AS holds_now,
		awa.unique_state_held(unique_states | B'11101001', state) AS holds_after
	FROM awa.jobs
	WHERE unique_key IS NOT NULL
), ranked AS (
	SELECT id, unique_key,
		first_value(id) OVER (PARTITION BY unique_key ORDER BY holds_now DESC, id) AS keeper
	FROM widened
	WHERE holds_after
)
UPDATE awa.jobs j
SET unique_key = NULL,
	errors = j.errors || jsonb_build_object('attempt', j.attempt, 'at', now(),
		'error', 'upgrade to awa 0.3.0: unique key released; job ' || r.keeper || ' holds it')
FROM ranked r
WHERE j.id = r.id AND r.id <> r.keeper
	AND (j.unique_states & B'11101001') <> B'11101001';

UPDATE awa.jobs SET unique_states = unique_states | B'11101001'
WHERE (unique_states & B'11101001') <> B'11101001';

ALTER TABLE awa.jobs ADD CONSTRAINT jobs_unique_states_live
	CHECK (unique_states IS NULL OR (unique_states & B'11101001') = B'11101001');
COMMENT ON CONSTRAINT jobs_unique_states_live ON awa.jobs
	IS 'a unique job holds its key in every live state (scheduled, available, running, retryable, waiting_external), so awa''s own transitions never collide';

-- Renewable leases and hard timeouts ------------------------------------------
-- lease: the lease a job was claimed with, renewed by each heartbeat;
-- timeout: an optional hard limit of one attempt.  Nullable columns without
-- a default: nothing is rewritten.  Jobs running during the update keep
-- their deadline_at; their first heartbeat renews it with the lease they
-- were claimed with (deadline_at - attempted_at).
ALTER TABLE awa.jobs ADD COLUMN lease interval;
ALTER TABLE awa.jobs ADD COLUMN timeout interval
	CONSTRAINT jobs_timeout_positive CHECK (timeout > interval '0');
COMMENT ON COLUMN awa.jobs.lease
	IS 'the lease of the current attempt, given to awa_claim: each heartbeat moves deadline_at to now + lease';
COMMENT ON COLUMN awa.jobs.timeout
	IS 'optional hard limit of one attempt: deadline_at never passes attempted_at + timeout, whatever the heartbeats say';

-- awa_insert gains the timeout option (a new argument: drop and create).
DROP FUNCTION awa_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean, interval, awa.job_state[]);
CREATE FUNCTION awa_insert(
	kind text,
	args jsonb DEFAULT '{}',
	queue text DEFAULT 'default',
	priority integer DEFAULT 2,
	max_attempts integer DEFAULT 25,
	run_at timestamptz DEFAULT NULL,
	tags text[] DEFAULT '{}',
	metadata jsonb DEFAULT '{}',
	unique_by_args boolean DEFAULT false,
	unique_by_queue boolean DEFAULT false,
	unique_period interval DEFAULT NULL,
	unique_states awa.job_state[] DEFAULT NULL,
	timeout interval DEFAULT NULL)
RETURNS awa.jobs
AS 'MODULE_PATHNAME', 'awa_insert'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean, interval, awa.job_state[], interval)
	IS 'enqueue one job; returns its row (available now, or scheduled when run_at is in the future); with unique_*, the existing job''s row if one holds the key; timeout: hard limit of each attempt';

-- Maintenance failures (maintain.c) ------------------------------------------
--
-- Each step of a maintenance round (promote, rescue, schedules, retention)
-- runs isolated: a step that fails, or a job row (or periodic job) that one
-- cannot process, is skipped and recorded here, and the rest of the round
-- goes on.  item is '' for the step as a whole, else the job id (or periodic
-- job name) that was skipped; skipped jobs are retried one by one at
-- retry_at (backoff doubling up to 5 minutes), and a row goes when its step
-- or item works again.  Written only when something fails or recovers;
-- awa_health_check() reports every row as a reason.
CREATE TABLE awa.maintenance_failures (
	step			text NOT NULL,
	item			text NOT NULL DEFAULT '',
	sqlstate		text NOT NULL,
	error			text NOT NULL,
	failures		integer NOT NULL DEFAULT 1,
	first_failed_at	timestamptz NOT NULL DEFAULT now(),
	last_failed_at	timestamptz NOT NULL DEFAULT now(),
	retry_at		timestamptz,
	PRIMARY KEY (step, item)
);
COMMENT ON TABLE awa.maintenance_failures
	IS 'maintenance steps, and the jobs or periodic jobs in them, that are failing; written by awa_maintain, read by awa_health_check';

-- Retention path: finished jobs by state and age (was: by age), so that
-- deleting old completed jobs never walks failed ones kept longer, nor the
-- reverse; it includes queue for awa_queue_stats, which counts the
-- completions of one second (an hour ago) per queue from it without visiting
-- the table.  Rebuilt here: the upgrade takes as long as building one index
-- on the finished jobs.
DROP INDEX awa.jobs_finalized_idx;
CREATE INDEX jobs_finalized_idx ON awa.jobs (state, finalized_at) INCLUDE (queue)
	WHERE state IN ('completed', 'failed', 'cancelled');

-- Maintenance rounds (dbstate.c) ------------------------------------------------
--
-- Without awa in shared_preload_libraries, awa_maintain() (run by pg_cron or
-- a script) records here when its last round finished, so that
-- awa_health_check() can tell a database maintained that way from one that
-- nobody maintains.  One row; with awa preloaded the record lives in shared
-- memory and this table is not written.
CREATE TABLE awa.maintenance_rounds (
	singleton		boolean PRIMARY KEY DEFAULT true
		CONSTRAINT maintenance_rounds_singleton CHECK (singleton),
	last_round_at	timestamptz NOT NULL
);
COMMENT ON TABLE awa.maintenance_rounds
	IS 'when awa_maintain() last finished a round here (written only when awa is not preloaded); read by awa_health_check';

-- awa_health_check reports who maintains this database (a new column:
-- drop and create).
DROP FUNCTION awa_health_check();
CREATE FUNCTION awa_health_check()
RETURNS TABLE (
	version						text,
	preloaded					boolean,
	worker_running				boolean,
	worker_pid					integer,
	worker_last_run				timestamptz,
	stale_heartbeats			bigint,
	oldest_available_seconds	double precision,
	paused_queues				text[],
	notification_queue_usage	double precision,
	healthy						boolean,
	reason						text,
	maintained_by				text)
AS 'MODULE_PATHNAME', 'awa_health_check'
LANGUAGE C VOLATILE PARALLEL SAFE ROWS 1;
COMMENT ON FUNCTION awa_health_check()
	IS 'one row for this database: version, who maintains it (background worker, awa_maintain() calls, primary on a standby, nobody) and its last round, stale heartbeats, oldest available job, paused queues, NOTIFY queue, failing maintenance steps; healthy and why not';

-- CALL awa_claim_wait(...): a blocking claim that commits each empty attempt
-- and sleeps holding no snapshot.  Not SECURITY DEFINER (a procedure that
-- commits may not be); each attempt runs through awa_claim(), which is.
CREATE PROCEDURE awa_claim_wait(
	queue text,
	worker text DEFAULT NULL,
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	wait interval DEFAULT '30 seconds',
	INOUT jobs awa.jobs[] DEFAULT NULL)
AS 'MODULE_PATHNAME', 'awa_claim_wait'
LANGUAGE C;
COMMENT ON PROCEDURE awa_claim_wait(text, text, integer, interval, interval, awa.jobs[])
	IS 'CALL outside a transaction block: awa_claim that blocks up to wait (an interval >= 0) for up to batch (1..1000) jobs, returned in jobs (NULL: none came), running with a new lease (an interval > 0); it commits each empty attempt and sleeps holding no snapshot, so a waiting worker does not hold back VACUUM; inside a transaction block it waits in the statement like awa_claim; errors as awa_claim: 22004 on a NULL argument, 22023 on a bad one, 0A000 for a wait in REPEATABLE READ or SERIALIZABLE, 25006 in a read-only transaction';

-- CALL awa_maintain_for(duration, every): rounds every second for pg_cron's
-- minute granularity.  Not SECURITY DEFINER (a procedure that commits may
-- not be); each round runs through awa_maintain(), which is.
CREATE PROCEDURE awa_maintain_for(duration interval DEFAULT '58 seconds', every interval DEFAULT '1 second')
AS 'MODULE_PATHNAME', 'awa_maintain_for'
LANGUAGE C;
COMMENT ON PROCEDURE awa_maintain_for(interval, interval)
	IS 'CALL outside a transaction block: a maintenance round (awa_maintain) every `every` (at least 10 ms) for `duration`, each committed; for schedulers with minute granularity such as pg_cron 1.4; 22023 on a bad interval, 2D000 inside a transaction block';

-- awa_forget_queue(queue): remove a queue's settings (pause, limit).
CREATE FUNCTION awa_forget_queue(queue text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_forget_queue'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_forget_queue(text)
	IS 'remove a queue''s settings (pause, concurrency limit), e.g. of a misspelt name; its jobs are untouched; false if it had none';

-- awa_complete and awa_complete_many store results (a new argument: drop and
-- create); the new columns are nullable without a default, so nothing is
-- rewritten.
ALTER TABLE awa.jobs ADD COLUMN result jsonb;
ALTER TABLE awa.jobs ADD COLUMN callback_key bytea;
ALTER TABLE awa.jobs ADD COLUMN callback_lease bigint;
ALTER TABLE awa.jobs ADD COLUMN callback_timeout interval;
ALTER TABLE awa.jobs ADD COLUMN callback_payload jsonb;
DROP FUNCTION awa_complete(bigint, bigint);
DROP FUNCTION awa_complete_many(bigint[], bigint[]);
CREATE FUNCTION awa_complete(job_id bigint, run_lease bigint, result jsonb DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_complete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_complete(bigint, bigint, jsonb)
	IS 'mark a job running under this lease completed, storing result (any jsonb, at most awa.max_args_bytes; NULL: none); false if the lease is stale; 22004 on a NULL job_id or run_lease, 54000 on a result too large';

CREATE FUNCTION awa_complete_many(ids bigint[], leases bigint[], results jsonb[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_complete_many'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_complete_many(bigint[], bigint[], jsonb[])
	IS 'complete a batch of (id, lease) pairs in one statement, results[i] (NULL or an array as long as ids; an element NULL: none) stored as job i''s result; returns how many were completed; 22004 on NULL ids or leases, 22023 on arrays of different lengths, 54000 on a result too large or more than 10000 jobs';

-- External completion and results (external.c; the state changes are job.c's) --
--
-- result: what a job produced, set when it completes (awa_complete's result,
-- or the payload of awa_complete_external).  A running job may park in
-- waiting_external (awa_register_callback, then awa_wait_external), which
-- frees its worker and its place under the queue's concurrency limit; whoever
-- knows its callback id then completes, fails or retries it
-- (awa_complete_external, awa_fail_external, awa_retry_external), or pushes
-- its timeout out (awa_heartbeat_callback).  The table keeps only the id's
-- SHA-256 (callback_key): reading awa.jobs (awa_get_job, dashboards, backups)
-- does not reveal the id, which is the capability to resolve the job.  While
-- parked, deadline_at is when the callback times out: maintenance then
-- retries the job with backoff, or fails it when it has no attempts left.  A
-- job put in waiting_external by hand (without a callback) is left alone.
COMMENT ON COLUMN awa.jobs.result
	IS 'what the job produced: awa_complete''s result, or the payload of awa_complete_external (NULL: none)';
COMMENT ON COLUMN awa.jobs.callback_key
	IS 'SHA-256 of the job''s callback id (awa_register_callback), whose knower may complete, fail or retry the job while it waits for it; the id itself is stored nowhere';
COMMENT ON COLUMN awa.jobs.callback_lease
	IS 'the run_lease under which the callback was registered: the callback acts only on that attempt';
COMMENT ON COLUMN awa.jobs.callback_timeout
	IS 'how long a parked job waits for its callback: deadline_at becomes now + this when it parks and at each awa_heartbeat_callback';
COMMENT ON COLUMN awa.jobs.callback_payload
	IS 'the payload of the callback that failed or retried the job (awa_fail_external, awa_retry_external), kept for the next attempt to read';

-- Callback lookups: one job per callback id (by its SHA-256).
CREATE UNIQUE INDEX jobs_callback_idx ON awa.jobs (callback_key)
	WHERE callback_key IS NOT NULL;
-- Callback timeouts: parked jobs by deadline.
CREATE INDEX jobs_external_idx ON awa.jobs (deadline_at)
	WHERE state = 'waiting_external';

CREATE FUNCTION awa_register_callback(job_id bigint, run_lease bigint, timeout interval)
RETURNS uuid
AS 'MODULE_PATHNAME', 'awa_register_callback'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_register_callback(bigint, bigint, interval)
	IS 'give a job running under this lease a new callback id (a random version 4 uuid, replacing any earlier one; awa keeps only its SHA-256) and the timeout of its wait (an interval > 0, at most 36500 days); NULL if the lease is stale; 22004 on a NULL argument, 22023 on a bad timeout';

CREATE FUNCTION awa_wait_external(job_id bigint, run_lease bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_wait_external'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_wait_external(bigint, bigint)
	IS 'park a job running under this lease in waiting_external until its callback comes or its callback timeout (from now) passes, freeing its worker; false if the lease is stale (also when its callback already resolved it); 22004 on a NULL argument, 55000 when no callback was registered under this lease';

CREATE FUNCTION awa_complete_external(callback_id uuid, payload jsonb DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_complete_external'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_complete_external(uuid, jsonb)
	IS 'complete the job waiting for this callback (parked, or still running under the lease it was registered with); payload (any jsonb, at most awa.max_args_bytes) becomes its result; false if no job waits for it; 22004 on a NULL callback_id, 54000 on a payload too large';

CREATE FUNCTION awa_fail_external(callback_id uuid, error text, payload jsonb DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_fail_external'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_fail_external(uuid, text, jsonb)
	IS 'fail the job waiting for this callback for good: error (cut to awa.max_error_bytes) goes to its errors, payload (at most awa.max_args_bytes) to callback_payload; false if no job waits for it; 22004 on a NULL callback_id or error, 54000 on a payload too large';

CREATE FUNCTION awa_retry_external(callback_id uuid, payload jsonb DEFAULT NULL, retry_in interval DEFAULT NULL)
RETURNS awa.job_state
AS 'MODULE_PATHNAME', 'awa_retry_external'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_retry_external(uuid, jsonb, interval)
	IS 'run the job waiting for this callback again: retryable at now() + retry_in (0 to 36500 days; NULL: the default backoff), or failed when it has no attempts left; payload (at most awa.max_args_bytes) goes to callback_payload; returns the new state, NULL if no job waits for it; 22004 on a NULL callback_id, 22023 on a bad retry_in, 54000 on a payload too large';

CREATE FUNCTION awa_heartbeat_callback(callback_id uuid, timeout interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_heartbeat_callback'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_heartbeat_callback(uuid, interval)
	IS 'the outside system is still at work: a parked job''s callback deadline becomes now() + timeout (an interval > 0, at most 36500 days; NULL: the timeout registered), which a still running job keeps for when it parks; false if no job waits for this callback; 22004 on a NULL callback_id, 22023 on a bad timeout';

-- Sharding (shard.c) -----------------------------------------------------------
--
-- Several databases running awa behind a router (docs/sharding.md): a job id's
-- bits above 2^48 name the shard that holds it (shard = id >> 48), so ids are
-- unique across shards and a call naming an id can be sent to its shard.
-- awa_shard_configure confines the id sequence to its shard's range; a
-- database never configured (or alone before) is shard 0.
CREATE FUNCTION awa_shard_configure(shard integer)
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_shard_configure'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_shard_configure(integer)
	IS 'make this database shard 0..32767 of a fleet: new job ids are shard * 2^48 and up, above every existing job and every id handed out in that range; returns the next id; 22004 NULL, 25006 read-only, 22003 out of range, 55000 if existing jobs have ids of another shard';

CREATE FUNCTION awa_shard()
RETURNS integer
AS 'MODULE_PATHNAME', 'awa_shard'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION awa_shard()
	IS 'the shard this database hands out job ids of (0 unless awa_shard_configure said otherwise)';

CREATE FUNCTION awa_shard_of(job_id bigint)
RETURNS integer
AS 'MODULE_PATHNAME', 'awa_shard_of'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION awa_shard_of(bigint)
	IS 'the shard that holds a job id (id >> 48); 22003 for a negative id';

-- Multi-queue claim ---------------------------------------------------------
-- awa_claim and awa_claim_wait over several queues: queues is a non-empty
-- text[] of queue names, or NULL for every queue.  The text forms above are
-- unchanged (awa_claim(NULL) still raises 22004: a string literal or NULL
-- resolves to them).

CREATE FUNCTION awa_claim(
	queues text[],
	worker text DEFAULT NULL,
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	wait interval DEFAULT '0')
RETURNS SETOF awa.jobs
AS 'MODULE_PATHNAME', 'awa_claim_queues'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10;
COMMENT ON FUNCTION awa_claim(text[], text, integer, interval, interval)
	IS 'claim up to batch due jobs of any of the queues (NULL: every queue), most urgent first across them as for one queue, each queue''s pause and concurrency limit holding; with wait, block until work arrives on any of them; 22023 on an empty array or a bad name, 22004 on a NULL element, otherwise errors as awa_claim(text)';

CREATE PROCEDURE awa_claim_wait(
	queues text[],
	worker text DEFAULT NULL,
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	wait interval DEFAULT '30 seconds',
	INOUT jobs awa.jobs[] DEFAULT NULL)
AS 'MODULE_PATHNAME', 'awa_claim_wait_queues'
LANGUAGE C;
COMMENT ON PROCEDURE awa_claim_wait(text[], text, integer, interval, interval, awa.jobs[])
	IS 'CALL outside a transaction block: awa_claim_wait over several queues (NULL: every queue), each attempt awa_claim(queues, wait => 0), woken by work on any of them; errors as awa_claim(text[])';
-- Counters (counters.c, stats.c) ---------------------------------------------
--
-- awa_queue_stats() reads exact counts per queue and state without counting
-- jobs.  Every statement that changes awa.jobs writes signed deltas, stamped
-- with its transaction's ID, into awa.counter_deltas (statement triggers on
-- awa.jobs, so plain SQL, COPY and TRUNCATE are counted too; awa_insert's
-- direct path writes its own).  Maintenance folds them: awa.counter_folds
-- records the snapshot of each fold, awa.counter_fold_counts the jobs per
-- queue and state at that snapshot, awa.counter_completed the completed jobs
-- per queue by second and by minute of their finalized_at (for
-- completed_last_hour).  A reader adds to the newest fold it sees the deltas
-- of the transactions that fold's snapshot did not see.
CREATE TABLE awa.counter_deltas (
	xid					xid8 NOT NULL,
	queue				text NOT NULL,
	scheduled			bigint NOT NULL DEFAULT 0,
	available			bigint NOT NULL DEFAULT 0,
	running				bigint NOT NULL DEFAULT 0,
	completed			bigint NOT NULL DEFAULT 0,
	completed_second	timestamptz,
	retryable			bigint NOT NULL DEFAULT 0,
	failed				bigint NOT NULL DEFAULT 0,
	cancelled			bigint NOT NULL DEFAULT 0,
	waiting_external	bigint NOT NULL DEFAULT 0
);
CREATE INDEX counter_deltas_xid_idx ON awa.counter_deltas (xid);
COMMENT ON TABLE awa.counter_deltas
	IS 'changes of the number of jobs per queue and state not yet folded, one row per statement and queue (completed: those finalized in completed_second), stamped with the writing transaction';

CREATE TABLE awa.counter_folds (
	fold			bigint PRIMARY KEY,
	snapshot		pg_snapshot NOT NULL,
	folded_at		timestamptz NOT NULL DEFAULT now(),
	completed_from	timestamptz NOT NULL
);
COMMENT ON TABLE awa.counter_folds
	IS 'each fold of awa.counter_deltas (numbered 1, 2, ...): the snapshot its counts are exact at; awa.counter_completed holds the seconds and minutes from completed_from on';

CREATE TABLE awa.counter_fold_counts (
	fold				bigint NOT NULL,
	queue				text NOT NULL,
	scheduled			bigint NOT NULL DEFAULT 0,
	available			bigint NOT NULL DEFAULT 0,
	running				bigint NOT NULL DEFAULT 0,
	retryable			bigint NOT NULL DEFAULT 0,
	failed				bigint NOT NULL DEFAULT 0,
	cancelled			bigint NOT NULL DEFAULT 0,
	waiting_external	bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (fold, queue)
);
COMMENT ON TABLE awa.counter_fold_counts
	IS 'the jobs per queue and state (completed: see awa.counter_completed) at the snapshot of a fold (awa.counter_folds)';

CREATE TABLE awa.counter_completed (
	seconds		integer NOT NULL CONSTRAINT counter_completed_seconds CHECK (seconds IN (1, 60)),
	bucket		timestamptz NOT NULL,
	queue		text NOT NULL,
	completed	bigint NOT NULL,
	PRIMARY KEY (seconds, bucket, queue)
);
COMMENT ON TABLE awa.counter_completed
	IS 'completed jobs per queue whose finalized_at falls in the second (seconds = 1) or minute (60) starting at bucket, as of the newest fold';

CREATE FUNCTION awa.jobs_count_changes()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_jobs_count_changes'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.jobs_count_changes()
	IS 'trigger: statements that insert, update, delete or truncate awa.jobs write their changes of the job counts to awa.counter_deltas';

CREATE TRIGGER jobs_counters_insert AFTER INSERT ON awa.jobs
	REFERENCING NEW TABLE AS new_jobs
	FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_count_changes();
CREATE TRIGGER jobs_counters_update AFTER UPDATE ON awa.jobs
	REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
	FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_count_changes();
CREATE TRIGGER jobs_counters_delete AFTER DELETE ON awa.jobs
	REFERENCING OLD TABLE AS old_jobs
	FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_count_changes();
CREATE TRIGGER jobs_counters_truncate AFTER TRUNCATE ON awa.jobs
	FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_count_changes();

-- The first fold: a full count of awa.jobs (completions from the minute 65
-- minutes ago on).  Its snapshot does not see this transaction (it is at or
-- above the snapshot's xmax, or added to its list of running transactions),
-- so that jobs this transaction changes after the count (CREATE EXTENSION or
-- ALTER EXTENSION UPDATE followed by more work in one transaction) are
-- counted from their deltas.
WITH s AS (
	SELECT pg_catalog.pg_current_snapshot() AS cur, pg_catalog.pg_current_xact_id() AS me,
		pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM now() - interval '65 minutes') / 60) * 60) AS since
), f AS (
	INSERT INTO awa.counter_folds (fold, snapshot, completed_from)
	SELECT 1, CASE WHEN s.me >= pg_catalog.pg_snapshot_xmax(s.cur) THEN s.cur
		ELSE (least(pg_catalog.pg_snapshot_xmin(s.cur), s.me)::text || ':'
			|| pg_catalog.pg_snapshot_xmax(s.cur)::text || ':'
			|| (SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x)
				FROM (SELECT pg_catalog.pg_snapshot_xip(s.cur) UNION SELECT s.me) AS t(x)))::pg_snapshot END,
		s.since
	FROM s
	RETURNING fold, completed_from
), counts AS (
	INSERT INTO awa.counter_fold_counts (fold, queue, scheduled, available, running, retryable, failed,
		cancelled, waiting_external)
	SELECT f.fold, j.queue,
		count(*) FILTER (WHERE j.state = 'scheduled'), count(*) FILTER (WHERE j.state = 'available'),
		count(*) FILTER (WHERE j.state = 'running'), count(*) FILTER (WHERE j.state = 'retryable'),
		count(*) FILTER (WHERE j.state = 'failed'), count(*) FILTER (WHERE j.state = 'cancelled'),
		count(*) FILTER (WHERE j.state = 'waiting_external')
	FROM awa.jobs j, f
	WHERE j.state <> 'completed'
	GROUP BY f.fold, j.queue
), done AS (
	SELECT j.queue, pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM j.finalized_at))) AS second,
		count(*) AS n
	FROM awa.jobs j, f
	WHERE j.state = 'completed' AND j.finalized_at >= f.completed_from
	GROUP BY 1, 2
)
INSERT INTO awa.counter_completed (seconds, bucket, queue, completed)
SELECT 1, second, queue, n FROM done
UNION ALL
SELECT 60, pg_catalog.to_timestamp(pg_catalog.floor(EXTRACT(epoch FROM second) / 60) * 60), queue, sum(n)
FROM done GROUP BY 2, 3;

-- History (history.c) ------------------------------------------------------------
--
-- awa_queue_history() reads, per queue, kind and minute, the jobs enqueued,
-- started, completed, failed (for good), retried and cancelled, and how long
-- jobs waited (from due to claimed) and ran (from claimed to finished or to
-- the failure that retries them).  The job counters' statement triggers on
-- awa.jobs write one row per statement and (queue, kind, minute) into
-- awa.history_deltas; maintenance folds them into awa.queue_history and
-- deletes minutes older than awa.retention_history.  Durations: count, sum
-- and maximum in microseconds, and a histogram over fixed log-scale buckets
-- (bucket 0: under 1 ms; bucket b >= 1: from 2^((b-1)/4) to 2^(b/4) ms; 160:
-- 2^(159/4) ms and longer) stored as a bigint[] subscripted by bucket number,
-- spanning the buckets used ('[13:15]={2,0,1}').
CREATE TABLE awa.history_deltas (
	minute			timestamptz NOT NULL,
	queue			text NOT NULL,
	kind			text NOT NULL,
	enqueued		bigint NOT NULL DEFAULT 0,
	started			bigint NOT NULL DEFAULT 0,
	completed		bigint NOT NULL DEFAULT 0,
	failed			bigint NOT NULL DEFAULT 0,
	retried			bigint NOT NULL DEFAULT 0,
	cancelled		bigint NOT NULL DEFAULT 0,
	wait_count		bigint NOT NULL DEFAULT 0,
	wait_total_us	bigint,
	wait_max_us		bigint,
	wait_hist		bigint[],
	run_count		bigint NOT NULL DEFAULT 0,
	run_total_us	bigint,
	run_max_us		bigint,
	run_hist		bigint[]
);
COMMENT ON TABLE awa.history_deltas
	IS 'throughput events per queue, kind and minute, one row per statement that changed awa.jobs, not yet folded into awa.queue_history';

CREATE TABLE awa.queue_history (
	LIKE awa.history_deltas INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
	PRIMARY KEY (minute, queue, kind)
);
COMMENT ON TABLE awa.queue_history
	IS 'throughput per minute, queue and kind: jobs enqueued, started, completed, failed, retried, cancelled; wait and run times (count, sum, max in microseconds, log-scale histogram)';
SELECT pg_catalog.pg_extension_config_dump('awa.history_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('awa.queue_history', '');

CREATE FUNCTION awa.history_add(a bigint[], b bigint[])
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'awa_history_add'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION awa.history_add(bigint[], bigint[])
	IS 'bucket-by-bucket sum of two duration histograms (NULL counts as empty)';

CREATE AGGREGATE awa.history_sum(bigint[]) (
	SFUNC = awa.history_add,
	STYPE = bigint[],
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE awa.history_sum(bigint[])
	IS 'bucket-by-bucket sum of duration histograms';

CREATE FUNCTION awa.history_percentile(hist bigint[], fraction double precision, max_us bigint)
RETURNS double precision
AS 'MODULE_PATHNAME', 'awa_history_percentile'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION awa.history_percentile(bigint[], double precision, bigint)
	IS 'a quantile of a duration histogram in seconds: the upper bound of its bucket, at most max_us';

CREATE FUNCTION awa_queue_history(
	queue text DEFAULT NULL,
	since timestamptz DEFAULT now() - interval '1 hour',
	bucket interval DEFAULT '1 minute',
	kind text DEFAULT NULL,
	by_kind boolean DEFAULT false)
RETURNS TABLE (
	bucket_start	timestamptz,
	queue			text,
	kind			text,
	enqueued		bigint,
	started			bigint,
	completed		bigint,
	failed			bigint,
	retried			bigint,
	cancelled		bigint,
	wait_p50		double precision,
	wait_p95		double precision,
	wait_max		double precision,
	wait_avg		double precision,
	run_p50			double precision,
	run_p95			double precision,
	run_max			double precision,
	run_avg			double precision)
AS 'MODULE_PATHNAME', 'awa_queue_history'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION awa_queue_history(text, timestamptz, interval, text, boolean)
	IS 'throughput per bucket (whole minutes) and queue (and kind): jobs enqueued, started, completed, failed, retried, cancelled; wait and run time p50/p95/max/avg in seconds';

-- Rate limits (ratelimit.c) --------------------------------------------------------

ALTER TABLE awa.queue_meta
	ADD COLUMN rate_max_claims integer
		CONSTRAINT queue_meta_rate_max_claims_range CHECK (rate_max_claims BETWEEN 1 AND 1000),
	ADD COLUMN rate_period interval
		CONSTRAINT queue_meta_rate_period_range CHECK (rate_period >= interval '1 millisecond'
			AND rate_period <= interval '31 days'),
	ADD COLUMN rate_set_at timestamptz,
	ADD CONSTRAINT queue_meta_rate_whole CHECK ((rate_max_claims IS NULL) = (rate_period IS NULL));
COMMENT ON COLUMN awa.queue_meta.rate_max_claims
	IS 'at most this many jobs of the queue claimed in any interval of length rate_period, across all workers (NULL: no rate); set with awa_set_queue_rate';
COMMENT ON COLUMN awa.queue_meta.rate_period
	IS 'the length of the sliding window of the queue''s rate (1 millisecond to 31 days)';
COMMENT ON COLUMN awa.queue_meta.rate_set_at
	IS 'when the queue last got a rate after having none: the claims before it are recounted from awa.jobs';

CREATE FUNCTION awa_set_queue_rate(queue text, max_claims integer, per interval)
RETURNS awa.queue_meta
AS 'MODULE_PATHNAME', 'awa_set_queue_rate'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_set_queue_rate(text, integer, interval)
	IS 'let awa_claim claim at most max_claims (1..1000) jobs of the queue in any interval of length per (1 ms to 31 days), across all workers (NULL max_claims: no rate); 22023 on a bad limit, 55000 unless awa is preloaded; returns the queue''s settings';

CREATE FUNCTION awa_queue_limits()
RETURNS TABLE (
	queue			text,
	paused			boolean,
	max_running		integer,
	running			bigint,
	rate_max_claims	integer,
	rate_period		interval,
	window_claims	integer,
	next_slot_at	timestamptz)
AS 'MODULE_PATHNAME', 'awa_queue_limits'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION awa_queue_limits()
	IS 'each queue with a concurrency limit or a rate: the limit and its running jobs; the rate, the claims in the window ending now (NULL until counted since the server started) and when the next slot opens if the window is full';
COMMENT ON FUNCTION awa_forget_queue(text)
	IS 'remove a queue''s settings (pause, concurrency limit, rate), e.g. of a misspelt name; its jobs are untouched; false if it had none';

-- Groups (groups.c) -------------------------------------------------------------
-- group_id: nullable, no default: nothing is rewritten; the CHECK and the
-- partial index each read the table once.  awa_insert gains group_id, after
-- and on_parent_failure (job dependencies, below) and concurrency_key (per-key
-- limits, below): new arguments, drop and create.
ALTER TABLE awa.jobs ADD COLUMN group_id text,
	ADD CONSTRAINT jobs_group_id_length CHECK (char_length(group_id) BETWEEN 1 AND 200);
DROP FUNCTION awa_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean, interval, awa.job_state[], interval);
CREATE FUNCTION awa_insert(
	kind text,
	args jsonb DEFAULT '{}',
	queue text DEFAULT 'default',
	priority integer DEFAULT 2,
	max_attempts integer DEFAULT 25,
	run_at timestamptz DEFAULT NULL,
	tags text[] DEFAULT '{}',
	metadata jsonb DEFAULT '{}',
	unique_by_args boolean DEFAULT false,
	unique_by_queue boolean DEFAULT false,
	unique_period interval DEFAULT NULL,
	unique_states awa.job_state[] DEFAULT NULL,
	timeout interval DEFAULT NULL,
	group_id text DEFAULT NULL,
	after bigint[] DEFAULT NULL,
	on_parent_failure text DEFAULT 'cancel',
	concurrency_key text DEFAULT NULL)
RETURNS awa.jobs
AS 'MODULE_PATHNAME', 'awa_insert'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean, interval, awa.job_state[], interval, text, bigint[], text, text)
	IS 'enqueue one job; returns its row (available now, or scheduled when run_at is in the future); with unique_*, the existing job''s row if one holds the key; timeout: hard limit of each attempt; group_id: the group it belongs to (1 to 200 characters); after: ids of jobs it runs after (it waits until all completed), on_parent_failure: cancel, run or wait when one of them fails or is cancelled; concurrency_key (1 to 200 characters): limits how many jobs with it run at once (awa_set_key_limit)';

-- A job may belong to a group (awa.jobs.group_id, given at enqueue).
-- awa_group_stats counts a group's jobs by state; awa_group_on_finish
-- registers one job to enqueue once every job of the group has finished
-- (completed, failed or cancelled).  It is enqueued exactly once, by the
-- transaction that finishes the group's last unfinished job (or by
-- awa_group_on_finish itself when none is left), never while a transaction
-- that is enqueueing jobs into the group is still open: enqueueing holds a
-- shared lock on the group until commit, finishing a job with a callback
-- pending takes it exclusively, and the check reads the newest committed
-- state (docs/groups.md).
COMMENT ON COLUMN awa.jobs.group_id
	IS 'the group the job belongs to (1 to 200 characters; NULL: none): awa_group_stats counts it, awa_group_on_finish waits for it';

-- A group's jobs by state (awa_group_stats, the finished check).
CREATE INDEX jobs_group_idx ON awa.jobs (group_id, state)
	WHERE group_id IS NOT NULL;

CREATE TABLE awa.group_callbacks (
	group_id		text PRIMARY KEY
		CONSTRAINT group_callbacks_group_id_length CHECK (char_length(group_id) BETWEEN 1 AND 200),
	kind			text NOT NULL,
	args			jsonb NOT NULL,
	queue			text NOT NULL,
	priority		smallint NOT NULL,
	max_attempts	smallint NOT NULL,
	metadata		jsonb NOT NULL,
	registered_at	timestamptz NOT NULL DEFAULT now(),
	finished_at		timestamptz,
	callback_job_id	bigint
);
COMMENT ON TABLE awa.group_callbacks
	IS 'the job to enqueue when every job of a group has finished (awa_group_on_finish); callback_job_id and finished_at are set when it is enqueued';
SELECT pg_catalog.pg_extension_config_dump('awa.group_callbacks', '');

CREATE FUNCTION awa_group_stats(group_id text)
RETURNS TABLE (
	total				bigint,
	scheduled			bigint,
	available			bigint,
	running				bigint,
	completed			bigint,
	retryable			bigint,
	failed				bigint,
	cancelled			bigint,
	waiting_external	bigint,
	unfinished			bigint,
	callback_job_id		bigint,
	finished_at			timestamptz)
AS 'MODULE_PATHNAME', 'awa_group_stats'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION awa_group_stats(text)
	IS 'one row: a group''s jobs by state at the caller''s snapshot, how many are unfinished, and its finish callback''s job id and time once enqueued (NULL before); 22004 on a NULL group_id, 22023 on one not 1 to 200 characters';

CREATE FUNCTION awa_group_on_finish(
	group_id text,
	kind text,
	args jsonb DEFAULT '{}',
	queue text DEFAULT 'default',
	priority integer DEFAULT 2,
	max_attempts integer DEFAULT 25,
	metadata jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_group_on_finish'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_group_on_finish(text, text, jsonb, text, integer, integer, jsonb)
	IS 'enqueue a job (awa_insert''s fields; metadata gains finished_group) once every job of the group has finished; returns its id when none is unfinished now (enqueued at once), else NULL; 22004 on a NULL argument, 22023 on a bad field, 42710 if the group has a callback already';

CREATE FUNCTION awa_group_callback(group_id text)
RETURNS TABLE (
	kind			text,
	args			jsonb,
	queue			text,
	priority		smallint,
	max_attempts	smallint,
	metadata		jsonb,
	registered_at	timestamptz,
	callback_job_id	bigint,
	finished_at		timestamptz)
AS 'MODULE_PATHNAME', 'awa_group_callback'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION awa_group_callback(text)
	IS 'the finish callback registered for a group (awa_group_on_finish): its job''s fields as stored, when it was registered, and its job id and time once enqueued (NULL before); one row, or none without a callback, at the caller''s snapshot; 22004 on a NULL group_id, 22023 on one not 1 to 200 characters';

-- The ring (docs/storage.md, section 5 and "Step 4 as landed") ---------------------------------------
-- The storage engine that is to replace awa.jobs, created empty beside it.  Internal: no awa_* function
-- reads or writes these relations yet, no role is granted them (privileges.sql), and the awa.ring_*
-- functions refuse to run unless the superuser-only setting awa.ring_engine is on, which only the ring's
-- own test suites and benchmark turn on.  Marked for pg_dump on the ring engine only (engine.sql; "The ring: dump
-- and restore" at the end of this file).
-- Nothing here is updated or deleted on the hot path: a ready row per claimable attempt, a receipt per
-- claim, a done row per ended attempt; a slot's partitions are reclaimed together by TRUNCATE (step 6).

-- One row per slot: which one receives new ready rows (the open one), which are sealed.
CREATE TABLE awa.ring_slots (
	slot			smallint PRIMARY KEY,
	state			text NOT NULL,
	opened_at		timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT ring_slots_state CHECK (state IN ('open', 'sealed')),
	CONSTRAINT ring_slots_slot CHECK (slot >= 0)
);
CREATE UNIQUE INDEX ring_slots_one_open ON awa.ring_slots ((true)) WHERE state = 'open';
COMMENT ON TABLE awa.ring_slots IS 'internal (the ring, not in use yet): the slots and the one open for new ready rows';
INSERT INTO awa.ring_slots (slot, state) VALUES (0, 'open'), (1, 'sealed'), (2, 'sealed'), (3, 'sealed');

-- One row per claimable attempt; run_lease is the lease of the previous attempt (a claim gives run_lease + 1),
-- attempt the attempts made before it.  Ids come from awa.jobs' sequence, so that an id names one job in both.
CREATE TABLE awa.ready (
	slot			smallint NOT NULL,
	id				bigint NOT NULL,
	run_lease		bigint NOT NULL DEFAULT 0,
	attempt			smallint NOT NULL DEFAULT 0,
	kind			text NOT NULL,
	queue			text NOT NULL,
	args			jsonb NOT NULL DEFAULT '{}',
	priority		smallint NOT NULL DEFAULT 2,
	max_attempts	smallint NOT NULL DEFAULT 25,
	run_at			timestamptz NOT NULL DEFAULT now(),
	created_at		timestamptz NOT NULL DEFAULT now(),
	metadata		jsonb NOT NULL DEFAULT '{}',
	tags			text[] NOT NULL DEFAULT '{}',
	CONSTRAINT ready_attempt_key UNIQUE (id, run_lease, slot)
) PARTITION BY LIST (slot);
-- The claim index is partial on a predicate only the claim's statements state (every ready row satisfies it:
-- run_at is finite), so that no lookup by id can use it: a generic plan made while a slot's partition is empty
-- (a new or just-truncated slot) would otherwise read a lookup's "id = $1" as a condition on this index's third
-- column -- a walk of the whole index once the slot fills -- instead of probing the (id, run_lease, slot) key.
CREATE INDEX ready_claim_idx ON awa.ready (queue, priority, run_at, id) WHERE run_at > '-infinity';
COMMENT ON TABLE awa.ready IS 'internal (the ring, not in use yet): one immutable row per claimable attempt, by slot';

-- One receipt per claim: the attempt (job_id, run_lease) is running.  The unique key makes a claim exactly-once.
CREATE TABLE awa.claims (
	slot			smallint NOT NULL,
	job_id			bigint NOT NULL,
	run_lease		bigint NOT NULL,
	claimed_at		timestamptz NOT NULL,
	deadline_at		timestamptz NOT NULL,
	lease			interval NOT NULL,
	claimed_by		text,
	CONSTRAINT claims_attempt_key UNIQUE (job_id, run_lease, slot)
) PARTITION BY LIST (slot);
COMMENT ON TABLE awa.claims IS 'internal (the ring, not in use yet): one receipt per claimed attempt, by the slot of its ready row';

-- One row per ended attempt, keyed like its receipt: the second of two racing ends is a no-op.  An attempt parked
-- in waiting_external (an end that is not final) has a second row, after_wait, for the end of its wait: one
-- waiting_external row and one final row per lease at most, each key a no-op for the second of two racing writers.
CREATE TABLE awa.done (
	slot			smallint NOT NULL,
	job_id			bigint NOT NULL,
	run_lease		bigint NOT NULL,
	state			awa.job_state NOT NULL,
	finalized_at	timestamptz NOT NULL,
	error			jsonb,
	after_wait		boolean NOT NULL DEFAULT false,	-- hook: rext -- the end of a waiting_external row's wait
	CONSTRAINT done_attempt_key UNIQUE (job_id, run_lease, slot, after_wait)
) PARTITION BY LIST (slot);
COMMENT ON TABLE awa.done IS 'internal (the ring, not in use yet): one row per ended attempt (completed, failed, retryable), by slot';

CREATE TABLE awa.ready_0 PARTITION OF awa.ready FOR VALUES IN (0);
CREATE TABLE awa.ready_1 PARTITION OF awa.ready FOR VALUES IN (1);
CREATE TABLE awa.ready_2 PARTITION OF awa.ready FOR VALUES IN (2);
CREATE TABLE awa.ready_3 PARTITION OF awa.ready FOR VALUES IN (3);
CREATE TABLE awa.claims_0 PARTITION OF awa.claims FOR VALUES IN (0);
CREATE TABLE awa.claims_1 PARTITION OF awa.claims FOR VALUES IN (1);
CREATE TABLE awa.claims_2 PARTITION OF awa.claims FOR VALUES IN (2);
CREATE TABLE awa.claims_3 PARTITION OF awa.claims FOR VALUES IN (3);
CREATE TABLE awa.done_0 PARTITION OF awa.done FOR VALUES IN (0);
CREATE TABLE awa.done_1 PARTITION OF awa.done FOR VALUES IN (1);
CREATE TABLE awa.done_2 PARTITION OF awa.done FOR VALUES IN (2);
CREATE TABLE awa.done_3 PARTITION OF awa.done FOR VALUES IN (3);

-- The engine's hot path on the ring, internal (EXECUTE for the owner and superusers only; each needs
-- awa.ring_engine = on).  Arguments and errors: docs/storage.md, "Step 4 as landed".
CREATE FUNCTION awa.ring_insert(
	kind text,
	args jsonb DEFAULT '{}',
	queue text DEFAULT 'default',
	priority integer DEFAULT 2,
	max_attempts integer DEFAULT 25,
	run_at timestamptz DEFAULT NULL,
	tags text[] DEFAULT '{}',
	metadata jsonb DEFAULT '{}',
	unique_by_args boolean DEFAULT false,
	unique_by_queue boolean DEFAULT false,
	unique_period interval DEFAULT NULL,
	unique_states awa.job_state[] DEFAULT NULL,
	timeout interval DEFAULT NULL,
	group_id text DEFAULT NULL,
	after bigint[] DEFAULT NULL,
	on_parent_failure text DEFAULT 'cancel',
	concurrency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_ring_insert'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean,
		interval, awa.job_state[], interval, text, bigint[], text, text)
	IS 'internal (the ring): enqueue a job as a ready row of the open slot (a scheduled row when due later); arguments and errors as awa_insert''s (after: ring jobs only, 23503 for another id; ring_deps.c); returns its id, or for a unique job whose key is held the holder''s id (nothing inserted)';

CREATE FUNCTION awa.ring_claim(
	queue text,
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	worker text DEFAULT NULL)
RETURNS TABLE (id bigint, run_lease bigint, attempt integer, kind text, queue text, args jsonb,
	priority integer, run_at timestamptz)
AS 'MODULE_PATHNAME', 'awa_ring_claim'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_claim(text, integer, interval, text)
	IS 'internal (the ring): claim up to batch due jobs of a queue (effective priority under awa.priority_aging_interval, run_at, id order), a receipt each';

CREATE FUNCTION awa.ring_complete_many(ids bigint[], run_leases bigint[])
RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'awa_ring_complete_many'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION awa.ring_complete_many(bigint[], bigint[])
	IS 'internal (the ring): complete the attempts (ids[i], run_leases[i]) that are running; returns their ids';

CREATE FUNCTION awa.ring_fail(id bigint, run_lease bigint, error jsonb DEFAULT NULL, retry boolean DEFAULT true,
	retry_in interval DEFAULT NULL)
RETURNS awa.job_state
AS 'MODULE_PATHNAME', 'awa_ring_fail'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_fail(bigint, bigint, jsonb, boolean, interval)
	IS 'internal (the ring): end a running attempt as failed; retryable while attempts remain and retry is true: the next attempt is due at now() + retry_in (0 to 36500 days; 0: a ready row now; NULL: the default backoff, 2^attempt seconds, base capped at 19.2 hours, plus up to 25 % jitter), scheduled until then; NULL if not running';

-- Job dependencies (deps.c, docs/dependencies.md) ------------------------------
--
-- A job inserted with after => parent ids runs once all of them completed.
-- It waits as a scheduled job with run_at 9999-12-30 UTC (never due); the
-- trigger below releases it (available, or scheduled at the run_at asked
-- for) when its last parent completes, exactly once, or applies its
-- on_parent_failure policy when a parent fails for good or is cancelled.
CREATE TABLE awa.job_dependencies (
	job_id		bigint NOT NULL,
	parent_id	bigint NOT NULL,
	satisfied	boolean NOT NULL DEFAULT false,
	PRIMARY KEY (job_id, parent_id)
);
COMMENT ON TABLE awa.job_dependencies
	IS 'one row per job and job it runs after (parent); satisfied: the parent completed, or failed or was cancelled under the policy run';
CREATE INDEX job_dependencies_parent_idx ON awa.job_dependencies (parent_id);

CREATE TABLE awa.dependent_jobs (
	job_id				bigint PRIMARY KEY,
	waiting_for			integer NOT NULL,
	on_parent_failure	text NOT NULL DEFAULT 'cancel',
	run_at				timestamptz,
	CONSTRAINT dependent_jobs_waiting_for CHECK (waiting_for >= 0),
	CONSTRAINT dependent_jobs_on_parent_failure CHECK (on_parent_failure IN ('cancel', 'run', 'wait'))
);
COMMENT ON TABLE awa.dependent_jobs
	IS 'one row per job that runs after others: how many of its parents it still waits for, what a failed or cancelled parent does to it, and the run_at its producer asked for';

SELECT pg_catalog.pg_extension_config_dump('awa.job_dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('awa.dependent_jobs', '');

CREATE FUNCTION awa.jobs_dependencies_changes()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_jobs_dependencies_changes'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.jobs_dependencies_changes()
	IS 'trigger: jobs that completed, failed or were cancelled release or cancel the jobs that run after them; deleted jobs take their dependency rows along';

CREATE TRIGGER jobs_dependencies_update AFTER UPDATE ON awa.jobs
	REFERENCING NEW TABLE AS new_jobs
	FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_dependencies_changes();
CREATE TRIGGER jobs_dependencies_delete AFTER DELETE ON awa.jobs
	REFERENCING OLD TABLE AS old_jobs
	FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_dependencies_changes();
CREATE TRIGGER jobs_dependencies_truncate AFTER TRUNCATE ON awa.jobs
	FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_dependencies_changes();

CREATE FUNCTION awa_parent_results(job_id bigint)
RETURNS TABLE (
	parent_id		bigint,
	kind			text,
	state			awa.job_state,
	satisfied		boolean,
	result			jsonb,
	finalized_at	timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT d.parent_id, p.kind, p.state, d.satisfied, p.result, p.finalized_at
	FROM awa.job_dependencies d LEFT JOIN awa.jobs p ON p.id = d.parent_id
	WHERE d.job_id = awa_parent_results.job_id
	ORDER BY d.parent_id;
END;
COMMENT ON FUNCTION awa_parent_results(bigint)
	IS 'the jobs a job runs after, in id order: kind, state, satisfied, result (what awa_complete stored) and finalized_at; kind and state NULL for a parent already deleted; no rows for a job that runs after none';

CREATE FUNCTION awa_dependents(job_id bigint)
RETURNS TABLE (
	dependent_id	bigint,
	kind			text,
	state			awa.job_state,
	satisfied		boolean,
	waiting_for		integer,
	on_parent_failure	text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT d.job_id, c.kind, c.state, d.satisfied, w.waiting_for, w.on_parent_failure
	FROM awa.job_dependencies d
	LEFT JOIN awa.jobs c ON c.id = d.job_id
	LEFT JOIN awa.dependent_jobs w ON w.job_id = d.job_id
	WHERE d.parent_id = awa_dependents.job_id
	ORDER BY d.job_id;
END;
COMMENT ON FUNCTION awa_dependents(bigint)
	IS 'the jobs that run after a job, in id order: kind, state, whether this job no longer holds them back, how many parents each still waits for, and its on_parent_failure policy';

-- Per-key concurrency and ordering (keylimit.c) -------------------------------
--
-- A job's concurrency_key (NULL: none) limits how many jobs with that key run
-- at once across every worker; awa.key_limits holds the rules (a key no rule
-- matches runs one job at a time).  Jobs without a key are in neither index.

ALTER TABLE awa.jobs ADD COLUMN concurrency_key text;
COMMENT ON COLUMN awa.jobs.concurrency_key
	IS 'optional: at most a number of jobs with this key run at once across every worker (awa_set_key_limit; default 1)';

CREATE TABLE awa.key_limits (
	pattern		text NOT NULL,
	kind		text,
	max_running	integer NOT NULL,
	ordered		boolean NOT NULL DEFAULT false,
	CONSTRAINT key_limits_rule UNIQUE NULLS NOT DISTINCT (pattern, kind),
	CONSTRAINT key_limits_pattern_length CHECK (char_length(pattern) BETWEEN 1 AND 200),
	-- a valid LIKE pattern: not ending with the escape character (an odd run of trailing backslashes), which LIKE
	-- refuses at every match, so that no rule can make the claims of keyed jobs fail
	CONSTRAINT key_limits_pattern_escape CHECK (pattern !~ '(^|[^\\])(\\\\)*\\$'),
	CONSTRAINT key_limits_kind_length CHECK (char_length(kind) BETWEEN 1 AND 200),
	CONSTRAINT key_limits_max_running_range CHECK (max_running BETWEEN 1 AND 1000000),
	CONSTRAINT key_limits_ordered_one CHECK (NOT ordered OR max_running = 1)
);
COMMENT ON TABLE awa.key_limits
	IS 'per-key concurrency rules, set with awa_set_key_limit: jobs whose concurrency_key is LIKE pattern (and of this kind; NULL: any kind) run at most max_running at once; ordered: one at a time in id order';

-- Counting a key's running jobs, and finding an earlier live job of a key.
CREATE INDEX jobs_key_running_idx ON awa.jobs (concurrency_key)
	WHERE state = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX jobs_key_live_idx ON awa.jobs (concurrency_key, id)
	WHERE state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')
		AND concurrency_key IS NOT NULL;

CREATE FUNCTION awa.concurrency_key_admit(key text, kind text, id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_concurrency_key_admit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.concurrency_key_admit(text, text, bigint)
	IS 'internal to awa_claim: whether a locked job with this key may run now (counts it if so); 55000 outside a claim';

CREATE FUNCTION awa.concurrency_key_open(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_concurrency_key_open'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.concurrency_key_open(text)
	IS 'internal to awa_claim: false when the running claim already found this key at its limit';

CREATE FUNCTION awa_set_key_limit(
	pattern text,
	max_running integer,
	kind text DEFAULT NULL,
	ordered boolean DEFAULT false)
RETURNS awa.key_limits
AS 'MODULE_PATHNAME', 'awa_set_key_limit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_set_key_limit(text, integer, text, boolean)
	IS 'at most max_running (1..1000000) jobs whose concurrency_key is LIKE pattern (% any, _ one, \ escapes), of kind (NULL: any kind), run at once across every worker; ordered: one at a time in insertion order (max_running 1); max_running NULL removes the rule and returns it (NULL if none). A job takes the rule of its kind before one for any kind, then an exact key (no % or _) before a pattern, then the longest pattern; no rule: 1. 22004 NULL pattern or ordered; 22023 pattern or kind not 1 to 200 characters or pattern ending with the LIKE escape character, a backslash, max_running out of range, ordered with max_running not 1';


-- Rates per concurrency key (keylimit.c, ratelimit.c) -------------------------
--
-- A key rule may also carry a rate: at most rate_max_claims claims of each
-- matching key in any interval of length rate_period, counted in shared memory
-- per key (whatever the queue) and rebuilt from awa.jobs after a restart.

ALTER TABLE awa.key_limits
	ADD COLUMN rate_max_claims integer,
	ADD COLUMN rate_period interval,
	ADD COLUMN rate_set_at timestamptz,
	ADD CONSTRAINT key_limits_rate_max_claims_range CHECK (rate_max_claims BETWEEN 1 AND 1000),
	ADD CONSTRAINT key_limits_rate_period_range
		CHECK (rate_period >= interval '1 millisecond' AND rate_period <= interval '31 days'),
	ADD CONSTRAINT key_limits_rate_complete
		CHECK ((rate_max_claims IS NULL) = (rate_period IS NULL)
			AND (rate_max_claims IS NULL) = (rate_set_at IS NULL));
COMMENT ON COLUMN awa.key_limits.rate_max_claims
	IS 'with rate_period: at most this many claims of each matching key in any interval of that length (awa_set_key_rate); NULL: no rate';
COMMENT ON COLUMN awa.key_limits.rate_set_at
	IS 'when the rule last got a rate after having none';

CREATE FUNCTION awa_set_key_rate(
	pattern text,
	max_claims integer,
	per interval,
	kind text DEFAULT NULL)
RETURNS awa.key_limits
AS 'MODULE_PATHNAME', 'awa_set_key_rate'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_set_key_rate(text, integer, interval, text)
	IS 'at most max_claims (1..1000) claims of each concurrency key LIKE pattern, of kind (NULL: any kind), in any interval of length per (1 millisecond to 31 days, no months), across every worker and queue; makes the rule with max_running 1 if there is none; max_claims NULL removes the rate and keeps the rule (NULL if there is no rule). 22004 NULL pattern; 22023 pattern or kind not 1 to 200 characters or pattern ending with the LIKE escape character, a backslash, max_claims out of range, per NULL with max_claims or out of range; 55000 without awa preloaded';

CREATE FUNCTION awa.key_rate_window(key text, max_claims integer, per interval,
	OUT window_claims integer, OUT next_slot_at timestamptz)
AS 'MODULE_PATHNAME', 'awa_key_rate_window'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION awa.key_rate_window(text, integer, interval)
	IS 'internal to awa_key_stats: claims of the key counted in the window of length per that ends now and, when they reach max_claims, when the next slot opens (NULLs: not counted since the server started)';

CREATE FUNCTION awa_key_stats(pattern text DEFAULT NULL)
RETURNS TABLE (
	concurrency_key	text,
	kind			text,
	running			bigint,
	waiting			bigint,
	max_running		integer,
	ordered			boolean,
	at_limit		boolean,
	rate_max_claims	integer,
	rate_period		interval,
	window_claims	integer,
	next_slot_at	timestamptz)
AS 'MODULE_PATHNAME', 'awa_key_stats'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION awa_key_stats(text)
	IS 'one row per (concurrency_key, kind) with live jobs (keys LIKE pattern; NULL: all): running = jobs of the key running (any kind), waiting = its jobs of this kind waiting to run, the rule''s max_running and ordered (no rule: 1, false), at_limit = running >= max_running; the rule''s rate (rate_max_claims per rate_period; NULL: none) and window_claims, the key''s claims in the window of that length ending now (NULL until a claim of the key counted them since the server started) and, when they fill it, next_slot_at, when the next slot opens';

-- The ring: reading the ring, counters (docs/storage.md, "Step 4: reading the ring, counters") ---------
-- awa.ring_jobs assembles each ring job's newest attempt into a row shaped exactly like awa.jobs; awa.ring_get
-- reads one by id; statement triggers on ready, claims and done write the counters' deltas (awa.counter_deltas)
-- so that awa_queue_stats() counts ring jobs; awa.ring_recount() compares the counters with a recount of the
-- view.  Internal like the rest of the ring.

-- awa.ring_jobs, the view over every ring relation, is at the end of this file (it reads the ones below).
-- Ended attempts that a listing by state finds by index (completed ones are most rows: read in full).
CREATE INDEX done_ended_idx ON awa.done (state, job_id) WHERE state IN ('failed', 'cancelled', 'waiting_external');

-- Completed ring jobs by finalized_at, for completed_last_hour's edge second (awa_queue_stats, stats.c).
CREATE INDEX done_completed_idx ON awa.done (finalized_at) WHERE state = 'completed';

CREATE FUNCTION awa.ring_get(id bigint)
RETURNS awa.jobs
AS 'MODULE_PATHNAME', 'awa_ring_get'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION awa.ring_get(bigint)
	IS 'internal (the ring): the ring job with this id as a row of awa.jobs (awa.ring_jobs), NULL if there is none';

-- The counters: each row written to the ring moves its job from one state to another; the trigger writes -1 for
-- the state before and +1 for the state after, per queue (completed by the second of finalized_at), into
-- awa.counter_deltas as awa.jobs' counting triggers do.  The rule for each kind of row: src/ring_read.c.
CREATE FUNCTION awa.ring_count_changes()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_ring_count_changes'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_count_changes()
	IS 'internal (the ring): AFTER INSERT FOR EACH STATEMENT trigger of awa.ready, awa.claims and awa.done: the counters'' deltas of the rows written';

-- hook: scheduled, beats -- their tables' triggers follow the same rule (a beat changes no count).  DELETE and
-- TRUNCATE of the ring's relations (reclaiming a slot) must write the negated counts of what they remove.
CREATE TRIGGER ready_count AFTER INSERT ON awa.ready REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_count_changes();
CREATE TRIGGER claims_count AFTER INSERT ON awa.claims REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_count_changes();
CREATE TRIGGER done_count AFTER INSERT ON awa.done REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_count_changes();
-- awa.scheduled (below): a job enqueued for later and never made ready is counted scheduled while its row is there

-- The ring: heartbeats, progress, rescue (ring_lease.c; docs/storage.md, "Step 4: heartbeats, progress, rescue") ---
-- Internal like the rest of the ring.  A heartbeat of a long attempt appends a beat (nothing is updated): the
-- attempt's new deadline and the job's progress (carried forward from the job's previous beat when not given).
-- An attempt's deadline is its latest beat's, else its receipt's.  The rescue walks receipts and beats by
-- deadline_at from a kept position (awa.ring_rescue_mark), so that a round reads the attempts that fell due
-- since the last one, not every receipt ever written.
CREATE TABLE awa.beats (
	job_id			bigint NOT NULL,
	run_lease		bigint NOT NULL,
	slot			smallint NOT NULL,
	at				timestamptz NOT NULL,
	deadline_at		timestamptz NOT NULL,
	progress		jsonb
) PARTITION BY LIST (slot);
CREATE INDEX beats_attempt_idx ON awa.beats (job_id, run_lease, at);
CREATE INDEX beats_deadline_idx ON awa.beats (deadline_at);
COMMENT ON TABLE awa.beats IS 'internal (the ring, not in use yet): one row per heartbeat of a running attempt (its new deadline, the job''s progress), by the slot of its receipt';
CREATE TABLE awa.beats_0 PARTITION OF awa.beats FOR VALUES IN (0);
CREATE TABLE awa.beats_1 PARTITION OF awa.beats FOR VALUES IN (1);
CREATE TABLE awa.beats_2 PARTITION OF awa.beats FOR VALUES IN (2);
CREATE TABLE awa.beats_3 PARTITION OF awa.beats FOR VALUES IN (3);

-- The rescue's walk of receipts by deadline.
CREATE INDEX claims_deadline_idx ON awa.claims (deadline_at);

-- The rescue's kept position (one row, updated once per round): every attempt whose deadline is at or before
-- passed was looked at when it was due.
CREATE TABLE awa.ring_rescue_mark (
	one				boolean PRIMARY KEY DEFAULT true,
	passed			timestamptz NOT NULL,
	CONSTRAINT ring_rescue_mark_one CHECK (one)
);
COMMENT ON TABLE awa.ring_rescue_mark IS 'internal (the ring, not in use yet): the deadline up to which the rescue has looked at every attempt';
INSERT INTO awa.ring_rescue_mark (passed) VALUES ('-infinity');

CREATE FUNCTION awa.ring_heartbeat(id bigint, run_lease bigint, lease interval DEFAULT NULL,
	progress jsonb DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'awa_ring_heartbeat'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_heartbeat(bigint, bigint, interval, jsonb)
	IS 'internal (the ring): extend a running attempt''s deadline to now() + lease (NULL: its claim''s) and record progress (NULL: keep the last); returns the new deadline, NULL if not running';

CREATE FUNCTION awa.ring_attempt_lease(id bigint, run_lease bigint,
	OUT deadline_at timestamptz, OUT progress jsonb)
AS 'MODULE_PATHNAME', 'awa_ring_attempt_lease_sql'
LANGUAGE C STABLE;
COMMENT ON FUNCTION awa.ring_attempt_lease(bigint, bigint)
	IS 'internal (the ring): an attempt''s current deadline (its latest beat''s, else its claim''s) and the job''s progress as of that attempt; both NULL if the attempt was never claimed';

-- hook: rclean -- the cap of a receipt's and a beat's deadline (ring_obs.h): the writer's awa.heartbeat_timeout,
-- never longer than the setting's default, so that the rescue's walk finds an attempt by the time a rescuer at
-- the default must end it (docs/storage.md, "Step 5: closing the ring's known races")
CREATE FUNCTION awa.ring_heartbeat_cap()
RETURNS interval
AS 'MODULE_PATHNAME', 'awa_ring_heartbeat_cap'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION awa.ring_heartbeat_cap()
	IS 'internal (the ring): the least of this session''s awa.heartbeat_timeout and its default (seconds, as an interval): how far past now() a receipt''s or beat''s deadline may lie';

CREATE FUNCTION awa.ring_rescue(max integer DEFAULT 1000)
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_ring_rescue'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_rescue(integer)
	IS 'internal (the ring): end up to max running attempts past their deadline as awa''s rescue does (retryable, or failed when out of attempts; error "deadline exceeded"); returns how many';

-- The ring: scheduled jobs, backoff, snooze, cancel (docs/storage.md, "Step 4: scheduled jobs, ...") ---
-- Jobs due later wait in awa.scheduled, not in the ring's slots: enqueued with a future run_at, a failed
-- attempt waiting out its backoff (state 'retryable'), a snoozed job (state 'scheduled').  At most one row
-- per job; run_lease and attempt as in awa.ready (the lease of the previous attempt, the attempts counted
-- before it).  Mutable: a due row is deleted when it is moved into a ready row of the open slot (by the
-- claim of its queue, or by awa.ring_promote), or when the job is cancelled.  Internal, like the ring.
CREATE TABLE awa.scheduled (
	id				bigint PRIMARY KEY,
	run_lease		bigint NOT NULL DEFAULT 0,
	attempt			smallint NOT NULL DEFAULT 0,
	state			awa.job_state NOT NULL DEFAULT 'scheduled',
	kind			text NOT NULL,
	queue			text NOT NULL,
	args			jsonb NOT NULL DEFAULT '{}',
	priority		smallint NOT NULL DEFAULT 2,
	max_attempts	smallint NOT NULL DEFAULT 25,
	run_at			timestamptz NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	metadata		jsonb NOT NULL DEFAULT '{}',
	tags			text[] NOT NULL DEFAULT '{}',
	CONSTRAINT scheduled_state CHECK (state IN ('scheduled', 'retryable'))
);
-- the claim's promotion and the floor probe, per (queue, priority) in (run_at, id) order; maintenance by run_at
CREATE INDEX scheduled_claim_idx ON awa.scheduled (queue, priority, run_at, id);
CREATE INDEX scheduled_due_idx ON awa.scheduled (run_at);
COMMENT ON TABLE awa.scheduled IS 'internal (the ring, not in use yet): jobs due later (scheduled, retryable after a backoff, snoozed), one row per job, moved into a ready row when due';
CREATE TRIGGER scheduled_count_insert AFTER INSERT ON awa.scheduled REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_count_changes();
CREATE TRIGGER scheduled_count_delete AFTER DELETE ON awa.scheduled REFERENCING OLD TABLE AS ring_old
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_count_changes();

CREATE FUNCTION awa.ring_promote(max integer DEFAULT 1000)
RETURNS integer
AS 'MODULE_PATHNAME', 'awa_ring_promote'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_promote(integer)
	IS 'internal (the ring): move up to max (1..10000) due scheduled rows of any queue, earliest run_at first, into ready rows of the open slot (skipping rows another transaction holds); returns how many';

CREATE FUNCTION awa.ring_snooze(id bigint, run_lease bigint, delay interval)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_snooze'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_snooze(bigint, bigint, interval)
	IS 'internal (the ring): end a running attempt as snoozed (done row ''scheduled'') and schedule the job at now() + delay (0 to 36500 days) without counting the attempt; false if that attempt was not running';

CREATE FUNCTION awa.ring_cancel(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_cancel'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_cancel(bigint)
	IS 'internal (the ring): cancel a job that has not ended (scheduled, available, retryable or running): a done row ''cancelled'' for its running or next attempt; false if it had already ended; P0002 for an unknown id';

-- The ring: sealing and reclaiming slots (docs/storage.md, "Step 4: sealing and reclaiming slots") ---
-- Maintenance steps of the ring, internal like the other awa.ring_* functions (EXECUTE for the owner and
-- superusers only; each needs awa.ring_engine = on).  Arguments, results and errors: docs/storage.md.
CREATE FUNCTION awa.ring_rotate(max_rows bigint DEFAULT 100000, max_age interval DEFAULT '1 hour')
RETURNS TABLE (open_slot smallint, opened smallint, outcome text)
AS 'MODULE_PATHNAME', 'awa_ring_rotate'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_rotate(bigint, interval)
	IS 'internal (the ring): seal the open slot once it holds max_rows ready rows or is max_age old, and open the next free slot; outcome rotated, below limits, no free slot or busy';

CREATE FUNCTION awa.ring_reclaim(carry_max integer DEFAULT 1000)
RETURNS TABLE (slot smallint, outcome text, unfinished bigint, retained bigint, carried bigint)
AS 'MODULE_PATHNAME', 'awa_ring_reclaim'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_reclaim(integer)
	IS 'internal (the ring): per sealed slot, carry its unfinished and retained jobs (at most carry_max) into the open slot and truncate it; outcome reclaimed, empty, kept, busy or snapshot';

-- The ring: unique jobs (ring_unique.c; docs/storage.md, "Step 4: unique jobs") -------------------------------
-- A unique ring job holds its key through a row of awa.unique_keys, written with the job in the enqueue's
-- transaction (the primary key decides between concurrent inserts of one key) and deleted by the trigger below
-- in the transaction that writes a done row whose state is not one of the job's unique_states.  The one mutable
-- relation of unique jobs: ready, claims and done rows are never updated or deleted for them.
CREATE TABLE awa.unique_keys (
	unique_key		bytea PRIMARY KEY,
	job_id			bigint NOT NULL,
	unique_states	bit(8) NOT NULL
);
-- the release: a probe per final done row
CREATE INDEX unique_keys_job_idx ON awa.unique_keys (job_id);
COMMENT ON TABLE awa.unique_keys
	IS 'internal (the ring, not in use yet): the unique key each ring job holds while its state is one of its unique_states';

-- The key and states a job was enqueued with, carried by each of its ready and scheduled rows (for awa.ring_jobs).
ALTER TABLE awa.ready ADD COLUMN unique_key bytea, ADD COLUMN unique_states bit(8);
ALTER TABLE awa.scheduled ADD COLUMN unique_key bytea, ADD COLUMN unique_states bit(8);

CREATE FUNCTION awa.ring_unique_release()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_ring_unique_release'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_unique_release()
	IS 'internal (the ring): AFTER INSERT FOR EACH STATEMENT trigger of awa.done: the jobs whose new done row is a final state outside their unique_states let go of their unique keys';
CREATE TRIGGER done_unique_release AFTER INSERT ON awa.done REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_unique_release();

-- The ring: the blocking claim (ring_wait.c; docs/storage.md, "Step 5: the blocking claim on the ring") ------
-- awa.ring_claim's blocking form, a procedure that sleeps between transactions (holding no snapshot), woken at
-- the commit of work for its queue; internal like the other awa.ring_* routines.
CREATE PROCEDURE awa.ring_claim_wait(
	queue text,
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	worker text DEFAULT NULL,
	wait interval DEFAULT '30 seconds',
	INOUT jobs jsonb DEFAULT NULL)
AS 'MODULE_PATHNAME', 'awa_ring_claim_wait'
LANGUAGE C;
COMMENT ON PROCEDURE awa.ring_claim_wait(text, integer, interval, text, interval, jsonb)
	IS 'internal (the ring): awa.ring_claim that, with nothing to claim, commits and sleeps (no snapshot held) until a commit makes a job of the queue claimable, its next scheduled job comes due, or wait (0 to 36500 days) ends; jobs: awa.ring_claim''s rows as a jsonb array, NULL if none; 22023 naming a bad argument, 25001 for a wait inside a transaction block';
-- The ring: history of finished jobs (ring_history.c; docs/storage.md, "Step 5: history of finished jobs") --------
-- When a sealed slot is reclaimed, the finished jobs it still has to keep (completed within
-- awa.retention_completed, failed or cancelled within awa.retention_failed) are not carried into the open slot:
-- each becomes one element of a batch row of awa.ring_history, its row of awa.ring_jobs as it was (every column,
-- errors of every attempt included), up to 100 jobs a batch, by id, one retention class a batch.  A batch is
-- stored compressed (an array over 2 kB goes to TOAST) and found by the range of its ids.  Written by the
-- reclaim and deleted by awa.ring_history_expire() only (maintenance); nothing on the hot path reads it.
CREATE TYPE awa.ring_history_job AS (
	id bigint, kind text, queue text, args jsonb, state awa.job_state, priority smallint, attempt smallint,
	max_attempts smallint, run_at timestamptz, heartbeat_at timestamptz, deadline_at timestamptz,
	attempted_at timestamptz, finalized_at timestamptz, created_at timestamptz, errors jsonb[], metadata jsonb,
	tags text[], unique_key bytea, unique_states bit(8), run_lease bigint, progress jsonb, claimed_by text,
	lease interval, timeout interval, result jsonb, callback_key bytea, callback_lease bigint,
	callback_timeout interval, callback_payload jsonb, group_id text, concurrency_key text);
COMMENT ON TYPE awa.ring_history_job
	IS 'internal (the ring): a finished job kept in awa.ring_history, the columns of awa.jobs';

CREATE TABLE awa.ring_history (
	id_lo			bigint NOT NULL,		-- the lowest and highest id of the batch
	id_hi			bigint NOT NULL,
	failed			boolean NOT NULL,		-- retention class: failed or cancelled jobs; else completed ones
	finalized_hi	timestamptz NOT NULL,	-- the newest finalized_at of the batch: it expires after it
	jobs			awa.ring_history_job[] NOT NULL,	-- by id
	CONSTRAINT ring_history_ids CHECK (id_lo <= id_hi)
);
-- lookup by id: the batches whose range holds it (ranges of batches of different slots may overlap)
CREATE INDEX ring_history_id_idx ON awa.ring_history USING gist (int8range(id_lo, id_hi, '[]'));
-- expiry
CREATE INDEX ring_history_expiry_idx ON awa.ring_history (failed, finalized_hi);
COMMENT ON TABLE awa.ring_history
	IS 'internal (the ring, not in use yet): finished jobs kept for their retention after their slot was reclaimed, in batches';

CREATE FUNCTION awa.ring_history_expire()
RETURNS TABLE (batches bigint, jobs bigint)
AS 'MODULE_PATHNAME', 'awa_ring_history_expire'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_history_expire()
	IS 'internal (the ring): delete the batches of awa.ring_history whose newest job is past its retention (awa.retention_completed, awa.retention_failed); their jobs leave the counters and let go of their unique keys';
-- The ring: the maintenance round (ring_maint.c; docs/storage.md, "Step 5: the maintenance round on the ring") ---
-- awa_maintain() runs the ring's maintenance functions when the ring is in use (no relation of its own: a job's
-- hard timeout is the timeout column of its rows, which caps each attempt's deadline; docs/storage.md, "Step 5:
-- timeouts, history and lag, wake-ups on the ring").

-- The ring: retry, cancel by unique key, external waits (ring_ext.c; docs/storage.md, "Step 5: retry, ...") ---
-- Internal like the rest of the ring.  A running attempt may park in waiting_external: its done row
-- 'waiting_external' (after_wait false, so that it and every other end of the running attempt exclude each
-- other), then one more done row (after_wait true) ends the wait: complete_external (completed, its result),
-- fail_external (failed), retry_external or the callback timeout (retryable or failed), cancel (cancelled) or
-- awa.ring_retry (available; the new ready row follows).  Callback ids and timeouts are rows appended to
-- awa.callbacks (nothing is updated): a registration, a heartbeat of the callback, a park, the payload of a
-- callback that failed or retried the job; the newest row of a job holds its current callback (key, lease,
-- timeout), the newest row of an attempt with a deadline its wait's deadline.
ALTER TABLE awa.done ADD COLUMN result jsonb;
ALTER TABLE awa.done ADD COLUMN attempt integer;
COMMENT ON COLUMN awa.done.attempt
	IS 'the attempt number of a retryable or failed end (its ready row''s attempt + 1; run_lease also counts snoozes): the error''s attempt in awa.jobs.errors; NULL: run_lease';
COMMENT ON COLUMN awa.done.result IS 'what the attempt produced (awa.ring_complete_external''s payload)';
COMMENT ON COLUMN awa.done.after_wait
	IS 'true: the end of the wait of an attempt parked in waiting_external (its first done row); one of each per attempt';

CREATE TABLE awa.callbacks (
	slot			smallint NOT NULL,
	job_id			bigint NOT NULL,
	run_lease		bigint NOT NULL,
	written_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	at				timestamptz NOT NULL,
	kind			text NOT NULL,
	callback_key	bytea NOT NULL,
	timeout			interval NOT NULL,
	deadline_at		timestamptz,
	payload			jsonb,
	CONSTRAINT callbacks_kind CHECK (kind IN ('register', 'heartbeat', 'wait', 'payload'))
) PARTITION BY LIST (slot);
-- a callback by its id's SHA-256; a job's newest row; an attempt's newest deadline
CREATE INDEX callbacks_key_idx ON awa.callbacks (callback_key, written_at);
CREATE INDEX callbacks_job_idx ON awa.callbacks (job_id, written_at);
CREATE INDEX callbacks_attempt_idx ON awa.callbacks (job_id, run_lease, written_at) WHERE deadline_at IS NOT NULL;
COMMENT ON TABLE awa.callbacks
	IS 'internal (the ring, not in use yet): one row per callback registration, callback heartbeat, park and callback payload of an attempt, by the slot of its receipt; the newest row of a job is its current callback';
CREATE TABLE awa.callbacks_0 PARTITION OF awa.callbacks FOR VALUES IN (0);
CREATE TABLE awa.callbacks_1 PARTITION OF awa.callbacks FOR VALUES IN (1);
CREATE TABLE awa.callbacks_2 PARTITION OF awa.callbacks FOR VALUES IN (2);
CREATE TABLE awa.callbacks_3 PARTITION OF awa.callbacks FOR VALUES IN (3);

CREATE FUNCTION awa.ring_retry(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_retry'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_retry(bigint)
	IS 'internal (the ring): make a failed, cancelled or waiting_external job available now with its attempts reset (a new ready row; a parked job''s wait ends first); false in any other state; 22023 id null, P0002 unknown id, 23505 a unique job whose key another job holds';

CREATE FUNCTION awa.ring_cancel_by_unique_key(kind text, args jsonb DEFAULT NULL, queue text DEFAULT NULL,
	unique_period interval DEFAULT NULL, run_at timestamptz DEFAULT NULL)
RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'awa_ring_cancel_by_unique_key'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_cancel_by_unique_key(text, jsonb, text, interval, timestamptz)
	IS 'internal (the ring): cancel (as awa.ring_cancel) the job that has not ended and holds the unique key built from these parts (args: by args, queue: by queue, unique_period + run_at, default the transaction''s start: by period); returns its id, no row if none; 22023 kind null or not 1 to 200 characters, queue not 1 to 200 characters, unique_period not positive';

CREATE FUNCTION awa.ring_register_callback(id bigint, run_lease bigint, timeout interval)
RETURNS uuid
AS 'MODULE_PATHNAME', 'awa_ring_register_callback'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_register_callback(bigint, bigint, interval)
	IS 'internal (the ring): give the attempt running under this lease a new callback id (a random version 4 uuid, replacing the job''s earlier one; only its SHA-256 is kept) and the timeout of its wait (> 0, at most 36500 days); NULL if that attempt is not running; 22023 an argument null or a bad timeout';

CREATE FUNCTION awa.ring_wait_external(id bigint, run_lease bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_wait_external'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_wait_external(bigint, bigint)
	IS 'internal (the ring): park the attempt running under this lease in waiting_external until its callback comes or its callback timeout (from now) passes; false if that attempt is not running (also when its callback already resolved it); 22023 an argument null, 55000 no callback registered under this lease';

CREATE FUNCTION awa.ring_complete_external(callback_id uuid, payload jsonb DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_complete_external'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_complete_external(uuid, jsonb)
	IS 'internal (the ring): complete the job waiting for this callback (parked, or still running under the lease it was registered with), payload its result; false if no job waits for it; 22023 callback_id null, 54000 payload larger than awa.max_args_bytes';

CREATE FUNCTION awa.ring_fail_external(callback_id uuid, error text, payload jsonb DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_fail_external'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_fail_external(uuid, text, jsonb)
	IS 'internal (the ring): fail the job waiting for this callback for good: error (cut to awa.max_error_bytes) joins its errors, payload becomes its callback_payload; false if no job waits for it; 22023 callback_id or error null, 54000 payload too large';

CREATE FUNCTION awa.ring_retry_external(callback_id uuid, payload jsonb DEFAULT NULL, retry_in interval DEFAULT NULL)
RETURNS awa.job_state
AS 'MODULE_PATHNAME', 'awa_ring_retry_external'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_retry_external(uuid, jsonb, interval)
	IS 'internal (the ring): run the job waiting for this callback again: retryable at now() + retry_in (0 to 36500 days; NULL: the default backoff), failed when it has no attempts left; payload becomes its callback_payload; the new state, NULL if no job waits for it; 22023 callback_id null or a bad retry_in, 54000 payload too large';

CREATE FUNCTION awa.ring_heartbeat_callback(callback_id uuid, timeout interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_heartbeat_callback'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_heartbeat_callback(uuid, interval)
	IS 'internal (the ring): the outside system is still at work: a parked job''s callback deadline becomes now() + timeout (> 0, at most 36500 days; NULL: the timeout registered), which a still running job keeps for when it parks; false if no job waits for this callback; 22023 callback_id null or a bad timeout';

CREATE FUNCTION awa.ring_callback_timeouts(max integer DEFAULT 1000)
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_ring_callback_timeouts'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_callback_timeouts(integer)
	IS 'internal (the ring): end the wait of up to max (1..10000) parked jobs whose callback deadline has passed, as awa''s maintenance does (retryable after the default backoff, or failed when out of attempts; error "callback timed out"), skipping jobs a callback is resolving; returns how many';

-- The ring: a job's other attributes (docs/storage.md, "Step 5: ...") ------------------------------------------
-- awa.ring_insert takes awa_insert's arguments; a job's hard timeout, group and concurrency key are kept on each
-- of its rows, checked by awa_insert's code (no CHECK constraints: the hot path pays for none).
ALTER TABLE awa.ready ADD COLUMN timeout interval, ADD COLUMN group_id text, ADD COLUMN concurrency_key text;
ALTER TABLE awa.scheduled ADD COLUMN timeout interval, ADD COLUMN group_id text, ADD COLUMN concurrency_key text;
COMMENT ON COLUMN awa.ready.timeout IS 'the hard limit of each attempt (awa_insert''s timeout), or NULL';
COMMENT ON COLUMN awa.ready.group_id IS 'the group the job belongs to (awa_insert''s group_id), or NULL';
COMMENT ON COLUMN awa.ready.concurrency_key IS 'the job''s per-key limit key (awa_insert''s concurrency_key), or NULL';
-- A ready or scheduled row at run_lease's maximum could never be claimed (a claim gives run_lease + 1): refused when
-- it is written (only a write behind awa's back can make one), so that no such row stops its queue's claims.
ALTER TABLE awa.ready ADD CONSTRAINT ready_run_lease CHECK (run_lease < 9223372036854775807);
ALTER TABLE awa.scheduled ADD CONSTRAINT scheduled_run_lease CHECK (run_lease < 9223372036854775807);
-- Nor one with no attempts left (attempt counts those made before it; a claim gives attempt + 1, past max_attempts):
-- every row awa writes has attempts left (a retry or rescue with none left ends the job failed instead).
ALTER TABLE awa.ready ADD CONSTRAINT ready_attempts CHECK (attempt < max_attempts);
ALTER TABLE awa.scheduled ADD CONSTRAINT scheduled_attempts CHECK (attempt < max_attempts);

-- The ring: dependencies and groups (ring_deps.c; docs/storage.md, "Step 5: dependencies and groups on the ring") --
-- Side tables of their own (awa.jobs' dependency and group tables and triggers never see a ring job).  A dependent
-- that waits is a scheduled row at run_at 9999-12-30 UTC, never due; the trigger on awa.done releases (promotes)
-- or cancels it when its parents end for good, and enqueues a ring group's callback when its last job ends.
CREATE TABLE awa.ring_dependencies (
	job_id		bigint NOT NULL,
	parent_id	bigint NOT NULL,
	satisfied	boolean NOT NULL DEFAULT false,
	PRIMARY KEY (job_id, parent_id)
);
-- the finishing trigger: a probe per statement that ends jobs, for their edges not yet satisfied; awa.ring_dependents
-- (hook: rresults -- every edge of a parent, so not partial: satisfied is not indexed, its UPDATE can be HOT)
CREATE INDEX ring_dependencies_parent_idx ON awa.ring_dependencies (parent_id, job_id);
COMMENT ON TABLE awa.ring_dependencies
	IS 'internal (the ring, not in use yet): one row per ring job and ring job it runs after (parent); satisfied: the parent completed, or failed or was cancelled under the policy run';

CREATE TABLE awa.ring_dependents (
	job_id				bigint PRIMARY KEY,
	waiting_for			integer NOT NULL,
	on_parent_failure	text NOT NULL,
	run_at				timestamptz,
	CONSTRAINT ring_dependents_waiting_for CHECK (waiting_for >= 0),
	CONSTRAINT ring_dependents_on_parent_failure CHECK (on_parent_failure IN ('cancel', 'run', 'wait'))
);
COMMENT ON TABLE awa.ring_dependents
	IS 'internal (the ring, not in use yet): one row per ring job that runs after others: how many parents it still waits for, its policy for a failed or cancelled parent, the run_at its producer asked for';

CREATE TABLE awa.ring_group_jobs (
	job_id		bigint PRIMARY KEY,
	group_id	text NOT NULL
);
-- a group's members newest first (the finished check stops at the first unfinished one), and its stats
CREATE INDEX ring_group_jobs_group_idx ON awa.ring_group_jobs (group_id, job_id);
COMMENT ON TABLE awa.ring_group_jobs
	IS 'internal (the ring, not in use yet): one row per ring job enqueued with a group_id';

CREATE TABLE awa.ring_group_callbacks (
	group_id		text PRIMARY KEY,
	kind			text NOT NULL,
	args			jsonb NOT NULL,
	queue			text NOT NULL,
	priority		smallint NOT NULL,
	max_attempts	smallint NOT NULL,
	metadata		jsonb NOT NULL,
	registered_at	timestamptz NOT NULL DEFAULT now(),
	finished_at		timestamptz,
	callback_job_id	bigint
);
COMMENT ON TABLE awa.ring_group_callbacks
	IS 'internal (the ring, not in use yet): the ring job to enqueue when every ring job of a group has finished (awa.ring_group_on_finish); callback_job_id and finished_at are set when it is enqueued';

CREATE FUNCTION awa.ring_deps_finished()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_ring_deps_finished'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_deps_finished()
	IS 'internal (the ring): AFTER INSERT FOR EACH STATEMENT trigger of awa.done: ring jobs that completed, failed or were cancelled release or cancel the ring jobs that run after them, and may finish their groups (the callback job)';
CREATE TRIGGER done_ring_deps AFTER INSERT ON awa.done REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_deps_finished();

CREATE FUNCTION awa.ring_parent_results(job_id bigint)
RETURNS TABLE (
	parent_id		bigint,
	kind			text,
	state			awa.job_state,
	satisfied		boolean,
	result			jsonb,
	finalized_at	timestamptz)
AS 'MODULE_PATHNAME', 'awa_ring_parent_results'
LANGUAGE C STABLE;
COMMENT ON FUNCTION awa.ring_parent_results(bigint)
	IS 'internal (the ring): the ring jobs a ring job runs after, in id order: kind, state, satisfied, result (the completion''s payload) and finalized_at, as awa_parent_results; kind and state NULL for a parent the ring no longer holds; 22023 for a NULL job_id';

CREATE FUNCTION awa.ring_group_stats(group_id text)
RETURNS TABLE (
	total				bigint,
	scheduled			bigint,
	available			bigint,
	running				bigint,
	completed			bigint,
	retryable			bigint,
	failed				bigint,
	cancelled			bigint,
	waiting_external	bigint,
	unfinished			bigint,
	callback_job_id		bigint,
	finished_at			timestamptz)
AS 'MODULE_PATHNAME', 'awa_ring_group_stats'
LANGUAGE C STABLE;
COMMENT ON FUNCTION awa.ring_group_stats(text)
	IS 'internal (the ring): one row, the ring jobs of a group by state at the caller''s snapshot and its ring callback''s job id and time, as awa_group_stats; 22023 for a NULL group_id or one not 1 to 200 characters';

CREATE FUNCTION awa.ring_group_on_finish(
	group_id text,
	kind text,
	args jsonb DEFAULT '{}',
	queue text DEFAULT 'default',
	priority integer DEFAULT 2,
	max_attempts integer DEFAULT 25,
	metadata jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_ring_group_on_finish'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_group_on_finish(text, text, jsonb, text, integer, integer, jsonb)
	IS 'internal (the ring): enqueue a ring job (awa.ring_insert; metadata gains finished_group) once every ring job of the group has finished, as awa_group_on_finish; returns its id when none is unfinished now, else NULL; 22023 on a NULL argument or a bad field, 42710 if the group has a ring callback already';
-- The ring: priority aging and several queues (ring_claim.c; docs/storage.md, "Step 5: priority aging and several
-- queues on the ring") ---
-- awa.ring_claim and its blocking form over several queues (NULL: every queue with ready or scheduled rows), in the
-- single-queue order (effective priority under awa.priority_aging_interval, run_at, id) across all of them.
CREATE FUNCTION awa.ring_claim(
	queues text[],
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	worker text DEFAULT NULL)
RETURNS TABLE (id bigint, run_lease bigint, attempt integer, kind text, queue text, args jsonb,
	priority integer, run_at timestamptz)
AS 'MODULE_PATHNAME', 'awa_ring_claim_queues'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_claim(text[], integer, interval, text)
	IS 'internal (the ring): claim up to batch due jobs of any of the queues (NULL: every queue with rows on the ring) in the single-queue order across all; 22023 naming a bad argument or an empty array, 22004 for a NULL element';

CREATE PROCEDURE awa.ring_claim_wait(
	queues text[],
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	worker text DEFAULT NULL,
	wait interval DEFAULT '30 seconds',
	INOUT jobs jsonb DEFAULT NULL)
AS 'MODULE_PATHNAME', 'awa_ring_claim_wait_queues'
LANGUAGE C;
COMMENT ON PROCEDURE awa.ring_claim_wait(text[], integer, interval, text, interval, jsonb)
	IS 'internal (the ring): awa.ring_claim(queues text[], ...) that, with nothing to claim, commits and sleeps (no snapshot held) until a commit makes a job of one of the queues claimable, one of their scheduled jobs comes due, or wait ends; errors as awa.ring_claim(text[], ...) and awa.ring_claim_wait';

-- The ring: results and dependents (ring_results.c; docs/storage.md, "Step 5: results and dependents on the ring") --
-- A completion's result goes into its done row (awa.done.result), written once with the completion.
CREATE FUNCTION awa.ring_complete_results(ids bigint[], run_leases bigint[], results jsonb[])
RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'awa_ring_complete_results'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION awa.ring_complete_results(bigint[], bigint[], jsonb[])
	IS 'internal (the ring): complete the attempts (ids[i], run_leases[i]) that are running, results[i] (NULL: none) stored as job i''s result; returns their ids; 22023 on arrays not one-dimensional or of different lengths, 54000 on a result larger than awa.max_args_bytes';

CREATE FUNCTION awa.ring_dependents(job_id bigint)
RETURNS TABLE (
	dependent_id		bigint,
	kind				text,
	state				awa.job_state,
	satisfied			boolean,
	waiting_for			integer,
	on_parent_failure	text)
AS 'MODULE_PATHNAME', 'awa_ring_dependents'
LANGUAGE C STABLE;
COMMENT ON FUNCTION awa.ring_dependents(bigint)
	IS 'internal (the ring): the ring jobs that run after a ring job, in id order: kind, state, whether this job no longer holds them back, how many parents each still waits for, its on_parent_failure policy, as awa_dependents; kind and state NULL for one the ring no longer holds; 22023 for a NULL job_id';
-- The ring: per-key limits and rates (ring_keys.c; docs/storage.md, "Step 5: per-key limits and rates on the ring") ---
-- The ring's claim admits a job with a concurrency key as awa_claim does (keylimit.c: the rules of awa.key_limits,
-- the key's advisory lock, its rate in shared memory); a key's running ring attempts are counted from this side
-- table, one row per attempt claimed with a key (written by the claim under the key's lock), read by index under
-- that lock.  A row whose attempt has ended (a done row, or no receipt left) is deleted by the next count of its key:
-- the ring's own relations are never updated, and completions pay nothing.
CREATE TABLE awa.ring_key_running (
	job_id			bigint NOT NULL,
	run_lease		bigint NOT NULL,
	concurrency_key	text NOT NULL,
	PRIMARY KEY (job_id, run_lease)
);
CREATE INDEX ring_key_running_key_idx ON awa.ring_key_running (concurrency_key);
COMMENT ON TABLE awa.ring_key_running
	IS 'internal (the ring): one row per attempt the ring''s claim admitted with a concurrency key, until the next count of its key finds it ended';

CREATE FUNCTION awa.ring_key_admit(key text, kind text, id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_key_admit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_key_admit(text, text, bigint)
	IS 'internal to awa.ring_claim: whether a locked ready row with this key may run now (awa.concurrency_key_admit''s rules; counts it if so); 55000 outside a ring claim';

-- Ordered keys: every ring job with a key that has had a ready or scheduled row, by key and id, written by the
-- statement triggers below; the rows of jobs found finished are deleted by the claim that looks for an earlier live
-- job of the key (ring_keys.c, awa_ring_keys_earlier).
CREATE TABLE awa.ring_key_live (
	concurrency_key	text NOT NULL,
	job_id			bigint NOT NULL,
	PRIMARY KEY (concurrency_key, job_id)
);
COMMENT ON TABLE awa.ring_key_live
	IS 'internal (the ring): the ring jobs of each concurrency key that may be live, for ordered keys; a row of a finished job lasts until a claim of the key finds it so';

CREATE FUNCTION awa.ring_keys_live()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_ring_keys_live'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_keys_live()
	IS 'internal (the ring): AFTER INSERT FOR EACH STATEMENT trigger of awa.ready and awa.scheduled: the keyed rows'' (concurrency_key, id) into awa.ring_key_live';
CREATE TRIGGER ready_keys_live AFTER INSERT ON awa.ready REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_keys_live();
CREATE TRIGGER scheduled_keys_live AFTER INSERT ON awa.scheduled REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_keys_live();


-- The ring: leases and side-table upkeep (ring_lease.c, ring_maint.c; docs/storage.md, "Step 5: leases, messages
-- and side-table upkeep") ---
-- A beat's lease (the one given, else its claim's), so that the rescue decides as awa.jobs' rescue does with the
-- rescuer's awa.heartbeat_timeout: due when the latest heartbeat + its lease has passed, or the heartbeat is older
-- than that setting.  NULL (beats written before the column): the claim's lease.
ALTER TABLE awa.beats ADD COLUMN lease interval;
COMMENT ON COLUMN awa.beats.lease IS 'internal (the ring): the lease this heartbeat renewed the attempt by (NULL: the claim''s)';


-- The maintenance round's upkeep of the ring's side tables (ring_maint.c): where its walk of each stopped, by the
-- table's key (NULL: at the start).  Rows of attempts that ended (awa.ring_key_running), of jobs no longer live
-- (awa.ring_key_live), and of jobs that are gone (awa.ring_dependencies by job_id, awa.ring_dependents,
-- awa.ring_group_jobs) are deleted a batch per table per round.
CREATE TABLE awa.ring_upkeep_mark (
	side		text PRIMARY KEY,
	after_key	text,
	after_id	bigint,
	after_id2	bigint
);
COMMENT ON TABLE awa.ring_upkeep_mark
	IS 'internal (the ring): per side table, the key after which the maintenance round''s next upkeep batch starts (NULL: the start)';
INSERT INTO awa.ring_upkeep_mark (side)
	VALUES ('ring_key_running'), ('ring_key_live'), ('ring_dependencies'), ('ring_dependents'), ('ring_group_jobs');


-- awa_retry_failed on the ring engine retries the failed jobs it read; one deleted meanwhile (awa_discard_failed,
-- a DELETE) is passed over as awa.jobs' UPDATE passes over it (engine_admin.c), not an error.
CREATE FUNCTION awa.ring_retry(id bigint, missing_ok boolean)
RETURNS boolean
AS 'MODULE_PATHNAME', 'awa_ring_retry'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION awa.ring_retry(bigint, boolean)
	IS 'internal (the ring): awa.ring_retry(id), but with missing_ok false (not P0002) for a job the ring does not hold; 22023 id or missing_ok null';

-- The ring: moving a database's jobs into the ring (ring_adopt.c; docs/storage.md, "Step 5: moving a database's jobs
-- into the ring") ---
-- Called by src/sql/engine.sql, with which both the install script and the upgrade script end, while
-- awa.install_engine is 'ring': every job of the table awa.jobs becomes the ring's rows of its state, in one
-- transaction, before awa.jobs becomes the ring's view.  Internal: superuser only, granted to no role.
CREATE FUNCTION awa.ring_adopt_jobs()
RETURNS bigint
AS 'MODULE_PATHNAME', 'awa_ring_adopt_jobs'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_adopt_jobs()
	IS 'internal (the ring): move every job of the table awa.jobs into the ring (finished ones into awa.ring_history), its unique keys, dependencies, groups and per-key rows with it, rebuild the counters by one fold and empty the table; returns how many jobs moved; 42501 not a superuser, 55000 awa.install_engine not ring, awa.jobs not a table, the ring not empty or a job it cannot hold (named; nothing moved)';

-- The ring: the view (docs/storage.md, "Step 4: reading the ring, counters") ------------------------------
-- Every column of awa.jobs, in its order and with its type.  A job is the newest attempt of its id: the ready row
-- with the highest run_lease, its receipt (running) and its done row (ended).  The inner UNION ALL has one branch
-- per kind of state, each starting from the relation that holds it and stating its state as a constant or a
-- column, so that a filter on state (or queue) reaches the branch and its index: done rows (their own state;
-- failed, cancelled and waiting_external through done_ended_idx), receipts without a done row (running), ready
-- rows without either (available: a job due later is a row of awa.scheduled).  The outer part reads the attempt's
-- ready row, the job's newest receipt (attempted_at, claimed_by and lease also of an earlier attempt, as
-- awa.jobs keeps them) and the errors of its failed attempts.  Every lookup is an index probe of a correlated
-- subquery (never pulled up into a join): a lookup by id reads a few index pages of each slot.  Columns the
-- ring does not store yet are NULL (docs/storage.md, "Step 4: reading the ring, counters").
CREATE VIEW awa.ring_live_jobs AS
SELECT k.id, r.kind, k.queue, r.args, k.state, r.priority,
	-- a snoozed attempt is not counted (awa_snooze), a claimed one is
	(r.attempt + CASE WHEN cn AND k.state <> 'scheduled' THEN 1 ELSE 0 END)::smallint AS attempt,
	r.max_attempts,
	-- a retry or a snooze waiting in awa.scheduled: its next run_at
	coalesce((SELECT s.run_at FROM awa.scheduled s WHERE s.id = k.id AND s.run_lease = k.ready_lease + 1),
		r.run_at) AS run_at,
	-- the newest beat of the attempt (awa.beats, below) gives heartbeat_at and deadline_at, else its receipt;
	-- deadline_at as awa.jobs shows it: that time + the lease, never after attempted_at + the job's timeout (the
	-- stored deadline_at of a receipt or beat is the rescue's key, also capped by awa.heartbeat_timeout; a beat
	-- without a lease, moved from awa.jobs, keeps awa.jobs' deadline_at)
	-- hook: rext -- parked: the wait's newest deadline (awa.callbacks); ended by a callback (after_wait): none
	CASE WHEN k.state = 'waiting_external' THEN (SELECT w.at FROM awa.callbacks w WHERE w.job_id = k.id
		AND w.run_lease = k.ready_lease + 1 AND w.deadline_at IS NOT NULL ORDER BY w.written_at DESC LIMIT 1)
		WHEN cn AND (k.state = 'running' OR (k.state = 'completed' AND NOT k.after_wait))
		THEN coalesce((SELECT b.at FROM awa.beats b
		WHERE b.job_id = k.id AND b.run_lease = c.run_lease ORDER BY b.at DESC LIMIT 1), c.claimed_at) END
		AS heartbeat_at,
	CASE WHEN k.state = 'waiting_external' THEN (SELECT w.deadline_at FROM awa.callbacks w WHERE w.job_id = k.id
		AND w.run_lease = k.ready_lease + 1 AND w.deadline_at IS NOT NULL ORDER BY w.written_at DESC LIMIT 1)
		WHEN cn AND (k.state = 'running' OR (k.state = 'completed' AND NOT k.after_wait))
		THEN coalesce((SELECT CASE WHEN b.lease IS NULL THEN b.deadline_at
			ELSE LEAST(b.at + b.lease, c.claimed_at + r.timeout) END FROM awa.beats b
		WHERE b.job_id = k.id AND b.run_lease = c.run_lease ORDER BY b.at DESC LIMIT 1),
		LEAST(c.claimed_at + c.lease, c.claimed_at + r.timeout)) END
		AS deadline_at,
	c.claimed_at AS attempted_at,
	CASE WHEN k.state NOT IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')
		THEN k.finalized_at END AS finalized_at,
	r.created_at,
	coalesce(ARRAY(SELECT pg_catalog.jsonb_build_object('attempt', CASE WHEN e.state = 'cancelled'
			THEN (SELECT a.attempt FROM awa.ready a WHERE a.id = e.job_id AND a.run_lease = e.run_lease - 1
				AND a.slot = e.slot LIMIT 1) ELSE coalesce(e.attempt, e.run_lease) END,
			'error', CASE WHEN m.marked THEN e.error -> 'error' ELSE e.error END, 'at', e.finalized_at)
			-- an error cut at awa.max_error_bytes: its marks (truncated, error_bytes) as awa.jobs' (ring.h)
			|| CASE WHEN m.marked THEN e.error - 'error' ELSE '{}'::jsonb END
		FROM awa.done e
		CROSS JOIN LATERAL (SELECT pg_catalog.jsonb_typeof(e.error) = 'object'
			AND e.error ?& '{error,truncated,error_bytes}'::text[] AS marked) m
		WHERE e.job_id = k.id AND (e.state IN ('retryable', 'failed')
			-- hook: rresults -- a job cancelled because a job it runs after failed: the error says why
			OR (e.state = 'cancelled' AND e.error IS NOT NULL))
			-- an error dropped by awa.max_errors_kept (ring.h): its done row stays, not in errors
			AND e.error IS DISTINCT FROM 'false'::jsonb
		ORDER BY e.finalized_at, e.run_lease), '{}') AS errors,
	r.metadata, r.tags,
	r.unique_key, r.unique_states,
	k.ready_lease + CASE WHEN cn THEN 1 ELSE 0 END AS run_lease,
	-- the job's newest progress, of any attempt (a beat carries it forward: ring_lease.c)
	(SELECT b.progress FROM awa.beats b WHERE b.job_id = k.id ORDER BY b.run_lease DESC, b.at DESC LIMIT 1)
		AS progress,
	c.claimed_by, c.lease,
	r.timeout,
	-- hook: rext -- the result of a completion, the job's current callback (its newest row), the newest payload
	CASE WHEN k.state = 'completed' THEN k.result END AS result,
	cb.callback_key, cb.run_lease AS callback_lease, cb.timeout AS callback_timeout,
	(SELECT p.payload FROM awa.callbacks p WHERE p.job_id = k.id AND p.kind = 'payload'
		ORDER BY p.written_at DESC LIMIT 1) AS callback_payload,
	r.group_id, r.concurrency_key
FROM (
	-- ended: the done row of the newest attempt (hook: rext -- a waiting_external row only while its wait lasts)
	SELECT d.job_id AS id, d.run_lease - 1 AS ready_lease, d.slot, d.state, q.queue, d.finalized_at,
		d.after_wait, d.result
	FROM awa.done d
	CROSS JOIN LATERAL (SELECT q.queue FROM awa.ready q
		WHERE q.id = d.job_id AND q.run_lease = d.run_lease - 1 AND q.slot = d.slot LIMIT 1) q
	WHERE d.run_lease - 1 = (SELECT n.run_lease FROM awa.ready n WHERE n.id = d.job_id
		ORDER BY n.run_lease DESC LIMIT 1)
		AND (d.after_wait OR d.state <> 'waiting_external'
			OR (SELECT 1 FROM awa.done x WHERE x.job_id = d.job_id AND x.run_lease = d.run_lease
				AND x.slot = d.slot AND x.after_wait LIMIT 1) IS NULL)
	UNION ALL
	-- running: a receipt of the newest attempt and no done row
	SELECT c.job_id, c.run_lease - 1, c.slot, 'running'::awa.job_state, q.queue, NULL::timestamptz, false, NULL::jsonb
	FROM awa.claims c
	CROSS JOIN LATERAL (SELECT q.queue FROM awa.ready q
		WHERE q.id = c.job_id AND q.run_lease = c.run_lease - 1 AND q.slot = c.slot LIMIT 1) q
	WHERE (SELECT 1 FROM awa.done x WHERE x.job_id = c.job_id AND x.run_lease = c.run_lease AND x.slot = c.slot
			LIMIT 1) IS NULL
		AND c.run_lease - 1 = (SELECT n.run_lease FROM awa.ready n WHERE n.id = c.job_id
			ORDER BY n.run_lease DESC LIMIT 1)
	UNION ALL
	-- waiting: the newest ready row, neither receipt nor done row
	SELECT w.id, w.run_lease, w.slot, 'available'::awa.job_state, w.queue, NULL::timestamptz, false, NULL::jsonb
	FROM awa.ready w
	WHERE w.run_at > '-infinity'	-- every ready row: lets a filter on queue use the claim index
		AND (SELECT 1 FROM awa.claims x WHERE x.job_id = w.id AND x.run_lease = w.run_lease + 1 AND x.slot = w.slot
			LIMIT 1) IS NULL
		AND (SELECT 1 FROM awa.done x WHERE x.job_id = w.id AND x.run_lease = w.run_lease + 1 AND x.slot = w.slot
			LIMIT 1) IS NULL
		AND w.run_lease = (SELECT n.run_lease FROM awa.ready n WHERE n.id = w.id ORDER BY n.run_lease DESC LIMIT 1)
) k
CROSS JOIN LATERAL (SELECT r.kind, r.args, r.priority, r.attempt, r.max_attempts, r.run_at, r.created_at,
		r.metadata, r.tags, r.unique_key, r.unique_states, r.timeout, r.group_id, r.concurrency_key
	FROM awa.ready r WHERE r.id = k.id AND r.run_lease = k.ready_lease AND r.slot = k.slot LIMIT 1) r
LEFT JOIN LATERAL (SELECT c.claimed_at, c.deadline_at, c.lease, c.claimed_by, c.run_lease
	FROM awa.claims c WHERE c.job_id = k.id ORDER BY c.run_lease DESC LIMIT 1) c ON true
CROSS JOIN LATERAL (SELECT c.run_lease IS NOT DISTINCT FROM k.ready_lease + 1 AS cn) n
LEFT JOIN LATERAL (SELECT cb.callback_key, cb.run_lease, cb.timeout
	FROM awa.callbacks cb WHERE cb.job_id = k.id ORDER BY cb.written_at DESC LIMIT 1) cb ON true	-- hook: rext
UNION ALL
-- scheduled: a job enqueued for later and never made ready (a row of awa.scheduled with run_lease 0)
SELECT s.id, s.kind, s.queue, s.args, s.state, s.priority, s.attempt, s.max_attempts, s.run_at,
	NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, s.created_at, '{}'::jsonb[],
	s.metadata, s.tags, s.unique_key, s.unique_states, s.run_lease, NULL::jsonb, NULL::text, NULL::interval,
	s.timeout, NULL::jsonb,
	NULL::bytea, NULL::bigint, NULL::interval, NULL::jsonb, s.group_id, s.concurrency_key
FROM awa.scheduled s
WHERE s.run_lease = 0;
COMMENT ON VIEW awa.ring_live_jobs
	IS 'internal (the ring): every ring job''s newest attempt in the slots and awa.scheduled as a row of awa.jobs'' shape (columns the ring does not store yet: NULL)';

-- hook: rhist -- every ring job: the slots and awa.scheduled (above), and the finished jobs kept in
-- awa.ring_history after their slot was reclaimed (no job is in both).  A lookup by id reads awa.ring_live_jobs
-- and the history batch by its id range (awa.ring_get): here the id is a column of the unnested batch.
CREATE VIEW awa.ring_jobs AS
SELECT * FROM awa.ring_live_jobs
UNION ALL
SELECT j.* FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) j;
COMMENT ON VIEW awa.ring_jobs
	IS 'internal (the ring): every ring job''s newest attempt as a row of awa.jobs'' shape (columns the ring does not store yet: NULL)';

-- The counters against a recount of awa.ring_jobs and awa.jobs, at the caller's snapshot: one row per queue
-- and state (completed: completed_last_hour; lag_us: lag_seconds in microseconds) whose counts differ.  No row:
-- they agree.  (The ring's part of lag_seconds is read with the newest snapshot, docs/storage.md "Step 5:
-- timeouts, history and lag, wake-ups on the ring": equal when nothing commits meanwhile.)
CREATE FUNCTION awa.ring_recount()
RETURNS TABLE (queue text, state text, counted bigint, recounted bigint)
LANGUAGE sql STABLE
BEGIN ATOMIC
	WITH s AS (SELECT s.queue, v.state, v.n FROM awa_queue_stats() s
			CROSS JOIN LATERAL (VALUES ('scheduled', s.scheduled), ('available', s.available),
				('running', s.running), ('retryable', s.retryable), ('failed', s.failed),
				('cancelled', s.cancelled), ('waiting_external', s.waiting_external),
				('completed', s.completed_last_hour), ('lag_us', (s.lag_seconds * 1000000)::bigint)) v(state, n)
			WHERE v.n <> 0),
		j AS (SELECT j.queue, j.state::text AS state, count(*) AS n
			FROM (SELECT a.queue, a.state, a.finalized_at FROM awa.jobs a
				UNION ALL SELECT b.queue, b.state, b.finalized_at FROM awa.ring_jobs b) j
			WHERE j.state <> 'completed' OR j.finalized_at > now() - interval '1 hour'
			GROUP BY 1, 2
			UNION ALL
			-- lag_seconds as awa_queue_stats() computes it, of the oldest available job of either engine
			SELECT j.queue, 'lag_us',
				(greatest(extract(epoch FROM now()) - extract(epoch FROM min(j.run_at)), 0)::float8 * 1000000)::bigint
			FROM (SELECT a.queue, a.run_at FROM awa.jobs a WHERE a.state = 'available'
				UNION ALL SELECT b.queue, b.run_at FROM awa.ring_jobs b WHERE b.state = 'available') j
			GROUP BY 1)
	SELECT coalesce(s.queue, j.queue), coalesce(s.state, j.state), coalesce(s.n, 0), coalesce(j.n, 0)
	FROM s FULL JOIN j ON s.queue = j.queue AND s.state = j.state
	WHERE coalesce(s.n, 0) <> coalesce(j.n, 0)
	ORDER BY 1, 2;
END;
COMMENT ON FUNCTION awa.ring_recount()
	IS 'internal (the ring): the (queue, state) whose counts in awa_queue_stats() differ from a recount of awa.jobs and awa.ring_jobs (completed: the last hour; lag_us: lag_seconds in microseconds); no row when they agree';

-- The ring: dump and restore (ring_dump.c; docs/storage.md, "Step 5: dump and restore of the ring") ----------
-- On the ring engine, the ring's relations are the extension's configuration (engine.sql marks them for pg_dump):
-- a restore loads their rows after CREATE EXTENSION with COPY, each partition of a partitioned one on its own.
-- awa.ring_slots' rows, which this script writes, are replaced by the dump's (awa.ring_slots_restore); the
-- triggers that derive state from new rows (counts, live keys) stand aside during a COPY (ring_dump.c), and the
-- counters are recounted after the load of each relation that holds jobs' states (awa.ring_restore_counting).
-- Not dumped: the counters (their rows carry transaction ids and snapshots of the dumped cluster), the rescue's
-- and the upkeep's kept positions (a restore starts them over: they only say where a walk resumes).

-- The per-key limits (awa_set_key_limit) are settings of either engine: a restore keeps them.
SELECT pg_catalog.pg_extension_config_dump('awa.key_limits', '');

CREATE FUNCTION awa.ring_slots_restore()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_ring_slots_restore'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_slots_restore()
	IS 'internal (the ring): BEFORE INSERT FOR EACH ROW trigger of awa.ring_slots: during a COPY (a restore), a row of a slot that exists replaces its state and opened_at (sealing the slot open before when the row is open) instead of being inserted';
CREATE TRIGGER ring_slots_restore BEFORE INSERT ON awa.ring_slots
	FOR EACH ROW EXECUTE FUNCTION awa.ring_slots_restore();

-- The counters of the restored jobs: the dump has none (awa.counter_* hold transaction ids and snapshots of the
-- dumped cluster), and awa.scheduled's counting trigger stands aside during a restore's COPY.  After each COPY of a
-- relation that holds jobs' states (awa.ring_restore_counting) the counters are made equal to a recount of the ring's
-- view: one delta row per queue whose count differs, and per (queue, second) of the last hour whose completed jobs
-- differ.  A second call writes nothing.  Concurrent loads (pg_restore --jobs) take turns (an advisory lock).
CREATE FUNCTION awa.ring_restore_counts()
RETURNS bigint
LANGUAGE sql VOLATILE
BEGIN ATOMIC
	SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('awa.ring_restore_counts'));
	WITH d AS (SELECT r.queue, r.state, r.recounted - r.counted AS n FROM awa.ring_recount() r
			WHERE r.state NOT IN ('lag_us', 'completed')),
		want AS (SELECT j.queue, date_trunc('second', j.finalized_at) AS sec, count(*) AS n FROM awa.ring_jobs j
			WHERE j.state = 'completed' AND j.finalized_at > now() - interval '1 hour'
			GROUP BY 1, 2),
		have AS (SELECT x.queue, x.sec, sum(x.n) AS n
			FROM (SELECT cc.queue, cc.bucket AS sec, cc.completed AS n FROM awa.counter_completed cc WHERE cc.seconds = 1
				UNION ALL
				SELECT cd.queue, cd.completed_second, cd.completed FROM awa.counter_deltas cd
				WHERE cd.completed_second IS NOT NULL AND cd.completed <> 0) x
			WHERE x.sec > now() - interval '1 hour'
			GROUP BY 1, 2),
		c AS (SELECT coalesce(w.queue, h.queue) AS queue, coalesce(w.sec, h.sec) AS sec,
				coalesce(w.n, 0) - coalesce(h.n, 0) AS n
			FROM want w FULL JOIN have h ON h.queue = w.queue AND h.sec = w.sec
			WHERE coalesce(w.n, 0) <> coalesce(h.n, 0)),
		w AS (INSERT INTO awa.counter_deltas (xid, queue, scheduled, available, running, retryable, failed,
				cancelled, waiting_external)
			SELECT pg_current_xact_id(), d.queue,
				coalesce(sum(d.n) FILTER (WHERE d.state = 'scheduled'), 0),
				coalesce(sum(d.n) FILTER (WHERE d.state = 'available'), 0),
				coalesce(sum(d.n) FILTER (WHERE d.state = 'running'), 0),
				coalesce(sum(d.n) FILTER (WHERE d.state = 'retryable'), 0),
				coalesce(sum(d.n) FILTER (WHERE d.state = 'failed'), 0),
				coalesce(sum(d.n) FILTER (WHERE d.state = 'cancelled'), 0),
				coalesce(sum(d.n) FILTER (WHERE d.state = 'waiting_external'), 0)
			FROM d GROUP BY d.queue RETURNING 1),
		wc AS (INSERT INTO awa.counter_deltas (xid, queue, completed, completed_second)
			SELECT pg_current_xact_id(), c.queue, c.n, c.sec FROM c RETURNING 1)
	SELECT (SELECT count(*) FROM w) + (SELECT count(*) FROM wc);
END;
COMMENT ON FUNCTION awa.ring_restore_counts()
	IS 'internal (the ring): makes the counters equal to a recount of awa.ring_jobs (run after each relation a restore loads; safe to run again: 0 when they agree); returns the delta rows written';

CREATE FUNCTION awa.ring_restore_counting()
RETURNS trigger
AS 'MODULE_PATHNAME', 'awa_ring_restore_counting'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa.ring_restore_counting()
	IS 'internal (the ring): AFTER INSERT FOR EACH STATEMENT trigger of the relations that hold jobs'' states: during a COPY (a restore), awa.ring_restore_counts(); else nothing';
CREATE TRIGGER ready_0_restore_counting AFTER INSERT ON awa.ready_0
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER ready_1_restore_counting AFTER INSERT ON awa.ready_1
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER ready_2_restore_counting AFTER INSERT ON awa.ready_2
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER ready_3_restore_counting AFTER INSERT ON awa.ready_3
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER claims_0_restore_counting AFTER INSERT ON awa.claims_0
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER claims_1_restore_counting AFTER INSERT ON awa.claims_1
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER claims_2_restore_counting AFTER INSERT ON awa.claims_2
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER claims_3_restore_counting AFTER INSERT ON awa.claims_3
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER done_0_restore_counting AFTER INSERT ON awa.done_0
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER done_1_restore_counting AFTER INSERT ON awa.done_1
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER done_2_restore_counting AFTER INSERT ON awa.done_2
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER done_3_restore_counting AFTER INSERT ON awa.done_3
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER callbacks_0_restore_counting AFTER INSERT ON awa.callbacks_0
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER callbacks_1_restore_counting AFTER INSERT ON awa.callbacks_1
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER callbacks_2_restore_counting AFTER INSERT ON awa.callbacks_2
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER callbacks_3_restore_counting AFTER INSERT ON awa.callbacks_3
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER scheduled_restore_counting AFTER INSERT ON awa.scheduled
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
CREATE TRIGGER ring_history_restore_counting AFTER INSERT ON awa.ring_history
	FOR EACH STATEMENT EXECUTE FUNCTION awa.ring_restore_counting();
