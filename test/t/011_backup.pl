# Backup and restore, as the README's "Backup and restore" section says to do it, on a
# server of its own, on the default storage (the ring) and on the table storage
# (awa.install_engine = 'table'): every job in every state, its unique key, dependencies,
# group and per-key rows, queue settings, schedules and the id sequence come back; the
# queue stats equal a recount (not counted twice, not missing); the ring's invariants hold
# (test/lib/awa_invariants.py); the next enqueue does not collide with a restored id; and
# the restored jobs go on (a running job ends with its lease, claims, an external wait's
# end, a dependent released, the ring's rotation and reclaim).
#  1. pg_dump -Fc of the whole database -> pg_restore into an empty database;
#  2. pg_dump (plain) -> psql into an empty database;
#  3. pg_dump --data-only --extension=awa --schema=awa -> psql into a database where CREATE EXTENSION
#     awa already ran (on the table storage also --table='awa.*', as before);
#  4. pg_restore --clean into the dumped database, after claims drained a queue.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = awa_node('backup', conf => "awa.databases = ''");
$node->start;
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $lib = "$FindBin::RealBin/../lib";

# jobs in every state (failed for good, cancelled, waiting_external included), a unique key,
# a dependency, a group with a callback, per-key rows, a paused queue, a queue limit, a schedule
my $setup = <<'SQL';
CREATE EXTENSION awa;
SELECT awa_insert('mail', jsonb_build_object('n', i), queue => 'q' || (i % 3), priority => 1 + i % 4,
	tags => ARRAY['t' || (i % 2)]) FROM generate_series(1, 500) i;
SELECT awa_insert('later', run_at => now() + interval '1 day');
SELECT awa_insert('once', '{"k": 1}', unique_by_args => true, timeout => '10 minutes');
SELECT awa_complete(id, run_lease) FROM awa_claim('q0', batch => 50);
SELECT awa_fail(id, run_lease, 'boom') FROM awa_claim('q1', batch => 20);
SELECT count(*) FROM awa_claim('q2', batch => 5, lease => '1 hour');
SELECT awa_pause_queue('q2');
SELECT awa_set_queue_limit('q1', 3);
SELECT name FROM awa_schedule('nightly', '0 3 * * *', 'report', timezone => 'Europe/Berlin');
SELECT awa_insert('dead', queue => 'e', max_attempts => 1);
SELECT awa_fail(id, run_lease, 'fatal') FROM awa_claim('e', batch => 1);
SELECT awa_cancel((awa_insert('gone', queue => 'e')).id);
SELECT awa_insert('ext', queue => 'x');
CREATE TABLE public.cb AS SELECT awa_register_callback(id, run_lease, '1 hour') AS id FROM awa_claim('x', batch => 1);
SELECT awa_wait_external(j.id, j.run_lease) FROM awa.jobs j WHERE j.kind = 'ext';
SELECT awa_insert('child', queue => 'd', after => ARRAY[(awa_insert('parent', queue => 'd')).id]);
SELECT awa_insert('member', queue => 'g', group_id => 'g1') FROM generate_series(1, 3);
SELECT awa_group_on_finish('g1', 'g1_done');
SELECT awa_complete(id, run_lease) FROM awa_claim('g', batch => 1);
SELECT awa_set_key_limit('k:*', 1);
SELECT awa_insert('keyed', queue => 'k', concurrency_key => 'k:' || (i % 2)) FROM generate_series(1, 4) i;
SELECT count(*) FROM awa_claim('k', batch => 2, lease => '1 hour');
SELECT awa_insert('uniq2', '{"u": 2}', unique_by_args => true, queue => 'u');
SQL

