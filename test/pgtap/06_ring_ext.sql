-- The ring's retry, cancel by unique key and external waits (docs/storage.md, "Step 5: retry, cancel by unique
-- key, external waits on the ring"): each path done once on the ring and once on awa.jobs with the awa_* function
-- it copies, in one transaction (so now() is the same), and the two jobs compared column by column through
-- awa.ring_get (all of awa.jobs' columns but the id and the callback key, which each side draws); bad input
-- (22023 naming the field, and the other SQLSTATEs of the awa_* functions), nothing written after an error; the
-- counters against awa.ring_recount() after each path; no ready row, receipt, done row or callback row updated or
-- deleted.  Races: the isolation specs ring_ext_*.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(145);

SET LOCAL awa.claim_floors = off;

-- the relations: internal like the ring
SELECT has_table('awa', 'callbacks', 'awa.callbacks');
SELECT col_not_null('awa', 'done', 'after_wait', 'done.after_wait');
SELECT is((SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.conname = 'done_attempt_key'
		AND c.conrelid = 'awa.done'::regclass), 'UNIQUE (job_id, run_lease, slot, after_wait)',
	'done''s key: one end and one end of a wait per attempt');
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.oid IN ('awa.callbacks'::regclass, 'awa.callbacks_0'::regclass) AND a.grantee <> c.relowner), 0::bigint,
	'no role is granted awa.callbacks');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a WHERE p.pronamespace = 'awa'::regnamespace
	AND p.proname IN ('ring_retry', 'ring_cancel_by_unique_key', 'ring_register_callback', 'ring_wait_external',
		'ring_complete_external', 'ring_fail_external', 'ring_retry_external', 'ring_heartbeat_callback',
		'ring_callback_timeouts') AND a.grantee <> p.proowner), 0::bigint, 'no role may execute the functions');

-- the switch
SELECT throws_ok($$SELECT awa.ring_retry(1)$$, '55000', NULL, 'ring_retry refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_register_callback(1, 1, '1 hour')$$, '55000', NULL,
	'ring_register_callback refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_complete_external(gen_random_uuid())$$, '55000', NULL,
	'ring_complete_external refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_callback_timeouts()$$, '55000', NULL,
	'ring_callback_timeouts refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_cancel_by_unique_key('k')$$, '55000', NULL,
	'ring_cancel_by_unique_key refuses while the ring is off');

SET LOCAL awa.ring_engine = on;

-- ring and awa.jobs jobs in pairs: n, the ring's id, awa.jobs' id, their callback ids
CREATE TEMP TABLE p (n text PRIMARY KEY, r bigint, l bigint, rcb uuid, lcb uuid);
-- what is compared: every column but the id, the callback key, the queue (rq and lq) and attempted_at (awa_claim
-- takes clock_timestamp(); heartbeat_at and deadline_at too, so they are left out while the job runs)
CREATE FUNCTION pg_temp.cols(j awa.jobs, skip text[] DEFAULT '{}') RETURNS jsonb LANGUAGE sql
	AS $$ SELECT to_jsonb(j) - ('{id,callback_key,queue,attempted_at}'::text[] || skip) $$;
CREATE FUNCTION pg_temp.same(name text, skip text[] DEFAULT '{}') RETURNS text LANGUAGE sql AS $$
	SELECT is(pg_temp.cols(awa.ring_get(p.r), skip), pg_temp.cols((SELECT j FROM awa.jobs j WHERE j.id = p.l), skip),
		name || ': the ring''s job equals awa.jobs''') FROM p WHERE p.n = name $$;
-- a job of each, claimed (lease 1): the ring's in queue rq, awa.jobs' in lq
CREATE FUNCTION pg_temp.pair(name text, max_attempts int DEFAULT 25) RETURNS void LANGUAGE sql AS $$
	INSERT INTO p (n, r, l) VALUES (name,
		awa.ring_insert('ext', jsonb_build_object('n', name), 'rq', max_attempts => max_attempts),
		(awa_insert('ext', jsonb_build_object('n', name), 'lq', max_attempts => max_attempts)).id);
	SELECT count(*) FROM awa.ring_claim('rq', 1, '5 minutes', 'w');
	SELECT count(*) FROM awa_claim('lq', 'w', 1, '5 minutes');
