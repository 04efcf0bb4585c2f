-- awa_list_jobs on the ring engine (src/engine_admin.c, awa_engine_list_jobs; docs/storage.md, "Step 5: reading
-- the ring's view fast"): a page comes from candidates taken by the index of the relation that holds the state
-- asked for, in batches below a cursor, and must be exactly what a read of the view gives: the lim newest jobs
-- below before_id matching every filter, each row as awa.jobs shows it.  Checked over every combination of
-- state (none and each of the 8), kind, queue, tag, before_id and a limit smaller than a batch (several batches)
-- or larger than the jobs, on jobs in every state the ring holds.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT plan(9);

SET LOCAL awa.install_engine = 'ring';
CREATE EXTENSION awa;
SELECT is((SELECT relkind::text FROM pg_class WHERE oid = 'awa.jobs'::regclass), 'v', 'awa.jobs is the ring''s view');

-- 400 jobs: scheduled, available, running, completed, failed, retryable, cancelled (drained), and a retry
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k' || (i % 3),
		'queue', 'q' || (i % 4), 'args', jsonb_build_object('n', i), 'priority', 1 + i % 4,
		'run_at', CASE WHEN i % 20 = 0 THEN now() + interval '1 day' END,
		'tags', CASE WHEN i % 10 = 0 THEN '["t"]'::jsonb ELSE '[]'::jsonb END))
	FROM generate_series(1, 400) i))), 400::bigint, '400 jobs');
CREATE TEMP TABLE c AS SELECT id, run_lease FROM awa_claim(ARRAY['q0', 'q1', 'q2'], batch => 250);
SELECT is(awa_complete_many((SELECT array_agg(id) FROM c WHERE id % 10 < 6), (SELECT array_agg(run_lease) FROM c
	WHERE id % 10 < 6)), (SELECT count(*) FROM c WHERE id % 10 < 6), 'some completed');
SELECT is((SELECT count(awa_fail(id, run_lease, 'boom', terminal => id % 2 = 0, retry_in => interval '1 hour'))
	FROM c WHERE id % 10 IN (6, 7)), (SELECT count(*) FROM c WHERE id % 10 IN (6, 7)), 'some failed, some retryable');
SELECT ok(awa_drain_queue('q3') > 0, 'queue q3 drained: cancelled jobs');
SELECT is((SELECT string_agg(DISTINCT state::text, ',' ORDER BY state::text) FROM awa.jobs),
	'available,cancelled,completed,failed,retryable,running,scheduled', 'jobs in seven states');

CREATE TEMP TABLE combos AS
SELECT s::awa.job_state AS state, k AS kind, q AS queue, t AS tag, b AS before_id, l AS lim
FROM unnest(ARRAY[NULL, 'scheduled', 'available', 'running', 'completed', 'retryable', 'failed', 'cancelled',
		'waiting_external']) s,
	unnest(ARRAY[NULL, 'k1']) k, unnest(ARRAY[NULL, 'q0', 'q3']) q, unnest(ARRAY[NULL, 't']) t,
	unnest(ARRAY[NULL, (SELECT min(id) + 300 FROM awa.jobs)]) b, unnest(ARRAY[3, 1000]) l;
SELECT is((SELECT count(*) FROM combos c
	WHERE (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id DESC), '[]')
			FROM awa_list_jobs(c.state, c.kind, c.queue, c.tag, c.before_id, c.lim) x)
		IS DISTINCT FROM (SELECT coalesce(jsonb_agg(to_jsonb(y) ORDER BY y.id DESC), '[]') FROM (SELECT * FROM awa.jobs j
			WHERE (c.state IS NULL OR j.state = c.state) AND (c.kind IS NULL OR j.kind = c.kind)
			AND (c.queue IS NULL OR j.queue = c.queue) AND (c.tag IS NULL OR j.tags @> ARRAY[c.tag])
			AND (c.before_id IS NULL OR j.id < c.before_id) ORDER BY j.id DESC LIMIT c.lim) y)), 0::bigint,
	'every one of 432 pages equals the view''s rows for the same filters, in the same order');

-- 250 newer jobs, all available: a page of another state now needs more than one batch of candidates
SELECT is((SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k1', 'queue', 'q0'))
	FROM generate_series(1, 250)))), 250::bigint, '250 newer available jobs');
SELECT is((SELECT count(*) FROM unnest(ARRAY[NULL, 'running', 'completed', 'retryable', 'failed', 'cancelled',
		'scheduled']::awa.job_state[]) s
	WHERE (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.id DESC), '[]') FROM awa_list_jobs(s, lim => 3) x)
		IS DISTINCT FROM (SELECT coalesce(jsonb_agg(to_jsonb(y) ORDER BY y.id DESC), '[]') FROM (SELECT * FROM awa.jobs j
			WHERE (s IS NULL OR j.state = s) ORDER BY j.id DESC LIMIT 3) y)), 0::bigint,
	'pages of 3 of each state past the newer jobs equal the view''s');

SELECT * FROM finish();
ROLLBACK;
