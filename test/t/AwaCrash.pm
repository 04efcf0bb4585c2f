# The crash test's server and checks, shared by 002_crash.pl (awa.jobs a table) and 002_crash_ring.pl (a
# database whose jobs are in the ring): the load and the job checks are test/crash/crash.py; this module starts
# a server of its own for it and reads its log.
package AwaCrash;

use strict;
use warnings;

use Exporter 'import';
use FindBin;
use PostgreSQL::Test::Utils;
use Test::More;

use AwaTest;

our @EXPORT = qw(crash_run);

# crash_run(NAME, DB, ring => 0|1, label => 'text'): a node NAME (fsync = on, the maintenance worker every
# 500 ms on DB), DB created with awa (with ring: the default engine, jit off for the view's reads, and a test that
# awa.jobs is a view; without: awa.install_engine = 'table', the legacy engine), crash.py run against it (SIGKILL
# of a backend, pg_ctl stop -m immediate and a restart; its test named by label), then the log's tests: the
# SIGKILL made the postmaster reinitialize, crash recovery ran, no other crash.  Returns the node, still running:
# the caller adds its tests and stops it.
sub crash_run
{
	my ($name, $db, %opt) = @_;
	my $node = awa_node($name, conf => "fsync = on\nawa.databases = '$db'\nawa.maintenance_interval = 500");
	$node->start;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	if ($opt{ring})
	{
		# jit off: reads of the view (the invariants' recounts, awa_queue_stats) are planned above
		# jit_above_cost and take seconds to compile on every fresh connection
		$node->safe_psql('postgres', "ALTER DATABASE $db SET jit = off");
		$node->safe_psql($db, 'CREATE EXTENSION awa');
		is($node->safe_psql($db, "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass"), 'v',
			'awa.jobs is the ring\'s view');
	}
	else
	{
		$node->safe_psql($db, "SET awa.install_engine = 'table'; CREATE EXTENSION awa");
		is($node->safe_psql($db, "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass"), 'r',
			'awa.jobs is the table');
	}

	my $data = $node->data_dir;
	my $log  = $node->logfile;
	run_python($opt{label}, 300, [ "$FindBin::RealBin/../crash/crash.py" ],
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
	return $node;
}

1;
