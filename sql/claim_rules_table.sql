-- What a claim promises beyond order: a row that cannot be claimed does not
-- stop its queue (the rest of the claim's promises: claim_rules.sql, on the default ring).
-- On the table engine (awa.install_engine = table): the rows are written into awa.jobs behind awa's back.  Not on
-- the ring (docs/storage.md, "Step 5: the regression files on the ring"): the ring refuses a row at run_lease's
-- maximum when it is written (claim_rules.sql), and a row written into awa.ready with no attempts left is claimed
-- past its max_attempts (attempt 1001 of 1000, 26 of 25, running, not failed).
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- rows written behind awa's back that a claim would break a constraint on:
-- no attempts left (attempt 1000 of 1000; 25 of 25), run_lease at its maximum
INSERT INTO awa.jobs (id, kind, queue, state, attempt, max_attempts, run_lease, run_at)
  OVERRIDING SYSTEM VALUE VALUES
  (101, 'exhausted', 'q', 'available', 1000, 1000, 0, now() - interval '3 s'),
  (102, 'exhausted', 'q', 'retryable', 25, 25, 7, now() - interval '2 s'),
  (103, 'lease_max', 'q', 'available', 0, 25, 9223372036854775807, now() - interval '1 s'),
  (104, 'fine', 'q', 'available', 0, 25, 0, now());
-- the claim hands out the good job; the others become failed, saying why
SELECT id, kind, state, attempt FROM awa_claim('q', batch => 10);
SELECT id, state, attempt, run_lease, finalized_at IS NOT NULL AS finalized, errors[1]->>'error' AS error
  FROM awa.jobs ORDER BY id;
-- and the queue keeps working
SELECT count(*) FROM awa_claim('q', batch => 10);
SELECT kind FROM awa_insert('next', queue => 'q');
SELECT id, kind FROM awa_claim('q', batch => 10);

-- the reason is appended under the bounds of every error awa writes: the newest awa.max_errors_kept entries stay,
-- a text longer than awa.max_error_bytes is cut with its marks (here 76 bytes at a bound of 64)
SET awa.max_errors_kept = 2;
SET awa.max_error_bytes = 64;
INSERT INTO awa.jobs (id, kind, queue, state, attempt, max_attempts, run_lease, run_at, errors)
  OVERRIDING SYSTEM VALUE VALUES
  (105, 'exhausted', 'q2', 'available', 3, 3, 9223372036854775807, now(), ARRAY['{"attempt": 1, "error": "e1"}',
   '{"attempt": 2, "error": "e2"}', '{"attempt": 3, "error": "e3"}']::jsonb[]);
SELECT count(*) FROM awa_claim('q2', batch => 10);
SELECT e - 'at' AS entry FROM awa.jobs, unnest(errors) WITH ORDINALITY AS u(e, o) WHERE id = 105 ORDER BY o;
RESET awa.max_errors_kept;
RESET awa.max_error_bytes;

DROP EXTENSION awa;
