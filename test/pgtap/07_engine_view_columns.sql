-- The columns of awa.jobs that the claim, heartbeat, completion and failure of a job set, as the reference
-- promises them (docs/reference.md: awa_claim's lease, deadline_at, heartbeat_at), on either engine: this file
-- runs on the default engine (the ring) and again on the table (test/pgtap/on_table.txt), with the same answers.
-- On the ring, deadline_at of a running job was the rescue's key (the lease capped by awa.heartbeat_timeout: 90 s
-- for a 2-minute lease) in the view and in awa_claim's rows; it is attempted_at (or the latest heartbeat) + the
-- lease, never after attempted_at + the job's timeout (docs/storage.md, "Step 5: wake-ups and deadlines on the
-- default ring").
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(18);

CREATE TEMP TABLE j (n text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.id(k text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM j WHERE n = k $$;
CREATE FUNCTION pg_temp.row(k text) RETURNS awa.jobs LANGUAGE sql AS $$
	SELECT x FROM awa.jobs x WHERE x.id = pg_temp.id(k) $$;
INSERT INTO j VALUES ('plain', (awa_insert('k', queue => 'vc1')).id),
	('timed', (awa_insert('k', queue => 'vc2', timeout => '30 s')).id),
	('long', (awa_insert('k', queue => 'vc3')).id),
	('fails', (awa_insert('k', queue => 'vc4', max_attempts => 3)).id);
CREATE TEMP TABLE got AS SELECT * FROM awa.jobs WITH NO DATA;
INSERT INTO got SELECT * FROM awa_claim('vc1', 'w', 1, '2 minutes');
INSERT INTO got SELECT * FROM awa_claim('vc2', 'w', 1, '2 minutes');
INSERT INTO got SELECT * FROM awa_claim('vc3', 'w', 1, '10 minutes');
INSERT INTO got SELECT * FROM awa_claim('vc4', 'w', 1, '2 minutes');

-- awa_claim's rows and the view: the lease from attempted_at, the job's timeout as a cap
SELECT is((SELECT g.deadline_at - g.attempted_at FROM got g WHERE g.id = pg_temp.id('plain')), '2 minutes'::interval,
	'awa_claim''s row: deadline_at is attempted_at + the lease (2 minutes, above awa.heartbeat_timeout)');
SELECT is((SELECT g.deadline_at - g.attempted_at FROM got g WHERE g.id = pg_temp.id('long')), '10 minutes'::interval,
	'awa_claim''s row: a 10-minute lease');
SELECT is((SELECT g.deadline_at - g.attempted_at FROM got g WHERE g.id = pg_temp.id('timed')), '30 s'::interval,
	'awa_claim''s row: capped by the job''s timeout');
SELECT is((pg_temp.row('plain')).deadline_at - (pg_temp.row('plain')).attempted_at, '2 minutes'::interval,
	'awa.jobs: deadline_at is attempted_at + the lease');
SELECT is((pg_temp.row('long')).deadline_at - (pg_temp.row('long')).attempted_at, '10 minutes'::interval,
	'awa.jobs: a 10-minute lease');
SELECT is((pg_temp.row('timed')).deadline_at - (pg_temp.row('timed')).attempted_at, '30 s'::interval,
	'awa.jobs: capped by the job''s timeout');
SELECT is((SELECT count(*) FROM got g WHERE (SELECT x FROM awa.jobs x WHERE x.id = g.id)::text = g::text),
	4::bigint, 'awa_claim''s rows are the jobs'' rows in awa.jobs, column for column');
SELECT is((SELECT array_agg(ROW(x.state, x.attempt, x.run_lease, x.claimed_by, x.lease,
		x.heartbeat_at = x.attempted_at, x.finalized_at, x.errors, x.progress)::text ORDER BY j.n)
	FROM j JOIN awa.jobs x ON x.id = j.id),
	ARRAY['(running,1,1,w,00:02:00,t,,{},)', '(running,1,1,w,00:10:00,t,,{},)',
		'(running,1,1,w,00:02:00,t,,{},)', '(running,1,1,w,00:02:00,t,,{},)'],
	'running: state, attempt, run_lease, claimed_by, lease, heartbeat_at at the claim, no finalized_at, errors or progress');

-- a heartbeat moves deadline_at to its time + the lease, never after attempted_at + the timeout
SELECT is(awa_heartbeat(ARRAY[pg_temp.id('plain'), pg_temp.id('timed'), pg_temp.id('long')], '{1,1,1}'),
	'{}'::bigint[], 'three heartbeats');
SELECT is((pg_temp.row('plain')).deadline_at - (pg_temp.row('plain')).heartbeat_at, '2 minutes'::interval,
	'after a heartbeat: deadline_at is heartbeat_at + the lease');
SELECT is((pg_temp.row('long')).deadline_at - (pg_temp.row('long')).heartbeat_at, '10 minutes'::interval,
	'after a heartbeat: a 10-minute lease');
SELECT is((pg_temp.row('timed')).deadline_at - (pg_temp.row('timed')).attempted_at, '30 s'::interval,
	'after a heartbeat: still capped by the job''s timeout');
SELECT is((pg_temp.row('plain')).lease, '2 minutes'::interval, 'a heartbeat keeps the lease');

-- completed keeps the attempt's columns; a failed attempt clears heartbeat_at and deadline_at
SELECT ok(awa_complete(pg_temp.id('long'), 1), 'completed');
SELECT is(ROW((pg_temp.row('long')).state, (pg_temp.row('long')).deadline_at - (pg_temp.row('long')).heartbeat_at,
	(pg_temp.row('long')).lease, (pg_temp.row('long')).finalized_at IS NOT NULL)::text,
	'(completed,00:10:00,00:10:00,t)', 'completed: deadline_at, heartbeat_at and lease kept, finalized_at set');
SELECT is(awa_fail(pg_temp.id('fails'), 1, 'boom', retry_in => '1 hour'), 'retryable'::awa.job_state, 'failed with attempts left');
SELECT is(ROW((pg_temp.row('fails')).state, (pg_temp.row('fails')).heartbeat_at, (pg_temp.row('fails')).deadline_at,
	(pg_temp.row('fails')).attempted_at IS NOT NULL, (pg_temp.row('fails')).lease, (pg_temp.row('fails')).claimed_by,
	(pg_temp.row('fails')).finalized_at)::text,
	'(retryable,,,t,00:02:00,w,)', 'retryable: no heartbeat_at or deadline_at, attempted_at, lease and worker kept');
SELECT is(array_length((pg_temp.row('fails')).errors, 1), 1, 'retryable: its error');

SELECT * FROM finish();
ROLLBACK;
