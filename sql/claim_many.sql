-- One claim, many queues: awa_claim(queues text[], ...) hands out the most
-- urgent due jobs across its queues in a single queue's order, each
-- queue's pause and concurrency limit holding; NULL claims from every queue.
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (INSERT of ids and states, UPDATE, TRUNCATE, triggers or indexes of the table), which the ring's view
-- refuses; not yet rewritten through the awa_* functions.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- bad input names the argument: an empty array, a NULL element, a bad
-- name, more than one dimension; the text form keeps rejecting NULL
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY[]::text[])$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['a', NULL])$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['a', ''])$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY[repeat('x', 201)])$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim('{{a},{b}}'::text[])$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim(NULL)$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['a'], batch => 0)$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['a'], batch => NULL)$$);
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['a'], lease => '0 s')$$);
SELECT pg_temp.err($$CALL awa_claim_wait(ARRAY[]::text[])$$);
SELECT pg_temp.err($$CALL awa_claim_wait(ARRAY[NULL]::text[])$$);
SELECT pg_temp.err($$CALL awa_claim_wait(NULL)$$);
-- a string literal is a queue name, as before
SELECT count(*) FROM awa_claim('{a,b}');

-- order across queues: priority first, then run_at, then id, whatever the
-- queue; a job waiting long enough gains levels (aging) across queues too
INSERT INTO awa.jobs (id, kind, queue, priority, run_at)
  OVERRIDING SYSTEM VALUE VALUES
  (1, 'k', 'a', 2, now() - interval '10 s'),
  (2, 'k', 'b', 1, now() - interval '5 s'),
  (3, 'k', 'c', 3, now() - interval '20 s'),
  (4, 'k', 'a', 1, now() - interval '1 s'),
  (5, 'k', 'b', 2, now() - interval '30 s'),
  (6, 'k', 'c', 4, now() - interval '2 minutes 30 s'),
  (7, 'k', 'other', 1, now() - interval '1 hour');
SELECT id, queue, priority FROM awa_claim(ARRAY['c', 'b', 'a', 'b'], batch => 1);
SELECT id, queue, priority FROM awa_claim(ARRAY['c', 'b', 'a'], batch => 2);
SELECT id, queue, priority FROM awa_claim(ARRAY['c', 'b', 'a'], batch => 10);
SELECT count(*) FROM awa_claim(ARRAY['c', 'b', 'a'], batch => 10);
-- job 7's queue was not asked for
SELECT state FROM awa.jobs WHERE id = 7;

