-- A running job claimed (or heartbeaten) by a session whose awa.heartbeat_timeout is longer than its default is
-- rescued by the rescuer's setting, on either engine (docs/storage.md, "Step 5: closing the ring's known races"):
-- awa.jobs' rescue goes by the heartbeat and the rescuer's setting; the ring's rescue walks the deadlines the
-- claims and beats wrote, which were capped by the claimer's own longer setting, so it found such a job up to
-- that difference late (here: an hour).  The rescue needs time to pass (now() is a transaction's start), so this
-- file runs statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SET statement_timeout = '60s';
SET client_min_messages = error;
SELECT plan(8);

CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.id(k text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM j WHERE n = k $$;
-- a job's state and the cause of its latest error (a retry due at once: 'available' on the ring, 'retryable' on
-- awa.jobs until maintenance promotes it; docs/reference.md)
CREATE FUNCTION pg_temp.st(k text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE state WHEN 'available' THEN 'retryable' ELSE state::text END || ':' || coalesce(errors[array_length(errors, 1)] ->> 'error', '-')
	FROM awa.jobs WHERE id = pg_temp.id(k) $$;
INSERT INTO j SELECT 'j' || n, (awa_insert('k', queue => 'rc' || n)).id FROM generate_series(1, 2) n;

-- claimed by a session whose setting is an hour (lease 2 hours), rescued by one whose setting is 1 second
SET awa.heartbeat_timeout = 3600;
SELECT is((SELECT count(*) FROM awa_claim('rc1', 'w', 1, '2 hours')), 1::bigint, 'j1 claimed with the setting at an hour');
RESET awa.heartbeat_timeout;
SELECT pg_sleep(1.2);
SELECT is(awa_rescue(), 0::bigint, 'a claim 1 second old is not stale for a rescuer at the default');
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 1::bigint, 'a rescuer at 1 second rescues it: the claimer''s longer setting does not delay it');
RESET awa.heartbeat_timeout;
SELECT is(pg_temp.st('j1'), 'retryable:heartbeat stale', 'j1: retryable, "heartbeat stale"');

-- claimed at the default, heartbeaten by a session whose setting is an hour
SELECT is((SELECT count(*) FROM awa_claim('rc2', 'w', 1, '2 hours')), 1::bigint, 'j2 claimed');
SET awa.heartbeat_timeout = 3600;
SELECT is(awa_heartbeat(ARRAY[pg_temp.id('j2')], '{1}'), '{}'::bigint[], 'j2 heartbeats with the setting at an hour');
RESET awa.heartbeat_timeout;
SELECT pg_sleep(1.2);
SET awa.heartbeat_timeout = 1;
SELECT is(awa_rescue(), 1::bigint, 'its heartbeat older than a rescuer''s 1 second: rescued');
RESET awa.heartbeat_timeout;
SELECT is(pg_temp.st('j2'), 'retryable:heartbeat stale', 'j2: retryable, "heartbeat stale"');

DROP EXTENSION awa;
SELECT * FROM finish();
