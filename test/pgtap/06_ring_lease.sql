-- The ring's heartbeats, progress and rescue (docs/storage.md, "Step 4: heartbeats, progress, rescue").
-- A heartbeat extends a running attempt's deadline and records progress (replaced, kept across retries);
-- a stale lease changes nothing; the rescue ends attempts past their deadline as awa's rescue does (retryable,
-- or failed when out of attempts, "deadline exceeded"), leaves heartbeating ones alone, honours max, and walks
-- from its mark; nothing on the ring is updated or deleted.
-- now() is the same for the whole transaction, so attempts past their deadline are claimed with ring_claim and
-- then given a receipt deadline in the past by writing their receipts by hand (awa.claims) where needed.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(43);

-- created empty; internal like the rest of the ring
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent = 'awa.beats'::regclass), 4::bigint,
	'beats has 4 slots');
SELECT is((SELECT count(*) FROM awa.beats), 0::bigint, 'beats is created empty');
SELECT is((SELECT passed FROM awa.ring_rescue_mark), '-infinity'::timestamptz, 'the rescue mark starts at -infinity');
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.relnamespace = 'awa'::regnamespace AND a.grantee <> c.relowner
	  AND (c.relname IN ('beats', 'ring_rescue_mark') OR c.relname ~ '^beats_[0-9]+$')),
	0::bigint, 'no role is granted beats or the rescue mark');
SELECT is((SELECT count(*) FROM pg_class c
	WHERE c.relnamespace = 'awa'::regnamespace AND c.relacl IS NULL
	  AND (c.relname IN ('beats', 'ring_rescue_mark') OR c.relname ~ '^beats_[0-9]+$')),
	0::bigint, 'beats and the rescue mark have explicit (owner-only) privileges');
SELECT throws_ok($$SELECT awa.ring_heartbeat(1, 1)$$, '55000', NULL, 'ring_heartbeat refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_rescue()$$, '55000', NULL, 'ring_rescue refuses while the ring is off');
SELECT throws_ok($$SELECT * FROM awa.ring_attempt_lease(1, 1)$$, '55000', NULL,
	'ring_attempt_lease refuses while the ring is off');

SET LOCAL awa.ring_engine = on;
-- leases here are shorter than awa.heartbeat_timeout's default (90 s), which caps a deadline, also for a session
-- whose own setting is longer (06_ring_obs.sql tests that)

-- bad input: 22023 naming the field, nothing written
SELECT throws_ok($$SELECT awa.ring_heartbeat(NULL, 1)$$, '22023', 'id must not be null', 'heartbeat: null id');
SELECT throws_ok($$SELECT awa.ring_heartbeat(1, NULL)$$, '22023', 'run_lease must not be null', 'heartbeat: null run_lease');
SELECT throws_ok($$SELECT awa.ring_heartbeat(1, 1, '0')$$, '22023', 'lease must be positive', 'heartbeat: lease 0');
SELECT throws_ok($$SELECT awa.ring_heartbeat(1, 1, '-1 minute')$$, '22023', 'lease must be positive',
	'heartbeat: negative lease');
SELECT throws_ok($$SELECT awa.ring_rescue(0)$$, '22023', 'max must be between 1 and 100000', 'rescue: max 0');
SELECT throws_ok($$SELECT awa.ring_rescue(NULL)$$, '22023', 'max must not be null', 'rescue: null max');
SELECT throws_ok($$SELECT * FROM awa.ring_attempt_lease(NULL, 1)$$, '22023', 'id must not be null',
	'attempt_lease: null id');
SELECT is((SELECT count(*) FROM awa.beats) + (SELECT count(*) FROM awa.done), 0::bigint, 'bad input wrote nothing');

-- jobs: n = 1..6, all claimed with a 1 minute lease (lease 1, attempt 1)
CREATE TEMP TABLE j AS
SELECT n, awa.ring_insert('k' || n, jsonb_build_object('n', n), 'lq',
	max_attempts => CASE WHEN n = 4 THEN 1 ELSE 3 END,
	run_at => now() - interval '1 hour' + n * interval '1 second') AS id
FROM generate_series(1, 6) n;
SELECT is((SELECT count(*) FROM awa.ring_claim('lq', 10, '1 minute', 'w')), 6::bigint, 'six attempts claimed');
CREATE FUNCTION pg_temp.id(k int) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM j WHERE n = k $$;
-- a heartbeat of job k's attempt under lease l (with a lease, or the claim's): its deadline less the time of its
-- beat (awa.beats.at, the clock's), which is the lease it renewed by (docs/storage.md, "Step 5: errors and
-- heartbeats on the ring as on the table")
CREATE FUNCTION pg_temp.beat(k int, l bigint, lease interval DEFAULT NULL) RETURNS interval LANGUAGE plpgsql AS $$
DECLARE
	d timestamptz := awa.ring_heartbeat(pg_temp.id(k), l, lease);
BEGIN
	RETURN d - (SELECT max(b.at) FROM awa.beats b WHERE b.job_id = pg_temp.id(k) AND b.run_lease = l);
END $$;

-- heartbeat: extends the deadline, keeps the claim's lease unless given one
SELECT is(pg_temp.beat(1, 1), interval '1 minute',
	'a heartbeat without a lease extends the deadline by the claim''s lease, from the time of its beat');
SELECT is(pg_temp.beat(1, 1, '80 seconds'), interval '80 seconds',
	'a heartbeat with a lease extends the deadline by it');
SELECT is((SELECT deadline_at FROM awa.ring_attempt_lease(pg_temp.id(1), 1)),
	(SELECT max(at) + interval '80 seconds' FROM awa.beats WHERE job_id = pg_temp.id(1) AND run_lease = 1),
	'the attempt''s deadline is its latest beat''s');
SELECT is((SELECT deadline_at FROM awa.ring_attempt_lease(pg_temp.id(2), 1)), now() + interval '1 minute',
	'without beats, the attempt''s deadline is its receipt''s');
SELECT is((SELECT count(*) FROM awa.beats_0 WHERE job_id = pg_temp.id(1) AND run_lease = 1), 2::bigint,
	'each heartbeat is one beat in the slot of its receipt');

-- stale or unknown leases: NULL, nothing written
SELECT is(awa.ring_heartbeat(pg_temp.id(2), 2), NULL, 'a lease never given: NULL');
SELECT is(awa.ring_heartbeat(-1, 1), NULL, 'an unknown job: NULL');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[pg_temp.id(3)], '{1}')), 1::bigint, 'job 3 completed');
SELECT is(awa.ring_heartbeat(pg_temp.id(3), 1, progress => '{"late": true}'), NULL,
	'a heartbeat of an attempt that ended: NULL');
