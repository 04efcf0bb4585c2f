#!/usr/bin/env bash
# The awa maintenance background worker, end to end, with no client ever
# calling awa_maintain(): it starts its own PostgreSQL on port 5497 with
# shared_preload_libraries=awa, then sets awa.databases=awa_bgw and
# awa.maintenance_interval=200ms with ALTER SYSTEM + reload, and checks that
# the worker
#   - follows awa.databases on SIGHUP (from the default '*' to a list without
#     awa_bgw and back),
#   - shows in pg_stat_activity as 'awa maintenance' (launcher + worker),
#   - promotes a due scheduled job, rescues a stale running job and fires a
#     periodic job whose next_fire_at was moved into the past,
#   - applies awa.maintenance_interval on SIGHUP (pg_ctl reload): at 1h no
#     round runs, back at 100ms rounds run again; same pids throughout,
#   - skips a job it cannot promote (a user trigger raises for it): the
#     others are promoted, a WARNING names database, step and error once,
#     awa_health_check() reports it, later rounds work, and it is promoted
#     by a retry once the trigger is gone,
#   - is started again after pg_terminate_backend (SIGTERM) of the worker
#     and of the launcher (the postmaster restarts the launcher after 1 s,
#     the launcher restarts the worker),
#   - is started again after kill -9 of the worker, which makes the
#     postmaster reset every backend (crash recovery): we wait for the
#     server to accept connections again,
#   - steps aside so DROP DATABASE of its database succeeds.
# Every wait polls with a timeout; the whole test takes about 15-20 s.
# Run as root (initdb runs as postgres).  Exits non-zero on any failure.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

PORT=${AWA_BGWORKER_PORT:-5497}
DIR=$(mktemp -d /tmp/awa-bgw.XXXXXX)
START=$SECONDS

cleanup() {
	awa_cluster_stop "$DIR"
	[ -n "${AWA_KEEP_LOG:-}" ] && cp "$DIR/log" "$AWA_KEEP_LOG"
	rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	echo "---- last lines of the server log" >&2
	tail -30 "$DIR/log" >&2 || true
	exit 1
}
pass() { echo "ok - $*"; }

# q SQL [DB]: one value, unaligned, errors to stderr.
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "${2:-awa_bgw}" -c "$1"; }

# wait_for DESCRIPTION SQL [TIMEOUT_S [DB]]: poll until SQL returns t.
wait_for() {
	local what=$1 sql=$2 timeout=${3:-10} db=${4:-awa_bgw}
	local deadline=$((SECONDS + timeout))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(q "$sql" "$db" 2>/dev/null)" = t ] && { pass "$what"; return 0; }
		sleep 0.1
	done
	fail "$what (not true after ${timeout} s: $sql)"
}

launcher_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname IS NULL" postgres; }
worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = 'awa_bgw'" postgres; }

# reload: settings given with -c cannot be changed by a reload, so the awa.*
# settings go to postgresql.auto.conf (ALTER SYSTEM) instead.
reload() { su postgres -c "$PG_BIN/pg_ctl -D $DIR/data reload" >/dev/null || fail "pg_ctl reload"; }

awa_cluster_start "$DIR" "$PORT" fsync=off || fail "could not start PostgreSQL on port $PORT"
q "CREATE DATABASE awa_bgw" postgres || fail "CREATE DATABASE"
q "CREATE EXTENSION awa" || fail "CREATE EXTENSION"

# 0. default awa.databases = '*': a worker runs in awa_bgw (which has awa), none
# stays in postgres (which has not); an allow-list without awa_bgw stops it,
# one with it brings it back (SIGHUP)
wait_for "with the default awa.databases a worker runs in awa_bgw, none in postgres" \
	"SELECT count(*) FILTER (WHERE datname = 'awa_bgw') = 1 AND count(*) FILTER (WHERE datname = 'postgres') = 0
	   FROM pg_stat_activity WHERE backend_type = 'awa maintenance'" 10 postgres
q "ALTER SYSTEM SET awa.databases = 'postgres'" postgres || fail "ALTER SYSTEM"
reload
wait_for "awa.databases = 'postgres' (SIGHUP): the worker of awa_bgw stops" \
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND datname = 'awa_bgw'" 10 postgres
q "ALTER SYSTEM SET awa.databases = 'awa_bgw'" postgres || fail "ALTER SYSTEM"
q "ALTER SYSTEM SET awa.maintenance_interval = '200ms'" postgres || fail "ALTER SYSTEM"
reload

