-- Hostile objects in the caller's search_path and hostile strings change
-- nothing: every awa_* function pins search_path and builds no SQL from
-- values.  Planted first, before this session prepares any of awa's plans.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(15);

CREATE SCHEMA evil;
CREATE TABLE evil.calls (what text);
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN INSERT INTO evil.calls VALUES ('texteq'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE FUNCTION evil.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	$$ BEGIN INSERT INTO evil.calls VALUES ('int8eq'); RETURN true; END $$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq);
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION evil.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS
	$$ BEGIN INSERT INTO evil.calls VALUES ('unnest'); RETURN; END $$;
SET LOCAL search_path = evil, public, pg_catalog;

SELECT is((SELECT run_at > '2020-01-01' FROM awa_insert('k', queue => 'h')), true, 'insert: the real now()');
SELECT is((SELECT count(*) FROM awa_claim('h', batch => 5)), 1::bigint, 'claim finds the job');
SELECT ok(awa_complete((SELECT max(id) FROM awa.jobs), 1), 'complete with the right lease');
SELECT ok(NOT awa_complete((SELECT max(id) FROM awa.jobs), 999), 'a wrong lease is still wrong');
SELECT is(awa_complete_many(ARRAY[(SELECT max(id) FROM awa.jobs)], ARRAY[1::bigint]), 0::bigint, 'complete_many: nothing left');
SELECT is((SELECT completed_last_hour FROM awa_queue_stats() WHERE queue = 'h'), 1::bigint, 'stats');
SELECT is((SELECT count(*) FROM awa_list_jobs(queue => 'h')), 1::bigint, 'list_jobs');
SELECT is((SELECT max_running FROM awa_set_queue_limit('hl', 1)), 1, 'set a queue limit');
SELECT is((SELECT count(*) FROM (SELECT awa_insert('k', queue => 'hl') FROM generate_series(1, 2)) s), 2::bigint, 'two jobs for the limited queue');
SELECT is((SELECT count(*) FROM awa_claim('hl', batch => 5)), 1::bigint, 'claim from a limited queue: one');
SELECT is((SELECT count(*) FROM evil.calls), 0::bigint, 'no hostile object was called');

-- hostile strings are data
SELECT is((SELECT kind FROM awa_insert($$x'); DROP TABLE awa.jobs; --$$, queue => $$q"; DROP TABLE awa.jobs; --$$,
	tags => ARRAY[$$t'); DELETE FROM awa.jobs; --$$])), $$x'); DROP TABLE awa.jobs; --$$, 'kind stored verbatim');
SELECT is((SELECT count(*) FROM awa_claim($$q"; DROP TABLE awa.jobs; --$$)), 1::bigint, 'claim by that queue name');
SELECT is((SELECT count(*) FROM awa_list_jobs(tag => $$t'); DELETE FROM awa.jobs; --$$)), 1::bigint, 'list by that tag');
SELECT has_relation('awa', 'jobs', 'awa.jobs is still there');

SELECT * FROM finish();
ROLLBACK;
