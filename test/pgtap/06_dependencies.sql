-- Job dependencies: a job inserted with after => parent ids waits until all of them completed
-- (fan-in); a parent that fails for good or is cancelled gets the job's on_parent_failure
-- policy; dependents read their parents' results.  Runs on both engines (on_table.txt).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(54);

-- signatures
SELECT function_returns('public', 'awa_insert',
	ARRAY['text', 'jsonb', 'text', 'integer', 'integer', 'timestamp with time zone', 'text[]', 'jsonb',
		'boolean', 'boolean', 'interval', 'awa.job_state[]', 'interval', 'text', 'bigint[]', 'text', 'text'], 'awa.jobs');
SELECT function_returns('public', 'awa_parent_results', ARRAY['bigint'], 'setof record');
SELECT function_returns('public', 'awa_dependents', ARRAY['bigint'], 'setof record');
SELECT ok(has_function_privilege('awa_worker', 'awa_parent_results(bigint)', 'EXECUTE'), 'workers read parents'' results');
SELECT ok(has_function_privilege('awa_producer', 'awa_parent_results(bigint)', 'EXECUTE'), 'producers too');
SELECT ok(NOT has_function_privilege('public', 'awa_parent_results(bigint)', 'EXECUTE'), 'PUBLIC does not');

-- a helper: claim the one job of queue q and complete it with a result
CREATE FUNCTION pg_temp.run(q text, res jsonb DEFAULT NULL) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE j awa.jobs;
BEGIN
	SELECT * INTO j FROM awa_claim(q, batch => 1);
	IF j.id IS NULL THEN RETURN NULL; END IF;
	PERFORM awa_complete(j.id, j.run_lease, res);
	RETURN j.id;
END $$;
CREATE FUNCTION pg_temp.st(job bigint) RETURNS text LANGUAGE sql AS
	$$ SELECT state::text || CASE WHEN run_at = '9999-12-30 00:00:00+00' THEN ' (waits)' ELSE '' END FROM awa.jobs WHERE id = job $$;

-- one parent: waits, never claimed, released by the completion; the result is readable
SELECT id AS p FROM awa_insert('parent', queue => 'one') \gset
SELECT id AS c FROM awa_insert('child', queue => 'one', after => ARRAY[:p]::bigint[]) \gset
SELECT is(pg_temp.st(:c), 'scheduled (waits)', 'a job after a waiting parent waits (scheduled, run_at 9999-12-30)');
SELECT is(pg_temp.run('one', '{"rows": 7}'), :p::bigint, 'the claim takes the parent');
SELECT is(pg_temp.st(:c), 'available', 'the parent completed: the child is available');
SELECT is(pg_temp.run('one'), :c::bigint, 'and claimed');
SELECT results_eq($$SELECT parent_id, kind, state::text, satisfied, result FROM awa_parent_results($$ || :c || $$)$$,
	$$VALUES ($$ || :p || $$::bigint, 'parent', 'completed', true, '{"rows": 7}'::jsonb)$$,
	'awa_parent_results: the parent''s result');
SELECT results_eq($$SELECT dependent_id, state::text, waiting_for FROM awa_dependents($$ || :p || $$)$$,
	$$VALUES ($$ || :c || $$::bigint, 'completed', 0)$$, 'awa_dependents: the child');
SELECT is_empty($$SELECT * FROM awa_parent_results($$ || :p || $$)$$, 'a job after none has no parents');

-- fan-in: released when the last of three parents completes, not before
SELECT id AS p1 FROM awa_insert('p', queue => 'fan', priority => 1) \gset
SELECT id AS p2 FROM awa_insert('p', queue => 'fan', priority => 1) \gset
SELECT id AS p3 FROM awa_insert('p', queue => 'fan', priority => 1) \gset
SELECT id AS f FROM awa_insert('fan-in', queue => 'fan', after => ARRAY[:p3, :p1, :p2, :p1]::bigint[]) \gset
SELECT is((SELECT waiting_for FROM awa_dependents(:p1) WHERE dependent_id = :f), 3, 'duplicates count once: three parents');
SELECT ok(pg_temp.run('fan', '1') IS NOT NULL AND pg_temp.run('fan', '2') IS NOT NULL, 'two parents complete');
SELECT is(pg_temp.st(:f), 'scheduled (waits)', 'two of three: still waits');
SELECT is(pg_temp.run('fan', '3'), :p3::bigint, 'the third completes');
SELECT is(pg_temp.st(:f), 'available', 'all three: available');
SELECT is((SELECT array_agg(result ORDER BY parent_id) FROM awa_parent_results(:f)), ARRAY['1', '2', '3']::jsonb[], 'all three results');

