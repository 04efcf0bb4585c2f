# Helpers shared by awa's TAP tests (test/t/*.pl), on top of PostgreSQL's own
# PostgreSQL::Test::Cluster and PostgreSQL::Test::Utils.
package AwaTest;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(awa_node wait_until query_is log_tail run_python program bg_psql bg_wait $PYTHON
  stress_node claim_stress_sessions claim_windows rate_held wakeups_bounded window_after_crash unpreloaded_node
  session_asleep);

# Each test inits servers of its own, and initdb refuses to run as root: say so at once.
BAIL_OUT('the TAP tests start servers of their own and initdb refuses root: run `make prove_installcheck` '
	  . 'as another user (scripts/test.sh runs them as postgres on a copy of the tree)')
  if $> == 0;

# bg_psql(CONNSTR, [psql options], SQL...): a psql session running each statement as its own
# query (-c each, so a CALL runs outside a transaction block), in the background; returns a
# handle for bg_wait(): { h => harness, out => stdout, err => stderr }.
sub bg_psql
{
	my ($connstr, $opts, @sql) = @_;
	my $s = { out => '', err => '' };
	$s->{h} = IPC::Run::start(
		[ 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', @$opts, '-d', $connstr, map { ('-c', $_) } @sql ],
		'<', \undef, '>', \$s->{out}, '2>', \$s->{err});
	return $s;
}

# bg_wait(HANDLE): waits for a bg_psql session; returns its exit status (its stdout, without the
# last newline, and stderr stay in the handle).
sub bg_wait
{
	my ($s) = @_;
	eval { $s->{h}->finish };
	chomp $s->{out};
	return $s->{h}->result(0) // -1;
}

# Debian's python: it sees python3-psycopg (the python3 on a developer's PATH may not).
our $PYTHON = '/usr/bin/python3';

# awa_node(NAME, [init parameters], conf => 'lines'): a new, initialized (not started) node
# with awa in shared_preload_libraries.  A crashed backend makes the postmaster reinitialize
# (restart_after_crash = on, as in a default server; PostgreSQL::Test::Cluster turns it off).
sub awa_node
{
	my ($name, %params) = @_;
	my $conf = delete $params{conf} // '';
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%params);
	$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'awa'
restart_after_crash = on
log_statement = none
$conf
CONF
	return $node;
}

# query_is(NODE, DB, SQL, EXPECTED, NAME): one test, SQL's output (unaligned) equals EXPECTED.
sub query_is
{
	my ($node, $db, $sql, $expected, $name) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql);
	$out = "psql failed ($ret): $err" if $ret != 0;
	is($out, $expected, $name);
}

# wait_until(NODE, DB, SQL, TIMEOUT_S, NAME): one test, passes once SQL returns t within
# TIMEOUT_S seconds (polls every 0.1 s); on failure shows the last answer and the server log.
sub wait_until
{
	my ($node, $db, $sql, $timeout, $name) = @_;
	my $t0 = time;
	my ($ret, $out, $err) = (0, '', '');
	while (time < $t0 + $timeout)
	{
		($ret, $out, $err) = $node->psql($db, $sql);
		if ($ret == 0 && $out eq 't')
		{
			pass(sprintf("%s (%.1f s)", $name, time - $t0));
			return 1;
		}
		usleep(100_000);
	}
	fail($name);
	diag("not true after $timeout s: $sql\nlast answer: '$out' $err\n" . log_tail($node));
	return 0;
}

# program(NAME, PACKAGE): the path of a program on PATH or in /usr/sbin (where Debian puts
# some daemons, and a non-root user's PATH may not reach), as one test; without it the
# test file ends here, failed, naming the Debian package to install.
sub program
{
	my ($name, $package) = @_;
	my ($path) = grep { -x } map { "$_/$name" } (split(/:/, $ENV{PATH}), '/usr/sbin');
	return $path if ok(defined $path, "$name is installed");
	diag("install it: apt-get install $package (scripts/setup.sh does)");
	done_testing();
	exit 1;
}

