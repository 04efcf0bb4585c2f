# CALL awa.ring_claim_wait, the ring's blocking claim (src/ring_wait.c), with real sessions on a
# server of its own (a procedure that commits between its attempts runs only outside a
# transaction block, which pgTAP and the isolation tester cannot wait on: the tester waits for
# any step that is not blocked on a lock to finish):
#  1. while it sleeps on an empty queue its backend_xmin is NULL, sample after sample, while
#     other transactions take xids;
#  2. an uncommitted ring insert into its queue does not wake it; the insert's commit does, and
#     the CALL returns the job with its receipt committed;
#  3. a rolled-back insert wakes nobody, nor do commits into another ring queue or into the
#     awa.jobs queue of the same name; then a commit into its queue wakes it, and it claims
#     only that queue's job;
#  4. a waiter of every awa.jobs queue (awa_claim_wait(NULL::text[])) asleep at the same time
#     never takes a ring queue's wake-up (round after round, the ring waiter gets the job);
#  5. a job due later: woken once at its commit, then it sleeps until the job comes due and
#     claims it then (two wake-ups in all: no polling); a wait shorter than the due time ends
#     after the wait, with jobs NULL;
#     due rows another transaction holds (its claim promoted them): it looks again with backoff
#     (1, 2, 4 ... ms, at most 1 s apart) and claims the row that transaction left once it commits;
#  6. a rollback of a ring claim gives the job back and wakes a waiter, which claims it;
#  7. pg_cancel_backend ends it with 57014 and leaves no registered waiter; statement_timeout
#     ends the wait a little before it, with jobs NULL and no error.
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
my $node = awa_node('ring_wait', conf => "awa.install_engine = 'table'\nawa.databases = ''");
$node->start;
my $db = 'awa_ring_wait_test';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
$node->safe_psql($db, "ALTER DATABASE $db SET awa.ring_engine = on");
my $connstr = $node->connstr($db);

# bg(SQL...): a psql session running each statement as its own query (a CALL runs outside a
# transaction block), in the background; done() waits for it and returns its exit status.
sub bg { return bg_psql($connstr, [ '-v', 'VERBOSITY=verbose' ], @_); }
sub done { return bg_wait(@_); }
sub q1 { return $node->safe_psql($db, $_[0]); }
sub ms { return int(1000 * shift); }
sub asleep { return session_asleep($node, $db, @_); }
sub wakeups { return q1("SHOW awa.claimer_wakeups"); }
# state(NAME): wait event type and whether backend_xmin is NULL, of the session NAME
sub state
{
	return q1("SELECT coalesce(wait_event_type, '') || '/' || (backend_xmin IS NULL)"
		  . " FROM pg_stat_activity WHERE application_name = '$_[0]'");
}
# waiter(NAME, QUEUE, WAIT, [BATCH]): a background CALL of awa.ring_claim_wait, asleep (one test)
sub waiter
{
	my ($name, $queue, $wait, $batch) = @_;
	$batch //= 1;
	my $s = bg("SET application_name = '$name'",
		"CALL awa.ring_claim_wait('$queue', batch => $batch, worker => '$name', wait => '$wait')");
	asleep($name, "$name sleeps in its wait");
	return $s;
}
# ns(JOBS): the args->>'n' of each job of a returned jobs array, comma-separated
sub ns
{
	my ($jobs) = @_;
	return '' if $jobs eq '';
	return q1("SELECT string_agg(j->'args'->>'n', ',') FROM jsonb_array_elements(\$x\$$jobs\$x\$::jsonb) j");
}

# 1. backend_xmin while it sleeps
my $s = waiter('xmin-waiter', 'idle', '20 s');
my (@states, @xids);
for my $i (1 .. 5)
{
	push @xids, q1("SELECT txid_current()");
	push @states, state('xmin-waiter');
	usleep(200_000);
}
note("xids: @xids; wait event/backend_xmin IS NULL: @states");
is_deeply(\@states, [ ('Extension/true') x 5 ],
	'a session asleep in CALL awa.ring_claim_wait holds no backend_xmin, sample after sample');
is(q1("SHOW awa.waiting_claimers"), '1', 'it is registered as a waiter');
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'xmin-waiter'");
isnt(done($s), 0, 'the cancelled CALL fails');
like($s->{err}, qr/57014: canceling statement due to user request/, 'pg_cancel_backend ends it with 57014');
is(q1("SHOW awa.waiting_claimers"), '0', 'no waiter is left registered after a cancel');

# 2. not woken before the commit; woken by it
$s = waiter('commit-waiter', 'wq', '30 s');
my $w0 = wakeups();
my $ins = bg("BEGIN", "SELECT awa.ring_insert('k', '{\"n\": 1}', 'wq')", "SELECT pg_sleep(1)", "COMMIT");
usleep(600_000);
is(state('commit-waiter') . ' ' . (wakeups() - $w0), 'Extension/true 0',
	'an uncommitted insert into its queue does not wake it');
is(done($ins), 0, 'the insert commits') or diag($ins->{err});
my $t0 = time;
is(done($s), 0, 'the woken CALL ends without error') or diag($s->{err});
my $t1 = time;
is(ns($s->{out}), '1', 'it returns the job');
ok($t1 - $t0 < 2, sprintf('the commit wakes it at once (%d ms after the committing session ended)', ms($t1 - $t0)));
is(q1("SELECT count(*) FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id WHERE r.queue = 'wq'"
	  . " AND c.claimed_by = 'commit-waiter'"), '1', 'its receipt is committed when the CALL ends');

