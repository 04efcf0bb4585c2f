-- Per-queue concurrency limits (0.2.0): awa_set_queue_limit and awa_claim.
-- On the default ring engine: jobs are written as the view takes them (the id drawn by awa: q's eight jobs are 1 to
-- 8 as on the table); the jobs the table's version numbered 100, 101, 200 and 201 are named by their kind ('j' and
-- that number).  queue_limit_table.sql keeps the table's refusal of REPEATABLE READ.
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- bad input: each an error that changes nothing
SELECT * FROM awa_set_queue_limit('q', 0);
SELECT * FROM awa_set_queue_limit('q', -5);
SELECT * FROM awa_set_queue_limit('q', 1000001);
SELECT * FROM awa_set_queue_limit(NULL, 3);
SELECT * FROM awa_set_queue_limit('', 3);
SELECT * FROM awa_set_queue_limit(repeat('q', 201), 3);
SELECT count(*) FROM awa.queue_meta;
-- a direct write is held to the same range
INSERT INTO awa.queue_meta (queue, max_running) VALUES ('direct', 0);

-- set, change, lift: returns the queue's settings; a queue may get a limit before it has jobs
SELECT * FROM awa_set_queue_limit('q', 3);
SELECT * FROM awa_set_queue_limit('q', 2);
SELECT queue, max_running FROM awa_set_queue_limit('empty', 1000000);
SELECT queue, max_running FROM awa_set_queue_limit('empty', NULL);
SELECT queue, paused, max_running FROM awa.queue_meta ORDER BY queue;

-- jobs of q at every priority, plus another queue
INSERT INTO awa.jobs (kind, queue, priority) SELECT 'k', 'q', 4 - i % 4 FROM generate_series(1, 8) i;
INSERT INTO awa.jobs (kind, queue) VALUES ('j100', 'other');
SELECT id, priority FROM awa.jobs WHERE queue = 'q' ORDER BY priority, id;

-- at most 2 running: the best two by priority, then nothing
SELECT id, priority, state FROM awa_claim('q', 'w', batch => 10);
SELECT id FROM awa_claim('q', 'w', batch => 10);
SELECT id FROM awa_claim('q', 'w');
-- a wait on a full queue ends empty when the wait does
SELECT id FROM awa_claim('q', 'w', wait => '120 milliseconds');
-- other queues are not limited
SELECT kind FROM awa_claim('other', 'w', batch => 10);
-- a completion makes room for exactly one
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'q' AND state = 'running' ORDER BY id LIMIT 1;
SELECT id, priority FROM awa_claim('q', 'w', batch => 10);
SELECT id FROM awa_claim('q', 'w', batch => 10);
-- a failed attempt frees its slot too; its retry is not due yet
SELECT awa_fail(id, run_lease, 'boom', retry_in => '1 hour') FROM awa.jobs WHERE queue = 'q' AND state = 'running' ORDER BY id LIMIT 1;
SELECT id FROM awa_claim('q', 'w', batch => 10);

-- a lowered limit: running jobs above it finish, no new ones start
SELECT max_running FROM awa_set_queue_limit('q', 1);
SELECT count(*) AS running FROM awa.jobs WHERE queue = 'q' AND state = 'running';
SELECT id FROM awa_claim('q', 'w', batch => 10);
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'q' AND state = 'running' ORDER BY id LIMIT 1;
SELECT id FROM awa_claim('q', 'w', batch => 10);
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'q' AND state = 'running' ORDER BY id LIMIT 1;
SELECT id FROM awa_claim('q', 'w', batch => 10);

-- pause wins over the limit; resume keeps the limit
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'q' AND state = 'running';
SELECT awa_pause_queue('q', 'ops');
SELECT id FROM awa_claim('q', 'w', batch => 10);
SELECT awa_resume_queue('q');
SELECT queue, paused, max_running FROM awa.queue_meta WHERE queue = 'q';
SELECT id FROM awa_claim('q', 'w', batch => 10);

-- the count needs a fresh snapshot: on the ring the claim takes one in every isolation level (docs/storage.md,
-- "Step 5: queue flow control on the ring"), so a limited queue claims in REPEATABLE READ too, within its limit
-- (the table's refusal: queue_limit_table.sql); rolled back, it changes nothing
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'q' AND state = 'running';
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT id FROM awa_claim('q', 'w', batch => 10);
ROLLBACK;
-- (queues without a limit claim in any isolation level)
INSERT INTO awa.jobs (kind, queue) VALUES ('j101', 'other');
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT kind FROM awa_claim('other', 'w');
ROLLBACK;
SELECT count(*) AS running FROM awa.jobs WHERE queue = 'q' AND state = 'running';

-- priority aging still orders a limited queue: an old priority-4 job beats a new priority-1 one
SELECT max_running FROM awa_set_queue_limit('aged', 1);
INSERT INTO awa.jobs (kind, queue, priority, run_at) VALUES
  ('j200', 'aged', 1, now()), ('j201', 'aged', 4, now() - interval '1 day');
SELECT kind FROM awa_claim('aged', 'w', batch => 5);

-- lifting the limit lets everything through
SELECT max_running FROM awa_set_queue_limit('q', NULL);
SELECT count(*) FROM awa_claim('q', 'w', batch => 10);
SELECT queue, running FROM awa_queue_stats() ORDER BY queue;

DROP EXTENSION awa;