$$;
CREATE FUNCTION pg_temp.register(name text, lease bigint DEFAULT 1) RETURNS void LANGUAGE sql AS $$
	UPDATE p SET rcb = awa.ring_register_callback(p.r, lease, '1 hour'),
		lcb = awa_register_callback(p.l, lease, '1 hour') WHERE p.n = name;
$$;

-- bad input: 22023 naming the field (the ring's rule for NULL), the others as the awa_* functions; nothing written
SELECT pg_temp.pair('bad');
SELECT pg_temp.register('bad');
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM awa.done) AS done, (SELECT count(*) FROM awa.callbacks) AS cbs,
	(SELECT count(*) FROM awa.ready) AS ready, (SELECT count(*) FROM awa.unique_keys) AS keys;
SELECT throws_ok($$SELECT awa.ring_register_callback(NULL, 1, '1 hour')$$, '22023', 'id must not be null', 'register: id NULL');
SELECT throws_ok($$SELECT awa.ring_register_callback(1, NULL, '1 hour')$$, '22023', 'run_lease must not be null',
	'register: run_lease NULL');
SELECT throws_ok($$SELECT awa.ring_register_callback((SELECT r FROM p WHERE n = 'bad'), 1, NULL)$$, '22023',
	'timeout must not be null', 'register: timeout NULL');
SELECT throws_ok($$SELECT awa.ring_register_callback((SELECT r FROM p WHERE n = 'bad'), 1, '0')$$, '22023', NULL,
	'register: timeout 0');
SELECT throws_ok($$SELECT awa.ring_register_callback((SELECT r FROM p WHERE n = 'bad'), 1, '36501 days')$$, '22023',
	NULL, 'register: timeout over 36500 days');
SELECT throws_ok($$SELECT awa.ring_wait_external(NULL, 1)$$, '22023', 'id must not be null', 'wait: id NULL');
SELECT throws_ok($$SELECT awa.ring_wait_external(1, NULL)$$, '22023', 'run_lease must not be null', 'wait: run_lease NULL');
SELECT throws_ok($$SELECT awa.ring_complete_external(NULL)$$, '22023', 'callback_id must not be null',
	'complete_external: callback_id NULL');
SET LOCAL awa.max_args_bytes = 1024;
SELECT throws_ok($$SELECT awa.ring_complete_external((SELECT rcb FROM p WHERE n = 'bad'),
	jsonb_build_object('x', repeat('x', 2000)))$$, '54000', NULL, 'complete_external: payload too large (54000)');
SELECT throws_ok($$SELECT awa.ring_fail_external((SELECT rcb FROM p WHERE n = 'bad'), 'e',
	jsonb_build_object('x', repeat('x', 2000)))$$, '54000', NULL, 'fail_external: payload too large (54000)');
RESET awa.max_args_bytes;
SELECT throws_ok($$SELECT awa.ring_fail_external(NULL, 'e')$$, '22023', 'callback_id must not be null',
	'fail_external: callback_id NULL');
SELECT throws_ok($$SELECT awa.ring_fail_external((SELECT rcb FROM p WHERE n = 'bad'), NULL)$$, '22023',
	'error must not be null', 'fail_external: error NULL');
SELECT throws_ok($$SELECT awa.ring_retry_external(NULL)$$, '22023', 'callback_id must not be null',
	'retry_external: callback_id NULL');
SELECT throws_ok($$SELECT awa.ring_retry_external((SELECT rcb FROM p WHERE n = 'bad'), NULL, '-1 second')$$, '22023',
	NULL, 'retry_external: negative retry_in');
SELECT throws_ok($$SELECT awa.ring_heartbeat_callback(NULL)$$, '22023', 'callback_id must not be null',
	'heartbeat_callback: callback_id NULL');
SELECT throws_ok($$SELECT awa.ring_heartbeat_callback((SELECT rcb FROM p WHERE n = 'bad'), '0')$$, '22023', NULL,
	'heartbeat_callback: timeout 0');