# 3. rollback, other queues: no wake-up; then its own queue's commit
$s = waiter('queue-waiter', 'rq', '30 s');
$w0 = wakeups();
q1("BEGIN; SELECT awa.ring_insert('k', '{\"n\": 1}', 'rq'); ROLLBACK;");
q1("SELECT awa.ring_insert('k', '{\"n\": 3}', 'other-rq')");
q1("SELECT id FROM awa_insert('k', queue => 'rq')");
usleep(500_000);
is(state('queue-waiter') . ' ' . (wakeups() - $w0), 'Extension/true 0',
	'a rolled-back insert, a commit into another ring queue and one into awa.jobs\' queue of the same name wake nobody');
q1("SELECT awa.ring_insert('k', '{\"n\": 2}', 'rq')");
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
is(ns($s->{out}), '2', 'woken by the commit into its queue, it claims that queue\'s job, and only it');
is(q1("SELECT count(*) FROM awa.claims c JOIN awa.ready r ON r.id = c.job_id WHERE r.queue = 'other-rq'"),
	'0', 'the other ring queue\'s job is not claimed');
is(q1("SELECT state FROM awa.jobs WHERE queue = 'rq'"), 'available', 'nor is awa.jobs\' job of queue rq');

# 4. a waiter of every awa.jobs queue never takes a ring queue's wake-up
q1("DELETE FROM awa.jobs");	# test 3's job of awa.jobs: this waiter would claim it
my $any = bg("SET application_name = 'any-waiter'", "CALL awa_claim_wait(NULL::text[], wait => '60 s')");
asleep('any-waiter', 'a waiter of every awa.jobs queue sleeps');
my $got = 0;
for my $round (1 .. 6)
{
	$s = waiter("ring-waiter-$round", 'aq', '3 s');
	$t0 = time;
	q1("SELECT awa.ring_insert('k', '{\"n\": $round}', 'aq')");
	done($s);
	$got++ if ns($s->{out}) eq "$round" && time - $t0 < 2;
}
is($got, 6, 'the ring waiter is woken for each ring insert while a waiter of every awa.jobs queue sleeps too');
is(state('any-waiter'), 'Extension/true', 'the awa.jobs waiter still sleeps');
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'any-waiter'");
done($any);

# 5. a job due later
$s = waiter('due-waiter', 'sq', '30 s');
$w0 = wakeups();
$t0 = time;
q1("SELECT awa.ring_insert('k', '{\"n\": 5}', 'sq', run_at => now() + interval '2 s')");
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
$t1 = time;
is(ns($s->{out}), '5', 'it returns the scheduled job');
ok($t1 - $t0 > 1.5 && $t1 - $t0 < 5,
	sprintf('it claims the job when it comes due (%d ms for a job due in 2 s)', ms($t1 - $t0)));
is(wakeups() - $w0, 2, 'two wake-ups: the commit (to look at the due time), then the due time; no polling');
q1("SELECT awa.ring_insert('k', '{\"n\": 6}', 'sq2', run_at => now() + interval '20 s')");
$t0 = time;
$s = bg("CALL awa.ring_claim_wait('sq2', wait => '1 s')");
is(done($s) . "|$s->{out}", '0|', 'a job due after the wait: the wait ends with jobs NULL');
$t1 = time;
ok($t1 - $t0 > 0.9 && $t1 - $t0 < 3, sprintf('... after the wait (%d ms for 1 s)', ms($t1 - $t0)));

# 5b. due rows held by another transaction's promotion: retried with backoff until it ends
q1("SELECT awa.ring_insert('k', '{\"n\": 11}', 'hq', priority => 1, run_at => now() + interval '1 s');"
	  . " SELECT awa.ring_insert('k', '{\"n\": 12}', 'hq', priority => 2, run_at => now() + interval '1 s')");
usleep(1_200_000);
my $holder = bg("BEGIN", "SELECT count(*) FROM awa.ring_claim('hq', 1)", "SELECT pg_sleep(2)", "COMMIT");
usleep(300_000);
$w0 = wakeups();
$s = waiter('held-waiter', 'hq', '30 s');
is(done($holder), 0, 'the claim that promoted both due rows and took one commits') or diag($holder->{err});
$t0 = time;
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
$t1 = time;
is(ns($s->{out}), '12', 'the waiter claims the row the other claim promoted and left');
ok($t1 - $t0 < 1.5, sprintf('within the backoff\'s longest step (%d ms after that commit)', ms($t1 - $t0)));
my $polls = wakeups() - $w0;
ok($polls >= 3 && $polls <= 14, "while the rows were held it looked again with backoff, not every 1 ms ($polls times in about 2 s)");

# 6. a rolled-back ring claim gives its job back and wakes a waiter
q1("SELECT awa.ring_insert('k', '{\"n\": 7}', 'bq')");
my $claimer = bg("BEGIN", "SELECT count(*) FROM awa.ring_claim('bq')", "SELECT pg_sleep(1.5)", "ROLLBACK");
usleep(500_000);
$s = waiter('back-waiter', 'bq', '30 s');
done($claimer);
$t0 = time;
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
$t1 = time;
is(ns($s->{out}), '7', 'the rolled-back claim\'s job is claimed by the waiter');
ok($t1 - $t0 < 2, sprintf('at once (%d ms after the rollback)', ms($t1 - $t0)));

# 7. statement_timeout
$t0 = time;
$s = bg("SET statement_timeout = '700ms'", "CALL awa.ring_claim_wait('idle', wait => '30 s')");
my $rc = done($s);
$t1 = time;
is("$rc|$s->{out}|$s->{err}", '0||', 'a wait past statement_timeout returns jobs NULL, no error');
ok($t1 - $t0 < 3, sprintf('statement_timeout 700ms: the CALL returned after %d ms', ms($t1 - $t0)));
is(q1("SHOW awa.waiting_claimers"), '0', 'no waiter is left registered');

$node->stop;
done_testing();
