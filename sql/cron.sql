CREATE EXTENSION IF NOT EXISTS awa;
-- awa_next_fire_times: cron parsing and time-zone-aware next fire times.
SET timezone = 'UTC';
-- Syntax forms, names and macros in UTC: n fire times after a fixed instant.
-- 2024-01-01 is a Monday.
CREATE TEMP TABLE cron_cases (id int PRIMARY KEY, cron text, after timestamptz, n int);
INSERT INTO cron_cases VALUES
  (1, '* * * * *', '2024-01-01 00:00:30+00', 4),
  (2, '5 * * * *', '2024-01-01 00:00:30+00', 4),
  (3, '10-12 * * * *', '2024-01-01 00:00:30+00', 4),
  (4, '*/20 * * * *', '2024-01-01 00:00:30+00', 4),
  (5, '10-30/10 * * * *', '2024-01-01 00:00:30+00', 4),
  (6, '50/5 * * * *', '2024-01-01 00:00:30+00', 4),
  (7, '0,15,45 * * * *', '2024-01-01 00:00:30+00', 4),
  (8, '1,2-3,*/30 * * * *', '2024-01-01 00:00:30+00', 5),
  (9, '0 12 * * *', '2024-01-01 00:00:30+00', 3),
  (10, '30 9-17/4 * * *', '2024-01-01 00:00:30+00', 4),
  (11, '0 0 1 * *', '2024-01-01 00:00:30+00', 3),
  (12, '0 0 31 * *', '2024-01-01 00:00:30+00', 4),
  (13, '0 0 * 2 *', '2024-01-01 00:00:30+00', 3),
  (14, '0 0 1 jan,Jul *', '2024-01-01 00:00:30+00', 4),
  (15, '0 0 1 MAR-may *', '2024-01-01 00:00:30+00', 4),
  (16, '0 0 1 */4 *', '2024-01-01 00:00:30+00', 4),
  (17, '0 0 1 10/1 *', '2024-01-01 00:00:30+00', 4),
  (18, '0 8 * * MON-FRI', '2024-01-01 00:00:30+00', 6),
  (19, '0 8 * * sat,Sun', '2024-01-01 00:00:30+00', 4),
  (20, '0 8 * * 7', '2024-01-01 00:00:30+00', 3),
  (21, '0 8 * * 0', '2024-01-01 00:00:30+00', 3),
  (22, '0 8 * * 5-7', '2024-01-01 00:00:30+00', 4),
  (23, '0 8 * * */2', '2024-01-01 00:00:30+00', 4),
  (24, '0 8 * * 3/2', '2024-01-01 00:00:30+00', 4),
  (25, '0 8 * * wed-FRI/2', '2024-01-01 00:00:30+00', 4),
  (26, '0 0 13 * FRI', '2024-01-01 00:00:30+00', 5),
  (27, '0 0 13 * *', '2024-01-01 00:00:30+00', 3),
  (28, '0 0 */10 * MON', '2024-01-01 00:00:30+00', 3),
  (29, '0 0 1,15 * SUN-SAT', '2024-01-01 00:00:30+00', 3),
  (30, '@yearly', '2024-01-01 00:00:30+00', 2),
  (31, '@annually', '2024-01-01 00:00:30+00', 2),
  (32, '@monthly', '2024-01-01 00:00:30+00', 2),
  (33, '@weekly', '2024-01-01 00:00:30+00', 2),
  (34, '@daily', '2024-01-01 00:00:30+00', 2),
  (35, '@midnight', '2024-01-01 00:00:30+00', 2),
  (36, '@hourly', '2024-01-01 00:00:30+00', 2),
  (37, ' @DAILY ', '2024-01-01 00:00:30+00', 2),
  (38, E' 0\t12   *  * *\n', '2024-01-01 00:00:30+00', 2),
  (39, '0 0 29 2 *', '2024-01-01 00:00:30+00', 3),
  (40, '0 0 29 2 *', '2096-03-01 00:00:00+00', 2),
  (41, '0 0 30 2 *', '2024-01-01 00:00:30+00', 3),
  (42, '0 0 31 4,6,9,11 *', '2024-01-01 00:00:30+00', 3),
  (43, '*/5 * * * *', '2024-01-01 00:04:59.999999+00', 2),
  (44, '*/5 * * * *', '2024-01-01 00:05:00+00', 2),
  (45, '59 23 31 12 *', '2024-12-31 23:59:00+00', 1),
  (46, '* * * * *', 'infinity', 3),
  (47, '00 07 * * *', '2024-01-01 00:00:30+00', 1);
