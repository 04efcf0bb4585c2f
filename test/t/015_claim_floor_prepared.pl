# Claim floors (src/floor.c) versus prepared transactions, on a server of its own (the test
# server of scripts/test.sh has max_prepared_transactions = 0): a job enqueued by a prepared
# transaction and committed after claims raised the floor past its run_at is claimed next; so
# are the jobs of a prepared claim rolled back; and a prepared enqueue that survives a restart
# (its pin in shared memory does not) is claimed once committed.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use Test::More;

# On the table engine (awa.install_engine = 'table'): claim floors (src/floor.c) are the table's; the ring's
# lanes are tested by its own files.
my $node = awa_node('claim_floor_prepared', conf => "awa.install_engine = 'table'\nawa.databases = ''\nmax_prepared_transactions = 4");
$node->start;
my $db = 'awa_floor';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');

# jobs due an hour ago, a minute apart; a late job's run_at is two hours ago, below them all
sub enqueue
{
	my ($n) = @_;
	$node->safe_psql($db, "SELECT count(*) FROM (SELECT awa_insert('k', jsonb_build_object('n', i), queue => 'fl',"
		  . " run_at => now() - interval '1 hour' + i * interval '1 minute') FROM generate_series(1, $n) i) s");
}
sub claim { return $node->safe_psql($db, "SELECT string_agg(kind || ':' || (args->>'n'), ',' ORDER BY run_at, id)"
		  . " FROM awa_claim('fl', batch => $_[0])"); }
sub raises { return $node->safe_psql($db, "SHOW awa.claim_floor_raises"); }
sub prepare_late
{
	my ($gid) = @_;
	$node->safe_psql($db, "BEGIN; SELECT awa_insert('late', jsonb_build_object('n', 0), queue => 'fl',"
		  . " run_at => now() - interval '2 hours'); PREPARE TRANSACTION '$gid'");
}

# the first claim after the start pins the prepared transactions there are (none yet)
is(claim(1), '', 'a first claim');
enqueue(8);
prepare_late('p1');
my $before = raises();
is(claim(2), 'k:1,k:2', 'claims before the prepared enqueue commits');
is(claim(2), 'k:3,k:4', 'and past its run_at');
cmp_ok(raises(), '>', $before, 'the floor was raised (up to the pin)');
$node->safe_psql($db, "COMMIT PREPARED 'p1'");
is(claim(2), 'late:0,k:5', 'the prepared job, committed behind the floor, is claimed next');
is(claim(100), 'k:6,k:7,k:8', 'then the rest');

# a claim prepared, other claims past it, the claim rolled back
$node->safe_psql($db, "TRUNCATE awa.jobs");
enqueue(8);
$node->safe_psql($db, "BEGIN; SELECT count(*) FROM awa_claim('fl', batch => 2); PREPARE TRANSACTION 'p2'");
is(claim(2), 'k:3,k:4', 'claims past a prepared claim');
is(claim(2), 'k:5,k:6', 'and further');
$node->safe_psql($db, "ROLLBACK PREPARED 'p2'");
is(claim(2), 'k:1,k:2', 'the jobs of the prepared claim rolled back are claimed next');
is(claim(100), 'k:7,k:8', 'then the rest');

# a prepared enqueue across a restart: shared memory (floors and pins) starts empty
$node->safe_psql($db, "TRUNCATE awa.jobs");
enqueue(8);
prepare_late('p3');
$node->restart;
is(raises(), '0', 'after a restart no floor was raised yet');
is(claim(2), 'k:1,k:2', 'claims after the restart');
is(claim(2), 'k:3,k:4', 'and past the prepared job');
$node->safe_psql($db, "COMMIT PREPARED 'p3'");
is(claim(2), 'late:0,k:5', 'the prepared job that survived the restart is claimed next');
is(claim(100), 'k:6,k:7,k:8', 'then the rest');

$node->stop;
done_testing();
