-- The ring's claim with priority aging and over several queues (src/ring_claim.c; docs/storage.md, "Step 5:
-- priority aging and several queues on the ring"), in what one transaction can show: the order of
-- awa.priority_aging_interval (effective priority, run_at, id), the same as awa_claim's on awa.jobs for the same
-- jobs; aging off; awa.ring_claim(queues text[], ...) in the single-queue order across its queues, the same as
-- awa_claim(text[], ...); NULL for every queue; duplicates; bad input (22023 naming the field, 22004 for a NULL
-- element, as awa_claim(text[])) changes nothing; the blocking form's several-queue overload with wait 0; a job
-- this transaction wrote behind a floor raised past it (or to the end) by an earlier claim is still claimed.
-- What needs several sessions: test/isolation/specs/ring_claim_*.spec.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(46);

CREATE FUNCTION pg_temp.claim_wait(q text[], b integer DEFAULT 1, wt interval DEFAULT '0')
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE j jsonb;
BEGIN
	CALL awa.ring_claim_wait(q, b, '5 minutes', NULL, wt, j);
	RETURN j;
END $$;
-- the names (args->>'n') of a claim's jobs, in claim order
CREATE FUNCTION pg_temp.ring(q text, b integer DEFAULT 100) RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(c.args->>'n' ORDER BY o), '{}') FROM awa.ring_claim(q, b)
		WITH ORDINALITY c(id, run_lease, attempt, kind, queue, args, priority, run_at, o) $$;
CREATE FUNCTION pg_temp.ring_many(q text[], b integer DEFAULT 100) RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(c.queue || ':' || (c.args->>'n') ORDER BY o), '{}') FROM awa.ring_claim(q, b)
		WITH ORDINALITY c(id, run_lease, attempt, kind, queue, args, priority, run_at, o) $$;
CREATE FUNCTION pg_temp.jobs(q text, b integer DEFAULT 100) RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(c.args->>'n' ORDER BY c.ordinality), '{}') FROM awa_claim(q, batch => b)
		WITH ORDINALITY c $$;
CREATE FUNCTION pg_temp.jobs_many(q text[], b integer DEFAULT 100) RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(c.queue || ':' || (c.args->>'n') ORDER BY c.ordinality), '{}')
		FROM awa_claim(q, batch => b) WITH ORDINALITY c $$;

SELECT ok(to_regprocedure('awa.ring_claim(text[], integer, interval, text)') IS NOT NULL,
	'awa.ring_claim(queues text[], batch, lease, worker) exists');
SELECT ok(to_regprocedure('awa.ring_claim_wait(text[], integer, interval, text, interval, jsonb)') IS NOT NULL,
	'awa.ring_claim_wait(queues text[], ...) exists');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	WHERE p.oid IN ('awa.ring_claim(text[], integer, interval, text)'::regprocedure,
		'awa.ring_claim_wait(text[], integer, interval, text, interval, jsonb)'::regprocedure)
	AND a.grantee <> p.proowner), 0::bigint, 'no role and not PUBLIC may call them');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['a'])$$, '55000', NULL, 'the claim refuses while the ring is off');
SELECT throws_ok($$SELECT pg_temp.claim_wait(ARRAY['a'])$$, '55000', NULL, '... and so does the blocking form');

SET LOCAL awa.ring_engine = on;

