-- Results and dependents on the ring (docs/storage.md, "Step 5: results and dependents on the ring"):
-- awa.ring_complete_results (a completion storing its result in its done row) and awa.ring_dependents (the jobs
-- that run after a job); the privileges and the switch; bad input (22023 naming the field, 54000, nothing
-- written); a dependent cancelled because its parent failed shows why in its errors, as on awa.jobs; nothing on
-- the hot path updated or deleted.  The awa_* functions on a database created with the ring engine:
-- 06_dependencies.sql and 06_groups.sql (on_table.txt).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(31);

SET LOCAL awa.claim_floors = off;

-- internal: no role may call them; they refuse to run while the ring is off
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	WHERE p.proname IN ('ring_complete_results', 'ring_dependents')
		AND p.pronamespace = 'awa'::regnamespace AND a.grantee <> p.proowner),
	0::bigint, 'no role may call the functions');
SELECT has_index('awa', 'ring_dependencies', 'ring_dependencies_parent_idx', ARRAY['parent_id', 'job_id'],
	'every edge by parent (awa.ring_dependents reads satisfied ones too)');
SELECT throws_ok($$SELECT * FROM awa.ring_complete_results('{1}', '{1}', '{null}')$$, '55000', NULL,
	'ring_complete_results: off');
SELECT throws_ok($$SELECT * FROM awa.ring_dependents(1)$$, '55000', NULL, 'ring_dependents: off');

SET LOCAL awa.ring_engine = on;

SELECT awa.ring_insert('r', queue => 'res') AS r1 \gset
SELECT awa.ring_insert('r', queue => 'res') AS r2 \gset
SELECT awa.ring_insert('r', queue => 'res') AS r3 \gset
SELECT is((SELECT count(*) FROM awa.ring_claim('res', 10)), 3::bigint, 'three jobs claimed');

-- bad input: nothing written
SELECT throws_ok(format($$SELECT * FROM awa.ring_complete_results('{%s, %s}', '{1, 1}', '{null}')$$, :r1, :r2),
	'22023', 'ids, run_leases and results must be one-dimensional arrays of the same length',
	'results shorter than ids: 22023');
SELECT throws_ok(format($$SELECT * FROM awa.ring_complete_results('{%s}', '{1, 1}', '{null}')$$, :r1),
	'22023', 'ids, run_leases and results must be one-dimensional arrays of the same length',
	'run_leases longer than ids: 22023');
SELECT throws_ok(format($$SELECT * FROM awa.ring_complete_results('{{%s}}', '{{1}}', '{{null}}')$$, :r1),
	'22023', 'ids, run_leases and results must be one-dimensional arrays of the same length',
	'two-dimensional arrays: 22023');
SET LOCAL awa.max_args_bytes = 1024;
SELECT throws_ok(format($$SELECT * FROM awa.ring_complete_results('{%s}', '{1}', ARRAY[to_jsonb(repeat('x', 2000))])$$,
	:r1), '54000', NULL, 'a result larger than awa.max_args_bytes: 54000');
RESET awa.max_args_bytes;
SELECT throws_ok($$SELECT * FROM awa.ring_dependents(NULL)$$, '22023', 'job_id must not be null',
	'ring_dependents: NULL job_id');
SELECT is((SELECT count(*) FROM awa.done), 0::bigint, 'no bad call wrote a done row');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM awa.ring_jobs WHERE kind = 'r'),
	ARRAY['running', 'running', 'running'], 'the three still run');

-- results: stored with the completion; a stale lease completes nothing; the second completion is a no-op
SELECT results_eq(format($$SELECT * FROM awa.ring_complete_results('{%s, %s, %s}', '{1, 1, 7}',
		ARRAY['{"rows": 7}', NULL, '3']::jsonb[]) ORDER BY 1$$, :r1, :r2, :r3),
	format('VALUES (%s::bigint), (%s)', :r1, :r2), 'the running attempts completed, not the stale lease');
SELECT results_eq(format('SELECT state::text, result FROM awa.ring_jobs WHERE id IN (%s, %s, %s) ORDER BY id',
		:r1, :r2, :r3),
	$$VALUES ('completed', '{"rows": 7}'::jsonb), ('completed', NULL), ('running', NULL)$$,
	'the result is the job''s; NULL: none; the running job has none');
