-- Leases and hard timeouts: a claim stores its lease on the job, a job may
-- carry a hard timeout (awa_insert, awa_insert_many, COPY), and the claim's
-- deadline is the earlier of the two.
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- timeout on every enqueue path; stored as given
SELECT kind, timeout FROM awa_insert('t1', timeout => '90 seconds');
SELECT kind, timeout FROM awa_insert('t2', timeout => '1 day', unique_by_args => true);
SELECT kind, timeout FROM awa_insert_many('[{"kind": "t3", "timeout": "2 hours"}, {"kind": "t4", "timeout": 30}, {"kind": "t5"}]');
COPY awa.jobs (kind, timeout) FROM STDIN;
t6	10 minutes
t7	\N
\.
SELECT kind, timeout FROM awa.jobs WHERE kind IN ('t6', 't7') ORDER BY kind;

-- bad timeouts: a clear error, nothing written
SELECT count(*) FROM awa.jobs;
SELECT awa_insert('bad', timeout => '0 seconds');
SELECT awa_insert('bad', timeout => '-1 hour');
SELECT awa_insert('bad', timeout => '36501 days');
SELECT awa_insert('bad', timeout => '300000 years');
SELECT * FROM awa_insert_many('[{"kind": "ok"}, {"kind": "bad", "timeout": -5}]');
SELECT * FROM awa_insert_many('[{"kind": "bad", "timeout": "soon"}]');
SELECT * FROM awa_insert_many('[{"kind": "bad", "timeout": null}]');
SELECT * FROM awa_insert_many('[{"kind": "bad", "timeout": true}]');
\set VERBOSITY terse
COPY awa.jobs (kind, timeout) FROM STDIN;
bad	-1 second
\.
\set VERBOSITY default
SELECT count(*) FROM awa.jobs;

-- a claim stores its lease; the deadline is lease or timeout, the earlier
TRUNCATE awa.jobs;
SELECT kind FROM awa_insert('short', queue => 'l', timeout => '30 seconds');
SELECT kind FROM awa_insert('long', queue => 'l', timeout => '1 hour');
SELECT kind FROM awa_insert('none', queue => 'l');
SELECT kind, lease, deadline_at - attempted_at AS until_deadline
  FROM awa_claim('l', batch => 10, lease => '5 minutes') ORDER BY id;

DROP EXTENSION awa;
