#!/usr/bin/env bash
# Shards behind a router (docs/sharding.md), end to end on this machine:
#  1. three shard servers and a router server of their own (private ports:
#     AWA_SHARD_PORT, default PGPORT + 10, and the three after it), awa on each
#     shard, shard 0 holding jobs from before it was a shard (its ids stay and
#     new ones go on above them), awa_router with the cluster 'awa_shards' on
#     the router;
#  2. through the router: inserts land on the shard of their queue (or of their
#     shard key), every id says its shard (id >> 48); awa_insert_many splits a
#     batch and returns rows in input order; claim, complete, fail, get, cancel
#     and retry reach the right shard; awa_complete_many and awa_heartbeat split
#     across shards; a shard's error arrives with its SQLSTATE; awa_queue_stats
#     equals the sum of the shards' own; list and health see every shard;
#     per-key limits and rates are set on every shard and hold per shard, key
#     and group stats add up the shards, a group's finish callback goes to the
#     group's shard (0A000 for a group over several without a shard key),
#     dependencies are read on the shard in the id;
#     a producer role may insert and may not claim (the shards decide);
#  3. the Python client (clients/python), unchanged, inserts, claims (a
#     blocking claim too) and completes through the router, and its Worker
#     runs a batch there.
# Stops every server it started, whatever happens.  Needs root (initdb as
# postgres), PL/Proxy (postgresql-15-plproxy) and awa installed; PGPORT is only
# read for the default port.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/scripts/lib.sh"
BASE=${AWA_SHARD_PORT:-$(( ${PGPORT:-54329} + 10 ))}
DIR=$(mktemp -d /tmp/awa-sharding.XXXXXX)
chmod 755 "$DIR"
NSHARDS=3
DB=awa_shard
RDB=awa_router
PY=/usr/bin/python3
START=$(date +%s%3N)
PASSED=0

fail() { echo "FAIL: sharding: $*"; exit 1; }
ok() { echo "ok - $*"; PASSED=$((PASSED + 1)); }
cleanup() {
	local i
	for i in $(seq 0 $NSHARDS); do awa_cluster_stop "$DIR/s$i"; done
	rm -rf "$DIR"
}
trap cleanup EXIT

# server i: shard i (0 .. NSHARDS-1) or the router (NSHARDS)
port() { echo $((BASE + $1)); }
# q I DB SQL...: psql on server I, tuples only, stop on error
q() { local i=$1 db=$2; shift 2; "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR/s$i" -p "$(port "$i")" -U postgres -d "$db" "$@"; }
R=$NSHARDS
r() { q $R $RDB "$@"; }
# expect WHAT GOT WANT
expect() { [ "$2" = "$3" ] && ok "$1" || fail "$1: got '$2', want '$3'"; }

# 1. Servers ----------------------------------------------------------------------

log "starting $NSHARDS shard servers and a router on ports $BASE..$((BASE + NSHARDS)) in $DIR"
for i in $(seq 0 $NSHARDS); do
	(awa_cluster_start "$DIR/s$i" "$(port "$i")" fsync=off awa.databases= max_connections=40) \
		|| fail "server $i did not start (log: $DIR/s$i/log)"
done
for i in $(seq 0 $((NSHARDS - 1))); do
	q $i postgres -c "CREATE DATABASE $DB" || fail "CREATE DATABASE on shard $i"
	q $i $DB -c "CREATE EXTENSION awa" || fail "CREATE EXTENSION awa on shard $i"
done
# shard 0 was a single database with jobs before the fleet existed
q 0 $DB -c "SELECT awa_insert('old', queue => 'before') FROM generate_series(1, 5)" >/dev/null
old_max=$(q 0 $DB -c "SELECT max(id) FROM awa.jobs")
expect "a database that was alone is shard 0" "$(q 0 $DB -c "SELECT awa_shard()")" 0
for i in $(seq 0 $((NSHARDS - 1))); do
	q $i $DB -c "SELECT awa_shard_configure($i)" >/dev/null || fail "awa_shard_configure($i)"
done
expect "shard 0 keeps its ids" "$(q 0 $DB -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM awa.jobs")" "1,2,3,4,5"
expect "shard 1 holding jobs refuses to become shard 2 (55000)" \
	"$(q 1 $DB -c "SELECT awa_insert('x')" -c "SELECT awa_shard_configure(2)" 2>&1 | grep -c 'do not belong to shard 2')" 1
