#!/usr/bin/env bash
# Run every test of awa: installs what is needed (scripts/setup.sh), builds and
# installs awa, starts a throwaway PostgreSQL (awa preloaded) on a private port
# and socket directory, runs pg_regress + isolation and pgTAP on the default
# storage engine (the ring; files that test the table engine itself choose it),
# the pgTAP files and isolation specs whose answer depends on the engine a second
# time on the table engine (test/pgtap/on_table.txt, test/isolation/on_table.txt:
# databases created with awa.install_engine = table), lint, the TAP tests
# (test/t/*.pl: servers of their own on free ports) and the remaining
# integration scripts, stops the server, and exits non-zero if anything
# failed.  Run as root (the TAP tests run as postgres).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

TEST_PORT=${AWA_TEST_PORT:-54329}
TEST_DIR=$(mktemp -d /tmp/awa-test.XXXXXX)
FAILED=()
SUITES=0	# pg_regress/isolation, pgTAP, lint, each TAP test file, and each integration script
START=$(date +%s)

TAP_DIR=
cleanup() { awa_cluster_stop "$TEST_DIR"; rm -rf "$TEST_DIR" ${TAP_DIR:+"$TAP_DIR"}; }
trap cleanup EXIT
# step WHAT: a heading with the seconds since the start (the differences time each suite)
step() { log "$* (at $(( $(date +%s) - START )) s)"; }

set -e
bash "$AWA_ROOT/scripts/setup.sh"
awa_build_install
log "starting a throwaway PostgreSQL on port $TEST_PORT in $TEST_DIR"
# awa.databases empty: no maintenance worker in the test databases (the tests that
# need one start their own server); rounds run only when a test calls awa_maintain().
awa_cluster_start "$TEST_DIR" "$TEST_PORT" fsync=off awa.databases=
set +e
cd "$AWA_ROOT"

step "pg_regress and isolation (make installcheck)"
SUITES=$((SUITES + 1))
rm -rf results output_iso regression.diffs regression.out
# TAP_TESTS= : the TAP tests run on their own below
if ! make -s PG_CONFIG="$PG_CONFIG" with_llvm=no TAP_TESTS= installcheck; then
	FAILED+=("pg_regress/isolation")
	for f in regression.diffs output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "---- $f"; head -200 "$f"; }
	done
fi

step "pgTAP (pg_prove)"
SUITES=$((SUITES + 1))
"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS awa_tap" -c "CREATE DATABASE awa_tap" >/dev/null
if ! pg_prove -d awa_tap --ext .sql -r test/pgtap; then
	FAILED+=("pgTAP")
fi

# the same files, those whose answer depends on the engine, in databases whose jobs are in the table (the legacy
# engine, kept until it is deleted)
step "pgTAP on the table engine (test/pgtap/on_table.txt)"
SUITES=$((SUITES + 1))
mapfile -t TABLE_FILES < <(sed -e '/^#/d' -e '/^$/d' -e 's|^|test/pgtap/|' test/pgtap/on_table.txt)
echo "on the table engine: ${#TABLE_FILES[@]} of $(ls test/pgtap/*.sql | wc -l) pgTAP files (the others choose their engine)"
if ! PGOPTIONS="-c awa.install_engine=table" pg_prove -d awa_tap "${TABLE_FILES[@]}"; then
	FAILED+=("pgTAP on the table engine")
fi

# the isolation specs whose answer depends on the engine, in databases whose jobs are in the table
step "isolation on the table engine (test/isolation/on_table.txt)"
SUITES=$((SUITES + 1))
mapfile -t TABLE_SPECS < <(sed -e '/^#/d' -e '/^$/d' test/isolation/on_table.txt)
echo "on the table engine: ${#TABLE_SPECS[@]} of $(ls test/isolation/specs/*.spec | wc -l) isolation specs (the others do not depend on it, or choose it)"
rm -rf output_iso_table
if ! PGOPTIONS="-c awa.install_engine=table" make -s PG_CONFIG="$PG_CONFIG" with_llvm=no TAP_TESTS= REGRESS= \
	ISOLATION="${TABLE_SPECS[*]}" ISOLATION_OPTS="--inputdir=test/isolation --outputdir=output_iso_table" installcheck; then
	FAILED+=("isolation on the table engine")
	[ -f output_iso_table/regression.diffs ] && { echo "---- output_iso_table/regression.diffs"; head -200 output_iso_table/regression.diffs; }
fi

step "build hygiene (scripts/lint.sh: -Werror, cppcheck, clang-tidy)"
SUITES=$((SUITES + 1))
if ! bash scripts/lint.sh; then
	FAILED+=("lint")
fi

# TAP tests: each starts servers of its own, and initdb refuses to run as root:
# they run as postgres on a copy of the tree that user owns (the log files of a
# failed run are copied back to tmp_check/).  prove prints one line per test
# file and its summary; each file counts as a suite.  Two files run at a time
# (prove -j2): each spends most of its time waiting on its servers, and their
# ports and data directories are their own (PostgreSQL::Test::Cluster's free
# ports, locked while in use).
step "TAP tests (make prove_installcheck: test/t/*.pl, two at a time)"
TAP_FILES=(test/t/*.pl)
SUITES=$((SUITES + ${#TAP_FILES[@]}))
rm -rf tmp_check
TAP_DIR=$(mktemp -d /tmp/awa-tap.XXXXXX)
tar -C "$AWA_ROOT" --exclude=./.git --exclude=./tmp_check -cf - . | tar -C "$TAP_DIR" -xf -
chown -R postgres:postgres "$TAP_DIR"
su postgres -c "make -C '$TAP_DIR' -s PG_CONFIG='$PG_CONFIG' with_llvm=no PROVE_FLAGS='-j2 --timer' prove_installcheck" 2>&1 | tee "$TEST_DIR/prove.out"
tap_rc=${PIPESTATUS[0]}
if [ "$tap_rc" != 0 ]; then
	cp -a "$TAP_DIR/tmp_check" "$AWA_ROOT/tmp_check" 2>/dev/null
	# prove's "Test Summary Report" names each failed file: "test/t/NAME.pl   (Wstat: ...)"
	mapfile -t tap_failed < <(grep -oE '^test/t/[^ ]+\.pl +\(Wstat' "$TEST_DIR/prove.out" | cut -d' ' -f1)
	[ ${#tap_failed[@]} -gt 0 ] || tap_failed=("TAP tests (make prove_installcheck exit $tap_rc)")
	FAILED+=("${tap_failed[@]}")
	echo "TAP logs: $AWA_ROOT/tmp_check/log/"
fi

for t in test/integration/*.sh; do
	[ -e "$t" ] || continue
	step "integration: $t"
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