SELECT c.id, c.cron, c.after, string_agg(to_char(t, 'YYYY-MM-DD HH24:MI Dy'), ', ' ORDER BY t) AS fire_times FROM cron_cases c LEFT JOIN LATERAL awa_next_fire_times(c.cron, 'UTC', c.after, c.n) t ON true GROUP BY c.id, c.cron, c.after ORDER BY c.id;
-- Defaults: time zone UTC, five fire times.
SELECT * FROM awa_next_fire_times('0 0 1 1 *', after => '2024-06-01 00:00:00+00');
-- Other zones; zone names are case-insensitive.
SELECT * FROM awa_next_fire_times('0 9 * * *', 'Asia/Kolkata', '2024-01-01 00:00:00+00', 2);
SELECT * FROM awa_next_fire_times('0 9 * * *', 'europe/berlin', '2024-01-01 00:00:00+00', 2);
SELECT * FROM awa_next_fire_times('0 9 * * *', 'America/New_York', '2024-07-01 00:00:00+00', 2);
-- Daylight-saving time.  Europe/Berlin: 2024-03-31 02:00 CET -> 03:00 CEST (01:00 UTC);
-- 2024-10-27 03:00 CEST -> 02:00 CET (01:00 UTC).  America/New_York: 2024-03-10
-- 02:00 EST -> 03:00 EDT (07:00 UTC); 2024-11-03 02:00 EDT -> 01:00 EST (06:00 UTC).
CREATE TEMP TABLE dst_cases (id int PRIMARY KEY, cron text, tz text, after timestamptz, n int);
INSERT INTO dst_cases VALUES
  (1, '30 2 * * *', 'Europe/Berlin', '2024-03-29 12:00:00+00', 4),
  (2, '30 2 * * *', 'Europe/Berlin', '2024-10-25 12:00:00+00', 4),
  (3, '0 * * * *', 'Europe/Berlin', '2024-03-30 23:30:00+00', 4),
  (4, '0 * * * *', 'Europe/Berlin', '2024-10-26 22:30:00+00', 5),
  (5, '30 * * * *', 'Europe/Berlin', '2024-03-30 23:45:00+00', 3),
  (6, '*/15 * * * *', 'Europe/Berlin', '2024-03-31 00:40:00+00', 3),
  (7, '*/15 * * * *', 'Europe/Berlin', '2024-10-27 00:40:00+00', 6),
  (8, '*/30 2 * * *', 'Europe/Berlin', '2024-10-26 12:00:00+00', 4),
  (9, '30 2 * * *', 'Europe/Berlin', '2024-03-31 01:10:00+00', 1),
  (10, '30 2 * * *', 'America/New_York', '2024-03-09 12:00:00+00', 2),
  (11, '30 2 * * *', 'America/New_York', '2024-11-02 12:00:00+00', 2),
  (12, '30 1 * * *', 'America/New_York', '2024-11-02 12:00:00+00', 2),
  (13, '0 * * * *', 'America/New_York', '2024-03-10 05:30:00+00', 3),
  (14, '0 * * * *', 'America/New_York', '2024-11-03 04:30:00+00', 4),
  (15, '0 2 * * SUN', 'America/New_York', '2024-03-01 00:00:00+00', 3);
