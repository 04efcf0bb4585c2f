-- Groups: a job's group id (awa_insert, awa_insert_many, INSERT/COPY), awa_group_stats, and the finish
-- callback of awa_group_on_finish (enqueued once when every job of the group has finished).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(48);

-- schema, signatures and markings
SELECT has_column('awa', 'jobs', 'group_id', 'awa.jobs has group_id');
SELECT col_type_is('awa', 'jobs', 'group_id', 'text', 'group_id is text');
SELECT col_is_null('awa', 'jobs', 'group_id', 'group_id is nullable');
-- (the table's index of a group's jobs by state: 06_deps_groups_table.sql)
SELECT has_table('awa', 'group_callbacks', 'awa.group_callbacks');
SELECT function_returns('public', 'awa_group_stats', ARRAY['text'], 'setof record');
SELECT volatility_is('public', 'awa_group_stats', ARRAY['text'], 'stable');
SELECT function_returns('public', 'awa_group_on_finish',
	ARRAY['text', 'text', 'jsonb', 'text', 'integer', 'integer', 'jsonb'], 'bigint');
SELECT volatility_is('public', 'awa_group_on_finish',
	ARRAY['text', 'text', 'jsonb', 'text', 'integer', 'integer', 'jsonb'], 'volatile');
SELECT is_definer('public', 'awa_group_on_finish',
	ARRAY['text', 'text', 'jsonb', 'text', 'integer', 'integer', 'jsonb'], 'awa_group_on_finish runs as the owner');

-- every way of enqueueing takes a group id
SELECT is((SELECT group_id FROM awa_insert('k', queue => 'gq', group_id => 'g1')), 'g1', 'awa_insert: group_id');
SELECT is((SELECT group_id FROM awa_insert('k', queue => 'gq')), NULL, 'awa_insert: no group by default');
SELECT is((SELECT array_agg(group_id ORDER BY id)::text FROM awa_insert_many(
	'[{"kind": "k", "queue": "gq", "group_id": "g1"}, {"kind": "k", "queue": "gq", "group_id": null},
	  {"kind": "k", "queue": "gq", "group_id": "g2", "unique_by_args": true}]')),
	'{g1,NULL,g2}', 'awa_insert_many: group_id per element (also a unique job), null for none');
INSERT INTO awa.jobs (kind, queue, group_id) VALUES ('k', 'gq', 'g1');
SELECT is((SELECT count(*)::int FROM awa.jobs WHERE group_id = 'g1'), 3, 'INSERT/COPY into awa.jobs: group_id');

-- bad group ids: 22023 naming the field, and nothing written
SELECT throws_ok($$SELECT awa_insert('k', group_id => '')$$, '22023',
	'group_id must be 1 to 200 characters long, got 0', 'awa_insert: empty group_id 22023');
SELECT throws_ok($$SELECT awa_insert('k', group_id => repeat('g', 201))$$, '22023',
	'group_id must be 1 to 200 characters long, got 201', 'awa_insert: long group_id 22023');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "k"}, {"kind": "k", "group_id": ""}]')$$, '22023',
	'jobs[1]: group_id must be 1 to 200 characters long, got 0', 'awa_insert_many: element named');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "k", "group_id": 7}]')$$, '22023', NULL,
	'awa_insert_many: a group_id that is not a string 22023');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, group_id) VALUES ('k', '')$$, '22023',
	'group_id must be 1 to 200 characters long, got 0', 'INSERT: empty group_id 22023');
SELECT throws_ok($$SELECT * FROM awa_group_stats(NULL)$$, '22004', NULL, 'awa_group_stats NULL: 22004');
SELECT throws_ok($$SELECT * FROM awa_group_stats('')$$, '22023',
	'group_id must be 1 to 200 characters long, got 0', 'awa_group_stats empty: 22023');
SELECT throws_ok($$SELECT awa_group_on_finish(repeat('g', 201), 'done')$$, '22023',
	'group_id must be 1 to 200 characters long, got 201', 'awa_group_on_finish long group_id: 22023');
SELECT throws_ok($$SELECT awa_group_on_finish('g9', 'done', priority => 9)$$, '22023',
	'priority must be between 1 and 4, got 9', 'awa_group_on_finish bad priority: 22023');
SELECT throws_ok($$SELECT awa_group_on_finish('g9', 'done', '1')$$, '22023', NULL,
	'awa_group_on_finish scalar args: 22023');
