#!/usr/bin/env bash
# A claimer asleep in awa_claim holds no row lock and no transaction ID
# (test/integration/python/claim_locks.py).  Needs PGHOST/PGPORT/PGUSER of a
# running server with awa preloaded.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PSQL="${PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -At -v ON_ERROR_STOP=1"
DB=awa_claim_locks
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || { echo "FAIL: claim_locks: create database"; exit 1; }
trap '$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1' EXIT
$PSQL -d $DB -c "CREATE EXTENSION awa" || { echo "FAIL: claim_locks: create extension"; exit 1; }
/usr/bin/python3 "$ROOT/test/integration/python/claim_locks.py" "dbname=$DB" "${AWA_CLAIM_LOCKS_JOBS:-100}"
