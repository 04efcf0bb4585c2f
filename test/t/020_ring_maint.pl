# The maintenance background worker runs the ring's steps (src/ring_maint.c; docs/storage.md, "Step 5: the
# maintenance round on the ring") with no client calling awa_maintain(), on a server of its own (awa preloaded):
#   - a scheduled ring job is promoted once due,
#   - an attempt past its deadline (a lease of 1 ms) ends retryable, error "deadline exceeded",
#   - an attempt past its job's timeout (awa.ring_insert's timeout, 1 ms; a lease of an hour) ends retryable, error
#     "timeout exceeded",
#   - once every job completed, the open slot aged two hours is sealed and, with awa.retention_completed = 0,
#     reclaimed: the ring is empty,
#   - nothing was recorded as failing.
# Only the clients turn awa.ring_engine on (for their own sessions); the worker does not need it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = awa_node('ring_maint', conf => "awa.maintenance_interval = '200ms'\nawa.retention_completed = 0");
$node->start;
my $db = 'awa_ring';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');

sub ring { return $node->safe_psql($db, "SET awa.ring_engine = on; $_[0]"); }

wait_until($node, 'postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = '$db'", 20,
	'a worker runs in the database');

my $s = ring("SELECT awa.ring_insert('k', queue => 's', run_at => now() + interval '1 second')");
my $r = ring("SELECT awa.ring_insert('k', queue => 'r')");
my $t = ring("SELECT awa.ring_insert('k', queue => 't', timeout => '1 millisecond')");
is(ring("SELECT count(*) FROM awa.ring_claim('r', 1, '1 millisecond')"), '1', 'r claimed with a lease of 1 ms');
is(ring("SELECT count(*) FROM awa.ring_claim('t', 1, '1 hour')"), '1', 't claimed with a lease of an hour');

wait_until($node, $db, "SELECT EXISTS (SELECT 1 FROM awa.ready WHERE id = $s) AND NOT EXISTS (SELECT 1 FROM awa.scheduled)",
	20, 'the worker promotes the scheduled ring job once due');
wait_until($node, $db,
	"SELECT state = 'retryable' AND error = '\"deadline exceeded\"' FROM awa.done WHERE job_id = $r", 20,
	'the worker ends the attempt past its deadline: retryable, "deadline exceeded"');
wait_until($node, $db,
	"SELECT state = 'retryable' AND error = '\"timeout exceeded\"' FROM awa.done WHERE job_id = $t", 20,
	'the worker ends the attempt past its timeout: retryable, "timeout exceeded"');

# every job completes (t's retry completes in the transaction that claims it), then the open slot ages
is(ring("SELECT sum(n) FROM (SELECT (SELECT count(*) FROM
		(SELECT array_agg(id) AS i, array_agg(run_lease) AS l FROM awa.ring_claim(q, 10)) c,
		awa.ring_complete_many(c.i, c.l)) AS n FROM unnest(ARRAY['s', 'r', 't']) q) x"), '3',
	's, r\'s retry and t\'s retry claimed and completed');
ring("UPDATE awa.ring_slots SET opened_at = now() - interval '2 hours' WHERE state = 'open'");
wait_until($node, $db,
	"SELECT (SELECT state FROM awa.ring_slots WHERE slot = 0) = 'sealed'
	    AND NOT EXISTS (SELECT 1 FROM awa.ready) AND NOT EXISTS (SELECT 1 FROM awa.done)", 30,
	'the worker seals the aged slot and reclaims it: the ring is empty');
is($node->safe_psql($db, 'SELECT count(*) FROM awa.maintenance_failures'), '0', 'no step failed');

$node->stop;
done_testing();
