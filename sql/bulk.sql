-- Bulk enqueue: awa_insert_many and the COPY path (COPY into awa.jobs).
-- On the default ring engine (awa.jobs a view whose INSERT and COPY enqueue); bulk_table.sql keeps, on the table, a
-- trigger of the user's on awa.jobs (a view takes no row trigger after an insert).
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- awa_insert_many: rows in input order, awa_insert's defaults and states
SELECT kind, queue, args, state, priority, max_attempts, tags, metadata, run_at = now() AS now
  FROM awa_insert_many('[{"kind": "a"},
    {"kind": "b", "args": {"x": 1}, "queue": "q", "priority": 1, "max_attempts": 3, "tags": ["t1", "t2"], "metadata": {"m": true}},
    {"kind": "c", "args": [1, 2], "run_at": "2999-01-01T00:00:00Z"},
    {"kind": "d", "run_at": "2020-01-01 12:00:00+00", "priority": 4.0},
    {"kind": "e", "run_at": null}]');
SELECT array_agg(kind ORDER BY id) FROM awa.jobs;
SELECT kind, state, run_at FROM awa.jobs WHERE kind IN ('c', 'd') ORDER BY id;
-- rows come back in input order, ids ascending
SELECT bool_and(kind = 'k' || ordinality) AS in_order, bool_and(id = first + ordinality - 1) AS ids_ascend
  FROM (SELECT r.*, min(id) OVER () AS first
        FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k' || g) ORDER BY g)
                              FROM generate_series(1, 50) g)) WITH ORDINALITY r) s;
SELECT kind FROM awa_insert_many('[{"kind": "z3"}, {"kind": "z1"}, {"kind": "z2"}]');
-- an empty array inserts nothing
SELECT count(*) FROM awa_insert_many('[]');
-- boundaries that are allowed
SELECT length(kind), priority, max_attempts, cardinality(tags)
  FROM awa_insert_many(jsonb_build_array(jsonb_build_object('kind', repeat('k', 200), 'priority', 4,
    'max_attempts', 1000, 'tags', to_jsonb(array_fill('x'::text, ARRAY[20])))));
SELECT count(*) FROM awa.jobs;

-- bad input: an error naming the element, and nothing written
SELECT awa_insert_many(NULL);
SELECT awa_insert_many('{"kind": "a"}');
SELECT awa_insert_many('"a"');
SELECT awa_insert_many('[{"kind": "a"}, 1]');
SELECT awa_insert_many('[{"kind": "a"}, [{"kind": "b"}]]');
SELECT awa_insert_many('[{"kind": "a"}, {}]');
SELECT awa_insert_many('[{"kind": "a"}, {"queue": "q"}]');
SELECT awa_insert_many('[{"kind": null}]');
SELECT awa_insert_many('[{"kind": 1}]');
SELECT awa_insert_many('[{"kind": ""}]');
SELECT awa_insert_many('[{"kind": "a"}, {"kind": "a"}, {"kind": "a"}, {"kind": "a", "priority": 7}]');
SELECT awa_insert_many('[{"kind": "a", "priority": 0}]');
SELECT awa_insert_many('[{"kind": "a", "priority": "1"}]');
SELECT awa_insert_many('[{"kind": "a", "priority": 1.5}]');
SELECT awa_insert_many('[{"kind": "a", "priority": 99999999999}]');
SELECT awa_insert_many('[{"kind": "a", "priority": null}]');
SELECT awa_insert_many('[{"kind": "a", "max_attempts": 0}]');
SELECT awa_insert_many('[{"kind": "a", "max_attempts": true}]');
SELECT awa_insert_many('[{"kind": "a", "queue": ""}]');
SELECT awa_insert_many('[{"kind": "a", "queue": 5}]');
SELECT awa_insert_many('[{"kind": "a", "queue": null}]');
SELECT awa_insert_many('[{"kind": "a", "args": 5}]');
SELECT awa_insert_many('[{"kind": "a", "args": "text"}]');
SELECT awa_insert_many('[{"kind": "a", "args": null}]');
SELECT awa_insert_many('[{"kind": "a", "metadata": []}]');
SELECT awa_insert_many('[{"kind": "a", "metadata": null}]');
SELECT awa_insert_many('[{"kind": "a", "tags": "t"}]');
SELECT awa_insert_many('[{"kind": "a", "tags": ["t", 1]}]');
SELECT awa_insert_many('[{"kind": "a", "tags": ["t", null]}]');
SELECT awa_insert_many('[{"kind": "a", "tags": [""]}]');
SELECT awa_insert_many('[{"kind": "a", "tags": null}]');
SELECT awa_insert_many(jsonb_build_array(jsonb_build_object('kind', 'a', 'tags', to_jsonb(array_fill('x'::text, ARRAY[21])))));
SELECT awa_insert_many('[{"kind": "a", "run_at": "not a time"}]');
SELECT awa_insert_many('[{"kind": "a", "run_at": 12}]');
SELECT awa_insert_many('[{"kind": "a", "unique": true}]');
SELECT awa_insert_many('[{"kind": "a", "prority": 1}]');
SELECT count(*) FROM awa.jobs;

