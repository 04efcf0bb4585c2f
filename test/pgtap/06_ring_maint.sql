-- The maintenance round on the ring (docs/storage.md, "Step 5: the maintenance round on the ring"): awa_maintain()
-- runs the ring's promote, rescue, callbacks (external waits past their deadline), history (finished
-- jobs past retention), rotate and reclaim when the ring is in use, each isolated (a failing
-- step is recorded in awa.maintenance_failures and the others go on); a ring job's timeout (awa.ring_insert's
-- timeout) ends an attempt running longer, as a rescue ends it.  Reclaiming needs committed rows and no older snapshot, so
-- this file runs statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET statement_timeout = '30s';
SET client_min_messages = error;
SELECT plan(54);

CREATE FUNCTION pg_temp.round() RETURNS text LANGUAGE sql AS $$
	SELECT row(promoted, rescued)::text FROM awa_maintain() $$;
-- rounds until slot s is empty (a reclaim sees "snapshot" while an older snapshot, e.g. an autovacuum's, exists;
-- the round then leaves reclaiming alone for 5 seconds)
CREATE FUNCTION pg_temp.rounds_until_empty(s smallint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..200 LOOP
		PERFORM awa_maintain();
		IF NOT EXISTS (SELECT 1 FROM awa.ready WHERE slot = s) THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END $$;
CREATE FUNCTION pg_temp.open_slot() RETURNS smallint LANGUAGE sql AS $$
	SELECT slot FROM awa.ring_slots WHERE state = 'open' $$;
CREATE FUNCTION pg_temp.state(j bigint) RETURNS text LANGUAGE sql AS $$
	SELECT state || ':' || attempt || ':' || run_lease FROM awa.ring_jobs WHERE id = j $$;
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);

-- the ring not in use: the round leaves it alone (the rescue mark is where it was installed)
SELECT is(pg_temp.round(), '(0,0)', 'a round with an empty ring');
SELECT is((SELECT passed FROM awa.ring_rescue_mark), '-infinity'::timestamptz,
	'the ring is not in use: its rescue did not run');
SELECT is((SELECT count(*) FROM awa.maintenance_failures), 0::bigint, 'and nothing failed');

SET awa.ring_engine = on;
INSERT INTO j VALUES ('t', awa.ring_insert('k', queue => 'rm'));
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY(SELECT id FROM awa.ring_claim('rm', 1)), '{1}')),
	1::bigint, 't completed');

