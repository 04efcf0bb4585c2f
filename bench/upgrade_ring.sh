#!/usr/bin/env bash
# The upgrade onto the ring engine at scale (docs/storage.md, "Step 5: moving a database's jobs into the ring"):
# a 0.2.0 database of UPGRADE_JOBS jobs in a mix of states (40% available, 10% scheduled, 5% retryable with one
# error, 5% running with progress, 30% completed, 5% failed with an error, 5% cancelled; 10 queues, 4 priorities,
# 1% unique), copied (CREATE DATABASE ... TEMPLATE); the copy upgraded with the table engine, the original with
# awa.install_engine = ring.  Prints the time of each ALTER EXTENSION awa UPDATE (the difference is the move),
# the size of awa.jobs before and of every ring relation after, and checks the count per state.
#   PGHOST=... PGPORT=... PGUSER=postgres bench/upgrade_ring.sh
# Settings: UPGRADE_JOBS (1000000), UPGRADE_DB (awa_upgrade_bench; dropped and created, and UPGRADE_DB_table).
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
JOBS=${UPGRADE_JOBS:-1000000}
DB=${UPGRADE_DB:-awa_upgrade_bench}
PSQL="$PG_BIN/psql -X -q -At -v ON_ERROR_STOP=1"
die() { echo "upgrade_ring: $*" >&2; exit 1; }
ms() { date +%s%3N; }
for d in "$DB" "${DB}_table"; do $PSQL -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null; done
$PSQL -d postgres -c "CREATE DATABASE $DB" || die "create database"
$PSQL -d "$DB" -c "CREATE EXTENSION awa VERSION '0.2.0'" || die "CREATE EXTENSION awa VERSION '0.2.0'"
t0=$(ms)
$PSQL -d "$DB" <<SQL || die "loading $JOBS jobs"
INSERT INTO awa.jobs (kind, queue, args, state, priority, attempt, max_attempts, run_at, heartbeat_at, deadline_at,
	attempted_at, finalized_at, created_at, errors, metadata, tags, unique_key, unique_states, run_lease, progress,
	claimed_by)
SELECT 'kind_' || i % 7, 'queue_' || i % 10, jsonb_build_object('n', i, 'payload', repeat('x', 40)), s,
	1 + i % 4,
	CASE WHEN s IN ('available', 'scheduled') THEN 0 ELSE 1 END, 25,
	CASE s WHEN 'scheduled' THEN now() + interval '1 day' WHEN 'retryable' THEN now() + interval '1 minute'
		ELSE now() - interval '1 minute' END,
	CASE WHEN s IN ('running', 'completed') THEN now() - interval '30 seconds' END,
	CASE WHEN s IN ('running', 'completed') THEN now() + interval '4 minutes' END,
	CASE WHEN s IN ('running', 'retryable', 'completed', 'failed') THEN now() - interval '30 seconds' END,
	CASE WHEN s IN ('completed', 'failed', 'cancelled') THEN now() - interval '10 seconds' END,
	now() - interval '2 minutes',
	CASE WHEN s IN ('retryable', 'failed') THEN ARRAY[jsonb_build_object('attempt', 1, 'error', 'boom', 'at', now())]
		ELSE '{}' END,
	'{}', '{}',
	CASE WHEN i % 100 = 0 AND s IN ('available', 'scheduled') THEN sha256(int8send(i)) END,
	CASE WHEN i % 100 = 0 AND s IN ('available', 'scheduled') THEN B'11111001' END,
	CASE WHEN s IN ('available', 'scheduled') THEN 0 ELSE 1 END,
	CASE WHEN s = 'running' THEN jsonb_build_object('done', i % 10) END,
	CASE WHEN s IN ('running', 'retryable', 'completed', 'failed') THEN 'worker-' || i % 8 END
FROM generate_series(1, $JOBS) i
CROSS JOIN LATERAL (SELECT (CASE WHEN i % 20 < 8 THEN 'available' WHEN i % 20 < 10 THEN 'scheduled'
	WHEN i % 20 = 10 THEN 'retryable' WHEN i % 20 = 11 THEN 'running' WHEN i % 20 < 18 THEN 'completed'
	WHEN i % 20 = 18 THEN 'failed' ELSE 'cancelled' END)::awa.job_state AS s) st;
VACUUM ANALYZE awa.jobs;
SQL
echo "loaded $JOBS jobs in $(( $(ms) - t0 )) ms; awa.jobs $($PSQL -d "$DB" -c "SELECT pg_size_pretty(pg_total_relation_size('awa.jobs'))") (table and indexes)"
$PSQL -d "$DB" -c "COPY (SELECT state, count(*) FROM awa.jobs GROUP BY 1 ORDER BY 1) TO STDOUT" > /tmp/upgrade_ring.$$.before
$PSQL -d postgres -c "CREATE DATABASE ${DB}_table TEMPLATE $DB" || die "copying the database"
$PSQL -d "$DB" -c CHECKPOINT
t0=$(ms)
$PSQL -d "${DB}_table" -c "ALTER EXTENSION awa UPDATE" || die "upgrade (table engine)"
t1=$(ms)
PGOPTIONS="-c awa.install_engine=ring" $PSQL -d "$DB" -c "ALTER EXTENSION awa UPDATE" || die "upgrade (ring engine)"
t2=$(ms)
echo "ALTER EXTENSION awa UPDATE: table engine $((t1 - t0)) ms, ring engine (moving every job) $((t2 - t1)) ms"
$PSQL -d "$DB" -c "COPY (SELECT state, count(*) FROM awa.jobs GROUP BY 1 ORDER BY 1) TO STDOUT" > /tmp/upgrade_ring.$$.after
diff /tmp/upgrade_ring.$$.before /tmp/upgrade_ring.$$.after || die "jobs per state differ after the move (< before, > after)"
rm -f /tmp/upgrade_ring.$$.*
echo "jobs per state unchanged; sizes after the move (table and indexes):"
$PSQL -d "$DB" -c "SELECT r, pg_size_pretty(pg_total_relation_size(('awa.' || r)::regclass)
		+ coalesce((SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i WHERE i.inhparent = ('awa.' || r)::regclass), 0))
	FROM unnest(ARRAY['ready', 'claims', 'done', 'beats', 'scheduled', 'ring_history', 'unique_keys', 'jobs_table']) r" \
	| sed 's/^/  /'
