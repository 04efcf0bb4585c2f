#!/usr/bin/env bash
# Crash test: on its OWN cluster (port 5498, fsync=on), a steady insert +
# claim + complete load survives (a) SIGKILL of a worker's backend mid-batch
# (postmaster crash recovery) and (b) pg_ctl stop -m immediate mid-load and a
# restart; then every committed insert exists exactly once, no committed
# completion is lost, no completed job is claimed again, the running jobs of
# dead sessions are rescued and finished, and awa_queue_stats() equals a
# recount.  See test/crash/crash.py.  Run as root (the cluster runs as
# postgres); awa must be installed (scripts/test.sh does it).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/scripts/lib.sh"
PY=/usr/bin/python3   # Debian's python: it sees python3-psycopg
PORT=${AWA_CRASH_PORT:-5498}
DIR=$(mktemp -d /tmp/awa-crash.XXXXXX)
DB=awa_crash
fail() { echo "FAIL: crash: $*"; exit 1; }
cleanup() { awa_cluster_stop "$DIR"; rm -rf "$DIR"; }
trap cleanup EXIT
START=$(date +%s)

OPTS=(fsync=on "awa.databases=$DB" "awa.maintenance_interval=500")
awa_cluster_start "$DIR" "$PORT" "${OPTS[@]}" || fail "could not start a cluster on port $PORT"
PSQL="$PG_BIN/psql -X -q -At -v ON_ERROR_STOP=1"
$PSQL -d postgres -c "CREATE DATABASE $DB" || fail "create database"
$PSQL -d $DB -c "CREATE EXTENSION awa" || fail "CREATE EXTENSION awa"

export CRASH_DB=$DB
export CRASH_STOP_CMD="su postgres -c '$PG_BIN/pg_ctl -D $DIR/data -m immediate -w stop' >/dev/null"
export CRASH_START_CMD="source '$ROOT/scripts/lib.sh' && awa_cluster_start '$DIR' '$PORT' ${OPTS[*]}"
timeout 300 "$PY" "$ROOT/test/crash/crash.py"
rc=$?
if [ $rc -ne 0 ]; then
	echo "---- server log (last 40 lines)"; tail -40 "$DIR/log"
	fail "see above (exit $rc)"
fi
grep -q "terminated by signal 9" "$DIR/log" && grep -q "all server processes terminated; reinitializing" "$DIR/log" \
	|| fail "the SIGKILL did not make the postmaster reinitialize (scenario a did not happen)"
grep -q "database system was interrupted\|database system was not properly shut down" "$DIR/log" \
	|| fail "no crash recovery in the server log"
grep -E "terminated by signal|PANIC" "$DIR/log" | grep -v "signal 9: Killed" && fail "the server log shows a crash other than the SIGKILL the test sent"
echo "ok - crash ($(( $(date +%s) - START )) s)"
