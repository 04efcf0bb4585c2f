# A claimer asleep in awa_claim holds no row lock that another worker waits for, and no
# transaction ID (test/integration/python/claim_locks.py), on a server of its own.
#   AWA_CLAIM_LOCKS_JOBS (default 100): how many jobs the two workers take.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use Test::More;

my $node = awa_node('claim_locks', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_claim_locks';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
run_python('claim_locks.py: sleeping claimers hold no row lock and no transaction ID', 300,
	[ "$FindBin::RealBin/../integration/python/claim_locks.py", $node->connstr($db), $ENV{AWA_CLAIM_LOCKS_JOBS} // 100 ])
  or diag(log_tail($node));
$node->stop;
done_testing();
