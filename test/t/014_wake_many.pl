# The blocking claim over several queues (awa_claim(queues text[], wait => ...) and
# CALL awa_claim_wait(queues text[], ...)) keeps the wake-up promises of a single queue,
# for any of its queues, with real sessions on a server of its own:
#  1. a commit on any of its queues wakes it at once; so does a commit on a queue that
#     did not exist yet for a waiter of every queue (queues NULL), and a commit on the
#     17th queue of a waiter of 17 (more than a wait slot lists: it waits for every queue);
#  2. a waiter of other queues does not swallow a queue's wake-up: with a waiter of
#     (ma, mb) and a waiter of mc asleep, a job of mc is taken at once; likewise beside a
#     waiter of 17 other queues (it waits for every queue but claims only its own);
#  3. with a waiter of every queue and a waiter of md asleep, a job of md is taken at once
#     by one of them;
#  4. two jobs committed together wake two waiters of the same queues (one each);
#  5. a scheduled job of one of its queues wakes it when it comes due;
#  6. a waiter whose limited queue is at its limit is woken by a completion;
#  7. CALL awa_claim_wait over several queues: a commit wakes it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = awa_node('wake_many', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_wake_many_test';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
my $connstr = $node->connstr($db);

sub bg { return bg_psql($connstr, [], @_); }
sub done { return bg_wait(@_); }
sub q1 { return $node->safe_psql($db, $_[0]); }
sub ms { return int(1000 * shift); }
# asleep(NAME, WHAT): the session of application_name NAME is asleep in awa's wait (one test)
sub asleep { return session_asleep($node, $db, @_); }
# waiter(NAME, QUEUES, WAIT): a session blocked in awa_claim over QUEUES (an SQL text[]
# expression) for WAIT, printing the kinds it claims
sub waiter
{
	my ($name, $queues, $wait) = @_;
	my $s = bg("SET application_name = '$name'",
		"SELECT coalesce(string_agg(kind, ','), '') FROM awa_claim($queues, wait => '$wait')");
	asleep($name, "$name sleeps in its wait");
	return $s;
}
# woken(HANDLE, KIND, WHAT, T0): the waiter returned KIND within 1 s of T0
sub woken
{
	my ($s, $kind, $what, $t0) = @_;
	is(done($s), 0, "$what: the claim ends without error") or diag($s->{err});
	my $t1 = time;
	is($s->{out}, $kind, "$what: the waiter takes the job");
	ok($t1 - $t0 < 1, sprintf('%s: woken %d ms after the commit', $what, ms($t1 - $t0)));
}

# 1. a commit on any of its queues
my $s = waiter('w1', "ARRAY['ma', 'mb']", '30 s');
my $t0 = time;
q1("SELECT awa_insert('on-mb', queue => 'mb')");
woken($s, 'on-mb', 'a waiter of (ma, mb), a job of mb', $t0);

$s  = waiter('w1e', 'NULL::text[]', '30 s');
$t0 = time;
q1("SELECT awa_insert('on-new', queue => 'brand-new')");
woken($s, 'on-new', 'a waiter of every queue, a job of a new queue', $t0);

$s  = waiter('w17', "ARRAY(SELECT 'q' || g FROM generate_series(1, 17) g)", '30 s');
$t0 = time;
q1("SELECT awa_insert('on-q17', queue => 'q17')");
woken($s, 'on-q17', 'a waiter of 17 queues, a job of the 17th', $t0);

# 2. a waiter of other queues does not take a queue's wake-up
my $other = waiter('w2-other', "ARRAY['ma', 'mb']", '3 s');
$s  = waiter('w2-mc', "ARRAY['mc']", '30 s');
$t0 = time;
q1("SELECT awa_insert('on-mc', queue => 'mc')");
woken($s, 'on-mc', 'a waiter of mc beside a waiter of (ma, mb)', $t0);
is(done($other), 0, 'the waiter of (ma, mb) ends without error');
is($other->{out}, '', 'the waiter of (ma, mb) took nothing');

