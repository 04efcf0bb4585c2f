-- Administration: retry/discard failed, pause/resume/drain, list, get, health.
-- On the default ring engine: each state is reached through awa's functions.  Claims take a queue's jobs by
-- priority, then age: the jobs that must stay available (5 and 11 here; the available ones of the list below) have
-- priority 3, so that the claims that make the others take those alone.
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- jobs in every state, made through awa's functions: 1, 2, 3, 12 failed, 4 completed, 5 and 11 available,
-- 6 scheduled (in an hour), 7 retryable (retry in an hour), 8 running, 9 waiting_external, 10 cancelled
INSERT INTO awa.jobs (kind, queue, priority, run_at, tags) VALUES
  ('mail', 'q1', 2, now(), '{}'), ('mail', 'q2', 2, now(), '{vip}'),
  ('sms', 'q1', 2, now(), '{}'), ('sms', 'q1', 2, now(), '{vip}'),
  ('mail', 'q1', 3, now(), '{}'), ('mail', 'q1', 2, now() + interval '1 hour', '{}'),
  ('mail', 'q1', 2, now(), '{}'), ('mail', 'q1', 2, now(), '{}'),
  ('mail', 'q1', 2, now(), '{}'), ('mail', 'q1', 2, now(), '{}'),
  ('mail', 'q2', 3, now(), '{vip}'), ('push', 'q3', 2, now(), '{}');
SELECT id, state FROM awa_cancel(10);
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM awa_claim('q1', batch => 6) UNION ALL
  SELECT id FROM awa_claim('q2') UNION ALL SELECT id FROM awa_claim('q3')) c;
SELECT id, awa_fail(id, 1, 'boom', terminal => true) FROM unnest(ARRAY[1, 2, 3, 12]) id;
SELECT awa_complete(4, 1), awa_fail(7, 1, 'later', retry_in => '1 hour'),
       awa_register_callback(9, 1, '1 hour') IS NOT NULL AS registered, awa_wait_external(9, 1);
SELECT id, state FROM awa.jobs ORDER BY id;

-- awa_retry_failed: bad input first, each an error that changes nothing
SELECT * FROM awa_retry_failed();
SELECT * FROM awa_retry_failed(NULL, NULL);
SELECT * FROM awa_retry_failed('');
SELECT * FROM awa_retry_failed(repeat('k', 201));
SELECT * FROM awa_retry_failed('mail', '');
SELECT * FROM awa_retry_failed(queue => repeat('q', 201));
SELECT id, state FROM awa.jobs WHERE state = 'failed' ORDER BY id;
-- by kind: the failed mail jobs of every queue, attempts reset, available now
SELECT id, kind, queue, state, attempt, run_at = now() AS now, finalized_at FROM awa_retry_failed('mail');
-- by queue only
SELECT id, kind, queue, state FROM awa_retry_failed(queue => 'q1');
-- by kind and queue: nothing matches any more
SELECT count(*) FROM awa_retry_failed('push', 'q1');
-- a kind with no failed jobs
SELECT count(*) FROM awa_retry_failed('nothing');
-- everything, said explicitly (1 and 3 claimed and failed again first)
SELECT id, awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('q1', batch => 2) ORDER BY id;
SELECT id, kind, state FROM awa_retry_failed('*');
SELECT id, state FROM awa.jobs WHERE id IN (1, 2, 3, 12) ORDER BY id;
-- completed and other states are not retried
SELECT count(*) FROM awa_retry_failed('*');
SELECT id, state FROM awa.jobs WHERE id IN (4, 8, 9, 10) ORDER BY id;
-- a rolled-back retry leaves the jobs failed (1, 2, 3 and 12 claimed and failed again first)
SELECT id, awa_fail(id, run_lease, 'boom', terminal => true) FROM (SELECT * FROM awa_claim('q1', batch => 2)
  UNION ALL SELECT * FROM awa_claim('q2') UNION ALL SELECT * FROM awa_claim('q3')) c ORDER BY id;
BEGIN;
SELECT count(*) FROM awa_retry_failed('*');
ROLLBACK;
SELECT id, state FROM awa.jobs WHERE id IN (1, 2, 3, 12) ORDER BY id;