-- rotate and reclaim: the open slot opened two hours ago is sealed (ring_rotate's max_age, an hour); with
-- awa.retention_completed 0 the sealed slot's finished job goes and the slot is truncated
UPDATE awa.ring_slots SET opened_at = now() - interval '2 hours' WHERE state = 'open';
SET awa.retention_completed = 0;
SELECT is(pg_temp.round(), '(0,0)', 'a round: nothing promoted or rescued');
SELECT is((SELECT array_agg(state ORDER BY slot) FROM awa.ring_slots), ARRAY['sealed', 'open', 'sealed', 'sealed'],
	'the round sealed slot 0 and opened slot 1');
SELECT ok(pg_temp.rounds_until_empty(0::smallint), 'a round reclaimed slot 0');
SELECT is((SELECT count(*) FROM awa.ready) + (SELECT count(*) FROM awa.claims) + (SELECT count(*) FROM awa.done),
	0::bigint, 'the ring is empty');
CREATE TEMP TABLE mark AS SELECT passed FROM awa.ring_rescue_mark;
SELECT isnt((SELECT passed FROM mark), '-infinity'::timestamptz, 'while the ring was in use its rescue ran');
SELECT is(pg_temp.round(), '(0,0)', 'a round with the ring emptied');
SELECT is((SELECT passed FROM awa.ring_rescue_mark), (SELECT passed FROM mark),
	'the emptied ring is not in use: its rescue did not run');

-- promote: a job whose only row is a scheduled one puts the ring in use; the round promotes it when due
INSERT INTO j VALUES ('s', awa.ring_insert('k', queue => 'rm', run_at => now() + interval '1 hour'));
SELECT is(pg_temp.round(), '(0,0)', 'not due yet: nothing promoted');
UPDATE awa.scheduled SET run_at = now() - interval '1 second' WHERE id = (SELECT id FROM j WHERE n = 's');
SELECT is(pg_temp.round(), '(1,0)', 'due: the round promotes it');
SELECT is(pg_temp.state((SELECT id FROM j WHERE n = 's')), 'available:0:0', 'it is available, a ready row');
SELECT is((SELECT count(*) FROM awa.scheduled), 0::bigint, 'no scheduled row left');

-- rescue: attempts past their deadline end as awa's rescue ends them: retryable and due now while attempts
-- remain, failed at max_attempts; error "deadline exceeded"
INSERT INTO j VALUES ('r1', awa.ring_insert('k', queue => 'rr', max_attempts => 3)),
	('r2', awa.ring_insert('k', queue => 'rr', max_attempts => 1));
SELECT is((SELECT count(*) FROM awa.ring_claim('rr', 2, '1 millisecond')), 2::bigint, 'r1, r2 claimed with 1 ms leases');
SELECT pg_sleep(0.01);
SELECT is(pg_temp.round(), '(0,2)', 'the round rescues both');
SELECT is((SELECT array_agg(j.n || ':' || d.state || ':' || (d.error #>> '{}') ORDER BY j.n)
	FROM awa.done d JOIN j ON j.id = d.job_id WHERE j.n IN ('r1', 'r2')),
	ARRAY['r1:retryable:deadline exceeded', 'r2:failed:deadline exceeded'],
	'r1 retryable, r2 failed (max_attempts 1), error "deadline exceeded"');
SELECT is((SELECT row(r.attempt, r.run_at <= now())::text FROM awa.ready r
	WHERE r.id = (SELECT id FROM j WHERE n = 'r1') AND r.run_lease = 1), '(1,t)', 'r1''s retry is due now');
SELECT is(pg_temp.round(), '(0,0)', 'nothing more to rescue');

-- timeouts: an attempt running longer than its job's timeout ends, whatever its lease and heartbeats (the
-- timeout caps the receipt's deadline and every beat's: the rescue ends it)
INSERT INTO j VALUES ('x1', awa.ring_insert('k', queue => 'rx', timeout => '1 millisecond')),
	('x2', awa.ring_insert('k', queue => 'rx', timeout => '1 hour')),
	('x4', awa.ring_insert('k', queue => 'rx', timeout => '1 millisecond')),
	('x3', awa.ring_insert('k', queue => 'rx3', timeout => '1 millisecond'));
SELECT is((SELECT count(*) FROM awa.ring_claim('rx', 3, '1 hour')), 3::bigint, 'x1, x2, x4 claimed, 1 hour leases');
SELECT isnt(awa.ring_heartbeat((SELECT id FROM j WHERE n = 'x1'), 1), NULL, 'x1 heartbeats');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'x4')], '{1}')), 1::bigint,
	'x4 completes');
