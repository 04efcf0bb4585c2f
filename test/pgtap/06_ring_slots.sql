-- The ring's slots (docs/storage.md, "Step 4: sealing and reclaiming slots"): awa.ring_rotate seals the open
-- slot and opens a free one; awa.ring_reclaim carries the unfinished jobs of a sealed slot into the open one,
-- keeping id, run_lease and attempt, moves the retained finished ones into awa.ring_history ("Step 5: history of
-- finished jobs", 06_ring_history.sql), and truncates the slot; a slot another session holds a lock on
-- is skipped, not waited on.  Reclaiming needs committed rows and no older snapshot, so this file runs
-- statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS dblink;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET awa.ring_engine = on;
SET statement_timeout = '20s';
SELECT plan(55);

\ir lib/ring_reclaim.psql
CREATE FUNCTION pg_temp.open_slot() RETURNS smallint LANGUAGE sql AS $$
	SELECT slot FROM awa.ring_slots WHERE state = 'open' $$;
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);

-- the switch and bad input (22023 naming the field; nothing changes)
SET awa.ring_engine = off;
SELECT throws_ok($$SELECT * FROM awa.ring_rotate()$$, '55000', NULL, 'ring_rotate refuses while the ring is off');
SELECT throws_ok($$SELECT * FROM awa.ring_reclaim()$$, '55000', NULL, 'ring_reclaim refuses while the ring is off');
SET awa.ring_engine = on;
INSERT INTO j SELECT x.n, awa.ring_insert('k', queue => 'rs', run_at => now() - x.ago)
	FROM (VALUES ('h', interval '4 minutes'), ('a', '3 minutes'), ('b', '2 minutes'), ('c', '1 minute')) x(n, ago);
SELECT throws_ok($$SELECT * FROM awa.ring_rotate(0)$$, '22023', 'max_rows must be at least 1', 'max_rows 0');
SELECT throws_ok($$SELECT * FROM awa.ring_rotate(NULL)$$, '22023', 'max_rows must not be null', 'max_rows null');
SELECT throws_ok($$SELECT * FROM awa.ring_rotate(1, '0 seconds')$$, '22023', 'max_age must be positive', 'max_age 0');
SELECT throws_ok($$SELECT * FROM awa.ring_rotate(1, '-1 hour')$$, '22023', 'max_age must be positive', 'max_age negative');
SELECT throws_ok($$SELECT * FROM awa.ring_rotate(1, NULL)$$, '22023', 'max_age must not be null', 'max_age null');
SELECT throws_ok($$SELECT * FROM awa.ring_reclaim(-1)$$, '22023', 'carry_max must be between 0 and 1000000',
	'carry_max negative');
SELECT throws_ok($$SELECT * FROM awa.ring_reclaim(NULL)$$, '22023', 'carry_max must not be null', 'carry_max null');
SELECT is((SELECT array_agg(state ORDER BY slot) FROM awa.ring_slots), ARRAY['open', 'sealed', 'sealed', 'sealed'],
	'bad input changed no slot');

-- rotation: below the limits nothing changes
SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(10, '1 hour')), '(0,,"below limits")',
	'4 ready rows, max_rows 10, opened just now: below limits');
-- slot 0: h fails once (its retry, attempt 1, is a ready row of slot 0), a completes, b runs, c waits
SELECT is((SELECT id FROM awa.ring_claim('rs', 1)), (SELECT id FROM j WHERE n = 'h'), 'h claimed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'h'), 1, '{"e": 1}', retry_in => '0'), 'retryable'::awa.job_state, 'h failed once');
SELECT is((SELECT array_agg(id ORDER BY id) FROM awa.ring_claim('rs', 2, '1 hour', 'w1')),
	(SELECT array_agg(id ORDER BY id) FROM j WHERE n IN ('a', 'b')), 'a and b claimed by w1');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'a')], '{1}')), 1::bigint,
	'a completed');
CREATE TEMP TABLE b_receipt AS SELECT * FROM awa.claims WHERE job_id = (SELECT id FROM j WHERE n = 'b');
CREATE TEMP TABLE a_done AS SELECT * FROM awa.done WHERE job_id = (SELECT id FROM j WHERE n = 'a');

SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(5, '1 hour')), '(0,1,rotated)',
	'5 ready rows reach max_rows 5: slot 0 sealed, slot 1 opened');
SELECT is((SELECT array_agg(state ORDER BY slot) FROM awa.ring_slots), ARRAY['sealed', 'open', 'sealed', 'sealed'],
	'slot 1 is the open slot');
INSERT INTO j VALUES ('d', awa.ring_insert('k', queue => 'rs'));
SELECT is((SELECT slot FROM awa.ready WHERE id = (SELECT id FROM j WHERE n = 'd')), 1::smallint,
	'a new job goes to slot 1');
