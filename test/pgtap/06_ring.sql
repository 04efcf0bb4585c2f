-- The ring (docs/storage.md, "Step 4 as landed"): the internal engine beside awa.jobs.
-- Insert, claim, complete, fail (retry now or final), the run_lease guard, the receipts' unique key,
-- the switch, bad input, and that the ring touches neither awa.jobs nor any role's privileges.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(64);

-- created empty beside awa.jobs, slot 0 open
SELECT is((SELECT count(*) FROM awa.ready) + (SELECT count(*) FROM awa.claims) + (SELECT count(*) FROM awa.done),
	0::bigint, 'the ring is created empty');
SELECT is((SELECT array_agg(slot ORDER BY slot) FROM awa.ring_slots WHERE state = 'open'), ARRAY[0::smallint],
	'slot 0 is the open slot');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent IN ('awa.ready'::regclass, 'awa.claims'::regclass,
	'awa.done'::regclass)), 12::bigint, 'ready, claims and done have 4 slots each');

-- the switch: off by default, superuser only
SELECT is(current_setting('awa.ring_engine'), 'off', 'awa.ring_engine is off by default');
SELECT throws_ok($$SELECT awa.ring_insert('k')$$, '55000', NULL, 'ring_insert refuses while the ring is off');
SELECT throws_ok($$SELECT * FROM awa.ring_claim('q')$$, '55000', NULL, 'ring_claim refuses while the ring is off');
SELECT throws_ok($$SELECT * FROM awa.ring_complete_many('{1}', '{1}')$$, '55000', NULL,
	'ring_complete_many refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_fail(1, 1)$$, '55000', NULL, 'ring_fail refuses while the ring is off');
SELECT is((SELECT context FROM pg_settings WHERE name = 'awa.ring_engine'), 'superuser',
	'only a superuser may switch the ring on');

-- internal: no role and not PUBLIC may use it
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.relnamespace = 'awa'::regnamespace AND a.grantee <> c.relowner
	  AND (c.relname IN ('ready', 'claims', 'done', 'ring_slots') OR c.relname ~ '^(ready|claims|done)_[0-9]+$')),
	0::bigint, 'no role is granted the ring''s relations');
SELECT is((SELECT count(*) FROM pg_class c
	WHERE c.relnamespace = 'awa'::regnamespace AND c.relacl IS NULL
	  AND (c.relname IN ('ready', 'claims', 'done', 'ring_slots') OR c.relname ~ '^(ready|claims|done)_[0-9]+$')),
	0::bigint, 'the ring''s relations have explicit (owner-only) privileges');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	WHERE p.pronamespace = 'awa'::regnamespace AND p.proname LIKE 'ring\_%' AND a.grantee <> p.proowner),
	0::bigint, 'no role and not PUBLIC may execute the ring''s functions');
SELECT is((SELECT count(*) FROM pg_proc p
	WHERE p.pronamespace = 'awa'::regnamespace
	  AND p.proname IN ('ring_insert', 'ring_claim', 'ring_complete_many', 'ring_fail')), 5::bigint,
	'the four ring functions of the hot path (awa.ring_claim of one queue and of several)');

SET LOCAL awa.ring_engine = on;
-- plans as a long-lived backend has them: generic, made at the first call (the last test depends on it)
SET LOCAL plan_cache_mode = force_generic_plan;
-- the empty slots analyzed, as a database-wide ANALYZE (vacuumdb -Z) leaves them while they are empty
ANALYZE awa.ready_1, awa.ready_2, awa.ready_3;

-- bad input changes nothing
-- (awa_insert's checks and messages: insert.c)
SELECT throws_ok($$SELECT awa.ring_insert('')$$, '22023', 'kind must be 1 to 200 characters long, got 0', 'empty kind');
SELECT throws_ok($$SELECT awa.ring_insert('k', queue => repeat('q', 201))$$, '22023', NULL, 'queue too long');
SELECT throws_ok($$SELECT awa.ring_insert('k', '1')$$, '22023', 'args must be a JSON object or array, not a scalar',
	'scalar args');
SELECT throws_ok($$SELECT awa.ring_insert('k', priority => 5)$$, '22023', NULL, 'priority out of range');
SELECT throws_ok($$SELECT awa.ring_insert('k', max_attempts => 0)$$, '22023', NULL, 'max_attempts out of range');
SELECT throws_ok($$SELECT awa.ring_insert(NULL)$$, '22004', 'kind must not be NULL', 'null kind');
SELECT throws_ok($$SELECT awa.ring_insert('k', tags => NULL)$$, '22004', 'tags must not be NULL', 'null tags');
SELECT throws_ok($$SELECT awa.ring_insert('k', metadata => '[]')$$, '22023', 'metadata must be a JSON object',
	'metadata not an object');
SELECT throws_ok($$SELECT awa.ring_insert('k', timeout => '0')$$, '22023', NULL, 'timeout 0');
SELECT throws_ok($$SELECT awa.ring_insert('k', group_id => '')$$, '22023', NULL, 'empty group_id');
SELECT throws_ok($$SELECT awa.ring_insert('k', concurrency_key => repeat('c', 201))$$, '22023', NULL,
	'concurrency_key too long');
SELECT throws_ok($$SELECT awa.ring_insert('k', after => '{1}')$$, '23503',
	'job 1 named in after does not exist in the ring', 'after: a parent the ring does not hold');
SELECT throws_ok($$SELECT awa.ring_insert('k', run_at => 'infinity')$$, '22023', NULL, 'infinite run_at');
SELECT throws_ok($$SELECT * FROM awa.ring_claim('q', 0)$$, '22023', NULL, 'batch 0');
SELECT throws_ok($$SELECT * FROM awa.ring_claim('q', 1, '0')$$, '22023', 'lease must be positive', 'lease 0');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(NULL)$$, '22023', 'queue must not be null', 'null queue');
SELECT throws_ok($$SELECT * FROM awa.ring_complete_many('{1,2}', '{1}')$$, '22023', NULL, 'arrays of different lengths');
SELECT is((SELECT count(*) FROM awa.ready), 0::bigint, 'bad input wrote nothing');

