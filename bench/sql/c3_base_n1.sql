UPDATE bench_jobs SET state = 'running', attempt = attempt + 1, run_lease = run_lease + 1,
       attempted_at = now(), heartbeat_at = now(), deadline_at = now() + interval '5 minutes'
 WHERE id IN (SELECT id FROM bench_jobs
               WHERE queue = '@QUEUE@' AND state = 'available'
               ORDER BY priority, run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, run_lease \gset
UPDATE bench_jobs SET state = 'completed', finalized_at = now()
 WHERE id = :id AND run_lease = :run_lease AND state = 'running';
