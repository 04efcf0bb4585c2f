#!/usr/bin/env bash
# The Python package's own tests (clients/python/tests: the client with both drivers, the Worker
# in-process and as processes, retries, renewable leases and timeouts, its fault handling,
# dependencies, groups, external waits, several queues), then the Django example (django.sh with
# AWA_TEST_ENGINE=ring), against databases created with the ring engine (awa.install_engine = ring
# before CREATE EXTENSION: awa.jobs is a view of the ring, docs/storage.md "Step 5: how the switch
# lands").  The package from the source tree
# (clients/python/src); test/integration/python_package.sh tests the installed package on the
# table engine.  Every test runs except those named in NOT_ON_RING below, with the reason; a name
# there that no longer exists, a failure or a skipped test fails this script.
# Needs PGHOST/PGPORT/PGUSER of a running server with awa preloaded, as exported by
# scripts/test.sh.  Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: python3-psycopg, python3-psycopg2
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
fail() { echo "FAIL: $*" >&2; exit 1; }

DB=awa_python_ring_it
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/awa-python-ring.XXXXXX")
cleanup() {
	psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
PGOPTIONS="-c awa.install_engine=ring" psql -d "$DB" -c "CREATE EXTENSION awa"
[ "$(psql -d "$DB" -Atc "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass")" = v ] ||
	fail "awa.jobs is not the ring's view: the database is not on the ring engine"

# Not run here, and why:
NOT_ON_RING=(
	# the installed distribution (metadata, console script): python_package.sh; not installed here
	test_package.VersionTests.test_installed_metadata_has_the_same_version
	test_package.EntryPointTests.test_awa_worker_console_script
)

export AWA_TEST_DSN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB"
export PYTHONPATH="$ROOT/clients/python/src"
TESTS=$ROOT/clients/python/tests
cd "$TMP"
set +e
timeout 300 "$PY" - "$TESTS" "${NOT_ON_RING[@]}" >"$TMP/unittest.log" 2>&1 <<'PYEOF'
import sys, unittest
tests_dir, excluded = sys.argv[1], set(sys.argv[2:])
sys.path.insert(0, tests_dir)
def flat(suite):
    for t in suite:
        yield from (flat(t) if isinstance(t, unittest.TestSuite) else [t])
everything = list(flat(unittest.defaultTestLoader.discover(tests_dir, top_level_dir=tests_dir)))
for t in everything:  # a module that does not import is a test that fails
    if type(t).__name__ == "_FailedTest":
        print("cannot load: %s" % t.id()); sys.exit(2)
def left_out(t):
    return any(t.id() == e or t.id().startswith(e + ".") for e in excluded)
stale = [e for e in excluded if not any(t.id() == e or t.id().startswith(e + ".") for t in everything)]
if stale:
    print("NOT_ON_RING names no test: %s" % stale); sys.exit(2)
run = [t for t in everything if not left_out(t)]
print("on the ring engine: %d of %d tests of clients/python/tests (%d not run here)"
      % (len(run), len(everything), len(everything) - len(run)), flush=True)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(unittest.TestSuite(run))
sys.exit(0 if result.wasSuccessful() and not result.skipped else 1)
PYEOF
rc=$?
set -e
cat "$TMP/unittest.log"
[ "$rc" = 0 ] || fail "clients/python/tests on the ring engine (exit $rc; a skipped test fails too)"
echo "ok - clients/python/tests on the ring engine: $(grep -Eo '^Ran [0-9]+ tests?' "$TMP/unittest.log"), none failed or skipped"

# The Django example (awa_client in Django's transactions, the awa_worker management command) on the ring.
unset PGOPTIONS PYTHONPATH
AWA_TEST_ENGINE=ring bash "$ROOT/test/integration/django.sh" || fail "test/integration/django.sh on the ring engine"
echo "ok - test/integration/django.sh on the ring engine"
