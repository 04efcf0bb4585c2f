-- The API contract of administration and bulk: signatures, markings, SQLSTATEs, all-or-nothing.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(63);

-- signatures and markings
SELECT function_returns('public', 'awa_retry_failed', ARRAY['text', 'text'], 'setof awa.jobs');
SELECT function_returns('public', 'awa_discard_failed', ARRAY['text'], 'bigint');
SELECT function_returns('public', 'awa_pause_queue', ARRAY['text', 'text'], 'boolean');
SELECT function_returns('public', 'awa_resume_queue', ARRAY['text'], 'boolean');
SELECT function_returns('public', 'awa_drain_queue', ARRAY['text'], 'bigint');
SELECT function_returns('public', 'awa_list_jobs',
	ARRAY['awa.job_state', 'text', 'text', 'text', 'bigint', 'integer'], 'setof awa.jobs');
SELECT function_returns('public', 'awa_get_job', ARRAY['bigint'], 'awa.jobs');
SELECT function_returns('public', 'awa_health_check', ARRAY[]::text[], 'setof record');
SELECT function_returns('public', 'awa_insert_many', ARRAY['jsonb'], 'setof awa.jobs');
SELECT volatility_is('public', 'awa_list_jobs',
	ARRAY['awa.job_state', 'text', 'text', 'text', 'bigint', 'integer'], 'stable');
SELECT volatility_is('public', 'awa_get_job', ARRAY['bigint'], 'stable');
SELECT volatility_is('public', 'awa_insert_many', ARRAY['jsonb'], 'volatile');
SELECT function_lang_is('public', 'awa_insert_many', ARRAY['jsonb'], 'c');
SELECT has_trigger('awa', 'jobs', 'jobs_before_insert', 'COPY path trigger on awa.jobs');
SELECT trigger_is('awa', 'jobs', 'jobs_before_insert', 'awa', 'jobs_before_insert');
SELECT ok(obj_description('public.awa_retry_failed(text, text)'::regprocedure, 'pg_proc') LIKE '%''*''%',
	'the retry-everything form is documented in the comment');

-- SQLSTATEs of bad input
SELECT throws_ok($$SELECT * FROM awa_retry_failed()$$, '22023', NULL, 'retry_failed without filter: 22023');
SELECT throws_ok($$SELECT * FROM awa_retry_failed('')$$, '22023', NULL, 'retry_failed empty kind: 22023');
SELECT throws_ok($$SELECT * FROM awa_retry_failed('k', repeat('q', 201))$$, '22023', NULL, 'retry_failed long queue: 22023');
SELECT throws_ok($$SELECT awa_discard_failed(NULL)$$, '22004', NULL, 'discard_failed NULL: 22004');
SELECT throws_ok($$SELECT awa_discard_failed('')$$, '22023', NULL, 'discard_failed empty: 22023');
SELECT throws_ok($$SELECT awa_pause_queue(NULL)$$, '22004', NULL, 'pause NULL: 22004');
SELECT throws_ok($$SELECT awa_pause_queue('')$$, '22023', NULL, 'pause empty: 22023');
SELECT throws_ok($$SELECT awa_resume_queue(NULL)$$, '22004', NULL, 'resume NULL: 22004');
SELECT throws_ok($$SELECT awa_resume_queue(repeat('q', 201))$$, '22023', NULL, 'resume long: 22023');
SELECT throws_ok($$SELECT awa_drain_queue(NULL)$$, '22004', NULL, 'drain NULL: 22004');
SELECT throws_ok($$SELECT awa_drain_queue('')$$, '22023', NULL, 'drain empty: 22023');
SELECT throws_ok($$SELECT * FROM awa_list_jobs(lim => 0)$$, '22023', 'lim must be between 1 and 1000, got 0', 'lim 0: 22023');
SELECT throws_ok($$SELECT * FROM awa_list_jobs(lim => -5)$$, '22023', NULL, 'negative lim: 22023');
SELECT throws_ok($$SELECT * FROM awa_list_jobs(lim => 1001)$$, '22023', NULL, 'lim over 1000: 22023');
SELECT throws_ok($$SELECT * FROM awa_list_jobs(lim => NULL)$$, '22004', NULL, 'lim NULL: 22004');
SELECT throws_ok($$SELECT * FROM awa_get_job(-1)$$, 'P0002', 'job -1 does not exist', 'get_job unknown: P0002');
SELECT throws_ok($$SELECT * FROM awa_get_job(NULL)$$, '22004', NULL, 'get_job NULL: 22004');
SELECT throws_ok($$SELECT awa_insert_many(NULL)$$, '22004', NULL, 'insert_many NULL: 22004');
SELECT throws_ok($$SELECT awa_insert_many('{}')$$, '22023', NULL, 'insert_many object: 22023');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "a"}, {"queue": "q"}]')$$, '22004',
	'jobs[1]: kind is required', 'insert_many missing kind: 22004, index named');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "a"}, {"kind": "a", "priority": "2"}]')$$, '22023',
	'jobs[1]: priority must be an integer, got string', 'insert_many wrong type: 22023');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "a", "tags": [1]}]')$$, '22023', NULL, 'insert_many tag type: 22023');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "a", "run_at": "soon"}]')$$, '22007', NULL, 'insert_many bad run_at: 22007');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, priority) VALUES ('k', 0)$$, '22023', NULL, 'COPY/INSERT path priority: 22023');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, args) VALUES ('k', NULL)$$, '22004', NULL, 'COPY/INSERT path NULL args: 22004');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'bad input wrote nothing');