SELECT throws_ok($$SELECT awa.ring_callback_timeouts(0)$$, '22023', 'max must be between 1 and 10000', 'timeouts: max 0');
SELECT throws_ok($$SELECT awa.ring_callback_timeouts(NULL)$$, '22023', 'max must be between 1 and 10000',
	'timeouts: max NULL');
SELECT throws_ok($$SELECT awa.ring_retry(NULL)$$, '22023', 'id must not be null', 'retry: id NULL');
SELECT throws_ok($$SELECT awa.ring_retry(-5)$$, 'P0002', 'job -5 does not exist', 'retry: unknown id (P0002)');
SELECT throws_ok($$SELECT * FROM awa.ring_cancel_by_unique_key(NULL)$$, '22023', 'kind must not be null',
	'cancel_by_unique_key: kind NULL');
SELECT throws_ok($$SELECT * FROM awa.ring_cancel_by_unique_key('')$$, '22023', 'kind must be 1 to 200 characters long',
	'cancel_by_unique_key: kind empty');
SELECT throws_ok($$SELECT * FROM awa.ring_cancel_by_unique_key('k', queue => repeat('q', 201))$$, '22023',
	'queue must be 1 to 200 characters long', 'cancel_by_unique_key: queue too long');
SELECT throws_ok($$SELECT * FROM awa.ring_cancel_by_unique_key('k', unique_period => '0')$$, '22023',
	'unique_period must be a positive interval', 'cancel_by_unique_key: unique_period 0');
SELECT is((SELECT row(count(*)) FROM awa.done)::text || (SELECT count(*) FROM awa.callbacks)
	|| (SELECT count(*) FROM awa.ready) || (SELECT count(*) FROM awa.unique_keys),
	(SELECT row(done)::text || cbs || ready || keys FROM before), 'bad input wrote nothing');
SELECT is((awa.ring_get((SELECT r FROM p WHERE n = 'bad'))).state, 'running', 'the job is still running');

-- registration: the running attempt gets a callback; a stale lease gets NULL
SELECT is(awa.ring_register_callback((SELECT r FROM p WHERE n = 'bad'), 7, '1 hour'), NULL, 'register: stale lease: NULL');
SELECT pg_temp.pair('park');
SELECT pg_temp.register('park');
SELECT pg_temp.same('park', '{heartbeat_at,deadline_at}');
SELECT is((awa.ring_get((SELECT r FROM p WHERE n = 'park'))).callback_key, sha256(uuid_send((SELECT rcb FROM p WHERE n = 'park'))),
	'the job keeps the SHA-256 of its callback id');
-- a second registration replaces the first: the first id no longer acts
CREATE TEMP TABLE old AS SELECT rcb, lcb FROM p WHERE n = 'park';
SELECT pg_temp.register('park');
SELECT is(awa.ring_heartbeat_callback((SELECT rcb FROM old)), awa_heartbeat_callback((SELECT lcb FROM old)),
	'a replaced callback id finds no job (false on both)');
SELECT is(awa.ring_heartbeat_callback((SELECT rcb FROM old)), false, 'false');

-- wait_external: 55000 without a callback under the lease; parks; heartbeat; complete_external
SELECT pg_temp.pair('nocb');
SELECT throws_ok($$SELECT awa.ring_wait_external((SELECT r FROM p WHERE n = 'nocb'), 1)$$, '55000',
	format('job %s has no callback registered under run_lease 1', (SELECT r FROM p WHERE n = 'nocb')),
	'wait: no callback registered (55000)');
SELECT throws_ok($$SELECT awa_wait_external((SELECT l FROM p WHERE n = 'nocb'), 1)$$, '55000', NULL,
	'(awa_wait_external raises the same)');
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'park'), 2), false, 'wait: stale lease: false');
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'park'), 1), true, 'wait: parked');
SELECT is(awa_wait_external((SELECT l FROM p WHERE n = 'park'), 1), true, '(awa.jobs: parked)');
SELECT pg_temp.same('park');
SELECT is((awa.ring_get((SELECT r FROM p WHERE n = 'park'))).state, 'waiting_external', 'waiting_external');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after the park');
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'park'), 1), false, 'wait twice: false');
SELECT is_empty($$SELECT * FROM awa.ring_complete_many(ARRAY[(SELECT r FROM p WHERE n = 'park')], '{1}')$$,
	'the worker''s completion of a parked attempt is a no-op');
