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

log "no circles between the C files of src/"
# which file's symbols each object uses (nm), and the circles among them
if /usr/bin/python3 - src <<'PY'
"""Calls between the C files of src/ (from nm of their objects), and any circle among them."""
import subprocess, sys, glob, os
objs = sorted(glob.glob(os.path.join(sys.argv[1], "*.o")))
defs, uses = {}, {}
for o in objs:
    f = os.path.basename(o)[:-2]
    out = subprocess.run(["nm", o], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            uses.setdefault(f, set()).add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBR":
            defs[parts[2]] = f
edges = {f: set() for f in (os.path.basename(o)[:-2] for o in objs)}
for f, syms in uses.items():
    for s in syms:
        g = defs.get(s)
        if g and g != f:
            edges[f].add(g)
# strongly connected components (Tarjan)
index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        comps.append(sorted(c))
sys.setrecursionlimit(10000)
for v in edges:
    if v not in index: visit(v)
circles = [c for c in comps if len(c) > 1]
if "-v" in sys.argv:
    for f in sorted(edges): print(f, "->", " ".join(sorted(edges[f])))
for c in circles:
    print("circle:", " ".join(c))
    for f in c:
        print("  ", f, "->", " ".join(sorted(g for g in edges[f] if g in c)))
sys.exit(1 if circles else 0)
PY
then
	echo "ok - no circles between C files"
else
	echo "FAIL: C files call each other in a circle"; status=1
fi

log "cppcheck"
if cppcheck --quiet --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
	--std=c99 -I src -I "$INC" -D__GNUC__ --suppress=missingIncludeSystem -j "$(nproc)" src/*.c; then
	echo "ok - cppcheck: no findings"
else
	echo "FAIL: cppcheck findings"; status=1
fi

log "clang-tidy"
# a few files per clang-tidy process, one process per core; xargs exits non-zero if any process did
if out=$(printf '%s\n' src/*.c | xargs -P "$(nproc)" -n 4 \
	sh -c 'clang-tidy --quiet "$@" -- -I src -I "$0" -D_GNU_SOURCE' "$INC" 2>&1); then
	echo "ok - clang-tidy: no findings"
else
	echo "$out" | grep -E "warning|error" | grep -v "warnings generated"
	echo "FAIL: clang-tidy findings"; status=1
fi
exit $status
