#!/usr/bin/env bash
# Django with awa against a running PostgreSQL with awa preloaded
# (PGHOST/PGPORT/PGUSER exported by scripts/test.sh).  Runs Django's own test
# runner on examples/django (shop: the Django snippets of clients/python/README.md:
# enqueue in the project's transaction, the awa_worker management command) with
# clients/python/src on the path.  The client and worker without Django are
# tested by clients/python/tests (test/integration/python_package.sh).
# Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: it sees python3-django, python3-psycopg, python3-psycopg2
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER

DB=awa_django_it
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
drop_dbs() {
	psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
		-c "DROP DATABASE IF EXISTS test_$DB WITH (FORCE)" 2>/dev/null || true
}
trap drop_dbs EXIT

drop_dbs
psql -d postgres -c "CREATE DATABASE $DB"
psql -d "$DB" -c "CREATE EXTENSION awa"   # the project database; Django's test database gets it from the shop migration

cd "$ROOT/examples/django"
export PGDATABASE=$DB DJANGO_SETTINGS_MODULE=shopsite.settings
export PYTHONPATH="$ROOT/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
timeout 300 "$PY" manage.py test --noinput -v 2 shop
