# The crash test (002_crash.pl, test/crash/crash.py) on a database whose jobs are in the ring (the default
# engine: awa.jobs is the ring's view; docs/storage.md, "Step 5: crash and fuzz tests on the
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
use AwaCrash;
use Test::More;

my $db   = 'awa_crash_ring';
my $node = crash_run('crash_ring', $db, ring => 1,
	label => 'crash.py on the ring: the load survives SIGKILL of a backend and an immediate stop; no job lost or duplicated');
is($node->safe_psql($db, "SELECT count(*) FROM awa.maintenance_failures"), '0',
	'no maintenance step failed (the ring\'s promote, rescue, rotate, reclaim)');

$node->stop;
done_testing();
