-- The history of finished ring jobs (docs/storage.md, "Step 5: history of finished jobs"): a reclaim moves the
-- finished jobs a sealed slot still retains into batches of awa.ring_history instead of carrying them, and
-- truncates the slot; they read the same through awa.ring_get and awa.ring_jobs (every column) until
-- awa.ring_history_expire() drops them past retention; a carried job keeps its earlier attempts' errors; the
-- counters stay exact and unique keys stay held until expiry.  Reclaiming needs committed rows and no older
-- snapshot, so this file runs statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS dblink;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET awa.ring_engine = on;
SET statement_timeout = '30s';
SET awa.retention_completed = 86400;
SET awa.retention_failed = 604800;
SELECT plan(57);

\ir lib/ring_reclaim.psql
-- the attempts of a job's errors, in order
CREATE FUNCTION pg_temp.error_attempts(errors jsonb[]) RETURNS int[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg((e ->> 'attempt')::int ORDER BY o), '{}') FROM unnest(errors) WITH ORDINALITY x(e, o) $$;
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);

-- the relation and the function: internal like the ring
SELECT is((SELECT count(*) FROM awa.ring_history), 0::bigint, 'awa.ring_history is created empty');
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.oid IN ('awa.ring_history'::regclass, 'awa.ring_live_jobs'::regclass) AND a.grantee <> c.relowner), 0::bigint,
	'no role is granted awa.ring_history or awa.ring_live_jobs');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	WHERE p.oid = 'awa.ring_history_expire()'::regprocedure AND a.grantee <> p.proowner), 0::bigint,
	'no role and not PUBLIC may execute ring_history_expire');
SET awa.ring_engine = off;
SELECT throws_ok($$SELECT * FROM awa.ring_history_expire()$$, '55000', NULL,
	'ring_history_expire refuses while the ring is off');
SET awa.ring_engine = on;

-- slot 0: c completes (with a heartbeat and progress); f fails once, then for good; x is cancelled; w fails twice
-- and waits for its third attempt; u, a unique job, completes; s fails and waits out a backoff in awa.scheduled;
-- o is claimed in slot 0 and fails once after the rotation (its retry is a ready row of slot 1)
INSERT INTO j SELECT x.n, awa.ring_insert('k', jsonb_build_object('n', x.n), 'rh', run_at => now() - x.ago)
	FROM (VALUES ('c', interval '7 minutes'), ('f', '6 minutes'), ('x', '5 minutes'), ('w', '4 minutes'),
		('s', '3 minutes'), ('o', '2 minutes')) x(n, ago);
INSERT INTO j VALUES ('u', awa.ring_insert('k', '{"n": "u"}', 'rh', run_at => now() - interval '1 minute',
	unique_by_args => true));
SELECT is((SELECT array_agg(n ORDER BY n) FROM j JOIN awa.ring_claim('rh', 2) USING (id)), ARRAY['c', 'f'],
	'c and f claimed');
SELECT isnt(awa.ring_heartbeat((SELECT id FROM j WHERE n = 'c'), 1, progress => '{"p": 50}'), NULL, 'c beats');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'c')], '{1}')), 1::bigint,
	'c completed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 1, '{"e": "f1"}', retry_in => '0'), 'retryable'::awa.job_state,
	'f failed once');
SELECT is(awa.ring_cancel((SELECT id FROM j WHERE n = 'x')), true, 'x cancelled');
SELECT is((SELECT array_agg(n ORDER BY n) FROM j JOIN awa.ring_claim('rh', 1) USING (id)), ARRAY['w'], 'w claimed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'w'), 1, '{"e": "w1"}', retry_in => '0'), 'retryable'::awa.job_state,
	'w failed once');
SELECT is((SELECT array_agg(n ORDER BY n) FROM j JOIN awa.ring_claim('rh', 3) USING (id)), ARRAY['o', 's', 'u'],
	'o, s and u claimed (the retries are due after them)');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 's'), 1, '{"e": "s1"}', retry_in => '1 hour'),
	'retryable'::awa.job_state, 's failed: its retry waits in awa.scheduled');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'u')], '{1}')), 1::bigint,
	'u completed');
SELECT is((SELECT array_agg(n ORDER BY n) FROM j JOIN awa.ring_claim('rh', 1) USING (id)), ARRAY['f'],
	'f claimed again');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 2, '{"e": "f2"}', retry => false), 'failed'::awa.job_state,
	'f failed for good');
SELECT is((SELECT array_agg(n ORDER BY n) FROM j JOIN awa.ring_claim('rh', 1) USING (id)), ARRAY['w'],
	'w claimed again');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'w'), 2, '{"e": "w2"}', retry_in => '0'), 'retryable'::awa.job_state,
	'w failed twice, its third attempt waits');
SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(1, '1 hour')), '(0,1,rotated)',
	'slot 0 sealed, slot 1 opened');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'o'), 1, '{"e": "o1"}', retry_in => '0'), 'retryable'::awa.job_state,
	'o failed once: its retry is a ready row of slot 1');
