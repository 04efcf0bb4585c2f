# Per-key concurrency limits and ordering under load (test/integration/python/key_limits.py), on a
# server of its own: eight workers claim jobs of 50 concurrency keys; a sampler of the running set
# never sees a key above its limit, every job completes (none starves), ordered keys run in id order.
#   AWA_KEY_LIMITS_PER_KEY (default 40): jobs per limited key (half as many per ordered key).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use AwaTest;
use Test::More;

my $node = awa_node('key_limits', conf => "awa.databases = ''");
$node->start;
my $db = 'awa_key_limits';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION awa');
run_python('key_limits.py: no key above its limit, no job starves, ordered keys in order', 120,
	[ "$FindBin::RealBin/../integration/python/key_limits.py", $node->connstr($db), $ENV{AWA_KEY_LIMITS_PER_KEY} // 40 ])
  or diag(log_tail($node));
$node->stop;
done_testing();
