#!/usr/bin/env bash
# Bulk enqueue measurements (issue 4), all in one run, alternating, median of 3:
#   1. COPY of 100,000 jobs FROM STDIN: into awa.jobs (the COPY path: row trigger
#      awa_jobs_before_insert) vs a raw COPY of the same rows into a same-shaped
#      table (LIKE awa.jobs INCLUDING ALL: same columns, defaults, checks and
#      indexes, no trigger); also the other design, a view with an INSTEAD OF
#      trigger that enqueues each row with awa_insert (a PL/pgSQL trigger here:
#      awa.so ships no code for this design).
#   2. awa_insert_many of the same 100,000 jobs in 100 calls of 1,000 vs
#      INSERT ... SELECT of the same 1,000 rows per statement from a staging table.
# Usage: PGHOST=... PGPORT=... PGUSER=... bench/bulk_measure.sh [database]
# (awa must be installed in the server; the database is created and dropped.)
set -euo pipefail

DB=${1:-awa_bulk_bench}
ROWS=100000
BATCH=1000
ROUNDS=3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

q() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q <<'SQL'
CREATE EXTENSION awa;
CREATE TABLE raw_jobs (LIKE awa.jobs INCLUDING ALL);
-- the other design: a view with an INSTEAD OF trigger (each row through awa_insert)
CREATE VIEW job_import AS
	SELECT kind, args, queue, priority::integer, max_attempts::integer, run_at, tags, metadata
	FROM awa.jobs WHERE false;
ALTER VIEW job_import ALTER COLUMN args SET DEFAULT '{}';
ALTER VIEW job_import ALTER COLUMN queue SET DEFAULT 'default';
ALTER VIEW job_import ALTER COLUMN priority SET DEFAULT 2;
ALTER VIEW job_import ALTER COLUMN max_attempts SET DEFAULT 25;
ALTER VIEW job_import ALTER COLUMN tags SET DEFAULT '{}';
ALTER VIEW job_import ALTER COLUMN metadata SET DEFAULT '{}';
CREATE FUNCTION job_import_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM awa_insert(NEW.kind, NEW.args, NEW.queue, NEW.priority, NEW.max_attempts,
	                   NEW.run_at, NEW.tags, NEW.metadata);
	RETURN NEW;
END $$;
CREATE TRIGGER job_import_insert INSTEAD OF INSERT ON job_import
	FOR EACH ROW EXECUTE FUNCTION job_import_insert();
-- the rows: realistic small args, four queues, some tags
CREATE TABLE staging AS
	SELECT g AS n, (g - 1) / 1000 + 1 AS batch,
	       'send_email_' || (g % 7) AS kind,
	       jsonb_build_object('to', 'user' || g || '@example.com', 'template', 'welcome', 'n', g) AS args,
	       'q' || (g % 4) AS queue,
	       (g % 4 + 1)::smallint AS priority, 25::smallint AS max_attempts,
	       '2025-01-01 00:00:00+00'::timestamptz AS run_at,
	       CASE WHEN g % 3 = 0 THEN ARRAY['bulk', 'import'] ELSE '{}' END::text[] AS tags,
	       '{"source": "bench"}'::jsonb AS metadata
	FROM generate_series(1, 100000) g;
CREATE TABLE batches AS
	SELECT batch, jsonb_agg(jsonb_build_object('kind', kind, 'args', args, 'queue', queue,
		'priority', priority, 'max_attempts', max_attempts, 'run_at', run_at, 'tags', tags,
		'metadata', metadata) ORDER BY n) AS jobs
	FROM staging GROUP BY batch;
CREATE INDEX ON staging (batch);
VACUUM ANALYZE staging;
VACUUM ANALYZE batches;
SQL
q -c "\copy (SELECT kind, args, queue, priority, max_attempts, run_at, tags, metadata FROM staging ORDER BY n) TO '$TMP/jobs.tsv'"

COLS="kind, args, queue, priority, max_attempts, run_at, tags, metadata"
# seconds taken by a psql script (one session, statements autocommit)
timed() {
	local t0 t1
	t0=$(date +%s%N)
	q -f "$1" >/dev/null
	t1=$(date +%s%N)
	echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}