-- transactional: a rolled-back call leaves nothing
BEGIN;
SELECT count(*) FROM awa_insert_many('[{"kind": "rolled_back"}, {"kind": "rolled_back"}]');
ROLLBACK;
SELECT count(*) FROM awa.jobs WHERE kind = 'rolled_back';

-- the COPY path: COPY awa.jobs with the enqueue columns
DELETE FROM awa.jobs;
COPY awa.jobs (kind, args, queue, priority, max_attempts, run_at, tags, metadata) FROM STDIN;
copy_a	{"n": 1}	default	2	25	\N	{}	{}
copy_b	[1, 2]	reports	1	3	2999-01-01 00:00:00+00	{t1,t2}	{"m": 1}
copy_c	{}	reports	4	1	2020-01-01 00:00:00+00	{}	{}
\.
SELECT kind, args, queue, state, priority, max_attempts, run_at BETWEEN now() - interval '1 hour' AND now() AS recent,
       tags, metadata, attempt, errors
  FROM awa.jobs ORDER BY id;
-- fewer columns: the others take awa_insert's defaults
COPY awa.jobs (kind, args) FROM STDIN;
copy_d	{"x": true}
\.
COPY awa.jobs (kind) FROM STDIN (FORMAT csv);
copy_e
\.
SELECT kind, args, queue, state, priority, max_attempts, run_at BETWEEN now() - interval '1 hour' AND now() AS recent,
       tags, metadata
  FROM awa.jobs WHERE kind IN ('copy_d', 'copy_e') ORDER BY id;
SELECT count(*) FROM awa.jobs;
-- a bad row fails the whole COPY with awa_insert's message, nothing written
COPY awa.jobs (kind, args) FROM STDIN;
ok	{}
	{}
\.
COPY awa.jobs (kind, args) FROM STDIN;
ok	{}
bad	"scalar"
\.
COPY awa.jobs (kind, priority) FROM STDIN;
ok	2
bad	5
\.
COPY awa.jobs (kind, max_attempts) FROM STDIN;
bad	0
\.
COPY awa.jobs (kind, queue) FROM STDIN;
bad	
\.
COPY awa.jobs (kind, tags) FROM STDIN;
bad	{a,NULL}
\.
COPY awa.jobs (kind, tags) FROM STDIN;
bad	{""}
\.
COPY awa.jobs (kind, metadata) FROM STDIN;
bad	[1]
\.
COPY awa.jobs (kind, args) FROM STDIN;
bad	\N
\.
COPY awa.jobs (kind, queue) FROM STDIN;
\N	q
\.
COPY awa.jobs (kind, queue) FROM STDIN;
bad	\N
\.
COPY awa.jobs (kind, priority) FROM STDIN;
bad	\N
\.
COPY awa.jobs (kind, tags) FROM STDIN;
bad	\N
\.
COPY awa.jobs (kind, metadata) FROM STDIN;
bad	\N
\.
SELECT count(*) FROM awa.jobs;
-- a plain INSERT gets the same treatment
INSERT INTO awa.jobs (kind, run_at) VALUES ('plain', now() + interval '1 day') RETURNING kind, state;
INSERT INTO awa.jobs (kind, priority) VALUES ('plain', 9);
-- rows awa_insert writes are unchanged by the trigger
SELECT kind, state FROM awa_insert('via_insert', run_at => now() + interval '1 day');
SELECT kind, state FROM awa_insert('via_insert');

-- NOTIFY of COPY and awa_insert_many: test/isolation/specs/pause_claim.spec wakes
-- a blocked claimer with them
-- at most 10,000 jobs per call (54000); nothing written
SELECT count(*) FROM awa.jobs;
SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k')) FROM generate_series(1, 10001)));
SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'many')) FROM generate_series(1, 10000)));
SELECT count(*) FROM awa.jobs;

DROP EXTENSION awa;