-- insert: ready rows in the open slot, ids from awa.jobs' sequence
CREATE TEMP TABLE j AS
SELECT n, awa.ring_insert('k' || n, jsonb_build_object('n', n), 'rq',
	priority => CASE WHEN n = 5 THEN 1 ELSE 2 END,
	max_attempts => CASE WHEN n = 3 THEN 2 ELSE 25 END,
	run_at => CASE WHEN n = 6 THEN now() + interval '1 hour' ELSE now() - interval '1 minute' + n * interval '1 second' END) AS id
FROM generate_series(1, 6) n;
SELECT is((SELECT count(*) FROM awa.ready_0 r JOIN j USING (id) WHERE r.run_lease = 0 AND r.attempt = 0), 5::bigint,
	'five ready rows in slot 0, run_lease 0, attempt 0 (the job due in an hour waits in awa.scheduled)');
SELECT ok((SELECT max(id) FROM j) <= (SELECT last_value FROM awa.jobs_id_seq), 'ids come from awa.jobs_id_seq');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs is untouched');

-- claim: priority first, then run_at; only due jobs; a receipt each
SELECT is((SELECT array_agg(c.kind ORDER BY ord) FROM awa.ring_claim('rq', 3, '1 minute', 'w1') WITH ORDINALITY c(id, run_lease, attempt, kind, queue, args, priority, run_at, ord)),
	ARRAY['k5', 'k1', 'k2'], 'a claim takes priority 1 first, then by run_at');
SELECT is((SELECT count(*) FROM awa.claims_0 c JOIN j ON j.id = c.job_id WHERE c.run_lease = 1 AND c.claimed_by = 'w1'
	AND c.deadline_at = c.claimed_at + interval '1 minute' AND c.lease = '1 minute'), 3::bigint,
	'one receipt per claimed job, lease 1, with its deadline and worker');
SELECT is((SELECT array_agg(c.kind ORDER BY c.kind) FROM awa.ring_claim('rq', 10) c), ARRAY['k3', 'k4'],
	'the next claim gets the rest of the due jobs, none twice, not the future one');
SELECT is((SELECT count(*) FROM awa.ring_claim('rq', 10)), 0::bigint, 'nothing is left to claim');
SELECT throws_ok(format('INSERT INTO awa.claims VALUES (0, %s, 1, now(), now(), ''1 s'', NULL)', (SELECT id FROM j WHERE n = 1)),
	'23505', NULL, 'a second receipt for the same attempt violates the unique key');

-- complete: only running attempts with their lease
SELECT set_eq(format('SELECT * FROM awa.ring_complete_many(ARRAY[%s, %s, %s, %s], ARRAY[1, 1, 2, 1])',
		(SELECT id FROM j WHERE n = 1), (SELECT id FROM j WHERE n = 1), (SELECT id FROM j WHERE n = 2), (SELECT id FROM j WHERE n = 6)),
	format('VALUES (%s::bigint)', (SELECT id FROM j WHERE n = 1)),
	'complete_many: a running attempt once; a wrong lease and an unclaimed job are not running');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 1)], '{1}')), 0::bigint,
	'completing it again is a no-op');
SELECT is((SELECT state::text FROM awa.done WHERE job_id = (SELECT id FROM j WHERE n = 1)), 'completed',
	'a done row, completed');

-- fail: retry now while attempts remain
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 3), 1, '{"e": "boom"}', retry_in => '0'), 'retryable'::awa.job_state,
	'a failure with attempts left is retryable (retry now: retry_in 0)');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 3), 1), NULL, 'failing the same attempt again is a no-op (NULL)');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 3)], '{1}')), 0::bigint,
	'the failed attempt cannot be completed (stale lease)');
SELECT results_eq(format('SELECT id, run_lease, attempt, kind FROM awa.ring_claim(%L, 10)', 'rq'),
	format('VALUES (%s::bigint, 2::bigint, 2, %L::text)', (SELECT id FROM j WHERE n = 3), 'k3'),
	'the retry is claimed again with lease 2, attempt 2');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 3), 2), 'failed'::awa.job_state,
	'the last attempt fails for good (max_attempts 2)');
