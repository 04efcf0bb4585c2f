#!/usr/bin/env bash
# Fuzz test: thousands of generated calls to every awa_* function (found in
# pg_proc at run time) with random, boundary and wrong-typed values, mixed
# with valid calls that move jobs through their states.  Fails if the server
# crashes or restarts, a call hangs past statement_timeout, an error has no
# SQLSTATE or is internal (class XX / 58), or the invariants of awa.jobs and
# awa_queue_stats() do not hold afterwards.  See test/fuzz/fuzz.py.
# Needs PGHOST/PGPORT/PGUSER of a running server with awa preloaded.
#   FUZZ_CALLS (default 5000), FUZZ_SEED (default random; printed to replay).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: it sees python3-psycopg
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER
DB=awa_fuzz
PSQL="$PG_BIN/psql -X -q -At -v ON_ERROR_STOP=1"
fail() { echo "FAIL: fuzz: $*"; exit 1; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" || fail "create database $DB"
trap '$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1' EXIT
$PSQL -d $DB -c "CREATE EXTENSION awa" || fail "CREATE EXTENSION awa"

timeout 600 "$PY" "$ROOT/test/fuzz/fuzz.py" "$DB"
rc=$?
[ $rc -eq 0 ] || fail "see the problems listed above (exit $rc)"
# the server is still up and answers
$PSQL -d postgres -c "SELECT 1" >/dev/null || fail "server not answering after the run"
echo "ok - fuzz"
