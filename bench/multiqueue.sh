#!/bin/bash
# One claim over many queues against a claim of one queue: claim + complete throughput (jobs/s) of
#   single  awa_claim('q0', batch => B), the whole backlog in q0;
#   multi   awa_claim(ARRAY['q0', ..., 'q9'], batch => B), the same backlog spread over the 10 queues;
#   multi1  the same 10-queue claim, the whole backlog in q0 (nine idle queues);
# each with BENCH_CLIENTS pgbench clients, variants alternating (order rotating each round), medians of
# BENCH_ROUNDS rounds, then the ratios multi/single and multi1/single.  It also prints the plan of the
# 10-queue claim statement with 1,000,000 waiting jobs (auto_explain of the saved statement, a second
# claim of the session: the plan is generic, built at the first).
#
#   sudo bench/multiqueue.sh             # about 2 minutes on a 2-core machine
#
# Run as root from a checkout with awa built and installed into the PostgreSQL of PG_BIN (default the
# system's, /usr/lib/postgresql/15/bin; scripts/lib.sh).  It starts a throwaway cluster on BENCH_PORT
# (default 5496, in /tmp/awa-bench-mq.PORT) and deletes it at the end.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_ROOT/../scripts/lib.sh"

PORT=${BENCH_PORT:-5496}
DIR=${BENCH_CLUSTER_DIR:-/tmp/awa-bench-mq.$PORT}
ROUNDS=${BENCH_ROUNDS:-5}
CLIENTS=${BENCH_CLIENTS:-2}
BACKLOG=${BENCH_MQ_BACKLOG:-100000}
JOBS=${BENCH_MQ_JOBS:-20000}
BATCHES=${BENCH_MQ_BATCHES:-"1 10"}
TMP=$(mktemp -d /tmp/awa-bench-mq-tmp.XXXXXX)

cleanup() { awa_cluster_stop "$DIR"; rm -rf "$DIR" "$TMP"; }
trap cleanup EXIT
rm -rf "$DIR"
awa_cluster_start "$DIR" "$PORT" fsync=off synchronous_commit=off shared_buffers=256MB awa.databases=
export PGDATABASE=postgres
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION awa" >/dev/null

QUEUES="ARRAY['q0','q1','q2','q3','q4','q5','q6','q7','q8','q9']"
# load SPREAD: BACKLOG available jobs, over q0..q9 (SPREAD 10) or all in q0 (SPREAD 1)
load() {
	q "TRUNCATE awa.jobs" >/dev/null
	q "INSERT INTO awa.jobs (kind, queue, args, state, run_at)
	   SELECT 'k', 'q' || (i % $1), jsonb_build_object('n', i), 'available',
	          now() - interval '1 hour' + i * interval '1 ms'
	     FROM generate_series(1, $BACKLOG) i" >/dev/null
	q "VACUUM ANALYZE awa.jobs" >/dev/null
	q "CHECKPOINT" >/dev/null
}
# run VARIANT BATCH -> jobs/s
run() {
	local v=$1 b=$2 target spread=10 script=$TMP/$1_$2.sql tps done
	case $v in
	single) target="'q0'"; spread=1 ;;
	multi) target=$QUEUES ;;
	multi1) target=$QUEUES; spread=1 ;;
	esac
	load $spread
	cat >"$script" <<SQL
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa_claim($target, batch => $b) \gset
SELECT awa_complete_many(:ids, :leases);
SQL
	local tx=$((JOBS / CLIENTS / b))
	"$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -t "$tx" -f "$script" >"$TMP/pgbench.log" 2>&1 ||
		{ cat "$TMP/pgbench.log" >&2; return 1; }
	done=$(q "SELECT count(*) FROM awa.jobs WHERE state = 'completed'")
	[ "$done" = $((tx * CLIENTS * b)) ] || { echo "$v: expected $((tx * CLIENTS * b)) completed, found $done" >&2; return 1; }
	tps=$(awk '/^tps = / { print $3; exit }' "$TMP/pgbench.log")
	awk -v t="$tps" -v b="$b" 'BEGIN { printf "%.0f", t * b }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

log "multi-queue claim: $CLIENTS clients, backlog $BACKLOG, $JOBS jobs per run, $ROUNDS rounds, batches $BATCHES"
declare -A figures
for b in $BATCHES; do
	vs=(single multi multi1)
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < 3; i++)); do
			v=${vs[$(((i + r - 1) % 3))]}
			val=$(run "$v" "$b")
			figures[$v.$b]+="$val "
			printf '    batch %-3s round %d  %-7s %s jobs/s\n' "$b" "$r" "$v" "$val"
		done
	done
done

log "medians (jobs/s) and ratios to the single-queue claim"
printf '%-6s %10s %10s %10s %12s %12s\n' batch single multi multi1 multi/single multi1/single
for b in $BATCHES; do
	s=$(tr ' ' '\n' <<<"${figures[single.$b]}" | grep . | median)
	m=$(tr ' ' '\n' <<<"${figures[multi.$b]}" | grep . | median)
	m1=$(tr ' ' '\n' <<<"${figures[multi1.$b]}" | grep . | median)
	awk -v b="$b" -v s="$s" -v m="$m" -v m1="$m1" \
		'BEGIN { printf "%-6s %10.0f %10.0f %10.0f %12.2f %12.2f\n", b, s, m, m1, m / s, m1 / s }'
done

log "plan of the 10-queue claim with 1,000,000 waiting jobs (10 queues, priorities 1-4)"
q "TRUNCATE awa.jobs" >/dev/null
q "INSERT INTO awa.jobs (kind, queue, args, state, run_at, priority)
   SELECT 'k', 'q' || (i % 10), jsonb_build_object('n', i), 'available',
          now() - interval '1 hour' + i * interval '1 ms', 1 + (i % 4)
     FROM generate_series(1, 1000000) i" >/dev/null
q "VACUUM ANALYZE awa.jobs" >/dev/null
"$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 <<SQL >/dev/null
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET client_min_messages = error;
BEGIN;
SELECT count(*) FROM awa_claim($QUEUES, batch => 10);
SELECT count(*) FROM awa_claim($QUEUES, batch => 10);
ROLLBACK;
SQL
# the last claim statement's plan (a backend's first run also plans it): its nodes, with their times
last=$(grep -n 'Query Text: WITH c AS MATERIALIZED' "$DIR/log" | tail -1 | cut -d: -f1)
sed -n "$((last - 1)),\$p" "$DIR/log" | awk 'NR == 1 { print; next } /^[0-9][0-9][0-9][0-9]-/ { exit } { print }' |
	grep -vE 'Query Text|Buffers:|Batches:|Sort Method|JIT|Functions:|Options:|Timing:' | cut -c1-170
