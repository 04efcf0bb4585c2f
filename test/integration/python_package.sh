#!/usr/bin/env bash
# The Python package clients/python, installed, and its own tests against the install:
#  1. `pip install ./clients/python` (offline: --no-deps --no-build-isolation, into a new virtual
#     environment that sees Debian's python3-psycopg, -psycopg2, -django, -prometheus-client)
#     installs every file of awa_client, awa_worker and awa_django (modules, migrations, admin
#     templates) and the awa-worker script; each package imports from the install alone; Django
#     finds the dashboard's templates there;
#  2. clients/python/tests (unittest: states, version, entry points, the client with both drivers,
#     the Worker in-process and as processes, its fault handling, metrics and JSON logs) runs with
#     the installed package against a new database with awa; a failure or a skipped test fails
#     this script;
#  3. the no-prompt createsuperuser command of docs/dashboard.md, taken from the file, works on
#     the example project.
# Needs PGHOST/PGPORT/PGUSER of a running server with awa preloaded, as exported by
# scripts/test.sh.  Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: python3-pip, python3-setuptools, python3-venv, python3-django
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
unset PYTHONPATH
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

DB=awa_package_it
TEST_DB=awa_python_it
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/awa-package.XXXXXX")
cleanup() {
	psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
		-c "DROP DATABASE IF EXISTS $TEST_DB WITH (FORCE)" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# 1. Install from a copy, so the build leaves nothing in the source tree.
mkdir "$TMP/src" "$TMP/cwd"
(cd "$ROOT/clients/python" && tar --exclude=__pycache__ --exclude=build --exclude='*.egg-info' -cf - .) |
	tar -xf - -C "$TMP/src"
"$PY" -m venv --system-site-packages --without-pip "$TMP/venv" || fail "python3 -m venv"
VPY=$TMP/venv/bin/python
# the venv has no pip of its own: Debian's, seen through --system-site-packages, installs into it
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$VPY" -m pip install -q --no-deps --no-build-isolation \
	"$TMP/src" >"$TMP/pip.log" 2>&1 || { cat "$TMP/pip.log"; fail "pip install"; }
ok "pip install ./clients/python into a virtual environment (offline)"

SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
missing=0
while IFS= read -r f; do
	[ -f "$SITE/$f" ] || { echo "not installed: $f" >&2; missing=1; }
done < <(cd "$ROOT/clients/python/src" && find awa_client awa_worker awa_django -type f \
	\( -name '*.py' -o -name '*.html' \) -not -path '*/__pycache__/*' | sort)
[ "$missing" = 0 ] || fail "pip install left out files of the packages"
[ -x "$TMP/venv/bin/awa-worker" ] || fail "no awa-worker script in the environment's bin"
ok "every module, migration and template of the three packages is installed, and awa-worker"

cd "$TMP/cwd"   # neither the source tree nor the current directory on sys.path
"$VPY" - "$SITE" <<'EOF' || fail "imports from the install"
import importlib, os, sys
site = os.path.realpath(sys.argv[1])
for name in ("awa_client", "awa_client.states", "awa_worker", "awa_django",
             "awa_django.migrations.0001_initial"):
    mod = importlib.import_module(name)
    assert os.path.realpath(mod.__file__).startswith(site + os.sep), (name, mod.__file__)
    print("imported %s from the install" % name)

import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                    "django.contrib.sessions", "django.contrib.messages", "awa_django"],
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                "OPTIONS": {"context_processors": []}}],
    DATABASES={}, USE_TZ=True, SECRET_KEY="package-test")
django.setup()
import awa_django.admin  # noqa: F401  (registers the dashboard with the admin)
from django.template.loader import get_template
for t in ("admin/awa_django/dashboard.html", "admin/awa_django/job/change_list.html"):
    origin = os.path.realpath(get_template(t).origin.name)
    assert origin.startswith(site + os.sep), (t, origin)
print("Django loads the dashboard templates from the install")
EOF
"$TMP/venv/bin/awa-worker" --help >/dev/null || fail "awa-worker --help"
"$VPY" -m awa_worker --help >/dev/null || fail "python -m awa_worker --help"
ok "awa_client, awa_worker, awa_django import from the install; templates found; awa-worker runs"

# 2. The package's own tests, importing the installed package (the tests directory is on
#    sys.path for its helpers, src/ is not), in a database of their own.
psql -d postgres -c "DROP DATABASE IF EXISTS $TEST_DB WITH (FORCE)" -c "CREATE DATABASE $TEST_DB"
psql -d "$TEST_DB" -c "CREATE EXTENSION awa"
export AWA_TEST_DSN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$TEST_DB"
TESTS=$ROOT/clients/python/tests
set +e
timeout 600 "$VPY" -m unittest discover -v -s "$TESTS" -t "$TESTS" >"$TMP/unittest.log" 2>&1
rc=$?
set -e
cat "$TMP/unittest.log"
[ "$rc" = 0 ] || fail "clients/python/tests (exit $rc)"
tail -1 "$TMP/unittest.log" | grep -qx 'OK' || fail "clients/python/tests: a test was skipped (see above)"
grep -q '^test_installed_metadata_has_the_same_version .* ok$' "$TMP/unittest.log" ||
	fail "clients/python/tests did not check the installed package"
ok "clients/python/tests: $(grep -Eo '^Ran [0-9]+ tests?' "$TMP/unittest.log"), none failed or skipped"

# 3. docs/dashboard.md's createsuperuser command, as written there (the password filled in).
cmd=$(grep -E '^DJANGO_SUPERUSER_PASSWORD=\.\.\. python manage.py createsuperuser --noinput' "$ROOT/docs/dashboard.md") ||
	fail "docs/dashboard.md has no no-prompt createsuperuser command"
cmd=${cmd/DJANGO_SUPERUSER_PASSWORD=.../DJANGO_SUPERUSER_PASSWORD=docs-pw-1}
cmd=${cmd/ python / $PY }
psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
cd "$ROOT/examples/django"
export PGDATABASE=$DB DJANGO_SETTINGS_MODULE=shopsite.settings
export PYTHONPATH="$ROOT/clients/python/src"
"$PY" manage.py migrate --noinput -v 0
echo "+ $cmd"
bash -c "$cmd" || fail "the createsuperuser command of docs/dashboard.md"
[ "$(psql -d "$DB" -Atc "SELECT count(*) FROM auth_user WHERE is_superuser AND is_staff")" = 1 ] ||
	fail "no superuser after the documented command"
ok "docs/dashboard.md's createsuperuser command creates a superuser"
echo "3 passed, 0 failed"