# 1. visible in pg_stat_activity
wait_for "after SIGHUP: launcher and a worker in awa_bgw (none in postgres) show as 'awa maintenance'" \
	"SELECT count(*) FILTER (WHERE datname IS NULL) = 1 AND count(*) FILTER (WHERE datname = 'awa_bgw') = 1
	    AND count(*) FILTER (WHERE datname = 'postgres') = 0
	   FROM pg_stat_activity WHERE backend_type = 'awa maintenance' AND application_name = 'awa maintenance'" 10 postgres
WORKER=$(worker_pid)
LAUNCHER=$(launcher_pid)

# 2. promotion, rescue, periodic job
q "SELECT awa_insert('promote_me', run_at => now() + interval '1 second')" >/dev/null || fail "awa_insert"
q "SELECT awa_insert('rescue_me')" >/dev/null || fail "awa_insert"
q "UPDATE awa.jobs SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour',
	heartbeat_at = now() - interval '1 hour' WHERE kind = 'rescue_me'" || fail "back-dating a heartbeat"
q "SELECT awa_schedule('bgw_tick', '* * * * *', 'tick')" >/dev/null || fail "awa_schedule"
q "UPDATE awa.cron_jobs SET next_fire_at = now() - interval '1 minute' WHERE name = 'bgw_tick'" || fail "back-dating next_fire_at"

wait_for "worker promotes a scheduled job once its run_at has come" \
	"SELECT state = 'available' FROM awa.jobs WHERE kind = 'promote_me'" 10
wait_for "worker rescues a running job with a stale heartbeat" \
	"SELECT state IN ('retryable', 'available') AND errors[1]->>'error' = 'heartbeat stale' FROM awa.jobs WHERE kind = 'rescue_me'" 10
wait_for "worker fires a due periodic job once and moves next_fire_at past now" \
	"SELECT (SELECT count(*) FROM awa.jobs WHERE kind = 'tick') = 1
	    AND (SELECT next_fire_at > now() FROM awa.cron_jobs WHERE name = 'bgw_tick')" 10
[ "$(q "SELECT metadata->>'cron' FROM awa.jobs WHERE kind = 'tick'")" = bgw_tick ] \
	|| fail "the periodic job's metadata names its schedule"
pass "the periodic job's metadata names its schedule"

# 3. SIGHUP: the new interval applies to the running processes
q "ALTER SYSTEM SET awa.maintenance_interval = '1h'" postgres || fail "ALTER SYSTEM"
reload
sleep 0.5
q "SELECT awa_insert('after_reload', run_at => now() + interval '100 milliseconds')" >/dev/null || fail "awa_insert"
sleep 1.5
[ "$(q "SELECT state FROM awa.jobs WHERE kind = 'after_reload'")" = scheduled ] \
	|| fail "awa.maintenance_interval = 1h was not applied by SIGHUP (a round ran)"
pass "SIGHUP applies awa.maintenance_interval = 1h (no round for 1.5 s)"
q "ALTER SYSTEM SET awa.maintenance_interval = '100ms'" postgres || fail "ALTER SYSTEM"
reload
wait_for "SIGHUP back to 100ms: rounds run again" \
	"SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_reload'" 10
[ "$(worker_pid)" = "$WORKER" ] && [ "$(launcher_pid)" = "$LAUNCHER" ] \
	|| fail "worker or launcher changed pid after SIGHUP"
pass "worker and launcher keep their pids across SIGHUP"

# 3b. a job the round cannot process (a user trigger raises for it) is
# skipped: the other jobs are still promoted, a WARNING names the database,
# the step and the error (once, not every round), the health check reports
# it, later rounds work, and once the cause is gone its retry promotes it
q "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'poisoned round'; END\$\$" \
	|| fail "CREATE FUNCTION"
q "CREATE TRIGGER poison BEFORE UPDATE ON awa.jobs FOR EACH ROW WHEN (OLD.kind = 'poison') EXECUTE FUNCTION poison()" \
	|| fail "CREATE TRIGGER"
