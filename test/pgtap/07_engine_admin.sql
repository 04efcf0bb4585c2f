-- Administration on the ring engine (src/engine_admin.c, src/ring_admin.c; docs/storage.md, "Step 5: administration
-- on the ring engine"): in a database created with awa.install_engine = ring, awa_retry_failed, awa_discard_failed,
-- awa_drain_queue, awa_cancel_by_unique_key, awa_get_job and awa_rescue work on the ring; an UPDATE of the view
-- awa.jobs is refused with 0A000 naming the functions to use; a DELETE of it deletes the job from the ring with what
-- a DELETE of the table does to its group, unique key and counters.  test/pgtap/03_admin.sql runs on both engines.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(51);

SET LOCAL awa.install_engine = 'ring';
CREATE EXTENSION awa;
SELECT has_trigger('awa', 'jobs', 'jobs_instead_of_update', 'the view has an INSTEAD OF UPDATE trigger');
SELECT has_trigger('awa', 'jobs', 'jobs_instead_of_delete', 'the view has an INSTEAD OF DELETE trigger');

-- the recount of the counters, job by job, equals the counters (awa.ring_recount)
CREATE FUNCTION pg_temp.drift() RETURNS bigint LANGUAGE sql AS
	$$SELECT count(*) FROM awa.ring_recount() WHERE counted IS DISTINCT FROM recounted$$;

-- jobs: f1, two f2 (unique by args, one after the other) and f3 (unique) failed, an f3 holding its key, in queue 'q'
-- a available, s scheduled; r running in queue 'r'
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "f1", "queue": "q", "max_attempts": 1}]')), 1::bigint,
	'a job to fail');
SELECT is((SELECT id FROM awa_insert('f2', '{"n": 2}', queue => 'q', max_attempts => 1, unique_by_args => true)) > 0,
	true, 'a unique one');
SELECT is((SELECT array_agg(awa_fail(id, run_lease, 'boom') ORDER BY id) FROM awa_claim('q', batch => 10)),
	ARRAY['failed', 'failed']::awa.job_state[], 'both fail for good');
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "f2", "args": {"n": 2}, "queue": "q", "max_attempts": 1,
	"unique_by_args": true}, {"kind": "f3", "args": {"n": 3}, "queue": "q", "max_attempts": 1, "unique_by_args": true}]')),
	2::bigint, 'the f2 key is free again: another f2, and an f3');
SELECT is((SELECT array_agg(awa_fail(id, run_lease, 'boom') ORDER BY id) FROM awa_claim('q', batch => 10)),
	ARRAY['failed', 'failed']::awa.job_state[], 'both fail for good');
SELECT is((SELECT id FROM awa_insert('f3', '{"n": 3}', queue => 'h', unique_by_args => true)) > 0, true,
	'another f3 holds its key');
SELECT is((SELECT id FROM awa_insert('a', queue => 'q')) > 0, true, 'an available job');
SELECT is((SELECT state FROM awa_insert('s', queue => 'q', run_at => now() + interval '1 hour')), 'scheduled',
	'a scheduled job');
SELECT is((SELECT id FROM awa_insert('r', queue => 'r')) > 0, true, 'a job to run');
CREATE TEMP TABLE r AS SELECT id, run_lease FROM awa_claim('r');
SELECT is((SELECT count(*) FROM r), 1::bigint, 'it runs');
CREATE TEMP TABLE before AS SELECT id, state, attempt, errors FROM awa.jobs;

-- UPDATE of the view: 0A000 naming the functions, nothing changed
SELECT throws_ok($$UPDATE awa.jobs SET state = 'available' WHERE kind = 'f1'$$, '0A000',
	'awa.jobs cannot be updated: change jobs with awa_cancel, awa_retry, awa_retry_failed, awa_drain_queue or awa_cancel_by_unique_key',
	'UPDATE of awa.jobs: 0A000 naming the awa_* functions');
SELECT throws_ok($$UPDATE awa.jobs SET priority = 1$$, '0A000', NULL, 'an UPDATE of every job: 0A000');
SELECT is((SELECT count(*) FROM before b JOIN awa.jobs j USING (id)
		WHERE (j.state, j.attempt, j.errors) IS NOT DISTINCT FROM (b.state, b.attempt, b.errors)),
	(SELECT count(*) FROM before), 'the refused UPDATEs changed nothing');
SELECT lives_ok($$UPDATE awa.jobs SET priority = 1 WHERE id = -1$$, 'an UPDATE of no row is no error');

-- bad input of the admin functions: the table's errors, nothing changed
SELECT throws_ok($$SELECT awa_discard_failed('')$$, '22023', NULL, 'discard_failed empty: 22023');
SELECT throws_ok($$SELECT * FROM awa_retry_failed()$$, '22023', NULL, 'retry_failed without filter: 22023');
SELECT throws_ok($$SELECT awa_drain_queue(repeat('q', 201))$$, '22023', NULL, 'drain long queue: 22023');
SELECT throws_ok($$SELECT * FROM awa_get_job(-1)$$, 'P0002', 'job -1 does not exist', 'get_job unknown: P0002');
SELECT is((SELECT count(*) FROM before b JOIN awa.jobs j USING (id) WHERE j.state = b.state),
	(SELECT count(*) FROM before), 'bad input changed nothing');

