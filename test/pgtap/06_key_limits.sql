-- Per-key concurrency and ordering: schema, signatures, SQLSTATEs, rule resolution, claims.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(52);

-- schema and signatures
SELECT has_column('awa', 'jobs', 'concurrency_key', 'awa.jobs.concurrency_key exists');
SELECT col_type_is('awa', 'jobs', 'concurrency_key', 'text', 'jobs.concurrency_key is text');
SELECT has_table('awa', 'key_limits', 'awa.key_limits exists');
SELECT columns_are('awa', 'key_limits', ARRAY['pattern', 'kind', 'max_running', 'ordered', 'rate_max_claims', 'rate_period', 'rate_set_at']);
-- (awa.jobs' key indexes, which only the table engine has: 06_key_limits_table.sql)
SELECT function_returns('public', 'awa_set_key_limit', ARRAY['text', 'integer', 'text', 'boolean'], 'awa.key_limits');
SELECT function_returns('public', 'awa_key_stats', ARRAY['text'], 'setof record');
SELECT volatility_is('public', 'awa_key_stats', ARRAY['text'], 'stable');
SELECT ok(obj_description('public.awa_set_key_limit(text, integer, text, boolean)'::regprocedure, 'pg_proc') LIKE '%22023%',
	'awa_set_key_limit documents its SQLSTATEs');

-- bad limits: 22023 naming the field (22004 for NULLs), nothing changed
SELECT throws_ok($$SELECT awa_set_key_limit('a', 0)$$, '22023', 'max_running must be between 1 and 1000000, got 0', 'limit 0: 22023');
-- a pattern LIKE would refuse at every match (it ends with the escape character) is refused here and by the table,
-- so that no rule can make claims of keyed jobs fail; an escaped backslash at the end is a valid pattern
SELECT throws_ok($$SELECT awa_set_key_limit('tenant\', 2)$$, '22023',
	'pattern must not end with the LIKE escape character (\)', 'a pattern ending with the escape character: 22023');
SELECT throws_ok($$SELECT awa_set_key_rate('a\\\', 5, '1 s')$$, '22023', NULL,
	'awa_set_key_rate: an odd run of trailing backslashes: 22023');
SELECT throws_ok($$INSERT INTO awa.key_limits (pattern, max_running) VALUES ('x\', 1)$$, '23514', NULL,
	'plain SQL cannot write such a rule either');
SELECT is((SELECT count(*) FROM awa.key_limits), 0::bigint, 'the refused patterns wrote no rule');
SELECT is((SELECT max_running FROM awa_set_key_limit('dir\\', 3)), 3, 'an escaped backslash at the end is a pattern');
SELECT is((SELECT max_running FROM awa_set_key_limit('dir\\', NULL)), 3, 'and its rule is removed');
SELECT throws_ok($$SELECT awa_set_key_limit('a', 1000001)$$, '22023', NULL, 'limit too large: 22023');
SELECT throws_ok($$SELECT awa_set_key_limit('a', -1)$$, '22023', NULL, 'negative limit: 22023');
SELECT throws_ok($$SELECT awa_set_key_limit('a', 2, ordered => true)$$, '22023', 'max_running must be 1 for an ordered key, got 2', 'ordered above 1: 22023');
SELECT throws_ok($$SELECT awa_set_key_limit('a', NULL, ordered => true)$$, '22023', 'ordered must be false when max_running is NULL', 'ordered removal: 22023');
SELECT throws_ok($$SELECT awa_set_key_limit('', 1)$$, '22023', 'pattern must be 1 to 200 characters long, got 0', 'empty pattern: 22023');
SELECT throws_ok($$SELECT awa_set_key_limit(repeat('p', 201), 1)$$, '22023', NULL, 'long pattern: 22023');
SELECT throws_ok($$SELECT awa_set_key_limit('a', 1, kind => '')$$, '22023', 'kind must be 1 to 200 characters long, got 0', 'empty kind: 22023');
SELECT throws_ok($$SELECT awa_set_key_limit(NULL, 1)$$, '22004', NULL, 'NULL pattern: 22004');
SELECT throws_ok($$SELECT awa_set_key_limit('a', 1, ordered => NULL)$$, '22004', NULL, 'NULL ordered: 22004');
SELECT is((SELECT count(*) FROM awa.key_limits), 0::bigint, 'bad limits changed nothing');

-- bad keys: 22023 naming the field, on every way in
SELECT throws_ok($$SELECT awa_insert('k', concurrency_key => '')$$, '22023', 'concurrency_key must be 1 to 200 characters long, got 0', 'awa_insert empty key: 22023');
SELECT throws_ok($$SELECT awa_insert('k', concurrency_key => repeat('k', 201))$$, '22023', NULL, 'awa_insert long key: 22023');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "k", "concurrency_key": ""}]')$$, '22023', NULL, 'awa_insert_many empty key: 22023');
SELECT throws_ok($$SELECT awa_insert_many('[{"kind": "k", "concurrency_key": 7}]')$$, '22023', NULL, 'awa_insert_many key not a string: 22023');
SELECT throws_ok($$INSERT INTO awa.jobs (kind, concurrency_key) VALUES ('k', '')$$, '22023', NULL, 'COPY path empty key: 22023');
SELECT is((SELECT count(*) FROM awa.jobs), 0::bigint, 'bad keys inserted nothing');

-- keys are stored from every way in
SELECT is((awa_insert('k', queue => 'kq', concurrency_key => 'z')).concurrency_key, 'z', 'awa_insert stores the key');
SELECT is((SELECT array_agg(concurrency_key ORDER BY id) FROM awa_insert_many(
	'[{"kind": "k", "queue": "kq", "concurrency_key": "z"}, {"kind": "k", "queue": "kq", "concurrency_key": null}, {"kind": "k", "queue": "kq"}]')),
	ARRAY['z', NULL, NULL], 'awa_insert_many stores the key (null and absent: none)');
INSERT INTO awa.jobs (kind, queue, concurrency_key) VALUES ('k', 'kq', 'z');
SELECT is((SELECT count(*) FROM awa.jobs WHERE concurrency_key = 'z'), 3::bigint, 'INSERT and COPY store the key');
SELECT is((awa_insert('k', queue => 'kq', concurrency_key => 'z', unique_by_args => true, args => '{"u": 1}')).concurrency_key, 'z',
	'a unique job stores the key');

-- a key without a rule runs one job at a time; jobs without a key are not held
SELECT is((SELECT array_agg(coalesce(concurrency_key, '-') ORDER BY id) FROM awa_claim('kq', 'w', 10)),
	ARRAY['z', '-', '-'], 'no rule: one job of the key, every job without one');
SELECT is((SELECT count(*) FROM awa_claim('kq', 'w', 10)), 0::bigint, 'the key is at its limit');
SELECT is((SELECT row(running, waiting, max_running, ordered, at_limit)::text FROM awa_key_stats() WHERE concurrency_key = 'z'),
	'(1,3,1,f,t)', 'awa_key_stats: at its limit');

-- rules: the kind's before any kind's, then the longest pattern
SELECT is((awa_set_key_limit('z%', 3)).max_running, 3, 'a rule for any kind');
SELECT is((awa_set_key_limit('z', 2)).max_running, 2, 'an exact key');
SELECT is((awa_set_key_limit('%', 5, kind => 'k')).max_running, 5, 'a rule for the kind');
SELECT is((SELECT max_running FROM awa_key_stats('z')), 5, 'the kind''s rule wins');
SELECT is((SELECT count(*) FROM awa_claim('kq', 'w', 10)), 3::bigint, 'a raised limit lets more run');
SELECT is((SELECT running FROM awa_key_stats('z')), 4::bigint, 'four running');
SELECT is((awa_set_key_limit('%', NULL, kind => 'k')).max_running, 5, 'removing a rule returns it');
SELECT is((SELECT max_running FROM awa_key_stats('z')), 2, 'then the exact key''s rule before a longer pattern');
SELECT ok(awa_set_key_limit('nope', NULL) IS NULL, 'removing a missing rule: NULL');
SELECT is((awa_set_key_limit('z', 1, ordered => true)).ordered, true, 'an ordered rule');

-- a key with jobs of two kinds: each job is held to its own kind's rule
SELECT is((awa_set_key_limit('mix', 2, kind => 'wide')).max_running, 2, 'a rule for one kind of a key');
INSERT INTO awa.jobs (kind, queue, concurrency_key, run_at) VALUES
	('k', 'mq', 'mix', now() - interval '3 s'), ('wide', 'mq', 'mix', now() - interval '2 s'),
	('wide', 'mq', 'mix', now() - interval '1 s');
SELECT is((SELECT array_agg(kind ORDER BY id) FROM awa_claim('mq', 'w', 10)), ARRAY['k', 'wide'],
	'the k job under limit 1, one wide job under limit 2, not the second');

-- the admission function belongs to the claim
SELECT throws_ok($$SELECT awa.concurrency_key_admit('z', 'k', 1)$$, '55000', NULL, 'admit outside a claim: 55000');
SELECT ok(awa.concurrency_key_open('z'), 'open outside a claim: true');

SELECT * FROM finish();
ROLLBACK;
