-- Rates per concurrency key: awa_set_key_rate's contract, claims that stop at a key's rate
-- whatever the queue, other keys not held back, jobs over the limit kept, awa_key_stats.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(41);

-- signatures and markings
SELECT function_returns('public', 'awa_set_key_rate', ARRAY['text', 'integer', 'interval', 'text'], 'awa.key_limits');
SELECT volatility_is('public', 'awa_set_key_rate', ARRAY['text', 'integer', 'interval', 'text'], 'volatile');
SELECT has_column('awa', 'key_limits', 'rate_max_claims', 'key_limits.rate_max_claims');
SELECT has_column('awa', 'key_limits', 'rate_period', 'key_limits.rate_period');
SELECT has_column('awa', 'key_limits', 'rate_set_at', 'key_limits.rate_set_at');
SELECT ok(obj_description('public.awa_set_key_rate(text, integer, interval, text)'::regprocedure, 'pg_proc') LIKE '%22023%',
	'awa_set_key_rate documents its SQLSTATEs');

-- bad limits: 22023 naming the field, 22004 for a NULL pattern; nothing changes
SELECT throws_ok($$SELECT awa_set_key_rate(NULL, 1, '1 s')$$, '22004', NULL, 'NULL pattern: 22004');
SELECT throws_ok($$SELECT awa_set_key_rate('', 1, '1 s')$$, '22023', NULL, 'empty pattern: 22023');
SELECT throws_ok($$SELECT awa_set_key_rate('bad', 1, '1 s', kind => '')$$, '22023', NULL, 'empty kind: 22023');
SELECT throws_ok($$SELECT awa_set_key_rate('bad', 0, '1 s')$$, '22023',
	'max_claims must be between 1 and 1000, got 0', 'max_claims 0: 22023 naming max_claims');
SELECT throws_ok($$SELECT awa_set_key_rate('bad', 1001, '1 s')$$, '22023',
	'max_claims must be between 1 and 1000, got 1001', 'max_claims 1001: 22023');
SELECT throws_ok($$SELECT awa_set_key_rate('bad', 5, NULL)$$, '22023',
	'per must not be NULL when max_claims is given', 'per NULL with max_claims: 22023 naming per');
SELECT throws_ok($$SELECT awa_set_key_rate('bad', 5, '0')$$, '22023',
	'per must be between 1 millisecond and 31 days, without months, got "00:00:00"', 'per 0: 22023');
SELECT throws_ok($$SELECT awa_set_key_rate('bad', 5, '1 mon')$$, '22023', NULL, 'per in months: 22023');
SELECT throws_ok($$SELECT awa_set_key_rate('bad', 5, '32 days')$$, '22023', NULL, 'per over 31 days: 22023');
SELECT is((SELECT count(*) FROM awa.key_limits WHERE pattern = 'bad'), 0::bigint, 'bad limits changed nothing');
SELECT throws_ok($$INSERT INTO awa.key_limits (pattern, max_running, rate_max_claims) VALUES ('direct', 1, 3)$$,
	'23514', NULL, 'a direct write needs every part of a rate');

-- set on a new pattern (rule made with max_running 1), on an existing rule (kept), change, remove
SELECT is((SELECT (max_running, rate_max_claims, rate_period) FROM awa_set_key_rate('solo', 2, '1 hour')),
	ROW(1, 2, interval '1 hour'), 'a new rule: max_running 1 and the rate');
SELECT is((SELECT max_running FROM awa_set_key_limit('api-%', 10)), 10, 'api-%: 10 at once');
SELECT is((SELECT (max_running, rate_max_claims) FROM awa_set_key_rate('api-%', 3, '1 hour')),
	ROW(10, 3), 'an existing rule keeps its max_running');
CREATE TEMP TABLE set_at AS SELECT rate_set_at FROM awa.key_limits WHERE pattern = 'api-%';
SELECT isnt((SELECT rate_set_at FROM set_at), NULL, 'rate_set_at recorded');
SELECT is((SELECT max_running FROM awa_set_key_limit('api-%', 20)), 20, 'awa_set_key_limit keeps the rate...');
SELECT is((SELECT (rate_max_claims, rate_set_at) FROM awa.key_limits WHERE pattern = 'api-%'),
	(SELECT ROW(3, rate_set_at) FROM set_at), '... and its rate_set_at');
SELECT is((SELECT rate_max_claims FROM awa_set_key_rate('nothing', NULL, NULL)), NULL,
	'removing a rate without a rule: NULL');

-- claims stop at each key's rate, counted across queues; other keys are served
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => q, concurrency_key => 'api-1')
	FROM unnest(ARRAY['a', 'b', 'a', 'b', 'a']) q$$, '5 jobs of api-1 in queues a and b');
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => 'a', concurrency_key => 'api-2') FROM generate_series(1, 4)$$,
	'4 jobs of api-2 (its own window)');
