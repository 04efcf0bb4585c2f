# CALL awa_claim_wait, the blocking claim that holds no snapshot while it sleeps, with
# real sessions on a server of its own:
#  1. while it waits on an idle queue its backend_xmin is NULL, sample after sample, while
#     other transactions take xids; a session blocked in
#     awa_claim(wait => ...) shows one fixed backend_xmin all along;
#  2. a committed insert wakes it at once; the job comes back running, with its new lease;
#  3. a scheduled job shortens its sleep: it takes the job about when it comes due;
#  4. a queue at its concurrency limit: a completion wakes it;
#  5. pg_cancel_backend ends it with 57014, pg_terminate_backend and a client that hangs
#     up end it too, and none of them leaves a registered waiter behind;
#  6. statement_timeout: the wait ends a little before it, with jobs NULL and no error.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = awa_node('claim_wait', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_claim_wait_test';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
my $connstr = $node->connstr($db);

# bg(SQL...): a psql session running each statement as its own query (so a CALL runs
# outside a transaction block), in the background (AwaTest's bg_psql); done() waits for it.
sub bg { return bg_psql($connstr, [ '-v', 'VERBOSITY=verbose' ], @_); }
sub done { return bg_wait(@_); }
sub q1 { return $node->safe_psql($db, $_[0]); }
sub ms { return int(1000 * shift); }
# asleep(NAME, WHAT): the session of application_name NAME is asleep in awa's wait (one test)
sub asleep { return session_asleep($node, $db, @_); }

# 1. backend_xmin while waiting
my $proc = bg("SET application_name = 'proc-waiter'", "CALL awa_claim_wait('idle', wait => '20 s')");
my $func = bg("SET application_name = 'func-waiter'", "SELECT count(*) FROM awa_claim('idle2', wait => '20 s')");
asleep('proc-waiter', 'the procedure sleeps in its wait');
asleep('func-waiter', 'the function sleeps in its wait');
my (@proc_xmin, @func_xmin, @next_xid);
for my $i (1 .. 5)
{
	push @next_xid, q1("SELECT txid_current()");
	my ($p, $pw, $f) = split /\|/, q1(
		"SELECT (SELECT coalesce(backend_xmin::text, 'none') || '|' || coalesce(wait_event_type, '')"
		  . "   FROM pg_stat_activity WHERE application_name = 'proc-waiter'),"
		  . " (SELECT coalesce(backend_xmin::text, 'none') FROM pg_stat_activity WHERE application_name = 'func-waiter')");
	push @proc_xmin, "$p/$pw";
	push @func_xmin, $f;
	usleep(300_000);
}
note("next xid: @next_xid; procedure backend_xmin/wait: @proc_xmin; function backend_xmin: @func_xmin");
is_deeply(\@proc_xmin, [ ('none/Extension') x 5 ],
	'a session waiting in CALL awa_claim_wait holds no backend_xmin, sample after sample');
ok($func_xmin[0] ne 'none' && !grep({ $_ ne $func_xmin[0] } @func_xmin) && $next_xid[-1] > $func_xmin[0],
	"a session waiting in awa_claim(wait) keeps one backend_xmin ($func_xmin[0]) while xids advance to $next_xid[-1]");
is(q1("SHOW awa.waiting_claimers"), '2', 'both waiters are registered');
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name IN ('proc-waiter', 'func-waiter')");
done($proc);
done($func);

# 2. a committed insert wakes it; the job comes back running with its new lease
my $s = bg("SET application_name = 'wake-me'",
	"CALL awa_claim_wait('wq', worker => 'w1', lease => '7 minutes', wait => '30 s')");
asleep('wake-me', 'the procedure sleeps on the empty queue');
my $t0 = time;
my $id = q1("SELECT id FROM awa_insert('woken', queue => 'wq')");
is(done($s), 0, 'the woken CALL ends without error') or diag($s->{err});
my $t1 = time;
ok($t1 - $t0 < 2, sprintf('a committed insert wakes the waiting CALL (%d ms)', ms($t1 - $t0)));
is(q1("SELECT string_agg(concat_ws(',', j.id, j.state, j.run_lease, j.claimed_by, j.lease), ';')"
	  . " FROM unnest(\$x\$$s->{out}\$x\$::awa.jobs[]) j"),
	"$id,running,1,w1,00:07:00", 'it returns the job, running, with run_lease 1, the worker and the lease');
