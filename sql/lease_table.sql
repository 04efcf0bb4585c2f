-- Leases on the table engine (the rest: lease.sql, on the default ring): a claim's deadline is the lease or the
-- job's timeout, the earlier, at the default awa.heartbeat_timeout; a heartbeat renews it to exactly its time +
-- the lease; a job claimed before the upgrade.
-- On the table engine (awa.install_engine = table), because of faults of the ring (docs/storage.md, "Step 5: the
-- regression files on the ring"): the ring caps every deadline at now() + awa.heartbeat_timeout, 90 s by default
-- ("Step 5: the ring becomes the default", fault 3); a ring heartbeat stores its time from the clock but its
-- deadline from its transaction's start + the lease, so deadline_at = heartbeat_at + lease does not hold (short by
-- the transaction's age).  And the ring's receipts always store a lease: a job with none exists only in the table.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- a claim stores its lease; the deadline is lease or timeout, the earlier
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

-- a job claimed before the upgrade has no lease stored: its first heartbeat
-- keeps the one it was claimed with (deadline_at - attempted_at)
DELETE FROM awa.jobs;
SELECT kind FROM awa_insert('old', queue => 'o');
SELECT count(*) FROM awa_claim('o', lease => '2 minutes');
UPDATE awa.jobs SET lease = NULL, attempted_at = attempted_at - interval '1 minute',
       heartbeat_at = heartbeat_at - interval '1 minute', deadline_at = deadline_at - interval '1 minute';
SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM awa.jobs;
SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM awa.jobs;
SELECT lease, deadline_at = heartbeat_at + interval '2 minutes' AS renewed FROM awa.jobs;

DROP EXTENSION awa;
