-- Reading the ring (docs/storage.md, "Step 4: reading the ring, counters"): awa.ring_jobs shows each ring job's
-- newest attempt as awa.jobs would hold it, awa.ring_get reads one, and the counters of awa_queue_stats() count
-- ring jobs exactly (equal to a recount) after every kind of write and after each is rolled back.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(66);

-- the view has awa.jobs' columns: same names, types and order
SELECT is((SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
		FROM pg_attribute a WHERE a.attrelid = 'awa.ring_jobs'::regclass AND a.attnum > 0 AND NOT a.attisdropped),
	(SELECT array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
		FROM pg_attribute a WHERE a.attrelid = 'awa.jobs'::regclass AND a.attnum > 0 AND NOT a.attisdropped),
	'awa.ring_jobs has exactly the columns of awa.jobs, in order');
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.oid = 'awa.ring_jobs'::regclass AND a.grantee <> c.relowner), 0::bigint, 'no role is granted awa.ring_jobs');
SELECT throws_ok($$SELECT awa.ring_get(1)$$, '55000', NULL, 'ring_get refuses while the ring is off');

SET LOCAL awa.ring_engine = on;
-- leases here are longer than awa.heartbeat_timeout, which caps a deadline (06_ring_obs.sql tests that)
SET LOCAL awa.heartbeat_timeout = '1d';

-- a job in every state the ring has today, queue rv (and rv2 for a job failed after two attempts)
CREATE TEMP TABLE j (name text PRIMARY KEY, id bigint);
INSERT INTO j SELECT 'r1', awa.ring_insert('k', '{"n": 1}', 'rv', run_at => now() - interval '50 s');
INSERT INTO j SELECT 'c1', awa.ring_insert('k', '{"n": 2}', 'rv', run_at => now() - interval '40 s');
INSERT INTO j SELECT 't1', awa.ring_insert('k', '{"n": 3}', 'rv', run_at => now() - interval '30 s');
INSERT INTO j SELECT 'f1', awa.ring_insert('k', '{"n": 4}', 'rv', run_at => now() - interval '20 s');
SELECT is((SELECT count(*) FROM awa.ring_claim('rv', 4, '2 minutes', 'w1')), 4::bigint, 'four jobs claimed');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE name = 'c1')], '{1}')), 1::bigint,
	'c1 completed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE name = 't1'), 1, '"boom"', retry_in => '0'), 'retryable'::awa.job_state, 't1 retried');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE name = 'f1'), 1, '{"e": 4}', false), 'failed'::awa.job_state,
	'f1 failed for good');
INSERT INTO j SELECT 'a1', awa.ring_insert('k', '{"n": 5}', 'rv', 3, 7, now() - interval '10 s');
INSERT INTO j SELECT 's1', awa.ring_insert('k', '{"n": 6}', 'rv', run_at => now() + interval '1 hour');
INSERT INTO j SELECT 'x1', awa.ring_insert('k', '{"n": 7}', 'rv', run_at => now() + interval '2 hours');
INSERT INTO j SELECT 'y1', awa.ring_insert('k', '{"n": 8}', 'rv', run_at => now() - interval '5 s');
INSERT INTO j SELECT 'm1', awa.ring_insert('k', '{"n": 9}', 'rv2', max_attempts => 2);
SELECT is((SELECT count(*) FROM awa.ring_claim('rv2', 5, '1 minute', 'w2')), 1::bigint, 'm1 claimed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE name = 'm1'), 1, '"one"', retry_in => '0'), 'retryable'::awa.job_state, 'm1 retried');
SELECT is((SELECT run_lease FROM awa.ring_claim('rv2', 5, '1 minute', 'w3')), 2::bigint, 'm1 claimed again, lease 2');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE name = 'm1'), 2, '"two"'), 'failed'::awa.job_state,
	'm1 failed at its last attempt');
-- a job scheduled for later cancelled before any claim (it becomes a ready row and a done row), and, written by
-- hand, a receipt and its end written by one statement
SELECT ok(awa.ring_cancel((SELECT id FROM j WHERE name = 'x1')), 'x1 cancelled before any claim');
WITH c AS (INSERT INTO awa.claims SELECT 0, id, 1, now(), now() + interval '30 s', interval '30 s', 'w4'
		FROM j WHERE name = 'y1' RETURNING slot, job_id, run_lease)
INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at) SELECT slot, job_id, run_lease, 'completed', now()
	FROM c;

