#!/usr/bin/env bash
# The readers and administration functions of awa.jobs on the two engines, side by side: two scratch databases
# of a development cluster, one created as usual (awa.jobs the table) and one with awa.install_engine = ring
# (awa.jobs the ring's view), each loaded through the API with the same READ_JOBS jobs in mixed states (5%
# scheduled, 28.5% available, ~9% running, ~51% completed, 3.5% failed, 3.5% retryable; four queues, three
# kinds, 10% tagged, 10% with a concurrency key).  Each statement runs READ_ROUNDS times per engine, every time
# on a fresh session (its first call: plans made, JIT as the server's settings say) and in a transaction rolled
# back (the data stays the same), and again on the same session (plans kept); printed: the median ms of the
# first and of the second call per engine, the rows (or count) the first returned, and the ratios ring/table.
# "snapshot held elsewhere": the same call while a third session holds a REPEATABLE READ snapshot and an xid.
#
#   PGHOST=... PGPORT=... PGUSER=postgres READ_JOBS=100000 READ_ROUNDS=3 bench/ring_read.sh
# Settings: READ_DB (prefix of the two databases, awa_read_bench), READ_JOBS (100000), READ_ROUNDS (3).
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB=${READ_DB:-awa_read_bench}
JOBS=${READ_JOBS:-100000}
ROUNDS=${READ_ROUNDS:-3}
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

for e in table ring; do
	q -d postgres -c "DROP DATABASE IF EXISTS ${DB}_$e WITH (FORCE)" -c "CREATE DATABASE ${DB}_$e"
	PGOPTIONS="-c awa.install_engine=$e" q -d "${DB}_$e" -c "CREATE EXTENSION awa"
	q -d "${DB}_$e" -v n="$JOBS" <<'SQL'
INSERT INTO awa.jobs (kind, queue, args, priority, run_at, tags, concurrency_key)
SELECT 'k' || (i % 3), 'q' || (i % 4), jsonb_build_object('n', i), 1 + i % 4,
       CASE WHEN i % 20 = 0 THEN now() + interval '1 day' ELSE now() - interval '1 minute' END,
       CASE WHEN i % 10 = 0 THEN ARRAY['t'] ELSE '{}' END,
       CASE WHEN i % 10 = 1 THEN 'key' || (i % 50) END
FROM generate_series(1, :n) i;
-- 70% of each queue's due jobs claimed; of those 80% completed, 5% failed for good, 5% failed with a retry
CREATE TEMP TABLE c AS SELECT 0::bigint AS id, 0::bigint AS run_lease LIMIT 0;
DO $$
DECLARE q text; todo int;
BEGIN
	FOREACH q IN ARRAY ARRAY['q0', 'q1', 'q2', 'q3'] LOOP
		todo := (SELECT count(*) FROM awa.jobs WHERE queue = q AND state = 'available') * 7 / 10;
		WHILE todo > 0 LOOP
			INSERT INTO c SELECT id, run_lease FROM awa_claim(q, batch => least(todo, 1000));
			todo := todo - 1000;
		END LOOP;
	END LOOP;
END $$;
SELECT sum(n) FROM (SELECT awa_complete_many(array_agg(id), array_agg(run_lease)) AS n FROM c
	WHERE id % 10 < 8 GROUP BY id / 5000) x;
SELECT count(awa_fail(id, run_lease, 'boom', terminal => true)) FROM c WHERE id % 10 = 8 AND id % 20 = 8;
SELECT count(awa_fail(id, run_lease, 'later', retry_in => interval '1 hour')) FROM c WHERE id % 10 = 8 AND id % 20 = 18;
VACUUM ANALYZE;
SQL
done
echo "# $JOBS jobs per engine, $ROUNDS fresh sessions per statement and engine (median); states:"
q -d "${DB}_ring" -c "SELECT string_agg(state || ' ' || n, ', ' ORDER BY state) FROM (SELECT state, count(*) AS n FROM awa.jobs GROUP BY 1) s" | sed 's/^/#   /'

