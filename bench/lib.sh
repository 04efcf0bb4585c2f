# Shared parts of the claim benchmarks (multiqueue.sh, ratelimit.sh, ring_slots.sh, ring_maint.sh): sourced after
# scripts/lib.sh, or after setting PG_BIN.
#
#   BIN                     the bin directory whose psql and pgbench the helpers run (default PG_BIN)
#   bench_q SQL             one statement through psql, unaligned, stop on error
#   bench_median            the median of the numbers on stdin, one a line
#   bench_median_of A KEY   the median of the space-separated figures in ${A[KEY]} (none: empty)
#   bench_pgbench TARGET B CLIENTS JOBS TMP [PRE [OPTS]]
#                           claim + complete throughput (jobs/s) of awa_claim(TARGET, batch => B): JOBS jobs
#                           by CLIENTS pgbench clients, checked against the jobs completed; PRE: pgbench
#                           script lines run before each claim (meta-commands such as \set), OPTS: more pgbench
#                           options (such as -D NAME=VALUE)
#   bench_cpu TARGET B JOBS microseconds of one backend's CPU (utime + stime from /proc/self/stat, read in
#                           SQL as superuser) per job claimed and completed by awa_claim(TARGET, batch => B)
#                           and awa_complete_many in a procedure, a transaction per claim; other load on a
#                           shared machine hardly moves a process's own CPU time
#   bench_ring_drain N TMP CLIENTS BATCH [OPTS]
#                           N jobs drained by CLIENTS pgbench clients running TMP/drain.sql (each transaction
#                           BATCH jobs), OPTS: more pgbench options; its log in TMP/pgbench.log, printed and
#                           exit 1 on failure
#   bench_rounds A UNIT ROUNDS BATCHES FN VARIANT...
#                           for each batch, ROUNDS rounds of FN VARIANT BATCH over the variants (their order
#                           rotating each round), printing each figure and appending it to ${A[VARIANT.BATCH]}
BIN=${BIN:-$PG_BIN}

bench_q() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

bench_ring_drain() {
	local n=$1 tmp=$2 clients=$3 batch=$4
	shift 4
	"$BIN/pgbench" -n -M prepared -c "$clients" -j "$clients" -t $((n / clients / batch)) -f "$tmp/drain.sql" "$@" \
		>"$tmp/pgbench.log" 2>&1 || { cat "$tmp/pgbench.log"; exit 1; }
}

bench_median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

bench_median_of() {
	local -n figs=$1
	tr ' ' '\n' <<<"${figs[$2]:-}" | { grep . || true; } | bench_median
}

bench_pgbench() {
	local target=$1 b=$2 clients=$3 jobs=$4 tmp=$5 pre=${6:-} opts=${7:-} script tx done tps
	script=$tmp/claim_$b.sql
	cat >"$script" <<SQL
$pre
SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa_claim($target, batch => $b) \gset
SELECT awa_complete_many(:ids, :leases);
SQL
	tx=$((jobs / clients / b))
	# shellcheck disable=SC2086 # OPTS is a list of words
	"$BIN/pgbench" -n -M prepared -c "$clients" -j "$clients" -t "$tx" $opts -f "$script" >"$tmp/pgbench.log" 2>&1 ||
		{ cat "$tmp/pgbench.log" >&2; return 1; }
	done=$(bench_q "SELECT count(*) FROM awa.jobs WHERE state = 'completed'")
	[ "$done" = $((tx * clients * b)) ] || { echo "expected $((tx * clients * b)) completed, found $done" >&2; return 1; }
	tps=$(awk '/^tps = / { print $3; exit }' "$tmp/pgbench.log")
	awk -v t="$tps" -v b="$b" 'BEGIN { printf "%.0f", t * b }'
}

bench_cpu() {
	local target=$1 b=$2 jobs=$3
	"$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 <<SQL
CREATE OR REPLACE PROCEDURE bench_claims(n integer, b integer) LANGUAGE plpgsql AS \$\$
BEGIN
	FOR i IN 1 .. n LOOP
		PERFORM awa_complete_many(array_agg(id), array_agg(run_lease)) FROM awa_claim($target, batch => b);
		COMMIT;
	END LOOP;
END
\$\$;
SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 14)::bigint
     + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::bigint AS t0 \gset
CALL bench_claims($((jobs / b)), $b);
SELECT round(((split_part(pg_read_file('/proc/self/stat'), ' ', 14)::bigint
     + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::bigint - :t0) * 1e6 / $(getconf CLK_TCK))
     / (SELECT count(*) FROM awa.jobs WHERE state = 'completed'), 1);
SQL
}

bench_rounds() {
	local -n figs=$1
	local unit=$2 rounds=$3 batches=$4 fn=$5
	shift 5
	local vs=("$@") b r i v val
	for b in $batches; do
		for ((r = 1; r <= rounds; r++)); do
			for ((i = 0; i < ${#vs[@]}; i++)); do
				v=${vs[$(((i + r - 1) % ${#vs[@]}))]}
				val=$("$fn" "$v" "$b")
				figs[$v.$b]+="$val "
				printf '    batch %-3s round %d  %-7s %s %s\n' "$b" "$r" "$v" "$val" "$unit"
			done
		done
	done
}
