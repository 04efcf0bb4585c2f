#!/usr/bin/env bash
# bench/prototypes/run.sh — measure the storage-engine prototypes (docs/storage.md) on bench case 5.
#
# Needs a running PostgreSQL 15 cluster with awa installed (the prototypes borrow awa.jobs' shape and
# awa.job_state) and pgbench; connection from the usual PG* variables.  From a fresh clone, as root:
#
#   export PG_BIN=/usr/lib/postgresql/15/bin PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
#   source scripts/lib.sh; awa_build_install
#   awa_cluster_start /tmp/awa-proto 55600 fsync=off awa.databases= shared_buffers=1GB max_wal_size=8GB
#   bench/prototypes/run.sh setup c5 size stats enq      # (all phases: about 25-30 minutes on 2 cores)
#   awa_cluster_stop /tmp/awa-proto
#
# Phases (arguments, in any order):
#   setup  create database $P_DB and the three prototypes (base.sql, cursor.sql, ring.sql)
#   c5     case 5: drain P5_JOBS jobs with 2 pgbench clients, batch 10, with a REPEATABLE READ snapshot held by a
#          third session for the whole run ("held") and without ("clean"); variants alternate, order rotating
#          each round; per-second progress -> first and last tenth; per-relation dead tuples and sizes
#   size   load 50,000 jobs, drain them, one maintenance round; sizes before and after
#   stats  exact stats at 100,000 and 1,000,000 jobs (base: today's statement; ring: folds + deltas), exactness
#          check against a full recount, and the cost with unfolded deltas and with a held snapshot
#   enq    single-row enqueue, 2 clients (plain INSERT vs ring row + counter delta vs ring row alone)
#   wait   where a waiting claimer's snapshot goes (backend_xmin sampled while it waits: today's blocking claim,
#          a sleep inside a statement, a procedure that commits before it sleeps) and the drain of another
#          queue next to each kind of waiter (needs nosnap/ installed: make -C bench/prototypes/nosnap install)
# Results: bench/prototypes/results/raw.tsv (one line per measurement) and the summary printed at the end
# (bench/prototypes/results/summary.txt).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PGDATABASE=${P_DB:-proto}
export PGOPTIONS="-c client_min_messages=warning"
P5_JOBS=${P5_JOBS:-200000}          # case 5: jobs per drain
P5_MAXTIME=${P5_MAXTIME:-60}        # case 5: cap per drain, seconds
ROUNDS=${P_ROUNDS:-2}               # alternating rounds (A B C A B C ...)
VARIANTS=${P_VARIANTS:-base cursor ring}   # also: basepk (base with the completion by primary key)
STATS_SIZES=${P_STATS_SIZES:-100000 1000000}
OUT=${P_OUT:-$HERE/results}     # P_OUT: another results directory (e.g. for a long run)
RAW=$OUT/raw.tsv
mkdir -p "$OUT/tmp"

psqlq() { "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
q() { psqlq <<<"$1"; }
log() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
record() { printf '%s\n' "$(IFS=$'\t'; echo "$*")" >>"$RAW"; }

# tables and sequences of a variant (for sizes and dead tuples)
schema_of() { case $1 in base | basepk) echo p_base ;; cursor) echo p_cur ;; ring) echo p_ring ;; esac; }

load() {   # load VARIANT N
	case $1 in
	base | basepk) q "CALL p_base.load('p_base.jobs', $2)" ;;
	cursor) q "CALL p_base.load('p_cur.jobs', $2); SELECT setval('p_cur.cursor_vac', 0)" >/dev/null ;;
	ring) q "CALL p_ring.load($2)" ;;
	esac
	q "VACUUM ANALYZE" >/dev/null 2>&1 || true
	q "CHECKPOINT"
}

completed() {   # completed VARIANT -> jobs completed
	case $1 in
	base | basepk) q "SELECT count(*) FROM p_base.jobs WHERE state = 'completed'" ;;
	cursor) q "SELECT count(*) FROM p_cur.jobs WHERE state = 'completed'" ;;
	ring) q "SELECT count(*) FROM p_ring.done WHERE state = 'completed'" ;;
	esac
}

