-- Dependencies, parent results and groups on the ring (docs/storage.md, "Step 5: dependencies and groups on the
-- ring"): the relations and privileges; bad input (as awa_insert's; 23503 for a parent the ring does not hold,
-- nothing written); a dependent waits as a scheduled row nobody claims or promotes, and is released once all its
-- parents completed (due now, or at the run_at asked for); the policies cancel, run and wait for a parent that
-- fails for good or is cancelled, also at insert, with the cascade; parent results; groups: stats, the callback job
-- enqueued exactly once through awa.ring_insert when the last ring job of the group finishes; counters; nothing on
-- the hot path updated or deleted; awa.jobs untouched.  Concurrency: the isolation specs ring_deps_*.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(87);

SET LOCAL awa.claim_floors = off;

-- the relations: internal like the ring
SELECT has_pk('awa', 'ring_dependencies', 'ring_dependencies has a primary key');
SELECT col_is_pk('awa', 'ring_dependencies', ARRAY['job_id', 'parent_id'], 'one edge per job and parent');
SELECT has_index('awa', 'ring_dependencies', 'ring_dependencies_parent_idx', ARRAY['parent_id', 'job_id'],
	'edges by parent (the finishing trigger, awa.ring_dependents)');
SELECT col_is_pk('awa', 'ring_dependents', 'job_id', 'one row per dependent');
SELECT col_is_pk('awa', 'ring_group_jobs', 'job_id', 'one membership row per ring job');
SELECT col_is_pk('awa', 'ring_group_callbacks', 'group_id', 'one callback per ring group');
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.oid IN ('awa.ring_dependencies'::regclass, 'awa.ring_dependents'::regclass,
		'awa.ring_group_jobs'::regclass, 'awa.ring_group_callbacks'::regclass) AND a.grantee <> c.relowner),
	0::bigint, 'no role is granted the side tables');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	WHERE p.proname IN ('ring_parent_results', 'ring_group_stats', 'ring_group_on_finish', 'ring_deps_finished')
		AND p.pronamespace = 'awa'::regnamespace AND a.grantee <> p.proowner),
	0::bigint, 'no role may call the functions');
SELECT has_trigger('awa', 'done', 'done_ring_deps', 'the finishing trigger is on awa.done');

-- the switch
SELECT throws_ok($$SELECT * FROM awa.ring_parent_results(1)$$, '55000', NULL, 'ring_parent_results: off');
SELECT throws_ok($$SELECT * FROM awa.ring_group_stats('g')$$, '55000', NULL, 'ring_group_stats: off');
SELECT throws_ok($$SELECT awa.ring_group_on_finish('g', 'k')$$, '55000', NULL, 'ring_group_on_finish: off');

SET LOCAL awa.ring_engine = on;

-- bad input: nothing written
SELECT (awa_insert('on_awa_jobs')).id AS awa_job \gset
SELECT awa.ring_insert('parent', queue => 'bad') AS bad_parent \gset
SELECT throws_ok($$SELECT awa.ring_insert('k', after => '{1,NULL}')$$, '22004', 'after must not contain NULL',
	'a NULL parent (22004, as awa_insert)');
SELECT throws_ok($$SELECT awa.ring_insert('k', after => '{1}', on_parent_failure => 'ignore')$$, '22023',
	'on_parent_failure must be cancel, run or wait, got "ignore"', 'an unknown policy');
SELECT throws_ok($$SELECT awa.ring_insert('k', after => (SELECT array_agg(i) FROM generate_series(1, 1001) i))$$,
	'22023', 'after names at most 1000 jobs, got 1001', 'too many parents');
SELECT throws_ok(format($$SELECT awa.ring_insert('k', queue => 'bad', after => '{%s, %s}')$$, :bad_parent,
		:bad_parent + 100000),
	'23503', format('job %s named in after does not exist in the ring', :bad_parent + 100000),
	'a parent that does not exist: 23503');
SELECT throws_ok(format($$SELECT awa.ring_insert('k', queue => 'bad', after => '{%s}')$$, :awa_job),
	'23503', format('job %s named in after does not exist in the ring', :awa_job),
	'a parent in awa.jobs only: 23503 (ring parents only)');