-- awa_discard_failed
SELECT awa_discard_failed(NULL);
SELECT awa_discard_failed('');
SELECT awa_discard_failed(repeat('k', 201));
SELECT count(*) FROM awa.jobs;
SELECT awa_discard_failed('sms');
SELECT awa_discard_failed('sms');
SELECT awa_discard_failed('nothing');
SELECT id, kind, state FROM awa.jobs WHERE state = 'failed' ORDER BY id;
SELECT awa_discard_failed('*');
SELECT count(*) FROM awa.jobs WHERE state = 'failed';
SELECT count(*) FROM awa.jobs;

-- awa_pause_queue / awa_resume_queue
SELECT awa_pause_queue(NULL);
SELECT awa_pause_queue('');
SELECT awa_pause_queue(repeat('q', 201));
SELECT awa_resume_queue(NULL);
SELECT awa_resume_queue('');
SELECT count(*) FROM awa.queue_meta;
SELECT awa_pause_queue('q1', 'ops@example.com');
SELECT queue, paused, paused_at > now() - interval '1 hour' AS recent, paused_by FROM awa.queue_meta;
-- pausing again: false, the first pause is kept
SELECT awa_pause_queue('q1', 'someone else');
SELECT queue, paused, paused_by FROM awa.queue_meta;
-- a queue with no jobs yet may be paused; paused_by is optional
SELECT awa_pause_queue('future');
SELECT queue, paused, paused_by FROM awa.queue_meta ORDER BY queue;
SELECT queue, paused FROM awa_queue_stats() WHERE queue IN ('q1', 'q2', 'future') ORDER BY queue;
SELECT awa_resume_queue('q1');
SELECT awa_resume_queue('q1');
-- a queue awa has never seen: a no-op, false
SELECT awa_resume_queue('never-seen');
SELECT queue, paused, paused_at IS NOT NULL AS has_paused_at, paused_by FROM awa.queue_meta ORDER BY queue;
-- pause after resume works again
SELECT awa_pause_queue('q1');
SELECT awa_resume_queue('q1');

-- awa_drain_queue: available, scheduled, retryable, waiting_external become cancelled
SELECT awa_drain_queue(NULL);
SELECT awa_drain_queue('');
SELECT awa_drain_queue(repeat('q', 201));
SELECT id, state FROM awa.jobs WHERE queue = 'q1' ORDER BY id;
SELECT awa_drain_queue('q1');
SELECT id, state, finalized_at IS NOT NULL AS finalized FROM awa.jobs WHERE queue = 'q1' ORDER BY id;
SELECT awa_drain_queue('q1');
SELECT awa_drain_queue('never-seen');
-- other queues untouched
SELECT id, state FROM awa.jobs WHERE queue <> 'q1' ORDER BY id;

-- awa_get_job
SELECT id, kind, queue, state FROM awa_get_job(11);
SELECT (awa_get_job(11)).tags;
SELECT * FROM awa_get_job(424242);
SELECT * FROM awa_get_job(NULL);

-- awa_list_jobs: a fresh set of 30 jobs, ids 1 to 30 again (the id sequence restarted once the jobs are gone),
-- the state by id % 5: available (priority 3: not claimed), completed, failed, cancelled, running
DELETE FROM awa.jobs;
SELECT setval('awa.jobs_id_seq', 1, false) AS restarted;
INSERT INTO awa.jobs (kind, queue, priority, tags)
  SELECT CASE WHEN g % 3 = 0 THEN 'a' ELSE 'b' END, 'q' || (g % 2), CASE WHEN g % 5 = 0 THEN 3 ELSE 2 END,
         CASE WHEN g % 4 = 0 THEN '{t1, t2}' ELSE '{t2}' END::text[]
  FROM generate_series(1, 30) g;
SELECT count(*) AS cancelled FROM awa.jobs j, awa_cancel(j.id) c WHERE j.id % 5 = 3;
SELECT count(*) AS claimed FROM unnest(ARRAY['q0', 'q1']) q,
  awa_claim(q, batch => (SELECT count(*)::int FROM awa.jobs WHERE queue = q AND id % 5 IN (1, 2, 4))) c;
SELECT count(*) FILTER (WHERE awa_complete(id, 1)) AS completed FROM awa.jobs WHERE id % 5 = 1;
SELECT count(*) FILTER (WHERE awa_fail(id, 1, 'boom', terminal => true) = 'failed') AS failed
  FROM awa.jobs WHERE id % 5 = 2;
