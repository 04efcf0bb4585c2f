-- claim 10 from the cursor on, + complete (the UPDATEs of base_cc.sql; the completion finds its rows by
-- primary key: left to the planner, the generic plan of base_cc.sql's completion walks the whole partial
-- index of running jobs, whose dead entries pile up under a held snapshot)
WITH cur AS MATERIALIZED (SELECT last_value AS c FROM p_cur.cursor_vac),
c AS (
  UPDATE p_cur.jobs SET state = 'running', attempt = attempt + 1, run_lease = run_lease + 1,
         attempted_at = now(), heartbeat_at = now(), deadline_at = now() + interval '5 minutes'
   WHERE id IN (SELECT id FROM p_cur.jobs
                 WHERE queue = 'vac' AND state = 'available' AND priority = 2
                   AND run_at >= to_timestamp((SELECT c FROM cur) / 1e6)
                 ORDER BY run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED)
  RETURNING id, run_lease, run_at),
a AS (SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases,
             floor(extract(epoch FROM min(run_at)) * 1e6)::bigint AS m FROM c)
SELECT ids, leases, CASE WHEN m > (SELECT c FROM cur) THEN setval('p_cur.cursor_vac', m) END AS moved FROM a \gset
UPDATE p_cur.jobs SET state = 'completed', finalized_at = now()
 WHERE p_cur.jobs.id = ANY (:ids::bigint[])
   AND (p_cur.jobs.id, p_cur.jobs.run_lease) IN (SELECT * FROM unnest(:ids::bigint[], :leases::bigint[]))
   AND p_cur.jobs.state::text = 'running';  -- ::text: not the partial index of running jobs
