-- awa_queue_stats from the job counters (fold + deltas) equals a recount of
-- awa.jobs after every kind of change: awa's functions (direct and SPI
-- insert paths), plain SQL, COPY, TRUNCATE, rollbacks, savepoints, the
-- caller's own uncommitted changes, folds by maintenance.
-- On the default ring engine: every change through awa's functions, plain INSERT, COPY and DELETE of the view;
-- counters_table.sql keeps the table's own: plain UPDATEs of awa.jobs, completions written with their times,
-- TRUNCATE and the table's trigger function (the ring's view takes none of them).
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

-- the caller's own uncommitted changes count; after a rollback they are gone (q1's available jobs claimed and
-- completed, m's scheduled ones deleted)
BEGIN;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'q0') FROM generate_series(1, 5)) x;
SELECT count(*) FILTER (WHERE awa_complete(id, run_lease)) AS completed FROM awa_claim('q1', batch => 100);
DELETE FROM awa.jobs WHERE queue = 'm' AND state = 'scheduled';
SELECT * FROM stats_vs_recount();
ROLLBACK;
SELECT * FROM stats_vs_recount();

-- savepoints: a rolled-back subtransaction's changes are not counted
BEGIN;
SELECT state FROM awa_insert('k', queue => 'sp');
SAVEPOINT a;
SELECT state FROM awa_insert('k', queue => 'sp');
DELETE FROM awa.jobs WHERE queue = 'q1';
ROLLBACK TO a;
SELECT state FROM awa_insert('k', queue => 'sp');
SELECT * FROM stats_vs_recount();
COMMIT;
SELECT * FROM stats_vs_recount();

-- deleting jobs
DELETE FROM awa.jobs WHERE queue = 'sp';
SELECT * FROM stats_vs_recount();

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

DROP TABLE claimed;

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