SELECT is(awa.ring_fail((SELECT r FROM p WHERE n = 'park'), 1, '"x"'), NULL, 'so is its failure');
SELECT is(awa.ring_heartbeat((SELECT r FROM p WHERE n = 'park'), 1), NULL, 'and its heartbeat');
SELECT is(awa.ring_heartbeat_callback((SELECT rcb FROM p WHERE n = 'park'), '2 hours'), true, 'heartbeat_callback: true');
SELECT is(awa_heartbeat_callback((SELECT lcb FROM p WHERE n = 'park'), '2 hours'), true, '(awa.jobs: true)');
SELECT pg_temp.same('park');
SELECT is(awa.ring_heartbeat_callback((SELECT rcb FROM p WHERE n = 'park')), true, 'heartbeat_callback without timeout');
SELECT is(awa_heartbeat_callback((SELECT lcb FROM p WHERE n = 'park')), true, '(awa.jobs: true)');
SELECT pg_temp.same('park');
SELECT is(awa.ring_complete_external((SELECT rcb FROM p WHERE n = 'park'), '{"answer": 42}'), true, 'complete_external');
SELECT is(awa_complete_external((SELECT lcb FROM p WHERE n = 'park'), '{"answer": 42}'), true, '(awa.jobs: true)');
SELECT pg_temp.same('park');
SELECT is((awa.ring_get((SELECT r FROM p WHERE n = 'park'))).result, '{"answer": 42}', 'the payload is the result');
SELECT is(awa.ring_complete_external((SELECT rcb FROM p WHERE n = 'park'), '{}'), false, 'complete_external twice: false');
SELECT is(awa.ring_retry_external((SELECT rcb FROM p WHERE n = 'park')), NULL, 'retry_external after it: NULL');
SELECT is(awa.ring_heartbeat_callback((SELECT rcb FROM p WHERE n = 'park')), false, 'heartbeat_callback after it: false');
SELECT is(awa.ring_complete_external(gen_random_uuid()), false, 'an unknown callback id: false');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after complete_external');

-- a callback before the park acts at once: the worker's park then finds the attempt ended
SELECT pg_temp.pair('early');
SELECT pg_temp.register('early');
SELECT is(awa.ring_heartbeat_callback((SELECT rcb FROM p WHERE n = 'early'), '3 hours'), true,
	'heartbeat_callback of a running job keeps the timeout for the park');
SELECT is(awa_heartbeat_callback((SELECT lcb FROM p WHERE n = 'early'), '3 hours'), true, '(awa.jobs: true)');
SELECT pg_temp.same('early', '{heartbeat_at,deadline_at}');
SELECT is(awa.ring_complete_external((SELECT rcb FROM p WHERE n = 'early'), '[1]'), true,
	'complete_external of a job still running under the callback''s lease');
SELECT is(awa_complete_external((SELECT lcb FROM p WHERE n = 'early'), '[1]'), true, '(awa.jobs: true)');
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'early'), 1), false, 'the worker''s park then: false');
SELECT is_empty($$SELECT * FROM awa.ring_complete_many(ARRAY[(SELECT r FROM p WHERE n = 'early')], '{1}')$$,
	'its completion: a no-op');
SELECT pg_temp.same('early');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after an early callback');

-- fail_external: failed for good, the error in errors, the payload kept
SELECT pg_temp.pair('fail');
SELECT pg_temp.register('fail');
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'fail'), 1) AND awa_wait_external((SELECT l FROM p WHERE n = 'fail'), 1),
	true, 'parked (both)');
