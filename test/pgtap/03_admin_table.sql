-- Administration on the table engine only: the index the table's listing of settled states reads (the ring
-- engine lists them from its own relations).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(1);

SELECT has_index('awa', 'jobs', 'jobs_settled_idx', ARRAY['state', 'id'], 'partial index for listing settled states');

SELECT * FROM finish();
ROLLBACK;