-- each job as awa.jobs would hold it
CREATE TEMP VIEW v AS SELECT j.name, r.* FROM j JOIN awa.ring_jobs r USING (id);
SELECT is((SELECT row(state, attempt, run_lease, kind, queue, args, priority, max_attempts, run_at, created_at,
		attempted_at, heartbeat_at, deadline_at, finalized_at, claimed_by, lease, errors, metadata, tags)::text
		FROM v WHERE name = 'a1'),
	row('available'::awa.job_state, 0::smallint, 0::bigint, 'k', 'rv', '{"n": 5}'::jsonb, 3::smallint, 7::smallint,
		now() - interval '10 s', now(), NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
		NULL::text, NULL::interval, '{}'::jsonb[], '{}'::jsonb, '{}'::text[])::text,
	'available: the ready row, attempt 0, lease 0, nothing of a claim');
SELECT is((SELECT row(state, attempt, run_lease, run_at, attempted_at, finalized_at)::text FROM v WHERE name = 's1'),
	row('scheduled'::awa.job_state, 0::smallint, 0::bigint, now() + interval '1 hour', NULL::timestamptz,
		NULL::timestamptz)::text,
	'scheduled: a first attempt enqueued for later');
SELECT is((SELECT row(state, attempt, run_lease, attempted_at, heartbeat_at, deadline_at, finalized_at, claimed_by,
		lease, errors)::text FROM v WHERE name = 'r1'),
	row('running'::awa.job_state, 1::smallint, 1::bigint, now(), now(), now() + interval '2 minutes',
		NULL::timestamptz, 'w1', interval '2 minutes', '{}'::jsonb[])::text,
	'running: attempt and lease of the claim, attempted_at = heartbeat_at = claimed_at, deadline, worker, lease');
SELECT is((SELECT row(state, attempt, run_lease, attempted_at, heartbeat_at, deadline_at, finalized_at, claimed_by,
		lease)::text FROM v WHERE name = 'c1'),
	row('completed'::awa.job_state, 1::smallint, 1::bigint, now(), now(), now() + interval '2 minutes', now(),
		'w1', interval '2 minutes')::text,
	'completed: finalized_at of the done row, the claim''s columns kept (as awa_complete keeps them)');
SELECT is((SELECT row(state, attempt, run_lease, run_at, attempted_at, heartbeat_at, deadline_at, finalized_at,
		claimed_by, lease, errors)::text FROM v WHERE name = 't1'),
	row('available'::awa.job_state, 1::smallint, 1::bigint, now(), now(), NULL::timestamptz, NULL::timestamptz,
		NULL::timestamptz, 'w1', interval '2 minutes',
		ARRAY[jsonb_build_object('attempt', 1, 'error', 'boom', 'at', now())])::text,
	'retried: the new attempt is available now, attempt and lease of the failed one, its error in errors');
SELECT is((SELECT row(state, attempt, run_lease, heartbeat_at, deadline_at, finalized_at, errors)::text
		FROM v WHERE name = 'f1'),
	row('failed'::awa.job_state, 1::smallint, 1::bigint, NULL::timestamptz, NULL::timestamptz, now(),
		ARRAY[jsonb_build_object('attempt', 1, 'error', '{"e": 4}'::jsonb, 'at', now())])::text,
	'failed for good: finalized, no heartbeat or deadline, the error kept');
SELECT is((SELECT row(state, queue, attempt, run_lease, claimed_by, finalized_at, errors)::text FROM v WHERE name = 'm1'),
	row('failed'::awa.job_state, 'rv2', 2::smallint, 2::bigint, 'w3', now(),
		ARRAY[jsonb_build_object('attempt', 1, 'error', 'one', 'at', now()),
			jsonb_build_object('attempt', 2, 'error', 'two', 'at', now())])::text,
	'failed after two attempts: the errors of both, in order');
SELECT is((SELECT row(state, attempt, run_lease, attempted_at, finalized_at, errors)::text FROM v WHERE name = 'x1'),
	row('cancelled'::awa.job_state, 0::smallint, 0::bigint, NULL::timestamptz, now(), '{}'::jsonb[])::text,
	'cancelled before any claim: attempt and lease as they were, finalized');
SELECT is((SELECT row(state, attempt, run_lease, claimed_by, finalized_at)::text FROM v WHERE name = 'y1'),
	row('completed'::awa.job_state, 1::smallint, 1::bigint, 'w4', now())::text,
	'receipt and end written by one statement: completed');
SELECT is((SELECT count(*) FROM awa.ring_jobs), 9::bigint, 'one row per ring job (the retries'' older attempts hidden)');