SELECT is(awa.ring_fail_external((SELECT rcb FROM p WHERE n = 'fail'), 'declined', '{"code": 7}'), true, 'fail_external');
SELECT is(awa_fail_external((SELECT lcb FROM p WHERE n = 'fail'), 'declined', '{"code": 7}'), true, '(awa.jobs: true)');
SELECT pg_temp.same('fail');
SELECT is(awa.ring_fail_external((SELECT rcb FROM p WHERE n = 'fail'), 'again'), false, 'fail_external twice: false');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after fail_external');

-- retry_external: retryable at now() + retry_in, the payload kept; out of attempts: failed
SELECT pg_temp.pair('retry', 2);
SELECT pg_temp.register('retry');
SELECT is(awa.ring_retry_external((SELECT rcb FROM p WHERE n = 'retry'), '{"p": 1}', '1 hour'), 'retryable',
	'retry_external of a running job: retryable');
SELECT is(awa_retry_external((SELECT lcb FROM p WHERE n = 'retry'), '{"p": 1}', '1 hour'), 'retryable', '(awa.jobs: retryable)');
SELECT pg_temp.same('retry');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after retry_external');
-- the second attempt: claimed after its run_at (moved by hand on both sides), parked, retried: out of attempts
UPDATE awa.scheduled SET run_at = now() - interval '1 second' WHERE id = (SELECT r FROM p WHERE n = 'retry');
UPDATE awa.jobs SET run_at = now() - interval '1 second' WHERE id = (SELECT l FROM p WHERE n = 'retry');
SELECT is((SELECT count(*) FROM awa.ring_claim('rq', 1, '5 minutes', 'w')) + (SELECT count(*) FROM awa_claim('lq', 'w', 1, '5 minutes')),
	2::bigint, 'the retries claimed');
SELECT pg_temp.register('retry', 2);
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'retry'), 2) AND awa_wait_external((SELECT l FROM p WHERE n = 'retry'), 2),
	true, 'parked again (both)');
SELECT is(awa.ring_retry_external((SELECT rcb FROM p WHERE n = 'retry')), 'failed', 'retry_external out of attempts: failed');
SELECT is(awa_retry_external((SELECT lcb FROM p WHERE n = 'retry')), 'failed', '(awa.jobs: failed)');
SELECT pg_temp.same('retry', '{run_at}');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after a retry out of attempts');
-- the default backoff (2^attempt seconds, times 1 to 1.25)
SELECT pg_temp.pair('backoff');
SELECT pg_temp.register('backoff');
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'backoff'), 1), true, 'parked');
SELECT is(awa.ring_retry_external((SELECT rcb FROM p WHERE n = 'backoff')), 'retryable', 'retry_external, default backoff');
SELECT ok((SELECT run_at BETWEEN now() + interval '2 seconds' AND now() + interval '2.5 seconds'
	FROM awa.ring_jobs WHERE id = (SELECT r FROM p WHERE n = 'backoff')), 'due after 2 to 2.5 seconds');

-- the callback timeout: a parked job past its deadline is retried with backoff (failed when out of attempts);
-- a deadline a heartbeat pushed out, a running job and a resolved one are left alone.  The deadline is moved into
-- the past by a callback row written by hand (time does not pass inside this transaction).
SELECT pg_temp.pair('t1');
SELECT pg_temp.pair('t2', 1);
SELECT pg_temp.pair('t3');
SELECT pg_temp.register('t1');
SELECT pg_temp.register('t2');
SELECT pg_temp.register('t3');
SELECT is(awa.ring_wait_external(r, 1), true, 'parked ' || n) FROM p WHERE n IN ('t1', 't2', 't3') ORDER BY n;
INSERT INTO awa.callbacks (slot, job_id, run_lease, at, kind, callback_key, timeout, deadline_at)
	SELECT c.slot, c.job_id, c.run_lease, now(), 'heartbeat', c.callback_key, c.timeout, now() - interval '1 second'
	FROM awa.callbacks c JOIN p ON p.r = c.job_id AND p.n IN ('t1', 't2') WHERE c.kind = 'wait';
