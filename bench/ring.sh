#!/usr/bin/env bash
# Case 5's shape (bench/run.sh) on the ring's internal functions (src/ring.c) against awa's current claim
# path: a queue of RING_JOBS available jobs drained by 2 pgbench clients, each transaction a claim of 10 and
# one completion of those 10, capped at RING_MAXTIME seconds, while a third session holds a REPEATABLE READ
# snapshot with an xid ("rr") or with nothing held ("none").  Prints per variant and round: jobs/s of the first
# and last tenth of the per-second samples (without the partial last second of a drain that finished), their
# ratio, jobs done, then per relation live and dead tuples,
# heap and index sizes at the end of the drain (before anything is cleaned up) of every relation of schema awa
# the drain wrote to.
#
#   awa   awa_claim(queue, batch => 10) + awa_complete_many(ids, leases)   (awa.jobs, updated in place)
#   ring  awa.ring_claim(queue, 10) + awa.ring_complete_many(ids, leases)  (awa.ready / claims / done)
#   engine  awa_claim(queue, batch => 10) + awa_complete_many(ids, leases) in a second database, RING_DB_engine,
#         created with awa.install_engine = ring: awa's own API on the ring (its jobs enqueued by INSERT into
#         the awa.jobs view)
#
# The ring's functions are internal and switched off; this script turns awa.ring_engine on for its own
# sessions (PGOPTIONS), which needs a superuser.  Run against a scratch database of a development cluster:
#   PGHOST=... PGPORT=... PGUSER=postgres RING_DB=awa_ring_bench bench/ring.sh
# Settings: RING_JOBS (150000), RING_MAXTIME (45), RING_ROUNDS (1), RING_VARIANTS ("awa ring engine"),
# RING_HOLDERS ("rr"), RING_CLIENTS (2), RING_OUT (a file for the raw rows; default: a temporary file),
# RING_MODE (drain, or work: see work() below).
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB=${RING_DB:-awa_ring_bench}
JOBS=${RING_JOBS:-150000}
MAXTIME=${RING_MAXTIME:-45}
ROUNDS=${RING_ROUNDS:-1}
VARIANTS=${RING_VARIANTS:-awa ring engine}
HOLDERS=${RING_HOLDERS:-rr}
CLIENTS=${RING_CLIENTS:-2}
BATCH=10
TMP=$(mktemp -d /tmp/awa_ring_bench.XXXXXX)
OUT=${RING_OUT:-$TMP/raw.tsv}
trap 'rm -rf "$TMP"' EXIT
export PGDATABASE=$DB
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
qr() { PGOPTIONS="-c awa.ring_engine=on" "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
log() { echo "# $*" >&2; }

"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" || exit 1
q "CREATE EXTENSION awa" || exit 1
if [[ " $VARIANTS " == *" engine "* ]]; then
	"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_engine WITH (FORCE)" \
		-c "CREATE DATABASE ${DB}_engine" || exit 1
	PGDATABASE=${DB}_engine PGOPTIONS="-c awa.install_engine=ring" q "CREATE EXTENSION awa" || exit 1
fi
# the database a variant runs in
use_db() { if [ "$1" = engine ]; then export PGDATABASE=${DB}_engine; else export PGDATABASE=$DB; fi; }

cat >"$TMP/awa.sql" <<'SQL'
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa_claim('vac', batch => 10) \gset
SELECT awa_complete_many(:ids, :leases);
SQL
cat >"$TMP/ring.sql" <<'SQL'
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa.ring_claim('vac', 10) \gset
SELECT count(*) FROM awa.ring_complete_many(:ids, :leases);
SQL
cp "$TMP/awa.sql" "$TMP/engine.sql"

load() {
	use_db "$1"
	if [ "$1" = engine ]; then q "TRUNCATE awa.ready, awa.claims, awa.done"
	else q "TRUNCATE awa.jobs, awa.ready, awa.claims, awa.done"; fi
	case $1 in
	engine) q "INSERT INTO awa.jobs (kind, queue, args, run_at)
	           SELECT 'k', 'vac', jsonb_build_object('n', i), now() - interval '1 hour' + i * interval '1 ms'
	             FROM generate_series(1, $JOBS) i" ;;
	awa) q "INSERT INTO awa.jobs (kind, queue, args, state, run_at)
	        SELECT 'k', 'vac', jsonb_build_object('n', i), 'available', now() - interval '1 hour' + i * interval '1 ms'
	          FROM generate_series(1, $JOBS) i" ;;
	ring) qr "SELECT count(awa.ring_insert('k', jsonb_build_object('n', i), 'vac',
	                                       run_at => now() - interval '1 hour' + i * interval '1 ms'))
	            FROM generate_series(1, $JOBS) i" >/dev/null ;;
	esac
	q "VACUUM ANALYZE" && q "CHECKPOINT"
	sleep 2
	# what each relation of schema awa had written before the drain (relations() reports those the drain wrote)
	q "DROP TABLE IF EXISTS public.ring_bench_before;
	   CREATE TABLE public.ring_bench_before AS
	   SELECT relid, n_tup_ins + n_tup_upd + n_tup_del AS writes FROM pg_stat_user_tables WHERE schemaname = 'awa'"
}
done_count() {
	case $1 in
	awa) q "SELECT count(*) FROM awa.jobs WHERE state = 'completed'" ;;
	ring | engine) q "SELECT count(*) FROM awa.done WHERE state = 'completed'" ;;
	esac
}
relations() {
	local v=$1 h=$2 r=$3
	sleep 2	# table statistics reach the collector within a second of each transaction's end
	q "SELECT '$v', '$h', $r, s.relname, s.n_live_tup, s.n_dead_tup,
	          pg_table_size(s.relid), pg_indexes_size(s.relid)
	     FROM pg_stat_user_tables s LEFT JOIN public.ring_bench_before b USING (relid)
	    WHERE s.schemaname = 'awa' AND s.n_tup_ins + s.n_tup_upd + s.n_tup_del > coalesce(b.writes, 0)
	    ORDER BY pg_total_relation_size(s.relid) DESC" | tr '|' '\t' | sed 's/^/rel\t/' >>"$OUT"
}

