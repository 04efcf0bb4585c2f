#!/usr/bin/env bash
# A shard's primary dies under load and its synchronous standby takes over
# (docs/sharding.md), on this machine:
#  1. shard 0: a primary and a synchronous standby (pg_basebackup -R); shard 1:
#     a primary; a router whose partition 0 is the multi-host connection string
#     "both servers of shard 0, target_session_attrs=read-write"; the awa
#     maintenance worker runs on every shard server (private ports:
#     AWA_FAILOVER_PORT, default PGPORT + 14, and the three after it);
#  2. a Python load through the router (awa_client, unchanged) inserts, claims
#     and completes jobs on both shards without pause; three jobs of shard 0
#     are claimed by a worker that dies with the primary;
#  3. shard 0's primary is killed (pg_ctl -m immediate) and its standby
#     promoted while the load runs; the load goes on through the router;
#  4. then: every insert that returned exists exactly once, on its shard;
#     every completion that returned true is still completed; the dead
#     worker's jobs are rescued by the maintenance worker of the new primary
#     and finish; that worker runs there (awa_health_check).
# Stops every server it started, whatever happens.  Needs root (initdb as
# postgres), PL/Proxy and awa installed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/scripts/lib.sh"
BASE=${AWA_FAILOVER_PORT:-$(( ${PGPORT:-54329} + 14 ))}
DIR=$(mktemp -d /tmp/awa-failover.XXXXXX)
chmod 755 "$DIR"
DB=awa_shard
RDB=awa_router
PY=/usr/bin/python3
START=$(date +%s%3N)
PASSED=0
LOAD_PID=

fail() { echo "FAIL: sharding_failover: $*"; exit 1; }
ok() { echo "ok - $* [$(( $(date +%s%3N) - START )) ms]"; PASSED=$((PASSED + 1)); }
# servers: p0 (shard 0 primary), s0 (its standby), p1 (shard 1), router
SERVERS=(p0 s0 p1 router)
cleanup() {
	local s
	[ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
	for s in "${SERVERS[@]}"; do awa_cluster_stop "$DIR/$s"; done
	rm -rf "$DIR"
}
trap cleanup EXIT
port() { case $1 in p0) echo $BASE;; s0) echo $((BASE + 1));; p1) echo $((BASE + 2));; router) echo $((BASE + 3));; esac; }
q() { local s=$1 db=$2; shift 2; "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR/$s" -p "$(port "$s")" -U postgres -d "$db" "$@"; }
r() { q router $RDB "$@"; }
expect() { [ "$2" = "$3" ] && ok "$1" || fail "$1: got '$2', want '$3'"; }

# 1. Servers ----------------------------------------------------------------------

log "shard 0 (primary + synchronous standby), shard 1, router on ports $BASE..$((BASE + 3)) in $DIR"
SHARD_OPTS="fsync=off awa.databases=$DB awa.maintenance_interval=200 max_connections=40"
(awa_cluster_start "$DIR/p0" "$(port p0)" $SHARD_OPTS) || fail "p0 did not start"
(awa_cluster_start "$DIR/p1" "$(port p1)" $SHARD_OPTS) || fail "p1 did not start"
(awa_cluster_start "$DIR/router" "$(port router)" fsync=off awa.databases=) || fail "router did not start"
for s in p0 p1; do
	q $s postgres -c "CREATE DATABASE $DB" && q $s $DB -c "CREATE EXTENSION awa" || fail "awa on $s"
done
q p0 $DB -c "SELECT awa_shard_configure(0)" >/dev/null && q p1 $DB -c "SELECT awa_shard_configure(1)" >/dev/null \
	|| fail "awa_shard_configure"
mkdir -p "$DIR/s0" && chown postgres:postgres "$DIR/s0" && chmod 700 "$DIR/s0"
su postgres -c "$PG_BIN/pg_basebackup -D $DIR/s0/data -h $DIR/p0 -p $(port p0) -U postgres -R -X stream --checkpoint=fast" \
	|| fail "pg_basebackup"