SELECT throws_ok($$SELECT awa_group_on_finish('g9', NULL)$$, '22004', NULL, 'awa_group_on_finish NULL kind: 22004');
SELECT is((SELECT count(*)::int FROM awa.jobs WHERE group_id IS NOT NULL AND group_id NOT IN ('g1', 'g2')), 0,
	'bad calls wrote no job');
SELECT is((SELECT count(*)::int FROM awa.group_callbacks), 0, 'bad calls registered no callback');
SELECT isnt(awa_group_on_finish('g9', 'g9_done'), NULL,
	'... on either engine: g9 takes its first callback now (enqueued at once: g9 has no job)');

-- stats: by state, at the caller's snapshot
SELECT is((SELECT (total, available, unfinished, callback_job_id)::text FROM awa_group_stats('g1')),
	'(3,3,3,)', 'stats of a group: 3 available, none finished, no callback');
SELECT is((SELECT (total, unfinished)::text FROM awa_group_stats('nobody')), '(0,0)', 'an unknown group: zeros');

-- the callback: registered while jobs are unfinished, enqueued when the last finishes
SELECT is(awa_group_on_finish('g1', 'batch_done', '{"report": true}', queue => 'cbq', priority => 1), NULL,
	'a group with unfinished jobs: the callback waits (NULL)');
SELECT throws_ok($$SELECT awa_group_on_finish('g1', 'again')$$, '42710', 'group "g1" has a finish callback already',
	'one callback per group: 42710');
SELECT is((SELECT count(*)::int FROM awa_claim('gq', 'w', 10)), 6, 'claim the jobs');
SELECT ok(awa_complete(id, run_lease), 'complete one') FROM awa.jobs WHERE group_id = 'g1' ORDER BY id LIMIT 1;
SELECT is((SELECT awa_fail(id, run_lease, 'no', terminal => true)::text FROM awa.jobs
	WHERE group_id = 'g1' AND state = 'running' ORDER BY id LIMIT 1), 'failed', 'fail one for good');
SELECT is((SELECT count(*)::int FROM awa.jobs WHERE kind = 'batch_done'), 0, 'not yet: one job is still running');
SELECT is((SELECT (running, completed, failed, unfinished)::text FROM awa_group_stats('g1')), '(1,1,1,1)',
	'stats: one running, one completed, one failed');
SELECT is((awa_cancel(id)).state, 'cancelled', 'cancel the last') FROM awa.jobs WHERE group_id = 'g1' AND state = 'running';
SELECT is((SELECT (kind, queue, priority, args, metadata)::text FROM awa.jobs WHERE kind = 'batch_done'),
	'(batch_done,cbq,1,"{""report"": true}","{""finished_group"": ""g1""}")',
	'the last job finished: the callback job is enqueued with its fields and finished_group');
SELECT is((SELECT (unfinished, callback_job_id = (SELECT id FROM awa.jobs WHERE kind = 'batch_done'),
	finished_at IS NOT NULL)::text FROM awa_group_stats('g1')), '(0,t,t)', 'stats name the callback job');
SELECT ok(awa_complete(id, run_lease), 'another group''s job completes') FROM awa.jobs WHERE group_id = 'g2';
SELECT is((SELECT count(*)::int FROM awa.jobs WHERE kind = 'batch_done'), 1, 'the callback is enqueued once');

-- a group with nothing unfinished: enqueued at once; deleting a group's last unfinished job finishes it
SELECT isnt(awa_group_on_finish('g2', 'g2_done'), NULL, 'a finished group: the callback is enqueued at once');
SELECT is((SELECT callback_job_id FROM awa_group_stats('g2')), (SELECT id FROM awa.jobs WHERE kind = 'g2_done'),
	'... and its id returned and recorded');
SELECT is((SELECT group_id FROM awa_insert('k', group_id => 'g3')), 'g3', 'a job of g3');
SELECT is(awa_group_on_finish('g3', 'g3_done'), NULL, 'g3 waits');
DELETE FROM awa.jobs WHERE group_id = 'g3';
SELECT is((SELECT count(*)::int FROM awa.jobs WHERE kind = 'g3_done'), 1, 'deleting its last unfinished job finishes g3');

-- privileges: a producer may use groups, a worker may not register callbacks
SET LOCAL ROLE awa_producer;
SELECT is((SELECT total FROM awa_group_stats('g1')), 3::bigint, 'a producer reads group stats');
RESET ROLE;
SET LOCAL ROLE awa_worker;
SELECT throws_ok($$SELECT awa_group_on_finish('g4', 'x')$$, '42501', NULL, 'a worker may not register a group callback');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