/usr/bin/python3 - "${DB}_table" "${DB}_ring" "$ROUNDS" <<'PY'
import statistics, sys, time
import psycopg
table, ring, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
stmts = [
    ("awa_list_jobs()", "SELECT count(*) FROM awa_list_jobs()"),
    ("awa_list_jobs(before_id => 3rd page)",
     "SELECT count(*) FROM awa_list_jobs(before_id => (SELECT max(id) - 250 FROM awa_list_jobs(lim => 1)))"),
    ("awa_list_jobs('failed')", "SELECT count(*) FROM awa_list_jobs('failed')"),
    ("awa_list_jobs('available', queue => 'q1')", "SELECT count(*) FROM awa_list_jobs('available', queue => 'q1')"),
    ("awa_list_jobs('running')", "SELECT count(*) FROM awa_list_jobs('running')"),
    ("awa_list_jobs('completed', kind => 'k2')", "SELECT count(*) FROM awa_list_jobs('completed', kind => 'k2')"),
    ("awa_list_jobs(tag => 't', lim => 1000)", "SELECT count(*) FROM awa_list_jobs(tag => 't', lim => 1000)"),
    ("awa_get_job(id)", "SELECT (awa_get_job(5001)).state"),
    ("awa_queue_stats()", "SELECT count(*) FROM awa_queue_stats()"),
    ("awa_queue_stats(), snapshot held elsewhere", "HELD:SELECT count(*) FROM awa_queue_stats()"),
    ("awa_key_stats()", "SELECT count(*) FROM awa_key_stats()"),
    ("awa_retry_failed(queue => 'q0')", "SELECT count(*) FROM awa_retry_failed(queue => 'q0')"),
    ("awa_discard_failed('k1')", "SELECT awa_discard_failed('k1')"),
    ("awa_drain_queue('q2')", "SELECT awa_drain_queue('q2')"),
    ("DELETE FROM awa.jobs (875 completed)",
     "WITH d AS (DELETE FROM awa.jobs WHERE queue = 'q3' AND state = 'completed' AND id % 25 = 3 RETURNING 1)"
     " SELECT count(*) FROM d"),
    ("awa_health_check()", "SELECT stale_heartbeats FROM awa_health_check()"),
    ("SELECT count(*) FROM awa.jobs WHERE state = 'failed'",
     "SELECT count(*) FROM awa.jobs WHERE state = 'failed'"),
]
def run(db, sql):
    """ms of the first and of the second call on a fresh session, each rolled back, and the first's answer;
    HELD: while another session holds a REPEATABLE READ snapshot and an xid (the horizon held back)"""
    holder = None
    if sql.startswith("HELD:"):
        sql = sql[5:]
        holder = psycopg.connect(dbname=db, autocommit=True)
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT txid_current()")
    try:
        return run1(db, sql)
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
def run1(db, sql):
    out = []
    with psycopg.connect(dbname=db) as conn:
        conn.execute("SELECT 1")
        for _ in range(2):
            t = time.perf_counter()
            n = conn.execute(sql).fetchone()[0]
            out.append((time.perf_counter() - t) * 1000)
            conn.rollback()
            if len(out) == 1:
                first = n
    return out[0], out[1], first
print("%-52s %22s %22s %12s" % ("statement", "table ms 1st/2nd", "ring ms 1st/2nd", "ring/table"))
for label, sql in stmts:
    res = {}
    for db in (table, ring):
        runs = [run(db, sql) for _ in range(rounds)]
        res[db] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[0][2])
    t, r = res[table], res[ring]
    print("%-52s %7.1f/%6.1f (%5s) %7.1f/%6.1f (%5s) %5.1f/%5.1f" % (
        label, t[0], t[1], t[2], r[0], r[1], r[2], r[0] / max(t[0], 0.01), r[1] / max(t[1], 0.01)))
PY
