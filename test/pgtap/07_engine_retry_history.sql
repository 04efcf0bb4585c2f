-- Retrying ring jobs a reclaim moved into the history (src/ring_revive.c; docs/storage.md, "Step 5: retrying jobs
-- from the history"), in a database on the ring engine: awa_retry and awa_retry_failed bring a failed or cancelled
-- job back from its batch of awa.ring_history as the retry awa.jobs makes (available now, attempt 0, errors,
-- attempted_at, run_lease and progress kept), the batch deleted once empty, the counters exact, a unique job's
-- key taken again (refused while another job holds it).
-- Reclaiming needs committed rows and no older snapshot, so this file runs statement by statement (autocommit)
-- and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET awa.install_engine = 'ring';
CREATE EXTENSION awa;
RESET awa.install_engine;
SET statement_timeout = '30s';
SET awa.retention_completed = 86400;
SET awa.retention_failed = 604800;
SELECT plan(69);

\ir lib/ring_reclaim.psql
CREATE FUNCTION pg_temp.in_history() RETURNS text[] LANGUAGE sql AS
	$$SELECT coalesce(array_agg(e.kind || ':' || e.state ORDER BY e.id), '{}')
	  FROM awa.ring_history h CROSS JOIN LATERAL unnest(h.jobs) e$$;
CREATE FUNCTION pg_temp.id(k text) RETURNS bigint LANGUAGE sql AS
	$$SELECT min(id) FROM awa.jobs WHERE kind = k$$;

-- in slot 0: a job failed twice (progress on its second attempt), a job failed once, a cancelled one, a failed
-- unique job, a completed one
SELECT is((SELECT state FROM awa_insert('a', '{"p": 1}', queue => 'hq', max_attempts => 3)), 'available'::awa.job_state,
	'job a');
SELECT is((SELECT awa_fail(id, run_lease, 'a1', retry_in => '0') FROM awa_claim('hq')), 'retryable'::awa.job_state,
	'a fails once, to run again now');
SELECT ok((SELECT awa_progress(id, run_lease, '{"step": 7}') AND awa_fail(id, run_lease, 'a2', terminal => true) = 'failed'
	FROM awa_claim('hq', worker => 'w1')), 'a runs again, records progress, fails for good');
SELECT is((SELECT state FROM awa_insert('b', queue => 'hq', max_attempts => 1)), 'available'::awa.job_state, 'job b');
SELECT is((SELECT awa_fail(id, run_lease, 'b1') FROM awa_claim('hq')), 'failed'::awa.job_state, 'b fails for good');
SELECT is((SELECT state FROM awa_insert('c', queue => 'cq')), 'available'::awa.job_state, 'job c');
SELECT is((SELECT state FROM awa_cancel(pg_temp.id('c'))), 'cancelled'::awa.job_state, 'c is cancelled before any claim');
SELECT is((SELECT state FROM awa_insert('u', '{"n": 1}', queue => 'uq', max_attempts => 1, unique_by_args => true)),
	'available'::awa.job_state, 'a unique job u');
SELECT is((SELECT awa_fail(id, run_lease, 'u1') FROM awa_claim('uq')), 'failed'::awa.job_state,
	'u fails for good and lets go of its key');
SELECT is((SELECT state FROM awa_insert('d', queue => 'dq')), 'available'::awa.job_state, 'job d');
SELECT ok((SELECT awa_complete(id, run_lease) FROM awa_claim('dq')), 'd completes');
CREATE TEMP TABLE before AS SELECT * FROM awa.jobs;

SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 0 sealed');
SELECT is(pg_temp.reclaim(0), 'reclaimed', 'slot 0 reclaimed');
SELECT is(pg_temp.in_history(), ARRAY['a:failed', 'b:failed', 'c:cancelled', 'u:failed', 'd:completed'],
	'the five jobs are in the history');

-- bad input changes nothing
SELECT throws_ok($$SELECT * FROM awa_retry(NULL)$$, '22004', NULL, 'awa_retry(NULL): 22004');
SELECT throws_ok($$SELECT * FROM awa_retry(999999999)$$, 'P0002', NULL, 'an unknown id: P0002');
SELECT throws_ok($$SELECT * FROM awa_retry_failed()$$, '22023', NULL, 'retry_failed without a filter: 22023');
SELECT is((SELECT count(*) FROM awa_retry(pg_temp.id('d'))), 0::bigint, 'a completed job of the history: no row');
SELECT is(pg_temp.in_history(), ARRAY['a:failed', 'b:failed', 'c:cancelled', 'u:failed', 'd:completed'],
	'... the history unchanged');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');

-- awa_retry of a failed job of the history: the retry awa.jobs makes
SELECT is((SELECT to_jsonb(r) - '{run_at}'::text[] FROM awa_retry(pg_temp.id('a')) r),
	(SELECT to_jsonb(b) - '{run_at}'::text[] || '{"state": "available", "attempt": 0, "finalized_at": null,
		"heartbeat_at": null, "deadline_at": null}' FROM before b WHERE b.kind = 'a'),
	'awa_retry of a failed job of the history: available, attempt 0, errors, attempted_at, run_lease, progress kept');
SELECT is((SELECT to_jsonb(j) FROM awa.jobs j WHERE j.kind = 'a'), (SELECT to_jsonb(j) FROM awa_get_job(pg_temp.id('a')) j),
	'... awa.jobs and awa_get_job show it so');
SELECT is((SELECT array_agg(e ->> 'error' ORDER BY e ->> 'attempt') FROM awa.jobs j, unnest(j.errors) e WHERE j.kind = 'a'),
	ARRAY['a1', 'a2'], '... with both errors');
SELECT is(pg_temp.in_history(), ARRAY['b:failed', 'c:cancelled', 'u:failed', 'd:completed'], '... out of its batch');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');
SELECT is((SELECT count(*) FROM awa_retry(pg_temp.id('a'))), 0::bigint, 'a second retry: no row (it is available)');
SELECT is((SELECT array_agg(id::text || ':' || attempt || ':' || run_lease) FROM awa_claim('hq')),
	(SELECT ARRAY[id::text || ':1:' || (run_lease + 1)] FROM before WHERE kind = 'a'), 'it is claimed: attempt 1');
SELECT is((SELECT awa_fail(j.id, j.run_lease, 'a3', terminal => true) FROM awa.jobs j WHERE j.kind = 'a'),
	'failed'::awa.job_state, 'it fails again');
SELECT is((SELECT array_agg(e ->> 'error' || ':' || (e ->> 'attempt') ORDER BY o) FROM awa.jobs j,
	unnest(j.errors) WITH ORDINALITY u(e, o) WHERE j.kind = 'a'),
	ARRAY['a1:1', 'a2:2', 'a3:1'], '... its errors: the two of the history and the new one (attempt 1 after the retry)');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');

-- a cancelled job of the history
SELECT is((SELECT state::text || ':' || attempt || ':' || cardinality(errors) FROM awa_retry(pg_temp.id('c'))),
	'available:0:0', 'awa_retry of a cancelled job of the history: available');
SELECT is((SELECT count(*) FROM awa_claim('cq')), 1::bigint, '... claimable');

-- a unique job whose key another job holds meanwhile
SELECT isnt((SELECT id FROM awa_insert('u', '{"n": 1}', queue => 'uq', unique_by_args => true)), pg_temp.id('u'),
	'another job takes the key');
SELECT throws_ok(format('SELECT * FROM awa_retry(%s)', pg_temp.id('u')), '23505', NULL,
	'awa_retry of u: 23505, its key is held');
SELECT is((SELECT count(*) FROM awa_retry_failed('u')), 0::bigint, 'awa_retry_failed leaves u failed');
SELECT is(pg_temp.in_history(), ARRAY['b:failed', 'u:failed', 'd:completed'], '... u still in the history');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');
SELECT is((SELECT count(*) FROM awa_cancel((SELECT max(id) FROM awa.jobs WHERE kind = 'u'))), 1::bigint,
	'the holder is cancelled');
SELECT is((SELECT state FROM awa_retry(pg_temp.id('u'))), 'available'::awa.job_state, 'now u comes back');
SELECT is((SELECT id FROM awa_insert('u', '{"n": 1}', queue => 'uq', unique_by_args => true)), pg_temp.id('u'),
	'... and holds its key again');

-- awa_retry_failed over a failed job of the history and one of the open slot
SELECT is((SELECT state FROM awa_insert('b', queue => 'hq', max_attempts => 1)), 'available'::awa.job_state, 'job b2');
SELECT is((SELECT awa_fail(id, run_lease, 'b2') FROM awa_claim('hq')), 'failed'::awa.job_state, 'b2 fails in the open slot');
SELECT is((SELECT array_agg(id ORDER BY id) FROM awa_retry_failed('b')),
	(SELECT array_agg(id ORDER BY id) FROM awa.jobs WHERE kind = 'b'), 'awa_retry_failed retries b and b2');
SELECT is((SELECT array_agg(state::text || ':' || cardinality(errors) ORDER BY id) FROM awa.jobs WHERE kind = 'b'),
	ARRAY['available:1', 'available:1'], '... both available, each with its error');
SELECT is((SELECT array_agg(failed::text || ':' || cardinality(jobs) ORDER BY failed) FROM awa.ring_history),
	ARRAY['false:1'], '... the emptied batch of failed jobs is gone, the completed job stays');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');

-- the slot the retries wrote into is reclaimed in turn: every job reads as before (the revived jobs' past rows
-- carried with them or moved into the history with the finished ones)
CREATE TEMP TABLE round1 AS SELECT * FROM awa.jobs;
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 1 sealed');
SELECT is(pg_temp.reclaim(1), 'reclaimed', 'slot 1 reclaimed');
SELECT is((SELECT count(*) FROM round1 b FULL JOIN awa.jobs j ON j.id = b.id
	WHERE to_jsonb(b) IS DISTINCT FROM to_jsonb(j)), 0::bigint, '... every job reads as before');
SELECT is(pg_temp.in_history(), ARRAY['a:failed', 'd:completed', 'u:cancelled'], '... the finished ones in the history');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');

-- an error cut at awa.max_error_bytes keeps its marks in the history and in the retry from it (docs/storage.md,
-- "Step 5: errors and heartbeats on the ring as on the table")
SET awa.max_error_bytes = 64;
SELECT is((SELECT state FROM awa_insert('m', queue => 'mq', max_attempts => 1)), 'available'::awa.job_state, 'job m');
SELECT is((SELECT awa_fail(id, run_lease, repeat('m', 100)) FROM awa_claim('mq')), 'failed'::awa.job_state,
	'm fails for good with a 100-byte error');
RESET awa.max_error_bytes;
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 2 sealed');
SELECT is(pg_temp.reclaim(2), 'reclaimed', 'slot 2 reclaimed');
SELECT is((SELECT array_agg(e - 'at') FROM awa.ring_history h, unnest(h.jobs) j, unnest(j.errors) e WHERE j.kind = 'm'),
	ARRAY[jsonb_build_object('attempt', 1, 'error', repeat('m', 64), 'truncated', true, 'error_bytes', 100)],
	'm in the history: its error cut, with "truncated" and "error_bytes"');
SELECT is((SELECT array_agg(e - 'at') FROM awa_retry(pg_temp.id('m')) r, unnest(r.errors) e),
	ARRAY[jsonb_build_object('attempt', 1, 'error', repeat('m', 64), 'truncated', true, 'error_bytes', 100)],
	'awa_retry of m from the history: the same entry');

-- a job snoozed before its attempts (a snooze takes a run_lease, not an attempt): in the history and back from
-- it, its errors keep their attempts' numbers (the ring showed the run_lease: 2 and 3), the last one the failed
-- end's own (the retry from the history matches it by attempt: its leases, derived from the attempts, are lower)
SELECT is((SELECT state FROM awa_insert('s', queue => 'sq', max_attempts => 3)), 'available'::awa.job_state, 'job s');
SELECT ok((SELECT awa_snooze(id, run_lease, '0') FROM awa_claim('sq')), 's is snoozed (lease 1)');
SELECT is((SELECT awa_fail(id, run_lease, 's1', retry_in => '0') FROM awa_claim('sq')), 'retryable'::awa.job_state,
	's fails once (attempt 1, lease 2)');
SELECT is((SELECT awa_fail(id, run_lease, 's2', terminal => true) FROM awa_claim('sq')), 'failed'::awa.job_state,
	's fails for good (attempt 2, lease 3)');
CREATE TEMP TABLE snoozed AS SELECT * FROM awa.jobs WHERE kind = 's';
SELECT is((SELECT array_agg(e - 'at' ORDER BY o) FROM snoozed, unnest(errors) WITH ORDINALITY u(e, o)),
	ARRAY['{"attempt": 1, "error": "s1"}', '{"attempt": 2, "error": "s2"}']::jsonb[], '... its errors: attempts 1 and 2');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 3 sealed');
SELECT is(pg_temp.reclaim(3), 'reclaimed', 'slot 3 reclaimed');
SELECT is((SELECT j.errors FROM awa.ring_history h, unnest(h.jobs) j WHERE j.kind = 's'), (SELECT errors FROM snoozed),
	's in the history: the same errors');
SELECT is((SELECT errors FROM awa_retry(pg_temp.id('s'))), (SELECT errors FROM snoozed),
	'awa_retry of s from the history: the same errors, none added');
SELECT is((SELECT awa_fail(id, run_lease, 's3', terminal => true) FROM awa_claim('sq')), 'failed'::awa.job_state,
	's claimed again (attempt 1) fails');
SELECT is((SELECT array_agg(e - 'at' ORDER BY o) FROM awa.jobs, unnest(errors) WITH ORDINALITY u(e, o) WHERE kind = 's'),
	ARRAY['{"attempt": 1, "error": "s1"}', '{"attempt": 2, "error": "s2"}', '{"attempt": 1, "error": "s3"}']::jsonb[],
	'... its errors in order: s1, s2 and the new one');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');

SELECT * FROM finish();
RESET statement_timeout;
DROP TABLE before, round1, snoozed;
DROP EXTENSION awa;