-- retry_failed: of failed jobs sharing a unique key only the newest, and only if no other job holds the key
SELECT is((SELECT array_agg(id) FROM awa_retry_failed('f2')), (SELECT ARRAY[max(id)] FROM awa.jobs WHERE kind = 'f2'),
	'retry_failed of two failed jobs sharing a key: the newest');
SELECT is((SELECT array_agg(state::text || ':' || attempt ORDER BY id) FROM awa.jobs WHERE kind = 'f2'),
	ARRAY['failed:1', 'available:0'], 'the newest is available with its attempts reset, the older still failed');
SELECT is((SELECT count(*) FROM awa_retry_failed('f3')), 0::bigint, 'retry_failed of a job whose key another holds: none');
SELECT is((SELECT state FROM awa.jobs WHERE kind = 'f3' AND queue = 'q'), 'failed'::awa.job_state, '... it stays failed');
SELECT is((SELECT count(*) FROM awa_retry_failed('*', 'nowhere')), 0::bigint, 'retry_failed of another queue: none');

-- discard_failed: deletes the failed jobs of the kind from the ring, with their counts
SELECT is(awa_discard_failed('f1'), 1::bigint, 'discard_failed by kind');
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind = 'f1'), 0::bigint, 'the job is gone from awa.jobs');
SELECT is(awa_discard_failed('f1'), 0::bigint, 'discard_failed again: none');
SELECT is(pg_temp.drift(), 0::bigint, 'counters equal a recount after discard_failed');

-- DELETE of the view: a finished job and an available unique one (its key freed), a running one (cancelled first)
WITH d AS (DELETE FROM awa.jobs WHERE kind = 'f2' RETURNING id) SELECT is((SELECT count(*) FROM d), 2::bigint,
	'DELETE returns the rows it deleted');
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind = 'f2'), 0::bigint, 'the f2 jobs are gone');
SELECT ok((SELECT id FROM awa_insert('f2', '{"n": 2}', queue => 'q', unique_by_args => true)) NOT IN (SELECT id FROM before),
	'the unique key is free again: a new job takes it');
SELECT is((SELECT id FROM awa_insert('u', '{"n": 4}', queue => 'u', unique_by_args => true)) > 0, true, 'a unique job');
SELECT ok((SELECT bool_and(awa_complete(id, run_lease)) FROM awa_claim('u')), 'it completes (and keeps its key)');
SELECT is((SELECT id FROM awa_insert('u', '{"n": 4}', queue => 'u', unique_by_args => true)),
	(SELECT id FROM awa.jobs WHERE kind = 'u'), 'the completed job holds its key');
DELETE FROM awa.jobs WHERE kind = 'u';
SELECT isnt((SELECT id FROM awa_insert('u', '{"n": 4}', queue => 'u', unique_by_args => true)), NULL,
	'deleted, it lets go of its key: a new job');
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind = 'u' AND state = 'available'), 1::bigint, '... which is there');
DELETE FROM awa.jobs WHERE kind = 'r';
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind = 'r'), 0::bigint, 'a running job deleted');
SELECT ok(NOT awa_complete((SELECT id FROM r), (SELECT run_lease FROM r)), '... its worker''s completion finds nothing');
SELECT throws_ok($$SELECT * FROM awa_get_job((SELECT id FROM r))$$, 'P0002', NULL, '... awa_get_job: P0002');
SELECT is(pg_temp.drift(), 0::bigint, 'counters equal a recount after the deletes');

-- a group whose last unfinished job is deleted finishes (its callback is enqueued)
SELECT is((SELECT group_id FROM awa_insert('g', group_id => 'g3')), 'g3', 'a job of g3');
SELECT is(awa.ring_group_on_finish('g3', 'g3_done'), NULL, 'g3 waits');
DELETE FROM awa.jobs WHERE group_id = 'g3';
SELECT is((SELECT count(*)::int FROM awa.jobs WHERE kind = 'g3_done'), 1, 'deleting its last unfinished job finishes g3');

-- drain: the waiting jobs of the queue are cancelled, the running ones left
SELECT is((SELECT id FROM awa_insert('r2', queue => 'q')) > 0, true, 'another job in q');
SELECT is((SELECT count(*) FROM awa_claim('q', batch => 1)), 1::bigint, 'one job of q runs');
SELECT is(awa_drain_queue('q'), 3::bigint, 'drain cancels the two available jobs and the scheduled one');
SELECT is((SELECT array_agg(state::text ORDER BY state::text) FROM awa.jobs WHERE queue = 'q'),
	ARRAY['cancelled', 'cancelled', 'cancelled', 'failed', 'running'], 'the running and the failed job are left');
SELECT is(pg_temp.drift(), 0::bigint, 'counters equal a recount after the drain');

-- who may DELETE: as on the table, its owner (no role is granted it)
SET LOCAL ROLE awa_admin;
SELECT throws_ok($$DELETE FROM awa.jobs$$, '42501', NULL, 'awa_admin may not DELETE awa.jobs');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
