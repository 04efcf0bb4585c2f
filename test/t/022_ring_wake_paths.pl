# Every ring path that makes a job claimable wakes a blocking claimer of its queue (CALL
# awa.ring_claim_wait, src/ring_wait.c; docs/storage.md, "Step 5: timeouts, history and lag,
# wake-ups on the ring"), on a server of its own with no maintenance worker.  Each case starts a
# waiter with a wait of 30 s on a queue where nothing is claimable and nothing is due before the
# wait ends, then makes a job claimable by one path; the CALL must return that job within a few
# seconds (without the path's wake-up it sleeps to the end of its wait):
#  1. awa.ring_retry of a job that failed for good (a ready row now);
#  2. awa.ring_promote of a scheduled row made due by hand (no commit told the waiter its time);
#  3. awa.ring_rescue of an attempt past its deadline (its retry is ready now);
#  4. awa.ring_retry_external with retry_in 0 (the end of an external wait, ready now);
#  5. awa.ring_callback_timeouts (a retry after the default backoff: the waiter looks at its due
#     time, sleeps until then and claims it);
#  6. the maintenance round (awa_maintain) promoting a due scheduled row.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = awa_node('ring_wake_paths', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_ring_wake_test';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
$node->safe_psql($db, "ALTER DATABASE $db SET awa.ring_engine = on");
my $connstr = $node->connstr($db);

sub q1 { return $node->safe_psql($db, $_[0]); }
sub ms { return int(1000 * shift); }

# waiter(NAME, QUEUE): a background CALL of awa.ring_claim_wait (wait 30 s), asleep (one test)
sub waiter
{
	my ($name, $queue) = @_;
	my $s = bg_psql($connstr, [], "SET application_name = '$name'",
		"CALL awa.ring_claim_wait('$queue', worker => '$name', wait => '30 s')");
	session_asleep($node, $db, $name, "$name sleeps in its wait");
	return $s;
}

# woken(WAITER, N, WITHIN, WHAT): the CALL ends without error within WITHIN seconds of now with
# the job whose args->>'n' is N (three tests)
sub woken
{
	my ($s, $n, $within, $what) = @_;
	my $t0 = time;
	is(bg_wait($s), 0, "$what: the CALL ends without error") or diag($s->{err});
	my $t1 = time;
	my $got = $s->{out} eq '' ? '' :
	  q1("SELECT string_agg(j->'args'->>'n', ',') FROM jsonb_array_elements(\$x\$$s->{out}\$x\$::jsonb) j");
	is($got, $n, "$what: it returns the job");
	ok($t1 - $t0 < $within, sprintf('%s: woken at once (%d ms, at most %d s)', $what, ms($t1 - $t0), $within));
}

# 1. awa.ring_retry
my $id = q1("SELECT awa.ring_insert('k', '{\"n\": 1}', 'q1')");
q1("SELECT awa.ring_fail(id, run_lease, retry => false) FROM awa.ring_claim('q1')");
my $s = waiter('retry-waiter', 'q1');
is(q1("SELECT awa.ring_retry($id)"), 't', 'ring_retry of the failed job');
woken($s, '1', 3, 'ring_retry');

# 2. awa.ring_promote of a row made due by hand
q1("SELECT awa.ring_insert('k', '{\"n\": 2}', 'q2', run_at => now() + interval '1 hour')");
$s = waiter('promote-waiter', 'q2');
q1("UPDATE awa.scheduled SET run_at = now() - interval '1 second' WHERE queue = 'q2'");
is(q1("SELECT awa.ring_promote(10)"), '1', 'ring_promote moves the due row');
woken($s, '2', 3, 'ring_promote');

# 3. awa.ring_rescue
q1("SELECT awa.ring_insert('k', '{\"n\": 3}', 'q3')");
q1("SELECT count(*) FROM awa.ring_claim('q3', 1, '1 millisecond')");
$s = waiter('rescue-waiter', 'q3');
is(q1("SELECT awa.ring_rescue()"), '1', 'ring_rescue ends the attempt past its deadline');
woken($s, '3', 3, 'ring_rescue');

# 4. awa.ring_retry_external with retry_in 0
q1("SELECT awa.ring_insert('k', '{\"n\": 4}', 'q4')");
my $cb = q1("SELECT awa.ring_register_callback(id, run_lease, '1 hour') FROM awa.ring_claim('q4')");
q1("SELECT awa.ring_wait_external(c.job_id, c.run_lease) FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id"
	  . " AND r.queue = 'q4'");
$s = waiter('external-waiter', 'q4');
is(q1("SELECT awa.ring_retry_external('$cb', retry_in => '0')"), 'retryable', 'ring_retry_external, retry_in 0');
woken($s, '4', 3, 'ring_retry_external');

# 5. awa.ring_callback_timeouts: retried after the default backoff (2 to 2.5 s for the first attempt)
q1("SELECT awa.ring_insert('k', '{\"n\": 5}', 'q5')");
q1("SELECT awa.ring_register_callback(id, run_lease, '1 second') FROM awa.ring_claim('q5')");
q1("SELECT awa.ring_wait_external(c.job_id, c.run_lease) FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id"
	  . " AND r.queue = 'q5'");
$s = waiter('timeout-waiter', 'q5');
usleep(1_100_000);
is(q1("SELECT awa.ring_callback_timeouts()"), '1', 'the callback timed out');
woken($s, '5', 6, 'ring_callback_timeouts');

# 6. the maintenance round's promotion
q1("SELECT awa.ring_insert('k', '{\"n\": 6}', 'q6', run_at => now() + interval '1 hour')");
$s = waiter('round-waiter', 'q6');
q1("UPDATE awa.scheduled SET run_at = now() - interval '1 second' WHERE queue = 'q6'");
is(q1("SELECT promoted FROM awa_maintain()"), '1', 'the round promotes the due row');
woken($s, '6', 3, 'the round\'s promotion');

is(q1("SHOW awa.waiting_claimers"), '0', 'no waiter is left registered');
$node->stop;
done_testing();
