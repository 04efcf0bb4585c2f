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
\echo '-- the queues at a glance'
SELECT * FROM awa_queue_stats();
