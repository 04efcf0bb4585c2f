# Crash test on the table engine (the legacy one; 002_crash_ring.pl runs the default), on a server of its
# own (fsync = on): a steady insert + claim + complete load survives (a) SIGKILL of a worker's backend
# mid-batch (postmaster crash recovery) and (b) pg_ctl stop -m immediate mid-load and a restart; then every
# committed insert exists exactly once, no committed completion is lost, no completed job is claimed
# again, the running jobs of dead sessions are rescued and finished, and
# awa_queue_stats() equals a recount.  The load and those checks are
# test/crash/crash.py; this file starts the server and reads its log.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaCrash;
use Test::More;

my $node = crash_run('crash', 'awa_crash', ring => 0,
	label => 'crash.py: the load survives SIGKILL of a backend and an immediate stop; no job lost or duplicated');

$node->stop;
done_testing();
