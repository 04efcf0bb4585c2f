#!/usr/bin/env bash
# Who maintains each database, end to end, on servers of its own:
# A. awa preloaded (awa.databases left at its default '*', max_worker_processes
#    = 5: the launcher, PostgreSQL's logical replication launcher and three
#    workers; awa.maintenance_interval = 200ms), no client calling awa_maintain():
#    1. m1 (given awa before the server started) and m2, m3 (created after):
#       each gets a background worker that promotes a due scheduled job within
#       seconds; awa_health_check() says "background worker", healthy;
#    2. DROP EXTENSION awa in m2: its worker leaves within seconds; CREATE
#       EXTENSION awa again: a worker is back within seconds;
#    3. m4 when no worker slot is free: nobody maintains it, the health check
#       says why (max_worker_processes) and the log says so once;
#    4. awa.databases = 'm1,m2,m3': m4 is not listed (nobody, "not in
#       awa.databases"); once awa_maintain() runs there: "awa_maintain() calls";
#    5. a hot standby of it: "primary (hot standby)", healthy; a write call is
#       refused with a short 25006 that names the function.
# B. awa not preloaded, pg_cron preloaded: nobody maintains c1 (unhealthy,
#    the reason names pg_cron); the README's pg_cron recipe (CALL
#    awa_maintain_for every minute) makes it "awa_maintain() calls" and
#    healthy, and promotes a scheduled job.  Waits for pg_cron's next minute.
# Run as root (initdb runs as postgres).  Ports: AWA_MAINTAINED_PORT and the
# next two (default 5490-5492).
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

PORT=${AWA_MAINTAINED_PORT:-5490}
SBY_PORT=$((PORT + 1))
CRON_PORT=$((PORT + 2))
DIR=$(mktemp -d /tmp/awa-maint.XXXXXX)
SBY=$(mktemp -d /tmp/awa-maint-sby.XXXXXX)
CRON=$(mktemp -d /tmp/awa-maint-cron.XXXXXX)
START=$SECONDS

cleanup() {
	awa_cluster_stop "$SBY"; awa_cluster_stop "$CRON"; awa_cluster_stop "$DIR"
	rm -rf "$DIR" "$SBY" "$CRON"
}
trap cleanup EXIT

LOG=$DIR/log
fail() {
	echo "FAIL: maintained: $*" >&2
	echo "---- last lines of the server log" >&2
	tail -20 "$LOG" >&2 || true
	exit 1
}
pass() { echo "ok - $*"; }

# q DB SQL [PORT [HOST]]: one value, unaligned.
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "${4:-$DIR}" -p "${3:-$PORT}" -U postgres -d "$1" -c "$2"; }
# wait_for WHAT DB SQL [TIMEOUT [PORT [HOST]]]: poll until SQL returns t.
wait_for() {
	local what=$1 db=$2 sql=$3 timeout=${4:-15} port=${5:-$PORT} host=${6:-$DIR}
	local deadline=$((SECONDS + timeout)) t0=$SECONDS
	while [ $SECONDS -lt $deadline ]; do
		[ "$(q "$db" "$sql" "$port" "$host" 2>/dev/null)" = t ] && { pass "$what ($((SECONDS - t0)) s)"; return 0; }
		sleep 0.2
	done
	fail "$what (not true after ${timeout} s: $sql)"
}
health() { q "$1" "SELECT maintained_by || '|' || healthy || '|' || coalesce(reason, '') FROM awa_health_check()" "${2:-$PORT}" "${3:-$DIR}"; }
promoted_in() {	# promoted_in DB: a job scheduled 300 ms ahead becomes available without awa_maintain()
	q "$1" "SELECT awa_insert('promote_me', run_at => clock_timestamp() + interval '300 ms')" >/dev/null || fail "awa_insert in $1"
	wait_for "$1: a due scheduled job promoted by its maintenance worker" "$1" \
		"SELECT bool_and(state = 'available') FROM awa.jobs WHERE kind = 'promote_me'"
}
workers() { q postgres "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname IS NOT NULL"; }

# ---- A. preloaded -----------------------------------------------------------------------
OPTS=(fsync=off max_worker_processes=5 awa.maintenance_interval=200ms wal_level=replica)
awa_cluster_start "$DIR" "$PORT" "${OPTS[@]}" || fail "could not start PostgreSQL on port $PORT"
q postgres "CREATE DATABASE m1" && q m1 "CREATE EXTENSION awa" || fail "m1"
awa_cluster_stop "$DIR"
awa_cluster_start "$DIR" "$PORT" "${OPTS[@]}" || fail "could not restart PostgreSQL"

# 1. every database with awa, one there at start and two created after it
promoted_in m1
for db in m2 m3; do
	q postgres "CREATE DATABASE $db" && q $db "CREATE EXTENSION awa" || fail "$db"
	promoted_in $db
done
for db in m1 m2 m3; do
	got=$(health $db)
	[ "$got" = "background worker|true|" ] || fail "$db: health check says '$got'"
done
[ "$(q m1 "SELECT worker_running AND worker_pid > 0 AND worker_last_run > now() - interval '5 s' FROM awa_health_check()")" = t ] \
	|| fail "m1: worker_running, worker_pid, worker_last_run"