SELECT is(awa.ring_callback_timeouts(1), 1::bigint, 'max 1: one wait ended');
SELECT is(awa.ring_callback_timeouts(), 1::bigint, 'the next round: the other');
SELECT is(awa.ring_callback_timeouts(), 0::bigint, 'then none');
SELECT results_eq($$SELECT n, state::text, errors[cardinality(errors)]->>'error' FROM p JOIN awa.ring_jobs j ON j.id = p.r
		WHERE n IN ('t1', 't2', 't3') ORDER BY n$$,
	$$VALUES ('t1', 'retryable', 'callback timed out'), ('t2', 'failed', 'callback timed out'),
		('t3', 'waiting_external', NULL)$$,
	'timed out: retryable, failed when out of attempts; the one within its deadline still waits');
SELECT ok((SELECT run_at BETWEEN now() + interval '2 seconds' AND now() + interval '2.5 seconds'
	FROM awa.ring_jobs WHERE id = (SELECT r FROM p WHERE n = 't1')), 'the timed-out retry is due after the backoff');
SELECT is(awa.ring_complete_external((SELECT rcb FROM p WHERE n = 't1')), false, 'a timed-out callback finds no job');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after the timeouts');

-- cancel of a parked job: cancelled; its callback then finds no job
SELECT is(awa.ring_cancel((SELECT r FROM p WHERE n = 't3')), true, 'ring_cancel of a parked job');
SELECT is((awa.ring_get((SELECT r FROM p WHERE n = 't3'))).state, 'cancelled', 'cancelled');
SELECT is(awa.ring_complete_external((SELECT rcb FROM p WHERE n = 't3')), false, 'its callback then: false');
SELECT is(awa.ring_cancel((SELECT r FROM p WHERE n = 't3')), false, 'cancel twice: false');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after the cancel');

-- awa.ring_retry: failed, cancelled, waiting_external -> available now, attempts reset; other states: false
SELECT pg_temp.pair('wx');
SELECT pg_temp.register('wx');
SELECT is(awa.ring_wait_external((SELECT r FROM p WHERE n = 'wx'), 1) AND awa_wait_external((SELECT l FROM p WHERE n = 'wx'), 1),
	true, 'parked (both)');
SELECT is(awa.ring_retry((SELECT r FROM p WHERE n = 'wx')), true, 'retry of a waiting_external job');
SELECT is((SELECT count(*) FROM awa_retry((SELECT l FROM p WHERE n = 'wx'))), 1::bigint, '(awa.jobs: its row)');
SELECT pg_temp.same('wx');
SELECT is(awa.ring_complete_external((SELECT rcb FROM p WHERE n = 'wx')), false, 'its callback then finds no job');
SELECT is(awa_complete_external((SELECT lcb FROM p WHERE n = 'wx')), false, '(awa.jobs: false)');
SELECT is(awa.ring_retry((SELECT r FROM p WHERE n = 'fail')), true, 'retry of a failed job');
SELECT is((SELECT count(*) FROM awa_retry((SELECT l FROM p WHERE n = 'fail'))), 1::bigint, '(awa.jobs: its row)');
SELECT pg_temp.same('fail');
SELECT is(awa.ring_retry((SELECT r FROM p WHERE n = 'fail')), false, 'retry of an available job: false');
SELECT is((SELECT count(*) FROM awa.ring_claim('rq', 10, '5 minutes', 'w') WHERE id = (SELECT r FROM p WHERE n = 'wx')),
	1::bigint, 'the retried job is claimed again');
SELECT is((SELECT count(*) FROM awa_claim('lq', 'w', 10, '5 minutes') WHERE id = (SELECT l FROM p WHERE n = 'wx')),
	1::bigint, '(awa.jobs: claimed)');
SELECT pg_temp.same('wx', '{heartbeat_at,deadline_at}');
SELECT is(awa.ring_retry((SELECT r FROM p WHERE n = 'wx')), false, 'retry of a running job: false');
SELECT is(awa.ring_retry((SELECT r FROM p WHERE n = 'park')), false, 'retry of a completed job: false');
SELECT is(awa.ring_retry((SELECT r FROM p WHERE n = 't1')), false, 'retry of a retryable job: false');
SELECT is(awa.ring_retry(awa.ring_insert('later', run_at => now() + interval '1 day')), false,
	'retry of a scheduled job: false');
