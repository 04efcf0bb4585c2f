-- The ring's blocking claim, CALL awa.ring_claim_wait (src/ring_wait.c; docs/storage.md, "Step 5: the blocking
-- claim on the ring"), in what a transaction can show: internal like the ring; with wait 0 it is awa.ring_claim
-- (the same jobs in the same order, the same receipts); bad input is 22023 naming the field and changes nothing;
-- a positive wait inside a transaction block is refused (25001).  Its waiting (woken at commit, no snapshot held
-- while asleep, scheduled jobs, other queues) needs sessions outside a transaction block: test/t/019_ring_wait.pl.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(32);

-- the procedure through a function (jobs as a value): atomic, so only wait 0 runs
CREATE FUNCTION pg_temp.claim_wait(q text, b integer DEFAULT 1, l interval DEFAULT '5 minutes',
	w text DEFAULT NULL, wt interval DEFAULT '0')
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE j jsonb;
BEGIN
	CALL awa.ring_claim_wait(q, b, l, w, wt, j);
	RETURN j;
END $$;

SELECT ok(to_regprocedure('awa.ring_claim_wait(text, integer, interval, text, interval, jsonb)') IS NOT NULL,
	'awa.ring_claim_wait(queue, batch, lease, worker, wait, INOUT jobs) exists');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	WHERE p.oid = 'awa.ring_claim_wait(text, integer, interval, text, interval, jsonb)'::regprocedure AND p.prokind = 'p' AND a.grantee <> p.proowner), 0::bigint,
	'no role and not PUBLIC may call awa.ring_claim_wait');
SELECT throws_ok($$SELECT pg_temp.claim_wait('q')$$, '55000', NULL, 'it refuses while the ring is off');

SET LOCAL awa.ring_engine = on;
-- leases here are shorter than awa.heartbeat_timeout's default (90 s), which caps a deadline, also for a session
-- whose own setting is longer (06_ring_obs.sql tests that)

-- two queues with the same jobs (priorities and due times mixed), one claimed by each
SELECT is((SELECT count(*) FROM (SELECT awa.ring_insert('k', jsonb_build_object('n', i), q, priority => 1 + i % 3,
		run_at => now() - interval '1 hour' + (i * 7 % 5) * interval '1 minute')
	FROM generate_series(1, 6) i, unnest(ARRAY['wa', 'wb']) q) s), 12::bigint, 'twelve ready jobs in two queues');
SELECT is((SELECT count(awa.ring_insert('k', '{"n": 99}', q, run_at => now() + interval '1 hour'))
	FROM unnest(ARRAY['wa', 'wb']) q), 2::bigint, 'and one job due later in each');

-- bad input: 22023 naming the field, nothing changed
SELECT throws_ok($$SELECT pg_temp.claim_wait(NULL)$$, '22023', 'queue must not be null', 'queue NULL');
SELECT throws_ok($$SELECT pg_temp.claim_wait('')$$, '22023', 'queue must be 1 to 200 characters long', 'queue empty');
SELECT throws_ok($$SELECT pg_temp.claim_wait(repeat('x', 201))$$, '22023', 'queue must be 1 to 200 characters long',
	'queue too long');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', NULL)$$, '22023', 'batch must not be null', 'batch NULL');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 0)$$, '22023', 'batch must be between 1 and 1000', 'batch 0');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', -1)$$, '22023', 'batch must be between 1 and 1000', 'batch negative');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1001)$$, '22023', 'batch must be between 1 and 1000', 'batch 1001');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1, NULL)$$, '22023', 'lease must not be null', 'lease NULL');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1, '0')$$, '22023',
	'lease must be more than 0 and at most 36500 days, got "00:00:00"', 'lease 0');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1, '-1 s')$$, '22023',
	'lease must be more than 0 and at most 36500 days, got "-00:00:01"', 'lease negative');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1, '5 minutes', NULL, NULL)$$, '22023', 'wait must not be null',
	'wait NULL');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1, '5 minutes', NULL, '-1 s')$$, '22023',
	'wait must be between 0 and 36500 days, got "-00:00:01"', 'wait negative');
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1, '5 minutes', NULL, '36501 days')$$, '22023',
	'wait must be between 0 and 36500 days, got "36501 days"', 'wait too long');
-- a positive wait cannot sleep here: it would hold this transaction's snapshot
SELECT throws_ok($$SELECT pg_temp.claim_wait('wa', 1, '5 minutes', NULL, '1 s')$$, '25001',
	'awa.ring_claim_wait with a wait must be called outside a transaction block', 'a wait inside a transaction block');
SELECT throws_ok($$CALL awa.ring_claim_wait('wa', wait => '10 ms')$$, '25001', NULL,
	'the same for a CALL inside a transaction block');
SELECT is((SELECT count(*) FROM awa.claims), 0::bigint, 'the refused calls wrote no receipt');
SELECT is((SELECT count(*) FROM awa.scheduled), 2::bigint, '... and promoted no scheduled row');

-- wait 0: awa.ring_claim
SELECT is(pg_temp.claim_wait('empty'), NULL, 'wait 0 on an empty queue: jobs NULL at once');
SELECT is((SELECT jsonb_agg(j - 'id' - 'queue') FROM jsonb_array_elements(pg_temp.claim_wait('wa', 4, '70 seconds', 'w1')) j),
	(SELECT jsonb_agg(to_jsonb(c) - 'id' - 'queue') FROM awa.ring_claim('wb', 4, '70 seconds', 'w1') c),
	'wait 0 claims the jobs awa.ring_claim claims, in its order, with its columns');
SELECT is((SELECT array_agg(DISTINCT (c.claimed_by, c.lease, c.deadline_at - c.claimed_at)::text)
	FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id WHERE r.queue IN ('wa', 'wb')),
	ARRAY['(w1,00:01:10,00:01:10)'], 'with the same receipts: the worker and the lease');
SELECT is((SELECT count(*) FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id WHERE r.queue = 'wa'), 4::bigint,
	'four receipts for queue wa');
SELECT is((SELECT jsonb_agg(j->'args'->'n' ORDER BY (j->>'id')::bigint) FROM jsonb_array_elements(pg_temp.claim_wait('wa', 10)) j),
	(SELECT jsonb_agg(c.args->'n' ORDER BY c.id) FROM awa.ring_claim('wb', 10) c),
	'the rest of the queue, the same jobs as awa.ring_claim''s');
SELECT is(jsonb_array_length(pg_temp.claim_wait('wb', 10)), NULL, 'wb is empty too');
SELECT is(pg_temp.claim_wait('wa', 10), NULL, 'the job due later is not claimed');
SELECT is((SELECT count(*) FROM awa.claims c WHERE c.claimed_by IS NULL), 4::bigint,
	'a NULL worker: receipts without one');
CALL awa.ring_claim_wait('wa', wait => '0');
SELECT pass('CALL with wait 0 runs inside a transaction block');

SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs is untouched');

SELECT * FROM finish();
ROLLBACK;
