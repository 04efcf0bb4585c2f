WITH c AS (
  UPDATE bench_jobs SET state = 'running', attempt = attempt + 1, run_lease = run_lease + 1,
         attempted_at = now(), heartbeat_at = now(), deadline_at = now() + interval '5 minutes'
   WHERE id IN (SELECT id FROM bench_jobs
                 WHERE queue = '@QUEUE@' AND state = 'available'
                 ORDER BY priority, run_at, id LIMIT @BATCH@ FOR UPDATE SKIP LOCKED)
  RETURNING id, run_lease)
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM c \gset
UPDATE bench_jobs SET state = 'completed', finalized_at = now()
  FROM unnest(:ids::bigint[], :leases::bigint[]) AS d(id, lease)
 WHERE bench_jobs.id = d.id AND bench_jobs.run_lease = d.lease AND bench_jobs.state = 'running';
