-- A table shaped like production for plan tests (sql/maintain_plans.sql and
-- test/t/013_plans.pl read it; run it in a database where awa is installed).
-- 1M jobs: 93% completed (last 24 h), 2% available, 2% scheduled, 0.5%
-- retryable, 0.5% running, 1% failed and 0.5% cancelled (last 7 days), 0.5%
-- waiting_external (parked under a callback, due within the hour); 10 queues,
-- 20 kinds, every 20th job unique.
ALTER TABLE awa.jobs DISABLE TRIGGER jobs_before_insert;
INSERT INTO awa.jobs (kind, queue, args, state, priority, attempt, max_attempts, run_at,
                      heartbeat_at, deadline_at, attempted_at, finalized_at, created_at,
                      run_lease, unique_key, unique_states, callback_key, callback_lease, callback_timeout)
SELECT 'kind_' || (i % 20), 'q' || (i % 10), jsonb_build_object('n', i), s.state,
       1 + i % 4, CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END,
       CASE s.state WHEN 'failed' THEN 1 ELSE 25 END,
       CASE s.state WHEN 'scheduled' THEN now() + (i % 3600) * interval '1 second'
                    WHEN 'retryable' THEN now() + (i % 600) * interval '1 second'
                    ELSE now() - (i % 86400) * interval '1 second' END,
       CASE WHEN s.state = 'running' THEN now() - (i % 20) * interval '1 second' END,
       CASE WHEN s.state = 'running' THEN now() + interval '5 minutes'
            WHEN s.state = 'waiting_external' THEN now() + (i % 3600) * interval '1 second' END,
       CASE WHEN s.state NOT IN ('available', 'scheduled') THEN now() - (i % 86400) * interval '1 second' END,
       CASE WHEN s.state = 'completed' THEN now() - (i % 86000) * interval '1 second'
            WHEN s.state IN ('failed', 'cancelled') THEN now() - (i % 600000) * interval '1 second' END,
       now() - (i % 86400) * interval '1 second',
       CASE WHEN s.state = 'available' THEN 0 ELSE 1 END,
       CASE WHEN i % 20 = 0 THEN decode(md5(i::text), 'hex') END,
       CASE WHEN i % 20 = 0 THEN B'11111001' END,
       CASE WHEN s.state = 'waiting_external' THEN sha256(int8send(i)) END,
       CASE WHEN s.state = 'waiting_external' THEN 1 END,
       CASE WHEN s.state = 'waiting_external' THEN interval '1 hour' END
FROM generate_series(1, 1000000) i,
     LATERAL (SELECT CASE WHEN i % 1000 < 930 THEN 'completed'
                          WHEN i % 1000 < 950 THEN 'available'
                          WHEN i % 1000 < 970 THEN 'scheduled'
                          WHEN i % 1000 < 975 THEN 'retryable'
                          WHEN i % 1000 < 980 THEN 'running'
                          WHEN i % 1000 < 990 THEN 'failed'
                          WHEN i % 1000 < 995 THEN 'cancelled'
                          ELSE 'waiting_external' END::awa.job_state AS state) s;
ALTER TABLE awa.jobs ENABLE TRIGGER jobs_before_insert;
INSERT INTO awa.queue_meta (queue, max_running) VALUES ('q5', 100);
SET default_statistics_target = 1000;
ANALYZE awa.jobs;
ANALYZE awa.queue_meta;
RESET default_statistics_target;
