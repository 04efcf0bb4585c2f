-- awa_queue_history: per-minute throughput from the statement triggers, folded by maintenance.
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (INSERT of ids and states, UPDATE, TRUNCATE, triggers or indexes of the table), which the ring's view
-- refuses; not yet rewritten through the awa_* functions.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
-- no background worker here, but hold off any awa_maintain() of another session
SELECT pg_advisory_lock(6387553, 1);
SET timezone = 'UTC';
-- the fixed times below are long past: keep them
SET awa.retention_history = -1;

SELECT * FROM awa_queue_history();

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

-- per minute, all kinds; the wait p50 is the upper bound of the bucket of 60 s
-- (2^(63/4) ms = 55.2 s to 2^(64/4) ms = 65.5 s), cut to the exact maximum
SELECT bucket_start, queue, kind, enqueued, started, completed, failed, retried, cancelled,
       wait_p50, wait_p95, wait_max, round(wait_avg::numeric, 3) AS wait_avg,
       run_p50, run_p95, run_max, round(run_avg::numeric, 3) AS run_avg
  FROM awa_queue_history(since => '2026-01-01 10:00:30+00');
-- per kind
SELECT bucket_start, kind, enqueued, started, completed, failed, cancelled, wait_max, run_max
  FROM awa_queue_history('h', '2026-01-01 10:00:00+00', by_kind => true);
-- one kind, 5-minute buckets from the bucket that holds since
SELECT bucket_start, kind, enqueued, started, completed, failed, cancelled, run_p50, run_max
  FROM awa_queue_history('h', '2026-01-01 10:04:59+00', '5 minutes', kind => 'a');
-- an hour, a day (days count as 24 hours)
SELECT bucket_start, enqueued, started, completed FROM awa_queue_history('h', '2026-01-01', '1 hour');
SELECT bucket_start, enqueued, started, completed FROM awa_queue_history('h', '2026-01-01', '1 day');
-- nothing for another queue, nor later
SELECT count(*) FROM awa_queue_history('other', '2026-01-01');
SELECT count(*) FROM awa_queue_history('h', '2026-01-01 10:03:00+00');

-- Folding keeps the result exact, and is done in batches by maintenance
CREATE TEMP TABLE before AS SELECT * FROM awa_queue_history(since => '2026-01-01', by_kind => true);
SELECT pg_advisory_unlock(6387553, 1);
SELECT promoted FROM awa_maintain();
SELECT pg_advisory_lock(6387553, 1);
SELECT count(*) AS deltas_left FROM awa.history_deltas;
SELECT minute, kind, enqueued, started, completed, failed, cancelled, wait_count, wait_hist, run_count, run_hist
  FROM awa.queue_history ORDER BY minute, kind;
SELECT count(*) AS differences FROM (
  (SELECT * FROM awa_queue_history(since => '2026-01-01', by_kind => true) EXCEPT ALL SELECT * FROM before)
  UNION ALL
  (SELECT * FROM before EXCEPT ALL SELECT * FROM awa_queue_history(since => '2026-01-01', by_kind => true))) d;
-- new events after the fold are added to the folded minute
INSERT INTO awa.jobs (id, kind, queue, run_at, created_at) VALUES
  (105, 'a', 'h', '2026-01-01 10:01:00+00', '2026-01-01 10:01:00+00');
UPDATE awa.jobs SET state = 'running', attempt = 1, attempted_at = '2026-01-01 10:01:05+00' WHERE id = 105;
SELECT bucket_start, enqueued, started, completed, wait_p50, wait_max
  FROM awa_queue_history('h', '2026-01-01 10:01:00+00', '1 minute', 'a');
SELECT pg_advisory_unlock(6387553, 1);
SELECT promoted FROM awa_maintain();
SELECT pg_advisory_lock(6387553, 1);
SELECT bucket_start, enqueued, started, completed, wait_p50, wait_max
  FROM awa_queue_history('h', '2026-01-01 10:01:00+00', '1 minute', 'a');
SELECT minute, kind, enqueued, started, wait_count, wait_hist FROM awa.queue_history
 WHERE minute = '2026-01-01 10:01:00+00' AND kind = 'a';

-- The API: enqueue, claim, complete, fail with retries, snooze, cancel, rescue (now)
DELETE FROM awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'api') FROM generate_series(1, 5)) i;
SELECT count(*) FROM awa_insert_many('[{"kind": "k", "queue": "api"}, {"kind": "m", "queue": "api"}]');
SELECT count(*) FROM awa_claim('api', 'w1', 10);
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'api' AND kind = 'm';
SELECT awa_complete_many(array_agg(id), array_agg(run_lease))
  FROM (SELECT id, run_lease FROM awa.jobs WHERE queue = 'api' AND kind = 'k' ORDER BY id LIMIT 2) c;
-- a retry, then that job fails for good on its next attempt
SELECT awa_fail((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'running' ORDER BY id LIMIT 1),
  (SELECT run_lease FROM awa.jobs WHERE queue = 'api' AND state = 'running' ORDER BY id LIMIT 1), 'boom', interval '0');