q 1 $DB -c "DELETE FROM awa.jobs" -c "SELECT awa_shard_configure(1)" >/dev/null

partitions=""
for i in $(seq 0 $((NSHARDS - 1))); do
	partitions="$partitions, p$i 'host=$DIR/s$i port=$(port "$i") dbname=$DB'"
done
q $R postgres -c "CREATE DATABASE $RDB" || fail "CREATE DATABASE on the router"
r -c "CREATE EXTENSION awa_router CASCADE" \
	-c "CREATE SERVER awa_shards FOREIGN DATA WRAPPER plproxy OPTIONS (modular_mapping '1'$partitions)" \
	-c "CREATE USER MAPPING FOR PUBLIC SERVER awa_shards" \
	-c "GRANT USAGE ON FOREIGN SERVER awa_shards TO awa_producer, awa_worker, awa_admin" \
	|| fail "installing awa_router"
expect "partition i of the router's cluster is shard i" "$(r -c "SELECT string_agg(s::text, ',') FROM awa_shards() s")" "0,1,2"

# 2. The API through the router ------------------------------------------------------

# queue_per_shard NAME PREFIX FIRST LAST: NAME[s] = a queue name PREFIXn (n from FIRST to
# LAST) that the router puts on shard s (its hash of the name decides), for every shard
queue_per_shard() {
	local -n names=$1
	local n s
	for n in $(seq "$3" "$4"); do
		s=$(r -c "SELECT awa_queue_shard('$2$n')")
		[ -z "${names[$s]:-}" ] && names[$s]=$2$n
		[ ${#names[@]} -eq $NSHARDS ] && return 0
	done
	return 1
}
declare -a QUEUE
queue_per_shard QUEUE q 0 200 || fail "no queue name found for every shard"
echo "# queues: shard 0 ${QUEUE[0]}, shard 1 ${QUEUE[1]}, shard 2 ${QUEUE[2]}"

for s in 0 1 2; do
	r -c "SELECT awa_insert('job', jsonb_build_object('n', g), queue => '${QUEUE[$s]}') FROM generate_series(1, 10) g" >/dev/null \
		|| fail "awa_insert through the router"
done
for s in 0 1 2; do
	got=$(q $s $DB -c "SELECT count(*) FILTER (WHERE queue = '${QUEUE[$s]}') || '/' || count(*) FILTER (WHERE awa_shard_of(id) <> $s)
		FROM awa.jobs WHERE kind = 'job'")
	expect "shard $s holds the 10 jobs of its queue and only ids of shard $s" "$got" "10/0"
done
expect "shard 0's new ids go on above its old ones" \
	"$(q 0 $DB -c "SELECT min(id) > $old_max AND max(id) < 2^48 FROM awa.jobs WHERE kind = 'job'")" t

# a shard key puts a job on the key's shard, whatever its queue
key_shard=$(r -c "SELECT awa_queue_shard('${QUEUE[0]}', 'tenant-42')")
id=$(r -c "SELECT id FROM awa_insert('tenant_job', queue => '${QUEUE[0]}', shard_key => 'tenant-42')")
expect "a shard key places the job on the key's shard" "$(r -c "SELECT awa_shard_of($id)")" "$key_shard"
expect "... and it is there" "$(q "$key_shard" $DB -c "SELECT kind FROM awa.jobs WHERE id = $id")" tenant_job
expect "a claim with the same shard key finds it" \
	"$(r -c "SELECT id FROM awa_claim('${QUEUE[0]}', shard_key => 'tenant-42')")" "$id"

# a group id goes through to the shard (the router's row type has the column)
expect "a job's group id through the router" \
	"$(r -c "SELECT group_id FROM awa_insert('grouped', queue => '${QUEUE[0]}', shard_key => 'tenant-42', group_id => 'batch-1')")" batch-1
expect "... and awa_insert_many's" \
	"$(r -c "SELECT group_id FROM awa_insert_many('[{\"kind\": \"g\", \"queue\": \"${QUEUE[1]}\", \"group_id\": \"batch-2\"}]')")" batch-2

# a batch over three shards, back in input order
got=$(r -c "SELECT string_agg(kind || ':' || awa_shard_of(id), ',') FROM awa_insert_many('[
	{\"kind\": \"b1\", \"queue\": \"${QUEUE[2]}\"}, {\"kind\": \"b2\", \"queue\": \"${QUEUE[0]}\"},
	{\"kind\": \"b3\", \"queue\": \"${QUEUE[1]}\"}, {\"kind\": \"b4\", \"queue\": \"${QUEUE[2]}\"},
	{\"kind\": \"b5\", \"queue\": \"${QUEUE[0]}\", \"shard_key\": \"tenant-42\"}]')")
expect "awa_insert_many: each job on its shard, rows in input order" "$got" "b1:2,b2:0,b3:1,b4:2,b5:$key_shard"
expect "awa_insert_many: a batch that is not an array gets the shard's error (22023)" \
	"$(r -c "\set VERBOSITY verbose" -c "SELECT awa_insert_many('{}')" 2>&1 | grep -c '^ERROR:  22023')" 1

# claim on each shard's queue; complete, fail, snooze by id
declare -A LEASE
for s in 0 1 2; do
	while IFS='|' read -r jid lease; do LEASE[$jid]=$lease; done < <(r -F'|' -c "SELECT id, run_lease FROM awa_claim('${QUEUE[$s]}', 'it', 4)")
done
expect "claims through the router: 4 jobs on each of 3 shards" "${#LEASE[@]}" 12
for s in 0 1 2; do
	expect "shard $s: 4 running jobs" "$(q $s $DB -c "SELECT count(*) FROM awa.jobs WHERE state = 'running' AND queue = '${QUEUE[$s]}'")" 4
done
ids=("${!LEASE[@]}")
a=${ids[0]}; b=${ids[1]}; c=${ids[2]}
expect "awa_complete by id, with a result" "$(r -c "SELECT awa_complete($a, ${LEASE[$a]}, '{\"r\": 1}')")" t
expect "... the result is kept on the job's shard" "$(r -c "SELECT result->>'r' FROM awa_get_job($a)")" 1
expect "awa_complete again: stale" "$(r -c "SELECT awa_complete($a, ${LEASE[$a]})")" f
expect "awa_get_job by id" "$(r -c "SELECT state FROM awa_get_job($a)")" completed
expect "... the job's own shard says so" "$(q "$(r -c "SELECT awa_shard_of($a)")" $DB -c "SELECT state FROM awa.jobs WHERE id = $a")" completed
expect "awa_fail by id" "$(r -c "SELECT awa_fail($b, ${LEASE[$b]}, 'boom', terminal => true)")" failed
expect "awa_retry by id" "$(r -c "SELECT state FROM awa_retry($b)")" available
expect "awa_progress by id" "$(r -c "SELECT awa_progress($c, ${LEASE[$c]}, '{\"pct\": 50}')")" t
expect "awa_get_job of an id no shard holds: P0002 from the shard" \
	"$(r -c "\set VERBOSITY verbose" -c "SELECT awa_get_job($(( (1 << 48) + 999999 )))" 2>&1 | grep -c '^ERROR:  P0002')" 1
avail=$(r -c "SELECT id FROM awa_list_jobs(state => 'available', queue => '${QUEUE[2]}', lim => 1)")
expect "awa_cancel by id (shard 2)" "$(r -c "SELECT state FROM awa_cancel($avail)")" cancelled
expect "... cancelled on shard 2" "$(q 2 $DB -c "SELECT state FROM awa.jobs WHERE id = $avail")" cancelled

# heartbeat and complete the rest in one batch each, across the three shards
rest=(); leases=()
for jid in "${ids[@]}"; do
	[ "$jid" = "$a" ] || [ "$jid" = "$b" ] || { rest+=("$jid"); leases+=("${LEASE[$jid]}"); }
done
idarr="{$(IFS=,; echo "${rest[*]}")}"; learr="{$(IFS=,; echo "${leases[*]}")}"
expect "awa_heartbeat across shards: all still running, plus the completed one" \
	"$(r -c "SELECT awa_heartbeat('{$a}'::bigint[] || '$idarr'::bigint[], '{${LEASE[$a]}}'::bigint[] || '$learr'::bigint[])")" "{$a}"
expect "awa_complete_many across shards, with results" \
	"$(r -c "SELECT awa_complete_many('$idarr', '$learr', (SELECT array_agg(jsonb_build_object('id', i) ORDER BY o) FROM unnest('$idarr'::bigint[]) WITH ORDINALITY AS u(i, o)))")" "${#rest[@]}"
expect "... each job's result went with it" \
	"$(r -c "SELECT count(*) FROM unnest('$idarr'::bigint[]) i WHERE (SELECT result->>'id' FROM awa_get_job(i)) = i::text")" "${#rest[@]}"
for s in 0 1 2; do
	want=$(for jid in "${rest[@]}"; do [ $((jid >> 48)) = "$s" ] && echo x; done | wc -l)
	expect "shard $s completed its part of the batch ($want)" \
		"$(q $s $DB -c "SELECT count(*) FROM awa.jobs WHERE id = ANY ('$idarr') AND state = 'completed'")" "$want"
done
# a job parked under a callback; the callback id says no shard: it is answered on every one
r -c "SELECT awa_insert('parked', queue => 'cbq')" >/dev/null
IFS='|' read -r pj pl < <(r -F'|' -c "SELECT id, run_lease FROM awa_claim('cbq', 'it', 1)")
cb=$(r -c "SELECT awa_register_callback($pj, $pl, '1 hour')")
expect "awa_wait_external by id parks the job" "$(r -c "SELECT awa_wait_external($pj, $pl)")" t
expect "awa_heartbeat_callback by callback id" "$(r -c "SELECT awa_heartbeat_callback('$cb')")" t
expect "awa_complete_external by callback id" "$(r -c "SELECT awa_complete_external('$cb', '{\"paid\": true}')")" t
expect "... completed with the payload as its result, on its shard" \
	"$(q "$(r -c "SELECT awa_shard_of($pj)")" $DB -c "SELECT state || ' ' || (result->>'paid') FROM awa.jobs WHERE id = $pj")" "completed true"
expect "awa_complete_external of an unknown callback id: false" "$(r -c "SELECT awa_complete_external(gen_random_uuid())")" f

expect "awa_complete_many with NULL leases: the shard's 22004" \
	"$(r -c "\set VERBOSITY verbose" -c "SELECT awa_complete_many('$idarr', NULL)" 2>&1 | grep -c '^ERROR:  22004')" 1

# merged views
STATS="SELECT string_agg(concat_ws(':', queue, total_queued, scheduled, available, retryable, running,
	waiting_external, failed, cancelled, completed_last_hour, paused), ' ' ORDER BY queue)"
router_stats=$(r -c "$STATS FROM awa_queue_stats()")
shard_stats=$(for s in 0 1 2; do q $s $DB -F'|' -c "SELECT * FROM awa_queue_stats()"; done | \
	awk -F'|' '{ for (k = 2; k <= 10; k++) sum[$1, k] += $k; if ($12 == "t") p[$1] = "t"; else if (!($1 in p)) p[$1] = "f"; qs[$1] = 1 }
	END { for (qn in qs) { line = qn; for (k = 2; k <= 10; k++) line = line ":" sum[qn, k]; print line ":" p[qn] } }' | \
	LC_ALL=C sort | paste -sd' ')
expect "awa_queue_stats through the router = the sum of the shards' own" "$router_stats" "$shard_stats"
total=$(for s in 0 1 2; do q $s $DB -c "SELECT count(*) FROM awa.jobs"; done | awk '{ t += $1 } END { print t }')
expect "awa_list_jobs sees every shard's jobs" "$(r -c "SELECT count(*) FROM awa_list_jobs(lim => 1000)")" "$total"
expect "awa_list_jobs pages by id across shards" \
	"$(r -c "SELECT count(*) FROM awa_list_jobs(before_id => $(( 1 << 48 )), lim => 1000)")" \
	"$(q 0 $DB -c "SELECT count(*) FROM awa.jobs")"
expect "awa_health_check: one row naming each shard's reason" \
	"$(r -c "SELECT (SELECT count(*) FROM regexp_matches(reason, 'shard [0-2]: ', 'g')) FROM awa_health_check()")" 3
expect "awa_pause_queue pauses on every shard" "$(r -c "SELECT awa_pause_queue('${QUEUE[1]}')")" t
expect "... a paused queue hands out nothing" "$(r -c "SELECT count(*) FROM awa_claim('${QUEUE[1]}')")" 0
expect "... stats say paused" "$(r -c "SELECT paused FROM awa_queue_stats() WHERE queue = '${QUEUE[1]}'")" t
expect "awa_resume_queue" "$(r -c "SELECT awa_resume_queue('${QUEUE[1]}')")" t
# dependencies and concurrency keys pass through to the shard of the queue
parent=$(r -c "SELECT id FROM awa_insert('job', queue => '${QUEUE[2]}')")
expect "awa_insert after a parent of the same shard: the job waits for it" \
	"$(r -c "SELECT state FROM awa_insert('job', queue => '${QUEUE[2]}', after => ARRAY[$parent]::bigint[], on_parent_failure => 'run')")" scheduled
expect "... after a parent of another shard: 23503 from the shard" \
	"$(r -c "SELECT awa_insert('job', queue => '${QUEUE[1]}', after => ARRAY[$parent]::bigint[])" 2>&1 | grep -c 'named in after does not exist')" 1
expect "awa_insert with a concurrency key through the router" \
	"$(r -c "SELECT concurrency_key FROM awa_insert('job', queue => '${QUEUE[2]}', concurrency_key => 'tenant:1')")" tenant:1
expect "awa_set_queue_rate sets the rate on the queue's shard" \
	"$(r -c "SELECT rate_max_claims, rate_period FROM awa_set_queue_rate('${QUEUE[2]}', 5, '1 minute')")" "5|00:01:00"
expect "... and only there" "$(q 2 $DB -c "SELECT rate_max_claims FROM awa.queue_meta WHERE queue = '${QUEUE[2]}'")|$(q 1 $DB -c "SELECT count(*) FROM awa.queue_meta WHERE queue = '${QUEUE[2]}'")" "5|0"
expect "awa_queue_limits through the router shows it" \
	"$(r -c "SELECT rate_max_claims FROM awa_queue_limits() WHERE queue = '${QUEUE[2]}'")" 5
expect "... NULL removes it" "$(r -c "SELECT rate_max_claims IS NULL FROM awa_set_queue_rate('${QUEUE[2]}', NULL, NULL)")" t

# per-key limits and rates: set on every shard, held per shard; key and group
# stats merged from every shard; a group's finish callback on the group's shard
declare -a KQ
queue_per_shard KQ kq 201 400 || fail "no second queue name found for every shard"
on_shards() { for s in 0 1 2; do q $s $DB -c "$1"; done | paste -sd,; }
expect "awa_set_key_limit through the router returns the rule" \
	"$(r -c "SELECT max_running || ' ' || ordered FROM awa_set_key_limit('lim:%', 1)")" "1 false"
expect "... set on every shard" \
	"$(on_shards "SELECT max_running FROM awa.key_limits WHERE pattern = 'lim:%'")" "1,1,1"
expect "awa_set_key_rate through the router returns the rule" \
	"$(r -c "SELECT rate_max_claims || ' ' || rate_period FROM awa_set_key_rate('rate:%', 7, '1 minute')")" "7 00:01:00"
expect "... set on every shard" \
	"$(on_shards "SELECT rate_max_claims || '/' || rate_period FROM awa.key_limits WHERE pattern = 'rate:%'")" \
	"7/00:01:00,7/00:01:00,7/00:01:00"
expect "awa_set_key_limit: a bad limit gets the shard's 22023, set nowhere" \
	"$(r -c "\set VERBOSITY verbose" -c "SELECT awa_set_key_limit('bad:%', 0)" 2>&1 | grep -c '^ERROR:  22023')|$(on_shards "SELECT count(*) FROM awa.key_limits WHERE pattern = 'bad:%'")" "1|0,0,0"
for s in 0 1; do
	r -c "SELECT awa_insert('keyed', queue => '${KQ[$s]}', concurrency_key => 'lim:a') FROM generate_series(1, 2)" >/dev/null \
		|| fail "awa_insert with a concurrency key"
done
expect "a key's limit holds per shard: one running on each shard holding its jobs" \
	"$(r -c "SELECT count(*) FROM awa_claim('${KQ[0]}', 'it', 2)")|$(r -c "SELECT count(*) FROM awa_claim('${KQ[1]}', 'it', 2)")" "1|1"
expect "awa_key_stats merges the shards: running and waiting summed, at its limit" \
	"$(r -c "SELECT running || ' ' || waiting || ' ' || max_running || ' ' || at_limit FROM awa_key_stats('lim:a')")" "2 2 1 true"
expect "awa_key_stats_by_shard: the key's row on each shard holding it" \
	"$(r -c "SELECT string_agg(shard || ':' || running || '/' || waiting, ',' ORDER BY shard) FROM awa_key_stats_by_shard('lim:%')")" "0:1/1,1:1/1"
expect "awa_set_key_limit NULL removes the rule on every shard" \
	"$(r -c "SELECT max_running FROM awa_set_key_limit('lim:%', NULL)")|$(on_shards "SELECT count(*) FROM awa.key_limits WHERE pattern = 'lim:%'")" "1|0,0,0"
expect "... and again: no shard has it (NULL)" "$(r -c "SELECT awa_set_key_limit('lim:%', NULL) IS NULL")" t
r -c "SELECT awa_drain_queue(q) FROM unnest(ARRAY['${KQ[0]}', '${KQ[1]}']) q" >/dev/null
# a group on one shard: stats from there, its finish callback enqueued there (kept by the shard's ring:
# awa.ring_group_callbacks; the table engine's awa.group_callbacks is empty)
r -c "SELECT awa_insert('member', queue => '${KQ[2]}', group_id => 'g-one') FROM generate_series(1, 3)" >/dev/null
expect "awa_group_stats through the router counts the group's jobs" \
	"$(r -c "SELECT total || ' ' || available || ' ' || unfinished FROM awa_group_stats('g-one')")" "3 3 3"
expect "awa_group_on_finish finds the group's shard: nothing enqueued yet" \
	"$(r -c "SELECT awa_group_on_finish('g-one', 'all_done', queue => '${QUEUE[0]}') IS NULL")|$(q 2 $DB -c "SELECT count(*) FROM awa.ring_group_callbacks WHERE group_id = 'g-one'")" "t|1"
got=$(r -F' ' -c "SELECT id, run_lease FROM awa_claim('${KQ[2]}', 'it', 10)")
expect "... the group's jobs claimed" "$(echo "$got" | wc -l)" 3
while read -r jid lease; do r -c "SELECT awa_complete($jid, $lease)" >/dev/null; done <<<"$got"
cbjob=$(r -c "SELECT callback_job_id FROM awa_group_stats('g-one')")
expect "... the callback enqueued on the group's shard once the group finished" \
	"$(r -c "SELECT awa_shard_of($cbjob) || ' ' || kind || ' ' || queue FROM awa_get_job($cbjob)")|$(r -c "SELECT finished_at IS NOT NULL AND completed = 3 FROM awa_group_stats('g-one')")" \
	"2 all_done ${QUEUE[0]}|t"
r -c "SELECT awa_cancel($cbjob)" >/dev/null
# a group over two shards: stats add up; a callback needs the shard key
r -c "SELECT awa_insert('member', queue => q, group_id => 'g-two') FROM unnest(ARRAY['${KQ[0]}', '${KQ[1]}', '${KQ[1]}']) q" >/dev/null
expect "awa_group_stats adds up a group over two shards" "$(r -c "SELECT total FROM awa_group_stats('g-two')")" 3
expect "awa_group_stats_by_shard: each shard's part" \
	"$(r -c "SELECT string_agg(shard || ':' || total, ',' ORDER BY shard) FROM awa_group_stats_by_shard('g-two')")" "0:1,1:2,2:0"
expect "awa_group_on_finish over two shards without a shard key: 0A000" \
	"$(r -c "\set VERBOSITY verbose" -c "SELECT awa_group_on_finish('g-two', 'done')" 2>&1 | grep -c '^ERROR:  0A000')" 1
expect "... with one: on the key's shard" \
	"$(r -c "SELECT awa_group_on_finish('g-two', 'done', shard_key => '${KQ[1]}') IS NULL")|$(on_shards "SELECT count(*) FROM awa.ring_group_callbacks WHERE group_id = 'g-two'")" "t|0,1,0"
expect "awa_group_stats of a NULL group: the shard's 22004" \
	"$(r -c "\set VERBOSITY verbose" -c "SELECT awa_group_stats(NULL)" 2>&1 | grep -c '^ERROR:  22004')" 1
r -c "SELECT awa_drain_queue(q) FROM unnest(ARRAY['${KQ[0]}', '${KQ[1]}']) q" >/dev/null
# dependencies by id: on the shard in the id
child=$(r -c "SELECT id FROM awa_insert('child', queue => '${QUEUE[2]}', after => ARRAY[$parent]::bigint[])")
expect "awa_parent_results by id" "$(r -c "SELECT string_agg(parent_id::text, ',') FROM awa_parent_results($child)")" "$parent"
expect "awa_dependents by id" \
	"$(r -c "SELECT count(*) FILTER (WHERE dependent_id = $child) || '/' || count(*) FROM awa_dependents($parent)")" "1/2"

# privileges: the shards decide (PL/Proxy connects as the caller)
for i in $(seq 0 $NSHARDS); do
	q $i postgres -c "CREATE ROLE it_producer LOGIN IN ROLE awa_producer" >/dev/null || fail "CREATE ROLE on server $i"
done
as_producer() { "$PG_BIN/psql" -X -q -At -h "$DIR/s$R" -p "$(port $R)" -U it_producer -d $RDB "$@" 2>&1; }
expect "a producer inserts through the router" "$(as_producer -c "SELECT state FROM awa_insert('p', queue => '${QUEUE[1]}')")" available
expect "a producer reads key and group stats through the router" \
	"$(as_producer -c "SELECT count(*) FROM awa_key_stats()" -c "SELECT total FROM awa_group_stats('g-one')" | paste -sd' ')" "$(r -c "SELECT count(*) FROM awa_key_stats()") 3"
expect "a producer may not claim through the router (42501)" \
	"$(as_producer -c "\set VERBOSITY verbose" -c "SELECT awa_claim('${QUEUE[1]}')" | grep -c '^ERROR:  42501')" 1
r -c "GRANT EXECUTE ON FUNCTION awa_claim(text, text, integer, interval, interval, text) TO it_producer"
expect "... nor when the router lets it: the shard refuses (42501)" \
	"$(as_producer -c "\set VERBOSITY verbose" -c "SELECT awa_claim('${QUEUE[1]}')" | grep -c '^ERROR:  42501: .*REMOTE ERROR')" 1

# 3. The Python client, unchanged, against the router ----------------------------------

PYTHONPATH="$ROOT/clients/python/src" AWA_ROUTER_DSN="host=$DIR/s$R port=$(port $R) user=postgres dbname=$RDB" \
	Q0="${QUEUE[0]}" Q2="${QUEUE[2]}" $PY - <<'EOF' || fail "the Python client through the router"
import os
from awa_client import Client

with Client(os.environ["AWA_ROUTER_DSN"]) as c:
    for q, shard in ((os.environ["Q0"], 0), (os.environ["Q2"], 2)):
        job = c.insert("py", {"x": 1}, queue=q, tags=["router"])
        assert job.id >> 48 == shard, (job.id, shard)
        got = c.claim(q, worker="py", batch=100)
        mine = [j for j in got if j.id == job.id]
        assert mine and mine[0].state == "running", got
        assert c.complete(job.id, mine[0].run_lease) is True
        assert c.get_job(job.id).state == "completed"
        assert c.complete_many(got) == len(got) - 1
    many = c.insert_many([{"kind": "m1", "queue": os.environ["Q2"]}, {"kind": "m2", "queue": os.environ["Q0"]}])
    assert [j.kind for j in many] == ["m1", "m2"] and [j.id >> 48 for j in many] == [2, 0], many
    # a blocking claim: the router has no awa_claim_wait, the client falls back to awa_claim
    got = c.claim(os.environ["Q0"], worker="py", wait=1)
    assert [j.kind for j in got] == ["m2"], got
    assert c.complete(got[0].id, got[0].run_lease) is True
    # the Worker: a batch claimed, one handler succeeds, one fails for good
    from awa_client import Registry, Worker
    reg = Registry()
    reg.register("w_ok", lambda job: None)
    def boom(job):
        raise RuntimeError("boom")
    reg.register("w_fail", boom)
    ok_job = c.insert("w_ok", queue="py_worker")
    bad_job = c.insert("w_fail", queue="py_worker", max_attempts=1)
    assert Worker(os.environ["AWA_ROUTER_DSN"], queue="py_worker", registry=reg).run_once() == 2
    states = (c.get_job(ok_job.id).state, c.get_job(bad_job.id).state)
    assert states == ("completed", "failed"), (states, c.get_job(bad_job.id))
    stats = {s.queue: s for s in c.queue_stats()}
    assert stats[os.environ["Q0"]].completed_last_hour >= 1, stats
print("ok - python client: insert, claim, complete, insert_many, blocking claim, Worker, stats through the router")
EOF
PASSED=$((PASSED + 1))

echo "sharding: $PASSED checks passed ($(( $(date +%s%3N) - START )) ms)"