pass "m1, m2, m3: maintained by a background worker each, healthy ($(workers))"

# 2. DROP EXTENSION / CREATE EXTENSION
q m2 "DROP EXTENSION awa" || fail "DROP EXTENSION"
wait_for "m2: its worker leaves after DROP EXTENSION awa" postgres \
	"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = 'm2')"
q m2 "CREATE EXTENSION awa" || fail "CREATE EXTENSION again"
wait_for "m2: a worker is back after CREATE EXTENSION awa" postgres \
	"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = 'm2')"

# 3. no worker slot free: both launchers + 3 workers = max_worker_processes
q postgres "CREATE DATABASE m4" && q m4 "CREATE EXTENSION awa" || fail "m4"
wait_for "m4: the health check says nobody maintains it, for want of a worker slot" m4 \
	"SELECT maintained_by = 'nobody' AND NOT healthy AND reason LIKE '%no background worker slot was free%max_worker_processes%' FROM awa_health_check()"
[ "$(grep -c 'no background worker slot is free for database "m4"' "$LOG")" = 1 ] \
	|| fail "the log does not say once that m4 got no worker slot"
pass "m4: no worker slot, logged once"

# 4. an allow-list leaves m4 out; rounds from awa_maintain() calls count
q postgres "ALTER SYSTEM SET awa.databases = 'm1,m2,m3'" && q postgres "SELECT pg_reload_conf()" >/dev/null || fail "reload"
wait_for "m4: not in awa.databases, nobody maintains it" m4 \
	"SELECT maintained_by = 'nobody' AND reason LIKE '%not in awa.databases%' FROM awa_health_check()"
q m4 "SELECT * FROM awa_maintain()" >/dev/null || fail "awa_maintain in m4"
got=$(health m4)
[ "$got" = "awa_maintain() calls|true|" ] || fail "m4 after awa_maintain(): '$got'"
pass "m4: maintained by awa_maintain() calls once a round ran there"

# 5. hot standby
chown postgres:postgres "$SBY"; chmod 700 "$SBY"
su postgres -c "$PG_BIN/pg_basebackup -h $DIR -p $PORT -U postgres -D $SBY/data -R -X stream -c fast" \
	|| fail "pg_basebackup"
awa_cluster_start "$SBY" "$SBY_PORT" fsync=off || fail "could not start the standby"
wait_for "standby: in recovery" m1 "SELECT pg_is_in_recovery()" 30 "$SBY_PORT" "$SBY"
got=$(health m1 "$SBY_PORT" "$SBY")
[ "$got" = "primary (hot standby)|true|" ] || fail "standby: health check says '$got'"
err=$("$PG_BIN/psql" -X -q -At -h "$SBY" -p "$SBY_PORT" -U postgres -d m1 -c "SELECT awa_insert('x')" 2>&1)
[[ $err == *"awa_insert cannot run on a hot standby"* ]] && [ ${#err} -lt 300 ] \
	|| fail "standby: a write call gave: $err"
pass "standby: maintained by its primary, healthy; awa_insert refused with a short error (${#err} bytes)"
awa_cluster_stop "$SBY"

# ---- B. not preloaded, pg_cron ----------------------------------------------------------------
LOG=$CRON/log
awa_cluster_start "$CRON" "$CRON_PORT" fsync=off shared_preload_libraries=pg_cron cron.database_name=postgres \
	"cron.host=$CRON" || fail "could not start the pg_cron server"
q postgres "CREATE DATABASE c1" "$CRON_PORT" "$CRON" && q c1 "CREATE EXTENSION awa" "$CRON_PORT" "$CRON" || fail "c1"
got=$(health c1 "$CRON_PORT" "$CRON")
[[ $got == "nobody|false|"*"schedule awa_maintain() with pg_cron"* ]] || fail "c1 without rounds: '$got'"
pass "c1 (no preload, no rounds): nobody maintains it, the reason names pg_cron"
q c1 "SELECT awa_insert('promote_me', run_at => clock_timestamp() + interval '1 second')" "$CRON_PORT" "$CRON" >/dev/null
# the README's recipe, as written there
q postgres "CREATE EXTENSION pg_cron" "$CRON_PORT" "$CRON" || fail "CREATE EXTENSION pg_cron"
q postgres "SELECT cron.schedule_in_database('awa-maintenance', '* * * * *', 'CALL awa_maintain_for()', 'c1')" \
	"$CRON_PORT" "$CRON" >/dev/null || fail "cron.schedule_in_database"
wait_for "c1: maintained by awa_maintain() calls from pg_cron, healthy" c1 \
	"SELECT maintained_by = 'awa_maintain() calls' AND healthy FROM awa_health_check()" 75 "$CRON_PORT" "$CRON"
wait_for "c1: the scheduled job promoted" c1 \
	"SELECT bool_and(state = 'available') FROM awa.jobs WHERE kind = 'promote_me'" 5 "$CRON_PORT" "$CRON"
echo "maintained: all checks passed in $((SECONDS - START)) s"
