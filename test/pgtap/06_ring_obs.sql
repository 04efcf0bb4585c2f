-- A ring job's time, as awa.jobs keeps it (docs/storage.md, "Step 5: timeouts, history and lag, wake-ups on the
-- ring"): the job's timeout caps the receipt's deadline at claimed_at + timeout and a heartbeat never pushes it
-- past that; awa.heartbeat_timeout caps every deadline at now() + that setting; the rescue ends such attempts with
-- the error awa.jobs' rescue gives ("timeout exceeded", "heartbeat stale", "deadline exceeded"); history events
-- (awa.history_deltas, awa_queue_history) of ring jobs equal those of the same calls on awa.jobs and a recount of
-- the ring's rows; lag_seconds of awa_queue_stats() sees ring jobs and equals a recount (awa.ring_recount());
-- bad input changes nothing.  The rescue needs time to pass (now() is a transaction's start), so this file runs
-- statement by statement (autocommit) and drops what it created at the end.
CREATE EXTENSION IF NOT EXISTS pgtap;
-- On the table engine: this file builds the ring beside the table awa.jobs (awa.ring_* called directly, with
-- awa.ring_engine), as it was developed; a ring database's own files are 07_engine*.sql and the others.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET statement_timeout = '60s';
SET client_min_messages = error;
SELECT plan(50);

SET awa.ring_engine = on;
CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.id(k text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM j WHERE n = k $$;
-- a heartbeat of job k's first attempt (with a lease, or the claim's): its deadline less the time of its beat
-- (awa.beats.at), the lease it renewed by as capped
CREATE FUNCTION pg_temp.beat(k text, lease interval DEFAULT NULL) RETURNS interval LANGUAGE plpgsql AS $$
DECLARE
	d timestamptz := awa.ring_heartbeat(pg_temp.id(k), 1, lease);
BEGIN
	RETURN d - (SELECT max(b.at) FROM awa.beats b WHERE b.job_id = pg_temp.id(k) AND b.run_lease = 1);
END $$;
-- the receipt of a job's first attempt: its deadline less its claim time
CREATE FUNCTION pg_temp.span(k text) RETURNS interval LANGUAGE sql AS $$
	SELECT deadline_at - claimed_at FROM awa.claims WHERE job_id = pg_temp.id(k) AND run_lease = 1 $$;
-- events of a queue over the last hour, as awa_queue_history() reads them
CREATE FUNCTION pg_temp.hist(q text) RETURNS text LANGUAGE sql AS $$
	SELECT row(sum(enqueued), sum(started), sum(completed), sum(failed), sum(retried), sum(cancelled))::text
	FROM awa_queue_history(q, now() - interval '1 hour') $$;
-- wait and run samples of a queue (deltas and folded history)
CREATE FUNCTION pg_temp.samples(q text) RETURNS text LANGUAGE sql AS $$
	SELECT row(sum(wait_count), sum(run_count))::text FROM (
		SELECT wait_count, run_count FROM awa.history_deltas WHERE queue = q
		UNION ALL SELECT wait_count, run_count FROM awa.queue_history WHERE queue = q) x $$;

-- bad input: refused as awa_insert refuses it (the same code), nothing written
SELECT throws_ok($$SELECT awa.ring_insert('k', queue => 'tq', timeout => '0')$$, '22023',
	'timeout must be more than 0 and at most 36500 days, got "00:00:00"', 'ring_insert: timeout 0');
SELECT throws_ok($$SELECT awa.ring_insert('k', queue => 'tq', timeout => '-1 second')$$, '22023',
	'timeout must be more than 0 and at most 36500 days, got "-00:00:01"', 'ring_insert: negative timeout');
SELECT throws_ok($$SELECT awa.ring_insert('k', queue => 'tq', timeout => '36501 days')$$, '22023',
	'timeout must be more than 0 and at most 36500 days, got "36501 days"', 'ring_insert: timeout over 36500 days');
SELECT is((SELECT count(*) FROM awa.ready) + (SELECT count(*) FROM awa.scheduled)
	+ (SELECT count(*) FROM awa.history_deltas), 0::bigint, 'bad input wrote nothing (no job, no history)');

-- the claim: a job's timeout caps the receipt's deadline at claimed_at + timeout, as awa.jobs' claim does (leases
-- here are shorter than awa.heartbeat_timeout's default, 90 s, which caps every deadline: below)
SET awa.heartbeat_timeout = '1d';
INSERT INTO j VALUES ('t30', awa.ring_insert('k', queue => 'tq', timeout => '30 seconds')),
	('t0', awa.ring_insert('k', queue => 'tq')),
	('t9', awa.ring_insert('k', queue => 'tq', timeout => '85 seconds'));
INSERT INTO j SELECT 'a30', (awa_insert('k', queue => 'aq', timeout => '30 seconds')).id;
SELECT is((SELECT count(*) FROM awa.ring_claim('tq', 3, '80 seconds', 'w')), 3::bigint, 'three claimed, lease 80 seconds');
SELECT is(pg_temp.span('t30'), interval '30 seconds', 'a timeout shorter than the lease caps the deadline');
SELECT is(pg_temp.span('t0'), interval '80 seconds', 'no timeout: the lease');
SELECT is(pg_temp.span('t9'), interval '80 seconds', 'a timeout longer than the lease: the lease');
SELECT is((SELECT deadline_at - attempted_at FROM awa.ring_jobs WHERE id = pg_temp.id('t30')), interval '30 seconds',
	'the view shows the capped deadline');
SELECT is((SELECT deadline_at - attempted_at FROM awa_claim('aq', 'w', 1, '5 minutes')), interval '30 seconds',
	'as awa.jobs'' claim caps it');
SELECT is((SELECT timeout FROM awa.ring_jobs WHERE id = pg_temp.id('t30')), interval '30 seconds',
	'the view shows the job''s timeout');
SELECT awa_complete(pg_temp.id('a30'), 1);

-- a heartbeat never pushes the deadline past claimed_at + timeout
SELECT is(awa.ring_heartbeat(pg_temp.id('t30'), 1, '1 hour'),
	(SELECT claimed_at + interval '30 seconds' FROM awa.claims WHERE job_id = pg_temp.id('t30')),
	'a heartbeat with a longer lease: claimed_at + timeout');
SELECT is(awa.ring_heartbeat(pg_temp.id('t9'), 1, '1 hour'),
	(SELECT claimed_at + interval '85 seconds' FROM awa.claims WHERE job_id = pg_temp.id('t9')),
	'a heartbeat reaching past the timeout: claimed_at + timeout');
SELECT is(pg_temp.beat('t0', '85 seconds'), interval '85 seconds',
	'no timeout: the time of the beat + the lease');
SELECT is((SELECT deadline_at FROM awa.ring_attempt_lease(pg_temp.id('t30'), 1)),
	(SELECT claimed_at + interval '30 seconds' FROM awa.claims WHERE job_id = pg_temp.id('t30')),
	'the attempt''s deadline stays capped');
SELECT is(pg_temp.beat('t30', '1 second'), interval '1 second',
	'a heartbeat with a lease ending sooner: the time of the beat + the lease');
SELECT is((SELECT count(*) FROM awa.ring_complete_many(ARRAY(SELECT id FROM j WHERE n IN ('t30', 't0', 't9')),
	'{1,1,1}')), 3::bigint, 'the three complete');

-- awa.heartbeat_timeout caps every deadline at now() + that setting, never more than its default (awa.jobs rescues
-- a job whose heartbeat is older than the rescuer's setting, whatever its lease and the claimer's setting; the
-- rescue walks these deadlines: docs/storage.md, "Step 5: closing the ring's known races")
INSERT INTO j VALUES ('d1', awa.ring_insert('k', queue => 'dq1'));
SELECT is((SELECT count(*) FROM awa.ring_claim('dq1', 1, '5 minutes')), 1::bigint, 'd1 claimed, lease 5 minutes, setting 1 day');
SELECT is(pg_temp.span('d1'), interval '90 seconds', 'a session''s setting longer than its default: capped at the default');
SELECT count(*) FROM awa.ring_complete_many(ARRAY[pg_temp.id('d1')], '{1}');
SET awa.heartbeat_timeout = '90s';
INSERT INTO j VALUES ('h1', awa.ring_insert('k', queue => 'hq')), ('h2', awa.ring_insert('k', queue => 'hq')),
	('h3', awa.ring_insert('k', queue => 'hq2', timeout => '1 minute'));
SELECT is((SELECT count(*) FROM awa.ring_claim('hq', 1, '5 minutes')), 1::bigint, 'h1 claimed, lease 5 minutes');
SELECT is(pg_temp.span('h1'), interval '90 seconds', 'the claim caps the deadline at awa.heartbeat_timeout');
SELECT is((SELECT count(*) FROM awa.ring_claim('hq', 1, '10 seconds')), 1::bigint, 'h2 claimed, lease 10 seconds');
SELECT is(pg_temp.span('h2'), interval '10 seconds', 'a lease shorter than the setting: the lease');
SELECT is((SELECT count(*) FROM awa.ring_claim('hq2', 1, '5 minutes')), 1::bigint, 'h3 claimed, lease 5 minutes');
SELECT is(pg_temp.span('h3'), interval '1 minute', 'a timeout shorter than both: the timeout');
SELECT is(pg_temp.beat('h1'), interval '90 seconds',
	'a heartbeat with the claim''s lease: the time of the beat + awa.heartbeat_timeout');
SELECT is(pg_temp.beat('h1', '1 hour'), interval '90 seconds',
	'a heartbeat with a longer lease: the time of the beat + awa.heartbeat_timeout');
-- the capped deadline is the rescue's key only: the view shows awa.jobs' deadline, the latest beat + its lease
SELECT is((SELECT deadline_at - heartbeat_at FROM awa.ring_jobs WHERE id = pg_temp.id('h1')), interval '1 hour',
	'the view shows the latest beat + its lease (1 hour), not the capped key');

-- (h1, h2, h3 end here: a slow machine must not let the rescue below find them due)
SELECT count(*) FROM awa.ring_complete_many(ARRAY[pg_temp.id('h1'), pg_temp.id('h2'), pg_temp.id('h3')], '{1,1,1}');

-- the rescue ends them with awa.jobs' causes; the same calls on awa.jobs for comparison (awa.heartbeat_timeout
-- 1 second for both: a lease of an hour is "heartbeat stale" after it, a lease of 1 ms "deadline exceeded", a
-- timeout of 1 ms "timeout exceeded", also when a heartbeat came after it)
SET awa.heartbeat_timeout = '1s';
INSERT INTO j VALUES ('rt', awa.ring_insert('k', queue => 'rsq', timeout => '1 millisecond')),
	('rh', awa.ring_insert('k', queue => 'rsq', args => '{"n": 2}')),
	('rb', awa.ring_insert('k', queue => 'rsq', args => '{"n": 3}', timeout => '700 milliseconds'));