# per-relation rows: relation, n_live, n_dead, table size, index size (heap relations of the schema)
relations() {   # relations VARIANT
	q "SELECT format('%s	live=%s	dead=%s	heap=%s	idx=%s', c.relname, s.n_live_tup, s.n_dead_tup,
	              pg_size_pretty(pg_table_size(c.oid)), pg_size_pretty(pg_indexes_size(c.oid)))
	     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	     LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
	    WHERE n.nspname = '$(schema_of "$1")' AND c.relkind = 'r' ORDER BY c.relname"
}
total_size() {  # total bytes of the variant's tables and indexes
	q "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	    WHERE n.nspname = '$(schema_of "$1")' AND c.relkind = 'r'"
}

# holder_start [MODE]: a third session that holds (or not) the xmin horizon for the whole run
#   held      BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(); then sleeps (bench case 5)
#   awawait   a worker of another, idle queue in today's blocking claim: SELECT awa_claim(..., wait => 1 hour)
#   callwait  the same wait as a procedure that commits before each sleep (nosnap/: CALL nosnap_wait)
holder_start() {
	local -a sql
	case ${1:-held} in
	held) sql=(-c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT txid_current()" -c "SELECT pg_sleep(100000)") ;;
	awawait) sql=(-c "SELECT count(*) FROM awa_claim('nosnap-idle', wait => '1 hour')") ;;
	callwait) sql=(-c "CALL nosnap_wait(3600000, 1000)") ;;
	esac
	PGAPPNAME=proto_xmin_holder "$PG_BIN/psql" -X -q "${sql[@]}" >/dev/null 2>&1 &
	HOLDER=$!
	until [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'proto_xmin_holder' AND state = 'active'
	               AND query ~ '(pg_sleep|awa_claim|nosnap_wait)'")" = 1 ]; do sleep 0.1; done
}
holder_stop() {
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'proto_xmin_holder'" >/dev/null
	wait "$HOLDER" 2>/dev/null || true
}

# drain VARIANT HELD ROUND: one case 5 run
drain() {
	local v=$1 held=$2 r=$3 prog log t0 t1 fl ndone secs
	load "$v" "$P5_JOBS"
	[ "$held" = clean ] || holder_start "$held"
	prog=$OUT/tmp/c5_${v}_${held}_$r.progress
	log=$OUT/tmp/c5_${v}_${held}_$r.log
	t0=$(date +%s.%N)
	timeout --signal=INT "$P5_MAXTIME" "$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -t $((P5_JOBS / 2 / 10)) \
		--progress=1 -f "$HERE/${v}_cc.sql" >"$log" 2>"$prog" || true
	t1=$(date +%s.%N)
	# a client stopped by the cap leaves its backend running its statement until it next writes to the socket
	q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgbench' AND datname = current_database()" >/dev/null
	if grep -qE "aborted|ERROR" "$prog" "$log"; then log "pgbench reported errors ($v $held $r):"; grep -E "aborted|ERROR" "$prog" "$log" | head -3 >&2; fi
	sleep 1   # let the backends' statistics reach pg_stat_user_tables
	if [ "$held" != clean ]; then
		[ "$held" != held ] || relations "$v" | sed "s/^/$v\t$r\t/" >"$OUT/tmp/c5_${v}_rel_$r.tsv"
		holder_stop
	fi
	ndone=$(completed "$v")
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	# jobs/s per second of --progress (tps x 10); first and last tenth of the seconds
	fl=$(awk '/^progress:/ { n++; v[n] = $4 * 10 }
		END { k = int(n / 10); if (k < 1) k = 1; for (i = 1; i <= k; i++) f += v[i];
		      for (i = n - k + 1; i <= n; i++) l += v[i]; printf "%.0f %.0f", f / k, l / k }' "$prog")
	record c5 "$v" "$held" "$r" "${fl% *}" "${fl#* }" "$secs" "$ndone"
	log "c5 $v $held round $r: first tenth ${fl% *} jobs/s, last tenth ${fl#* } jobs/s, $ndone jobs in ${secs}s"
}

phase_setup() {
	log "setup: database $PGDATABASE"
	"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE"
	psqlq -c "CREATE EXTENSION awa" -f "$HERE/base.sql" -f "$HERE/cursor.sql" -f "$HERE/ring.sql" >/dev/null
}

phase_c5() {
	local -a vs
	read -ra vs <<<"$VARIANTS"
	local n=${#vs[@]} r i held
	for ((r = 1; r <= ROUNDS; r++)); do
		for held in held clean; do
			for ((i = 0; i < n; i++)); do
				drain "${vs[$(((i + r - 1) % n))]}" "$held" "$r"
			done
		done
	done
}

phase_size() {
	local v before after ndone below
	for v in $VARIANTS; do
		load "$v" 50000
		"$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -t 2500 -f "$HERE/${v}_cc.sql" >/dev/null 2>&1
		# a ring claim racing the other client for the last rows can come back short: take what is left
		[ "$v" != ring ] || q "SELECT p_ring.complete(c.ids, c.leases) FROM p_ring.claim('vac', 1000) c" >/dev/null
		sleep 1
		before=$(total_size "$v")
		ndone=$(completed "$v")
		# jobs the drain left behind below the shared cursor (the floor must never pass one): must be 0
		case $v in
		cursor) below=$(q "SELECT count(*) FROM p_cur.jobs WHERE state = 'available'
		                    AND run_at < to_timestamp(pg_sequence_last_value('p_cur.cursor_vac') / 1e6)") ;;
		ring) below=$(q "SELECT count(*) FROM p_ring.ready r WHERE r.run_at < to_timestamp(pg_sequence_last_value('p_ring.cursor_vac') / 1e6)
		                  AND NOT EXISTS (SELECT 1 FROM p_ring.claims c WHERE c.job_id = r.id)") ;;
		*) below=- ;;
		esac
		case $v in
		base) q "VACUUM p_base.jobs" ;;
		cursor) q "VACUUM p_cur.jobs" ;;
		ring) psqlq -f "$HERE/ring_fold.sql" >/dev/null; psqlq -f "$HERE/ring_maintain.sql" >/dev/null ;;
		esac
		after=$(total_size "$v")
		record size "$v" "$ndone" "$before" "$after" "$below"
		log "size $v: $ndone jobs completed, $below left below the cursor; after drain $((before / 1024)) kB, after maintenance $((after / 1024)) kB"
	done
}

