-- Maintenance steps run isolated: a job row that cannot be processed, or a
-- step that fails, stops only itself; the rest of the round goes on, the
-- failure is logged (WARNING), recorded in awa.maintenance_failures, shown by
-- awa_health_check(), retried with backoff, and later rounds stay fast.
SELECT pg_advisory_lock(6387553, 1);
-- On the table engine (awa.install_engine = table): the faults are injected with user triggers on awa.jobs and a
-- unique index of the table, which the ring's view cannot carry (it takes no row trigger and no index), into the
-- table's own maintenance statements.  A ring version would inject them into the ring's own tables (awa.ready,
-- awa.done, ...) and its own steps: not written yet (docs/storage.md, "Step 5: the regression files on the ring").
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';
\set VERBOSITY terse
-- the maintenance lines of the health check (other reasons depend on the server)
CREATE VIEW maint_health AS
  SELECT r AS reason FROM awa_health_check() h, regexp_split_to_table(h.reason, '; ') r
  WHERE r LIKE 'maintenance%';
CREATE VIEW failures AS
  SELECT f.step, coalesce(j.kind, f.item) AS item, f.sqlstate, f.error, f.failures,
         f.retry_at > now() AS waits
  FROM awa.maintenance_failures f LEFT JOIN awa.jobs j ON j.id = CASE WHEN f.item ~ '^\d+$' THEN f.item::bigint END
  ORDER BY 1, 2;

-- a user trigger that rejects every change of jobs of kind 'bad'
CREATE FUNCTION reject_bad() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.kind LIKE 'bad%' THEN
    RAISE EXCEPTION 'trigger rejects % of %', lower(TG_OP), OLD.kind;
  END IF;
  RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER reject_bad BEFORE UPDATE OR DELETE ON awa.jobs
  FOR EACH ROW EXECUTE FUNCTION reject_bad();

-- due jobs (one bad), stale running jobs (one bad), old finished jobs (one bad)
INSERT INTO awa.jobs (kind, state, run_at) VALUES
  ('promote_a', 'scheduled', now() - interval '3 minutes'),
  ('bad_promote', 'scheduled', now() - interval '2 minutes'),
  ('promote_b', 'retryable', now() - interval '1 minute');
INSERT INTO awa.jobs (kind) VALUES ('rescue_a'), ('bad_rescue'), ('rescue_b');
UPDATE awa.jobs SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour',
  heartbeat_at = now() - interval '1 hour' WHERE kind IN ('rescue_a', 'rescue_b');
ALTER TABLE awa.jobs DISABLE TRIGGER reject_bad;
UPDATE awa.jobs SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour',
  heartbeat_at = now() - interval '1 hour' WHERE kind = 'bad_rescue';
ALTER TABLE awa.jobs ENABLE TRIGGER reject_bad;
INSERT INTO awa.jobs (kind, state, finalized_at) VALUES
  ('old_a', 'completed', now() - interval '2 days'),
  ('bad_old', 'completed', now() - interval '2 days'),
  ('old_b', 'failed', now() - interval '30 days');

-- one round: everything but the three bad jobs is done, each bad one is named
SELECT promoted, rescued, deleted, periodic_enqueued FROM awa_maintain();
SELECT kind, state FROM awa.jobs ORDER BY id;
SELECT * FROM failures;
SELECT * FROM maint_health;
-- the bad jobs are left as they were (the trigger refused the note in errors too)
SELECT kind, cardinality(errors) AS errors FROM awa.jobs WHERE kind LIKE 'bad%' ORDER BY id;

-- later rounds leave the recorded jobs alone until their retry is due: no
-- warning, nothing retried, and new work is done as usual
INSERT INTO awa.jobs (kind, state, run_at) VALUES ('promote_c', 'scheduled', now() - interval '1 second');
SELECT promoted, rescued, deleted FROM awa_maintain();
SELECT kind, state FROM awa.jobs WHERE kind = 'promote_c';
SELECT step, item, failures, waits FROM failures;
-- a retry that fails again counts up and backs off, without a new warning
UPDATE awa.maintenance_failures SET retry_at = now() - interval '1 second';
SELECT promoted, rescued, deleted FROM awa_maintain();
SELECT step, item, failures, waits FROM failures;

-- fixed: the next retry processes them, the records go, healthy again
DROP TRIGGER reject_bad ON awa.jobs;
UPDATE awa.maintenance_failures SET retry_at = now() - interval '1 second';
SELECT promoted, rescued, deleted FROM awa_maintain();
SELECT kind, state FROM awa.jobs WHERE kind LIKE 'bad%' ORDER BY id;
SELECT count(*) AS failures FROM awa.maintenance_failures;
SELECT count(*) AS maintenance_reasons FROM maint_health;
DELETE FROM awa.jobs;

