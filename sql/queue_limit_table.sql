-- Per-queue concurrency limits on the table engine (the rest: queue_limit.sql, on the default ring).
-- On the table engine (awa.install_engine = table): the table's claim counts a limit's running jobs with the
-- statement's snapshot, so a limited queue refuses REPEATABLE READ; the ring's claim takes the newest snapshot in
-- every isolation level and does not refuse.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

SELECT max_running FROM awa_set_queue_limit('q', 2);
INSERT INTO awa.jobs (kind, queue) VALUES ('k', 'q');
-- the count needs a fresh snapshot: limited queues refuse REPEATABLE READ, and change nothing
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT id FROM awa_claim('q', 'w');
ROLLBACK;
SELECT state FROM awa.jobs;

DROP EXTENSION awa;
