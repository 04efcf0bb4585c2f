-- The worker lifecycle: claim order and aging, complete, fail with backoff,
-- snooze, heartbeat, progress, rescue, and every bad input.
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (ids, states, attempts and leases of its choosing, stale heartbeats), which the ring's view refuses; not yet
-- rewritten through the awa_* functions (docs/storage.md, "Step 5: the regression files on the ring").
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- claim order: effective priority, then run_at, then id
SET awa.priority_aging_interval = '60s';
INSERT INTO awa.jobs (id, kind, queue, priority, run_at, state) OVERRIDING SYSTEM VALUE VALUES
  (1, 'p3-new', 'q', 3, now() - interval '10 seconds', 'available'),
  (2, 'p1-new', 'q', 1, now() - interval '5 seconds', 'available'),
  (3, 'p2-aged', 'q', 2, now() - interval '90 seconds', 'available'),     -- effective 1
  (4, 'p4-aged', 'q', 4, now() - interval '150 seconds', 'available'),    -- effective 2
  (5, 'p2-new', 'q', 2, now() - interval '1 second', 'available'),
  (6, 'p4-very-old', 'q', 4, now() - interval '1 hour', 'available'),     -- effective 1
  (7, 'sched-due', 'q', 2, now() - interval '2 seconds', 'scheduled'),
  (8, 'sched-later', 'q', 1, now() + interval '1 hour', 'scheduled'),
  (9, 'retry-due', 'q', 3, now() - interval '3 seconds', 'retryable'),
  (10, 'other-queue', 'r', 1, now(), 'available'),
  (11, 'done', 'q', 1, now(), 'completed');
SELECT id, kind, state, attempt, run_lease, claimed_by,
       attempted_at = heartbeat_at AS same_times, deadline_at - attempted_at AS lease
  FROM awa_claim('q', worker => 'w1', batch => 100, lease => '10 minutes');
-- nothing left that is due; the future job stays
SELECT count(*) FROM awa_claim('q', batch => 10);
-- aging off: plain priority order
RESET awa.priority_aging_interval;
SET awa.priority_aging_interval = 0;
UPDATE awa.jobs SET state = 'available', attempt = 0 WHERE id BETWEEN 1 AND 6;
SELECT id, priority FROM awa_claim('q', batch => 3);
RESET awa.priority_aging_interval;
-- batch limits the count; default batch is 1
SELECT id FROM awa_claim('q');
SELECT count(*) FROM awa_claim('q', batch => 1000);

-- complete: right lease only, once
SELECT id, run_lease FROM awa.jobs WHERE id = 1;
SELECT awa_complete(1, 1) AS wrong_lease, awa_complete(1, 2) AS right_lease, awa_complete(1, 2) AS again;
SELECT state, finalized_at IS NOT NULL AS finalized FROM awa.jobs WHERE id = 1;
SELECT awa_complete(424242, 1) AS unknown;
-- complete_many counts only the pairs that match
SELECT awa_complete_many(ARRAY[2, 3, 4, 424242], ARRAY[2, 1, 999, 1]) AS completed;
SELECT id, state FROM awa.jobs WHERE id IN (2, 3, 4) ORDER BY id;
SELECT awa_complete_many('{}', '{}') AS none;

-- fail: retryable with backoff 2^attempt s plus up to 25% jitter, the base capped at 19.2 h (at most 24 h)
SELECT awa_fail(4, 2, 'smtp timeout') AS state;
SELECT state, attempt, errors[1]->>'error' AS error, (errors[1]->>'attempt')::int AS err_attempt,
       run_at - (errors[1]->>'at')::timestamptz BETWEEN interval '2 seconds' AND interval '2.5 seconds' AS backoff_ok,
       finalized_at IS NULL AS not_final, heartbeat_at IS NULL AS no_heartbeat
  FROM awa.jobs WHERE id = 4;
-- larger attempts: 2^10 s = 1024 s .. 1280 s; attempt 20: capped, 19.2 .. 24 hours
UPDATE awa.jobs SET state = 'running', attempt = 10, run_lease = 50 WHERE id = 5;
SELECT awa_fail(5, 50, 'x');
SELECT run_at - (errors[cardinality(errors)]->>'at')::timestamptz BETWEEN interval '1024 seconds' AND interval '1280 seconds' AS backoff_ok
  FROM awa.jobs WHERE id = 5;
UPDATE awa.jobs SET state = 'running', attempt = 20, run_lease = 51 WHERE id = 5;
SELECT awa_fail(5, 51, 'x');
SELECT run_at - (errors[cardinality(errors)]->>'at')::timestamptz BETWEEN interval '69120 seconds' AND interval '24 hours' AS capped FROM awa.jobs WHERE id = 5;
-- explicit retry_in, and the stale lease
UPDATE awa.jobs SET state = 'running', attempt = 1, run_lease = 52 WHERE id = 5;
SELECT awa_fail(5, 52, 'later', retry_in => '30 seconds');
SELECT run_at - (errors[cardinality(errors)]->>'at')::timestamptz = interval '30 seconds' AS retry_in_ok, cardinality(errors) AS n_errors FROM awa.jobs WHERE id = 5;
SELECT awa_fail(5, 52, 'stale') IS NULL AS stale;
-- out of attempts, or terminal: failed
UPDATE awa.jobs SET state = 'running', attempt = 25, max_attempts = 25, run_lease = 53 WHERE id = 5;
SELECT awa_fail(5, 53, 'last');
SELECT state, finalized_at IS NOT NULL AS finalized FROM awa.jobs WHERE id = 5;
UPDATE awa.jobs SET state = 'running', attempt = 1, run_lease = 54, finalized_at = NULL WHERE id = 5;
SELECT awa_fail(5, 54, 'bad input', terminal => true);

