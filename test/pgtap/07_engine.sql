-- The engine a new database keeps its jobs in (src/sql/engine.sql, src/engine.c; docs/storage.md, "Step 5: how the
-- switch lands", "Step 5: the ring becomes the default").  By default (the superuser setting awa.install_engine
-- is 'ring') awa.jobs is a view of the ring in the table's shape, readable by the same roles, and the awa_*
-- functions work there; created while the setting is 'table' (the legacy engine), awa.jobs is the table.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(44);

-- the setting: ring (default) or table, superuser only (its default read from pg_settings: the table pass of
-- scripts/test.sh runs this file with PGOPTIONS setting it)
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'awa.install_engine'), 'ring',
	'awa.install_engine is ring by default');
SELECT throws_ok($$SET LOCAL awa.install_engine = 'disk'$$, '22023', NULL, 'only table or ring');
SELECT is((SELECT context FROM pg_settings WHERE name = 'awa.install_engine'), 'superuser',
	'only a superuser sets it');

-- the table engine: awa.jobs is the table, the ring's functions need their switch
SAVEPOINT table_engine;
SET LOCAL awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT is((SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass), 'r'::"char", 'with table, awa.jobs is a table');
SELECT is((SELECT id FROM awa_insert('k')) > 0, true, 'awa_insert writes the table');
SELECT is((SELECT count(*) FROM awa.jobs), 1::bigint, 'the job is in awa.jobs');
SELECT throws_ok($$SELECT awa.ring_insert('k')$$, '55000', NULL, 'the ring functions need their switch');
ROLLBACK TO SAVEPOINT table_engine;

-- the ring: awa.jobs is the ring's view, the table kept empty under another name
SET LOCAL awa.install_engine = 'ring';
CREATE EXTENSION awa;
SELECT is((SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass), 'v'::"char", 'awa.jobs is a view');
SELECT is((SELECT array_agg(attname::text || ':' || format_type(atttypid, atttypmod) ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'awa.jobs'::regclass AND attnum > 0),
	(SELECT array_agg(attname::text || ':' || format_type(atttypid, atttypmod) ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'awa.jobs_table'::regclass AND attnum > 0 AND NOT attisdropped),
	'with the columns of the table, in order, of the same types');
SELECT is((SELECT array_agg(a.grantee::regrole::text ORDER BY 1) FROM pg_class c, aclexplode(c.relacl) a
		WHERE c.oid = 'awa.jobs'::regclass AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner),
	(SELECT array_agg(a.grantee::regrole::text ORDER BY 1) FROM pg_class c, aclexplode(c.relacl) a
		WHERE c.oid = 'awa.jobs_table'::regclass AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner),
	'readable by the roles that may read the table');

-- awa_insert on the ring: the job's row, in the ring, awa.jobs shows it; the table stays empty
CREATE TEMP TABLE j AS
SELECT * FROM awa_insert('k', '{"a": 1}', 'eq', tags => '{x}', metadata => '{"m": 1}', timeout => '5 minutes',
	group_id => 'g', concurrency_key => 'c');
SELECT is((SELECT row(kind, queue, args, state, attempt, tags, metadata, timeout, group_id, concurrency_key)::text
	FROM j), '(k,eq,"{""a"": 1}",available,0,{x},"{""m"": 1}",00:05:00,g,c)', 'awa_insert returns the job''s row');
SELECT is((SELECT count(*) FROM awa.ready WHERE id = (SELECT id FROM j)), 1::bigint, 'a ready row of the ring');
SELECT is((SELECT state FROM awa_insert('k', run_at => now() + interval '1 hour')), 'scheduled'::awa.job_state,
	'a job due later is scheduled');
SELECT is((SELECT count(*) FROM awa.jobs), 2::bigint, 'awa.jobs shows both');
SELECT is((SELECT count(*) FROM awa.jobs_table), 0::bigint, 'the table stays empty');
SELECT throws_ok($$SELECT awa_insert('k', priority => 9)$$, '22023', NULL, 'bad input: the same errors');
SELECT is((SELECT id FROM awa.ring_claim('eq')), (SELECT id FROM j), 'the ring''s functions run without their switch');

-- the worker's calls on the ring: claim, heartbeat, progress, complete, fail, snooze; cancel and retry
CREATE TEMP TABLE w AS SELECT awa_insert('wk', jsonb_build_object('n', n), 'wq') AS job FROM generate_series(1, 3) n;
CREATE TEMP TABLE c AS SELECT * FROM awa_claim('wq', 'w1', 2);
SELECT is((SELECT array_agg(row(state, attempt, run_lease, claimed_by)::text ORDER BY id) FROM c),
	ARRAY['(running,1,1,w1)', '(running,1,1,w1)'], 'awa_claim: two jobs, running under lease 1, by w1');
SELECT is(awa_heartbeat(ARRAY(SELECT (job).id FROM w ORDER BY 1), '{1,1,1}'),
	ARRAY[(SELECT max((job).id) FROM w)], 'awa_heartbeat: the job not running is returned');
SELECT is(awa_progress((SELECT min(id) FROM c), 1, '{"p": 50}'), true, 'awa_progress under the lease');
SELECT is(awa_progress((SELECT min(id) FROM c), 7, '{"p": 60}'), false, 'awa_progress with a stale lease');
SELECT is(awa_complete((SELECT min(id) FROM c), 1), true, 'awa_complete');
SELECT is(awa_complete((SELECT min(id) FROM c), 1), false, 'awa_complete twice: false');
SELECT is((SELECT row(state, progress)::text FROM awa.jobs WHERE id = (SELECT min(id) FROM c)),
	'(completed,"{""p"": 50}")', 'completed, its progress kept');
SELECT is(awa_fail((SELECT max(id) FROM c), 1, 'boom', terminal => true), 'failed'::awa.job_state,
	'awa_fail, terminal');
SELECT is((SELECT errors[1]->>'error' FROM awa.jobs WHERE id = (SELECT max(id) FROM c)), 'boom',
	'the error is kept');
SELECT is(awa_fail((SELECT max(id) FROM c), 1, 'again'), NULL, 'awa_fail of an ended attempt: NULL');
SELECT is((SELECT state FROM awa_cancel((SELECT max((job).id) FROM w))), 'cancelled'::awa.job_state, 'awa_cancel');
SELECT is((SELECT state FROM awa_retry((SELECT max((job).id) FROM w))), 'available'::awa.job_state, 'awa_retry');
SELECT is(awa_snooze((SELECT id FROM awa_claim('wq')), 2, '1 hour'), true, 'awa_snooze of the retried job');
SELECT is((SELECT count(*) FROM awa_claim('wq', wait => '200 milliseconds')), 0::bigint,
	'a blocking awa_claim of a queue with nothing due: no rows once its wait ends');
SELECT id AS res_id FROM awa_insert('res', queue => 'rq') \gset
SELECT is((SELECT awa_complete(c.id, c.run_lease, '{"r": 1}') FROM awa_claim('rq') c), true, 'awa_complete with a result');
SELECT is((SELECT result FROM awa.jobs WHERE id = :res_id), '{"r": 1}'::jsonb, 'the result is stored in the ring');

-- INSERT and COPY into the view enqueue into the ring, with the COPY path's checks and grants
CREATE TEMP TABLE ins (kind text, state awa.job_state);
WITH i AS (INSERT INTO awa.jobs (kind, queue, run_at) VALUES ('ins', 'iq', now() + interval '1 day')
	RETURNING kind, state)
INSERT INTO ins SELECT * FROM i;
SELECT is((SELECT row(kind, state)::text FROM ins), '(ins,scheduled)',
	'INSERT into awa.jobs: RETURNING shows the job''s state');
SELECT is((SELECT count(*) FROM awa.ready r JOIN awa.jobs j USING (id) WHERE j.queue = 'iq')
	+ (SELECT count(*) FROM awa.scheduled s JOIN awa.jobs j USING (id) WHERE j.queue = 'iq'), 1::bigint,
	'the inserted job is in the ring');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, priority) VALUES ('k', 0)$$, '22023', NULL, 'INSERT: the checks of awa_insert');
