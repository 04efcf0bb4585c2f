#!/usr/bin/env bash
# Backup and restore, as the README's "Backup and restore" section says to do
# it: every job, queue setting, schedule and the id sequence come back, and
# the next enqueue does not collide with a restored id.
#  1. pg_dump of the whole database -> pg_restore into an empty database;
#  2. pg_dump --data-only --table='awa.*' (awa's tables and its sequences)
#     -> psql into a database where CREATE EXTENSION awa already ran.
# Needs PGHOST/PGPORT/PGUSER of a running server with awa installed.
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$PG_BIN/psql -X -q -At -v ON_ERROR_STOP=1"
SRC=awa_bk_src; FULL=awa_bk_full; DATA=awa_bk_data
TMP=$(mktemp -d /tmp/awa_backup.XXXXXX)
fail() { echo "FAIL: backup: $*"; exit 1; }
ok() { echo "ok - $*"; }
dropdb() { $PSQL -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1; }
cleanup() { dropdb $SRC; dropdb $FULL; dropdb $DATA; rm -rf "$TMP"; }
trap cleanup EXIT
cleanup; mkdir -p "$TMP"

for db in $SRC $FULL $DATA; do $PSQL -d postgres -c "CREATE DATABASE $db" || fail "create $db"; done
$PSQL -d $SRC <<'SQL' >/dev/null || fail "loading the source database"
CREATE EXTENSION awa;
SELECT awa_insert('mail', jsonb_build_object('n', i), queue => 'q' || (i % 3), priority => 1 + i % 4,
	tags => ARRAY['t' || (i % 2)]) FROM generate_series(1, 500) i;
SELECT awa_insert('later', run_at => now() + interval '1 day');
SELECT awa_insert('once', '{"k": 1}', unique_by_args => true, timeout => '10 minutes');
SELECT awa_complete(id, run_lease) FROM awa_claim('q0', batch => 50);
SELECT awa_fail(id, run_lease, 'boom') FROM awa_claim('q1', batch => 20);
SELECT count(*) FROM awa_claim('q2', batch => 5, lease => '1 hour');
SELECT awa_pause_queue('q2');
SELECT awa_set_queue_limit('q1', 3);
SELECT name FROM awa_schedule('nightly', '0 3 * * *', 'report', timezone => 'Europe/Berlin');
SQL

# the rows of every awa table, and the next id the sequence gives
snapshot() {
	local db=$1 t
	for t in jobs queue_meta cron_jobs; do
		echo "== $t"
		$PSQL -d "$db" -c "COPY (SELECT * FROM awa.$t ORDER BY 1) TO STDOUT" || return 1
	done
	echo "== jobs_id_seq $($PSQL -d "$db" -c "SELECT last_value FROM awa.jobs_id_seq")"
}
snapshot $SRC > "$TMP/src" || fail "snapshot of the source"
rows=$(grep -vc '^==' "$TMP/src")
[ "$rows" -gt 500 ] || fail "the source has only $rows rows"

# next_insert DB: the id of a new job must be above every restored id
next_insert() {
	local got
	got=$($PSQL -d "$1" -c "SELECT (awa_insert('after_restore')).id > (SELECT max(id) FROM awa.jobs WHERE kind <> 'after_restore')") \
		|| return 1
	[ "$got" = t ]
}

# 1. whole database
"$PG_BIN/pg_dump" -Fc -d $SRC -f "$TMP/full.dump" || fail "pg_dump of the whole database"
"$PG_BIN/pg_restore" -d $FULL "$TMP/full.dump" || fail "pg_restore of the whole database"
snapshot $FULL > "$TMP/full" || fail "snapshot after the full restore"
diff -u "$TMP/src" "$TMP/full" > "$TMP/full.diff" || { head -40 "$TMP/full.diff"; fail "a full pg_dump/pg_restore changed awa's data (diff above)"; }
next_insert $FULL || fail "after a full restore, a new job's id collides with a restored one"
ok "pg_dump + pg_restore of the whole database: $rows rows of awa's tables identical, the id sequence follows"

# 2. awa's tables and sequences only, into a database that has the extension
$PSQL -d $DATA -c "CREATE EXTENSION awa" || fail "create extension in $DATA"
"$PG_BIN/pg_dump" --data-only --table='awa.*' -d $SRC -f "$TMP/data.sql" || fail "pg_dump --data-only --table='awa.*'"
grep -q "setval('awa.jobs_id_seq'" "$TMP/data.sql" || fail "the data-only dump of awa.* has no setval of awa.jobs_id_seq"
$PSQL -d $DATA -f "$TMP/data.sql" >/dev/null || fail "restoring the data-only dump"
snapshot $DATA > "$TMP/data" || fail "snapshot after the data-only restore"
diff -u "$TMP/src" "$TMP/data" > "$TMP/data.diff" || { head -40 "$TMP/data.diff"; fail "a data-only dump/restore of awa.* changed awa's data (diff above)"; }
next_insert $DATA || fail "after a data-only restore, a new job's id collides with a restored one"
ok "pg_dump --data-only --table='awa.*' into a database with the extension: $rows rows identical, the id sequence follows"
