# The crash test (002_crash.pl, test/crash/crash.py) on a database whose jobs are in the ring (created with
# awa.install_engine = ring: awa.jobs is the ring's view; docs/storage.md, "Step 5: crash and fuzz tests on the
# ring"), on a server of its own (fsync = on): the steady insert + claim + complete load survives SIGKILL of a
# worker's backend mid-batch and pg_ctl stop -m immediate mid-load while a rotator session seals and reclaims
# slots under it; then every committed insert exists exactly once, no committed completion is lost, the killed
# worker's jobs end by their deadlines (the maintenance worker or awa_rescue) and finish, the parked jobs keep
# their callbacks, and the ring's invariants hold (its side tables agree with each other and with the view;
# awa_queue_stats() equals awa.ring_recount() and a recount of the view).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $db   = 'awa_crash_ring';
my $node = awa_node('crash_ring', conf => "fsync = on\nawa.databases = '$db'\nawa.maintenance_interval = 500");
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");
# jit off: reads of the view (the invariants' recounts, awa_queue_stats) are planned above jit_above_cost and
# take seconds to compile on every fresh connection
$node->safe_psql('postgres', "ALTER DATABASE $db SET jit = off");
$node->safe_psql($db, 'SET awa.install_engine = ring; CREATE EXTENSION awa');
is($node->safe_psql($db, "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass"), 'v',
	'awa.jobs is the ring\'s view');

my $data = $node->data_dir;
my $log  = $node->logfile;
run_python('crash.py on the ring: the load survives SIGKILL of a backend and an immediate stop; no job lost or duplicated',
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
is($node->safe_psql($db, "SELECT count(*) FROM awa.maintenance_failures"), '0',
	'no maintenance step failed (the ring\'s promote, rescue, rotate, reclaim)');

$node->stop;
done_testing();
