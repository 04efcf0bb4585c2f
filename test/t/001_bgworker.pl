# The awa maintenance background worker, end to end, with no client ever calling
# awa_maintain(), on a server of its own (awa preloaded).  The worker
#   - follows awa.databases on SIGHUP (from the default '*' to a list without awa_bgw
#     and back),
#   - shows in pg_stat_activity as 'awa maintenance' (launcher + worker),
#   - promotes a due scheduled job, rescues a stale running job and fires a periodic
#     job whose next_fire_at was moved into the past,
#   - applies awa.maintenance_interval on SIGHUP: at 1h no round runs, back at 100ms
#     rounds run again; same pids throughout,
#   - skips a job it cannot promote (a user trigger raises for it): the others are
#     promoted, a WARNING names database, step and error once, awa_health_check()
#     reports it, later rounds work, and a retry promotes it once the trigger is gone,
#   - is started again after pg_terminate_backend (SIGTERM) of the worker and of the
#     launcher (the postmaster restarts the launcher after 1 s, the launcher the worker),
#   - is started again after kill -9 of the worker, which makes the postmaster reset
#     every backend (crash recovery),
#   - steps aside so DROP DATABASE of its database succeeds.
# Settings that must change on SIGHUP go through ALTER SYSTEM + pg_ctl reload.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = awa_node('bgworker');
$node->start;
my $db = 'awa_bgw';
$node->safe_psql('postgres', "CREATE DATABASE $db");
# On the table engine (awa.install_engine = 'table'), not the default ring: it makes a stale running job with
# UPDATE awa.jobs, which the ring's view refuses (not yet rewritten through the API).
$node->safe_psql($db, "SET awa.install_engine = 'table'; CREATE EXTENSION awa");

