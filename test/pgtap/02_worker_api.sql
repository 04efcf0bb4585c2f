-- The API contract of the worker lifecycle: signatures, SQLSTATEs, leases.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(41);

SELECT function_returns('public', 'awa_claim', ARRAY['text', 'text', 'integer', 'interval', 'interval'], 'setof awa.jobs');
SELECT is_procedure('public', 'awa_claim_wait', ARRAY['text', 'text', 'integer', 'interval', 'interval', 'awa.jobs[]'],
	'awa_claim_wait(queue, worker, batch, lease, wait, INOUT jobs awa.jobs[]) is a procedure');
SELECT function_returns('public', 'awa_complete', ARRAY['bigint', 'bigint', 'jsonb'], 'boolean');
SELECT function_returns('public', 'awa_complete_many', ARRAY['bigint[]', 'bigint[]', 'jsonb[]'], 'bigint');
SELECT function_returns('public', 'awa_register_callback', ARRAY['bigint', 'bigint', 'interval'], 'uuid');
SELECT function_returns('public', 'awa_wait_external', ARRAY['bigint', 'bigint'], 'boolean');
SELECT function_returns('public', 'awa_complete_external', ARRAY['uuid', 'jsonb'], 'boolean');
SELECT function_returns('public', 'awa_fail_external', ARRAY['uuid', 'text', 'jsonb'], 'boolean');
SELECT function_returns('public', 'awa_retry_external', ARRAY['uuid', 'jsonb', 'interval'], 'awa.job_state');
SELECT function_returns('public', 'awa_heartbeat_callback', ARRAY['uuid', 'interval'], 'boolean');
SELECT function_returns('public', 'awa_fail', ARRAY['bigint', 'bigint', 'text', 'interval', 'boolean'], 'awa.job_state');
SELECT function_returns('public', 'awa_snooze', ARRAY['bigint', 'bigint', 'interval'], 'boolean');
SELECT function_returns('public', 'awa_heartbeat', ARRAY['bigint[]', 'bigint[]'], 'bigint[]');
SELECT function_returns('public', 'awa_progress', ARRAY['bigint', 'bigint', 'jsonb'], 'boolean');
SELECT function_returns('public', 'awa_rescue', ARRAY[]::text[], 'bigint');

SELECT throws_ok($$SELECT * FROM awa_claim('q', batch => 0)$$, '22023', NULL, 'batch 0: 22023');
SELECT throws_ok($$SELECT * FROM awa_claim('q', batch => 1001)$$, '22023', NULL, 'batch 1001: 22023');
SELECT throws_ok($$SELECT * FROM awa_claim('q', lease => '-1 s')$$, '22023', NULL, 'negative lease: 22023');
SELECT throws_ok($$SELECT * FROM awa_claim('q', wait => '-1 s')$$, '22023', NULL, 'negative wait: 22023');
SELECT throws_ok($$SELECT * FROM awa_claim(NULL)$$, '22004', NULL, 'NULL queue: 22004');
SELECT throws_ok($$CALL awa_claim_wait('q', batch => 0)$$, '22023', NULL, 'awa_claim_wait batch 0: 22023');
SELECT throws_ok($$CALL awa_claim_wait('q', wait => '-1 s')$$, '22023', NULL, 'awa_claim_wait negative wait: 22023');
SELECT throws_ok($$CALL awa_claim_wait(NULL)$$, '22004', NULL, 'awa_claim_wait NULL queue: 22004');
SELECT throws_ok($$SELECT awa_complete_many(ARRAY[1], ARRAY[1, 2])$$, '22023', NULL, 'mismatched arrays: 22023');
SELECT throws_ok($$SELECT awa_complete_many(array_fill(1::bigint, ARRAY[10001]), array_fill(1::bigint, ARRAY[10001]))$$,
	'54000', NULL, 'too many ids: 54000');
SELECT throws_ok($$SELECT awa_heartbeat(ARRAY[1], ARRAY[NULL]::bigint[])$$, '22004', NULL, 'NULL lease: 22004');
SELECT throws_ok($$SELECT awa_fail(1, 1, 'x', retry_in => '-1 s')$$, '22023', NULL, 'negative retry_in: 22023');
SELECT throws_ok($$SELECT awa_snooze(1, 1, '-1 s')$$, '22023', NULL, 'negative delay: 22023');

-- one job through its life
SELECT awa_insert('k', queue => 'tap');
SELECT is((SELECT run_lease FROM awa_claim('tap')), 1::bigint, 'first claim: lease 1');
SELECT is((SELECT state FROM awa.jobs WHERE queue = 'tap'), 'running'::awa.job_state, 'claimed job is running');
SELECT is(awa_fail((SELECT id FROM awa.jobs WHERE queue = 'tap'), 1, 'oops', retry_in => '0 s'),
	'retryable'::awa.job_state, 'fail: retryable');
SELECT is((SELECT run_lease FROM awa_claim('tap')), 2::bigint, 'retry claimed: lease 2');
SELECT ok(NOT awa_complete((SELECT id FROM awa.jobs WHERE queue = 'tap'), 1), 'old lease cannot complete');
SELECT ok(awa_complete((SELECT id FROM awa.jobs WHERE queue = 'tap'), 2), 'current lease completes');
SELECT is((SELECT attempt FROM awa.jobs WHERE queue = 'tap'), 2::smallint, 'two attempts');
SELECT is((SELECT cardinality(errors) FROM awa.jobs WHERE queue = 'tap'), 1, 'one error recorded');
SELECT is_empty($$SELECT * FROM awa_claim('tap')$$, 'nothing left to claim');

-- a snooze does not use up the attempt it ends: the job waits scheduled with the attempts it had before
SELECT awa_insert('k', queue => 'tap_snooze');
SELECT is((SELECT attempt FROM awa_claim('tap_snooze')), 1::smallint, 'snooze: claimed, attempt 1');
SELECT ok(awa_snooze((SELECT id FROM awa.jobs WHERE queue = 'tap_snooze'), 1, '1 hour'), 'snoozed for an hour');
SELECT is((SELECT row(state, attempt, run_at > now() + interval '59 minutes')::text FROM awa.jobs
	WHERE queue = 'tap_snooze'), '(scheduled,0,t)', 'snoozed: scheduled, its attempt not counted, due in an hour');
SELECT is((SELECT scheduled FROM awa_queue_stats() WHERE queue = 'tap_snooze'), 1::bigint,
	'snoozed: counted as scheduled');

SELECT * FROM finish();
ROLLBACK;