UPDATE awa.jobs SET max_attempts = 2 WHERE queue = 'api' AND state = 'retryable';
SELECT count(*) FROM awa_claim('api', 'w1', 10);
SELECT awa_fail((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'running' AND attempt = 2),
  (SELECT run_lease FROM awa.jobs WHERE queue = 'api' AND state = 'running' AND attempt = 2), 'boom again');
-- a snooze is no event; cancelling it is
SELECT awa_snooze(id, run_lease, interval '1 hour') FROM awa.jobs
 WHERE queue = 'api' AND state = 'running' ORDER BY id LIMIT 1;
SELECT count(*) FROM awa_cancel((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'scheduled'));
-- the last running job is rescued (its heartbeat is stale): retried
UPDATE awa.jobs SET heartbeat_at = now() - interval '1 hour' WHERE queue = 'api' AND state = 'running';
SELECT awa_rescue();
-- (summed over minutes: the test may cross a minute boundary)
SELECT kind, sum(enqueued) AS enqueued, sum(started) AS started, sum(completed) AS completed,
       sum(failed) AS failed, sum(retried) AS retried, sum(cancelled) AS cancelled,
       bool_and(wait_p50 IS NOT NULL) AS has_wait, bool_or(run_p50 IS NOT NULL) AS has_run,
       bool_and(run_max >= run_p95 AND run_p95 >= run_p50) AS ordered
  FROM awa_queue_history('api', by_kind => true) GROUP BY kind ORDER BY kind;
SELECT state, count(*) FROM awa.jobs WHERE queue = 'api' GROUP BY state ORDER BY state;
-- retrying the failed job by hand is no event; cancelling a retryable one is
SELECT state FROM awa_retry((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'failed'));
SELECT state FROM awa_cancel((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'retryable' ORDER BY id LIMIT 1));
SELECT kind, sum(enqueued) AS enqueued, sum(started) AS started, sum(completed) AS completed,
       sum(failed) AS failed, sum(retried) AS retried, sum(cancelled) AS cancelled
  FROM awa_queue_history('api', by_kind => true) GROUP BY kind ORDER BY kind;

-- Transactions: a rolled-back statement leaves no event; the caller's own count
BEGIN;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'tx') FROM generate_series(1, 3)) i;
SELECT sum(enqueued) AS enqueued FROM awa_queue_history('tx');
ROLLBACK;
SELECT count(*) FROM awa_queue_history('tx');
BEGIN;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'tx') FROM generate_series(1, 2)) i;
SAVEPOINT s;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'tx') FROM generate_series(1, 4)) i;
ROLLBACK TO s;
COMMIT;
SELECT sum(enqueued) AS enqueued FROM awa_queue_history('tx');
-- COPY counts too
COPY awa.jobs (kind, queue) FROM stdin;
c	tx
c	tx
\.
SELECT kind, sum(enqueued) AS enqueued FROM awa_queue_history('tx', by_kind => true) GROUP BY kind ORDER BY kind;
-- awa.track_history off: no events (superuser only)
SET awa.track_history = off;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'off') FROM generate_series(1, 2)) i;
RESET awa.track_history;
SELECT count(*) FROM awa_queue_history('off');

-- Retention: minutes older than awa.retention_history go
SELECT count(*) AS old_minutes FROM awa.queue_history WHERE minute < '2026-02-01';
SET awa.retention_history = '1h';
SHOW awa.retention_history;
SELECT pg_advisory_unlock(6387553, 1);
SELECT promoted FROM awa_maintain();
SELECT pg_advisory_lock(6387553, 1);
SELECT count(*) AS old_minutes FROM awa.queue_history WHERE minute < '2026-02-01';
SELECT count(*) > 0 AS recent_kept FROM awa.queue_history;
RESET awa.retention_history;
SHOW awa.retention_history;
SET awa.retention_history = -1;

-- Bad input
SELECT * FROM awa_queue_history(bucket => '90 seconds');
SELECT * FROM awa_queue_history(bucket => '0');
SELECT * FROM awa_queue_history(bucket => '-5 minutes');
SELECT * FROM awa_queue_history(bucket => '1 month');
SELECT * FROM awa_queue_history(bucket => '400 days');
SELECT * FROM awa_queue_history(bucket => NULL);
SELECT * FROM awa_queue_history(since => NULL);
SELECT * FROM awa_queue_history(since => 'infinity');
SELECT * FROM awa_queue_history(by_kind => NULL);
-- the histogram helpers
SELECT awa.history_add('[3:4]={1,2}', '[5:5]={7}'), awa.history_add(NULL, '{1}'), awa.history_add(NULL, NULL);
SELECT awa.history_percentile('[3:4]={1,2}', 0.5, 100000), awa.history_percentile('[3:4]={1,2}', 1, 1500);
SELECT awa.history_percentile('{}', 0.5, 0);
SELECT awa.history_percentile('{1}', 0, 0);
SELECT awa.history_add('[-1:0]={1,2}', NULL);
SELECT awa.history_add('[160:161]={1,2}', NULL);
SELECT awa.history_add('{{1}}', NULL);
SELECT awa.history_add('{1,NULL}', NULL);

DROP EXTENSION awa;
SELECT pg_advisory_unlock(6387553, 1);
