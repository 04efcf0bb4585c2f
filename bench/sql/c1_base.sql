INSERT INTO bench_jobs (kind, args) VALUES ('k', '{"n":1}');
