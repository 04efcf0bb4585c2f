-- The maintenance round keeps the ring's side tables to what is live (docs/storage.md, "Step 5: leases, messages
-- and side-table upkeep"): rows of attempts that ended (awa.ring_key_running), of keyed jobs no longer live
-- (awa.ring_key_live), and of jobs that are gone (awa.ring_dependencies, awa.ring_dependents, awa.ring_group_jobs)
-- are removed by a round; a key still running keeps its row, a waiting child keeps its parent edge, a live job
-- keeps its group row, and awa_parent_results still answers for it.  In a database on the ring engine.  Reclaiming
-- needs committed rows and no older snapshot, so this file runs statement by statement (autocommit) and drops what
-- it created.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET awa.install_engine = 'ring';
CREATE EXTENSION awa;
RESET awa.install_engine;
SET statement_timeout = '30s';
SET client_min_messages = warning;
SELECT plan(25);

-- a reclaim round, again while an autovacuum or another session's snapshot is older than the slot's last write
CREATE FUNCTION pg_temp.reclaim() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	o text;
BEGIN
	FOR i IN 1..100 LOOP
		SELECT r.outcome INTO o FROM awa.ring_reclaim(10) r WHERE r.slot = 0;
		EXIT WHEN o IS DISTINCT FROM 'snapshot';
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN o;
END $$;
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.id(k text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM j WHERE n = k $$;
CREATE FUNCTION pg_temp.names(ids bigint[]) RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(j.n ORDER BY j.n), '{}') FROM j WHERE j.id = ANY (ids) $$;
-- the side tables, by the names of the jobs in them
CREATE FUNCTION pg_temp.sides() RETURNS text LANGUAGE sql AS $$
	SELECT concat_ws(' / ',
		'running ' || pg_temp.names(ARRAY(SELECT job_id FROM awa.ring_key_running))::text,
		'live ' || pg_temp.names(ARRAY(SELECT job_id FROM awa.ring_key_live))::text,
		'edges ' || coalesce((SELECT array_agg(c.n || '>' || p.n ORDER BY c.n, p.n) FROM awa.ring_dependencies d
			JOIN j c ON c.id = d.job_id JOIN j p ON p.id = d.parent_id), '{}')::text,
		'dependents ' || pg_temp.names(ARRAY(SELECT job_id FROM awa.ring_dependents))::text,
		'group ' || pg_temp.names(ARRAY(SELECT job_id FROM awa.ring_group_jobs))::text) $$;

-- keyed jobs: k1 and k2 run, k3 waits, k4 is due later; parents p and r (complete) and q (waits), children c (after
-- p: released, completes) and w (after q and r: waits for q); all of p, q, c, w in group g
INSERT INTO j SELECT 'k' || n, (awa_insert('k', queue => 'uk', concurrency_key => 'key1',
	run_at => CASE n WHEN 4 THEN now() + interval '1 hour' END)).id FROM generate_series(1, 4) n;
SELECT awa_set_key_limit('key1', 5);
INSERT INTO j SELECT 'p', (awa_insert('p', queue => 'up', group_id => 'g')).id;
INSERT INTO j SELECT 'q', (awa_insert('q', queue => 'uq', group_id => 'g')).id;
INSERT INTO j SELECT 'c', (awa_insert('c', queue => 'uc', after => ARRAY[pg_temp.id('p')], group_id => 'g')).id;
INSERT INTO j SELECT 'r', (awa_insert('r', queue => 'ur')).id;
INSERT INTO j SELECT 'w', (awa_insert('w', queue => 'uw', after => ARRAY[pg_temp.id('q'), pg_temp.id('r')],
	group_id => 'g')).id;
SELECT is((SELECT count(*) FROM awa_claim('uk', 'w', 2)), 2::bigint, 'k1 and k2 claimed');
SELECT is(pg_temp.sides(), 'running {k1,k2} / live {k1,k2,k3,k4} / edges {c>p,w>q,w>r} / dependents {c,w} / group {c,p,q,w}',
	'the side tables hold every job');
