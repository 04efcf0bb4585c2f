-- Leases and hard timeouts: a claim stores its lease on the job, a job may
-- carry a hard timeout (awa_insert, awa_insert_many, COPY), and the claim's
-- deadline is the earlier of the two.
-- On the table engine (awa.install_engine = table), not the default ring: its setup writes awa.jobs behind the
-- API (INSERT of ids and states, UPDATE, TRUNCATE, triggers or indexes of the table), which the ring's view
-- refuses; not yet rewritten through the awa_* functions.
SET awa.install_engine = 'table';
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

-- a heartbeat renews the lease: deadline_at = heartbeat + lease, capped at
-- attempted_at + timeout (claimed 10 minutes ago here)
UPDATE awa.jobs SET attempted_at = attempted_at - interval '10 minutes',
       heartbeat_at = heartbeat_at - interval '10 minutes', deadline_at = deadline_at - interval '10 minutes';
SELECT awa_heartbeat(array_agg(id ORDER BY id), array_agg(run_lease ORDER BY id)) FROM awa.jobs;
SELECT kind, deadline_at = heartbeat_at + lease AS renewed_by_lease,
       deadline_at = attempted_at + timeout AS capped_by_timeout,
       heartbeat_at > attempted_at + interval '9 minutes' AS heartbeat_now
  FROM awa.jobs ORDER BY id;
SELECT awa_progress(id, run_lease, '{"step": 2}') FROM awa.jobs WHERE kind = 'long';
SELECT kind, deadline_at = heartbeat_at + lease AS renewed_by_lease FROM awa.jobs WHERE kind = 'long';

-- a job past its hard timeout is taken back although it heartbeats; one
-- whose lease ran out says so; the worker learns it from awa_heartbeat
UPDATE awa.jobs SET attempted_at = attempted_at - interval '1 hour',
       heartbeat_at = now(), deadline_at = attempted_at - interval '1 hour' + timeout
 WHERE kind = 'long';
UPDATE awa.jobs SET heartbeat_at = now(), deadline_at = now() - interval '1 second' WHERE kind = 'none';
SELECT awa_rescue();
SELECT kind, state, errors[cardinality(errors)]->>'error' AS cause FROM awa.jobs ORDER BY id;
SELECT cardinality(awa_heartbeat(array_agg(id), array_agg(run_lease))) AS stop_these FROM awa.jobs;

-- a healthy worker that heartbeats keeps a job longer than its lease: lease
-- 2 s, a heartbeat every 0.4 s for 2.4 s, rescue running all along
TRUNCATE awa.jobs;
SELECT kind FROM awa_insert('slow', queue => 's');
SELECT id, run_lease FROM awa_claim('s', lease => '2 seconds') \gset
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT awa_complete(:id, :run_lease) AS completed, attempt FROM awa.jobs WHERE id = :id;

-- a job claimed before the upgrade has no lease stored: its first heartbeat
-- keeps the one it was claimed with (deadline_at - attempted_at)
TRUNCATE awa.jobs;
SELECT kind FROM awa_insert('old', queue => 'o');
SELECT count(*) FROM awa_claim('o', lease => '2 minutes');
UPDATE awa.jobs SET lease = NULL, attempted_at = attempted_at - interval '1 minute',
       heartbeat_at = heartbeat_at - interval '1 minute', deadline_at = deadline_at - interval '1 minute';
SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM awa.jobs;
SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM awa.jobs;
SELECT lease, deadline_at = heartbeat_at + interval '2 minutes' AS renewed FROM awa.jobs;

DROP EXTENSION awa;
