# No JIT for awa's own statements, nor for any read of the ring's view (docs/storage.md, "Step 5:
# reading the ring's view fast" and "Step 5: no JIT for awa's own statements").  On a database of
# each storage (awa.install_engine = ring, the default, and table), one session with jit = on and
# jit_above_cost = 0 (every plan would be compiled) and auto_explain logging every plan, nested
# ones included, with its JIT summary; the server log is then read plan by plan:
# - a plan of a statement nested in an awa_* call (awa's own, prepared and kept by the extension)
#   must have no "JIT:" part: before engine_jit.c knew awa's statements, the counters' reads of
#   awa_queue_stats were compiled (at 10M jobs their generic plans pass the default
#   jit_above_cost, and a plan with JIT is compiled at every execution: 51.8 ms a call);
# - on the ring, a plan whose statement names awa.jobs, awa.ring_jobs or awa.ring_live_jobs must
#   have none, a user's query of awa.jobs included;
# - the plan of a user's statement that reads neither (the control) must have one: the check can
#   see JIT at all, and awa leaves other plans as the server's settings say.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = awa_node('jit', conf => "awa.databases = ''\nlog_min_messages = info");
$node->start;
is($node->safe_psql('postgres', 'SELECT pg_jit_available()'), 't', 'this server can compile with JIT (llvmjit)');

# jobs in every state the functions below read: available, scheduled, running, completed,
# failed, retryable; some with a concurrency key and a tag
my $jobs = q{
	SELECT count(awa_insert('k' || (i % 3), jsonb_build_object('n', i), queue => 'q' || (i % 3),
		run_at => CASE WHEN i % 10 = 0 THEN now() + interval '1 day' END,
		tags => CASE WHEN i % 4 = 0 THEN ARRAY['t'] ELSE '{}' END,
		concurrency_key => CASE WHEN i % 5 = 0 THEN 'key' || (i % 2) END))
	FROM generate_series(1, 120) i;
	CREATE TABLE c AS SELECT id, run_lease FROM awa_claim(ARRAY['q0', 'q1', 'q2'], batch => 60);
	SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) FROM c WHERE id % 3 = 0;
	SELECT count(awa_fail(id, run_lease, 'boom', terminal => true)) FROM c WHERE id % 3 = 1 AND id % 2 = 0;
	SELECT count(awa_fail(id, run_lease, 'later', retry_in => interval '1 hour')) FROM c
		WHERE id % 3 = 1 AND id % 2 = 1;
};

# the session's statements, one per line (%SOME%, %OTHER%: ids of completed jobs)
my $calls = <<'SQL';
SELECT count(*) FROM awa.queue_meta /* control */
SELECT count(*) FROM awa_queue_stats()
SELECT count(*) FROM awa_list_jobs()
SELECT count(*) FROM awa_list_jobs('running')
SELECT count(*) FROM awa_list_jobs('failed', queue => 'q1')
SELECT count(*) FROM awa_list_jobs(tag => 't', before_id => %OTHER%)
SELECT (awa_get_job(%SOME%)).state
SELECT count(*) FROM awa_key_stats()
SELECT count(*) FROM awa_health_check()
SELECT id FROM awa_insert('k0', '{"n": 0}', queue => 'q0')
SELECT count(*) FROM awa_insert_many('[{"kind": "k1", "queue": "q1"}, {"kind": "k1", "queue": "q1", "run_at": "2099-01-01"}]')
SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) FROM awa_claim('q0', 'w', batch => 2)
SELECT count(awa_snooze(id, run_lease, interval '1 hour')) FROM awa_claim('q1', 'w', batch => 1)
SELECT count(awa_heartbeat(ARRAY[id], ARRAY[run_lease])) FROM awa_claim('q1', 'w', batch => 1)
SELECT awa_discard_failed('k2')
SELECT count(*) FROM awa_retry_failed(queue => 'q1')
SELECT awa_drain_queue('q2')
SELECT count(*) FROM awa_maintain()
DELETE FROM awa.jobs WHERE id = %OTHER%
SELECT count(*) FROM awa.jobs WHERE state = 'completed' /* a user's query */
SQL

