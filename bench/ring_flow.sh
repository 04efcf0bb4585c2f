#!/usr/bin/env bash
# The cost of queue flow control on the ring's claim (src/ring_flow.c; docs/storage.md, "Step 5: queue flow
# control on the ring"): the work of one awa.ring_claim of 10 plus the completion of those 10, as
# bench/ring.sh's RING_MODE=work measures it (one statement under EXPLAIN (ANALYZE, BUFFERS): the buffers of
# everything the functions ran, and its time), on a queue of RING_JOBS available ring jobs, per setting of the
# queue:
#   none   no awa.queue_meta row (the claim's one probe of the queue's settings finds none)
#   limit  awa_set_queue_limit('vac', 1000): the queue's lock and a count of its running jobs, never at the limit
#   rate   awa_set_queue_rate('vac', 1000, '1 ms'): a reservation in shared memory, never used up
# measured at the head of the queue ("first"), after 2 pgbench clients drained 90% of it with claims of 10 and
# their completions ("last": the counters' deltas of that drain not folded, as without a maintenance round),
# and again after one fold of the counters (awa_maintain(): "folded"); with no other snapshot held ("none") or
# with a session holding a REPEATABLE READ snapshot with an xid from before the drain ("rr").
#
#   PGHOST=... PGPORT=... PGUSER=postgres bench/ring_flow.sh
# Settings: RING_DB (awa_ring_flow_bench), RING_JOBS (100000), RING_VARIANTS ("none limit rate"),
# RING_HOLDERS ("none rr"), RING_SAMPLES (20).  Needs a superuser (awa.ring_engine) and awa preloaded (rates).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
DB=${RING_DB:-awa_ring_flow_bench}
JOBS=${RING_JOBS:-100000}
VARIANTS=${RING_VARIANTS:-none limit rate}
HOLDERS=${RING_HOLDERS:-none rr}
SAMPLES=${RING_SAMPLES:-20}
TMP=$(mktemp -d /tmp/awa_ring_flow_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export PGDATABASE=$DB
q() { PGOPTIONS="-c awa.ring_engine=on -c client_min_messages=warning" "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
q "CREATE EXTENSION awa"
cat >"$TMP/drain.sql" <<'SQL'
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa.ring_claim('vac', 10) \gset
SELECT count(*) FROM awa.ring_complete_many(:ids, :leases);
SQL

samples() {	# WHERE -> SAMPLES lines "WHERE buffers ms" (the first call, which prepares the plans, left out)
	/usr/bin/python3 - "$1" "$SAMPLES" <<'PY'
import sys, psycopg
where, n = sys.argv[1], int(sys.argv[2])
stmt = ("WITH c AS MATERIALIZED (SELECT * FROM awa.ring_claim('vac', 10)) SELECT count(*) FROM "
        "awa.ring_complete_many((SELECT array_agg(id) FROM c), (SELECT array_agg(run_lease) FROM c))")
with psycopg.connect(autocommit=True, options="-c awa.ring_engine=on") as conn:
    for i in range(n + 1):
        p = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + stmt).fetchone()[0][0]
        if i:
            print(where, p["Plan"]["Shared Hit Blocks"] + p["Plan"]["Shared Read Blocks"], round(p["Execution Time"], 3))
PY
}

run() {	# VARIANT HOLDER
	local v=$1 h=$2
	q "TRUNCATE awa.ready, awa.claims, awa.done, awa.scheduled, awa.counter_deltas; DELETE FROM awa.queue_meta"
	q "SELECT count(awa.ring_insert('k', jsonb_build_object('n', i), 'vac',
	     run_at => now() - interval '1 hour' + i * interval '1 ms')) FROM generate_series(1, $JOBS) i" >/dev/null
	case $v in
	limit) q "SELECT awa_set_queue_limit('vac', 1000)" >/dev/null ;;
	rate) q "SELECT awa_set_queue_rate('vac', 1000, '1 ms')" >/dev/null ;;
	esac
	q "SELECT count(*) FROM awa_maintain()" >/dev/null	# one fold: the counters start from the loaded queue
	q "VACUUM ANALYZE" && q "CHECKPOINT"
	if [ "$h" = rr ]; then
		PGAPPNAME=ring_flow_bench_holder "$PG_BIN/psql" -X -q -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(); SELECT pg_sleep(100000);" >/dev/null 2>&1 &
		sleep 1
	fi
	samples first | sed "s/^/$v $h /" >>"$TMP/raw"
	PGOPTIONS="-c awa.ring_engine=on" "$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -t $((JOBS * 9 / 10 / 2 / 10)) \
		-f "$TMP/drain.sql" >"$TMP/pgbench.log" 2>&1 || { cat "$TMP/pgbench.log"; exit 1; }
	echo "# $v $h: deltas after the drain: $(q "SELECT count(*) FROM awa.counter_deltas")" >&2
	samples last | sed "s/^/$v $h /" >>"$TMP/raw"
	q "SELECT count(*) FROM awa_maintain()" >/dev/null
	samples folded | sed "s/^/$v $h /" >>"$TMP/raw"
	if [ "$h" = rr ]; then
		q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ring_flow_bench_holder'" >/dev/null
		wait 2>/dev/null || true
	fi
}

for h in $HOLDERS; do
	for v in $VARIANTS; do run "$v" "$h"; echo "# $v $h measured" >&2; done
done
echo "variant holder where median_buffers median_ms (of $SAMPLES claims of 10 + their completion)"
/usr/bin/python3 - "$TMP/raw" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    v, h, w, b, ms = line.split()
    rows.setdefault((v, h, w), []).append((float(b), float(ms)))
order = {"first": 0, "last": 1, "folded": 2}
for k in sorted(rows, key=lambda k: (k[1], k[0], order[k[2]])):
    r = rows[k]
    print(*k, round(statistics.median(b for b, _ in r)), statistics.median(m for _, m in r))
PY