sub q1 { return $node->safe_psql($_[1] // $db, $_[0]); }
sub launcher_pid { q1("SELECT pid FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname IS NULL", 'postgres') }
sub worker_pid { q1("SELECT pid FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = '$db'", 'postgres') }
sub set_and_reload
{
	q1("ALTER SYSTEM SET $_", 'postgres') for @_;
	$node->reload;
}

# 0. default awa.databases = '*': a worker in awa_bgw (which has awa), none in postgres
# (which has not); an allow-list without awa_bgw stops it, one with it brings it back
wait_until($node, 'postgres',
	"SELECT count(*) FILTER (WHERE datname = '$db') = 1 AND count(*) FILTER (WHERE datname = 'postgres') = 0
	   FROM pg_stat_activity WHERE backend_type = 'awa maintenance'", 10,
	'with the default awa.databases a worker runs in awa_bgw, none in postgres');
set_and_reload("awa.databases = 'postgres'");
wait_until($node, 'postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = '$db'", 10,
	"awa.databases = 'postgres' (SIGHUP): the worker of awa_bgw stops");
set_and_reload("awa.databases = '$db'", "awa.maintenance_interval = '200ms'");

# 1. visible in pg_stat_activity
wait_until($node, 'postgres',
	"SELECT count(*) FILTER (WHERE datname IS NULL) = 1 AND count(*) FILTER (WHERE datname = '$db') = 1
	    AND count(*) FILTER (WHERE datname = 'postgres') = 0
	   FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND application_name = 'awa maintenance'", 10,
	"after SIGHUP: launcher and a worker in awa_bgw (none in postgres) show as 'awa maintenance'");
my $worker   = worker_pid();
my $launcher = launcher_pid();

# 2. promotion, rescue, periodic job
q1("SELECT awa_insert('promote_me', run_at => now() + interval '1 second')");
q1("SELECT awa_insert('rescue_me')");
q1("UPDATE awa.jobs SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour',
	heartbeat_at = now() - interval '1 hour' WHERE kind = 'rescue_me'");
# a schedule that is due once now and not again during the test (an every-minute one fired a
# second time when the test crossed a minute boundary: two jobs, rightly)
q1("SELECT awa_schedule('bgw_tick', '0 0 1 1 *', 'tick')");
q1("UPDATE awa.cron_jobs SET next_fire_at = now() - interval '1 minute' WHERE name = 'bgw_tick'");
wait_until($node, $db, "SELECT state = 'available' FROM awa.jobs WHERE kind = 'promote_me'", 10,
	'worker promotes a scheduled job once its run_at has come');
wait_until($node, $db,
	"SELECT state IN ('retryable', 'available') AND errors[1]->>'error' = 'heartbeat stale' FROM awa.jobs WHERE kind = 'rescue_me'",
	10, 'worker rescues a running job with a stale heartbeat');
wait_until($node, $db,
	"SELECT (SELECT count(*) FROM awa.jobs WHERE kind = 'tick') = 1
	    AND (SELECT next_fire_at > now() FROM awa.cron_jobs WHERE name = 'bgw_tick')", 10,
	'worker fires a due periodic job once and moves next_fire_at past now');
query_is($node, $db, "SELECT metadata->>'cron' FROM awa.jobs WHERE kind = 'tick'", 'bgw_tick',
	"the periodic job's metadata names its schedule");

# 3. SIGHUP: the new interval applies to the running processes
set_and_reload("awa.maintenance_interval = '1h'");
usleep(500_000);
q1("SELECT awa_insert('after_reload', run_at => now() + interval '100 milliseconds')");
usleep(1_500_000);
query_is($node, $db, "SELECT state FROM awa.jobs WHERE kind = 'after_reload'", 'scheduled',
	'SIGHUP applies awa.maintenance_interval = 1h (no round for 1.5 s)');
set_and_reload("awa.maintenance_interval = '100ms'");
wait_until($node, $db, "SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_reload'", 10,
	'SIGHUP back to 100ms: rounds run again');
is(worker_pid() . '/' . launcher_pid(), "$worker/$launcher", 'worker and launcher keep their pids across SIGHUP');

# 3b. a job the round cannot process (a user trigger raises for it) is skipped: the other
# jobs are still promoted, a WARNING names the database, the step and the error (once, not
# every round), the health check reports it, later rounds work, and once the cause is gone
# its retry promotes it
q1('CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION $q$poisoned round$q$; END$$');
q1("CREATE TRIGGER poison BEFORE UPDATE ON awa.jobs FOR EACH ROW WHEN (OLD.kind = 'poison') EXECUTE FUNCTION poison()");
q1("SELECT awa_insert('poison', run_at => now() + interval '100 milliseconds')");
q1("SELECT awa_insert('beside_poison', run_at => now() + interval '100 milliseconds')");
my $poison  = q1("SELECT id FROM awa.jobs WHERE kind = 'poison'");
my $warning = qq{WARNING:  awa maintenance in database "$db": step "promote" skipped job $poison: poisoned round};
my $seen    = 0;
for (1 .. 100)
{
	last if ($seen = index(slurp_file($node->logfile), $warning) >= 0);
	usleep(100_000);
}
ok($seen, 'a job the round cannot promote is logged with a WARNING naming database, step and error')
  or diag("not logged within 10 s: $warning\n" . log_tail($node));
wait_until($node, $db, "SELECT state = 'available' FROM awa.jobs WHERE kind = 'beside_poison'", 10,
	'the job beside it is promoted all the same');
wait_until($node, $db,
	"SELECT NOT healthy AND reason LIKE '%maintenance step \"promote\" skipped 1 job(s) (first job $poison: poisoned round)%'
	   FROM awa_health_check()", 10,
	'the health check reports the skipped job and its error');
q1("SELECT awa_insert('after_poison', run_at => now() + interval '100 milliseconds')");
wait_until($node, $db, "SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_poison'", 10,
	'later rounds still promote other jobs');
usleep(1_500_000);
my $count = () = slurp_file($node->logfile) =~ /\Q$warning\E/g;
is($count, 1, 'later rounds do not log the skipped job again');
query_is($node, $db, "SELECT state FROM awa.jobs WHERE kind = 'poison'", 'scheduled',
	'later rounds leave the skipped job alone (retried with backoff)');
q1('DROP TRIGGER poison ON awa.jobs');
wait_until($node, $db, "SELECT state = 'available' FROM awa.jobs WHERE kind = 'poison'", 15,
	'once the cause is gone, a retry promotes the skipped job');
wait_until($node, $db, "SELECT coalesce(reason, '') NOT LIKE '%maintenance step%' FROM awa_health_check()", 10,
	'and the health check no longer reports it');
is(worker_pid(), $worker, 'the worker keeps running throughout');

# 4. SIGTERM of the worker: the launcher starts a new one
q1("SELECT pg_terminate_backend($worker)", 'postgres');
wait_until($node, 'postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'awa maintenance'
	   AND datname = '$db' AND pid <> $worker", 15,
	'the launcher restarts a terminated worker');
$worker = worker_pid();

# 5. SIGTERM of the launcher: the postmaster restarts it, it starts a new worker
q1("SELECT pg_terminate_backend($launcher)", 'postgres');
wait_until($node, 'postgres',
	"SELECT count(*) FILTER (WHERE datname IS NULL AND pid <> $launcher) = 1
	    AND count(*) FILTER (WHERE datname = '$db' AND pid <> $worker) = 1
	   FROM pg_stat_activity WHERE backend_type = 'awa maintenance'", 15,
	'the postmaster restarts a terminated launcher, which starts a new worker');
q1("SELECT awa_insert('after_restart', run_at => now() + interval '300 milliseconds')");
wait_until($node, $db, "SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_restart'", 10,
	'the restarted worker works');

# 6. kill -9 of the worker: crash recovery of the whole server, then back
$worker = worker_pid();
ok(kill('KILL', $worker), "kill -9 of the worker ($worker)");
usleep(500_000);
wait_until($node, 'postgres', 'SELECT true', 30, 'the server accepts connections again after the crash of the worker');
wait_until($node, 'postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'awa maintenance'
	   AND datname = '$db' AND pid <> $worker", 15,
	'a worker is running again after the crash');
ok(slurp_file($node->logfile) =~ /all server processes terminated; reinitializing/,
	'the kill -9 made the postmaster reinitialize');
q1("SELECT awa_insert('after_crash', run_at => now() + interval '300 milliseconds')");
wait_until($node, $db, "SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_crash'", 10,
	'the worker works after the crash');

# 7. the worker does not hold its database hostage
my ($ret, $out, $err) = $node->psql('postgres', "DROP DATABASE $db", timeout => 20);
is($ret, 0, 'DROP DATABASE succeeds while the worker runs') or diag($err);

$node->stop;
done_testing();
