-- awa_queue_stats on the ring engine (src/ring_obs.c, src/floor.c; docs/storage.md, "Step 5: stats and admin reads
-- in constant time on the ring"): in a database created with awa.install_engine = ring, every column equals a
-- recount of awa.jobs at the caller's snapshot -- after claims (a claimed head), completions and cancels (a dead
-- head), with floors reset (what a restart leaves: no floor in shared memory), without floors, under a REPEATABLE
-- READ snapshot of the caller while another session claims the oldest jobs and raises the floors past them, and
-- while another session holds such a snapshot.  Another session's claims need committed rows, so this file runs
-- statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS dblink;
SET awa.install_engine = 'ring';
CREATE EXTENSION awa;
SET client_min_messages = warning;
SET statement_timeout = '20s';
SELECT plan(42);

-- awa_queue_stats' row of the queue next to a recount of the view with the same expressions, in one statement (one
-- snapshot, one now()): the rows that differ (none when equal)
CREATE FUNCTION pg_temp.drift(q text) RETURNS SETOF text LANGUAGE sql AS $$
	WITH s AS (SELECT * FROM awa_queue_stats() WHERE queue = q),
	r AS (SELECT count(*) FILTER (WHERE state IN ('scheduled', 'available', 'running', 'retryable',
			'waiting_external')) AS total_queued,
		count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
		count(*) FILTER (WHERE state = 'available') AS available,
		count(*) FILTER (WHERE state = 'retryable') AS retryable,
		count(*) FILTER (WHERE state = 'running') AS running,
		count(*) FILTER (WHERE state = 'waiting_external') AS waiting_external,
		count(*) FILTER (WHERE state = 'failed') AS failed,
		count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
		count(*) FILTER (WHERE state = 'completed' AND finalized_at > now() - interval '1 hour') AS completed_last_hour,
		CASE WHEN count(*) FILTER (WHERE state = 'available') > 0 THEN
			greatest(extract(epoch FROM now()) - extract(epoch FROM min(run_at) FILTER (WHERE state = 'available')),
				0)::float8 END AS lag_seconds
		FROM awa.jobs WHERE queue = q)
	SELECT format('stats %s, recount %s', s, r) FROM s FULL JOIN r ON true
	WHERE (s.total_queued, s.scheduled, s.available, s.retryable, s.running, s.waiting_external, s.failed,
		s.cancelled, s.completed_last_hour, s.lag_seconds)
		IS DISTINCT FROM (r.total_queued, r.scheduled, r.available, r.retryable, r.running, r.waiting_external,
		r.failed, r.cancelled, r.completed_last_hour, r.lag_seconds) $$;
-- the oldest available job of the queue, as the view sees it
CREATE FUNCTION pg_temp.oldest(q text) RETURNS bigint LANGUAGE sql AS $$
	SELECT id FROM awa.jobs WHERE queue = q AND state = 'available' ORDER BY run_at, id LIMIT 1 $$;

-- 40 jobs of queue 'st' due in the past, an hour apart from 60 hours ago down, priorities 2 and 3 taking turns
-- (the oldest of each priority behind the other's); 5 more due later
SELECT is((SELECT count(awa_insert('k', jsonb_build_object('n', i), queue => 'st', priority => 2 + i % 2,
		run_at => now() - (60 - i) * interval '1 hour')) FROM generate_series(0, 39) i), 40::bigint, '40 jobs due');
SELECT is((SELECT count(awa_insert('k', queue => 'st', run_at => now() + interval '1 day'))
		FROM generate_series(1, 5)), 5::bigint, '5 scheduled');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount: nothing claimed');

-- a claimed head: the oldest 10 run
CREATE TEMP TABLE c AS SELECT id, run_lease FROM awa_claim('st', batch => 10);
SELECT is((SELECT count(*) FROM c), 10::bigint, '10 claimed');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount: the head claimed');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'and again (from the floors the first raised)');
-- a dead head: 6 completed, 2 failed for good, and the oldest available cancelled
SELECT is((SELECT count(*) FILTER (WHERE awa_complete(id, run_lease)) FROM (SELECT * FROM c ORDER BY id LIMIT 6) x),
	6::bigint, '6 completed');
SELECT is((SELECT count(awa_fail(id, run_lease, 'boom', terminal => true))
		FROM (SELECT * FROM c ORDER BY id OFFSET 6 LIMIT 2) x), 2::bigint, '2 failed');
SELECT is((SELECT count(*) FROM awa_cancel(pg_temp.oldest('st'))), 1::bigint, 'the oldest available cancelled');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount: the head completed, failed, cancelled');

-- floors reset (a restart leaves none; a claim resets them every awa.claim_floor_reset): the stats' walk starts
-- at the head of what the reset left, then raises them
SET awa.claim_floor_reset = 1;
SELECT pg_sleep(1.1);
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount: floors due for a reset (a reader leaves them)');
SELECT is((SELECT count(*) FROM awa_claim('st', batch => 1)), 1::bigint, 'a claim resets them (and takes one)');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount: floors reset');
RESET awa.claim_floor_reset;
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'and again');
SET awa.claim_floors = off;
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount: without floors');
RESET awa.claim_floors;

-- this transaction's own job below the floors, not committed
BEGIN;
SELECT is((SELECT count(*) FROM awa_insert('own', queue => 'st', run_at => now() - interval '100 hours')), 1::bigint,
	'a job of this transaction older than all');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount: it is the oldest');
