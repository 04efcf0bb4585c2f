-- awa_cancel and awa_retry in every state.
-- On the default ring engine: each state is reached through awa's functions (one queue per job, so that a claim
-- takes that job); jobs 9 and 10 are a second job waiting for its callback and a second running one, for the
-- retries that the table's version wrote into jobs 5 and 2 by hand.
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- one job per state, made through awa's functions: 1 scheduled, 2 available, 3 running, 4 retryable (retry in an
-- hour), 5 waiting_external, 6 completed, 7 failed, 8 cancelled; 9 waiting_external, 10 running
SELECT id, state FROM awa_insert('k', queue => 'q1', run_at => now() + interval '1 day');
SELECT (j).id, (j).state FROM (SELECT awa_insert('k', queue => 'q' || n) AS j FROM generate_series(2, 10) n) x;
SELECT id, run_lease FROM awa_claim(ARRAY['q3', 'q4', 'q5', 'q6', 'q7', 'q9', 'q10'], batch => 10) ORDER BY id;
SELECT awa_fail(4, 1, 'later', retry_in => '1 hour');
SELECT awa_register_callback(id, 1, '1 hour') IS NOT NULL AS registered, awa_wait_external(id, 1)
  FROM (VALUES (5), (9)) v(id);
SELECT awa_complete(6, 1);
SELECT awa_fail(7, 1, 'boom', terminal => true);
SELECT id, state FROM awa_cancel(8);
SELECT id, state, attempt, finalized_at IS NOT NULL AS finalized FROM awa.jobs ORDER BY id;

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

-- retry: failed, cancelled and waiting_external become available now (9: waiting for its callback)
SELECT id, state, attempt, run_at = now() AS now, finalized_at, heartbeat_at, deadline_at FROM awa_retry(7);
SELECT id, state, attempt, finalized_at FROM awa_retry(8);
SELECT id, state, attempt, heartbeat_at FROM awa_retry(9);
-- other states: no row, nothing changes
SELECT count(*) FROM awa_retry(6);
SELECT count(*) FROM awa_retry(7);
SELECT count(*) FROM awa_retry(10);
SELECT id, state FROM awa.jobs ORDER BY id;

-- unknown ids and NULL
SELECT * FROM awa_cancel(424242);
SELECT * FROM awa_retry(424242);
SELECT * FROM awa_cancel(NULL);
SELECT * FROM awa_retry(NULL);

DROP EXTENSION awa;
