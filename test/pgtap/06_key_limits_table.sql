-- Per-key limits: what only the table engine has (moved from 06_key_limits.sql, which runs on both engines):
-- awa.jobs' indexes that count a key's running jobs and find an earlier live job of a key.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: it checks the table awa.jobs itself (the legacy engine, awa.install_engine = table).
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(2);

SELECT has_index('awa', 'jobs', 'jobs_key_running_idx', ARRAY['concurrency_key'], 'running jobs by key');
SELECT has_index('awa', 'jobs', 'jobs_key_live_idx', ARRAY['concurrency_key', 'id'], 'live jobs by key and id');

SELECT * FROM finish();
ROLLBACK;