SELECT is((SELECT result FROM awa.ring_get(:r1)), '{"rows": 7}'::jsonb, 'awa.ring_get reads it');
SELECT is_empty(format($$SELECT * FROM awa.ring_complete_results('{%s}', '{1}', '{"2"}')$$, :r1),
	'completing again: nothing');
SELECT is((SELECT result FROM awa.ring_get(:r1)), '{"rows": 7}'::jsonb, 'the first result stays');
SELECT results_eq(format($$SELECT * FROM awa.ring_complete_results('{%s}', '{1}', '{"[1, 2]"}')$$, :r3),
	format('VALUES (%s::bigint)', :r3), 'the third completes with its lease');
SELECT is((SELECT result FROM awa.ring_get(:r3)), '[1, 2]'::jsonb, 'with its result');

-- dependents: in id order, their policy, satisfied and how many parents each waits for
SELECT awa.ring_insert('p', queue => 'dep') AS p \gset
SELECT awa.ring_insert('p', queue => 'dep') AS q \gset
SELECT awa.ring_insert('c', queue => 'dep2', after => ARRAY[:p, :q]::bigint[], on_parent_failure => 'run') AS c1 \gset
SELECT awa.ring_insert('c', queue => 'dep2', after => ARRAY[:p]::bigint[], on_parent_failure => 'wait') AS c2 \gset
SELECT awa.ring_insert('c', queue => 'dep2', after => ARRAY[:p]::bigint[]) AS c3 \gset
SELECT results_eq(format('SELECT * FROM awa.ring_dependents(%s)', :p),
	format($$VALUES (%s::bigint, 'c'::text, 'scheduled'::awa.job_state, false, 2, 'run'::text),
		(%s, 'c', 'scheduled', false, 1, 'wait'), (%s, 'c', 'scheduled', false, 1, 'cancel')$$, :c1, :c2, :c3),
	'three dependents, waiting');
SELECT is_empty(format('SELECT * FROM awa.ring_dependents(%s)', :c1), 'a job nothing runs after: none');
SELECT is((SELECT count(*) FROM awa.ring_claim('dep', 1)), 1::bigint, 'the first parent claimed');
SELECT results_eq(format($$SELECT * FROM awa.ring_complete_results('{%s}', '{1}', '{"\"p\""}')$$, :p),
	format('VALUES (%s::bigint)', :p), 'and completed with a result');
SELECT results_eq(format('SELECT dependent_id, state::text, satisfied, waiting_for FROM awa.ring_dependents(%s)', :p),
	format($$VALUES (%s::bigint, 'scheduled', true, 1), (%s, 'available', true, 0), (%s, 'available', true, 0)$$,
		:c1, :c2, :c3),
	'satisfied edges too (every edge of the parent): released where it was the last parent');
SELECT results_eq(format('SELECT parent_id, result FROM awa.ring_parent_results(%s)', :c1),
	format($$VALUES (%s::bigint, '"p"'::jsonb), (%s, NULL)$$, :p, :q), 'the parent''s result, read by the child');

-- a dependent cancelled because its parent failed: its errors say why (as awa.jobs'), a plain cancel does not
SELECT awa.ring_insert('f', queue => 'fail') AS f \gset
SELECT awa.ring_insert('fc', queue => 'fail2', after => ARRAY[:f]::bigint[]) AS fc \gset
SELECT awa.ring_insert('x', queue => 'plain', run_at => now() + interval '1 day') AS x \gset
SELECT is(awa.ring_fail((SELECT id FROM awa.ring_claim('fail', 1)), 1, '"boom"', false)::text, 'failed',
	'the parent fails for good');
SELECT is((SELECT (state, attempt, errors[1]->'attempt', errors[1]->>'error', (errors[1]->>'at')::timestamptz = finalized_at,
		cardinality(errors))::text FROM awa.ring_jobs WHERE id = :fc),
	format('(cancelled,0,0,"cancelled: job %s it runs after is failed",t,1)', :f),
	'the cancelled child: one error, attempt 0 (it never ran), naming the parent');
SELECT ok(awa.ring_cancel(:x), 'a plain cancel');
SELECT is((SELECT errors FROM awa.ring_jobs WHERE id = :x), '{}'::jsonb[], 'has no error');

-- the counters, nothing on the hot path updated or deleted
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'the counters agree with a recount');
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done)_[0-9]+$'), 0::numeric,
	'no ready row, receipt or done row was updated or deleted');

SELECT * FROM finish();
ROLLBACK;