-- exact order when each queue's range is read only in part (a claim of 10
-- over 10 busy queues reads a few jobs of each): the 25 earliest jobs are
-- all in queue s3, so the first two claims take only s3's, the third the
-- rest of s3's and then the others' in order; the same with aging off,
-- where priority 1 jobs of s7 come first (and skewed the other way round:
-- s3's priority 3 jobs last).  Each claim is compared with the expected ids.
CREATE FUNCTION pg_temp.claims_exact(n integer, by_priority boolean) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	want bigint[];
	got bigint[];
BEGIN
	FOR i IN 1 .. n LOOP
		IF by_priority THEN
			SELECT array_agg(id ORDER BY id) INTO want FROM (SELECT id FROM awa.jobs
			  WHERE state = 'available' ORDER BY priority, run_at, id LIMIT 10) w;
		ELSE
			SELECT array_agg(id ORDER BY id) INTO want FROM (SELECT id FROM awa.jobs
			  WHERE state = 'available' ORDER BY run_at, id LIMIT 10) w;
		END IF;
		SELECT array_agg(id ORDER BY id) INTO got
		  FROM awa_claim(ARRAY['s0','s1','s2','s3','s4','s5','s6','s7','s8','s9'], batch => 10);
		RETURN NEXT format('claim %s: %s jobs of %s, as expected: %s', i, cardinality(got),
			(SELECT string_agg(DISTINCT queue, ',') FROM awa.jobs WHERE id = ANY (got)),
			got IS NOT DISTINCT FROM want);
	END LOOP;
END
$$;
TRUNCATE awa.jobs;
INSERT INTO awa.jobs (kind, queue, run_at)
  SELECT 'k', 's' || q, CASE WHEN q = 3 THEN now() - interval '2 hours' + g * interval '1 s'
                         ELSE now() - interval '1 hour' + (g * 10 + q) * interval '1 s' END
  FROM generate_series(0, 9) q, generate_series(1, CASE WHEN q = 3 THEN 25 ELSE 8 END) g;
SELECT * FROM pg_temp.claims_exact(4, false);
SET awa.priority_aging_interval = 0;
TRUNCATE awa.jobs;
INSERT INTO awa.jobs (kind, queue, priority, run_at)
  SELECT 'k', 's' || q, CASE WHEN q = 7 THEN 1 WHEN q = 3 THEN 3 ELSE 2 END,
         CASE WHEN q = 3 THEN now() - interval '2 hours' + g * interval '1 s'
         ELSE now() - interval '1 hour' + (g * 10 + q) * interval '1 s' END
  FROM generate_series(0, 9) q, generate_series(1, CASE WHEN q IN (3, 7) THEN 25 ELSE 3 END) g;
SELECT * FROM pg_temp.claims_exact(7, true);
RESET awa.priority_aging_interval;

-- a paused queue among several gives nothing; the others do
TRUNCATE awa.jobs;
INSERT INTO awa.jobs (id, kind, queue, priority, run_at)
  OVERRIDING SYSTEM VALUE VALUES
  (11, 'k', 'p', 1, now() - interval '1 minute'),
  (12, 'k', 'q', 2, now()),
  (13, 'k', 'r', 3, now());
SELECT awa_pause_queue('p');
SELECT id, queue FROM awa_claim(ARRAY['p', 'q', 'r'], batch => 10);
SELECT awa_resume_queue('p');
SELECT id, queue FROM awa_claim(ARRAY['p', 'q', 'r'], batch => 10);

-- a limited queue among several: at most its limit runs, counting the jobs
-- already running; the unlimited queues fill the rest of the batch
TRUNCATE awa.jobs;
SELECT max_running FROM awa_set_queue_limit('lim', 2);
INSERT INTO awa.jobs (id, kind, queue, priority, run_at)
  OVERRIDING SYSTEM VALUE VALUES
  (21, 'k', 'lim', 1, now() - interval '5 s'),
  (22, 'k', 'lim', 1, now() - interval '4 s'),
  (23, 'k', 'lim', 1, now() - interval '3 s'),
  (24, 'k', 'free', 2, now() - interval '2 s'),
  (25, 'k', 'free', 2, now() - interval '1 s'),
  (26, 'k', 'lim', 1, now() - interval '6 s');
SELECT id, queue FROM awa_claim(ARRAY['lim', 'free'], batch => 1);
SELECT id, queue FROM awa_claim(ARRAY['lim', 'free'], batch => 10);
SELECT id, queue FROM awa_claim(ARRAY['lim', 'free'], batch => 10);
-- one finishes: one more of the limited queue may run
SELECT awa_complete(26, 1);
SELECT id, queue FROM awa_claim(ARRAY['free', 'lim'], batch => 10);
-- a limited queue needs READ COMMITTED, as for one queue
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['free', 'lim'])$$);
ROLLBACK;
SELECT awa_forget_queue('lim');

-- NULL: every queue with due jobs, in the same order
TRUNCATE awa.jobs;
INSERT INTO awa.jobs (id, kind, queue, priority, run_at)
  OVERRIDING SYSTEM VALUE VALUES
  (31, 'k', 'x', 2, now() - interval '3 s'),
  (32, 'k', 'y', 1, now() - interval '2 s'),
  (33, 'k', 'z', 2, now() - interval '4 s'),
  (34, 'k', 'z', 2, now() + interval '1 hour');
SELECT id, queue FROM awa_claim(NULL::text[], batch => 10);
SELECT id, state FROM awa.jobs WHERE id = 34;

-- seventy queues in one claim: all are served
TRUNCATE awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'm' || g) FROM generate_series(1, 70) g) i;
SELECT count(*), count(DISTINCT queue)
  FROM awa_claim(ARRAY(SELECT 'm' || g FROM generate_series(1, 70) g), batch => 1000);