reset() { q -c "TRUNCATE awa.jobs, raw_jobs" -c "CHECKPOINT" >/dev/null; }

echo "\\copy raw_jobs ($COLS) FROM '$TMP/jobs.tsv'" > "$TMP/copy_raw.sql"
echo "\\copy awa.jobs ($COLS) FROM '$TMP/jobs.tsv'" > "$TMP/copy_awa.sql"
echo "\\copy job_import ($COLS) FROM '$TMP/jobs.tsv'" > "$TMP/copy_view.sql"
# insert_many and INSERT ... SELECT alternate batch by batch in one session, each
# statement timed by psql (\timing), so load changes on the machine hit both alike.
{
	echo '\timing on'
	for b in $(seq 1 $((ROWS / BATCH))); do
		echo "INSERT INTO raw_jobs ($COLS) SELECT $COLS FROM staging WHERE batch = $b;"
		echo "SELECT count(*) FROM awa_insert_many((SELECT jobs FROM batches WHERE batch = $b));"
		echo "INSERT INTO awa.jobs ($COLS) SELECT $COLS FROM staging WHERE batch = $b;"
	done
} > "$TMP/batches.sql"
# seconds per kind of statement: insel (raw table), many, insel_awa (awa.jobs, row trigger)
batch_times() {
	q -f "$TMP/batches.sql" | awk '/^Time:/ { t[n++ % 3] += $2 }
		END { printf "%.3f %.3f %.3f\n", t[0] / 1000, t[1] / 1000, t[2] / 1000 }'
}

declare -A T
for r in $(seq 1 $ROUNDS); do
	for m in copy_raw copy_awa copy_view; do
		reset
		T[$m,$r]=$(timed "$TMP/$m.sql")
	done
	reset
	read -r T[insel,$r] T[many,$r] T[insel_awa,$r] < <(batch_times)
	echo "round $r: raw COPY ${T[copy_raw,$r]}s, COPY path ${T[copy_awa,$r]}s, view+INSTEAD OF ${T[copy_view,$r]}s," \
		"INSERT...SELECT ${T[insel,$r]}s (into awa.jobs ${T[insel_awa,$r]}s), awa_insert_many ${T[many,$r]}s"
done

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
declare -A M
for m in copy_raw copy_awa copy_view insel insel_awa many; do
	M[$m]=$(median ${T[$m,1]} ${T[$m,2]} ${T[$m,3]})
done
rate() { echo "$ROWS / $1" | bc -l; }
echo
echo "median of $ROUNDS, $ROWS jobs:"
printf '  %-52s %7ss %9.0f jobs/s\n' \
	"raw COPY into a same-shaped table" "${M[copy_raw]}" "$(rate "${M[copy_raw]}")" \
	"COPY awa.jobs (the COPY path: row trigger)" "${M[copy_awa]}" "$(rate "${M[copy_awa]}")" \
	"COPY into a view, INSTEAD OF trigger (awa_insert)" "${M[copy_view]}" "$(rate "${M[copy_view]}")" \
	"INSERT ... SELECT 1,000 rows, same-shaped table" "${M[insel]}" "$(rate "${M[insel]}")" \
	"INSERT ... SELECT 1,000 rows into awa.jobs" "${M[insel_awa]}" "$(rate "${M[insel_awa]}")" \
	"awa_insert_many, 1,000 jobs a call" "${M[many]}" "$(rate "${M[many]}")"
printf '  COPY path / raw COPY:                          %.2fx\n' "$(echo "${M[copy_raw]} / ${M[copy_awa]}" | bc -l)"
printf '  view + INSTEAD OF / raw COPY:                  %.2fx\n' "$(echo "${M[copy_raw]} / ${M[copy_view]}" | bc -l)"
printf '  awa_insert_many / INSERT...SELECT (same-shaped): %.2fx\n' "$(echo "${M[insel]} / ${M[many]}" | bc -l)"
printf '  awa_insert_many / INSERT...SELECT (awa.jobs):    %.2fx\n' "$(echo "${M[insel_awa]} / ${M[many]}" | bc -l)"

psql -X -q -d postgres -c "DROP DATABASE $DB"
