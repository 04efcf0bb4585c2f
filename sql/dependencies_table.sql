-- Job dependencies (docs/dependencies.md; the full contract is test/pgtap/06_dependencies.sql):
-- the rows of awa.job_dependencies and awa.dependent_jobs go with their jobs, TRUNCATE included
-- (which the pgTAP file, one transaction that has written jobs, cannot run).
-- On the table engine (awa.install_engine = table): TRUNCATE of the table (dependencies.sql checks the same on the
-- default ring with a DELETE, as its view has no TRUNCATE).
SET awa.install_engine = 'table';
CREATE EXTENSION awa;

SELECT id AS p FROM awa_insert('parent') \gset
SELECT state, run_at FROM awa_insert('child', after => ARRAY[:p]::bigint[]);
SELECT count(*) AS edges FROM awa.job_dependencies;
SELECT waiting_for, on_parent_failure, run_at FROM awa.dependent_jobs;
TRUNCATE awa.jobs;
SELECT count(*) AS edges FROM awa.job_dependencies;
SELECT count(*) AS dependents FROM awa.dependent_jobs;

-- a parent that does not exist
SELECT awa_insert('child', after => ARRAY[:p]::bigint[]);

DROP EXTENSION awa;
