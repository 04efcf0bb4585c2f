-- Enqueue at bulk speed on the ring engine (src/ring_enq.c; docs/storage.md, "Step 5: enqueue at bulk speed on the
-- ring"): the plain jobs of one awa_insert_many call, INSERT or COPY into the view awa.jobs are kept and written into
-- the open slot together at the batch's end, a lone awa_insert's directly.  Checks that every job of a batch is
-- there with its fields and ids in input order, the counters exact with one delta row per batch, unique keys held
-- inside a batch, jobs with parents or a key between plain ones, a bad row failing the whole statement with nothing
-- changed, ROLLBACK TO SAVEPOINT and a subtransaction inside a batch, and the claim taking a batch in id order.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(47);

SET LOCAL awa.install_engine = 'ring';
SET LOCAL awa.track_history = on;
CREATE EXTENSION awa;

CREATE TEMP TABLE seen (cd bigint, hd bigint);
INSERT INTO seen VALUES ((SELECT count(*) FROM awa.counter_deltas), (SELECT count(*) FROM awa.history_deltas));
-- the delta rows written since the previous call: {counter rows, history rows}
CREATE FUNCTION pg_temp.written() RETURNS bigint[] LANGUAGE sql AS $$
	WITH n AS (SELECT (SELECT count(*) FROM awa.counter_deltas) AS cd, (SELECT count(*) FROM awa.history_deltas) AS hd),
		u AS (UPDATE seen s SET cd = n.cd, hd = n.hd FROM n RETURNING n.cd - (SELECT cd FROM seen) AS dc,
			n.hd - (SELECT hd FROM seen) AS dh)
	SELECT ARRAY[dc, dh] FROM u$$;
CREATE FUNCTION pg_temp.drift() RETURNS bigint LANGUAGE sql AS
	$$SELECT count(*) FROM awa.ring_recount() WHERE counted IS DISTINCT FROM recounted$$;
-- a queue's available jobs: {awa_queue_stats, a count of the view, ready rows}
CREATE FUNCTION pg_temp.available(q text) RETURNS bigint[] LANGUAGE sql AS
	$$SELECT ARRAY[(SELECT coalesce(max(available), 0) FROM awa_queue_stats() WHERE queue = q),
		(SELECT count(*) FROM awa.jobs WHERE queue = q AND state = 'available'),
		(SELECT count(*) FROM awa.ready WHERE queue = q)]$$;

-- awa_insert_many of 500: every job there, ids ascending in input order, fields as given
CREATE TEMP TABLE many AS SELECT * FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k' || (g % 3),
	'queue', 'm', 'args', jsonb_build_object('n', g), 'priority', 1 + g % 4, 'max_attempts', 3, 'tags',
	jsonb_build_array('t' || g), 'metadata', jsonb_build_object('m', g), 'timeout', '5 minutes') ORDER BY g)
	FROM generate_series(1, 500) g)) WITH ORDINALITY AS r;
SELECT is((SELECT count(DISTINCT id) FROM many), 500::bigint, 'awa_insert_many: 500 jobs, 500 ids');
SELECT is((SELECT bool_and(id = first_id + ordinality - 1) FROM many, (SELECT min(id) AS first_id FROM many) f),
	true, 'the ids follow the input order');
SELECT is((SELECT count(*) FROM many m JOIN awa.jobs j USING (id) WHERE j.kind = 'k' || ((j.args->>'n')::int % 3)
	AND j.priority = 1 + (j.args->>'n')::int % 4 AND j.max_attempts = 3 AND j.tags = ARRAY['t' || (j.args->>'n')]
	AND j.metadata = jsonb_build_object('m', (j.args->>'n')::int) AND j.timeout = '5 minutes' AND j.state = 'available'
	AND j.attempt = 0 AND j.run_lease = 0 AND j.created_at = now() AND j.run_at = now() AND j.queue = 'm'
	AND j.args = m.args), 500::bigint, 'each job''s row in the view is as given and as returned');
SELECT is((SELECT count(*) FROM awa.ready r JOIN awa.ring_slots s ON s.slot = r.slot AND s.state = 'open'
	WHERE r.queue = 'm'), 500::bigint, 'their ready rows are in the open slot');
SELECT is(pg_temp.written(), ARRAY[1, 3]::bigint[], 'one counter row, one history row per (queue, kind)');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');
SELECT is(pg_temp.available('m'), ARRAY[500, 500, 500]::bigint[], '500 available');