-- the claim's row and its fields are those of a single-queue claim
TRUNCATE awa.jobs;
SELECT (awa_insert('k', queue => 'w')).id IS NOT NULL AS inserted;
SELECT queue, state, attempt, run_lease, claimed_by, lease, deadline_at = attempted_at + interval '1 minute' AS deadline
  FROM awa_claim(ARRAY['w', 'v'], worker => 'me', lease => '1 minute');

-- CALL awa_claim_wait over several queues returns the jobs (NULL: none)
SELECT (awa_insert('k', queue => 'w2')).id IS NOT NULL AS inserted;
DO $$
DECLARE
	j awa.jobs[];
BEGIN
	CALL awa_claim_wait(ARRAY['w1', 'w2'], wait => '0.1 s', jobs => j);
	RAISE NOTICE 'claimed: %', (SELECT string_agg(x.queue || ' ' || x.state, ', ') FROM unnest(j) x);
	CALL awa_claim_wait(ARRAY['w1', 'w2'], wait => '0.1 s', jobs => j);
	RAISE NOTICE 'then: %', coalesce(j::text, 'NULL');
	CALL awa_claim_wait(NULL::text[], wait => '0', jobs => j);
	RAISE NOTICE 'every queue: %', coalesce(j::text, 'NULL');
END
$$;

-- every range the claim read is known as read, in all the queues: once the
-- empty ranges are known (the first claim), a claim over six busy queues
-- descends the claim index once per queue and probes no floor
TRUNCATE awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'r' || (g % 6),
  run_at => now() - interval '1 hour' + g * interval '1 s') FROM generate_series(1, 60) g) i;
SELECT queue FROM awa_claim(ARRAY['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], batch => 1);
-- (index scans counted in this transaction; stats are not flushed inside it)
BEGIN;
SELECT pg_stat_get_xact_numscans('awa.jobs_claim_idx'::regclass) AS before \gset
SELECT queue FROM awa_claim(ARRAY['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], batch => 1);
SELECT pg_stat_get_xact_numscans('awa.jobs_claim_idx'::regclass) - :before AS descents;
COMMIT;

-- limits and rates together in one claim: each queue gets what its limit and
-- its rate allow (both: the smaller), the free queue the rest; then without
-- the limited queue (one lookup of the queues' limits and rates)
TRUNCATE awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('k', queue => q) FROM unnest(ARRAY['lim', 'rt', 'both', 'free']) q,
  generate_series(1, 4) g) i;
SELECT max_running FROM awa_set_queue_limit('lim', 1);
SELECT rate_max_claims FROM awa_set_queue_rate('rt', 2, '1 hour');
SELECT max_running FROM awa_set_queue_limit('both', 3);
SELECT rate_max_claims FROM awa_set_queue_rate('both', 2, '1 hour');
SELECT queue, count(*) FROM awa_claim(ARRAY['lim', 'rt', 'both', 'free'], batch => 20)
  GROUP BY queue ORDER BY queue;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'free') FROM generate_series(1, 2) g) i;
SELECT queue, count(*) FROM awa_claim(ARRAY['rt', 'both', 'free'], batch => 20) GROUP BY queue ORDER BY queue;
SELECT awa_forget_queue(q) FROM unnest(ARRAY['lim', 'rt', 'both']) q;

-- a transaction claims the job it enqueued itself behind a floor that earlier claims raised (its pin comes only
-- at commit): over several queues and over one
SELECT count(*) FROM awa_insert('k', queue => 'own1');
SELECT count(*) FROM awa_claim(ARRAY['own1', 'own2']);
SELECT count(*) FROM awa_claim(ARRAY['own1', 'own2']);
BEGIN;
SELECT count(*) FROM awa_insert('k', queue => 'own1', run_at => now() - interval '1 day');
SELECT count(*) AS own_claimed FROM awa_claim(ARRAY['own1', 'own2']);
ROLLBACK;
BEGIN;
SELECT count(*) FROM awa_insert('k', queue => 'own1', run_at => now() - interval '1 day');
SELECT count(*) AS own_claimed FROM awa_claim('own1');
ROLLBACK;

DROP EXTENSION awa;