for my $engine ('ring', 'table')
{
	my $db = "awa_jit_$engine";
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "SET awa.install_engine = '$engine'; CREATE EXTENSION awa");
	$node->safe_psql($db, $jobs);
	is($node->safe_psql($db, q{SELECT string_agg(DISTINCT state::text, ',' ORDER BY state::text) FROM awa.jobs}),
		'available,completed,failed,retryable,running,scheduled', "$engine: the jobs are in six states");
	my $some = $node->safe_psql($db, q{SELECT min(id) FROM awa.jobs WHERE state = 'completed'});
	my $other = $node->safe_psql($db, q{SELECT max(id) FROM awa.jobs WHERE state = 'completed'});
	(my $session = $calls) =~ s/%SOME%/$some/g;
	$session =~ s/%OTHER%/$other/g;
	my @top = split /\n/, $session;

	my $offset = -s $node->logfile;
	$node->safe_psql($db, join("\n", q{
		LOAD 'auto_explain';
		SET auto_explain.log_min_duration = 0;
		SET auto_explain.log_nested_statements = on;
		SET auto_explain.log_analyze = on;
		SET auto_explain.log_timing = off;
		SET jit = on;
		SET jit_above_cost = 0;}, map { "$_;" } @top));

	# the plans logged since: "plan:" entries, each with its statement's text and its lines
	my $log = slurp_file($node->logfile, $offset);
	my @plans;
	for my $entry (split /\n(?=\S)/, $log)
	{
		next unless $entry =~ /\bplan:\n\s*Query Text: (.*)/;
		my $sql = $1;
		$sql =~ s/;\s*$//;
		push @plans, { sql => $sql, jit => ($entry =~ /^\s*JIT:/m ? 1 : 0), text => $entry };
	}
	my %top = map { $_ => 1 } @top;
	my @control = grep { $_->{sql} =~ m{/\* control \*/} } @plans;
	ok(@control == 1 && $control[0]{jit}, "$engine: the plan of a user's query of awa.queue_meta is compiled (the log shows JIT)")
	  or diag(join("\n---\n", map { $_->{text} } @control));

	my @nested = grep { !$top{ $_->{sql} } } @plans;
	cmp_ok(scalar @nested, '>=', 40, sprintf('%s: the plans of statements nested in the calls were logged (%d)', $engine, scalar @nested));
	ok((grep { $_->{sql} =~ /awa\.counter/ } @nested), "$engine: among them the counters' reads of awa_queue_stats");
	my @compiled = grep { $_->{jit} } @nested;
	is(scalar @compiled, 0, "$engine: no plan of awa's own statements was compiled with JIT")
	  or diag(join("\n---\n", map { substr($_->{text}, 0, 600) } @compiled[0 .. ($#compiled < 4 ? $#compiled : 4)]));

	next unless $engine eq 'ring';
	my @view = grep { $_->{sql} =~ /\bawa\.(jobs|ring_jobs|ring_live_jobs)\b/ } @plans;
	# (at least 10: functions returning jobs read 500 of them per statement, src/engine.c's put_rows)
	cmp_ok(scalar @view, '>=', 10, sprintf('ring: the plans of statements reading the view were logged (%d)', scalar @view));
	# (the page read of awa_list_jobs and of the admin functions: one statement for a page of ids)
	for my $name ('FROM awa.ring_live_jobs j WHERE j.id = $1', 'awa.ring_live_jobs j  WHERE j.id = k.id',
		'awa.ring_live_jobs j  WHERE j.id = i.id', 'a user\'s query', 'DELETE FROM awa.jobs')
	{
		ok((grep { index($_->{sql}, $name) >= 0 } @view), "ring: among them: $name");
	}
	@compiled = grep { $_->{jit} } @view;
	is(scalar @compiled, 0, 'ring: no plan that reads the ring\'s view was compiled with JIT, a user\'s query included')
	  or diag(join("\n---\n", map { substr($_->{text}, 0, 600) } @compiled[0 .. ($#compiled < 4 ? $#compiled : 4)]));
}

$node->stop;
done_testing();
