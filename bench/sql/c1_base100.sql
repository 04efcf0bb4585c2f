INSERT INTO bench_jobs (kind, args) SELECT 'k', '{"n":1}' FROM generate_series(1, 100);