# the rows of awa's view of every job and of its settings, the queue stats, the id sequence,
# and what the API says of the unique key, the dependency and the group
sub snapshot
{
	my ($db) = @_;
	my $s = '';
	$s .= "== $_\n" . $node->safe_psql($db, "COPY (SELECT * FROM awa.$_ ORDER BY 1) TO STDOUT") . "\n"
	  for ('jobs', 'queue_meta', 'cron_jobs', 'key_limits');
	$s .= "== awa_queue_stats\n"
	  . $node->safe_psql($db,
		'COPY (SELECT queue, total_queued, scheduled, available, retryable, running, waiting_external,'
		  . ' failed, cancelled, completed_last_hour, paused FROM awa_queue_stats() ORDER BY 1) TO STDOUT')
	  . "\n";
	$s .= "== api\n"
	  . $node->safe_psql($db,
		"SELECT (SELECT count(*) FROM awa_dependents((SELECT id FROM awa.jobs WHERE kind = 'parent')));"
		  . " SELECT * FROM awa_group_stats('g1');")
	  . "\n";
	return $s . '== jobs_id_seq ' . $node->safe_psql($db, 'SELECT last_value FROM awa.jobs_id_seq') . "\n";
}
# same(WHAT, GOT, WANT): one test; on a difference, shows the first differing lines
sub same
{
	my ($what, $got, $want) = @_;
	return pass($what) if $got eq $want;
	fail($what);
	my @g = split /\n/, $got;
	my @w = split /\n/, $want;
	my @d = grep { ($g[$_] // '') ne ($w[$_] // '') } 0 .. ($#g > $#w ? $#g : $#w);
	diag(join "\n", map { "line $_: restored '" . ($g[$_] // '') . "', source '" . ($w[$_] // '') . "'" }
		  @d[ 0 .. ($#d < 9 ? $#d : 9) ]);
}
# the counters against a recount, and awa's invariants (the ring's own on the ring)
sub invariants_ok
{
	my ($db, $what) = @_;
	query_is($node, $db, 'SELECT count(*) FROM awa.ring_recount()', '0', "$what: the queue stats equal a recount");
	run_python("$what: awa's invariants hold", 120,
		[ '-c', "import sys, psycopg; sys.path.insert(0, sys.argv[1]); import awa_invariants as a;"
			  . " e = a.check(psycopg.connect(sys.argv[2], autocommit=True)); print('\\n'.join(e)); sys.exit(1 if e else 0)",
		  $lib, $node->connstr($db) ]);
}
# a new job's id must be above every restored id
sub next_insert_ok
{
	my ($db, $what) = @_;
	query_is($node, $db,
		"SELECT (awa_insert('after_restore')).id > (SELECT max(id) FROM awa.jobs WHERE kind <> 'after_restore')",
		't', $what);
}

for my $engine ('ring', 'table')
{
	my ($src, $full, $plain, $data, $tdata) = map { "awa_bk_${engine}_$_" } qw(src full plain data tdata);
	for my $db ($src, $full, $plain, $data, $tdata)
	{
		$node->safe_psql('postgres', "CREATE DATABASE $db");
		$node->safe_psql('postgres', "ALTER DATABASE $db SET awa.install_engine = 'table'") if $engine eq 'table';
	}
	$node->safe_psql($src, $setup);
	query_is($node, $src, "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass",
		$engine eq 'ring' ? 'v' : 'r', "$engine: awa.jobs is the $engine storage's");
	query_is($node, $src, "SELECT string_agg(DISTINCT state::text, ',' ORDER BY state::text) FROM awa.jobs",
		'available,cancelled,completed,failed,retryable,running,scheduled,waiting_external',
		"$engine: the source has jobs in every state");
	my $want = snapshot($src);
	my $rows = () = $want =~ /^(?!==).+$/mg;
	ok($rows > 500, "$engine: the source has $rows rows in awa's tables");

	# 1. whole database, custom format
	command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr($src), '-f', "$tmp/$engine.dump" ],
		"$engine: pg_dump -Fc of the whole database");
	command_ok([ 'pg_restore', '-d', $node->connstr($full), "$tmp/$engine.dump" ],
		"$engine: pg_restore of the whole database");
	same("$engine: pg_dump + pg_restore of the whole database: awa's $rows rows identical, the id sequence too",
		snapshot($full), $want);
	invariants_ok($full, "$engine: after pg_restore");

	# 2. whole database, plain format
	command_ok([ 'pg_dump', '-d', $node->connstr($src), '-f', "$tmp/$engine.sql" ], "$engine: pg_dump (plain)");
	command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($plain), '-f', "$tmp/$engine.sql" ],
		"$engine: psql of the plain dump");
	same("$engine: pg_dump (plain) + psql: awa's $rows rows identical, the id sequence too", snapshot($plain), $want);
	invariants_ok($plain, "$engine: after the plain restore");
	next_insert_ok($plain, "$engine: after a plain restore, a new job's id is above every restored one");

	# 3. awa's data only, into a database that has the extension
	my @data = ([ $data, '--extension=awa --schema=awa' ]);
	push @data, [ $tdata, '--table=awa.*' ] if $engine eq 'table';
	for my $d (@data)
	{
		my ($db, $opt) = @$d;
		$node->safe_psql($db, 'CREATE EXTENSION awa');
		command_ok([ 'pg_dump', '--data-only', split(/ /, $opt), '-d', $node->connstr($src), '-f', "$tmp/$db.sql" ],
			"$engine: pg_dump --data-only $opt");
		like(slurp_file("$tmp/$db.sql"), qr/setval\('awa\.jobs_id_seq'/,
			"$engine: the data-only dump ($opt) sets awa.jobs_id_seq");
		command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db), '-f', "$tmp/$db.sql" ],
			"$engine: restoring the data-only dump ($opt)");
		same("$engine: pg_dump --data-only $opt into a database with the extension: $rows rows identical, the id sequence too",
			snapshot($db), $want);
		invariants_ok($db, "$engine: after the data-only restore ($opt)");
		next_insert_ok($db, "$engine: after a data-only restore ($opt), a new job's id is above every restored one");
	}

	$node->safe_psql($full, "SELECT awa_resume_queue('q2')");
	# the restored jobs go on: the running ones end with the lease they had, the paused queue's
	# jobs are claimed, the external wait ends, the dependent is released, the unique key holds
	query_is($node, $full, <<'SQL', '5|116|162|1|1|t|t', "$engine: the restored jobs go on (leases, claims, external wait, dependency, unique key)");
SELECT (SELECT count(awa_complete(j.id, j.run_lease)) FROM awa.jobs j WHERE j.state = 'running' AND j.queue = 'q2'),
	(SELECT count(awa_complete(c.id, c.run_lease)) FROM awa_claim('q0', batch => 1000) c),
	(SELECT count(awa_complete(c.id, c.run_lease)) FROM awa_claim('q2', batch => 1000) c),
	(SELECT count(awa_complete(c.id, c.run_lease)) FROM awa_claim('d', batch => 10) c),
	(SELECT count(*) FROM awa_claim('d', batch => 10)),
	awa_complete_external((SELECT id FROM public.cb)) IS NOT NULL,
	(awa_insert('once', '{"k": 1}', unique_by_args => true)).id
		= (SELECT id FROM awa.jobs WHERE kind = 'once' AND queue = 'default')
SQL
	if ($engine eq 'ring')
	{
		query_is($node, $full,
			"SELECT (SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')),"
			  . " (SELECT count(*) FROM awa.ring_reclaim() WHERE outcome = 'reclaimed'), awa.ring_rescue() >= 0",
			'rotated|1|t', 'ring: after pg_restore, the ring rotates, reclaims and rescues');
	}
	invariants_ok($full, "$engine: after the restored jobs went on");
	next_insert_ok($full, "$engine: after a full restore, a new job's id is above every restored one");

	# 4. a restore into the database dumped (pg_restore --clean), after its claims drained a queue (and, on the
	# ring, a rotation): what the server keeps in memory of the drained queue must not hide the restored jobs
	$node->safe_psql($src, "SELECT count(awa_complete(c.id, c.run_lease)) FROM awa_claim('q0', batch => 1000) c");
	$node->safe_psql($src, "SELECT awa.ring_rotate(1, '1 microsecond')") if $engine eq 'ring';
	command_ok([ 'pg_restore', '--clean', '--if-exists', '-d', $node->connstr($src), "$tmp/$engine.dump" ],
		"$engine: pg_restore --clean into the dumped database");
	same("$engine: pg_restore --clean into the dumped database: $rows rows identical", snapshot($src), $want);
	query_is($node, $src, "SELECT count(*) FROM awa_claim('q0', batch => 1000)", '116',
		"$engine: after pg_restore --clean, every restored available job of a queue drained before is claimed");
	invariants_ok($src, "$engine: after pg_restore --clean");
}

$node->stop;
done_testing();
