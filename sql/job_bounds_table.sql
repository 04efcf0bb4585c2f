-- What one job stores stays bounded (awa.max_error_bytes, awa.max_errors_kept) on every path that appends to
-- errors, on the table engine (delays and the backoff's jitter: job_bounds.sql, on the default ring).
-- On the table engine (awa.install_engine = table): the bounds here are the table's only, faults of the ring
-- (docs/storage.md, "Step 5: the regression files on the ring"): the ring cuts an error at awa.max_error_bytes but
-- leaves out its marks (truncated, error_bytes), and keeps every error of a job whatever awa.max_errors_kept says
-- (awa_fail and the rescue alike).  And the row written before the bound exists only in a table.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

SELECT name, setting, unit, context, min_val, max_val FROM pg_settings
 WHERE name IN ('awa.max_error_bytes', 'awa.max_errors_kept') ORDER BY name;

-- a 2 MB error, five times: each entry keeps 8 kB, marked; the row stays small
INSERT INTO awa.jobs (id, kind, queue, max_attempts) OVERRIDING SYSTEM VALUE VALUES (1, 'k', 'big', 10);
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT (e->>'attempt')::int AS attempt, octet_length(e->>'error') AS bytes, e->'truncated' AS truncated,
       e->'error_bytes' AS error_bytes
  FROM awa.jobs, unnest(errors) AS e WHERE id = 1;
SELECT sum(octet_length(e::text)) < 5 * 8400 AS history_small FROM awa.jobs, unnest(errors) AS e WHERE id = 1;
-- cut at a character boundary: 3-byte characters, 2730 of them fit in 8192 bytes
SELECT awa_fail(id, run_lease, repeat('€', 100000), retry_in => '0') FROM awa_claim('big');
SELECT char_length(errors[6]->>'error') AS chars, octet_length(errors[6]->>'error') AS bytes,
       errors[6]->'error_bytes' AS error_bytes
  FROM awa.jobs WHERE id = 1;
-- a short error is stored as given, unmarked
SELECT awa_fail(id, run_lease, 'short', retry_in => '0') FROM awa_claim('big');
SELECT errors[7]->>'error' AS error, errors[7] ? 'truncated' AS marked FROM awa.jobs WHERE id = 1;

-- the history keeps the newest awa.max_errors_kept entries
SET awa.max_errors_kept = 3;
INSERT INTO awa.jobs (id, kind, queue, max_attempts) OVERRIDING SYSTEM VALUE VALUES (2, 'k', 'few', 10);
SELECT awa_fail(id, run_lease, 'e' || attempt, retry_in => '0') FROM awa_claim('few');
SELECT awa_fail(id, run_lease, 'e' || attempt, retry_in => '0') FROM awa_claim('few');
SELECT awa_fail(id, run_lease, 'e' || attempt, retry_in => '0') FROM awa_claim('few');
SELECT awa_fail(id, run_lease, 'e' || attempt, retry_in => '0') FROM awa_claim('few');
SELECT awa_fail(id, run_lease, 'e' || attempt, retry_in => '0') FROM awa_claim('few');
SELECT (e->>'attempt')::int AS attempt, e->>'error' AS error FROM awa.jobs, unnest(errors) AS e WHERE id = 2;
SET awa.max_errors_kept = 1;
SELECT awa_fail(id, run_lease, 'only', retry_in => '0') FROM awa_claim('few');
SELECT cardinality(errors) AS entries, errors[1]->>'error' AS error, errors[1]->>'attempt' AS attempt FROM awa.jobs WHERE id = 2;
RESET awa.max_errors_kept;

-- a row from before the bound: 100 entries of 100 kB (10 MB).  Its next
-- failure keeps the newest 24 old entries, each cut to 8 kB and marked, then
-- the new one.
INSERT INTO awa.jobs (id, kind, queue, max_attempts, errors) OVERRIDING SYSTEM VALUE
  SELECT 3, 'k', 'old', 1000, array_agg(jsonb_build_object('attempt', i, 'error', repeat(md5(i::text), 3200),
                                                           'at', now()) ORDER BY i)
  FROM generate_series(1, 100) i;
SELECT cardinality(errors), octet_length(errors::text) > 10000000 AS huge FROM awa.jobs WHERE id = 3;
SELECT awa_fail(id, run_lease, 'new', retry_in => '0') FROM awa_claim('old');
SELECT count(*) AS entries, min((e->>'attempt')::int) FILTER (WHERE e ? 'truncated') AS oldest_kept,
       max((e->>'attempt')::int) FILTER (WHERE e ? 'truncated') AS newest_old,
       max(octet_length(e->>'error')) AS max_bytes,
       count(*) FILTER (WHERE e->'truncated' = 'true' AND e->'error_bytes' = '102400') AS cut,
       sum(octet_length(e::text)) < 25 * 8400 AS history_small
  FROM awa.jobs, unnest(errors) AS e WHERE id = 3;
SELECT errors[25]->>'error' AS newest, errors[25] ? 'truncated' AS marked FROM awa.jobs WHERE id = 3;

-- the rescue appends under the same bounds
SET awa.max_errors_kept = 2;
INSERT INTO awa.jobs (id, kind, queue, max_attempts, errors) OVERRIDING SYSTEM VALUE
  SELECT 4, 'k', 'rescue', 1000, array_agg(jsonb_build_object('attempt', i, 'error', repeat('y', 50000), 'at', now()) ORDER BY i)
  FROM generate_series(1, 10) i;
SELECT id FROM awa_claim('rescue');
UPDATE awa.jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = 4;
SELECT awa_rescue();
SELECT (e->>'attempt')::int AS attempt, octet_length(e->>'error') AS bytes, e->>'error' = 'heartbeat stale' AS rescued,
       e->'truncated' AS truncated
  FROM awa.jobs, unnest(errors) AS e WHERE id = 4;
RESET awa.max_errors_kept;

DROP EXTENSION awa;
