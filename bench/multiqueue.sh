#!/bin/bash
# One claim over many queues against a claim of one queue: claim + complete throughput (jobs/s) of
#   single  awa_claim('q0', batch => B), the whole backlog in q0;
#   multi   awa_claim(ARRAY['q0', ..., 'q9'], batch => B), the same backlog spread over the 10 queues;
#   multi1  the same 10-queue claim, the whole backlog in q0 (nine idle queues);
#   single10  single-queue claims over the backlog of multi (spread over the 10 queues): each claim names one
#           queue, each session cycling through q0..q9 -- what the same spread of work costs without a
#           multi-queue claim (the per-queue count bookkeeping, say), so multi/single10 is the claim's own cost;
# each with BENCH_CLIENTS pgbench clients, variants alternating (order rotating each round), medians of
# BENCH_ROUNDS rounds, then the ratios multi/single, multi1/single and multi/single10.  The machine may be shared and
# throughput swings with other load, so it also measures the backend's CPU time per job of the same three
# variants (one session, BENCH_MQ_CPU_JOBS jobs per run; 0 skips it; BENCH_MQ_THROUGHPUT=0 skips the
# throughput runs); BENCH_MQ_HOLD_SNAPSHOT=1 keeps a snapshot open in another session during those runs,
# so that the claimed jobs' index entries can be neither removed nor marked dead.  It also prints the plan of the
# statement that locks and claims a 10-queue claim's candidates (read from the claim index beforehand) with
# 1,000,000 waiting jobs (auto_explain of the saved statement, a second claim of the session: the plan is
# generic, built at the first; BENCH_MQ_PLAN=0 skips it).
#
#   sudo bench/multiqueue.sh             # about 3 minutes on a 2-core machine
#
# Run as root from a checkout with awa built and installed into the PostgreSQL of PG_BIN (default the
# system's, /usr/lib/postgresql/15/bin; scripts/lib.sh).  It starts a throwaway cluster on BENCH_PORT
# (default 5496, in /tmp/awa-bench-mq.PORT) and deletes it at the end.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_ROOT/../scripts/lib.sh"
source "$BENCH_ROOT/lib.sh"

PORT=${BENCH_PORT:-5496}
DIR=${BENCH_CLUSTER_DIR:-/tmp/awa-bench-mq.$PORT}
ROUNDS=${BENCH_ROUNDS:-5}
CLIENTS=${BENCH_CLIENTS:-2}
BACKLOG=${BENCH_MQ_BACKLOG:-100000}
JOBS=${BENCH_MQ_JOBS:-20000}
BATCHES=${BENCH_MQ_BATCHES:-"1 10"}
CPU_JOBS=${BENCH_MQ_CPU_JOBS:-5000}
THROUGHPUT=${BENCH_MQ_THROUGHPUT:-1}
HOLD=${BENCH_MQ_HOLD_SNAPSHOT:-0}
PLAN=${BENCH_MQ_PLAN:-1}
TMP=$(mktemp -d /tmp/awa-bench-mq-tmp.XXXXXX)

cleanup() { awa_cluster_stop "$DIR"; rm -rf "$DIR" "$TMP"; }
trap cleanup EXIT
rm -rf "$DIR"
awa_cluster_start "$DIR" "$PORT" fsync=off synchronous_commit=off shared_buffers=256MB awa.databases=
export PGDATABASE=postgres
bench_q "CREATE EXTENSION awa" >/dev/null

QUEUES="ARRAY['q0','q1','q2','q3','q4','q5','q6','q7','q8','q9']"
# load SPREAD: BACKLOG available jobs, over q0..q9 (SPREAD 10) or all in q0 (SPREAD 1)
load() {
	bench_q "TRUNCATE awa.jobs" >/dev/null
	bench_q "INSERT INTO awa.jobs (kind, queue, args, state, run_at)
	   SELECT 'k', 'q' || (i % $1), jsonb_build_object('n', i), 'available',
	          now() - interval '1 hour' + i * interval '1 ms'
	     FROM generate_series(1, $BACKLOG) i" >/dev/null
	bench_q "VACUUM ANALYZE awa.jobs" >/dev/null
	bench_q "CHECKPOINT" >/dev/null
}
# setup VARIANT: load the variant's backlog, set TARGET (the claim's first argument)
setup() {
	case $1 in
	single) TARGET="'q0'"; load 1 ;;
	multi) TARGET=$QUEUES; load 10 ;;
	multi1) TARGET=$QUEUES; load 1 ;;
	single10) TARGET="'q' || :q"; load 10 ;;
	esac
}
# run VARIANT BATCH -> jobs/s
run() {
	setup "$1"
	if [ "$1" = single10 ]; then
		# each client's variable q goes 1, 2, ..., 9, 0, 1, ...
		bench_pgbench "$TARGET" "$2" "$CLIENTS" "$JOBS" "$TMP" '\set q (:q + 1) % 10' "-D q=0"
	else
		bench_pgbench "$TARGET" "$2" "$CLIENTS" "$JOBS" "$TMP"
	fi
}
# ratios FIGURES FORMAT: the medians of single, multi, multi1, single10 per batch and the ratios multi/single,
# multi1/single and multi/single10
ratios() {
	local b s m m1 s10
	for b in $BATCHES; do
		s=$(bench_median_of "$1" "single.$b")
		m=$(bench_median_of "$1" "multi.$b")
		m1=$(bench_median_of "$1" "multi1.$b")
		s10=$(bench_median_of "$1" "single10.$b")
		awk -v b="$b" -v s="$s" -v m="$m" -v m1="$m1" -v s10="$s10" -v f="$2" \
			'BEGIN { printf f, b, s, m, m1, s10, m / s, m1 / s, m / s10 }'
	done
}

