-- Prototype "base": the plain SKIP LOCKED queue a user would write, and the shape of today's awa.jobs
-- (same columns and indexes: LIKE awa.jobs INCLUDING ALL, as bench/run.sh builds bench_jobs).
-- Also used by the "cursor" prototype (cursor.sql), which only changes the claim.
DROP SCHEMA IF EXISTS p_base CASCADE;
CREATE SCHEMA p_base;
CREATE TABLE p_base.jobs (LIKE awa.jobs INCLUDING ALL) WITH (fillfactor = 90);

-- n available jobs of queue q, run_at increasing with id (as bench/run.sh load_backlog)
CREATE PROCEDURE p_base.load(tbl regclass, n int, q text DEFAULT 'vac')
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('TRUNCATE %s', tbl);
	EXECUTE format($f$INSERT INTO %s (kind, queue, args, state, run_at)
		SELECT 'k', %L, jsonb_build_object('n', i), 'available', now() - interval '1 hour' + i * interval '1 ms'
		  FROM generate_series(1, %s) i$f$, tbl, q, n);
END $$;

-- the case 4 mix (85% completed, 10% available, 2% running, 1% scheduled, 1% retryable, 1% failed), 10 queues
CREATE PROCEDURE p_base.fill_stats(tbl regclass, n int)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('TRUNCATE %s', tbl);
	EXECUTE format($f$INSERT INTO %s (kind, queue, args, state, run_at, attempt, finalized_at, heartbeat_at)
		SELECT 'k', 'q' || (i %% 10), jsonb_build_object('n', i), s,
		       now() - interval '3 hours' + (i %% 10000000) * interval '1 ms',
		       CASE WHEN s IN ('available', 'scheduled') THEN 0 ELSE 1 END,
		       CASE WHEN s IN ('completed', 'failed', 'cancelled') THEN now() - (i %% 7200) * interval '1 s' END,
		       CASE WHEN s = 'running' THEN now() END
		  FROM generate_series(1, %s) i,
		       LATERAL (SELECT (CASE WHEN i %% 100 < 85 THEN 'completed' WHEN i %% 100 < 95 THEN 'available'
		                            WHEN i %% 100 < 97 THEN 'running' WHEN i %% 100 < 98 THEN 'scheduled'
		                            WHEN i %% 100 < 99 THEN 'retryable' ELSE 'failed' END)::awa.job_state AS s) st$f$,
		tbl, n);
END $$;

-- today's exact stats (the statement of src/stats.c, on this table)
CREATE FUNCTION p_base.stats()
RETURNS TABLE (queue text, total_queued bigint, available bigint, running bigint, failed bigint, completed_last_hour bigint)
LANGUAGE sql STABLE AS $$
WITH c AS (
  SELECT queue, state, count(*) AS n FROM p_base.jobs WHERE state IN ('available', 'scheduled', 'retryable') GROUP BY queue, state
  UNION ALL
  SELECT queue, state, count(*) FROM p_base.jobs WHERE state = 'running' GROUP BY queue, state
  UNION ALL
  SELECT queue, state, count(*) FROM p_base.jobs WHERE state IN ('failed', 'cancelled', 'waiting_external') GROUP BY queue, state
  UNION ALL
  SELECT queue, state, count(*) FROM p_base.jobs WHERE state = 'completed' AND finalized_at > now() - interval '1 hour' GROUP BY queue, state)
SELECT queue,
       coalesce(sum(n) FILTER (WHERE state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE state = 'available'), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE state = 'running'), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE state = 'failed'), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE state = 'completed'), 0)::bigint
  FROM c GROUP BY queue ORDER BY queue
$$;
