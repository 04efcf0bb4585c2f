# The Python client and worker behind a real transaction pooler: Debian's pgbouncer (1.18),
# in pool_mode = transaction with a pool of 3 server connections, in front of a server of
# its own.  For psycopg 3 and for psycopg2 (test/integration/python/pgbouncer_check.py):
#  1. two `python -m awa_worker` processes and two threads making blocking claims
#     (awa_claim(..., wait => ...)) with Client, all through pgbouncer, drain 600 jobs:
#     every job completed exactly once (handler runs counted, database checked), no error
#     logged or raised (psycopg 3's server-side prepared statements would break here:
#     "prepared statement \"_pg3_0\" already exists");
#  2. a measurement for README "Connection poolers": with the pool of 3 held by three
#     claimers blocked in CALL awa_claim_wait(wait => '2 s') (the client's blocking claim),
#     how long an insert through the same pool waits, and the same with one server
#     connection to spare.
# pgbouncer listens on a free loopback port and is stopped at the end.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $bouncer = program('pgbouncer', 'pgbouncer');

my $node = awa_node('pgbouncer');
$node->start;
my $db = 'awa_pgbouncer_it';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');

# $db: the pool under test (3 server connections); ${db}_spare: the same database with 4.
my $dir  = PostgreSQL::Test::Utils::tempdir;
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $user = getpwuid($<);
my ($host, $pgport) = ($node->host, $node->port);
append_to_file("$dir/userlist.txt", qq{"$user" ""\n});
append_to_file("$dir/pgbouncer.ini", <<"INI");
[databases]
$db = host=$host port=$pgport dbname=$db pool_size=3
${db}_spare = host=$host port=$pgport dbname=$db pool_size=4

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 100
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = $user
INI

sub stop_bouncer
{
	return unless -f "$dir/pgbouncer.pid";
	kill 'TERM', slurp_file("$dir/pgbouncer.pid") =~ s/\s+//gr;
	for (1 .. 50) { last unless -f "$dir/pgbouncer.pid"; usleep(100_000); }
}
END { stop_bouncer() if defined $dir; }

ok(system($bouncer, '-d', "$dir/pgbouncer.ini") == 0, "pgbouncer started on 127.0.0.1:$port")
  or diag(-f "$dir/pgbouncer.log" ? slurp_file("$dir/pgbouncer.log") : 'no pgbouncer log');
for (1 .. 50)
{
	last if system('pg_isready', '-q', '-h', '127.0.0.1', '-p', $port, '-d', $db) == 0;
	usleep(100_000);
}

my $py  = "$FindBin::RealBin/../integration/python";
my $top = "$FindBin::RealBin/../..";
chdir $py or die "chdir $py: $!";
run_python('pgbouncer_check.py: worker and blocking claims through pgbouncer (transaction mode), both drivers',
	300, [ 'pgbouncer_check.py' ],
	{
		PYTHONPATH            => "$top/clients/python/src:$top/clients/python/tests",
		PYTHONUNBUFFERED      => 1,
		AWA_DIRECT_DSN        => "host=$host port=$pgport dbname=$db",
		AWA_BOUNCER_DSN       => "host=127.0.0.1 port=$port dbname=$db",
		AWA_BOUNCER_SPARE_DSN => "host=127.0.0.1 port=$port dbname=${db}_spare",
	})
  or diag("---- pgbouncer log (last lines)\n" . join("\n", grep { defined } (split /\n/, slurp_file("$dir/pgbouncer.log"))[-40 .. -1]));

stop_bouncer();
$node->stop;
done_testing();