drain() {
	local v=$1 h=$2 r=$3 holder="" prog=$TMP/progress first last done
	load "$v"
	if [ "$h" = rr ]; then
		PGAPPNAME=ring_bench_holder "$PG_BIN/psql" -X -q -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(); SELECT pg_sleep(100000);" >/dev/null 2>&1 &
		holder=$!
		sleep 1
	fi
	PGOPTIONS="-c awa.ring_engine=on" timeout --signal=INT "$MAXTIME" "$PG_BIN/pgbench" -n -M prepared \
		-c "$CLIENTS" -j "$CLIENTS" -t $((JOBS / CLIENTS / BATCH)) --progress=1 -f "$TMP/$v.sql" \
		>"$TMP/pgbench.log" 2>"$prog" || true
	done=$(done_count "$v")
	relations "$v" "$h" "$r"
	if [ -n "$holder" ]; then
		q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ring_bench_holder'" >/dev/null
		wait "$holder" 2>/dev/null || true
	fi
	# the tenths of the per-second samples; when the drain ended before the cap, its last sample (the second
	# in which the clients ran out of jobs, one after the other) is left out
	read -r first last n < <(awk -v b=$BATCH -v all=$([ "$done" = "$JOBS" ] && echo 1 || echo 0) '/^progress:/ { n++; v[n] = $4 * b }
		END { if (all && n > 2) n--; k = int(n / 10); if (k < 1) k = 1; for (i = 1; i <= k; i++) f += v[i];
		      for (i = n - k + 1; i <= n; i++) l += v[i]; printf "%.0f %.0f %d\n", f / k, l / k, n }' "$prog")
	printf 'drain\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$h" "$r" "$first" "$last" "$done" "$n" >>"$OUT"
	log "$v ($h, round $r): first tenth $first jobs/s, last tenth $last, $done of $JOBS jobs done in $n s"
}

# RING_MODE=work: instead of the drains' rates, which a shared machine makes noisy, the work of one claim of 10
# plus its completion (one statement, EXPLAIN ANALYZE BUFFERS of it: the buffers of everything the functions
# ran) at the head of a fresh queue and again after 90% of it was drained by the 2 clients, with the holder.
work_samples() {	# VARIANT N -> N lines "buffers ms", each one claim + complete, all in one session (the first
	# call, which prepares the functions' plans, is left out)
	/usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys, psycopg
v, n = sys.argv[1], int(sys.argv[2])
stmt = {"awa": "SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) FROM awa_claim('vac', batch => 10)",
        "engine": "SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) FROM awa_claim('vac', batch => 10)",
        "ring": "WITH c AS MATERIALIZED (SELECT * FROM awa.ring_claim('vac', 10)) SELECT count(*) FROM "
                "awa.ring_complete_many((SELECT array_agg(id) FROM c), (SELECT array_agg(run_lease) FROM c))"}[v]
with psycopg.connect(autocommit=True, options="-c awa.ring_engine=on") as conn:
    for i in range(n + 1):
        p = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + stmt).fetchone()[0][0]
        if i:
            print(p["Plan"]["Shared Hit Blocks"] + p["Plan"]["Shared Read Blocks"], round(p["Execution Time"], 3))
PY
}
work() {
	local v=$1 h=$2 r=$3 holder=""
	load "$v"
	if [ "$h" = rr ]; then
		PGAPPNAME=ring_bench_holder "$PG_BIN/psql" -X -q -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(); SELECT pg_sleep(100000);" >/dev/null 2>&1 &
		holder=$!
		sleep 1
	fi
	work_samples "$v" 20 | sed "s/^/work\t$v\t$h\t$r\tfirst\t/" | tr ' ' '\t' >>"$OUT"
	PGOPTIONS="-c awa.ring_engine=on" "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" \
		-t $((JOBS * 9 / 10 / CLIENTS / BATCH)) -f "$TMP/$v.sql" >"$TMP/pgbench.log" 2>&1 || true
	work_samples "$v" 20 | sed "s/^/work\t$v\t$h\t$r\tlast\t/" | tr ' ' '\t' >>"$OUT"
	if [ -n "$holder" ]; then
		q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ring_bench_holder'" >/dev/null
		wait "$holder" 2>/dev/null || true
	fi
	log "$v ($h, round $r): work measured"
}
if [ "${RING_MODE:-drain}" = work ]; then
	for r in $(seq 1 "$ROUNDS"); do
		for h in $HOLDERS; do
			for v in $VARIANTS; do work "$v" "$h" "$r"; done
		done
	done
	echo "variant holder round where median_buffers median_ms (of 20 claims of 10 + their completion)"
	/usr/bin/python3 - "$OUT" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "work":
        rows.setdefault(tuple(f[1:5]), []).append((float(f[5]), float(f[6])))
for k in sorted(rows):
    v = rows[k]
    print(*k, round(statistics.median(b for b, _ in v)), statistics.median(m for _, m in v))
PY
	exit 0
fi

log "$JOBS jobs, cap $MAXTIME s, $CLIENTS clients, batch $BATCH, rounds $ROUNDS, holders: $HOLDERS"
for r in $(seq 1 "$ROUNDS"); do
	for h in $HOLDERS; do
		for v in $VARIANTS; do drain "$v" "$h" "$r"; done
	done
done

echo "variant holder round first_tenth last_tenth last/first jobs_done seconds"
awk -F'\t' '$1 == "drain" { printf "%s %s %s %s %s %.2f %s %s\n", $2, $3, $4, $5, $6, ($5 > 0 ? $6 / $5 : 0), $7, $8 }' "$OUT"
echo
echo "variant holder round relation live dead heap_bytes index_bytes"
awk -F'\t' '$1 == "rel" { print $2, $3, $4, $5, $6, $7, $8, $9 }' "$OUT"
