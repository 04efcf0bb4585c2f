#!/usr/bin/env bash
# bench/run.sh — awa's benchmark suite.
#
# One command, as root on Debian 12:   bench/run.sh
# Quick smoke run (1-2 minutes):         BENCH_QUICK=1 bench/run.sh
# awa on the legacy table engine:       BENCH_ENGINE=table bench/run.sh (the default: ring)
#
# It installs what it needs (apt-get), builds and installs awa, starts its own throwaway cluster
# (port BENCH_PORT, default 5494), runs every case with awa and its baseline alternating in the same
# run, prints a table and writes bench/results/report.md and bench/results/chart.png.
# Raw measurements go to bench/results/tmp/ (git-ignored).  See bench/README.md for every parameter.
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib.sh
. "$BENCH_ROOT/../scripts/lib.sh"

# ---- parameters (environment) -------------------------------------------------------------------
QUICK=${BENCH_QUICK:-0}
# The storage engine awa's database is created with: ring, awa's default (awa.jobs is a view of the ring,
# docs/storage.md "Step 5: the ring becomes the default"), or table, the legacy one (awa.install_engine = table:
# awa.jobs is a table).
ENGINE=${BENCH_ENGINE:-ring}
case $ENGINE in
table | ring) ;;
*) echo "BENCH_ENGINE must be table or ring, got '$ENGINE'" >&2; exit 2 ;;
esac
q_or() { if [ "$QUICK" = 1 ]; then echo "$1"; else echo "$2"; fi; }
PORT=${BENCH_PORT:-5494}
CLUSTER_DIR=${BENCH_CLUSTER_DIR:-/tmp/awa-bench.$PORT}
CASES=${BENCH_CASES:-1 2 3 4 5 6}
ROUNDS=${BENCH_ROUNDS:-$(q_or 2 3)}                     # alternating runs per variant (median), cases 2 and 3
ENQ_ROUNDS=${BENCH_ENQ_ROUNDS:-$(q_or 2 5)}             # the same for case 1 (cheap runs, noisy machine: more of them)
ENQ_SECONDS=${BENCH_ENQ_SECONDS:-$(q_or 2 3)}           # case 1: pgbench -T per run
BULK_ROWS=${BENCH_BULK_ROWS:-$(q_or 100000 1000000)}    # case 2
CC_BACKLOG=${BENCH_CC_BACKLOG:-$(q_or 50000 200000)}    # case 3: jobs queued before each run
CC_JOBS1=${BENCH_CC_JOBS1:-$(q_or 4000 10000)}          # case 3: jobs processed per run, batch 1
CC_JOBSN=${BENCH_CC_JOBSN:-$(q_or 20000 100000)}        # case 3: jobs processed per run, batch 10/100
STATS_SIZES=${BENCH_STATS_SIZES:-$(q_or "100000 1000000" "1000000 10000000")}  # case 4
STATS_REPS=${BENCH_STATS_REPS:-$(q_or 5 7)}             # case 4: calls per query per size (fewer, at least 3, for calls slower than 3 s)
VAC_JOBS=${BENCH_VAC_JOBS:-$(q_or 20000 500000)}        # case 5
VAC_MAXTIME=${BENCH_VAC_MAXTIME:-$(q_or 20 75)}         # case 5: cap per run (each of its four), seconds
SIZE_JOBS=${BENCH_SIZE_JOBS:-50000}                     # case 5: jobs drained before the size after one maintenance round
STATS_TIMEOUT=${BENCH_STATS_TIMEOUT:-$(q_or 10 60)}     # case 4: a call slower than this (seconds) is cancelled and reported as such
LAT_ROUNDS=${BENCH_LAT_ROUNDS:-$(q_or 40 200)}          # case 6
CLIENTS=${BENCH_CLIENTS:-2}
PGB_MODE=${BENCH_PGBENCH_MODE:-prepared}                # pgbench -M
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
KEEP_CLUSTER=${BENCH_KEEP_CLUSTER:-0}
# Server settings: sized for the 2-core / 23 GB machines; synchronous_commit stays on (durable queue).
SERVER_OPTS=${BENCH_SERVER_OPTS:-"shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min maintenance_work_mem=256MB awa.databases="}
PYTHON=/usr/bin/python3

RESULTS=${BENCH_RESULTS:-$BENCH_ROOT/results}
TMP=$RESULTS/tmp
RAW=$TMP/raw.tsv
META=$TMP/meta.tsv
DB=bench
TEMPLATE_DB=bench_template   # ring engine: every run gets a fresh copy of it (reset_tables)
export PGDATABASE=$DB
export PGOPTIONS="-c client_min_messages=warning"