SELECT throws_ok($$SELECT * FROM awa.ring_parent_results(NULL)$$, '22023', 'job_id must not be null',
	'ring_parent_results: NULL job_id');
SELECT throws_ok($$SELECT * FROM awa.ring_group_stats(NULL)$$, '22023', 'group_id must not be null',
	'ring_group_stats: NULL group_id');
SELECT throws_ok($$SELECT * FROM awa.ring_group_stats('')$$, '22023', 'group_id must be 1 to 200 characters long',
	'ring_group_stats: empty group_id');
SELECT throws_ok($$SELECT awa.ring_group_on_finish(repeat('g', 201), 'k')$$, '22023',
	'group_id must be 1 to 200 characters long', 'ring_group_on_finish: group_id too long');
SELECT throws_ok($$SELECT awa.ring_group_on_finish('g', NULL)$$, '22023', 'kind must not be null',
	'ring_group_on_finish: NULL kind');
SELECT throws_ok($$SELECT awa.ring_group_on_finish('g', 'k', priority => 5)$$, '22023', NULL,
	'ring_group_on_finish: priority out of range');
SELECT throws_ok($$SELECT awa.ring_group_on_finish('g', 'k', args => '1')$$, '22023', NULL,
	'ring_group_on_finish: scalar args');
SELECT is((SELECT count(*) FROM awa.ready WHERE queue = 'bad') + (SELECT count(*) FROM awa.scheduled)
	+ (SELECT count(*) FROM awa.ring_dependencies) + (SELECT count(*) FROM awa.ring_dependents)
	+ (SELECT count(*) FROM awa.ring_group_callbacks), 1::bigint, 'bad input wrote nothing (the parent only)');

-- waiting and release: two parents, released once both completed
SELECT awa.ring_insert('p1', queue => 'd') AS p1 \gset
SELECT awa.ring_insert('p2', queue => 'd') AS p2 \gset
SELECT awa.ring_insert('child', queue => 'd', after => ARRAY[:p2, :p1, :p1]) AS c \gset
SELECT is((SELECT state::text || ' ' || run_at FROM awa.ring_jobs WHERE id = :c), 'scheduled 9999-12-30 00:00:00+00',
	'a dependent waits as a scheduled job at 9999-12-30, as awa.jobs parks it');
SELECT is((SELECT run_at FROM awa.scheduled WHERE id = :c), '9999-12-30 00:00:00+00'::timestamptz,
	'its row is in awa.scheduled');
SELECT results_eq($$SELECT waiting_for, on_parent_failure, run_at IS NULL FROM awa.ring_dependents$$,
	$$VALUES (2, 'cancel'::text, true)$$, 'it waits for two parents (a repeated id counts once), policy cancel');
SELECT results_eq($$SELECT id FROM awa.ring_claim('d', 10) ORDER BY id$$, format('VALUES (%s::bigint), (%s)', :p1, :p2),
	'the claim takes the parents, not the waiting dependent');
SELECT is(awa.ring_promote(1000), 0, 'ring_promote does not take it either');
SELECT is((SELECT array_agg(i) FROM awa.ring_complete_many(ARRAY[:p1]::bigint[], ARRAY[1::bigint]) i), ARRAY[:p1]::bigint[], 'the first parent completes');
SELECT results_eq(format('SELECT state::text, (SELECT waiting_for FROM awa.ring_dependents WHERE job_id = %s)'
		' FROM awa.ring_jobs WHERE id = %s', :c, :c),
	$$VALUES ('scheduled', 1)$$, 'the dependent still waits, for one parent');
SELECT is_empty($$SELECT * FROM awa.ring_claim('d', 10)$$, 'and is still not claimable');
SELECT is((SELECT array_agg(i) FROM awa.ring_complete_many(ARRAY[:p2]::bigint[], ARRAY[1::bigint]) i), ARRAY[:p2]::bigint[], 'the second parent completes');
SELECT results_eq(format('SELECT state::text, run_at FROM awa.ring_jobs WHERE id = %s', :c),
	$$VALUES ('available'::text, now())$$, 'the dependent is released: available now');
