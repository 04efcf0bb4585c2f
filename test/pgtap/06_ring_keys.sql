-- Per-key limits and rates on the ring's claim (src/ring_keys.c; docs/storage.md, "Step 5: per-key limits and rates
-- on the ring"): a key at its limit or its rate yields none of its jobs while other keys' jobs and jobs without a key
-- are claimed in order, through awa.ring_claim of one queue and of several; every way a running attempt ends makes
-- room; the rule of a job's kind; a key's running jobs on either engine count for both; REPEATABLE READ is refused
-- for a keyed row as by awa_claim; a blocking claim sleeps until a key's next slot opens.  A blocking claim commits,
-- so this file runs statement by statement (autocommit) and drops what it created at the end.  Two claimers racing
-- for a key's last slot: the isolation spec ring_keys_last_slot.
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET awa.ring_engine = on;
SET client_min_messages = warning;
SET statement_timeout = '20s';
SELECT plan(62);

-- the args' n of the claimed jobs, in claim order
CREATE FUNCTION pg_temp.claim(q text, b integer)
RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(c.args->>'n' ORDER BY c.ordinality), '{}') FROM awa.ring_claim(q, b, '5 minutes', 'tap') WITH ORDINALITY c
$$;
CREATE FUNCTION pg_temp.claim_many(qs text[], b integer)
RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(c.args->>'n' ORDER BY c.ordinality), '{}') FROM awa.ring_claim(qs, b, '5 minutes', 'tap') WITH ORDINALITY c
$$;
-- a running job by its n: id and run_lease
CREATE FUNCTION pg_temp.job(n text, OUT id bigint, OUT run_lease bigint)
LANGUAGE sql AS $$ SELECT id, run_lease FROM awa.ring_jobs WHERE args->>'n' = n AND state = 'running' $$;
CREATE FUNCTION pg_temp.add(kind text, n text, q text, k text, age interval, p integer DEFAULT 2)
RETURNS bigint LANGUAGE sql AS $$
	SELECT awa.ring_insert(kind, jsonb_build_object('n', n), q, p, concurrency_key => k, run_at => now() - age)
$$;

-- limits ----------------------------------------------------------------------------------------------------------
SELECT is((SELECT count(pg_temp.add('k', 'a' || i, 'kq', 'a', interval '2 hours' - i * interval '1 minute'))
	FROM generate_series(1, 7) i), 7::bigint, 'seven jobs of key a');
SELECT is((SELECT count(pg_temp.add('k', n, 'kq', k, age)) FROM (VALUES ('b1', 'b', interval '50 minutes'),
	('b2', 'b', interval '49 minutes'), ('n1', NULL, interval '40 minutes'), ('n2', NULL, interval '39 minutes')) v(n, k, age)),
	4::bigint, 'two of key b, two without a key');
SELECT is(pg_temp.claim('kq', 10), ARRAY['a1', 'b1', 'n1', 'n2'], 'no rule: one job of each key at a time, every job without one');
SELECT is(pg_temp.claim('kq', 10), '{}'::text[], 'both keys at their limit: nothing');
SELECT is((SELECT count(*) FROM awa.ring_jobs WHERE concurrency_key = 'a' AND state = 'available'), 6::bigint,
	'the jobs over the limit stay available');
SELECT is((awa_set_key_limit('a', 3)).max_running, 3, 'a: three at once');
SELECT is(pg_temp.claim('kq', 10), ARRAY['a2', 'a3'], 'a raised limit lets two more run, not b');
SELECT is((SELECT count(*) FROM awa.ring_key_running WHERE concurrency_key = 'a'), 3::bigint,
	'a''s three running attempts are in awa.ring_key_running');

-- every end of a running attempt makes room
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(pg_temp.job('a1')).id], ARRAY[(pg_temp.job('a1')).run_lease])),
	1::bigint, 'a1 completes');
SELECT is(pg_temp.claim('kq', 10), ARRAY['a4'], 'a completion makes room for one');
SELECT is(awa.ring_fail((pg_temp.job('a2')).id, (pg_temp.job('a2')).run_lease, '{"e": 1}', false), 'failed'::awa.job_state,
	'a2 fails for good');
SELECT is(pg_temp.claim('kq', 10), ARRAY['a5'], 'a failure makes room for one');
SELECT is(awa.ring_cancel((pg_temp.job('a3')).id), true, 'a3 is cancelled while it runs');
SELECT is(pg_temp.claim('kq', 10), ARRAY['a6'], 'a cancel makes room for one');
SELECT is(awa.ring_snooze((pg_temp.job('a4')).id, (pg_temp.job('a4')).run_lease, '1 hour'), true, 'a4 snoozes for an hour');
SELECT is(pg_temp.claim('kq', 10), ARRAY['a7'], 'a snooze makes room for one');
SELECT is(pg_temp.claim('kq', 10), '{}'::text[], 'and a is at its limit again');
SELECT is((SELECT array_agg(args->>'n' ORDER BY id) FROM awa.ring_jobs r JOIN awa.ring_key_running k ON k.job_id = r.id
	AND k.run_lease = r.run_lease WHERE k.concurrency_key = 'a' AND r.state = 'running'), ARRAY['a5', 'a6', 'a7'],
	'the rows of ended attempts were deleted by the key''s next count: only the running ones are left');