-- ring_get: the view's row as an awa.jobs row, NULL for an id the ring does not hold
SELECT is((SELECT count(*) FROM awa.ring_jobs r WHERE awa.ring_get(r.id)::text = ROW(r.*)::awa.jobs::text),
	9::bigint, 'ring_get returns each job''s row of the view');
SELECT is(pg_typeof(awa.ring_get((SELECT id FROM j WHERE name = 'r1')))::text, 'awa.jobs', 'ring_get returns awa.jobs');
SELECT is((awa.ring_get((SELECT id FROM j WHERE name = 'm1'))).state, 'failed'::awa.job_state, 'ring_get of m1: failed');
SELECT ok(awa.ring_get(-1) IS NULL, 'ring_get of an id the ring does not hold is NULL');
SELECT ok(awa.ring_get(NULL) IS NULL, 'ring_get(NULL) is NULL');

-- the counters: awa_queue_stats() counts ring jobs (with awa.jobs' own), equal to a recount
SELECT ok((awa_insert('plain', queue => 'rv')).id IS NOT NULL, 'a job of awa.jobs in queue rv too');
CREATE TEMP VIEW st AS SELECT queue, scheduled, available, running, retryable, failed, cancelled, completed_last_hour
	FROM awa_queue_stats() WHERE queue IN ('rv', 'rv2');
SELECT results_eq('SELECT * FROM st ORDER BY queue',
	$$VALUES ('rv'::text, 1::bigint, 3::bigint, 1::bigint, 0::bigint, 1::bigint, 1::bigint, 2::bigint),
		('rv2', 0, 0, 0, 0, 1, 0, 0)$$,
	'awa_queue_stats counts the ring''s jobs by state (and awa.jobs'' job of the same queue)');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount of awa.ring_jobs and awa.jobs');

-- each kind of write, rolled back: the counts change with it and go back with it
CREATE TEMP TABLE before AS SELECT * FROM st;
CREATE FUNCTION pg_temp.same() RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (SELECT * FROM st EXCEPT SELECT * FROM before)
		AND NOT EXISTS (SELECT * FROM before EXCEPT SELECT * FROM st)
		AND NOT EXISTS (SELECT * FROM awa.ring_recount()) $$;
SAVEPOINT w;
SELECT ok(awa.ring_insert('k', '{}', 'rv') > 0, 'write: an insert');
SELECT is((SELECT available FROM st WHERE queue = 'rv'), 4::bigint, 'an insert counts one more available job');
ROLLBACK TO w;
SELECT ok(pg_temp.same(), 'an insert rolled back: the counts are back, equal to a recount');
SAVEPOINT w;
SELECT is((SELECT count(*) FROM awa.ring_claim('rv', 10)), 2::bigint, 'write: a claim (a1 and t1''s retry)');
SELECT is((SELECT row(available, running)::text FROM st WHERE queue = 'rv'), '(1,3)', 'a claim of two: available -2, running +2');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'after the claim, the counters equal a recount');
ROLLBACK TO w;
SELECT ok(pg_temp.same(), 'a claim rolled back: the counts are back');
SAVEPOINT w;
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE name = 'r1')], '{1}')), 1::bigint,
	'write: a completion');
SELECT is((SELECT row(running, completed_last_hour)::text FROM st WHERE queue = 'rv'), '(0,3)',
	'a completion: running -1, completed +1');
ROLLBACK TO w;
SELECT ok(pg_temp.same(), 'a completion rolled back: the counts are back');
SAVEPOINT w;
SELECT is(awa.ring_fail((SELECT id FROM j WHERE name = 'r1'), 1, '"again"', retry_in => '0'), 'retryable'::awa.job_state,
	'write: a failure with a retry');
SELECT is((SELECT row(available, running, retryable)::text FROM st WHERE queue = 'rv'), '(4,0,0)',
	'a failure with a retry: running -1, available +1');
ROLLBACK TO w;
SELECT ok(pg_temp.same(), 'a retry rolled back: the counts are back');
SAVEPOINT w;
SELECT is(awa.ring_fail((SELECT id FROM j WHERE name = 'r1'), 1, NULL, false), 'failed'::awa.job_state,
	'write: a failure for good');
SELECT is((SELECT row(running, failed)::text FROM st WHERE queue = 'rv'), '(0,2)', 'a failure for good: running -1, failed +1');
ROLLBACK TO w;
SELECT ok(pg_temp.same(), 'a failure rolled back: the counts are back');
SAVEPOINT w;
SELECT ok(awa.ring_cancel((SELECT id FROM j WHERE name = 's1')), 'write: a cancel of a scheduled job');
SELECT is((SELECT row(scheduled, cancelled)::text FROM st WHERE queue = 'rv'), '(0,2)',
	'an end before any claim: scheduled -1, cancelled +1');
