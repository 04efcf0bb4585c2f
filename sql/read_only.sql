-- Every call that writes refuses a read-only transaction (and a hot
-- standby) with a short error that names it: 25006, no internal SQL.
CREATE EXTENSION awa;
SELECT (awa_insert('k')).id AS id \gset
SET default_transaction_read_only = on;
SELECT awa_insert('k');
SELECT awa_insert('k', unique_by_args => true);
SELECT * FROM awa_insert_many('[{"kind": "k"}]');
SELECT * FROM awa_cancel_by_unique_key('k');
SELECT * FROM awa_claim('default');
SELECT * FROM awa_claim('default', wait => '1 s');
-- reading works
SELECT count(*) FROM awa_queue_stats();
SELECT state FROM awa_get_job(:id);
RESET default_transaction_read_only;
SELECT count(*) FROM awa.jobs;
DROP EXTENSION awa;
