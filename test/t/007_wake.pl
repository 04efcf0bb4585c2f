# The blocking claim's promises, checked with real sessions on a server of its own
# (isolationtester cannot drive them: it only treats lock waits as blocking, and a
# blocked awa_claim sleeps on its latch):
#  1. a claimer blocked in awa_claim(wait => '30 s') returns the job when another
#     session commits an insert, long before the wait ends;
#  2. an uncommitted insert is not handed out, and a rolled-back insert never makes
#     the claimer return a job;
#  3. a scheduled job wakes the claimer when it comes due;
#  4. a blocked claim returns no rows just before statement_timeout, and
#     pg_cancel_backend interrupts it;
#  5. a blocked claimer burns no CPU while it waits;
#  6. a client killed while its claim waits leaves nothing claimed;
#  7. a claimer blocked on a queue at its concurrency limit is woken by a completion
#     that frees a slot (well before its 1 s recheck);
#  8. a job that comes due later, however it got there (awa_insert_many on both of its
#     paths, COPY and plain INSERT into awa.jobs, awa_snooze, awa_fail with retry_in),
#     shortens a blocked claimer's sleep to its run_at: the claimer takes it about then,
#     not at the end of its wait.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = awa_node('wake', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_wake_test';
$node->safe_psql('postgres', "CREATE DATABASE $db");
# On the table engine (awa.install_engine = 'table'), not the default ring: it adds a trigger to the table
# awa.jobs (a view on the ring); not yet rewritten for the ring.
$node->safe_psql($db, "SET awa.install_engine = 'table'; CREATE EXTENSION awa");
my $connstr = $node->connstr($db);

# bg(SQL...): a psql session running the statements in the background (AwaTest's bg_psql);
# done(HANDLE) waits for it and returns its exit status
sub bg { return bg_psql($connstr, [], @_); }
sub done { return bg_wait(@_); }
sub q1 { return $node->safe_psql($db, $_[0]); }
sub ms { return int(1000 * shift); }

# 1. wake on commit
my $t0 = time;
my $s  = bg("SELECT kind FROM awa_claim('wq', wait => '30 s')");
usleep(1_000_000);
q1("SELECT id FROM awa_insert('woken', queue => 'wq')");
is(done($s), 0, 'blocked claim ends without error') or diag($s->{err});
my $t1 = time;
is($s->{out}, 'woken', 'the blocked claim returns the committed job');
ok($t1 - $t0 < 15, sprintf('blocked claim woken by a committed insert (%d ms including a 1 s head start)', ms($t1 - $t0)));

# 2. uncommitted and rolled-back inserts
$s = bg("SELECT count(*) FROM awa_claim('wq2', wait => '3 s')");
usleep(500_000);
q1("BEGIN; SELECT id FROM awa_insert('ghost', queue => 'wq2'); SELECT pg_sleep(1); ROLLBACK;");
is(done($s), 0, 'claim ends without error') or diag($s->{err});
is($s->{out}, '0', 'a rolled-back insert is never handed out');
is(q1("SELECT count(*) FROM awa.jobs WHERE queue = 'wq2'"), '0', 'the rolled-back job does not exist');

# 3. scheduled job comes due
$t0 = time;
$s  = bg("SELECT kind FROM awa_claim('wq3', wait => '30 s')");
usleep(500_000);
q1("SELECT id FROM awa_insert('later', queue => 'wq3', run_at => now() + interval '2 s')");
is(done($s), 0, 'claim ends without error') or diag($s->{err});
$t1 = time;
is($s->{out}, 'later', 'the blocked claim takes the scheduled job');
ok($t1 - $t0 >= 2 && $t1 - $t0 < 15,
	sprintf('blocked claim takes a scheduled job when it comes due (%d ms, about 2500 expected)', ms($t1 - $t0)));

# 4. statement_timeout and pg_cancel_backend: a statement_timeout shorter than the wait
# ends the wait just before it: no rows, no error (an idle worker's claim must not fail
# every time)
$t0 = time;
$s  = bg("SET statement_timeout = '500ms'", "SELECT count(*) FROM awa_claim('idle', wait => '30 s')");
my $rc = done($s);
$t1 = time;
is("$rc $s->{out}$s->{err}", '0 0', 'a claim waiting past statement_timeout returns no rows, no error');
ok($t1 - $t0 < 5, sprintf('statement_timeout 500ms: the claim returned after %d ms', ms($t1 - $t0)));
$s = bg("SELECT count(*) FROM awa_claim('idle', worker => 'cancel-me', wait => '30 s')");
usleep(1_000_000);
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%cancel-me%' AND pid <> pg_backend_pid()");
done($s);
like($s->{err}, qr/canceling statement due to user request/, 'pg_cancel_backend interrupts a blocked claim');

# 5. no CPU while idle: the backend's CPU time over a 3 s wait
$s = bg("SELECT count(*) FROM awa_claim('idle', worker => 'cpu-probe', wait => '4 s')");
usleep(500_000);
my $bpid = q1("SELECT pid FROM pg_stat_activity WHERE query LIKE '%cpu-probe%' AND pid <> pg_backend_pid()");
ok($bpid, 'the blocked backend is found');
sub ticks { my @f = split ' ', slurp_file("/proc/$bpid/stat") =~ s/^.*\) //sr; return $f[11] + $f[12]; }
my $c0 = ticks();
usleep(3_000_000);
my $c1 = ticks();
done($s);
ok($c1 - $c0 <= 5, sprintf('blocked claim sleeps: %d CPU ticks in 3 s', $c1 - $c0));

