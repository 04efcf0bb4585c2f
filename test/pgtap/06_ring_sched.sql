-- The ring's scheduled jobs, retry with backoff, snooze and cancel (docs/storage.md, "Step 4: scheduled jobs,
-- backoff, snooze, cancel"): awa.scheduled, the claim's promotion, awa.ring_promote, ring_fail's backoff,
-- awa.ring_snooze, awa.ring_cancel; bad input; no ready row, receipt or done row updated or deleted.
-- now() stands still in this transaction, so a job due later is made due by moving its run_at back with an
-- UPDATE, a write behind awa's back that no floor pin covers: the claim floors are switched off here (they
-- start at the head of each lane, as after a reset); the floors with scheduled rows are the isolation specs'
-- (ring_sched_promote).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT plan(74);

SET LOCAL awa.claim_floors = off;

-- the relation and the functions: internal like the ring
SELECT is((SELECT count(*) FROM awa.scheduled), 0::bigint, 'awa.scheduled is created empty');
SELECT is((SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
	WHERE c.oid = 'awa.scheduled'::regclass AND a.grantee <> c.relowner), 0::bigint, 'no role is granted awa.scheduled');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	WHERE p.pronamespace = 'awa'::regnamespace AND p.proname IN ('ring_promote', 'ring_snooze', 'ring_cancel')
	  AND a.grantee <> p.proowner), 0::bigint, 'no role and not PUBLIC may execute ring_promote, ring_snooze, ring_cancel');
SELECT has_index('awa', 'scheduled', 'scheduled_claim_idx', ARRAY['queue', 'priority', 'run_at', 'id'],
	'scheduled rows by (queue, priority, run_at, id)');
