-- The claim floors' reset on the ring engine (src/floor.c, awa_floor_walked; src/ring_claim.c, ring_walk;
-- docs/storage.md, "Step 5: a slow claim behind a fast one, and the floors' reset"): a job made waiting behind
-- awa's back (here: its receipt deleted, so no pin lowered the floor) below the floor is not claimed until the
-- next reset; then the claims of the queue walk what lies below the floor a chunk of 1,024 rows per claim, the
-- chunk that finds the job lowers the floor to it, and the next claim takes it, in order.  In a database on the
-- ring engine; the floors live in shared memory and a pin only at commit, so this file runs statement by
-- statement (autocommit) and drops what it created.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET awa.install_engine = 'ring';
CREATE EXTENSION awa;
RESET awa.install_engine;
SET statement_timeout = '30s';
SELECT plan(8);

-- 6,000 jobs of queue fw due two hours ago in id order; the first 4,000 claimed (running)
CREATE TEMP TABLE ids AS
	SELECT (awa_insert_many(jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'fw',
		'run_at', now() - interval '2 hours' + i * interval '1 ms') ORDER BY i))).id
	FROM generate_series(1, 6000) i;
CREATE FUNCTION pg_temp.nth(integer) RETURNS bigint LANGUAGE sql AS
	$$SELECT id FROM ids ORDER BY id OFFSET $1 - 1 LIMIT 1$$;
CREATE FUNCTION pg_temp.claim1() RETURNS bigint LANGUAGE sql AS $$SELECT id FROM awa_claim('fw')$$;
CREATE TEMP TABLE claimed (id bigint);
INSERT INTO claimed SELECT id FROM awa_claim('fw', batch => 1000);
INSERT INTO claimed SELECT id FROM awa_claim('fw', batch => 1000);
INSERT INTO claimed SELECT id FROM awa_claim('fw', batch => 1000);
INSERT INTO claimed SELECT id FROM awa_claim('fw', batch => 1000);
SELECT is((SELECT count(DISTINCT id) FROM claimed), 4000::bigint, '4,000 jobs claimed');
SELECT is(pg_temp.claim1(), pg_temp.nth(4001), 'the next claim takes job 4,001: the floor is past the first 4,000');

-- job 3,000 waiting again behind awa's back: no pin
DELETE FROM awa.claims WHERE job_id = pg_temp.nth(3000);
SELECT is((SELECT state FROM awa.jobs WHERE id = pg_temp.nth(3000)), 'available'::awa.job_state,
	'job 3,000 is available again');
SELECT is(pg_temp.claim1(), pg_temp.nth(4002), 'before the reset the claims do not see it');

-- the reset: due after 1 s; the claim that finds it due starts the walk below the floor, a chunk of 1,024 rows
-- per claim (src/ring_claim.c, RING_WALK_CHUNK): the third chunk holds row 3,000
SET awa.claim_floor_reset = 1;
SELECT pg_sleep(1.1);
CREATE TEMP TABLE after (n serial, id bigint);
INSERT INTO after (id) SELECT pg_temp.claim1();
SET awa.claim_floor_reset = 3600;
INSERT INTO after (id) SELECT pg_temp.claim1();
INSERT INTO after (id) SELECT pg_temp.claim1();
INSERT INTO after (id) SELECT pg_temp.claim1();
INSERT INTO after (id) SELECT pg_temp.claim1();
INSERT INTO after (id) SELECT pg_temp.claim1();
SELECT is((SELECT n FROM after WHERE id = pg_temp.nth(3000)), 4,
	'job 3,000 is claimed by the claim after the one whose chunk found it (the third)');
SELECT is((SELECT array_agg(id ORDER BY n) FROM after WHERE n < 4), ARRAY[pg_temp.nth(4003), pg_temp.nth(4004),
	pg_temp.nth(4005)], 'the claims that walked took from the floor, in order');
SELECT is((SELECT array_agg(id ORDER BY n) FROM after WHERE n > 4), ARRAY[pg_temp.nth(4006), pg_temp.nth(4007)],
	'then the claims go on in order');
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'fw' AND state = 'running'), 4007::bigint,
	'4,007 jobs running (4,000 claimed, one put back, eight claims since), each claimed once');

SELECT * FROM finish();
RESET awa.claim_floor_reset;
DROP EXTENSION awa;
