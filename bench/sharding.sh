#!/usr/bin/env bash
# Throughput of awa behind the router with 1, 2 and 3 shards (docs/sharding.md), on this machine.
#   sudo bench/sharding.sh            # about 3 minutes
# Starts 3 shard servers and a router server (ports BENCH_SHARD_PORT, default 54360, and the three after it;
# fsync=off, awa preloaded, maintenance worker on), one router database per fleet size (awa_r1: shard 0;
# awa_r2: shards 0-1; awa_r3: shards 0-2).  Each transaction of the pgbench script is one job's life through
# the router: awa_insert into one of 12 queues, then awa_claim of one job of that queue and awa_complete.
# For reference the same script runs on shard 0 directly ("direct", no router).  Every configuration runs
# BENCH_ROUNDS times (default 3) for BENCH_SECONDS (default 10) with BENCH_CLIENTS (default 8) clients, the
# configurations alternating in each round; the median is reported, with the CPU count, since all servers
# share this machine's cores.  Writes bench/results/sharding.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/lib.sh"
BASE=${BENCH_SHARD_PORT:-54360}
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-8}
DIR=$(mktemp -d /tmp/awa-bench-sharding.XXXXXX)
chmod 755 "$DIR"
OUT=$ROOT/bench/results/sharding.md
DB=awa_shard

cleanup() { local i; for i in 0 1 2 3; do awa_cluster_stop "$DIR/s$i"; done; rm -rf "$DIR"; }
trap cleanup EXIT
port() { echo $((BASE + $1)); }
q() { local i=$1 db=$2; shift 2; "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR/s$i" -p "$(port "$i")" -U postgres -d "$db" "$@"; }

log "3 shard servers and a router on ports $BASE..$((BASE + 3)) in $DIR"
for i in 0 1 2; do
	(awa_cluster_start "$DIR/s$i" "$(port $i)" fsync=off awa.databases=$DB max_connections=60)
	q $i postgres -c "CREATE DATABASE $DB"
	q $i $DB -c "CREATE EXTENSION awa" -c "SELECT awa_shard_configure($i)" >/dev/null
done
(awa_cluster_start "$DIR/s3" "$(port 3)" fsync=off awa.databases= max_connections=60)
for n in 1 2 3; do
	parts=""
	for i in $(seq 0 $((n - 1))); do parts="$parts, p$i 'host=$DIR/s$i port=$(port $i) dbname=$DB'"; done
	q 3 postgres -c "CREATE DATABASE awa_r$n"
	q 3 awa_r$n -c "SET client_min_messages = warning" -c "CREATE EXTENSION awa_router CASCADE" \
		-c "CREATE SERVER awa_shards FOREIGN DATA WRAPPER plproxy OPTIONS (modular_mapping '1'$parts)" \
		-c "CREATE USER MAPPING FOR PUBLIC SERVER awa_shards"
	echo "awa_r$n: shards $(q 3 awa_r$n -c "SELECT string_agg(s::text, ',') FROM awa_shards() s"), queues per shard:" \
		"$(q 3 awa_r$n -c "SELECT string_agg(n::text, ' ') FROM (SELECT count(*) AS n FROM generate_series(1, 12) g
			GROUP BY awa_queue_shard('bq' || g) ORDER BY 1) c")"
done

cat > "$DIR/job.sql" <<'EOF'
\set q random(1, 12)
SELECT 1 FROM awa_insert('bench', queue => 'bq' || :q);
SELECT awa_complete(id, run_lease) FROM awa_claim('bq' || :q, 'bench', 1);
EOF
chmod 644 "$DIR/job.sql"

# cpu I: CPU ticks used so far by server I: its postmaster's own and its exited children's (backends that
# ended have been reaped by it), plus those of its live children
cpu() {
	local pm kids
	pm=$(head -1 "$DIR/s$1/data/postmaster.pid")
	kids=$(ps -o pid= --ppid "$pm" | tr '\n' ' ')
	for p in $pm $kids; do cat "/proc/$p/stat" 2>/dev/null; done | \
		awk -v pm="$pm" '{ sub(/^.*\) /, ""); t += $12 + $13; if ($0 != "" && NR == 1) t += $14 + $15 } END { print t }'
}
# run NAME SERVER DB: one pgbench run; prints its tps, the transactions, and the CPU ticks of the router and of the shards
run() {
	local before after out r0 r1 s0 s1 i
	r0=$(cpu 3); s0=0; for i in 0 1 2; do s0=$((s0 + $(cpu $i))); done
	out=$("$PG_BIN/pgbench" -n -h "$DIR/s$2" -p "$(port "$2")" -U postgres -f "$DIR/job.sql" -c "$CLIENTS" -j 2 \
		-T "$SECONDS_PER_RUN" "$3" 2>/dev/null)
	sleep 1	# the backends exit and are reaped
	r1=$(cpu 3); s1=0; for i in 0 1 2; do s1=$((s1 + $(cpu $i))); done
	echo "$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | cut -d. -f1)" \
		"$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')" \
		$((r1 - r0)) $((s1 - s0))
}
declare -A TPS RCPU SCPU JOBS
CONFIGS=(direct r1 r2 r3)
for round in $(seq "$ROUNDS"); do
	# rotate the order each round
	for k in $(seq 0 3); do
		c=${CONFIGS[$(( (k + round) % 4 ))]}
		case $c in direct) res=$(run direct 0 $DB);; r*) res=$(run "$c" 3 "awa_$c");; esac
		read -r t n rc sc <<< "$res"
		echo "round $round $c: $t jobs/s ($n jobs; CPU ticks: router $rc, shards $sc)"
		TPS[$c]="${TPS[$c]:-} $t"
		JOBS[$c]=$(( ${JOBS[$c]:-0} + n )); RCPU[$c]=$(( ${RCPU[$c]:-0} + rc )); SCPU[$c]=$(( ${SCPU[$c]:-0} + sc ))
	done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
t1=$(echo "${TPS[r1]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
HZ=$(getconf CLK_TCK)
# ms of CPU per job: ticks * 1000 / HZ / jobs
perjob() { awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN { printf "%.3f", t * 1000 / hz / n }'; }
mkdir -p "$(dirname "$OUT")"
{
	echo "# awa behind the router: 1, 2 and 3 shards on one machine"
	echo
	echo "Made by \`bench/sharding.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
	echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'), fsync=off, $CLIENTS pgbench clients, $SECONDS_PER_RUN s per run, median of $ROUNDS rounds."
	echo "A transaction is one job's life: awa_insert, then awa_claim of one job and awa_complete (3 awa calls)."
	echo
	echo "CPU per job: CPU time of each server's processes over all rounds (postmaster, backends, workers) / jobs."
	echo
	echo "| configuration | jobs/s (median) | runs | vs 1 shard through the router | router CPU ms/job | shards CPU ms/job |"
	echo "|---|---:|---|---:|---:|---:|"
	for c in direct r1 r2 r3; do
		case $c in direct) name="shard 0 directly (no router)";; r1) name="router, 1 shard";; *) name="router, ${c#r} shards";; esac
		m=$(echo "${TPS[$c]}" | median)
		echo "| $name | $m |${TPS[$c]} | $(ratio "$m" "$t1") | $(perjob "${RCPU[$c]}" "${JOBS[$c]}") | $(perjob "${SCPU[$c]}" "${JOBS[$c]}") |"
	done
} > "$OUT"
cat "$OUT"
