-- Queue flow control on the ring's claim (src/ring_flow.c; docs/storage.md, "Step 5: queue flow control on the
-- ring"): a paused queue hands out nothing (awa.ring_claim and awa.ring_claim_wait with wait 0) and other queues
-- are not held up; a queue's concurrency limit holds exactly across the claims of one transaction, across
-- sessions (a claim waits for another's uncommitted claim of the queue, then counts it), in REPEATABLE READ, and
-- every way a running attempt ends makes room (complete, fail, snooze, cancel, rescue, an external wait); a
-- queue's rate caps its claims and a claim gives back what it did not use; bad input is refused as before, also
-- for a paused or limited queue.  Another session's claims need committed rows, so this file runs statement by
-- statement (autocommit) and drops what it created at the end.  Waking blocked claimers: the isolation specs
-- ring_flow_limit and ring_flow_pause.
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE EXTENSION awa;
SET awa.ring_engine = on;
SET client_min_messages = warning;
SET statement_timeout = '20s';
SELECT plan(71);

CREATE FUNCTION pg_temp.claim(q text, b integer, l interval DEFAULT '5 minutes')
RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM awa.ring_claim(q, b, l, 'tap') $$;
CREATE FUNCTION pg_temp.running(q text)
RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM awa.ring_jobs WHERE queue = q AND state = 'running' $$;
-- one running job of the queue (the lowest id): id and run_lease
CREATE FUNCTION pg_temp.one_running(q text, OUT id bigint, OUT run_lease bigint)
LANGUAGE sql AS $$ SELECT id, run_lease FROM awa.ring_jobs WHERE queue = q AND state = 'running' ORDER BY id LIMIT 1 $$;
-- the procedure through a function (jobs as a value): atomic, so wait 0
CREATE FUNCTION pg_temp.claim_wait(q text, b integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE j jsonb;
BEGIN
	CALL awa.ring_claim_wait(q, b, '5 minutes', 'tap', '0', j);
	RETURN j;
END $$;

SELECT is((SELECT count(awa.ring_insert('k', jsonb_build_object('n', i), q,
		run_at => now() - interval '1 hour' + i * interval '1 second'))
	FROM unnest(ARRAY['fp', 'fo', 'fl', 'fr', 'fx', 'ft', 'fu', 'fb']) q, generate_series(1, 12) i), 96::bigint,
	'twelve ready jobs in each of eight queues');

-- pauses --------------------------------------------------------------------------------------------------------
SELECT is(awa_pause_queue('fp'), true, 'fp paused');
SELECT throws_ok($$SELECT pg_temp.claim('fp', 0)$$, '22023', 'batch must be between 1 and 1000',
	'bad input on a paused queue: batch 0 is 22023 as before');
SELECT throws_ok($$SELECT pg_temp.claim('fp', 1, '0')$$, '22023', 'lease must be positive',
	'bad input on a paused queue: lease 0 is 22023 as before');
SELECT throws_ok($$SELECT count(*) FROM awa.ring_claim(NULL, 1, '5 minutes')$$, '22023', 'queue must not be null',
	'queue NULL is 22023 as before');
SELECT is(pg_temp.claim('fp', 5), 0::bigint, 'a paused queue hands out nothing');
SELECT is(pg_temp.claim_wait('fp', 5), NULL, 'nor does awa.ring_claim_wait (wait 0)');
SELECT is(pg_temp.claim('fo', 1), 1::bigint, 'another queue is not held up');
SELECT is((SELECT count(*) FROM awa.ring_jobs WHERE queue = 'fp' AND state = 'available'), 12::bigint,
	'the paused queue''s jobs stay available');
SELECT is(awa_resume_queue('fp'), true, 'fp resumed');
SELECT is(pg_temp.claim('fp', 2), 2::bigint, 'resumed: claims take jobs again');

-- a concurrency limit, across the claims of one transaction -----------------------------------------------------
SELECT is((awa_set_queue_limit('fl', 2)).max_running, 2, 'fl: at most 2 running');
SELECT throws_ok($$SELECT pg_temp.claim('fl', 1001)$$, '22023', 'batch must be between 1 and 1000',
	'bad input on a limited queue: 22023 as before');
BEGIN;
SELECT is(pg_temp.claim('fl', 1), 1::bigint, 'a claim of one in a transaction: one');
SELECT is(pg_temp.claim('fl', 5), 1::bigint, 'the next claim of five in the same transaction: the one left');
SELECT is(pg_temp.claim('fl', 5), 0::bigint, 'and then none');
SELECT is(pg_temp.claim_wait('fl', 5), NULL, 'nor awa.ring_claim_wait (wait 0)');
COMMIT;
SELECT is(pg_temp.running('fl'), 2::bigint, 'two running');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'the counters the limit reads equal a recount');
SELECT is(pg_temp.claim('fo', 5), 5::bigint, 'another queue is not limited');

-- every end of a running attempt makes room
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(pg_temp.one_running('fl')).id],
	ARRAY[(pg_temp.one_running('fl')).run_lease])), 1::bigint, 'complete one');
