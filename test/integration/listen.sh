#!/usr/bin/env bash
# NOTIFY only when someone listens: enqueue sends no NOTIFY while no session
# of the cluster listens on an awa channel ("awa:", "awa#", "awa."), does once one does, and a new
# listener never misses a job whose enqueuer saw no listener (see
# test/integration/python/listen_gate.py).  Starts its own PostgreSQL on port
# 5496 (awa preloaded), because it sets synchronous_standby_names to hold a
# commit.  Run as root.  Exits non-zero on any failure.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

PORT=${AWA_LISTEN_PORT:-5496}
DIR=$(mktemp -d /tmp/awa-listen.XXXXXX)
cleanup() { awa_cluster_stop "$DIR"; rm -rf "$DIR"; }
trap cleanup EXIT

awa_cluster_start "$DIR" "$PORT" fsync=off || { echo "FAIL: listen: could not start PostgreSQL on port $PORT"; exit 1; }
"$PG_BIN/psql" -X -q -d postgres -c "CREATE DATABASE awa_listen" || { echo "FAIL: listen: CREATE DATABASE"; exit 1; }
timeout 120 /usr/bin/python3 "$AWA_ROOT/test/integration/python/listen_gate.py" \
	"host=$DIR port=$PORT user=postgres dbname=awa_listen"