SELECT c.id, c.cron, c.tz, t AS fire_time_utc, to_char(t AT TIME ZONE c.tz, 'YYYY-MM-DD HH24:MI') AS local_time FROM dst_cases c LEFT JOIN LATERAL awa_next_fire_times(c.cron, c.tz, c.after, c.n) t ON true ORDER BY c.id, t;
-- A daily 02:30 job (and, in New York, a 01:30 job) fires exactly once on each transition day.
SELECT z.tz, z.cron, z.day, (SELECT count(*) FROM awa_next_fire_times(z.cron, z.tz, (z.day - 1)::timestamp AT TIME ZONE z.tz, 5) t WHERE (t AT TIME ZONE z.tz)::date = z.day) AS fires FROM (VALUES ('Europe/Berlin', '30 2 * * *', '2024-03-31'::date), ('Europe/Berlin', '30 2 * * *', '2024-10-27'), ('America/New_York', '30 2 * * *', '2024-03-10'), ('America/New_York', '30 2 * * *', '2024-11-03'), ('America/New_York', '30 1 * * *', '2024-03-10'), ('America/New_York', '30 1 * * *', '2024-11-03')) AS z(tz, cron, day) ORDER BY 1, 2, 3;
-- Hourly and every-minute jobs keep their real-time period across each transition:
-- 1000 fire times, every gap exactly one hour (one minute).
SELECT z.tz, z.cron, z.after, count(*) AS fires, min(s.gap) AS min_gap, max(s.gap) AS max_gap, max(s.t) AS last FROM (VALUES ('Europe/Berlin', '0 * * * *', '2024-03-01 00:00:00+00'::timestamptz), ('Europe/Berlin', '0 * * * *', '2024-10-01 00:00:00+00'), ('America/New_York', '0 * * * *', '2024-03-01 00:00:00+00'), ('America/New_York', '0 * * * *', '2024-10-15 00:00:00+00'), ('Europe/Berlin', '* * * * *', '2024-03-30 18:00:00+00'), ('Europe/Berlin', '* * * * *', '2024-10-26 18:00:00+00'), ('America/New_York', '* * * * *', '2024-03-10 00:00:00+00'), ('America/New_York', '* * * * *', '2024-11-03 00:00:00+00')) AS z(tz, cron, after), LATERAL (SELECT t, t - lag(t) OVER (ORDER BY t) AS gap FROM awa_next_fire_times(z.cron, z.tz, z.after, 1000) t) s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
-- STRICT: a NULL argument gives no rows.
SELECT count(*) FROM awa_next_fire_times(NULL, 'UTC', '2024-01-01 00:00:00+00', 3);
-- Errors: expression.
SELECT awa_next_fire_times('', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('   ', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('@reboot', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('@daily 5', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('61 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('5,60 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('99999999999 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* 24 * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * 0 * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * 32 * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * 0 *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * 13 *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * 8', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('*/0 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* */25 * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * 1-12/13 *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('*/x * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('*/ * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * 1/-2 * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('30-10 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * FRI-MON', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * DEC-JAN *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * FOO *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * MONDAY', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * JAN', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* MON * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('5x * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('*5 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('1-2-3 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('*/5/2 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('-5 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('5- * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('1,,2 * * * *', 'UTC', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * 1,', 'UTC', '2024-01-01 00:00:00+00', 1);
-- Errors: time zone, n, after.
SELECT awa_next_fire_times('* * * * *', 'Mars/Olympus_Mons', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * *', '', '2024-01-01 00:00:00+00', 1);
SELECT awa_next_fire_times('* * * * *', 'UTC', '2024-01-01 00:00:00+00', 0);
SELECT awa_next_fire_times('* * * * *', 'UTC', '2024-01-01 00:00:00+00', 1001);
SELECT awa_next_fire_times('* * * * *', 'UTC', '2024-01-01 00:00:00+00', -1);
SELECT awa_next_fire_times('* * * * *', 'UTC', '-infinity', 1);
-- Clean up, as the other tests do.
DROP EXTENSION awa;
