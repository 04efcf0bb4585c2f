-- Unique jobs: keys from kind plus chosen parts, the states that hold a key,
-- cancel by key, and bad input.
-- On the default ring engine: states are reached through awa's functions.  unique_table.sql keeps, on the table,
-- the key of a job from before 0.3.0 (written into the table) and the table's own check of a row written directly.
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- by args: key order and whitespace do not matter
SELECT id, state, unique_key IS NOT NULL AS keyed, unique_states FROM awa_insert('u', '{"a": 1, "b": [1, 2]}', unique_by_args => true);
SELECT id FROM awa_insert('u', '{ "b":[1,2],   "a":1 }', unique_by_args => true);
SELECT id FROM awa_insert('u', '{"a": 2}', unique_by_args => true);
-- not by queue: the same args in another queue is the same job
SELECT id, queue FROM awa_insert('u', '{"a": 1, "b": [1, 2]}', queue => 'other', unique_by_args => true);
-- by queue: a separate key per queue
SELECT id, queue FROM awa_insert('u', '{"a": 1, "b": [1, 2]}', queue => 'other', unique_by_args => true, unique_by_queue => true);
-- another kind never shares a key
SELECT id, kind FROM awa_insert('v', '{"a": 1, "b": [1, 2]}', unique_by_args => true);
-- a job without unique options never collides
SELECT id FROM awa_insert('u', '{"a": 1, "b": [1, 2]}');
-- period: run_at buckets
SELECT id FROM awa_insert('p', unique_period => '1 hour', run_at => '2030-01-01 10:05');
SELECT id FROM awa_insert('p', unique_period => '1 hour', run_at => '2030-01-01 10:55');
SELECT id FROM awa_insert('p', unique_period => '1 hour', run_at => '2030-01-01 11:00');
SELECT count(*) FROM awa.jobs;

-- default unique states: failed and cancelled release the key; completed holds it.  Job 1 is claimed (the oldest
-- of queue default) and fails: a new job takes the key (priority 1, so that the next claim takes it), is claimed
-- and completes, and holds the key
SELECT id, awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('default');
SELECT id, state FROM awa_insert('u', '{"a": 1, "b": [1, 2]}', unique_by_args => true, priority => 1);
SELECT id, awa_complete(id, run_lease) FROM awa_claim('default');
SELECT id, state FROM awa_insert('u', '{"a": 1, "b": [1, 2]}', unique_by_args => true);
-- explicit unique states: held while live, released when completed
SELECT id, unique_states FROM awa_insert('s', queue => 'sq', unique_states => '{scheduled,available,running,retryable,waiting_external}');
SELECT id FROM awa_insert('s', queue => 'sq', unique_states => '{scheduled,available,running,retryable,waiting_external}');
SELECT kind, awa_complete(id, run_lease) FROM awa_claim('sq');
SELECT kind, state FROM awa_insert('s', queue => 'sq', unique_states => '{scheduled,available,running,retryable,waiting_external}');
SELECT kind, state, count(*) FROM awa.jobs WHERE kind = 's' GROUP BY 1, 2 ORDER BY 2;

-- numbers equal in jsonb give one key, whatever their written scale
SELECT (awa_insert('num', '{"n": 1}', unique_by_args => true)).id AS num_id \gset
SELECT id = :num_id AS same_job FROM awa_insert('num', '{"n": 1.0}', unique_by_args => true);
SELECT id = :num_id AS same_job FROM awa_insert('num', '{"n": 1.00}', unique_by_args => true);
SELECT id = :num_id AS same_job FROM awa_insert('num', '{"n": 10e-1}', unique_by_args => true);
SELECT id = :num_id AS same_job FROM awa_insert('num', '{"n": 2}', unique_by_args => true);
SELECT (awa_insert('num', '{"a": [1.50, {"b": -0.0}], "c": 100}', unique_by_args => true)).id AS nested_id \gset
SELECT id = :nested_id AS same_job FROM awa_insert('num', '{"c": 1e2, "a": [1.5, {"b": 0}]}', unique_by_args => true);
SELECT id = :nested_id AS same_job FROM awa_insert_many('[{"kind": "num", "args": {"a": [1.500, {"b": 0.00}], "c": 100.0}, "unique_by_args": true}]');
-- the stored args keep what was written
SELECT args FROM awa.jobs WHERE kind = 'num' ORDER BY id;
DELETE FROM awa.jobs WHERE kind = 'num';

-- cancel by the same parts
SELECT kind, state FROM awa_cancel_by_unique_key('u', '{"a": 2}');
SELECT count(*) FROM awa_cancel_by_unique_key('u', '{"a": 2}');
SELECT count(*) FROM awa_cancel_by_unique_key('u', '{"a": 3}');
SELECT kind, queue, state FROM awa_cancel_by_unique_key('u', '{"b": [1, 2], "a": 1}', queue => 'other');
SELECT kind, state FROM awa_cancel_by_unique_key('p', unique_period => '1 hour', run_at => '2030-01-01 11:30');
-- a cancelled job released its key
SELECT kind, state FROM awa_insert('u', '{"a": 2}', unique_by_args => true);

