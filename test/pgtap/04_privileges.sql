-- Least privilege: the roles, what each may call, and that PUBLIC gets nothing.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(52);

SELECT has_role('awa_producer');
SELECT has_role('awa_worker');
SELECT has_role('awa_admin');
SELECT is((SELECT count(*) FROM pg_roles WHERE rolname LIKE 'awa\_%' AND rolcanlogin), 0::bigint, 'awa roles cannot log in');

-- every API function: SECURITY DEFINER, search_path pinned, nothing for PUBLIC
-- (the procedures commit, so they may not be: they call awa_maintain and awa_claim,
-- which are)
SELECT is(
	(SELECT count(*) FROM pg_proc WHERE proname LIKE 'awa\_%' AND prorettype <> 'trigger'::regtype
	   AND prokind = 'f' AND NOT (prosecdef AND proconfig = ARRAY['search_path=pg_catalog, pg_temp'])),
	0::bigint, 'every awa_* function is SECURITY DEFINER with search_path pinned');
SELECT is(
	(SELECT array_agg(proname::text ORDER BY proname) FROM pg_proc WHERE proname LIKE 'awa\_%' AND prokind <> 'f'),
	ARRAY['awa_claim_wait', 'awa_claim_wait', 'awa_maintain_for'], 'the awa_* procedures (awa_claim_wait: a queue, several queues)');
SELECT is(
	(SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	  WHERE p.proname LIKE 'awa\_%' AND a.grantee = 0),
	0::bigint, 'PUBLIC may execute no awa_* function');
SELECT is(
	(SELECT count(*) FROM pg_proc WHERE proname LIKE 'awa\_%' AND proacl IS NULL),
	0::bigint, 'no awa_* function keeps the default (PUBLIC) privileges');
SELECT table_privs_are('awa', 'jobs', 'public', ARRAY[]::text[], 'PUBLIC has no privilege on awa.jobs');

CREATE ROLE awa_tap_producer NOLOGIN IN ROLE awa_producer;
CREATE ROLE awa_tap_worker NOLOGIN IN ROLE awa_worker;
CREATE ROLE awa_tap_admin NOLOGIN IN ROLE awa_admin;
CREATE ROLE awa_tap_nobody NOLOGIN;

-- a producer enqueues, looks up, cancels, reads stats; nothing else
SET ROLE awa_tap_producer;
SELECT lives_ok($$SELECT awa_insert('k', queue => 'p')$$, 'producer: awa_insert');
SELECT lives_ok($$SELECT awa_insert_many('[{"kind": "k", "queue": "p"}]')$$, 'producer: awa_insert_many');
SELECT lives_ok($$INSERT INTO awa.jobs (kind, queue) VALUES ('copied', 'p')$$, 'producer: INSERT (the COPY path) with the job columns');
SELECT (awa_insert('k', queue => 'p')).id AS job_id \gset
SELECT lives_ok(format('SELECT * FROM awa_get_job(%s)', :job_id), 'producer: awa_get_job');
SELECT lives_ok($$SELECT * FROM awa_queue_stats()$$, 'producer: awa_queue_stats');
SELECT is((SELECT sum(enqueued) FROM awa_queue_history('p')), 4::numeric, 'producer: awa_queue_history, its own jobs counted');
SELECT lives_ok($$SELECT * FROM awa_cancel((awa_insert('k', queue => 'p')).id)$$, 'producer: awa_cancel');
SELECT throws_ok($$SELECT * FROM awa_claim('p')$$, '42501', NULL, 'producer cannot claim');
SELECT throws_ok($$CALL awa_claim_wait('p', wait => '0')$$, '42501', NULL, 'producer cannot CALL awa_claim_wait');
SELECT throws_ok($$SELECT * FROM awa_claim(ARRAY['p', 'q'])$$, '42501', NULL, 'producer cannot claim from several queues');
SELECT throws_ok($$SELECT awa_complete(1, 1)$$, '42501', NULL, 'producer cannot complete');
-- a callback id is a capability: a producer (a webhook handler) may resolve its job
SELECT is(awa_complete_external(gen_random_uuid(), '{}'), false, 'producer: awa_complete_external');
SELECT is(awa_heartbeat_callback(gen_random_uuid()), false, 'producer: awa_heartbeat_callback');
SELECT throws_ok($$SELECT awa_register_callback(1, 1, '1 hour')$$, '42501', NULL, 'producer cannot register a callback');
SELECT throws_ok($$SELECT awa_wait_external(1, 1)$$, '42501', NULL, 'producer cannot park a job');
SELECT throws_ok($$SELECT awa_pause_queue('other')$$, '42501', NULL, 'producer cannot pause a queue');
SELECT throws_ok($$SELECT awa_drain_queue('other')$$, '42501', NULL, 'producer cannot drain a queue');
SELECT throws_ok($$SELECT awa_set_queue_limit('other', 1)$$, '42501', NULL, 'producer cannot set a queue''s limit');
SELECT throws_ok($$SELECT * FROM awa.jobs$$, '42501', NULL, 'producer cannot read awa.jobs directly');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, state) VALUES ('k', 'completed')$$, '42501', NULL,
	'producer cannot set a state directly');
