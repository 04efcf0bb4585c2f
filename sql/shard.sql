-- Shard-aware job ids: awa_shard_configure, awa_shard, awa_shard_of.
CREATE EXTENSION awa;

-- a database alone is shard 0; configuring it as shard 0 keeps its ids and goes on above them
SELECT (awa_insert('k')).id AS first_id;
SELECT awa_shard();
SELECT awa_shard_configure(0);
SELECT awa_shard_configure(0);
SELECT (awa_insert('k')).id AS next_id;

-- its jobs have shard 0's ids: it cannot become another shard
SELECT awa_shard_configure(1);

-- bad arguments
SELECT awa_shard_configure(NULL);
SELECT awa_shard_configure(-1);
SELECT awa_shard_configure(32768);
SELECT awa_shard_of(-1);
SELECT awa_shard_of(NULL);
BEGIN READ ONLY;
SELECT awa_shard_configure(0);
ROLLBACK;

-- an empty database becomes shard 2: every insert path hands out ids of shard 2
DELETE FROM awa.jobs;
SELECT awa_shard_configure(2);
SELECT awa_shard();
SELECT id - (2::bigint << 48) AS offset_in_shard, awa_shard_of(id) FROM (SELECT (awa_insert('k')).id) i;
SELECT id - (2::bigint << 48) AS offset_in_shard, awa_shard_of(id) FROM awa_insert_many('[{"kind": "a"}, {"kind": "b"}]');
INSERT INTO awa.jobs (kind) VALUES ('c');
COPY awa.jobs (kind) FROM STDIN;
d
\.
SELECT kind, id - (2::bigint << 48) AS offset_in_shard, awa_shard_of(id) FROM awa.jobs ORDER BY id;
-- configuring again keeps the position
SELECT awa_shard_configure(2) - (2::bigint << 48) AS next_offset;
SELECT awa_shard_of(281474976710655), awa_shard_of(281474976710656), awa_shard_of(9223372036854775807);

-- a shard that has used up its range refuses inserts instead of taking another shard's ids
SELECT setval('awa.jobs_id_seq', (3::bigint << 48) - 1);
SELECT awa_insert('k');

DROP EXTENSION awa;
