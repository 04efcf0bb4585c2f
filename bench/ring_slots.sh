#!/usr/bin/env bash
# The ring's slots (src/ring_slots.c): what sealing and reclaiming give back, and what they cost a drain.
#
#   size     SLOTS_JOBS (50000) jobs loaded into the ring and drained by 2 pgbench clients (a claim of 10 and
#            one completion of those 10 per transaction), then one maintenance round (awa.ring_rotate +
#            awa.ring_reclaim) with awa.retention_completed = 0 (completed jobs are not kept) and, on a second
#            load, with the default retention (a day: they are kept, in the history of finished jobs,
#            awa.ring_history).  Prints the total size (heap + indexes + toast) of every relation of the ring
#            (the history included), after the drain and after the round.
#   move     SLOTS_JOBS jobs loaded and drained as for size, the slot sealed, 20000 jobs of another queue waiting in
#            the open slot and claimed one by one by a pgbench client for 6 s while awa.ring_reclaim runs, with the
#            default retention (the drained jobs move into awa.ring_history) and with retention 0 (truncated).
#            Prints the reclaim's outcome and duration and the claims' latencies (median, p99, longest).
#   latency  SLOTS_LAT_JOBS (160000) jobs loaded into the four slots (a quarter each, oldest first, three sealed),
#            drained by 2 pgbench clients as above, once with nothing else running and once while a third
#            session runs awa.ring_rotate(SLOTS_LAT_JOBS / 4) and awa.ring_reclaim() every second
#            (awa.retention_completed = 0: each drained slot is truncated while the clients claim from the next).
#            Prints per run the transaction latencies (claim of 10 + completion; pgbench's per-transaction log):
#            median, p99, p99.9 and the longest, the drain's duration, and the maintenance rounds' outcomes and
#            their longest call.
#
# The ring's functions are internal and switched off; this script turns awa.ring_engine on for its own
# sessions (PGOPTIONS), which needs a superuser.  Run against a scratch database of a development cluster:
#   PGHOST=... PGPORT=... PGUSER=postgres SLOTS_DB=awa_slots_bench bench/ring_slots.sh [size|latency|move]...
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DB=${SLOTS_DB:-awa_slots_bench}
JOBS=${SLOTS_JOBS:-50000}
LAT_JOBS=${SLOTS_LAT_JOBS:-160000}
CLIENTS=2
BATCH=10
TMP=$(mktemp -d /tmp/awa_slots_bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT
export PGDATABASE=$DB PGOPTIONS="-c awa.ring_engine=on"
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" || exit 1
q "CREATE EXTENSION awa" || exit 1

cat >"$TMP/drain.sql" <<'SQL'
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa.ring_claim('sl', 10) \gset
SELECT count(*) FROM awa.ring_complete_many(:ids, :leases);
SQL

# every relation of the ring: awa.ring_slots, the history of finished jobs (awa.ring_history) and every relation
# partitioned by slot with its partitions
RING_RELS="SELECT c.oid FROM pg_class c WHERE c.oid IN ('awa.ring_slots'::regclass, 'awa.ring_history'::regclass)
	UNION ALL SELECT p.partrelid FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
	  JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
	 WHERE c.relnamespace = 'awa'::regnamespace AND a.attname = 'slot'
	UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN pg_partitioned_table p ON p.partrelid = i.inhparent
	  JOIN pg_class c ON c.oid = p.partrelid JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
	 WHERE c.relnamespace = 'awa'::regnamespace AND a.attname = 'slot'"
ring_size() { q "SELECT round(sum(pg_total_relation_size(oid)) / 1048576.0, 2) || ' MiB (' || count(*) || ' relations)' FROM ($RING_RELS) r(oid)"; }

reset_ring() {
	q "TRUNCATE awa.ready, awa.claims, awa.done, awa.ring_history; UPDATE awa.ring_slots SET state = 'sealed'; UPDATE awa.ring_slots SET state = 'open', opened_at = now() WHERE slot = 0"
}
load() {	# $1 jobs into the open slot, run_at from $2 minutes ago
	q "SELECT count(awa.ring_insert('k', jsonb_build_object('n', i), 'sl',
	          run_at => now() - interval '$2 minutes' + i * interval '1 ms'))
	     FROM generate_series(1, $1) i" >/dev/null
}
drain() {	# $1 jobs; extra pgbench options after
	local n=$1; shift
	bench_ring_drain "$n" "$TMP" "$CLIENTS" "$BATCH" "$@"
}

size() {
	local retention
	for retention in 0 86400; do
		reset_ring
		load "$JOBS" 60
		q "VACUUM ANALYZE" && q "CHECKPOINT"
		drain "$JOBS"
		echo "size: retention_completed=$retention: after loading and draining $JOBS jobs: $(ring_size)" \
			"(completed: $(q "SELECT count(*) FROM awa.done WHERE state = 'completed'"))"
		q "SELECT 'rotate: ' || outcome FROM awa.ring_rotate(1, '1 hour')"
		q "SET awa.retention_completed = $retention;
		   SELECT 'reclaim: slot ' || slot || ' ' || outcome || ' (carried ' || carried || ')'
		     FROM awa.ring_reclaim() WHERE outcome <> 'empty'"
		echo "size: retention_completed=$retention: after one maintenance round: $(ring_size)"
		q "SELECT 'size:   ' || c.relname || ' ' || pg_size_pretty(pg_total_relation_size(r.oid))
		     FROM ($RING_RELS) r(oid) JOIN pg_class c ON c.oid = r.oid
		    WHERE pg_total_relation_size(r.oid) > 0 ORDER BY pg_total_relation_size(r.oid) DESC"
	done
}

