-- base_cc.sql with the completion by primary key (as cursor_cc.sql): the SKIP LOCKED claim alone
WITH c AS (
  UPDATE p_base.jobs SET state = 'running', attempt = attempt + 1, run_lease = run_lease + 1,
         attempted_at = now(), heartbeat_at = now(), deadline_at = now() + interval '5 minutes'
   WHERE id IN (SELECT id FROM p_base.jobs
                 WHERE queue = 'vac' AND state = 'available'
                 ORDER BY priority, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED)
  RETURNING id, run_lease)
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM c \gset
UPDATE p_base.jobs SET state = 'completed', finalized_at = now()
 WHERE p_base.jobs.id = ANY (:ids::bigint[])
   AND (p_base.jobs.id, p_base.jobs.run_lease) IN (SELECT * FROM unnest(:ids::bigint[], :leases::bigint[]))
   AND p_base.jobs.state::text = 'running';  -- ::text: not the partial index of running jobs
