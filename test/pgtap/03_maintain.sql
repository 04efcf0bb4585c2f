-- A maintenance round on either engine: a due periodic schedule fires its job into awa.jobs, with the
-- schedule's fields and its fire time in metadata, and no step fails.  (On the ring engine the table's row
-- steps have nothing to do and the periodic job goes into the ring.)
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION awa;
SELECT plan(5);

SELECT lives_ok($$SELECT awa_schedule('m_every_minute', '* * * * *', 'tick', '{"a": 1}', queue => 'mq',
	priority => 3, tags => ARRAY['cron'])$$, 'a schedule every minute');
UPDATE awa.cron_jobs SET next_fire_at = date_trunc('minute', now()) - interval '1 minute'
	WHERE name = 'm_every_minute';
SELECT is((SELECT periodic_enqueued FROM awa_maintain()), 1::bigint, 'the round fires the due schedule once');
SELECT is((SELECT row(kind, queue, args, priority, tags, state)::text FROM awa.jobs WHERE kind = 'tick'),
	'(tick,mq,"{""a"": 1}",3,{cron},available)', 'its job, with the schedule''s fields, waiting');
SELECT is((SELECT metadata->>'cron' FROM awa.jobs WHERE kind = 'tick'), 'm_every_minute',
	'its metadata names the schedule');
SELECT is((SELECT count(*) FROM awa.maintenance_failures), 0::bigint, 'no step of the round failed');

SELECT * FROM finish();
ROLLBACK;
