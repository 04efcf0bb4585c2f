#!/usr/bin/env bash
# The maintenance round on the ring (src/ring_maint.c): what a round costs when it has nothing to do, and what
# rounds every second cost a drain.
#
#   idle   MAINT_JOBS (200000) jobs inserted into the ring, claimed and completed (2 pgbench clients, a claim of 10
#          and one completion of those 10 per transaction), default retention (a day: the finished jobs are
#          kept); one round seals the slot (100,000 rows reached), then MAINT_ROUNDS (20) rounds with nothing to
#          do.  Prints the median and longest of EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM awa_maintain() (its
#          buffers count everything the round ran, awa.jobs' steps too), then the same for each ring function
#          the round calls, then the round on a database whose ring was never used (awa.jobs' steps only).
#   drain  MAINT_DRAIN_JOBS (100000) jobs loaded into the ring and drained by 2 pgbench clients as above, once
#          alone and once while a third session (one session, as the background worker) runs
#          SELECT * FROM awa_maintain() every second (psql's \watch 1) with
#          awa.retention_completed = 0; the jobs are loaded a quarter per slot (slots 0-2 sealed, 3 open), so
#          the rounds reclaim each drained slot while the clients claim from the next.  MAINT_DRAIN_REPEAT (3)
#          pairs of runs, alternating.  Prints
#          per run the transaction latencies from pgbench's per-transaction log (median, p99, p99.9, longest),
#          the drain's duration, the rounds' longest and median duration.
#
# The ring's functions are internal and switched off; this script turns awa.ring_engine on for its own
# sessions (PGOPTIONS), which needs a superuser.  The rounds themselves need no switch.  Run against a scratch
# database of a development cluster without awa's background worker in it (awa.databases = ''):
#   PGHOST=... PGPORT=... PGUSER=postgres MAINT_DB=awa_maint_bench bench/ring_maint.sh [idle|drain]...
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DB=${MAINT_DB:-awa_maint_bench}
JOBS=${MAINT_JOBS:-200000}
ROUNDS=${MAINT_ROUNDS:-20}
DRAIN_JOBS=${MAINT_DRAIN_JOBS:-100000}
CLIENTS=2
BATCH=10
TMP=$(mktemp -d /tmp/awa_maint_bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT
export PGDATABASE=$DB PGOPTIONS="-c awa.ring_engine=on"
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

fresh_db() {
	"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" || exit 1
	q "CREATE EXTENSION awa" || exit 1
}

cat >"$TMP/drain.sql" <<'SQL'
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa.ring_claim('rm', 10) \gset
SELECT count(*) FROM awa.ring_complete_many(:ids, :leases);
SQL

load() {	# $1 jobs into the open slot, due from an hour ago (later loads after earlier ones)
	q "SELECT count(awa.ring_insert('k', jsonb_build_object('n', i), 'rm',
	          run_at => now() - interval '1 hour' + i * interval '10 us'))
	     FROM generate_series(1, $1) i" >/dev/null
}
drain() {	# $1 jobs; extra pgbench options after
	local n=$1; shift
	bench_ring_drain "$n" "$TMP" "$CLIENTS" "$BATCH" "$@"
}

# $1 a statement; $2 label: median and longest ms and buffers of $ROUNDS runs in one session (plans made once)
explained() {
	local i
	{
		for i in $(seq 1 "$ROUNDS"); do
			echo "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) $1;"
		done
	} | "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 >"$TMP/explain.out" 2>&1 || { cat "$TMP/explain.out"; exit 1; }
	grep -E '^Execution Time' "$TMP/explain.out" | awk '{print $3}' | sort -n >"$TMP/ms"
	# the first Buffers line of each plan is its top node's: everything the statement ran
	awk '/^(Function Scan|Result|ProjectSet)/ {top=1; next} top && /Buffers:/ {
			n=0; for (i=1;i<=NF;i++) if ($i ~ /^(hit|read|dirtied|written)=/) {split($i,a,"="); if ($i ~ /^(hit|read)=/) n+=a[2]}
			print n; top=0 }' "$TMP/explain.out" | sort -n >"$TMP/buf"
	awk -v label="$2" 'NR==FNR {m[NR]=$1; nm=NR; next} {b[FNR]=$1; nb=FNR} END {
		printf "%s: ms median %.2f, max %.2f; buffers median %d, max %d (%d runs)\n", label,
			m[int((nm+1)/2)], m[nm], b[int((nb+1)/2)], b[nb], nm }' "$TMP/ms" "$TMP/buf"
}

