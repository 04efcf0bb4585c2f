-- claim 10 + complete: bench/sql/c3_base_batch.sql, on p_base.jobs
WITH c AS (
  UPDATE p_base.jobs SET state = 'running', attempt = attempt + 1, run_lease = run_lease + 1,
         attempted_at = now(), heartbeat_at = now(), deadline_at = now() + interval '5 minutes'
   WHERE id IN (SELECT id FROM p_base.jobs
                 WHERE queue = 'vac' AND state = 'available'
                 ORDER BY priority, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED)
  RETURNING id, run_lease)
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM c \gset
UPDATE p_base.jobs SET state = 'completed', finalized_at = now()
  FROM unnest(:ids::bigint[], :leases::bigint[]) AS d(id, lease)
 WHERE p_base.jobs.id = d.id AND p_base.jobs.run_lease = d.lease AND p_base.jobs.state = 'running';
