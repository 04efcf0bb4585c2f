-- Deleting ring jobs a reclaim moved into the history (src/ring_admin.c; docs/storage.md, "Step 5: administration
-- on the ring engine"), in a database on the ring engine: awa_discard_failed and DELETE FROM awa.jobs take the job
-- out of its batch of awa.ring_history (the batch deleted once empty), with its count and its unique key; awa_rescue
-- and awa_maintain work on the ring.
-- Reclaiming needs committed rows and no older snapshot, so this file runs statement by statement (autocommit)
-- and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
SET awa.install_engine = 'ring';
CREATE EXTENSION awa;
RESET awa.install_engine;
SET statement_timeout = '30s';
SET awa.retention_completed = 86400;
SET awa.retention_failed = 604800;
SELECT plan(23);

\ir lib/ring_reclaim.psql

-- two failed jobs and a completed unique one, in slot 0, moved into the history
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "h", "queue": "hq", "max_attempts": 1},
	{"kind": "h", "queue": "hq", "max_attempts": 1}]')), 2::bigint, 'two jobs to fail');
SELECT is((SELECT array_agg(awa_fail(id, run_lease, 'x') ORDER BY id) FROM awa_claim('hq', batch => 2)),
	ARRAY['failed', 'failed']::awa.job_state[], 'they fail for good');
SELECT is((SELECT state FROM awa_insert('c', '{"n": 1}', queue => 'hq', unique_by_args => true)),
	'available'::awa.job_state, 'a unique job');
SELECT ok((SELECT bool_and(awa_complete(id, run_lease)) FROM awa_claim('hq')), 'it completes and keeps its key');
SELECT is((SELECT outcome FROM awa.ring_rotate(1, '1 hour')), 'rotated', 'slot 0 sealed');
SELECT is(pg_temp.reclaim(), 'reclaimed', 'slot 0 reclaimed');
SELECT is((SELECT array_agg(failed::text || ':' || cardinality(jobs) ORDER BY failed) FROM awa.ring_history),
	ARRAY['false:1', 'true:2'], 'the three jobs are in two batches of the history');

-- (retrying jobs of the history: 07_engine_retry_history.sql) a retry of another kind leaves them failed
SELECT is((SELECT count(*) FROM awa_retry_failed('none')), 0::bigint, 'retry_failed of another kind retries none');
SELECT is((SELECT array_agg(state::text) FROM awa.jobs WHERE kind = 'h'), ARRAY['failed', 'failed'],
	'... both still failed');

-- discard the failed ones, delete the completed one
SELECT is(awa_discard_failed('h'), 2::bigint, 'discard_failed deletes the two failed jobs from the history');
DELETE FROM awa.jobs WHERE kind = 'c';
SELECT is((SELECT count(*) FROM awa.ring_history), 0::bigint, 'the emptied batches are gone');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs shows none of them');
SELECT isnt((SELECT state FROM awa_insert('c', '{"n": 1}', queue => 'hq', unique_by_args => true)), NULL,
	'the deleted unique job let go of its key');
SELECT is(pg_temp.drift(), 0::bigint, 'the counters equal a recount');

-- awa_rescue and the maintenance round on the ring engine: the ring's steps do the work, the table's are skipped
-- (they would write the view: a failure recorded in awa.maintenance_failures)
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "r", "queue": "rq"}, {"kind": "r", "queue": "rq"}]')),
	2::bigint, 'two jobs to run');
SELECT is((SELECT count(*) FROM awa_claim('rq', batch => 2, lease => '1 second')), 2::bigint, 'claimed, 1 s leases');
SELECT is((SELECT state FROM awa_insert('s', queue => 'sq', run_at => clock_timestamp() + interval '0.5 second')),
	'scheduled'::awa.job_state, 'a job due in half a second');
SELECT pg_sleep(1.5);
SELECT is(awa_rescue(), 2::bigint, 'awa_rescue ends both attempts past their deadline');
SELECT is((SELECT array_agg(state::text || ':' || jsonb_array_length(to_jsonb(errors))) FROM awa.jobs WHERE kind = 'r'),
	ARRAY['available:1', 'available:1'], '... each with its error, to run again');
SELECT is((SELECT count(*) FROM awa_claim('rq', batch => 1, lease => '1 second')), 1::bigint, 'one runs again');
SELECT pg_sleep(1.2);
SELECT ok((SELECT promoted = 1 AND rescued = 1 FROM awa_maintain()), 'a round promotes the due job and rescues the stale one');
SELECT is((SELECT count(*) FROM awa.maintenance_failures), 0::bigint, 'no step of the round failed');
SELECT is((SELECT state FROM awa.jobs WHERE kind = 's'), 'available'::awa.job_state, 'the due job is available');

SELECT * FROM finish();
RESET statement_timeout;
DROP EXTENSION awa;