-- a unique collision on promotion (here a user's unique index): the job is
-- left where it is, with the reason in its errors; the others are promoted
CREATE UNIQUE INDEX one_available_per_order ON awa.jobs ((args->>'order'))
  WHERE state = 'available';
INSERT INTO awa.jobs (kind, args, state, run_at) VALUES
  ('holder', '{"order": 1}', 'available', now()),
  ('collider', '{"order": 1}', 'scheduled', now() - interval '2 minutes'),
  ('other', '{"order": 2}', 'scheduled', now() - interval '1 minute');
SELECT promoted FROM awa_maintain();
SELECT kind, state, errors[1]->>'error' AS error FROM awa.jobs ORDER BY id;
SELECT * FROM failures;
SELECT * FROM maint_health;
-- the note goes under the bounds of every error: the newest awa.max_errors_kept entries, the text cut at
-- awa.max_error_bytes with its marks; a second failure of the same step with the same cut text adds no entry
SET awa.max_errors_kept = 2;
SET awa.max_error_bytes = 64;
INSERT INTO awa.jobs (kind, args, state, run_at, errors) VALUES
  ('collider2', '{"order": 1}', 'scheduled', now() - interval '1 minute',
   ARRAY['{"attempt": 0, "error": "old 1"}', '{"attempt": 0, "error": "old 2"}']::jsonb[]);
SELECT promoted FROM awa_maintain();
UPDATE awa.maintenance_failures SET retry_at = now() - interval '1 second';
SELECT promoted FROM awa_maintain();
SELECT e - 'at' AS entry FROM awa.jobs, unnest(errors) WITH ORDINALITY AS u(e, o) WHERE kind = 'collider2'
 ORDER BY o;
RESET awa.max_errors_kept;
RESET awa.max_error_bytes;
DELETE FROM awa.maintenance_failures WHERE item = (SELECT id::text FROM awa.jobs WHERE kind = 'collider2');
DELETE FROM awa.jobs WHERE kind = 'collider2';
-- the holder finishes: the next retry promotes the collider
UPDATE awa.jobs SET state = 'completed', finalized_at = now() WHERE kind = 'holder';
UPDATE awa.maintenance_failures SET retry_at = now() - interval '1 second';
SELECT promoted FROM awa_maintain();
SELECT kind, state FROM awa.jobs ORDER BY id;
SELECT count(*) AS failures FROM awa.maintenance_failures;
DROP INDEX awa.one_available_per_order;
DELETE FROM awa.jobs;

-- a step that fails for every row gives up after 10 in a row: it is
-- reported as failing, and the other steps of the round still run
CREATE FUNCTION reject_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no promotion today'; END $$;
CREATE TRIGGER reject_all BEFORE UPDATE ON awa.jobs FOR EACH ROW
  WHEN (NEW.state = 'available') EXECUTE FUNCTION reject_all();
INSERT INTO awa.jobs (kind, state, run_at)
  SELECT 'stuck', 'scheduled', now() - interval '1 minute' FROM generate_series(1, 12);
INSERT INTO awa.jobs (kind, state, finalized_at) VALUES ('old', 'completed', now() - interval '2 days');
SELECT promoted, rescued, deleted FROM awa_maintain();
SELECT step, item, sqlstate, failures FROM failures WHERE item NOT LIKE 'stuck';
SELECT step, count(*) AS skipped FROM failures WHERE item = 'stuck' GROUP BY step;
SELECT * FROM maint_health;
DROP TRIGGER reject_all ON awa.jobs;
UPDATE awa.maintenance_failures SET retry_at = now() - interval '1 second';
SELECT promoted FROM awa_maintain();
SELECT count(*) AS failures FROM awa.maintenance_failures;
SELECT count(*) AS maintenance_reasons FROM maint_health;

DELETE FROM awa.jobs;

-- many bad jobs among good ones: all good ones are done, at most 10
-- WARNINGs per step and round, the rest counted in one line
CREATE TRIGGER reject_bad BEFORE UPDATE OR DELETE ON awa.jobs
  FOR EACH ROW EXECUTE FUNCTION reject_bad();
INSERT INTO awa.jobs (kind, state, run_at)
  SELECT CASE WHEN i % 2 = 0 THEN 'bad_many' ELSE 'good_many' END, 'scheduled',
         now() - interval '1 hour' + i * interval '1 second'
  FROM generate_series(1, 30) i;
SELECT promoted FROM awa_maintain();
SELECT kind, state, count(*) FROM awa.jobs GROUP BY 1, 2 ORDER BY 1, 2;
SELECT * FROM maint_health;
DROP TRIGGER reject_bad ON awa.jobs;

DROP VIEW failures;
DROP VIEW maint_health;
DROP EXTENSION awa;

-- on a schema without awa.maintenance_failures (before 0.3.0) the round is
-- isolated all the same, and the skipped job is remembered in the backend:
-- the next round neither warns again nor goes row by row for it
CREATE EXTENSION awa;
ALTER EXTENSION awa DROP TABLE awa.maintenance_failures;
DROP TABLE awa.maintenance_failures;
CREATE TRIGGER reject_bad BEFORE UPDATE OR DELETE ON awa.jobs
  FOR EACH ROW EXECUTE FUNCTION reject_bad();
INSERT INTO awa.jobs (kind, state, run_at) VALUES
  ('bad_promote', 'scheduled', now() - interval '2 minutes'),
  ('promote_a', 'scheduled', now() - interval '1 minute');
SELECT promoted FROM awa_maintain();
INSERT INTO awa.jobs (kind, state, run_at) VALUES ('promote_b', 'scheduled', now() - interval '1 minute');
SELECT promoted FROM awa_maintain();
SELECT kind, state FROM awa.jobs ORDER BY id;
SELECT count(*) AS maintenance_reasons FROM awa_health_check() h, regexp_split_to_table(h.reason, '; ') r
  WHERE r LIKE 'maintenance%';
DROP TRIGGER reject_bad ON awa.jobs;
DROP EXTENSION awa;

DROP FUNCTION reject_bad(), reject_all();
SELECT pg_advisory_unlock(6387553, 1);