(awa_cluster_start "$DIR/s0" "$(port s0)" $SHARD_OPTS) || fail "s0 did not start"
# commits on shard 0 wait for the standby from now on (the standby, once promoted, waits for nobody)
q p0 postgres -c "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 50); do
	[ "$(q p0 postgres -c "SELECT sync_state FROM pg_stat_replication")" = sync ] && break; sleep 0.1
done
expect "shard 0's standby replicates synchronously" "$(q p0 postgres -c "SELECT sync_state FROM pg_stat_replication")" sync

P0="host=$DIR/p0,$DIR/s0 port=$(port p0),$(port s0) dbname=$DB target_session_attrs=read-write connect_timeout=2"
P1="host=$DIR/p1 port=$(port p1) dbname=$DB"
q router postgres -c "CREATE DATABASE $RDB" || fail "router database"
r -c "CREATE EXTENSION awa_router CASCADE" \
	-c "CREATE SERVER awa_shards FOREIGN DATA WRAPPER plproxy OPTIONS (modular_mapping '1', p0 '$P0', p1 '$P1')" \
	-c "CREATE USER MAPPING FOR PUBLIC SERVER awa_shards" >/dev/null 2>&1 || fail "awa_router"
expect "the router reaches shards 0 and 1" "$(r -c "SELECT string_agg(s::text, ',') FROM awa_shards() s")" "0,1"
declare -a QUEUE
for n in $(seq 0 100); do
	s=$(r -c "SELECT awa_queue_shard('f$n')")
	[ -z "${QUEUE[$s]:-}" ] && QUEUE[$s]=f$n
	[ -n "${QUEUE[0]:-}" ] && [ -n "${QUEUE[1]:-}" ] && break
done

# 2. Load -------------------------------------------------------------------------

cat > "$DIR/load.py" <<'EOF'
"""Insert, claim and complete through the router until STOP exists; write what returned to OUT."""
import json, os, time
from awa_client import Client

dsn, stop, out = os.environ["DSN"], os.environ["STOP"], os.environ["OUT"]
queues = [os.environ["Q0"], os.environ["Q1"]]
inserted, completed, errors, n, c = [], [], 0, 0, None
while not os.path.exists(stop):
    try:
        if c is None:
            c = Client(dsn)
        n += 1
        q = queues[n % 2]
        job = c.insert("load", {"n": n}, queue=q)
        inserted.append(job.id)
        for j in c.claim(q, worker="load", batch=2, lease="2 seconds"):
            if c.complete(j.id, j.run_lease):
                completed.append(j.id)
    except Exception:
        errors += 1
        if c is not None:
            try:
                c.close()
            except Exception:
                pass
        c = None
        time.sleep(0.05)
with open(out, "w") as f:
    json.dump({"inserted": inserted, "completed": completed, "errors": errors, "calls": n}, f)
EOF
export PYTHONPATH="$ROOT/clients/python/src"
DSN="host=$DIR/router port=$(port router) user=postgres dbname=$RDB" STOP="$DIR/stop" OUT="$DIR/load.json" \
	Q0="${QUEUE[0]}" Q1="${QUEUE[1]}" $PY "$DIR/load.py" &
LOAD_PID=$!
sleep 2
# a worker that dies with the primary: three jobs of shard 0 claimed, never finished
# (a queue of their own, placed on shard 0 by a shard key, that the load does not drain)
r -c "SELECT awa_insert('doomed', queue => 'doomed', shard_key => '${QUEUE[0]}') FROM generate_series(1, 3)" >/dev/null
dead=$(r -c "SELECT string_agg(id::text, ',') FROM awa_claim('doomed', 'doomed', 3, lease => '5 seconds', shard_key => '${QUEUE[0]}')")
expect "the doomed worker holds three jobs of shard 0" "$(echo "$dead" | tr ',' '\n' | grep -c .)" 3

# 3. Failover ---------------------------------------------------------------------

sleep 1
before=$(q p0 $DB -c "SELECT count(*) FROM awa.jobs")
expect "the doomed worker's jobs are running when the primary dies" \
	"$(q p0 $DB -c "SELECT count(*) FROM awa.jobs WHERE id IN ($dead) AND state = 'running'")" 3
