-- Counter and history delta rows of a batch on the ring engine (src/counters.c, "Batches"; docs/storage.md, "Step 5:
-- one delta row per statement on the ring"): in a database created with awa.install_engine = ring, the jobs of one
-- awa_insert_many call, one INSERT into the view awa.jobs or one COPY into it write one row of awa.counter_deltas per
-- queue and one of awa.history_deltas per (queue, kind, minute), as on the table, not one per job; a claim and a
-- completion of a batch likewise.  The counters stay exact after every statement (awa.ring_recount and a count of
-- the view), after a ROLLBACK TO SAVEPOINT (the rolled-back statements' rows go, the others stay) and after an
-- error inside a batch.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(40);

SET LOCAL awa.install_engine = 'ring';
SET LOCAL awa.track_history = on;
CREATE EXTENSION awa;
SELECT has_trigger('awa', 'jobs', 'jobs_insert_batch_begin', 'the view has a BEFORE INSERT statement trigger');
SELECT has_trigger('awa', 'jobs', 'jobs_insert_batch_end', 'the view has an AFTER INSERT statement trigger');

-- the delta rows written since the previous call: {counter rows, history rows}
CREATE TEMP TABLE seen (cd bigint, hd bigint);
INSERT INTO seen VALUES (0, 0);
CREATE FUNCTION pg_temp.written() RETURNS bigint[] LANGUAGE sql AS $$
	WITH n AS (SELECT (SELECT count(*) FROM awa.counter_deltas) AS cd, (SELECT count(*) FROM awa.history_deltas) AS hd),
		u AS (UPDATE seen s SET cd = n.cd, hd = n.hd FROM n RETURNING n.cd - (SELECT cd FROM seen) AS dc,
			n.hd - (SELECT hd FROM seen) AS dh)
	SELECT ARRAY[dc, dh] FROM u$$;
-- (queue, state) whose counters differ from a recount of the ring (the rows of the view awa.jobs)
CREATE FUNCTION pg_temp.drift() RETURNS bigint LANGUAGE sql AS
	$$SELECT count(*) FROM awa.ring_recount() WHERE counted IS DISTINCT FROM recounted$$;
-- a queue's available jobs: {awa_queue_stats, a count of the view}
CREATE FUNCTION pg_temp.available(q text) RETURNS bigint[] LANGUAGE sql AS
	$$SELECT ARRAY[(SELECT available FROM awa_queue_stats() WHERE queue = q),
		(SELECT count(*) FROM awa.jobs WHERE queue = q AND state = 'available')]$$;
SELECT is(pg_temp.written(), ARRAY[0, 0]::bigint[], 'nothing written yet');

-- awa_insert_many of 1,000 jobs: one row each
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'm'))
	FROM generate_series(1, 1000)))), 1000::bigint, 'awa_insert_many: 1,000 jobs');
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'awa_insert_many: one counter row, one history row');
SELECT is(pg_temp.drift(), 0::bigint, 'awa_insert_many: the counters are exact');
SELECT is(pg_temp.available('m'), ARRAY[1000, 1000]::bigint[], 'awa_insert_many: 1,000 available');

-- INSERT INTO awa.jobs SELECT of 1,000
INSERT INTO awa.jobs (kind, args, queue) SELECT 'k', '{}', 'i' FROM generate_series(1, 1000);
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'INSERT ... SELECT: one counter row, one history row');
SELECT is(pg_temp.drift(), 0::bigint, 'INSERT ... SELECT: the counters are exact');
SELECT is(pg_temp.available('i'), ARRAY[1000, 1000]::bigint[], 'INSERT ... SELECT: 1,000 available');

-- COPY of 1,000 into the view
COPY awa.jobs (kind, queue) FROM PROGRAM 'yes k,c | head -n 1000' (FORMAT csv);
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'COPY: one counter row, one history row');
SELECT is(pg_temp.drift(), 0::bigint, 'COPY: the counters are exact');
SELECT is(pg_temp.available('c'), ARRAY[1000, 1000]::bigint[], 'COPY: 1,000 available');

