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
SELECT awa_complete(:id, 1);
SELECT awa_complete_many(ARRAY[:id]::bigint[], '{1}');
SELECT awa_fail(:id, 1, 'boom');
SELECT awa_snooze(:id, 1, '1 s');
SELECT awa_heartbeat(ARRAY[:id]::bigint[], '{1}');
SELECT awa_progress(:id, 1, '{}');
SELECT awa_rescue();
SELECT * FROM awa_cancel(:id);
SELECT * FROM awa_retry(:id);
SELECT * FROM awa_retry_failed('*');
SELECT awa_discard_failed('*');
SELECT awa_pause_queue('default');
SELECT awa_resume_queue('default');
SELECT * FROM awa_set_queue_limit('default', 1);
SELECT awa_drain_queue('default');
SELECT * FROM awa_schedule('s', '* * * * *', 'k');
SELECT awa_unschedule('s');
SELECT * FROM awa_pause_schedule('s');
SELECT * FROM awa_resume_schedule('s');
SELECT * FROM awa_maintain();
-- reading works
SELECT count(*) FROM awa_queue_stats();
SELECT state FROM awa_get_job(:id);
RESET default_transaction_read_only;
SELECT count(*) FROM awa.jobs;
DROP EXTENSION awa;