SELECT pg_sleep(0.01);
SELECT is(pg_temp.round(), '(0,1)', 'the round ends x1, past its timeout of 1 ms');
SELECT is((SELECT d.state || ':' || (d.error #>> '{}') FROM awa.done d
	WHERE d.job_id = (SELECT id FROM j WHERE n = 'x1')), 'retryable:timeout exceeded',
	'x1 retryable, error "timeout exceeded"');
SELECT is((SELECT row(r.attempt, r.run_at <= now())::text FROM awa.ready r
	WHERE r.id = (SELECT id FROM j WHERE n = 'x1') AND r.run_lease = 1), '(1,t)', 'x1''s retry is due now');
SELECT is(pg_temp.state((SELECT id FROM j WHERE n = 'x2')), 'running:1:1', 'x2, within its timeout, runs on');
SELECT is(pg_temp.state((SELECT id FROM j WHERE n = 'x3')), 'available:0:0', 'x3, never claimed, waits');
SELECT is(pg_temp.state((SELECT id FROM j WHERE n = 'x4')), 'completed:1:1', 'x4 completed in time stays completed');
SELECT is((SELECT count(*) FROM awa.ring_claim('rx', 3, '1 hour')), 1::bigint, 'x1''s retry is claimed once');
SELECT pg_sleep(0.01);
SELECT is(pg_temp.round(), '(0,1)', 'its second attempt times out too');
SELECT is(pg_temp.state((SELECT id FROM j WHERE n = 'x2')), 'running:1:1', 'x2 still runs');

-- a failing step is recorded and does not stop the others: promote fails (a trigger refuses the delete of a
-- scheduled row); the rescue and the rotation after it still run
CREATE FUNCTION public.rm_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'refused on purpose';
END $$;
INSERT INTO j VALUES ('y', awa.ring_insert('k', queue => 'ry', run_at => now() + interval '1 hour')),
	('z', awa.ring_insert('k', queue => 'rz'));
UPDATE awa.scheduled SET run_at = now() - interval '1 second' WHERE id = (SELECT id FROM j WHERE n = 'y');
SELECT is((SELECT count(*) FROM awa.ring_claim('rz', 1, '1 millisecond')), 1::bigint, 'z claimed with a 1 ms lease');
UPDATE awa.ring_slots SET opened_at = now() - interval '2 hours' WHERE state = 'open';
CREATE TEMP TABLE open_before AS SELECT pg_temp.open_slot() AS slot;
CREATE TRIGGER rm_refuse BEFORE DELETE ON awa.scheduled FOR EACH ROW EXECUTE FUNCTION public.rm_refuse();
SELECT pg_sleep(0.01);
SELECT is(pg_temp.round(), '(0,1)', 'promote failed: nothing promoted; z rescued');
SELECT isnt(pg_temp.open_slot(), (SELECT slot FROM open_before), 'the rotation after it ran');
SELECT is((SELECT row(step, item, sqlstate, error)::text FROM awa.maintenance_failures),
	'("ring promote","",P0001,"refused on purpose")', 'the failing step is recorded by name');
SELECT ok((SELECT x::text FROM awa_health_check() x) LIKE '%ring promote%refused on purpose%',
	'awa_health_check names the failing step');
SELECT is(pg_temp.state((SELECT id FROM j WHERE n = 'y')), 'scheduled:0:0', 'y is still scheduled');
DROP TRIGGER rm_refuse ON awa.scheduled;
SELECT is(pg_temp.round(), '(1,0)', 'once fixed, the next round promotes y');
SELECT is((SELECT count(*) FROM awa.maintenance_failures), 0::bigint, 'and the failure is resolved');

-- external waits: a parked job past its callback deadline ends at the next round ("ring callbacks") as awa's
-- maintenance ends it: retryable while attempts remain, error "callback timed out"
INSERT INTO j VALUES ('x', awa.ring_insert('k', queue => 'rcbq', max_attempts => 3));
SELECT is((SELECT count(*) FROM awa.ring_claim('rcbq', 1)), 1::bigint, 'x claimed');
SELECT isnt(awa.ring_register_callback((SELECT id FROM j WHERE n = 'x'), 1, '1 millisecond'), NULL,
	'x: a callback with a 1 ms timeout');
SELECT ok(awa.ring_wait_external((SELECT id FROM j WHERE n = 'x'), 1), 'x parked');
SELECT pg_sleep(0.01);
SELECT is(pg_temp.round(), '(0,1)', 'the round ends the expired wait');
SELECT is((SELECT state || ':' || (errors[cardinality(errors)]->>'error') FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'x')),
	'retryable:callback timed out', 'x is retryable, error "callback timed out"');
SELECT is(pg_temp.round(), '(0,0)', 'nothing more to end');

-- the history: a completed job moved out of its reclaimed slot into the compact history leaves it once past
-- its retention ("ring history", counted as deleted)
SET awa.retention_completed = '1d';
INSERT INTO j VALUES ('h', awa.ring_insert('k', queue => 'rhist'));
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY(SELECT id FROM awa.ring_claim('rhist', 1)), '{1}')),
	1::bigint, 'h completed');
CREATE TEMP TABLE h_slot AS SELECT pg_temp.open_slot() AS slot;
UPDATE awa.ring_slots SET opened_at = now() - interval '2 hours' WHERE state = 'open';
SELECT ok(pg_temp.rounds_until_empty((SELECT slot FROM h_slot)), 'a round reclaimed h''s slot');
SELECT is((SELECT state FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'h')), 'completed',
	'h is kept (in the history)');
SELECT cmp_ok((SELECT count(*) FROM awa.ring_history), '>', 0::bigint, 'the history holds it');
SET awa.retention_completed = 0;
SELECT cmp_ok((SELECT deleted FROM awa_maintain()), '>=', 1::bigint, 'past its retention: the round deletes it');
SELECT is((SELECT count(*) FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'h')), 0::bigint,
	'h is gone');
SELECT is((SELECT count(*) FROM awa.ring_history WHERE NOT failed), 0::bigint, 'no batch of completed jobs is left');
RESET awa.retention_completed;

SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs is untouched');

SELECT * FROM finish();
RESET statement_timeout;
DROP TABLE j, mark, open_before, h_slot;
DROP EXTENSION awa;
DROP FUNCTION public.rm_refuse();
