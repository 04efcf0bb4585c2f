/* router/awa_router--0.3.0.sql — CREATE EXTENSION awa_router (CASCADE installs plproxy)
 *
 * awa's SQL API (the awa_* functions of awa 0.3.0, same names, arguments and
 * results) in a router database that holds no jobs: each call runs on the
 * awa database (shard) that holds its jobs, through PL/Proxy.  The shards
 * form the PL/Proxy cluster 'awa_shards' (a SQL/MED server, docs/sharding.md);
 * its partition i must be the database configured with awa_shard_configure(i).
 *
 * Where a call goes:
 *   - awa_insert, awa_claim, awa_set_queue_limit, awa_set_queue_rate: the shard of the queue,
 *     partition hashtext(queue) mod the number of shards; awa_insert and
 *     awa_claim take an optional shard_key that replaces the queue in that
 *     hash (jobs that live next to a tenant's rows);
 *   - calls naming a job id (dependencies too): the shard in the id
 *     (awa_shard_of: id >> 48);
 *   - awa_insert_many, awa_complete_many, awa_heartbeat: their arrays split
 *     per shard, the parts sent in parallel, the results put together;
 *   - stats (of queues, keys and groups), lists, health, queue
 *     administration, failed-job administration, rescue, cancel by unique
 *     key, per-key limits and rates: every shard, the results merged;
 *   - awa_group_on_finish: the shard holding the group's jobs (or of its
 *     shard_key).
 * Each call commits on each shard it reaches by itself: nothing spans shards.
 *
 * The functions run with the caller's rights (not SECURITY DEFINER): PL/Proxy
 * connects to the shards as the calling user, so the shards' roles
 * (awa_producer, awa_worker, awa_admin) decide what a caller may do there.
 * Not routed: awa_claim_wait (a procedure: PL/Proxy routes functions only;
 * the Python client falls back to awa_claim with wait), the claim over
 * several queues (they may be on several shards), awa_queue_history
 * (percentiles do not add up across shards), awa_maintain and
 * awa_maintain_for (each shard is maintained where it runs), periodic jobs
 * (awa_schedule and friends: create them on a shard), awa_shard_configure,
 * COPY into awa.jobs. */

\echo Use "CREATE EXTENSION awa_router CASCADE" to load this file. \quit

CREATE SCHEMA awa;
COMMENT ON SCHEMA awa IS 'awa router: the row types of awa''s API and the routing helpers; the API is the awa_* functions';

-- The types of awa's API, as on the shards (results arrive as text and are
-- read into these by column name).
CREATE TYPE awa.job_state AS ENUM (
	'scheduled', 'available', 'running', 'completed',
	'retryable', 'failed', 'cancelled', 'waiting_external'
);

CREATE TYPE awa.jobs AS (
	id				bigint,
	kind			text,
	queue			text,
	args			jsonb,
	state			awa.job_state,
	priority		smallint,
	attempt			smallint,
	max_attempts	smallint,
	run_at			timestamptz,
	heartbeat_at	timestamptz,
	deadline_at		timestamptz,
	attempted_at	timestamptz,
	finalized_at	timestamptz,
	created_at		timestamptz,
	errors			jsonb[],
	metadata		jsonb,
	tags			text[],
	unique_key		bytea,
	unique_states	bit(8),
	run_lease		bigint,
	progress		jsonb,
	claimed_by		text,
	lease			interval,
	timeout			interval,
	result			jsonb,
	callback_key	bytea,
	callback_lease	bigint,
	callback_timeout interval,
	callback_payload jsonb,
	group_id		text,
	concurrency_key	text
);
COMMENT ON TYPE awa.jobs IS 'one job as the shards return it (a row of their awa.jobs)';

CREATE TYPE awa.queue_meta AS (
	queue		text,
	paused		boolean,
	paused_at	timestamptz,
	paused_by	text,
	max_running	integer,
	rate_max_claims	integer,
	rate_period	interval,
	rate_set_at	timestamptz
);
COMMENT ON TYPE awa.queue_meta IS 'a queue''s settings as its shard returns them';

CREATE TYPE awa.key_limits AS (
	pattern			text,
	kind			text,
	max_running		integer,
	ordered			boolean,
	rate_max_claims	integer,
	rate_period		interval,
	rate_set_at		timestamptz
);
COMMENT ON TYPE awa.key_limits IS 'a per-key rule (awa_set_key_limit, awa_set_key_rate) as a shard returns it';

-- Routing -------------------------------------------------------------------

CREATE FUNCTION awa_shard_of(job_id bigint)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
	IF job_id < 0 THEN
		RAISE EXCEPTION 'job id % is negative', job_id
			USING ERRCODE = 'numeric_value_out_of_range',
				DETAIL = 'Job ids are positive; their bits above 2^48 name the shard.';
	END IF;
	RETURN (job_id >> 48)::integer;
END
$$;
COMMENT ON FUNCTION awa_shard_of(bigint)
	IS 'the shard that holds a job id (id >> 48), as on the shards; 22003 for a negative id';

-- The partition a job-id call goes to: the id's shard; a NULL or negative id
-- goes to partition 0, whose awa raises the error a shard gives for it.
CREATE FUNCTION awa.id_partition(job_id bigint)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN job_id >= 0 THEN (job_id >> 48)::integer ELSE 0 END;
COMMENT ON FUNCTION awa.id_partition(bigint)
	IS 'routing: the partition (shard) of a job id; 0 for NULL or negative ids (the shard reports the error)';

