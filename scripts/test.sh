#!/usr/bin/env bash
# Run every test of awa: installs what is needed, builds and installs awa,
# starts a throwaway PostgreSQL (awa preloaded) on a private port and socket
# directory, runs pg_regress + isolation, pgTAP, and the integration tests,
# stops the server, and exits non-zero if anything failed.  Run as root.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

TEST_PORT=${AWA_TEST_PORT:-54329}
TEST_DIR=$(mktemp -d /tmp/awa-test.XXXXXX)
FAILED=()
SUITES=0	# pg_regress/isolation, pgTAP, lint, and each integration script
START=$(date +%s)

cleanup() { awa_cluster_stop "$TEST_DIR"; rm -rf "$TEST_DIR"; }
trap cleanup EXIT

set -e
awa_install_packages
awa_build_install
log "starting a throwaway PostgreSQL on port $TEST_PORT in $TEST_DIR"
# awa.databases empty: no maintenance worker in the test databases (the tests that
# need one start their own server); rounds run only when a test calls awa_maintain().
awa_cluster_start "$TEST_DIR" "$TEST_PORT" fsync=off awa.databases=
set +e
cd "$AWA_ROOT"

log "pg_regress and isolation (make installcheck)"
SUITES=$((SUITES + 1))
rm -rf results output_iso regression.diffs regression.out
if ! make -s PG_CONFIG="$PG_CONFIG" with_llvm=no installcheck; then
	FAILED+=("pg_regress/isolation")
	for f in regression.diffs output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "---- $f"; head -200 "$f"; }
	done
fi

log "pgTAP (pg_prove)"
SUITES=$((SUITES + 1))
"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS awa_tap" -c "CREATE DATABASE awa_tap" >/dev/null
if ! pg_prove -d awa_tap --ext .sql -r test/pgtap; then
	FAILED+=("pgTAP")
fi

log "build hygiene (scripts/lint.sh: -Werror, cppcheck, clang-tidy)"
SUITES=$((SUITES + 1))
if ! bash scripts/lint.sh; then
	FAILED+=("lint")
fi

for t in test/integration/*.sh; do
	[ -e "$t" ] || continue
	log "integration: $t"
	SUITES=$((SUITES + 1))
	if ! bash "$t"; then FAILED+=("$t"); fi
done

log "summary ($(( $(date +%s) - START )) s)"
# the closing line counts test suites (each prints its own count above)
if [ ${#FAILED[@]} -gt 0 ]; then
	echo "FAILED: ${FAILED[*]}"
	echo "suites: $((SUITES - ${#FAILED[@]})) passed, ${#FAILED[@]} failed"
	exit 1
fi
echo "all test suites passed"
echo "suites: $SUITES passed, 0 failed"