# ---- helpers --------------------------------------------------------------------------------------
psqlq() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
q() { psqlq <<<"$1"; }          # statements run one by one (VACUUM allowed)
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RAW"; }        # variant round value
na() { printf '%s\tNA\t%s\n' "$1" "$2" >>"$RAW"; log "  $1: not available ($2)"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
meta_value() { awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print v }' "$META"; }
has_func() { [ "$(q "SELECT count(*) FROM pg_proc WHERE proname = '$1'")" != 0 ]; }
ring() { [ "$ENGINE" = ring ]; }
# Empty awa's jobs and the baseline table.  The ring's relations cannot be truncated behind awa's back (its
# counters, slots and unique keys would disagree with them), so on the ring engine each run gets a fresh copy of
# the template database (CREATE DATABASE ... TEMPLATE: a file copy of a few MB, with its checkpoint).
reset_tables() {
	if ring; then
		psqlq -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
			-c "CREATE DATABASE $DB TEMPLATE $TEMPLATE_DB STRATEGY FILE_COPY" >/dev/null
	else
		q "TRUNCATE awa.jobs, bench_jobs" >/dev/null
	fi
	q "CHECKPOINT" >/dev/null
}
# VACUUM ANALYZE of a table the runs load: on the ring, of the whole (small) database for awa.jobs, a view
vacuum_analyze() {
	if ring && [ "$1" = awa.jobs ]; then q "VACUUM ANALYZE" >/dev/null; else q "VACUUM ANALYZE $1" >/dev/null; fi
}
# The relations that hold awa's jobs: every table of schema awa (the ring's slots, partitions, side tables and
# counters; on the table engine awa.jobs and the counters), or the baseline table
rels_of() {
	if [ "$1" = awa.jobs ]; then
		echo "SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'awa'::regnamespace AND c.relkind = 'r'"
	else
		echo "SELECT '$1'::regclass::oid"
	fi
}
# size_of TABLE -> "X MiB (heap H MiB + indexes I MiB)" of rels_of TABLE, toast counted with the heap
size_of() {
	q "SELECT round(sum(pg_total_relation_size(oid)) / 1048576.0, 2) || ' MiB (heap '
	          || round(sum(pg_total_relation_size(oid) - pg_indexes_size(oid)) / 1048576.0, 2) || ' MiB + indexes '
	          || round(sum(pg_indexes_size(oid)) / 1048576.0, 2) || ' MiB)' FROM ($(rels_of "$1")) r(oid)"
}
mib_of() { q "SELECT round(sum(pg_total_relation_size(oid)) / 1048576.0, 3) FROM ($(rels_of "$1")) r(oid)"; }
# rel_stats NAME TABLE: one meta line per relation of TABLE (c5rel_NAME_<relation>: live, dead tuples, heap and
# index bytes) that holds anything, and one for the rest (empty relations: count, bytes).  Statistics are
# flushed by the sessions that wrote (pgbench's, gone by now).
rel_stats() {
	local name=$1 line
	while IFS='|' read -r rel live dead heap idx; do
		meta "c5rel_${name}_$rel" "$live	$dead	$heap	$idx"
	done < <(q "WITH r AS (SELECT c.oid, c.relname, coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead,
		                  pg_total_relation_size(c.oid) - pg_indexes_size(c.oid) AS heap, pg_indexes_size(c.oid) AS idx
		             FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
		            WHERE c.oid IN ($(rels_of "$2")))
		SELECT relname, live, dead, heap, idx FROM r WHERE live > 0 OR dead > 0 OR heap > 8192
		UNION ALL
		SELECT count(*) || ' other relations (empty)', 0, 0, sum(heap), sum(idx) FROM r
		 WHERE NOT (live > 0 OR dead > 0 OR heap > 8192) HAVING count(*) > 0")
	line=$(q "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_all_tables WHERE relid IN ($(rels_of "$2"))")
	meta "c5_${name}_dead_tuples" "$line"
}

# script_from TEMPLATE QUEUE BATCH -> path of a pgbench script with the constants filled in
script_from() {
	local out="$TMP/$(basename "$1" .sql)_$2_$3.sql"
	sed -e "s/@QUEUE@/$2/g" -e "s/@BATCH@/$3/g" "$BENCH_ROOT/sql/$1" >"$out"
	echo "$out"
}

# pgbench_tps LOGNAME pgbench-args... -> prints tps (without initial connection time)
pgbench_tps() {
	local name=$1; shift
	local out="$TMP/pgbench_$name.log"
	if ! "$PG_BIN/pgbench" -n -M "$PGB_MODE" "$@" >"$out" 2>&1; then
		echo "pgbench failed ($name):" >&2; tail -20 "$out" >&2; return 1
	fi
	if grep -q "number of failed transactions: [1-9]" "$out" || grep -q "aborted" "$out"; then
		echo "pgbench reported failures ($name):" >&2; grep -E "failed|aborted" "$out" >&2; return 1
	fi
	awk '/^tps = / { print $3; exit }' "$out"
}

# alternate CASE "variant..." [ROUNDS] : run every variant ROUNDS times, rotating the order each round so
# drift (other tenants, checkpoints, autovacuum) hits every variant alike.  Each variant is a shell
# function v_<name> that prints one figure; records go to raw.tsv.
alternate() {
	local case=$1; local -a vs=($2); local n=${#vs[@]} r i v val rounds=${3:-$ROUNDS}
	for ((r = 1; r <= rounds; r++)); do
		for ((i = 0; i < n; i++)); do
			v=${vs[$(((i + r - 1) % n))]}
			if val=$("v_$v"); then
				record "$v" "$r" "$val"
				printf '    round %d  %-22s %s\n' "$r" "$v" "$val"
			else
				na "$v" "run failed (see bench/results/tmp)"
			fi
		done
	done
}

# ---- setup ----------------------------------------------------------------------------------------
setup() {
	[ "$(id -u)" = 0 ] || { echo "bench/run.sh must run as root (it installs packages and runs initdb as postgres)" >&2; exit 1; }
	local plot_pkg=python3-matplotlib
	awa_install_packages postgresql-15-pgq3 "$plot_pkg"
	if [ "$SKIP_BUILD" != 1 ]; then
		log "building and installing awa"
		make -C "$AWA_ROOT" -s PG_CONFIG="$PG_CONFIG" with_llvm=no install >/dev/null
	fi
	mkdir -p "$TMP"
	rm -f "$TMP"/*.log "$TMP"/*.sql "$RAW" "$META"
	: >"$RAW"; : >"$META"

	log "starting a throwaway cluster in $CLUSTER_DIR on port $PORT"
	awa_cluster_stop "$CLUSTER_DIR"
	rm -rf "$CLUSTER_DIR"
	# shellcheck disable=SC2086
	awa_cluster_start "$CLUSTER_DIR" "$PORT" $SERVER_OPTS
	trap teardown EXIT
	if ring; then
		init_db "$TEMPLATE_DB" awa.jobs_table
		reset_tables
	else
		init_db "$DB" awa.jobs
	fi
	meta engine "$ENGINE"
	meta nproc "$(nproc)"
	meta cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
	meta memory "$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)"
	meta postgres "$(q 'SHOW server_version')"
	meta awa_commit "$(git -C "$AWA_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$AWA_ROOT" diff --quiet HEAD -- src awa--*.sql 2>/dev/null || echo ' + uncommitted changes')"
	meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
	meta server_opts "$SERVER_OPTS"
	meta params "engine=$ENGINE quick=$QUICK rounds=$ROUNDS enq_rounds=$ENQ_ROUNDS clients=$CLIENTS pgbench_mode=$PGB_MODE enq_seconds=$ENQ_SECONDS bulk_rows=$BULK_ROWS cc_backlog=$CC_BACKLOG cc_jobs1=$CC_JOBS1 cc_jobsN=$CC_JOBSN stats_sizes=${STATS_SIZES// /,} stats_reps=$STATS_REPS vac_jobs=$VAC_JOBS size_jobs=$SIZE_JOBS stats_timeout=$STATS_TIMEOUT lat_rounds=$LAT_ROUNDS"
	meta load "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# init_db NAME JOBS_TABLE: database NAME with awa (on ENGINE), pgq and the baseline table bench_jobs, the same
# shape as awa's jobs table JOBS_TABLE (awa.jobs; on the ring awa.jobs_table, the table a ring database keeps)
init_db() {
	local db=$1 jt=$2 opts=$PGOPTIONS a b
	opts="$opts -c awa.install_engine=$ENGINE"
	psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
	PGOPTIONS=$opts psqlq -d "$db" <<-SQL >/dev/null
		CREATE EXTENSION awa;
		CREATE EXTENSION pgq;
		SELECT pgq.create_queue('bench');
		-- the baseline: same columns, defaults, constraints, identity and indexes as awa's jobs table
		CREATE TABLE bench_jobs (LIKE $jt INCLUDING ALL) WITH (fillfactor = 90);
	SQL
	# the engine asked for is the one awa created
	a=$(psqlq -d "$db" -c "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass")
	if ring && [ "$a" != v ]; then
		echo "awa.jobs is not the ring's view: awa.install_engine = ring was not honoured" >&2; exit 1
	elif ! ring && [ "$a" != r ]; then
		echo "awa.jobs is not a table: awa.install_engine = table was not honoured" >&2; exit 1
	fi
	# LIKE ... INCLUDING ALL must have copied every index (names differ, definitions must not)
	a=$(psqlq -d "$db" -c "SELECT string_agg(d, ' | ' ORDER BY d)
	       FROM (SELECT regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '') AS d
	               FROM pg_index WHERE indrelid = '$jt'::regclass) i")
	b=$(psqlq -d "$db" -c "SELECT string_agg(d, ' | ' ORDER BY d)
	       FROM (SELECT regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '') AS d
	               FROM pg_index WHERE indrelid = 'bench_jobs'::regclass) i")
	if [ "$a" != "$b" ]; then
		echo "bench_jobs indexes differ from $jt:" >&2; echo " awa:  $a" >&2; echo " base: $b" >&2; exit 1
	fi
	meta indexes "$a"
}

teardown() {
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bench_xmin_holder'" >/dev/null 2>&1 || true
	if [ "$KEEP_CLUSTER" = 1 ]; then
		log "cluster left running in $CLUSTER_DIR (port $PORT)"
	else
		awa_cluster_stop "$CLUSTER_DIR"
		rm -rf "$CLUSTER_DIR"
	fi
}

# ---- case 1: single-row enqueue -------------------------------------------------------------------
v_c1_awa()       { reset_tables; pgbench_tps c1_awa -c "$CLIENTS" -j "$CLIENTS" -T "$ENQ_SECONDS" -f "$BENCH_ROOT/sql/c1_awa.sql"; }
v_c1_base()      { reset_tables; pgbench_tps c1_base -c "$CLIENTS" -j "$CLIENTS" -T "$ENQ_SECONDS" -f "$BENCH_ROOT/sql/c1_base.sql"; }
v_c1_pgq()       { reset_tables; pgbench_tps c1_pgq -c "$CLIENTS" -j "$CLIENTS" -T "$ENQ_SECONDS" -f "$BENCH_ROOT/sql/c1_pgq.sql"; }
# awa_insert while a session listens on awa:default (awa then sends NOTIFY at every commit)
v_c1_awa_listener() {
	local pid
	reset_tables
	PGAPPNAME=bench_listener "$PG_BIN/psql" -X -q -d "$DB" -c 'LISTEN "awa:default"' -c 'SELECT pg_sleep(3600)' >/dev/null 2>&1 &
	pid=$!
	until [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench_listener' AND query LIKE '%pg_sleep%'")" = 1 ]; do sleep 0.1; done
	pgbench_tps c1_awa_listener -c "$CLIENTS" -j "$CLIENTS" -T "$ENQ_SECONDS" -f "$BENCH_ROOT/sql/c1_awa.sql"
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bench_listener'" >/dev/null
	wait "$pid" 2>/dev/null || true
}
# server-side cost: one client, 100 rows per statement; figure = rows/s
v_c1_awa100()  { reset_tables; pgbench_tps c1_awa100 -c 1 -T "$ENQ_SECONDS" -f "$BENCH_ROOT/sql/c1_awa100.sql" | awk '{ print $1 * 100 }'; }
v_c1_base100() { reset_tables; pgbench_tps c1_base100 -c 1 -T "$ENQ_SECONDS" -f "$BENCH_ROOT/sql/c1_base100.sql" | awk '{ print $1 * 100 }'; }

case1() {
	log "case 1: single-row enqueue (pgbench -c $CLIENTS -T $ENQ_SECONDS, $ENQ_ROUNDS rounds)"
	alternate 1 "c1_awa c1_base c1_pgq c1_awa_listener" "$ENQ_ROUNDS"
	log "case 1b: 100 rows in one statement (1 client)"
	alternate 1 "c1_awa100 c1_base100" "$ENQ_ROUNDS"
}

# ---- case 2: bulk enqueue ---------------------------------------------------------------------------
# figures are rows/s for BULK_ROWS rows loaded in one statement into an empty table
timed_sql() {   # timed_sql SQL [STDIN-FILE] -> seconds
	local t0 t1
	t0=$(now_s); psqlq -c "$1" <"${2:-/dev/null}" >/dev/null; t1=$(now_s)
	elapsed "$t0" "$t1"
}
rows_per_s() { awk -v n="$BULK_ROWS" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }
check_rows() {  # check_rows TABLE -> fails unless BULK_ROWS rows landed
	local n; n=$(q "SELECT count(*) FROM $1")
	[ "$n" = "$BULK_ROWS" ] || { echo "expected $BULK_ROWS rows in $1, found $n" >&2; return 1; }
}
v_c2_copy_base() {
	reset_tables
	local t; t=$(timed_sql "COPY bench_jobs (kind, queue, args) FROM STDIN" "$TMP/bulk.copy")
	check_rows bench_jobs && rows_per_s "$t"
}
v_c2_copy_awa() {
	reset_tables
	local t; t=$(timed_sql "COPY $AWA_COPY_TARGET FROM STDIN" "$TMP/bulk.copy")
	check_rows awa.jobs && rows_per_s "$t"
}
v_c2_many_base() {
	reset_tables
	local t; t=$(timed_sql "INSERT INTO bench_jobs (kind, queue, args)
		SELECT e->>'kind', e->>'queue', e->'args' FROM bench_payload, jsonb_array_elements(j) e")
	check_rows bench_jobs && rows_per_s "$t"
}
v_c2_many_awa() {
	reset_tables
	local t; t=$(timed_sql "SELECT count(*) FROM (SELECT awa_insert_many(j) FROM bench_payload) s")
	check_rows awa.jobs && rows_per_s "$t"
}

case2() {
	log "case 2: bulk enqueue of $BULK_ROWS jobs ($ROUNDS rounds)"
	# the same input for both sides: a COPY file, and 1,000-job jsonb arrays
	q "COPY (SELECT 'k', 'bulk', jsonb_build_object('n', i) FROM generate_series(1, $BULK_ROWS) i) TO STDOUT" >"$TMP/bulk.copy"
	# on the ring the template database holds the input, so that every run's fresh copy has it
	local pdb=$DB
	ring && pdb=$TEMPLATE_DB
	PGDATABASE=$pdb q "DROP TABLE IF EXISTS bench_payload;
	   CREATE TABLE bench_payload AS
	   SELECT (i - 1) / 1000 AS b,
	          jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'bulk', 'args', jsonb_build_object('n', i)) ORDER BY i) AS j
	     FROM generate_series(1, $BULK_ROWS) i GROUP BY 1;
	   VACUUM ANALYZE bench_payload" >/dev/null
	local v=""
	AWA_COPY_TARGET=$(awa_copy_target)
	if [ -n "$AWA_COPY_TARGET" ]; then v="c2_copy_awa c2_copy_base"; else na c2_copy_awa "no COPY target in awa yet"; fi
	if has_func awa_insert_many; then v="$v c2_many_awa c2_many_base"; else na c2_many_awa "awa_insert_many does not exist yet"; fi
	[ -z "$v" ] || alternate 2 "$v"
	PGDATABASE=$pdb q "DROP TABLE bench_payload" >/dev/null
	rm -f "$TMP/bulk.copy"
}
# The COPY target awa offers, as "relation (kind, queue, args)", or nothing: awa.jobs itself when it
# has a BEFORE (table) or INSTEAD OF (the ring's view) INSERT row trigger (the COPY path of awa--0.1.0.sql),
# else a relation in schema awa whose name says copy/import/load.
awa_copy_target() {
	local rel
	rel=$(q "SELECT 'awa.jobs' FROM pg_trigger WHERE tgrelid = 'awa.jobs'::regclass AND NOT tgisinternal
	           AND tgtype & (2 | 64) <> 0 AND tgtype & 4 = 4 AND tgtype & 1 = 1 LIMIT 1")
	[ -n "$rel" ] || rel=$(q "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	         WHERE n.nspname = 'awa' AND c.relkind IN ('r', 'v', 'p', 'f')
	           AND c.relname ~ '(copy|import|load|bulk|inbox|staging)' ORDER BY 1 LIMIT 1")
	[ -n "$rel" ] && echo "$rel (kind, queue, args)"
	return 0
}

# ---- case 3: claim + complete -----------------------------------------------------------------------
# load_backlog TABLE: CC_BACKLOG available jobs of queue cc, run_at increasing with id
# (on the ring the INSERT into the view enqueues each row through its INSTEAD OF trigger, as COPY does)
load_backlog() {
	local t=$1 n=${2:-$CC_BACKLOG} queue=${3:-cc}
	reset_tables
	q "INSERT INTO $t (kind, queue, args, state, run_at)
	   SELECT 'k', '$queue', jsonb_build_object('n', i), 'available', now() - interval '1 hour' + i * interval '1 ms'
	     FROM generate_series(1, $n) i" >/dev/null
	vacuum_analyze "$t"
	q "CHECKPOINT" >/dev/null
}
# cc_run NAME TABLE SCRIPT BATCH JOBS -> jobs/s (pgbench tps x batch), after checking the work was done
cc_run() {
	local name=$1 t=$2 script=$3 batch=$4 jobs=$5 tps done
	load_backlog "$t"
	tps=$(pgbench_tps "$name" -c "$CLIENTS" -j "$CLIENTS" -t $((jobs / CLIENTS / batch)) -f "$script") || return 1
	done=$(q "SELECT count(*) FROM $t WHERE state = 'completed'")
	[ "$done" = $((jobs / CLIENTS / batch * CLIENTS * batch)) ] ||
		{ echo "$name: expected $((jobs / CLIENTS / batch * CLIENTS * batch)) completed jobs, found $done" >&2; return 1; }
	awk -v t="$tps" -v b="$batch" 'BEGIN { printf "%.0f", t * b }'
}
v_c3_awa_b1()    { cc_run c3_awa_b1 awa.jobs "$(script_from c3_awa_b1.sql cc 1)" 1 "$CC_JOBS1"; }
v_c3_base_n1()   { cc_run c3_base_n1 bench_jobs "$(script_from c3_base_n1.sql cc 1)" 1 "$CC_JOBS1"; }
v_c3_awa_b10()   { cc_run c3_awa_b10 awa.jobs "$(script_from c3_awa_batch.sql cc 10)" 10 "$CC_JOBSN"; }
v_c3_base_n10()  { cc_run c3_base_n10 bench_jobs "$(script_from c3_base_batch.sql cc 10)" 10 "$CC_JOBSN"; }
v_c3_awa_b100()  { cc_run c3_awa_b100 awa.jobs "$(script_from c3_awa_batch.sql cc 100)" 100 "$CC_JOBSN"; }

case3() {
	log "case 3: claim + complete, $CLIENTS clients, backlog $CC_BACKLOG ($CC_JOBS1 jobs per batch-1 run, $CC_JOBSN per batched run, $ROUNDS rounds)"
	if ! has_func awa_claim || ! has_func awa_complete_many; then
		na c3_awa_b1 "awa_claim/awa_complete_many missing"; return
	fi
	alternate 3 "c3_base_n1 c3_awa_b1 c3_base_n10 c3_awa_b10 c3_awa_b100"
}

# ---- case 4: monitoring latency on big tables ---------------------------------------------------------
# 10 queues; 85% completed, 10% available, 2% running, 1% each scheduled, retryable, failed.  The table engine:
# INSERT ... SELECT of rows in those states (finalized over the last 2 hours).  The ring takes jobs through the
# API only: sql/c4_fill_ring.sql (awa_insert_many, then claims, completions and failures in batches; every job
# finishes now, so all completed jobs count in completed_last_hour); the fill's seconds go to meta.
fill_jobs() {
	local from=$1 to=$2 t0
	t0=$(now_s)
	if ring; then
		q "CALL bench_fill($from, $to)" >/dev/null
	else
		q "INSERT INTO awa.jobs (kind, queue, args, state, run_at, attempt, finalized_at, heartbeat_at)
		   SELECT 'k', 'q' || (i % 10), jsonb_build_object('n', i),
		          s, now() - interval '3 hours' + (i % 10000000) * interval '1 ms',  -- always in the past: the COPY trigger would store a future available job as scheduled
		          CASE WHEN s IN ('available', 'scheduled') THEN 0 ELSE 1 END,
		          CASE WHEN s IN ('completed', 'failed', 'cancelled') THEN now() - (i % 7200) * interval '1 s' END,
		          CASE WHEN s = 'running' THEN now() END
		     FROM generate_series($from, $to) i,
		          LATERAL (SELECT (CASE WHEN i % 100 < 85 THEN 'completed' WHEN i % 100 < 95 THEN 'available'
		                               WHEN i % 100 < 97 THEN 'running' WHEN i % 100 < 98 THEN 'scheduled'
		                               WHEN i % 100 < 99 THEN 'retryable' ELSE 'failed' END)::awa.job_state AS s) st" >/dev/null
	fi
	meta "c4_fill_${to}" "jobs $from..$to added in $(elapsed "$t0" "$(now_s)" | cut -d. -f1) s"
}
case4() {
	log "case 4: awa_queue_stats / awa_list_jobs latency at sizes: $STATS_SIZES"
	reset_tables
	ring && psqlq -f "$BENCH_ROOT/sql/c4_fill_ring.sql" >/dev/null
	local have=0 size
	for size in $STATS_SIZES; do
		log "  filling awa.jobs to $size jobs"
		fill_jobs $((have + 1)) "$size"
		vacuum_analyze awa.jobs
		q "CHECKPOINT" >/dev/null
		q "SELECT count(*) FROM awa_maintain()" >/dev/null
		have=$size
		"$PYTHON" "$BENCH_ROOT/latency.py" stats --size "$size" --reps "$STATS_REPS" --timeout "$STATS_TIMEOUT" \
			--raw "$RAW" --meta "$META"
	done
	reset_tables
}

# ---- case 5: held-back vacuum -------------------------------------------------------------------------
# maintenance_round NAME TABLE: what gives space back after a drain, once.  awa on the ring: its maintenance round,
# awa_maintain(), after sealing the open slot (awa.ring_rotate(1): what the round itself does once the slot holds
# 100,000 jobs or is an hour old) so that it reclaims the drained slot (the slots' states and the size after it go
# to meta); awa on the table engine: awa_maintain().  Then, for all, VACUUM of the database (what autovacuum would
# do next: the space of dead tuples becomes reusable, empty pages at the end of a file are given back).
maintenance_round() {
	local name=$1 t=$2
	if ring && [ "$t" = awa.jobs ]; then
		q "SELECT count(*) FROM awa.ring_rotate(1)" >/dev/null
		q "SELECT count(*) FROM awa_maintain()" >/dev/null
		meta "c5_${name}_round" "slots after the round: $(q "SELECT string_agg(slot || ' ' || state, ', ' ORDER BY slot) FROM awa.ring_slots"); before VACUUM $(size_of "$t")"
	elif [ "$t" = awa.jobs ]; then
		q "SELECT count(*) FROM awa_maintain()" >/dev/null
		meta "c5_${name}_round" "before VACUUM $(size_of "$t")"
	fi
	q "VACUUM" >/dev/null
}
# vac_run NAME TABLE SCRIPT [HOLDER]: drain VAC_JOBS jobs (batch 10, CLIENTS clients) while a third session
# holds back the horizon, or not: HOLDER rr (default) is a transaction that took an xid and sleeps (what a
# REPEATABLE READ report or a forgotten session does); claim_fn is a worker blocked in awa_claim(wait) on
# another, idle queue; claim_proc the same worker in CALL awa_claim_wait.  Prints the first and last tenth.
# At the end of the drain, with the holder still there, each relation's live and dead tuples and sizes go to meta
# (rel_stats); for rr, once the holder is gone, the size after one maintenance round too.
vac_run() {
	local name=$1 t=$2 script=$3 kind=${4:-rr} batch=10 holder prog sql
	load_backlog "$t" "$VAC_JOBS" vac
	meta "c5_${name}_size_before" "$(size_of "$t")"
	case $kind in
	rr) sql="BEGIN; SELECT txid_current(); SELECT pg_sleep(100000);" ;;
	claim_fn) sql="SELECT count(*) FROM awa_claim('bench_idle', wait => '1 day')" ;;
	claim_proc) sql="CALL awa_claim_wait('bench_idle', wait => '1 day')" ;;
	esac
	PGAPPNAME=bench_xmin_holder psql -X -q -c "$sql" >/dev/null 2>&1 &
	holder=$!
	sleep 1
	meta "c5_${name}_holder_xmin" "$(q "SELECT coalesce(backend_xmin::text, 'none') FROM pg_stat_activity WHERE application_name = 'bench_xmin_holder'")"
	prog="$TMP/pgbench_${name}.progress"
	timeout --signal=INT "$VAC_MAXTIME" "$PG_BIN/pgbench" -n -M "$PGB_MODE" -c "$CLIENTS" -j "$CLIENTS" \
		-t $((VAC_JOBS / CLIENTS / batch)) --progress=1 -f "$script" >"$TMP/pgbench_${name}.log" 2>"$prog" || true
	sleep 1   # pgbench's backends flush their statistics as they exit
	meta "c5_${name}_size_after" "$(size_of "$t")"
	meta "c5_${name}_done" "$(q "SELECT count(*) FROM $t WHERE state = 'completed'") of $VAC_JOBS jobs completed in $(grep -c '^progress:' "$prog") s (cap ${VAC_MAXTIME} s); pgbench clients aborted: $(grep -c 'aborted in command' "$prog")"
	rel_stats "$name" "$t"
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bench_xmin_holder'" >/dev/null
	wait "$holder" 2>/dev/null || true
	if [ "$kind" = rr ]; then
		maintenance_round "$name" "$t"
		meta "c5_${name}_size_after_round" "$(size_of "$t")"
	fi
	# per-second jobs/s from --progress; first and last tenth of the seconds
	awk -v b="$batch" '/^progress:/ { n++; v[n] = $4 * b }
		END { k = int(n / 10); if (k < 1) k = 1; for (i = 1; i <= k; i++) f += v[i];
		      for (i = n - k + 1; i <= n; i++) l += v[i]; printf "%.0f %.0f\n", f / k, l / k }' "$prog"
}
# size_run NAME TABLE SCRIPT: SIZE_JOBS jobs loaded and drained completely (batch 10, CLIENTS clients, nothing
# held), then one maintenance round; prints the size in MiB of every relation of TABLE (rels_of) after it
size_run() {
	local name=$1 t=$2 script=$3 batch=10
	load_backlog "$t" "$SIZE_JOBS" vac
	pgbench_tps "size_$name" -c "$CLIENTS" -j "$CLIENTS" -t $((SIZE_JOBS / CLIENTS / batch)) -f "$script" >/dev/null
	meta "c5_size_${name}_drained" "$(q "SELECT count(*) FROM $t WHERE state = 'completed'") of $SIZE_JOBS jobs completed; $(size_of "$t")"
	maintenance_round "size_$name" "$t"
	meta "c5_size_${name}_after_round" "$(size_of "$t")"
	rel_stats "size_$name" "$t"
	mib_of "$t"
}
case5() {
	log "case 5: held-back vacuum: drain $VAC_JOBS jobs (batch 10) while a transaction holds xmin"
	local fl v
	if has_func awa_claim && has_func awa_complete_many; then
		fl=$(vac_run awa awa.jobs "$(script_from c3_awa_batch.sql vac 10)")
		record c5_awa_first 1 "${fl% *}"; record c5_awa_last 1 "${fl#* }"
		record c5_dead_awa 1 "$(meta_value c5_awa_dead_tuples)"
		echo "    awa: first tenth ${fl% *} jobs/s, last tenth ${fl#* } jobs/s"
	else
		na c5_awa_first "awa_claim missing"
	fi
	fl=$(vac_run base bench_jobs "$(script_from c3_base_batch.sql vac 10)")
	record c5_base_first 1 "${fl% *}"; record c5_base_last 1 "${fl#* }"
	record c5_dead_base 1 "$(meta_value c5_base_dead_tuples)"
	echo "    baseline: first tenth ${fl% *} jobs/s, last tenth ${fl#* } jobs/s"
	# only awa's own waiting claimers, on another queue: the blocking function, then the procedure
	for v in claim_fn claim_proc; do
		if [ $v = claim_proc ] && ! has_func awa_claim_wait; then na c5_awa_claim_proc_first "awa_claim_wait missing"; continue; fi
		has_func awa_claim || continue
		fl=$(vac_run "awa_$v" awa.jobs "$(script_from c3_awa_batch.sql vac 10)" $v)
		record "c5_awa_${v}_first" 1 "${fl% *}"; record "c5_awa_${v}_last" 1 "${fl#* }"
		meta "c5_awa_${v}_last_vs_first" "$(awk -v f="${fl% *}" -v l="${fl#* }" 'BEGIN { if (f > 0) printf "%.2f", l / f; else print "-" }')"
		echo "    awa, a waiter in $v on another queue: first tenth ${fl% *} jobs/s, last tenth ${fl#* } jobs/s"
	done
	# size after draining SIZE_JOBS jobs and one maintenance round, nothing held
	if has_func awa_claim && has_func awa_complete_many; then
		v=$(size_run awa awa.jobs "$(script_from c3_awa_batch.sql vac 10)")
		record c5_size_awa 1 "$v"
		echo "    awa: $v MiB after draining $SIZE_JOBS jobs and one maintenance round"
	fi
	v=$(size_run base bench_jobs "$(script_from c3_base_batch.sql vac 10)")
	record c5_size_base 1 "$v"
	echo "    baseline: $v MiB after draining $SIZE_JOBS jobs and VACUUM"
	reset_tables
}

# ---- case 6: blocking-claim wake-up latency ---------------------------------------------------------
case6() {
	log "case 6: blocking-claim wake-up latency ($LAT_ROUNDS rounds, vs LISTEN/NOTIFY)"
	if ! has_func awa_claim; then na c6_awa "awa_claim missing"; return; fi
	reset_tables
	"$PYTHON" "$BENCH_ROOT/latency.py" wake --rounds "$LAT_ROUNDS" --raw "$RAW"
}

# ---- main -------------------------------------------------------------------------------------------
T_START=$(now_s)
setup
for c in $CASES; do
	t0=$(now_s)
	"case$c"
	meta "case${c}_seconds" "$(elapsed "$t0" "$(now_s)" | cut -d. -f1)"
done
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta total_seconds "$(elapsed "$T_START" "$(now_s)" | cut -d. -f1)"
"$PYTHON" "$BENCH_ROOT/report.py" --raw "$RAW" --meta "$META" --out "$RESULTS"
