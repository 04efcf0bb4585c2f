-- One claim, many queues, on the table engine (the rest: claim_many.sql, on the default ring): a limited queue
-- needs READ COMMITTED, and the claim index's ranges known as read.
-- On the table engine (awa.install_engine = table): the ring's claim counts a limit's running jobs with the newest
-- snapshot in every isolation level, so it does not refuse REPEATABLE READ; and awa.jobs_claim_idx and its floors
-- are the table's.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

SELECT max_running FROM awa_set_queue_limit('lim', 2);
-- a limited queue needs READ COMMITTED, as for one queue
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['free', 'lim'])$$);
ROLLBACK;
SELECT awa_forget_queue('lim');

-- every range the claim read is known as read, in all the queues: once the
-- empty ranges are known (the first claim), a claim over six busy queues
-- descends the claim index once per queue and probes no floor
TRUNCATE awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'r' || (g % 6),
  run_at => now() - interval '1 hour' + g * interval '1 s') FROM generate_series(1, 60) g) i;
SELECT queue FROM awa_claim(ARRAY['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], batch => 1);
-- (index scans counted in this transaction; stats are not flushed inside it)
BEGIN;
SELECT pg_stat_get_xact_numscans('awa.jobs_claim_idx'::regclass) AS before \gset
SELECT queue FROM awa_claim(ARRAY['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], batch => 1);
SELECT pg_stat_get_xact_numscans('awa.jobs_claim_idx'::regclass) - :before AS descents;
COMMIT;

DROP EXTENSION awa;
