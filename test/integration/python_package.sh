#!/usr/bin/env bash
# Packaging and docs of the Python client:
#  1. `pip install ./clients/python` (offline: --no-deps --no-build-isolation, into a temporary
#     --target) installs every file of awa_client, awa_worker and awa_django (modules, migrations,
#     admin templates), and each package imports from the install alone; Django finds the
#     dashboard's templates there; `python -m awa_worker --help` runs;
#  2. the no-prompt createsuperuser command of docs/dashboard.md, taken from the file, works on
#     the example project (needs PGHOST/PGPORT/PGUSER of a running server with awa preloaded, as
#     exported by scripts/test.sh).
# Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: python3-pip, python3-setuptools, python3-django
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

DB=awa_package_it
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/awa-package.XXXXXX")
cleanup() {
	psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# 1. Install from a copy, so the build leaves nothing in the source tree.
mkdir "$TMP/src" "$TMP/site" "$TMP/cwd"
(cd "$ROOT/clients/python" && tar --exclude=__pycache__ --exclude=build --exclude='*.egg-info' -cf - .) |
	tar -xf - -C "$TMP/src"
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q --no-deps --no-build-isolation \
	--target "$TMP/site" "$TMP/src" >"$TMP/pip.log" 2>&1 || { cat "$TMP/pip.log"; fail "pip install"; }
ok "pip install --target (offline)"

missing=0
while IFS= read -r f; do
	[ -f "$TMP/site/$f" ] || { echo "not installed: $f" >&2; missing=1; }
done < <(cd "$ROOT/clients/python" && find awa_client awa_worker awa_django -type f \
	\( -name '*.py' -o -name '*.html' \) -not -path '*/__pycache__/*' | sort)
[ "$missing" = 0 ] || fail "pip install left out files of the packages"
ok "every module, migration and template of the three packages is installed"

cd "$TMP/cwd"   # neither the source tree nor the current directory on sys.path
PYTHONPATH="$TMP/site" "$PY" - "$TMP/site" <<'EOF' || fail "imports from the install"
import importlib, os, sys
site = os.path.realpath(sys.argv[1])
for name in ("awa_client", "awa_worker", "awa_django", "awa_django.migrations.0001_initial"):
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
PYTHONPATH="$TMP/site" "$PY" -m awa_worker --help >/dev/null || fail "python -m awa_worker --help"
ok "awa_client, awa_worker, awa_django import from the install; templates found; python -m awa_worker runs"

# 2. docs/dashboard.md's createsuperuser command, as written there (the password filled in).
cmd=$(grep -E '^DJANGO_SUPERUSER_PASSWORD=\.\.\. python manage.py createsuperuser --noinput' "$ROOT/docs/dashboard.md") ||
	fail "docs/dashboard.md has no no-prompt createsuperuser command"
cmd=${cmd/DJANGO_SUPERUSER_PASSWORD=.../DJANGO_SUPERUSER_PASSWORD=docs-pw-1}
cmd=${cmd/ python / $PY }
psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
cd "$ROOT/examples/django"
export PGDATABASE=$DB DJANGO_SETTINGS_MODULE=shopsite.settings
export PYTHONPATH="$ROOT/clients/python"
"$PY" manage.py migrate --noinput -v 0
echo "+ $cmd"
bash -c "$cmd" || fail "the createsuperuser command of docs/dashboard.md"
[ "$(psql -d "$DB" -Atc "SELECT count(*) FROM auth_user WHERE is_superuser AND is_staff")" = 1 ] ||
	fail "no superuser after the documented command"
ok "docs/dashboard.md's createsuperuser command creates a superuser"
echo "2 passed, 0 failed"
