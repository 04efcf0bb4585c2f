# Backup and restore, as the README's "Backup and restore" section says to do it, on a
# server of its own: every job, queue setting, schedule and the id sequence come back, and
# the next enqueue does not collide with a restored id.
#  1. pg_dump of the whole database -> pg_restore into an empty database;
#  2. pg_dump --data-only --table='awa.*' (awa's tables and its sequences) -> psql into a
#     database where CREATE EXTENSION awa already ran.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Utils;
use Test::More;

# On the table engine (awa.install_engine = 'table'), not the default ring: a ring database's jobs are not in
# pg_dump's output yet (the ring's relations are not marked with pg_extension_config_dump: docs/storage.md, "Step 5:
# the ring becomes the default"); on the ring this file fails 4 of 10 (no job restored).
my $node = awa_node('backup', conf => "awa.install_engine = 'table'\nawa.databases = ''");
$node->start;
my ($src, $full, $data) = ('awa_bk_src', 'awa_bk_full', 'awa_bk_data');
$node->safe_psql('postgres', "CREATE DATABASE $_") for ($src, $full, $data);
$node->safe_psql($src, <<'SQL');
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
SQL

# the rows of every awa table, the queue stats, and the next id the sequence gives
sub snapshot
{
	my ($db) = @_;
	my $s = '';
	$s .= "== $_\n" . $node->safe_psql($db, "COPY (SELECT * FROM awa.$_ ORDER BY 1) TO STDOUT") . "\n"
	  for ('jobs', 'queue_meta', 'cron_jobs');
	# the queue stats too: the restored jobs are counted (not twice)
	$s .= "== awa_queue_stats\n"
	  . $node->safe_psql($db,
		'COPY (SELECT queue, total_queued, scheduled, available, retryable, running, waiting_external,'
		  . ' failed, cancelled, completed_last_hour, paused FROM awa_queue_stats() ORDER BY 1) TO STDOUT')
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
# a new job's id must be above every restored id
sub next_insert_ok
{
	my ($db, $what) = @_;
	query_is($node, $db,
		"SELECT (awa_insert('after_restore')).id > (SELECT max(id) FROM awa.jobs WHERE kind <> 'after_restore')",
		't', $what);
}

my $want = snapshot($src);
my $rows = () = $want =~ /^(?!==).+$/mg;
ok($rows > 500, "the source has $rows rows in awa's tables");
my $tmp = PostgreSQL::Test::Utils::tempdir;

# 1. whole database
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr($src), '-f', "$tmp/full.dump" ], 'pg_dump of the whole database');
command_ok([ 'pg_restore', '-d', $node->connstr($full), "$tmp/full.dump" ], 'pg_restore of the whole database');
same("pg_dump + pg_restore of the whole database: awa's $rows rows identical, the id sequence too",
	snapshot($full), $want);
next_insert_ok($full, "after a full restore, a new job's id is above every restored one");

# 2. awa's tables and sequences only, into a database that has the extension
$node->safe_psql($data, 'CREATE EXTENSION awa');
command_ok([ 'pg_dump', '--data-only', '--table=awa.*', '-d', $node->connstr($src), '-f', "$tmp/data.sql" ],
	"pg_dump --data-only --table='awa.*'");
like(slurp_file("$tmp/data.sql"), qr/setval\('awa\.jobs_id_seq'/, "the data-only dump of awa.* sets awa.jobs_id_seq");
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($data), '-f', "$tmp/data.sql" ],
	'restoring the data-only dump');
same("pg_dump --data-only --table='awa.*' into a database with the extension: $rows rows identical, the id sequence too",
	snapshot($data), $want);
next_insert_ok($data, "after a data-only restore, a new job's id is above every restored one");

$node->stop;
done_testing();
