-- The claim and awa_complete_many read only one slot's partitions when only that slot holds rows
-- (src/ring_part.c; docs/storage.md, "Step 5: one slot's partitions"), and every partition otherwise.  Each
-- step below moves the ring between those cases (one slot, two slots after a rotation, the other slot alone after
-- a reclaim that carried a running job into it) and checks that claims still come in (priority, run_at, id)
-- order across the slots, that every attempt completes wherever its receipt is, and that a wrong lease or an
-- aborted write changes nothing.  In a database on the ring engine.  Reclaiming needs committed rows and no
-- older snapshot, so this file runs statement by statement (autocommit) and drops what it created.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET awa.install_engine = 'ring';
CREATE EXTENSION awa;
RESET awa.install_engine;
SET statement_timeout = '30s';
-- aging off: a queue with jobs of one priority is claimed by the statement that reads one range
-- (src/ring_claim.c, claim_direct), the one whose plan follows the slots
SET awa.priority_aging_interval = 0;
SELECT plan(23);

\ir lib/ring_reclaim.psql
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint, lease bigint);
CREATE FUNCTION pg_temp.id(text) RETURNS bigint LANGUAGE sql AS $$SELECT id FROM j WHERE n = $1$$;
-- claim one job of queue sq; its name and lease go into j
CREATE FUNCTION pg_temp.claim1() RETURNS text LANGUAGE sql AS $$
	WITH c AS (SELECT id, run_lease FROM awa_claim('sq')),
	     u AS (UPDATE j SET lease = c.run_lease FROM c WHERE j.id = c.id RETURNING j.n)
	SELECT coalesce((SELECT n FROM u), 'none') $$;
CREATE FUNCTION pg_temp.slot_of(text) RETURNS smallint LANGUAGE sql AS
	$$SELECT slot FROM awa.ready WHERE id = pg_temp.id($1) ORDER BY run_lease DESC LIMIT 1$$;

-- one slot: x1..x3 in slot 0, due an hour, 50 and 40 minutes ago
INSERT INTO j (n, id) SELECT 'x' || i, (awa_insert('k', queue => 'sq', run_at => now() - (70 - 10 * i) * interval '1 minute')).id
	FROM generate_series(1, 3) i;
SELECT is(pg_temp.claim1(), 'x1', 'one slot: the oldest job first');
SELECT is(awa_complete_many(ARRAY[pg_temp.id('x1')], ARRAY[(SELECT lease FROM j WHERE n = 'x1') + 1]),
	0::bigint, 'a wrong lease completes nothing');

-- two slots: slot 0 sealed, y1 (due 55 minutes ago: before x2) and y2 (due now) in slot 1
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 0 sealed, slot 1 open');
INSERT INTO j (n, id) VALUES ('y1', (awa_insert('k', queue => 'sq', run_at => now() - interval '55 minutes')).id),
	('y2', (awa_insert('k', queue => 'sq')).id);
SELECT is(pg_temp.slot_of('y1'), 1::smallint, 'y1 is in slot 1');
SELECT is(pg_temp.claim1(), 'y1', 'two slots: y1 of slot 1 before x2 of slot 0');
SELECT is(pg_temp.claim1(), 'x2', 'then x2 of slot 0');
SELECT is(awa_complete_many(ARRAY[pg_temp.id('x1'), pg_temp.id('y1'), pg_temp.id('x2')],
	ARRAY[(SELECT lease FROM j WHERE n = 'x1'), (SELECT lease FROM j WHERE n = 'y1'), (SELECT lease FROM j WHERE n = 'x2')]),
	3::bigint, 'receipts in both slots: all three complete');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM awa.jobs WHERE id IN (pg_temp.id('x1'), pg_temp.id('y1'),
	pg_temp.id('x2'))), ARRAY['completed', 'completed', 'completed'], 'and show as completed');
SELECT is(pg_temp.claim1(), 'x3', 'x3 of slot 0');

-- slot 1 alone: reclaiming slot 0 carries the running x3 (its receipt too) into slot 1 and truncates slot 0
SELECT is(pg_temp.reclaim(), 'reclaimed', 'slot 0 reclaimed');
SELECT is(pg_temp.slot_of('x3'), 1::smallint, 'x3 was carried into slot 1');
SELECT is((SELECT pg_relation_size('awa.ready_0') + pg_relation_size('awa.claims_0')), 0::bigint,
	'slot 0 holds no block');
SELECT is((awa_complete_many(ARRAY[pg_temp.id('x3')], ARRAY[(SELECT lease FROM j WHERE n = 'x3')])),
	1::bigint, 'slot 1 alone: the carried x3 completes');
SELECT is(pg_temp.claim1(), 'y2', 'slot 1 alone: y2');
INSERT INTO j (n, id) VALUES ('z1', (awa_insert('k', queue => 'sq', priority => 1)).id);
SELECT is(pg_temp.claim1(), 'z1', 'a new job of slot 1 is claimed');
SELECT is((awa_complete_many(ARRAY[pg_temp.id('y2'), pg_temp.id('z1')],
	ARRAY[(SELECT lease FROM j WHERE n = 'y2'), (SELECT lease FROM j WHERE n = 'z1')])), 2::bigint, 'y2 and z1 complete');

-- a write that rolled back leaves blocks in another slot's partition: every slot is read again, and gives the same
BEGIN;
SELECT awa.ring_rotate(1, '1 hour');
SELECT awa_insert('k', queue => 'sq');
ROLLBACK;
SELECT is((SELECT slot FROM awa.ring_slots WHERE state = 'open'), 1::smallint, 'the rotation rolled back');
SELECT ok((SELECT sum(pg_relation_size(format('awa.ready_%s', s))) FROM generate_series(0, 3) s WHERE s <> 1) > 0,
	'its insert left a block in another slot''s partition');
INSERT INTO j (n, id) VALUES ('w1', (awa_insert('k', queue => 'sq')).id);
SELECT is(pg_temp.claim1(), 'w1', 'w1 claimed');
SELECT is((awa_complete_many(ARRAY[pg_temp.id('w1')], ARRAY[(SELECT lease FROM j WHERE n = 'w1')])),
	1::bigint, 'w1 completes');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM awa.jobs WHERE queue = 'sq'),
	array_fill('completed'::text, ARRAY[7]), 'every job of the file completed once');

-- enqueue keeps the open slot for the statement (src/ring_enq.c), but not past a rotation the statement made
DO $$
BEGIN
	PERFORM awa_insert('k', queue => 'dq', args => '{"n": 1}');
	PERFORM awa.ring_rotate(1, '1 hour');
	PERFORM awa_insert('k', queue => 'dq', args => '{"n": 2}');
END $$;
SELECT is((SELECT array_agg(r.slot ORDER BY r.args->>'n') FROM awa.ready r WHERE r.queue = 'dq'),
	ARRAY[1, (SELECT slot FROM awa.ring_slots WHERE state = 'open')]::smallint[],
	'one statement: a job before its rotation in the slot then open, one after it in the new open slot');
SELECT isnt((SELECT slot FROM awa.ring_slots WHERE state = 'open'), 1::smallint, 'the rotation moved the open slot');

SELECT * FROM finish();
RESET statement_timeout;
RESET awa.priority_aging_interval;
DROP EXTENSION awa;
