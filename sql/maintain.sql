-- awa_maintain: promotion, rescue and retention in one round.
-- Hold the maintenance lock for the whole session, so that a background
-- worker running in this database cannot do a round before we do (our own
-- awa_maintain calls still get it: the lock is ours).
SELECT pg_advisory_lock(6387553, 1);
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (INSERT of ids and states, UPDATE, TRUNCATE, triggers or indexes of the table), which the ring's view
-- refuses; not yet rewritten through the awa_* functions.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- nothing to do: a row of zeros and a duration
SELECT promoted, rescued, deleted, periodic_enqueued, duration_ms >= 0 AS timed FROM awa_maintain();
SELECT count(*) AS rows FROM awa_maintain();

-- promotion: due scheduled and retryable jobs become available; future ones stay
SELECT id, state FROM awa_insert('later', run_at => now() + interval '1 hour');
SELECT id, state FROM awa_insert('due_scheduled', run_at => now() + interval '1 hour');
SELECT id, state FROM awa_insert('due_retryable', queue => 'other');
UPDATE awa.jobs SET run_at = now() - interval '1 second' WHERE kind = 'due_scheduled';
UPDATE awa.jobs SET state = 'retryable', attempt = 1, run_at = now() - interval '1 minute' WHERE kind = 'due_retryable';
SELECT promoted, rescued, deleted, periodic_enqueued FROM awa_maintain();
SELECT kind, state FROM awa.jobs ORDER BY id;
SELECT promoted FROM awa_maintain();

-- rescue through awa_maintain: stale heartbeat and passed deadline
SELECT id, state FROM awa_insert('stale');
SELECT id, state FROM awa_insert('overdue');
SELECT id, state FROM awa_insert('healthy');
UPDATE awa.jobs SET state = 'running', attempt = 1, heartbeat_at = now() - interval '1 hour', attempted_at = now() - interval '1 hour'
 WHERE kind = 'stale';
UPDATE awa.jobs SET state = 'running', attempt = 1, heartbeat_at = now(), deadline_at = now() - interval '1 second', attempted_at = now()
 WHERE kind = 'overdue';
UPDATE awa.jobs SET state = 'running', attempt = 1, heartbeat_at = now(), deadline_at = now() + interval '1 hour', attempted_at = now()
 WHERE kind = 'healthy';
SELECT promoted, rescued, deleted, periodic_enqueued FROM awa_maintain();
SELECT kind, state, errors[1]->>'error' AS error FROM awa.jobs WHERE kind IN ('stale', 'overdue', 'healthy') ORDER BY id;
-- the rescued (retryable, run_at now) are promoted by the next round
SELECT promoted, rescued FROM awa_maintain();
SELECT kind, state FROM awa.jobs WHERE kind IN ('stale', 'overdue', 'healthy') ORDER BY id;

-- retention: defaults 24 hours for completed, 7 days for failed and cancelled
SHOW awa.retention_completed;
SHOW awa.retention_failed;
DELETE FROM awa.jobs;
INSERT INTO awa.jobs (kind, state, finalized_at) VALUES
  ('completed_old', 'completed', now() - interval '25 hours'),
  ('completed_new', 'completed', now() - interval '23 hours'),
  ('failed_old', 'failed', now() - interval '8 days'),
  ('failed_new', 'failed', now() - interval '6 days'),
  ('cancelled_old', 'cancelled', now() - interval '8 days'),
  ('cancelled_new', 'cancelled', now() - interval '6 days'),
  ('available_old', 'available', NULL),
  ('running_old', 'running', NULL);
UPDATE awa.jobs SET heartbeat_at = now(), created_at = now() - interval '30 days' WHERE kind = 'running_old';
UPDATE awa.jobs SET created_at = now() - interval '30 days', run_at = now() - interval '30 days' WHERE kind = 'available_old';
SELECT promoted, rescued, deleted, periodic_enqueued FROM awa_maintain();
SELECT kind FROM awa.jobs ORDER BY id;
-- shorter retention, set in the session
SET awa.retention_completed = '1h';
SET awa.retention_failed = '1d';
SELECT deleted FROM awa_maintain();
SELECT kind FROM awa.jobs ORDER BY id;
-- -1 keeps finished jobs forever
INSERT INTO awa.jobs (kind, state, finalized_at) VALUES
  ('kept_completed', 'completed', now() - interval '10 years'),
  ('kept_failed', 'failed', now() - interval '10 years');
SET awa.retention_completed = -1;
SET awa.retention_failed = -1;
SELECT deleted FROM awa_maintain();
SELECT kind FROM awa.jobs ORDER BY id;
-- bounded: at most 10000 deleted per round
RESET awa.retention_completed;
RESET awa.retention_failed;
INSERT INTO awa.jobs (kind, state, finalized_at)
  SELECT 'bulk', 'completed', now() - interval '2 days' FROM generate_series(1, 10005);
SELECT deleted FROM awa_maintain();
SELECT deleted FROM awa_maintain();
SELECT count(*) FROM awa.jobs WHERE kind = 'bulk';
-- bad settings
SET awa.retention_completed = -2;
SET awa.retention_failed = 'forever';
SET awa.maintenance_interval = '2s';
SET awa.databases = 'postgres';

-- the work of a round is transactional: rolled back, nothing happened
INSERT INTO awa.jobs (kind, state, run_at) VALUES ('rolled_back', 'scheduled', now() - interval '1 minute');
BEGIN;
SELECT promoted FROM awa_maintain();
ROLLBACK;
SELECT kind, state FROM awa.jobs WHERE kind = 'rolled_back';

-- the indexes that keep promotion and retention cheap
SELECT indexname FROM pg_indexes WHERE schemaname = 'awa' AND indexname IN ('jobs_scheduled_idx', 'jobs_finalized_idx') ORDER BY 1;

-- a round that did something says what, at awa.maintenance_log_level
-- (debug1 by default: nothing here; the round's time is in the DETAIL)
TRUNCATE awa.jobs;
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
