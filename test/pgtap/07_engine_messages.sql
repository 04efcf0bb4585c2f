-- The errors users meet read the same on either engine (docs/storage.md, "Step 5: leases, messages and side-table
-- upkeep"): SQLSTATE, message, detail and hint of awa_* calls in situations both engines share, none naming the
-- ring's internals (awa.ring_* functions, slots, receipts, lanes).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(12);

-- an error's SQLSTATE, message, detail and hint, or 'ok'
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE s text; m text; d text; h text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RETURN concat_ws(' | ', s, m, nullif(d, ''), nullif(h, ''));
END $f$;
-- the error's context lines that name awa's internals (awa.ring_* functions, the ring's relations)
CREATE FUNCTION pg_temp.ctx(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE c text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS c = PG_EXCEPTION_CONTEXT;
	RETURN coalesce((SELECT string_agg(l, ' / ') FROM regexp_split_to_table(c, E'\n') l
		WHERE l ~ 'awa\.(ring_|ready|claims|done|beats|scheduled)'), '');
END $f$;
CREATE TEMP TABLE j AS SELECT id, 0::bigint AS lease FROM awa_insert('k', queue => 'mq');
UPDATE j SET lease = c.run_lease FROM awa_claim('mq', 'w', 1) c WHERE c.id = j.id;

SELECT is(pg_temp.err(format('SELECT awa_wait_external(%s, %s)', (SELECT id FROM j), (SELECT lease FROM j))),
	format('55000 | job %s has no callback registered under run_lease %s | '
		'Call awa_register_callback first and give the outside system its id.', (SELECT id FROM j), (SELECT lease FROM j)),
	'awa_wait_external without a callback: 55000, the hint names awa_register_callback');
SELECT is(pg_temp.err('SELECT awa_group_on_finish(''mg'', ''k'')'), 'ok', 'a group''s finish callback');
SELECT is(pg_temp.err('SELECT awa_group_on_finish(''mg'', ''k'')'),
	'42710 | group "mg" has a finish callback already | A group has at most one; use another group id for another batch.',
	'a second one: 42710');
SELECT is(pg_temp.err('SELECT awa_insert(''k'', after => ARRAY[-5::bigint])'),
	'23503 | job -5 named in after does not exist | A job can run only after jobs that exist in the same database.',
	'after naming no job: 23503');
SELECT is(pg_temp.err('SELECT awa_cancel(-5)'), 'P0002 | job -5 does not exist', 'awa_cancel of no job: P0002');
SELECT is(pg_temp.err('SELECT awa_retry(-5)'), 'P0002 | job -5 does not exist', 'awa_retry of no job: P0002');
SELECT is(pg_temp.err('SELECT awa_get_job(-5)'), 'P0002 | job -5 does not exist', 'awa_get_job of no job: P0002');
SELECT is(pg_temp.err('SELECT awa_claim(ARRAY[]::text[])'),
	'22023 | queues must name at least one queue | Pass NULL::text[] to claim from every queue.', 'awa_claim of no queue: 22023');
SELECT is(pg_temp.err(format('SELECT awa_fail(%s, %s, ''x'', retry_in => ''-1 s'')', (SELECT id FROM j), (SELECT lease FROM j))),
	'22023 | retry_in must be between 0 and 36500 days, got "-00:00:01" | A month counts as 30 days, a year as 360.',
	'awa_fail with a negative retry_in: 22023');

-- and the context of those errors names none of the ring's internals
SELECT is(pg_temp.ctx(format('SELECT awa_wait_external(%s, %s)', (SELECT id FROM j), (SELECT lease FROM j))), '',
	'awa_wait_external''s error: no context line names awa''s internals');
SELECT is(pg_temp.ctx('SELECT awa_group_on_finish(''mg'', ''k'')'), '',
	'awa_group_on_finish''s error: no context line names awa''s internals');
SELECT is(pg_temp.ctx('SELECT awa_group_on_finish(''mg2'', ''k'', queue => '''')'), '',
	'a bad queue of awa_group_on_finish: no context line names awa''s internals');

SELECT * FROM finish();
ROLLBACK;