SELECT is(awa.ring_retry((SELECT r FROM p WHERE n = 't3')), true, 'retry of a cancelled job');
SELECT is(((awa.ring_get((SELECT r FROM p WHERE n = 't3')))).attempt, 0::smallint, 'attempts reset');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after the retries');

-- unique jobs: a retried job takes its key again; 23505 when another job holds it (nothing changed)
CREATE TEMP TABLE u (n text PRIMARY KEY, id bigint);
INSERT INTO u VALUES ('a', awa.ring_insert('uk', '{"u": 1}', 'uq', max_attempts => 1, unique_by_args => true));
SELECT is((SELECT count(*) FROM awa.ring_claim('uq')), 1::bigint, 'a claimed');
SELECT is(awa.ring_fail((SELECT id FROM u WHERE n = 'a'), 1, '"boom"'), 'failed', 'a failed: its key is let go of');
INSERT INTO u VALUES ('b', awa.ring_insert('uk', '{"u": 1}', 'uq', unique_by_args => true));
SELECT throws_ok($$SELECT awa.ring_retry((SELECT id FROM u WHERE n = 'a'))$$, '23505',
	format('job %s cannot be retried: job %s holds its unique key', (SELECT id FROM u WHERE n = 'a'),
		(SELECT id FROM u WHERE n = 'b')), 'retry of a unique job whose key another holds: 23505');
SELECT is((awa.ring_get((SELECT id FROM u WHERE n = 'a'))).state, 'failed', 'nothing changed: still failed');
SELECT results_eq($$SELECT * FROM awa.ring_cancel_by_unique_key('uk', '{"u": 1}')$$,
	$$SELECT id FROM u WHERE n = 'b'$$, 'cancel_by_unique_key cancels the holder and returns its id');
SELECT is_empty($$SELECT * FROM awa.ring_cancel_by_unique_key('uk', '{"u": 1}')$$, 'twice: no row');
SELECT is(awa.ring_retry((SELECT id FROM u WHERE n = 'a')), true, 'now a is retried');
SELECT is((SELECT job_id FROM awa.unique_keys WHERE unique_key = (SELECT unique_key FROM awa.ring_jobs
	WHERE id = (SELECT id FROM u WHERE n = 'a'))), (SELECT id FROM u WHERE n = 'a'), 'and holds its key again');
-- a completed holder that keeps its key is not cancelled; by queue and by period
INSERT INTO u VALUES ('c', awa.ring_insert('uk2', '{}', 'uq', unique_by_queue => true,
	unique_states => '{scheduled,available,running,completed,retryable,waiting_external}'));
CREATE TEMP TABLE cl AS SELECT id, run_lease FROM awa.ring_claim('uq', 5);
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY(SELECT id FROM cl ORDER BY id),
	ARRAY(SELECT run_lease FROM cl ORDER BY id))), 2::bigint, 'a and c completed');
SELECT is_empty($$SELECT * FROM awa.ring_cancel_by_unique_key('uk2', queue => 'uq')$$,
	'a completed job keeping its key is not cancelled');
INSERT INTO u VALUES ('d', awa.ring_insert('uk3', '{}', 'uq', unique_period => '1 hour'));
SELECT is_empty($$SELECT * FROM awa.ring_cancel_by_unique_key('uk3', unique_period => '1 hour', run_at => now() + interval '1 day')$$,
	'another period: no row');
SELECT results_eq($$SELECT * FROM awa.ring_cancel_by_unique_key('uk3', unique_period => '1 hour')$$,
	$$SELECT id FROM u WHERE n = 'd'$$, 'by period: cancelled');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'counters equal the recount after the unique paths');

-- nothing of the ring was updated or deleted (awa.jobs' side was: the comparison)
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done|callbacks)_[0-9]+$'), 0::numeric,
	'no ready row, receipt, done row or callback row was updated or deleted');

SELECT * FROM finish();
ROLLBACK;
