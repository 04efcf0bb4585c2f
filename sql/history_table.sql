-- awa_queue_history on the table engine: the events of awa.jobs written with fixed times become the deltas the
-- table's statement triggers derive (history.sql, on the default ring, writes these deltas and checks the rest).
-- On the table engine (awa.install_engine = table): the jobs, their states and times are written into awa.jobs
-- directly; the ring's functions write events at the present time only.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
-- no background worker here, but hold off any awa_maintain() of another session
SELECT pg_advisory_lock(6387553, 1);
SET timezone = 'UTC';
-- the fixed times below are long past: keep them
SET awa.retention_history = -1;

-- Events written with fixed times, so that durations and minutes are known:
-- 3 jobs of kind a and 1 of kind b enqueued at 10:00:10 in queue h
INSERT INTO awa.jobs (id, kind, queue, run_at, created_at) VALUES
  (101, 'a', 'h', '2026-01-01 10:00:10+00', '2026-01-01 10:00:10+00'),
  (102, 'a', 'h', '2026-01-01 10:00:10+00', '2026-01-01 10:00:10+00'),
  (103, 'a', 'h', '2026-01-01 10:00:50+00', '2026-01-01 10:00:10+00'),
  (104, 'b', 'h', '2026-01-01 09:00:00+00', '2026-01-01 10:00:10+00');
-- claimed at 10:01:10: waited 60 s, 60 s, 20 s (due at 10:00:50), 60 s (run_at before created_at)
UPDATE awa.jobs SET state = 'running', attempt = 1, attempted_at = '2026-01-01 10:01:10+00'
 WHERE id IN (101, 102, 103, 104);
-- a heartbeat is no event
UPDATE awa.jobs SET heartbeat_at = '2026-01-01 10:01:20+00' WHERE id = 101;
-- 101 completes after 2 s, 102 fails for good after 0.5 s, 104 completes after 90 s (next minute)
UPDATE awa.jobs SET state = 'completed', finalized_at = '2026-01-01 10:01:12+00' WHERE id = 101;
UPDATE awa.jobs SET state = 'failed', finalized_at = '2026-01-01 10:01:10.5+00' WHERE id = 102;
UPDATE awa.jobs SET state = 'completed', finalized_at = '2026-01-01 10:02:40+00' WHERE id = 104;
-- 103 is cancelled while running (finalized 10:01:30, ran 20 s)
UPDATE awa.jobs SET state = 'cancelled', finalized_at = '2026-01-01 10:01:30+00' WHERE id = 103;
-- deletes and promotions are no events
DELETE FROM awa.jobs WHERE id = 101;

SELECT minute, queue, kind, enqueued, started, completed, failed, retried, cancelled,
       wait_count, wait_total_us, wait_max_us, run_count, run_total_us, run_max_us
  FROM awa.history_deltas ORDER BY minute, kind, started, completed, failed, cancelled;

-- new events after a fold: 105 enqueued at 10:01:00, claimed at 10:01:05
DELETE FROM awa.history_deltas;
INSERT INTO awa.jobs (id, kind, queue, run_at, created_at) VALUES
  (105, 'a', 'h', '2026-01-01 10:01:00+00', '2026-01-01 10:01:00+00');
UPDATE awa.jobs SET state = 'running', attempt = 1, attempted_at = '2026-01-01 10:01:05+00' WHERE id = 105;
SELECT minute, queue, kind, enqueued, started, wait_count, wait_total_us, wait_max_us, wait_hist
  FROM awa.history_deltas ORDER BY minute, kind, started;

DROP EXTENSION awa;
SELECT pg_advisory_unlock(6387553, 1);