SELECT is((SELECT count(*) FROM awa.ring_key_running WHERE concurrency_key = 'a'), 3::bigint, 'and no others');

-- a key at its limit holds back none of the others, in priority order
SELECT is((SELECT count(pg_temp.add('k', n, 'pq', k, age, p)) FROM (VALUES ('h1', 'h', interval '30 minutes', 1),
	('h2', 'h', interval '29 minutes', 1), ('g1', 'g', interval '28 minutes', 2), ('m1', NULL, interval '27 minutes', 1),
	('g2', 'g', interval '26 minutes', 1)) v(n, k, age, p)), 5::bigint, 'pq: keys h and g, priorities 1 and 2');
SELECT is(pg_temp.claim('pq', 1), ARRAY['h1'], 'h1 first');
SELECT is(pg_temp.claim('pq', 10), ARRAY['g1', 'm1'],
	'then in effective priority order (g1 aged to priority 1 first) without h2 (h at its limit) nor g2 (g now at its limit)');
SELECT is(pg_temp.claim('pq', 10), '{}'::text[], 'h2 and g2 wait for their keys');

-- the rule of the job's kind
SELECT is((awa_set_key_limit('mix', 2, kind => 'wide')).max_running, 2, 'a rule for one kind of key mix');
SELECT is((SELECT count(pg_temp.add(kind, n, 'mq', 'mix', age)) FROM (VALUES ('k', 'k1', interval '3 s'),
	('wide', 'w1', interval '2 s'), ('wide', 'w2', interval '1 s'), ('k', 'k2', interval '0 s')) v(kind, n, age)),
	4::bigint, 'mix: two jobs of kind k, two of kind wide');
SELECT is(pg_temp.claim('mq', 10), ARRAY['k1', 'w1'], 'k1 under limit 1, w1 under limit 2 (two running), not w2 nor k2');

-- an ordered key: one at a time in id order; a retry keeps its place
SELECT is((awa_set_key_limit('ord', 1, ordered => true)).ordered, true, 'ord: ordered');
SELECT is((SELECT count(pg_temp.add('k', 'o' || i, 'oq', 'ord', interval '1 minute' * i)) FROM generate_series(1, 3) i),
	3::bigint, 'three jobs of ord, the last one due longest');
SELECT is(pg_temp.claim('oq', 10), ARRAY['o1'], 'the smallest id first, not the one due longest');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(pg_temp.job('o1')).id], ARRAY[(pg_temp.job('o1')).run_lease])),
	1::bigint, 'o1 completes');
SELECT is(pg_temp.claim('oq', 10), ARRAY['o2'], 'then o2');
SELECT is(awa.ring_fail((pg_temp.job('o2')).id, (pg_temp.job('o2')).run_lease, '{"e": 1}'), 'retryable'::awa.job_state,
	'o2 fails and will retry');
SELECT is(pg_temp.claim('oq', 10), '{}'::text[], 'o2 keeps its place: o3 waits');
SELECT is((SELECT array_agg(r.args->>'n' ORDER BY l.job_id) FROM awa.ring_key_live l JOIN awa.ring_jobs r ON r.id = l.job_id
	WHERE l.concurrency_key = 'ord'), ARRAY['o2', 'o3'], 'the finished o1''s row was deleted by the look for an earlier job');

-- several queues: the limit is the key's, whatever the queue
SELECT is((SELECT count(pg_temp.add('k', q || i, q, 'x', interval '1 minute' * i)) FROM unnest(ARRAY['x1', 'x2']) q,
	generate_series(1, 2) i), 4::bigint, 'key x: two jobs in each of x1 and x2');
SELECT is(cardinality(pg_temp.claim_many(ARRAY['x1', 'x2'], 10)), 1, 'a claim over both queues takes one job of x');
SELECT is(pg_temp.claim_many(NULL, 10), '{}'::text[], 'a claim over every queue none more');

-- both engines: a key's running jobs count for either engine's claims
SELECT is((awa_insert('k', '{"n": "t1"}', queue => 'tq', concurrency_key => 'both')).concurrency_key, 'both',
	'a job of key both in awa.jobs');
SELECT is((SELECT count(pg_temp.add('k', 'r' || i, 'rq', 'both', interval '1 minute' * i)) FROM generate_series(1, 2) i),
	2::bigint, 'two on the ring');
SELECT is((SELECT count(*) FROM awa_claim('tq', 'tap', 10)), 1::bigint, 'awa_claim takes the table''s job');
SELECT is(pg_temp.claim('rq', 10), '{}'::text[], 'the ring''s claim counts it: none of both');
SELECT is((SELECT count(*) FROM awa_complete((SELECT id FROM awa.jobs WHERE concurrency_key = 'both'),
	(SELECT run_lease FROM awa.jobs WHERE concurrency_key = 'both'))), 1::bigint, 'the table''s job completes');