SELECT throws_ok($$UPDATE awa.queue_meta SET paused = true$$, '42501', NULL, 'producer cannot write queue_meta');
RESET ROLE;

-- a worker claims and finishes; it cannot enqueue
SET ROLE awa_tap_worker;
SELECT lives_ok($$CALL awa_claim_wait('p', wait => '0')$$, 'worker: CALL awa_claim_wait');
SELECT is((SELECT count(*) FROM awa_claim('p', batch => 10)), 3::bigint, 'worker: awa_claim');
SELECT lives_ok($$SELECT * FROM awa_claim(ARRAY['p', 'q'])$$, 'worker: awa_claim over several queues');
SELECT lives_ok($$CALL awa_claim_wait(NULL::text[], wait => '0')$$, 'worker: CALL awa_claim_wait over every queue');
SELECT throws_ok($$SELECT awa_insert('k')$$, '42501', NULL, 'worker cannot enqueue');
SELECT throws_ok($$SELECT * FROM awa_retry_failed('*')$$, '42501', NULL, 'worker cannot retry failed jobs');
SELECT throws_ok($$SELECT awa_set_queue_limit('p', 100)$$, '42501', NULL, 'worker cannot raise a queue''s limit');
SELECT is(awa_retry_external(gen_random_uuid()), NULL, 'worker: awa_retry_external');
SELECT throws_ok($$SELECT * FROM awa.history_deltas$$, '42501', NULL, 'worker cannot read the history tables directly');
RESET ROLE;
SELECT is((SELECT sum(started) FROM awa_queue_history('p')), 4::numeric, 'claims by a worker (awa_claim_wait, awa_claim) are in the history');

-- a role without a grant gets nothing
SET ROLE awa_tap_nobody;
SELECT throws_ok($$SELECT awa_insert('k')$$, '42501', NULL, 'no grant: awa_insert refused');
SELECT throws_ok($$SELECT * FROM awa_queue_stats()$$, '42501', NULL, 'no grant: awa_queue_stats refused');
SELECT throws_ok($$SELECT * FROM awa_queue_history()$$, '42501', NULL, 'no grant: awa_queue_history refused');
SELECT throws_ok($$INSERT INTO awa.jobs (kind) VALUES ('k')$$, '42501', NULL, 'no grant: no INSERT');
SELECT throws_ok($$CALL awa_claim_wait('p', wait => '0')$$, '42501', NULL, 'no grant: awa_claim_wait refused');
SELECT throws_ok($$SELECT awa_complete_external(gen_random_uuid())$$, '42501', NULL, 'no grant: awa_complete_external refused');
SELECT throws_ok($$SELECT awa_fail_external(gen_random_uuid(), 'e')$$, '42501', NULL, 'no grant: awa_fail_external refused');
SELECT throws_ok($$CALL awa_claim_wait(ARRAY['p'], wait => '0')$$, '42501', NULL, 'no grant: awa_claim_wait over several queues refused');
RESET ROLE;

-- an admin does everything
SET ROLE awa_tap_admin;
SELECT lives_ok($$SELECT awa_pause_queue('p', 'tap')$$, 'admin: pause');
SELECT lives_ok($$SELECT awa_set_queue_limit('p', 3)$$, 'admin: set a queue''s limit');
SELECT lives_ok($$SELECT count(*) FROM awa.jobs$$, 'admin: read awa.jobs');
SELECT lives_ok($$CALL awa_claim_wait('p', wait => '0')$$, 'admin: CALL awa_claim_wait');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
