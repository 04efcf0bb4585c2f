#!/usr/bin/env bash
# The Python worker when its bookkeeping calls fail (test/integration/python/awa_worker_faults.py),
# against a running PostgreSQL with awa preloaded (PGHOST/PGPORT/PGUSER exported by scripts/test.sh):
# a complete/fail/heartbeat that the server rejects every time is retried a bounded number of times,
# then that job is given up (logged; awa_rescue takes it back) and the others go on; a lost
# connection is retried, not given up; stop() returns in bounded time even with the database gone;
# an exception text with a NUL byte is recorded; the worker's Prometheus endpoint (--metrics-port) and
# JSON logs (--log-format json) report each job's outcome.  Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: it sees python3-psycopg and python3-psycopg2
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER

DB=awa_worker_faults_it
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true' EXIT
psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -d "$DB" -c "CREATE EXTENSION awa"

export PYTHONPATH="$ROOT/clients/python:$ROOT/test/integration/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export AWA_FAULTS_DSN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB"
cd "$ROOT/test/integration/python"
timeout 300 "$PY" awa_worker_faults.py "$@"
