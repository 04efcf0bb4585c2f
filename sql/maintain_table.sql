-- awa_maintain on the table engine: the retention of finished jobs, and the table's indexes (promotion, rescue
-- and the rest: maintain.sql, on the default ring).
-- Hold the maintenance lock for the whole session, so that a background
-- worker running in this database cannot do a round before we do (our own
-- awa_maintain calls still get it: the lock is ours).
SELECT pg_advisory_lock(6387553, 1);
-- On the table engine (awa.install_engine = table): finished jobs are written into awa.jobs with their
-- finalized_at; the table deletes them row by row after the retention, where the ring frees finished jobs by whole
-- slots (awa.ring_reclaim), tested by the pgTAP files test/pgtap/06_ring_slots.sql and 07_engine_upkeep.sql.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

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
-- the indexes that keep promotion and retention cheap
SELECT indexname FROM pg_indexes WHERE schemaname = 'awa' AND indexname IN ('jobs_scheduled_idx', 'jobs_finalized_idx') ORDER BY 1;

DROP EXTENSION awa;
SELECT pg_advisory_unlock(6387553, 1);
