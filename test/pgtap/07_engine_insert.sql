-- INSERT into the view awa.jobs of a database on the ring engine (src/copy.c, the trigger INSTEAD OF INSERT):
-- a row enqueues a new job, so a column only awa writes (an id, a state other than available or scheduled, an
-- attempt, a lease, an error, a result, a callback, a unique key) is refused with 0A000 naming it, and nothing
-- is enqueued; the job's own fields are taken.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(13);
SET LOCAL awa.install_engine = 'ring';
CREATE EXTENSION awa;

SELECT throws_ok($$INSERT INTO awa.jobs (id, kind) VALUES (900001, 'k')$$, '0A000',
	'awa.jobs: column "id" cannot be written', 'an id: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, state) VALUES ('k', 'running')$$, '0A000',
	'awa.jobs: column "state" cannot be written', 'state running: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, state) VALUES ('k', 'completed')$$, '0A000', NULL,
	'state completed: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, attempt) VALUES ('k', 7)$$, '0A000',
	'awa.jobs: column "attempt" cannot be written', 'an attempt: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, run_lease) VALUES ('k', 3)$$, '0A000', NULL, 'a run_lease: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, errors) VALUES ('k', ARRAY['{"error": "x"}'::jsonb])$$, '0A000', NULL,
	'errors: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, claimed_by, lease) VALUES ('k', 'w', '1 minute')$$, '0A000',
	'awa.jobs: column "claimed_by" cannot be written', 'a worker: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, result) VALUES ('k', '{}')$$, '0A000', NULL, 'a result: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, unique_key) VALUES ('k', '\x00')$$, '0A000', NULL,
	'a unique key: 0A000');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, created_at) VALUES ('k', now() - interval '1 day')$$, '0A000', NULL,
	'a creation time other than now: 0A000');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'nothing was enqueued');

SELECT lives_ok($$INSERT INTO awa.jobs (kind, args, queue, priority, max_attempts, run_at, tags, metadata, timeout,
	group_id, concurrency_key, state, attempt, run_lease, errors, created_at)
	VALUES ('k', '{"a": 1}', 'vq', 3, 5, now() - interval '1 minute', '{t}', '{"m": 1}', '1 hour', 'g', 'c',
	'available', 0, 0, '{}', now())$$, 'the job''s fields, and the defaults written out, are taken');
SELECT is((SELECT row(kind, args, queue, priority, max_attempts, tags, metadata, timeout, group_id, concurrency_key,
	state)::text FROM awa.jobs), '(k,"{""a"": 1}",vq,3,5,{t},"{""m"": 1}",01:00:00,g,c,available)',
	'the job, as inserted');

SELECT * FROM finish();
ROLLBACK;
