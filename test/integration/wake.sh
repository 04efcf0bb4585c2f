#!/usr/bin/env bash
# The blocking claim's promises, checked with real sessions (isolationtester
# cannot drive them: it only treats lock waits as blocking, and a blocked
# awa_claim sleeps on its latch).  Needs PGHOST/PGPORT/PGUSER of a running
# server with awa preloaded.
#  1. a claimer blocked in awa_claim(wait => '30 s') returns the job when
#     another session commits an insert, long before the wait ends;
#  2. an uncommitted insert is not handed out, and a rolled-back insert
#     never makes the claimer return a job;
#  3. a scheduled job wakes the claimer when it comes due;
#  4. a blocked claim returns no rows just before statement_timeout, and
#     pg_cancel_backend interrupts it;
#  5. a blocked claimer burns no CPU while it waits;
#  6. a client killed while its claim waits leaves nothing claimed;
#  7. a claimer blocked on a queue at its concurrency limit is woken by a
#     completion that frees a slot (well before its 1 s recheck);
#  8. a job that comes due later, however it got there (awa_insert_many on
#     both of its paths, COPY and plain INSERT into awa.jobs, awa_snooze,
#     awa_fail with retry_in), shortens a blocked claimer's sleep to its
#     run_at: the claimer takes it about then, not at the end of its wait.
set -uo pipefail
PSQL="${PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -At -v ON_ERROR_STOP=1"
DB=awa_wake_test
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok - $*"; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || fail "create database"
trap '$PSQL -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1' EXIT
$PSQL -d $DB -c "CREATE EXTENSION awa" || fail "create extension"
now_ms() { date +%s%3N; }

# 1. wake on commit
t0=$(now_ms)
$PSQL -d $DB -c "SELECT kind FROM awa_claim('wq', wait => '30 s')" > /tmp/awa_wake.$$ &
pid=$!
sleep 1
$PSQL -d $DB -c "SELECT id FROM awa_insert('woken', queue => 'wq')" >/dev/null
wait $pid || fail "blocked claim errored"
t1=$(now_ms)
[ "$(cat /tmp/awa_wake.$$)" = "woken" ] || fail "blocked claim returned '$(cat /tmp/awa_wake.$$)', expected the job"
[ $((t1 - t0)) -lt 15000 ] || fail "blocked claim returned after $((t1 - t0)) ms: not woken by the commit"
ok "blocked claim woken by a committed insert ($((t1 - t0)) ms including a 1 s head start)"

# 2. uncommitted and rolled-back inserts
$PSQL -d $DB -c "SELECT count(*) FROM awa_claim('wq2', wait => '3 s')" > /tmp/awa_wake.$$ &
pid=$!
sleep 0.5
$PSQL -d $DB -c "BEGIN" -c "SELECT id FROM awa_insert('ghost', queue => 'wq2')" -c "SELECT pg_sleep(1)" -c "ROLLBACK" >/dev/null
wait $pid || fail "claim errored"
[ "$(cat /tmp/awa_wake.$$)" = "0" ] || fail "rolled-back insert was handed out"
[ "$($PSQL -d $DB -c "SELECT count(*) FROM awa.jobs WHERE queue = 'wq2'")" = "0" ] || fail "rolled-back job exists"
ok "uncommitted and rolled-back inserts are never handed out"

# 3. scheduled job comes due
t0=$(now_ms)
$PSQL -d $DB -c "SELECT kind FROM awa_claim('wq3', wait => '30 s')" > /tmp/awa_wake.$$ &
pid=$!
sleep 0.5
$PSQL -d $DB -c "SELECT id FROM awa_insert('later', queue => 'wq3', run_at => now() + interval '2 s')" >/dev/null
wait $pid || fail "claim errored"
t1=$(now_ms)
[ "$(cat /tmp/awa_wake.$$)" = "later" ] || fail "scheduled job not claimed"
[ $((t1 - t0)) -ge 2000 ] && [ $((t1 - t0)) -lt 15000 ] || fail "scheduled job claimed after $((t1 - t0)) ms, expected about 2500"
ok "blocked claim takes a scheduled job when it comes due ($((t1 - t0)) ms)"

