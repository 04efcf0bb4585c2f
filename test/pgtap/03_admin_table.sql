-- Administration on the table engine only: the index the table's listing of settled states reads (the ring
-- engine lists them from its own relations).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: it checks the table awa.jobs itself (the legacy engine, awa.install_engine = table).
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(1);

SELECT has_index('awa', 'jobs', 'jobs_settled_idx', ARRAY['state', 'id'], 'partial index for listing settled states');

SELECT * FROM finish();
ROLLBACK;
