#!/usr/bin/env bash
# Build hygiene: a warning-free build with -Werror, then cppcheck and
# clang-tidy on src/ with no findings.  Exits non-zero on any finding.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$AWA_ROOT"
INC=$("$PG_CONFIG" --includedir-server)
status=0

log "job states: made files agree with src/job_state.def"
if /usr/bin/python3 scripts/gen_states.py --check; then
	echo "ok - job states: src/job_state_sql.h, states.py and the job_state regression test are up to date"
else
	echo "FAIL: job states drifted from src/job_state.def"; status=1
fi

log "build with -Werror"
make -s clean >/dev/null 2>&1
if make -s PG_CONFIG="$PG_CONFIG" with_llvm=no COPT="-Werror" 2>&1; then
	echo "ok - no compiler warnings"
else
	echo "FAIL: the build has warnings"; status=1
fi

log "cppcheck"
if cppcheck --quiet --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
	--std=c99 -I src -I "$INC" -D__GNUC__ --suppress=missingIncludeSystem src/*.c; then
	echo "ok - cppcheck: no findings"
else
	echo "FAIL: cppcheck findings"; status=1
fi

log "clang-tidy"
if out=$(clang-tidy --quiet src/*.c -- -I src -I "$INC" -D_GNU_SOURCE 2>&1); then
	echo "ok - clang-tidy: no findings"
else
	echo "$out" | grep -E "warning|error" | grep -v "warnings generated"
	echo "FAIL: clang-tidy findings"; status=1
fi
exit $status
