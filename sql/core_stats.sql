-- awa_queue_stats: counts by state per queue, lag, paused.
-- On the default ring engine: each state is reached through awa's functions; a completion two hours old has its
-- finish moved back in the ring's tables (awa.done, awa.counter_deltas), as time cannot pass in a test.
-- core_stats_table.sql: the same counts on the table engine, and a run_at of -infinity written behind awa's back.
CREATE EXTENSION awa;

SELECT * FROM awa_queue_stats();
-- queue a: seven jobs claimed, then one left running, one retryable (retry in an hour), one waiting for an
-- external callback, one failed, one cancelled, two completed (one two hours ago); then one scheduled and two
-- available (due 10 and 5 seconds ago); queue b: one completed
CREATE TEMP TABLE c (n int, id bigint, run_lease bigint);
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'a') FROM generate_series(1, 7)) x;
INSERT INTO c SELECT row_number() OVER (ORDER BY id), id, run_lease FROM awa_claim('a', batch => 7);
SELECT awa_fail(id, run_lease, 'later', retry_in => '1 hour') FROM c WHERE n = 2;
SELECT awa_register_callback(id, run_lease, '1 hour') IS NOT NULL AS registered, awa_wait_external(id, run_lease)
  FROM c WHERE n = 3;
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM c WHERE n = 4;
SELECT state FROM awa_cancel((SELECT id FROM c WHERE n = 5));
SELECT awa_complete(id, run_lease) FROM c WHERE n = 6;
SELECT awa_complete(id, run_lease) FROM c WHERE n = 7;
UPDATE awa.done SET finalized_at = finalized_at - interval '2 hours' WHERE job_id = (SELECT id FROM c WHERE n = 7);
UPDATE awa.counter_deltas SET completed_second = completed_second - interval '2 hours'
 WHERE queue = 'a' AND completed = 1 AND xid = (SELECT max(xid) FROM awa.counter_deltas WHERE queue = 'a' AND completed = 1);
SELECT state FROM awa_insert('k', queue => 'a', run_at => now() + interval '1 day');
SELECT state FROM awa_insert('k', queue => 'a', run_at => now() - interval '10 seconds');
SELECT state FROM awa_insert('k', queue => 'a', run_at => now() - interval '5 seconds');
SELECT id AS b FROM awa_insert('k', queue => 'b') \gset
SELECT count(*) FROM awa_claim('b');
SELECT awa_complete(:b, 1);
INSERT INTO awa.queue_meta (queue, paused) VALUES ('c', true);
SELECT queue, total_queued, scheduled, available, retryable, running, waiting_external,
       failed, cancelled, completed_last_hour, lag_seconds BETWEEN 10 AND 60 AS lag_ok,
       lag_seconds IS NULL AS no_lag, paused
  FROM awa_queue_stats();
-- the caller's own uncommitted jobs count; rolled-back ones do not
BEGIN;
SELECT state FROM awa_insert('k', queue => 'b');
SELECT queue, total_queued, available FROM awa_queue_stats() WHERE queue = 'b';
ROLLBACK;
SELECT queue, total_queued, available FROM awa_queue_stats() WHERE queue = 'b';

DROP EXTENSION awa;