# 4. statement_timeout and pg_cancel_backend
# a statement_timeout shorter than the wait ends the wait just before it:
# no rows, no error (an idle worker's claim must not fail every time)
t0=$(now_ms)
out=$($PSQL -d $DB -c "SET statement_timeout = '500ms'" -c "SELECT count(*) FROM awa_claim('idle', wait => '30 s')" 2>&1)
t1=$(now_ms)
[ "$out" = 0 ] || fail "a claim waiting past statement_timeout gave: $out"
[ $((t1 - t0)) -lt 5000 ] || fail "statement_timeout 500ms: the claim returned after $((t1 - t0)) ms"
$PSQL -d $DB -c "SELECT count(*) FROM awa_claim('idle', worker => 'cancel-me', wait => '30 s')" > /tmp/awa_wake.$$ 2>&1 &
pid=$!
sleep 1
$PSQL -d $DB -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%cancel-me%' AND pid <> pg_backend_pid()" >/dev/null
wait $pid
grep -q "canceling statement due to user request" /tmp/awa_wake.$$ || fail "pg_cancel_backend not honoured: $(cat /tmp/awa_wake.$$)"
ok "a blocked claim returns no rows before statement_timeout ($((t1 - t0)) ms with 500ms); pg_cancel_backend interrupts it"

