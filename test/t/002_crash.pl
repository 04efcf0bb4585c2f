# Crash test, on a server of its own (fsync = on): a steady insert + claim + complete
# load survives (a) SIGKILL of a worker's backend mid-batch (postmaster crash recovery)
# and (b) pg_ctl stop -m immediate mid-load and a restart; then every committed insert
# exists exactly once, no committed completion is lost, no completed job is claimed
# again, the running jobs of dead sessions are rescued and finished, and
# awa_queue_stats() equals a recount.  The load and those checks are
# test/crash/crash.py; this file starts the server and reads its log.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $db   = 'awa_crash';
my $node = awa_node('crash', conf => "fsync = on\nawa.databases = '$db'\nawa.maintenance_interval = 500");
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");
# On the table engine (awa.install_engine = 'table'), the legacy one: 002_crash_ring.pl runs the same load on
# the default engine, the ring.
$node->safe_psql($db, "SET awa.install_engine = 'table'; CREATE EXTENSION awa");

my $data = $node->data_dir;
my $log  = $node->logfile;
run_python('crash.py: the load survives SIGKILL of a backend and an immediate stop; no job lost or duplicated',
	300, [ "$FindBin::RealBin/../crash/crash.py" ],
	{
		PGHOST          => $node->host,
		PGPORT          => $node->port,
		CRASH_DB        => $db,
		CRASH_STOP_CMD  => "pg_ctl -D '$data' -m immediate -w stop >/dev/null",
		CRASH_START_CMD => "pg_ctl -D '$data' -l '$log' -w start >/dev/null",
	}) or diag(log_tail($node, 40));

my $text = slurp_file($log);
ok($text =~ /terminated by signal 9/ && $text =~ /all server processes terminated; reinitializing/,
	'the SIGKILL made the postmaster reinitialize (scenario a happened)');
like($text, qr/database system was interrupted|database system was not properly shut down/,
	'the server log shows crash recovery');
my @other = grep { !/signal 9: Killed/ } ($text =~ /^.*(?:terminated by signal|PANIC).*$/mg);
is_deeply(\@other, [], 'no crash in the server log other than the SIGKILL the test sent');

$node->stop;
done_testing();