SELECT is((SELECT count(*) FROM awa.queue_meta), 0::bigint, 'bad queue input wrote nothing');

-- insert_many: all or nothing, input order
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "ok1"}, {"kind": "ok2"}, {"kind": "bad", "max_attempts": 0}]')$$,
	'22023', 'jobs[2]: max_attempts must be between 1 and 1000, got 0', 'third element bad');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'the good elements before it were not written');
SELECT results_eq($$SELECT kind FROM awa_insert_many('[{"kind": "c", "max_attempts": 1}, {"kind": "a", "max_attempts": 1},
	{"kind": "b", "run_at": "2999-01-01"}]')$$,
	ARRAY['c', 'a', 'b'], 'insert_many returns rows in input order');
SELECT is((SELECT state FROM awa.jobs WHERE kind = 'b'), 'scheduled'::awa.job_state, 'insert_many: future run_at is scheduled');

-- retry/discard, pause/resume/drain, list/get
-- 'a' and 'c' reach failed through the API: their one attempt claimed and failed
SELECT is((SELECT array_agg(awa_fail(id, run_lease, 'boom') ORDER BY id) FROM awa_claim('default', batch => 10)),
	ARRAY['failed', 'failed']::awa.job_state[], 'the one attempt of a and c fails for good');
SELECT is((SELECT count(*) FROM awa_retry_failed('a')), 1::bigint, 'retry_failed by kind');
SELECT is((SELECT attempt FROM awa.jobs WHERE kind = 'a'), 0::smallint, 'retry_failed resets attempts');
SELECT is(awa_discard_failed('*'), 1::bigint, 'discard_failed of every kind');
SELECT ok(awa_pause_queue('default', 'me'), 'pause');
SELECT ok(NOT awa_pause_queue('default'), 'pause again: false');
SELECT is((SELECT paused_queues FROM awa_health_check()), ARRAY['default'], 'health check lists paused queues');
SELECT ok(awa_resume_queue('default'), 'resume');
SELECT ok(NOT awa_resume_queue('unknown'), 'resume of an unknown queue: false, no-op');
SELECT is(awa_drain_queue('default'), 2::bigint, 'drain cancels available and scheduled');
SELECT is((SELECT count(*) FROM awa_list_jobs(state => 'cancelled')), 2::bigint, 'list by state');
SELECT is((SELECT kind FROM awa_get_job((SELECT max(id) FROM awa.jobs))), 'b', 'get_job');

-- health check shape
SELECT is((SELECT version FROM awa_health_check()),
	(SELECT extversion FROM pg_extension WHERE extname = 'awa'), 'health check: version');
SELECT ok((SELECT healthy = (reason IS NULL) FROM awa_health_check()), 'health check: healthy iff no reason');
SELECT ok((SELECT worker_running = (worker_pid IS NOT NULL) FROM awa_health_check()), 'health check: worker pid iff running');
SELECT is((SELECT count(*) FROM awa_health_check()), 1::bigint, 'health check: one row');

SELECT * FROM finish();
ROLLBACK;
