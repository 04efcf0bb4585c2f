-- Prototype "ring": nothing on the hot path is ever UPDATEd or DELETEd.
--   ready   immutable job rows (one per attempt that can be claimed), in a ring of LIST partitions by slot
--   claims  one receipt per claim, keyed by (job_id, run_lease): the job is running with that lease
--   done    one row per finished attempt, keyed by (job_id, run_lease): completed / failed / cancelled / ...
--   deltas  signed per-statement counter deltas stamped with the writer's xid; folds + deltas give exact
--           counts at the reader's snapshot without scanning jobs (stats())
-- A slot whose jobs are all finished (and whose history is past retention) is TRUNCATEd: ready, claims and
-- done of that slot go together; nothing is left dead.  The claim starts at a shared cursor (see cursor.sql;
-- a sequence stands in for the engine's shared memory) and checks the receipts of the few rows between the
-- cursor and the frontier; a unique receipt makes a second claim of the same (job_id, run_lease) impossible,
-- even for a claimer whose snapshot missed the first receipt.
DROP SCHEMA IF EXISTS p_ring CASCADE;
CREATE SCHEMA p_ring;
CREATE SEQUENCE p_ring.job_id_seq;
CREATE SEQUENCE p_ring.cursor_vac MINVALUE 0 START 0;
CREATE SEQUENCE p_ring.fold_seq;

CREATE TABLE p_ring.ready (
	slot			smallint NOT NULL,
	id				bigint NOT NULL DEFAULT nextval('p_ring.job_id_seq'),
	run_lease		bigint NOT NULL DEFAULT 0,	-- lease of the previous attempt; a claim gives run_lease + 1
	attempt			smallint NOT NULL DEFAULT 0,	-- attempts made before this row
	kind			text NOT NULL,
	queue			text NOT NULL DEFAULT 'default',
	args			jsonb NOT NULL DEFAULT '{}',
	priority		smallint NOT NULL DEFAULT 2,
	max_attempts	smallint NOT NULL DEFAULT 25,
	run_at			timestamptz NOT NULL DEFAULT now(),
	created_at		timestamptz NOT NULL DEFAULT now(),
	metadata		jsonb NOT NULL DEFAULT '{}',
	tags			text[] NOT NULL DEFAULT '{}'
) PARTITION BY LIST (slot);
CREATE INDEX ready_claim_idx ON p_ring.ready (queue, priority, run_at, id);
CREATE INDEX ready_id_idx ON p_ring.ready (id);

CREATE TABLE p_ring.claims (
	slot		smallint NOT NULL,
	job_id		bigint NOT NULL,
	run_lease	bigint NOT NULL,
	claimed_at	timestamptz NOT NULL,
	deadline_at	timestamptz NOT NULL,
	claimed_by	text,
	UNIQUE (job_id, run_lease, slot)
) PARTITION BY LIST (slot);

CREATE TABLE p_ring.done (
	slot			smallint NOT NULL,
	job_id			bigint NOT NULL,
	run_lease		bigint NOT NULL,
	state			awa.job_state NOT NULL,
	finalized_at	timestamptz NOT NULL,
	error			jsonb,
	UNIQUE (job_id, run_lease, slot)
) PARTITION BY LIST (slot);

DO $$
BEGIN
	FOR s IN 0..3 LOOP
		EXECUTE format('CREATE TABLE p_ring.ready_%s PARTITION OF p_ring.ready FOR VALUES IN (%s)', s, s);
		EXECUTE format('CREATE TABLE p_ring.claims_%s PARTITION OF p_ring.claims FOR VALUES IN (%s)', s, s);
		EXECUTE format('CREATE TABLE p_ring.done_%s PARTITION OF p_ring.done FOR VALUES IN (%s)', s, s);
	END LOOP;
END $$;

-- counters: signed deltas, one row per statement (the engine: one per transaction and queue, written by a
-- deferred constraint trigger or at pre-commit), folded into p_ring.folds by maintenance
CREATE TABLE p_ring.deltas (
	xid			xid8 NOT NULL DEFAULT pg_current_xact_id(),
	queue		text NOT NULL,
	available	bigint NOT NULL DEFAULT 0,
	running		bigint NOT NULL DEFAULT 0,
	completed	bigint NOT NULL DEFAULT 0
);
CREATE INDEX deltas_xid_idx ON p_ring.deltas (xid);
-- a fold: the exact counts at snapshot snap (the fold statement's own snapshot)
CREATE TABLE p_ring.folds (
	fold_id		bigint NOT NULL,
	snap		pg_snapshot NOT NULL,
	queue		text NOT NULL,
	available	bigint NOT NULL,
	running		bigint NOT NULL,
	completed	bigint NOT NULL,
	PRIMARY KEY (fold_id, queue)
);

-- exact counts at the caller's snapshot: the newest fold it sees, plus the deltas that fold's snapshot did not
-- see (xid >= its xmax, or in progress then).  Reads O(queues + deltas since the fold), whatever the jobs.
CREATE FUNCTION p_ring.stats()
RETURNS TABLE (queue text, available bigint, running bigint, completed bigint)
LANGUAGE sql STABLE AS $$
WITH f AS MATERIALIZED (SELECT fold_id, snap FROM p_ring.folds ORDER BY fold_id DESC LIMIT 1),
s AS (SELECT queue, available, running, completed FROM p_ring.folds WHERE fold_id = (SELECT fold_id FROM f)
      UNION ALL
      SELECT d.queue, d.available, d.running, d.completed FROM p_ring.deltas d
       WHERE d.xid >= coalesce((SELECT pg_snapshot_xmax(snap) FROM f), '0'::xid8)
      UNION ALL
      SELECT d.queue, d.available, d.running, d.completed FROM p_ring.deltas d
       WHERE d.xid = ANY (ARRAY(SELECT pg_snapshot_xip(snap) FROM f)))
SELECT queue, sum(available)::bigint, sum(running)::bigint, sum(completed)::bigint FROM s GROUP BY queue ORDER BY queue
$$;

-- the same counts by a full recount of the ring (what stats() must equal)
CREATE FUNCTION p_ring.recount()
RETURNS TABLE (queue text, available bigint, running bigint, completed bigint)
LANGUAGE sql STABLE AS $$
SELECT r.queue,
       count(*) FILTER (WHERE c.job_id IS NULL)::bigint,
       count(*) FILTER (WHERE c.job_id IS NOT NULL AND d.job_id IS NULL)::bigint,
       count(*) FILTER (WHERE d.state = 'completed')::bigint
  FROM p_ring.ready r
  LEFT JOIN p_ring.claims c ON c.job_id = r.id AND c.run_lease = r.run_lease + 1 AND c.slot = r.slot
  LEFT JOIN p_ring.done d ON d.job_id = c.job_id AND d.run_lease = c.run_lease AND d.slot = c.slot
 GROUP BY r.queue ORDER BY r.queue
$$;

-- claim up to n jobs of queue q (priority 2 only in this prototype), from the cursor on.  Locking comes first
-- (FOR UPDATE SKIP LOCKED spreads concurrent claimers over different rows); the receipts are then written by a
-- second statement, whose fresh snapshot sees every receipt committed by whoever held a lock before (a
-- commit is visible before its locks are released), and the unique key settles any race left.
CREATE FUNCTION p_ring.claim(q text, n int, OUT ids bigint[], OUT leases bigint[])
LANGUAGE plpgsql
-- The engine's statements are fixed index walks of one slot's relations (the cursor names the slot; the
-- slots of a queue are walked oldest first).  Here every job is in slot 0, so the statements name its
-- partitions directly (planning through the partitioned parents costs more than the work), with plans
-- that cannot turn into scans of a whole slot when a slot that was empty at planning time fills up: the
-- receipt probes are correlated scalar subqueries (one index probe per row), never joins (a generic plan
-- made while claims_0 was empty materialised all of claims_0 under an anti join: O(claims) per row).
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_sort = off SET enable_hashjoin = off SET enable_mergejoin = off SET enable_material = off SET jit = off
AS $$
DECLARE
	cur bigint;
	cand_slot smallint[];
	cand_id bigint[];
	cand_lease bigint[];
	lo timestamptz;
	lo_pass timestamptz;
BEGIN
	ids := '{}'; leases := '{}';
	cur := pg_sequence_last_value('p_ring.cursor_vac');
	-- a second pass only when a race cost this claim rows (they were claimed by a claimer that just committed)
	FOR pass IN 1..10 LOOP
	SELECT array_agg(slot), array_agg(id), array_agg(lease), min(run_at) INTO cand_slot, cand_id, cand_lease, lo_pass
	  FROM (SELECT r.slot, r.id, r.run_lease + 1 AS lease, r.run_at FROM p_ring.ready_0 r
	         WHERE r.queue = q AND r.priority = 2 AND r.run_at >= to_timestamp(cur / 1e6)
	           AND (SELECT cl.job_id FROM p_ring.claims_0 cl
	                 WHERE cl.job_id = r.id AND cl.run_lease = r.run_lease + 1 AND cl.slot = r.slot LIMIT 1) IS NULL
	         ORDER BY r.run_at, r.id LIMIT n - cardinality(ids) FOR UPDATE OF r SKIP LOCKED) c;
	EXIT WHEN cand_id IS NULL;
	lo := least(lo, lo_pass);
	WITH ins AS (
		INSERT INTO p_ring.claims_0 (slot, job_id, run_lease, claimed_at, deadline_at)
		SELECT s, i, l, now(), now() + interval '5 minutes' FROM unnest(cand_slot, cand_id, cand_lease) AS c(s, i, l)
		 WHERE (SELECT cl.job_id FROM p_ring.claims_0 cl WHERE cl.job_id = c.i AND cl.run_lease = c.l AND cl.slot = c.s LIMIT 1) IS NULL
		ON CONFLICT DO NOTHING RETURNING job_id, run_lease),
	dl AS (INSERT INTO p_ring.deltas (queue, available, running) SELECT q, -count(*), count(*) FROM ins HAVING count(*) > 0)
	SELECT ids || coalesce(array_agg(job_id), '{}'), leases || coalesce(array_agg(run_lease), '{}') INTO ids, leases FROM ins;
	EXIT WHEN cardinality(ids) >= n;
	END LOOP;
	-- raise the cursor to the lowest row this claim saw unclaimed (the engine: after commit, generation-checked)
	IF lo IS NOT NULL AND floor(extract(epoch FROM lo) * 1e6)::bigint > cur THEN
		PERFORM setval('p_ring.cursor_vac', floor(extract(epoch FROM lo) * 1e6)::bigint);
	END IF;
END $$;

-- complete the attempts (ids[i], leases[i]) that are running: a done row each; returns how many
CREATE FUNCTION p_ring.complete(ids bigint[], leases bigint[])
RETURNS bigint
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_sort = off SET enable_hashjoin = off SET enable_mergejoin = off SET enable_material = off SET jit = off
AS $$
DECLARE
	n bigint;
BEGIN
	WITH ok AS (
		INSERT INTO p_ring.done_0 (slot, job_id, run_lease, state, finalized_at)
		SELECT s.slot, s.id, s.lease, 'completed', now()
		  FROM (SELECT d.id, d.lease, (SELECT c.slot FROM p_ring.claims_0 c WHERE c.job_id = d.id AND c.run_lease = d.lease LIMIT 1) AS slot
		          FROM unnest(ids, leases) AS d(id, lease)) s
		 WHERE s.slot IS NOT NULL
		ON CONFLICT DO NOTHING RETURNING 1),
	dl AS (INSERT INTO p_ring.deltas (queue, running, completed)
	       SELECT 'vac', -count(*), count(*) FROM ok HAVING count(*) > 0)
	SELECT count(*) INTO n FROM ok;
	RETURN n;
END $$;

-- n available jobs of queue q in slot 0, run_at increasing with id; the counters get one delta row
CREATE PROCEDURE p_ring.load(n int, q text DEFAULT 'vac')
LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE p_ring.ready, p_ring.claims, p_ring.done, p_ring.deltas, p_ring.folds;
	PERFORM setval('p_ring.cursor_vac', 0);
	INSERT INTO p_ring.ready (slot, kind, queue, args, run_at)
	SELECT 0, 'k', q, jsonb_build_object('n', i), now() - interval '1 hour' + i * interval '1 ms'
	  FROM generate_series(1, n) i;
	INSERT INTO p_ring.deltas (queue, available) VALUES (q, n);
END $$;

-- stats fixture: n jobs over 10 queues and slots 0-3; 85% completed, 10% available, 5% running
CREATE PROCEDURE p_ring.fill_stats(n int)
LANGUAGE plpgsql AS $$
BEGIN
	TRUNCATE p_ring.ready, p_ring.claims, p_ring.done, p_ring.deltas, p_ring.folds;
	INSERT INTO p_ring.ready (slot, kind, queue, args, run_at)
	SELECT (i * 4 / n)::int % 4, 'k', 'q' || (i % 10), jsonb_build_object('n', i), now() - interval '3 hours' + i * interval '1 ms'
	  FROM generate_series(0, n - 1) i;
	INSERT INTO p_ring.claims (slot, job_id, run_lease, claimed_at, deadline_at)
	SELECT slot, id, 1, now(), now() + interval '5 minutes' FROM p_ring.ready WHERE id % 100 >= 10;
	INSERT INTO p_ring.done (slot, job_id, run_lease, state, finalized_at)
	SELECT slot, job_id, 1, 'completed', now() FROM p_ring.claims WHERE job_id % 100 >= 15;
	-- the deltas the enqueues, claims and completions wrote, one per 1,000 jobs (a batch statement)
	INSERT INTO p_ring.deltas (queue, available, running, completed)
	SELECT r.queue, count(*) FILTER (WHERE c.job_id IS NULL), count(*) FILTER (WHERE c.job_id IS NOT NULL AND d.job_id IS NULL),
	       count(d.job_id)
	  FROM p_ring.ready r LEFT JOIN p_ring.claims c ON c.job_id = r.id LEFT JOIN p_ring.done d ON d.job_id = r.id
	 GROUP BY r.queue, r.id / 1000;
END $$;