-- INSERT ... SELECT into the view: RETURNING gives each job's id, in order
CREATE TEMP TABLE ins AS SELECT 0::bigint AS id LIMIT 0;
WITH i AS (INSERT INTO awa.jobs (kind, queue, args) SELECT 'k', 'i', jsonb_build_object('n', g)
	FROM generate_series(1, 300) g RETURNING id, args) INSERT INTO ins SELECT id FROM i;
SELECT is((SELECT count(DISTINCT id) FROM ins), 300::bigint, 'INSERT ... SELECT: 300 ids returned');
SELECT is((SELECT count(*) FROM ins JOIN awa.jobs USING (id) WHERE queue = 'i'), 300::bigint,
	'each returned id is a job of the view');
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'one counter row, one history row');
SELECT is(pg_temp.available('i'), ARRAY[300, 300, 300]::bigint[], '300 available');

-- COPY into the view
COPY awa.jobs (kind, queue) FROM PROGRAM 'yes k,c | head -n 700' (FORMAT csv);
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'COPY: one counter row, one history row');
SELECT is(pg_temp.available('c'), ARRAY[700, 700, 700]::bigint[], 'COPY: 700 available');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');

-- 100 lone awa_insert calls in one statement: written at once, counted once for the statement
SELECT is((SELECT count(DISTINCT (awa_insert('k', jsonb_build_object('n', g), queue => 'one')).id)
	FROM generate_series(1, 100) g), 100::bigint, '100 awa_insert calls in one statement');
SELECT is(pg_temp.written(), ARRAY[1, 1]::bigint[], 'one counter row, one history row');
SELECT is(pg_temp.available('one'), ARRAY[100, 100, 100]::bigint[], '100 available');
-- a lone job is there as soon as awa_insert returns: the caller's next statement reads it
CREATE FUNCTION pg_temp.insert_then_read() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	j bigint;
BEGIN
	j := (awa_insert('k', '{}', queue => 'one')).id;
	RETURN (SELECT count(*) FROM awa.jobs WHERE id = j AND state = 'available');
END$$;
SELECT is(pg_temp.insert_then_read(), 1::bigint, 'a lone job is in the view when awa_insert returns');

-- unique jobs inside a batch, between plain ones: the second holder of a key gets the first's id
CREATE TEMP TABLE u AS SELECT * FROM awa_insert_many('[{"kind": "k", "queue": "u"},
	{"kind": "uk", "queue": "u", "args": {"a": 1}, "unique_by_args": true},
	{"kind": "k", "queue": "u"},
	{"kind": "uk", "queue": "u", "args": {"a": 1}, "unique_by_args": true},
	{"kind": "k", "queue": "u"}]') WITH ORDINALITY AS r;
SELECT is((SELECT array_agg(id = (SELECT id FROM u WHERE ordinality = 2) ORDER BY ordinality) FROM u),
	ARRAY[false, true, false, true, false], 'the 4th job (same key as the 2nd) returns the 2nd''s id');
SELECT is((SELECT count(DISTINCT id) FROM u), 4::bigint, 'four distinct jobs');
SELECT is(pg_temp.available('u'), ARRAY[4, 4, 4]::bigint[], 'four available: three plain, one unique');
SELECT is((SELECT array_agg(id ORDER BY ordinality) FROM u WHERE ordinality IN (1, 3, 5))
	= (SELECT array_agg(id ORDER BY id) FROM u WHERE ordinality IN (1, 3, 5)), true,
	'the plain jobs'' ids follow the input order around the unique one');

-- a job that runs after another, and one under a concurrency key, between plain ones in one batch
SELECT is((SELECT count(*) FROM awa_insert_many(jsonb_build_array(
	jsonb_build_object('kind', 'k', 'queue', 'd'),
	jsonb_build_object('kind', 'k', 'queue', 'd', 'after', jsonb_build_array((SELECT min(id) FROM many))),
	jsonb_build_object('kind', 'k', 'queue', 'd', 'concurrency_key', 'tenant:1'),
	jsonb_build_object('kind', 'k', 'queue', 'd')))), 4::bigint, 'a batch with a dependent and a keyed job');
SELECT is((SELECT array_agg(state = 'available' ORDER BY id) FROM awa.jobs WHERE queue = 'd'),
	ARRAY[true, false, true, true], 'the dependent job waits, the others are available');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');

