-- The API contract of the core: signatures, result types, SQLSTATEs, transactions.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(41);

SELECT has_schema('awa');
SELECT has_relation('awa', 'jobs', 'awa.jobs exists (a table, or the ring''s view)');
SELECT has_table('awa', 'queue_meta', 'awa.queue_meta exists');
SELECT has_type('awa', 'job_state', 'awa.job_state exists');
SELECT enum_has_labels('awa', 'job_state',
	ARRAY['scheduled', 'available', 'running', 'completed', 'retryable', 'failed', 'cancelled', 'waiting_external']);
SELECT columns_are('awa', 'jobs', ARRAY['id', 'kind', 'queue', 'args', 'state', 'priority', 'attempt',
	'max_attempts', 'run_at', 'heartbeat_at', 'deadline_at', 'attempted_at', 'finalized_at', 'created_at',
	'errors', 'metadata', 'tags', 'unique_key', 'unique_states', 'run_lease', 'progress', 'claimed_by', 'lease', 'timeout',
	'result', 'callback_key', 'callback_lease', 'callback_timeout', 'callback_payload', 'group_id', 'concurrency_key']);
SELECT col_type_is('awa', 'jobs', 'id', 'bigint', 'jobs.id is bigint');
SELECT col_type_is('awa', 'jobs', 'priority', 'smallint', 'jobs.priority is smallint');
SELECT col_type_is('awa', 'jobs', 'errors', 'jsonb[]', 'jobs.errors is jsonb[]');
SELECT col_type_is('awa', 'jobs', 'unique_states', 'bit(8)', 'jobs.unique_states is bit(8)');
SELECT col_default_is('awa', 'jobs', 'queue', 'default'::text, 'queue defaults to default');

SELECT function_returns('public', 'awa_insert',
	ARRAY['text', 'jsonb', 'text', 'integer', 'integer', 'timestamp with time zone', 'text[]', 'jsonb', 'boolean', 'boolean', 'interval', 'awa.job_state[]', 'interval', 'text', 'bigint[]', 'text', 'text'], 'awa.jobs');
SELECT function_returns('public', 'awa_cancel', ARRAY['bigint'], 'setof awa.jobs');
SELECT function_returns('public', 'awa_retry', ARRAY['bigint'], 'setof awa.jobs');
SELECT function_returns('public', 'awa_queue_stats', ARRAY[]::text[], 'setof record');
SELECT function_lang_is('public', 'awa_insert',
	ARRAY['text', 'jsonb', 'text', 'integer', 'integer', 'timestamp with time zone', 'text[]', 'jsonb', 'boolean', 'boolean', 'interval', 'awa.job_state[]', 'interval', 'text', 'bigint[]', 'text', 'text'], 'c');
SELECT volatility_is('public', 'awa_queue_stats', ARRAY[]::text[], 'stable');

-- SQLSTATEs of bad input
SELECT throws_ok($$SELECT awa_insert('')$$, '22023', NULL, 'empty kind: 22023');
SELECT throws_ok($$SELECT awa_insert(repeat('x', 201))$$, '22023', NULL, 'long kind: 22023');
SELECT throws_ok($$SELECT awa_insert('k', queue => repeat('x', 201))$$, '22023', NULL, 'long queue: 22023');
SELECT throws_ok($$SELECT awa_insert('k', priority => 9)$$, '22023', NULL, 'priority: 22023');
SELECT throws_ok($$SELECT awa_insert('k', max_attempts => 0)$$, '22023', NULL, 'max_attempts: 22023');
SELECT throws_ok($$SELECT awa_insert('k', tags => array_fill('t'::text, ARRAY[21]))$$, '22023', NULL, 'tags: 22023');
SELECT throws_ok($$SELECT awa_insert('k', '1')$$, '22023', NULL, 'scalar args: 22023');
SELECT throws_ok($$SELECT awa_insert(NULL)$$, '22004', NULL, 'NULL kind: 22004');
SELECT throws_ok($$SELECT awa_insert('k', jsonb_build_object('b', repeat('x', 1100000)))$$, '54000', NULL,
	'args over awa.max_args_bytes: 54000');
SELECT throws_ok($$SELECT awa_insert('k', NULL)$$, '22004', NULL, 'NULL args: 22004');
SELECT throws_ok($$SELECT * FROM awa_cancel(-1)$$, 'P0002', 'job -1 does not exist', 'unknown id: P0002');
SELECT throws_ok($$SELECT * FROM awa_retry(-1)$$, 'P0002', 'job -1 does not exist', 'unknown id: P0002');
SELECT throws_ok($$SELECT * FROM awa_cancel(NULL)$$, '22004', NULL, 'NULL id: 22004');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'bad input wrote nothing');

-- a job, cancelled and retried
SELECT is((SELECT state FROM awa_insert('k', '{"a": 1}')), 'available'::awa.job_state, 'insert: available');
SELECT is((SELECT state FROM awa_insert('k', run_at => now() + interval '1 minute')), 'scheduled'::awa.job_state,
	'insert in the future: scheduled');
SELECT is((SELECT state FROM awa_cancel((SELECT min(id) FROM awa.jobs))), 'cancelled'::awa.job_state, 'cancel');
SELECT is_empty($$SELECT * FROM awa_cancel((SELECT min(id) FROM awa.jobs))$$, 'cancel twice: no row');
SELECT is((SELECT state FROM awa_retry((SELECT min(id) FROM awa.jobs))), 'available'::awa.job_state, 'retry');
SELECT is_empty($$SELECT * FROM awa_retry((SELECT min(id) FROM awa.jobs))$$, 'retry of available: no row');

-- a rolled-back savepoint leaves no job
SAVEPOINT s;
SELECT awa_insert('gone');
ROLLBACK TO SAVEPOINT s;
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind = 'gone'), 0::bigint, 'rolled back insert left no job');

-- stats see the caller's own jobs
SELECT is((SELECT total_queued FROM awa_queue_stats() WHERE queue = 'default'), 2::bigint, 'stats: own jobs counted');
SELECT is((SELECT available FROM awa_queue_stats() WHERE queue = 'default'), 1::bigint, 'stats: available');
SELECT is((SELECT scheduled FROM awa_queue_stats() WHERE queue = 'default'), 1::bigint, 'stats: scheduled');

SELECT * FROM finish();
ROLLBACK;
