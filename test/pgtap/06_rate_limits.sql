-- Rate limits of queues: awa_set_queue_rate's contract, claims that stop at the rate (single and
-- multi-queue, batches that take only what fits), jobs over the limit kept, awa_queue_limits.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(51);

-- signatures and markings
SELECT function_returns('public', 'awa_set_queue_rate', ARRAY['text', 'integer', 'interval'], 'awa.queue_meta');
SELECT function_returns('public', 'awa_queue_limits', ARRAY[]::text[], 'setof record');
SELECT volatility_is('public', 'awa_set_queue_rate', ARRAY['text', 'integer', 'interval'], 'volatile');
SELECT has_column('awa', 'queue_meta', 'rate_max_claims', 'queue_meta.rate_max_claims');
SELECT has_column('awa', 'queue_meta', 'rate_period', 'queue_meta.rate_period');

-- bad limits: 22023 naming the field, 22004 for a NULL queue; nothing changes
SELECT throws_ok($$SELECT awa_set_queue_rate(NULL, 1, '1 s')$$, '22004', NULL, 'NULL queue: 22004');
SELECT throws_ok($$SELECT awa_set_queue_rate('', 1, '1 s')$$, '22023', NULL, 'empty queue: 22023');
SELECT throws_ok($$SELECT awa_set_queue_rate('bad', 0, '1 s')$$, '22023',
	'max_claims must be between 1 and 1000, got 0', 'max_claims 0: 22023 naming max_claims');
SELECT throws_ok($$SELECT awa_set_queue_rate('bad', 1001, '1 s')$$, '22023',
	'max_claims must be between 1 and 1000, got 1001', 'max_claims 1001: 22023');
SELECT throws_ok($$SELECT awa_set_queue_rate('bad', 5, NULL)$$, '22023',
	'per must not be NULL when max_claims is given', 'per NULL with max_claims: 22023 naming per');
SELECT throws_ok($$SELECT awa_set_queue_rate('bad', 5, '0')$$, '22023',
	'per must be between 1 millisecond and 31 days, without months, got "00:00:00"', 'per 0: 22023');
SELECT throws_ok($$SELECT awa_set_queue_rate('bad', 5, '-1 s')$$, '22023', NULL, 'negative per: 22023');
SELECT throws_ok($$SELECT awa_set_queue_rate('bad', 5, '1 mon')$$, '22023', NULL, 'per in months: 22023');
SELECT throws_ok($$SELECT awa_set_queue_rate('bad', 5, '32 days')$$, '22023', NULL, 'per over 31 days: 22023');
SELECT is((SELECT count(*) FROM awa.queue_meta WHERE queue = 'bad'), 0::bigint, 'bad limits changed nothing');
SELECT throws_ok($$INSERT INTO awa.queue_meta (queue, rate_max_claims) VALUES ('direct', 3)$$, '23514', NULL,
	'a direct write needs both halves of a rate');

-- set, change, remove
SELECT is((SELECT (rate_max_claims, rate_period) FROM awa_set_queue_rate('rl', 3, '1 hour')),
	ROW(3, interval '1 hour'), 'set: returns the rate');
SELECT isnt((SELECT rate_set_at FROM awa.queue_meta WHERE queue = 'rl'), NULL, 'set: rate_set_at recorded');
CREATE TEMP TABLE set_at AS SELECT rate_set_at FROM awa.queue_meta WHERE queue = 'rl';
SELECT is((SELECT rate_max_claims FROM awa_set_queue_rate('rl', 4, '1 hour')), 4, 'change: new max_claims');
SELECT is((SELECT rate_set_at FROM awa.queue_meta WHERE queue = 'rl'), (SELECT rate_set_at FROM set_at),
	'change: rate_set_at kept (the window carries over)');
SELECT is((SELECT rate_max_claims FROM awa_set_queue_rate('rl', 3, '1 hour')), 3, 'back to 3 per hour');

-- claims stop at the rate; a batch takes only what fits; the rest stays due
SELECT is((SELECT count(*) FROM (SELECT awa_insert('k', '{}', queue => 'rl') FROM generate_series(1, 5)) s),
	5::bigint, '5 jobs in rl');
SELECT is((SELECT count(*) FROM awa_claim('rl', 'w', 2, '1 min', '0')), 2::bigint, 'batch 2: 2 claimed');
SELECT is((SELECT count(*) FROM awa_claim('rl', 'w', 10, '1 min', '0')), 1::bigint,
	'batch 10 with 1 slot left: 1 claimed');
SELECT is((SELECT count(*) FROM awa_claim('rl', 'w', 10, '1 min', '0')), 0::bigint, 'rate used up: none claimed');
SELECT is((SELECT count(*) FROM awa.jobs WHERE queue = 'rl' AND state = 'available'), 2::bigint,
	'jobs over the limit stay available');
SELECT is((SELECT (window_claims, max_running, running) FROM awa_queue_limits() WHERE queue = 'rl'),
	ROW(3, NULL::integer, NULL::bigint), 'awa_queue_limits: 3 claims in the window');
