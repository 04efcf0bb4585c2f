-- awa_queue_stats: counts by state per queue, lag, paused.
-- On the table engine (awa.install_engine = table): the same counts with the jobs written straight into the table,
-- and a run_at of -infinity written behind awa's back (the ring's view refuses both; core_stats.sql makes the same
-- states through awa's functions on the default ring).
SET awa.install_engine = 'table';
CREATE EXTENSION awa;

SELECT * FROM awa_queue_stats();
INSERT INTO awa.jobs (kind, queue, state, run_at, finalized_at) VALUES
  ('k', 'a', 'scheduled', now() + interval '1 day', NULL),
  ('k', 'a', 'available', now() - interval '10 seconds', NULL),
  ('k', 'a', 'available', now() - interval '5 seconds', NULL),
  ('k', 'a', 'running', now(), NULL),
  ('k', 'a', 'retryable', now(), NULL),
  ('k', 'a', 'waiting_external', now(), NULL),
  ('k', 'a', 'failed', now(), now()),
  ('k', 'a', 'cancelled', now(), now()),
  ('k', 'a', 'completed', now(), now()),
  ('k', 'a', 'completed', now(), now() - interval '2 hours'),
  ('k', 'b', 'completed', now(), now());
INSERT INTO awa.queue_meta (queue, paused) VALUES ('c', true);
SELECT queue, total_queued, scheduled, available, retryable, running, waiting_external,
       failed, cancelled, completed_last_hour, lag_seconds BETWEEN 10 AND 60 AS lag_ok,
       lag_seconds IS NULL AS no_lag, paused
  FROM awa_queue_stats();
-- the caller's own uncommitted jobs count; rolled-back ones do not
BEGIN;
SELECT state FROM awa_insert('k', queue => 'b');
SELECT queue, total_queued, available FROM awa_queue_stats() WHERE queue = 'b';
ROLLBACK;
SELECT queue, total_queued, available FROM awa_queue_stats() WHERE queue = 'b';

-- an infinite run_at written behind awa's back (awa's functions refuse one) does not break
-- the lag: the oldest available job of queue inf waits forever
INSERT INTO awa.jobs (kind, queue) VALUES ('k', 'inf');
UPDATE awa.jobs SET run_at = '-infinity' WHERE queue = 'inf';
SELECT queue, available, lag_seconds FROM awa_queue_stats() WHERE queue = 'inf';
SELECT oldest_available_seconds FROM awa_health_check();
DELETE FROM awa.jobs WHERE queue = 'inf';

DROP EXTENSION awa;