# 6. a client killed while its claim waits leaves no backend behind to claim for it
$s = bg("SELECT count(*) FROM awa_claim('orphan', worker => 'killed-client', wait => '60 s')");
usleep(1_000_000);
$s->{h}->signal('KILL');
done($s);
wait_until($node, $db,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%killed-client%' AND pid <> pg_backend_pid()", 5,
	"the waiting claim of a killed client ends at once");
q1("SELECT id FROM awa_insert('for-nobody', queue => 'orphan')");
usleep(500_000);
is(q1("SELECT state FROM awa.jobs WHERE kind = 'for-nobody'"), 'available', 'nothing is claimed for a dead client');

# 7. a queue at its limit: the completion wakes the waiter
q1("SELECT awa_set_queue_limit('lq', 1); SELECT awa_insert('first', queue => 'lq'); SELECT awa_insert('second', queue => 'lq')");
my ($id, $lease) = split /\|/, q1("SELECT id, run_lease FROM awa_claim('lq')");
ok($lease, 'first job of the limited queue claimed');
$t0 = time;
$s  = bg("SELECT kind FROM awa_claim('lq', wait => '30 s')");
usleep(1_300_000);    # between the waiter's 1 s rechecks (at ~1.0 and ~2.0 s)
q1("SELECT awa_complete($id, $lease)");
my $t_done = time;
is(done($s), 0, 'claim ends without error') or diag($s->{err});
$t1 = time;
is($s->{out}, 'second', 'the waiter gets the second job');
ok($t1 - $t_done < 0.5,
	sprintf('a claimer waiting at the queue\'s limit is woken by a completion (%d ms after it, %d ms in all)',
		ms($t1 - $t_done), ms($t1 - $t0)));

# 8. every way a job is scheduled shortens a blocked claimer's sleep.
# scheduled_wakes(QUEUE, WHAT, CODE): a claimer of QUEUE blocks for 20 s; CODE makes a
# job of kind 'later' due in about 2 s; the claimer must take it well before its wait ends.
sub scheduled_wakes
{
	my ($queue, $what, $code) = @_;
	my $t0 = time;
	my $s  = bg("SELECT kind FROM awa_claim('$queue', wait => '20 s')");
	usleep(500_000);
	$code->();
	is(done($s), 0, "$what: the blocked claim ends without error") or diag($s->{err});
	my $t1 = time;
	is($s->{out}, 'later', "$what: the blocked claim takes the scheduled job");
	ok($t1 - $t0 < 10,
		sprintf('%s: a blocked claimer takes the scheduled job when it comes due (%d ms; '
			  . 'not told of it, the claimer sleeps its whole 20 s wait)', $what, ms($t1 - $t0)));
}
sub many_sql
{
	return "SELECT count(*) FROM awa_insert_many(jsonb_build_array(jsonb_build_object("
	  . "'kind', 'later', 'queue', '$_[0]', 'run_at', now() + interval '2 s')))";
}
scheduled_wakes('wq8a', 'awa_insert_many', sub { q1(many_sql('wq8a')) });
# another trigger on awa.jobs takes awa_insert_many off its direct path
q1("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';"
  . " CREATE TRIGGER z_noop AFTER INSERT ON awa.jobs FOR EACH ROW EXECUTE FUNCTION noop()");
scheduled_wakes('wq8b', 'awa_insert_many through INSERT (other triggers on awa.jobs)', sub { q1(many_sql('wq8b')) });
q1("DROP TRIGGER z_noop ON awa.jobs");
scheduled_wakes('wq8c', 'COPY awa.jobs', sub {
	my $at = q1("SELECT now() + interval '2 s'");
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $connstr,
			'-c', 'COPY awa.jobs (kind, queue, run_at) FROM STDIN' ],
		'<', \"later\twq8c\t$at\n", '>', \$out, '2>', \$err)
	  or diag("COPY failed: $err");
});
scheduled_wakes('wq8d', 'INSERT INTO awa.jobs',
	sub { q1("INSERT INTO awa.jobs (kind, queue, run_at) VALUES ('later', 'wq8d', now() + interval '2 s')") });
q1("SELECT awa_insert('later', queue => 'wq8e')");
($id, $lease) = split /\|/, q1("SELECT id, run_lease FROM awa_claim('wq8e')");
scheduled_wakes('wq8e', 'awa_snooze', sub { q1("SELECT awa_snooze($id, $lease, '2 s')") });
q1("SELECT awa_insert('later', queue => 'wq8f')");
($id, $lease) = split /\|/, q1("SELECT id, run_lease FROM awa_claim('wq8f')");
scheduled_wakes('wq8f', 'awa_fail with retry_in', sub { q1("SELECT awa_fail($id, $lease, 'boom', retry_in => '2 s')") });

$node->stop;
done_testing();
