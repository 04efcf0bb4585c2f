-- awa_cancel and awa_retry in every state.
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (INSERT of ids and states, UPDATE, TRUNCATE, triggers or indexes of the table), which the ring's view
-- refuses; not yet rewritten through the awa_* functions.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- one job per state, made with direct writes to the table for the test
INSERT INTO awa.jobs (id, kind, state, run_lease, finalized_at) OVERRIDING SYSTEM VALUE VALUES
  (1, 'k', 'scheduled', 0, NULL), (2, 'k', 'available', 0, NULL), (3, 'k', 'running', 3, NULL),
  (4, 'k', 'retryable', 1, NULL), (5, 'k', 'waiting_external', 2, NULL),
  (6, 'k', 'completed', 1, now()), (7, 'k', 'failed', 25, now()), (8, 'k', 'cancelled', 0, now());
UPDATE awa.jobs SET attempt = 3, heartbeat_at = now(), deadline_at = now() WHERE id IN (3, 5, 7);

-- cancel: non-terminal states become cancelled and are returned
SELECT id, state, finalized_at IS NOT NULL AS finalized FROM awa_cancel(1);
SELECT id, state, finalized_at IS NOT NULL AS finalized FROM awa_cancel(2);
SELECT id, state FROM awa_cancel(4);
-- running and waiting_external (their NOTIFY awa.cancel is tested in notify.spec)
SELECT id, state, run_lease FROM awa_cancel(3);
SELECT id, state, run_lease FROM awa_cancel(5);
-- terminal states: no row, nothing changes
SELECT count(*) FROM awa_cancel(6);
SELECT count(*) FROM awa_cancel(7);
SELECT count(*) FROM awa_cancel(1);
SELECT id, state FROM awa.jobs ORDER BY id;

-- retry: failed, cancelled and waiting_external become available now
UPDATE awa.jobs SET state = 'waiting_external', finalized_at = NULL WHERE id = 5;
SELECT id, state, attempt, run_at = now() AS now, finalized_at, heartbeat_at, deadline_at FROM awa_retry(7);
SELECT id, state, attempt, finalized_at FROM awa_retry(8);
SELECT id, state, attempt, heartbeat_at FROM awa_retry(5);
-- other states: no row, nothing changes
SELECT count(*) FROM awa_retry(6);
SELECT count(*) FROM awa_retry(7);
UPDATE awa.jobs SET state = 'running' WHERE id = 2;
SELECT count(*) FROM awa_retry(2);
SELECT id, state FROM awa.jobs ORDER BY id;

-- unknown ids and NULL
SELECT * FROM awa_cancel(424242);
SELECT * FROM awa_retry(424242);
SELECT * FROM awa_cancel(NULL);
SELECT * FROM awa_retry(NULL);

DROP EXTENSION awa;
