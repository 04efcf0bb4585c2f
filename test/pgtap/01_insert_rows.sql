-- The row awa_insert and awa_insert_many return is the job's row in awa.jobs, column for column, whatever the
-- arguments: plain, due later, every optional field, unique (new and held), with parents, several at once.
-- (On the ring engine the returned row of a new job is built from its arguments, not read back: this holds
-- the two to the same answer.)
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(9);

CREATE TEMP TABLE got AS SELECT * FROM awa.jobs WITH NO DATA;
CREATE FUNCTION pg_temp.same(label text) RETURNS text LANGUAGE sql AS $$
	SELECT is((SELECT count(*) FROM got g WHERE g.kind = label
		AND (SELECT j FROM awa.jobs j WHERE j.id = g.id)::text IS NOT DISTINCT FROM g::text), 1::bigint,
		label || ': the returned row is the job''s row in awa.jobs')
$$;

INSERT INTO got SELECT * FROM awa_insert('plain');
SELECT pg_temp.same('plain');
INSERT INTO got SELECT * FROM awa_insert('later', run_at => now() + interval '1 day');
SELECT pg_temp.same('later');
INSERT INTO got SELECT * FROM awa_insert('full', '{"a": [1, 2]}', queue => 'rows_q', priority => 4, max_attempts => 3,
	run_at => now() - interval '1 minute', tags => ARRAY['t1', 't2'], metadata => '{"m": true}',
	timeout => interval '90 seconds', group_id => 'rows_g', concurrency_key => 'rows_k');
SELECT pg_temp.same('full');
INSERT INTO got SELECT * FROM awa_insert('uniq', '{"u": 1}', unique_by_args => true,
	unique_states => ARRAY['scheduled', 'available', 'running', 'retryable', 'waiting_external', 'completed']::awa.job_state[]);
SELECT pg_temp.same('uniq');
INSERT INTO got SELECT * FROM awa_insert('uniq', '{"u": 1}', unique_by_args => true,
	unique_states => ARRAY['scheduled', 'available', 'running', 'retryable', 'waiting_external', 'completed']::awa.job_state[]);
SELECT is((SELECT count(DISTINCT id) FROM got WHERE kind = 'uniq'), 1::bigint, 'a held unique key returns its holder');
SELECT is((SELECT count(*) FROM got g WHERE g.kind = 'uniq'
	AND (SELECT j FROM awa.jobs j WHERE j.id = g.id)::text = g::text), 2::bigint,
	'uniq, held: the returned row is the holder''s row in awa.jobs');
INSERT INTO got SELECT * FROM awa_insert('child', after => ARRAY[(SELECT id FROM got WHERE kind = 'plain')]);
SELECT pg_temp.same('child');
INSERT INTO got SELECT * FROM awa_insert_many('[{"kind": "many", "args": {"n": 1}},
	{"kind": "many", "args": {"n": 2}, "run_at": "2999-01-01T00:00:00Z", "tags": ["x"]}]');
SELECT is((SELECT count(*) FROM got g WHERE g.kind = 'many'
	AND (SELECT j FROM awa.jobs j WHERE j.id = g.id)::text = g::text), 2::bigint,
	'awa_insert_many: each returned row is the job''s row in awa.jobs');
SELECT is((SELECT array_agg(state::text ORDER BY args->>'n') FROM got WHERE kind = 'many'),
	ARRAY['available', 'scheduled'], 'awa_insert_many: due now available, due later scheduled');

SELECT * FROM finish();
ROLLBACK;
