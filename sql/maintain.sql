-- awa_maintain: promotion, rescue and retention in one round.
-- Hold the maintenance lock for the whole session, so that a background
-- worker running in this database cannot do a round before we do (our own
-- awa_maintain calls still get it: the lock is ours).
SELECT pg_advisory_lock(6387553, 1);
-- On the default ring engine: due jobs and stale attempts are made by time passing (a few milliseconds) and by
-- moving receipts back (awa.claims).  maintain_table.sql keeps, on the table, the retention of finished rows by
-- their finalized_at and the table's indexes (the ring frees finished jobs by whole slots, "ring_reclaim").
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- nothing to do: a row of zeros and a duration
SELECT promoted, rescued, deleted, periodic_enqueued, duration_ms >= 0 AS timed FROM awa_maintain();
SELECT count(*) AS rows FROM awa_maintain();

-- promotion: due scheduled and retryable jobs become available; future ones stay (due_scheduled is due 10 ms
-- after its insert, due_retryable retries 10 ms after its failure; the round comes 50 ms later)
SELECT id, state FROM awa_insert('later', run_at => now() + interval '1 hour');
SELECT id, state FROM awa_insert('due_scheduled', run_at => clock_timestamp() + interval '10 ms');
SELECT id, state FROM awa_insert('due_retryable', queue => 'other');
SELECT awa_fail(id, run_lease, 'boom', retry_in => '10 ms') FROM awa_claim('other');
SELECT pg_sleep(0.05);
SELECT promoted, rescued, deleted, periodic_enqueued FROM awa_maintain();
SELECT kind, state FROM awa.jobs ORDER BY id;
SELECT promoted FROM awa_maintain();

-- rescue through awa_maintain: stale heartbeat and passed deadline (claimed in queue r, their receipts moved
-- back: stale claimed an hour ago with a 2-hour lease, overdue 61 s ago with a 1-minute lease)
SELECT id, state FROM awa_insert('stale', queue => 'r');
SELECT id, state FROM awa_insert('overdue', queue => 'r');
SELECT id, state FROM awa_insert('healthy', queue => 'r');
SELECT kind FROM awa_claim('r', lease => '2 hours');
SELECT kind FROM awa_claim('r', lease => '1 minute');
SELECT kind FROM awa_claim('r', lease => '1 hour');
UPDATE awa.claims c SET claimed_at = c.claimed_at - interval '1 hour', deadline_at = c.deadline_at - interval '1 hour'
  FROM awa.jobs j WHERE j.id = c.job_id AND j.kind = 'stale';
UPDATE awa.claims c SET claimed_at = c.claimed_at - interval '61 seconds', deadline_at = c.deadline_at - interval '61 seconds'
  FROM awa.jobs j WHERE j.id = c.job_id AND j.kind = 'overdue';
-- (the rescue walks the receipts whose deadline passed since its mark: the earlier rounds' mark goes back too)
UPDATE awa.ring_rescue_mark SET passed = '-infinity';
SELECT promoted, rescued, deleted, periodic_enqueued FROM awa_maintain();
SELECT kind, state, errors[1]->>'error' AS error FROM awa.jobs WHERE kind IN ('stale', 'overdue', 'healthy') ORDER BY id;
-- the rescued are retried at once: on the ring they are available already (the table's are retryable, run_at
-- now, until the next round promotes them), so the next round promotes nothing
SELECT promoted, rescued FROM awa_maintain();
SELECT kind, state FROM awa.jobs WHERE kind IN ('stale', 'overdue', 'healthy') ORDER BY id;

-- bad settings
SET awa.retention_completed = -2;
SET awa.retention_failed = 'forever';
SET awa.maintenance_interval = '2s';
SET awa.databases = 'postgres';


-- the work of a round is transactional: rolled back, nothing happened (rolled_back due 1 ms after its insert)
DELETE FROM awa.jobs;
SELECT state FROM awa_insert('rolled_back', run_at => clock_timestamp() + interval '1 ms');
SELECT pg_sleep(0.01);
BEGIN;
SELECT promoted FROM awa_maintain();
ROLLBACK;
SELECT kind, state FROM awa.jobs WHERE kind = 'rolled_back';

-- a round that did something says what, at awa.maintenance_log_level
-- (debug1 by default: nothing here; the round's time is in the DETAIL)
DELETE FROM awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('soon', run_at => clock_timestamp() + interval '1 ms') FROM generate_series(1, 2)) s;
SELECT pg_sleep(0.01);
\set VERBOSITY terse
SET awa.maintenance_log_level = notice;
SELECT promoted FROM awa_maintain();
SELECT promoted FROM awa_maintain();
RESET awa.maintenance_log_level;
SET awa.maintenance_log_level = 'error';
\set VERBOSITY default

-- CALL awa_maintain_for(duration, every): rounds, each committed; bad input
-- is refused before any round
CALL awa_maintain_for('50 milliseconds', '20 milliseconds');
CALL awa_maintain_for('1 second', '1 millisecond');
CALL awa_maintain_for('-1 second');
CALL awa_maintain_for('300000 years');
CALL awa_maintain_for(NULL);
BEGIN;
CALL awa_maintain_for('50 milliseconds');
ROLLBACK;

DROP EXTENSION awa;
SELECT pg_advisory_unlock(6387553, 1);