-- a batch over two queues and two kinds, with jobs due later (awa.scheduled): a row per queue, per (queue, kind)
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k' || (g % 2),
	'queue', 'q' || (g % 2)) || CASE WHEN g % 3 = 0 THEN jsonb_build_object('run_at', now() + interval '1 hour')
	ELSE '{}' END) FROM generate_series(1, 12) g))), 12::bigint, 'awa_insert_many: 12 jobs in 2 queues, 4 due later');
SELECT is(pg_temp.written(), ARRAY[2, 2]::bigint[], 'a counter row per queue, a history row per (queue, kind)');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');
SELECT is((SELECT array_agg(row(queue, available, scheduled)::text ORDER BY queue) FROM awa_queue_stats()
	WHERE queue IN ('q0', 'q1')), ARRAY['(q0,4,2)', '(q1,4,2)'], 'available and scheduled per queue');
INSERT INTO awa.jobs (kind, queue, run_at) SELECT 'k', 'q' || (g % 2), now() + g * interval '1 hour'
	FROM generate_series(1, 4) g;
SELECT is(pg_temp.written(), ARRAY[2, 2]::bigint[], 'INSERT of jobs due later: a counter row per queue');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');

-- awa_claim of 10, awa_complete_many of 10
CREATE TEMP TABLE claimed AS SELECT id, run_lease FROM awa_claim('m', batch => 10);
SELECT is((SELECT count(*) FROM claimed), 10::bigint, 'claimed 10');
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'awa_claim of 10: one counter row, one history row');
SELECT is(pg_temp.drift(), 0::bigint, 'awa_claim: the counters are exact');
SELECT is(awa_complete_many((SELECT array_agg(id ORDER BY id) FROM claimed),
	(SELECT array_agg(run_lease ORDER BY id) FROM claimed)), 10::bigint, 'completed 10');
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'awa_complete_many of 10: one counter row, one history row');
SELECT is(pg_temp.drift(), 0::bigint, 'awa_complete_many: the counters are exact');

-- statements before, inside and after a savepoint rolled back: the rolled-back part's rows go, the rest stay
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "k", "queue": "sp"}, {"kind": "k", "queue": "sp"},
	{"kind": "k", "queue": "sp"}, {"kind": "k", "queue": "sp"}]')), 4::bigint, 'four jobs before the savepoint');
SAVEPOINT a;
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'sp' FROM generate_series(1, 3);
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "k", "queue": "sp"}, {"kind": "k", "queue": "sp"}]')),
	2::bigint, 'five jobs after it');
SELECT is(pg_temp.drift(), 0::bigint, 'inside the savepoint: the counters are exact');
SELECT is(pg_temp.available('sp'), ARRAY[9, 9]::bigint[], 'nine available');
ROLLBACK TO SAVEPOINT a;
SELECT is(pg_temp.drift(), 0::bigint, 'rolled back: the counters are exact');
SELECT is(pg_temp.available('sp'), ARRAY[4, 4]::bigint[], 'the four jobs before it stay');
UPDATE seen SET cd = (SELECT count(*) FROM awa.counter_deltas), hd = (SELECT count(*) FROM awa.history_deltas);
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'sp' FROM generate_series(1, 5);
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'then one INSERT: one counter row, one history row');
SELECT is(pg_temp.available('sp'), ARRAY[9, 9]::bigint[], 'nine available again');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');

-- an error inside a batch: the batch ends with the statement, what follows is written at once again
SELECT throws_ok($$INSERT INTO awa.jobs (kind, queue) SELECT CASE WHEN g < 3 THEN 'k' END, 'e'
	FROM generate_series(3, 1, -1) g$$, '22004', 'kind must not be NULL', 'INSERT: a NULL kind in the third row: 22004');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "k", "queue": "e"}, {"kind": "", "queue": "e"}]')$$, '22023',
	NULL, 'awa_insert_many: a bad second job: 22023');
SELECT is(pg_temp.written(), ARRAY[0, 0]::bigint[], 'nothing of them was written');
SELECT is((SELECT id FROM awa_insert('k', queue => 'e')) > 0, true, 'awa_insert after them');
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'its rows are written at once');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');

SELECT * FROM finish();
ROLLBACK;