INSERT INTO j VALUES ('rd', awa.ring_insert('k', queue => 'rsd'));
INSERT INTO j SELECT 'at', (awa_insert('k', queue => 'asq', timeout => '1 millisecond')).id;
INSERT INTO j SELECT 'ah', (awa_insert('k', queue => 'asq', args => '{"n": 2}')).id;
INSERT INTO j SELECT 'ad', (awa_insert('k', queue => 'asd')).id;
SELECT is((SELECT count(*) FROM awa.ring_claim('rsq', 3, '1 hour')) + (SELECT count(*) FROM awa.ring_claim('rsd', 1, '1 millisecond'))
	+ (SELECT count(*) FROM awa_claim('asq', 'w', 2, '1 hour')) + (SELECT count(*) FROM awa_claim('asd', 'w', 1, '1 millisecond')),
	7::bigint, 'seven attempts claimed (four ring, three awa.jobs)');
SELECT pg_sleep(0.8);
SELECT isnt(awa.ring_heartbeat(pg_temp.id('rb'), 1, '1 hour'), NULL, 'rb heartbeats after its timeout passed');
SELECT pg_sleep(0.4);
SELECT is(awa.ring_rescue() + awa_rescue(), 7::bigint, 'the rescues end all seven');
SELECT is((SELECT array_agg(j.n || ':' || d.state || ':' || (d.error #>> '{}') ORDER BY j.n) FROM awa.done d
	JOIN j ON j.id = d.job_id WHERE j.n IN ('rt', 'rh', 'rb', 'rd')),
	ARRAY['rb:retryable:timeout exceeded', 'rd:retryable:deadline exceeded', 'rh:retryable:heartbeat stale',
		'rt:retryable:timeout exceeded'],
	'ring: "timeout exceeded" (also after a heartbeat), "heartbeat stale", "deadline exceeded"');
SELECT is((SELECT array_agg(j.n || ':' || a.state || ':' || (a.errors[1] ->> 'error') ORDER BY j.n) FROM awa.jobs a
	JOIN j ON j.id = a.id WHERE j.n IN ('at', 'ah', 'ad')),
	ARRAY['ad:retryable:deadline exceeded', 'ah:retryable:heartbeat stale', 'at:retryable:timeout exceeded'],
	'the same causes as awa.jobs'' rescue gives');
SELECT is((SELECT array_agg(r.run_lease ORDER BY r.id) FROM awa.ready r WHERE r.id IN (pg_temp.id('rt'), pg_temp.id('rh'))
	AND r.run_lease = 1 AND r.run_at <= now()), '{1,1}', 'their retries are due now');
RESET awa.heartbeat_timeout;

-- history: the same calls on the ring (queue hr) and on awa.jobs (queue ha) give the same events: 8 enqueued (one
-- due later, one due in the past), 4 claimed; the first completed, the second failed and retried now, the third
-- failed for good, the fourth cancelled while running; an available one cancelled; the rest and the retry
-- claimed and completed; the one due later promoted when due, claimed and completed
INSERT INTO j SELECT 'hr' || n, awa.ring_insert('k', queue => 'hr', args => jsonb_build_object('n', n),
	run_at => CASE n WHEN 7 THEN now() + interval '1.5 seconds' WHEN 8 THEN now() - interval '1 hour' END)
	FROM generate_series(1, 8) n;
INSERT INTO j SELECT 'ha' || n, (awa_insert('k', queue => 'ha', args => jsonb_build_object('n', n),
	run_at => CASE n WHEN 7 THEN now() + interval '1.5 seconds' WHEN 8 THEN now() - interval '1 hour' END)).id
	FROM generate_series(1, 8) n;
CREATE TEMP TABLE c AS SELECT 'hr' AS q, id, run_lease FROM awa.ring_claim('hr', 4, '1 hour');
INSERT INTO c SELECT 'ha', id, run_lease FROM awa_claim('ha', 'w', 4, '1 hour');
SELECT is((SELECT array_agg(j.n ORDER BY j.n) FROM c JOIN j USING (id)),
	ARRAY['ha1', 'ha2', 'ha3', 'ha8', 'hr1', 'hr2', 'hr3', 'hr8'], 'the same four claimed on each');
SELECT awa.ring_complete_many(ARRAY[pg_temp.id('hr8')], '{1}'), awa_complete(pg_temp.id('ha8'), 1);
SELECT awa.ring_fail(pg_temp.id('hr1'), 1, '"e"', retry_in => '0'), awa_fail(pg_temp.id('ha1'), 1, 'e', retry_in => '0');
SELECT awa.ring_fail(pg_temp.id('hr2'), 1, '"e"', retry => false), awa_fail(pg_temp.id('ha2'), 1, 'e', terminal => true);
SELECT awa.ring_cancel(pg_temp.id('hr3')), awa_cancel(pg_temp.id('ha3'));
SELECT awa.ring_cancel(pg_temp.id('hr4')), awa_cancel(pg_temp.id('ha4'));
SELECT pg_sleep(1.6);
SELECT is(awa.ring_promote(10), 1, 'hr7 promoted when due');
SELECT is((SELECT count(*) FROM (SELECT awa.ring_complete_many(array_agg(id), array_agg(run_lease))
	FROM awa.ring_claim('hr', 10, '1 hour')) x), 4::bigint, 'ring: the rest claimed and completed');
SELECT is((SELECT count(*) FILTER (WHERE awa_complete(id, run_lease)) FROM awa_claim('ha', 'w', 10, '1 hour')), 4::bigint,
	'awa.jobs: the rest claimed and completed');
SELECT is((SELECT array_agg(state || ':' || count ORDER BY state::text) FROM (SELECT state, count(*) FROM awa.ring_jobs
	WHERE queue = 'hr' GROUP BY 1) x), ARRAY['cancelled:2', 'completed:5', 'failed:1'], 'ring: every job ended');
SELECT is(pg_temp.hist('hr'), '(8,8,5,1,1,2)',
	'ring: enqueued 8, started 8, completed 5, failed 1, retried 1, cancelled 2');
SELECT is(pg_temp.hist('hr'), pg_temp.hist('ha'), 'the same events as on awa.jobs');
SELECT is(pg_temp.samples('hr'), pg_temp.samples('ha'), 'the same wait and run samples as on awa.jobs');
-- a recount of the ring's rows, by minute: receipts (started), done rows by state and finalized_at
SELECT is((SELECT array_agg(row(bucket_start, started, completed, failed, cancelled)::text ORDER BY bucket_start)
	FROM awa_queue_history('hr', now() - interval '1 hour') WHERE started + completed + failed + cancelled > 0),
	(SELECT array_agg(row(m, s, c, f, x)::text ORDER BY m) FROM (
		SELECT m, sum(s) AS s, sum(c) AS c, sum(f) AS f, sum(x) AS x FROM (
			SELECT date_trunc('minute', cl.claimed_at) AS m, 1 AS s, 0 AS c, 0 AS f, 0 AS x FROM awa.claims cl
			JOIN j ON j.id = cl.job_id AND j.n LIKE 'hr%'
			UNION ALL
			SELECT date_trunc('minute', d.finalized_at), 0, (d.state = 'completed')::int, (d.state = 'failed')::int,
				(d.state = 'cancelled')::int FROM awa.done d JOIN j ON j.id = d.job_id AND j.n LIKE 'hr%') y
		GROUP BY m) z),
	'ring: started by minute of the claim, ended by minute of finalized_at, as a recount of its rows');

-- lag_seconds: the oldest available job, of either engine, exact (a recount: awa.ring_recount()); aging off:
-- strict priority order (aging is 06_ring_claim.sql's)
SET awa.priority_aging_interval = 0;
INSERT INTO j VALUES ('l1', awa.ring_insert('k', queue => 'lq', priority => 1, run_at => now() - interval '1 minute')),
	('l2', awa.ring_insert('k', queue => 'lq', priority => 2, run_at => now() - interval '10 minutes')),
	('l3', awa.ring_insert('k', queue => 'lq', priority => 2, run_at => now() - interval '5 minutes'));
CREATE FUNCTION pg_temp.lag_of(k text) RETURNS float8 LANGUAGE sql AS $$
	SELECT greatest(extract(epoch FROM now()) - extract(epoch FROM run_at), 0)::float8
	FROM (SELECT run_at FROM awa.ring_jobs WHERE id = pg_temp.id(k) UNION ALL SELECT run_at FROM awa.jobs
		WHERE id = pg_temp.id(k)) x $$;
SELECT is((SELECT lag_seconds FROM awa_queue_stats() WHERE queue = 'lq'), pg_temp.lag_of('l2'),
	'ring jobs only: the lag of the oldest (10 minutes)');
SELECT is((SELECT array_agg(id) FROM awa.ring_claim('lq', 2)), ARRAY[pg_temp.id('l1'), pg_temp.id('l2')],
	'priority 1 first, then the oldest of priority 2');
SELECT is((SELECT lag_seconds FROM awa_queue_stats() WHERE queue = 'lq'), pg_temp.lag_of('l3'),
	'the claimed ones no longer count (the floor passed them): 5 minutes');
-- the caller's own uncommitted job below the lane's floor (its pin comes at commit): counted
BEGIN;
INSERT INTO j VALUES ('lo', awa.ring_insert('k', queue => 'lq', priority => 2, run_at => now() - interval '30 minutes'));
SELECT is((SELECT lag_seconds FROM awa_queue_stats() WHERE queue = 'lq'), pg_temp.lag_of('lo'),
	'the caller''s own new job below the floor: its lag (30 minutes)');
SELECT is((SELECT count(*) FROM awa.ring_recount()), 0::bigint, 'and that equals a recount');
ROLLBACK;
INSERT INTO j SELECT 'la', (awa_insert('k', queue => 'lq', run_at => now() - interval '20 minutes')).id;
SELECT is((SELECT lag_seconds FROM awa_queue_stats() WHERE queue = 'lq'), pg_temp.lag_of('la'),
	'an older awa.jobs job of the queue: its lag');
SELECT is((SELECT count(*) FROM awa.ring_recount()), 0::bigint, 'the counts and lags equal a recount');

DROP EXTENSION awa;
SELECT * FROM finish();
