-- awa_queue_history: per-minute throughput from the statement triggers, folded by maintenance.
-- On the default ring engine.  The events with fixed times, long past, are written as their deltas
-- (awa.history_deltas: the rows the table's statement triggers derive from those events, history_table.sql), as
-- the ring's functions write events at the present time only; the API's events are the ring's own.
CREATE EXTENSION awa;
-- no background worker here, but hold off any awa_maintain() of another session
SELECT pg_advisory_lock(6387553, 1);
SET timezone = 'UTC';
-- the fixed times below are long past: keep them
SET awa.retention_history = -1;

SELECT * FROM awa_queue_history();

-- Events with fixed times, so that durations and minutes are known, written as their deltas: 3 jobs of kind a
-- and 1 of kind b enqueued at 10:00:10 in queue h; claimed at 10:01:10: waited 60 s, 60 s, 20 s (due at
-- 10:00:50), 60 s (run_at before created_at); 101 completes after 2 s, 102 fails for good after 0.5 s, 104
-- completes after 90 s (next minute), 103 is cancelled while running (finalized 10:01:30, ran 20 s)
INSERT INTO awa.history_deltas (minute, queue, kind, enqueued, started, completed, failed, retried, cancelled,
    wait_count, wait_total_us, wait_max_us, wait_hist, run_count, run_total_us, run_max_us, run_hist) VALUES
  ('2026-01-01 10:00:00+00', 'h', 'a', 3, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, NULL),
  ('2026-01-01 10:00:00+00', 'h', 'b', 1, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, NULL),
  ('2026-01-01 10:01:00+00', 'h', 'a', 0, 0, 0, 0, 0, 1, 0, NULL, NULL, NULL, 1, 20000000, 20000000, '[58:58]={1}'),
  ('2026-01-01 10:01:00+00', 'h', 'a', 0, 0, 0, 1, 0, 0, 0, NULL, NULL, NULL, 1, 500000, 500000, '[36:36]={1}'),
  ('2026-01-01 10:01:00+00', 'h', 'a', 0, 0, 1, 0, 0, 0, 0, NULL, NULL, NULL, 1, 2000000, 2000000, '[44:44]={1}'),
  ('2026-01-01 10:01:00+00', 'h', 'a', 0, 3, 0, 0, 0, 0, 3, 140000000, 60000000, '[58:64]={1,0,0,0,0,0,2}', 0, NULL, NULL, NULL),
  ('2026-01-01 10:01:00+00', 'h', 'b', 0, 1, 0, 0, 0, 0, 1, 60000000, 60000000, '[64:64]={1}', 0, NULL, NULL, NULL),
  ('2026-01-01 10:02:00+00', 'h', 'b', 0, 0, 1, 0, 0, 0, 0, NULL, NULL, NULL, 1, 90000000, 90000000, '[66:66]={1}');

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
-- (105 enqueued at 10:01:00 and claimed at 10:01:05, written as its deltas)
INSERT INTO awa.history_deltas (minute, queue, kind, enqueued, started, completed, failed, retried, cancelled,
    wait_count, wait_total_us, wait_max_us, wait_hist, run_count, run_total_us, run_max_us, run_hist) VALUES
  ('2026-01-01 10:01:00+00', 'h', 'a', 1, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, NULL),
  ('2026-01-01 10:01:00+00', 'h', 'a', 0, 1, 0, 0, 0, 0, 1, 5000000, 5000000, '[50:50]={1}', 0, NULL, NULL, NULL);
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
-- (the k jobs have 2 attempts, so that the retried one fails for good on its second)
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'api', max_attempts => 2) FROM generate_series(1, 5)) i;
SELECT count(*) FROM awa_insert_many('[{"kind": "k", "queue": "api", "max_attempts": 2}, {"kind": "m", "queue": "api"}]');
SELECT count(*) FROM awa_claim('api', 'w1', 10);
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'api' AND kind = 'm';
SELECT awa_complete_many(array_agg(id), array_agg(run_lease))
  FROM (SELECT id, run_lease FROM awa.jobs WHERE queue = 'api' AND kind = 'k' ORDER BY id LIMIT 2) c;
-- a retry, then that job fails for good on its next attempt
SELECT awa_fail((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'running' ORDER BY id LIMIT 1),
  (SELECT run_lease FROM awa.jobs WHERE queue = 'api' AND state = 'running' ORDER BY id LIMIT 1), 'boom', interval '0');
SELECT count(*) FROM awa_claim('api', 'w1', 10);
SELECT awa_fail((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'running' AND attempt = 2),
  (SELECT run_lease FROM awa.jobs WHERE queue = 'api' AND state = 'running' AND attempt = 2), 'boom again');
-- a snooze is no event; cancelling it is
SELECT awa_snooze(id, run_lease, interval '1 hour') FROM awa.jobs
 WHERE queue = 'api' AND state = 'running' ORDER BY id LIMIT 1;
SELECT count(*) FROM awa_cancel((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'scheduled'));
-- the last running job is rescued (claimed an hour ago, its receipt moved back): retried
UPDATE awa.claims c SET claimed_at = c.claimed_at - interval '1 hour', deadline_at = c.deadline_at - interval '1 hour'
  FROM awa.jobs j WHERE j.id = c.job_id AND j.run_lease = c.run_lease AND j.queue = 'api' AND j.state = 'running';
-- (the rescue walks the receipts whose deadline passed since its mark: the earlier rounds' mark goes back too)
UPDATE awa.ring_rescue_mark SET passed = '-infinity';
SELECT awa_rescue();
-- (summed over minutes: the test may cross a minute boundary)
SELECT kind, sum(enqueued) AS enqueued, sum(started) AS started, sum(completed) AS completed,
       sum(failed) AS failed, sum(retried) AS retried, sum(cancelled) AS cancelled,
       bool_and(wait_p50 IS NOT NULL) AS has_wait, bool_or(run_p50 IS NOT NULL) AS has_run,
       bool_and(run_max >= run_p95 AND run_p95 >= run_p50) AS ordered
  FROM awa_queue_history('api', by_kind => true) GROUP BY kind ORDER BY kind;
SELECT state, count(*) FROM awa.jobs WHERE queue = 'api' GROUP BY state ORDER BY state;
-- retrying the failed job by hand is no event; cancelling a retried one is (a retry due at once is 'available' on
-- the ring, where the table shows 'retryable' until maintenance promotes it)
SELECT state FROM awa_retry((SELECT id FROM awa.jobs WHERE queue = 'api' AND state = 'failed'));
SELECT state FROM awa_cancel((SELECT id FROM awa.jobs WHERE queue = 'api' AND state IN ('retryable', 'available')
  ORDER BY id LIMIT 1));
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
-- (the round promotes nothing on the ring: its retries due at once are available already)
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