-- the same jobs on the ring and in awa.jobs: name, queue, priority, how long they have been due (with aging every
-- 10 s below, each is 7 s or more from its next level: the file's checks hold while it runs slowly on a loaded machine)
CREATE TEMP TABLE spec (n text, q text, p integer, age interval);
INSERT INTO spec VALUES
	('h', 'ag', 1, '50 s'), ('a', 'ag', 4, '35 s'), ('b', 'ag', 3, '25 s'), ('e', 'ag', 2, '15 s'),
	('f', 'ag', 3, '12 s'), ('d', 'ag', 2, '3 s'), ('g', 'ag', 4, '2 s'), ('c', 'ag', 1, '1 s'),
	('m1', 'mb', 3, '100 s'), ('m2', 'mb', 4, '40 s'), ('m3', 'ma', 2, '30 s'), ('m4', 'mb', 2, '3 s'),
	('m5', 'ma', 1, '1 s'), ('m6', 'mc', 2, '4 s');
SELECT is((SELECT count(awa.ring_insert('k', jsonb_build_object('n', n), q, p, run_at => now() - age))
	FROM spec, generate_series(1, 2) k), 28::bigint, 'each job twice on the ring');
SELECT is((SELECT count(awa_insert('k', jsonb_build_object('n', n), q, p, run_at => now() - age)) FROM spec),
	14::bigint, 'and once in awa.jobs');

-- aging: every 10 s due a job gains a level; effective priority, then run_at, then id
SET LOCAL awa.priority_aging_interval = 10;
SAVEPOINT aging;
SELECT is(pg_temp.ring('ag'), ARRAY['h', 'h', 'a', 'a', 'b', 'b', 'e', 'e', 'c', 'c', 'f', 'f', 'd', 'd', 'g', 'g'],
	'aging: h a b e c (level 1), f d (level 2), g (level 4); each pair by id');
SELECT is(pg_temp.jobs('ag'), ARRAY['h', 'a', 'b', 'e', 'c', 'f', 'd', 'g'], 'awa_claim takes them in that order');
ROLLBACK TO aging;
SELECT is(pg_temp.ring('ag', 3) || pg_temp.ring('ag', 3) || pg_temp.ring('ag', 5) || pg_temp.ring('ag', 5),
	ARRAY['h', 'h', 'a', 'a', 'b', 'b', 'e', 'e', 'c', 'c', 'f', 'f', 'd', 'd', 'g', 'g'],
	'the same order across claims of 3, 3, 5 and 5');
SELECT is(pg_temp.ring('ag'), '{}', 'and then nothing');
ROLLBACK TO aging;

-- aging off (0): strict priority order, as before aging
SET LOCAL awa.priority_aging_interval = 0;
SELECT is(pg_temp.ring('ag'), ARRAY['h', 'h', 'c', 'c', 'e', 'e', 'd', 'd', 'b', 'b', 'f', 'f', 'a', 'a', 'g', 'g'],
	'aging off: priority, then run_at');
-- (awa_claim returns a batch taken with aging off in (run_at, id) order: one job per claim shows what it takes)
SELECT is((SELECT array_agg(j ORDER BY i) FROM generate_series(1, 8) i, LATERAL unnest(pg_temp.jobs('ag', 1 + 0 * i)) j),
	ARRAY['h', 'c', 'e', 'd', 'b', 'f', 'a', 'g'], 'awa_claim takes them in that order');
ROLLBACK TO aging;
SET LOCAL awa.priority_aging_interval = 10;

-- several queues: the single-queue order across them; ma and mb, mc not named
SELECT is(pg_temp.ring_many(ARRAY['mb', 'ma']),
	ARRAY['mb:m1', 'mb:m1', 'mb:m2', 'mb:m2', 'ma:m3', 'ma:m3', 'ma:m5', 'ma:m5', 'mb:m4', 'mb:m4'],
	'two queues: m1 m2 m3 m5 (level 1, by run_at), m4 (level 2); queue mc left alone');
SELECT is(pg_temp.jobs_many(ARRAY['mb', 'ma']), ARRAY['mb:m1', 'mb:m2', 'ma:m3', 'ma:m5', 'mb:m4'],
	'awa_claim(text[]) takes them in that order');
ROLLBACK TO aging;
SELECT is(pg_temp.ring_many(ARRAY['ma', 'mb'], 3) || pg_temp.ring_many(ARRAY['ma', 'mb'], 4)
		|| pg_temp.ring_many(ARRAY['ma', 'mb'], 4),
	ARRAY['mb:m1', 'mb:m1', 'mb:m2', 'mb:m2', 'ma:m3', 'ma:m3', 'ma:m5', 'ma:m5', 'mb:m4', 'mb:m4'],
	'the same order across claims of 3, 4 and 4 over two queues');
ROLLBACK TO aging;
SELECT is(pg_temp.ring_many(ARRAY['ma', 'ma', 'ma']), ARRAY['ma:m3', 'ma:m3', 'ma:m5', 'ma:m5'],
	'a queue named three times counts once');
SELECT is(pg_temp.ring_many(ARRAY['nothing', 'here']), '{}', 'queues without jobs: nothing');
ROLLBACK TO aging;
SELECT is(pg_temp.ring_many(NULL, 3), ARRAY['mb:m1', 'mb:m1', 'ag:h'], 'NULL: every queue with rows on the ring');
SELECT is((SELECT count(*) FROM awa.ring_claim(NULL::text[], 1000)), 25::bigint,
	'... all the rest of them, mc too');
ROLLBACK TO aging;

-- bad input: 22023 naming the field (22004 for a NULL element, as awa_claim(text[])), nothing changed
SELECT throws_ok($$SELECT * FROM awa.ring_claim('{}'::text[])$$, '22023', 'queues must name at least one queue',
	'an empty array');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['ma', NULL])$$, '22004',
	'queues must not contain NULL (element 2)', 'a NULL element');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['ma', ''])$$, '22023', 'queues must be 1 to 200 characters long',
	'an empty name');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['ma', repeat('x', 201)])$$, '22023',
	'queues must be 1 to 200 characters long', 'a name too long');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY[['ma'], ['mb']])$$, '22023',
	'queues must be a one-dimensional array, got 2 dimensions', 'two dimensions');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['ma'], 0)$$, '22023', 'batch must be between 1 and 1000', 'batch 0');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['ma'], NULL)$$, '22023', 'batch must not be null', 'batch NULL');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['ma'], 1, '0')$$, '22023', 'lease must be positive', 'lease 0');
