# A claim that walks a long way behind a fast claimer still gets its batch
# (test/integration/python/claim_race.py), on a server of its own.
#   AWA_CLAIM_RACE_JOBS (default 40000): jobs in the queue, three fifths claimed before the workers start.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use Test::More;

my $node = awa_node('claim_race', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_claim_race';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
run_python('claim_race.py: slow claims behind a fast claimer return full batches', 300,
	[ "$FindBin::RealBin/../integration/python/claim_race.py", $node->connstr($db),
		$ENV{AWA_CLAIM_RACE_JOBS} // 40000, 25 ])
  or diag(log_tail($node));
$node->stop;
done_testing();
