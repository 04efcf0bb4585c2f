-- Unique jobs on the table engine (the rest: unique.sql, on the default ring).
-- On the table engine (awa.install_engine = table): a job enqueued before 0.3.0 exists only in a table (its
-- old key is written into awa.jobs here; the ring's view takes no unique key), and the table's own constraint on
-- a row written directly.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- a job enqueued before 0.3.0 holds the key of its args as written (here
-- {"n": 5.0}, key built the old way): an insert of the same args finds it
INSERT INTO awa.jobs (kind, args, unique_key, unique_states)
VALUES ('num', '{"n": 5.0}', sha256('\x6e756d0000'::bytea || convert_to('{"n": 5.0}', 'UTF8') || '\x00'::bytea), B'11111001')
RETURNING id AS legacy_id \gset
SELECT id = :legacy_id AS found_old_job FROM awa_insert('num', '{"n": 5.0}', unique_by_args => true);
SELECT id = :legacy_id AS found_old_job FROM awa_insert_many('[{"kind": "num", "args": {"n": 5.0}, "unique_by_args": true}]');
SELECT id = :legacy_id AS cancelled_old_job, state FROM awa_cancel_by_unique_key('num', '{"n": 5.0}');
DELETE FROM awa.jobs WHERE kind = 'num';

-- the table refuses such a row written directly, too
\set VERBOSITY terse
INSERT INTO awa.jobs (kind, unique_key, unique_states) VALUES ('d', '\x01', B'00100000');
\set VERBOSITY default

DROP EXTENSION awa;
