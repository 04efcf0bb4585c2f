-- A job's errors and heartbeats are the same on either engine (docs/storage.md, "Step 5: errors and heartbeats
-- on the ring as on the table"): awa.max_errors_kept keeps the newest entries whatever appends one (awa_fail,
-- the rescue, awa_fail_external, awa_retry_external); an error cut at awa.max_error_bytes has "truncated" and
-- "error_bytes"; a heartbeat's deadline_at is its heartbeat_at + the lease.  This file does not choose its
-- engine: it runs on the ring (the default) and on the table (test/pgtap/on_table.txt).  The rescue and the
-- heartbeat need time to pass within and between transactions, so it runs statement by statement
-- (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SET statement_timeout = '60s';
SET client_min_messages = error;
SELECT plan(20);

CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.id(k text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM j WHERE n = k $$;
-- a job's errors without their times (each entry's keys but "at", in order)
CREATE FUNCTION pg_temp.errs(k text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT coalesce(jsonb_agg(e - 'at' ORDER BY o), '[]') FROM awa.jobs,
		unnest(errors) WITH ORDINALITY AS u(e, o) WHERE id = pg_temp.id(k) $$;
-- claim job k (alone in its queue) and return its lease
CREATE FUNCTION pg_temp.claim(k text, lease interval DEFAULT '1 hour') RETURNS bigint LANGUAGE sql AS $$
	SELECT run_lease FROM awa_claim((SELECT queue FROM awa.jobs WHERE id = pg_temp.id(k)), 'w', 1, lease) $$;
-- fail job k n times, each retry due at once
CREATE FUNCTION pg_temp.fail_times(k text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. n LOOP
		PERFORM awa_fail(pg_temp.id(k), pg_temp.claim(k), 'e' || i, '0'::interval);
	END LOOP;
END $$;
INSERT INTO j SELECT 'j' || n, (awa_insert('k', queue => 'eq' || n, max_attempts => 100)).id
	FROM generate_series(1, 6) n;

-- awa.max_errors_kept: awa_fail keeps the newest entries
SET awa.max_errors_kept = 2;
SELECT pg_temp.fail_times('j1', 11);
SELECT is(pg_temp.errs('j1'), '[{"attempt": 10, "error": "e10"}, {"attempt": 11, "error": "e11"}]',
	'awa_fail 11 times at awa.max_errors_kept = 2: the newest 2 errors kept');
SELECT ok((SELECT bool_and(e ? 'at') FROM awa.jobs, unnest(errors) e WHERE id = pg_temp.id('j1')),
	'every entry has its time');

-- the rescue appends under the same bound
SELECT pg_temp.fail_times('j2', 3);
SELECT is(pg_temp.claim('j2'), 4::bigint, 'j2 claimed a 4th time');
SELECT pg_sleep(1.2);
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 1::bigint, 'j2 rescued');
RESET awa.heartbeat_timeout;
SELECT is(pg_temp.errs('j2'), '[{"attempt": 3, "error": "e3"}, {"attempt": 4, "error": "heartbeat stale"}]',
	'the rescue''s error and the newest one before it kept');

-- awa.max_error_bytes: a cut error has its marks, on awa_fail and awa_fail_external
SET awa.max_error_bytes = 64;
SELECT ok(awa_fail(pg_temp.id('j3'), pg_temp.claim('j3'), repeat('x', 100), '0'::interval) IS NOT NULL,
	'j3 failed with a 100-byte error');
SELECT is(pg_temp.errs('j3'),
	jsonb_build_array(jsonb_build_object('attempt', 1, 'error', repeat('x', 64), 'truncated', true, 'error_bytes', 100)),
	'awa_fail: an error cut at awa.max_error_bytes has "truncated" and "error_bytes"');
CREATE TEMP TABLE cb AS SELECT awa_register_callback(pg_temp.id('j4'), pg_temp.claim('j4'), '1 hour') AS c;
SELECT ok(awa_wait_external(pg_temp.id('j4'), 1), 'j4 waits for its callback');
SELECT ok(awa_fail_external((SELECT c FROM cb), repeat('y', 70)), 'j4 failed by its callback with a 70-byte error');
SELECT is(pg_temp.errs('j4'),
	jsonb_build_array(jsonb_build_object('attempt', 1, 'error', repeat('y', 64), 'truncated', true, 'error_bytes', 70)),
	'awa_fail_external: the same marks');
RESET awa.max_error_bytes;

-- the callback's retry appends under the bound too
SELECT pg_temp.fail_times('j5', 2);
TRUNCATE cb;
INSERT INTO cb SELECT awa_register_callback(pg_temp.id('j5'), pg_temp.claim('j5'), '1 hour');
SELECT ok(awa_wait_external(pg_temp.id('j5'), 3), 'j5 waits for its callback');
SELECT ok(awa_retry_external((SELECT c FROM cb), retry_in => '0') IS NOT NULL, 'j5 retried by its callback');
SELECT is(pg_temp.errs('j5'),
	'[{"attempt": 2, "error": "e2"}, {"attempt": 3, "error": "retry asked for by the callback"}]',
	'awa_retry_external''s error and the newest one before it kept');
RESET awa.max_errors_kept;

-- a snooze takes a run_lease but uses no attempt: an error after it has its attempt's number (on the ring it
-- had the run_lease: 2 where the job's attempt was 1), whatever appends it: awa_fail, awa_fail_external
INSERT INTO j SELECT 'j7', (awa_insert('k', queue => 'eq7', max_attempts => 100)).id;
SELECT ok(awa_snooze(pg_temp.id('j7'), pg_temp.claim('j7'), '0'::interval), 'j7 snoozed');
SELECT ok(awa_fail(pg_temp.id('j7'), pg_temp.claim('j7'), 'after a snooze', '0'::interval) IS NOT NULL,
	'j7 claimed again and failed');
SELECT ok(awa_snooze(pg_temp.id('j7'), pg_temp.claim('j7'), '0'::interval), 'j7 snoozed in its second attempt');
TRUNCATE cb;
INSERT INTO cb SELECT awa_register_callback(pg_temp.id('j7'), pg_temp.claim('j7'), '1 hour');
SELECT ok(awa_wait_external(pg_temp.id('j7'), 4), 'j7 claimed a fourth time (lease 4, attempt 2) waits for its callback');
SELECT ok(awa_fail_external((SELECT c FROM cb), 'declined'), 'j7 failed by its callback');
SELECT is(pg_temp.errs('j7') || jsonb_build_array((SELECT jsonb_build_object('attempt', attempt, 'run_lease', run_lease,
	'state', state) FROM awa.jobs WHERE id = pg_temp.id('j7'))),
	'[{"attempt": 1, "error": "after a snooze"}, {"attempt": 2, "error": "declined"},
	  {"attempt": 2, "run_lease": 4, "state": "failed"}]',
	'the errors after snoozes: attempts 1 and 2 (leases 2 and 4)');

-- a heartbeat: deadline_at = heartbeat_at + lease, in a transaction that began earlier
SELECT pg_temp.claim('j6', '30 seconds') IS NOT NULL AS claimed;
BEGIN;
SELECT pg_sleep(0.3);
SELECT awa_heartbeat(ARRAY[pg_temp.id('j6')], '{1}');
COMMIT;
SELECT is((SELECT deadline_at - heartbeat_at FROM awa.jobs WHERE id = pg_temp.id('j6')), '30 seconds'::interval,
	'a heartbeat late in its transaction: deadline_at = heartbeat_at + the lease');

DROP EXTENSION awa;
SELECT * FROM finish();
