# Blocked claimers, on a server of its own (test/integration/python/wake_herd.py): a new
# job wakes one or few of them, not all; no due job is left while they sleep (bursts, a
# batch insert reported as one, a rolled-back claim, a scheduled job, a queue at its
# limit); claimers ended by pg_terminate_backend withdraw from shared memory.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use Test::More;

my $node = awa_node('wake_herd', conf => "awa.databases = ''");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE awa_wake_herd');
run_python('wake_herd.py: one job wakes one or few blocked claimers; none is left asleep with a due job', 180,
	[ "$FindBin::RealBin/../integration/python/wake_herd.py", $node->connstr('awa_wake_herd') ])
  or diag(log_tail($node));
$node->stop;
done_testing();