SELECT is((SELECT count(*) FROM awa.beats WHERE job_id IN (pg_temp.id(2), pg_temp.id(3))), 0::bigint,
	'stale heartbeats wrote no beat');

-- progress: replaced (not merged), carried by beats without progress, kept across retries
SELECT lives_ok(format($$SELECT awa.ring_heartbeat(%s, 1, progress => '{"a": 1}'),
	awa.ring_heartbeat(%s, 1, progress => '{"b": 2}'), awa.ring_heartbeat(%s, 1)$$,
	pg_temp.id(5), pg_temp.id(5), pg_temp.id(5)), 'three heartbeats of job 5, two with progress');
SELECT is((SELECT progress FROM awa.ring_attempt_lease(pg_temp.id(5), 1)), '{"b": 2}'::jsonb,
	'progress is replaced, as awa_progress does, and kept by a heartbeat without progress');
SELECT is(awa.ring_fail(pg_temp.id(5), 1, '"boom"', retry_in => '0'), 'retryable'::awa.job_state, 'job 5 fails, retryable');
SELECT is((SELECT count(*) FROM awa.ring_claim('lq', 10, '1 minute')), 1::bigint, 'its retry is claimed (lease 2)');
SELECT is((SELECT progress FROM awa.ring_attempt_lease(pg_temp.id(5), 2)), '{"b": 2}'::jsonb,
	'the retry sees the progress of the attempt before');
SELECT is(pg_temp.beat(5, 2), interval '1 minute', 'the retry heartbeats');
SELECT is((SELECT progress FROM awa.beats WHERE job_id = pg_temp.id(5) AND run_lease = 2), '{"b": 2}'::jsonb,
	'its first beat carries the progress forward');

-- rescue: attempts 2, 4 and 6 have receipts past their deadline (written by hand as a claim an hour ago
-- would have written them: remove the claim's receipt and write the old one), attempt 1 too but it heartbeats
CREATE TEMP TABLE old_receipts AS
SELECT slot, job_id, run_lease, now() - interval '1 hour' AS claimed_at,
	now() - interval '59 minutes' AS deadline_at, lease, claimed_by
FROM awa.claims WHERE job_id IN (pg_temp.id(1), pg_temp.id(2), pg_temp.id(4), pg_temp.id(6));
SELECT lives_ok($$
	DELETE FROM awa.claims c USING old_receipts o WHERE c.job_id = o.job_id AND c.run_lease = o.run_lease;
	INSERT INTO awa.claims SELECT * FROM old_receipts$$, 'receipts an hour old for jobs 1, 2, 4, 6');
SELECT is(awa.ring_rescue(2), 2::bigint, 'max 2: two attempts rescued');
SELECT is(awa.ring_rescue(), 1::bigint, 'the next round rescues the third (the mark stayed below it)');
SELECT is((SELECT array_agg(j.n || ':' || d.state || ':' || (d.error #>> '{}') ORDER BY j.n)
	FROM awa.done d JOIN j ON j.id = d.job_id WHERE d.error = '"deadline exceeded"'),
	ARRAY['2:retryable:deadline exceeded', '4:failed:deadline exceeded', '6:retryable:deadline exceeded'],
	'rescued: retryable while attempts remain, failed at max_attempts, error "deadline exceeded"');
SELECT is((SELECT array_agg(j.n || ':' || r.run_lease || ':' || r.attempt ORDER BY j.n)
	FROM awa.ready r JOIN j ON j.id = r.id WHERE r.run_lease = 1),
	ARRAY['2:1:1', '5:1:1', '6:1:1'], 'retries are ready now with attempt + 1 (and job 5''s failure)');
SELECT is((SELECT count(*) FROM awa.done WHERE job_id = pg_temp.id(1)), 0::bigint,
	'a heartbeating attempt past its receipt''s deadline is not rescued');
SELECT is(awa.ring_heartbeat(pg_temp.id(2), 1), NULL, 'a rescued attempt does not heartbeat any more');
SELECT is(awa.ring_rescue(), 0::bigint, 'nothing more to rescue');

-- nothing on the ring was updated or deleted but the four receipts the test rewrote by hand
SELECT is((SELECT ARRAY[sum(n_tup_upd), sum(n_tup_del)] FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done|beats)_[0-9]+$'), ARRAY[0, 4]::numeric[],
	'no ready row, receipt, done row or beat was updated or deleted by heartbeats and rescues');

SELECT * FROM finish();
ROLLBACK;
