-- What a claim promises beyond order: a row that cannot be claimed does not
-- stop its queue, time follows the transaction (and the clock), a blocking
-- claim needs READ COMMITTED and ends before statement_timeout.
-- On the default ring engine; claim_rules_table.sql keeps the rows that cannot be claimed on the table (a ring
-- fault, named there).
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- time follows the transaction: a job snoozed with delay 0 in one
-- transaction of a procedure is claimable in the next one
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

-- a job with a concurrency key needs READ COMMITTED (the count of the key's running jobs must see the claims of
-- other workers): refused with 0A000, its context free of awa's own statements, nothing claimed
SELECT (awa_insert('k', queue => 'keyed', concurrency_key => 'ck')).id IS NOT NULL AS inserted;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM awa_claim('keyed');
ROLLBACK;
SELECT count(*) AS running FROM awa.jobs WHERE queue = 'keyed' AND state = 'running';

-- a row no claim could take (run_lease at its maximum: a claim gives run_lease + 1) cannot be written into the
-- ring's relations, even behind awa's back, so none can stop its queue's claims (the table engine fails such a row
-- at its claim instead: claim_rules_table.sql); the queue goes on
\set VERBOSITY terse
INSERT INTO awa.ready (slot, id, run_lease, kind, queue) VALUES (0, 990001, 9223372036854775807, 'bad', 'edge');
INSERT INTO awa.scheduled (id, run_lease, kind, queue, run_at)
  VALUES (990002, 9223372036854775807, 'bad', 'edge', now() + interval '1 day');
-- nor a row with no attempts left (a claim gives attempt + 1, past max_attempts; the table engine fails such a row
-- at its claim)
INSERT INTO awa.ready (slot, id, attempt, max_attempts, kind, queue) VALUES (0, 990003, 3, 3, 'bad', 'edge');
INSERT INTO awa.scheduled (id, attempt, max_attempts, kind, queue, run_at)
  VALUES (990004, 5, 1, 'bad', 'edge', now() + interval '1 day');
-- awa's own constraints leave a batch of new jobs on its direct path (every new job meets it); a CHECK of a user's
-- sends the batch through the INSERT, which checks it: a refused row fails the batch, nothing of it is kept
ALTER TABLE awa.ready ADD CONSTRAINT no_forbidden CHECK (kind <> 'forbidden');
SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind',
  CASE WHEN g = 7 THEN 'forbidden' ELSE 'k' END, 'queue', 'chk')) FROM generate_series(1, 20) g));
ALTER TABLE awa.ready DROP CONSTRAINT no_forbidden;
\set VERBOSITY default
SELECT count(*) AS kept FROM awa.jobs WHERE queue = 'chk';
SELECT kind FROM awa_insert('fine', queue => 'edge');
SELECT kind, state FROM awa_claim('edge');

DROP EXTENSION awa;

