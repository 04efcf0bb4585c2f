-- What one job stores stays bounded (awa.max_error_bytes) when it fails; delay arguments are checked against
-- their cap before anything changes; the default backoff keeps its jitter at the 24-hour cap.
-- On the default ring engine: a job's earlier attempts are made by claiming and failing it (retry_in 0).
-- job_bounds_table.sql keeps on the table the marks of a cut entry, awa.max_errors_kept and the rescue under the
-- same bounds (faults of the ring, named there), and a row written before the bound (the ring has no such row).
CREATE EXTENSION awa;
SET timezone = 'UTC';

SELECT name, setting, unit, context, min_val, max_val FROM pg_settings
 WHERE name IN ('awa.max_error_bytes', 'awa.max_errors_kept') ORDER BY name;

-- a 2 MB error, five times: each entry keeps 8 kB, marked; the row stays small
INSERT INTO awa.jobs (kind, queue, max_attempts) VALUES ('k', 'big', 10);
SELECT id FROM awa.jobs WHERE queue = 'big';
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
SELECT awa_fail(id, run_lease, repeat('x', 2 * 1024 * 1024), retry_in => '0') FROM awa_claim('big');
-- (the marks of a cut entry, truncated and error_bytes, are checked in job_bounds_table.sql: the ring leaves them
-- out, a fault named there)
SELECT (e->>'attempt')::int AS attempt, octet_length(e->>'error') AS bytes FROM awa.jobs, unnest(errors) AS e WHERE id = 1;
SELECT sum(octet_length(e::text)) < 5 * 8400 AS history_small FROM awa.jobs, unnest(errors) AS e WHERE id = 1;
-- cut at a character boundary: 3-byte characters, 2730 of them fit in 8192 bytes
SELECT awa_fail(id, run_lease, repeat('€', 100000), retry_in => '0') FROM awa_claim('big');
SELECT char_length(errors[6]->>'error') AS chars, octet_length(errors[6]->>'error') AS bytes FROM awa.jobs WHERE id = 1;
-- a short error is stored as given, unmarked
SELECT awa_fail(id, run_lease, 'short', retry_in => '0') FROM awa_claim('big');
SELECT errors[7]->>'error' AS error, errors[7] ? 'truncated' AS marked FROM awa.jobs WHERE id = 1;

-- delays: 0 .. 36500 days; beyond, 22023 naming the argument and the range,
-- and the job is left running under its lease
INSERT INTO awa.jobs (kind, queue, max_attempts) VALUES ('k', 'delay', 10), ('k2', 'delay2', 10);
SELECT id, run_lease FROM awa_claim('delay');
SELECT awa_fail(2, 1, 'x', retry_in => '300000 years');
SELECT awa_snooze(2, 1, '300000 years');
SELECT awa_snooze(2, 1, '36500 days 1 second');
SELECT awa_fail(2, 1, 'x', retry_in => '-1 second');
-- fields of different signs that add up to little still must each fit
SELECT awa_snooze(2, 1, '300000 years -109500000 days');
SELECT awa_snooze(2, 1, '-1000000 days 24000100 hours');
\set VERBOSITY sqlstate
SELECT awa_snooze(2, 1, '300000 years');
\set VERBOSITY default
SELECT state, run_lease, attempt, cardinality(errors) AS errors FROM awa.jobs WHERE id = 2;
-- the cap itself is accepted
SELECT awa_snooze(2, 1, '36500 days');
SELECT state, round(extract(epoch FROM run_at - now()) / 86400) AS days FROM awa.jobs WHERE id = 2;
-- (job 3, the same in another queue: job 2 is snoozed for 100 years)
SELECT id, run_lease FROM awa_claim('delay2');
SELECT awa_fail(3, 1, 'x', retry_in => '1200 months');
SELECT state, run_at > now() + interval '36000 days' AS in_100_years FROM awa.jobs WHERE id = 3;

-- backoff at the cap keeps its jitter: 300 jobs failing together at attempt
-- 30 retry spread over 19.2 .. 24 hours, not all at exactly 24 hours
-- (29 attempts failed with retry_in 0 first; the newest error is the last of errors)
INSERT INTO awa.jobs (kind, queue, max_attempts) SELECT 'k', 'jitter', 1000 FROM generate_series(1, 300) i;
DO $$
BEGIN
	FOR i IN 1 .. 29 LOOP
		PERFORM awa_fail(id, run_lease, 'x', retry_in => '0') FROM awa_claim('jitter', batch => 300);
	END LOOP;
END
$$;
SELECT count(*), min(attempt), max(attempt) FROM awa_claim('jitter', batch => 300);
SELECT count(*) FROM (SELECT awa_fail(id, run_lease, 'x') FROM awa.jobs WHERE queue = 'jitter') f;
SELECT min(d) >= 69120 AS above_base, max(d) <= 86400 AS within_cap,
       count(DISTINCT round(d)) > 250 AS spread, stddev(d) > 3000 AS wide
  FROM (SELECT extract(epoch FROM run_at - (errors[cardinality(errors)]->>'at')::timestamptz) AS d
        FROM awa.jobs WHERE queue = 'jitter') s;

DROP EXTENSION awa;