su postgres -c "$PG_BIN/pg_ctl -D $DIR/p0/data -m immediate stop" >/dev/null || fail "killing p0"
log "shard 0's primary killed with $before jobs; promoting its standby"
sleep 0.5
su postgres -c "$PG_BIN/pg_ctl -D $DIR/s0/data -w promote" >/dev/null || fail "promoting s0"
expect "the standby is a primary now" "$(q s0 postgres -c "SELECT pg_is_in_recovery()")" f
promoted_at=$(q s0 postgres -c "SELECT now()")
sleep 4
touch "$DIR/stop"
wait "$LOAD_PID" || fail "the load script failed"
LOAD_PID=

# 4. Checks -----------------------------------------------------------------------

read -r ninserted ncompleted nerrors < <($PY -c "
import json; d = json.load(open('$DIR/load.json')); print(len(d['inserted']), len(d['completed']), d['errors'])")
echo "# load: $ninserted inserts and $ncompleted completions returned, $nerrors calls failed around the failover"
[ "$ninserted" -gt 0 ] || fail "no insert of the load returned"
late=$(q s0 $DB -c "SELECT count(*) FROM awa.jobs WHERE created_at > '$promoted_at'")
[ "$late" -gt 0 ] && ok "inserts reached shard 0's new primary through the router ($late)" \
	|| fail "no insert reached the new primary"
[ "$(q p1 $DB -c "SELECT count(*) FROM awa.jobs WHERE kind = 'load'")" -gt 0 ] && ok "shard 1 took its share" \
	|| fail "no load job on shard 1"

# every insert that returned exists once, every completion that returned true is kept
for s in s0 p1; do
	q $s $DB -F' ' -c "SELECT id, state, args ->> 'n' FROM awa.jobs WHERE kind = 'load'"
done > "$DIR/jobs.txt"
$PY - "$DIR/load.json" "$DIR/jobs.txt" <<'EOF' || fail "inserts or completions lost"
import collections, json, sys
d = json.load(open(sys.argv[1]))
state, per_n = {}, collections.Counter()
for line in open(sys.argv[2]):
    i, st, n = line.split()
    state[int(i)] = st
    per_n[n] += 1
missing = [i for i in d["inserted"] if i not in state]
assert not missing, "inserts that returned but are gone: %s" % missing[:10]
twice = [n for n, k in per_n.items() if k > 1]
assert not twice, "jobs inserted twice: %s" % twice[:10]
lost = [i for i in d["completed"] if state.get(i) != "completed"]
assert not lost, "completions that returned true but are not completed: %s" % lost[:10]
print("ok - every insert that returned exists once (%d), every completion kept (%d)"
      % (len(d["inserted"]), len(d["completed"])))
EOF
PASSED=$((PASSED + 1))

# the dead worker's jobs: rescued by the new primary's maintenance worker, then finished
for _ in $(seq 200); do
	[ "$(q s0 $DB -c "SELECT count(*) FROM awa.jobs WHERE id IN ($dead) AND state = 'running'")" = 0 ] && break
	sleep 0.1
done
expect "the new primary's maintenance rescued the dead worker's jobs" \
	"$(q s0 $DB -c "SELECT count(*) FROM awa.jobs WHERE id IN ($dead) AND state IN ('retryable', 'available')
		AND (errors[cardinality(errors)] ->> 'at')::timestamptz > '$promoted_at'")" 3
expect "... its maintenance worker runs there" \
	"$(q s0 $DB -c "SELECT worker_running AND maintained_by = 'background worker' FROM awa_health_check()")" t
for _ in $(seq 150); do
	r -c "SELECT awa_complete(id, run_lease) FROM awa_claim('doomed', 'drain', 3, shard_key => '${QUEUE[0]}')" >/dev/null 2>&1
	[ "$(q s0 $DB -c "SELECT count(*) FROM awa.jobs WHERE id IN ($dead) AND state <> 'completed'")" = 0 ] && break
	sleep 0.2
done
expect "... and they finish through the router" \
	"$(q s0 $DB -c "SELECT count(*) FROM awa.jobs WHERE id IN ($dead) AND state = 'completed' AND attempt = 2")" 3

echo "sharding_failover: $PASSED checks passed ($(( $(date +%s%3N) - START )) ms)"