is(q1("SELECT concat_ws(',', state, run_lease, claimed_by) FROM awa.jobs WHERE id = $id"),
	'running,1,w1', 'the claim is committed when the CALL ends');

# 3. a scheduled job shortens the sleep
$s = bg("SET application_name = 'due-me'", "CALL awa_claim_wait('sq', wait => '30 s')");
asleep('due-me', 'the procedure sleeps on the empty queue');
$t0 = time;
q1("SELECT id FROM awa_insert('later', queue => 'sq', run_at => now() + interval '2 s')");
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
$t1 = time;
like($s->{out}, qr/later/, 'it returns the scheduled job');
ok($t1 - $t0 > 1.5 && $t1 - $t0 < 5,
	sprintf('the scheduled job ends the wait when it comes due (%d ms for a job due in 2 s)', ms($t1 - $t0)));

# 4. a queue at its limit: a completion wakes it (well before the 1 s recheck)
q1("SELECT awa_set_queue_limit('lq', 1); SELECT awa_insert('first', queue => 'lq');"
	  . " SELECT awa_insert('second', queue => 'lq')");
my ($lid, $lease) = split /\|/, q1("SELECT id, run_lease FROM awa_claim('lq')");
$s = bg("SET application_name = 'limit-me'", "CALL awa_claim_wait('lq', wait => '30 s')");
asleep('limit-me', 'the procedure sleeps on the queue at its limit');
usleep(1_300_000);    # between its 1 s rechecks
$t0 = time;
q1("SELECT awa_complete($lid, $lease)");
is(done($s), 0, 'the CALL ends without error') or diag($s->{err});
$t1 = time;
like($s->{out}, qr/second/, 'it returns the job the completion made room for');
ok($t1 - $t0 < 0.7, sprintf('the completion wakes it (%d ms)', ms($t1 - $t0)));

# 5. cancel, terminate, hang-up: the wait ends and leaves no registered waiter
$s = bg("SET application_name = 'cancel-me'", "CALL awa_claim_wait('idle', wait => '30 s')");
asleep('cancel-me', 'the procedure sleeps');
is(q1("SHOW awa.waiting_claimers"), '1', 'one waiter registered');
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cancel-me'");
isnt(done($s), 0, 'the cancelled CALL fails');
like($s->{err}, qr/57014: canceling statement due to user request/, 'pg_cancel_backend ends it with 57014');
is(q1("SHOW awa.waiting_claimers"), '0', 'no waiter is left registered after a cancel');
$s = bg("SET application_name = 'terminate-me'", "CALL awa_claim_wait('idle', wait => '30 s')");
asleep('terminate-me', 'the procedure sleeps');
q1("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'terminate-me'");
done($s);
wait_until($node, $db, "SELECT current_setting('awa.waiting_claimers') = '0'", 5,
	'no waiter is left registered after pg_terminate_backend');
$s = bg("SET application_name = 'hang-up'", "CALL awa_claim_wait('orphan', wait => '60 s')");
asleep('hang-up', 'the procedure sleeps');
$s->{h}->signal('KILL');
done($s);
wait_until($node, $db,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'hang-up'", 5,
	'the waiting CALL of a client that hung up ends at once');
q1("SELECT id FROM awa_insert('for-nobody', queue => 'orphan')");
usleep(300_000);
is(q1("SELECT state FROM awa.jobs WHERE kind = 'for-nobody'"), 'available', 'nothing is claimed for a dead client');
is(q1("SHOW awa.waiting_claimers"), '0', 'no waiter is left registered');

# 6. statement_timeout
$t0 = time;
$s = bg("SET statement_timeout = '700ms'", "CALL awa_claim_wait('idle', wait => '30 s')");
my $rc = done($s);
$t1 = time;
is("$rc|$s->{out}|$s->{err}", '0||', 'a wait past statement_timeout returns jobs NULL, no error');
ok($t1 - $t0 < 3, sprintf('statement_timeout 700ms: the CALL returned after %d ms', ms($t1 - $t0)));

$node->stop;
done_testing();
