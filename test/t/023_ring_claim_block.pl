# The blocking claim of awa's API on a database whose jobs are in the ring (created with
# awa.install_engine = ring; docs/storage.md, "Step 5: awa_claim on the ring"), on a server of its
# own with no maintenance worker: awa_claim with a wait (one queue, several, every queue) and CALL
# awa_claim_wait (one queue, several) sleep until another session's insert into their queue
# commits and return that job at once; a job scheduled a moment ahead is claimed when it comes
# due; a wait with nothing to claim ends with no rows, at its end or a little before
# statement_timeout; a cancel ends the wait with 57014.  Each waiter waits 30 s: without its
# wake-up (or with the ring's claim still at its transaction's start, before the insert) it
# returns nothing, late.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = awa_node('ring_claim_block', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_ring_claim_block';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'SET awa.install_engine = ring; CREATE EXTENSION awa');
my $connstr = $node->connstr($db);

sub q1 { return $node->safe_psql($db, $_[0]); }
sub ms { return int(1000 * shift); }

is(q1("SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass"), 'v', 'awa.jobs is the ring\'s view');

# waiter(NAME, SQL): SQL in a background session named NAME, asleep in its wait (one test)
sub waiter
{
	my ($name, $sql) = @_;
	my $s = bg_psql($connstr, [], "SET application_name = '$name'", $sql);
	session_asleep($node, $db, $name, "$name sleeps in its wait");
	return $s;
}

# woken(WAITER, EXPECTED, WITHIN, WHAT): the waiter ends without error within WITHIN seconds with
# the output EXPECTED (a regex), three tests
sub woken
{
	my ($s, $expected, $within, $what) = @_;
	my $t0 = time;
	is(bg_wait($s), 0, "$what: it ends without error") or diag($s->{err});
	my $t1 = time;
	like($s->{out}, $expected, "$what: it returns the job");
	ok($t1 - $t0 < $within, sprintf('%s: woken at once (%d ms, at most %d s)', $what, ms($t1 - $t0), $within));
}

sub insert { return q1("SELECT id FROM awa_insert('k', '{\"n\": $_[1]}', queue => '$_[0]')"); }

# 1. awa_claim of one queue, in a statement (a transaction) that began before the insert
my $s = waiter('one', "SELECT c.args->>'n', c.state FROM awa_claim('q1', 'w', 1, '1 min', '30 s') c");
is(q1("SHOW awa.waiting_claimers"), '1', 'it is published as a waiter (woken by a commit, not polling)');
my $id = insert('q1', 1);
woken($s, qr/^1\|running$/, 3, 'awa_claim(queue, wait)');
is(q1("SELECT state, attempted_at > created_at, deadline_at = attempted_at + interval '1 min'"
	  . " FROM awa.jobs WHERE id = $id"), 'running|t|t',
	'its claim\'s time is the clock\'s, after the insert; deadline_at = that time + the lease');

# 2. awa_claim of several queues, woken by an insert into one of them
$s = waiter('several', "SELECT c.queue, c.args->>'n' FROM awa_claim(ARRAY['q2a', 'q2b'], 'w', 5, '1 min', '30 s') c");
insert('q2b', 2);
woken($s, qr/^q2b\|2$/, 3, 'awa_claim(queues, wait)');

# 3. CALL awa_claim_wait of one queue (commits between attempts)
$s = waiter('proc', "CALL awa_claim_wait('q3', 'w', 1, '1 min', '30 s')");
$id = insert('q3', 3);
woken($s, qr/\b$id\b/, 3, 'CALL awa_claim_wait(queue)');
is(q1("SELECT state FROM awa.jobs WHERE id = $id"), 'running', 'awa_claim_wait\'s claim is committed');

# 4. CALL awa_claim_wait of several queues
$s = waiter('proc-several', "CALL awa_claim_wait(ARRAY['q4a', 'q4b'], 'w', 1, '1 min', '30 s')");
is(q1("SHOW awa.waiting_claimers"), '1', 'it is published as a waiter of its queues');
$id = insert('q4a', 4);
woken($s, qr/\b$id\b/, 3, 'CALL awa_claim_wait(queues)');

# 4b. every queue (NULL), and more queues than a wait slot lists (20): published as a waiter of
# every ring queue, woken by the commit of an insert into any of them
$s = waiter('every', "SELECT c.args->>'n' FROM awa_claim(NULL::text[], 'w', 1, '1 min', '30 s') c");
is(q1("SHOW awa.waiting_claimers"), '1', 'a claim of every queue is published as a waiter (not polling)');
insert('q4c', 41);
woken($s, qr/^41$/, 3, 'awa_claim(every queue, wait)');
$s = waiter('twenty', "SELECT c.args->>'n' FROM awa_claim(ARRAY(SELECT 'q4m' || i FROM generate_series(1, 20) i), "
	. "'w', 1, '1 min', '30 s') c");
is(q1("SHOW awa.waiting_claimers"), '1', 'a claim of 20 queues is published as a waiter of every queue');
insert('q4other', 42);
insert('q4m17', 43);
woken($s, qr/^43$/, 3, 'awa_claim(20 queues, wait): the job of its 17th queue');
is(q1("SELECT state FROM awa.jobs WHERE args->>'n' = '42'"), 'available', 'the job of another queue is left');

# 5. a job scheduled 1.5 s ahead: claimed when due, not before, with no commit to wake the waiter.  "Not before"
# is the claim's time against the job's run_at, both the server's clocks (a time taken here after the insert
# returned would start late by however long the insert took on a loaded machine)
my $due_id = q1("SELECT id FROM awa_insert('k', '{\"n\": 5}', queue => 'q5', run_at => clock_timestamp() + interval '1.5 s')");
$s = waiter('due', "SELECT c.args->>'n' FROM awa_claim('q5', 'w', 1, '1 min', '30 s') c");
woken($s, qr/^5$/, 5, 'a scheduled job');
is(q1("SELECT attempted_at >= run_at FROM awa.jobs WHERE id = $due_id"), 't',
	'the scheduled job was claimed once due, not before (its attempted_at at or after its run_at)');

# 6. nothing to claim: no rows at the end of the wait, or a little before statement_timeout
my $t0 = time;
is(q1("SELECT count(*) FROM awa_claim('q6', 'w', 1, '1 min', '700 ms')"), '0', 'a wait that ends: no rows');
my $took = time - $t0;
ok($took >= 0.65 && $took < 5, sprintf('it waited its wait (%d ms)', ms($took)));
$t0 = time;
is(q1("SET statement_timeout = '1 s'; SELECT count(*) FROM awa_claim(ARRAY['q6', 'q7'], 'w', 1, '1 min', '30 s')"),
	'0', 'a wait cut by statement_timeout: no rows, no error');
$took = time - $t0;
ok($took >= 0.8 && $took < 5, sprintf('it waited until just before the timeout (%d ms)', ms($took)));

# 7. a cancel ends the wait (57014) and withdraws the waiter
$s = waiter('cancelled', "SELECT count(*) FROM awa_claim('q8', 'w', 1, '1 min', '30 s')");
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cancelled'");
isnt(bg_wait($s), 0, 'a cancelled wait fails');
like($s->{err}, qr/canceling statement due to user request/, 'with the cancel\'s error');

is(q1("SHOW awa.waiting_claimers"), '0', 'no waiter is left registered');
$node->stop;
done_testing();