SELECT state, array_agg(id ORDER BY id) FROM awa.jobs GROUP BY state ORDER BY state;
-- defaults: newest first
SELECT array_agg(id) FROM awa_list_jobs();
SELECT array_agg(id) FROM awa_list_jobs(lim => 5);
-- keyset pages
SELECT array_agg(id) FROM awa_list_jobs(before_id => 26, lim => 5);
SELECT array_agg(id) FROM awa_list_jobs(before_id => 21, lim => 5);
SELECT count(*) FROM awa_list_jobs(before_id => 1);
-- filters, alone and together
SELECT array_agg(id) FROM awa_list_jobs(state => 'failed');
SELECT array_agg(id) FROM awa_list_jobs(state => 'completed');
SELECT array_agg(id) FROM awa_list_jobs(state => 'cancelled', before_id => 20);
SELECT array_agg(id) FROM awa_list_jobs(state => 'scheduled');
SELECT array_agg(id) FROM awa_list_jobs(kind => 'a');
SELECT array_agg(id) FROM awa_list_jobs(queue => 'q0', lim => 4);
SELECT array_agg(id) FROM awa_list_jobs(tag => 't1');
SELECT array_agg(id) FROM awa_list_jobs(tag => 'nope');
SELECT array_agg(id) FROM awa_list_jobs('failed', 'a', 'q1', 't2', 30, 10);
SELECT array_agg(id) FROM awa_list_jobs(state => 'running', kind => 'b', tag => 't1');
-- the row is the whole job
SELECT id, kind, queue, state, tags FROM awa_list_jobs(lim => 1);
-- bad limits
SELECT * FROM awa_list_jobs(lim => 0);
SELECT * FROM awa_list_jobs(lim => -1);
SELECT * FROM awa_list_jobs(lim => 1001);
SELECT * FROM awa_list_jobs(lim => NULL);
SELECT count(*) FROM awa_list_jobs(lim => 1000);

-- awa_health_check: the columns that do not depend on the server set-up
SELECT version = (SELECT default_version FROM pg_available_extensions WHERE name = 'awa') AS is_default_version,
       preloaded IS NOT NULL AS has_preloaded, stale_heartbeats,
       oldest_available_seconds >= 0 AS has_lag, paused_queues, notification_queue_usage >= 0 AS usage
  FROM awa_health_check();
SELECT awa_pause_queue('q0');
SELECT awa_pause_queue('a-queue');
SELECT paused_queues FROM awa_health_check();
-- a running job whose heartbeat is older than awa.heartbeat_timeout is reported (4: claimed 91 seconds ago, its
-- receipt moved back; 9 heartbeats now)
UPDATE awa.claims SET claimed_at = claimed_at - interval '91 seconds', deadline_at = deadline_at - interval '91 seconds'
 WHERE job_id = 4;
SELECT awa_heartbeat(ARRAY[9]::bigint[], ARRAY[1]::bigint[]);
SELECT stale_heartbeats, healthy, reason LIKE '%1 running jobs have heartbeats older than awa.heartbeat_timeout%' AS why
  FROM awa_health_check();
SET awa.heartbeat_timeout = '5min';
SELECT stale_heartbeats FROM awa_health_check();
RESET awa.heartbeat_timeout;
-- no available job: no lag
DELETE FROM awa.jobs WHERE state = 'available';
SELECT oldest_available_seconds FROM awa_health_check();
-- healthy is false exactly when there is a reason
SELECT healthy = (reason IS NULL) AS consistent FROM awa_health_check();

-- settings of a queue that has no jobs: a NOTICE (a misspelt name?);
-- awa_forget_queue removes them, jobs untouched
SELECT awa_pause_queue('mial');
SELECT queue, paused FROM awa.queue_meta WHERE queue = 'mial';
SELECT awa_forget_queue('mial');
SELECT awa_forget_queue('mial');
SELECT count(*) FROM awa.queue_meta WHERE queue = 'mial';
SELECT awa_forget_queue(NULL);
SELECT awa_forget_queue('');
SELECT setval('awa.jobs_id_seq', 1000) > 0 AS ids_past_the_test_rows;
SELECT count(*) FROM (SELECT awa_insert('f', queue => 'qf') FROM generate_series(1, 3)) s;
SELECT queue, max_running FROM awa_set_queue_limit('qf', 1);
SELECT awa_pause_queue('qf');
SELECT awa_forget_queue('qf');
SELECT count(*) FROM awa_claim('qf', batch => 5);

DROP EXTENSION awa;
