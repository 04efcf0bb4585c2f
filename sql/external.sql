-- External completion and results: awa_complete's result, parking a job for
-- a callback (awa_register_callback, awa_wait_external), resolving it by its
-- callback id (complete, fail, retry, heartbeat), callback timeouts in
-- maintenance, and every bad input with its SQLSTATE.
-- On the default ring engine: a callback's timeout is made to pass by moving its park's deadline back
-- (awa.callbacks).  external_table.sql keeps, on the table, a job put in waiting_external by hand, without a
-- callback (the ring has no such job).
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- err(sql): the SQLSTATE and message a statement raises, or 'ok'.
CREATE FUNCTION err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- one job claimed: its id and lease in :id and :lease
CREATE FUNCTION claim_one(q text DEFAULT 'default') RETURNS TABLE (id bigint, lease bigint)
LANGUAGE sql AS $$ SELECT id, run_lease FROM awa_claim(q) $$;

-- Results ---------------------------------------------------------------------
SELECT (awa_insert('r')).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT awa_complete(:id, :lease + 1, '{"wrong": "lease"}');   -- stale: false, no change
SELECT state, result FROM awa.jobs WHERE id = :id;
SELECT awa_complete(:id, :lease, '{"rows": 3}');
SELECT state, result FROM awa.jobs WHERE id = :id;
SELECT awa_complete(:id, :lease, '{"again": 1}');               -- already completed
SELECT result FROM awa.jobs WHERE id = :id;
-- any jsonb, scalars too; NULL: none
SELECT (awa_insert('r')).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT awa_complete(:id, :lease, '42');
SELECT result FROM awa.jobs WHERE id = :id;
SELECT (awa_insert('r')).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT awa_complete(:id, :lease, NULL);
SELECT state, result IS NULL AS no_result FROM awa.jobs WHERE id = :id;
-- size-limited like args (54000), checked before anything changes
SET awa.max_args_bytes = 1024;
SELECT (awa_insert('r')).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT err(format('SELECT awa_complete(%s, %s, jsonb_build_object(''x'', repeat(''y'', 2000)))', :id, :lease));
SELECT state FROM awa.jobs WHERE id = :id;
SELECT err('SELECT awa_complete(NULL, 1)');
SELECT err('SELECT awa_complete(1, NULL, ''{}'')');
-- awa_complete_many with results: a parallel array, NULL elements = none
DELETE FROM awa.jobs;
SELECT count(*) FROM awa_insert_many('[{"kind": "m"}, {"kind": "m"}, {"kind": "m"}]');
SELECT array_agg(id ORDER BY id) AS ids, array_agg(run_lease ORDER BY id) AS leases
  FROM awa_claim('default', batch => 3) \gset
SELECT err(format('SELECT awa_complete_many(%L, %L, ARRAY[''{}'']::jsonb[])', :'ids', :'leases'));
SELECT err(format('SELECT awa_complete_many(%L, %L, ''{{"{}"},{"{}"},{"{}"}}''::jsonb[])', :'ids', :'leases'));
SELECT err(format('SELECT awa_complete_many(%L, %L, ARRAY[NULL, jsonb_build_object(''x'', repeat(''y'', 2000)), NULL])', :'ids', :'leases'));
SELECT state, count(*) FROM awa.jobs GROUP BY state;
-- the pairs in another order than the results would be wrong: results follow ids
SELECT awa_complete_many((:'ids'::bigint[])[3:3] || (:'ids'::bigint[])[1:2],
                         (:'leases'::bigint[])[3:3] || (:'leases'::bigint[])[1:2],
                         ARRAY['"third"', NULL, '"second"']::jsonb[]);
SELECT id - (:'ids'::bigint[])[1] AS n, state, result FROM awa.jobs ORDER BY id;
-- without results, as before
SELECT count(*) FROM awa_insert_many('[{"kind": "m"}]');
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa_claim('default') \gset
SELECT awa_complete_many(:'ids', :'leases'), awa_complete_many(:'ids', :'leases', NULL);
RESET awa.max_args_bytes;

