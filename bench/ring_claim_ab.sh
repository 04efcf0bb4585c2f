#!/usr/bin/env bash
# bench/ring_claim_ab.sh — claim+complete on the ring, steady state, two builds of awa side by side (an A/B of the
# claim's own speed while the machine's load moves; docs/storage.md, "Step 5: claim and complete at batch speed on
# the ring").  Each round, for each build: a fresh ring database with JOBS jobs, one warm-up claim of 10 (so the
# first claim's rounds are not measured), then pgbench CLIENTS clients x TX transactions of batch 1 and of batch 10.
# Prints jobs/s per build and the ratio B / A.
#
#   A=/tmp/dir-a:5501 B=/tmp/dir-b:5502 PGBENCH=/usr/lib/postgresql/15/bin/pgbench bench/ring_claim_ab.sh
#
# A and B: socket directory:port of two running clusters (awa preloaded, `awa.databases=`), each with its build.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${A:?A=socketdir:port of build A}" "${B:?B=socketdir:port of build B}"
PGBENCH=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
JOBS=${JOBS:-200000} TX=${TX:-1500} CLIENTS=${CLIENTS:-2} ROUNDS=${ROUNDS:-3}
export PGUSER=postgres
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
sed 's/@QUEUE@/cc/g' "$ROOT/sql/c3_awa_b1.sql" >"$TMP/b1.sql"
sed -e 's/@QUEUE@/cc/g' -e 's/@BATCH@/10/g' "$ROOT/sql/c3_awa_batch.sql" >"$TMP/b10.sql"
run() { # socketdir:port script -> tps
	export PGHOST=${1%%:*} PGPORT=${1##*:}
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS awa_ab WITH (FORCE)" -c "CREATE DATABASE awa_ab" 2>/dev/null
	PGOPTIONS="-c awa.install_engine=ring -c client_min_messages=warning" psql -X -q -d awa_ab -c "CREATE EXTENSION awa"
	psql -X -q -d awa_ab -c "INSERT INTO awa.jobs (kind, queue, args, state, run_at)
		SELECT 'k', 'cc', jsonb_build_object('n', i), 'available', now() - interval '1 hour' + i * interval '1 ms'
		FROM generate_series(1, $JOBS) i"
	psql -X -q -d awa_ab -c "VACUUM ANALYZE" -c "CHECKPOINT"
	psql -X -q -d awa_ab -c "SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) FROM awa_claim('cc', batch => 10)" >/dev/null
	"$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -t "$TX" -f "$2" awa_ab 2>&1 | awk '/^tps/ { print $3 }'
}
for r in $(seq "$ROUNDS"); do
	for b in 1 10; do
		ta=$(run "$A" "$TMP/b$b.sql"); tb=$(run "$B" "$TMP/b$b.sql")
		awk -v r="$r" -v b="$b" -v a="$ta" -v c="$tb" \
			'BEGIN { printf "round %s batch %s: A %.0f jobs/s, B %.0f jobs/s, B/A %.2f\n", r, b, a * b, c * b, c / a }'
	done
done
