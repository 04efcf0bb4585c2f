#!/usr/bin/env bash
# awa's metrics through the real prometheus-postgres-exporter (Debian's 0.11),
# with monitoring/prometheus-postgres-exporter.yaml and a role that has only
# the grants the README lists: the exporter is started on a loopback port
# against the test server, /metrics is scraped, and the series and their
# values are checked (queue depth by state, oldest available job, running per
# worker, health, last maintenance round), then again after jobs move.
# Needs PGHOST/PGPORT/PGUSER of a running server with awa.  Port:
# AWA_EXPORTER_PORT (default PGPORT + 5).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
: "${PGHOST:?PGHOST must name the server (socket directory)}" "${PGPORT:?}" "${PGUSER:?}"
PORT=${AWA_EXPORTER_PORT:-$((PGPORT + 5))}
DB=awa_prom
PSQL="$PG_BIN/psql -X -q -At -v ON_ERROR_STOP=1"
EXPORTER=$(command -v prometheus-postgres-exporter) || { echo "FAIL: prometheus: prometheus-postgres-exporter is not installed"; exit 1; }
LOG=$(mktemp /tmp/awa-exporter.XXXXXX)
pid=
fail() { echo "FAIL: prometheus: $*"; [ -s "$LOG" ] && tail -5 "$LOG"; exit 1; }
ok() { echo "ok - $*"; }
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP ROLE IF EXISTS awa_exporter" >/dev/null 2>&1
	rm -f "$LOG"
}
trap cleanup EXIT

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP ROLE IF EXISTS awa_exporter" \
	-c "CREATE DATABASE $DB" -c "CREATE ROLE awa_exporter LOGIN" >/dev/null || fail "setup"
# the grants the README gives the exporter's role, no more
$PSQL -d $DB >/dev/null <<'SQL' || fail "loading jobs"
CREATE EXTENSION awa;
GRANT USAGE ON SCHEMA awa TO awa_exporter;
GRANT EXECUTE ON FUNCTION awa_queue_stats(), awa_health_check() TO awa_exporter;
GRANT SELECT (queue, state, claimed_by) ON awa.jobs TO awa_exporter;
GRANT SELECT ON awa.maintenance_failures TO awa_exporter;
SELECT awa_insert('send', queue => 'mail') FROM generate_series(1, 3);
SELECT awa_insert('send', queue => 'mail', run_at => now() + interval '1 hour');
SELECT awa_insert('resize', queue => 'img') FROM generate_series(1, 3);
SELECT count(*) FROM awa_claim('img', worker => 'w1', batch => 2);
SELECT awa_fail(id, run_lease, 'boom', terminal => true) FROM awa_claim('img', worker => 'w2');
SELECT awa_insert('resize', queue => 'img');
SELECT awa_pause_queue('img');
SELECT * FROM awa_maintain();
SQL

DATA_SOURCE_NAME="host=$PGHOST port=$PGPORT user=awa_exporter dbname=$DB sslmode=disable" \
	"$EXPORTER" --web.listen-address="127.0.0.1:$PORT" --extend.query-path="$ROOT/monitoring/prometheus-postgres-exporter.yaml" \
	--disable-default-metrics --disable-settings-metrics >"$LOG" 2>&1 &
pid=$!

# check NAME: scrape /metrics and compare with the expected series (Python)
check() {
	/usr/bin/python3 - "$PORT" "$1" <<'PY'
import re, sys, time, urllib.request
port, stage = sys.argv[1], sys.argv[2]
want = {
    "first": {
        ("awa_queue_available", "mail"): 3, ("awa_queue_scheduled", "mail"): 1,
        ("awa_queue_available", "img"): 1, ("awa_queue_running", "img"): 2, ("awa_queue_failed", "img"): 1,
        ("awa_queue_paused", "img"): 1, ("awa_queue_paused", "mail"): 0,
        ("awa_running_jobs", "img", "w1"): 2,
    },
    "after": {
        ("awa_queue_available", "mail"): 3, ("awa_queue_running", "img"): 1,
        ("awa_queue_completed_last_hour", "img"): 1, ("awa_running_jobs", "img", "w1"): 1,
    },
}[stage]
deadline = time.monotonic() + 15
text, err = "", None
while time.monotonic() < deadline:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read().decode()
        if "awa_health_healthy" in text:
            break
    except OSError as e:
        err = e
    time.sleep(0.3)
series = {}
for line in text.splitlines():
    m = re.match(r'^(awa_\w+)\{([^}]*)\} (\S+)$', line)
    if m:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = (m.group(1), labels.get("queue"), labels.get("worker"))
        series[tuple(k for k in key if k is not None)] = (float(m.group(3)), labels)
if not series:
    print("FAIL: prometheus: no awa series in /metrics (%s)" % (err or text[:300]))
    sys.exit(1)
bad = ["%s = %s, expected %s" % (k, series.get(k, ("missing",))[0], v) for k, v in want.items()
       if k not in series or series[k][0] != v]
health = [v for k, v in series.items() if k[0] == "awa_health_healthy"]
last = [v for k, v in series.items() if k[0] == "awa_health_last_round_timestamp_seconds"]
if not health or health[0][1].get("datname") != "awa_prom" or "maintained_by" not in health[0][1]:
    bad.append("awa_health_healthy without its labels: %s" % health)
if stage == "first" and not (last and last[0][0] > time.time() - 600):
    bad.append("awa_health_last_round_timestamp_seconds is not recent: %s" % last)
errs = re.findall(r'^pg_exporter_last_scrape_error (\S+)$', text, re.M)
if errs and float(errs[0]) != 0:
    bad.append("the exporter reports a scrape error")
if bad:
    print("FAIL: prometheus: " + "; ".join(bad))
    sys.exit(1)
print("ok - %s scrape: %d awa series, %s; health: healthy %g, maintained_by '%s'" % (
    stage, len(series), ", ".join("%s%s %g" % (k[0], list(k[1:]), v) for k, v in sorted(want.items())),
    health[0][0], health[0][1]["maintained_by"]))
PY
}
check first || fail "first scrape"
$PSQL -d $DB -c "SELECT awa_complete(id, run_lease) FROM awa.jobs WHERE queue = 'img' AND state = 'running' AND claimed_by = 'w1' ORDER BY id LIMIT 1" >/dev/null \
	|| fail "awa_complete"
check after || fail "second scrape"
grep -qi "error" "$LOG" && { grep -i error "$LOG" | head -3; fail "the exporter logged errors"; }
ok "prometheus-postgres-exporter with monitoring/prometheus-postgres-exporter.yaml and the README's grants: every series as expected"