SELECT is((SELECT count(*) FROM awa.scheduled WHERE id = :c), 0::bigint, 'its scheduled row was promoted');
SELECT is((SELECT count(*) FROM awa.ready WHERE id = :c), 1::bigint, 'into one ready row');
SELECT results_eq($$SELECT kind FROM awa.ring_claim('d', 10)$$, $$VALUES ('child'::text)$$, 'and the claim takes it');
SELECT results_eq(format('SELECT parent_id, kind, state::text, satisfied FROM awa.ring_parent_results(%s)', :c),
	format($$VALUES (%s::bigint, 'p1'::text, 'completed'::text, true), (%s, 'p2', 'completed', true)$$, :p1, :p2),
	'ring_parent_results: the parents in id order');
SELECT is_empty(format('SELECT * FROM awa.ring_parent_results(%s)', :p1), 'no rows for a job without parents');

-- a parent's result (an external completion's payload), and the run_at asked for
SELECT awa.ring_insert('ext', queue => 'e') AS x \gset
SELECT awa.ring_insert('later', queue => 'e', after => ARRAY[:x], run_at => now() + interval '1 hour') AS l \gset
SELECT ok((SELECT id FROM awa.ring_claim('e', 1)) = :x, 'the parent is claimed');
SELECT awa.ring_register_callback(:x, 1, '1 hour') AS cb \gset
SELECT ok(awa.ring_wait_external(:x, 1), 'and waits for its callback');
SELECT is((SELECT state::text FROM awa.ring_jobs WHERE id = :l), 'scheduled', 'waiting_external does not release');
SELECT ok(awa.ring_complete_external(:'cb', '{"rows": 42}'), 'the callback completes the parent');
SELECT results_eq(format('SELECT state::text, run_at FROM awa.ring_jobs WHERE id = %s', :l),
	$$VALUES ('scheduled'::text, now() + interval '1 hour')$$,
	'the dependent is released at the run_at its producer asked for');
SELECT results_eq(format('SELECT result FROM awa.ring_parent_results(%s)', :l), $$VALUES ('{"rows": 42}'::jsonb)$$,
	'ring_parent_results: the parent''s result');

-- a parent completed before the insert: the job runs at once
SELECT awa.ring_insert('now', queue => 'e', after => ARRAY[:p1]) AS n \gset
SELECT is((SELECT state::text FROM awa.ring_jobs WHERE id = :n), 'available', 'a completed parent: runs at once');
SELECT is((SELECT waiting_for FROM awa.ring_dependents WHERE job_id = :n), 0, 'waiting for nothing');

-- policies: a parent that fails for good
SELECT awa.ring_insert('pf', queue => 'f', max_attempts => 2) AS pf \gset
SELECT awa.ring_insert('cancel', queue => 'f', after => ARRAY[:pf]) AS fc \gset
SELECT awa.ring_insert('grandchild', queue => 'f', after => ARRAY[:fc], on_parent_failure => 'run') AS fg \gset
SELECT awa.ring_insert('great', queue => 'f', after => ARRAY[:fg]) AS fgg \gset
SELECT awa.ring_insert('run', queue => 'f', after => ARRAY[:pf], on_parent_failure => 'run') AS fr \gset
SELECT awa.ring_insert('wait', queue => 'f', after => ARRAY[:pf], on_parent_failure => 'wait') AS fw \gset
SELECT ok((SELECT id FROM awa.ring_claim('f', 1)) = :pf, 'the parent is claimed');
SELECT is(awa.ring_fail(:pf, 1, '"once"', retry_in => '0'), 'retryable'::awa.job_state, 'it fails, to be retried');
SELECT is((SELECT count(*) FROM awa.ring_jobs WHERE id IN (:fc, :fr, :fw) AND state = 'scheduled'), 3::bigint,
	'a retryable failure is not the end: every dependent still waits');