CREATE TEMP TABLE before AS SELECT * FROM awa.ring_jobs WHERE queue = 'rh';

-- the reclaim of slot 0: c, f, x, u into the history; w and s carried; o's retry is in slot 1
SELECT is((SELECT array_agg(row(slot, outcome, unfinished, retained, carried)::text) FROM pg_temp.reclaim_round(10) WHERE outcome <> 'empty'),
	ARRAY['(0,reclaimed,2,4,2)'], 'slot 0 reclaimed: 4 retained finished jobs (not carried), 2 unfinished carried');
SELECT is((SELECT (SELECT count(*) FROM awa.ready_0) + (SELECT count(*) FROM awa.claims_0)
	+ (SELECT count(*) FROM awa.done_0) + (SELECT count(*) FROM awa.beats_0)), 0::bigint, 'slot 0 is truncated');
SELECT is((SELECT array_agg(row(h.failed, (SELECT array_agg(x.n ORDER BY x.n) FROM unnest(h.jobs) e
		JOIN j x ON x.id = e.id))::text ORDER BY h.failed) FROM awa.ring_history h),
	ARRAY['(f,"{c,u}")', '(t,"{f,x}")'],
	'the history: one batch of completed jobs (c, u), one of failed and cancelled ones (f, x)');
SELECT is((SELECT array_agg(n ORDER BY n) FROM j WHERE EXISTS (SELECT 1 FROM awa.ready r WHERE r.id = j.id)),
	ARRAY['o', 's', 'w'], 'only the unfinished jobs have ready rows');
SELECT results_eq($$SELECT b::text FROM before b ORDER BY id$$,
	$$SELECT g::text FROM before b CROSS JOIN LATERAL awa.ring_get(b.id) g ORDER BY b.id$$,
	'awa.ring_get: every job (moved or carried) reads as before, every column');
SELECT results_eq($$SELECT b::text FROM before b ORDER BY id$$,
	$$SELECT v::text FROM awa.ring_jobs v WHERE v.queue = 'rh' ORDER BY v.id$$,
	'awa.ring_jobs: every job once, every column as before');
SELECT is((SELECT row(g.state, g.attempt, pg_temp.error_attempts(g.errors), g.finalized_at IS NOT NULL,
		g.progress, g.heartbeat_at IS NOT NULL)::text
	FROM awa.ring_get((SELECT id FROM j WHERE n = 'f')) g), '(failed,2,"{1,2}",t,,f)',
	'f from the history: failed, attempt 2, the errors of both attempts, finalized_at');
SELECT is((SELECT row(g.state, g.progress)::text FROM awa.ring_get((SELECT id FROM j WHERE n = 'c')) g),
	'(completed,"{""p"": 50}")', 'c from the history: completed, its progress');
SELECT is((SELECT row(g.state, g.attempt, pg_temp.error_attempts(g.errors))::text
	FROM awa.ring_get((SELECT id FROM j WHERE n = 'w')) g), '(available,2,"{1,2}")',
	'w, carried: its errors of both earlier attempts');
SELECT is((SELECT row(g.state, pg_temp.error_attempts(g.errors))::text
	FROM awa.ring_get((SELECT id FROM j WHERE n = 's')) g), '(retryable,{1})',
	's, its retry waiting in awa.scheduled: carried, retryable, its error');
SELECT is((SELECT row(g.state, pg_temp.error_attempts(g.errors))::text
	FROM awa.ring_get((SELECT id FROM j WHERE n = 'o')) g), '(available,{1})',
	'o, its retry in slot 1: its error of slot 0 kept');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after the move');
SELECT is(awa.ring_insert('k', '{"n": "u"}', 'rh', unique_by_args => true), (SELECT id FROM j WHERE n = 'u'),
	'u, in the history, still holds its key: the same insert returns it');

-- slot 1: w completes its third attempt and 230 more jobs complete, o stays running; a reclaim that finds the slot
-- busy moves nothing
-- (their ids 20,000 past w's: a batch spans at most 10,000 ids)
SELECT setval('awa.jobs_id_seq', nextval('awa.jobs_id_seq') + 20000) > 0 AS skipped;
INSERT INTO j SELECT 'b' || i, awa.ring_insert('k', jsonb_build_object('b', i), 'rh', run_at => now() - interval '1 minute')
	FROM generate_series(1, 230) i;
CREATE TEMP TABLE got AS SELECT * FROM awa.ring_claim('rh', 1000);
SELECT is((SELECT count(*) FROM got), 232::bigint, 'w, o and the 230 claimed');
SELECT is((SELECT count(*) FROM (SELECT array_agg(id ORDER BY id) AS i, array_agg(run_lease ORDER BY id) AS l FROM got
	WHERE id <> (SELECT id FROM j WHERE n = 'o')) x, awa.ring_complete_many(x.i, x.l)), 231::bigint,
	'w and the 230 completed');
SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(1, '1 hour')), '(1,2,rotated)',
	'slot 1 sealed, slot 2 opened');
