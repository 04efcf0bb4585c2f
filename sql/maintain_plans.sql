-- Every statement awa saves (SPI_keepplan) runs with a generic plan: one
-- plan for all parameter values, chosen without them.  On a table shaped
-- like production (1M jobs, mostly completed, realistic statistics) none of
-- those plans may read awa.jobs with a Seq Scan, and none may cost enough
-- to be JIT-compiled at every execution (jit_above_cost).  Each statement
-- is copied here from src/*.c, prepared with the same parameter types and
-- EXPLAINed under plan_cache_mode = force_generic_plan with representative
-- values; the summary names the scans of awa.jobs.  Copies drift: the TAP test
-- test/t/013_plans.pl checks the plans awa's own statements really get, on the
-- same table, for every call it makes; this file also covers the statements
-- that only run on paths that workload does not reach (the one-job fallbacks
-- of maintenance).
SELECT pg_advisory_lock(6387553, 1);
-- On the table engine (awa.install_engine = table): the statements checked are the table engine's own, copied
-- from src/*.c, on awa.jobs at a million rows; the ring's statements read other relations (awa.ready, awa.claims,
-- awa.done, ...) with plans of their own, not covered here.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;

\ir test/lib/jobs_1m.sql
SELECT state, count(*) FROM awa.jobs GROUP BY state ORDER BY state;

-- The scans of awa.jobs in the plan of a statement ("Node Index" each).
CREATE FUNCTION plan_shape(stmt text, OUT shape text, OUT cost float8) LANGUAGE plpgsql AS $$
DECLARE
  p jsonb;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || stmt INTO p;
  cost := (p->0->'Plan'->>'Total Cost')::float8;
  WITH RECURSIVE n(node) AS (
    SELECT p->0->'Plan'
    UNION ALL
    SELECT c FROM n, jsonb_array_elements(n.node->'Plans') c)
  SELECT string_agg(DISTINCT (node->>'Node Type') || coalesce(' ' || (node->>'Index Name'), ''), ', ')
    INTO shape
    FROM n WHERE node->>'Relation Name' = 'jobs' OR node->>'Index Name' LIKE 'jobs\_%';
  shape := coalesce(shape, '(none)');
END $$;

-- awa_claim's statement of one priority level (job.c, awa_job_claim_sql): level 0
-- with priority aging off, 1..4 with it on; unlimited: the variant that
-- skips queues with a concurrency limit.
CREATE FUNCTION claim_sql(level int, unlimited bool) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  due text := 'queue = $1 AND state IN (''scheduled'', ''available'', ''retryable'')';
  ok text := 'attempt < max_attempts AND run_lease < 9223372036854775807';
  s text := 'WITH cand AS MATERIALIZED (SELECT ctid, ok FROM (';
BEGIN
  IF level = 0 OR level = 4 THEN
    s := s || format('SELECT ctid, %s AS ok FROM awa.jobs WHERE %s AND run_at <= $2', ok, due);
    IF level > 0 THEN
      s := s || format(' AND priority = %s AND run_at > $2 - $3', level);
    END IF;
    s := s || format(' ORDER BY %s LIMIT $4 FOR UPDATE SKIP LOCKED',
                     CASE WHEN level = 0 THEN 'priority, run_at, id' ELSE 'run_at, id' END);
  ELSE
    s := s || 'SELECT l.ctid, l.ok FROM (';
    FOR p IN level..4 LOOP
      IF p > level THEN s := s || ' UNION ALL '; END IF;
      s := s || format('(SELECT ctid, run_at, id FROM awa.jobs WHERE %s AND priority = %s', due, p);
      IF p = level THEN
        s := s || ' AND run_at <= $2';
      ELSE
        s := s || format(' AND run_at <= $2 - %s * $3', p - level);
      END IF;
      IF level > 1 THEN s := s || format(' AND run_at > $2 - %s * $3', p - level + 1); END IF;
      s := s || ' ORDER BY run_at, id)';
    END LOOP;
    s := s || format(' ORDER BY run_at, id) c CROSS JOIN LATERAL'
                     ' (SELECT j.ctid, %s AS ok FROM awa.jobs j WHERE j.ctid = c.ctid AND j.%s'
                     ' AND j.run_at <= $2 FOR UPDATE OF j SKIP LOCKED) l LIMIT $4', ok, due);
  END IF;
  s := s || format(') u WHERE NOT EXISTS (SELECT 1 FROM awa.queue_meta m'
                   ' WHERE m.queue = $1 AND %s)),',
                   CASE WHEN unlimited THEN '(m.paused OR m.max_running IS NOT NULL)' ELSE 'm.paused' END);
  RETURN s || ' unclaimable AS (UPDATE awa.jobs j SET state = ''failed'', finalized_at = $2,'
           || ' heartbeat_at = NULL, deadline_at = NULL,'
           || ' errors = j.errors || jsonb_build_object(''attempt'', j.attempt,'
           || ' ''error'', ''awa_claim: cannot be claimed (attempt '' || j.attempt || '' of '''
           || ' || j.max_attempts || '', run_lease '' || j.run_lease || '')'', ''at'', $2)'
           || ' WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM cand WHERE NOT ok)))'
           || ' UPDATE awa.jobs j SET state = ''running'', attempt = j.attempt + 1,'
           || ' run_lease = j.run_lease + 1, attempted_at = $2, heartbeat_at = $2,'
           || ' claimed_by = $6, lease = $5, deadline_at = LEAST($2 + $5, $2 + j.timeout)'
           || ' WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM cand WHERE ok)) RETURNING j.*';
END $$;

-- name, parameter types, statement, representative values
CREATE TEMP TABLE stmts (file text, name text, types text, sql text, args text);
INSERT INTO stmts VALUES
-- maintain.c
('maintain.c', 'promote', 'bigint[]', $q$WITH due AS (SELECT id FROM awa.jobs WHERE state IN ('scheduled', 'retryable') AND run_at <= now() AND id <> ALL($1) ORDER BY run_at LIMIT 10000 FOR UPDATE SKIP LOCKED), promoted AS (UPDATE awa.jobs j SET state = 'available' FROM due WHERE j.id = due.id RETURNING j.queue) SELECT queue, count(*) FROM promoted GROUP BY queue$q$, $$'{}'$$),
('maintain.c', 'promote_candidates', 'bigint[]', $q$SELECT id FROM awa.jobs WHERE state IN ('scheduled', 'retryable') AND run_at <= now() AND id <> ALL($1) ORDER BY run_at LIMIT 10000$q$, $$'{}'$$),
('maintain.c', 'promote_one', 'bigint', $q$WITH due AS (SELECT id FROM awa.jobs WHERE id = $1 AND state IN ('scheduled', 'retryable') AND run_at <= now() FOR UPDATE SKIP LOCKED) UPDATE awa.jobs j SET state = 'available' FROM due WHERE j.id = due.id RETURNING j.queue$q$, '960'),
('maintain.c', 'rescue_candidates', 'interval, bigint[]', $q$SELECT id FROM awa.jobs WHERE state = 'running' AND (heartbeat_at < now() - $1 OR deadline_at < now()) AND id <> ALL($2) LIMIT 10000$q$, $$'30 seconds', '{}'$$),
('maintain.c', 'retention', 'float8, float8, bigint[]', $q$WITH old AS (SELECT id FROM ((SELECT id FROM awa.jobs WHERE state = 'completed' AND $1 >= 0 AND finalized_at < now() - make_interval(secs => $1) AND id <> ALL($3) ORDER BY finalized_at LIMIT 10000) UNION ALL (SELECT id FROM awa.jobs WHERE state IN ('failed', 'cancelled') AND $2 >= 0 AND finalized_at < now() - make_interval(secs => $2) AND id <> ALL($3) LIMIT 10000)) o LIMIT 10000), locked AS (SELECT j.id FROM awa.jobs j JOIN old ON j.id = old.id WHERE j.state IN ('completed', 'failed', 'cancelled') FOR UPDATE OF j SKIP LOCKED) DELETE FROM awa.jobs j USING locked WHERE j.id = locked.id$q$, $$86400, 604800, '{}'$$),
('maintain.c', 'retention_candidates', 'float8, float8, bigint[]', $q$SELECT id FROM ((SELECT id FROM awa.jobs WHERE state = 'completed' AND $1 >= 0 AND finalized_at < now() - make_interval(secs => $1) AND id <> ALL($3) ORDER BY finalized_at LIMIT 10000) UNION ALL (SELECT id FROM awa.jobs WHERE state IN ('failed', 'cancelled') AND $2 >= 0 AND finalized_at < now() - make_interval(secs => $2) AND id <> ALL($3) LIMIT 10000)) o LIMIT 10000$q$, $$86400, 604800, '{}'$$),
('maintain.c', 'retention_one', 'float8, float8, bigint', $q$WITH old AS (SELECT id FROM awa.jobs WHERE id = $3 AND ((state = 'completed' AND $1 >= 0 AND finalized_at < now() - make_interval(secs => $1)) OR (state IN ('failed', 'cancelled') AND $2 >= 0 AND finalized_at < now() - make_interval(secs => $2))) FOR UPDATE SKIP LOCKED) DELETE FROM awa.jobs j USING old WHERE j.id = old.id$q$, '86400, 604800, 500'),
('maintain.c', 'annotate', 'bigint, text', $q$UPDATE awa.jobs SET errors = errors || jsonb_build_object('attempt', attempt, 'error', $2, 'at', now()) WHERE id = $1$q$, $$960, 'x'$$),
-- stats.c, health.c (awa_health_check)
('stats.c', 'queue_stats', 'timestamptz, timestamptz, timestamptz, timestamptz', $q$WITH f AS (SELECT fold, snapshot, completed_from FROM awa.counter_folds   ORDER BY fold DESC LIMIT 1), d AS (  SELECT d.queue, d.scheduled, d.available, d.running, d.retryable, d.failed, d.cancelled, d.waiting_external, d.completed, d.completed_second    FROM awa.counter_deltas d    WHERE d.xid >= coalesce((SELECT pg_catalog.pg_snapshot_xmax(snapshot) FROM f), '0'::xid8)  UNION ALL  SELECT d.queue, d.scheduled, d.available, d.running, d.retryable, d.failed, d.cancelled, d.waiting_external, d.completed, d.completed_second    FROM awa.counter_deltas d    WHERE d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(snapshot) FROM f))), src AS (  SELECT c.queue, c.scheduled, c.available, c.running, c.retryable, c.failed, c.cancelled, c.waiting_external    FROM awa.counter_fold_counts c WHERE c.fold = (SELECT fold FROM f)  UNION ALL  SELECT d.queue, d.scheduled, d.available, d.running, d.retryable, d.failed, d.cancelled, d.waiting_external FROM d), q AS (SELECT queue, sum(scheduled) AS scheduled, sum(available) AS available,   sum(running) AS running, sum(retryable) AS retryable, sum(failed) AS failed,   sum(cancelled) AS cancelled, sum(waiting_external) AS waiting_external   FROM src GROUP BY queue), done AS (SELECT queue, sum(n) AS n FROM (  SELECT queue, completed AS n FROM awa.counter_completed   WHERE seconds = 60 AND bucket >= $3  UNION ALL  SELECT queue, completed FROM awa.counter_completed   WHERE seconds = 1 AND bucket > $1 AND bucket < $3  UNION ALL  SELECT queue, completed FROM d WHERE completed_second > $1  UNION ALL  SELECT queue, count(*) FROM awa.jobs   WHERE state = 'completed' AND finalized_at > $2 AND finalized_at < $4 GROUP BY queue) x GROUP BY queue), c AS (SELECT coalesce(q.queue, done.queue) AS queue,   coalesce(q.scheduled, 0)::bigint AS scheduled, coalesce(q.available, 0)::bigint AS available,   coalesce(q.running, 0)::bigint AS running, coalesce(q.retryable, 0)::bigint AS retryable,   coalesce(q.failed, 0)::bigint AS failed, coalesce(q.cancelled, 0)::bigint AS cancelled,   coalesce(q.waiting_external, 0)::bigint AS waiting_external,   coalesce(done.n, 0)::bigint AS completed_last_hour   FROM q FULL JOIN done ON done.queue = q.queue) SELECT coalesce(c.queue, m.queue),   coalesce(c.scheduled + c.available + c.running + c.retryable + c.waiting_external, 0)::bigint,   coalesce(c.scheduled, 0), coalesce(c.available, 0), coalesce(c.retryable, 0),   coalesce(c.running, 0), coalesce(c.waiting_external, 0), coalesce(c.failed, 0),   coalesce(c.cancelled, 0), coalesce(c.completed_last_hour, 0),   CASE WHEN c.available > 0 THEN     (SELECT greatest(extract(epoch FROM now()) - extract(epoch FROM min(o.run_at)), 0)::float8        FROM pg_catalog.generate_series(1, 4) AS p(priority),        LATERAL (SELECT j.run_at FROM awa.jobs j          WHERE j.queue = c.queue AND j.priority = p.priority AND j.state = 'available'          ORDER BY j.run_at LIMIT 1) o) END,   coalesce(m.paused, false) FROM (SELECT * FROM c WHERE scheduled <> 0 OR available <> 0 OR running <> 0   OR retryable <> 0 OR failed <> 0 OR cancelled <> 0 OR waiting_external <> 0   OR completed_last_hour <> 0) c FULL JOIN awa.queue_meta m ON m.queue = c.queue ORDER BY 1$q$, $$date_trunc('second', now() - interval '1 hour'), now() - interval '1 hour', date_trunc('minute', now() - interval '1 hour') + interval '1 minute', date_trunc('second', now() - interval '1 hour') + interval '1 second'$$),
('stats.c', 'queue_stats_no_fold', 'timestamptz, timestamptz, timestamptz, timestamptz', $q$WITH f AS (SELECT fold, snapshot, completed_from FROM awa.counter_folds   ORDER BY fold DESC LIMIT 1), d AS (  SELECT d.queue, d.scheduled, d.available, d.running, d.retryable, d.failed, d.cancelled, d.waiting_external, d.completed, d.completed_second    FROM awa.counter_deltas d    WHERE d.xid >= coalesce((SELECT pg_catalog.pg_snapshot_xmax(snapshot) FROM f), '0'::xid8)  UNION ALL  SELECT d.queue, d.scheduled, d.available, d.running, d.retryable, d.failed, d.cancelled, d.waiting_external, d.completed, d.completed_second    FROM awa.counter_deltas d    WHERE d.xid = ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(snapshot) FROM f))), src AS (  SELECT c.queue, c.scheduled, c.available, c.running, c.retryable, c.failed, c.cancelled, c.waiting_external    FROM awa.counter_fold_counts c WHERE c.fold = (SELECT fold FROM f)  UNION ALL  SELECT d.queue, d.scheduled, d.available, d.running, d.retryable, d.failed, d.cancelled, d.waiting_external FROM d), q AS (SELECT queue, sum(scheduled) AS scheduled, sum(available) AS available,   sum(running) AS running, sum(retryable) AS retryable, sum(failed) AS failed,   sum(cancelled) AS cancelled, sum(waiting_external) AS waiting_external   FROM src GROUP BY queue), done AS (SELECT queue, count(*) AS n FROM awa.jobs WHERE state = 'completed' AND finalized_at > now() - interval '1 hour' GROUP BY queue), c AS (SELECT coalesce(q.queue, done.queue) AS queue,   coalesce(q.scheduled, 0)::bigint AS scheduled, coalesce(q.available, 0)::bigint AS available,   coalesce(q.running, 0)::bigint AS running, coalesce(q.retryable, 0)::bigint AS retryable,   coalesce(q.failed, 0)::bigint AS failed, coalesce(q.cancelled, 0)::bigint AS cancelled,   coalesce(q.waiting_external, 0)::bigint AS waiting_external,   coalesce(done.n, 0)::bigint AS completed_last_hour   FROM q FULL JOIN done ON done.queue = q.queue) SELECT coalesce(c.queue, m.queue),   coalesce(c.scheduled + c.available + c.running + c.retryable + c.waiting_external, 0)::bigint,   coalesce(c.scheduled, 0), coalesce(c.available, 0), coalesce(c.retryable, 0),   coalesce(c.running, 0), coalesce(c.waiting_external, 0), coalesce(c.failed, 0),   coalesce(c.cancelled, 0), coalesce(c.completed_last_hour, 0),   CASE WHEN c.available > 0 THEN     (SELECT greatest(extract(epoch FROM now()) - extract(epoch FROM min(o.run_at)), 0)::float8        FROM pg_catalog.generate_series(1, 4) AS p(priority),        LATERAL (SELECT j.run_at FROM awa.jobs j          WHERE j.queue = c.queue AND j.priority = p.priority AND j.state = 'available'          ORDER BY j.run_at LIMIT 1) o) END,   coalesce(m.paused, false) FROM (SELECT * FROM c WHERE scheduled <> 0 OR available <> 0 OR running <> 0   OR retryable <> 0 OR failed <> 0 OR cancelled <> 0 OR waiting_external <> 0   OR completed_last_hour <> 0) c FULL JOIN awa.queue_meta m ON m.queue = c.queue ORDER BY 1$q$, $$date_trunc('second', now() - interval '1 hour'), now() - interval '1 hour', date_trunc('minute', now() - interval '1 hour') + interval '1 minute', date_trunc('second', now() - interval '1 hour') + interval '1 second'$$),
('stats.c', 'queue_stats_recount', NULL, NULL, NULL),
('health.c', 'health_check', 'int', $q$SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'awa'), (SELECT count(*) FROM awa.jobs WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)), (SELECT CASE WHEN min(run_at) IS NOT NULL THEN greatest(extract(epoch FROM now()) - extract(epoch FROM min(run_at)), 0)::float8 END FROM awa.jobs WHERE state = 'available'), (SELECT coalesce(array_agg(queue ORDER BY queue), '{}') FROM awa.queue_meta WHERE paused), pg_catalog.pg_notification_queue_usage()$q$, '30'),
-- job.c (a worker's transitions), worker.c
('job.c', 'complete', 'bigint, bigint', $q$UPDATE awa.jobs SET state = 'completed', finalized_at = now() WHERE id = $1 AND run_lease = $2 AND state = 'running'$q$, '977, 1'),
('job.c', 'complete_many', 'bigint[], bigint[]', $q$UPDATE awa.jobs j SET state = 'completed', finalized_at = now() FROM unnest($1, $2) AS u(id, lease) WHERE j.id = u.id AND j.run_lease = u.lease AND j.state = 'running'$q$, $$'{977,1977}', '{1,1}'$$),
('job.c', 'fail', 'bigint, bigint, text, interval, boolean', $q$UPDATE awa.jobs SET errors = errors || jsonb_build_object('attempt', attempt, 'error', $3, 'at', now()), state = CASE WHEN $5 OR attempt >= max_attempts THEN 'failed'::awa.job_state ELSE 'retryable' END, run_at = CASE WHEN $5 OR attempt >= max_attempts THEN run_at WHEN $4 IS NOT NULL THEN now() + $4 ELSE now() + make_interval(secs => least(power(2, attempt) * (1 + 0.25 * random()), 86400)) END, finalized_at = CASE WHEN $5 OR attempt >= max_attempts THEN now() END, heartbeat_at = NULL, deadline_at = NULL WHERE id = $1 AND run_lease = $2 AND state = 'running' RETURNING queue, CASE WHEN state = 'retryable' THEN run_at <= now() END, state$q$, $$977, 1, 'x', NULL, false$$),
('job.c', 'snooze', 'bigint, bigint, interval', $q$UPDATE awa.jobs SET state = 'scheduled', run_at = now() + $3, attempt = greatest(attempt - 1, 0), heartbeat_at = NULL, deadline_at = NULL WHERE id = $1 AND run_lease = $2 AND state = 'running' RETURNING queue, run_at <= now()$q$, $$977, 1, '1 minute'$$),
('worker.c', 'heartbeat', 'bigint[], bigint[]', $q$WITH u AS (UPDATE awa.jobs j SET heartbeat_at = now() FROM unnest($1, $2) AS x(id, lease) WHERE j.id = x.id AND j.run_lease = x.lease AND j.state = 'running' RETURNING j.id) SELECT coalesce(array_agg(x.id ORDER BY x.ord), '{}') FROM unnest($1) WITH ORDINALITY AS x(id, ord) WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = x.id)$q$, $$'{977,1977}', '{1,1}'$$),
('worker.c', 'progress', 'bigint, bigint, jsonb', $q$UPDATE awa.jobs SET progress = $3, heartbeat_at = now() WHERE id = $1 AND run_lease = $2 AND state = 'running'$q$, $$977, 1, '{}'$$),
('job.c', 'rescue', 'interval, bigint[]', NULL, $$'30 seconds', '{}'$$),
('job.c', 'rescue_one', 'interval, bigint', NULL, $$'30 seconds', 977$$),
-- job.c (operators' transitions), observe.c
('job.c', 'retry_failed', 'text, text', $q$WITH c AS (SELECT id, unique_key IS NOT NULL AND awa.unique_state_held(unique_states, 'available') AS keyed, row_number() OVER (PARTITION BY unique_key ORDER BY id DESC) AS rn FROM awa.jobs WHERE state = 'failed' AND ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR queue = $2)) UPDATE awa.jobs j SET state = 'available', run_at = now(), attempt = 0, finalized_at = NULL, heartbeat_at = NULL, deadline_at = NULL FROM c WHERE j.id = c.id AND j.state = 'failed' AND (NOT c.keyed OR (c.rn = 1 AND NOT EXISTS (SELECT 1 FROM awa.jobs h WHERE h.unique_key = j.unique_key AND h.id <> j.id AND awa.unique_state_held(h.unique_states, h.state)))) RETURNING j.*$q$, $$'kind_5', NULL$$),
('job.c', 'discard_failed', 'text', $q$DELETE FROM awa.jobs WHERE state = 'failed' AND ($1::text IS NULL OR kind = $1)$q$, $$'kind_5'$$),
('observe.c', 'get_job', 'bigint', $q$SELECT * FROM awa.jobs WHERE id = $1$q$, '500'),
-- enqueue.c
('enqueue.c', 'insert', 'text, text, jsonb, text, smallint, smallint, timestamptz, text[], jsonb', $q$INSERT INTO awa.jobs (kind, queue, args, state, priority, max_attempts, run_at, tags, metadata) VALUES ($1, $2, $3, $4::awa.job_state, $5, $6, $7, $8, $9) RETURNING *$q$, $$'k', 'q', '{}', 'available', 2, 25, now(), '{}', '{}'$$),
('enqueue.c', 'unique_existing', 'bytea', $q$SELECT * FROM awa.jobs WHERE unique_key = $1 AND awa.unique_state_held(unique_states, state)$q$, $$decode(md5('20'), 'hex')$$),
-- lifecycle.c
('lifecycle.c', 'require_job', 'bigint', $q$SELECT 1 FROM awa.jobs WHERE id = $1$q$, '500'),
('job.c', 'cancel', 'bigint', $q$UPDATE awa.jobs j SET state = 'cancelled', finalized_at = now() FROM (SELECT id, state FROM awa.jobs WHERE id = $1 FOR UPDATE) o WHERE j.id = o.id AND o.state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external') RETURNING j.*, o.state IN ('running', 'waiting_external')$q$, '960'),
('job.c', 'retry_holder', 'bigint', $q$SELECT h.id FROM awa.jobs j JOIN awa.jobs h ON h.unique_key = j.unique_key AND h.id <> j.id AND awa.unique_state_held(h.unique_states, h.state) WHERE j.id = $1 AND j.state IN ('failed', 'cancelled', 'waiting_external') AND awa.unique_state_held(j.unique_states, 'available')$q$, '985'),
('job.c', 'retry', 'bigint', $q$UPDATE awa.jobs SET state = 'available', run_at = now(), attempt = 0, finalized_at = NULL, heartbeat_at = NULL, deadline_at = NULL WHERE id = $1 AND state IN ('failed', 'cancelled', 'waiting_external') RETURNING *$q$, '985'),
-- job.c and external.c: external completion and results
('job.c', 'complete_result', 'bigint, bigint, jsonb', $q$UPDATE awa.jobs SET state = 'completed', finalized_at = now(), result = $3 WHERE id = $1 AND run_lease = $2 AND state = 'running'$q$, $$977, 1, '{}'$$),
('job.c', 'complete_many_results', 'bigint[], bigint[], jsonb[]', $q$WITH l AS (SELECT j.id, j.state FROM unnest($1, $2) AS u(id, lease) JOIN awa.jobs j ON j.id = u.id AND j.run_lease = u.lease ORDER BY j.id FOR NO KEY UPDATE OF j) UPDATE awa.jobs j SET state = 'completed', finalized_at = now(), result = u.result FROM l, unnest($1, $2, $3) AS u(id, lease, result) WHERE j.id = l.id AND l.state = 'running' AND u.id = j.id AND u.lease = j.run_lease$q$, $$'{977,1977}', '{1,1}', '{"{}","{}"}'$$),
('job.c', 'wait_external', 'bigint, bigint', $q$UPDATE awa.jobs SET state = 'waiting_external', heartbeat_at = now(), deadline_at = now() + callback_timeout WHERE id = $1 AND run_lease = $2 AND state = 'running' AND callback_lease = run_lease$q$, '977, 1'),
('job.c', 'callback_complete', 'uuid, jsonb', $q$UPDATE awa.jobs j SET state = 'completed', finalized_at = now(), result = $2, heartbeat_at = NULL, deadline_at = NULL FROM (SELECT id, state FROM awa.jobs WHERE callback_key = sha256(uuid_send($1)) FOR NO KEY UPDATE) o WHERE j.id = o.id AND (o.state = 'waiting_external' OR (o.state = 'running' AND j.run_lease = j.callback_lease)) RETURNING j.id, j.queue, j.state, o.state = 'running'$q$, $$'9a1f1c1e-4b4f-4c36-9d0e-7a4c1d2b3e4f', '{}'$$),
('job.c', 'callback_timeouts', 'bigint[]', $q$WITH r AS (SELECT id FROM awa.jobs WHERE state = 'waiting_external' AND deadline_at < now() AND callback_key IS NOT NULL AND id <> ALL($1) ORDER BY id LIMIT 10000 FOR NO KEY UPDATE SKIP LOCKED) UPDATE awa.jobs j SET errors = j.errors || jsonb_build_object('attempt', j.attempt, 'error', 'callback timed out', 'at', now()), state = CASE WHEN j.attempt >= j.max_attempts THEN 'failed'::awa.job_state ELSE 'retryable' END, finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END, heartbeat_at = NULL, deadline_at = NULL FROM r WHERE j.id = r.id RETURNING j.queue, CASE WHEN j.state = 'retryable' THEN j.run_at <= now() END$q$, $$'{}'$$),
('job.c', 'callback_timeout_one', 'bigint', $q$WITH r AS (SELECT id FROM awa.jobs WHERE state = 'waiting_external' AND deadline_at < now() AND callback_key IS NOT NULL AND id = $1 ORDER BY id LIMIT 10000 FOR NO KEY UPDATE SKIP LOCKED) UPDATE awa.jobs j SET state = 'retryable', heartbeat_at = NULL, deadline_at = NULL FROM r WHERE j.id = r.id RETURNING j.queue$q$, '995'),
('job.c', 'callback_timeout_candidates', 'bigint[]', $q$SELECT id FROM awa.jobs WHERE state = 'waiting_external' AND deadline_at < now() AND callback_key IS NOT NULL AND id <> ALL($1) ORDER BY id LIMIT 10000$q$, $$'{}'$$),
('external.c', 'register_callback', 'bigint, bigint, interval', $q$WITH g AS (SELECT gen_random_uuid() AS id) UPDATE awa.jobs j SET callback_key = sha256(uuid_send(g.id)), callback_lease = j.run_lease, callback_timeout = $3 FROM g WHERE j.id = $1 AND j.run_lease = $2 AND j.state = 'running' RETURNING g.id$q$, $$977, 1, '1 hour'$$),
('external.c', 'wait_external_lookup', 'bigint, bigint', $q$SELECT 1 FROM awa.jobs WHERE id = $1 AND run_lease = $2 AND state = 'running'$q$, '977, 1'),
('external.c', 'heartbeat_callback', 'uuid, interval', $q$UPDATE awa.jobs j SET callback_timeout = coalesce($2, j.callback_timeout), deadline_at = CASE WHEN o.state = 'waiting_external' THEN now() + coalesce($2, j.callback_timeout) ELSE j.deadline_at END, heartbeat_at = CASE WHEN o.state = 'waiting_external' THEN now() ELSE j.heartbeat_at END FROM (SELECT id, state FROM awa.jobs WHERE callback_key = sha256(uuid_send($1)) FOR NO KEY UPDATE) o WHERE j.id = o.id AND (o.state = 'waiting_external' OR (o.state = 'running' AND j.run_lease = j.callback_lease))$q$, $$'9a1f1c1e-4b4f-4c36-9d0e-7a4c1d2b3e4f', NULL$$),
-- claim.c
('claim.c', 'limit_count', 'text', $q$SELECT m.max_running - (SELECT count(*) FROM awa.jobs j WHERE j.state = 'running' AND j.queue = $1) FROM awa.queue_meta m WHERE m.queue = $1 AND NOT m.paused AND m.max_running IS NOT NULL$q$, $$'q5'$$),
('claim.c', 'next_due', 'text, timestamptz', $q$SELECT min(run_at) FROM awa.jobs WHERE queue = $1 AND state IN ('available', 'scheduled', 'retryable') AND state <> 'available' AND run_at > $2$q$, $$'q3', now()$$);
-- the rescue statement of job.c (RESCUE_SQL) with its two pickers
UPDATE stmts SET sql = $q$WITH r AS (SELECT id, CASE WHEN deadline_at < now() THEN 'deadline exceeded' ELSE 'heartbeat stale' END AS cause FROM awa.jobs WHERE state = 'running' AND (heartbeat_at < now() - $1 OR deadline_at < now()) AND PICK LIMIT 5000 FOR UPDATE SKIP LOCKED) UPDATE awa.jobs j SET errors = j.errors || jsonb_build_object('attempt', j.attempt, 'error', r.cause, 'at', now()), state = CASE WHEN j.attempt >= j.max_attempts THEN 'failed'::awa.job_state ELSE 'retryable' END, run_at = now(), finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END, heartbeat_at = NULL, deadline_at = NULL FROM r WHERE j.id = r.id RETURNING j.queue, CASE WHEN j.state = 'retryable' THEN true END$q$
  WHERE name IN ('rescue', 'rescue_one');
UPDATE stmts SET sql = replace(sql, 'PICK', CASE name WHEN 'rescue' THEN 'id <> ALL($2)' ELSE 'id = $2' END)
  WHERE name IN ('rescue', 'rescue_one');
-- the statement of awa_queue_stats (stats.c) on a schema without counters
UPDATE stmts SET sql = $q$WITH c AS (  SELECT queue, state, count(*) AS n,         min(run_at) FILTER (WHERE state = 'available') AS oldest    FROM awa.jobs WHERE state IN ('available', 'scheduled', 'retryable')    GROUP BY queue, state  UNION ALL  SELECT queue, state, count(*), NULL FROM awa.jobs WHERE state = 'running'    GROUP BY queue, state  UNION ALL  SELECT queue, state, count(*), NULL FROM awa.jobs    WHERE state IN ('failed', 'cancelled', 'waiting_external') GROUP BY queue, state  UNION ALL  SELECT queue, state, count(*), NULL FROM awa.jobs    WHERE state = 'completed' AND finalized_at > now() - interval '1 hour'    GROUP BY queue, state), q AS (  SELECT queue,    sum(n) FILTER (WHERE state IN ('scheduled', 'available', 'running',                   'retryable', 'waiting_external')) AS total_queued,    sum(n) FILTER (WHERE state = 'scheduled') AS scheduled,    sum(n) FILTER (WHERE state = 'available') AS available,    sum(n) FILTER (WHERE state = 'retryable') AS retryable,    sum(n) FILTER (WHERE state = 'running') AS running,    sum(n) FILTER (WHERE state = 'waiting_external') AS waiting_external,    sum(n) FILTER (WHERE state = 'failed') AS failed,    sum(n) FILTER (WHERE state = 'cancelled') AS cancelled,    sum(n) FILTER (WHERE state = 'completed') AS completed_last_hour,    min(oldest) AS oldest  FROM c GROUP BY queue) SELECT coalesce(q.queue, m.queue),   coalesce(q.total_queued, 0)::bigint, coalesce(q.scheduled, 0)::bigint,   coalesce(q.available, 0)::bigint, coalesce(q.retryable, 0)::bigint,   coalesce(q.running, 0)::bigint, coalesce(q.waiting_external, 0)::bigint,   coalesce(q.failed, 0)::bigint, coalesce(q.cancelled, 0)::bigint,   coalesce(q.completed_last_hour, 0)::bigint,   CASE WHEN q.oldest IS NOT NULL     THEN greatest(extract(epoch FROM now()) - extract(epoch FROM q.oldest), 0)::float8 END,   coalesce(m.paused, false) FROM q FULL JOIN awa.queue_meta m ON m.queue = q.queue ORDER BY 1$q$
  WHERE name = 'queue_stats_recount';
-- awa_claim: every level, both variants
INSERT INTO stmts
  SELECT 'job.c', format('claim_level%s%s', l, CASE WHEN u THEN '_unlimited' ELSE '' END),
         'text, timestamptz, interval, int, interval, text', claim_sql(l, u),
         $$'q3', now(), '60 seconds', 10, '5 minutes', 'w1'$$
  FROM generate_series(0, 4) l, (VALUES (false), (true)) v(u);

SET plan_cache_mode = force_generic_plan;
DO $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT * FROM stmts LOOP
    EXECUTE format('PREPARE %I%s AS %s', s.name,
                   CASE WHEN s.types IS NULL THEN '' ELSE '(' || s.types || ')' END, s.sql);
  END LOOP;
END $$;
CREATE TEMP TABLE plans AS
  SELECT s.file, s.name, p.shape, p.cost, p.cost > current_setting('jit_above_cost')::float8 AS jit
  FROM stmts s,
       plan_shape(format('EXECUTE %I%s', s.name,
                         CASE WHEN s.args IS NULL THEN '' ELSE '(' || s.args || ')' END)) p
  WHERE s.name NOT LIKE 'claim\_level%';
-- claim statements are planned and run with sorts and bitmap scans off
-- (claim.c, execute_claim_plan): each priority's range is read in index order
SET enable_sort = off;
SET enable_bitmapscan = off;
INSERT INTO plans
  SELECT s.file, s.name, p.shape, p.cost, p.cost > current_setting('jit_above_cost')::float8 AS jit
  FROM stmts s,
       plan_shape(format('EXECUTE %I%s', s.name,
                         CASE WHEN s.args IS NULL THEN '' ELSE '(' || s.args || ')' END)) p
  WHERE s.name LIKE 'claim\_level%';
RESET enable_sort;
RESET enable_bitmapscan;
SELECT file, name, shape, jit FROM plans ORDER BY file, name;
-- the promise: no generic plan reads awa.jobs sequentially, and none is
-- JIT-compiled at each execution (maintenance rounds run with jit = off)
SELECT file, name, shape FROM plans WHERE shape LIKE '%Seq Scan%' OR (jit AND file <> 'maintain.c');
RESET plan_cache_mode;
DEALLOCATE ALL;

DROP FUNCTION plan_shape(text), claim_sql(int, bool);
DROP EXTENSION awa;
SELECT pg_advisory_unlock(6387553, 1);
