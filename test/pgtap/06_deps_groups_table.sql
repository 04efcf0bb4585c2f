-- Dependencies and groups: what only the table engine has (moved out of 06_dependencies.sql and 06_groups.sql,
-- which run on both engines).  The index of a group's jobs by state on the table; awa_maintain's retention keeps
-- a finished parent while a job after it is unfinished, deletes the dependency rows of the jobs it deletes, and
-- deleting every job empties both dependency tables.  It sets up the age of finished jobs with an UPDATE of
-- awa.jobs and reads awa.job_dependencies and awa.dependent_jobs, the table engine's own; the ring keeps
-- finished jobs by slot and history, its edges in tables of its own (docs/storage.md).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: it checks the table awa.jobs itself (the legacy engine, awa.install_engine = table).
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(9);

SELECT has_index('awa', 'jobs', 'jobs_group_idx', ARRAY['group_id', 'state'], 'a group''s jobs by state');

-- a helper: claim the one job of queue q and complete it
CREATE FUNCTION pg_temp.run(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE j awa.jobs;
BEGIN
	SELECT * INTO j FROM awa_claim(q, batch => 1);
	IF j.id IS NULL THEN RETURN NULL; END IF;
	PERFORM awa_complete(j.id, j.run_lease);
	RETURN j.id;
END $$;

-- a completed parent whose child is available
SELECT id AS p FROM awa_insert('p', queue => 'one') \gset
SELECT id AS c FROM awa_insert('c', queue => 'one-child', after => ARRAY[:p]::bigint[]) \gset
SELECT pg_temp.run('one');
-- a cancelled parent (its own parent failed) with a child that waits (policy wait)
SELECT id AS a FROM awa_insert('a', queue => 'pol') \gset
SELECT id AS b FROM awa_insert('b', queue => 'pol2', after => ARRAY[:a]::bigint[]) \gset
SELECT awa_fail((SELECT id FROM awa_claim('pol', batch => 1)), 1, 'boom', terminal => true);
SELECT id AS bw FROM awa_insert('x', after => ARRAY[:b]::bigint[], on_parent_failure => 'wait') \gset
-- a parent and its child, both completed
SELECT id AS rp FROM awa_insert('rp', queue => 'ret') \gset
SELECT id AS rc FROM awa_insert('rc', queue => 'ret', after => ARRAY[:rp]::bigint[]) \gset
SELECT is(ARRAY[pg_temp.run('ret'), pg_temp.run('ret')], ARRAY[:rp, :rc]::bigint[], 'parent, then child, ran');

-- retention keeps a finished parent while a job after it is unfinished
SET LOCAL awa.retention_completed = 60;
SET LOCAL awa.retention_failed = 60;
UPDATE awa.jobs SET finalized_at = now() - interval '1 day' WHERE finalized_at IS NOT NULL;
SELECT ok((SELECT deleted FROM awa_maintain()) > 0, 'retention deletes old finished jobs');
SELECT ok(EXISTS (SELECT 1 FROM awa.jobs WHERE id = :p), 'it keeps a parent whose child is available');
SELECT ok(EXISTS (SELECT 1 FROM awa.jobs WHERE id = :b), 'and a cancelled parent a waiting child (policy wait) needs');
SELECT ok(NOT EXISTS (SELECT 1 FROM awa.jobs WHERE id IN (:rp, :rc)), 'it deletes a parent whose children finished, and them');
SELECT is((SELECT count(*) FROM awa.job_dependencies WHERE job_id = :rc), 0::bigint, 'a deleted job''s dependency rows go with it');
SELECT is((SELECT count(*) FROM awa.dependent_jobs WHERE job_id = :rc), 0::bigint, 'and its policy row');
DELETE FROM awa.jobs;
SELECT is((SELECT count(*) FROM awa.job_dependencies) + (SELECT count(*) FROM awa.dependent_jobs), 0::bigint,
	'deleting every job empties both tables (TRUNCATE: sql/dependencies.sql)');

SELECT * FROM finish();
ROLLBACK;