# 2b. a waiter of more queues than a wait slot lists (17, so it waits for every queue) does not take
# the wake-up of a queue it does not claim from that queue's own waiter (it used to, in most rounds:
# the job then waited for the end of the other waiter's wait); four rounds, as the scan for waiters
# starts at a different slot each time
for my $round (1 .. 4)
{
	my $many = waiter("w2b-many$round", "ARRAY(SELECT 'n' || g FROM generate_series(1, 17) g)", '3 s');
	$s  = waiter("w2b-mg$round", "ARRAY['mg']", '30 s');
	$t0 = time;
	q1("SELECT awa_insert('on-mg', queue => 'mg')");
	woken($s, 'on-mg', "round $round: a waiter of mg beside a waiter of 17 other queues", $t0);
	is(done($many), 0, "round $round: the waiter of 17 queues ends without error");
	is($many->{out}, '', "round $round: the waiter of 17 queues took nothing");
}

# 3. a waiter of every queue beside a waiter of md: one of them takes it at once
my $all = waiter('w3-all', 'NULL::text[]', '2 s');
my $md  = bg("SET application_name = 'w3-md'", "SELECT coalesce(string_agg(kind, ','), '') FROM awa_claim('md', wait => '2 s')");
asleep('w3-md', 'w3-md sleeps in its wait');
$t0 = time;
q1("SELECT awa_insert('on-md', queue => 'md')");
wait_until($node, $db, "SELECT state = 'running' FROM awa.jobs WHERE kind = 'on-md'", 5,
	'a job of md is taken with a waiter of every queue and a waiter of md asleep');
ok(time - $t0 < 1, sprintf('  ... %d ms after the commit', ms(time - $t0)));
done($all);
done($md);
is(join('+', sort grep { $_ ne '' } ($all->{out}, $md->{out})), 'on-md', 'exactly one of them took it');

# 4. two jobs committed together wake two waiters of the same queues
my $a = waiter('w4a', "ARRAY['me', 'mf']", '30 s');
my $b = waiter('w4b', "ARRAY['mf', 'me']", '30 s');
$t0 = time;
q1("BEGIN; SELECT awa_insert('two', queue => 'mf'); SELECT awa_insert('two', queue => 'mf'); COMMIT;");
woken($a, 'two', 'two jobs, first waiter', $t0);
woken($b, 'two', 'two jobs, second waiter', $t0);

# 5. a scheduled job of one of its queues
$s  = waiter('w5', "ARRAY['mg', 'mh']", '20 s');
$t0 = time;
q1("SELECT awa_insert('later', queue => 'mh', run_at => now() + interval '2 s')");
is(done($s), 0, 'scheduled: the claim ends without error') or diag($s->{err});
my $t1 = time;
is($s->{out}, 'later', 'scheduled: the waiter takes the job');
ok($t1 - $t0 >= 1.5 && $t1 - $t0 < 5,
	sprintf('scheduled: taken when it comes due (%d ms, about 2000 expected)', ms($t1 - $t0)));

# 6. a limited queue at its limit among its queues
q1("SELECT awa_set_queue_limit('lq', 1); SELECT awa_insert('first', queue => 'lq'); SELECT awa_insert('second', queue => 'lq')");
my ($id, $lease) = split /\|/, q1("SELECT id, run_lease FROM awa_claim(ARRAY['lq', 'mi'])");
ok($lease, 'first job of the limited queue claimed');
$s = waiter('w6', "ARRAY['lq', 'mi']", '30 s');
usleep(300_000);    # between the waiter's 1 s rechecks
$t0 = time;
q1("SELECT awa_complete($id, $lease)");
is(done($s), 0, 'limit: the claim ends without error') or diag($s->{err});
$t1 = time;
is($s->{out}, 'second', 'limit: the waiter gets the second job');
ok($t1 - $t0 < 0.5, sprintf('limit: woken by the completion (%d ms after it)', ms($t1 - $t0)));

# 7. CALL awa_claim_wait over several queues
$s = bg("SET application_name = 'w7'",
	"CALL awa_claim_wait(ARRAY['mj', 'mk'], wait => '30 s')");
asleep('w7', 'the procedure sleeps in its wait');
$t0 = time;
q1("SELECT awa_insert('by-call', queue => 'mk')");
is(done($s), 0, 'CALL: ends without error') or diag($s->{err});
$t1 = time;
like($s->{out}, qr/by-call/, 'CALL: the job comes back in jobs');
ok($t1 - $t0 < 1, sprintf('CALL: woken %d ms after the commit', ms($t1 - $t0)));
is(q1("SELECT state FROM awa.jobs WHERE kind = 'by-call'"), 'running', 'CALL: the claim is committed');

$node->stop;
done_testing();
