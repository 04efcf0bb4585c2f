-- awa_group_callback: the finish callback registered for a group (awa_group_on_finish), before and after
-- it is enqueued.  Runs on both engines (listed in on_table.txt).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(16);

SELECT function_returns('public', 'awa_group_callback', ARRAY['text'], 'setof record');
SELECT volatility_is('public', 'awa_group_callback', ARRAY['text'], 'stable');
SELECT is_definer('public', 'awa_group_callback', ARRAY['text'], 'awa_group_callback runs as the owner');

-- bad group ids: 22004 / 22023 naming the field
SELECT throws_ok($$SELECT * FROM awa_group_callback(NULL)$$, '22004', NULL, 'NULL group_id: 22004');
SELECT throws_ok($$SELECT * FROM awa_group_callback('')$$, '22023',
	'group_id must be 1 to 200 characters long, got 0', 'empty group_id: 22023');
SELECT throws_ok($$SELECT * FROM awa_group_callback(repeat('g', 201))$$, '22023',
	'group_id must be 1 to 200 characters long, got 201', 'long group_id: 22023');

-- no callback: no row (also for a group with jobs)
SELECT is((SELECT count(*) FROM awa_group_callback('nobody')), 0::bigint, 'a group nobody named: no row');
SELECT (awa_insert('part', queue => 'gq', group_id => 'g1')).id AS g1_part \gset
SELECT is((SELECT count(*) FROM awa_group_callback('g1')), 0::bigint, 'a group without a callback: no row');

-- registered while a job is unfinished: the fields as given, not enqueued yet
SELECT is(awa_group_on_finish('g1', 'batch_done', '{"report": true}', queue => 'cbq', priority => 1,
	max_attempts => 3, metadata => '{"by": "tap"}'), NULL, 'g1 waits for its job');
SELECT is((SELECT row(kind, args, queue, priority, max_attempts, metadata)::text FROM awa_group_callback('g1')),
	row('batch_done', '{"report": true}'::jsonb, 'cbq', 1::smallint, 3::smallint, '{"by": "tap"}'::jsonb)::text,
	'the callback as registered');
SELECT is((SELECT registered_at FROM awa_group_callback('g1')), now(), 'registered now');
SELECT is((SELECT row(callback_job_id, finished_at)::text FROM awa_group_callback('g1')), row(NULL, NULL)::text,
	'no job and no finish time while the group is unfinished');

-- the group finishes: the callback's job id and time, as awa_group_stats gives them
SELECT id AS part, run_lease AS lease FROM awa_claim('gq') \gset
SELECT ok(awa_complete(:part, :lease), 'the group''s job completes');
SELECT is((SELECT row(callback_job_id, finished_at)::text FROM awa_group_callback('g1')),
	(SELECT row(callback_job_id, finished_at)::text FROM awa_group_stats('g1')),
	'job id and finish time as awa_group_stats has them');
SELECT is((SELECT kind FROM awa.jobs WHERE id = (SELECT callback_job_id FROM awa_group_callback('g1'))),
	'batch_done', 'that job is the callback');

-- a group finished already: enqueued at once, its id returned
SELECT awa_group_on_finish('g2', 'g2_done') AS g2 \gset
SELECT is((SELECT callback_job_id FROM awa_group_callback('g2')), :g2::bigint,
	'registered on a finished group: the id awa_group_on_finish returned');

SELECT * FROM finish();
ROLLBACK;