SELECT lives_ok($$SELECT awa_insert('k', '{}', queue => 'a') FROM generate_series(1, 2)$$, '2 jobs without a key');
SELECT is((SELECT count(*) FROM awa_claim('a', 'w', 2, '1 min', '0') WHERE concurrency_key = 'api-1'), 2::bigint,
	'queue a, batch 2: 2 of api-1');
SELECT is((SELECT array_agg(coalesce(concurrency_key, '-') ORDER BY id) FROM awa_claim('b', 'w', 10, '1 min', '0')),
	ARRAY['api-1'], 'queue b: 1 of api-1, the third of its window');
SELECT is((SELECT array_agg(coalesce(concurrency_key, '-') ORDER BY concurrency_key NULLS LAST)
	FROM awa_claim('a', 'w', 10, '1 min', '0')),
	ARRAY['api-2', 'api-2', 'api-2', '-', '-'], 'queue a: none of api-1 (at its rate), 3 of api-2, the jobs without a key');
SELECT is((SELECT count(*) FROM awa.jobs WHERE concurrency_key = 'api-1' AND state = 'available'), 2::bigint,
	'jobs over the limit stay available');
SELECT is((SELECT (running, rate_max_claims, rate_period, window_claims) FROM awa_key_stats('api-1')),
	ROW(3::bigint, 3, interval '1 hour', 3), 'awa_key_stats: the rate and 3 claims in the window');
SELECT is((SELECT next_slot_at FROM awa_key_stats('api-1')),
	(SELECT min(attempted_at) + interval '1 hour' FROM awa.jobs WHERE concurrency_key = 'api-1' AND state = 'running'),
	'awa_key_stats: the next slot opens a period after the oldest claim of the window');

-- a raised rate applies at once, counting the claims already made; removed, claims are free
SELECT is((SELECT rate_max_claims FROM awa_set_key_rate('api-%', 4, '1 hour')), 4, 'raise to 4 per hour');
SELECT is((SELECT count(*) FROM awa_claim(ARRAY['a', 'b'], 'w', 10, '1 min', '0') WHERE concurrency_key = 'api-1'),
	1::bigint, 'raised by one: one more claimed, through the multi-queue claim');
SELECT is((SELECT (rate_max_claims, rate_period, rate_set_at, max_running) FROM awa_set_key_rate('api-%', NULL, NULL)),
	ROW(NULL::integer, NULL::interval, NULL::timestamptz, 20), 'remove: every rate column NULL, the rule kept');
SELECT is((SELECT count(*) FROM awa_claim(ARRAY['a', 'b'], 'w', 10, '1 min', '0')), 1::bigint, 'no rate: the last job claimed');

-- a blocking claim sleeps until the key's next slot opens, not to the end of its wait
SELECT lives_ok($$SELECT awa_set_key_rate('tick', 2, '300 milliseconds'), awa_set_key_limit('tick', 5);
	SELECT awa_insert('k', '{}', queue => 'tick', concurrency_key => 'tick') FROM generate_series(1, 3)$$,
	'tick: 2 per 300 ms, 3 jobs');
CREATE TEMP TABLE first_two AS SELECT attempted_at FROM awa_claim('tick', 'w', 2, '1 min', '0');
CREATE TEMP TABLE third AS SELECT c.attempted_at FROM awa_claim('tick', 'w', 2, '1 min', '10 s') c;
SELECT ok((SELECT count(*) = 1 AND bool_and(third.attempted_at >= (SELECT max(attempted_at) FROM first_two) + interval '300 ms')
	AND bool_and(third.attempted_at < (SELECT max(attempted_at) FROM first_two) + interval '2 s') FROM third),
	'the blocking claim got the third job once the window moved, well before its 10 s wait ended');

-- two rated queues with empty windows in one multi-queue claim: each keeps its own window
SELECT lives_ok($$SELECT awa_set_queue_rate('qr1', 2, '1 hour'), awa_set_queue_rate('qr2', 2, '1 hour');
	SELECT awa_insert('k', '{}', queue => q) FROM unnest(ARRAY['qr1', 'qr1', 'qr1', 'qr2', 'qr2', 'qr2']) q$$,
	'qr1 and qr2: 2 per hour, 3 jobs each');
SELECT is((SELECT array_agg(queue ORDER BY queue) FROM awa_claim(ARRAY['qr1', 'qr2'], 'w', 10, '1 min', '0')),
	ARRAY['qr1', 'qr1', 'qr2', 'qr2'], 'a multi-queue claim takes 2 of each, not an error');

SELECT * FROM finish();
ROLLBACK;
