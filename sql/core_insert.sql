-- awa_insert: the happy paths and every bad input.
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- defaults: available now, default queue, priority 2, 25 attempts
SELECT kind, queue, args, state, priority, attempt, max_attempts, tags, metadata, run_lease, errors
  FROM awa_insert('send_email', '{"to": "a@example.com"}');
SELECT run_at = now() AS run_at_now, created_at = now() AS created_now,
       finalized_at IS NULL AND heartbeat_at IS NULL AS no_times
  FROM awa_insert('send_email');
-- named arguments, scheduled in the future
SELECT kind, queue, state, priority, run_at > now() AS in_future
  FROM awa_insert('report', '{}', queue => 'reports', priority => 1, run_at => now() + interval '1 hour');
SELECT kind, state, max_attempts, tags, metadata
  FROM awa_insert(kind => 'tagged', tags => ARRAY['a', 'b'], metadata => '{"tenant": 7}', max_attempts => 1);
-- run_at in the past: available, run_at kept
SELECT state, run_at = '2020-01-01' AS kept FROM awa_insert('late', run_at => '2020-01-01');
-- args may be an array
SELECT args, state FROM awa_insert('arr', '[1, 2, 3]');
-- boundaries that are allowed
SELECT priority FROM awa_insert('p', priority => 4);
SELECT max_attempts FROM awa_insert('m', max_attempts => 1000);
SELECT length(kind) FROM awa_insert(repeat('k', 200));
SELECT length(queue) FROM awa_insert('q', queue => repeat('é', 200));
SELECT cardinality(tags) FROM awa_insert('t', tags => array_fill('x'::text, ARRAY[20]));
-- the composite can be used without FROM
SELECT (awa_insert('plain')).state;
SELECT count(*) FROM awa.jobs;

-- bad input: each an error, nothing written
SELECT awa_insert('');
SELECT awa_insert(repeat('k', 201));
SELECT awa_insert('k', queue => '');
SELECT awa_insert('k', queue => repeat('q', 201));
SELECT awa_insert('k', priority => 0);
SELECT awa_insert('k', priority => 5);
SELECT awa_insert('k', max_attempts => 0);
SELECT awa_insert('k', max_attempts => 1001);
SELECT awa_insert('k', tags => array_fill('x'::text, ARRAY[21]));
SELECT awa_insert('k', tags => ARRAY['a', NULL]);
SELECT awa_insert('k', tags => ARRAY['']);
SELECT awa_insert('k', tags => ARRAY[['a'], ['b']]);
SELECT awa_insert('k', '"scalar"');
SELECT awa_insert('k', '42');
SELECT awa_insert('k', 'null');
SELECT awa_insert('k', metadata => '[]');
SELECT awa_insert(NULL);
SELECT awa_insert('k', NULL);
SELECT awa_insert('k', queue => NULL);
SELECT awa_insert('k', priority => NULL);
SELECT awa_insert('k', max_attempts => NULL);
SELECT awa_insert('k', tags => NULL);
SELECT awa_insert('k', metadata => NULL);
-- size limit: awa.max_args_bytes (superuser setting), SQLSTATE 54000
SET awa.max_args_bytes = '2kB';
SELECT awa_insert('k', jsonb_build_object('blob', repeat('x', 3000)));
SELECT awa_insert('k', metadata => jsonb_build_object('blob', repeat('x', 3000)));
SELECT length(args->>'blob') FROM awa_insert('k', jsonb_build_object('blob', repeat('x', 1000)));
RESET awa.max_args_bytes;
SELECT awa_insert('k', jsonb_build_object('blob', repeat('x', 1100000)));
SELECT count(*) FROM awa.jobs;

-- transactional: a rolled-back insert leaves nothing
BEGIN;
SELECT state FROM awa_insert('rolled_back');
ROLLBACK;
SELECT count(*) FROM awa.jobs WHERE kind = 'rolled_back';

-- transaction control inside procedures and DO blocks: each COMMIT keeps its
-- jobs, each ROLLBACK drops its own (the direct insert path closes its
-- relations under the right resource owner at every COMMIT)
DO $$ BEGIN FOR i IN 1..3 LOOP PERFORM awa_insert('in_do', args => jsonb_build_object('i', i)); COMMIT; END LOOP; END $$;
CREATE PROCEDURE enqueue_in_steps() LANGUAGE plpgsql AS $$
BEGIN
	PERFORM awa_insert('in_proc', args => '{"step": 1}');
	COMMIT;
	PERFORM awa_insert('in_proc', args => '{"step": 2}');
	ROLLBACK;
	PERFORM * FROM awa_insert_many('[{"kind": "in_proc", "args": {"step": 3}}, {"kind": "in_proc", "args": {"step": 3}}]');
	COMMIT;
	PERFORM awa_insert('in_proc', args => '{"step": 4}');
END $$;
CALL enqueue_in_steps();
SELECT kind, args FROM awa.jobs WHERE kind IN ('in_do', 'in_proc') ORDER BY id;
DROP PROCEDURE enqueue_in_steps();

-- run_at must be finite, on every enqueue path; nothing is written
SELECT count(*) AS jobs_before FROM awa.jobs \gset
SELECT awa_insert('k', run_at => '-infinity');
SELECT awa_insert('k', run_at => 'infinity');
SELECT * FROM awa_insert_many('[{"kind": "k"}, {"kind": "k", "run_at": "infinity"}]');
INSERT INTO awa.jobs (kind, run_at) VALUES ('k', '-infinity');
SELECT count(*) = :jobs_before AS nothing_written FROM awa.jobs;

-- NOTIFY is tested in test/isolation/specs/notify.spec (output names no pids there)
DROP EXTENSION awa;

-- awa.jobs created in a savepoint that is rolled back after an insert: the direct insert path lets go of the
-- relation before it goes (no "cannot remove relcache entry" warning), and the next awa.jobs is written
BEGIN;
SAVEPOINT s;
CREATE EXTENSION awa;
SELECT count(*) FROM awa_insert('k');
ROLLBACK TO s;
CREATE EXTENSION awa;
SELECT count(*) FROM awa_insert('k');
SELECT count(*) FROM awa.jobs;
ROLLBACK;
