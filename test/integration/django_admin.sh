#!/usr/bin/env bash
# awa_django, the operator's dashboard in Django's admin, against a running PostgreSQL with awa
# preloaded (PGHOST/PGPORT/PGUSER exported by scripts/test.sh).  Runs Django's own test runner on
# examples/django with test/integration/python/awa_admin_tests.py: the test client on every page
# and action (with permission denied), and a real headless chromium (Debian's chromium,
# chromium-driver, python3-selenium; missing ones FAIL the test, nothing is skipped) that logs in,
# retries a failed job through the dashboard and checks the database; awa_history_tests.py checks
# the throughput charts (test client and browser).  Screenshots land in
# $AWA_ADMIN_OUTPUT (default: a new directory under ${TMPDIR:-/tmp}).  The databases keep their jobs in the
# default engine, the ring; AWA_TEST_ENGINE=table runs the same tests on the legacy table engine.
# Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: it sees python3-django, python3-psycopg2, python3-selenium
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER

for exe in /usr/bin/chromium /usr/bin/chromedriver; do
	[ -x "$exe" ] || { echo "FAIL: $exe is missing (apt-get install chromium chromium-driver python3-selenium)" >&2; exit 1; }
done
"$PY" -c "import selenium" || { echo "FAIL: python3-selenium is missing" >&2; exit 1; }

# The project's database and Django's test database (awa from the shop's migration) keep their jobs in the
# default engine, the ring (docs/storage.md, "Step 5: the ring becomes the default"); the test database is kept
# until the end to check that it does.  Reads of the ring's view run without JIT whatever the server's setting
# (src/engine_jit.c), so jit is left as the server has it.
ENGINE=${AWA_TEST_ENGINE:-ring}
KEEP=()
case "$ENGINE" in
	ring) KEEP=(--keepdb) ;;
	table) export PGOPTIONS="-c awa.install_engine=table" ;;
	*) echo "AWA_TEST_ENGINE must be ring or table" >&2; exit 2 ;;
esac
DB=awa_django_admin_it
[ "$ENGINE" = ring ] || DB=awa_django_admin_${ENGINE}_it
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
drop_dbs() {
	psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
		-c "DROP DATABASE IF EXISTS test_$DB WITH (FORCE)" 2>/dev/null || true
}
trap drop_dbs EXIT

drop_dbs
psql -d postgres -c "CREATE DATABASE $DB"

cd "$ROOT/examples/django"
export PGDATABASE=$DB DJANGO_SETTINGS_MODULE=shopsite.settings
export PYTHONPATH="$ROOT/clients/python/src:$ROOT/test/integration/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export AWA_ADMIN_OUTPUT=${AWA_ADMIN_OUTPUT:-$(mktemp -d "${TMPDIR:-/tmp}/awa-admin-output.XXXXXX")}

# The documented set-up path on the project database: migrate (creates the extension and the
# operate_queue permission), a superuser without a prompt, no missing migrations.
"$PY" manage.py migrate --noinput -v 0
DJANGO_SUPERUSER_PASSWORD=admin-pw "$PY" manage.py createsuperuser --noinput --username admin \
	--email admin@example.com
"$PY" manage.py makemigrations --check --dry-run awa_django shop
[ "$(psql -d "$DB" -Atc "SELECT count(*) FROM auth_permission WHERE codename = 'operate_queue'")" = 1 ]

timeout 300 "$PY" manage.py test --noinput -v 2 "${KEEP[@]}" awa_admin_tests awa_history_tests
if [ "$ENGINE" = ring ]; then
	for d in "$DB" "test_$DB"; do
		[ "$(psql -d "$d" -Atc "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass")" = v ] ||
			{ echo "FAIL: awa.jobs of $d is not the ring's view" >&2; exit 1; }
	done
	echo "ok - the project's and Django's test database keep their jobs in the ring"
fi
echo "screenshots: $AWA_ADMIN_OUTPUT"