-- Registering and parking -----------------------------------------------------
DELETE FROM awa.jobs;
SELECT (awa_insert('ext', max_attempts => 3)).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT err(format('SELECT awa_register_callback(NULL, %s, ''1 hour'')', :lease));
SELECT err(format('SELECT awa_register_callback(%s, NULL, ''1 hour'')', :id));
SELECT err(format('SELECT awa_register_callback(%s, %s, NULL)', :id, :lease));
SELECT err(format('SELECT awa_register_callback(%s, %s, ''0'')', :id, :lease));
SELECT err(format('SELECT awa_register_callback(%s, %s, ''-1 s'')', :id, :lease));
SELECT err(format('SELECT awa_register_callback(%s, %s, ''36501 days'')', :id, :lease));
SELECT awa_register_callback(:id, :lease + 1, '1 hour') IS NULL AS stale_is_null;
-- parking needs a callback registered under the lease (55000)
SELECT err(format('SELECT awa_wait_external(%s, %s)', :id, :lease));
SELECT err(format('SELECT awa_wait_external(NULL, %s)', :lease));
SELECT err(format('SELECT awa_wait_external(%s, NULL)', :id));
SELECT awa_register_callback(:id, :lease, '1 hour') AS first_cb \gset
SELECT awa_register_callback(:id, :lease, '1 hour') AS cb \gset
-- a new registration replaces the old id; ids are random version 4 UUIDs
SELECT :'first_cb' <> :'cb' AS replaced, substr(:'cb', 15, 1) AS version;
-- the table keeps only the id's SHA-256
SELECT callback_key = sha256(uuid_send(:'cb')) AS key_is_hash, callback_lease = run_lease AS this_attempt,
       callback_timeout, state FROM awa.jobs WHERE id = :id;
SELECT count(*) AS id_stored FROM awa.jobs WHERE to_jsonb(jobs)::text LIKE '%' || :'cb' || '%';
SELECT awa_wait_external(:id, :lease + 1);                         -- stale lease
SELECT awa_wait_external(:id, :lease);
SELECT state, deadline_at BETWEEN now() + '59 minutes' AND now() + '61 minutes' AS deadline_in_1h,
       heartbeat_at IS NOT NULL AS heartbeat FROM awa.jobs WHERE id = :id;
SELECT awa_wait_external(:id, :lease);                             -- no longer running
SELECT awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:lease]::bigint[]) = ARRAY[:id]::bigint[] AS parked_is_not_running;
-- the old id is worthless
SELECT awa_complete_external(:'first_cb');
SELECT awa_complete_external(gen_random_uuid());

-- Heartbeats on the callback ------------------------------------------------
SELECT err('SELECT awa_heartbeat_callback(NULL)');
SELECT err(format('SELECT awa_heartbeat_callback(%L, ''0'')', :'cb'));
SELECT awa_heartbeat_callback(gen_random_uuid());
SELECT awa_heartbeat_callback(:'cb', '3 hours');
SELECT deadline_at BETWEEN now() + '179 minutes' AND now() + '181 minutes' AS deadline_in_3h,
       callback_timeout FROM awa.jobs WHERE id = :id;
SELECT awa_heartbeat_callback(:'cb');                               -- the timeout registered (now 3 hours)
SELECT callback_timeout FROM awa.jobs WHERE id = :id;

-- Retry by callback (a retry due at once is 'available' on the ring, where the table shows 'retryable' until
-- maintenance promotes it) -------------------------------------------------------
SELECT err('SELECT awa_retry_external(NULL)');
SELECT err(format('SELECT awa_retry_external(%L, NULL, ''-1 s'')', :'cb'));
SELECT err(format('SELECT awa_retry_external(%L, jsonb_build_object(''x'', repeat(''y'', 2000000)))', :'cb'));
SELECT awa_retry_external(gen_random_uuid()) IS NULL AS unknown_is_null;
SELECT awa_retry_external(:'cb', '{"status": "try later"}', '0');
SELECT state, attempt, callback_payload, errors[cardinality(errors)]->>'error' AS error,
       run_at <= now() AS due, heartbeat_at, deadline_at, finalized_at FROM awa.jobs WHERE id = :id;
SELECT awa_retry_external(:'cb') IS NULL AS once_only;
-- the next attempt: the old callback does not touch it
SELECT lease FROM claim_one() \gset
SELECT awa_complete_external(:'cb'), awa_heartbeat_callback(:'cb');
SELECT state, callback_lease < run_lease AS old_callback FROM awa.jobs WHERE id = :id;

-- A callback that comes before the job parked acts at once ---------------------
SELECT awa_register_callback(:id, :lease, '10 minutes') AS cb \gset
SELECT awa_heartbeat_callback(:'cb', '20 minutes');                 -- kept for the park
SELECT callback_timeout, state FROM awa.jobs WHERE id = :id;
SELECT awa_complete_external(:'cb', '{"early": true}');
SELECT state, result, finalized_at IS NOT NULL AS finalized FROM awa.jobs WHERE id = :id;
-- the worker's lease is stale now: parking and completing change nothing
SELECT awa_wait_external(:id, :lease), awa_complete(:id, :lease), awa_fail(:id, :lease, 'x');
SELECT state, result FROM awa.jobs WHERE id = :id;

