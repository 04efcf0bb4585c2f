#!/usr/bin/env bash
# Job dependencies (docs/dependencies.md), median of ROUNDS runs each:
#   1. fan-out: 10,000 jobs inserted after one parent (awa_insert_many, 10 calls of
#      1,000), then the parent's awa_complete, which releases all 10,000 in its
#      statement: time of the inserts and of that one awa_complete;
#   2. fan-in: 10,000 jobs each after two parents (20,000 parents), the parents
#      completed by two sessions at once (one parent of every pair each, ascending,
#      awa_complete_many of 100 a transaction): wall time, and that every fan-in job
#      was released exactly once (10,000 available, none still waiting, no deadlock);
#   3. the cost of the dependency trigger to jobs that have no dependencies: 10,000
#      awa_complete calls (one job each, 1,000 a transaction) with the trigger enabled
#      and disabled.
# Usage: PGHOST=... PGPORT=... PGUSER=... bench/dependencies.sh [database]
# (awa must be installed in the server; the database is created and dropped.)
set -euo pipefail

DB=${1:-awa_deps_bench}
ROUNDS=${ROUNDS:-3}
N=10000
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
claim_all() { for _ in $(seq 1 $((N / 1000))); do q -c "SELECT count(*) FROM awa_claim('$1', batch => 1000)" >/dev/null; done; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q <<'SQL'
CREATE EXTENSION awa;
-- milliseconds since t
CREATE FUNCTION ms(t timestamptz) RETURNS numeric LANGUAGE sql AS
	$$ SELECT round(extract(epoch FROM clock_timestamp() - t)::numeric * 1000, 1) $$;
SQL

fan_out() {
	q -c "TRUNCATE awa.jobs" >/dev/null
	local p
	p=$(q -c "SELECT id FROM awa_insert('parent', queue => 'fo_p')")
	local t0 ins rel
	t0=$(date +%s%N)
	for _ in $(seq 1 10); do
		q -c "SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'child', 'queue', 'fo', 'after', jsonb_build_array($p))) FROM generate_series(1, 1000)))" >/dev/null
	done
	ins=$(( ($(date +%s%N) - t0) / 1000000 ))
	q -c "SELECT count(*) FROM awa_claim('fo_p')" >/dev/null
	rel=$(q <<SQL
SELECT clock_timestamp() AS t0 \gset
SELECT awa_complete($p, 1) \g /dev/null
SELECT ms(:'t0');
SQL
)
	local avail
	avail=$(q -c "SELECT count(*) FROM awa.jobs WHERE queue = 'fo' AND state = 'available'")
	[ "$avail" = "$N" ] || { echo "fan-out: $avail of $N released" >&2; exit 1; }
	echo "$ins $rel"
}

fan_in() {
	q -c "TRUNCATE awa.jobs" >/dev/null
	# parents a_i (queue fi_a) and b_i (queue fi_b), child i after both
	q <<SQL
DO \$\$
DECLARE a bigint[]; b bigint[];
BEGIN
	SELECT array_agg(id ORDER BY id) INTO a FROM awa_insert_many(
		(SELECT jsonb_agg(jsonb_build_object('kind', 'a', 'queue', 'fi_a')) FROM generate_series(1, $N)));
	SELECT array_agg(id ORDER BY id) INTO b FROM awa_insert_many(
		(SELECT jsonb_agg(jsonb_build_object('kind', 'b', 'queue', 'fi_b')) FROM generate_series(1, $N)));
	FOR c IN 0 .. $N / 1000 - 1 LOOP
		PERFORM count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'child',
			'queue', 'fi', 'after', jsonb_build_array(a[i], b[i]))) FROM generate_series(c * 1000 + 1, c * 1000 + 1000) i));
	END LOOP;
END \$\$;
SQL
	claim_all fi_a; claim_all fi_b
	# each session: its parents ascending, 100 a transaction
	for s in a b; do
		seq 0 $((N / 100 - 1)) | awk -v s=$s '{printf "SELECT awa_complete_many(ARRAY(SELECT id FROM awa.jobs WHERE queue = '"'"'fi_%s'"'"' AND state = '"'"'running'"'"' ORDER BY id LIMIT 100), ARRAY(SELECT 1::bigint FROM generate_series(1, 100)));\n", s}' > "$TMP/$s.sql"
	done
	local t0 wall
	t0=$(date +%s%N)
	q -f "$TMP/a.sql" >/dev/null &
	local pa=$!
	q -f "$TMP/b.sql" >/dev/null &
	local pb=$!
	wait $pa; wait $pb
	wall=$(( ($(date +%s%N) - t0) / 1000000 ))
	local got
	got=$(q -c "SELECT count(*) FILTER (WHERE state = 'available') || ' ' || count(*) FILTER (WHERE state = 'scheduled') FROM awa.jobs WHERE queue = 'fi'")
	[ "$got" = "$N 0" ] || { echo "fan-in: available/waiting $got, want $N 0" >&2; exit 1; }
	local stats
	stats=$(q -c "SELECT available FROM awa_queue_stats() WHERE queue = 'fi'")
	[ "$stats" = "$N" ] || { echo "fan-in: awa_queue_stats says $stats available" >&2; exit 1; }
	echo "$wall"
}

plain_complete() {  # $1: ENABLE or DISABLE
	q -c "TRUNCATE awa.jobs" -c "ALTER TABLE awa.jobs $1 TRIGGER jobs_dependencies_update" >/dev/null
	q -c "SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object('kind', 'k', 'queue', 'pc')) FROM generate_series(1, $N)))" >/dev/null
	claim_all pc
	local r
	r=$(q <<'SQL'
SELECT clock_timestamp() AS t0 \gset
DO $$
DECLARE i bigint;
BEGIN
	FOR i IN SELECT id FROM awa.jobs WHERE queue = 'pc' ORDER BY id LOOP
		PERFORM awa_complete(i, 1);
	END LOOP;
END $$;
SELECT ms(:'t0');
SQL
)
	q -c "ALTER TABLE awa.jobs ENABLE TRIGGER jobs_dependencies_update" >/dev/null
	echo "$r"
}

: > "$TMP/fo"; : > "$TMP/fi"; : > "$TMP/on"; : > "$TMP/off"
for r in $(seq 1 "$ROUNDS"); do
	fan_out >> "$TMP/fo"
	fan_in >> "$TMP/fi"
	plain_complete DISABLE >> "$TMP/off"
	plain_complete ENABLE >> "$TMP/on"
done
echo "rounds: $ROUNDS (median); PostgreSQL $(q -c 'SHOW server_version'), $(nproc) CPUs"
echo "fan-out: insert 10,000 jobs after one parent (10 x awa_insert_many of 1,000): $(cut -d' ' -f1 "$TMP/fo" | median) ms"
echo "fan-out: the parent's awa_complete, releasing all 10,000: $(cut -d' ' -f2 "$TMP/fo" | median) ms"
echo "fan-in: 10,000 jobs after two parents each, 20,000 parents completed by two sessions at once (100 a transaction): $(median < "$TMP/fi") ms; every job released exactly once"
echo "no dependencies: 10,000 awa_complete, trigger disabled: $(median < "$TMP/off") ms; enabled: $(median < "$TMP/on") ms"