SELECT is((SELECT count(*) FROM awa.ring_claim('rq', 10)), 0::bigint, 'a failed job is not claimed again');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 4), 1, NULL, retry => false), 'failed'::awa.job_state,
	'retry => false fails at once');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 6), 1), NULL, 'an attempt never claimed is not running (NULL)');
SELECT is((SELECT array_agg(state::text || ':' || run_lease ORDER BY run_lease) FROM awa.done WHERE job_id = (SELECT id FROM j WHERE n = 3)),
	ARRAY['retryable:1', 'failed:2'], 'the job''s attempts: retryable, then failed');
SELECT is((SELECT error FROM awa.done WHERE job_id = (SELECT id FROM j WHERE n = 3) AND run_lease = 1), '{"e": "boom"}'::jsonb,
	'the error is kept on the done row');

-- nothing on the hot path was updated or deleted: every row version is the first
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done)_[0-9]+$'), 0::numeric,
	'no ready row, receipt or done row was updated or deleted');
SELECT is(ARRAY[(SELECT count(*) FROM awa.ready), (SELECT count(*) FROM awa.claims), (SELECT count(*) FROM awa.done)],
	ARRAY[6, 6, 4]::bigint[], '6 ready rows (5 jobs due, 1 retry), 6 receipts, 4 done rows');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs is still untouched');

-- a job's other attributes (awa_insert's arguments) are kept on every row of it: the first ready row, a scheduled
-- row, the next attempt's ready row after a retry now or later
CREATE TEMP TABLE attrs AS
SELECT awa.ring_insert('attrs', '{}', 'attrq', tags => '{a,b}', metadata => '{"m": 1}', timeout => '1 hour',
	group_id => 'g1', concurrency_key => 'ck', run_at => CASE WHEN n = 2 THEN now() + interval '1 day' END) AS id
FROM generate_series(1, 2) n;
CREATE TEMP TABLE attrs_claim AS SELECT * FROM awa.ring_claim('attrq', 2);
SELECT is((SELECT count(*) FROM attrs_claim), 1::bigint, 'the job due now claimed');
SELECT is(awa.ring_fail((SELECT id FROM attrs_claim), (SELECT run_lease FROM attrs_claim), NULL, true, '0'),
	'retryable'::awa.job_state, 'failed, retried now');
CREATE TEMP TABLE attrs_claim2 AS SELECT * FROM awa.ring_claim('attrq', 1);
SELECT is(awa.ring_fail((SELECT id FROM attrs_claim2), (SELECT run_lease FROM attrs_claim2), NULL, true, '1 hour'),
	'retryable'::awa.job_state, 'failed again, retried in an hour');
SELECT is((SELECT array_agg(ARRAY[j.state::text, j.tags::text, j.metadata::text, j.timeout::text, j.group_id,
		j.concurrency_key] ORDER BY j.id) FROM awa.ring_jobs j WHERE j.id IN (SELECT id FROM attrs)),
	ARRAY[['retryable', '{a,b}', '{"m": 1}', '01:00:00', 'g1', 'ck'], ['scheduled', '{a,b}', '{"m": 1}', '01:00:00', 'g1', 'ck']],
	'tags, metadata, timeout, group_id and concurrency_key kept by the retries and the scheduled row');
SELECT is((SELECT array_agg(ARRAY[r.tags::text, r.timeout::text, r.group_id, r.concurrency_key] ORDER BY r.run_lease)
		FROM awa.ready r WHERE r.id = (SELECT id FROM attrs_claim)),
	ARRAY[['{a,b}', '01:00:00', 'g1', 'ck'], ['{a,b}', '01:00:00', 'g1', 'ck']],
	'both ready rows of the retried job carry them');

-- a lookup by id never walks the claim index of a slot that was empty when its plan was made: ring_fail's plan
-- was made above while slot 1 was empty; slot 1 now opens and fills, and failing a job of it probes its key
SELECT is((SELECT opened FROM awa.ring_rotate(1, '1 hour')), 1::smallint, 'slot 1 opened');
SELECT is((SELECT count(awa.ring_insert('k', '{}', 'slot1')) FROM generate_series(1, 300)), 300::bigint,
	'300 jobs in slot 1');
CREATE TEMP TABLE s1 AS SELECT * FROM awa.ring_claim('slot1', 1);
CREATE TEMP TABLE idx_before AS
	SELECT pg_stat_get_xact_tuples_returned('awa.ready_1_queue_priority_run_at_id_idx'::regclass) AS idx_tup_read;
SELECT is(awa.ring_fail((SELECT id FROM s1), (SELECT run_lease FROM s1), NULL, false), 'failed'::awa.job_state,
	'a job of slot 1 failed');
SELECT is(pg_stat_get_xact_tuples_returned('awa.ready_1_queue_priority_run_at_id_idx'::regclass)
	- (SELECT idx_tup_read FROM idx_before), 0::bigint, 'ring_fail did not use slot 1''s claim index (a lookup by id there walks all of it)');

SELECT * FROM finish();
ROLLBACK;