SELECT has_index('awa', 'scheduled', 'scheduled_due_idx', ARRAY['run_at'], 'scheduled rows by run_at');
SELECT col_is_pk('awa', 'scheduled', 'id', 'one scheduled row per job');
SELECT throws_ok($$SELECT awa.ring_promote()$$, '55000', NULL, 'ring_promote refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_snooze(1, 1, '1 s')$$, '55000', NULL, 'ring_snooze refuses while the ring is off');
SELECT throws_ok($$SELECT awa.ring_cancel(1)$$, '55000', NULL, 'ring_cancel refuses while the ring is off');

SET LOCAL awa.ring_engine = on;

-- bad input: 22023 naming the field, nothing written
SELECT throws_ok($$SELECT awa.ring_promote(0)$$, '22023', 'max must be between 1 and 10000', 'promote: max 0');
SELECT throws_ok($$SELECT awa.ring_promote(10001)$$, '22023', 'max must be between 1 and 10000', 'promote: max too big');
SELECT throws_ok($$SELECT awa.ring_promote(NULL)$$, '22023', 'max must be between 1 and 10000', 'promote: max null');
SELECT throws_ok($$SELECT awa.ring_snooze(NULL, 1, '1 s')$$, '22023', 'id must not be null', 'snooze: null id');
SELECT throws_ok($$SELECT awa.ring_snooze(1, NULL, '1 s')$$, '22023', 'run_lease must not be null', 'snooze: null run_lease');
SELECT throws_ok($$SELECT awa.ring_snooze(1, 1, NULL)$$, '22023', 'delay must not be null', 'snooze: null delay');
SELECT throws_ok($$SELECT awa.ring_snooze(1, 1, '-1 s')$$, '22023',
	'delay must be between 0 and 36500 days, got "-00:00:01"', 'snooze: negative delay');
SELECT throws_ok($$SELECT awa.ring_snooze(1, 1, '36501 days')$$, '22023', NULL, 'snooze: delay too long');
SELECT throws_ok($$SELECT awa.ring_fail(1, 1, retry_in => '-1 s')$$, '22023',
	'retry_in must be between 0 and 36500 days, got "-00:00:01"', 'fail: negative retry_in');
SELECT throws_ok($$SELECT awa.ring_cancel(NULL)$$, '22023', 'id must not be null', 'cancel: null id');
SELECT throws_ok($$SELECT awa.ring_cancel(-1)$$, 'P0002', 'job -1 does not exist', 'cancel: unknown id');
SELECT is((SELECT count(*) FROM awa.scheduled) + (SELECT count(*) FROM awa.ready) + (SELECT count(*) FROM awa.done),
	0::bigint, 'bad input wrote nothing');

-- enqueue: a job due later is a scheduled row, a job due now a ready row
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
INSERT INTO j VALUES
	('later', awa.ring_insert('later', '{"a": 1}', 'sq', 2, 3, now() + interval '1 hour')),
	('now', awa.ring_insert('now', '{}', 'sq', 2, 3, now()));
SELECT results_eq($$SELECT s.run_lease, s.attempt::int, s.state::text, s.kind, s.queue, s.args, s.priority::int,
		s.max_attempts::int, s.run_at - now() FROM awa.scheduled s JOIN j USING (id) WHERE j.n = 'later'$$,
	$$VALUES (0::bigint, 0, 'scheduled', 'later', 'sq', '{"a": 1}'::jsonb, 2, 3, interval '1 hour')$$,
	'ring_insert with a future run_at writes a scheduled row (run_lease 0, attempt 0, state scheduled)');
SELECT is((SELECT count(*) FROM awa.ready r JOIN j USING (id) WHERE j.n = 'later'), 0::bigint,
	'and no ready row');
SELECT is((SELECT count(*) FROM awa.ready r JOIN j USING (id) WHERE j.n = 'now'), 1::bigint,
	'ring_insert due now writes a ready row');
SELECT is((SELECT array_agg(kind) FROM awa.ring_claim('sq', 10)), ARRAY['now'], 'a job due later is not claimed');
SELECT is((SELECT count(*) FROM awa.scheduled), 1::bigint, 'nor promoted');

-- the claim promotes due scheduled rows of its queue, in (priority, run_at, id) order with the ready rows
-- (aging off: strict priority order; aging is 06_ring_claim.sql's)
SET LOCAL awa.priority_aging_interval = 0;
INSERT INTO j VALUES
	('r1', awa.ring_insert('r1', queue => 'pq', run_at => now() - interval '3 minutes')),
	('s2', awa.ring_insert('s2', queue => 'pq', run_at => now() + interval '1 hour')),
	('r3', awa.ring_insert('r3', queue => 'pq', run_at => now() - interval '1 minute')),
	('s1p', awa.ring_insert('s1p', queue => 'pq', priority => 1, run_at => now() + interval '2 hours')),
	('s4', awa.ring_insert('s4', queue => 'pq', run_at => now() + interval '3 hours')),
	('other', awa.ring_insert('other', queue => 'oq', run_at => now() + interval '1 hour'));
UPDATE awa.scheduled SET run_at = run_at - interval '1 hour 2 minutes' WHERE id IN (SELECT id FROM j WHERE n IN ('s2', 'other'));
UPDATE awa.scheduled SET run_at = now() - interval '30 seconds' WHERE id = (SELECT id FROM j WHERE n = 's1p');
SELECT is((SELECT array_agg(c.kind ORDER BY o) FROM awa.ring_claim('pq', 3) WITH ORDINALITY c(id, run_lease, attempt, kind, queue, args, priority, run_at, o)),
	ARRAY['s1p', 'r1', 's2'], 'a claim takes due scheduled rows in order with ready rows: priority, then run_at');
SELECT results_eq($$SELECT r.slot::int, r.run_lease, r.attempt::int, c.run_lease FROM awa.ready r JOIN j USING (id)
		JOIN awa.claims c ON c.job_id = r.id AND c.slot = r.slot WHERE j.n = 's2'$$,
	$$VALUES (0, 0::bigint, 0, 1::bigint)$$, 'a promoted job: a ready row in the open slot and its receipt');
SELECT is((SELECT array_agg(j.n ORDER BY j.n) FROM awa.scheduled s JOIN j USING (id)), ARRAY['later', 'other', 's4'],
	'promoted rows leave awa.scheduled; other queues'' and future rows stay');
SELECT is((SELECT array_agg(kind) FROM awa.ring_claim('pq', 10)), ARRAY['r3'], 'the next claim takes the rest');
RESET awa.priority_aging_interval;

-- awa.ring_promote: due rows of any queue, earliest first
INSERT INTO j VALUES ('o2', awa.ring_insert('o2', queue => 'oq2', run_at => now() + interval '1 hour'));
UPDATE awa.scheduled SET run_at = now() - interval '1 minute' WHERE id = (SELECT id FROM j WHERE n = 'o2');
SELECT is(awa.ring_promote(1), 1, 'ring_promote(1) moves one row');
SELECT is((SELECT array_agg(r.queue) FROM awa.ready r JOIN j USING (id) WHERE j.n IN ('other', 'o2')), ARRAY['oq'],
	'the earliest due row first');
SELECT is(awa.ring_promote(), 1, 'ring_promote() moves the other due row');
SELECT is(awa.ring_promote(), 0, 'and nothing more: the rest is not due');
SELECT is((SELECT array_agg(kind) FROM awa.ring_claim('oq2', 10)), ARRAY['o2'], 'a promoted job is claimable');

-- ring_fail: retry after awa's default backoff (2^attempt seconds, times 1 to 1.25)
INSERT INTO j VALUES ('f', awa.ring_insert('f', queue => 'fq', max_attempts => 3, run_at => now() - interval '1 minute'));
SELECT is((SELECT count(*) FROM awa.ring_claim('fq')), 1::bigint, 'claimed (lease 1)');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 1, '{"e": 1}'), 'retryable'::awa.job_state, 'failed, retryable');
SELECT results_eq($$SELECT s.run_lease, s.attempt::int, s.state::text, s.run_at - now() BETWEEN interval '2 s' AND interval '2.5 s'
		FROM awa.scheduled s JOIN j USING (id) WHERE j.n = 'f'$$,
	$$VALUES (1::bigint, 1, 'retryable', true)$$,
	'the retry waits in awa.scheduled: run_lease = the failed lease, attempt 1, retryable, due in 2 to 2.5 s');
