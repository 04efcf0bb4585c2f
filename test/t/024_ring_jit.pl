# No JIT for the reads of the ring's view (docs/storage.md, "Step 5: reading the ring's view fast"):
# on a database whose jobs are in the ring (awa.install_engine = ring), every plan that reads
# the view awa.jobs -- the awa_* functions' own statements, nested in them, and a user's query
# -- runs without JIT, whatever jit_above_cost says; other plans keep JIT.  One session with
# jit = on and jit_above_cost = 0 (every plan would be compiled) and auto_explain logging every
# plan, nested ones included, with its JIT summary; the server log is then read plan by plan:
# a plan whose statement names awa.jobs, awa.ring_jobs or awa.ring_live_jobs must have no
# "JIT:" part, and the plan of a statement on awa.ready alone must have one (the check can see
# JIT at all).  Without engine_jit.c's planner hook the plans of the view's reads are compiled
# and the first kind of test fails.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = awa_node('ring_jit', conf => "awa.databases = ''\nlog_min_messages = info");
$node->start;
my $db = 'awa_ring_jit';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'SET awa.install_engine = ring; CREATE EXTENSION awa');
is($node->safe_psql($db, 'SELECT pg_jit_available()'), 't', 'this server can compile with JIT (llvmjit)');

# jobs in every state the functions below read: available, scheduled, running, completed,
# failed, retryable; some with a concurrency key and a tag
$node->safe_psql($db, q{
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
});
is($node->safe_psql($db, q{SELECT string_agg(DISTINCT state::text, ',' ORDER BY state::text) FROM awa.jobs}),
	'available,completed,failed,retryable,running,scheduled', 'the jobs are in six states');
my $some = $node->safe_psql($db, q{SELECT min(id) FROM awa.jobs WHERE state = 'completed'});
my $other = $node->safe_psql($db, q{SELECT max(id) FROM awa.jobs WHERE state = 'completed'});

my $offset = -s $node->logfile;
$node->safe_psql($db, qq{
	LOAD 'auto_explain';
	SET auto_explain.log_min_duration = 0;
	SET auto_explain.log_nested_statements = on;
	SET auto_explain.log_analyze = on;
	SET auto_explain.log_timing = off;
	SET jit = on;
	SET jit_above_cost = 0;
	SELECT count(*) FROM awa.ready /* control */;
	SELECT count(*) FROM awa_queue_stats();
	SELECT count(*) FROM awa_list_jobs();
	SELECT count(*) FROM awa_list_jobs('running');
	SELECT count(*) FROM awa_list_jobs('failed', queue => 'q1');
	SELECT count(*) FROM awa_list_jobs(tag => 't', before_id => $other);
	SELECT (awa_get_job($some)).state;
	SELECT count(*) FROM awa_key_stats();
	SELECT awa_discard_failed('k2');
	SELECT count(*) FROM awa_retry_failed(queue => 'q1');
	SELECT awa_drain_queue('q2');
	DELETE FROM awa.jobs WHERE id = $other;
	SELECT count(*) FROM awa.jobs WHERE state = 'completed' /* a user's query */;
	SELECT count(*) FROM awa.ring_recount();
});

# the plans logged since: "plan:" entries, each with its statement's text and its lines
my $log = slurp_file($node->logfile, $offset);
my @plans;
for my $entry (split /\n(?=\S)/, $log)
{
	next unless $entry =~ /\bplan:\n\s*Query Text: (.*)/;
	my $sql = $1;
	push @plans, { sql => $sql, jit => ($entry =~ /^\s*JIT:/m ? 1 : 0), text => $entry };
}
my @control = grep { $_->{sql} =~ m{/\* control \*/} && $_->{sql} !~ /LOAD/ } @plans;
ok(@control == 1 && $control[0]{jit}, 'a plan of awa.ready alone is compiled (the log shows JIT)')
  or diag(join("\n---\n", map { $_->{text} } @control));
my @view = grep { $_->{sql} =~ /\bawa\.(jobs|ring_jobs|ring_live_jobs)\b/ } @plans;
ok(@view >= 14, sprintf('the plans of statements reading the view were logged (%d)', scalar @view));
# (the page read of awa_list_jobs and of the admin functions: one statement for a page of ids)
for my $name ('FROM awa.ring_live_jobs j WHERE j.id = $1', 'awa.ring_live_jobs j  WHERE j.id = k.id',
	'awa.ring_live_jobs j  WHERE j.id = i.id', 'a user\'s query', 'DELETE FROM awa.jobs')
{
	ok((grep { index($_->{sql}, $name) >= 0 } @view), "among them: $name");
}
my @compiled = grep { $_->{jit} } @view;
is(scalar @compiled, 0, 'no plan that reads the ring\'s view was compiled with JIT')
  or diag(join("\n---\n", map { substr($_->{text}, 0, 600) } @compiled[0 .. ($#compiled < 4 ? $#compiled : 4)]));

$node->stop;
done_testing();
