-- Case 4 on the ring engine: bench_fill(first, last) adds jobs first..last through awa's API, in steps of 10,000
-- committed one by one, in case 4's mix (by i % 100: 85% completed, 10% available, 2% running, 1% each
-- scheduled, retryable, failed; 10 queues q0..q9 by i % 10): awa_insert_many (1,000 jobs a call; the scheduled
-- ones due in a day), then per queue awa_claim (batches of up to 1,000, lease a day: nothing is rescued) of as
-- many jobs as the step's completed, running, retryable and failed ones, awa_complete_many of the first,
-- awa_fail with a retry in a day of the next, awa_fail(terminal) of the next; the rest stay running.  Claims take
-- the oldest available jobs, so the 10% left available are the newest of each queue.
CREATE OR REPLACE PROCEDURE bench_fill(first bigint, last bigint) LANGUAGE plpgsql AS $$
DECLARE
	lo bigint := first;
	hi bigint;
	w record;
	ids bigint[];
	leases bigint[];
	got bigint[];
	got_leases bigint[];
	n integer;
	k integer;
BEGIN
	WHILE lo <= last LOOP
		hi := least(lo + 9999, last);
		PERFORM count(*) FROM (
			SELECT awa_insert_many(jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'q' || (i % 10),
				'args', jsonb_build_object('n', i),
				'run_at', CASE WHEN i % 100 = 97 THEN now() + interval '1 day' ELSE now() - interval '3 hours' END)
				ORDER BY i))
			FROM generate_series(lo, hi) i GROUP BY (i - lo) / 1000) s;
		FOR w IN
			SELECT i % 10 AS q, count(*) FILTER (WHERE i % 100 < 85) AS completed,
			       count(*) FILTER (WHERE i % 100 = 98) AS retryable, count(*) FILTER (WHERE i % 100 = 99) AS failed,
			       count(*) FILTER (WHERE i % 100 IN (95, 96)) AS running
			  FROM generate_series(lo, hi) i GROUP BY 1 ORDER BY 1
		LOOP
			ids := '{}';
			leases := '{}';
			n := w.completed + w.retryable + w.failed + w.running;
			WHILE cardinality(ids) < n LOOP
				SELECT array_agg(id), array_agg(run_lease) INTO got, got_leases
				  FROM awa_claim('q' || w.q, batch => least(1000, n - cardinality(ids)), lease => interval '1 day');
				IF got IS NULL THEN
					RAISE EXCEPTION 'bench_fill: queue q% has no job to claim (% of % claimed)', w.q, cardinality(ids), n;
				END IF;
				ids := ids || got;
				leases := leases || got_leases;
			END LOOP;
			FOR k IN 0 .. (w.completed - 1) / 1000 LOOP
				PERFORM awa_complete_many(ids[k * 1000 + 1 : least((k + 1) * 1000, w.completed)],
				                          leases[k * 1000 + 1 : least((k + 1) * 1000, w.completed)]);
			END LOOP;
			FOR k IN w.completed + 1 .. w.completed + w.retryable LOOP
				PERFORM awa_fail(ids[k], leases[k], 'bench', retry_in => interval '1 day');
			END LOOP;
			FOR k IN w.completed + w.retryable + 1 .. w.completed + w.retryable + w.failed LOOP
				PERFORM awa_fail(ids[k], leases[k], 'bench', terminal => true);
			END LOOP;
		END LOOP;
		COMMIT;
		lo := hi + 1;
	END LOOP;
END
$$;
