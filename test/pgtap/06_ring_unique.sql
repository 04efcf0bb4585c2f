-- The ring's unique jobs (docs/storage.md, "Step 4: unique jobs"): awa.unique_keys, ring_insert's unique
-- arguments (bad input as awa_insert's; the key awa_insert builds; the holder's id on a conflict, nothing
-- written), the release in the transaction that ends the job outside its unique_states (complete, fail for
-- good, cancel, rescue), the key carried by retries, snoozes and promotions, the rollback of an insert, the view,
-- the counters; no ready row, receipt or done row updated or deleted.  Concurrent inserts of one key: the
-- isolation spec ring_unique_race.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(56);

SET LOCAL awa.claim_floors = off;

-- the relation: internal like the ring
SELECT col_is_pk('awa', 'unique_keys', 'unique_key', 'one row per held key');
SELECT has_index('awa', 'unique_keys', 'unique_keys_job_idx', ARRAY['job_id'], 'held keys by job (the release)');
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.oid = 'awa.unique_keys'::regclass AND a.grantee <> c.relowner), 0::bigint, 'no role is granted awa.unique_keys');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_by_args => true)$$, '55000', NULL,
	'a unique ring_insert refuses while the ring is off');

SET LOCAL awa.ring_engine = on;

-- bad input: as awa_insert's, and nothing is written
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_period => '0')$$, '22023',
	'unique_period must be a positive interval', 'unique_period 0');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_period => '-1 hour')$$, '22023',
	'unique_period must be a positive interval', 'negative unique_period');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_states => '{completed}')$$, '22023',
	'unique_states must include every live state; missing: scheduled, available, running, retryable, waiting_external',
	'unique_states without the live states');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_states => '{}')$$, '22023', 'unique_states must not be empty',
	'empty unique_states');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_states => '{{scheduled},{available}}')$$, '22023',
	'unique_states must be a one-dimensional array', 'two-dimensional unique_states');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_states => '{scheduled,NULL}')$$, '22004',
	'unique_states must not contain NULL', 'a NULL in unique_states (22004, as awa_insert)');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_by_args => NULL)$$, '22004', 'unique_by_args must not be NULL',
	'unique_by_args NULL (22004, as awa_insert)');
SELECT throws_ok($$SELECT awa.ring_insert('k', unique_by_queue => NULL)$$, '22004', 'unique_by_queue must not be NULL',
	'unique_by_queue NULL (22004, as awa_insert)');
SELECT is((SELECT count(*) FROM awa.ring_jobs) + (SELECT count(*) FROM awa.unique_keys), 0::bigint,
	'bad input writes nothing');

-- the key awa_insert builds, and the states it stores
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
INSERT INTO j VALUES ('a', awa.ring_insert('uk', '{"x": 1, "y": [1.50]}', 'uq', unique_by_args => true));
SELECT results_eq($$SELECT unique_key, unique_states FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'a')$$,
	$$SELECT unique_key, unique_states FROM awa_insert('uk', '{"y": [1.5], "x": 1}', 'other',
		unique_by_args => true)$$,
	'the key and states of awa_insert (args canonical: key order and a number''s scale do not matter)');
SELECT results_eq($$SELECT u.job_id, u.unique_states FROM awa.unique_keys u$$,
	$$SELECT id, B'11111001' FROM j WHERE n = 'a'$$, 'one held key, default states: all but failed and cancelled');

-- a held key: the holder's id, nothing written
SELECT is(awa.ring_insert('uk', '{"y": [1.5], "x": 1.0}', 'uq2', 3, unique_by_args => true),
	(SELECT id FROM j WHERE n = 'a'), 'same args (another queue, priority): the holder''s id');
INSERT INTO j VALUES ('q', awa.ring_insert('uk', '{"x": 2}', 'uq', unique_by_queue => true));
SELECT ok((SELECT id FROM j WHERE n = 'q') > (SELECT id FROM j WHERE n = 'a'), 'by queue only: another key, a new job');
SELECT is(awa.ring_insert('uk', '{"x": 3}', 'uq', unique_by_queue => true),
	(SELECT id FROM j WHERE n = 'q'), 'by queue: same queue, other args: the holder');
SELECT ok(awa.ring_insert('uk', '{"x": 3}', 'uq', unique_by_args => true, unique_by_queue => true)
	> (SELECT id FROM j WHERE n = 'q'), 'by args and queue: another key');