-- several parents completed by one awa_complete_many: released once
SELECT id AS m1 FROM awa_insert('p', queue => 'many') \gset
SELECT id AS m2 FROM awa_insert('p', queue => 'many') \gset
SELECT id AS mc FROM awa_insert('c', queue => 'many', after => ARRAY[:m1, :m2]::bigint[]) \gset
SELECT is((SELECT count(*) FROM awa_claim('many', batch => 10)), 2::bigint, 'both parents claimed');
SELECT is(awa_complete_many(ARRAY[:m1, :m2]::bigint[], ARRAY[1, 1]::bigint[]), 2::bigint, 'both completed in one call');
SELECT is(pg_temp.st(:mc), 'available', 'the child is available');
SELECT is((SELECT waiting_for FROM awa_dependents(:m1) WHERE dependent_id = :mc), 0, 'waiting for nothing (not below 0)');

-- a parent already completed at insert: available at once; the run_at asked for is kept
SELECT is((SELECT state::text FROM awa_insert('c', queue => 'late', after => ARRAY[:p]::bigint[])), 'available',
	'after a completed parent: available at once');
SELECT id AS w FROM awa_insert('p', queue => 'later') \gset
SELECT id AS wc FROM awa_insert('c', queue => 'later', after => ARRAY[:w]::bigint[], run_at => now() + interval '1 hour') \gset
SELECT is(pg_temp.run('later'), :w::bigint, 'the parent runs');
SELECT is((SELECT state::text || ' ' || (run_at = now() + interval '1 hour') FROM awa.jobs WHERE id = :wc), 'scheduled true',
	'released at the run_at asked for');

-- policies: cancel (the default, a cascade), run, wait
SELECT id AS a FROM awa_insert('a', queue => 'pol') \gset
SELECT id AS b FROM awa_insert('b', queue => 'pol2', after => ARRAY[:a]::bigint[]) \gset
SELECT id AS bb FROM awa_insert('bb', queue => 'pol2', after => ARRAY[:b]::bigint[]) \gset
SELECT id AS r FROM awa_insert('r', queue => 'pol2', after => ARRAY[:a]::bigint[], on_parent_failure => 'run') \gset
SELECT id AS wt FROM awa_insert('wt', queue => 'pol2', after => ARRAY[:a]::bigint[], on_parent_failure => 'wait') \gset
SELECT is(awa_fail((SELECT id FROM awa_claim('pol', batch => 1)), 1, 'boom', terminal => true)::text, 'failed',
	'the parent fails for good');
SELECT is(pg_temp.st(:a), 'failed', 'the parent failed for good');
SELECT is(pg_temp.st(:b), 'cancelled (waits)', 'cancel: the child is cancelled');
SELECT is(pg_temp.st(:bb), 'cancelled (waits)', 'and its own child too (cascade)');
SELECT is((SELECT errors[1]->>'error' FROM awa.jobs WHERE id = :b), format('cancelled: job %s it runs after is failed', :a),
	'the error names the parent');
SELECT is(pg_temp.st(:r), 'available', 'run: runs anyway');
SELECT is(pg_temp.st(:wt), 'scheduled (waits)', 'wait: keeps waiting');
SELECT is((SELECT state::text FROM awa_retry(:a)), 'available', 'the parent is retried');
SELECT is(pg_temp.run('pol'), :a::bigint, 'and completes');
SELECT is(pg_temp.st(:wt), 'available', 'wait: released by the retry''s completion');
SELECT is(pg_temp.st(:b), 'cancelled (waits)', 'cancel: stays cancelled');