CREATE ROLE awa_engine_producer NOLOGIN IN ROLE awa_producer;
SET LOCAL ROLE awa_engine_producer;
SELECT lives_ok($$INSERT INTO awa.jobs (kind, queue) VALUES ('p', 'iq')$$, 'a producer inserts (the COPY path)');
RESET ROLE;
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'iq'), 2::bigint, 'both in awa.jobs');

-- external waits on the ring: register, park, heartbeat, complete; retry and fail through the callback
CREATE TEMP TABLE x AS SELECT awa_insert('xk', '{}', 'xq') AS job FROM generate_series(1, 2);
CREATE TEMP TABLE xc AS SELECT id, run_lease, awa_register_callback(id, run_lease, '1 hour') AS cb
	FROM awa_claim('xq', batch => 2);
SELECT is((SELECT count(*) FROM xc WHERE cb IS NOT NULL), 2::bigint, 'awa_register_callback: a callback id each');
SELECT is((SELECT bool_and(awa_wait_external(id, run_lease)) FROM xc), true, 'awa_wait_external parks both');
SELECT is(awa_heartbeat_callback((SELECT cb FROM xc ORDER BY id LIMIT 1), '2 hours'), true,
	'awa_heartbeat_callback');
SELECT is(awa_complete_external((SELECT cb FROM xc ORDER BY id LIMIT 1), '{"r": 1}'), true,
	'awa_complete_external');
SELECT is((SELECT row(state, result)::text FROM awa.jobs WHERE id = (SELECT min(id) FROM xc)),
	'(completed,"{""r"": 1}")', 'completed with the payload as its result');
SELECT is(awa_fail_external((SELECT cb FROM xc ORDER BY id DESC LIMIT 1), 'no'), true, 'awa_fail_external');

SELECT * FROM finish();
ROLLBACK;