CREATE TEMP TABLE before2 AS SELECT * FROM awa.ring_jobs WHERE queue = 'rh';
SELECT dblink_connect('busy', format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(),
	current_user));
SELECT dblink_exec('busy', 'BEGIN');
SELECT dblink_exec('busy', 'LOCK awa.done_1 IN ACCESS SHARE MODE');
SELECT is((SELECT array_agg(row(slot, outcome)::text) FROM pg_temp.reclaim_round(10) WHERE outcome <> 'empty'), ARRAY['(1,busy)'],
	'slot 1 locked by another session: busy');
SELECT dblink_exec('busy', 'COMMIT');
SELECT dblink_disconnect('busy');
SELECT is((SELECT sum(cardinality(jobs)) FROM awa.ring_history), 4::bigint,
	'the busy slot''s jobs were not moved into the history (nor left there twice)');
SELECT results_eq($$SELECT b::text FROM before2 b ORDER BY id$$,
	$$SELECT v::text FROM awa.ring_jobs v WHERE v.queue = 'rh' ORDER BY v.id$$,
	'awa.ring_jobs after the busy round: every job once, as before');
SELECT is((SELECT array_agg(row(slot, outcome, unfinished, retained, carried)::text) FROM pg_temp.reclaim_round(10) WHERE outcome <> 'empty'),
	ARRAY['(1,reclaimed,2,231,2)'],
	'slot 1 reclaimed: 231 finished jobs into the history, o (running) and s (its retry waiting) carried again');
SELECT is((SELECT array_agg(cardinality(jobs) ORDER BY id_lo) FROM awa.ring_history WHERE NOT failed),
	ARRAY[2, 1, 100, 100, 30],
	'batches of at most 100 jobs and 10,000 ids, by id (w alone, its range inside slot 0''s batch of c and u)');
SELECT results_eq($$SELECT b::text FROM before2 b ORDER BY id$$,
	$$SELECT g::text FROM before2 b CROSS JOIN LATERAL awa.ring_get(b.id) g ORDER BY b.id$$,
	'awa.ring_get: every job reads as before the round, every column (ranges overlapping)');
SELECT results_eq($$SELECT b::text FROM before2 b ORDER BY id$$,
	$$SELECT v::text FROM awa.ring_jobs v WHERE v.queue = 'rh' ORDER BY v.id$$,
	'awa.ring_jobs: every job once, every column as before the round');
SELECT is((SELECT row(g.state, g.attempt, pg_temp.error_attempts(g.errors))::text
	FROM awa.ring_get((SELECT id FROM j WHERE n = 'w')) g), '(completed,3,"{1,2}")',
	'w, carried once and completed: in the history with the errors of both earlier attempts');
SELECT is((SELECT row(g.state, pg_temp.error_attempts(g.errors))::text
	FROM awa.ring_get((SELECT id FROM j WHERE n = 'o')) g), '(running,{1})',
	'o, carried while running: its error kept');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after the second move');

-- expiry, by retention class
SET awa.retention_completed = 0;
SELECT is((SELECT row(batches, jobs)::text FROM awa.ring_history_expire()), '(5,233)',
	'completed jobs past awa.retention_completed expire (5 batches, 233 jobs); failed and cancelled ones stay');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after the expiry');
SELECT is(awa.ring_get((SELECT id FROM j WHERE n = 'c')), NULL, 'c is gone');
SELECT isnt(awa.ring_insert('k', '{"n": "u"}', 'rh', unique_by_args => true), (SELECT id FROM j WHERE n = 'u'),
	'u let go of its key: the same insert enqueues a new job');
SELECT is((SELECT array_agg(g.state::text ORDER BY g.id) FROM j CROSS JOIN LATERAL awa.ring_get(j.id) g
	WHERE j.n IN ('f', 'x')), ARRAY['failed', 'cancelled'], 'f and x are still there');
SET awa.retention_failed = -1;
SELECT is((SELECT row(batches, jobs)::text FROM awa.ring_history_expire()), '(0,0)',
	'awa.retention_failed -1 keeps failed and cancelled jobs forever');
SET awa.retention_failed = 0;
SELECT is((SELECT row(batches, jobs)::text FROM awa.ring_history_expire()), '(1,2)',
	'failed and cancelled jobs past awa.retention_failed expire');
SELECT is((SELECT count(*) FROM awa.ring_history), 0::bigint, 'the history is empty');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after the last expiry');

-- nothing on the hot path's relations was updated or deleted
SELECT pg_stat_force_next_flush();
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done)_[0-9]+$'), 0::numeric,
	'no ready row, receipt or done row was updated or deleted');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs is untouched');

SELECT * FROM finish();
RESET statement_timeout;
DROP TABLE before, before2, got;
DROP EXTENSION awa;
DROP EXTENSION dblink;
