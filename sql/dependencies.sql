-- Job dependencies (docs/dependencies.md; the full contract is test/pgtap/06_dependencies.sql):
-- the rows of awa.job_dependencies and awa.dependent_jobs go with their jobs, TRUNCATE included
-- (which the pgTAP file, one transaction that has written jobs, cannot run).
-- On the default ring engine; TRUNCATE of the table is in dependencies_table.sql (the ring's awa.jobs is a view:
-- a DELETE takes the jobs away, and with them their edges, awa.ring_dependencies and awa.ring_dependents).
CREATE EXTENSION awa;

SELECT id AS p FROM awa_insert('parent') \gset
SELECT state, run_at FROM awa_insert('child', after => ARRAY[:p]::bigint[]);
SELECT count(*) AS edges FROM awa.ring_dependencies;
SELECT waiting_for, on_parent_failure, run_at FROM awa.ring_dependents;
DELETE FROM awa.jobs;
SELECT count(*) AS edges FROM awa.ring_dependencies;
SELECT count(*) AS dependents FROM awa.ring_dependents;

-- a parent that does not exist
SELECT awa_insert('child', after => ARRAY[:p]::bigint[]);

DROP EXTENSION awa;