ROLLBACK;

-- the caller's REPEATABLE READ snapshot while another session claims the oldest and raises the floors past them
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database(),
	current_user));
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'REPEATABLE READ: stats = recount');
CREATE TEMP TABLE rr_oldest AS SELECT pg_temp.oldest('st') AS id;
SELECT is((SELECT n FROM dblink('other', $$SELECT count(*) FROM awa_claim('st', batch => 5)$$) AS t(n bigint)),
	5::bigint, 'the other session claims the 5 oldest (committed)');
SELECT is((SELECT n FROM dblink('other', $$SELECT count(*) FROM awa_queue_stats()$$) AS t(n bigint)), 1::bigint,
	'and reads the stats (its walk raises the floors past them)');
SELECT isnt((SELECT n FROM dblink('other', $$SELECT id FROM awa.jobs WHERE queue = 'st' AND state = 'available'
		ORDER BY run_at, id LIMIT 1$$) AS t(n bigint)), (SELECT id FROM rr_oldest),
	'to it the oldest available is another');
SELECT is(pg_temp.oldest('st'), (SELECT id FROM rr_oldest), 'this snapshot still sees the old oldest available');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'REPEATABLE READ: stats = recount at this snapshot, not the newest');
COMMIT;
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'after it: stats = recount');

-- another session holds a REPEATABLE READ snapshot (and an xid) while this one claims, completes and reads
SELECT dblink_exec('other', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT is((SELECT n FROM dblink('other', $$SELECT txid_current() > 0$$) AS t(n boolean)), true,
	'another session holds a snapshot and an xid');
SELECT is((SELECT count(awa_complete(id, run_lease)) FROM awa_claim('st', batch => 3)), 3::bigint,
	'3 more claimed and completed');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'stats = recount while the snapshot is held');
SELECT is_empty($$SELECT pg_temp.drift('st')$$, 'and again');
SELECT dblink_exec('other', 'COMMIT');
SELECT dblink_disconnect('other');

-- awa_health_check on the ring: stale heartbeats and the oldest available job as a recount of the view has them
CREATE FUNCTION pg_temp.health_drift() RETURNS SETOF text LANGUAGE sql AS $$
	WITH h AS (SELECT stale_heartbeats, oldest_available_seconds FROM awa_health_check()),
	r AS (SELECT count(*) FILTER (WHERE state = 'running'
			AND heartbeat_at < now() - current_setting('awa.heartbeat_timeout')::interval) AS stale,
		CASE WHEN count(*) FILTER (WHERE state = 'available') > 0 THEN
			greatest(extract(epoch FROM now()) - extract(epoch FROM min(run_at) FILTER (WHERE state = 'available')),
				0)::float8 END AS oldest
		FROM awa.jobs)
	SELECT format('health %s, recount %s', h, r) FROM h, r
	WHERE (h.stale_heartbeats, h.oldest_available_seconds) IS DISTINCT FROM (r.stale, r.oldest) $$;
SELECT is((SELECT count(awa_complete(id, run_lease)) FROM awa.jobs WHERE queue = 'st' AND state = 'running'),
	8::bigint, 'the running jobs of st complete');
SELECT is((SELECT count(*) FROM awa_insert_many('[{"kind": "h", "queue": "hq"}, {"kind": "h", "queue": "hq"},
	{"kind": "h", "queue": "hq"}]')), 3::bigint, 'three jobs of another queue');
CREATE TEMP TABLE hc AS SELECT id, run_lease FROM awa_claim('hq', batch => 3);
SELECT is((SELECT count(*) FROM hc), 3::bigint, 'they run');
SELECT is((SELECT stale_heartbeats FROM awa_health_check()), 0::bigint, 'no stale heartbeat yet');
SELECT is_empty($$SELECT pg_temp.health_drift()$$, 'health = recount: nothing stale');
SELECT pg_sleep(1.2);
SELECT is(cardinality(awa_heartbeat((SELECT array_agg(id) FROM (SELECT id FROM hc ORDER BY id LIMIT 1) x),
	(SELECT array_agg(run_lease) FROM (SELECT run_lease FROM hc ORDER BY id LIMIT 1) x))), 0,
	'one beats (no id returned: it still runs)');
SET awa.heartbeat_timeout = 1;
SELECT is((SELECT stale_heartbeats FROM awa_health_check()), 2::bigint,
	'awa.heartbeat_timeout 1 s: the two that did not beat are stale');
SELECT is_empty($$SELECT pg_temp.health_drift()$$, 'health = recount: stale heartbeats, oldest available');
SELECT pg_sleep(1.2);
SELECT is((SELECT stale_heartbeats FROM awa_health_check()), 3::bigint, 'a second later the one that beat too');
SELECT is_empty($$SELECT pg_temp.health_drift()$$, 'health = recount');
RESET awa.heartbeat_timeout;
SELECT is((SELECT count(awa_complete(id, run_lease)) FROM hc), 3::bigint, 'they complete');
SELECT is((SELECT stale_heartbeats FROM awa_health_check()), 0::bigint, 'none stale');
SELECT is_empty($$SELECT pg_temp.health_drift()$$, 'health = recount at the end');

SELECT is_empty($$SELECT * FROM awa.ring_recount()$$, 'the counters equal a recount at the end');

SELECT * FROM finish();
DROP EXTENSION awa;
RESET awa.install_engine;
