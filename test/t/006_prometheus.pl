# awa's metrics through the real prometheus-postgres-exporter (Debian's 0.11), with
# monitoring/prometheus-postgres-exporter.yaml and a role that has only the grants the
# README lists: the exporter is started on a free loopback port against a server of its
# own, /metrics is scraped, and the series and their values are checked (queue depth by
# state, oldest available job, throughput of the last hour, a queue's rate limit and its
# window, running per worker, health, last maintenance round), then
# again after jobs move.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $exporter = program('prometheus-postgres-exporter', 'prometheus-postgres-exporter');

my $node = awa_node('prometheus');
$node->start;
my $db = 'awa_prom';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql('postgres', 'CREATE ROLE awa_exporter LOGIN');
# the grants the README gives the exporter's role, no more
$node->safe_psql($db, <<'SQL');
CREATE EXTENSION awa;
GRANT USAGE ON SCHEMA awa TO awa_exporter;
GRANT EXECUTE ON FUNCTION awa_queue_stats(), awa_health_check(),
  awa_queue_history(text, timestamptz, interval, text, boolean), awa_queue_limits() TO awa_exporter;
GRANT SELECT (queue, state, claimed_by) ON awa.jobs TO awa_exporter;
GRANT SELECT ON awa.maintenance_failures TO awa_exporter;
SELECT awa_insert('send', queue => 'mail') FROM generate_series(1, 3);
SELECT awa_insert('send', queue => 'mail', run_at => now() + interval '1 hour');
SELECT awa_insert('resize', queue => 'img') FROM generate_series(1, 3);
SELECT count(*) FROM awa_claim('img', worker => 'w1', batch => 2);
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('img', worker => 'w2');
SELECT awa_insert('resize', queue => 'img');
SELECT awa_pause_queue('img');
SELECT awa_insert('call', queue => 'api') FROM generate_series(1, 3);
SELECT awa_set_queue_rate('api', 2, '1 hour');
SELECT count(*) FROM awa_claim('api', worker => 'w3', batch => 5);
SELECT * FROM awa_maintain();
SQL

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $log  = PostgreSQL::Test::Utils::tempdir . '/exporter.log';
my $harness;
{
	local $ENV{DATA_SOURCE_NAME} =
	  'host=' . $node->host . ' port=' . $node->port . " user=awa_exporter dbname=$db sslmode=disable";
	$harness = IPC::Run::start(
		[
			$exporter, "--web.listen-address=127.0.0.1:$port",
			"--extend.query-path=$FindBin::RealBin/../../monitoring/prometheus-postgres-exporter.yaml",
			'--disable-default-metrics', '--disable-settings-metrics'
		],
		'<', \undef, '>&', $log);
}
END { $harness->kill_kill if $harness; }

# scrape: /metrics (waits up to 15 s for the awa series) as { "name|queue|worker" => [value, {labels}] }
sub scrape
{
	my $http = HTTP::Tiny->new(timeout => 5);
	my ($text, $err) = ('', '');
	my $t0 = time;
	while (time < $t0 + 15)
	{
		my $r = $http->get("http://127.0.0.1:$port/metrics");
		if ($r->{success}) { $text = $r->{content}; last if $text =~ /awa_health_healthy/; }
		else { $err = "$r->{status} $r->{reason}"; }
		usleep(300_000);
	}
	my %series;
	for my $line (split /\n/, $text)
	{
		next unless $line =~ /^(awa_\w+)\{([^}]*)\} (\S+)$/;
		my ($name, $pairs, $value) = ($1, $2, $3);
		my %labels = $pairs =~ /(\w+)="([^"]*)"/g;
		my $key = join '|', grep { defined } ($name, $labels{queue}, $labels{worker});
		$series{$key} = [ $value, \%labels ];
	}
	my ($scrape_error) = $text =~ /^pg_exporter_last_scrape_error (\S+)$/m;
	return (\%series, $scrape_error, $err || substr($text, 0, 300));
}

# check STAGE, {key => value}: every expected series with its value, the health series with
# its labels, no scrape error
sub check
{
	my ($stage, $want) = @_;
	my ($series, $scrape_error, $why) = scrape();
	if (!ok(%$series, "$stage scrape: awa series in /metrics"))
	{
		diag("no awa series: $why");
		return;
	}
	my @bad = map { "$_ = " . ($series->{$_} ? $series->{$_}[0] : 'missing') . ", expected $want->{$_}" }
	  grep { !$series->{$_} || $series->{$_}[0] != $want->{$_} } sort keys %$want;
	is_deeply(\@bad, [], "$stage scrape: " . join(', ', map { "$_ $want->{$_}" } sort keys %$want));
	my ($health) = map { $series->{$_} } grep { /^awa_health_healthy\b/ } keys %$series;
	ok($health && ($health->[1]{datname} // '') eq $db && exists $health->[1]{maintained_by},
		"$stage scrape: awa_health_healthy with its labels (datname, maintained_by)");
	if ($stage eq 'first')
	{
		my ($last) = map { $series->{$_}[0] } grep { /^awa_health_last_round_timestamp_seconds\b/ } keys %$series;
		ok(defined $last && $last > time - 600, "$stage scrape: awa_health_last_round_timestamp_seconds is recent");
	}
	ok(!defined $scrape_error || $scrape_error == 0, "$stage scrape: the exporter reports no scrape error");
}

check('first', {
	'awa_queue_available|mail' => 3, 'awa_queue_scheduled|mail' => 1,
	'awa_queue_available|img'  => 1, 'awa_queue_running|img'    => 2, 'awa_queue_failed|img' => 1,
	'awa_queue_paused|img'     => 1, 'awa_queue_paused|mail'    => 0,
	'awa_running_jobs|img|w1'  => 2,
	'awa_throughput_enqueued|mail' => 4, 'awa_throughput_enqueued|img' => 4,
	'awa_throughput_started|img' => 3, 'awa_throughput_failed|img' => 1, 'awa_throughput_completed|img' => 0,
	'awa_queue_rate_max_claims|api' => 2, 'awa_queue_rate_period_seconds|api' => 3600,
	'awa_queue_rate_window_claims|api' => 2, 'awa_queue_available|api' => 1,
});
$node->safe_psql($db,
	"SELECT awa_complete(id, run_lease) FROM awa.jobs
	  WHERE queue = 'img' AND state = 'running' AND claimed_by = 'w1' ORDER BY id LIMIT 1");
check('after', {
	'awa_queue_available|mail' => 3, 'awa_queue_running|img' => 1,
	'awa_queue_completed_last_hour|img' => 1, 'awa_running_jobs|img|w1' => 1,
	'awa_throughput_completed|img' => 1, 'awa_throughput_started|img' => 3,
});
ok(-s $log, 'the exporter writes a log (read for errors next)');
my @errors = grep { /error/i } split /\n/, slurp_file($log);
is_deeply([ @errors[ 0 .. ($#errors < 2 ? $#errors : 2) ] ], [], 'the exporter logged no errors');

$harness->kill_kill;
undef $harness;
$node->stop;
done_testing();
