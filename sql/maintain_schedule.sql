-- Periodic jobs: awa_schedule, awa_unschedule, awa_pause_schedule,
-- awa_resume_schedule, and firing them through awa_maintain.
-- The maintenance lock is held for the session: see maintain.sql.
SELECT pg_advisory_lock(6387553, 1);
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- create: defaults, next_fire_at is the first fire time after now
SELECT name, cron, kind, args, queue, timezone, priority, max_attempts, tags, metadata,
       missed_fire_policy, paused, last_fired_at,
       next_fire_at = (SELECT awa_next_fire_times('0 3 * * *', 'UTC', now(), 1)) AS next_ok,
       created_at = now() AS created_now, updated_at = now() AS updated_now
  FROM awa_schedule('nightly', '0 3 * * *', 'cleanup');
-- every argument, named
SELECT name, cron, kind, args, queue, timezone, priority, max_attempts, tags, metadata, missed_fire_policy,
       next_fire_at = (SELECT awa_next_fire_times('30 2 * * MON-FRI', 'Europe/Berlin', now(), 1)) AS next_ok
  FROM awa_schedule(name => 'berlin', cron => '30 2 * * MON-FRI', kind => 'report', args => '{"full": true}',
                    queue => 'reports', timezone => 'Europe/Berlin', priority => 1, max_attempts => 3,
                    tags => ARRAY['nightly'], metadata => '{"team": "ops"}', missed_fire_policy => 'catch_up');
SELECT name, next_fire_at > now() AS in_future FROM awa_schedule('macro', '@hourly', 'tick');
SELECT name FROM awa.cron_jobs ORDER BY name;

-- replace: same name, new definition; created_at and paused are kept
UPDATE awa.cron_jobs SET created_at = '2020-01-01', paused = true WHERE name = 'nightly';
SELECT name, cron, kind, queue, priority, paused, created_at, updated_at = now() AS updated_now,
       next_fire_at = (SELECT awa_next_fire_times('15 4 * * *', 'UTC', now(), 1)) AS next_recomputed
  FROM awa_schedule('nightly', '15 4 * * *', 'cleanup_v2', queue => 'maint', priority => 3);
-- same expression and time zone: next_fire_at is kept (a due fire time is not skipped)
UPDATE awa.cron_jobs SET next_fire_at = '2020-01-01 04:15+00' WHERE name = 'nightly';
SELECT next_fire_at, kind FROM awa_schedule('nightly', '15 4 * * *', 'cleanup_v3');
SELECT count(*) FROM awa.cron_jobs;

-- pause and resume
SELECT name, paused FROM awa_pause_schedule('macro');
SELECT name, paused FROM awa_pause_schedule('macro');
UPDATE awa.cron_jobs SET next_fire_at = now() - interval '3 hours' WHERE name = 'macro';
-- resuming starts from the next fire time after now: missed times are not caught up
SELECT name, paused, next_fire_at = (SELECT awa_next_fire_times('@hourly', 'UTC', now(), 1)) AS next_ok
  FROM awa_resume_schedule('macro');
-- resuming a schedule that is not paused changes nothing
UPDATE awa.cron_jobs SET next_fire_at = '2030-01-01' WHERE name = 'macro';
SELECT name, paused, next_fire_at FROM awa_resume_schedule('macro');
SELECT awa_pause_schedule('nope');
SELECT awa_resume_schedule('nope');
SELECT awa_pause_schedule(NULL) IS NULL AS null_in_null_out;

-- unschedule
SELECT awa_unschedule('macro');
SELECT awa_unschedule('macro');
SELECT awa_unschedule(NULL) IS NULL AS null_in_null_out;
SELECT name FROM awa.cron_jobs ORDER BY name;