-- a parent already failed or cancelled at insert: the policy at once
SELECT is((SELECT state::text FROM awa_insert('x', after => ARRAY[:b]::bigint[])), 'cancelled', 'after a cancelled parent: cancelled');
SELECT is((SELECT state::text FROM awa_insert('x', after => ARRAY[:b]::bigint[], on_parent_failure => 'run')), 'available', 'run: available');
SELECT is((SELECT state::text || ' ' || (run_at = '9999-12-30 00:00:00+00') FROM awa_insert('x', after => ARRAY[:b]::bigint[], on_parent_failure => 'wait')),
	'scheduled true', 'wait: waits');
-- cancelling a waiting job cascades the same way
SELECT id AS h FROM awa_insert('h', queue => 'hold', run_at => now() + interval '1 day') \gset
SELECT id AS hc FROM awa_insert('hc', queue => 'hold', after => ARRAY[:h]::bigint[]) \gset
SELECT is((SELECT count(*) FROM awa_cancel(:h)), 1::bigint, 'cancel the parent');
SELECT is(pg_temp.st(:hc), 'cancelled (waits)', 'the child is cancelled');

-- awa_insert_many
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM awa_insert_many(jsonb_build_array(
	jsonb_build_object('kind', 'm', 'after', jsonb_build_array(:p)),
	jsonb_build_object('kind', 'm', 'after', jsonb_build_array(:h), 'on_parent_failure', 'wait'),
	jsonb_build_object('kind', 'm', 'after', '[]'::jsonb),
	jsonb_build_object('kind', 'm', 'on_parent_failure', 'run')))),
	ARRAY['available', 'scheduled', 'available', 'available'], 'awa_insert_many: after and on_parent_failure');

-- errors: nothing is written
SELECT throws_ok($$SELECT awa_insert('x', after => ARRAY[9999999]::bigint[])$$, '23503',
	'job 9999999 named in after does not exist', 'a parent that does not exist: 23503');
SELECT throws_ok($$SELECT awa_insert('x', after => ARRAY[(SELECT last_value + 1 FROM awa.jobs_id_seq)])$$, '23503',
	NULL, 'not even the id the job itself will get: no cycle can be made');
SELECT throws_ok($$SELECT awa_insert('x', after => ARRAY[NULL]::bigint[])$$, '22004',
	'after must not contain NULL', 'a NULL parent: 22004');
SELECT throws_ok($$SELECT awa_insert('x', after => ARRAY[1]::bigint[], on_parent_failure => 'ignore')$$, '22023',
	'on_parent_failure must be cancel, run or wait, got "ignore"', 'an unknown policy: 22023');
SELECT throws_ok($$SELECT awa_insert('x', on_parent_failure => NULL)$$, '22004',
	'on_parent_failure must not be NULL', 'a NULL policy: 22004');
SELECT throws_ok($$SELECT awa_insert('x', after => (SELECT array_agg(i) FROM generate_series(1::bigint, 1001) i))$$, '22023',
	'after names at most 1000 jobs, got 1001', 'too many parents: 22023');
SELECT throws_ok($$SELECT * FROM awa_insert_many('[{"kind": "x", "after": [1.5]}]')$$, '22023',
	'jobs[0]: after must be an array of job ids, got 1.5', 'insert_many: a parent that is no id: 22023');
SELECT throws_ok($$SELECT * FROM awa_insert_many('[{"kind": "x", "after": 1}]')$$, '22023',
	'jobs[0]: after must be an array of job ids', 'insert_many: after not an array: 22023');
SELECT throws_ok($$SELECT * FROM awa_insert_many('[{"kind": "x"}, {"kind": "x", "after": [9999999]}]')$$, '23503',
	NULL, 'insert_many: a parent that does not exist: 23503, all or nothing');
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind = 'x'), 3::bigint, 'no failed insert wrote a job');

SELECT id AS rp FROM awa_insert('rp', queue => 'ret') \gset
SELECT id AS rc FROM awa_insert('rc', queue => 'ret', after => ARRAY[:rp]::bigint[]) \gset
SELECT is(ARRAY[pg_temp.run('ret'), pg_temp.run('ret')], ARRAY[:rp, :rc]::bigint[], 'parent, then child, ran');

-- retention (awa_maintain deleting old finished jobs, and their dependency rows) on the table engine:
-- 06_deps_groups_table.sql

SELECT * FROM finish();
ROLLBACK;
