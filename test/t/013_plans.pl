# The plans awa's statements really get on a table shaped like production (1M jobs,
# test/lib/jobs_1m.sql): every SQL call of the API runs once with auto_explain logging
# each statement it executes (nested ones included) under plan_cache_mode =
# force_generic_plan, the plan a saved statement keeps.  No statement may read awa.jobs
# with a Seq Scan, and none of a call's statements may cost jit_above_cost or more: a plan that
# costly reads far more than one call's rows (awa's own statements run without JIT whatever
# their cost, src/engine_jit.c; maintenance rounds are exempt from that bound only).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $explain = <<'SQL';
\set ON_ERROR_STOP 1
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_format = json;
SET auto_explain.log_level = notice;
SET plan_cache_mode = force_generic_plan;
SQL

# The calls of producers, workers and operators.
my $api = <<'SQL';
SELECT id FROM awa_insert('k', queue => 'q3');
SELECT id FROM awa_insert('k', queue => 'q3', run_at => now() + interval '1 hour');
SELECT id FROM awa_insert('k', '{"u":1}', queue => 'q3', unique_by_args => true);
SELECT id FROM awa_insert('k', '{"u":1}', queue => 'q3', unique_by_args => true);
SELECT id FROM awa_insert('k', queue => 'q3', unique_period => '1 hour');
SELECT count(*) FROM awa_insert_many('[{"kind":"k","queue":"q3"},{"kind":"k","queue":"q4","run_at":"2099-01-01"}]');
INSERT INTO awa.jobs (kind, queue) VALUES ('k', 'q1');
SELECT count(*) FROM awa_claim('q3', 'w', batch => 1);
SELECT count(*) FROM awa_claim('q3', 'w', batch => 10);
SELECT count(*) FROM awa_claim('q5', 'w', batch => 10);
SELECT count(*) FROM awa_claim('nothing', 'w', batch => 1, wait => '10 ms');
CALL awa_claim_wait('q4', 'w', 2, wait => '10 ms');
SELECT count(*) FROM awa_claim(ARRAY['q3', 'q4', 'q5', 'nothing'], 'w', batch => 10);
SELECT count(*) FROM awa_claim(NULL::text[], 'w', batch => 10);
SELECT count(*) FROM awa_claim(ARRAY['nothing', 'nothing2'], 'w', batch => 1, wait => '10 ms');
SELECT count(*) FROM awa_claim(NULL::text[], 'w', batch => 1, wait => '10 ms');
CALL awa_claim_wait(ARRAY['q4', 'q8'], 'w', 2, wait => '10 ms');
SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE id = (SELECT min(id) FROM awa.jobs WHERE state = 'running');
SELECT awa_complete(id, run_lease, '{"r": 1}') FROM awa.jobs WHERE id = (SELECT min(id) FROM awa.jobs WHERE state = 'running');
SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) FROM (SELECT id, run_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 3) s;
SELECT awa_fail(id, run_lease, 'boom') FROM (SELECT id, run_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1) s;
SELECT awa_fail(id, run_lease, 'boom', retry_in => '1 minute') FROM (SELECT id, run_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1) s;
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM (SELECT id, run_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1) s;
SELECT awa_snooze(id, run_lease, '1 minute') FROM (SELECT id, run_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1) s;
SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM (SELECT id, run_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 3) s;
SELECT awa_progress(id, run_lease, '{"p":1}') FROM (SELECT id, run_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1) s;
SELECT id AS cb_job, run_lease AS cb_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1 \gset
SELECT awa_register_callback(:cb_job, :cb_lease, '1 hour') AS cb \gset
SELECT awa_wait_external(:cb_job, :cb_lease);
SELECT awa_heartbeat_callback(:'cb');
SELECT awa_complete_external(:'cb', '{"ok": 1}');
SELECT id AS cb_job, run_lease AS cb_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1 \gset
SELECT awa_register_callback(:cb_job, :cb_lease, '1 hour') AS cb \gset
SELECT awa_wait_external(:cb_job, :cb_lease);
SELECT awa_fail_external(:'cb', 'declined');
SELECT id AS cb_job, run_lease AS cb_lease FROM awa.jobs WHERE state = 'running' ORDER BY id LIMIT 1 \gset
SELECT awa_register_callback(:cb_job, :cb_lease, '1 hour') AS cb \gset
SELECT awa_retry_external(:'cb', retry_in => '1 minute');
SELECT (awa_cancel(min(id))).state FROM awa.jobs WHERE state = 'available';
SELECT (awa_retry(min(id))).state FROM awa.jobs WHERE state = 'failed' AND unique_key IS NULL;
SELECT (awa_retry(min(id))).state FROM awa.jobs WHERE state = 'failed' AND unique_key IS NOT NULL;
SELECT count(*) FROM awa_cancel_by_unique_key('k', '{"u":1}');
SELECT (awa_get_job(500)).id;
SELECT count(*) FROM awa_list_jobs();
SELECT count(*) FROM awa_list_jobs(state => 'failed');
SELECT count(*) FROM awa_list_jobs(state => 'running');
SELECT count(*) FROM awa_list_jobs(kind => 'kind_3');
SELECT count(*) FROM awa_list_jobs(queue => 'q2');
SELECT count(*) FROM awa_list_jobs(tag => 'x');
SELECT count(*) FROM awa_list_jobs(before_id => 500000);
SELECT count(*) FROM awa_list_jobs(state => 'available', queue => 'q2', before_id => 900000);
SELECT count(*) FROM awa_queue_stats();
SELECT count(*) FROM awa_health_check();
SELECT count(*) FROM awa_retry_failed('kind_5');
SELECT awa_discard_failed('kind_7');
SELECT awa_pause_queue('q9');
SELECT awa_resume_queue('q9');
SELECT awa_set_queue_limit('q8', 5);
SELECT id AS parent FROM awa_insert('k', queue => 'q3') \gset
SELECT id AS child FROM awa_insert('k', queue => 'q3', after => ARRAY[:parent]::bigint[]) \gset
SELECT count(*) FROM awa_insert_many('[{"kind":"k","queue":"q3","after":[500]}]');
SELECT count(*) FROM awa_parent_results(:child);
SELECT count(*) FROM awa_dependents(:parent);
SELECT (awa_cancel(:parent)).state;
SELECT id FROM awa_insert('k', queue => 'q3', group_id => 'g1');
SELECT awa_group_on_finish('g1', 'k', queue => 'q3');
SELECT count(*) FROM awa_group_stats('g1');
SELECT count(*) FROM awa_group_callback('g1');
SELECT (awa_cancel(id)).state FROM awa.jobs WHERE group_id = 'g1';
SELECT id FROM awa_insert('k', queue => 'qk', concurrency_key => 'key1');
SELECT count(*) FROM awa_insert_many('[{"kind":"k","queue":"qk","concurrency_key":"key1"}]');
SELECT awa_set_key_limit('key%', 1, ordered => true);
SELECT count(*) FROM awa_claim('qk', 'w', batch => 10);
SELECT count(*) FROM awa_key_stats();
SELECT awa_set_key_limit('kr%', 10);
SELECT awa_set_key_rate('kr%', 5, '1 second');
SELECT id FROM awa_insert('k', queue => 'qr', concurrency_key => 'kr1');
SELECT count(*) FROM awa_claim('qr', 'w', batch => 10);
SELECT count(*) FROM awa_key_stats('kr%');
SELECT awa_set_queue_rate('q5', 100, '1 second');
SELECT count(*) FROM awa_claim('q5', 'w', batch => 10);
SELECT count(*) FROM awa_claim(ARRAY['q5', 'qk'], 'w', batch => 10);
SELECT count(*) FROM awa_queue_limits();
SELECT count(*) FROM awa_queue_history('q3', now() - interval '1 hour', '1 minute');
SELECT awa_drain_queue('q9');
SELECT awa_schedule('plans', '* * * * *', 'k', queue => 'q6');
SELECT awa_pause_schedule('plans');
SELECT awa_resume_schedule('plans');
SELECT count(*) FROM awa_next_fire_times('*/5 * * * *');
COPY awa.jobs (kind, queue, args) FROM STDIN;
copied	q7	{"n": 1}
\.
SELECT awa_forget_queue('q8');
SQL