# log_tail(NODE, [LINES]): the last lines of the node's server log.
sub log_tail
{
	my ($node, $n) = @_;
	my @lines = split /\n/, slurp_file($node->logfile);
	$n //= 30;
	@lines = @lines[ -$n .. -1 ] if @lines > $n;
	return "---- last lines of the server log of " . $node->name . "\n" . join("\n", @lines) . "\n";
}

# run_python(NAME, TIMEOUT_S, [argv], {env}): one test, a Python driver exits 0 within
# TIMEOUT_S seconds.  Its output is shown as TAP comments (note; diag when it fails).
sub run_python
{
	my ($name, $timeout, $argv, $env) = @_;
	local %ENV = (%ENV, %{ $env // {} });
	my $out  = '';
	my $t0   = time;
	my $ok   = eval {
		IPC::Run::run([ $PYTHON, @$argv ], '<', \undef, '>&', \$out,
			IPC::Run::timeout($timeout));
	};
	my $why = $@ ? "timed out or failed to run: $@" : "exit status " . ($? >> 8);
	$out =~ s/^/  /mg;
	if ($ok)
	{
		note($out);
		pass(sprintf("%s (%.1f s)", $name, time - $t0));
		return 1;
	}
	fail($name);
	diag("$why\n$out");
	return 0;
}


# The rate stress tests (017, 018) -----------------------------------------------------------

# stress_node(NAME, DB, QUEUE, QUEUES, SETUP_SQL): a started node with awa preloaded, 40
# connections and no maintenance worker, database DB with awa, SETUP_SQL run there, and
# the procedure stress(w integer, secs float8): session w's loop, claiming its own way until
# secs are up, each attempt its own transaction (w % 4: 0 blocking awa_claim of batches of
# 1..4, 1 CALL awa_claim_wait, 2 a multi-queue claim of QUEUES, 3 awa_claim rolled back every
# other time).  QUEUE and QUEUES are SQL expressions (of w): the queue claimed and the array.
sub stress_node
{
	my ($name, $db, $queue, $queues, $setup) = @_;
	my $node = awa_node($name, conf => "awa.databases = ''\nmax_connections = 40");
	$node->start;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, <<"SQL");
CREATE EXTENSION awa;
$setup
CREATE PROCEDURE stress(w integer, secs float8)
LANGUAGE plpgsql AS \$\$
DECLARE
	stop timestamptz := clock_timestamp() + secs * interval '1 s';
	jobs awa.jobs[];
	q text := $queue;
	i integer := 0;
BEGIN
	WHILE clock_timestamp() < stop LOOP
		i := i + 1;
		CASE w % 4
		WHEN 0 THEN
			PERFORM awa_claim(q, 'w' || w, 1 + (i % 4), '1 hour', '1 s');
		WHEN 1 THEN
			jobs := NULL;
			CALL awa_claim_wait(q, 'w' || w, 2, '1 hour', '1 s', jobs);
		WHEN 2 THEN
			PERFORM awa_claim($queues, 'w' || w, 3, '1 hour', '1 s');
		ELSE
			PERFORM awa_claim(q, 'w' || w, 2, '1 hour', '1 s');
			IF i % 2 = 0 THEN
				ROLLBACK;	-- a claim given back: it still counts until it leaves the window
				CONTINUE;
			END IF;
		END CASE;
		COMMIT;
	END LOOP;
END
\$\$;
SQL
	return $node;
}

# claim_stress_sessions(NODE, DB, SESSIONS, SECONDS): one test, SESSIONS sessions run
# stress(1..SESSIONS, SECONDS) at once without an error; returns the seconds they took and
# how many times blocked claimers woke meanwhile (awa.claimer_wakeups).
sub claim_stress_sessions
{
	my ($node, $db, $sessions, $seconds) = @_;
	my $wakeups0 = $node->safe_psql($db, 'SHOW awa.claimer_wakeups');
	my $t0 = time;
	my @s = map { bg_psql($node->connstr($db), [], "CALL stress($_, $seconds)") } 1 .. $sessions;
	my @bad = grep { bg_wait($s[$_]) != 0 } 0 .. $#s;
	my $elapsed = time - $t0;
	is(scalar(@bad), 0, "$sessions sessions claimed for $seconds s without an error")
	  or diag(join("\n", map { $s[$_]{err} } @bad));
	return ($elapsed, $node->safe_psql($db, 'SHOW awa.claimer_wakeups') - $wakeups0);
}

# claim_windows(NODE, DB, WHERE, MS): over the committed claims of the jobs WHERE selects
# (attempted_at), (claims, the most in any interval of MS milliseconds, seconds from the
# first to the last, queues claimed from).  The intervals starting at each claim cover every
# busiest one.
sub claim_windows
{
	my ($node, $db, $where, $ms) = @_;
	return split /\|/, $node->safe_psql($db, <<"SQL");
SELECT count(*), max(n), extract(epoch FROM max(attempted_at) - min(attempted_at)), count(DISTINCT queue)
FROM (SELECT attempted_at, queue, count(*) OVER (ORDER BY attempted_at
		RANGE BETWEEN CURRENT ROW AND interval '$ms milliseconds' - interval '1 microsecond' FOLLOWING) AS n
	FROM awa.jobs WHERE ($where) AND attempted_at IS NOT NULL) w
SQL
}

# rate_held(PREFIX, N, MS, CLAIMS, BUSIEST, SPAN): three tests on claim_windows' answer for a
# rate of N claims per MS milliseconds: no interval holds more than N, one holds N (the
# sessions contended), and the claims reach half of what the rate allows over SPAN seconds.
sub rate_held
{
	my ($prefix, $n, $ms, $claims, $busiest, $span) = @_;
	cmp_ok($busiest, '<=', $n, "${prefix}no interval of $ms ms holds more than $n claims");
	is($busiest, $n, "${prefix}the limit was reached (the sessions contended for it)");
	my $possible = $n * ($span * 1000 / $ms + 1);
	cmp_ok($claims, '>=', 0.5 * $possible,
		"${prefix}the sessions claimed at least half of what the rate allows ($claims of ~" . int($possible) . ')');
}

# wakeups_bounded(WAKEUPS, CLAIMS, SESSIONS): one test, blocked claimers woke about once per
# claim (at most 4 per claim and 4 per session), not in a poll loop.
sub wakeups_bounded
{
	my ($wakeups, $claims, $sessions) = @_;
	cmp_ok($wakeups, '<=', 4 * $claims + 4 * $sessions,
		'blocked claimers woke about once per claim (slots and hand-offs), not in a poll loop');
}

# window_after_crash(NODE, DB, SETUP_SQL, WHOSE, WINDOW_SQL, SHOWN_BY): SETUP_SQL gives queue
# slow's jobs a rate of 5 claims per 30 s (of the queue or of their key); 5 are claimed, the
# node shut down immediately and started.  Two tests: the next claim of slow gets nothing
# (the window of WHOSE, rebuilt from awa.jobs, is full), and WINDOW_SQL, SHOWN_BY's view of
# the window, answers 5|t (5 claims, the next slot in the future).
sub window_after_crash
{
	my ($node, $db, $setup, $whose, $window_sql, $shown_by) = @_;
	$node->safe_psql($db, "$setup\nSELECT count(*) FROM awa_claim('slow', 'w', 5, '1 hour', '0');");
	$node->stop('immediate');
	$node->start;
	query_is($node, $db, "SELECT count(*) FROM awa_claim('slow', 'w', 5, '1 hour', '0')", '0',
		"after a crash, the claims committed before it still fill $whose window");
	query_is($node, $db, $window_sql, '5|t', "$shown_by shows the window rebuilt from awa.jobs");
}

# session_asleep(NODE, DB, NAME, WHAT): one test (wait_until, 10 s), the session of
# application_name NAME is asleep in awa's wait.
sub session_asleep
{
	my ($node, $db, $name, $what) = @_;
	return wait_until($node, $db,
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '$name'"
		  . " AND state = 'active' AND wait_event_type = 'Extension'",
		10, $what);
}

# unpreloaded_node(NAME, SQL): a started node without awa in shared_preload_libraries, awa
# created in its database postgres and SQL run there.
sub unpreloaded_node
{
	my ($name, $sql) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->start;
	$node->safe_psql('postgres', "CREATE EXTENSION awa; $sql");
	return $node;
}

1;
