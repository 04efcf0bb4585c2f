# Rate limits under load, on a server of its own: 8 sessions claim from a queue limited to
# AWA_RATE_N claims per AWA_RATE_MS milliseconds, each its own way (blocking awa_claim with
# batches of 1..4, CALL awa_claim_wait, multi-queue claims with an unlimited queue, claims
# rolled back), for AWA_RATE_SECONDS.  Then, over the claim times of every committed claim
# (attempted_at), no interval of the period holds more than N claims; the limit was reached
# (the test is not idle); the sessions claimed close to the rate; blocked claimers woke about
# once per claim, not in a poll loop (the unlimited queue runs dry early, so the multi-queue
# claimers wait on both queues).  Last, the window survives a crash: claims committed
# before an immediate shutdown still count after the restart (rebuilt from awa.jobs).  And the
# edges: a 65th rated queue in use at once fails with 53400; without awa preloaded, a rate is
# refused (55000) and a claim of a queue given a rate by hand fails rather than ignore it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use PostgreSQL::Test::Cluster;
use Test::More;

my $N = $ENV{AWA_RATE_N} // 10;
my $MS = $ENV{AWA_RATE_MS} // 500;
my $SECONDS = $ENV{AWA_RATE_SECONDS} // 15;
my $SESSIONS = 8;

my $db = 'awa_rate';
my $node = stress_node('rate_stress', $db, "'api'", "ARRAY['api', 'free']", <<"SQL");
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'api' FROM generate_series(1, 5000);
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'free' FROM generate_series(1, 300);
SELECT awa_set_queue_rate('api', $N, interval '$MS milliseconds');
SQL

my ($elapsed, $wakeups) = claim_stress_sessions($node, $db, $SESSIONS, $SECONDS);

# every committed claim of api, by its time
my ($claims, $busiest, $span) = claim_windows($node, $db, "queue = 'api'", $MS);
note("api: $claims committed claims over $span s, busiest window of $MS ms: $busiest; "
	  . "$wakeups wake-ups of blocked claimers; run took " . sprintf('%.1f', $elapsed) . ' s');
rate_held('', $N, $MS, $claims, $busiest, $span);
cmp_ok($node->safe_psql($db, "SELECT count(*) FROM awa.jobs WHERE queue = 'free' AND attempted_at IS NOT NULL"),
	'>', 0, 'the multi-queue claims took jobs of the unlimited queue');
wakeups_bounded($wakeups, $claims, $SESSIONS);

# the window after a crash: 5 claims per 30 s, all used, then an immediate shutdown
window_after_crash($node, $db, <<'SQL', 'the', <<'WINDOW', 'awa_queue_limits');
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'slow' FROM generate_series(1, 10);
SELECT awa_set_queue_rate('slow', 5, '30 s');
SQL
SELECT window_claims, next_slot_at > now() FROM awa_queue_limits() WHERE queue = 'slow'
WINDOW

# room for 64 rated queues at once: a 65th in use fails with 53400, until one's window empties
$node->safe_psql($db, <<'SQL');
INSERT INTO awa.jobs (kind, queue) SELECT 'k', 'r' || i FROM generate_series(1, 64) i;
SELECT awa_set_queue_rate('r' || i, 1, '1 hour') FROM generate_series(1, 64) i;
SQL
# since the restart only 'slow' holds a place: 63 more fill the table
query_is($node, $db, "SELECT count(*) FROM generate_series(1, 63) i, awa_claim('r' || i, 'w', 1, '1 hour', '0')",
	'63', '63 more rated queues claimed from: every place is taken');
my ($rc, $out, $err) = $node->psql($db, "SELECT count(*) FROM awa_claim('r64', 'w', 1, '1 hour', '0')");
like($err, qr/too many queues with a rate limit are in use at once \(at most 64\)/,
	'one more rated queue in use: an error, not an unlimited claim');
like($node->safe_psql($db, "SELECT awa_set_queue_rate('r64', NULL, NULL)"), qr/r64/, 'its rate removed');
query_is($node, $db, "SELECT count(*) FROM awa_claim('r64', 'w', 1, '1 hour', '0')", '1',
	'without a rate it claims as before');
$node->stop;

# without awa in shared_preload_libraries there is nowhere to count: 55000, not a silent unlimited claim
my $plain = unpreloaded_node('rate_not_preloaded', "SELECT awa_insert('k', queue => 'api')");
($rc, $out, $err) = $plain->psql('postgres', "SELECT awa_set_queue_rate('api', 10, '1 s')");
like($err, qr/rate limits need awa in shared_preload_libraries/, 'awa_set_queue_rate needs awa preloaded');
$plain->safe_psql('postgres',
	"INSERT INTO awa.queue_meta (queue, rate_max_claims, rate_period) VALUES ('api', 10, '1 s')");
($rc, $out, $err) = $plain->psql('postgres', "SELECT count(*) FROM awa_claim('api', 'w', 1, '1 hour', '0')");
like($err, qr/queue "api" has a rate limit, which needs awa in shared_preload_libraries/,
	'a claim of a queue given a rate behind awa\'s back fails rather than ignore the rate');
$plain->stop;
done_testing();
