-- The rows awa_claim returns are the jobs' rows in awa.jobs, column for column: a batch of first attempts with
-- every optional field, a retried job (its errors and attempt), and a batch mixing the two.  (On the ring engine
-- a batch of first attempts is read from the receipts and ready rows alone, any other through the view: this
-- holds both to the same answer.)
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(6);

CREATE TEMP TABLE got AS SELECT * FROM awa.jobs WITH NO DATA;
CREATE FUNCTION pg_temp.same(q text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM got g WHERE g.queue = q AND (SELECT j FROM awa.jobs j WHERE j.id = g.id)::text = g::text
$$;

SELECT count(*) FROM (SELECT awa_insert('k' || i, jsonb_build_object('n', i), queue => 'cr1', priority => 1 + i % 4,
	max_attempts => 3, tags => ARRAY['t' || i], metadata => jsonb_build_object('m', i), timeout => interval '1 hour',
	group_id => 'g' || i, concurrency_key => CASE WHEN i % 2 = 0 THEN 'key' || i END,
	unique_by_args => i = 3) FROM generate_series(1, 5) i) s;
INSERT INTO got SELECT * FROM awa_claim('cr1', batch => 5, lease => interval '10 minutes', worker => 'w-1');
SELECT is((SELECT count(*) FROM got WHERE queue = 'cr1'), 5::bigint, 'a batch of five first attempts');
SELECT is(pg_temp.same('cr1'), 5::bigint, 'first attempts: each returned row is the job''s row in awa.jobs');
SELECT is((SELECT array_agg(DISTINCT row(state, attempt, run_lease, claimed_by, lease)::text) FROM got
	WHERE queue = 'cr1'), ARRAY['(running,1,1,w-1,00:10:00)'], 'running, attempt 1, lease 1, worker and lease kept');

-- a retried job (errors, attempt 2) claimed alone, then with a first attempt
SELECT awa_insert('r', queue => 'cr2');
INSERT INTO got SELECT * FROM awa_claim('cr2');
SELECT awa_fail(id, run_lease, 'boom', retry_in => interval '0') FROM got WHERE queue = 'cr2';
DELETE FROM got WHERE queue = 'cr2';
INSERT INTO got SELECT * FROM awa_claim('cr2');
SELECT is(pg_temp.same('cr2'), 1::bigint, 'a retried job: the returned row is the job''s row in awa.jobs');
SELECT awa_fail(id, run_lease, 'boom again', retry_in => interval '0') FROM got WHERE queue = 'cr2';
DELETE FROM got WHERE queue = 'cr2';
SELECT awa_insert('n', queue => 'cr2', run_at => now() - interval '1 hour');
INSERT INTO got SELECT * FROM awa_claim('cr2', batch => 2);
SELECT is(pg_temp.same('cr2'), 2::bigint, 'a batch of a retry and a first attempt: both rows are awa.jobs'' rows');
SELECT is((SELECT array_agg(row(kind, attempt, cardinality(errors))::text ORDER BY kind) FROM got WHERE queue = 'cr2'),
	ARRAY['(n,1,0)', '(r,3,2)'], 'their attempts and errors');

SELECT * FROM finish();
ROLLBACK;
