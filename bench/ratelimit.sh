#!/bin/bash
# What rate limits cost the claim: claim + complete throughput (jobs/s) of one queue q0 with a backlog,
#   plain       q0 has no settings (an unlimited queue, as before rate limits);
#   other       q0 has no settings while another queue has a rate that binds (awa.queue_meta holds a rate);
#   loose       q0 has a rate that never binds (1000 claims per millisecond): every claim counts and
#               reserves in shared memory (ratelimit.c) and gives back what it did not use;
#   base        (with BENCH_BASE_PG_BIN: the bin directory of a PostgreSQL where an earlier awa, e.g. the
#               main branch without rate limits, is installed) plain on a second cluster running that awa;
# each with BENCH_CLIENTS pgbench clients, variants alternating (order rotating each round), medians of
# BENCH_ROUNDS rounds, then the ratios other/plain and loose/plain (and plain/base).  Unlimited queues take the same claim
# statement as before (the only change is the test of the queue's settings in that statement), so other/plain
# should stay at 1.00 within noise; loose/plain is the price of the counted path.
#
#   sudo bench/ratelimit.sh             # about 2 minutes on a 2-core machine
#
# The machine may be shared: throughput swings with other load.  So the script also measures the backend's CPU
# time per job (utime + stime from /proc/self/stat, read in SQL by a superuser): one session claims and
# completes BENCH_RATE_CPU_JOBS jobs in a procedure (a transaction per claim), per variant and batch, medians
# of BENCH_ROUNDS rounds; other load hardly moves a process's own CPU time.  BENCH_RATE_THROUGHPUT=0 skips
# the throughput runs.
#
# Run as root from a checkout with awa built and installed into the PostgreSQL of PG_BIN (default the
# system's, /usr/lib/postgresql/15/bin; scripts/lib.sh).  It starts a throwaway cluster on BENCH_PORT
# (default 5497, in /tmp/awa-bench-rate.PORT) and deletes it at the end.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_ROOT/../scripts/lib.sh"
source "$BENCH_ROOT/lib.sh"

PORT=${BENCH_PORT:-5497}
DIR=${BENCH_CLUSTER_DIR:-/tmp/awa-bench-rate.$PORT}
ROUNDS=${BENCH_ROUNDS:-5}
CLIENTS=${BENCH_CLIENTS:-2}
BACKLOG=${BENCH_RATE_BACKLOG:-50000}
JOBS=${BENCH_RATE_JOBS:-20000}
BATCHES=${BENCH_RATE_BATCHES:-"1 10"}
CPU_JOBS=${BENCH_RATE_CPU_JOBS:-5000}
TMP=$(mktemp -d /tmp/awa-bench-rate-tmp.XXXXXX)

BASE_BIN=${BENCH_BASE_PG_BIN:-}
OPTS=(fsync=off synchronous_commit=off shared_buffers=256MB awa.databases=)

cleanup() {
	awa_cluster_stop "$DIR"
	[ -z "$BASE_BIN" ] || PG_BIN=$BASE_BIN awa_cluster_stop "$DIR.base"
	rm -rf "$DIR" "$DIR.base" "$TMP"
}
trap cleanup EXIT
rm -rf "$DIR" "$DIR.base"
if [ -n "$BASE_BIN" ]; then
	PG_BIN=$BASE_BIN awa_cluster_start "$DIR.base" "$((PORT + 1))" "${OPTS[@]}"
	"$BASE_BIN/psql" -X -q -d postgres -c "CREATE EXTENSION awa"
fi
awa_cluster_start "$DIR" "$PORT" "${OPTS[@]}"
export PGDATABASE=postgres PGOPTIONS='-c client_min_messages=warning'
BIN=$PG_BIN
# use VARIANT: the cluster (and its client programs) the variant runs on
use() {
	if [ "$1" = base ]; then BIN=$BASE_BIN PGHOST=$DIR.base PGPORT=$((PORT + 1)); else BIN=$PG_BIN PGHOST=$DIR PGPORT=$PORT; fi
	export PGHOST PGPORT
}
bench_q "CREATE EXTENSION awa" >/dev/null

# load VARIANT: BACKLOG available jobs in q0, and the settings of the variant
load() {
	bench_q "TRUNCATE awa.jobs" >/dev/null
	bench_q "DELETE FROM awa.queue_meta" >/dev/null
	bench_q "INSERT INTO awa.jobs (kind, queue, args, state, run_at)
	   SELECT 'k', 'q0', jsonb_build_object('n', i), 'available', now() - interval '1 hour' + i * interval '1 ms'
	     FROM generate_series(1, $BACKLOG) i" >/dev/null
	case $1 in
	other) bench_q "SELECT awa_set_queue_rate('api', 10, '1 s')" >/dev/null ;;
	loose) bench_q "SELECT awa_set_queue_rate('q0', 1000, '1 ms')" >/dev/null ;;
	esac
	bench_q "VACUUM ANALYZE awa.jobs" >/dev/null
	bench_q "CHECKPOINT" >/dev/null
}
# run VARIANT BATCH -> jobs/s
run() {
	use "$1"
	load "$1"
	bench_pgbench "'q0'" "$2" "$CLIENTS" "$JOBS" "$TMP"
}
# cpu VARIANT BATCH -> microseconds of the backend's CPU per job claimed and completed (bench_cpu)
cpu() {
	use "$1"
	load "$1"
	bench_cpu "'q0'" "$2" "$CPU_JOBS"
}
# ratios FIGURES FORMAT BASEFORMAT: the medians of plain, other, loose (and base) per batch, and the ratios
ratios() {
	local b p o l x
	for b in $BATCHES; do
		p=$(bench_median_of "$1" "plain.$b")
		o=$(bench_median_of "$1" "other.$b")
		l=$(bench_median_of "$1" "loose.$b")
		x=$(bench_median_of "$1" "base.$b")
		awk -v b="$b" -v p="$p" -v o="$o" -v l="$l" -v x="$x" -v f="$2" -v xf="$3" \
			'BEGIN { printf f, b, p, o, l, x == "" ? "-" : sprintf(xf, x), o / p, l / p,
			         x == "" ? "-" : sprintf("%.2f", p / x) }'
	done
}
VARIANTS=(plain other loose)
[ -z "$BASE_BIN" ] || VARIANTS+=(base)

if [ "${BENCH_RATE_THROUGHPUT:-1}" = 1 ]; then
	log "rate limits and the claim: $CLIENTS clients, backlog $BACKLOG, $JOBS jobs per run, $ROUNDS rounds, batches $BATCHES"
	declare -A figures
	bench_rounds figures jobs/s "$ROUNDS" "$BATCHES" run "${VARIANTS[@]}"
	log "medians (jobs/s) and ratios to the unlimited queue"
	printf '%-6s %10s %10s %10s %10s %12s %12s %11s\n' batch plain other loose base other/plain loose/plain plain/base
	ratios figures '%-6s %10.0f %10.0f %10.0f %10s %12.2f %12.2f %11s\n' '%.0f'
fi

log "backend CPU per job (one session, $CPU_JOBS jobs per run), $ROUNDS rounds"
declare -A cpus
bench_rounds cpus us/job "$ROUNDS" "$BATCHES" cpu "${VARIANTS[@]}"
log "medians (CPU microseconds per job) and ratios to the unlimited queue (above 1: costs more)"
printf '%-6s %8s %8s %8s %8s %12s %12s %11s\n' batch plain other loose base other/plain loose/plain plain/base
ratios cpus '%-6s %8.1f %8.1f %8.1f %8s %12.2f %12.2f %11s\n' '%.1f'
