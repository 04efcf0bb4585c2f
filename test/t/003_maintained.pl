# Who maintains each database, end to end, on servers of its own:
# A. awa preloaded (awa.databases left at its default '*', max_worker_processes = 5: the
#    launcher, PostgreSQL's logical replication launcher and three workers;
#    awa.maintenance_interval = 200ms), no client calling awa_maintain():
#    1. m1 (given awa before the server started) and m2, m3 (created after): each gets a
#       background worker that promotes a due scheduled job within seconds;
#       awa_health_check() says "background worker", healthy;
#    2. DROP EXTENSION awa in m2: its worker leaves within seconds; CREATE EXTENSION awa
#       again: a worker is back within seconds;
#    3. m4 when no worker slot is free: nobody maintains it, the health check says why
#       (max_worker_processes) and the log says so once;
#    4. awa.databases = 'm1,m2,m3': m4 is not listed (nobody, "not in awa.databases");
#       once awa_maintain() runs there: "awa_maintain() calls";
#    5. a hot standby of it: "primary (hot standby)", healthy; a write call is refused
#       with a short 25006 that names the function.
# B. awa not preloaded, pg_cron preloaded: nobody maintains c1 (unhealthy, the reason
#    names pg_cron); the README's pg_cron recipe (CALL awa_maintain_for() every minute)
#    makes it "awa_maintain() calls" and healthy, and promotes a scheduled job.  pg_cron
#    fires on the minute: B is set up first and checked last, so A runs during that wait.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

sub health
{
	my ($node, $db) = @_;
	return $node->safe_psql($db,
		"SELECT maintained_by || '|' || healthy || '|' || coalesce(reason, '') FROM awa_health_check()");
}

# ---- B, set-up: not preloaded, pg_cron ---------------------------------------------------
my $cron = PostgreSQL::Test::Cluster->new('cron');
$cron->init;
$cron->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron'\ncron.database_name = 'postgres'\n"
	  . "cron.host = '" . $cron->host . "'\nlog_statement = none");
$cron->start;
$cron->safe_psql('postgres', 'CREATE DATABASE c1');
$cron->safe_psql('c1',       'CREATE EXTENSION awa');
like(health($cron, 'c1'), qr/^nobody\|false\|.*schedule awa_maintain\(\) with pg_cron/,
	'c1 (no preload, no rounds): nobody maintains it, the reason names pg_cron');
$cron->safe_psql('c1', "SELECT awa_insert('promote_me', run_at => clock_timestamp() + interval '1 second')");
usleep(1_100_000);    # due before pg_cron's first round, whenever that comes
# the README's recipe, as written there
$cron->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$cron->safe_psql('postgres',
	"SELECT cron.schedule_in_database('awa-maintenance', '* * * * *', 'CALL awa_maintain_for()', 'c1')");
my $cron_t0 = time;

# ---- A. preloaded -------------------------------------------------------------------------
my $node = awa_node('primary', allows_streaming => 1,
	conf => "max_worker_processes = 5\nawa.maintenance_interval = 200ms");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE m1');
$node->safe_psql('m1',       'CREATE EXTENSION awa');
$node->restart;

sub workers
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
		  WHERE backend_type = 'awa maintenance' AND datname IS NOT NULL");
}

# a job scheduled 300 ms ahead becomes available without awa_maintain()
sub promoted_in
{
	my ($db) = @_;
	$node->safe_psql($db, "SELECT awa_insert('promote_me', run_at => clock_timestamp() + interval '300 ms')");
	wait_until($node, $db, "SELECT bool_and(state = 'available') FROM awa.jobs WHERE kind = 'promote_me'", 15,
		"$db: a due scheduled job promoted by its maintenance worker");
}

# 1. every database with awa, one there at start and two created after it
promoted_in('m1');
for my $db ('m2', 'm3')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION awa');
	promoted_in($db);
}
is(health($node, $_), 'background worker|true|', "$_: maintained by a background worker, healthy")
  for ('m1', 'm2', 'm3');
query_is($node, 'm1',
	"SELECT worker_running AND worker_pid > 0 AND worker_last_run > now() - interval '5 s' FROM awa_health_check()",
	't', 'm1: worker_running, worker_pid, worker_last_run');
is(workers(), 'm1,m2,m3', 'one maintenance worker in each of m1, m2, m3');

# 2. DROP EXTENSION / CREATE EXTENSION
$node->safe_psql('m2', 'DROP EXTENSION awa');
wait_until($node, 'postgres',
	"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = 'm2')", 15,
	'm2: its worker leaves after DROP EXTENSION awa');
$node->safe_psql('m2', 'CREATE EXTENSION awa');
wait_until($node, 'postgres',
	"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = 'm2')", 15,
	'm2: a worker is back after CREATE EXTENSION awa');

# 3. no worker slot free: both launchers + 3 workers = max_worker_processes
$node->safe_psql('postgres', 'CREATE DATABASE m4');
$node->safe_psql('m4',       'CREATE EXTENSION awa');
wait_until($node, 'm4',
	"SELECT maintained_by = 'nobody' AND NOT healthy
	    AND reason LIKE '%no background worker slot was free%max_worker_processes%' FROM awa_health_check()", 15,
	'm4: the health check says nobody maintains it, for want of a worker slot');
my $n = () = slurp_file($node->logfile) =~ /no background worker slot is free for database "m4"/g;
is($n, 1, 'the log says once that m4 got no worker slot');

# 4. an allow-list leaves m4 out; rounds from awa_maintain() calls count
$node->safe_psql('postgres', "ALTER SYSTEM SET awa.databases = 'm1,m2,m3'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
wait_until($node, 'm4',
	"SELECT maintained_by = 'nobody' AND reason LIKE '%not in awa.databases%' FROM awa_health_check()", 15,
	'm4: not in awa.databases, nobody maintains it');
$node->safe_psql('m4', 'SELECT * FROM awa_maintain()');
is(health($node, 'm4'), 'awa_maintain() calls|true|', 'm4: maintained by awa_maintain() calls once a round ran there');

# 5. hot standby
$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->start;
wait_until($standby, 'm1', 'SELECT pg_is_in_recovery()', 30, 'standby: in recovery');
is(health($standby, 'm1'), 'primary (hot standby)|true|', 'standby: maintained by its primary, healthy');
my ($ret, $out, $err) = $standby->psql('m1', "SELECT awa_insert('x')");
ok($ret != 0 && $err =~ /awa_insert cannot run on a hot standby/ && length($err) < 300,
	'standby: awa_insert refused with a short error that names the function')
  or diag("got ($ret): $err");
($ret, $out, $err) = $standby->psql('m1', "SELECT awa_insert('x')", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  25006:/, 'standby: the refusal is SQLSTATE 25006');
$standby->stop;
$node->stop;

# ---- B, checks: the first pg_cron rounds come on the next minute -----------------------------
my $left = 75 - (time - $cron_t0);
wait_until($cron, 'c1', "SELECT maintained_by = 'awa_maintain() calls' AND healthy FROM awa_health_check()",
	$left > 5 ? $left : 5, 'c1: maintained by awa_maintain() calls from pg_cron, healthy');
wait_until($cron, 'c1', "SELECT bool_and(state = 'available') FROM awa.jobs WHERE kind = 'promote_me'", 5,
	'c1: the scheduled job promoted');
$cron->stop;
done_testing();
