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

# Both databases, the project's and Django's test database (awa from the shop's migration), keep their jobs
# in the default engine, the ring (docs/storage.md, "Step 5: the ring becomes the default"); the test database
# is kept until the end to check that it does.  AWA_TEST_ENGINE=table runs the same on the legacy table engine.
ENGINE=${AWA_TEST_ENGINE:-ring}
KEEP=()
case "$ENGINE" in
	ring) KEEP=(--keepdb) ;;
	table) export PGOPTIONS="-c awa.install_engine=table" ;;
	*) echo "AWA_TEST_ENGINE must be ring or table" >&2; exit 2 ;;
esac

drop_dbs
psql -d postgres -c "CREATE DATABASE $DB"
psql -d "$DB" -c "CREATE EXTENSION awa"   # the project database; Django's test database gets it from the shop migration

cd "$ROOT/examples/django"
export PGDATABASE=$DB DJANGO_SETTINGS_MODULE=shopsite.settings
export PYTHONPATH="$ROOT/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
timeout 300 "$PY" manage.py test --noinput -v 2 "${KEEP[@]}" shop
if [ "$ENGINE" = ring ]; then
	for d in "$DB" "test_$DB"; do
		[ "$(psql -d "$d" -Atc "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass")" = v ] ||
			{ echo "FAIL: awa.jobs of $d is not the ring's view" >&2; exit 1; }
	done
	echo "ok - the project's and Django's test database keep their jobs in the ring"
fi