SELECT is((SELECT outcome FROM awa.ring_rotate(100, '1 hour')), 'below limits', 'slot 1: 1 row, young');
UPDATE awa.ring_slots SET opened_at = now() - interval '2 hours' WHERE slot = 1;
SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(100, '1 hour')), '(1,2,rotated)',
	'slot 1 opened 2 hours ago, max_age 1 hour: sealed, slot 2 opened');
UPDATE awa.ring_slots SET opened_at = now() - interval '2 hours' WHERE slot = 2;
SELECT is((SELECT outcome FROM awa.ring_rotate(100, '1 hour')), 'below limits', 'an empty open slot is not sealed');
INSERT INTO j VALUES ('e', awa.ring_insert('k', queue => 'rs'));
SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(1, '1 hour')), '(2,3,rotated)',
	'slot 2 sealed, slot 3 opened');
INSERT INTO j VALUES ('f', awa.ring_insert('k', queue => 'rs'));
SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(1, '1 hour')), '(3,,"no free slot")',
	'slots 0-2 hold jobs: no free slot, and it says so');
INSERT INTO j VALUES ('g', awa.ring_insert('k', queue => 'rs'));
SELECT is((SELECT array_agg(slot ORDER BY id) FROM awa.ready WHERE id IN (SELECT id FROM j WHERE n IN ('f', 'g'))),
	ARRAY[3, 3]::smallint[], 'the open slot keeps receiving');

-- reclaiming: unfinished and retained jobs keep a slot while there are more than carry_max of them
SET awa.retention_completed = 3600;
SELECT is((SELECT array_agg(row(slot, outcome, carried)::text ORDER BY slot)
	FROM pg_temp.reclaim_round(0)), ARRAY['(0,kept,0)', '(1,kept,0)', '(2,kept,0)'],
	'carry_max 0: every sealed slot holding a job to carry is kept');
SELECT is((SELECT count(*) FROM awa.ready WHERE slot = 0), 5::bigint, 'a kept slot is not truncated');

-- a slot another session holds a lock on is skipped, not waited on
SELECT dblink_connect('busy', format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(),
	current_user));
SELECT dblink_exec('busy', 'BEGIN');
SELECT dblink_exec('busy', 'LOCK awa.done_1 IN ACCESS SHARE MODE');
SELECT is((SELECT array_agg(row(slot, outcome, unfinished, retained, carried)::text ORDER BY slot)
	FROM pg_temp.reclaim_round(10)), ARRAY['(0,reclaimed,3,1,3)', '(1,busy,1,0,0)', '(2,reclaimed,1,0,1)'],
	'slot 1 is locked by another session: skipped; slots 0 and 2 carried forward (a, retained: into the history) and truncated');
SELECT dblink_exec('busy', 'COMMIT');
SELECT dblink_disconnect('busy');
SELECT is_empty('SELECT * FROM awa.ring_recount()',
	'the counters equal a recount after the carry (carried rows are not counted again)');

SELECT is((SELECT (SELECT count(*) FROM awa.ready_0) + (SELECT count(*) FROM awa.claims_0)
	+ (SELECT count(*) FROM awa.done_0)), 0::bigint, 'slot 0 is empty');
SELECT is((SELECT array_agg(n || ':' || r.slot || ':' || r.run_lease || ':' || r.attempt ORDER BY n)
	FROM awa.ready r JOIN j USING (id) WHERE n IN ('a', 'b', 'c', 'e', 'h')),
	ARRAY['b:3:0:0', 'c:3:0:0', 'e:3:0:0', 'h:3:1:1'],
	'carried ready rows keep id, run_lease and attempt (h''s retry: lease 1, attempt 1), in the open slot 3');
SELECT is((SELECT row(c.slot, c.run_lease, c.claimed_at, c.deadline_at, c.lease, c.claimed_by)::text
	FROM awa.claims c WHERE c.job_id = (SELECT id FROM j WHERE n = 'b')),
	(SELECT row(3, r.run_lease, r.claimed_at, r.deadline_at, r.lease, r.claimed_by)::text FROM b_receipt r),
	'b''s receipt carried with its lease, deadline and worker');
-- changed by the history of finished jobs (06_ring_history.sql): a retained finished job is not carried
SELECT is((SELECT row(g.run_lease, g.state, g.finalized_at)::text FROM awa.ring_get((SELECT id FROM j WHERE n = 'a')) g
	WHERE NOT EXISTS (SELECT 1 FROM awa.done d WHERE d.job_id = g.id)),
	(SELECT row(r.run_lease, r.state, r.finalized_at)::text FROM a_done r),
	'a, completed within retention, moved into the history (no done row carried), read with its lease, state, finalized_at');
SELECT is((SELECT count(*) FROM awa.ready WHERE id = (SELECT id FROM j WHERE n = 'h')), 1::bigint,
	'h''s ended attempt (retryable) is not carried: only its retry is');