if [ "$THROUGHPUT" != 0 ]; then
	log "multi-queue claim: $CLIENTS clients, backlog $BACKLOG, $JOBS jobs per run, $ROUNDS rounds, batches $BATCHES"
	declare -A figures
	bench_rounds figures jobs/s "$ROUNDS" "$BATCHES" run single multi multi1 single10
	log "medians (jobs/s) and ratios to the single-queue claims"
	printf '%-6s %10s %10s %10s %10s %12s %12s %14s\n' batch single multi multi1 single10 multi/single \
		multi1/single multi/single10
	ratios figures '%-6s %10.0f %10.0f %10.0f %10.0f %12.2f %12.2f %14.2f\n'
fi

# cpu VARIANT BATCH -> microseconds of the backend's CPU per job claimed and completed (bench_cpu),
# optionally with an old snapshot held open in another session
cpu() {
	setup "$1"
	# bench_cpu's loop counter i (1, 2, ...): claims of q1, q2, ..., q9, q0, q1, ...
	[ "$1" != single10 ] || TARGET="'q' || (i % 10)"
	if [ "$HOLD" != 0 ]; then
		# an old snapshot held open (a long report, a forgotten session): dead index entries stay
		"$PG_BIN/psql" -X -q -At -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT count(*) FROM awa.queue_meta" \
			-c "SELECT pg_sleep(3600)" >/dev/null 2>&1 &
		sleep 0.5
	fi
	bench_cpu "$TARGET" "$2" "$CPU_JOBS"
	if [ "$HOLD" != 0 ]; then
		bench_q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3600)%'" >/dev/null
		wait
	fi
}

if [ "$CPU_JOBS" -gt 0 ]; then
	log "backend CPU per job (one session, $CPU_JOBS jobs per run), $ROUNDS rounds"
	declare -A cpus
	bench_rounds cpus us/job "$ROUNDS" "$BATCHES" cpu single multi multi1 single10
	log "medians (CPU microseconds per job) and ratios to the single-queue claims (above 1: costs more)"
	printf '%-6s %8s %8s %8s %8s %12s %12s %14s\n' batch single multi multi1 single10 multi/single \
		multi1/single multi/single10
	ratios cpus '%-6s %8.1f %8.1f %8.1f %8.1f %12.2f %12.2f %14.2f\n'
fi

if [ "$PLAN" != 0 ]; then
	log "plan of the 10-queue claim with 1,000,000 waiting jobs (10 queues, priorities 1-4)"
	bench_q "TRUNCATE awa.jobs" >/dev/null
	bench_q "INSERT INTO awa.jobs (kind, queue, args, state, run_at, priority)
	   SELECT 'k', 'q' || (i % 10), jsonb_build_object('n', i), 'available',
	          now() - interval '1 hour' + i * interval '1 ms', 1 + (i % 4)
	     FROM generate_series(1, 1000000) i" >/dev/null
	bench_q "VACUUM ANALYZE awa.jobs" >/dev/null
	"$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 <<-SQL >/dev/null
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
	last=$(grep -n 'Query Text: WITH cand AS MATERIALIZED (SELECT l.ctid, l.ok FROM unnest' "$DIR/log" | tail -1 | cut -d: -f1)
	sed -n "$((last - 1)),\$p" "$DIR/log" | awk 'NR == 1 { print; next } /^[0-9][0-9][0-9][0-9]-/ { exit } { print }' |
		grep -vE 'Query Text|Buffers:|Batches:|Sort Method|JIT|Functions:|Options:|Timing:' | cut -c1-170
fi
