-- Leases and hard timeouts: a claim stores its lease on the job, a job may
-- carry a hard timeout (awa_insert, awa_insert_many, COPY), and the claim's
-- deadline is the earlier of the two.
-- On the default ring engine.  Times in the past are written into the ring's receipts and beats (awa.claims,
-- awa.beats), from which awa.jobs' attempted_at, heartbeat_at and deadline_at come, as time cannot pass in a test.
-- The ring caps every deadline at now() + awa.heartbeat_timeout (90 s by default), which the table does not
-- (docs/storage.md, "Step 5: the ring becomes the default", fault 3): the setting is a day here so that the
-- deadline is the lease or the timeout as on the table; lease_table.sql checks the table's at the default setting,
-- and a job claimed before the upgrade, with no lease stored (the ring's receipts always store one).
CREATE EXTENSION awa;
SET timezone = 'UTC';
SET awa.heartbeat_timeout = '1d';

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
DELETE FROM awa.jobs;
SELECT kind FROM awa_insert('short', queue => 'l', timeout => '30 seconds');
SELECT kind FROM awa_insert('long', queue => 'l', timeout => '1 hour');
SELECT kind FROM awa_insert('none', queue => 'l');
SELECT kind, lease, deadline_at - attempted_at AS until_deadline
  FROM awa_claim('l', batch => 10, lease => '5 minutes') ORDER BY id;

-- a heartbeat renews the lease: deadline_at = heartbeat + lease, capped at
-- attempted_at + timeout (claimed 10 minutes ago here)
UPDATE awa.claims SET claimed_at = claimed_at - interval '10 minutes', deadline_at = deadline_at - interval '10 minutes';
SELECT awa_heartbeat(array_agg(id ORDER BY id), array_agg(run_lease ORDER BY id)) FROM awa.jobs;
-- (deadline_at = heartbeat_at + lease, the lease renewed from the heartbeat's time, is checked in lease_table.sql:
-- on the ring the beat's time is the clock's, its deadline the transaction's start + lease, a fault named there)
SELECT kind, deadline_at = attempted_at + timeout AS capped_by_timeout,
       heartbeat_at > attempted_at + interval '9 minutes' AS heartbeat_now
  FROM awa.jobs ORDER BY id;
SELECT awa_progress(id, run_lease, '{"step": 2}') FROM awa.jobs WHERE kind = 'long';
SELECT kind, progress, deadline_at > now() + interval '4 minutes' AS renewed FROM awa.jobs WHERE kind = 'long';

-- a job past its hard timeout is taken back although it heartbeats; one
-- whose lease ran out says so; the worker learns it from awa_heartbeat.
-- (On the ring an attempt's deadline is its latest beat's time + its lease, capped by the timeout, so the job
-- whose lease ran out has its latest beat 5 minutes and 1 second old, not now as on the table.  A job retried at
-- once is 'available' on the ring where the table shows 'retryable' until maintenance promotes it.)
UPDATE awa.claims c SET claimed_at = claimed_at - interval '1 hour' FROM awa.jobs j
 WHERE j.id = c.job_id AND j.kind = 'long';
UPDATE awa.beats b SET at = now(), deadline_at = c.claimed_at + j.timeout FROM awa.jobs j, awa.claims c
 WHERE j.id = b.job_id AND c.job_id = b.job_id AND c.run_lease = b.run_lease AND j.kind = 'long';
UPDATE awa.beats b SET at = now() - interval '5 minutes 1 second', deadline_at = now() - interval '1 second'
  FROM awa.jobs j WHERE j.id = b.job_id AND j.kind = 'none';
SELECT awa_rescue();
SELECT kind, state, errors[cardinality(errors)]->>'error' AS cause FROM awa.jobs ORDER BY id;
SELECT cardinality(awa_heartbeat(array_agg(id), array_agg(run_lease))) AS stop_these FROM awa.jobs;

-- a healthy worker that heartbeats keeps a job longer than its lease: lease
-- 2 s, a heartbeat every 0.4 s for 2.4 s, rescue running all along
DELETE FROM awa.jobs;
SELECT kind FROM awa_insert('slow', queue => 's');
SELECT id, run_lease FROM awa_claim('s', lease => '2 seconds') \gset
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT pg_sleep(0.4), awa_heartbeat(ARRAY[:id]::bigint[], ARRAY[:run_lease]::bigint[]), awa_rescue();
SELECT awa_complete(:id, :run_lease) AS completed, attempt FROM awa.jobs WHERE id = :id;

DROP EXTENSION awa;