SELECT is((SELECT next_slot_at FROM awa_queue_limits() WHERE queue = 'rl'),
	(SELECT min(attempted_at) + interval '1 hour' FROM awa.jobs WHERE queue = 'rl' AND state = 'running'),
	'awa_queue_limits: the next slot opens a period after the oldest claim of the window');

-- several queues: the rated one gives nothing, the others are served
SELECT is((SELECT count(*) FROM (SELECT awa_insert('k', '{}', queue => 'free') FROM generate_series(1, 2)) s),
	2::bigint, '2 jobs in free');
SELECT is((SELECT array_agg(queue ORDER BY queue) FROM awa_claim(ARRAY['rl', 'free'], 'w', 10, '1 min', '0')),
	ARRAY['free', 'free'], 'multi-queue claim: none of rl, both of free');

-- a raised rate applies at once, counting the claims already made
SELECT is((SELECT rate_max_claims FROM awa_set_queue_rate('rl', 4, '1 hour')), 4, 'raise to 4 per hour');
SELECT is((SELECT count(*) FROM awa_claim(ARRAY['rl', 'free'], 'w', 10, '1 min', '0')), 1::bigint,
	'raised by one: one more claimed, through the multi-queue claim');
SELECT is((SELECT window_claims FROM awa_queue_limits() WHERE queue = 'rl'), 4, '4 claims in the window');

-- reserved and unused claims are given back
SELECT is((SELECT rate_max_claims FROM awa_set_queue_rate('few', 5, '1 hour')), 5, 'few: 5 per hour');
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => 'few')$$, 'one job in few');
SELECT is((SELECT count(*) FROM awa_claim('few', 'w', 5, '1 min', '0')), 1::bigint, 'batch 5, one job due: 1 claimed');
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => 'few') FROM generate_series(1, 6)$$, '6 more jobs');
SELECT is((SELECT count(*) FROM awa_claim('few', 'w', 10, '1 min', '0')), 4::bigint,
	'the 4 slots the first claim did not use are still there');

-- a concurrency limit and a rate together: the stricter wins
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => 'both') FROM generate_series(1, 3)$$, '3 jobs in both');
SELECT is((SELECT rate_max_claims FROM awa_set_queue_rate('both', 10, '1 hour')), 10, 'both: 10 per hour');
SELECT is((SELECT max_running FROM awa_set_queue_limit('both', 1)), 1, 'both: limit 1');
SELECT is((SELECT count(*) FROM awa_claim('both', 'w', 5, '1 min', '0')), 1::bigint, 'limit 1 under rate 10: 1 claimed');

-- removing the rate: claims are free again
SELECT is((SELECT (rate_max_claims, rate_period, rate_set_at) FROM awa_set_queue_rate('rl', NULL, NULL)),
	ROW(NULL::integer, NULL::interval, NULL::timestamptz), 'remove: every rate column NULL');
SELECT is((SELECT count(*) FROM awa_claim('rl', 'w', 10, '1 min', '0')), 1::bigint, 'no rate: the last job claimed');

-- a blocking claim sleeps until the next slot opens, not to the end of its wait
SELECT is((SELECT rate_max_claims FROM awa_set_queue_rate('tick', 2, '300 milliseconds')), 2, 'tick: 2 per 300 ms');
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => 'tick') FROM generate_series(1, 3)$$, '3 jobs in tick');
CREATE TEMP TABLE first_two AS SELECT attempted_at FROM awa_claim('tick', 'w', 2, '1 min', '0');
CREATE TEMP TABLE third AS SELECT clock_timestamp() AS t0, c.attempted_at, clock_timestamp() AS t1
	FROM awa_claim('tick', 'w', 2, '1 min', '10 s') c;
SELECT ok((SELECT count(*) = 1 AND bool_and(third.attempted_at >= (SELECT max(attempted_at) FROM first_two) + interval '300 ms')
	AND bool_and(third.attempted_at < (SELECT max(attempted_at) FROM first_two) + interval '2 s') FROM third),
	'the blocking claim got the third job once the window moved, well before its 10 s wait ended');

-- a concurrency limit: awa_queue_limits counts the queue's running jobs, exact in this transaction
SELECT is((SELECT max_running FROM awa_set_queue_limit('lim', 3)), 3, 'lim: at most 3 running');
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => 'lim') FROM generate_series(1, 4)$$, '4 jobs in lim');
CREATE TEMP TABLE lim_claimed AS SELECT id, run_lease FROM awa_claim('lim', 'w', 2, '1 min', '0');
SELECT is((SELECT row(max_running, running)::text FROM awa_queue_limits() WHERE queue = 'lim'), '(3,2)',
	'awa_queue_limits: 2 of 3 running');
SELECT awa_complete(id, run_lease) FROM lim_claimed ORDER BY id LIMIT 1;
SELECT is((SELECT running FROM awa_queue_limits() WHERE queue = 'lim'), 1::bigint,
	'awa_queue_limits: 1 running once one completed');

SELECT * FROM finish();
ROLLBACK;
