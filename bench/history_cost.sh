#!/usr/bin/env bash
# bench/history_cost.sh — what the throughput history costs the claim + complete path.
#
#   sudo bench/history_cost.sh          (after `make install`; about 3 minutes on 2 cores)
#
# Starts a throwaway cluster (port HC_PORT, default 5496; awa preloaded, fsync and synchronous_commit on,
# the maintenance worker folding every second in the bench database), loads a backlog of HC_BACKLOG
# available jobs before each run and drains HC_JOBS1 (batch 1: awa_claim + awa_complete) or HC_JOBSN
# (batch 10: awa_claim(batch => 10) + awa_complete_many) of them with pgbench, HC_CLIENTS clients.
# The two variants alternate, order rotating each round, HC_ROUNDS rounds:
#   history   awa.track_history on (the default): every statement also writes its history row
#   baseline  awa.track_history off for the pgbench sessions (the job counters still run)
# Prints jobs/s per run, the medians and history / baseline.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../scripts/lib.sh
. "$ROOT/scripts/lib.sh"

PORT=${HC_PORT:-5496}
DIR=${HC_CLUSTER_DIR:-/tmp/awa-history-bench.$PORT}
ROUNDS=${HC_ROUNDS:-5}
CLIENTS=${HC_CLIENTS:-2}
BACKLOG=${HC_BACKLOG:-50000}
JOBS1=${HC_JOBS1:-10000}
JOBSN=${HC_JOBSN:-40000}
# extra server settings, e.g. "fsync=off synchronous_commit=off" for the CPU-bound figure
SERVER_OPTS=${HC_SERVER_OPTS:-}
TMP=$(mktemp -d /tmp/awa-history-bench.XXXXXX)
export PGDATABASE=bench PGOPTIONS="-c client_min_messages=warning"

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
teardown() { awa_cluster_stop "$DIR"; rm -rf "$DIR" "$TMP"; }

awa_cluster_stop "$DIR"; rm -rf "$DIR"
# shellcheck disable=SC2086
awa_cluster_start "$DIR" "$PORT" shared_buffers=512MB max_wal_size=4GB checkpoint_timeout=30min \
	awa.databases=bench awa.maintenance_interval=1000 $SERVER_OPTS
trap teardown EXIT
psql -X -q -d postgres -c "CREATE DATABASE bench"
q "CREATE EXTENSION awa"

cat >"$TMP/b1.sql" <<'SQL'
SELECT id, run_lease FROM awa_claim('cc') \gset
SELECT awa_complete(:id, :run_lease);
SQL
cat >"$TMP/b10.sql" <<'SQL'
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa_claim('cc', batch => 10) \gset
SELECT awa_complete_many(:ids, :leases);
SQL

# run VARIANT BATCH JOBS -> jobs/s
run() {
	local variant=$1 batch=$2 jobs=$3 opts="-c client_min_messages=warning" tps ndone
	[ "$variant" = baseline ] && opts="$opts -c awa.track_history=off"
	q "TRUNCATE awa.jobs;
	   INSERT INTO awa.jobs (kind, queue, args, state, run_at)
	   SELECT 'k', 'cc', jsonb_build_object('n', i), 'available', now() - interval '1 hour' + i * interval '1 ms'
	     FROM generate_series(1, $BACKLOG) i" >/dev/null
	q "VACUUM ANALYZE awa.jobs" >/dev/null
	q "SELECT * FROM awa_maintain()" >/dev/null
	q "VACUUM awa.history_deltas, awa.counter_deltas" >/dev/null
	q "CHECKPOINT" >/dev/null
	tps=$(PGOPTIONS="$opts" "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" \
		-t $((jobs / CLIENTS / batch)) -f "$TMP/b$batch.sql" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p')
	ndone=$(q "SELECT count(*) FROM awa.jobs WHERE state = 'completed'")
	[ "$ndone" = $((jobs / CLIENTS / batch * CLIENTS * batch)) ] ||
		{ echo "expected $((jobs / CLIENTS / batch * CLIENTS * batch)) completed jobs, found $ndone" >&2; exit 1; }
	awk -v t="$tps" -v b="$batch" 'BEGIN { printf "%.0f", t * b }'
}

: >"$TMP/raw"
for ((r = 1; r <= ROUNDS; r++)); do
	for batch in 1 10; do
		jobs=$JOBS1; [ $batch = 10 ] && jobs=$JOBSN
		if ((r % 2)); then order="history baseline"; else order="baseline history"; fi
		for v in $order; do
			val=$(run "$v" "$batch" "$jobs")
			printf 'round %d  batch %-3d %-9s %8s jobs/s\n' "$r" "$batch" "$v" "$val"
			printf '%s\t%s\t%s\n' "$batch" "$v" "$val" >>"$TMP/raw"
		done
	done
done
q "SELECT count(*) AS history_rows, sum(completed) AS completed FROM awa.queue_history" | sed 's/^/history rows, completed: /'

echo
echo "median jobs/s (of $ROUNDS runs), $CLIENTS clients, backlog $BACKLOG:"
for batch in 1 10; do
	h=$(awk -v b=$batch '$1 == b && $2 == "history" { print $3 }' "$TMP/raw" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	base=$(awk -v b=$batch '$1 == b && $2 == "baseline" { print $3 }' "$TMP/raw" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	awk -v b=$batch -v h="$h" -v base="$base" \
		'BEGIN { printf "batch %-3d history %6d  baseline %6d  history/baseline %.3f (%+.1f%%)\n", b, h, base, h / base, (h / base - 1) * 100 }'
done