-- bad input: each an error, nothing written
SELECT awa_schedule('', '* * * * *', 'k');
SELECT awa_schedule(repeat('n', 201), '* * * * *', 'k');
SELECT awa_schedule('bad', '* * * *', 'k');
SELECT awa_schedule('bad', '61 * * * *', 'k');
SELECT awa_schedule('bad', '* * * * FRI-SUN', 'k');
SELECT awa_schedule('bad', '@fortnightly', 'k');
SELECT awa_schedule('bad', '0 0 30 2 *', 'k');
SELECT awa_schedule('bad', '* * * * *', 'k', timezone => 'Mars/Olympus');
SELECT awa_schedule('bad', '* * * * *', '');
SELECT awa_schedule('bad', '* * * * *', repeat('k', 201));
SELECT awa_schedule('bad', '* * * * *', 'k', queue => '');
SELECT awa_schedule('bad', '* * * * *', 'k', priority => 0);
SELECT awa_schedule('bad', '* * * * *', 'k', priority => 5);
SELECT awa_schedule('bad', '* * * * *', 'k', max_attempts => 0);
SELECT awa_schedule('bad', '* * * * *', 'k', max_attempts => 1001);
SELECT awa_schedule('bad', '* * * * *', 'k', '"scalar"');
SELECT awa_schedule('bad', '* * * * *', 'k', metadata => '[]');
SELECT awa_schedule('bad', '* * * * *', 'k', tags => array_fill('x'::text, ARRAY[21]));
SELECT awa_schedule('bad', '* * * * *', 'k', tags => ARRAY['a', NULL]);
SELECT awa_schedule('bad', '* * * * *', 'k', tags => ARRAY['']);
SELECT awa_schedule('bad', '* * * * *', 'k', missed_fire_policy => 'skip');
SELECT awa_schedule(NULL, '* * * * *', 'k');
SELECT awa_schedule('bad', NULL, 'k');
SELECT awa_schedule('bad', '* * * * *', NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', args => NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', queue => NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', timezone => NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', priority => NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', max_attempts => NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', tags => NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', metadata => NULL);
SELECT awa_schedule('bad', '* * * * *', 'k', missed_fire_policy => NULL);
-- a bad replacement leaves the existing schedule as it was
SELECT awa_schedule('nightly', 'bad', 'k');
SELECT name, cron, kind FROM awa.cron_jobs ORDER BY name;
SELECT count(*) AS jobs FROM awa.jobs;

-- firing: nothing is due yet
SELECT periodic_enqueued FROM awa_maintain();
SELECT count(*) AS jobs FROM awa.jobs;

-- coalesce: one job for five missed fire times, for the most recent one
SELECT name FROM awa_schedule('daily', '0 0 * * *', 'digest', '{"n": 1}', queue => 'mail', priority => 3,
                              max_attempts => 4, tags => ARRAY['cron'], metadata => '{"team": "ops", "cron": "overwritten"}');
UPDATE awa.cron_jobs SET next_fire_at = date_trunc('day', now()) - interval '4 days' WHERE name = 'daily';
SELECT periodic_enqueued FROM awa_maintain();
SELECT kind, args, queue, state, priority, max_attempts, tags,
       metadata - 'fire_time' AS metadata,
       metadata->>'fire_time' = to_char(date_trunc('day', now()), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS fire_time_today,
       run_at = date_trunc('day', now()) AS run_at_fire_time
  FROM awa.jobs WHERE kind = 'digest';
SELECT next_fire_at = date_trunc('day', now()) + interval '1 day' AS next_tomorrow,
       last_fired_at = date_trunc('day', now()) AS last_today
  FROM awa.cron_jobs WHERE name = 'daily';
-- each fire time once: the next round finds nothing due
SELECT periodic_enqueued FROM awa_maintain();

-- catch_up: one job per missed fire time, oldest first
SELECT name FROM awa_schedule('daily_all', '0 0 * * *', 'digest_all', missed_fire_policy => 'catch_up');
UPDATE awa.cron_jobs SET next_fire_at = date_trunc('day', now()) - interval '4 days' WHERE name = 'daily_all';
SELECT periodic_enqueued FROM awa_maintain();
SELECT date_trunc('day', now()) - run_at AS age, metadata->>'cron' AS cron,
       metadata->>'fire_time' = to_char(run_at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS fire_time_is_run_at
  FROM awa.jobs WHERE kind = 'digest_all' ORDER BY run_at;
SELECT periodic_enqueued FROM awa_maintain();
-- catch_up is bounded: at most 100 per schedule per round, the rest next round
SELECT name FROM awa_schedule('hourly_all', '0 * * * *', 'tick_all', missed_fire_policy => 'catch_up');
UPDATE awa.cron_jobs SET next_fire_at = date_trunc('hour', now()) - interval '150 hours' WHERE name = 'hourly_all';
SELECT periodic_enqueued FROM awa_maintain();
SELECT next_fire_at = date_trunc('hour', now()) - interval '50 hours' AS next_after_100 FROM awa.cron_jobs WHERE name = 'hourly_all';
SELECT periodic_enqueued FROM awa_maintain();
SELECT periodic_enqueued FROM awa_maintain();
SELECT count(*), count(DISTINCT run_at) FROM awa.jobs WHERE kind = 'tick_all';

-- a paused schedule does not fire
SELECT name FROM awa_schedule('paused', '* * * * *', 'never_runs');
SELECT paused FROM awa_pause_schedule('paused');
UPDATE awa.cron_jobs SET next_fire_at = now() - interval '1 hour' WHERE name = 'paused';
SELECT periodic_enqueued FROM awa_maintain();
SELECT count(*) FROM awa.jobs WHERE kind = 'never_runs';

-- a row edited by hand into a bad expression: a warning, it stops, the others still fire
SELECT name FROM awa_schedule('broken', '* * * * *', 'broken_kind');
SELECT name FROM awa_schedule('fine', '* * * * *', 'fine_kind');
UPDATE awa.cron_jobs SET cron = 'not a cron', next_fire_at = now() - interval '1 minute' WHERE name = 'broken';
UPDATE awa.cron_jobs SET next_fire_at = now() - interval '1 minute' WHERE name = 'fine';
SELECT periodic_enqueued FROM awa_maintain();
SELECT name, next_fire_at IS NULL AS stopped FROM awa.cron_jobs WHERE name IN ('broken', 'fine') ORDER BY name;
SELECT kind, count(*) FROM awa.jobs WHERE kind IN ('broken_kind', 'fine_kind') GROUP BY kind ORDER BY kind;
-- awa_schedule repairs it
SELECT name, next_fire_at IS NOT NULL AS firing_again FROM awa_schedule('broken', '* * * * *', 'broken_kind');

-- enqueued periodic jobs are ordinary jobs: unscheduling leaves them
SELECT awa_unschedule('daily');
SELECT count(*) FROM awa.jobs WHERE kind = 'digest';

-- awa.cron_jobs is dumped with the data
SELECT 'awa.cron_jobs'::regclass = ANY (extconfig) AS dumped FROM pg_extension WHERE extname = 'awa';

DROP EXTENSION awa;
SELECT pg_advisory_unlock(6387553, 1);
