#!/usr/bin/env bash
# The ring's claim over several queues (src/ring_claim.c) against its claim of one queue: the work per call of a
# claim of 10 plus its completion, as bench/ring.sh's RING_MODE=work measures it (one statement under
# EXPLAIN (ANALYZE, BUFFERS): the buffers of everything the functions ran, and its execution time), per job:
#   single    awa.ring_claim('q0', 10), the whole backlog in q0;
#   multi     awa.ring_claim(ARRAY['q0', ..., 'q9'], 10), the same backlog spread over the 10 queues (10 busy queues);
#   multi1    the same 10-queue claim, the whole backlog in q0 (nine idle queues);
#   single10  single-queue claims over multi's backlog, each call naming the next queue of q0..q9;
#   every     awa.ring_claim(NULL::text[], 10) over multi's backlog (every queue with rows on the ring).
# Each variant: a fresh database with RMQ_JOBS jobs due an hour ago (priority 2, so aging puts them all at the
# first level), RMQ_CALLS calls in one session after a first call that plans the statements; medians.
# RMQ_PRIORITIES=4 spreads the jobs over priorities 1-4 instead (several ranges per queue and level).
# Run against a development cluster (needs a superuser: it turns awa.ring_engine on for its own sessions):
#   PGHOST=... PGPORT=... PGUSER=postgres bench/ring_multiqueue.sh
set -uo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB=${RMQ_DB:-awa_ring_mq_bench}
JOBS=${RMQ_JOBS:-100000}
CALLS=${RMQ_CALLS:-200}
PRIORITIES=${RMQ_PRIORITIES:-1}
VARIANTS=${RMQ_VARIANTS:-single multi multi1 single10 every}
q() { PGOPTIONS="-c awa.ring_engine=on" "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

echo "variant median_buffers_per_job median_ms_per_job (claims of 10 + completion, $CALLS calls, $JOBS jobs, priorities 1..$PRIORITIES)"
for v in $VARIANTS; do
	"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" || exit 1
	q "CREATE EXTENSION awa" || exit 1
	case $v in single|multi1) spread=1 ;; *) spread=10 ;; esac
	q "SELECT count(awa.ring_insert('k', jsonb_build_object('n', i), 'q' || (i % $spread),
	     priority => 1 + i % $PRIORITIES, run_at => now() - interval '1 hour' + i * interval '1 ms'))
	   FROM generate_series(1, $JOBS) i" >/dev/null || exit 1
	q "VACUUM ANALYZE" && q "CHECKPOINT"
	/usr/bin/python3 - "$v" "$CALLS" "$DB" <<'PY'
import statistics, sys, psycopg
v, n, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
qs = "ARRAY['q0','q1','q2','q3','q4','q5','q6','q7','q8','q9']"
target = {"single": "'q0'", "multi": qs, "multi1": qs, "every": "NULL::text[]"}
def stmt(i):
    t = target.get(v, "'q%d'" % (i % 10))
    return ("WITH c AS MATERIALIZED (SELECT * FROM awa.ring_claim(%s, 10)) SELECT count(*) FROM "
            "awa.ring_complete_many((SELECT array_agg(id) FROM c), (SELECT array_agg(run_lease) FROM c))" % t)
bufs, ms = [], []
with psycopg.connect(dbname=db, autocommit=True, options="-c awa.ring_engine=on") as conn:
    for i in range(n + 1):
        p = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + stmt(i)).fetchone()[0][0]
        if i:
            bufs.append((p["Plan"]["Shared Hit Blocks"] + p["Plan"]["Shared Read Blocks"]) / 10)
            ms.append(p["Execution Time"] / 10)
print(v, round(statistics.median(bufs), 1), round(statistics.median(ms), 4))
PY
done
"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
