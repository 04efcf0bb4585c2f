-- The quick-start demo: enqueue, work, cancel, retry, look at the queues.
\set QUIET on
DROP EXTENSION IF EXISTS awa CASCADE;
CREATE EXTENSION awa;
\set QUIET off
\echo '-- enqueue two emails now and a report in an hour'
SELECT id, kind, queue, state, priority FROM awa_insert('send_email', '{"to": "a@example.com"}');
SELECT id, kind, queue, state, priority FROM awa_insert('send_email', '{"to": "b@example.com"}');
SELECT id, kind, queue, state, run_at > now() AS in_future
  FROM awa_insert('report', '{}', queue => 'reports', priority => 1, run_at => now() + interval '1 hour');
\echo '-- a worker claims a batch, completes one and fails the other'
SELECT id, state, attempt, run_lease FROM awa_claim('default', worker => 'demo', batch => 10);
SELECT awa_complete(1, 1) AS completed;
SELECT awa_fail(2, 1, 'smtp timeout') AS new_state;
\echo '-- cancel the report, then retry it'
SELECT id, state FROM awa_cancel(3);
SELECT id, state, attempt FROM awa_retry(3);
\echo '-- at most 2 "thumbnail" jobs at once, across every worker: a batch of 5 gets 2'
SELECT count(*) AS enqueued FROM awa_insert_many('[{"kind": "thumbnail", "queue": "media"}, {"kind": "thumbnail", "queue": "media"},
  {"kind": "thumbnail", "queue": "media"}, {"kind": "thumbnail", "queue": "media"}]');
SELECT queue, max_running FROM awa_set_queue_limit('media', 2);
SELECT id, kind, state FROM awa_claim('media', worker => 'demo', batch => 5);
\echo '-- the queues at a glance'
SELECT * FROM awa_queue_stats();
\echo '-- a periodic job: every day at 07:30 Berlin time; next fire times previewed'
SELECT name, cron, timezone, next_fire_at FROM awa_schedule('morning-report', '30 7 * * *', 'report',
       '{"scope": "daily"}', queue => 'reports', timezone => 'Europe/Berlin');
SELECT * FROM awa_next_fire_times('30 7 * * *', 'Europe/Berlin', now(), 3);
\echo '-- pretend its time has come: awa_maintain() (or the background worker, if it is first) enqueues it once'
UPDATE awa.cron_jobs SET next_fire_at = now() - interval '1 second' WHERE name = 'morning-report';
SELECT periodic_enqueued FROM awa_maintain();
SELECT id, kind, queue, state, metadata->>'cron' AS cron FROM awa.jobs WHERE metadata ? 'cron';
SELECT name, next_fire_at > now() AS next_in_future FROM awa.cron_jobs;
\echo '-- health at a glance'
SELECT version, maintained_by, worker_running, healthy, reason FROM awa_health_check();
