#!/usr/bin/env bash
# How long one reclaim round of a sealed ring slot takes, which is how long an insert naming parents or an awa_retry
# may wait for it (docs/storage.md, "Step 5: closing the ring's known races").  Per round: a scratch database created
# with awa.install_engine = ring, RECLAIM_JOBS (10000 and 50000) jobs inserted, claimed 1,000 at a time and
# completed, the open slot sealed, then awa.ring_reclaim(10) timed with awa.retention_completed = 0 (every job goes
# with the slot: the whole count and truncate).  RECLAIM_ROUNDS (3) rounds per size; prints the outcome (reclaimed; snapshot: an autovacuum's snapshot was older,
# run it again) and the milliseconds of each.
# Run it on a development cluster without awa's background worker in the databases (awa.databases = '').
#   PGHOST=... PGPORT=... PGUSER=postgres bench/ring_reclaim_round.sh
set -euo pipefail
SIZES=${RECLAIM_JOBS:-10000 50000}
ROUNDS=${RECLAIM_ROUNDS:-3}
DB=awa_bench_reclaim
for n in $SIZES; do
	for r in $(seq 1 "$ROUNDS"); do
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>/dev/null
		PGOPTIONS="-c awa.install_engine=ring" psql -X -q -d "$DB" -c "CREATE EXTENSION awa"
		out=$(psql -X -q -At -d "$DB" -v n="$n" <<'SQL'
SET awa.retention_completed = 0;
SELECT count(awa.ring_insert('k', '{}', 'bq')) FROM generate_series(1, :n);
SELECT count(*) FROM generate_series(1, :n / 1000) g CROSS JOIN LATERAL awa.ring_claim('bq', 1000 + 0 * g, '1 hour');
SELECT count(*) FROM awa.ring_complete_many(ARRAY(SELECT job_id FROM awa.claims),
	array_fill(1::bigint, ARRAY[(SELECT count(*)::int FROM awa.claims)]));
SELECT outcome FROM awa.ring_rotate(1, '1 microsecond');
SELECT pg_sleep(0.5);
\timing on
SELECT outcome FROM awa.ring_reclaim(10) WHERE outcome <> 'empty';
SQL
)
		ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out")
		outcome=$(grep -E '^(reclaimed|kept|busy|snapshot)$' <<<"$out" || echo '?')
		echo "jobs=$n round=$r outcome=$outcome reclaim_ms=$ms"
	done
done
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB"