idle() {
	fresh_db
	explained "SELECT * FROM awa_maintain()" "idle: a round, the ring never used"
	load "$JOBS"
	q "VACUUM ANALYZE" && q "CHECKPOINT"
	drain "$JOBS"
	echo "idle: $(q "SELECT count(*) FROM awa.done WHERE state = 'completed'") ring jobs completed"
	q "SELECT 'idle: first round: promoted ' || promoted || ', rescued ' || rescued || ', ' || round(duration_ms::numeric, 1) || ' ms' FROM awa_maintain()"
	q "SELECT 'idle: slots after it: ' || string_agg(slot || ' ' || state, ', ' ORDER BY slot) FROM awa.ring_slots"
	q "VACUUM ANALYZE" && q "CHECKPOINT"
	explained "SELECT * FROM awa_maintain()" "idle: a round with nothing to do, $JOBS finished ring jobs"
	explained "SELECT awa.ring_promote(10000)" "idle:   awa.ring_promote(10000)"
	explained "SELECT awa.ring_rescue(1000)" "idle:   awa.ring_rescue(1000)"
	explained "SELECT * FROM awa.ring_rotate()" "idle:   awa.ring_rotate() (the round skips it: open slot empty)"
	explained "SELECT * FROM awa.ring_reclaim(1000)" "idle:   awa.ring_reclaim(1000) (the sealed slot: kept)"
	q "SELECT 'idle: reclaim says: ' || string_agg(slot || ' ' || outcome, ', ' ORDER BY slot) FROM awa.ring_reclaim(1000)"
}

drain_runs() {
	local run i rep
	for rep in $(seq 1 "${MAINT_DRAIN_REPEAT:-3}"); do
	for run in none rounds; do
		fresh_db
		# a quarter per slot, oldest first: slots 0-2 sealed, 3 open (the rounds reclaim each drained slot
		# while the clients claim from the next)
		for i in 0 1 2 3; do
			load $((DRAIN_JOBS / 4))
			[ $i -lt 3 ] && q "SELECT outcome FROM awa.ring_rotate($((DRAIN_JOBS / 4)), '1 hour')" >/dev/null
		done
		q "VACUUM ANALYZE" && q "CHECKPOINT"
		rm -f "$TMP"/lat.* "$TMP/maint.log"
		local maint=""
		if [ $run = rounds ]; then
			# one session, as awa's background worker: a round, then a second's pause (psql's \watch)
			printf '%s\n' "SET awa.retention_completed = 0;" "SET awa.maintenance_log_level = notice;" \
				"SELECT 'round', promoted, rescued, round(duration_ms::numeric, 2) FROM awa_maintain() \\watch 1" |
				"$PG_BIN/psql" -X -q -At >"$TMP/maint.log" 2>&1 &
			maint=$!
		fi
		local t0; t0=$(date +%s.%N)
		drain "$DRAIN_JOBS" -l --log-prefix="$TMP/lat"
		local t1; t1=$(date +%s.%N)
		if [ -n "$maint" ]; then kill $maint; wait $maint 2>/dev/null; fi
		cat "$TMP"/lat.* | awk '{print $3}' | sort -n >"$TMP/lat.sorted"
		awk -v run=$run -v secs="$(echo "$t1 - $t0" | bc)" '{a[NR]=$1} END {
			printf "drain: %s: %d transactions in %.1f s; claim of 10 + completion, ms: median %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
				run, NR, secs, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, a[int(NR*0.999)]/1000, a[NR]/1000 }' \
			"$TMP/lat.sorted"
		echo "drain: $run: left unclaimed $(q "SELECT count(*) FROM awa.ready r WHERE NOT EXISTS
				(SELECT 1 FROM awa.claims c WHERE c.job_id = r.id AND c.run_lease = r.run_lease + 1)")," \
			"ring rows left (ready, receipts, done) $(q "SELECT (SELECT count(*) FROM awa.ready) || ', ' ||
				(SELECT count(*) FROM awa.claims) || ', ' || (SELECT count(*) FROM awa.done)")," \
			"slots $(q "SELECT string_agg(slot || ' ' || state, ', ' ORDER BY slot) FROM awa.ring_slots")"
		if [ -f "$TMP/maint.log" ]; then
			grep -v '^round|' "$TMP/maint.log" | grep -v 'ring slots' | head -5
			echo "drain: rounds' ring events: $(grep -oE 'ring slots sealed [0-9]+, reclaimed [0-9]+' "$TMP/maint.log" | sort | uniq -c | tr '\n' ';')"
			awk -F'|' '/^round/ {print $4}' "$TMP/maint.log" | sort -n | awk '{d[NR]=$1} END {
				printf "drain: rounds: %d during the drain; duration ms: median %.2f, max %.2f\n", NR, d[int((NR+1)/2)], d[NR] }'
		fi
	done
	done
}

for mode in "${@:-idle drain}"; do
	for m in $mode; do
		case $m in
			idle) idle ;;
			drain) drain_runs ;;
			*) echo "unknown mode $m (idle, drain)"; exit 2 ;;
		esac
	done
done