-- Fail by callback; retry without attempts left fails --------------------------
DELETE FROM awa.jobs;
SELECT (awa_insert('ext', max_attempts => 1)).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT awa_register_callback(:id, :lease, '1 hour') AS cb \gset
SELECT awa_wait_external(:id, :lease);
SELECT awa_retry_external(:'cb');
SELECT state, finalized_at IS NOT NULL AS finalized, errors[1]->>'error' AS error FROM awa.jobs WHERE id = :id;
SELECT (awa_insert('ext')).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT awa_register_callback(:id, :lease, '1 hour') AS cb \gset
SELECT awa_wait_external(:id, :lease);
SELECT err(format('SELECT awa_fail_external(%L, NULL)', :'cb'));
SELECT err('SELECT awa_fail_external(NULL, ''e'')');
SET awa.max_error_bytes = 64;
SELECT awa_fail_external(:'cb', repeat('e', 100), '{"code": 500}');
RESET awa.max_error_bytes;
-- (the error's size before the cut, errors[1]->'error_bytes', is checked in external_table.sql: the ring does not
-- keep it, a fault named there)
SELECT state, callback_payload, errors[1]->>'error' = repeat('e', 64) AS cut, finalized_at IS NOT NULL AS finalized
  FROM awa.jobs WHERE id = :id;
SELECT awa_fail_external(:'cb', 'again');

-- Complete by callback, with and without payload --------------------------------
SELECT (awa_insert('ext')).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT awa_register_callback(:id, :lease, '1 hour') AS cb \gset
SELECT awa_wait_external(:id, :lease);
SELECT err('SELECT awa_complete_external(NULL)');
SET awa.max_args_bytes = 1024;
SELECT err(format('SELECT awa_complete_external(%L, jsonb_build_object(''x'', repeat(''y'', 2000)))', :'cb'));
RESET awa.max_args_bytes;
SELECT state FROM awa.jobs WHERE id = :id;
SELECT awa_complete_external(:'cb', '{"paid": true}');
SELECT state, result, heartbeat_at, deadline_at FROM awa.jobs WHERE id = :id;
SELECT awa_complete_external(:'cb'), awa_fail_external(:'cb', 'late'), awa_retry_external(:'cb');

-- A parked job frees its place under the queue's concurrency limit --------------
DELETE FROM awa.jobs;
SELECT max_running FROM awa_set_queue_limit('lim', 1);
SELECT count(*) FROM awa_insert_many('[{"kind": "a", "queue": "lim"}, {"kind": "b", "queue": "lim"}]');
SELECT id, lease FROM claim_one('lim') \gset
SELECT count(*) AS while_running FROM awa_claim('lim');
SELECT awa_register_callback(:id, :lease, '1 hour') AS cb \gset
SELECT awa_wait_external(:id, :lease);
SELECT kind FROM awa_claim('lim');
SELECT running, waiting_external FROM awa_queue_stats() WHERE queue = 'lim';

-- Cancel and operator retry of a parked job: its callback no longer acts ---------------------------
SELECT state FROM awa_cancel(:id);
SELECT awa_complete_external(:'cb');
SELECT state, attempt FROM awa_retry(:id);
SELECT awa_complete_external(:'cb');

-- Timeouts: maintenance retries with backoff, or fails without attempts left --
DELETE FROM awa.jobs;
SELECT count(*) FROM awa_insert_many('[{"kind": "t1", "max_attempts": 2}, {"kind": "t2", "max_attempts": 1}, {"kind": "t3"}]');
CREATE TEMP TABLE cbs AS
  SELECT kind, awa_register_callback(id, run_lease, '1 hour') AS cb, awa_wait_external(id, run_lease) AS parked
  FROM awa_claim('default', batch => 3);
SELECT kind, parked FROM cbs ORDER BY kind;
-- two have timed out (t1, t2: their park's deadline moved back); t3 has not
UPDATE awa.callbacks c SET deadline_at = now() - interval '1 second' FROM awa.jobs j
 WHERE j.id = c.job_id AND j.kind IN ('t1', 't2') AND c.kind = 'wait';
SELECT rescued FROM awa_maintain();
SELECT kind, state, attempt, errors[1]->>'error' AS error,
       CASE WHEN state = 'retryable' THEN run_at > now() END AS backoff,
       finalized_at IS NOT NULL AS finalized, deadline_at IS NULL AS no_deadline
  FROM awa.jobs ORDER BY kind;
SELECT kind, awa_complete_external(cb) FROM cbs ORDER BY kind;
SELECT kind, state FROM awa.jobs ORDER BY kind;
SELECT step, item FROM awa.maintenance_failures;

DROP FUNCTION err(text), claim_one(text);
DROP EXTENSION awa;
