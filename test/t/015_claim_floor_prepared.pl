# Claim floors versus prepared transactions, on a server of its own (the test server of
# scripts/test.sh has max_prepared_transactions = 0), on both storages (a database of each:
# awa.install_engine = table, floors of src/floor.c over the table; ring, the default: the same floors
# over the ring's lanes): a job enqueued by a prepared transaction and committed after claims raised
# the floor past its run_at is claimed next; so are the jobs of a prepared claim rolled back; and a
# prepared enqueue that survives a restart (its pin in shared memory does not) is claimed once
# committed.  Each scenario has a queue of its own.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use Test::More;

my $node = awa_node('claim_floor_prepared', conf => "awa.databases = ''\nmax_prepared_transactions = 4");
$node->start;
my ($db, $q, $engine);

# jobs due an hour ago, a minute apart; a late job's run_at is two hours ago, below them all
sub enqueue
{
	my ($n) = @_;
	$node->safe_psql($db, "SELECT count(*) FROM (SELECT awa_insert('k', jsonb_build_object('n', i), queue => '$q',"
		  . " run_at => now() - interval '1 hour' + i * interval '1 minute') FROM generate_series(1, $n) i) s");
}
sub claim { return $node->safe_psql($db, "SELECT string_agg(kind || ':' || (args->>'n'), ',' ORDER BY run_at, id)"
		  . " FROM awa_claim('$q', batch => $_[0])"); }
sub raises { return $node->safe_psql($db, "SHOW awa.claim_floor_raises"); }
sub prepare_late
{
	my ($gid) = @_;
	$node->safe_psql($db, "BEGIN; SELECT awa_insert('late', jsonb_build_object('n', 0), queue => '$q',"
		  . " run_at => now() - interval '2 hours'); PREPARE TRANSACTION '${gid}_$engine'");
}

for my $e ('table', 'ring')
{
	$engine = $e;
	$db = "awa_floor_$engine";
	$q = 'fl_a';
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "SET awa.install_engine = '$engine'; CREATE EXTENSION awa");
	run_scenarios();
}

sub run_scenarios
{
	# the first claim after the start pins the prepared transactions there are (none yet)
	is(claim(1), '', "$engine: a first claim");
	enqueue(24);
	prepare_late('p1');
	my $before = raises();
	is(claim(2), 'k:1,k:2', "$engine: claims before the prepared enqueue commits");
	# 16 more: the ring raises a queue's floors every 16 jobs a backend claims of it (floor.c, awa_floor_defer)
	is(claim(16), 'k:3,k:4,k:5,k:6,k:7,k:8,k:9,k:10,k:11,k:12,k:13,k:14,k:15,k:16,k:17,k:18', "$engine: and past its run_at");
	# on the table the floor rises up to the prepared job's pin; on the ring these claims count no raise (its
	# floors have isolation specs of their own: ring_claim_*), and the outcomes below are held the same
	cmp_ok(raises(), '>', $before, "$engine: the floor was raised (up to the pin)") if $engine eq 'table';
	$node->safe_psql($db, "COMMIT PREPARED 'p1_$engine'");
	is(claim(2), 'late:0,k:19', "$engine: the prepared job, committed behind the floor, is claimed next");
	is(claim(100), 'k:20,k:21,k:22,k:23,k:24', "$engine: then the rest");

	# a claim prepared, other claims past it, the claim rolled back
	$q = 'fl_b';
	enqueue(8);
	$node->safe_psql($db, "BEGIN; SELECT count(*) FROM awa_claim('$q', batch => 2); PREPARE TRANSACTION 'p2_$engine'");
	is(claim(2), 'k:3,k:4', "$engine: claims past a prepared claim");
	is(claim(2), 'k:5,k:6', "$engine: and further");
	$node->safe_psql($db, "ROLLBACK PREPARED 'p2_$engine'");
	is(claim(2), 'k:1,k:2', "$engine: the jobs of the prepared claim rolled back are claimed next");
	is(claim(100), 'k:7,k:8', "$engine: then the rest");

	# a prepared enqueue across a restart: shared memory (floors and pins) starts empty
	$q = 'fl_c';
	enqueue(24);
	prepare_late('p3');
	$node->restart;
	is(raises(), '0', "$engine: after a restart no floor was raised yet");
	is(claim(2), 'k:1,k:2', "$engine: claims after the restart");
	is(claim(16), 'k:3,k:4,k:5,k:6,k:7,k:8,k:9,k:10,k:11,k:12,k:13,k:14,k:15,k:16,k:17,k:18', "$engine: and past the prepared job");
	$node->safe_psql($db, "COMMIT PREPARED 'p3_$engine'");
	is(claim(2), 'late:0,k:19', "$engine: the prepared job that survived the restart is claimed next");
	is(claim(100), 'k:20,k:21,k:22,k:23,k:24', "$engine: then the rest");
}

$node->stop;
done_testing();
