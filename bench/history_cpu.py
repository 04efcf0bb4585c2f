#!/usr/bin/python3
"""CPU time the throughput history adds to claim + complete, measured in the backend itself.

    PGHOST=... PGPORT=... PGUSER=postgres /usr/bin/python3 bench/history_cpu.py [ROUNDS]

Against a running cluster with awa installable (awa in shared_preload_libraries, no maintenance
worker needed), it creates the database awa_history_cpu, and per round drains a backlog in one
session with a procedure that commits after each job (batch 1: awa_claim + awa_complete, 10,000
jobs) or each batch (batch 10: awa_claim(batch => 10) + awa_complete_many, 30,000 jobs), once with
awa.track_history on and once off, in alternating order.  It reads the backend's user + system CPU
time from /proc before and after each run: unlike jobs/s, that figure hardly moves when other
processes share the CPUs.  Prints the medians and the difference; drops the database at the end.
"""

import os
import statistics
import sys

import psycopg

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
DB = "awa_history_cpu"

admin = psycopg.connect(dbname="postgres", autocommit=True)
admin.execute("DROP DATABASE IF EXISTS %s" % DB)
admin.execute("CREATE DATABASE %s" % DB)
try:
    conn = psycopg.connect(dbname=DB, autocommit=True)
    conn.execute("CREATE EXTENSION awa")
    conn.execute("""CREATE PROCEDURE drain(n int) LANGUAGE plpgsql AS $$
        DECLARE j record;
        BEGIN FOR i IN 1..n LOOP
            SELECT * INTO j FROM awa_claim('cc'); PERFORM awa_complete(j.id, j.run_lease); COMMIT;
        END LOOP; END $$""")
    conn.execute("""CREATE PROCEDURE drain10(n int) LANGUAGE plpgsql AS $$
        DECLARE ids bigint[]; leases bigint[];
        BEGIN FOR i IN 1..n LOOP
            SELECT array_agg(id), array_agg(run_lease) INTO ids, leases FROM awa_claim('cc', batch => 10);
            PERFORM awa_complete_many(ids, leases); COMMIT;
        END LOOP; END $$""")
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    if not os.path.exists("/proc/%d/stat" % pid):
        raise SystemExit("the server must run on this machine (its backend's CPU time is read from /proc)")

    def cpu():
        fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    res = {}
    for r in range(ROUNDS):
        for batch, proc, calls, jobs in ((1, "drain", 10000, 10000), (10, "drain10", 3000, 30000)):
            for variant in (("on", "off") if r % 2 == 0 else ("off", "on")):
                conn.execute("TRUNCATE awa.jobs")
                conn.execute("INSERT INTO awa.jobs (kind, queue, state, run_at)"
                             " SELECT 'k', 'cc', 'available', now() - interval '1 hour' + i * interval '1 ms'"
                             " FROM generate_series(1, 40000) i")
                conn.execute("VACUUM ANALYZE awa.jobs")
                conn.execute("SELECT count(*) FROM awa_maintain()")
                conn.execute("VACUUM awa.history_deltas, awa.counter_deltas")
                conn.execute("SET awa.track_history = " + variant)
                c0 = cpu()
                conn.execute("CALL %s(%d)" % (proc, calls))
                per_1000 = (cpu() - c0) / jobs * 1000
                res.setdefault((batch, variant), []).append(per_1000)
                print("round %d  batch %-3d history %-3s %.4f s CPU per 1000 jobs" % (r + 1, batch, variant, per_1000),
                      flush=True)
    for batch in (1, 10):
        on, off = statistics.median(res[(batch, "on")]), statistics.median(res[(batch, "off")])
        print("batch %-3d history on %.4f s, off %.4f s CPU per 1000 jobs (medians of %d): %+.1f%%"
              % (batch, on, off, ROUNDS, (on / off - 1) * 100))
    conn.close()
finally:
    admin.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
