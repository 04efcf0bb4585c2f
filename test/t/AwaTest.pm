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

our @EXPORT = qw(awa_node wait_until query_is log_tail run_python program bg_psql bg_wait $PYTHON);

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

1;
