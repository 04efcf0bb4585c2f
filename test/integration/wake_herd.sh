#!/usr/bin/env bash
# Blocked claimers: a new job wakes one or few of them, not all; no due job
# is left while they sleep (bursts, a batch insert reported as one, a
# rolled-back claim, a scheduled job, a queue at its limit); claimers ended
# by pg_terminate_backend withdraw from shared memory.  See
# test/integration/python/wake_herd.py.  Needs PGHOST/PGPORT/PGUSER of a
# running server with awa preloaded.
set -uo pipefail
PSQL="${PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -At -v ON_ERROR_STOP=1"
DB=awa_wake_herd
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || { echo "FAIL: create database"; exit 1; }
trap '$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1' EXIT
timeout 180 /usr/bin/python3 "$(dirname "$0")/python/wake_herd.py" \
	"host=${PGHOST:-/var/run/postgresql} port=${PGPORT:-5432} user=${PGUSER:-postgres} dbname=$DB"