SELECT ok((SELECT id FROM awa.ring_claim('f', 1)) = :pf, 'the retry is claimed');
SELECT is(awa.ring_fail(:pf, 2, '"twice"'), 'failed'::awa.job_state, 'and fails for good');
SELECT results_eq(format('SELECT id, state::text FROM awa.ring_jobs WHERE id IN (%s, %s, %s, %s, %s) ORDER BY id',
		:fc, :fg, :fgg, :fr, :fw),
	format($$VALUES (%s::bigint, 'cancelled'::text), (%s, 'available'), (%s, 'scheduled'), (%s, 'available'),
		(%s, 'scheduled')$$, :fc, :fg, :fgg, :fr, :fw),
	'cancel: cancelled; its dependent under run released, whose dependent waits on; run: released; wait: waits');
SELECT is((SELECT error FROM awa.done WHERE job_id = :fc AND state = 'cancelled'),
	to_jsonb(format('cancelled: job %s it runs after is failed', :pf)), 'the cancel names the parent');
SELECT ok(awa.ring_retry(:pf), 'the failed parent is retried');
SELECT ok((SELECT id FROM awa.ring_claim('f', 1)) = :pf, 'claimed again');
SELECT is((SELECT array_agg(i) FROM awa.ring_complete_many(ARRAY[:pf]::bigint[], ARRAY[3::bigint]) i), ARRAY[:pf]::bigint[], 'and completes');
SELECT is((SELECT state::text FROM awa.ring_jobs WHERE id = :fw), 'available',
	'wait: released when the retried parent completes');
SELECT is((SELECT state::text FROM awa.ring_jobs WHERE id = :fc), 'cancelled', 'the cancelled one stays cancelled');

-- a cancelled parent, and the cascade through several levels
SELECT awa.ring_insert('pc', queue => 'h') AS pc \gset
SELECT awa.ring_insert('h1', queue => 'h', after => ARRAY[:pc]) AS h1 \gset
SELECT awa.ring_insert('h2', queue => 'h', after => ARRAY[:h1]) AS h2 \gset
SELECT awa.ring_insert('h3', queue => 'h', after => ARRAY[:h2, :p1]) AS h3 \gset
SELECT ok(awa.ring_cancel(:pc), 'the parent is cancelled');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM awa.ring_jobs WHERE id IN (:h1, :h2, :h3)),
	ARRAY['cancelled', 'cancelled', 'cancelled'], 'cancel cascades through three levels');
SELECT is((SELECT error FROM awa.done WHERE job_id = :h3 AND state = 'cancelled'),
	to_jsonb(format('cancelled: job %s it runs after is cancelled', :h2)), 'each names its own parent');

-- a parent that had already failed or was cancelled at insert
SELECT awa.ring_insert('c0', queue => 'h', after => ARRAY[:pc]) AS c0 \gset
SELECT awa.ring_insert('r0', queue => 'h', after => ARRAY[:pc], on_parent_failure => 'run') AS r0 \gset
SELECT awa.ring_insert('w0', queue => 'h', after => ARRAY[:pc], on_parent_failure => 'wait') AS w0 \gset
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM awa.ring_jobs WHERE id IN (:c0, :r0, :w0)),
	ARRAY['cancelled', 'available', 'scheduled'], 'at insert: cancel cancels at once, run runs, wait waits');

-- groups
SELECT awa.ring_insert('m', queue => 'g', group_id => 'G') AS m1 \gset
SELECT awa.ring_insert('m', queue => 'g', group_id => 'G', max_attempts => 1) AS m2 \gset
SELECT awa.ring_insert('m', queue => 'g', group_id => 'G', run_at => now() + interval '1 day') AS m3 \gset
SELECT results_eq($$SELECT total, scheduled, available, unfinished, callback_job_id FROM awa.ring_group_stats('G')$$,
	$$VALUES (3::bigint, 1::bigint, 2::bigint, 3::bigint, NULL::bigint)$$, 'ring_group_stats counts the ring jobs');
