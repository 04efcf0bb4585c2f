-- Faults the crash and fuzz tests found on the ring (docs/storage.md, "Step 5: crash and fuzz tests on the ring"),
-- each held here, in a database on the ring engine (awa.jobs is the ring's view; the ring's own functions run
-- there without awa.ring_engine).  Reclaiming needs committed rows and no older snapshot, so this file runs
-- statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET awa.install_engine = ring;
CREATE EXTENSION awa;
RESET awa.install_engine;
SET statement_timeout = '30s';
SET awa.retention_completed = 86400;
SET awa.retention_failed = 604800;
SELECT plan(60);

\ir lib/ring_reclaim.psql
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);

-- A job whose attempts span two slots, the newer slot reclaimed first.  j's first attempt is claimed in slot 0 and
-- fails after the rotation (its retry: a ready row of slot 1), the retry completes; k waits in slot 0, so that a
-- reclaim that may carry nothing keeps slot 0.  Reclaiming slot 1 alone must not move j into the history while
-- slot 0 still holds j's first attempt: the view would read that attempt as j again (retryable), next to j's
-- history row -- j twice, and the counters off by one.
INSERT INTO j VALUES ('j', awa.ring_insert('k', '{"n": "j"}', 'rcrash')), ('k', awa.ring_insert('k', '{}', 'rcrash_k'));
SELECT is((SELECT count(*) FROM awa.ring_claim('rcrash', 1)), 1::bigint, 'j claimed in slot 0');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'slot 0 sealed, slot 1 open');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'j'), 1, '"boom"', true, '0'), 'retryable'::awa.job_state,
	'j''s first attempt fails: retried now, a ready row of slot 1');
SELECT is((SELECT count(*) FROM (SELECT array_agg(id) AS i, array_agg(run_lease) AS l FROM awa.ring_claim('rcrash', 1)) c,
	awa.ring_complete_many(c.i, c.l)), 1::bigint, 'j''s second attempt completes in slot 1');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'slot 1 sealed');
SELECT results_eq('SELECT slot, outcome FROM pg_temp.reclaim_round(0) WHERE outcome <> ''empty''', $$VALUES (0::smallint, 'kept'), (1::smallint, 'kept')$$,
	'carrying nothing, slot 0 is kept (k waits) and so is slot 1 (j''s first attempt is in slot 0)');
SELECT results_eq($$SELECT state::text, attempt::int, errors[1] ->> 'error' FROM awa.ring_jobs
	WHERE id = (SELECT id FROM j WHERE n = 'j')$$, $$VALUES ('completed', 2, 'boom')$$,
	'j is one job: completed, 2 attempts, the first one''s error');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount');
SELECT results_eq('SELECT slot, outcome FROM pg_temp.reclaim_round(10) WHERE outcome <> ''empty''', $$VALUES (0::smallint, 'reclaimed'), (1::smallint, 'reclaimed')$$,
	'then both slots are reclaimed');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'the slot j was carried into sealed');
SELECT results_eq('SELECT slot, outcome FROM pg_temp.reclaim_round(10) WHERE outcome <> ''empty''', $$VALUES (2::smallint, 'reclaimed')$$, 'and reclaimed');
SELECT results_eq($$SELECT state::text, attempt::int, errors[1] ->> 'error',
	EXISTS (SELECT 1 FROM awa.ring_history h, unnest(h.jobs) x WHERE x.id = r.id)
	FROM awa.ring_jobs r WHERE id = (SELECT id FROM j WHERE n = 'j')$$, $$VALUES ('completed', 2, 'boom', true)$$,
	'j is one job, in the history, its first attempt''s error kept');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters still equal a recount');

