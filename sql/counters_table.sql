-- awa_queue_stats from the job counters equals a recount of awa.jobs after the table's own kinds of change: plain
-- SQL moving jobs between queues and states, completions written with their times around the hour's edge,
-- TRUNCATE; and the counting trigger function is for awa.jobs alone (the rest: counters.sql, on the default ring).
-- On the table engine (awa.install_engine = table): the ring's view takes no UPDATE, no TRUNCATE, no row with a
-- state or a finalized_at, and has no counting trigger of its own.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;

-- The recount: what awa_queue_stats() returned before it had counters.
CREATE FUNCTION recount() RETURNS TABLE (queue text, total_queued bigint, scheduled bigint,
	available bigint, retryable bigint, running bigint, waiting_external bigint, failed bigint,
	cancelled bigint, completed_last_hour bigint, lag_seconds float8, paused boolean)
LANGUAGE sql STABLE AS $$
	WITH c AS (
		SELECT queue,
			count(*) FILTER (WHERE state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')) AS tq,
			count(*) FILTER (WHERE state = 'scheduled') AS s, count(*) FILTER (WHERE state = 'available') AS a,
			count(*) FILTER (WHERE state = 'retryable') AS rt, count(*) FILTER (WHERE state = 'running') AS r,
			count(*) FILTER (WHERE state = 'waiting_external') AS w, count(*) FILTER (WHERE state = 'failed') AS f,
			count(*) FILTER (WHERE state = 'cancelled') AS cc,
			count(*) FILTER (WHERE state = 'completed' AND finalized_at > now() - interval '1 hour') AS clh,
			min(run_at) FILTER (WHERE state = 'available') AS oldest
		FROM awa.jobs GROUP BY queue)
	SELECT coalesce(c.queue, m.queue), coalesce(tq, 0), coalesce(s, 0), coalesce(a, 0), coalesce(rt, 0),
		coalesce(r, 0), coalesce(w, 0), coalesce(f, 0), coalesce(cc, 0), coalesce(clh, 0),
		CASE WHEN oldest IS NOT NULL THEN greatest(extract(epoch FROM now()) - extract(epoch FROM oldest), 0)::float8 END,
		coalesce(m.paused, false)
	FROM (SELECT * FROM c WHERE tq + f + cc + clh > 0) c FULL JOIN awa.queue_meta m ON m.queue = c.queue
$$;
-- Rows of either that the other lacks (none when they agree), and the jobs counted.
CREATE FUNCTION stats_vs_recount() RETURNS TABLE (differ bigint, jobs bigint, last_hour bigint)
LANGUAGE sql STABLE AS $$
	SELECT (SELECT count(*) FROM ((SELECT * FROM awa_queue_stats() EXCEPT ALL SELECT * FROM recount())
			UNION ALL (SELECT * FROM recount() EXCEPT ALL SELECT * FROM awa_queue_stats())) d),
		(SELECT coalesce(sum(total_queued + failed + cancelled), 0) FROM awa_queue_stats()),
		(SELECT coalesce(sum(completed_last_hour), 0) FROM awa_queue_stats())
$$;

-- some jobs to move: two queues, one of them copied
SELECT count(*) FROM (SELECT awa_insert('k', queue => q) FROM unnest(ARRAY['plain', 'plain', 'copied', 'sp']) q) x;
SELECT * FROM stats_vs_recount();

-- savepoints: a rolled-back subtransaction's plain UPDATE is not counted
BEGIN;
SAVEPOINT a;
UPDATE awa.jobs SET queue = 'sp2' WHERE queue = 'plain';
ROLLBACK TO a;
SELECT * FROM stats_vs_recount();
COMMIT;

-- plain SQL: moving jobs between queues and states, deleting them
UPDATE awa.jobs SET queue = 'moved' WHERE queue = 'copied';
UPDATE awa.jobs SET state = 'waiting_external' WHERE id = (SELECT min(id) FROM awa.jobs WHERE queue = 'plain');
DELETE FROM awa.jobs WHERE queue = 'sp';
SELECT * FROM stats_vs_recount();

-- completed_last_hour: completions around the minute an hour ago, on both
-- sides of now() - 1 hour (which part of that minute is counted from the jobs
-- depends on the second now() falls on; the result must not; how many are
-- in the hour depends on the time between statements: only differ is shown)
INSERT INTO awa.jobs (kind, queue, state, attempt, finalized_at)
	SELECT 'k', 'edge', 'completed', 1, now() - interval '1 hour' + s * interval '1 second' + interval '1 ms'
	FROM generate_series(-150, 150) s;
SELECT differ FROM stats_vs_recount();
SELECT promoted FROM awa_maintain();
SELECT differ FROM stats_vs_recount();
SELECT sum(completed) FILTER (WHERE seconds = 1) = sum(completed) FILTER (WHERE seconds = 60) AS same_sums,
	count(*) FILTER (WHERE seconds = 60) BETWEEN 5 AND 7 AS minutes
	FROM awa.counter_completed WHERE queue = 'edge';
-- a fold that no longer keeps that minute: counted from the jobs alone
BEGIN;
UPDATE awa.counter_folds SET completed_from = 'infinity';
SELECT differ FROM stats_vs_recount();
ROLLBACK;
-- completions moved out of the hour and back by plain SQL
UPDATE awa.jobs SET finalized_at = finalized_at - interval '1 day' WHERE queue = 'edge' AND id % 2 = 0;
SELECT differ FROM stats_vs_recount();
UPDATE awa.jobs SET finalized_at = now() WHERE queue = 'edge' AND id % 4 = 0;
SELECT differ FROM stats_vs_recount();

-- TRUNCATE, in a transaction that goes on to enqueue
BEGIN;
TRUNCATE awa.jobs;
SELECT * FROM stats_vs_recount();
SELECT state FROM awa_insert('k', queue => 'after');
COMMIT;
SELECT * FROM stats_vs_recount();
SELECT promoted FROM awa_maintain();
SELECT * FROM stats_vs_recount();
SELECT queue, scheduled, available, running FROM awa.counter_fold_counts ORDER BY queue;
SELECT sum(completed) FILTER (WHERE seconds = 1) AS by_second, sum(completed) FILTER (WHERE seconds = 60) AS by_minute
	FROM awa.counter_completed;

-- the trigger function is for awa.jobs' statement triggers only
SELECT awa.jobs_count_changes();
CREATE TABLE t (x int);
CREATE TRIGGER t_count AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION awa.jobs_count_changes();
INSERT INTO t VALUES (1);
DROP TABLE t;

DROP FUNCTION stats_vs_recount(), recount();
DROP EXTENSION awa;