q "SELECT awa_insert('poison', run_at => now() + interval '100 milliseconds')" >/dev/null || fail "awa_insert"
q "SELECT awa_insert('beside_poison', run_at => now() + interval '100 milliseconds')" >/dev/null || fail "awa_insert"
POISON=$(q "SELECT id FROM awa.jobs WHERE kind = 'poison'")
warning="WARNING:  awa maintenance in database \"awa_bgw\": step \"promote\" skipped job $POISON: poisoned round"
deadline=$((SECONDS + 10))
until grep -qF "$warning" "$DIR/log"; do
	[ $SECONDS -lt $deadline ] || fail "a job the round could not promote was not logged as: $warning"
	sleep 0.1
done
pass "a job the round cannot promote is logged with a WARNING naming database, step and error"
wait_for "the job beside it is promoted all the same" \
	"SELECT state = 'available' FROM awa.jobs WHERE kind = 'beside_poison'" 10
wait_for "the health check reports the skipped job and its error" \
	"SELECT NOT healthy AND reason LIKE '%maintenance step \"promote\" skipped 1 job(s) (first job $POISON: poisoned round)%'
	   FROM awa_health_check()" 10
q "SELECT awa_insert('after_poison', run_at => now() + interval '100 milliseconds')" >/dev/null || fail "awa_insert"
wait_for "later rounds still promote other jobs" \
	"SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_poison'" 10
sleep 1.5
[ "$(grep -cF "$warning" "$DIR/log")" = 1 ] || fail "the skipped job was logged again by later rounds"
[ "$(q "SELECT state FROM awa.jobs WHERE kind = 'poison'")" = scheduled ] || fail "the poisoned job moved"
pass "later rounds leave the skipped job alone (retried with backoff, no new WARNING)"
q "DROP TRIGGER poison ON awa.jobs" || fail "DROP TRIGGER"
wait_for "once the cause is gone, a retry promotes the skipped job" \
	"SELECT state = 'available' FROM awa.jobs WHERE kind = 'poison'" 15
wait_for "and the health check no longer reports it" \
	"SELECT coalesce(reason, '') NOT LIKE '%maintenance step%' FROM awa_health_check()" 10
[ "$(worker_pid)" = "$WORKER" ] || fail "the worker changed pid after a skipped job"
pass "the worker keeps running throughout"

# 4. SIGTERM of the worker: the launcher starts a new one
q "SELECT pg_terminate_backend($WORKER)" postgres >/dev/null || fail "pg_terminate_backend(worker)"
wait_for "launcher restarts a terminated worker" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'awa maintenance'
	   AND datname = 'awa_bgw' AND pid <> $WORKER" 15 postgres
WORKER=$(worker_pid)

# 5. SIGTERM of the launcher: the postmaster restarts it, it starts a new worker
q "SELECT pg_terminate_backend($LAUNCHER)" postgres >/dev/null || fail "pg_terminate_backend(launcher)"
wait_for "postmaster restarts a terminated launcher, which starts a new worker" \
	"SELECT count(*) FILTER (WHERE datname IS NULL AND pid <> $LAUNCHER) = 1
	    AND count(*) FILTER (WHERE datname = 'awa_bgw' AND pid <> $WORKER) = 1
	   FROM pg_stat_activity WHERE backend_type = 'awa maintenance'" 15 postgres
q "SELECT awa_insert('after_restart', run_at => now() + interval '300 milliseconds')" >/dev/null || fail "awa_insert"
wait_for "the restarted worker works" \
	"SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_restart'" 10

# 6. kill -9 of the worker: crash recovery of the whole server, then back
WORKER=$(worker_pid)
kill -9 "$WORKER" || fail "kill -9 $WORKER"
sleep 0.5
wait_for "server accepts connections again after the crash of the worker" "SELECT true" 30 postgres
wait_for "worker is running again after the crash" \
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'awa maintenance'
	   AND datname = 'awa_bgw' AND pid <> $WORKER" 15 postgres
q "SELECT awa_insert('after_crash', run_at => now() + interval '300 milliseconds')" >/dev/null || fail "awa_insert"
wait_for "the worker works after the crash" \
	"SELECT state = 'available' FROM awa.jobs WHERE kind = 'after_crash'" 10

# 7. the worker does not hold its database hostage
timeout 20 "$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE awa_bgw" || fail "DROP DATABASE while the worker runs"
pass "DROP DATABASE succeeds while the worker runs"

echo "bgworker: all checks passed in $((SECONDS - START)) s"
