-- awa_queue_stats from the job counters (fold + deltas) equals a recount of
-- awa.jobs after every kind of change: awa's functions (direct and SPI
-- insert paths), plain SQL, COPY, TRUNCATE, rollbacks, savepoints, the
-- caller's own uncommitted changes, folds by maintenance.
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (INSERT of ids and states, UPDATE, TRUNCATE, triggers or indexes of the table), which the ring's view
-- refuses; not yet rewritten through the awa_* functions.
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

-- the first fold (CREATE EXTENSION) counted an empty table; it keeps
-- completions from the minute 65 minutes ago on
SELECT fold, completed_from BETWEEN now() - interval '66 minutes' AND now() - interval '64 minutes' AS since
	FROM awa.counter_folds;
SELECT * FROM stats_vs_recount();

-- enqueue: direct path, awa_insert_many, unique jobs (through SPI), plain INSERT, COPY
SELECT count(*) FROM (SELECT awa_insert('k', jsonb_build_object('i', i), queue => 'q' || (i % 3))
	FROM generate_series(1, 30) i) x;
SELECT count(*) FROM awa_insert_many('[{"kind": "k", "queue": "m"}, {"kind": "k", "queue": "m", "run_at": "2099-01-01"},
	{"kind": "k", "queue": "q1", "unique_by_args": true}]');
SELECT state FROM awa_insert('u', '{"a": 1}', queue => 'm', unique_by_args => true);
SELECT state FROM awa_insert('u', '{"a": 1}', queue => 'm', unique_by_args => true);
INSERT INTO awa.jobs (kind, queue, run_at) VALUES ('k', 'plain', now() + interval '1 day'), ('k', 'plain', NULL);
COPY awa.jobs (kind, queue) FROM STDIN;
k	copied
k	copied
\.
SELECT * FROM stats_vs_recount();

-- claim, complete, fail (retryable, then failed), snooze, heartbeat, cancel, retry
CREATE TABLE claimed AS SELECT id, run_lease FROM awa_claim('q0', batch => 6);
SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) FROM (SELECT * FROM claimed ORDER BY id LIMIT 3) c;
SELECT awa_fail(id, run_lease, 'boom') FROM (SELECT * FROM claimed ORDER BY id OFFSET 3 LIMIT 1) c;
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM (SELECT * FROM claimed ORDER BY id OFFSET 4 LIMIT 1) c;
SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM (SELECT * FROM claimed ORDER BY id OFFSET 5) c;
SELECT awa_snooze(id, run_lease, '1 hour') FROM (SELECT * FROM claimed ORDER BY id OFFSET 5) c;
SELECT count(*) FROM awa_cancel((SELECT min(id) FROM awa.jobs WHERE queue = 'q1'));
SELECT count(*) FROM awa_retry((SELECT min(id) FROM awa.jobs WHERE state = 'cancelled'));
SELECT awa_drain_queue('q2');
SELECT * FROM stats_vs_recount();
SELECT queue, total_queued, scheduled, available, running, retryable, failed, cancelled, completed_last_hour
	FROM awa_queue_stats() ORDER BY queue;

-- a fold by maintenance: the deltas are folded and deleted, the counts stay
SELECT count(*) > 0 AS deltas_before FROM awa.counter_deltas;
SELECT promoted, rescued, deleted FROM awa_maintain();
SELECT count(*) AS deltas_after, (SELECT count(*) FROM awa.counter_folds) AS folds FROM awa.counter_deltas;
SELECT * FROM stats_vs_recount();

-- the caller's own uncommitted changes count; after a rollback they are gone
BEGIN;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'q0') FROM generate_series(1, 5)) x;
UPDATE awa.jobs SET state = 'completed', finalized_at = now() WHERE queue = 'q1' AND state = 'available';
DELETE FROM awa.jobs WHERE queue = 'm' AND state = 'scheduled';
SELECT * FROM stats_vs_recount();
ROLLBACK;
SELECT * FROM stats_vs_recount();

-- savepoints: a rolled-back subtransaction's changes are not counted
BEGIN;
SELECT state FROM awa_insert('k', queue => 'sp');
SAVEPOINT a;
SELECT state FROM awa_insert('k', queue => 'sp');
UPDATE awa.jobs SET queue = 'sp2' WHERE queue = 'q1';
ROLLBACK TO a;
SELECT state FROM awa_insert('k', queue => 'sp');
SELECT * FROM stats_vs_recount();
COMMIT;
SELECT * FROM stats_vs_recount();

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

-- a maintenance round in a transaction that already wrote does not fold
-- (its snapshot could not be told apart from its own later changes)
BEGIN;
SELECT state FROM awa_insert('k', queue => 'late');
SELECT max(fold) AS fold_before FROM awa.counter_folds \gset
SELECT promoted FROM awa_maintain();
SELECT max(fold) = :fold_before AS not_folded FROM awa.counter_folds;
SELECT state FROM awa_insert('k', queue => 'late');
COMMIT;
SELECT differ, jobs FROM stats_vs_recount();

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
DROP TABLE t, claimed;

-- the first fold of CREATE EXTENSION, in a transaction that goes on to work
DROP FUNCTION stats_vs_recount(), recount();
DROP EXTENSION awa;
BEGIN;
CREATE EXTENSION awa;
SELECT state FROM awa_insert('k', queue => 'same_xact');
SELECT queue, total_queued FROM awa_queue_stats();
COMMIT;
SELECT queue, total_queued FROM awa_queue_stats();
SELECT promoted FROM awa_maintain();
SELECT queue, total_queued FROM awa_queue_stats();
DROP EXTENSION awa;
