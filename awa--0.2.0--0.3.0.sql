/* awa--0.2.0--0.3.0.sql — ALTER EXTENSION awa UPDATE TO '0.3.0'
 *
 * The result must equal a fresh install of awa--0.3.0.sql
 * (test/integration/upgrade.sh compares pg_dump --schema-only of both). */

\echo Use "ALTER EXTENSION awa UPDATE TO '0.3.0'" to load this file. \quit

-- Maintenance failures (maintain.c) ------------------------------------------
--
-- Each step of a maintenance round (promote, rescue, schedules, retention)
-- runs isolated: a step that fails, or a job row (or periodic job) that one
-- cannot process, is skipped and recorded here, and the rest of the round
-- goes on.  item is '' for the step as a whole, else the job id (or periodic
-- job name) that was skipped; skipped jobs are retried one by one at
-- retry_at (backoff doubling up to 5 minutes), and a row goes when its step
-- or item works again.  Written only when something fails or recovers;
-- awa_health_check() reports every row as a reason.
CREATE TABLE awa.maintenance_failures (
	step			text NOT NULL,
	item			text NOT NULL DEFAULT '',
	sqlstate		text NOT NULL,
	error			text NOT NULL,
	failures		integer NOT NULL DEFAULT 1,
	first_failed_at	timestamptz NOT NULL DEFAULT now(),
	last_failed_at	timestamptz NOT NULL DEFAULT now(),
	retry_at		timestamptz,
	PRIMARY KEY (step, item)
);
COMMENT ON TABLE awa.maintenance_failures
	IS 'maintenance steps, and the jobs or periodic jobs in them, that are failing; written by awa_maintain, read by awa_health_check';
REVOKE ALL ON awa.maintenance_failures FROM PUBLIC;
GRANT SELECT ON awa.maintenance_failures TO awa_admin;

-- Retention path: finished jobs by state and age (was: by age), so that
-- deleting old completed jobs never walks failed ones kept longer, nor the
-- reverse.  Rebuilt here: the upgrade takes as long as building one index
-- on the finished jobs.
DROP INDEX awa.jobs_finalized_idx;
CREATE INDEX jobs_finalized_idx ON awa.jobs (state, finalized_at)
	WHERE state IN ('completed', 'failed', 'cancelled');
