# CALL awa.ring_claim_wait(queues text[], ...), the ring's blocking claim over several queues
# (src/ring_wait.c, hook: rclaim; src/ring_claim.c), with real sessions on a server of its own
# (the isolation tester waits for any step that is not blocked on a lock to finish, so it cannot
# run a step that sleeps on its latch):
#  1. asleep on three empty queues, it is woken by a commit into the second, then (again asleep)
#     by one into the third, and returns that job each time, at once;
#  2. a rolled-back insert into one of its queues, a commit into a ring queue it does not serve
#     and one into the awa.jobs queue of the same name as one of its queues wake nobody; then a
#     commit into one of its queues wakes it, and it claims only that job;
#  3. with jobs of two of its queues committed together it takes both, in claim order;
#  4. NULL (every queue with rows on the ring) is published in the wait slots as a waiter of every
#     ring queue: a commit into a queue it has never seen wakes it, and it takes that job at once.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# On the table engine (awa.install_engine = 'table'): the ring built beside the table awa.jobs (awa.ring_*
# with awa.ring_engine, and awa.jobs' queues of the same names), as it was developed.
my $node = awa_node('ring_claim_wait_many', conf => "awa.install_engine = 'table'\nawa.databases = ''");
$node->start;
my $db = 'awa_ring_claim_wait_many_test';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
$node->safe_psql($db, "ALTER DATABASE $db SET awa.ring_engine = on");
my $connstr = $node->connstr($db);

sub bg { return bg_psql($connstr, [ '-v', 'VERBOSITY=verbose' ], @_); }
sub done { return bg_wait(@_); }
sub q1 { return $node->safe_psql($db, $_[0]); }
sub ms { return int(1000 * shift); }
sub wakeups { return q1("SHOW awa.claimer_wakeups"); }
sub state
{
	return q1("SELECT coalesce(wait_event_type, '') || '/' || (backend_xmin IS NULL)"
		  . " FROM pg_stat_activity WHERE application_name = '$_[0]'");
}
# waiter(NAME, QUEUES (an SQL text[]), WAIT, [BATCH]): a background CALL, asleep (one test)
sub waiter
{
	my ($name, $queues, $wait, $batch) = @_;
	$batch //= 1;
	my $s = bg("SET application_name = '$name'",
		"CALL awa.ring_claim_wait($queues, batch => $batch, worker => '$name', wait => '$wait')");
	session_asleep($node, $db, $name, "$name sleeps in its wait");
	return $s;
}
# qns(JOBS): queue:n of each job of a returned jobs array, comma-separated
sub qns
{
	my ($jobs) = @_;
	return '' if $jobs eq '';
	return q1("SELECT string_agg((j->>'queue') || ':' || (j->'args'->>'n'), ',')"
		  . " FROM jsonb_array_elements(\$x\$$jobs\$x\$::jsonb) j");
}
my $three = "ARRAY['ma', 'mb', 'mc']";

# 1. woken by a commit into any of its queues
for my $q ('mb', 'mc')
{
	my $s = waiter("w-$q", $three, '30 s');
	is(q1("SHOW awa.waiting_claimers"), '1', "asleep on three queues ($q next): one registered waiter");
	my $t0 = time;
	q1("SELECT awa.ring_insert('k', '{\"n\": 1}', '$q')");
	is(done($s), 0, 'the woken CALL ends without error') or diag($s->{err});
	my $t1 = time;
	is(qns($s->{out}), "$q:1", "a commit into $q wakes it and it returns that job");
	ok($t1 - $t0 < 2, sprintf('at once (%d ms after the commit)', ms($t1 - $t0)));
}

# 2. no wake-up for a rollback, another ring queue, awa.jobs' queue of the same name
my $s = waiter('w-quiet', $three, '30 s');
my $w0 = wakeups();
q1("BEGIN; SELECT awa.ring_insert('k', '{\"n\": 2}', 'ma'); ROLLBACK;");
q1("SELECT awa.ring_insert('k', '{\"n\": 2}', 'other')");
q1("SELECT id FROM awa_insert('k', queue => 'mb')");
usleep(500_000);
is(state('w-quiet') . ' ' . (wakeups() - $w0), 'Extension/true 0',
	'a rolled-back insert, another ring queue and awa.jobs\' queue mb wake nobody; it holds no snapshot asleep');
q1("SELECT awa.ring_insert('k', '{\"n\": 3}', 'ma')");
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
is(qns($s->{out}), 'ma:3', 'woken by the commit into ma, it claims that job and only it');
is(q1("SELECT count(*) FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id WHERE r.queue = 'other'"), '0',
	'the other ring queue\'s job is not claimed');

# 3. two of its queues in one commit: both jobs, in claim order
$s = waiter('w-two', $three, '30 s', 5);
q1("BEGIN; SELECT awa.ring_insert('k', '{\"n\": 4}', 'mc', run_at => now() - interval '2 minutes');"
	  . " SELECT awa.ring_insert('k', '{\"n\": 5}', 'ma', run_at => now() - interval '3 minutes'); COMMIT;");
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
is(qns($s->{out}), 'ma:5,mc:4', 'jobs of two of its queues committed together: both, the older first');

# 4. every queue: published as a waiter of every lane
q1("SELECT count(*) FROM awa.ring_claim(NULL::text[], 100)");	# what is left (test 2's job of another queue)
$s = bg("SET application_name = 'w-every'", "CALL awa.ring_claim_wait(NULL::text[], wait => '30 s')");
session_asleep($node, $db, 'w-every', 'the waiter of every queue sleeps in its wait');
is(q1("SHOW awa.waiting_claimers"), '1', 'a waiter of every ring queue is published in the wait slots');
my $t0 = time;
q1("SELECT awa.ring_insert('k', '{\"n\": 6}', 'never-seen')");
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
my $t1 = time;
is(qns($s->{out}), 'never-seen:6', 'it takes the job of a queue it had never seen');
ok($t1 - $t0 < 1, sprintf('woken at once (%d ms)', ms($t1 - $t0)));

$node->stop;
done_testing();
