#!/usr/bin/env bash
# Upgrades: ALTER EXTENSION awa UPDATE from every released version keeps all
# data, and a fresh install equals an upgraded one.  The released versions are
# the versions the upgrade scripts awa--A--B.sql (committed, or built from
# src/sql/) go from or to, other than the control file's default_version;
# PostgreSQL installs each of them through the chain of upgrade scripts from
# the first release's install script, and this test fails when a released
# version cannot be installed or has no chain to the default version.  For
# each of them:
#  1. install it and load data through its API: jobs in every state, unique
#     jobs, tags, metadata, progress, a paused queue, cron schedules, a few
#     thousand jobs through awa_insert_many and COPY;
#  2. with the new library already loaded (the window between installing the
#     package and running ALTER EXTENSION UPDATE) the old SQL API still works;
#  3. ALTER EXTENSION awa UPDATE reaches the default version, every row of
#     every table of schema awa (columns of the old version) and every
#     sequence are unchanged, awa.jobs is not rewritten, new columns are NULL;
#     privileges an administrator granted on awa's objects stay theirs (the
#     update does not record them as the extension's initial privileges, so
#     pg_dump still prints them);
#  4. the upgraded install works, the new API (awa_set_queue_limit) included;
#  5. it equals a fresh install of the default version: same extension
#     members, same pg_init_privs (what pg_dump compares ACLs against), same
#     config tables (pg_extension_config_dump), and the same
#     pg_dump --schema-only once every member is detached from the extension
#     (pg_dump writes only CREATE EXTENSION for an extension's members).
# The passes above run on the table engine, the legacy one (awa.install_engine = table, set for them below).
# Then the ring pass (from the newest released version, below): with the setting at its default, ring, the update
# moves every job into the ring; awa.jobs equals the table engine's row by row, the moved jobs keep working, and
# the database equals a fresh install on the ring engine.
# Needs PGHOST/PGPORT/PGUSER of a running server with awa preloaded and this
# checkout installed; the user must be a superuser (detaching edits pg_depend).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER
PSQL="$PG_BIN/psql -X -q -At -v ON_ERROR_STOP=1"
PG_DUMP="$PG_BIN/pg_dump"
OLD=awa_up_old
NEW=awa_up_new
TMP=$(mktemp -d /tmp/awa_upgrade.XXXXXX)
START=$(date +%s%3N)
fail() { echo "FAIL: upgrade: $*"; exit 1; }
ok() { echo "ok - $*"; }
dropdb() { $PSQL -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1; }
READER=awa_upgrade_reader   # a role of the administrator's (cluster-wide: dropped at the end)
cleanup() { dropdb $OLD; dropdb $NEW; $PSQL -d postgres -c "DROP ROLE IF EXISTS $READER" >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT

# The extension's members, as "the awa extension's OID" in SQL.
AWA_EXT="(SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'awa')"
MEMBERS="pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
	AND d.refobjid = $AWA_EXT AND d.deptype = 'e'"

# Versions -------------------------------------------------------------------

DEFAULT=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$ROOT/awa.control")
[ -n "$DEFAULT" ] || fail "no default_version in $ROOT/awa.control"
installed=$($PSQL -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'awa'") \
	|| fail "cannot reach the server"
[ "$installed" = "$DEFAULT" ] \
	|| fail "the server's awa has default_version '$installed', this checkout '$DEFAULT': run make install"

# Every version an upgrade script goes from or to (the script into the default
# version may be built already or only in src/sql/).
RELEASED=()
for f in "$ROOT"/awa--*--*.sql "$ROOT"/src/sql/awa--*--*.sql; do
	[ -e "$f" ] || continue
	n=$(basename "$f" .sql); n=${n#awa--}
	[[ $n =~ ^([0-9]+\.[0-9]+\.[0-9]+)--([0-9]+\.[0-9]+\.[0-9]+)$ ]] \
		|| fail "$f: not named like an upgrade script (awa--A.B.C--X.Y.Z.sql)"
	for v in "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"; do
		[ "$v" = "$DEFAULT" ] || RELEASED+=("$v")
	done
done
[ ${#RELEASED[@]} -gt 0 ] || fail "no released version (no upgrade script awa--A--B.sql) to upgrade from"
mapfile -t RELEASED < <(printf '%s\n' "${RELEASED[@]}" | sort -u -V)
for v in "${RELEASED[@]}"; do
	[ "$($PSQL -d postgres -c "SELECT count(*) FROM pg_available_extension_versions WHERE name = 'awa' AND version = '$v'")" = 1 ] \
		|| fail "version $v cannot be installed on the server (no install script, no chain of upgrade scripts to it): run make install, or mend the chain"
	path=$($PSQL -d postgres -c "SELECT path FROM pg_extension_update_paths('awa') WHERE source = '$v' AND target = '$DEFAULT'") \
		|| fail "cannot list the update paths of awa"
	[ -n "$path" ] || fail "no chain of upgrade scripts from $v to $DEFAULT on the server"
	echo "# $v -> $DEFAULT: $path"
done
echo "# upgrading to $DEFAULT from: ${RELEASED[*]}"

# Helpers --------------------------------------------------------------------

# claim_complete DB QUEUE N: claim the queue's jobs (batch 5) and complete
# each in the same statement; exactly N must be claimed and completed.
claim_complete() {
	local got
	got=$($PSQL -d "$1" -c "SELECT count(*) || '/' || count(*) FILTER (WHERE awa_complete(id, run_lease))
		FROM awa_claim('$2', 'upgrade-test', batch => 5)") || return 1
	[ "$got" = "$3/$3" ] || { echo "queue $2: claimed/completed $got, expected $3/$3"; return 1; }
}

# membership DB: extension members, their initial privileges, config tables.
membership() {
	$PSQL -d "$1" <<SQL
SELECT 'member: ' || pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) FROM $MEMBERS ORDER BY 1;
SELECT 'init_privs: ' || pg_catalog.pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) || ' ' || ip.initprivs::text
  FROM pg_catalog.pg_init_privs ip
 WHERE ip.privtype = 'e' AND EXISTS (SELECT 1 FROM $MEMBERS AND d.classid = ip.classoid AND d.objid = ip.objoid)
 ORDER BY 1;
SELECT 'config_table: ' || c.tbl::regclass::text || ' condition ' || pg_catalog.quote_literal(c.cond)
  FROM pg_catalog.pg_extension e, unnest(e.extconfig, e.extcondition) AS c(tbl, cond)
 WHERE e.extname = 'awa' ORDER BY 1;
SQL
}

# detach DB: every member of the extension detached from it (the database is thrown away afterwards).
detach() {
	local db=$1
	$PSQL -d "$db" <<SQL || fail "$db: cannot detach the members of the extension"
BEGIN;
-- Their initial privileges go too, or pg_dump would print only the ACL
-- changes made since CREATE EXTENSION (none) instead of every GRANT.
DELETE FROM pg_catalog.pg_init_privs ip USING pg_catalog.pg_depend d
 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = $AWA_EXT AND d.deptype = 'e'
   AND ip.classoid = d.classid AND ip.objoid = d.objid AND ip.privtype = 'e';
DELETE FROM $MEMBERS;
COMMIT;
SQL
	[ "$($PSQL -d "$db" -c "SELECT count(*) FROM $MEMBERS")" = 0 ] || fail "$db: members left after detaching"
}

# schema_dump DB FILE: detach every member from the extension (the database is
# thrown away afterwards) and write its normalized pg_dump --schema-only.
schema_dump() {
	local db=$1 out=$2 nfunc
	nfunc=$($PSQL -d "$db" -c "SELECT count(*) FROM $MEMBERS AND d.classid = 'pg_catalog.pg_proc'::regclass") \
		|| fail "$db: cannot count the extension's functions"
	detach "$db"
	"$PG_DUMP" --schema-only -d "$db" > "$TMP/$db.raw.sql" || fail "$db: pg_dump failed"
	# pg_dump's header and its per-run \restrict key are the only lines that may differ.
	grep -v -E '^(\\restrict|\\unrestrict) |^-- Dumped (from|by) ' "$TMP/$db.raw.sql" > "$out"
	# The dump must really hold the objects, or comparing dumps proves nothing.
	local pat
	for pat in '^CREATE (TABLE|VIEW) awa\.jobs ' '^CREATE TABLE awa\.queue_meta ' '^CREATE TABLE awa\.cron_jobs ' \
		'^CREATE TYPE awa\.job_state ' '^CREATE FUNCTION public\.awa_claim\(' '^CREATE FUNCTION public\.awa_set_queue_limit\(' \
		'^CREATE UNIQUE INDEX jobs_unique_idx ' '^CREATE TRIGGER jobs_before_insert ' '^COMMENT ON FUNCTION public\.awa_insert\(' \
		'^GRANT .* TO awa_producer;' '^GRANT .* TO awa_worker;' '^GRANT .* TO awa_admin;' '^REVOKE ALL ON FUNCTION public\.awa_claim\(' \
		"SET search_path TO 'pg_catalog', 'pg_temp'\$"; do
		grep -q -E "$pat" "$out" || fail "$db: pg_dump --schema-only has no line matching /$pat/: the comparison would prove nothing"
	done
	[ "$(grep -c -E '^CREATE (FUNCTION|PROCEDURE|AGGREGATE) ' "$out")" -ge "$nfunc" ] \
		|| fail "$db: pg_dump has $(grep -c -E '^CREATE (FUNCTION|PROCEDURE|AGGREGATE) ' "$out") CREATE FUNCTION/PROCEDURE/AGGREGATE, the extension had $nfunc"
}

# snapshot DB COLUMNS OUT: every row of every table of schema awa (only the
# columns listed in COLUMNS: "table col,col,..." lines), sorted, and every
# sequence of schema awa.
snapshot() {
	local db=$1 cols=$2 out=$3 t c s
	: > "$out"
	while read -r t c; do
		echo "== table awa.$t ($c)" >> "$out"
		# jobs of queue legacy are changed by the 0.3.0 upgrade on purpose (checked apart)
		where=; [ "$t" = jobs ] && where="WHERE queue <> 'legacy'"
		$PSQL -d "$db" -c "COPY (SELECT $c FROM awa.$t $where) TO STDOUT" | LC_ALL=C sort -V >> "$out"
		[ "${PIPESTATUS[0]}" = 0 ] || fail "$db: cannot read awa.$t ($c)"
	done < "$cols"
	for s in $($PSQL -d "$db" -c "SELECT quote_ident(relname) FROM pg_class WHERE relnamespace = 'awa'::regnamespace AND relkind = 'S' ORDER BY 1"); do
		echo "== sequence awa.$s" >> "$out"
		$PSQL -d "$db" -c "SELECT last_value, is_called FROM awa.$s" >> "$out" || fail "$db: cannot read awa.$s"
	done
}

# load_data DB: realistic data through the API of 0.2.0 (and of the versions after it): jobs in every
# state, unique jobs, tags, metadata, progress, a paused queue, cron schedules, a few thousand jobs through
# awa_insert_many and COPY.
load_data() {
	$PSQL -d "$1" <<'SQL' >/dev/null
SELECT id FROM awa_insert('send_email', '{"to": "a@example.com", "template": "welcome"}', queue => 'mail',
	tags => '{signup,eu}', metadata => '{"trace": "abc-123", "tenant": 7}', priority => 1);
SELECT id FROM awa_insert('nightly_report', '{"day": "2024-05-01"}', queue => 'reports',
	run_at => now() + interval '1 day', tags => '{nightly}');                        -- scheduled
SELECT id FROM awa_insert('sync_account', '{"account": 42}', queue => 'sync', unique_by_args => true);
SELECT id FROM awa_insert('sync_account', '{"account": 42}', queue => 'sync', unique_by_args => true);   -- the same job
SELECT id FROM awa_insert('digest', '{"user": 9}', queue => 'sync', unique_by_args => true, unique_by_queue => true,
	unique_period => '1 hour', unique_states => '{scheduled,available,running,retryable,waiting_external}');
SELECT (awa_insert('resize', jsonb_build_object('image', i, 'sizes', '[64, 128, 512]'::jsonb), queue => 'media',
	priority => 1 + i % 4, max_attempts => 3, metadata => jsonb_build_object('batch', i / 10))).id
  FROM generate_series(1, 60) i;
-- move jobs of queue media through every state
DO $$
DECLARE
	r awa.jobs;
	i integer := 0;
BEGIN
	FOR r IN SELECT * FROM awa_claim('media', 'worker-1', batch => 42, lease => '10 minutes') LOOP
		i := i + 1;
		CASE i % 7
		WHEN 0 THEN PERFORM awa_complete(r.id, r.run_lease);
		WHEN 1 THEN PERFORM awa_fail(r.id, r.run_lease, 'timeout talking to the image service');   -- retryable
		WHEN 2 THEN PERFORM awa_fail(r.id, r.run_lease, 'corrupt image', terminal => true);       -- failed
		WHEN 3 THEN PERFORM awa_progress(r.id, r.run_lease, jsonb_build_object('done', i, 'of', 3));  -- running
		WHEN 4 THEN PERFORM awa_snooze(r.id, r.run_lease, '2 hours');                             -- scheduled
		WHEN 5 THEN UPDATE awa.jobs SET state = 'waiting_external' WHERE id = r.id;              -- no API for it
		ELSE NULL;                                                                                -- running
		END CASE;
	END LOOP;
END
$$;
SELECT count(*) FROM awa_cancel((SELECT min(id) FROM awa.jobs WHERE queue = 'media' AND state = 'available'));
SELECT count(*) FROM awa_cancel((SELECT min(id) FROM awa.jobs WHERE queue = 'media' AND state = 'retryable'));
-- bulk: awa_insert_many and COPY (the trigger path)
SELECT count(*) FROM awa_insert_many((SELECT jsonb_agg(jsonb_build_object(
	'kind', 'index_document', 'args', jsonb_build_object('doc', i), 'queue', 'bulk',
	'priority', 1 + i % 4, 'tags', jsonb_build_array('shard-' || i % 8),
	'metadata', jsonb_build_object('source', 'import'))) FROM generate_series(1, 2500) i));
COPY awa.jobs (kind, args, queue, priority, max_attempts, run_at, tags, metadata) FROM STDIN;
thumbnail	{"file": "a.png"}	copy	2	5	\N	{copy,png}	{"via": "copy"}
thumbnail	{"file": "b.png"}	copy	3	5	2099-01-01 00:00:00+00	{copy}	{}
thumbnail	["x", 1]	copy	4	1	\N	{}	{"note": "tab\\tand newline\\n in a value"}
\.
INSERT INTO awa.jobs (kind, args, queue) SELECT 'ping', jsonb_build_object('n', i), 'copy' FROM generate_series(1, 1000) i;
DO $$
DECLARE
	ids bigint[];
	leases bigint[];
BEGIN
	SELECT array_agg(id), array_agg(run_lease) INTO ids, leases FROM awa_claim('bulk', 'worker-2', batch => 300);
	IF awa_complete_many(ids, leases) <> 300 THEN
		RAISE EXCEPTION 'awa_complete_many did not complete 300 jobs';
	END IF;
END
$$;
-- queues and schedules
SELECT awa_pause_queue('reports', paused_by => 'alice');
SELECT awa_pause_queue('mail');
SELECT awa_resume_queue('mail');
SELECT name FROM awa_schedule('nightly', '0 3 * * *', 'nightly_report', '{"full": true}', queue => 'reports',
	timezone => 'Europe/Berlin', priority => 3, tags => '{cron}', metadata => '{"team": "bi"}');
SELECT name FROM awa_schedule('every_5_min', '*/5 * * * *', 'sync_all', missed_fire_policy => 'catch_up');
SELECT name FROM awa_pause_schedule('every_5_min');
SQL
}

# Fresh install of the default version -----------------------------------------

# the table engine (the legacy one) for the passes of every released version: what they check (every row of every
# table unchanged, awa.jobs not rewritten) is the table's; the ring pass below unsets it
export PGOPTIONS="-c awa.install_engine=table"

dropdb $NEW; dropdb $OLD
$PSQL -d postgres -c "CREATE DATABASE $NEW" || fail "create database $NEW"
$PSQL -d $NEW -c "CREATE EXTENSION awa" || fail "$NEW: CREATE EXTENSION awa (fresh install of $DEFAULT)"
[ "$($PSQL -d $NEW -c "SELECT extversion FROM pg_extension WHERE extname = 'awa'")" = "$DEFAULT" ] \
	|| fail "$NEW: CREATE EXTENSION awa did not install $DEFAULT"
membership $NEW > "$TMP/new.members" || fail "$NEW: cannot list the extension's members"
schema_dump $NEW "$TMP/new.sql"
ok "fresh install of $DEFAULT: $(grep -c '^member: ' "$TMP/new.members") members, dump of $(wc -l < "$TMP/new.sql") lines"

# Every released version ---------------------------------------------------------

PATHS=0
for V in "${RELEASED[@]}"; do
	dropdb $OLD
	$PSQL -d postgres -c "CREATE DATABASE $OLD" || fail "create database $OLD"
	$PSQL -d $OLD -c "CREATE EXTENSION awa VERSION '$V'" || fail "$V: CREATE EXTENSION awa VERSION '$V'"

	# 1. realistic data, through the API of the old version
	load_data $OLD || fail "$V: loading data through the API of $V"
	# Unique jobs with a unique_states set that leaves out live states, as
	# earlier libraries accepted (written directly: this library refuses them).
	# legacy_a: two available jobs whose key is held only while running (they
	# would collide once claimed); legacy_b: a job held only while available.
	$PSQL -d $OLD <<'SQL' >/dev/null || fail "$V: writing jobs with narrow unique_states"
INSERT INTO awa.jobs (kind, queue, unique_key, unique_states, state)
VALUES ('legacy_a', 'legacy', '\x0a', B'00100000', 'available'),
       ('legacy_a', 'legacy', '\x0a', B'00100000', 'available'),
       ('legacy_b', 'legacy', '\x0b', B'01000000', 'available');
SQL
	missing=$($PSQL -d $OLD -c "SELECT string_agg(s::text, ', ') FROM unnest(enum_range(NULL::awa.job_state)) s
		WHERE NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.state = s)") || fail "$V: cannot count states"
	[ -z "$missing" ] || fail "$V: the data has no job in state(s) $missing"
	counts=$($PSQL -d $OLD -c "SELECT (SELECT count(*) FROM awa.jobs) || ' jobs, '
		|| (SELECT count(*) FROM awa.queue_meta) || ' queue rows, ' || (SELECT count(*) FROM awa.cron_jobs) || ' schedules'")
	ok "$V: data loaded through the $V API, every job state present ($counts)"

	# 2. the old SQL objects with the new library
	$PSQL -d $OLD <<'SQL' >/dev/null || fail "$V: the $V API fails with the new library loaded (before ALTER EXTENSION UPDATE)"
SELECT id FROM awa_insert('pre_upgrade', '{"n": 1}', queue => 'pre');
SELECT id FROM awa_insert('pre_upgrade', '{"n": 2}', queue => 'pre');
DO $$
BEGIN
	IF (SELECT count(*) FROM awa_queue_stats() s WHERE s.queue IN ('media', 'reports', 'bulk')) <> 3 THEN
		RAISE EXCEPTION 'awa_queue_stats misses queues';
	END IF;
	IF NOT (SELECT paused FROM awa_queue_stats() s WHERE s.queue = 'reports') THEN
		RAISE EXCEPTION 'awa_queue_stats: queue reports not paused';
	END IF;
END
$$;
SELECT * FROM awa_maintain();
SELECT * FROM awa_health_check();
SQL
	claim_complete $OLD pre 2 || fail "$V: claim and complete with the new library (before ALTER EXTENSION UPDATE)"
	# what needs the new schema says so, and changes nothing
	got=$($PSQL -d $OLD -c "SELECT count(*) FROM awa_insert_many('[{\"kind\": \"x\", \"timeout\": 5}]')" 2>&1)
	[[ $got == *"a job's timeout needs a newer awa schema"*"ALTER EXTENSION awa UPDATE"* ]] \
		|| fail "$V: a timeout on the $V schema gave: $got"
	ok "$V: insert, claim, complete, awa_queue_stats, awa_maintain, awa_health_check work on $V with the new library"

	# 3. upgrade; the data is unchanged
	$PSQL -d $OLD -c "SELECT c.relname || ' ' || string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum)
		FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relnamespace = 'awa'::regnamespace AND c.relkind IN ('r', 'p') GROUP BY c.relname ORDER BY 1" \
		> "$TMP/old.columns" || fail "$V: cannot list the tables of schema awa"
	[ "$(wc -l < "$TMP/old.columns")" -ge 3 ] || fail "$V: schema awa has fewer than 3 tables"
	snapshot $OLD "$TMP/old.columns" "$TMP/before.data"
	filenode=$($PSQL -d $OLD -c "SELECT pg_relation_filenode('awa.jobs')")
	# an administrator's own grants on a table and on a function of awa
	$PSQL -d postgres -c "CREATE ROLE $READER NOLOGIN" >/dev/null 2>&1
	$PSQL -d $OLD -c "GRANT SELECT ON awa.jobs TO $READER" -c "GRANT EXECUTE ON FUNCTION awa_queue_stats() TO $READER" \
		|| fail "$V: granting privileges to role $READER"
	$PSQL -d $OLD -c "ALTER EXTENSION awa UPDATE" || fail "$V: ALTER EXTENSION awa UPDATE failed"
	got=$($PSQL -d $OLD -c "SELECT extversion FROM pg_extension WHERE extname = 'awa'")
	[ "$got" = "$DEFAULT" ] || fail "$V: ALTER EXTENSION awa UPDATE reached '$got', not $DEFAULT"
	snapshot $OLD "$TMP/old.columns" "$TMP/after.data"
	diff -u "$TMP/before.data" "$TMP/after.data" > "$TMP/data.diff" \
		|| { head -100 "$TMP/data.diff"; fail "$V -> $DEFAULT: data changed by the upgrade (diff above: - before, + after)"; }
	[ "$(grep -c -v '^==' "$TMP/before.data")" -gt 3000 ] || fail "$V: the data snapshot is too small to mean anything"
	[ "$($PSQL -d $OLD -c "SELECT pg_relation_filenode('awa.jobs')")" = "$filenode" ] \
		|| fail "$V -> $DEFAULT: the upgrade rewrote awa.jobs (slow and locking on a big table)"
	[ "$($PSQL -d $OLD -c "SELECT count(*) FROM awa.queue_meta WHERE max_running IS NOT NULL")" = 0 ] \
		|| fail "$V -> $DEFAULT: the upgrade gave a queue a concurrency limit"
	# the narrow unique_states sets were widened to every live state; of the two
	# jobs that would then hold one key, the older keeps it and the other says why
	got=$($PSQL -d $OLD -c "SELECT string_agg(kind || ':' || state || ':' || unique_states::text || ':'
		|| (unique_key IS NOT NULL) || ':' || cardinality(errors), ' ' ORDER BY id) FROM awa.jobs WHERE queue = 'legacy'")
	[ "$got" = "legacy_a:available:11101001:true:0 legacy_a:available:11101001:false:1 legacy_b:available:11101001:true:0" ] \
		|| fail "$V -> $DEFAULT: jobs with narrow unique_states after the upgrade: $got"
	$PSQL -d $OLD -c "SELECT errors[1]->>'error' FROM awa.jobs WHERE queue = 'legacy' AND unique_key IS NULL" \
		| grep -q "unique key released; job [0-9]* holds it" || fail "$V -> $DEFAULT: the released key gives no reason"
	ok "$V -> $DEFAULT: narrow unique_states widened to the live states; a job that would collide kept its data, not its key"
	got=$($PSQL -d $OLD -c "SELECT count(*) FROM pg_catalog.pg_init_privs ip, aclexplode(ip.initprivs) a
		WHERE a.grantee = '$READER'::regrole")
	[ "$got" = 0 ] || fail "$V -> $DEFAULT: the update recorded $got of an administrator's grants as the extension's initial privileges (pg_dump leaves them out)"
	got=$("$PG_DUMP" --schema-only -d $OLD | grep -c -E "^GRANT (SELECT ON TABLE awa\.jobs|ALL ON FUNCTION public\.awa_queue_stats\(\)) TO $READER;\$")
	[ "$got" = 2 ] || fail "$V -> $DEFAULT: pg_dump prints $got of the 2 grants to $READER made before the update"
	$PSQL -d $OLD -c "REVOKE SELECT ON awa.jobs FROM $READER" -c "REVOKE EXECUTE ON FUNCTION awa_queue_stats() FROM $READER" \
		|| fail "$V: revoking the privileges of role $READER"
	ok "$V -> $DEFAULT: an administrator's grants on awa's objects made before the update are still theirs (pg_dump prints them)"
	ok "$V -> $DEFAULT: ALTER EXTENSION awa UPDATE kept every row ($(grep -c -v '^==' "$TMP/before.data") rows and sequences), awa.jobs not rewritten, max_running NULL"
	# the job counters the update created (one fold of a full count) give the
	# stats of a recount
	got=$($PSQL -d $OLD -c "WITH r AS (SELECT queue,
			count(*) FILTER (WHERE state IN ('scheduled', 'available', 'running', 'retryable', 'waiting_external')) AS tq,
			count(*) FILTER (WHERE state = 'failed') AS f, count(*) FILTER (WHERE state = 'cancelled') AS c,
			count(*) FILTER (WHERE state = 'completed' AND finalized_at > now() - interval '1 hour') AS clh
			FROM awa.jobs GROUP BY queue),
		q AS (SELECT * FROM r WHERE tq + f + c + clh > 0),
		s AS (SELECT queue, total_queued, failed, cancelled, completed_last_hour FROM awa_queue_stats()
			WHERE total_queued + failed + cancelled + completed_last_hour > 0)
		SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM ((SELECT * FROM q EXCEPT SELECT * FROM s)
			UNION ALL (SELECT * FROM s EXCEPT SELECT * FROM q)) d)")
	[[ $got =~ ^[1-9][0-9]*\|0$ ]] || fail "$V -> $DEFAULT: awa_queue_stats() after the update differs from a recount (queues|rows differing: $got)"
	ok "$V -> $DEFAULT: awa_queue_stats() after the update equals a recount ($got queues|differing rows)"

	# 4. the upgraded install works, its new API included
	$PSQL -d $OLD <<'SQL' >/dev/null || fail "$V -> $DEFAULT: the upgraded install does not work"
SELECT id FROM awa_insert('post_upgrade', '{"n": 1}', queue => 'post');
DO $$
DECLARE
	n integer;
BEGIN
	IF (SELECT max_running FROM awa_set_queue_limit('limited', 1)) IS DISTINCT FROM 1 THEN
		RAISE EXCEPTION 'awa_set_queue_limit did not return the limit';
	END IF;
	PERFORM awa_insert('limited_job', jsonb_build_object('n', i), queue => 'limited') FROM generate_series(1, 3) i;
	n := (SELECT count(*) FROM awa_claim('limited', 'post-worker', batch => 5));
	IF n <> 1 THEN
		RAISE EXCEPTION 'awa_claim of a queue limited to 1 returned % jobs', n;
	END IF;
END
$$;
SELECT * FROM awa_maintain();
SQL
	claim_complete $OLD post 1 || fail "$V -> $DEFAULT: claim and complete after the upgrade"
	claim_complete $OLD legacy 3 || fail "$V -> $DEFAULT: claiming the jobs whose unique_states were widened"
	# a job running since before the update: its first heartbeat renews the
	# lease it was claimed with (10 minutes), and keeps it
	got=$($PSQL -d $OLD -c "SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM awa.jobs
		WHERE state = 'running' AND queue = 'media'" -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE
		lease = interval '10 minutes' AND deadline_at = heartbeat_at + interval '10 minutes')
		FROM awa.jobs WHERE state = 'running' AND queue = 'media'" | tail -1)
	read -r njobs nrenewed <<< "$got"
	[ "${njobs:-0}" -gt 0 ] && [ "$njobs" = "$nrenewed" ] || fail "$V -> $DEFAULT: heartbeats of jobs running since before the update: $got (jobs, renewed by their lease)"
	ok "$V -> $DEFAULT: jobs running since before the update kept their deadlines; their first heartbeat renews the lease they were claimed with"
	got=$($PSQL -d $OLD -c "SELECT version FROM awa_health_check()") || fail "$V -> $DEFAULT: awa_health_check fails"
	[ "$got" = "$DEFAULT" ] || fail "$V -> $DEFAULT: awa_health_check reports version '$got'"
	ok "$V -> $DEFAULT: insert, claim, complete, awa_set_queue_limit (batch 5 of 3 jobs, limit 1: 1 claimed), awa_health_check reports $DEFAULT"

	# 5. upgraded = fresh
	membership $OLD > "$TMP/old.members" || fail "$V: cannot list the extension's members"
	diff -u "$TMP/new.members" "$TMP/old.members" > "$TMP/members.diff" \
		|| { cat "$TMP/members.diff"; fail "$V -> $DEFAULT: extension members, initial privileges or config tables differ (- fresh, + upgraded)"; }
	ok "$V -> $DEFAULT: same extension members, pg_init_privs and config tables as a fresh install ($(wc -l < "$TMP/new.members") lines)"
	schema_dump $OLD "$TMP/old.sql"
	diff -u "$TMP/new.sql" "$TMP/old.sql" > "$TMP/schema.diff" \
		|| { cat "$TMP/schema.diff"; fail "$V -> $DEFAULT: pg_dump --schema-only differs (- fresh install, + upgraded from $V)"; }
	ok "$V -> $DEFAULT: pg_dump --schema-only identical to a fresh install ($(wc -l < "$TMP/old.sql") lines, $(grep -c -E '^(GRANT|REVOKE) ' "$TMP/old.sql") GRANT/REVOKE)"
	dropdb $OLD
	PATHS=$((PATHS + 1))
done

# The ring engine ------------------------------------------------------------------

unset PGOPTIONS   # the default engine, the ring
#
# With the superuser setting awa.install_engine = ring, ALTER EXTENSION awa UPDATE moves every job of the table
# awa.jobs into the ring and awa.jobs becomes the ring's view (src/sql/engine.sql, src/ring_adopt.c;
# docs/storage.md, "Step 5: moving a database's jobs into the ring").  From the newest released version: the data
# above plus the states it lacks (jobs failed more than once, retried, cancelled while running, a due retry,
# unique keys held while scheduled and running, a periodic job); the database is copied (CREATE DATABASE ...
# TEMPLATE) and the copy upgraded with the table engine, so that awa.jobs of the two can be compared row by row,
# every column.  Then the moved jobs keep working, the counters equal a recount, and the upgraded database equals
# a fresh install on the ring engine.  Jobs of 0.3.0's features (dependencies, groups, callbacks, results,
# concurrency keys) cannot exist in a 0.2.0 database: the same move runs on a 0.3.0 table-engine database.
RING=awa_up_ring
RINGT=awa_up_ring_table
RINGNEW=awa_up_ring_new
FEAT=awa_up_feat
FEATR=awa_up_feat_ring
trap 'cleanup; for d in $RING $RINGT $RINGNEW $FEAT $FEATR; do dropdb $d; done' EXIT
V=${RELEASED[${#RELEASED[@]}-1]}
LIVE="('scheduled', 'available', 'running', 'retryable', 'waiting_external')"
# awa.jobs as the ring shows it, from the table: the differences docs/storage.md names (an attempt claimed before
# 0.3.0 has no lease on the table: the ring's receipt keeps the one it was claimed with; a job parked without a
# callback, which 0.2.0 had no API for, has no wait deadline on the ring)
EXPECTED="SELECT id, kind, queue, args, state, priority, attempt, max_attempts, run_at,
	CASE WHEN state = 'waiting_external' AND callback_key IS NULL THEN NULL ELSE heartbeat_at END,
	CASE WHEN state = 'waiting_external' AND callback_key IS NULL THEN NULL ELSE deadline_at END,
	attempted_at, finalized_at, created_at, errors, metadata, tags, unique_key, unique_states, run_lease, progress,
	claimed_by, CASE WHEN lease IS NULL AND attempted_at IS NOT NULL AND state IN $LIVE
		THEN coalesce(deadline_at - attempted_at, interval '0') ELSE lease END,
	timeout, result, callback_key, callback_lease, callback_timeout, callback_payload, group_id, concurrency_key
	FROM awa.jobs WHERE queue <> 'legacy' ORDER BY id"

# rows_equal DB_TABLE DB_RING WHAT: awa.jobs of the ring database equals the table's, every column (queue legacy
# apart: the update itself writes an error with its own time into its jobs)
rows_equal() {
	$PSQL -d "$1" -c "COPY ($EXPECTED) TO STDOUT" > "$TMP/jobs.table" || fail "$3: cannot read awa.jobs of $1"
	$PSQL -d "$2" -c "COPY (SELECT * FROM awa.jobs WHERE queue <> 'legacy' ORDER BY id) TO STDOUT" > "$TMP/jobs.ring" \
		|| fail "$3: cannot read awa.jobs of $2"
	diff -u "$TMP/jobs.table" "$TMP/jobs.ring" > "$TMP/jobs.diff" \
		|| { head -40 "$TMP/jobs.diff"; fail "$3: awa.jobs on the ring differs from the table's (- table, + ring)"; }
	[ "$(wc -l < "$TMP/jobs.ring")" -gt "${4:-10}" ] || fail "$3: too few jobs to mean anything"
	[ "$($PSQL -d "$2" -c "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass")" = v ] \
		|| fail "$3: awa.jobs of $2 is not the ring's view"
	[ "$($PSQL -d "$2" -c "SELECT count(*) FROM awa.jobs_table")" = 0 ] || fail "$3: awa.jobs_table kept jobs"
	[ "$($PSQL -d "$2" -c "SELECT (SELECT count(*) FROM awa.ready) > 0 AND (SELECT count(*) FROM awa.scheduled) > 0
		AND (SELECT count(*) FROM awa.ring_history) > 0")" = t ] || fail "$3: the ring's relations do not hold the jobs"
}

# stats_equal DB_TABLE DB_RING WHAT: awa_queue_stats() the same (lag apart: it grows with time), and equal to a
# recount on the ring
stats_equal() {
	local q="COPY (SELECT queue, total_queued, scheduled, available, running, retryable, failed, cancelled,
		waiting_external, completed_last_hour FROM awa_queue_stats() ORDER BY queue) TO STDOUT"
	$PSQL -d "$1" -c "$q" > "$TMP/stats.table" && $PSQL -d "$2" -c "$q" > "$TMP/stats.ring" \
		|| fail "$3: awa_queue_stats() fails"
	diff -u "$TMP/stats.table" "$TMP/stats.ring" || fail "$3: awa_queue_stats() differs on the ring (- table, + ring)"
	got=$($PSQL -d "$2" -c "SELECT count(*) FROM awa.ring_recount()") || fail "$3: awa.ring_recount() fails"
	[ "$got" = 0 ] || { $PSQL -d "$2" -c "SELECT * FROM awa.ring_recount()"; fail "$3: the ring's counters differ from a recount"; }
}

for d in $RING $RINGT $RINGNEW $FEAT $FEATR; do dropdb $d; done
$PSQL -d postgres -c "CREATE DATABASE $RINGNEW" || fail "create database $RINGNEW"
$PSQL -d $RINGNEW -c "CREATE EXTENSION awa" \
	|| fail "$RINGNEW: CREATE EXTENSION awa on the ring engine"
membership $RINGNEW > "$TMP/ringnew.members" || fail "$RINGNEW: cannot list the extension's members"
schema_dump $RINGNEW "$TMP/ringnew.sql"

$PSQL -d postgres -c "CREATE DATABASE $RING" || fail "create database $RING"
$PSQL -d $RING -c "CREATE EXTENSION awa VERSION '$V'" || fail "$V: CREATE EXTENSION awa VERSION '$V'"
load_data $RING || fail "$V (ring): loading data through the API of $V"
$PSQL -d $RING <<'SQL' >/dev/null || fail "$V (ring): loading the states the data lacks"
SELECT (awa_insert('flaky', jsonb_build_object('n', i), queue => 'ringx', priority => 1 + i % 4, max_attempts => 5)).id
  FROM generate_series(1, 5) i;
DO $$
DECLARE
	r awa.jobs;
BEGIN
	-- attempt 1 of every ringx job fails, and is due again
	FOR r IN SELECT * FROM awa_claim('ringx', 'worker-r', batch => 5, lease => '3 minutes') LOOP
		PERFORM awa_fail(r.id, r.run_lease, 'first failure of ' || r.id, retry_in => '0 seconds');
	END LOOP;
	-- attempt 2: fails again (retryable, due a minute ago), fails for good and is retried (available again, its
	-- past kept), is cancelled while running (and one of those retried), runs on with a heartbeat and progress
	FOR r IN SELECT * FROM awa_claim('ringx', 'worker-r', batch => 5, lease => '3 minutes') LOOP
		CASE (r.args->>'n')::int
		WHEN 1 THEN PERFORM awa_fail(r.id, r.run_lease, 'second failure', retry_in => '1 hour');
			UPDATE awa.jobs SET run_at = now() - interval '1 minute' WHERE id = r.id;
		WHEN 2 THEN PERFORM awa_fail(r.id, r.run_lease, 'gave up', terminal => true);
			PERFORM awa_retry(r.id);
		WHEN 3 THEN PERFORM awa_cancel(r.id);
		WHEN 5 THEN PERFORM awa_cancel(r.id);
			PERFORM awa_retry(r.id);
		ELSE PERFORM pg_sleep(0.01);
			PERFORM awa_heartbeat(ARRAY[r.id], ARRAY[r.run_lease]);
			PERFORM awa_progress(r.id, r.run_lease, '{"step": 2}');
		END CASE;
	END LOOP;
END
$$;
-- unique jobs holding their keys while scheduled and while running
SELECT id FROM awa_insert('unique_later', '{"k": 1}', queue => 'ringu', run_at => now() + interval '1 hour',
	unique_by_args => true);
SELECT id FROM awa_insert('unique_now', '{"k": 2}', queue => 'ringu', unique_by_args => true, priority => 4);
SELECT count(*) FROM awa_claim('ringu', 'worker-u', batch => 1, lease => '1 hour');
-- a periodic job, fired by maintenance
SELECT name FROM awa_schedule('ring_minutely', '* * * * *', 'tick', '{"periodic": true}', queue => 'ticks');
UPDATE awa.cron_jobs SET next_fire_at = now() - interval '1 minute' WHERE name = 'ring_minutely';
SELECT * FROM awa_maintain();
SQL
# narrow unique_states, widened by the update itself before the move (one job keeps its data, not its key, and
# says why in its errors: an error of attempt 0)
$PSQL -d $RING -c "INSERT INTO awa.jobs (kind, queue, unique_key, unique_states, state)
	VALUES ('legacy_a', 'legacy', '\x0a', B'00100000', 'available'), ('legacy_a', 'legacy', '\x0a', B'00100000', 'available')" \
	>/dev/null || fail "$V (ring): writing jobs with narrow unique_states"
[ "$($PSQL -d $RING -c "SELECT count(*) FROM awa.jobs WHERE queue = 'ticks'")" = 1 ] \
	|| fail "$V (ring): the periodic job did not fire"
missing=$($PSQL -d $RING -c "SELECT string_agg(s::text, ', ') FROM unnest(enum_range(NULL::awa.job_state)) s
	WHERE NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.state = s)") || fail "$V (ring): cannot count states"
[ -z "$missing" ] || fail "$V (ring): the data has no job in state(s) $missing"
maxid=$($PSQL -d $RING -c "SELECT max(id) FROM awa.jobs")
$PSQL -d postgres -c "CREATE DATABASE $RINGT TEMPLATE $RING" || fail "copying $RING"
PGOPTIONS="-c awa.install_engine=table" $PSQL -d $RINGT -c "ALTER EXTENSION awa UPDATE" || fail "$V -> $DEFAULT (table engine, the copy): ALTER EXTENSION awa UPDATE"
t0=$(date +%s%3N)
$PSQL -d $RING -c "ALTER EXTENSION awa UPDATE" \
	|| fail "$V -> $DEFAULT: ALTER EXTENSION awa UPDATE with awa.install_engine = ring"
t1=$(date +%s%3N)
rows_equal $RINGT $RING "$V -> $DEFAULT (ring)" 3000
legacy="COPY (SELECT id, kind, state, attempt, run_lease, unique_key, unique_states, ARRAY(SELECT e - 'at' FROM unnest(errors) e)
	FROM awa.jobs WHERE queue = 'legacy' ORDER BY id) TO STDOUT"
[ "$($PSQL -d $RINGT -c "$legacy" | md5sum)" = "$($PSQL -d $RING -c "$legacy" | md5sum)" ] \
	&& [ "$($PSQL -d $RING -c "SELECT count(*) FROM awa.jobs WHERE queue = 'legacy' AND cardinality(errors) = 1")" = 1 ] \
	|| fail "$V -> $DEFAULT (ring): the jobs whose unique_states the update widened differ from the table engine's"
ok "$V -> $DEFAULT with awa.install_engine = ring: every job moved into the ring in $((t1 - t0)) ms, awa.jobs the same row by row, every column ($(wc -l < "$TMP/jobs.ring") jobs)"
for t in queue_meta cron_jobs; do
	[ "$($PSQL -d $RINGT -c "COPY (SELECT * FROM awa.$t ORDER BY 1) TO STDOUT" | md5sum)" \
		= "$($PSQL -d $RING -c "COPY (SELECT * FROM awa.$t ORDER BY 1) TO STDOUT" | md5sum)" ] \
		|| fail "$V -> $DEFAULT (ring): awa.$t differs from the table engine's"
done
stats_equal $RINGT $RING "$V -> $DEFAULT (ring)"
ok "$V -> $DEFAULT (ring): awa.queue_meta and awa.cron_jobs as on the table engine; awa_queue_stats() the same, and equal to a recount"

# the moved jobs keep working
$PSQL -d $RING <<SQL >/dev/null || fail "$V -> $DEFAULT (ring): the moved jobs do not work"
DO \$\$
DECLARE
	r awa.jobs;
	n integer := 0;
BEGIN
	-- available jobs are claimed and completed, in priority order
	FOR r IN SELECT * FROM awa_claim('bulk', 'ring-worker', batch => 10) LOOP
		n := n + 1;
		IF r.attempt <> 1 OR r.run_lease <> 1 THEN
			RAISE EXCEPTION 'claimed job % has attempt % and run_lease %', r.id, r.attempt, r.run_lease;
		END IF;
		IF NOT awa_complete(r.id, r.run_lease) THEN
			RAISE EXCEPTION 'awa_complete of moved job % failed', r.id;
		END IF;
	END LOOP;
	IF n <> 10 THEN
		RAISE EXCEPTION 'claimed % moved bulk jobs, not 10', n;
	END IF;
	IF (SELECT count(*) FROM awa_claim('mail', 'ring-worker', batch => 5)) <> 1 THEN
		RAISE EXCEPTION 'queue mail: its one moved job was not claimed';
	END IF;
	-- the job retried before the move: its next attempt is its third, its lease the next
	SELECT * INTO r FROM awa_claim('ringx', 'ring-worker', batch => 5) WHERE args->>'n' = '2';
	IF r.id IS NULL OR r.attempt <> 1 OR r.run_lease <> 3 THEN
		RAISE EXCEPTION 'the retried job claimed as %', row_to_json(r);
	END IF;
	-- a running job completes by the lease it had before the move; a second completion is a no-op
	SELECT * INTO r FROM awa.jobs WHERE state = 'running' AND queue = 'media' ORDER BY id LIMIT 1;
	IF NOT awa_complete(r.id, r.run_lease) THEN
		RAISE EXCEPTION 'moved running job % did not complete by its lease', r.id;
	END IF;
	IF awa_complete(r.id, r.run_lease) OR (SELECT state FROM awa.jobs WHERE id = r.id) <> 'completed' THEN
		RAISE EXCEPTION 'moved running job % completed twice, or is not completed', r.id;
	END IF;
	-- a unique key held before the move still holds: the same job again is the holder
	IF (SELECT id FROM awa_insert('sync_account', '{"account": 42}', queue => 'sync', unique_by_args => true))
		<> (SELECT min(id) FROM awa.jobs WHERE kind = 'sync_account') THEN
		RAISE EXCEPTION 'a unique key held before the move did not conflict';
	END IF;
	IF (SELECT id FROM awa_insert('unique_now', '{"k": 2}', queue => 'ringu', unique_by_args => true))
		<> (SELECT id FROM awa.jobs WHERE kind = 'unique_now') THEN
		RAISE EXCEPTION 'the unique key of a moved running job did not conflict';
	END IF;
	-- a failed job moved into the history is retried
	SELECT * INTO r FROM awa.jobs WHERE state = 'failed' ORDER BY id LIMIT 1;
	IF (SELECT state FROM awa_retry(r.id)) <> 'available' THEN
		RAISE EXCEPTION 'moved failed job % was not retried', r.id;
	END IF;
	-- new ids continue above every moved one
	IF (SELECT id FROM awa_insert('after_move', '{}', queue => 'post')) <= $maxid THEN
		RAISE EXCEPTION 'a new job took an id of the moved ones (at most $maxid)';
	END IF;
END
\$\$;
SELECT * FROM awa_maintain();
SQL
# (the ring caps each new deadline by awa.heartbeat_timeout as well: docs/storage.md, "Step 4: heartbeats, ...")
got=$($PSQL -d $RING -c "SELECT awa_heartbeat(array_agg(id), array_agg(run_lease)) FROM awa.jobs
	WHERE state = 'running' AND queue = 'media'" -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE
	lease = interval '10 minutes' AND deadline_at > now() AND heartbeat_at > now() - interval '1 minute')
	FROM awa.jobs WHERE state = 'running' AND queue = 'media'")
[[ $got =~ ^\{\}$'\n'([1-9][0-9]*)\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] \
	|| fail "$V -> $DEFAULT (ring): heartbeats of moved running jobs: $got (not renewed; jobs, renewed keeping the lease they were claimed with)"
got=$($PSQL -d $RING -c "SELECT count(*) FROM awa.ring_recount()") || fail "$V -> $DEFAULT (ring): awa.ring_recount() fails"
[ "$got" = 0 ] || { $PSQL -d $RING -c "SELECT * FROM awa.ring_recount()"; fail "$V -> $DEFAULT (ring): counters differ from a recount after work on the moved jobs"; }
ok "$V -> $DEFAULT (ring): moved jobs claimed and completed (available, retried, running by its lease), unique keys held, a failed job retried from the history, heartbeats renew the claimed lease, new ids above $maxid, counters equal a recount"

# the ring's own maintenance takes the moved rows: the slot they landed in is sealed and reclaimed (its unfinished
# jobs carried into the next slot, its finished ones into the history), and awa.jobs reads the same
$PSQL -d $RING -c "COPY (SELECT * FROM awa.jobs ORDER BY id) TO STDOUT" > "$TMP/jobs.before_reclaim" \
	|| fail "$V -> $DEFAULT (ring): cannot read awa.jobs"
got=$($PSQL -d $RING -c "SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')" \
	-c "SELECT string_agg(outcome, ',') FILTER (WHERE outcome <> 'empty') FROM awa.ring_reclaim(10000)")
[ "$got" = "rotated"$'\n'"reclaimed" ] || fail "$V -> $DEFAULT (ring): rotating and reclaiming the slot of the moved jobs: $got"
$PSQL -d $RING -c "COPY (SELECT * FROM awa.jobs ORDER BY id) TO STDOUT" > "$TMP/jobs.after_reclaim" \
	|| fail "$V -> $DEFAULT (ring): cannot read awa.jobs"
diff -u "$TMP/jobs.before_reclaim" "$TMP/jobs.after_reclaim" | head -20
cmp -s "$TMP/jobs.before_reclaim" "$TMP/jobs.after_reclaim" || fail "$V -> $DEFAULT (ring): reclaiming the moved jobs' slot changed awa.jobs (- before, + after)"
[ "$($PSQL -d $RING -c "SELECT count(*) FROM awa.ring_recount()")" = 0 ] \
	|| fail "$V -> $DEFAULT (ring): counters differ from a recount after the reclaim"
ok "$V -> $DEFAULT (ring): the slot of the moved jobs sealed and reclaimed: awa.jobs the same, counters equal a recount"

membership $RING > "$TMP/ring.members" || fail "$RING: cannot list the extension's members"
diff -u "$TMP/ringnew.members" "$TMP/ring.members" \
	|| fail "$V -> $DEFAULT (ring): extension members, initial privileges or config tables differ from a fresh install on the ring (- fresh, + upgraded)"
schema_dump $RING "$TMP/ring.sql"
diff -u "$TMP/ringnew.sql" "$TMP/ring.sql" \
	|| fail "$V -> $DEFAULT (ring): pg_dump --schema-only differs from a fresh install on the ring engine (- fresh, + upgraded)"
ok "$V -> $DEFAULT (ring): same members, pg_init_privs, config tables and pg_dump --schema-only as a fresh install on the ring engine ($(wc -l < "$TMP/ring.sql") lines)"

# 0.3.0's features: a table-engine database of this version, its conversion run as the scripts run it
$PSQL -d postgres -c "CREATE DATABASE $FEAT" || fail "create database $FEAT"
cbid=$($PSQL -d $FEAT <<'SQL'
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SELECT count(*) FROM (SELECT awa_insert('parent', jsonb_build_object('n', i), queue => 'deps') FROM generate_series(1, 2) i) x;
SELECT count(*) FROM awa_insert('child', '{}', queue => 'deps',
	after => ARRAY(SELECT id FROM awa.jobs WHERE kind = 'parent' ORDER BY id));
SELECT count(*) FROM (SELECT awa_insert('member', jsonb_build_object('n', i), queue => 'grp', group_id => 'g1')
	FROM generate_series(1, 3) i) x;
SELECT count(*) FROM awa_group_on_finish('g1', 'group_done', '{"g": 1}', queue => 'grp');
SELECT count(*) FROM (SELECT awa_insert('keyed', jsonb_build_object('n', i), queue => 'keys', concurrency_key => 'acct-1',
	timeout => '1 hour') FROM generate_series(1, 3) i) x;
SELECT count(*) FROM awa_insert('external', '{}', queue => 'ext');
SELECT count(*) FROM awa_insert('result', '{}', queue => 'res');
DO $$
DECLARE
	r awa.jobs;
BEGIN
	SELECT * INTO r FROM awa_claim('res', 'w') LIMIT 1;
	PERFORM awa_complete(r.id, r.run_lease, '{"answer": 42}');
	SELECT * INTO r FROM awa_claim('deps', 'w') LIMIT 1;		-- the first parent completes
	PERFORM awa_complete(r.id, r.run_lease);
	SELECT * INTO r FROM awa_claim('grp', 'w') LIMIT 1;		-- a member completes
	PERFORM awa_complete(r.id, r.run_lease);
	PERFORM awa_claim('keys', 'w', batch => 3);				-- one runs (the key's limit is 1)
END
$$;
SELECT awa_register_callback(r.id, r.run_lease, '1 hour') FROM awa_claim('ext', 'w') r;
SELECT awa_wait_external(id, run_lease) FROM awa.jobs WHERE queue = 'ext';
SQL
) || fail "$FEAT: loading jobs of 0.3.0's features"
cbid=$(echo "$cbid" | grep -E '^[0-9a-f-]{36}$')
[ -n "$cbid" ] || fail "$FEAT: no callback id"
$PSQL -d postgres -c "CREATE DATABASE $FEATR TEMPLATE $FEAT" || fail "copying $FEAT"
# engine.sql and engine_deps.sql as the scripts run them (their C functions from the installed library; the
# members detached, so that the conversion may drop and create routines outside an extension script)
detach $FEATR
# a job the ring cannot hold stops the move, named, and nothing changes; the move alone is refused
before=$($PSQL -d $FEATR -c "COPY (SELECT * FROM awa.jobs ORDER BY id) TO STDOUT" | md5sum)
bad=$($PSQL -d $FEATR -c "SELECT id FROM awa.jobs WHERE queue = 'keys' AND state = 'running'")
got=$( { echo "UPDATE awa.jobs SET attempted_at = NULL WHERE id = $bad;"
	sed "s|MODULE_PATHNAME|\$libdir/awa|g" "$ROOT/src/sql/engine.sql"; } \
	| PGOPTIONS="-c awa.install_engine=ring" $PSQL -d $FEATR -1 -v VERBOSITY=verbose 2>&1)
[[ $got == *"55000"*"job $bad cannot be moved into the ring: a running job without attempted_at"*"1 job(s) cannot be moved; nothing was moved."* ]] \
	|| fail "$FEATR: a job the ring cannot hold gave: $got"
# the same for a waiting job at run_lease's maximum (the ring's relations refuse such a row: no claim could take it)
bad2=$($PSQL -d $FEATR -c "SELECT min(id) FROM awa.jobs WHERE state = 'available'")
got=$( { echo "UPDATE awa.jobs SET run_lease = 9223372036854775807 WHERE id = $bad2;"
	sed "s|MODULE_PATHNAME|\$libdir/awa|g" "$ROOT/src/sql/engine.sql"; } \
	| PGOPTIONS="-c awa.install_engine=ring" $PSQL -d $FEATR -1 -v VERBOSITY=verbose 2>&1)
[[ $got == *"55000"*"job $bad2 cannot be moved into the ring: an unfinished job at run_lease's maximum"* ]] \
	|| fail "$FEATR: a job at run_lease's maximum gave: $got"
# and for a waiting job with no attempts left (a claim would take it past max_attempts)
got=$( { echo "UPDATE awa.jobs SET attempt = max_attempts WHERE id = $bad2;"
	sed "s|MODULE_PATHNAME|\$libdir/awa|g" "$ROOT/src/sql/engine.sql"; } \
	| PGOPTIONS="-c awa.install_engine=ring" $PSQL -d $FEATR -1 -v VERBOSITY=verbose 2>&1)
[[ $got == *"55000"*"job $bad2 cannot be moved into the ring: an unfinished job with no attempts left (attempt "* ]] \
	|| fail "$FEATR: a job with no attempts left gave: $got"
[ "$($PSQL -d $FEATR -c "COPY (SELECT * FROM awa.jobs ORDER BY id) TO STDOUT" | md5sum)" = "$before" ] \
	&& [ "$($PSQL -d $FEATR -c "SELECT relkind FROM pg_class WHERE oid = 'awa.jobs'::regclass")" = r ] \
	&& [ "$($PSQL -d $FEATR -c "SELECT count(*) FROM awa.ready")" = 0 ] || fail "$FEATR: a refused move changed something"
got=$($PSQL -d $FEATR -v VERBOSITY=verbose -c "SELECT awa.ring_adopt_jobs()" 2>&1)
# refused alone, whether the setting is at its default (ring) or table: only an extension script or a setting of
# ring made on purpose runs it
[[ $got == *"55000"*"runs only inside CREATE or ALTER EXTENSION awa, or while awa.install_engine is set to 'ring'"* ]] \
	|| fail "$FEATR: awa.ring_adopt_jobs() alone gave: $got"
got=$(PGOPTIONS="-c awa.install_engine=table" $PSQL -d $FEATR -v VERBOSITY=verbose -c "SELECT awa.ring_adopt_jobs()" 2>&1)
[[ $got == *"55000"*"runs only inside CREATE or ALTER EXTENSION awa"* ]] || fail "$FEATR: awa.ring_adopt_jobs() on table gave: $got"
got=$($PSQL -d $FEATR -v VERBOSITY=verbose -c "SET ROLE awa_admin" -c "SELECT awa.ring_adopt_jobs()" 2>&1)
[[ $got == *"42501"* ]] || fail "$FEATR: awa.ring_adopt_jobs() as awa_admin gave: $got"
ok "$DEFAULT features: a job the ring cannot hold stops the move (55000 naming job $bad, nothing changed; job $bad2 at run_lease's maximum or without attempts left too); awa.ring_adopt_jobs() alone 55000, as awa_admin 42501"
sed "s|MODULE_PATHNAME|\$libdir/awa|g" "$ROOT/src/sql/engine.sql" "$ROOT/src/sql/engine_deps.sql" \
	| PGOPTIONS="-c awa.install_engine=ring" $PSQL -d $FEATR -1 >/dev/null || fail "$FEATR: the conversion to the ring engine failed"
rows_equal $FEAT $FEATR "$DEFAULT features (ring)" 8
stats_equal $FEAT $FEATR "$DEFAULT features (ring)"
got=$($PSQL -d $FEATR <<SQL
SELECT 'keys ' || running || ' ' || waiting FROM awa_key_stats('acct-1');
SELECT 'group ' || total || ' ' || completed || ' ' || unfinished FROM awa_group_stats('g1');
SELECT 'external ' || awa_complete_external('$cbid', '{"via": "callback"}');
SELECT 'external ' || state || ' ' || result::text FROM awa.jobs WHERE queue = 'ext';
SELECT 'child ' || state FROM awa.jobs WHERE kind = 'child';
SELECT 'parent ' || awa_complete(r.id, r.run_lease) FROM awa_claim('deps', 'w') r;
SELECT 'child ' || state FROM awa.jobs WHERE kind = 'child';
SELECT 'results ' || count(*) FILTER (WHERE state = 'completed') FROM awa_parent_results((SELECT id FROM awa.jobs WHERE kind = 'child'));
SELECT 'keyed ' || count(*) FROM awa_claim('keys', 'w', batch => 3);
SELECT 'keyed ' || awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'keys' AND state = 'running';
SELECT 'keyed ' || count(*) FROM awa_claim('keys', 'w', batch => 3);
SELECT 'group ' || count(*) FILTER (WHERE awa_complete(r.id, r.run_lease)) FROM awa_claim('grp', 'w', batch => 5) r;
SELECT 'group ' || (callback_job_id IS NOT NULL) FROM awa_group_stats('g1');
SELECT 'recount ' || count(*) FROM awa.ring_recount();
SQL
) || fail "$DEFAULT features (ring): the moved jobs do not work"
expected="keys 1 2
group 3 1 2
external true
external completed {\"via\": \"callback\"}
child scheduled
parent true
child available
results 2
keyed 0
keyed true
keyed 1
group 2
group true
recount 0"
[ "$got" = "$expected" ] || { diff <(echo "$expected") <(echo "$got"); fail "$DEFAULT features (ring): the moved jobs do not work (- expected, + got)"; }
ok "$DEFAULT features moved into the ring: awa.jobs the same row by row; a key's running job still counts, a group finishes and enqueues its callback job, a parked job completes by its callback, the dependent runs once its last parent completes, counters equal a recount"
for d in $RING $RINGT $RINGNEW $FEAT $FEATR; do dropdb $d; done

[ "$PATHS" -gt 0 ] || fail "no upgrade path tested"
ok "$PATHS upgrade path(s) to $DEFAULT tested (${RELEASED[*]}) in $(( $(date +%s%3N) - START )) ms"