-- bad input: errors, nothing written
SELECT count(*) FROM awa.jobs;
SELECT awa_insert('u', unique_period => '0 seconds');
SELECT awa_insert('u', unique_period => '-1 hour');
SELECT awa_insert('u', unique_states => '{}');
SELECT awa_insert('u', unique_states => '{available,NULL}');
SELECT awa_insert('u', unique_states => '{bogus}');
-- a set must hold every live state, or awa's own moves (claim, promotion,
-- snooze, rescue) could make two jobs hold one key
SELECT awa_insert('a', unique_states => '{running}');
SELECT awa_insert('c', queue => 'c', unique_states => '{available}', run_at => now() + interval '10 ms');
SELECT awa_insert('u', unique_states => '{scheduled,available,running,retryable,completed}');
SELECT awa_insert('u', unique_by_args => NULL);
SELECT awa_insert('u', unique_by_queue => NULL);
SELECT * FROM awa_cancel_by_unique_key(NULL);
SELECT * FROM awa_cancel_by_unique_key('');
SELECT * FROM awa_cancel_by_unique_key('u', unique_period => '-1 s');
SELECT count(*) FROM awa.jobs;

-- awa_insert_many takes the same unique options, per element
DELETE FROM awa.jobs;
SELECT (awa_insert('im', '{"x": 1}', unique_by_args => true)).id AS held_id \gset
SELECT i, id - :held_id AS rel_id, kind, unique_key IS NOT NULL AS has_key, unique_states
  FROM awa_insert_many('[
    {"kind": "im", "args": {"x": 1}, "unique_by_args": true},
    {"kind": "im", "args": {"x": 2}, "unique_by_args": true, "unique_states": ["scheduled", "available", "running", "retryable", "waiting_external"]},
    {"kind": "im", "args": {"x": 2}, "unique_by_args": true, "unique_states": ["scheduled", "available", "running", "retryable", "waiting_external"]},
    {"kind": "plain"},
    {"kind": "im", "queue": "qa", "unique_by_queue": true, "unique_period": "1 hour"},
    {"kind": "im", "queue": "qa", "unique_by_queue": true, "unique_period": 3600},
    {"kind": "im", "queue": "qb", "unique_by_queue": true, "unique_period": 3600}
  ]') WITH ORDINALITY AS t(id, kind, queue, args, state, priority, attempt, max_attempts, run_at,
       heartbeat_at, deadline_at, attempted_at, finalized_at, created_at, errors, metadata, tags,
       unique_key, unique_states, run_lease, progress, claimed_by, lease, timeout,
       result, callback_key, callback_lease, callback_timeout, callback_payload, group_id, concurrency_key, i)
 ORDER BY i;
-- the two x=2 elements and the two qa elements are one job each: 5 jobs in all
SELECT count(*) FROM awa.jobs;
-- the same keys as awa_insert builds: awa_insert finds the jobs insert_many made
SELECT (awa_insert('im', '{"x": 2}', unique_by_args => true, unique_states => '{scheduled,available,running,retryable,waiting_external}')).id
     = (SELECT id FROM awa.jobs WHERE args = '{"x": 2}') AS same_job;
SELECT count(*) FROM awa_cancel_by_unique_key('im', queue => 'qa', unique_period => '1 hour');
-- bad unique options: an error naming the element, nothing written
SELECT * FROM awa_insert_many('[{"kind": "a"}, {"kind": "a", "unique_by_args": 1}]');
SELECT * FROM awa_insert_many('[{"kind": "a", "unique_states": ["bogus"]}]');
SELECT * FROM awa_insert_many('[{"kind": "a", "unique_states": []}]');
SELECT * FROM awa_insert_many('[{"kind": "a", "unique_states": [null]}]');
SELECT * FROM awa_insert_many('[{"kind": "a"}, {"kind": "a", "unique_states": ["running"]}]');
SELECT * FROM awa_insert_many('[{"kind": "a", "unique_period": "-1 hour"}]');
SELECT * FROM awa_insert_many('[{"kind": "a", "unique_period": 0}]');
SELECT * FROM awa_insert_many('[{"kind": "a", "unique_period": "soon"}]');
SELECT * FROM awa_insert_many('[{"kind": "a", "unique_period": null}]');
SELECT count(*) FROM awa.jobs;

-- retrying a unique job whose key another job holds now
DELETE FROM awa.jobs;
SELECT (awa_insert('rk', '{"r": 1}', unique_by_args => true)).id AS first_id \gset
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('default') WHERE id = :first_id;
SELECT (awa_insert('rk', '{"r": 1}', unique_by_args => true)).id AS holder_id \gset
SELECT :holder_id <> :first_id AS a_new_job_holds_the_key;
-- awa_retry: a clear error, nothing changes
SELECT * FROM awa_retry(:first_id);
SELECT id = :first_id AS is_first, state FROM awa.jobs ORDER BY id;
-- awa_retry_failed skips it (it stays failed) and retries the rest
SELECT (awa_insert('plain_fail')).id AS plain_id \gset
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('default', batch => 5) WHERE id = :plain_id;
SELECT kind, state FROM awa_retry_failed('*');
SELECT id = :first_id AS is_first, kind, state FROM awa.jobs ORDER BY id;
-- once the holder is done (cancelled), the old job can be retried
SELECT state FROM awa_cancel(:holder_id);
SELECT id = :first_id AS is_first, state FROM awa_retry(:first_id);
-- two failed jobs sharing a key and no holder: awa_retry_failed brings back only the newest
DELETE FROM awa.jobs;
SELECT (awa_insert('twin', '{"t": 1}', unique_by_args => true)).id AS t1 \gset
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('default') WHERE id = :t1;
SELECT (awa_insert('twin', '{"t": 1}', unique_by_args => true)).id AS t2 \gset
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('default') WHERE id = :t2;
SELECT id = :t2 AS is_newest, state FROM awa_retry_failed('twin');
SELECT id = :t1 AS is_older, state FROM awa.jobs ORDER BY id;

DROP EXTENSION awa;