SELECT is((SELECT count(*) FROM awa.ready r JOIN j USING (id) WHERE j.n = 'f'), 1::bigint, 'no ready row for the retry yet');
SELECT is((SELECT count(*) FROM awa.ring_claim('fq')), 0::bigint, 'the retry is not claimed before its backoff');
UPDATE awa.scheduled SET run_at = now() - interval '1 s' WHERE id = (SELECT id FROM j WHERE n = 'f');
SELECT results_eq($$SELECT run_lease, attempt FROM awa.ring_claim('fq')$$, $$VALUES (2::bigint, 2)$$,
	'once due, the claim promotes it: lease 2, attempt 2');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 2), 'retryable'::awa.job_state, 'failed again');
SELECT ok((SELECT s.run_at - now() BETWEEN interval '4 s' AND interval '5 s' FROM awa.scheduled s JOIN j USING (id) WHERE j.n = 'f'),
	'the second backoff is 4 to 5 s');
UPDATE awa.scheduled SET run_at = now() - interval '1 s' WHERE id = (SELECT id FROM j WHERE n = 'f');
SELECT is((SELECT run_lease FROM awa.ring_claim('fq')), 3::bigint, 'claimed a third time');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'f'), 3), 'failed'::awa.job_state, 'the last attempt fails for good');
SELECT is((SELECT count(*) FROM awa.scheduled s JOIN j USING (id) WHERE j.n = 'f'), 0::bigint, 'a failed job is not scheduled');
INSERT INTO j VALUES ('g', awa.ring_insert('g', queue => 'gq', run_at => now() - interval '1 minute'));
SELECT is((SELECT count(*) FROM awa.ring_claim('gq')), 1::bigint, 'claimed');
SELECT is(awa.ring_fail((SELECT id FROM j WHERE n = 'g'), 1, retry_in => '10 minutes'), 'retryable'::awa.job_state,
	'failed with retry_in');
SELECT is((SELECT s.run_at - now() FROM awa.scheduled s JOIN j USING (id) WHERE j.n = 'g'), interval '10 minutes',
	'retry_in replaces the backoff');

-- ring_snooze: the attempt ends as snoozed, the job is scheduled without counting it
INSERT INTO j VALUES ('z', awa.ring_insert('z', queue => 'zq', run_at => now() - interval '1 minute'));
SELECT is(awa.ring_snooze((SELECT id FROM j WHERE n = 'z'), 1, '1 s'), false, 'snooze of an attempt never claimed: false');
SELECT is((SELECT count(*) FROM awa.ring_claim('zq')), 1::bigint, 'claimed');
SELECT is(awa.ring_snooze((SELECT id FROM j WHERE n = 'z'), 1, '5 minutes'), true, 'snoozed');
SELECT results_eq($$SELECT d.state::text, s.run_lease, s.attempt::int, s.state::text, s.run_at - now()
		FROM j JOIN awa.done d ON d.job_id = j.id JOIN awa.scheduled s ON s.id = j.id WHERE j.n = 'z'$$,
	$$VALUES ('scheduled', 1::bigint, 0, 'scheduled', interval '5 minutes')$$,
	'a done row ''scheduled'' for the lease; a scheduled row in 5 minutes, attempt not counted');
SELECT is(awa.ring_snooze((SELECT id FROM j WHERE n = 'z'), 1, '1 s'), false, 'snoozing the same attempt again: false');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'z')], '{1}')), 0::bigint,
	'the snoozed attempt cannot be completed');
