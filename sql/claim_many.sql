-- One claim, many queues: awa_claim(queues text[], ...) hands out the most
-- urgent due jobs across its queues in a single queue's order, each
-- queue's pause and concurrency limit holding; NULL claims from every queue.
-- On the default ring engine: jobs are written as the view takes them (their fields, the id drawn by awa), so each
-- is named by its kind ('j' and the id the table's version gave it) and the claims show the kind.
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
INSERT INTO awa.jobs (kind, queue, priority, run_at) VALUES
  ('j1', 'a', 2, now() - interval '10 s'),
  ('j2', 'b', 1, now() - interval '5 s'),
  ('j3', 'c', 3, now() - interval '20 s'),
  ('j4', 'a', 1, now() - interval '1 s'),
  ('j5', 'b', 2, now() - interval '30 s'),
  ('j6', 'c', 4, now() - interval '2 minutes 30 s'),
  ('j7', 'other', 1, now() - interval '1 hour');
SELECT kind, queue, priority FROM awa_claim(ARRAY['c', 'b', 'a', 'b'], batch => 1);
SELECT kind, queue, priority FROM awa_claim(ARRAY['c', 'b', 'a'], batch => 2);
SELECT kind, queue, priority FROM awa_claim(ARRAY['c', 'b', 'a'], batch => 10);
SELECT count(*) FROM awa_claim(ARRAY['c', 'b', 'a'], batch => 10);
-- job j7's queue was not asked for
SELECT state FROM awa.jobs WHERE kind = 'j7';

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
DELETE FROM awa.jobs;
INSERT INTO awa.jobs (kind, queue, run_at)
  SELECT 'k', 's' || q, CASE WHEN q = 3 THEN now() - interval '2 hours' + g * interval '1 s'
                         ELSE now() - interval '1 hour' + (g * 10 + q) * interval '1 s' END
  FROM generate_series(0, 9) q, generate_series(1, CASE WHEN q = 3 THEN 25 ELSE 8 END) g;
SELECT * FROM pg_temp.claims_exact(4, false);
SET awa.priority_aging_interval = 0;
DELETE FROM awa.jobs;
INSERT INTO awa.jobs (kind, queue, priority, run_at)
  SELECT 'k', 's' || q, CASE WHEN q = 7 THEN 1 WHEN q = 3 THEN 3 ELSE 2 END,
         CASE WHEN q = 3 THEN now() - interval '2 hours' + g * interval '1 s'
         ELSE now() - interval '1 hour' + (g * 10 + q) * interval '1 s' END
  FROM generate_series(0, 9) q, generate_series(1, CASE WHEN q IN (3, 7) THEN 25 ELSE 3 END) g;
SELECT * FROM pg_temp.claims_exact(7, true);
RESET awa.priority_aging_interval;

-- a paused queue among several gives nothing; the others do
DELETE FROM awa.jobs;
INSERT INTO awa.jobs (kind, queue, priority, run_at) VALUES
  ('j11', 'p', 1, now() - interval '1 minute'),
  ('j12', 'q', 2, now()),
  ('j13', 'r', 3, now());
SELECT awa_pause_queue('p');
SELECT kind, queue FROM awa_claim(ARRAY['p', 'q', 'r'], batch => 10);
SELECT awa_resume_queue('p');
SELECT kind, queue FROM awa_claim(ARRAY['p', 'q', 'r'], batch => 10);

-- a limited queue among several: at most its limit runs, counting the jobs
-- already running; the unlimited queues fill the rest of the batch
DELETE FROM awa.jobs;
SELECT max_running FROM awa_set_queue_limit('lim', 2);
INSERT INTO awa.jobs (kind, queue, priority, run_at) VALUES
  ('j21', 'lim', 1, now() - interval '5 s'),
  ('j22', 'lim', 1, now() - interval '4 s'),
  ('j23', 'lim', 1, now() - interval '3 s'),
  ('j24', 'free', 2, now() - interval '2 s'),
  ('j25', 'free', 2, now() - interval '1 s'),
  ('j26', 'lim', 1, now() - interval '6 s');
SELECT kind, queue FROM awa_claim(ARRAY['lim', 'free'], batch => 1);
SELECT kind, queue FROM awa_claim(ARRAY['lim', 'free'], batch => 10);
SELECT kind, queue FROM awa_claim(ARRAY['lim', 'free'], batch => 10);
-- one finishes: one more of the limited queue may run
SELECT awa_complete((SELECT id FROM awa.jobs WHERE kind = 'j26'), 1);
SELECT kind, queue FROM awa_claim(ARRAY['free', 'lim'], batch => 10);
-- in REPEATABLE READ too, on the ring: its claim counts the running jobs with the newest snapshot, in every
-- isolation level (docs/storage.md, "Step 5: queue flow control on the ring"; the table's claim refuses:
-- claim_many_table.sql)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.err($$SELECT * FROM awa_claim(ARRAY['free', 'lim'])$$);
ROLLBACK;
SELECT awa_forget_queue('lim');

-- NULL: every queue with due jobs, in the same order
DELETE FROM awa.jobs;
INSERT INTO awa.jobs (kind, queue, priority, run_at) VALUES
  ('j31', 'x', 2, now() - interval '3 s'),
  ('j32', 'y', 1, now() - interval '2 s'),
  ('j33', 'z', 2, now() - interval '4 s'),
  ('j34', 'z', 2, now() + interval '1 hour');
SELECT kind, queue FROM awa_claim(NULL::text[], batch => 10);
SELECT kind, state FROM awa.jobs WHERE kind = 'j34';

-- seventy queues in one claim: all are served
DELETE FROM awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'm' || g) FROM generate_series(1, 70) g) i;
SELECT count(*), count(DISTINCT queue)
  FROM awa_claim(ARRAY(SELECT 'm' || g FROM generate_series(1, 70) g), batch => 1000);

-- the claim's row and its fields are those of a single-queue claim
DELETE FROM awa.jobs;
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

-- a claim over six busy queues descends the claim index once per queue: on the ring, once per queue in each
-- slot's partition of awa.ready (the table's claim index and its floors: claim_many_table.sql)
DELETE FROM awa.jobs;
SELECT count(*) FROM (SELECT awa_insert('k', queue => 'r' || (g % 6),
  run_at => now() - interval '1 hour' + g * interval '1 s') FROM generate_series(1, 60) g) i;
SELECT queue FROM awa_claim(ARRAY['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], batch => 1);
-- (index scans counted in this transaction; stats are not flushed inside it)
BEGIN;
CREATE TEMP TABLE scans AS SELECT i.indrelid::regclass AS part, pg_stat_get_xact_numscans(i.indexrelid) AS n
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid::regclass::text ~ '^awa\.ready_[0-9]+$' AND c.relname ~ '_queue_priority_run_at_id_idx$';
SELECT queue FROM awa_claim(ARRAY['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], batch => 1);
SELECT s.part, pg_stat_get_xact_numscans(i.indexrelid) - s.n AS descents
  FROM scans s JOIN pg_index i ON i.indrelid = s.part JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname ~ '_queue_priority_run_at_id_idx$' ORDER BY 1;
COMMIT;

-- limits and rates together in one claim: each queue gets what its limit and
-- its rate allow (both: the smaller), the free queue the rest; then without
-- the limited queue (one lookup of the queues' limits and rates)
DELETE FROM awa.jobs;
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