-- The hash a queue-routed call goes by: of the shard key if one is given,
-- else of the queue name (PL/Proxy maps it to a partition: hash mod the
-- number of partitions, with the cluster's modular_mapping).
CREATE FUNCTION awa.queue_hash(queue text, shard_key text DEFAULT NULL)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.hashtext(coalesce(shard_key, queue, ''));
COMMENT ON FUNCTION awa.queue_hash(text, text)
	IS 'routing: the hash of the shard key, else of the queue name, that picks a queue-routed call''s shard';

CREATE FUNCTION awa_queue_shard(queue text, shard_key text DEFAULT NULL)
RETURNS integer
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.queue_hash(queue, shard_key);
	SELECT awa_shard();
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_queue_shard(text, text)
	IS 'the shard that awa_insert and awa_claim use for this queue (or shard key), as that shard reports it (awa_shard)';

CREATE FUNCTION awa_shards()
RETURNS SETOF integer
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_shard();
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_shards()
	IS 'the shard number each database of the cluster hands out ids of (awa_shard), one row per partition';

-- Enqueue -------------------------------------------------------------------

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
	shard_key text DEFAULT NULL,
	group_id text DEFAULT NULL,
	after bigint[] DEFAULT NULL,
	on_parent_failure text DEFAULT 'cancel',
	concurrency_key text DEFAULT NULL)
RETURNS awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.queue_hash(queue, shard_key);
	SELECT * FROM awa_insert(kind, args, queue, priority, max_attempts, run_at, tags, metadata,
		unique_by_args, unique_by_queue, unique_period, unique_states, timeout, group_id,
		after, on_parent_failure, concurrency_key);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean, interval, awa.job_state[], interval, text, text, bigint[], text, text)
	IS 'awa_insert on the shard of the queue (or of shard_key, when given); committed there by itself; unique keys are unique per shard; group_id: groups are per shard (keep a group on one shard with shard_key); after: the parents must be on the shard the job goes to (23503 otherwise; place it with shard_key); concurrency_key: limits and rates count per shard';

-- awa_insert_many: the array split per shard (each job's shard_key field, else
-- its queue), the parts inserted in parallel, the rows returned in input order.
CREATE FUNCTION awa.insert_many_split(hashes integer[], positions integer[], jobs jsonb[])
RETURNS TABLE (pos integer, job awa.jobs)
AS $$
	CLUSTER 'awa_shards';
	SPLIT hashes, positions, jobs;
	RUN ON hashes;
	SELECT (positions)[r.n]::integer AS pos, r.j AS job
	FROM (SELECT j, row_number() OVER () AS n
		FROM awa_insert_many(pg_catalog.to_jsonb(jobs)) AS j) AS r;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.insert_many_split(integer[], integer[], jsonb[])
	IS 'routing: awa_insert_many of each shard''s part of a batch, with each row''s position in the batch';

CREATE FUNCTION awa.insert_many_on(part integer, jobs jsonb)
RETURNS SETOF awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON part;
	SELECT * FROM awa_insert_many(jobs);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.insert_many_on(integer, jsonb)
	IS 'routing: awa_insert_many on one partition (a batch that is not an array of objects: the shard reports the error)';

