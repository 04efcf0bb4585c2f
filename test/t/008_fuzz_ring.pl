# The fuzz test (008_fuzz.pl, test/fuzz/fuzz.py) on a database whose jobs are in the ring (created with
# awa.install_engine = ring: awa.jobs is the ring's view; docs/storage.md, "Step 5: crash and fuzz tests on the
# ring"), on a server of its own with the maintenance worker: generated calls to every awa_* function mixed with
# valid ones (keyed jobs and jobs with parents too) and with maintenance (awa_maintain(); the open slot sealed and
# the sealed ones reclaimed at random: carry, history, TRUNCATE).  Fails if the server crashes, a call hangs, an
# error has no SQLSTATE or is internal, or the invariants do not hold midway and at the end: awa.jobs' (each job
# once, in one consistent state; awa_queue_stats() equals a recount of the view) and the ring's own (its side
# tables agree with each other and with the view; awa.ring_recount() finds no difference).
#   FUZZ_RING_CALLS (default 3000), FUZZ_SEED (default random; printed to replay).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $db   = 'awa_fuzz_ring';
my $node = awa_node('fuzz_ring', conf => "awa.databases = '$db'\nawa.maintenance_interval = 500");
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE $db");
# jit off: reads of the view (awa_queue_stats, awa_list_jobs, the invariants' recounts) are planned above
# jit_above_cost and take seconds to compile on every fresh connection
$node->safe_psql('postgres', "ALTER DATABASE $db SET jit = off");
$node->safe_psql($db, 'SET awa.install_engine = ring; CREATE EXTENSION awa');
is($node->safe_psql($db, "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass"), 'v',
	'awa.jobs is the ring\'s view');
run_python('fuzz.py on the ring: every awa_* function with random, boundary and wrong-typed values, and maintenance',
	600, [ "$FindBin::RealBin/../fuzz/fuzz.py", $db ],
	{ PGHOST => $node->host, PGPORT => $node->port, FUZZ_CALLS => $ENV{FUZZ_RING_CALLS} // 3000 })
  or diag(log_tail($node));
my @crashes = grep { /terminated by signal|PANIC|TRAP:|was terminated by exception|Failed process was running/ }
  split /\n/, slurp_file($node->logfile);
is_deeply(\@crashes, [], 'the server log shows no crash');
query_is($node, 'postgres', 'SELECT 1', '1', 'the server still answers');
$node->stop;
done_testing();
