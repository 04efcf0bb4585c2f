-- awa_claim's rows are the jobs' rows of awa.jobs, column for column, whatever the claim reads them from
-- (on the ring the claim builds a first attempt's row from the ready row it read and the receipt it wrote:
-- docs/storage.md, "Step 5: claim and complete at batch speed on the ring").  API only, so that the file runs
-- on both engines (test/pgtap/on_table.txt).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(9);

-- jobs with every column a claim shows: metadata, tags, unique key and states, timeout, group, key, attempts
SELECT lives_ok($$SELECT awa_insert('k' || i, jsonb_build_object('n', i), queue => 'rows',
		priority => 1 + i % 3, max_attempts => 3 + i % 5, tags => ARRAY['t' || i, 'all'],
		metadata => jsonb_build_object('m', i), unique_by_args => i % 2 = 0,
		unique_states => CASE WHEN i % 4 = 0 THEN ARRAY['scheduled', 'available', 'running', 'retryable', 'waiting_external',
			'completed']::awa.job_state[] END,
		timeout => CASE WHEN i % 3 = 0 THEN interval '10 min' END,
		group_id => CASE WHEN i % 5 = 0 THEN 'g' END,
		concurrency_key => CASE WHEN i % 7 = 0 THEN 'key' || i END)
	FROM generate_series(1, 40) i$$, '40 jobs of every shape');
SELECT lives_ok($$SELECT awa_insert('other', '{}', queue => 'rows2', priority => 2) FROM generate_series(1, 5)$$,
	'5 jobs in a second queue');

CREATE TEMP TABLE got (k int, j awa.jobs);
CREATE TEMP TABLE seen (k int, j awa.jobs);
-- claims of one (the first claim, then the following ones), of ten, of several queues, with and without a worker
INSERT INTO got SELECT 1, c FROM awa_claim('rows', 'w1', 1, '1 min', '0') c;
INSERT INTO got SELECT 2, c FROM awa_claim('rows', NULL, 1, '2 min', '0') c;
INSERT INTO got SELECT 3, c FROM awa_claim('rows', 'w3', 10, '1 min', '0') c;
INSERT INTO got SELECT 4, c FROM awa_claim('rows', 'w4', 10, '30 s', '0') c;
INSERT INTO got SELECT 5, c FROM awa_claim(ARRAY['rows', 'rows2'], 'w5', 10, '1 min', '0') c;
INSERT INTO seen SELECT g.k, j FROM got g JOIN awa.jobs j ON j.id = (g.j).id;
SELECT is((SELECT count(*) FROM got), 32::bigint, '32 jobs claimed by five claims');
SELECT is((SELECT count(*) FROM got WHERE (j).queue = 'rows2'), 5::bigint,
	'the claim of two queues took the second queue''s jobs after the first''s of the same priority and time');
SELECT is((SELECT count(*) FROM got g JOIN seen s ON (s.j).id = (g.j).id WHERE row(g.j)::text = row(s.j)::text),
	32::bigint, 'each claimed row is the job''s row in awa.jobs, column for column');
SELECT is((SELECT count(*) FROM got WHERE (j).state = 'running' AND (j).attempt = 1 AND (j).run_lease = 1
	AND (j).attempted_at = (j).heartbeat_at AND (j).finalized_at IS NULL AND (j).errors = '{}'), 32::bigint,
	'first attempts: running, attempt 1, lease 1, attempted = heartbeat, no errors');
SELECT is((SELECT count(*) FROM got WHERE (j).claimed_by IS NOT DISTINCT FROM CASE k WHEN 2 THEN NULL
	ELSE 'w' || k END), 32::bigint, 'claimed_by: the worker, or NULL');

-- a retried job (its second attempt: lease 2, an error of its first) is shown as awa.jobs shows it
SELECT lives_ok($$SELECT awa_fail((j).id, (j).run_lease, 'boom', retry_in => '0') FROM got WHERE k = 1$$,
	'the first claim''s job fails and is retryable at once');
INSERT INTO got SELECT 6, c FROM awa_claim('rows', 'w6', 1, '1 min', '0') c;
SELECT is((SELECT row(g.j)::text = row(j)::text FROM got g JOIN awa.jobs j ON j.id = (g.j).id WHERE g.k = 6)
	AND (SELECT (j).attempt = 2 AND array_length((j).errors, 1) = 1 FROM got WHERE k = 6), true,
	'its second attempt''s row: as awa.jobs shows it, with the first attempt''s error');

SELECT * FROM finish();
ROLLBACK;