INSERT INTO j VALUES ('p', awa.ring_insert('up', run_at => now() + interval '2 hours', unique_period => '1 day'));
SELECT is(awa.ring_insert('up', unique_period => '1 day', run_at => date_trunc('day', now() + interval '2 hours')),
	(SELECT id FROM j WHERE n = 'p'), 'by period: a scheduled holder, same day bucket');
SELECT is((SELECT count(*) FROM awa.ring_jobs), 4::bigint, 'conflicts wrote no job');
SELECT is((SELECT count(*) FROM awa.unique_keys), 4::bigint, 'one held key per unique job');
SELECT results_eq($$SELECT state::text, unique_states FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'p')$$,
	$$VALUES ('scheduled', B'11111001')$$, 'the view shows a scheduled job''s unique states');

-- release on completion, per unique_states
INSERT INTO j VALUES ('c1', awa.ring_insert('c', '{"n": 1}', 'cq', unique_by_args => true));
INSERT INTO j VALUES ('c2', awa.ring_insert('c', '{"n": 2}', 'cq', unique_by_args => true,
	unique_states => '{scheduled,available,running,retryable,waiting_external}'));
SELECT is((SELECT count(*) FROM awa.ring_claim('cq', 10)), 2::bigint, 'both claimed');
SELECT is(awa.ring_insert('c', '{"n": 2}', 'cq', unique_by_args => true), (SELECT id FROM j WHERE n = 'c2'),
	'a running job holds its key');
SELECT is((SELECT count(*) FROM awa.ring_complete_many((SELECT array_agg(id) FROM j WHERE n IN ('c1', 'c2')), '{1,1}')),
	2::bigint, 'both completed');
SELECT is(awa.ring_insert('c', '{"n": 1}', 'cq', unique_by_args => true), (SELECT id FROM j WHERE n = 'c1'),
	'completed is one of the default states: still held');
INSERT INTO j VALUES ('c3', awa.ring_insert('c', '{"n": 2}', 'cq', unique_by_args => true));
SELECT ok((SELECT id FROM j WHERE n = 'c3') > (SELECT id FROM j WHERE n = 'c2'),
	'completed outside unique_states: released at completion, the key enqueues a new job');
SELECT results_eq($$SELECT job_id FROM awa.unique_keys WHERE job_id IN (SELECT id FROM j WHERE n LIKE 'c_')
		ORDER BY job_id$$,
	$$SELECT id FROM j WHERE n IN ('c1', 'c3') ORDER BY id$$, 'the new job holds the key, the completed one let go');

-- failure: retryable holds (and the retry carries the key), failed for good releases
INSERT INTO j VALUES ('f', awa.ring_insert('f', '{}', 'fq', max_attempts => 3, unique_by_args => true));
SELECT is((SELECT count(*) FROM awa.ring_claim('fq')), 1::bigint, 'claimed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 1, '{"e": 1}', true, '0')::text, 'retryable',
	'retryable, again at once');
SELECT results_eq($$SELECT state::text, unique_states FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'f')$$,
	$$VALUES ('available', B'11111001')$$, 'the retry''s ready row carries the key');
SELECT is(awa.ring_insert('f', '{}', 'fq', unique_by_args => true), (SELECT id FROM j WHERE n = 'f'),
	'a retryable job holds its key');
SELECT is((SELECT count(*) FROM awa.ring_claim('fq')), 1::bigint, 'claimed again');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 2, '{"e": 2}', true, '1 hour')::text, 'retryable',
	'retryable, after a backoff');
SELECT results_eq($$SELECT state::text, unique_key IS NOT NULL FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'f')$$,
	$$VALUES ('retryable', true)$$, 'the scheduled retry carries the key');
UPDATE awa.scheduled SET run_at = now() - interval '1 second' WHERE id = (SELECT id FROM j WHERE n = 'f');
SELECT is(awa.ring_promote(), 1, 'the retry promoted');
SELECT is((SELECT count(*) FROM awa.ring_claim('fq')), 1::bigint, 'claimed a third time');
SELECT is((SELECT unique_key IS NOT NULL FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'f')), true,
	'the promoted attempt carries the key');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 3, '{"e": 3}')::text, 'failed', 'out of attempts: failed');
SELECT is((SELECT count(*) FROM awa.unique_keys WHERE job_id = (SELECT id FROM j WHERE n = 'f')), 0::bigint,
	'failed for good: released');
