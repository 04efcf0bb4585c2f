-- External completion on the table engine (the rest: external.sql, on the default ring): an error cut at
-- awa.max_error_bytes keeps its size, and callback timeouts beside a job put in waiting_external by hand.
-- On the table engine (awa.install_engine = table): the ring has no job in waiting_external without a callback;
-- and a fault of the ring (docs/storage.md, "Step 5: the regression files on the ring"): an error cut at
-- awa.max_error_bytes loses its error_bytes (the size before the cut) on the ring, in awa_fail_external as in
-- awa_fail (its done row keeps the error's text only).
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- err(sql): the SQLSTATE and message a statement raises, or 'ok'.
CREATE FUNCTION err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- one job claimed: its id and lease in :id and :lease
CREATE FUNCTION claim_one(q text DEFAULT 'default') RETURNS TABLE (id bigint, lease bigint)
LANGUAGE sql AS $$ SELECT id, run_lease FROM awa_claim(q) $$;

-- Fail by callback: an error cut at awa.max_error_bytes keeps its size ----------
SELECT (awa_insert('ext')).id AS id \gset
SELECT lease FROM claim_one() \gset
SELECT awa_register_callback(:id, :lease, '1 hour') AS cb \gset
SELECT awa_wait_external(:id, :lease);
SET awa.max_error_bytes = 64;
SELECT awa_fail_external(:'cb', repeat('e', 100), '{"code": 500}');
RESET awa.max_error_bytes;
SELECT state, callback_payload, errors[1]->>'error' = repeat('e', 64) AS cut,
       errors[1]->'error_bytes' AS error_bytes, finalized_at IS NOT NULL AS finalized
  FROM awa.jobs WHERE id = :id;
DELETE FROM awa.jobs;

-- Timeouts: maintenance retries with backoff, or fails without attempts left --
SELECT count(*) FROM awa_insert_many('[{"kind": "t1", "max_attempts": 2}, {"kind": "t2", "max_attempts": 1}, {"kind": "t3"}]');
CREATE TEMP TABLE cbs AS
  SELECT kind, awa_register_callback(id, run_lease, '1 hour') AS cb, awa_wait_external(id, run_lease) AS parked
  FROM awa_claim('default', batch => 3);
SELECT kind, parked FROM cbs ORDER BY kind;
-- two have timed out (t1, t2); t3 has not; t4 was put in waiting_external by hand (no callback)
SELECT id FROM awa_insert('t4') \gset
UPDATE awa.jobs SET state = 'waiting_external', deadline_at = now() - interval '1 hour' WHERE id = :id;
UPDATE awa.jobs SET deadline_at = now() - interval '1 second' WHERE kind IN ('t1', 't2');
SELECT rescued FROM awa_maintain();
SELECT kind, state, attempt, errors[1]->>'error' AS error,
       CASE WHEN state = 'retryable' THEN run_at > now() END AS backoff,
       finalized_at IS NOT NULL AS finalized, deadline_at IS NULL AS no_deadline
  FROM awa.jobs ORDER BY kind;
SELECT kind, awa_complete_external(cb) FROM cbs ORDER BY kind;
SELECT kind, state FROM awa.jobs ORDER BY kind;
SELECT step, item FROM awa.maintenance_failures;

DROP FUNCTION err(text), claim_one(text);
DROP EXTENSION awa;