# 5. no CPU while idle: the backend's CPU time over a 3 s wait
$PSQL -d $DB -c "SELECT count(*) FROM awa_claim('idle', worker => 'cpu-probe', wait => '4 s')" >/dev/null &
pid=$!
sleep 0.5
bpid=$($PSQL -d $DB -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%cpu-probe%' AND pid <> pg_backend_pid()")
[ -n "$bpid" ] || fail "blocked backend not found"
ticks() { awk '{print $14 + $15}' /proc/$bpid/stat; }
c0=$(ticks); sleep 3; c1=$(ticks)
wait $pid
[ $((c1 - c0)) -le 5 ] || fail "blocked claim used $((c1 - c0)) CPU ticks in 3 s"
ok "blocked claim sleeps: $((c1 - c0)) CPU ticks in 3 s"

# 6. a client killed while its claim waits leaves no backend behind to claim for it
$PSQL -d $DB -c "SELECT count(*) FROM awa_claim('orphan', worker => 'killed-client', wait => '60 s')" >/dev/null 2>&1 &
pid=$!
sleep 1
kill -9 $pid; wait $pid 2>/dev/null
for i in $(seq 1 50); do
	n=$($PSQL -d $DB -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%killed-client%' AND pid <> pg_backend_pid()")
	[ "$n" = "0" ] && break
	sleep 0.1
done
[ "$n" = "0" ] || fail "the backend of a killed client is still waiting in awa_claim"
$PSQL -d $DB -c "SELECT id FROM awa_insert('for-nobody', queue => 'orphan')" >/dev/null
sleep 0.5
[ "$($PSQL -d $DB -c "SELECT state FROM awa.jobs WHERE kind = 'for-nobody'")" = "available" ] || fail "a job was claimed for a dead client"
ok "a killed client's waiting claim ends at once; nothing is claimed for it"

# 7. a queue at its limit: the completion wakes the waiter
$PSQL -d $DB -c "SELECT awa_set_queue_limit('lq', 1)" -c "SELECT awa_insert('first', queue => 'lq')" \
	-c "SELECT awa_insert('second', queue => 'lq')" >/dev/null || fail "limit set-up"
lease=$($PSQL -d $DB -c "SELECT id || ',' || run_lease FROM awa_claim('lq')")
[ -n "$lease" ] || fail "first job of the limited queue not claimed"
t0=$(now_ms)
$PSQL -d $DB -c "SELECT kind FROM awa_claim('lq', wait => '30 s')" > /tmp/awa_wake.$$ &
pid=$!
sleep 1.3   # between the waiter's 1 s rechecks (at ~1.0 and ~2.0 s)
$PSQL -d $DB -c "SELECT awa_complete(${lease%,*}, ${lease#*,})" >/dev/null || fail "complete"
t_done=$(now_ms)
wait $pid || fail "claim errored"
t1=$(now_ms)
[ "$(cat /tmp/awa_wake.$$)" = "second" ] || fail "the waiter got '$(cat /tmp/awa_wake.$$)', expected the second job"
[ $((t1 - t_done)) -lt 500 ] || fail "the waiter returned $((t1 - t_done)) ms after the completion: not woken by it"
ok "a claimer waiting at the queue's limit is woken by a completion ($((t1 - t_done)) ms after it, $((t1 - t0)) ms in all)"

# 8. every way a job is scheduled shortens a blocked claimer's sleep.
# scheduled_wakes QUEUE WHAT COMMAND...: a claimer of QUEUE blocks for 20 s;
# COMMAND makes a job of kind 'later' due in about 2 s; the claimer must
# take it well before its wait ends.
scheduled_wakes() {
	local q=$1 what=$2; shift 2
	local t0 t1
	t0=$(now_ms)
	$PSQL -d $DB -c "SELECT kind FROM awa_claim('$q', wait => '20 s')" > /tmp/awa_wake.$$ &
	pid=$!
	sleep 0.5
	"$@" >/dev/null || fail "$what: could not schedule the job"
	wait $pid || fail "$what: the blocked claim errored"
	t1=$(now_ms)
	[ "$(cat /tmp/awa_wake.$$)" = "later" ] || fail "$what: the claimer got '$(cat /tmp/awa_wake.$$)', expected the scheduled job"
	[ $((t1 - t0)) -lt 10000 ] || fail "$what: the job was claimed after $((t1 - t0)) ms: the claimer was not told of it and slept its whole wait"
	ok "$what: a blocked claimer takes the scheduled job when it comes due ($((t1 - t0)) ms)"
}
many_sql() { echo "SELECT count(*) FROM awa_insert_many(jsonb_build_array(jsonb_build_object('kind', 'later', 'queue', '$1', 'run_at', now() + interval '2 s')))"; }
scheduled_wakes wq8a "awa_insert_many" $PSQL -d $DB -c "$(many_sql wq8a)"
# another trigger on awa.jobs takes awa_insert_many off its direct path
$PSQL -d $DB -c "CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'" \
	-c "CREATE TRIGGER z_noop AFTER INSERT ON awa.jobs FOR EACH ROW EXECUTE FUNCTION noop()" >/dev/null || fail "extra trigger"
scheduled_wakes wq8b "awa_insert_many through INSERT (other triggers on awa.jobs)" $PSQL -d $DB -c "$(many_sql wq8b)"
$PSQL -d $DB -c "DROP TRIGGER z_noop ON awa.jobs" >/dev/null || fail "drop extra trigger"
copy_later() { date -u -d '+2 sec' "+later	$1	%Y-%m-%d %H:%M:%S.%N+00" | $PSQL -d $DB -c "COPY awa.jobs (kind, queue, run_at) FROM STDIN"; }
scheduled_wakes wq8c "COPY awa.jobs" copy_later wq8c
scheduled_wakes wq8d "INSERT INTO awa.jobs" $PSQL -d $DB -c "INSERT INTO awa.jobs (kind, queue, run_at) VALUES ('later', 'wq8d', now() + interval '2 s')"
lease=$($PSQL -d $DB -c "SELECT awa_insert('later', queue => 'wq8e')" -c "SELECT id || ',' || run_lease FROM awa_claim('wq8e')" | tail -1)
scheduled_wakes wq8e "awa_snooze" $PSQL -d $DB -c "SELECT awa_snooze(${lease%,*}, ${lease#*,}, '2 s')"
lease=$($PSQL -d $DB -c "SELECT awa_insert('later', queue => 'wq8f')" -c "SELECT id || ',' || run_lease FROM awa_claim('wq8f')" | tail -1)
scheduled_wakes wq8f "awa_fail with retry_in" $PSQL -d $DB -c "SELECT awa_fail(${lease%,*}, ${lease#*,}, 'boom', retry_in => '2 s')"
rm -f /tmp/awa_wake.$$