# time_ms SQL REPS -> median milliseconds of REPS runs of SQL (psql \timing)
time_ms() {
	{ echo '\timing on'; for ((k = 0; k < $2; k++)); do echo "$1"; done; } | psqlq 2>&1 |
		awk '/^Time:/ { print $2 }' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
# the same, from inside a REPEATABLE READ transaction (stats at an old snapshot)
phase_stats() {
	local n t
	for n in $STATS_SIZES; do
		log "stats: filling $n jobs"
		q "CALL p_base.fill_stats('p_base.jobs', $n)"; q "VACUUM ANALYZE p_base.jobs"
		t=$(time_ms "SELECT * FROM p_base.stats();" 5)
		record stats base "$n" plain "$t"; log "stats base $n: $t ms"
		q "CALL p_ring.fill_stats($n)"; q "VACUUM ANALYZE p_ring.ready, p_ring.claims, p_ring.done, p_ring.deltas"
		t=$(time_ms "SELECT * FROM p_ring.recount();" 3)
		record stats ring_recount "$n" plain "$t"; log "stats ring full recount $n: $t ms"
		psqlq -f "$HERE/ring_fold.sql" >/dev/null
		q "VACUUM ANALYZE p_ring.deltas, p_ring.folds"
		t=$(time_ms "SELECT * FROM p_ring.stats();" 7)
		record stats ring "$n" folded "$t"; log "stats ring $n just folded: $t ms"
		# 10,000 unfolded deltas (about 2 s of claims and completions at 50,000 jobs/s with batch 10)
		q "INSERT INTO p_ring.deltas (queue, available, running) SELECT 'q' || (i % 10), 0, 0 FROM generate_series(1, 10000) i"
		q "ANALYZE p_ring.deltas"
		t=$(time_ms "SELECT * FROM p_ring.stats();" 7)
		record stats ring "$n" deltas10k "$t"; log "stats ring $n with 10,000 unfolded deltas: $t ms"
		# a held snapshot, a fold during it, more deltas: the reader skips the holder's era by xid range
		holder_start
		psqlq -f "$HERE/ring_fold.sql" >/dev/null
		q "INSERT INTO p_ring.deltas (queue, available, running) SELECT 'q' || (i % 10), 0, 0 FROM generate_series(1, 10000) i"
		psqlq -f "$HERE/ring_fold.sql" >/dev/null
		t=$(time_ms "SELECT * FROM p_ring.stats();" 7)
		record stats ring "$n" held "$t"; log "stats ring $n, snapshot held, after a fold: $t ms"
		holder_stop
		# exactness: stats() equals a full recount at the same snapshot
		local diff
		diff=$(q "BEGIN ISOLATION LEVEL REPEATABLE READ;
		          SELECT count(*) FROM ((SELECT * FROM p_ring.stats() EXCEPT SELECT * FROM p_ring.recount())
		                                UNION ALL (SELECT * FROM p_ring.recount() EXCEPT SELECT * FROM p_ring.stats())) d;
		          COMMIT;")
		record stats ring_exact "$n" rows_differing "$diff"; log "stats ring $n: rows differing from a full recount: $diff"
	done
	q "TRUNCATE p_base.jobs; TRUNCATE p_ring.ready, p_ring.claims, p_ring.done, p_ring.deltas, p_ring.folds"
}

# where a waiting claimer's snapshot goes.  (1) backend_xmin of a waiting session, sampled each
# second while other transactions take xids: today's blocking claim, a sleep inside a statement, and the
# procedure that commits before it sleeps.  (2) the drain of another queue (base and ring) with each kind
# of waiter as the only other session.
phase_wait() {
	local mode k sql
	q "CREATE EXTENSION IF NOT EXISTS nosnap"
	for mode in awawait callwait instatement; do
		case $mode in
		awawait) sql="SELECT count(*) FROM awa_claim('nosnap-idle', wait => '5 s')" ;;
		callwait) sql="CALL nosnap_wait(5000, 1000)" ;;
		instatement) sql="SELECT nosnap_sleep_in_statement(5000)" ;;
		esac
		PGAPPNAME=proto_waiter "$PG_BIN/psql" -X -q -c "$sql" >/dev/null 2>&1 &
		sleep 0.3
		for ((k = 1; k <= 4; k++)); do
			record xmin "$mode" "$k" "$(q "SELECT coalesce(backend_xmin::text, 'none') || ' (next xid ' || txid_current() || ')'
			                               FROM pg_stat_activity WHERE application_name = 'proto_waiter'")"
			sleep 1
		done
		wait
	done
	local -a vs
	read -ra vs <<<"${P6_VARIANTS:-base ring}"
	local r i m
	for ((r = 1; r <= ${P6_ROUNDS:-1}; r++)); do
		for m in awawait callwait; do
			for ((i = 0; i < ${#vs[@]}; i++)); do drain "${vs[$(((i + r - 1) % ${#vs[@]}))]}" "$m" "$r"; done
		done
	done
}

phase_enq() {
	local r f tps
	for ((r = 1; r <= 3; r++)); do
		for f in base_enq ring_enq ring_enq_nodelta; do
			q "TRUNCATE p_base.jobs; TRUNCATE p_ring.ready, p_ring.deltas; CHECKPOINT"
			tps=$("$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -T "${P_ENQ_SECONDS:-5}" -f "$HERE/$f.sql" 2>&1 | awk '/^tps = / { print $3 }')
			record enq "$f" "$r" "$tps"; log "enq $f round $r: $tps tps"
		done
	done
}

summary() {
	/usr/bin/python3 "$HERE/summary.py" "$RAW" "$OUT"/tmp/c5_*_rel_*.tsv | tee "$OUT/summary.txt"
}

[ $# -gt 0 ] || set -- setup c5 size stats enq
for p in "$@"; do
	case $p in
	setup | c5 | size | stats | enq | wait) [ "$p" = setup ] || [ -f "$RAW" ] || : >"$RAW"; "phase_$p" ;;
	summary) ;;
	*) echo "unknown phase $p" >&2; exit 2 ;;
	esac
done
summary