-- An attempt whose wait ended has two done rows (waiting_external, then the end of the wait): the reclaim must read
-- the end.  w is parked in slot 0 and its callback fails it there; retried (a ready row of slot 1), then both slots
-- reclaimed, then w cancelled and its slot reclaimed.  Reading the waiting_external row, the reclaim took w's first
-- attempt for a held one and carried it with its ready row: once w's newest attempt went into the history, the view
-- read that first attempt as w again (failed), beside its history row (cancelled).
INSERT INTO j VALUES ('w', awa.ring_insert('k', '{"n": "w"}', 'rcrash_w'));
SELECT is((SELECT count(*) FROM awa.ring_claim('rcrash_w', 1)), 1::bigint, 'w claimed');
CREATE TEMP TABLE cb AS SELECT awa.ring_register_callback((SELECT id FROM j WHERE n = 'w'), 1, '1 hour') AS cb;
SELECT ok(awa.ring_wait_external((SELECT id FROM j WHERE n = 'w'), 1), 'w parked');
SELECT ok(awa.ring_fail_external((SELECT cb FROM cb), 'no'), 'its callback fails it');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'its slot sealed');
SELECT ok(awa.ring_retry((SELECT id FROM j WHERE n = 'w')), 'w retried: a ready row of the open slot');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'that slot sealed');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(10) WHERE outcome = 'reclaimed'), 2::bigint, 'both reclaimed');
SELECT ok(awa.ring_cancel((SELECT id FROM j WHERE n = 'w')), 'w cancelled');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'its slot sealed');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(10) WHERE outcome = 'reclaimed'), 1::bigint, 'and reclaimed');
SELECT results_eq($$SELECT state::text, errors[1] ->> 'error' FROM awa.ring_jobs WHERE id = (SELECT id FROM j WHERE n = 'w')$$,
	$$VALUES ('cancelled', 'no')$$, 'w is one job: cancelled, its first attempt''s error kept');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount');
DROP TABLE cb;

-- awa_insert of a unique job whose key a finished job holds from awa.ring_history (its slot reclaimed within its
-- retention) returns that job, as it returns a holder in the slots (was XX000: "job ... is not in the ring").
INSERT INTO j SELECT 'u', (awa_insert('uk', '{"u": 1}', 'rcrash_u', unique_by_args => true,
	unique_states => '{scheduled,available,running,retryable,waiting_external,completed}')).id;
SELECT is((SELECT count(*) FROM (SELECT awa_complete(c.id, c.run_lease) FROM awa_claim('rcrash_u') c) x), 1::bigint,
	'a unique job completed (completed among its unique_states)');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'its slot sealed');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(10) WHERE outcome = 'reclaimed'), 1::bigint,
	'and reclaimed: the job is in the history');
SELECT results_eq($$SELECT id, state::text FROM awa_insert('uk', '{"u": 1}', 'rcrash_u', unique_by_args => true,
	unique_states => '{scheduled,available,running,retryable,waiting_external,completed}')$$,
	$$SELECT id, 'completed' FROM j WHERE n = 'u'$$, 'the same insert returns the holder, from the history');
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'rcrash_u'), 1::bigint, 'and enqueues nothing');

-- A unique job that failed and was retried holds its key again; the reclaim of the slot of its failed attempt
-- carries that attempt's done row ('failed') as the job's past, and the copy fired awa.done's key release: the
-- job let go of its key while available, and the same insert enqueued a second job.
INSERT INTO j SELECT 'v', (awa_insert('uk', '{"u": 2}', 'rcrash_v', unique_by_args => true)).id;
SELECT is((SELECT count(*) FROM (SELECT awa_fail(c.id, c.run_lease, 'no', terminal => true) FROM awa_claim('rcrash_v') c) x),
	1::bigint, 'a unique job failed for good: it lets go of its key');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'its slot sealed');
SELECT is((SELECT state::text FROM awa_retry((SELECT id FROM j WHERE n = 'v'))), 'available',
	'retried: available in the open slot, holding its key again');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'that slot sealed');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(10) WHERE outcome = 'reclaimed'), 2::bigint,
	'both reclaimed: the failed attempt''s past carried, the retry carried');
SELECT is((SELECT job_id FROM awa.unique_keys WHERE job_id = (SELECT id FROM j WHERE n = 'v')),
	(SELECT id FROM j WHERE n = 'v'), 'the job still holds its key');
SELECT results_eq($$SELECT id, state::text FROM awa_insert('uk', '{"u": 2}', 'rcrash_v', unique_by_args => true)$$,
	$$SELECT id, 'available' FROM j WHERE n = 'v'$$, 'the same insert returns it');
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'rcrash_v'), 1::bigint, 'and enqueues nothing');

-- A job whose earlier attempt's rows were carried without their ready row (its past, ring_history.c) must not go
-- into the history, nor with its slot, away from them.  x's first attempt fails in slot A (its retry: a ready row
-- of slot B, then sealed too); reclaiming A alone (B kept: x waits there, carry_max 0) carries x's failed attempt's
-- receipt and done row into the open slot C.  x's retry then completes in B.  Reclaiming B moved x into the
-- history and left those rows behind in C: a receipt and a done row of a job with no ready row at all (the crash
-- test's "receipt of a job with no ready row for its attempt or a later one", after a rescue).  k and v, still
-- live, are cancelled first, so that nothing else keeps a slot.
SELECT ok(awa.ring_cancel((SELECT id FROM j WHERE n = 'k')) AND awa.ring_cancel((SELECT id FROM j WHERE n = 'v')),
	'the live jobs above cancelled');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(0) WHERE outcome NOT IN ('reclaimed', 'empty')), 0::bigint, 'every sealed slot reclaimed');