SELECT is((SELECT array_agg(row(slot, outcome, carried)::text ORDER BY slot) FROM pg_temp.reclaim_round(10)),
	ARRAY['(0,empty,0)', '(1,reclaimed,1)', '(2,empty,0)'], 'next round: slot 1 reclaimed');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after slot 1''s carry');

-- carried jobs are claimed exactly once; the carried running attempt ends under its lease
CREATE TEMP TABLE got AS SELECT * FROM awa.ring_claim('rs', 100);
SELECT is((SELECT array_agg(n || ':' || got.run_lease || ':' || got.attempt ORDER BY n) FROM got JOIN j USING (id)),
	ARRAY['c:1:1', 'd:1:1', 'e:1:1', 'f:1:1', 'g:1:1', 'h:2:2'],
	'every waiting job claimed once (h''s second attempt: lease 2, attempt 2); not a, not b');
SELECT is((SELECT count(*) FROM awa.ring_claim('rs', 100)), 0::bigint, 'nothing is claimed twice');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'b')], '{1}')), 1::bigint,
	'b completes under its carried receipt');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY(SELECT id FROM got WHERE id <> (SELECT id FROM j WHERE n = 'h')),
	ARRAY(SELECT run_lease FROM got WHERE id <> (SELECT id FROM j WHERE n = 'h')))), 5::bigint, 'the others complete');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'h'), 2, NULL, retry => false), 'failed'::awa.job_state,
	'h fails for good');

-- retention: a fully ended slot is truncated only once its finished jobs are past retention
SELECT is((SELECT row(open_slot, opened, outcome)::text FROM awa.ring_rotate(1, '1 hour')), '(3,0,rotated)',
	'slot 3 sealed, slot 0 (free) opened');
SET awa.retention_failed = 3600;
-- changed by the history of finished jobs (06_ring_history.sql): retained finished jobs go into awa.ring_history,
-- carry_max counts unfinished jobs only, and the history expires by awa.ring_history_expire()
SELECT is((SELECT row(outcome, unfinished, retained, carried)::text FROM pg_temp.reclaim_round(7) WHERE slot = 3),
	'(reclaimed,0,7,0)',
	'7 jobs within retention (6 completed, h failed), carry_max 7: moved into the history, slot 3 truncated');
SET awa.retention_completed = 0;
SELECT is((SELECT row(batches, jobs)::text FROM awa.ring_history_expire()), '(2,7)',
	'the completed past retention expire (a''s batch, slot 3''s), h failed within awa.retention_failed is kept');
SET awa.retention_failed = -1;
SELECT is((SELECT row(batches, jobs)::text FROM awa.ring_history_expire()), '(0,0)',
	'awa.retention_failed -1 keeps failed jobs forever');
SET awa.retention_failed = 0;
SELECT is((SELECT row(batches, jobs)::text FROM awa.ring_history_expire()), '(1,1)',
	'every job past retention: the history is empty');
SELECT is((SELECT count(*) FROM awa.ready) + (SELECT count(*) FROM awa.claims) + (SELECT count(*) FROM awa.done)
	+ (SELECT count(*) FROM awa.ring_history), 0::bigint, 'the ring is empty');
SELECT is(coalesce((SELECT row(available, running, failed, cancelled, completed_last_hour)::text FROM awa_queue_stats()
	WHERE queue = 'rs'), 'no row'), 'no row', 'the truncated jobs left the counters (failed and completed)');
SELECT is_empty('SELECT * FROM awa.ring_recount()', 'the counters equal a recount after the truncation');
-- a completed unique job that goes with its slot lets go of its key
CREATE TEMP TABLE u AS SELECT awa.ring_insert('uk', '{"u": 1}', 'rs', unique_by_args => true) AS id;
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY(SELECT id FROM awa.ring_claim('rs', 1)), '{1}')),
	1::bigint, 'a unique job completed');
SELECT is(awa.ring_insert('uk', '{"u": 1}', 'rs', unique_by_args => true), (SELECT id FROM u),
	'its key is held: the same insert returns it');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'its slot sealed');
SELECT is((SELECT count(*) FROM pg_temp.reclaim_round(0) WHERE outcome = 'reclaimed'), 1::bigint, 'and reclaimed');
SELECT is_empty('SELECT * FROM awa.ring_recount()',
	'the counters equal a recount after a job past retention went with its slot (counted before the locks)');
SELECT isnt(awa.ring_insert('uk', '{"u": 1}', 'rs', unique_by_args => true), (SELECT id FROM u),
	'the key went with the job: the same insert enqueues a new job');
DROP TABLE u;
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs is untouched');

SELECT * FROM finish();
RESET statement_timeout;
DROP TABLE b_receipt, a_done, got;
DROP EXTENSION awa;
DROP EXTENSION dblink;