SELECT throws_ok($$SELECT * FROM awa.ring_claim(ARRAY['ma'], 1, NULL)$$, '22023', 'lease must not be null', 'lease NULL');
SELECT throws_ok($$SELECT * FROM awa_claim('{}'::text[])$$, '22023', 'queues must name at least one queue',
	'(awa_claim(text[]) refuses an empty array the same way)');
SELECT throws_ok($$SELECT * FROM awa_claim(ARRAY['ma', NULL])$$, '22004', 'queues must not contain NULL (element 2)',
	'(and a NULL element)');
SELECT throws_ok($$SELECT pg_temp.claim_wait('{}')$$, '22023', 'queues must name at least one queue',
	'the blocking form: an empty array');
SELECT throws_ok($$SELECT pg_temp.claim_wait(ARRAY[NULL]::text[])$$, '22004', 'queues must not contain NULL (element 1)',
	'the blocking form: a NULL element');
SELECT throws_ok($$SELECT pg_temp.claim_wait(ARRAY['ma'], 1, '1 s')$$, '25001',
	'awa.ring_claim_wait with a wait must be called outside a transaction block',
	'the blocking form: a wait inside a transaction block');
SELECT is((SELECT count(*) FROM awa.claims), 0::bigint, 'the refused calls wrote no receipt');

-- the blocking form with wait 0: awa.ring_claim(queues text[], ...)
SELECT is((SELECT jsonb_agg((j->>'queue') || ':' || (j->'args'->>'n')) FROM jsonb_array_elements(
		pg_temp.claim_wait(ARRAY['mb', 'ma'], 4)) j),
	'["mb:m1", "mb:m1", "mb:m2", "mb:m2"]'::jsonb, 'wait 0 over two queues claims in the same order');
SELECT is((SELECT jsonb_agg((j->>'queue') || ':' || (j->'args'->>'n')) FROM jsonb_array_elements(
		pg_temp.claim_wait(NULL, 2)) j),
	'["ag:h", "ag:h"]'::jsonb, 'wait 0 over every queue: the next of all of them');
SELECT is(pg_temp.claim_wait(ARRAY['nothing']), NULL, 'nothing to claim: jobs NULL');
ROLLBACK TO aging;

-- the several-queue claim promotes due scheduled rows of its queues first (one statement for all of them)
SELECT is((SELECT count(awa.ring_insert('k', jsonb_build_object('n', n), q, run_at => now() + interval '1 hour'))
	FROM (VALUES ('s1', 'sa'), ('s2', 'sb'), ('s3', 'sb')) v(n, q)), 3::bigint, 'three jobs due later in two queues');
UPDATE awa.scheduled SET run_at = now() - interval '1 minute' WHERE args->>'n' IN ('s2', 's3');
UPDATE awa.scheduled SET run_at = now() - interval '2 minutes' WHERE args->>'n' = 's3';
SELECT is(pg_temp.ring_many(ARRAY['sa', 'sb']), ARRAY['sb:s3', 'sb:s2'],
	'the two now due are promoted and claimed in order; the other waits');
SELECT is((SELECT array_agg(args->>'n') FROM awa.scheduled WHERE queue IN ('sa', 'sb')), ARRAY['s1'],
	'it is still scheduled');
ROLLBACK TO aging;

-- this transaction's own jobs behind a floor: the queue's floors went to the end (nothing waiting), then a job
-- due long ago is written and claimed in the same transaction (its pin comes only at commit)
SELECT is(pg_temp.ring('fl'), '{}', 'an empty queue: its floors go to the end');
SELECT is(pg_temp.ring('ag'), ARRAY['h', 'h', 'a', 'a', 'b', 'b', 'e', 'e', 'c', 'c', 'f', 'f', 'd', 'd', 'g', 'g'],
	'a drained queue: its floors are raised past its jobs');
SELECT is((SELECT count(*) FROM (SELECT awa.ring_insert('k', jsonb_build_object('n', n), q, 4,
		run_at => now() - interval '1 day') FROM (VALUES ('late', 'ag'), ('late', 'fl')) v(n, q)) s), 2::bigint,
	'a job due a day ago in each, written by this transaction');
SELECT is(pg_temp.ring('ag') || pg_temp.ring('fl'), ARRAY['late', 'late'], 'both are claimed');
SELECT is(pg_temp.ring_many(ARRAY['ag', 'fl', 'ma']), ARRAY['ma:m3', 'ma:m3', 'ma:m5', 'ma:m5'],
	'and the several-queue claim takes the rest');

SELECT * FROM finish();
ROLLBACK;