UPDATE awa.scheduled SET run_at = now() - interval '1 s' WHERE id = (SELECT id FROM j WHERE n = 'z');
SELECT results_eq($$SELECT run_lease, attempt FROM awa.ring_claim('zq')$$, $$VALUES (2::bigint, 1)$$,
	'claimed again: lease 2, still attempt 1');
SELECT is(awa.ring_snooze((SELECT id FROM j WHERE n = 'z'), 2, '0'), true, 'snoozed for no time');
SELECT results_eq($$SELECT run_lease, attempt FROM awa.ring_claim('zq')$$, $$VALUES (3::bigint, 1)$$,
	'a snooze of 0 is due at once (a ready row): lease 3, attempt 1');

-- ring_cancel
INSERT INTO j VALUES
	('ca', awa.ring_insert('ca', queue => 'cq', run_at => now() - interval '3 minutes')),
	('cr', awa.ring_insert('cr', queue => 'cq', run_at => now() - interval '2 minutes')),
	('cs', awa.ring_insert('cs', queue => 'cq', run_at => now() + interval '1 hour')),
	('cb', awa.ring_insert('cb', queue => 'cq', run_at => now() - interval '1 minute'));
SELECT is(awa.ring_cancel((SELECT id FROM j WHERE n = 'ca')), true, 'cancel of an available job');
SELECT results_eq($$SELECT d.slot::int, d.run_lease, d.state::text FROM awa.done d JOIN j ON j.id = d.job_id WHERE j.n = 'ca'$$,
	$$VALUES (0, 1::bigint, 'cancelled')$$, 'a done row cancelled for the lease a claim would have given (1)');
SELECT is((SELECT array_agg(kind) FROM awa.ring_claim('cq', 1)), ARRAY['cr'], 'the claim skips the cancelled job');
SELECT is(awa.ring_cancel((SELECT id FROM j WHERE n = 'cr')), true, 'cancel of a running job');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'cr')], '{1}')), 0::bigint,
	'its worker can no longer complete it');
UPDATE awa.scheduled SET run_at = now() - interval '90 seconds' WHERE id = (SELECT id FROM j WHERE n = 'cs');
SELECT is(awa.ring_cancel((SELECT id FROM j WHERE n = 'cs')), true, 'cancel of a scheduled job');
SELECT results_eq($$SELECT (SELECT count(*) FROM awa.scheduled s WHERE s.id = j.id), r.run_lease, d.run_lease, d.state::text
		FROM j JOIN awa.ready r ON r.id = j.id JOIN awa.done d ON d.job_id = j.id AND d.slot = r.slot WHERE j.n = 'cs'$$,
	$$VALUES (0::bigint, 0::bigint, 1::bigint, 'cancelled')$$,
	'its scheduled row is gone; a ready row and a done row cancelled record it');
SELECT is((SELECT array_agg(kind) FROM awa.ring_claim('cq', 10)), ARRAY['cb'], 'neither cancelled job is claimed, the rest is');
SELECT is(awa.ring_cancel((SELECT id FROM j WHERE n = 'g')), true, 'cancel of a job waiting out a retry');
SELECT results_eq($$SELECT (SELECT count(*) FROM awa.scheduled s WHERE s.id = j.id), d.state::text
		FROM j JOIN awa.done d ON d.job_id = j.id AND d.run_lease = 2 WHERE j.n = 'g'$$,
	$$VALUES (0::bigint, 'cancelled')$$, 'the retry (lease 2) is cancelled');
SELECT is(ARRAY[awa.ring_cancel((SELECT id FROM j WHERE n = 'ca')), awa.ring_cancel((SELECT id FROM j WHERE n = 'f'))],
	ARRAY[false, false], 'an ended job (cancelled, failed) is not cancelled again');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY[(SELECT id FROM j WHERE n = 'cb')], '{1}')), 1::bigint,
	'completed');
SELECT is(awa.ring_cancel((SELECT id FROM j WHERE n = 'cb')), false, 'a completed job is not cancelled');

-- nothing on the hot path was updated or deleted; scheduled rows were (promotion, cancel)
SELECT is((SELECT sum(n_tup_upd + n_tup_del) FROM pg_stat_xact_user_tables
	WHERE schemaname = 'awa' AND relname ~ '^(ready|claims|done)_[0-9]+$'), 0::numeric,
	'no ready row, receipt or done row was updated or deleted');
SELECT ok((SELECT n_tup_del FROM pg_stat_xact_user_tables WHERE relid = 'awa.scheduled'::regclass) >= 8,
	'scheduled rows are deleted when promoted or cancelled');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'awa.jobs is untouched');

SELECT * FROM finish();
ROLLBACK;