SELECT ok(awa_complete(pg_temp.id('k1'), 1), 'k1 completes');
SELECT ok((SELECT awa_complete(id, run_lease) FROM awa_claim('up', 'w', 1)), 'p completes');
SELECT ok((SELECT awa_complete(id, run_lease) FROM awa_claim('uc', 'w', 1)), 'c, released, completes');
SELECT ok((SELECT awa_complete(id, run_lease, '{"v": 1}') FROM awa_claim('ur', 'w', 1)), 'r completes with a result');

-- a round while every job is in the ring: k1's ended attempt and its finished job go; nothing else
SELECT lives_ok($$SELECT awa_maintain()$$, 'a maintenance round');
SELECT is(pg_temp.sides(), 'running {k2} / live {k2,k3,k4} / edges {c>p,w>q,w>r} / dependents {c,w} / group {c,p,q,w}',
	'k1 left awa.ring_key_running and awa.ring_key_live; running k2 and waiting k3, k4 kept theirs');

-- p and c go with their slot (finished before the retention), q and w move on with the open slot, and r, finished
-- before the retention too, goes into the history: w still needs it
SET awa.retention_completed = 1;
SELECT pg_sleep(1.1);
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 0 sealed');
SELECT is(pg_temp.reclaim(), 'reclaimed', 'slot 0 reclaimed');
SELECT is((SELECT array_agg(n ORDER BY n) FROM j WHERE NOT EXISTS (SELECT 1 FROM awa.jobs a WHERE a.id = j.id)),
	ARRAY['c', 'k1', 'p'], 'p, c and k1 are gone; r is kept for w');
SELECT is(pg_temp.sides(), 'running {k2} / live {k2,k3,k4} / edges {c>p,w>q,w>r} / dependents {c,w} / group {c,p,q,w}',
	'their side rows are still there (the reclaim leaves them)');
SELECT lives_ok($$SELECT awa_maintain()$$, 'a maintenance round');
SELECT is(pg_temp.sides(), 'running {k2} / live {k2,k3,k4} / edges {w>q,w>r} / dependents {w} / group {q,w}',
	'the rows of the jobs gone went; waiting w kept its edges and its row, q and w their group rows');
SELECT is((SELECT array_agg(row(kind, state, satisfied, result)::text ORDER BY kind) FROM awa_parent_results(pg_temp.id('w'))),
	ARRAY['(q,available,f,)', '(r,completed,t,"{""v"": 1}")'],
	'awa_parent_results still answers for w, with r''s result (past the retention, from the history)');
SELECT is((SELECT row(total, unfinished)::text FROM awa_group_stats('g')), '(2,2)', 'the group counts q and w');

-- k2 ends: its row goes at the next round, whatever the key's claims do
SELECT ok(awa_complete(pg_temp.id('k2'), 1), 'k2 completes');
SELECT awa_maintain();
SELECT is(pg_temp.sides(), 'running {} / live {k3,k4} / edges {w>q,w>r} / dependents {w} / group {q,w}',
	'k2 left awa.ring_key_running and awa.ring_key_live; the history''s expiry kept r');
SELECT is((SELECT state FROM awa.jobs WHERE id = pg_temp.id('r')), 'completed'::awa.job_state, 'r is still there');

-- w runs once q completes; then r is no longer needed and expires with its history batch
SELECT ok((SELECT awa_complete(id, run_lease) FROM awa_claim('uq', 'w', 1)), 'q completes');
SELECT ok((SELECT awa_complete(id, run_lease) FROM awa_claim('uw', 'w', 1)), 'w, released, completes');
SELECT awa_maintain();
SELECT is((SELECT count(*) FROM awa.jobs WHERE id = pg_temp.id('r')), 0::bigint, 'r expired with its batch');

-- awa.ring_retry(id, missing_ok), for awa_retry_failed's candidates (isolation spec ring_misc_bulk_failed)
SELECT throws_ok($$SELECT awa.ring_retry(1, NULL)$$, '22023', 'missing_ok must not be null', 'ring_retry: null missing_ok');
SELECT is(awa.ring_retry(-5, true), false, 'ring_retry with missing_ok: false for a job that is not there');
SELECT throws_ok($$SELECT awa.ring_retry(-5, false)$$, 'P0002', 'job -5 does not exist', 'without: P0002');

SELECT * FROM finish();
RESET statement_timeout;
DROP EXTENSION awa;