latency() {
	local quarter=$((LAT_JOBS / 4)) run i
	for run in none maintenance; do
		reset_ring
		for i in 0 1 2 3; do
			load $quarter $((240 - i * 60))
			q "SELECT outcome FROM awa.ring_rotate($quarter, '1 hour')" >/dev/null
		done
		q "VACUUM ANALYZE" && q "CHECKPOINT"
		rm -f "$TMP"/lat.* "$TMP/maint.log"
		local maint=""
		if [ $run = maintenance ]; then
			(while true; do
				"$PG_BIN/psql" -X -q -At -c "SET awa.retention_completed = 0" -c '\timing on' \
					-c "SELECT 'rotate', outcome FROM awa.ring_rotate($quarter, '1 hour')" \
					-c "SELECT 'reclaim', slot, outcome FROM awa.ring_reclaim() WHERE outcome <> 'empty'" \
					>>"$TMP/maint.log" 2>&1
				sleep 1
			done) &
			maint=$!
		fi
		local t0; t0=$(date +%s.%N)
		drain "$LAT_JOBS" -l --log-prefix="$TMP/lat"
		local t1; t1=$(date +%s.%N)
		if [ -n "$maint" ]; then kill $maint; wait $maint 2>/dev/null; fi
		cat "$TMP"/lat.* | awk '{print $3}' | sort -n >"$TMP/lat.sorted"
		awk -v run=$run -v secs="$(echo "$t1 - $t0" | bc)" '{a[NR]=$1} END {
			printf "latency: %s: %d transactions in %.1f s; latency ms: median %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
				run, NR, secs, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, a[int(NR*0.999)]/1000, a[NR]/1000 }' \
			"$TMP/lat.sorted"
		echo "latency: $run: completed $(q "SELECT count(*) FROM awa.done WHERE state = 'completed'")," \
			"left $(q "SELECT count(*) FROM awa.ready r WHERE NOT EXISTS (SELECT 1 FROM awa.claims c WHERE c.job_id = r.id)")"
		if [ -f "$TMP/maint.log" ]; then
			echo "latency: $run: maintenance outcomes: $(grep -E '^(rotate|reclaim)' "$TMP/maint.log" | sort | uniq -c | tr '\n' ';')"
			echo "latency: $run: longest maintenance call: $(grep -oE '^Time: [0-9.]+' "$TMP/maint.log" | awk '{print $2}' | sort -n | tail -1) ms"
			echo "latency: $run: reclaimed calls: $(grep -B0 -A1 'reclaimed' "$TMP/maint.log" | grep -oE '^Time: [0-9.]+' | awk '{print $2}' | tr '\n' ' ') ms"
		fi
		echo "latency: $run: ring after: $(ring_size)"
	done
}

move() {	# the history of finished jobs: claims of another queue while a reclaim moves SLOTS_JOBS finished jobs
	local retention
	for retention in 86400 0; do
		reset_ring
		load "$JOBS" 60
		q "VACUUM ANALYZE" && q "CHECKPOINT"
		drain "$JOBS"
		q "SELECT 'rotate: ' || outcome FROM awa.ring_rotate(1, '1 hour')"
		q "SELECT count(awa.ring_insert('k', '{}', 'ot', run_at => now() - interval '2 hours'))
		     FROM generate_series(1, 20000)" >/dev/null
		q "VACUUM ANALYZE"
		echo "SELECT count(*) FROM awa.ring_claim('ot', 1);" >"$TMP/claim1.sql"
		rm -f "$TMP"/mv.*
		"$PG_BIN/pgbench" -n -M prepared -c 1 -T 6 -f "$TMP/claim1.sql" -l --log-prefix="$TMP/mv" >/dev/null 2>&1 &
		local bench=$!
		sleep 1
		local i out
		for i in $(seq 20); do	# a claim in progress makes the slot busy: again, as the next round would
			out=$("$PG_BIN/psql" -X -q -At -c "SET awa.retention_completed = $retention" -c '\timing on' \
				-c "SELECT 'reclaim: slot ' || slot || ' ' || outcome || ' (retained ' || retained || ')'
				      FROM awa.ring_reclaim() WHERE outcome <> 'empty'")
			echo "$out" | sed "s/^/move: retention_completed=$retention: /"
			echo "$out" | grep -q busy || break
			sleep 0.1
		done
		wait $bench
		cat "$TMP"/mv.* | awk '{print $3}' | sort -n | awk -v r=$retention '{a[NR]=$1} END {
			printf "move: retention_completed=%s: %d claims of another queue; ms: median %.2f, p99 %.2f, max %.2f\n",
				r, NR, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, a[NR]/1000 }'
		q "TRUNCATE awa.ring_history"
	done
}

for mode in "${@:-size latency}"; do
	for m in $mode; do "$m"; done
done
