-- Many jobs at once on the ring engine (docs/storage.md, "Step 5: DELETE and retry of many jobs on the default
-- storage").  awa_retry_failed returns the rows of 1,200 retried jobs, read 500 per statement (src/engine.c), in
-- id order, each as awa.jobs shows it.
-- DELETE of the view awa.jobs deletes its jobs together at the statement's end (src/engine_admin.c): the INSTEAD
-- OF DELETE row trigger
-- notes the ids, the AFTER DELETE statement trigger deletes them.  One statement over jobs in every state, a DELETE
-- of awa.jobs nested in another, and a DELETE cut short by an error caught in a PL/pgSQL block (its noted jobs stay,
-- and the DELETE it ran inside deletes only its own).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(23);

SET LOCAL awa.install_engine = 'ring';
CREATE EXTENSION awa;
SELECT has_trigger('awa', 'jobs', 'jobs_delete_begin', 'the view has a BEFORE DELETE statement trigger');
SELECT has_trigger('awa', 'jobs', 'jobs_delete_end', 'the view has an AFTER DELETE statement trigger');
CREATE FUNCTION pg_temp.drift() RETURNS bigint LANGUAGE sql AS
	$$SELECT count(*) FROM awa.ring_recount() WHERE counted IS DISTINCT FROM recounted$$;

-- 300 jobs of kind m in six states: 100 completed, 50 failed, 50 running, 50 available, 50 scheduled
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'm', 'queue', 'mq',
	'max_attempts', 1, 'run_at', CASE WHEN i > 250 THEN '2099-01-01' END)) FROM generate_series(1, 300) i))),
	300::bigint, '300 jobs');
SELECT is((SELECT count(awa_complete(id, run_lease)) FROM awa_claim('mq', batch => 100)), 100::bigint, '100 completed');
SELECT is((SELECT count(awa_fail(id, run_lease, 'x')) FROM awa_claim('mq', batch => 50)), 50::bigint, '50 failed');
SELECT is((SELECT count(*) FROM awa_claim('mq', batch => 50)), 50::bigint, '50 running');
SELECT is((SELECT array_agg(state::text || ':' || n ORDER BY state::text) FROM
	(SELECT state, count(*) AS n FROM awa.jobs WHERE kind = 'm' GROUP BY state) s),
	ARRAY['available:50', 'completed:100', 'failed:50', 'running:50', 'scheduled:50'], '... in five states');
WITH d AS (DELETE FROM awa.jobs WHERE kind = 'm' RETURNING id) SELECT is((SELECT count(*) FROM d), 300::bigint,
	'one DELETE of the 300 returns them all');
SELECT is((SELECT count(*) FROM awa.jobs WHERE kind = 'm'), 0::bigint, '... they are gone');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');

-- a DELETE of awa.jobs run by a function that a DELETE of awa.jobs calls: each deletes its own jobs
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "outer", "queue": "nq"}, {"kind": "outer", "queue": "nq"},
	{"kind": "inner", "queue": "nq"}]')), 3::bigint, 'two outer jobs, one inner');
CREATE FUNCTION pg_temp.delete_inner() RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN DELETE FROM awa.jobs WHERE kind = 'inner'; RETURN true; END$$;
DELETE FROM awa.jobs WHERE kind = 'outer' AND pg_temp.delete_inner();
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'nq'), 0::bigint, 'the nested DELETE and the outer one: all three gone');

-- a DELETE cut short by an error, caught: its jobs stay, also when it ran inside another DELETE (whose rows
-- after it are its own)
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "x", "queue": "eq"}, {"kind": "x", "queue": "eq"},
	{"kind": "y", "queue": "eq"}]')), 3::bigint, 'two x jobs, one y');
CREATE FUNCTION pg_temp.boom(id bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF id = (SELECT max(j.id) FROM awa.jobs j WHERE j.kind = 'x') THEN
		RAISE EXCEPTION 'boom';
	END IF;
	RETURN true;
END $$;
CREATE FUNCTION pg_temp.delete_x() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM awa.jobs WHERE kind = 'x' AND pg_temp.boom(id);
	RETURN 'deleted';
EXCEPTION WHEN raise_exception THEN
	RETURN SQLERRM;
END $$;
SELECT is(pg_temp.delete_x(), 'boom', 'the DELETE of the x jobs fails at its second row, the error caught');
SELECT is((SELECT array_agg(kind ORDER BY id) FROM awa.jobs WHERE queue = 'eq'), ARRAY['x', 'x', 'y'],
	'... the x jobs are there');
DELETE FROM awa.jobs WHERE kind = 'y' AND pg_temp.delete_x() = 'boom';
SELECT is((SELECT array_agg(kind ORDER BY id) FROM awa.jobs WHERE queue = 'eq'), ARRAY['x', 'x'],
	'a DELETE of the y job whose condition runs that failing DELETE: the y job goes, both x jobs stay');
SELECT is(pg_temp.drift(), 0::bigint, '... the counters equal a recount');

-- awa_retry_failed of 1,200 jobs: three statements read their rows
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'r', 'queue', 'rq',
	'max_attempts', 1, 'args', jsonb_build_object('n', i))) FROM generate_series(1, 1200) i))), 1200::bigint, '1,200 jobs');
SELECT is((SELECT count(awa_fail(id, run_lease, 'x')) FROM awa_claim('rq', batch => 1000))
	+ (SELECT count(awa_fail(id, run_lease, 'x')) FROM awa_claim('rq', batch => 1000)), 1200::bigint, '... all failed');
CREATE TEMP TABLE retried ON COMMIT DROP AS SELECT row_number() OVER () AS o, r.* FROM awa_retry_failed('r') r;
SELECT is((SELECT array_agg(id ORDER BY o) FROM retried), (SELECT array_agg(id ORDER BY id) FROM awa.jobs WHERE kind = 'r'),
	'awa_retry_failed returns the 1,200 jobs, in id order');
SELECT is((SELECT count(*) FROM retried r JOIN awa.jobs j USING (id) WHERE to_jsonb(j) = to_jsonb(r) - 'o'
	AND j.state = 'available' AND cardinality(j.errors) = 1), 1200::bigint, '... each row as awa.jobs shows it: available, its error kept');

-- the statement trigger's function refuses any other use (39P01), and the statement it was attached to changes nothing
CREATE TEMP TABLE not_jobs (n int);
CREATE TRIGGER not_jobs_row BEFORE INSERT ON not_jobs FOR EACH ROW EXECUTE FUNCTION awa.jobs_delete_statement();
SELECT throws_ok($$INSERT INTO not_jobs VALUES (1)$$, '39P01', NULL,
	'awa.jobs_delete_statement() as a row trigger of an INSERT: 39P01');
SELECT is((SELECT count(*) FROM not_jobs), 0::bigint, '... nothing inserted');

SELECT * FROM finish();
ROLLBACK;