# Maintenance: rescue, promotion, retention, cron.
my $maintenance = <<'SQL';
SELECT awa_rescue();
SELECT count(*) FROM awa_maintain();
CALL awa_maintain_for('100 ms', '50 ms');
SELECT awa_unschedule('plans');
SQL

# plans(PSQL STDERR): [ { line, text, cost, scans => [ 'Node Type [index]' ] } ] from the
# NOTICEs of auto_explain (log_format json).
sub plans
{
	my ($stderr) = @_;
	my @parts = split /^psql:\S+:(\d+): NOTICE:  duration: [\d.]+ ms  plan:\n/m, $stderr;
	shift @parts;
	my @plans;
	while (@parts)
	{
		my ($line, $body) = splice(@parts, 0, 2);
		$body =~ s/\npsql:.*//s;
		my $j = eval { decode_json($body) };
		if (!$j)
		{
			fail("auto_explain output after line $line is JSON");
			next;
		}
		my (@scans, %seen);
		my @nodes = ($j->{Plan});
		while (my $n = shift @nodes)
		{
			push @nodes, @{ $n->{Plans} // [] };
			next
			  unless ($n->{'Relation Name'} // '') eq 'jobs'
			  || ($n->{'Index Name'} // '') =~ /^jobs_/;
			my $scan = $n->{'Node Type'} . ($n->{'Index Name'} ? " $n->{'Index Name'}" : '');
			push @scans, $scan unless $seen{$scan}++;
		}
		(my $text = $j->{'Query Text'}) =~ s/\s+/ /g;
		push @plans, { line => $line, text => $text, cost => $j->{Plan}{'Total Cost'}, scans => \@scans };
	}
	return \@plans;
}

# On the table engine (awa.install_engine = 'table'): the plans of the table awa.jobs at a million rows
# (test/lib/jobs_1m.sql writes the table directly).
my $node = awa_node('plans', conf => "awa.install_engine = 'table'\nawa.databases = ''");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE awa_plans');
$node->safe_psql('awa_plans', 'CREATE EXTENSION awa');
$node->safe_psql('awa_plans', slurp_file("$FindBin::RealBin/../lib/jobs_1m.sql"));
# As in production, few jobs run at a time (50 of 1M): a generic plan may then find the
# partial index of running jobs cheaper than the primary key.
$node->safe_psql('awa_plans', q{
	UPDATE awa.jobs SET state = 'completed', finalized_at = now(), heartbeat_at = NULL, deadline_at = NULL
	  WHERE state = 'running' AND id % 100 <> 0;
	ANALYZE awa.jobs});
my $jit_above = $node->safe_psql('awa_plans', 'SHOW jit_above_cost');

for my $part ([ 'API calls', $api, 1 ], [ 'maintenance', $maintenance, 0 ])
{
	my ($name, $sql, $jit_bound) = @$part;
	my ($out, $err);
	my $rc = $node->psql('awa_plans', $explain . $sql, stdout => \$out, stderr => \$err);
	is($rc, 0, "$name: every call ran") or diag(join("\n", grep { /ERROR/ } split /\n/, $err));
	my $plans = plans($err);
	cmp_ok(scalar(@$plans), '>=', $name eq 'API calls' ? 60 : 5,
		"$name: auto_explain logged the plans of the statements run");
	my (@seq, @costly, @running_idx);
	for my $p (@$plans)
	{
		my $what = sprintf('line %d: %.120s', $p->{line}, $p->{text});
		note(sprintf('%9.0f %s [%s]', $p->{cost}, $what, join(', ', @{ $p->{scans} })));
		push @seq, "$what [" . join(', ', @{ $p->{scans} }) . ']' if grep { /^Seq Scan/ } @{ $p->{scans} };
		push @costly, sprintf('%.0f %s', $p->{cost}, $what) if $jit_bound && $p->{cost} >= $jit_above;
		# a statement for one job found by (id, run_lease) goes through the primary key: the
		# partial index of running jobs keeps, while an old snapshot is held, an entry for
		# every job completed since, and a generic plan reading it walks them all
		push @running_idx, $what
		  if $p->{text} =~ /\bid = \$1 AND (j\.)?run_lease = \$2\b/
		  && grep { /jobs_running_idx/ } @{ $p->{scans} };
	}
	is(scalar(@seq), 0, "$name: no statement reads awa.jobs with a Seq Scan") or diag(join("\n", @seq));
	is(scalar(@running_idx), 0, "$name: no one-job statement reads the index of running jobs")
	  or diag(join("\n", @running_idx));
	is(scalar(@costly), 0, "$name: no statement costs jit_above_cost ($jit_above) or more")
	  or diag(join("\n", @costly))
	  if $jit_bound;
}

$node->stop;
done_testing();