SELECT is(cardinality(pg_temp.claim('rq', 10)), 1, 'the ring''s claim takes one');
SELECT is((awa_insert('k', '{"n": "t2"}', queue => 'tq', concurrency_key => 'both')).concurrency_key, 'both',
	'another job of both in awa.jobs');
SELECT is((SELECT count(*) FROM awa_claim('tq', 'tap', 10)), 0::bigint, 'awa_claim counts the ring''s running job: none');

-- what a claim may not do
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_ok($$SELECT pg_temp.claim('rq', 10)$$, '0A000', NULL,
	'a keyed row in REPEATABLE READ: 0A000, as awa_claim');
COMMIT;
SELECT throws_ok($$SELECT awa.ring_key_admit('a', 'k', 1)$$, '55000', NULL, 'awa.ring_key_admit outside a claim: 55000');

-- rates: counted per key across queues, at the claim's time ---------------------------------------------------------
SELECT is((awa_set_key_limit('api-%', 10)).max_running, 10, 'api-%: ten at once');
SELECT is((awa_set_key_rate('api-%', 3, '1 hour')).rate_max_claims, 3, 'and three claims an hour per key');
SELECT is((SELECT count(pg_temp.add('k', 'p' || i, q, 'api-1', interval '1 hour' - i * interval '1 minute'))
	FROM unnest(ARRAY['ra', 'rb', 'ra', 'rb', 'ra']) WITH ORDINALITY u(q, i)) + (SELECT count(pg_temp.add('k', 'q' || i, 'ra', 'api-2',
	interval '30 minutes' - i * interval '1 minute')) FROM generate_series(1, 4) i) + (SELECT count(pg_temp.add('k', 'z' || i, 'ra',
	NULL, interval '10 minutes' - i * interval '1 minute')) FROM generate_series(1, 2) i), 11::bigint,
	'five of api-1 in ra and rb, four of api-2 and two without a key in ra');
SELECT is(pg_temp.claim('ra', 2), ARRAY['p1', 'p3'], 'ra, batch 2: two of api-1');
SELECT is(pg_temp.claim('rb', 10), ARRAY['p2'], 'rb: one of api-1, the third of its window');
SELECT is(pg_temp.claim('ra', 10), ARRAY['q1', 'q2', 'q3', 'z1', 'z2'], 'ra: none of api-1 (at its rate), three of api-2, those without a key');
SELECT is((SELECT (w.window_claims, w.next_slot_at) FROM awa.key_rate_window('api-1', 3, '1 hour') w),
	(SELECT ROW(3, min(attempted_at) + interval '1 hour') FROM awa.ring_jobs WHERE concurrency_key = 'api-1' AND state = 'running'),
	'the key''s window: three claims, the next slot a period after the oldest');
SELECT is((awa_set_key_rate('api-%', 4, '1 hour')).rate_max_claims, 4, 'raised to four an hour');
SELECT is(pg_temp.claim_many(ARRAY['ra', 'rb'], 10), ARRAY['p4', 'q4'], 'one more of each key, through the claim over several queues');
SELECT is((awa_set_key_rate('api-%', NULL, NULL)).max_running, 10, 'the rate removed, the rule kept');
SELECT is(pg_temp.claim_many(ARRAY['ra', 'rb'], 10), ARRAY['p5'], 'no rate: the last job of api-1');

-- a blocking claim sleeps until the key's next slot opens, not to the end of its wait
SELECT lives_ok($$SELECT awa_set_key_rate('tick', 2, '300 milliseconds'), awa_set_key_limit('tick', 5)$$, 'tick: 2 per 300 ms');
SELECT is((SELECT count(pg_temp.add('k', 't' || i, 'tick', 'tick', interval '1 minute' - i * interval '1 s'))
	FROM generate_series(1, 3) i), 3::bigint, 'three jobs of tick');
SELECT is(cardinality(pg_temp.claim('tick', 2)), 2, 'two claimed');
CREATE TEMP TABLE third (n integer);
DO $$ DECLARE j jsonb; BEGIN
	CALL awa.ring_claim_wait('tick', 2, '1 minute', 'tap', '10 s', j);
	INSERT INTO third VALUES (coalesce(jsonb_array_length(j), 0));
END $$;
SELECT ok((SELECT n = 1 FROM third) AND (SELECT max(attempted_at) FILTER (WHERE args->>'n' = 't3')
	>= max(attempted_at) FILTER (WHERE args->>'n' <> 't3') + interval '300 ms'
	AND max(attempted_at) FILTER (WHERE args->>'n' = 't3') < max(attempted_at) FILTER (WHERE args->>'n' <> 't3') + interval '2 s'
	FROM awa.ring_jobs WHERE concurrency_key = 'tick'),
	'the blocking claim got the third job once the window moved, well before its 10 s wait ended');

SELECT * FROM finish();
DROP EXTENSION awa;
