-- The quick-start demo: enqueue, cancel, retry, look at the queues.
\set QUIET on
DROP EXTENSION IF EXISTS awa CASCADE;
CREATE EXTENSION awa;
\set QUIET off
\echo '-- enqueue a job that is available now, and one scheduled in an hour'
SELECT id, kind, queue, state, priority FROM awa_insert('send_email', '{"to": "a@example.com"}');
SELECT id, kind, queue, state, run_at > now() AS in_future
  FROM awa_insert('report', '{}', queue => 'reports', priority => 1, run_at => now() + interval '1 hour');
\echo '-- cancel the email job, then retry it'
SELECT id, state, finalized_at IS NOT NULL AS finalized FROM awa_cancel(1);
SELECT id, state, attempt FROM awa_retry(1);
\echo '-- the queues at a glance'
SELECT * FROM awa_queue_stats();
