# NOTIFY only when someone listens, on a server of its own (it sets
# synchronous_standby_names to hold a commit, so it allows streaming: with
# max_wal_senders = 0 a commit never waits for a standby): enqueue sends no NOTIFY
# while no session of the cluster listens on an awa channel ("awa:", "awa#",
# "awa."), does once one does, and a new listener never misses a job whose enqueuer
# saw no listener.  The sessions and checks are test/integration/python/listen_gate.py.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use Test::More;

my $node = awa_node('listen', allows_streaming => 1);
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE awa_listen');
run_python('listen_gate.py: NOTIFY only while someone listens; a new listener misses no job', 120,
	[ "$FindBin::RealBin/../integration/python/listen_gate.py", $node->connstr('awa_listen') ])
  or diag(log_tail($node));
$node->stop;
done_testing();
