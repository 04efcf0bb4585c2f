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

-- a dependent cancelled by its parent's failure gets its reason under awa.max_errors_kept (errors written into the
-- waiting job behind awa's back: a waiting job has none of its own)
SET awa.max_errors_kept = 1;
SELECT id AS p2 FROM awa_insert('parent', queue => 'pq') \gset
SELECT id AS c2 FROM awa_insert('child', after => ARRAY[:p2]::bigint[]) \gset
UPDATE awa.jobs SET errors = ARRAY['{"attempt": 0, "error": "old 1"}', '{"attempt": 0, "error": "old 2"}']::jsonb[]
 WHERE id = :c2;
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('pq');
SELECT state, cardinality(errors) AS kept, errors[1]->>'error' = format('cancelled: job %s it runs after is failed', :p2)
  AS names_parent FROM awa.jobs WHERE id = :c2;
RESET awa.max_errors_kept;

DROP EXTENSION awa;
