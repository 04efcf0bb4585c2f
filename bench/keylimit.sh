#!/bin/bash
# Per-key concurrency limits that are never reached against no limits: claim + complete throughput
# (jobs completed per second) of
#   plain   awa_claim('q0', batch => B) over a backlog of jobs without a concurrency key;
#   keyed   the same claim over the same backlog, each job with one of BENCH_KL_KEYS concurrency keys
#           and a rule awa_set_key_limit('%', 1000000), so no key ever reaches its limit;
# each with BENCH_CLIENTS pgbench clients, variants alternating (order rotating each round), medians of
# BENCH_ROUNDS rounds, then the ratio keyed/plain per batch size.  It also prints the plan of the keyed
# claim statement (auto_explain of the second claim of a session).
#
#   bench/keylimit.sh              # about 2 minutes on a 2-core machine
#
# Run from a checkout with awa built and installed into the PostgreSQL of PG_BIN (default the system's,
# /usr/lib/postgresql/15/bin; scripts/lib.sh), as root or as a user that may start a cluster.  It starts a
# throwaway cluster on BENCH_PORT (default 5497, in /tmp/awa-bench-kl.PORT) and deletes it at the end.
# Other parameters: BENCH_KL_BACKLOG (100000) jobs loaded before each run, BENCH_KL_JOBS (20000) processed
# per run, BENCH_KL_BATCHES ("1 10"), BENCH_KL_KEYS (1000).
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_ROOT/../scripts/lib.sh"

PORT=${BENCH_PORT:-5497}
DIR=${BENCH_CLUSTER_DIR:-/tmp/awa-bench-kl.$PORT}
ROUNDS=${BENCH_ROUNDS:-5}
CLIENTS=${BENCH_CLIENTS:-2}
BACKLOG=${BENCH_KL_BACKLOG:-100000}
JOBS=${BENCH_KL_JOBS:-20000}
BATCHES=${BENCH_KL_BATCHES:-"1 10"}
KEYS=${BENCH_KL_KEYS:-1000}
TMP=$(mktemp -d /tmp/awa-bench-kl-tmp.XXXXXX)

cleanup() { awa_cluster_stop "$DIR"; rm -rf "$DIR" "$TMP"; }
trap cleanup EXIT
rm -rf "$DIR"
awa_cluster_start "$DIR" "$PORT" fsync=off synchronous_commit=off shared_buffers=256MB awa.databases=
export PGDATABASE=postgres PGHOST=$DIR PGPORT=$PORT
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION awa" >/dev/null
VARIANTS=(plain keyed)
if [ "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'awa.jobs'::regclass AND attname = 'concurrency_key'")" = 1 ]; then
	q "SELECT awa_set_key_limit('%', 1000000)" >/dev/null
else
	# an awa without per-key limits (for the plain claim's figure of another build)
	VARIANTS=(plain)
	log "this awa has no per-key limits: plain only"
fi

# load KEYED: BACKLOG available jobs in q0, with concurrency keys (1) or without (0)
load() {
	local col="" key=""
	[ "$1" = 1 ] && col=", concurrency_key" key=", 'key' || (i % $KEYS)"
	q "TRUNCATE awa.jobs" >/dev/null
	q "INSERT INTO awa.jobs (kind, queue, args, state, run_at$col)
	   SELECT 'k', 'q0', jsonb_build_object('n', i), 'available',
	          now() - interval '1 hour' + i * interval '1 ms'$key
	     FROM generate_series(1, $BACKLOG) i" >/dev/null
	q "VACUUM ANALYZE awa.jobs" >/dev/null
	q "CHECKPOINT" >/dev/null
}
# run VARIANT BATCH -> jobs/s
run() {
	local v=$1 b=$2 script=$TMP/$1_$2.sql done
	load $([ "$v" = keyed ] && echo 1 || echo 0)
	# an empty claim (every job's key busy or at its limit) completes nothing
	cat >"$script" <<SQL
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(run_lease), '{}') AS leases FROM awa_claim('q0', batch => $b) \gset
SELECT awa_complete_many(:ids, :leases);
SQL
	local tx=$((JOBS / CLIENTS / b)) t0 t1
	t0=$(date +%s.%N)
	"$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -t "$tx" -f "$script" >"$TMP/pgbench.log" 2>&1 ||
		{ cat "$TMP/pgbench.log" >&2; return 1; }
	t1=$(date +%s.%N)
	done=$(q "SELECT count(*) FROM awa.jobs WHERE state = 'completed'")
	[ "$done" -gt 0 ] || { echo "$v: no job completed" >&2; return 1; }
	# jobs completed per second of the run (connections included: a few ms)
	awk -v n="$done" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", n / (t1 - t0) }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

log "per-key limits never reached: $CLIENTS clients, backlog $BACKLOG, $KEYS keys, $JOBS jobs per run, $ROUNDS rounds, batches $BATCHES"
declare -A figures
for b in $BATCHES; do
	vs=("${VARIANTS[@]}")
	nv=${#vs[@]}
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < nv; i++)); do
			v=${vs[$(((i + r - 1) % nv))]}
			val=$(run "$v" "$b")
			figures[$v.$b]+="$val "
			figures[$v.$b.$r]=$val
			printf '    batch %-3s round %d  %-6s %s jobs/s\n' "$b" "$r" "$v" "$val"
		done
	done
done

# The machine may be shared: besides the ratio of the medians, the median of the ratios of each
# round's two runs (back to back, so under about the same load).
log "medians (jobs/s), their ratio keyed/plain, and the median of each round's ratio"
printf '%-6s %10s %10s %12s %14s\n' batch plain keyed keyed/plain "round ratios"
for b in $BATCHES; do
	p=$(tr ' ' '\n' <<<"${figures[plain.$b]}" | grep . | median)
	k=$(tr ' ' '\n' <<<"${figures[keyed.$b]:-}" | grep . | median)
	rr=0
	if [ -n "${figures[keyed.$b]:-}" ]; then
		rr=$(for ((r = 1; r <= ROUNDS; r++)); do
			awk -v p="${figures[plain.$b.$r]}" -v k="${figures[keyed.$b.$r]}" 'BEGIN { printf "%.4f\n", k / p }'
		done | median)
	fi
	awk -v b="$b" -v p="$p" -v k="${k:-0}" -v rr="$rr" 'BEGIN { printf "%-6s %10.0f %10.0f %12.2f %14.2f\n", b, p, k, k / p, rr }'
done
[ ${#VARIANTS[@]} = 2 ] || exit 0

log "plan of the keyed claim statement (batch 10)"
load 1
"$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 <<SQL >/dev/null
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET client_min_messages = error;
BEGIN;
SELECT count(*) FROM awa_claim('q0', batch => 10);
SELECT count(*) FROM awa_claim('q0', batch => 10);
ROLLBACK;
SQL
last=$(grep -n 'Query Text: WITH cand AS MATERIALIZED' "$DIR/log" | tail -1 | cut -d: -f1)
sed -n "$((last - 1)),\$p" "$DIR/log" | awk 'NR == 1 { print; next } /^[0-9][0-9][0-9][0-9]-/ { exit } { print }' |
	grep -vE 'Query Text|Buffers:|JIT|Functions:|Options:|Timing:' | cut -c1-170