INSERT INTO j VALUES ('x', awa.ring_insert('k', '{"n": "x"}', 'rcrash_x'));
SELECT is((SELECT count(*) FROM awa.ring_claim('rcrash_x', 1)), 1::bigint, 'x claimed in slot A');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'slot A sealed, B open');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'x'), 1, '"boom"', true, '0'), 'retryable'::awa.job_state,
	'x''s first attempt fails: retried now, a ready row of slot B');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'slot B sealed, C open');
SELECT is((SELECT array_agg(outcome ORDER BY outcome) FROM pg_temp.reclaim_round(0) WHERE outcome <> 'empty'), '{kept,reclaimed}',
	'carrying nothing: A reclaimed (x''s first attempt''s rows carried into C), B kept (x waits there)');
SELECT is((SELECT count(*) FROM (SELECT array_agg(id) AS i, array_agg(run_lease) AS l FROM awa.ring_claim('rcrash_x', 1)) c,
	awa.ring_complete_many(c.i, c.l)), 1::bigint, 'x''s second attempt completes in slot B');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(10) WHERE outcome = 'reclaimed'), 1::bigint, 'B reclaimed');
SELECT is_empty($$SELECT c.job_id FROM awa.claims c WHERE NOT EXISTS (SELECT 1 FROM awa.ready r
	WHERE r.id = c.job_id AND r.run_lease >= c.run_lease - 1)
	UNION ALL SELECT d.job_id FROM awa.done d WHERE NOT EXISTS (SELECT 1 FROM awa.ready r
	WHERE r.id = d.job_id AND r.run_lease >= d.run_lease - 1)$$,
	'no receipt nor done row is left without a ready row of its attempt or a later one (x carried into C)');
SELECT results_eq($$SELECT state::text, attempt::int, errors[1] ->> 'error' FROM awa.ring_jobs
	WHERE id = (SELECT id FROM j WHERE n = 'x')$$, $$VALUES ('completed', 2, 'boom')$$,
	'x is one job: completed, 2 attempts, the first one''s error');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')), 'rotated', 'slot C sealed');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(10) WHERE outcome = 'reclaimed'), 1::bigint, 'and reclaimed');
SELECT results_eq($$SELECT state::text, attempt::int, errors[1] ->> 'error',
	EXISTS (SELECT 1 FROM awa.ring_history h, unnest(h.jobs) x WHERE x.id = r.id)
	FROM awa.ring_jobs r WHERE id = (SELECT id FROM j WHERE n = 'x')$$, $$VALUES ('completed', 2, 'boom', true)$$,
	'x is one job, in the history, its first attempt''s error kept');
SELECT is_empty($$SELECT job_id FROM awa.claims WHERE job_id = (SELECT id FROM j WHERE n = 'x')
	UNION ALL SELECT job_id FROM awa.done WHERE job_id = (SELECT id FROM j WHERE n = 'x')$$,
	'and none of its rows is left in the slots');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters still equal a recount');

-- Shard-aware ids on the ring engine: the ring takes its ids from the sequence the table awa.jobs_table owns
-- (awa.jobs is a view: it owns none); awa_shard() and awa_shard_configure() found no sequence (XX000).
SELECT is(awa_shard(), 0, 'awa_shard() on the ring engine: shard 0');
SELECT cmp_ok(awa_shard_configure(0), '>', (SELECT max(id) FROM awa.jobs),
	'awa_shard_configure(0): the next id is past every job');
SELECT throws_ok('SELECT awa_shard_configure(1)', '55000', 'awa.jobs holds jobs whose ids do not belong to shard 1',
	'a database whose jobs are in shard 0 cannot become shard 1');
SELECT is(awa_shard_of((awa_insert('k', queue => 'rcrash_shard')).id), 0, 'a new job''s id is of shard 0');
SELECT is(awa_shard(), 0, 'and the database is still shard 0');

SELECT * FROM finish();
RESET statement_timeout;
DROP TABLE j;
DROP EXTENSION awa;
