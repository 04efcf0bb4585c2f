#!/usr/bin/env bash
# The Python client and worker behind a real transaction pooler: Debian's pgbouncer (1.18), in
# pool_mode = transaction with a pool of 3 server connections, in front of the server that
# scripts/test.sh started (PGHOST/PGPORT/PGUSER exported by it).  For psycopg 3 and for psycopg2:
#  1. two `python -m awa_worker` processes and two threads making blocking claims
#     (awa_claim(..., wait => ...)) with Client, all through pgbouncer, drain 600 jobs: every job
#     completed exactly once (handler runs counted, database checked), no error logged or raised
#     (psycopg 3's server-side prepared statements would break here: "prepared statement \"_pg3_0\"
#     already exists");
#  2. a measurement for README "Connection poolers": with the pool of 3 held by three claimers
#     blocked in awa_claim(wait => '2 s'), how long an insert through the same pool waits, and the
#     same with one server connection to spare.
# pgbouncer listens on 127.0.0.1:$AWA_PGBOUNCER_PORT (default: PGPORT + 4), runs as postgres and
# is stopped on exit.  Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3   # Debian's python: it sees python3-psycopg and python3-psycopg2
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
export PGHOST PGPORT PGUSER
BOUNCER_PORT=${AWA_PGBOUNCER_PORT:-$((PGPORT + 4))}
command -v pgbouncer >/dev/null || { echo "FAIL: pgbouncer is missing (apt-get install pgbouncer)" >&2; exit 1; }

DB=awa_pgbouncer_it
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/awa-pgbouncer.XXXXXX")
chown postgres:postgres "$DIR"

cleanup() {
	if [ -f "$DIR/pgbouncer.pid" ]; then
		kill "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null || true
		for _ in $(seq 50); do [ -f "$DIR/pgbouncer.pid" ] || break; sleep 0.1; done
	fi
	psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT

psql -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -d "$DB" -c "CREATE EXTENSION awa"

# $DB: the pool under test (3 server connections); ${DB}_spare: the same database with 4.
cat > "$DIR/pgbouncer.ini" <<EOF
[databases]
$DB = host=$PGHOST port=$PGPORT dbname=$DB pool_size=3
${DB}_spare = host=$PGHOST port=$PGPORT dbname=$DB pool_size=4

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = transaction
max_client_conn = 100
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
admin_users = $PGUSER
EOF
echo "\"$PGUSER\" \"\"" > "$DIR/userlist.txt"
chown postgres:postgres "$DIR"/*
su postgres -c "pgbouncer -d $DIR/pgbouncer.ini" || { cat "$DIR/pgbouncer.log" >&2; exit 1; }
for _ in $(seq 50); do
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$BOUNCER_PORT" -d "$DB" && break
	sleep 0.1
done

cd "$ROOT/test/integration/python"
export PYTHONPATH="$ROOT/clients/python/src:$ROOT/clients/python/tests${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export AWA_DIRECT_DSN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB"
export AWA_BOUNCER_DSN="host=127.0.0.1 port=$BOUNCER_PORT user=$PGUSER dbname=$DB"
export AWA_BOUNCER_SPARE_DSN="host=127.0.0.1 port=$BOUNCER_PORT user=$PGUSER dbname=${DB}_spare"
if ! timeout 300 "$PY" pgbouncer_check.py "$@"; then
	echo "---- pgbouncer log (last 40 lines)"
	tail -40 "$DIR/pgbouncer.log"
	exit 1
fi
