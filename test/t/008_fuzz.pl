# Fuzz test, on a server of its own: thousands of generated calls to every awa_* function
# (found in pg_proc at run time) with random, boundary and wrong-typed values, mixed with
# valid calls that move jobs through their states.  Fails if the server crashes or
# restarts, a call hangs past statement_timeout, an error has no SQLSTATE or is internal
# (class XX / 58), or the invariants of awa.jobs and awa_queue_stats() do not hold
# afterwards (test/fuzz/fuzz.py); then the server log must show no crash.
#   FUZZ_CALLS (default 5000), FUZZ_SEED (default random; printed to replay).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = awa_node('fuzz', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_fuzz';
$node->safe_psql('postgres', "CREATE DATABASE $db");
# On the table engine (awa.install_engine = 'table'), the legacy one: 008_fuzz_ring.pl runs the fuzz on the
# default engine, the ring.
$node->safe_psql($db, "SET awa.install_engine = 'table'; CREATE EXTENSION awa");
run_python('fuzz.py: every awa_* function with random, boundary and wrong-typed values', 600,
	[ "$FindBin::RealBin/../fuzz/fuzz.py", $db ], { PGHOST => $node->host, PGPORT => $node->port })
  or diag(log_tail($node));
my @crashes = grep { /terminated by signal|PANIC|TRAP:|was terminated by exception|Failed process was running/ }
  split /\n/, slurp_file($node->logfile);
is_deeply(\@crashes, [], 'the server log shows no crash');
query_is($node, 'postgres', 'SELECT 1', '1', 'the server still answers');
$node->stop;
done_testing();