SELECT is(pg_temp.claim('fl', 5), 1::bigint, 'a completion makes room for one');
SELECT is(awa.ring_fail((pg_temp.one_running('fl')).id, (pg_temp.one_running('fl')).run_lease, '{"e": 1}'),
	'retryable'::awa.job_state, 'fail one (retryable, due later)');
SELECT is(pg_temp.claim('fl', 5), 1::bigint, 'a failure makes room for one');
SELECT is(awa.ring_snooze((pg_temp.one_running('fl')).id, (pg_temp.one_running('fl')).run_lease, '1 hour'), true,
	'snooze one');
SELECT is(pg_temp.claim('fl', 5), 1::bigint, 'a snooze makes room for one');
SELECT is(awa.ring_cancel((pg_temp.one_running('fl')).id), true, 'cancel a running one');
SELECT is(pg_temp.claim('fl', 5), 1::bigint, 'a cancel makes room for one');
SELECT ok(awa.ring_register_callback((pg_temp.one_running('fl')).id, (pg_temp.one_running('fl')).run_lease,
	'1 hour') IS NOT NULL, 'a callback for one');
SELECT is(awa.ring_wait_external((pg_temp.one_running('fl')).id, (pg_temp.one_running('fl')).run_lease), true,
	'park it for an external wait');
SELECT is(pg_temp.claim('fl', 5, '1 millisecond'), 1::bigint, 'an external wait makes room for one (claimed with a lease of 1 ms)');
SELECT pg_sleep(0.01);
SELECT is(awa.ring_rescue(), 1::bigint, 'the rescue ends the attempt past its deadline');
SELECT is(pg_temp.claim('fl', 5), 1::bigint, 'a rescue makes room for one');
SELECT is(pg_temp.running('fl'), 2::bigint, 'still two running');
SELECT is((awa_set_queue_limit('fl', 1)).max_running, 1, 'the limit lowered under the running jobs');
SELECT is(pg_temp.claim('fl', 5), 0::bigint, 'nothing more starts');
SELECT is((awa_set_queue_limit('fl', 4)).max_running, 4, 'the limit raised to 4');
SELECT is(pg_temp.claim('fl', 5), 2::bigint, 'two more start');
SELECT is((awa_set_queue_limit('fl', NULL)).max_running, NULL, 'the limit lifted');
CREATE TEMP TABLE fl_available AS
	SELECT count(*) AS n FROM awa.ring_jobs WHERE queue = 'fl' AND state = 'available' AND run_at <= now();
SELECT cmp_ok((SELECT n FROM fl_available), '>=', 2::bigint, 'the two never claimed are available, and any retry due');
SELECT is(pg_temp.claim('fl', 100), (SELECT n FROM fl_available), 'they all start');

-- across sessions: a claim waits for another's uncommitted claim of the queue, then counts it ----------------------
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(),
	current_user));
SELECT dblink_exec('other', 'SET awa.ring_engine = on');
SELECT is((awa_set_queue_limit('fx', 3)).max_running, 3, 'fx: at most 3 running');
BEGIN;
SELECT is(pg_temp.claim('fx', 2), 2::bigint, 'this session claims two, not committed yet');
SELECT dblink_send_query('other', $$SELECT count(*) FROM awa.ring_claim('fx', 5, '5 minutes', 'other')$$);
-- up to 30 s for the other session to reach the lock (its first claim plans the ring's statements; a loaded
-- machine has taken more than 5 s)
DO $$
BEGIN
	FOR i IN 1..3000 LOOP
		EXIT WHEN EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE NOT l.granted AND l.locktype = 'advisory' AND a.query LIKE '%''other''%');
		PERFORM pg_sleep(0.01);
		-- pg_stat_activity is read once per transaction unless cleared: a first look before the other session
		-- sent its query would keep its old query text for the whole loop
		PERFORM pg_stat_clear_snapshot();
	END LOOP;
