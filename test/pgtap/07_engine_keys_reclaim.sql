-- A reclaim takes the slot's finished jobs of a concurrency key out of awa.ring_key_live (src/ring_slots.c,
-- ring_keys.c), whether they go with the slot or move into the history, so the table holds a key's live jobs
-- only (a key without an order rule is never walked: nothing else would delete them); a job still live keeps its
-- row, and so does a finished job made live again.  In a database on the ring engine.  Reclaiming needs committed
-- rows and no older snapshot, so this file runs statement by statement (autocommit) and drops what it created.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET awa.install_engine = 'ring';
CREATE EXTENSION awa;
RESET awa.install_engine;
SET statement_timeout = '30s';
SET awa.retention_completed = 86400;
SELECT plan(13);

\ir lib/ring_reclaim.psql

-- in slot 0: three jobs of key k1 (one completes, one fails for good and is retried, one stays waiting), one of k2
-- that completes, and e, which fails for good and is retried once slot 0 is sealed (its earlier attempt in slot 0,
-- its newest in slot 1: that reclaim used to stop with "finished jobs found to move into the history")
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "a", "queue": "kq", "concurrency_key": "k1"},
	{"kind": "b", "queue": "kq", "concurrency_key": "k1", "max_attempts": 1},
	{"kind": "c", "queue": "kq2", "concurrency_key": "k1"},
	{"kind": "d", "queue": "kq", "concurrency_key": "k2"}]')), 4::bigint, 'four keyed jobs');
SELECT is((SELECT state FROM awa_insert('e', queue => 'eq', max_attempts => 1)), 'available'::awa.job_state,
	'and e, without a key');
SELECT is((SELECT awa_fail(id, run_lease, 'e failed') FROM awa_claim('eq')), 'failed'::awa.job_state, 'e fails for good');
SELECT awa_set_key_limit('k1', 5);
SELECT is((SELECT count(*) FROM awa.ring_key_live), 4::bigint, 'each has its row');
SELECT ok((SELECT bool_and(CASE kind WHEN 'b' THEN awa_fail(id, run_lease, 'x') = 'failed'
	ELSE awa_complete(id, run_lease) END) FROM awa_claim('kq', batch => 3)), 'a and d complete, b fails for good');
SELECT is((SELECT state FROM awa_retry((SELECT id FROM awa.jobs WHERE kind = 'b'))), 'available'::awa.job_state,
	'b is retried: live again');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 0 sealed');
SELECT is((SELECT state FROM awa_retry((SELECT id FROM awa.jobs WHERE kind = 'e'))), 'available'::awa.job_state,
	'e is retried once slot 0 is sealed: its new attempt in slot 1');
SELECT is(pg_temp.reclaim(), 'reclaimed', 'slot 0 reclaimed');
SELECT is((SELECT array_agg(j.kind ORDER BY j.kind) FROM awa.ring_key_live l JOIN awa.jobs j ON j.id = l.job_id),
	ARRAY['b', 'c'], 'the finished jobs a and d left awa.ring_key_live; the retried b and the waiting c kept theirs');
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind IN ('a', 'd') AND state = 'completed'), 2::bigint,
	'a and d are still there (in the history)');

SELECT is((SELECT array_agg(row(kind, state, attempt, cardinality(errors))::text ORDER BY kind) FROM awa.jobs
	WHERE kind IN ('b', 'e')), ARRAY['(b,available,0,1)', '(e,available,0,1)'],
	'b and e, retried before their slot was reclaimed: available, their errors kept');
SELECT is((SELECT count(*) FROM awa.ring_recount() WHERE counted IS DISTINCT FROM recounted), 0::bigint,
	'the counters equal a recount');

SELECT * FROM finish();
RESET statement_timeout;
DROP EXTENSION awa;
