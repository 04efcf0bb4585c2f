#!/usr/bin/env bash
# Bulk enqueue on both engines: time and delta rows written (docs/storage.md, "Step 5: one delta row per statement on
# the ring").  Two scratch databases of one development cluster without awa's background worker in them
# (awa.databases = ''), one created with awa.install_engine = table, one with ring, each with a plain table of the
# same shape as a baseline (id bigserial primary key, kind, queue, args jsonb, created_at).  Then DELTAS_ROUNDS (3)
# rounds, the variants in the same order each round, each on a queue of its own:
#   plain_many / plain_select   one INSERT of DELTAS_JOBS (10000) rows into the plain table, from a jsonb array
#                               (jsonb_to_recordset, as awa_insert_many gets it) / from generate_series
#   {table,ring}_many           awa_insert_many of DELTAS_JOBS jobs (the jsonb array built before the clock starts)
#   {table,ring}_select         INSERT INTO awa.jobs (kind, queue, args) SELECT ... of DELTAS_JOBS jobs
# Prints per variant the median milliseconds, the rows it wrote to awa.counter_deltas and awa.history_deltas, and
# its throughput as a ratio to the plain INSERT of the same shape (plain ms / awa ms).  Then the size: on each
# engine DELTAS_SIZE_JOBS (50000) jobs loaded by one INSERT ... SELECT, drained by 2 pgbench clients (awa_claim of
# 10, awa_complete_many of those), one maintenance round (on the ring after sealing the open slot, as bench/run.sh
# case 5) and VACUUM: the MiB of awa's tables (with their indexes and toast) and of awa.history_deltas.
#   PGHOST=... PGPORT=... PGUSER=postgres bench/ring_deltas.sh
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${DELTAS_JOBS:-10000}
ROUNDS=${DELTAS_ROUNDS:-3}
SIZE_JOBS=${DELTAS_SIZE_JOBS:-50000}
TMP=$(mktemp -d /tmp/awa_deltas_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
declare -A MS CD HD

qd() { local db=$1; shift; PGDATABASE=$db bench_q "$1"; }

fresh_db() {	# $1 database, $2 engine
	"$BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" || exit 1
	PGOPTIONS="-c awa.install_engine=$2" PGDATABASE=$1 bench_q "CREATE EXTENSION awa" || exit 1
	[ "$(qd "$1" "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass")" = "$([ "$2" = ring ] && echo v || echo r)" ] ||
		{ echo "awa.jobs of $1 is not on the $2 engine" >&2; exit 1; }
	qd "$1" "CREATE TABLE plain_jobs (id bigserial PRIMARY KEY, kind text NOT NULL, queue text NOT NULL,
	         args jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now())" || exit 1
}

# run DB VARIANT STATEMENT: the statement timed in one session (after building :js, the jobs as a jsonb array);
# appends its milliseconds and the delta rows it wrote
run() {
	local db=$1 v=$2 stmt=$3 out
	out=$(PGDATABASE=$db "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 <<SQL
SELECT jsonb_agg(jsonb_build_object('kind', 'k', 'queue', '$v$r', 'args', jsonb_build_object('n', i)))::text AS js
	FROM generate_series(1, $N) i \gset
SELECT (SELECT count(*) FROM awa.counter_deltas) AS cd0, (SELECT count(*) FROM awa.history_deltas) AS hd0 \gset
SELECT clock_timestamp() AS t0 \gset
$stmt;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1) || ' '
	|| (SELECT count(*) FROM awa.counter_deltas) - :cd0 || ' ' || (SELECT count(*) FROM awa.history_deltas) - :hd0;
SQL
) || { echo "$v: failed: $out" >&2; exit 1; }
	out=$(tail -n 1 <<<"$out")
	read -r ms cd hd <<<"$out"
	MS[$v]+="$ms "
	CD[$v]=$cd
	HD[$v]=$hd
}

fresh_db awa_deltas_table table
fresh_db awa_deltas_ring ring
MANY="SELECT count(*) FROM awa_insert_many(:'js'::jsonb)"
SELECT_JOBS="INSERT INTO awa.jobs (kind, queue, args) SELECT 'k', '@Q@', jsonb_build_object('n', i) FROM generate_series(1, $N) i"
for r in $(seq "$ROUNDS"); do
	run awa_deltas_table plain_many "INSERT INTO plain_jobs (kind, queue, args)
		SELECT j.kind, j.queue, coalesce(j.args, '{}') FROM jsonb_to_recordset(:'js'::jsonb) j(kind text, queue text, args jsonb)"
	run awa_deltas_table plain_select "INSERT INTO plain_jobs (kind, queue, args)
		SELECT 'k', 'plain', jsonb_build_object('n', i) FROM generate_series(1, $N) i"
	for e in table ring; do
		run "awa_deltas_$e" "${e}_many" "$MANY"
		run "awa_deltas_$e" "${e}_select" "${SELECT_JOBS/@Q@/${e}_select$r}"
	done
	echo "round $r done" >&2
done

printf '%-14s %10s %12s %12s %10s\n' variant ms counter_rows history_rows vs_plain
for v in plain_many plain_select table_many table_select ring_many ring_select; do
	ms=$(bench_median_of MS "$v")
	base=$(bench_median_of MS "plain_${v#*_}")
	printf '%-14s %10s %12s %12s %10s\n' "$v" "$ms" "${CD[$v]}" "${HD[$v]}" \
		"$(awk -v b="$base" -v m="$ms" 'BEGIN { printf "%.2f", b / m }')"
done

# the size after draining SIZE_JOBS jobs and one maintenance round
cat >"$TMP/drain.sql" <<'SQL'
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa_claim('sz', batch => 10) \gset
SELECT awa_complete_many(:ids, :leases);
SQL
for e in table ring; do
	db=awa_deltas_size_$e
	fresh_db "$db" "$e"
	qd "$db" "INSERT INTO awa.jobs (kind, queue, args, run_at)
	          SELECT 'k', 'sz', jsonb_build_object('n', i), now() - interval '1 hour' + i * interval '1 ms'
	          FROM generate_series(1, $SIZE_JOBS) i" >/dev/null || exit 1
	PGDATABASE=$db bench_ring_drain "$SIZE_JOBS" "$TMP" 2 10
	[ "$(qd "$db" "SELECT count(*) FROM awa.jobs WHERE state = 'completed'")" = "$SIZE_JOBS" ] ||
		{ echo "$e: not every job completed" >&2; exit 1; }
	if [ "$e" = ring ]; then
		PGOPTIONS="-c awa.ring_engine=on" qd "$db" "SELECT count(*) FROM awa.ring_rotate(1)" >/dev/null || exit 1
	fi
	qd "$db" "SELECT count(*) FROM awa_maintain()" >/dev/null || exit 1
	qd "$db" "VACUUM" || exit 1
	echo "$e: $(qd "$db" "SELECT round(sum(pg_total_relation_size(c.oid)) / 1048576.0, 2) || ' MiB of awa''s tables, '
		|| round(pg_total_relation_size('awa.history_deltas') / 1048576.0, 2) || ' MiB of them awa.history_deltas, '
		|| round(pg_total_relation_size('awa.counter_deltas') / 1048576.0, 2) || ' MiB awa.counter_deltas'
		FROM pg_class c WHERE c.relnamespace = 'awa'::regnamespace AND c.relkind = 'r'") after draining $SIZE_JOBS jobs"
done
