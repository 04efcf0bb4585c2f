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

my $N = $ENV{AWA_KEY_RATE_N} // 10;
my $MS = $ENV{AWA_KEY_RATE_MS} // 500;
my $SECONDS = $ENV{AWA_KEY_RATE_SECONDS} // 12;
my $SESSIONS = 8;

my $db = 'awa_key_rate';
my $node = stress_node('key_rate_stress', $db, "CASE WHEN w % 2 = 0 THEN 'a' ELSE 'b' END", "ARRAY['a', 'b']",
	<<"SQL");
-- ids interleave the keys: every range a claim reads starts with rated jobs
INSERT INTO awa.jobs (kind, queue, concurrency_key)
	SELECT 'k', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
		CASE i % 5 WHEN 0 THEN 'free' WHEN 1 THEN 'api-2' ELSE 'api-1' END
	FROM generate_series(1, 6000) i;
SELECT awa_set_key_limit('%', 1000000);
SELECT awa_set_key_limit('api-%', 1000);
SELECT awa_set_key_rate('api-%', $N, interval '$MS milliseconds');
SQL

my ($elapsed, $wakeups) = claim_stress_sessions($node, $db, $SESSIONS, $SECONDS);

# every committed claim of each rated key, by its time
my $total = 0;
for my $key ('api-1', 'api-2')
{
	my ($claims, $busiest, $span, $queues) = claim_windows($node, $db, "concurrency_key = '$key'", $MS);
	note("$key: $claims committed claims over $span s from $queues queues, busiest window of $MS ms: $busiest");
	rate_held("$key: ", $N, $MS, $claims, $busiest, $span);
	is($queues, 2, "$key: claimed from both queues under one rate");
	$total += $claims;
}
my $free = $node->safe_psql($db,
	"SELECT count(*) FROM awa.jobs WHERE concurrency_key = 'free' AND attempted_at IS NOT NULL");
note("free: $free claims; $wakeups wake-ups of blocked claimers; run took " . sprintf('%.1f', $elapsed) . ' s');
cmp_ok($free, '>=', 1000, 'jobs of the key without a rate were claimed meanwhile (not held back)');
wakeups_bounded($wakeups, $total, $SESSIONS);

# the window after a crash: 5 claims per 30 s, all used, then an immediate shutdown
window_after_crash($node, $db, <<'SQL', "the key's", <<'WINDOW', 'awa_key_stats');
INSERT INTO awa.jobs (kind, queue, concurrency_key) SELECT 'k', 'slow', 'slow' FROM generate_series(1, 10);
SELECT awa_set_key_limit('slow', 100);
SELECT awa_set_key_rate('slow', 5, '30 s');
SQL
SELECT window_claims, next_slot_at > now() FROM awa_key_stats('slow')
WINDOW
like($node->safe_psql($db, "SELECT awa_set_key_rate('slow', NULL, NULL)"), qr/slow,,100/,
	'its rate removed, the rule kept');
query_is($node, $db, "SELECT count(*) FROM awa_claim('slow', 'w', 5, '1 hour', '0')", '5',
	'without a rate it claims as before');
$node->stop;

# without awa in shared_preload_libraries there is nowhere to count: 55000, not a silent unlimited claim
my $plain = unpreloaded_node('key_rate_not_preloaded', "SELECT awa_insert('k', concurrency_key => 'api')");
my ($rc, $out, $err) = $plain->psql('postgres', "SELECT awa_set_key_rate('api', 10, '1 s')");
like($err, qr/rate limits need awa in shared_preload_libraries/, 'awa_set_key_rate needs awa preloaded');
$plain->safe_psql('postgres', "INSERT INTO awa.key_limits (pattern, max_running, rate_max_claims, rate_period,"
	. " rate_set_at) VALUES ('api', 1, 10, '1 s', now())");
($rc, $out, $err) = $plain->psql('postgres', "SELECT count(*) FROM awa_claim('default', 'w', 1, '1 hour', '0')");
like($err, qr/concurrency key "api" has a rate limit, which needs awa in shared_preload_libraries/,
	'a claim of a key given a rate behind awa\'s back fails rather than ignore the rate');
$plain->stop;
done_testing();