CREATE FUNCTION awa_insert_many(jobs jsonb)
RETURNS SETOF awa.jobs
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF jobs IS NULL OR pg_catalog.jsonb_typeof(jobs) <> 'array' OR EXISTS (
		SELECT FROM pg_catalog.jsonb_array_elements(jobs) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
		RETURN QUERY SELECT * FROM awa.insert_many_on(0, jobs);
		RETURN;
	END IF;
	IF pg_catalog.jsonb_array_length(jobs) = 0 THEN
		RETURN;
	END IF;
	RETURN QUERY
	SELECT (s.job).*
	FROM awa.insert_many_split(
		ARRAY(SELECT awa.queue_hash(coalesce(e ->> 'queue', 'default'), e ->> 'shard_key')
			  FROM pg_catalog.jsonb_array_elements(jobs) WITH ORDINALITY AS t(e, n) ORDER BY n),
		ARRAY(SELECT n::integer FROM pg_catalog.jsonb_array_elements(jobs) WITH ORDINALITY AS t(e, n) ORDER BY n),
		ARRAY(SELECT e - 'shard_key'
			  FROM pg_catalog.jsonb_array_elements(jobs) WITH ORDINALITY AS t(e, n) ORDER BY n)) AS s
	ORDER BY s.pos;
END
$$;
COMMENT ON FUNCTION awa_insert_many(jsonb)
	IS 'awa_insert_many with each job on the shard of its queue (or of its shard_key field); rows in input order; all or nothing per shard only';

CREATE FUNCTION awa_cancel_by_unique_key(
	kind text,
	args jsonb DEFAULT NULL,
	queue text DEFAULT NULL,
	unique_period interval DEFAULT NULL,
	run_at timestamptz DEFAULT NULL)
RETURNS SETOF awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_cancel_by_unique_key(text, jsonb, text, interval, timestamptz)
	IS 'awa_cancel_by_unique_key on every shard; the cancelled jobs of all';

-- Calls naming a job ---------------------------------------------------------

CREATE FUNCTION awa_cancel(job_id bigint)
RETURNS SETOF awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_cancel(bigint)
	IS 'awa_cancel on the shard in the job id';

CREATE FUNCTION awa_retry(job_id bigint)
RETURNS SETOF awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_retry(bigint)
	IS 'awa_retry on the shard in the job id';

CREATE FUNCTION awa_get_job(job_id bigint)
RETURNS awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_get_job(bigint)
	IS 'awa_get_job on the shard in the job id; P0002 if it holds no such job';

CREATE FUNCTION awa_complete(job_id bigint, run_lease bigint, result jsonb DEFAULT NULL)
RETURNS boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_complete(bigint, bigint, jsonb)
	IS 'awa_complete on the shard in the job id';

CREATE FUNCTION awa_fail(
	job_id bigint,
	run_lease bigint,
	error text,
	retry_in interval DEFAULT NULL,
	terminal boolean DEFAULT false)
RETURNS awa.job_state
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_fail(bigint, bigint, text, interval, boolean)
	IS 'awa_fail on the shard in the job id';

CREATE FUNCTION awa_snooze(job_id bigint, run_lease bigint, delay interval)
RETURNS boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_snooze(bigint, bigint, interval)
	IS 'awa_snooze on the shard in the job id';

CREATE FUNCTION awa_progress(job_id bigint, run_lease bigint, progress jsonb)
RETURNS boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_progress(bigint, bigint, jsonb)
	IS 'awa_progress on the shard in the job id';

-- Batches of (id, lease): split per shard.  A batch the shards would refuse
-- as a whole (NULL, lengths that differ) goes to partition 0 unsplit, so the
-- caller gets a shard's error.
CREATE FUNCTION awa.complete_many_split(ids bigint[], leases bigint[])
RETURNS SETOF bigint
AS $$
	CLUSTER 'awa_shards';
	SPLIT ids, leases;
	RUN ON awa.id_partition(ids);
	SELECT awa_complete_many(ids, leases);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.complete_many_split(bigint[], bigint[])
	IS 'routing: awa_complete_many of each shard''s part of a batch';

CREATE FUNCTION awa.complete_many_on(part integer, ids bigint[], leases bigint[])
RETURNS bigint
AS $$
	CLUSTER 'awa_shards';
	RUN ON part;
	SELECT awa_complete_many(ids, leases);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.complete_many_on(integer, bigint[], bigint[])
	IS 'routing: awa_complete_many on one partition';

CREATE FUNCTION awa.complete_many_results_split(ids bigint[], leases bigint[], results jsonb[])
RETURNS SETOF bigint
AS $$
	CLUSTER 'awa_shards';
	SPLIT ids, leases, results;
	RUN ON awa.id_partition(ids);
	SELECT awa_complete_many(ids, leases, results);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.complete_many_results_split(bigint[], bigint[], jsonb[])
	IS 'routing: awa_complete_many with results of each shard''s part of a batch';

CREATE FUNCTION awa.complete_many_results_on(part integer, ids bigint[], leases bigint[], results jsonb[])
RETURNS bigint
AS $$
	CLUSTER 'awa_shards';
	RUN ON part;
	SELECT awa_complete_many(ids, leases, results);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.complete_many_results_on(integer, bigint[], bigint[], jsonb[])
	IS 'routing: awa_complete_many with results on one partition';

CREATE FUNCTION awa_complete_many(ids bigint[], leases bigint[], results jsonb[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF ids IS NULL OR leases IS NULL OR pg_catalog.cardinality(ids) <> pg_catalog.cardinality(leases) THEN
		RETURN awa.complete_many_on(0, ids, leases);
	END IF;
	IF results IS NULL THEN
		RETURN (SELECT coalesce(sum(n), 0)::bigint FROM awa.complete_many_split(ids, leases) AS n);
	END IF;
	IF pg_catalog.cardinality(results) <> pg_catalog.cardinality(ids) OR pg_catalog.array_ndims(results) <> 1 THEN
		RETURN awa.complete_many_results_on(0, ids, leases, results);
	END IF;
	RETURN (SELECT coalesce(sum(n), 0)::bigint FROM awa.complete_many_results_split(ids, leases, results) AS n);
END
$$;
COMMENT ON FUNCTION awa_complete_many(bigint[], bigint[], jsonb[])
	IS 'awa_complete_many split per shard (the shard in each id), results with their jobs; how many were completed on all; each shard commits its part by itself';

CREATE FUNCTION awa_register_callback(job_id bigint, run_lease bigint, timeout interval)
RETURNS uuid
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_register_callback(bigint, bigint, interval)
	IS 'awa_register_callback on the shard in the job id';

CREATE FUNCTION awa_wait_external(job_id bigint, run_lease bigint)
RETURNS boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_wait_external(bigint, bigint)
	IS 'awa_wait_external on the shard in the job id';

-- A callback id does not say which shard holds its job: the calls by callback
-- id run on every shard, where at most one finds the job.
CREATE FUNCTION awa.complete_external_all(callback_id uuid, payload jsonb)
RETURNS SETOF boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	TARGET awa_complete_external;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.complete_external_all(uuid, jsonb)
	IS 'routing: awa_complete_external on every shard';

CREATE FUNCTION awa_complete_external(callback_id uuid, payload jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
AS $$ SELECT coalesce(bool_or(r), false) FROM awa.complete_external_all(callback_id, payload) AS r $$;
COMMENT ON FUNCTION awa_complete_external(uuid, jsonb)
	IS 'awa_complete_external on every shard (at most one holds the job): true if one completed it';

CREATE FUNCTION awa.fail_external_all(callback_id uuid, error text, payload jsonb)
RETURNS SETOF boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	TARGET awa_fail_external;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.fail_external_all(uuid, text, jsonb)
	IS 'routing: awa_fail_external on every shard';

CREATE FUNCTION awa_fail_external(callback_id uuid, error text, payload jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
AS $$ SELECT coalesce(bool_or(r), false) FROM awa.fail_external_all(callback_id, error, payload) AS r $$;
COMMENT ON FUNCTION awa_fail_external(uuid, text, jsonb)
	IS 'awa_fail_external on every shard (at most one holds the job): true if one failed it';

CREATE FUNCTION awa.retry_external_all(callback_id uuid, payload jsonb, retry_in interval)
RETURNS SETOF awa.job_state
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	TARGET awa_retry_external;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.retry_external_all(uuid, jsonb, interval)
	IS 'routing: awa_retry_external on every shard';

CREATE FUNCTION awa_retry_external(callback_id uuid, payload jsonb DEFAULT NULL, retry_in interval DEFAULT NULL)
RETURNS awa.job_state
LANGUAGE sql VOLATILE
AS $$ SELECT r FROM awa.retry_external_all(callback_id, payload, retry_in) AS r WHERE r IS NOT NULL LIMIT 1 $$;
COMMENT ON FUNCTION awa_retry_external(uuid, jsonb, interval)
	IS 'awa_retry_external on every shard (at most one holds the job): the new state, NULL if none waits for it';

CREATE FUNCTION awa.heartbeat_callback_all(callback_id uuid, timeout interval)
RETURNS SETOF boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	TARGET awa_heartbeat_callback;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.heartbeat_callback_all(uuid, interval)
	IS 'routing: awa_heartbeat_callback on every shard';

CREATE FUNCTION awa_heartbeat_callback(callback_id uuid, timeout interval DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
AS $$ SELECT coalesce(bool_or(r), false) FROM awa.heartbeat_callback_all(callback_id, timeout) AS r $$;
COMMENT ON FUNCTION awa_heartbeat_callback(uuid, interval)
	IS 'awa_heartbeat_callback on every shard (at most one holds the job): true if one found it';

CREATE FUNCTION awa.heartbeat_split(ids bigint[], leases bigint[])
RETURNS SETOF bigint[]
AS $$
	CLUSTER 'awa_shards';
	SPLIT ids, leases;
	RUN ON awa.id_partition(ids);
	SELECT awa_heartbeat(ids, leases);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.heartbeat_split(bigint[], bigint[])
	IS 'routing: awa_heartbeat of each shard''s part of a batch';

CREATE FUNCTION awa.heartbeat_on(part integer, ids bigint[], leases bigint[])
RETURNS bigint[]
AS $$
	CLUSTER 'awa_shards';
	RUN ON part;
	SELECT awa_heartbeat(ids, leases);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.heartbeat_on(integer, bigint[], bigint[])
	IS 'routing: awa_heartbeat on one partition';

CREATE FUNCTION awa_heartbeat(ids bigint[], leases bigint[])
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF ids IS NULL OR leases IS NULL OR pg_catalog.cardinality(ids) <> pg_catalog.cardinality(leases) THEN
		RETURN awa.heartbeat_on(0, ids, leases);
	END IF;
	RETURN ARRAY(SELECT x FROM awa.heartbeat_split(ids, leases) AS h, pg_catalog.unnest(h) AS x ORDER BY x);
END
$$;
COMMENT ON FUNCTION awa_heartbeat(bigint[], bigint[])
	IS 'awa_heartbeat split per shard (the shard in each id); the ids, of all shards, that are no longer running under their lease';

-- Claim -----------------------------------------------------------------------

CREATE FUNCTION awa_claim(
	queue text,
	worker text DEFAULT NULL,
	batch integer DEFAULT 1,
	lease interval DEFAULT '5 minutes',
	wait interval DEFAULT '0',
	shard_key text DEFAULT NULL)
RETURNS SETOF awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.queue_hash(queue, shard_key);
	SELECT * FROM awa_claim(queue, worker, batch, lease, wait);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_claim(text, text, integer, interval, interval, text)
	IS 'awa_claim on the shard of the queue (or of shard_key, when given); the jobs are committed as claimed when the call returns';

-- Every shard -----------------------------------------------------------------

CREATE FUNCTION awa.queue_stats_all()
RETURNS TABLE (
	queue				text,
	total_queued		bigint,
	scheduled			bigint,
	available			bigint,
	retryable			bigint,
	running				bigint,
	waiting_external	bigint,
	failed				bigint,
	cancelled			bigint,
	completed_last_hour	bigint,
	lag_seconds			double precision,
	paused				boolean)
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	TARGET awa_queue_stats;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.queue_stats_all()
	IS 'routing: awa_queue_stats of every shard, one row per shard and queue';

CREATE FUNCTION awa_queue_stats()
RETURNS TABLE (
	queue				text,
	total_queued		bigint,
	scheduled			bigint,
	available			bigint,
	retryable			bigint,
	running				bigint,
	waiting_external	bigint,
	failed				bigint,
	cancelled			bigint,
	completed_last_hour	bigint,
	lag_seconds			double precision,
	paused				boolean)
LANGUAGE sql VOLATILE
AS $$
	SELECT s.queue, sum(s.total_queued)::bigint, sum(s.scheduled)::bigint, sum(s.available)::bigint,
		sum(s.retryable)::bigint, sum(s.running)::bigint, sum(s.waiting_external)::bigint,
		sum(s.failed)::bigint, sum(s.cancelled)::bigint, sum(s.completed_last_hour)::bigint,
		max(s.lag_seconds), bool_or(s.paused)
	FROM awa.queue_stats_all() AS s
	GROUP BY s.queue
	ORDER BY s.queue
$$;
COMMENT ON FUNCTION awa_queue_stats()
	IS 'awa_queue_stats of every shard merged per queue: counts summed, the largest lag, paused if paused on any shard';

CREATE FUNCTION awa.list_jobs_all(
	state awa.job_state, kind text, queue text, tag text, before_id bigint, lim integer)
RETURNS SETOF awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	TARGET awa_list_jobs;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.list_jobs_all(awa.job_state, text, text, text, bigint, integer)
	IS 'routing: awa_list_jobs on every shard';

CREATE FUNCTION awa_list_jobs(
	state awa.job_state DEFAULT NULL,
	kind text DEFAULT NULL,
	queue text DEFAULT NULL,
	tag text DEFAULT NULL,
	before_id bigint DEFAULT NULL,
	lim integer DEFAULT 100)
RETURNS SETOF awa.jobs
LANGUAGE sql VOLATILE
AS $$
	SELECT * FROM awa.list_jobs_all(state, kind, queue, tag, before_id, lim) AS j
	ORDER BY j.id DESC
	LIMIT lim
$$;
COMMENT ON FUNCTION awa_list_jobs(awa.job_state, text, text, text, bigint, integer)
	IS 'a page of jobs of all shards by id, highest first (shard by shard: ids carry the shard in their high bits); next page: before_id => last id';

CREATE FUNCTION awa.health_check_all()
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
	maintained_by				text,
	shard						integer)
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT h.*, awa_shard() AS shard FROM awa_health_check() AS h;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.health_check_all()
	IS 'routing: awa_health_check of every shard, with its shard number';

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
LANGUAGE sql VOLATILE
AS $$
	SELECT string_agg(DISTINCT h.version, ', '), bool_and(h.preloaded), bool_and(h.worker_running),
		NULL::integer, min(h.worker_last_run), sum(h.stale_heartbeats)::bigint,
		max(h.oldest_available_seconds),
		ARRAY(SELECT DISTINCT q FROM awa.health_check_all() AS a, pg_catalog.unnest(a.paused_queues) AS q ORDER BY q),
		max(h.notification_queue_usage), bool_and(h.healthy),
		string_agg('shard ' || h.shard || ': ' || h.reason, '; ' ORDER BY h.shard) FILTER (WHERE h.reason IS NOT NULL),
		string_agg(DISTINCT h.maintained_by, ', ')
	FROM awa.health_check_all() AS h
$$;
COMMENT ON FUNCTION awa_health_check()
	IS 'awa_health_check of every shard in one row: healthy if all are, each shard''s reason prefixed with its number, counts summed, the oldest ages; worker_pid NULL';

CREATE FUNCTION awa.sum_all_bigint_rescue()
RETURNS SETOF bigint
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_rescue();
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.sum_all_bigint_rescue()
	IS 'routing: awa_rescue on every shard';

CREATE FUNCTION awa_rescue()
RETURNS bigint
LANGUAGE sql VOLATILE
RETURN (SELECT coalesce(sum(n), 0)::bigint FROM awa.sum_all_bigint_rescue() AS n);
COMMENT ON FUNCTION awa_rescue()
	IS 'awa_rescue on every shard; how many jobs all of them rescued';

CREATE FUNCTION awa_retry_failed(kind text DEFAULT NULL, queue text DEFAULT NULL)
RETURNS SETOF awa.jobs
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_retry_failed(text, text)
	IS 'awa_retry_failed on every shard; the jobs made available on all';

CREATE FUNCTION awa.discard_failed_all(kind text)
RETURNS SETOF bigint
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_discard_failed(kind);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.discard_failed_all(text)
	IS 'routing: awa_discard_failed on every shard';

CREATE FUNCTION awa_discard_failed(kind text)
RETURNS bigint
LANGUAGE sql VOLATILE
RETURN (SELECT coalesce(sum(n), 0)::bigint FROM awa.discard_failed_all(kind) AS n);
COMMENT ON FUNCTION awa_discard_failed(text)
	IS 'awa_discard_failed on every shard; how many jobs all of them deleted';

-- Queues: pause, resume, forget and drain apply on every shard (a queue's
-- jobs may sit on several through shard keys); the limit on the queue's shard.
CREATE FUNCTION awa.pause_queue_all(queue text, paused_by text)
RETURNS SETOF boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_pause_queue(queue, paused_by);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.pause_queue_all(text, text)
	IS 'routing: awa_pause_queue on every shard';

CREATE FUNCTION awa_pause_queue(queue text, paused_by text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN (SELECT bool_or(p) FROM awa.pause_queue_all(queue, paused_by) AS p);
COMMENT ON FUNCTION awa_pause_queue(text, text)
	IS 'awa_pause_queue on every shard; false if it was paused on all already';

CREATE FUNCTION awa.resume_queue_all(queue text)
RETURNS SETOF boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_resume_queue(queue);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.resume_queue_all(text)
	IS 'routing: awa_resume_queue on every shard';

CREATE FUNCTION awa_resume_queue(queue text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN (SELECT bool_or(p) FROM awa.resume_queue_all(queue) AS p);
COMMENT ON FUNCTION awa_resume_queue(text)
	IS 'awa_resume_queue on every shard; false if it was paused on none';

CREATE FUNCTION awa.forget_queue_all(queue text)
RETURNS SETOF boolean
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_forget_queue(queue);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.forget_queue_all(text)
	IS 'routing: awa_forget_queue on every shard';

CREATE FUNCTION awa_forget_queue(queue text)
RETURNS boolean
LANGUAGE sql VOLATILE
RETURN (SELECT bool_or(p) FROM awa.forget_queue_all(queue) AS p);
COMMENT ON FUNCTION awa_forget_queue(text)
	IS 'awa_forget_queue on every shard; false if it had settings on none';

CREATE FUNCTION awa.drain_queue_all(queue text)
RETURNS SETOF bigint
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_drain_queue(queue);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.drain_queue_all(text)
	IS 'routing: awa_drain_queue on every shard';

CREATE FUNCTION awa_drain_queue(queue text)
RETURNS bigint
LANGUAGE sql VOLATILE
RETURN (SELECT coalesce(sum(n), 0)::bigint FROM awa.drain_queue_all(queue) AS n);
COMMENT ON FUNCTION awa_drain_queue(text)
	IS 'awa_drain_queue on every shard; how many jobs all of them cancelled';

CREATE FUNCTION awa_set_queue_limit(queue text, max_running integer)
RETURNS awa.queue_meta
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.queue_hash(queue);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_set_queue_limit(text, integer)
	IS 'awa_set_queue_limit on the shard of the queue: the limit counts the jobs running there (jobs placed on other shards by shard_key are not limited by it)';

CREATE FUNCTION awa_set_queue_rate(queue text, max_claims integer, per interval)
RETURNS awa.queue_meta
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.queue_hash(queue);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_set_queue_rate(text, integer, interval)
	IS 'awa_set_queue_rate on the shard of the queue: the rate counts the claims made there (jobs placed on other shards by shard_key are not limited by it)';

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
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_queue_limits()
	IS 'awa_queue_limits of every shard, one row per shard and queue with a limit or a rate (a queue''s settings live on the shard of the queue)';

-- Per-key limits and rates: a rule is set on every shard (a key's jobs may
-- sit on any of them), and each shard holds it against the jobs and claims it
-- sees: the limit and the rate count per shard.  The row returned is the
-- rule as the lowest-numbered shard holding it returns it.
CREATE FUNCTION awa.set_key_limit_all(pattern text, max_running integer, kind text, ordered boolean)
RETURNS TABLE (rule awa.key_limits, shard integer)
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_set_key_limit(pattern, max_running, kind, ordered) AS rule, awa_shard() AS shard;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.set_key_limit_all(text, integer, text, boolean)
	IS 'routing: awa_set_key_limit on every shard: the rule each returned (NULL where a removed rule did not exist) and its shard number';

CREATE FUNCTION awa_set_key_limit(
	pattern text,
	max_running integer,
	kind text DEFAULT NULL,
	ordered boolean DEFAULT false)
RETURNS awa.key_limits
LANGUAGE sql VOLATILE
AS $$
	SELECT (l.rule).* FROM awa.set_key_limit_all($1, $2, $3, $4) AS l
	WHERE (l.rule).pattern IS NOT NULL
	ORDER BY l.shard
	LIMIT 1
$$;
COMMENT ON FUNCTION awa_set_key_limit(text, integer, text, boolean)
	IS 'awa_set_key_limit on every shard, each committing by itself: each shard holds the limit against the jobs running there (a key whose jobs sit on several shards may run max_running on each; place them on one shard with shard_key for one limit); the rule as the lowest shard returns it, NULL if max_running NULL found no rule on any shard; errors as on a shard';

CREATE FUNCTION awa.set_key_rate_all(pattern text, max_claims integer, per interval, kind text)
RETURNS TABLE (rule awa.key_limits, shard integer)
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT awa_set_key_rate(pattern, max_claims, per, kind) AS rule, awa_shard() AS shard;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.set_key_rate_all(text, integer, interval, text)
	IS 'routing: awa_set_key_rate on every shard: the rule each returned and its shard number';

CREATE FUNCTION awa_set_key_rate(
	pattern text,
	max_claims integer,
	per interval,
	kind text DEFAULT NULL)
RETURNS awa.key_limits
LANGUAGE sql VOLATILE
AS $$
	SELECT (l.rule).* FROM awa.set_key_rate_all($1, $2, $3, $4) AS l
	WHERE (l.rule).pattern IS NOT NULL
	ORDER BY l.shard
	LIMIT 1
$$;
COMMENT ON FUNCTION awa_set_key_rate(text, integer, interval, text)
	IS 'awa_set_key_rate on every shard, each committing by itself: each shard counts the claims made there (a key claimed on several shards may be claimed max_claims per interval on each; place its jobs on one shard with shard_key for one rate); the rule as the lowest shard returns it, NULL if none has the rule; errors as on a shard';

CREATE FUNCTION awa_key_stats_by_shard(pattern text DEFAULT NULL)
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
	next_slot_at	timestamptz,
	shard			integer)
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT s.*, awa_shard() AS shard FROM awa_key_stats(pattern) AS s;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_key_stats_by_shard(text)
	IS 'router only: awa_key_stats of every shard, one row per shard, key and kind, with the shard''s number (the limits and rates hold per shard)';

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
LANGUAGE sql VOLATILE
AS $$
	WITH s AS (SELECT * FROM awa_key_stats_by_shard($1)),
	-- running and window_claims count the key (any kind) on a shard: the
	-- same on each of its rows there; summed once per shard
	per_key AS (
		SELECT k.concurrency_key, sum(k.running)::bigint AS running, sum(k.window_claims)::integer AS window_claims
		FROM (SELECT s.concurrency_key, s.shard, max(s.running) AS running, max(s.window_claims) AS window_claims
			FROM s GROUP BY s.concurrency_key, s.shard) AS k
		GROUP BY k.concurrency_key)
	SELECT s.concurrency_key, s.kind, min(p.running), sum(s.waiting)::bigint, max(s.max_running),
		bool_or(s.ordered), bool_or(s.at_limit), max(s.rate_max_claims), max(s.rate_period),
		min(p.window_claims), min(s.next_slot_at)
	FROM s JOIN per_key AS p ON p.concurrency_key = s.concurrency_key
	GROUP BY s.concurrency_key, s.kind
	ORDER BY 1, 2
$$;
COMMENT ON FUNCTION awa_key_stats(text)
	IS 'awa_key_stats of every shard merged per (concurrency_key, kind): running, waiting and window_claims summed over the shards, the rule''s max_running, ordered and rate as the shards hold it, at_limit if at its limit on any shard, next_slot_at the earliest; awa_key_stats_by_shard gives each shard''s row';

-- Groups: a group's jobs are on the shard(s) they were inserted on (their
-- queue's, or their shard key's).
CREATE FUNCTION awa_group_stats_by_shard(group_id text)
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
	finished_at			timestamptz,
	shard				integer)
AS $$
	CLUSTER 'awa_shards';
	RUN ON ALL;
	SELECT g.*, awa_shard() AS shard FROM awa_group_stats(group_id) AS g;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_group_stats_by_shard(text)
	IS 'router only: awa_group_stats of every shard, one row per shard with its number (all counts 0 where the group has no jobs)';

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
LANGUAGE sql VOLATILE
AS $$
	SELECT sum(g.total)::bigint, sum(g.scheduled)::bigint, sum(g.available)::bigint, sum(g.running)::bigint,
		sum(g.completed)::bigint, sum(g.retryable)::bigint, sum(g.failed)::bigint, sum(g.cancelled)::bigint,
		sum(g.waiting_external)::bigint, sum(g.unfinished)::bigint,
		min(g.callback_job_id), max(g.finished_at)
	FROM awa_group_stats_by_shard($1) AS g
$$;
COMMENT ON FUNCTION awa_group_stats(text)
	IS 'awa_group_stats of every shard in one row: counts summed (a group whose jobs sit on several shards counts all of them), the finish callback''s job id and time from the shard that enqueued it; errors as on a shard (22004, 22023)';

CREATE FUNCTION awa.group_on_finish_on(part integer, group_id text, kind text, args jsonb, queue text,
	priority integer, max_attempts integer, metadata jsonb)
RETURNS bigint
AS $$
	CLUSTER 'awa_shards';
	RUN ON part;
	SELECT awa_group_on_finish(group_id, kind, args, queue, priority, max_attempts, metadata);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa.group_on_finish_on(integer, text, text, jsonb, text, integer, integer, jsonb)
	IS 'routing: awa_group_on_finish on partition part (a partition number, or a hash taken modulo the number of partitions)';

CREATE FUNCTION awa_group_on_finish(
	group_id text,
	kind text,
	args jsonb DEFAULT '{}',
	queue text DEFAULT 'default',
	priority integer DEFAULT 2,
	max_attempts integer DEFAULT 25,
	metadata jsonb DEFAULT '{}',
	shard_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	holding integer[];
BEGIN
	IF shard_key IS NULL AND group_id IS NOT NULL THEN
		holding := ARRAY(SELECT g.shard FROM awa_group_stats_by_shard(group_id) AS g
			WHERE g.total > 0 ORDER BY g.shard);
		IF pg_catalog.cardinality(holding) > 1 THEN
			RAISE EXCEPTION 'the jobs of group % are on several shards', group_id
				USING ERRCODE = 'feature_not_supported',
					DETAIL = pg_catalog.format('Shards %s hold jobs of the group; a finish callback watches one shard.',
						pg_catalog.array_to_string(holding, ', ')),
					HINT = 'Insert a group''s jobs with one shard_key and pass it here.';
		ELSIF pg_catalog.cardinality(holding) = 1 THEN
			RETURN awa.group_on_finish_on(holding[1], group_id, kind, args, queue, priority, max_attempts, metadata);
		END IF;
	END IF;
	RETURN awa.group_on_finish_on(awa.queue_hash(queue, shard_key), group_id, kind, args, queue,
		priority, max_attempts, metadata);
END
$$;
COMMENT ON FUNCTION awa_group_on_finish(text, text, jsonb, text, integer, integer, jsonb, text)
	IS 'awa_group_on_finish on the group''s shard: that of shard_key when given, else the one shard holding jobs of the group, else (no jobs anywhere) the shard of queue; the callback job is enqueued there, in queue (claim it with the shard_key of the group''s jobs when that is not the queue''s shard); 0A000 when the group''s jobs are on several shards and no shard_key is given; else errors as on a shard';

-- Dependencies: a job and the jobs it runs after are on one shard.
CREATE FUNCTION awa_parent_results(job_id bigint)
RETURNS TABLE (
	parent_id		bigint,
	kind			text,
	state			awa.job_state,
	satisfied		boolean,
	result			jsonb,
	finalized_at	timestamptz)
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_parent_results(bigint)
	IS 'awa_parent_results on the shard in the job id (its parents are on that shard)';

CREATE FUNCTION awa_dependents(job_id bigint)
RETURNS TABLE (
	dependent_id	bigint,
	kind			text,
	state			awa.job_state,
	satisfied		boolean,
	waiting_for		integer,
	on_parent_failure	text)
AS $$
	CLUSTER 'awa_shards';
	RUN ON awa.id_partition(job_id);
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_dependents(bigint)
	IS 'awa_dependents on the shard in the job id (the jobs that run after it are on that shard)';

CREATE FUNCTION awa_next_fire_times(cron text, timezone text DEFAULT 'UTC',
	after timestamptz DEFAULT now(), n integer DEFAULT 5)
RETURNS SETOF timestamptz
AS $$
	CLUSTER 'awa_shards';
	RUN ON 0;
$$ LANGUAGE plproxy;
COMMENT ON FUNCTION awa_next_fire_times(text, text, timestamptz, integer)
	IS 'awa_next_fire_times computed on shard 0';

-- Privileges ------------------------------------------------------------------
--
-- The roles of the shards, in the router's cluster too (created if missing),
-- with the same split: PUBLIC gets nothing.  The shards check again: PL/Proxy
-- connects to them as the calling user.

DO $$
DECLARE
	r text;
	f regprocedure;
	producer_routines CONSTANT regprocedure[] := ARRAY[
		'awa_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean, interval, awa.job_state[], interval, text, text, bigint[], text, text)',
		'awa_insert_many(jsonb)', 'awa_get_job(bigint)', 'awa_cancel(bigint)',
		'awa_cancel_by_unique_key(text, jsonb, text, interval, timestamptz)', 'awa_queue_stats()',
		'awa_complete_external(uuid, jsonb)', 'awa_fail_external(uuid, text, jsonb)',
		'awa_retry_external(uuid, jsonb, interval)', 'awa_heartbeat_callback(uuid, interval)',
		'awa_shard_of(bigint)', 'awa_queue_shard(text, text)', 'awa_shards()', 'awa_queue_limits()',
		'awa_key_stats(text)', 'awa_key_stats_by_shard(text)',
		'awa_group_stats(text)', 'awa_group_stats_by_shard(text)',
		'awa_group_on_finish(text, text, jsonb, text, integer, integer, jsonb, text)',
		'awa_parent_results(bigint)', 'awa_dependents(bigint)'];
	worker_routines CONSTANT regprocedure[] := ARRAY[
		'awa_claim(text, text, integer, interval, interval, text)', 'awa_heartbeat(bigint[], bigint[])',
		'awa_progress(bigint, bigint, jsonb)', 'awa_complete(bigint, bigint, jsonb)',
		'awa_complete_many(bigint[], bigint[], jsonb[])', 'awa_fail(bigint, bigint, text, interval, boolean)',
		'awa_register_callback(bigint, bigint, interval)', 'awa_wait_external(bigint, bigint)',
		'awa_complete_external(uuid, jsonb)', 'awa_fail_external(uuid, text, jsonb)',
		'awa_retry_external(uuid, jsonb, interval)', 'awa_heartbeat_callback(uuid, interval)',
		'awa_snooze(bigint, bigint, interval)', 'awa_parent_results(bigint)', 'awa_dependents(bigint)',
		'awa_shard_of(bigint)', 'awa_queue_shard(text, text)', 'awa_shards()'];
	ext CONSTANT oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'awa_router');
BEGIN
	FOREACH r IN ARRAY ARRAY['awa_producer', 'awa_worker', 'awa_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
	FOR f IN
		SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass
			AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_extension'::regclass
			AND d.refobjid = ext AND d.deptype = 'e'
		ORDER BY p.oid
	LOOP
		EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		IF f::text LIKE 'awa.%' THEN
			-- the routing helpers: whoever may call the API
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO awa_producer, awa_worker, awa_admin', f);
		ELSE
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO awa_admin', f);
			IF f = ANY (producer_routines) THEN
				EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO awa_producer', f);
			END IF;
			IF f = ANY (worker_routines) THEN
				EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO awa_worker', f);
			END IF;
		END IF;
	END LOOP;
END
$$;
GRANT USAGE ON SCHEMA awa TO awa_producer, awa_worker, awa_admin;