SELECT is(awa.ring_group_on_finish('G', 'cb', '{"a": 1}', 'gcb', 1, 3, '{"m": true}'), NULL::bigint,
	'a callback for a group with unfinished jobs: NULL');
SELECT throws_ok($$SELECT awa.ring_group_on_finish('G', 'cb')$$, '42710', NULL, 'one callback per group');
SELECT is((SELECT count(*) FROM awa.ring_claim('g', 10)), 2::bigint, 'two of its jobs are claimed');
SELECT is((SELECT array_agg(i) FROM awa.ring_complete_many(ARRAY[:m1]::bigint[], ARRAY[1::bigint]) i), ARRAY[:m1]::bigint[], 'one completes');
SELECT is(awa.ring_fail(:m2, 1, '"no"'), 'failed'::awa.job_state, 'one fails for good');
SELECT is((SELECT count(*) FROM awa.ring_jobs WHERE kind = 'cb'), 0::bigint, 'one job left: no callback yet');
SELECT ok(awa.ring_cancel(:m3), 'the last one is cancelled');
SELECT results_eq($$SELECT kind, queue, priority, max_attempts, args, metadata FROM awa.ring_jobs WHERE kind = 'cb'$$,
	$$VALUES ('cb'::text, 'gcb'::text, 1::smallint, 3::smallint, '{"a": 1}'::jsonb,
		'{"m": true, "finished_group": "G"}'::jsonb)$$,
	'the callback job is enqueued on the ring, once, with finished_group');
SELECT results_eq($$SELECT total, completed, failed, cancelled, unfinished,
		callback_job_id = (SELECT id FROM awa.ring_jobs WHERE kind = 'cb'), finished_at IS NOT NULL
	FROM awa.ring_group_stats('G')$$,
	$$VALUES (3::bigint, 1::bigint, 1::bigint, 1::bigint, 0::bigint, true, true)$$,
	'the stats name the callback job');
SELECT ok(awa.ring_retry(:m2), 'a finished job of the group is retried');
SELECT ok((SELECT id FROM awa.ring_claim('g', 1)) = :m2, 'claimed');
SELECT is((SELECT array_agg(i) FROM awa.ring_complete_many(ARRAY[:m2]::bigint[], ARRAY[2::bigint]) i), ARRAY[:m2]::bigint[], 'and completes');
SELECT is((SELECT count(*) FROM awa.ring_jobs WHERE kind = 'cb'), 1::bigint, 'the callback was enqueued exactly once');
SELECT awa.ring_insert('m', queue => 'g', group_id => 'H') AS h \gset
SELECT ok((SELECT id FROM awa.ring_claim('g', 1)) = :h, 'a job of another group is claimed');
SELECT is((SELECT array_agg(i) FROM awa.ring_complete_many(ARRAY[:h]::bigint[], ARRAY[1::bigint]) i), ARRAY[:h]::bigint[], 'and completes');
SELECT awa.ring_group_on_finish('H', 'cbh') AS cbh \gset
SELECT is((SELECT id FROM awa.ring_jobs WHERE kind = 'cbh'), :'cbh'::bigint,
	'a callback for a finished group is enqueued at once, its id returned');
SELECT results_eq($$SELECT total, unfinished, callback_job_id FROM awa.ring_group_stats('nobody')$$,
	$$VALUES (0::bigint, 0::bigint, NULL::bigint)$$, 'a group nobody enqueued into: zeros');
SELECT is((SELECT count(*) FROM awa.group_callbacks), 0::bigint, 'awa.jobs'' group callbacks are not used');
SELECT is((SELECT total FROM awa_group_stats('G')), 0::bigint, 'awa_group_stats counts awa.jobs only, as before');

-- the counters, nothing on the hot path updated or deleted, awa.jobs untouched
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'the counters agree with a recount');
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done)_[0-9]+$'), 0::numeric,
	'no ready row, receipt or done row was updated or deleted');
SELECT is((SELECT count(*) FROM awa.job_dependencies) + (SELECT count(*) FROM awa.dependent_jobs), 0::bigint,
	'awa.jobs'' dependency tables are not used');

SELECT * FROM finish();
ROLLBACK;
