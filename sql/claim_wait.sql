-- CALL awa_claim_wait: awa_claim's blocking claim as a procedure that commits
-- each empty attempt and sleeps holding no snapshot (test/t/012_claim_wait.pl
-- checks the wait itself).  Arguments and errors are awa_claim's; the jobs
-- come back as one awa.jobs[] in awa_claim's order, NULL when none came.
CREATE EXTENSION awa;
\set VERBOSITY terse
SELECT (awa_insert('k', '{"n": 1}', queue => 'cw', priority => 2)).id AS id1 \gset
SELECT (awa_insert('k', '{"n": 2}', queue => 'cw', priority => 1)).id AS id2 \gset
CREATE TEMP TABLE got (ord bigint, id bigint, state awa.job_state, attempt integer,
	run_lease bigint, worker text, lease interval, lease_given interval);
CREATE PROCEDURE claim_into_got(q text, w interval, b integer DEFAULT 5)
LANGUAGE plpgsql AS $$
DECLARE
	jobs awa.jobs[];
BEGIN
	CALL awa_claim_wait(q, 'w1', b, '2 minutes', w, jobs);
	INSERT INTO got
	SELECT u.ordinality, u.id, u.state, u.attempt, u.run_lease, u.claimed_by, u.lease,
		u.deadline_at - u.attempted_at
	FROM unnest(jobs) WITH ORDINALITY AS u;
	RAISE NOTICE 'jobs is null: %', jobs IS NULL;
END
$$;

-- Claimed: running, a new lease, priority order; committed when the CALL ends.
CALL claim_into_got('cw', '1 s');
SELECT ord, id = :id2 AS is_id2, state, attempt, run_lease, worker, lease, lease_given FROM got;
SELECT id = :id2 AS is_id2, state, run_lease, claimed_by FROM awa.jobs ORDER BY priority;
SELECT count(*) FROM awa_claim('cw');

-- Nothing claimable: NULL once the wait ends, or at once with wait 0.
CALL awa_claim_wait('cw', wait => '50 ms');
CALL awa_claim_wait('cw', wait => '0');

-- A wait cut short by statement_timeout returns NULL, not an error.
SET statement_timeout = '300ms';
CALL awa_claim_wait('cw', wait => '30 s');
RESET statement_timeout;

-- Paused queues and queues at their concurrency limit hand out nothing.
SELECT awa_pause_queue('cw');
SELECT id AS id3 FROM awa_insert('k', queue => 'cw') \gset
CALL awa_claim_wait('cw', wait => '50 ms');
SELECT awa_resume_queue('cw');
SELECT max_running FROM awa_set_queue_limit('cw', 2);
CALL awa_claim_wait('cw', wait => '50 ms');
SELECT awa_complete(:id1, 1);
TRUNCATE got;
CALL claim_into_got('cw', '1 s');
SELECT id = :id3 AS is_id3, state, run_lease FROM got;
SELECT max_running FROM awa_set_queue_limit('cw', NULL);

-- Inside a transaction block it cannot commit: it waits in the statement,
-- like awa_claim, and claims in the caller's transaction.
SELECT id AS id4 FROM awa_insert('k', queue => 'cw') \gset
BEGIN;
CALL awa_claim_wait('cw', wait => '50 ms', batch => 1) \gset
SELECT (jobs[1]).id = :id4 AS is_id4, (jobs[1]).state FROM (SELECT :'jobs'::awa.jobs[] AS jobs) x;
ROLLBACK;
SELECT state FROM awa.jobs WHERE id = :id4;
BEGIN;
TRUNCATE got;
CALL claim_into_got('cw', '50 ms');
SELECT id = :id4 AS is_id4, state FROM got;
CALL claim_into_got('cw', '50 ms');
COMMIT;
SELECT state FROM awa.jobs WHERE id = :id4;

-- The same errors as awa_claim, argument by argument.
DO $$
DECLARE
	args text;
	st text;
	msg text;
	st2 text;
	msg2 text;
	jobs awa.jobs[];
BEGIN
	FOREACH args IN ARRAY ARRAY[
		'NULL', '''''', '''cw'', batch => NULL', '''cw'', lease => NULL', '''cw'', wait => NULL',
		'''cw'', batch => 0', '''cw'', batch => 1001', '''cw'', lease => ''0 s''',
		'''cw'', lease => ''-1 s''', '''cw'', wait => ''-1 s''',
		'''cw'', wait => ''100000 days''']
	LOOP
		msg := NULL;
		msg2 := NULL;
		BEGIN
			EXECUTE 'SELECT count(*) FROM awa_claim(' || args || ')';
			st := 'ok';
		EXCEPTION WHEN OTHERS THEN
			st := SQLSTATE; msg := SQLERRM;
		END;
		BEGIN
			EXECUTE 'CALL awa_claim_wait(' || args || ')';
			st2 := 'ok';
		EXCEPTION WHEN OTHERS THEN
			st2 := SQLSTATE; msg2 := SQLERRM;
		END;
		RAISE NOTICE '%: % %, same: %', args, st, msg, st = st2 AND msg = msg2;
	END LOOP;
END
$$;

-- A wait needs READ COMMITTED; a read-only transaction is refused.
BEGIN ISOLATION LEVEL REPEATABLE READ;
CALL awa_claim_wait('cw', wait => '0');
CALL awa_claim_wait('cw', wait => '1 s');
ROLLBACK;
SET default_transaction_isolation = 'repeatable read';
CALL awa_claim_wait('cw', wait => '1 s');
RESET default_transaction_isolation;
SET default_transaction_read_only = on;
CALL awa_claim_wait('cw');
RESET default_transaction_read_only;

DROP PROCEDURE claim_into_got(text, interval, integer);
DROP TABLE got;
DROP EXTENSION awa;