-- snooze: scheduled later, attempt not counted
UPDATE awa.jobs SET state = 'running', attempt = 3, run_lease = 60 WHERE id = 6;
SELECT awa_snooze(6, 60, '10 minutes') AS snoozed, awa_snooze(6, 60, '1 minute') AS again;
SELECT state, attempt, run_at - now() BETWEEN interval '9 minutes' AND interval '10 minutes' AS delay_ok FROM awa.jobs WHERE id = 6;

-- heartbeat returns the ids no longer held
UPDATE awa.jobs SET state = 'running', run_lease = 70, heartbeat_at = now() - interval '1 minute' WHERE id IN (7, 9);
SELECT awa_heartbeat(ARRAY[7, 9, 6, 424242], ARRAY[70, 71, 60, 1]) AS gone;
SELECT id, heartbeat_at > now() - interval '30 seconds' AS fresh FROM awa.jobs WHERE id IN (7, 9) ORDER BY id;
SELECT awa_heartbeat('{}', '{}') AS gone;

-- progress: stored, kept across retries
SELECT awa_progress(7, 70, '{"done": 5, "of": 10}') AS stored, awa_progress(7, 1, '{}') AS stale;
SELECT awa_fail(7, 70, 'crash') IS NOT NULL AS failed;
SELECT progress FROM awa.jobs WHERE id = 7;

-- rescue: stale heartbeat and passed deadline, each with its own error
SET awa.heartbeat_timeout = 60;
UPDATE awa.jobs SET state = 'running', attempt = 1, max_attempts = 5, heartbeat_at = now() - interval '2 minutes',
  deadline_at = now() + interval '1 hour' WHERE id = 9;
UPDATE awa.jobs SET state = 'running', attempt = 2, max_attempts = 5, heartbeat_at = now(),
  deadline_at = now() - interval '1 second' WHERE id = 10;
UPDATE awa.jobs SET state = 'running', attempt = 5, max_attempts = 5, heartbeat_at = now() - interval '2 minutes',
  deadline_at = now() + interval '1 hour', finalized_at = NULL WHERE id = 11;
UPDATE awa.jobs SET state = 'running', heartbeat_at = now(), deadline_at = now() + interval '1 hour' WHERE id = 8;
SELECT awa_rescue() AS rescued;
SELECT id, state, errors[cardinality(errors)]->>'error' AS last_error, finalized_at IS NOT NULL AS finalized
  FROM awa.jobs WHERE id IN (8, 9, 10, 11) ORDER BY id;
SELECT awa_rescue() AS rescued_again;
RESET awa.heartbeat_timeout;

-- paused queue hands out nothing
INSERT INTO awa.queue_meta (queue, paused) VALUES ('r', true);
SELECT count(*) FROM awa_claim('r');
UPDATE awa.queue_meta SET paused = false;
SELECT id FROM awa_claim('r');

-- bad input: errors, nothing changed
SELECT count(*) FROM awa_claim('q', batch => 0);
SELECT count(*) FROM awa_claim('q', batch => 1001);
SELECT count(*) FROM awa_claim('q', lease => '0 seconds');
SELECT count(*) FROM awa_claim('q', lease => '-1 minute');
SELECT count(*) FROM awa_claim('q', wait => '-1 second');
SELECT count(*) FROM awa_claim(NULL);
SELECT count(*) FROM awa_claim('');
SELECT count(*) FROM awa_claim('q', batch => NULL);
SELECT count(*) FROM awa_claim('q', lease => NULL);
SELECT count(*) FROM awa_claim('q', wait => NULL);
SELECT awa_complete(NULL, 1);
SELECT awa_complete(1, NULL);
SELECT awa_complete_many(ARRAY[1, 2], ARRAY[1]);
SELECT awa_complete_many(ARRAY[1, NULL], ARRAY[1, 1]);
SELECT awa_complete_many(NULL, ARRAY[1]);
SELECT awa_complete_many(ARRAY[[1], [2]], ARRAY[[1], [2]]);
SELECT awa_complete_many(array_fill(1::bigint, ARRAY[10001]), array_fill(1::bigint, ARRAY[10001]));
SELECT awa_fail(1, 1, NULL);
SELECT awa_fail(1, 1, 'x', retry_in => '-1 second');
SELECT awa_fail(1, 1, 'x', terminal => NULL);
SELECT awa_snooze(1, 1, '-1 minute');
SELECT awa_snooze(1, 1, NULL);
SELECT awa_heartbeat(ARRAY[1], ARRAY[1, 2]);
SELECT awa_heartbeat(ARRAY[1], NULL);
SELECT awa_progress(1, 1, NULL);
SELECT id, state, attempt, run_lease FROM awa.jobs ORDER BY id;

DROP EXTENSION awa;