END $$;
SELECT ok(EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	WHERE NOT l.granted AND l.locktype = 'advisory' AND a.query LIKE '%''other''%'),
	'the other session''s claim waits for this one''s');
COMMIT;
SELECT is((SELECT n FROM dblink_get_result('other') AS r(n bigint)), 1::bigint,
	'after the commit it counts this session''s two and takes the one left');
SELECT is((SELECT n FROM dblink_get_result('other') AS r(n bigint)), NULL, '(end of its result)');

-- REPEATABLE READ: the count reads the newest snapshot, not the transaction's
SELECT is((awa_set_queue_limit('fr', 2)).max_running, 2, 'fr: at most 2 running');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT is(pg_temp.running('fr'), 0::bigint, 'a REPEATABLE READ snapshot with none running');
SELECT is((SELECT n FROM dblink('other', $$SELECT count(*) FROM awa.ring_claim('fr', 1, '5 minutes', 'other')$$) AS r(n bigint)),
	1::bigint, 'the other session claims one and commits');
SELECT is(pg_temp.claim('fr', 5), 1::bigint, 'this claim counts it: one more, not two');
COMMIT;
SELECT dblink_disconnect('other');
-- after a fold of the counters (a maintenance round) the running jobs are counted from the fold
SELECT FROM awa_maintain();
SELECT cmp_ok((SELECT max(fold) FROM awa.counter_folds), '>', 1::bigint, 'the counters were folded');
SELECT is((SELECT running FROM awa.counter_fold_counts WHERE queue = 'fx' AND fold = (SELECT max(fold) FROM awa.counter_folds)),
	3::bigint, 'the fold holds fx''s three running jobs');
SELECT is(pg_temp.claim('fx', 5), 0::bigint, 'fx at its limit: nothing');
SELECT is(pg_temp.claim('fr', 5), 0::bigint, 'fr at its limit: nothing');

-- rates ---------------------------------------------------------------------------------------------------------
SELECT is((awa_set_queue_rate('ft', 3, '1 minute')).rate_max_claims, 3, 'ft: at most 3 claims a minute');
SELECT is(pg_temp.claim('ft', 2), 2::bigint, 'two claims');
SELECT is(pg_temp.claim('ft', 5), 1::bigint, 'then the one left of the rate');
SELECT is(pg_temp.claim('ft', 5), 0::bigint, 'then none');
SELECT is(pg_temp.claim_wait('ft', 5), NULL, 'nor awa.ring_claim_wait (wait 0)');
-- what a claim did not use is given back
SELECT is((awa_set_queue_rate('fu', 14, '1 minute')).rate_max_claims, 14, 'fu: at most 14 claims a minute');
SELECT is(pg_temp.claim('fu', 20), 12::bigint, 'a claim of 20 finds the 12 jobs (reserved 14: gives 2 back)');
SELECT is((SELECT count(awa.ring_insert('k', '{}', 'fu')) FROM generate_series(1, 5)), 5::bigint, 'five more jobs');
SELECT is(pg_temp.claim('fu', 20), 2::bigint, 'the two given back are claimed, and no more');
-- a limit and a rate: the smaller allowance, the rate's unused part given back
SELECT is((awa_set_queue_limit('fb', 1)).max_running, 1, 'fb: at most 1 running');
SELECT is((awa_set_queue_rate('fb', 2, '1 minute')).rate_max_claims, 2, 'and at most 2 claims a minute');
SELECT is(pg_temp.claim('fb', 5), 1::bigint, 'the limit allows one');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(pg_temp.one_running('fb')).id],
	ARRAY[(pg_temp.one_running('fb')).run_lease])), 1::bigint, 'it completes');
SELECT is(pg_temp.claim('fb', 5), 1::bigint, 'one more: the rate had one left');
SELECT is(awa_forget_queue('fb'), true, 'fb forgotten');
SELECT is(pg_temp.claim('fb', 100), 10::bigint, 'no limit and no rate: the rest');
SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'the counters equal a recount at the end');

SELECT * FROM finish();
DROP EXTENSION awa;
