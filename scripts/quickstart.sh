#!/usr/bin/env bash
# Quick start: install what is needed, build and install awa, start a local
# PostgreSQL with awa loaded, create the extension and run a short demo.
# Run as root on Debian 12.  Stop the server with: scripts/quickstart.sh stop
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DEMO_DIR=${AWA_DEMO_DIR:-/var/tmp/awa-demo}
DEMO_PORT=${AWA_DEMO_PORT:-54320}

if [ "${1:-}" = stop ]; then
	if [ -f "$DEMO_DIR/data/postmaster.pid" ]; then
		awa_cluster_stop "$DEMO_DIR"; echo "stopped the awa demo server in $DEMO_DIR"
	else
		echo "no awa demo server is running in $DEMO_DIR"
	fi
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "scripts/quickstart.sh installs packages and awa into the system PostgreSQL: run it as root" >&2
	exit 1
fi

bash "$AWA_ROOT/scripts/setup.sh"
awa_build_install
awa_cluster_stop "$DEMO_DIR"
log "starting PostgreSQL on port $DEMO_PORT (socket and data in $DEMO_DIR)"
awa_cluster_start "$DEMO_DIR" "$DEMO_PORT"

log "demo"
"$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -d postgres -f "$AWA_ROOT/scripts/demo.sql"

cat <<TXT

awa is running.  Connect with:
    $PG_BIN/psql -h $DEMO_DIR -p $DEMO_PORT -U postgres postgres
Stop the server with:
    $AWA_ROOT/scripts/quickstart.sh stop
TXT
