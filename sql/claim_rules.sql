-- What a claim promises beyond order: a row that cannot be claimed does not
-- stop its queue, time follows the transaction (and the clock), a blocking
-- claim needs READ COMMITTED and ends before statement_timeout.
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (INSERT of ids and states, UPDATE, TRUNCATE, triggers or indexes of the table), which the ring's view
-- refuses; not yet rewritten through the awa_* functions.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- rows written behind awa's back that a claim would break a constraint on:
-- no attempts left (attempt 1000 of 1000; 25 of 25), run_lease at its maximum
INSERT INTO awa.jobs (id, kind, queue, state, attempt, max_attempts, run_lease, run_at)
  OVERRIDING SYSTEM VALUE VALUES
  (101, 'exhausted', 'q', 'available', 1000, 1000, 0, now() - interval '3 s'),
  (102, 'exhausted', 'q', 'retryable', 25, 25, 7, now() - interval '2 s'),
  (103, 'lease_max', 'q', 'available', 0, 25, 9223372036854775807, now() - interval '1 s'),
  (104, 'fine', 'q', 'available', 0, 25, 0, now());
-- the claim hands out the good job; the others become failed, saying why
SELECT id, kind, state, attempt FROM awa_claim('q', batch => 10);
SELECT id, state, attempt, run_lease, finalized_at IS NOT NULL AS finalized, errors[1]->>'error' AS error
  FROM awa.jobs ORDER BY id;
-- and the queue keeps working
SELECT count(*) FROM awa_claim('q', batch => 10);
SELECT kind FROM awa_insert('next', queue => 'q');
SELECT id, kind FROM awa_claim('q', batch => 10);

-- time follows the transaction: a job snoozed with delay 0 in one
-- transaction of a procedure is claimable in the next one
TRUNCATE awa.jobs;
DO $$
DECLARE
	r awa.jobs;
BEGIN
	PERFORM awa_insert('loop', queue => 'proc');
	COMMIT;
	SELECT * INTO r FROM awa_claim('proc');
	PERFORM awa_snooze(r.id, r.run_lease, '0 seconds');
	COMMIT;
	SELECT * INTO r FROM awa_claim('proc');
	RAISE NOTICE 'claimed again in the next transaction: %', r.id IS NOT NULL;
	COMMIT;
END
$$;

-- a blocking claim needs READ COMMITTED: REPEATABLE READ would never see
-- the jobs it waits for
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM awa_claim('rr', wait => '1 second');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT count(*) FROM awa_claim('rr', wait => '1 second');
ROLLBACK;
-- without a wait it works there
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM awa_claim('rr');
ROLLBACK;

-- a lease or wait that would overflow the claim's timestamps: a clear
-- error, nothing claimed
SELECT (awa_insert('k', queue => 'big')).id IS NOT NULL AS inserted;
SELECT * FROM awa_claim('big', lease => '300000 years');
SELECT * FROM awa_claim('big', wait => '300000 years');
SELECT state FROM awa.jobs WHERE queue = 'big';

-- statement_timeout shorter than the wait: the claim returns no rows
-- instead of being cancelled
SET statement_timeout = '300ms';
SELECT count(*) FROM awa_claim('empty', wait => '10 seconds');
RESET statement_timeout;

DROP EXTENSION awa;