SELECT isnt(awa.ring_insert('f', '{}', 'fq', unique_by_args => true), (SELECT id FROM j WHERE n = 'f'),
	'the key is re-usable after the release');

-- cancel: released unless cancelled is one of the states; a snoozed job holds its key
INSERT INTO j VALUES ('x1', awa.ring_insert('x', '{"n": 1}', 'xq', unique_by_args => true));
INSERT INTO j VALUES ('x2', awa.ring_insert('x', '{"n": 2}', 'xq', unique_by_args => true,
	unique_states => '{scheduled,available,running,retryable,waiting_external,cancelled}'));
INSERT INTO j VALUES ('x3', awa.ring_insert('x', '{"n": 3}', 'xq', unique_by_args => true,
	run_at => now() + interval '1 day'));
SELECT is(ARRAY[awa.ring_cancel((SELECT id FROM j WHERE n = 'x1')), awa.ring_cancel((SELECT id FROM j WHERE n = 'x2')),
		awa.ring_cancel((SELECT id FROM j WHERE n = 'x3'))], ARRAY[true, true, true], 'three cancelled');
SELECT results_eq($$SELECT job_id FROM awa.unique_keys WHERE job_id IN (SELECT id FROM j WHERE n LIKE 'x_')$$,
	$$SELECT id FROM j WHERE n = 'x2'$$, 'released by the cancel (also of a scheduled job), except with cancelled held');
INSERT INTO j VALUES ('s', awa.ring_insert('s', '{}', 'sq', unique_by_args => true));
SELECT is((SELECT count(*) FROM awa.ring_claim('sq')), 1::bigint, 'claimed');
SELECT is(awa.ring_snooze((SELECT id FROM j WHERE n = 's'), 1, '1 hour'), true, 'snoozed');
SELECT is(awa.ring_insert('s', '{}', 'sq', unique_by_args => true), (SELECT id FROM j WHERE n = 's'),
	'a snoozed job holds its key');

-- the rescue of an attempt past its deadline, out of attempts: failed, released (the receipt is written by hand
-- as a claim an hour ago, since now() stands still here, as 06_ring_lease does)
INSERT INTO j VALUES ('d', awa.ring_insert('d', '{}', 'dq', max_attempts => 1, unique_by_args => true));
INSERT INTO awa.claims (slot, job_id, run_lease, claimed_at, deadline_at, lease, claimed_by)
	SELECT r.slot, r.id, 1, now() - interval '1 hour', now() - interval '59 minutes', interval '1 minute', 'w'
	FROM awa.ready r WHERE r.id = (SELECT id FROM j WHERE n = 'd');
SELECT is(awa.ring_rescue(), 1::bigint, 'the attempt past its deadline is rescued');
SELECT is((SELECT state::text FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'd')), 'failed',
	'out of attempts: failed');
SELECT is((SELECT count(*) FROM awa.unique_keys WHERE job_id = (SELECT id FROM j WHERE n = 'd')), 0::bigint,
	'the rescue released the key');

-- rollback of the insert releases the key
SAVEPOINT before_insert;
INSERT INTO j VALUES ('r', awa.ring_insert('r', '{}', 'rq', unique_by_args => true));
ROLLBACK TO SAVEPOINT before_insert;
SELECT is((SELECT count(*) FROM awa.ring_jobs WHERE kind = 'r') + (SELECT count(*) FROM j WHERE n = 'r'), 0::bigint,
	'rolled back');
INSERT INTO j VALUES ('r', awa.ring_insert('r', '{}', 'rq', unique_by_args => true));
SELECT results_eq($$SELECT u.job_id FROM awa.unique_keys u JOIN awa.ring_jobs r ON r.unique_key = u.unique_key
		WHERE r.kind = 'r'$$,
	$$SELECT id FROM j WHERE n = 'r'$$, 'the key of a rolled-back insert enqueues a new job, which holds it');

-- the counters, and nothing on the hot path updated or deleted (unique_keys rows were deleted)
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'the counters agree with a recount');
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done)_[0-9]+$'), 0::numeric,
	'no ready row, receipt or done row was updated or deleted');
SELECT is((SELECT n_tup_del FROM pg_stat_xact_user_tables WHERE relid = 'awa.unique_keys'::regclass), 5::bigint,
	'five keys released (completion, failure, two cancels, rescue)');
SELECT is((SELECT count(*) FROM awa.jobs), 1::bigint, 'awa.jobs holds only the awa_insert job above');

SELECT * FROM finish();
ROLLBACK;