-- a bad row in a batch: the statement fails and nothing of it is there
UPDATE seen SET cd = (SELECT count(*) FROM awa.counter_deltas), hd = (SELECT count(*) FROM awa.history_deltas);
SELECT throws_ok($$SELECT awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'bad',
	'priority', CASE WHEN g = 400 THEN 99 ELSE 1 END)) FROM generate_series(1, 500) g))$$, '22023', NULL,
	'awa_insert_many: a bad 400th job of 500: 22023');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, queue) SELECT CASE WHEN g < 250 THEN 'k' END, 'bad'
	FROM generate_series(300, 1, -1) g$$, '22004', 'kind must not be NULL',
	'INSERT: a NULL kind in the 51st row of 300: 22004');
SELECT throws_ok($$COPY awa.jobs (kind, queue, priority) FROM PROGRAM 'printf "k,bad,1\nk,bad,1\nk,bad,77\n"' (FORMAT csv)$$,
	'22023', NULL, 'COPY: a bad third row: 22023');
SELECT is(pg_temp.available('bad'), ARRAY[0, 0, 0]::bigint[], 'nothing of them is there');
SELECT is(pg_temp.written(), ARRAY[0, 0]::bigint[], 'nothing of them was counted');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');

-- ROLLBACK TO SAVEPOINT: the batches inside go, those before stay; then a batch is written again
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "k", "queue": "sp"}, {"kind": "k", "queue": "sp"}]')),
	2::bigint, 'two jobs before the savepoint');
SAVEPOINT a;
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'sp' FROM generate_series(1, 30);
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'sp'))
	FROM generate_series(1, 20)))), 20::bigint, 'fifty inside it');
SELECT is(pg_temp.available('sp'), ARRAY[52, 52, 52]::bigint[], '52 available inside it');
ROLLBACK TO SAVEPOINT a;
SELECT is(pg_temp.available('sp'), ARRAY[2, 2, 2]::bigint[], 'rolled back: the two before it stay');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'sp' FROM generate_series(1, 5);
SELECT is(pg_temp.available('sp'), ARRAY[7, 7, 7]::bigint[], 'a batch after it is written');

-- a subtransaction inside a batch: each row calls a function that enqueues in an exception block, which fails
-- for every other row; the batch's own rows all stay, the side jobs of the blocks that failed go
CREATE FUNCTION pg_temp.side(g int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		PERFORM awa_insert('side', jsonb_build_object('n', g), queue => 'side');
		PERFORM awa_insert_many(jsonb_build_array(jsonb_build_object('kind', 'side', 'queue', 'side')));
		IF g % 2 = 0 THEN
			RAISE EXCEPTION 'no';
		END IF;
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
	RETURN 'outer';
END$$;
INSERT INTO awa.jobs (kind, queue) SELECT 'k', pg_temp.side(g) FROM generate_series(1, 10) g;
SELECT is(pg_temp.available('outer'), ARRAY[10, 10, 10]::bigint[], 'the batch''s ten jobs are there');
SELECT is(pg_temp.available('side'), ARRAY[10, 10, 10]::bigint[], 'the side jobs of the five blocks that held');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');

-- the claim takes a batch's jobs in id order (the lane order: their positions as they were enqueued)
SELECT is((SELECT array_agg(id ORDER BY id) FROM awa_claim('i', batch => 100)),
	(SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM ins ORDER BY id LIMIT 100) f),
	'awa_claim of 100 takes the INSERT''s first 100 jobs by id');

-- awa.ready with a trigger awa did not make: the batch goes through one INSERT, which fires it
CREATE TEMP TABLE fired (n bigint);
CREATE FUNCTION pg_temp.note_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO fired SELECT count(*) FROM ring_new;
	RETURN NULL;
END$$;
CREATE TRIGGER ready_audit AFTER INSERT ON awa.ready REFERENCING NEW TABLE AS ring_new
	FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.note_rows();
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'trg',
	'timeout', '1 minute')) FROM generate_series(1, 40)))), 40::bigint, 'awa.ready with a trigger of its own: 40 jobs');
SELECT is((SELECT array_agg(n) FROM fired), ARRAY[40]::bigint[], 'its trigger saw the 40 rows in one statement');
SELECT is(pg_temp.available('trg'), ARRAY[40, 40, 40]::bigint[], '40 available');
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'trg' AND timeout = '1 minute'), 40::bigint,
	'with their fields');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters are exact');
DROP TRIGGER ready_audit ON awa.ready;

-- a dependent of a job enqueued earlier in the same statement: the parent's directly written row is visible to
-- the dependent's read of its parents (was 23503 "job N named in after does not exist")
SELECT lives_ok($$SELECT awa_insert('child', queue => 'dep', after => ARRAY[(awa_insert('parent', queue => 'dep')).id])$$,
	'a dependent of a parent enqueued in the same statement');

SELECT * FROM finish();
ROLLBACK;