ROLLBACK TO w;
SELECT ok(pg_temp.same(), 'that end rolled back: the counts are back');

-- completed_last_hour: completions just inside the hour, in the second that began before it (counted from
-- awa.done, not from the counters' seconds), and just outside it
INSERT INTO j SELECT 'e' || n, awa.ring_insert('k', '{}', 'rv3') FROM generate_series(1, 2) n;
SELECT is((SELECT count(*) FROM awa.ring_claim('rv3', 2)), 2::bigint, 'e1 and e2 claimed');
INSERT INTO awa.done (slot, job_id, run_lease, state, finalized_at)
	SELECT 0, id, 1, 'completed', CASE name
		WHEN 'e1' THEN (now() - interval '1 hour') + ((date_trunc('second', now() - interval '1 hour')
			+ interval '1 s') - (now() - interval '1 hour')) / 2
		ELSE now() - interval '1 hour' - interval '1 microsecond' END
	FROM j WHERE name IN ('e1', 'e2');
SELECT is((SELECT completed_last_hour FROM awa_queue_stats() WHERE queue = 'rv3'), 1::bigint,
	'completed_last_hour counts a ring completion inside the hour''s first second, not one just before the hour');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after those completions');

-- the other paths of the ring in the view and the counters: a retry waiting out its backoff (a row of
-- awa.scheduled), a snooze, a heartbeat with progress, and the promotion of the retry when it is due
INSERT INTO j SELECT 'g' || n, awa.ring_insert('k', '{}', 'rv4') FROM generate_series(1, 3) n;
SELECT is((SELECT count(*) FROM awa.ring_claim('rv4', 3, '1 minute', 'w5')), 3::bigint, 'g1, g2 and g3 claimed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE name = 'g1'), 1, '"later"'), 'retryable'::awa.job_state,
	'g1 failed, retried after the default backoff');
SELECT ok(awa.ring_snooze((SELECT id FROM j WHERE name = 'g2'), 1, '1 hour'), 'g2 snoozed for an hour');
SELECT ok(awa.ring_heartbeat((SELECT id FROM j WHERE name = 'g3'), 1, '5 minutes', '{"done": 3}') IS NOT NULL,
	'g3 heartbeats with progress');
SELECT is((SELECT row(state, attempt, run_lease, run_at > now(), finalized_at)::text FROM v WHERE name = 'g1'),
	row('retryable'::awa.job_state, 1::smallint, 1::bigint, true, NULL::timestamptz)::text,
	'a retry waiting out its backoff: retryable, run_at that of its scheduled row');
SELECT is((SELECT row(state, run_at, finalized_at)::text FROM v WHERE name = 'g2'),
	row('scheduled'::awa.job_state, now() + interval '1 hour', NULL::timestamptz)::text,
	'a snoozed job: scheduled at the end of its snooze');
SELECT is((SELECT row(state, heartbeat_at > now(), deadline_at - heartbeat_at, progress)::text FROM v WHERE name = 'g3'),
	row('running'::awa.job_state, true, interval '5 minutes', '{"done": 3}'::jsonb)::text,
	'a heartbeat: heartbeat_at the time of its beat, the new deadline and the progress');
SELECT is((SELECT row(scheduled, running, retryable)::text FROM awa_queue_stats() WHERE queue = 'rv4'), '(1,1,1)',
	'counted: the snooze scheduled, the heartbeating job running, the retry retryable');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after the retry, snooze, heartbeat');
UPDATE awa.scheduled SET run_at = now() - interval '1 s' WHERE id = (SELECT id FROM j WHERE name = 'g1');
SELECT is(awa.ring_promote(), 1, 'the due retry promoted');
SELECT is((SELECT row(state, attempt, run_lease)::text FROM v WHERE name = 'g1'),
	row('available'::awa.job_state, 1::smallint, 1::bigint)::text, 'the promoted retry: available');
SELECT is((SELECT row(available, retryable)::text FROM awa_queue_stats() WHERE queue = 'rv4'), '(1,0)',
	'the promotion counted: retryable -1, available +1');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after the promotion');

-- nothing of the ring was updated or deleted by reading or counting
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done)_[0-9]+$'), 0::numeric,
	'no ready row, receipt or done row was updated or deleted');

SELECT * FROM finish();
ROLLBACK;
