-- awa_claim over several queues and with a wait, through the API only, so that the file runs on both engines
-- (test/pgtap/on_table.txt; docs/storage.md, "Step 5: awa_claim on the ring"): the single-queue order across
-- queues, the errors of a bad queues array, NULL = every queue, the claim's time (the clock's, not the
-- transaction's start) and a blocking claim that ends empty or takes a job once it comes due.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(16);

-- the order across queues: priority, then run_at, then id, whatever the queue
SELECT lives_ok($$SELECT awa_insert('k', '{"n": 1}', queue => 'qa', priority => 2),
	awa_insert('k', '{"n": 2}', queue => 'qb', priority => 1),
	awa_insert('k', '{"n": 3}', queue => 'qa', priority => 2),
	awa_insert('k', '{"n": 4}', queue => 'qz', priority => 1)$$, 'jobs in qa, qb and qz');
CREATE TEMP TABLE got AS
	SELECT c.queue, c.args->>'n' AS n, c.state, c.attempted_at, c.deadline_at, c.ordinality AS o
	FROM awa_claim(ARRAY['qa', 'qb', 'qa'], 'w', 10, '1 min', '0') WITH ORDINALITY AS c;
SELECT is((SELECT array_agg(queue || ':' || n ORDER BY o) FROM got), ARRAY['qb:2', 'qa:1', 'qa:3'],
	'several queues: the single-queue order across them; qz untouched; a queue named twice counts once');
SELECT is((SELECT count(*) FROM got WHERE state = 'running'), 3::bigint, 'they are running');
SELECT ok((SELECT bool_and(attempted_at > now()) FROM got),
	'the claim''s time is the clock''s, not the transaction''s start');
SELECT ok((SELECT bool_and(deadline_at = attempted_at + interval '1 min') FROM got),
	'deadline_at: the claim''s time + the lease');

-- bad arrays: the errors of the table engine, nothing claimed
SELECT throws_ok($$SELECT * FROM awa_claim(ARRAY[]::text[])$$, '22023', 'queues must name at least one queue',
	'an empty array: 22023');
SELECT throws_ok($$SELECT * FROM awa_claim(ARRAY['qz', NULL])$$, '22004',
	'queues must not contain NULL (element 2)', 'a NULL element: 22004');
SELECT throws_ok($$SELECT * FROM awa_claim(ARRAY[['qz'], ['qb']])$$, '22023',
	'queues must be a one-dimensional array, got 2 dimensions', 'two dimensions: 22023');
SELECT throws_ok($$SELECT * FROM awa_claim(ARRAY['qz'], batch => 0)$$, '22023',
	'batch must be between 1 and 1000, got 0', 'batch 0: 22023');
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'qz' AND state = 'available'), 1::bigint,
	'the bad calls claimed nothing');

-- NULL: every queue
SELECT is((SELECT array_agg(queue) FROM awa_claim(NULL::text[], 'w', 10, '1 min', '0')), ARRAY['qz'],
	'NULL claims from every queue');

-- a blocking claim with nothing to claim ends empty after its wait
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
SELECT is((SELECT count(*) FROM awa_claim(ARRAY['none1', 'none2'], 'w', 1, '1 min', '300 ms')), 0::bigint,
	'a blocking claim of several queues with nothing: no rows');
SELECT ok(clock_timestamp() - (SELECT t FROM t0) >= interval '290 ms', 'after its wait');
CREATE TEMP TABLE w (jobs awa.jobs[]);
DO $$
DECLARE
	j awa.jobs[];
BEGIN
	CALL awa_claim_wait(ARRAY['none1'], wait => '0', jobs => j);
	INSERT INTO w VALUES (j);
END
$$;
SELECT is((SELECT jobs FROM w), NULL::awa.jobs[], 'awa_claim_wait(queues) with nothing: jobs NULL');

-- a job scheduled a moment ahead, in this transaction (whose now() does not move): the blocking claim takes
-- it once due
SELECT lives_ok($$SELECT awa_insert('k', '{"n": 5}', queue => 'qd', run_at => clock_timestamp() + interval '300 ms')$$,
	'a job due in 300 ms');
SELECT is((SELECT array_agg(c.args->>'n') FROM awa_claim('qd', 'w', 1, '1 min', '10 s') c), ARRAY['5'],
	'the blocking claim takes it when it comes due');

SELECT * FROM finish();
ROLLBACK;
