# Rates per concurrency key under load, on a server of its own: 8 sessions claim from two
# queues whose jobs carry keys api-1 and api-2 (each limited by one rule to AWA_KEY_RATE_N
# claims per AWA_KEY_RATE_MS milliseconds, counted per key across both queues) and key free
# (no rate), each session its own way (blocking awa_claim with batches of 1..4 on either
# queue, CALL awa_claim_wait, multi-queue claims, claims rolled back), for
# AWA_KEY_RATE_SECONDS.  Then, over the claim times of every committed claim (attempted_at),
# for each rated key no interval of the period holds more than N claims; the limit was
# reached (the test is not idle); the sessions claimed close to the rate; jobs of key free
# were claimed throughout (a key at its rate holds no other key back); blocked claimers woke
# about once per claim, not in a poll loop.  Last, a key's window survives a crash: claims
# committed before an immediate shutdown still count after the restart (rebuilt from
# awa.jobs), and awa_key_stats shows them.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Cluster;
use Test::More;
use Time::HiRes qw(time);

my $N = $ENV{AWA_KEY_RATE_N} // 10;
my $MS = $ENV{AWA_KEY_RATE_MS} // 500;
my $SECONDS = $ENV{AWA_KEY_RATE_SECONDS} // 12;
my $SESSIONS = 8;

my $node = awa_node('key_rate_stress', conf => "awa.databases = ''\nmax_connections = 40");
$node->start;
my $db = 'awa_key_rate';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, <<"SQL");
CREATE EXTENSION awa;
-- ids interleave the keys: every range a claim reads starts with rated jobs
INSERT INTO awa.jobs (kind, queue, concurrency_key)
	SELECT 'k', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
		CASE i % 5 WHEN 0 THEN 'free' WHEN 1 THEN 'api-2' ELSE 'api-1' END
	FROM generate_series(1, 6000) i;
SELECT awa_set_key_limit('%', 1000000);
SELECT awa_set_key_limit('api-%', 1000);
SELECT awa_set_key_rate('api-%', $N, interval '$MS milliseconds');
-- one session's loop: claim its own way until the time is up, each attempt its own transaction
CREATE PROCEDURE stress(w integer, secs float8)
LANGUAGE plpgsql AS \$\$
DECLARE
	stop timestamptz := clock_timestamp() + secs * interval '1 s';
	jobs awa.jobs[];
	q text := CASE WHEN w % 2 = 0 THEN 'a' ELSE 'b' END;
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
			PERFORM awa_claim(ARRAY['a', 'b'], 'w' || w, 3, '1 hour', '1 s');
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

my $wakeups0 = $node->safe_psql($db, 'SHOW awa.claimer_wakeups');
my $t0 = time;
my @s = map { bg_psql($node->connstr($db), [], "CALL stress($_, $SECONDS)") } 1 .. $SESSIONS;
my @bad = grep { bg_wait($s[$_]) != 0 } 0 .. $#s;
my $elapsed = time - $t0;
is(scalar(@bad), 0, "$SESSIONS sessions claimed for $SECONDS s without an error")
  or diag(join("\n", map { $s[$_]{err} } @bad));
my $wakeups = $node->safe_psql($db, 'SHOW awa.claimer_wakeups') - $wakeups0;

# every committed claim of each rated key, by its time; windows starting at each claim cover
# every busiest one
my $total = 0;
for my $key ('api-1', 'api-2')
{
	my ($claims, $busiest, $span, $queues) = split /\|/, $node->safe_psql($db, <<"SQL");
SELECT count(*), max(n), extract(epoch FROM max(attempted_at) - min(attempted_at)), count(DISTINCT queue)
FROM (SELECT attempted_at, queue, count(*) OVER (ORDER BY attempted_at
		RANGE BETWEEN CURRENT ROW AND interval '$MS milliseconds' - interval '1 microsecond' FOLLOWING) AS n
	FROM awa.jobs WHERE concurrency_key = '$key' AND attempted_at IS NOT NULL) w
SQL
	note("$key: $claims committed claims over $span s from $queues queues, busiest window of $MS ms: $busiest");
	cmp_ok($busiest, '<=', $N, "$key: no interval of $MS ms holds more than $N claims");
	is($busiest, $N, "$key: the limit was reached (the sessions contended for it)");
	is($queues, 2, "$key: claimed from both queues under one rate");
	my $possible = $N * ($span * 1000 / $MS + 1);
	cmp_ok($claims, '>=', 0.5 * $possible,
		"$key: the sessions claimed at least half of what the rate allows ($claims of ~" . int($possible) . ')');
	$total += $claims;
}
my $free = $node->safe_psql($db,
	"SELECT count(*) FROM awa.jobs WHERE concurrency_key = 'free' AND attempted_at IS NOT NULL");
note("free: $free claims; $wakeups wake-ups of blocked claimers; run took " . sprintf('%.1f', $elapsed) . ' s');
cmp_ok($free, '>=', 1000, 'jobs of the key without a rate were claimed meanwhile (not held back)');
cmp_ok($wakeups, '<=', 4 * $total + 4 * $SESSIONS,
	'blocked claimers woke about once per claim (slots and hand-offs), not in a poll loop');

# the window after a crash: 5 claims per 30 s, all used, then an immediate shutdown
$node->safe_psql($db, <<'SQL');
INSERT INTO awa.jobs (kind, queue, concurrency_key) SELECT 'k', 'slow', 'slow' FROM generate_series(1, 10);
SELECT awa_set_key_limit('slow', 100);
SELECT awa_set_key_rate('slow', 5, '30 s');
SELECT count(*) FROM awa_claim('slow', 'w', 5, '1 hour', '0');
SQL
$node->stop('immediate');
$node->start;
query_is($node, $db, "SELECT count(*) FROM awa_claim('slow', 'w', 5, '1 hour', '0')", '0',
	'after a crash, the claims committed before it still fill the key\'s window');
query_is($node, $db, "SELECT window_claims, next_slot_at > now() FROM awa_key_stats('slow')",
	'5|t', 'awa_key_stats shows the window rebuilt from awa.jobs');
like($node->safe_psql($db, "SELECT awa_set_key_rate('slow', NULL, NULL)"), qr/slow,,100/,
	'its rate removed, the rule kept');
query_is($node, $db, "SELECT count(*) FROM awa_claim('slow', 'w', 5, '1 hour', '0')", '5',
	'without a rate it claims as before');
$node->stop;

# without awa in shared_preload_libraries there is nowhere to count: 55000, not a silent unlimited claim
my $plain = PostgreSQL::Test::Cluster->new('key_rate_not_preloaded');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', "CREATE EXTENSION awa; SELECT awa_insert('k', concurrency_key => 'api');");
my ($rc, $out, $err) = $plain->psql('postgres', "SELECT awa_set_key_rate('api', 10, '1 s')");
like($err, qr/rate limits need awa in shared_preload_libraries/, 'awa_set_key_rate needs awa preloaded');
$plain->safe_psql('postgres', "INSERT INTO awa.key_limits (pattern, max_running, rate_max_claims, rate_period,"
	. " rate_set_at) VALUES ('api', 1, 10, '1 s', now())");
($rc, $out, $err) = $plain->psql('postgres', "SELECT count(*) FROM awa_claim('default', 'w', 1, '1 hour', '0')");
like($err, qr/concurrency key "api" has a rate limit, which needs awa in shared_preload_libraries/,
	'a claim of a key given a rate behind awa\'s back fails rather than ignore the rate');
$plain->stop;
done_testing();
