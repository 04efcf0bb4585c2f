-- awa_rescue and the maintenance round's rescue decide with the rescuer's awa.heartbeat_timeout, on either engine
-- (docs/storage.md, "Step 5: leases, messages and side-table upkeep"): a running job is rescued when its latest
-- heartbeat (its claim, else its latest awa_heartbeat) is older than the setting in force for the session that
-- rescues, whatever the setting was when it was claimed, or when its lease ran out; the cause is awa's
-- ("heartbeat stale", "deadline exceeded").  The rescue needs time to pass (now() is a transaction's start), so
-- this file runs statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SET statement_timeout = '60s';
SET client_min_messages = error;
SELECT plan(25);

CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.id(k text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM j WHERE n = k $$;
-- a job's state and the cause of its latest error (a retry due at once is 'available' on the ring where the table
-- shows 'retryable' until maintenance promotes it: a known difference, docs/storage.md)
CREATE FUNCTION pg_temp.st(k text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE state WHEN 'available' THEN 'retryable' ELSE state::text END || ':' || coalesce(errors[array_length(errors, 1)] ->> 'error', '-')
	FROM awa.jobs WHERE id = pg_temp.id(k) $$;
INSERT INTO j SELECT 'j' || n, (awa_insert('k', queue => 'rq' || n)).id FROM generate_series(1, 7) n;

-- claimed with the default setting (90 s), rescued by a session whose setting is 1 second
SELECT is((SELECT count(*) FROM awa_claim('rq1', 'w', 1, '1 hour')), 1::bigint, 'j1 claimed (lease 1 hour)');
SELECT pg_sleep(1.2);
SELECT is(awa_rescue(), 0::bigint, 'a heartbeat 1 second old is not stale for a rescuer whose setting is 90 s');
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 1::bigint, 'the same job is rescued by a session whose setting is 1 second');
RESET awa.heartbeat_timeout;
SELECT is(pg_temp.st('j1'), 'retryable:heartbeat stale', 'j1: retryable, "heartbeat stale"');

-- claimed with 1 second, rescued by a session that kept the default: not yet
SET awa.heartbeat_timeout = 1;
SELECT is((SELECT count(*) FROM awa_claim('rq2', 'w', 1, '1 hour')), 1::bigint, 'j2 claimed with the setting at 1 second');
RESET awa.heartbeat_timeout;
SELECT pg_sleep(1.2);
SELECT is(awa_rescue(), 0::bigint, 'the claimer''s shorter setting does not rescue it for a rescuer at 90 s');
SELECT is(pg_temp.st('j2'), 'running:-', 'j2 still running');
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 1::bigint, 'a later rescuer at 1 second rescues it');
RESET awa.heartbeat_timeout;
SELECT is(pg_temp.st('j2'), 'retryable:heartbeat stale', 'j2: retryable, "heartbeat stale"');

-- a heartbeat is what counts once there is one
SELECT is((SELECT count(*) FROM awa_claim('rq3', 'w', 1, '1 hour')), 1::bigint, 'j3 claimed');
SELECT pg_sleep(1.2);
SELECT is(awa_heartbeat(ARRAY[pg_temp.id('j3')], '{1}'), '{}'::bigint[], 'j3 heartbeats');
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 0::bigint, 'a fresh heartbeat keeps it, though its claim is older than the setting');
SELECT pg_sleep(1.2);
SELECT is(awa_rescue(), 1::bigint, 'its heartbeat grown older than the setting: rescued');
RESET awa.heartbeat_timeout;

-- the maintenance round's rescue: the same rule
SELECT is((SELECT count(*) FROM awa_claim('rq4', 'w', 1, '1 hour')), 1::bigint, 'j4 claimed');
SELECT pg_sleep(1.2);
SET awa.heartbeat_timeout = 1;
SELECT is((SELECT rescued FROM awa_maintain()), 1::bigint, 'a maintenance round at 1 second rescues it');
RESET awa.heartbeat_timeout;

-- a lease that ran out: "deadline exceeded", whatever the setting
SELECT is((SELECT count(*) FROM awa_claim('rq5', 'w', 1, '1 second')), 1::bigint, 'j5 claimed (lease 1 second)');
SELECT pg_sleep(1.2);
SELECT is(awa_rescue() || ':' || pg_temp.st('j5'), '1:retryable:deadline exceeded',
	'a lease that ran out is rescued at the default setting: "deadline exceeded"');

-- claimed (or heartbeaten) by a session whose setting is longer than its default (an hour): a rescuer at 1 second
-- still rescues it (the ring's rescue walks the deadlines claims and beats wrote, which the claimer's own longer
-- setting capped: it found such a job up to that difference late; docs/storage.md, "Step 5: closing the ring's
-- known races")
SET awa.heartbeat_timeout = 3600;
SELECT is((SELECT count(*) FROM awa_claim('rq6', 'w', 1, '2 hours')), 1::bigint, 'j6 claimed with the setting at an hour');
RESET awa.heartbeat_timeout;
SELECT pg_sleep(1.2);
SELECT is(awa_rescue(), 0::bigint, 'a claim 1 second old is not stale for a rescuer at the default');
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 1::bigint, 'a rescuer at 1 second rescues it: the claimer''s longer setting does not delay it');
RESET awa.heartbeat_timeout;
SELECT is(pg_temp.st('j6'), 'retryable:heartbeat stale', 'j6: retryable, "heartbeat stale"');
SELECT is((SELECT count(*) FROM awa_claim('rq7', 'w', 1, '2 hours')), 1::bigint, 'j7 claimed');
SET awa.heartbeat_timeout = 3600;
SELECT is(awa_heartbeat(ARRAY[pg_temp.id('j7')], '{1}'), '{}'::bigint[], 'j7 heartbeats with the setting at an hour');
RESET awa.heartbeat_timeout;
SELECT pg_sleep(1.2);
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 1::bigint, 'its heartbeat older than a rescuer''s 1 second: rescued');
RESET awa.heartbeat_timeout;
SELECT is(pg_temp.st('j7'), 'retryable:heartbeat stale', 'j7: retryable, "heartbeat stale"');

DROP EXTENSION awa;
SELECT * FROM finish();
