#!/usr/bin/python3
"""Crash test driver (run by test/t/002_crash.pl on a server of its own).

A steady load runs against queue 'cq': 2 producers insert jobs carrying a
unique sequence number in args (in transactions of 1-4 jobs) and record which
inserts committed; 2 workers claim batches, hold them briefly and complete
them with awa_complete_many, recording which completions committed.  Then:
  (a) one worker's backend is killed with SIGKILL while it holds a claimed
      batch (the postmaster restarts every backend: all sessions drop and the
      load reconnects);
  (b) the server is stopped with pg_ctl -m immediate mid-load and restarted.
Then checks: every committed insert exists exactly once (an insert whose
commit is in doubt: at most once, and its transaction all or nothing); no
committed completion is lost; no claim ever returned a job whose completion
had committed; the running jobs of dead sessions are rescued by awa_rescue()
(awa.heartbeat_timeout = 1) and then finished by a worker; job invariants
hold; awa_queue_stats() equals a recount.  Before the load, 6 jobs of queue
'cq_parked' are parked in waiting_external under callback ids: after the
crashes each still waits under its id, 3 complete by their callbacks and 3
time out in a maintenance round (retryable).

On the ring engine (CRASH_DB created with awa.install_engine = ring: awa.jobs
is the ring's view; test/t/002_crash_ring.pl) the same load and checks, and:
the workers claim with a lease of RING_LEASE, so that the maintenance worker
rescues the killed worker's jobs by their deadline (on the ring a deadline is
fixed when the attempt is claimed or beats, so a later SET of
awa.heartbeat_timeout does not move it); a rotator session seals the open slot
and reclaims the sealed ones (awa.ring_rotate, awa.ring_reclaim) every
ROTATE_EVERY seconds through both crashes, so that slots are carried and
truncated under the load and finished jobs move to awa.ring_history; after
the crashes the rescue is by those deadlines (each job running at the check
and each job the killed worker held ends with "deadline exceeded" unless its
completion committed), the parked jobs time out by a callback heartbeat of
1 ms instead of an UPDATE of awa.jobs (the view refuses it), and the
invariants include the ring's own (test/lib/awa_invariants.py, check_ring).

Env: PGHOST, PGPORT, PGUSER; CRASH_DB; CRASH_STOP_CMD and CRASH_START_CMD
(shell commands: immediate stop, start).  Exit 0 on pass.
"""
import collections
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import awa_invariants  # noqa: E402

DB = os.environ.get("CRASH_DB", "awa_crash")
STOP_CMD = os.environ["CRASH_STOP_CMD"]
START_CMD = os.environ["CRASH_START_CMD"]
QUEUE = "cq"
T0 = time.monotonic()
RING = False            # set in main(): awa.jobs is the ring's view
RING_LEASE = 4          # seconds: the workers' lease on the ring
ROTATE_EVERY = 0.4      # seconds between the rotator's seal + reclaim


def say(msg):
    print("crash: [%5.1f s] %s" % (time.monotonic() - T0, msg), flush=True)


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.committed = {}            # seq -> job id (insert committed)
        self.indoubt = []              # [seq, ...] of transactions whose commit is in doubt
        self.completed = set()         # ids whose completion committed
        self.complete_indoubt = set()  # ids whose completion is in doubt
        self.violations = []
        self.claims = 0
        self.reconnects = 0
        self.stop_producers = threading.Event()
        self.stop_workers = threading.Event()
        self.rotations = collections.Counter()   # outcome of awa.ring_rotate / ring_reclaim -> count


S = Shared()


def connect(_unused=None, deadline=60):
    """Connect, retrying while the server restarts."""
    end = time.monotonic() + deadline
    while True:
        try:
            c = psycopg.connect(dbname=DB, autocommit=True, connect_timeout=3)
            c.execute("SET statement_timeout = '10s'")
            return c
        except psycopg.OperationalError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


class Producer(threading.Thread):
    def __init__(self, n):
        super().__init__(daemon=True)
        self.n = n
        self.next = n * 1_000_000_000
        self.error = None

    def run(self):
        try:
            conn = connect(None)
            k = 0
            while not S.stop_producers.is_set():
                k += 1
                batch = [self.next + i for i in range(1 + k % 4)]
                self.next += len(batch)
                try:
                    ids = {}
                    with conn.transaction():
                        for seq in batch:
                            ids[seq] = conn.execute(
                                "SELECT id FROM awa_insert('crash', args => jsonb_build_object('seq', %s::bigint),"
                                " queue => %s)", (seq, QUEUE)).fetchone()[0]
                    with S.lock:
                        S.committed.update(ids)
                except psycopg.Error:
                    # the commit may or may not have happened: in doubt
                    with S.lock:
                        S.indoubt.append(batch)
                        S.reconnects += 1
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = connect(None)
                time.sleep(0.002)
            conn.close()
        except Exception as e:  # noqa
            self.error = repr(e)


class Worker(threading.Thread):
    def __init__(self, n):
        super().__init__(daemon=True)
        self.n = n
        self.hold = threading.Event()        # hold the next claimed batch until killed
        self.holding = threading.Event()     # set while a batch is held
        self.held_ids = []
        self.pid = None
        self.error = None

    def run(self):
        try:
            conn = connect(None)
            self.pid = conn.info.backend_pid
            while not S.stop_workers.is_set():
                try:
                    rows = conn.execute(
                        "SELECT id, run_lease FROM awa_claim(%%s, worker => %%s, batch => 10, wait => '100 ms'%s)"
                        % (", lease => '%d s'" % RING_LEASE if RING else ""),
                        (QUEUE, "w%d" % self.n)).fetchall()
                except psycopg.Error:
                    with S.lock:
                        S.reconnects += 1
                    conn = self.reconnect(conn)
                    continue
                if not rows:
                    continue
                ids = [r[0] for r in rows]
                leases = [r[1] for r in rows]
                with S.lock:
                    S.claims += len(ids)
                    bad = [i for i in ids if i in S.completed]
                    if bad:
                        S.violations.append("claim returned jobs whose completion had committed: %s" % bad)
                if self.hold.is_set():
                    self.held_ids = ids
                    self.holding.set()
                    end = time.monotonic() + 10
                    while self.hold.is_set() and time.monotonic() < end:
                        time.sleep(0.01)
                    self.holding.clear()
                else:
                    time.sleep(0.01)   # "work"
                try:
                    n = conn.execute("SELECT awa_complete_many(%s::bigint[], %s::bigint[])", (ids, leases)).fetchone()[0]
                    with S.lock:
                        if n == len(ids):
                            S.completed.update(ids)
                        else:
                            S.violations.append("awa_complete_many completed %d of %d jobs held under their "
                                                "leases (ids %s)" % (n, len(ids), ids))
                except psycopg.Error:
                    with S.lock:
                        S.complete_indoubt.update(ids)
                        S.reconnects += 1
                    conn = self.reconnect(conn)
            conn.close()
        except Exception as e:  # noqa
            self.error = repr(e)

    def reconnect(self, conn):
        try:
            conn.close()
        except Exception:
            pass
        conn = connect(None)
        self.pid = conn.info.backend_pid
        return conn


class Rotator(threading.Thread):
    """On the ring: seal the open slot and reclaim the sealed ones every ROTATE_EVERY seconds, as the
    maintenance worker does when a slot is full or old (carry of unfinished jobs, finished ones into
    awa.ring_history, TRUNCATE), through both crashes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.error = None

    def run(self):
        try:
            conn = connect(None)
            while not S.stop_workers.is_set():
                try:
                    for (o,) in conn.execute("SELECT outcome FROM awa.ring_rotate(1, '1 microsecond')"):
                        with S.lock:
                            S.rotations["rotate " + o] += 1
                    for (o,) in conn.execute("SELECT outcome FROM awa.ring_reclaim()"):
                        with S.lock:
                            S.rotations["reclaim " + o] += 1
                except psycopg.Error as e:
                    with S.lock:
                        S.rotations["error %s" % e.sqlstate] += 1
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = connect(None)
                time.sleep(ROTATE_EVERY)
            conn.close()
        except Exception as e:  # noqa
            self.error = repr(e)


def sh(cmd):
    r = subprocess.run(cmd, shell=True, executable="/bin/bash", capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s%s" % (r.returncode, cmd, r.stdout, r.stderr))


def progress():
    with S.lock:
        return len(S.committed), len(S.completed)


def wait_progress(seconds, what, patience=0):
    """Inserts and completions committed in the next `seconds`; when both are not yet moving
    then, wait up to `patience` seconds more for them (crash recovery on a loaded machine
    may take longer than the window: its end-of-recovery checkpoint syncs every file)."""
    c0, d0 = progress()
    t0 = time.monotonic()
    time.sleep(seconds)
    c1, d1 = progress()
    while (c1 == c0 or d1 == d0) and time.monotonic() - t0 < seconds + patience:
        time.sleep(0.2)
        c1, d1 = progress()
    say("%s: +%d inserts committed, +%d completions committed in %.1f s"
        % (what, c1 - c0, d1 - d0, time.monotonic() - t0))
    return c1 - c0, d1 - d0


def main():
    global RING
    failures = []
    scenarios = []
    c = connect(None)
    RING = awa_invariants.on_ring(c)
    c.close()
    say("engine: %s" % ("ring (awa.jobs is the ring's view)" if RING else "table"))
    parked = park_jobs()
    producers = [Producer(i + 1) for i in range(2)]
    workers = [Worker(i + 1) for i in range(2)]
    rotators = [Rotator()] if RING else []
    for t in producers + workers + rotators:
        t.start()
    ins, done = wait_progress(3, "steady load")
    if ins == 0 or done == 0:
        failures.append("the load makes no progress before any crash (%d inserts, %d completions)" % (ins, done))

    # (a) SIGKILL a worker's backend while it holds a claimed batch
    w = workers[0]
    w.hold.set()
    if not w.holding.wait(10):
        failures.append("worker never held a batch")
        killed_ids = []
    else:
        killed_ids = list(w.held_ids)
        pid = w.pid
        say("scenario a: SIGKILL worker backend %d holding jobs %s" % (pid, killed_ids))
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        w.hold.clear()
    ins, done = wait_progress(4, "after SIGKILL (crash recovery, reconnect)", patience=30)
    if ins == 0 or done == 0:
        failures.append("no progress after the SIGKILL crash recovery (%d inserts, %d completions)" % (ins, done))
    else:
        scenarios.append("(a) SIGKILL of a worker backend mid-batch (postmaster crash recovery)")

    # (b) immediate stop mid-load, restart
    say("scenario b: pg_ctl stop -m immediate mid-load")
    sh(STOP_CMD)
    time.sleep(1)
    say("scenario b: restarting")
    sh(START_CMD)
    ins, done = wait_progress(4, "after immediate stop + restart", patience=30)
    if ins == 0 or done == 0:
        failures.append("no progress after the immediate restart (%d inserts, %d completions)" % (ins, done))
    else:
        scenarios.append("(b) pg_ctl stop -m immediate mid-load, restart")

    S.stop_producers.set()
    for t in producers:
        t.join(30)
    S.stop_workers.set()
    for t in workers + rotators:
        t.join(30)
    for t in producers + workers + rotators:
        if t.is_alive():
            failures.append("%s did not stop" % t.name)
        if t.error:
            failures.append("%s died: %s" % (t.name, t.error))

    conn = connect(None)
    say("load stopped: %d inserts committed, %d in doubt (transactions), %d completions committed, "
        "%d in doubt, %d claims, %d reconnects"
        % (len(S.committed), len(S.indoubt), len(S.completed), len(S.complete_indoubt), S.claims, S.reconnects))

    # ---- every committed insert exactly once, in-doubt transactions all or nothing
    rows = conn.execute("SELECT (args->>'seq')::bigint, count(*), min(id) FROM awa.jobs WHERE kind = 'crash' GROUP BY 1").fetchall()
    present = {r[0]: (r[1], r[2]) for r in rows}
    dup = [s for s, (c, _) in present.items() if c > 1]
    if dup:
        failures.append("jobs inserted more than once (seq): %s" % dup[:20])
    lost = [s for s in S.committed if s not in present]
    if lost:
        failures.append("%d committed inserts are lost (seq): %s" % (len(lost), lost[:20]))
    wrong = [s for s, i in S.committed.items() if s in present and present[s][1] != i]
    if wrong:
        failures.append("committed inserts with another id than returned: %s" % wrong[:20])
    known = set(S.committed)
    for b in S.indoubt:
        known.update(b)
        got = [s in present for s in b]
        if any(got) and not all(got):
            failures.append("in-doubt transaction partly committed: seqs %s present %s" % (b, got))
    ghosts = [s for s in present if s not in known]
    if ghosts:
        failures.append("jobs nobody inserted (seq): %s" % ghosts[:20])
    indoubt_committed = sum(1 for b in S.indoubt if b and b[0] in present)
    say("inserts: %d committed all present exactly once; %d of %d in-doubt transactions had committed"
        % (len(S.committed) - len(lost), indoubt_committed, len(S.indoubt)))

    # ---- no committed completion lost
    rows = conn.execute("SELECT id, state::text, finalized_at IS NOT NULL FROM awa.jobs WHERE id = ANY(%s)",
                        (list(S.completed),)).fetchall()
    st = {r[0]: (r[1], r[2]) for r in rows}
    lostc = [i for i in S.completed if st.get(i, ("missing",))[0] != "completed" or not st[i][1]]
    if lostc:
        failures.append("%d committed completions lost: %s" % (len(lostc), [(i, st.get(i)) for i in lostc[:20]]))

    # ---- invariants before the rescue
    failures += invariants(conn, "after the crashes")

    # ---- parked jobs kept their callbacks through both crashes, and still work
    failures += check_parked(conn, parked)

    if RING:
        with S.lock:
            rot = dict(S.rotations)
        say("ring: rotator outcomes %s" % rot)
        if not rot.get("rotate rotated") or not rot.get("reclaim reclaimed"):
            failures.append("the rotator never sealed and reclaimed a slot under the load: %s" % rot)
        running, fails = ring_rescue(conn, killed_ids)
        failures += fails
    else:
        running, fails = table_rescue(conn, killed_ids)
        failures += fails

    # ---- a worker finishes everything (the rescued jobs included)
    drained = drain(conn)
    if drained is None:
        failures.append("could not drain the queue")
    left = conn.execute("SELECT state::text, count(*) FROM awa.jobs WHERE queue = %s AND state <> 'completed' GROUP BY 1",
                        (QUEUE,)).fetchall()
    if left:
        failures.append("jobs not finished after draining: %s" % left)
    unfinished = conn.execute("SELECT id, state::text FROM awa.jobs WHERE id = ANY(%s) AND state <> 'completed'",
                              (list(running),)).fetchall()
    if unfinished:
        failures.append("rescued jobs not finished: %s" % unfinished[:20])
    else:
        say("drain: %d jobs claimed and completed, rescued ones included; every job completed" % drained)
    with S.lock:
        failures += S.violations

    failures += invariants(conn, "at the end")
    total = conn.execute("SELECT count(*) FROM awa.jobs").fetchone()[0]
    say("%d jobs in the end" % total)

    if scenarios and not failures:
        for s in scenarios:
            say("survived: " + s)
        say("PASS: %d crash scenarios survived" % len(scenarios))
        return 0
    for f in failures:
        print("crash: FAIL: " + f)
    print("crash: scenarios survived before failing checks: %d" % len(scenarios))
    return 1


def table_rescue(conn, killed_ids):
    """Running jobs of dead sessions: awa_rescue() with awa.heartbeat_timeout = 1 rescues them all (their
    ids, and failures)."""
    failures = []
    running = {r[0] for r in conn.execute("SELECT id FROM awa.jobs WHERE state = 'running'")}
    missing_killed = [i for i in killed_ids if i not in running and i not in S.completed]
    states_killed = dict(conn.execute("SELECT id, state::text FROM awa.jobs WHERE id = ANY(%s)", (killed_ids,)).fetchall())
    if missing_killed:
        failures.append("jobs held by the killed worker are not running any more before the rescue: %s"
                        % {i: states_killed.get(i) for i in missing_killed})
    conn.execute("SET awa.heartbeat_timeout = 1")
    time.sleep(2)
    rescued = conn.execute("SELECT awa_rescue()").fetchone()[0]
    still = conn.execute("SELECT count(*) FROM awa.jobs WHERE state = 'running'").fetchone()[0]
    say("rescue: %d running jobs of dead sessions (%d held by the SIGKILLed worker), awa_rescue() = %d, %d still running"
        % (len(running), len(killed_ids), rescued, still))
    if rescued != len(running) or still:
        failures.append("awa_rescue() rescued %d of %d running jobs of dead sessions; %d still running"
                        % (rescued, len(running), still))
    notready = conn.execute("SELECT id, state::text FROM awa.jobs WHERE id = ANY(%s) AND state <> 'retryable'",
                            (list(running),)).fetchall()
    if notready:
        failures.append("rescued jobs not retryable: %s" % notready[:20])
    return running, failures


def ring_rescue(conn, killed_ids):
    """On the ring: the running jobs of dead sessions end by their deadlines (the workers' lease of RING_LEASE
    seconds), through awa_rescue() or the maintenance worker, whichever comes first: each job running now, and
    each job the killed worker held whose completion did not commit, ends once with "deadline exceeded" and is
    available again (a rescue retries at once).  Their ids, and failures."""
    failures = []
    running = {r[0] for r in conn.execute("SELECT id FROM awa.jobs WHERE state = 'running'")}
    killed = {i for i in killed_ids if i not in S.completed}
    last = conn.execute("SELECT max(deadline_at) - now() FROM awa.jobs WHERE state = 'running'").fetchone()[0]
    if last is not None and last.total_seconds() > RING_LEASE + 1:
        failures.append("a running job's deadline is %s away, past the workers' lease of %d s" % (last, RING_LEASE))
    end = time.monotonic() + RING_LEASE + 20
    rescued = 0
    while time.monotonic() < end:
        rescued += conn.execute("SELECT awa_rescue()").fetchone()[0]
        still = conn.execute("SELECT count(*) FROM awa.jobs WHERE state = 'running'").fetchone()[0]
        if not still:
            break
        time.sleep(0.2)
    say("rescue: %d running jobs of dead sessions (%d held by the SIGKILLed worker), awa_rescue() = %d "
        "(the rest by the maintenance worker), %d still running" % (len(running), len(killed_ids), rescued, still))
    if still:
        failures.append("%d jobs still running %d s after the workers' lease" % (still, RING_LEASE + 20))
    ended = dict(conn.execute(
        "SELECT id, state::text || ' ' || coalesce(errors[cardinality(errors)] ->> 'error', '')"
        " FROM awa.jobs WHERE id = ANY(%s)", (list(running | killed),)).fetchall())
    bad = {i: ended.get(i) for i in running | killed
           if ended.get(i) not in ("available deadline exceeded", "completed deadline exceeded")}
    if bad:
        failures.append("jobs of dead sessions not rescued by their deadline: %s" % dict(list(bad.items())[:20]))
    killed_lost = [i for i in killed if i not in running and not (ended.get(i) or "").endswith("deadline exceeded")]
    if killed_lost:
        failures.append("jobs held by the killed worker neither running nor rescued: %s" % killed_lost)
    return running | killed, failures


PARKED_QUEUE = "cq_parked"


def park_jobs():
    """Park 6 jobs in waiting_external (committed); their {id: callback id}."""
    conn = connect(None)
    conn.execute("SELECT awa_insert_many(jsonb_agg(jsonb_build_object('kind', 'parked', 'queue', %s::text)))"
                 " FROM generate_series(1, 6)", (PARKED_QUEUE,))
    parked = {}
    for job_id, lease in conn.execute("SELECT id, run_lease FROM awa_claim(%s, batch => 6)",
                                      (PARKED_QUEUE,)).fetchall():
        cb = conn.execute("SELECT awa_register_callback(%s, %s, '1 hour')", (job_id, lease)).fetchone()[0]
        if not conn.execute("SELECT awa_wait_external(%s, %s)", (job_id, lease)).fetchone()[0]:
            raise RuntimeError("job %d did not park" % job_id)
        parked[job_id] = cb
    conn.close()
    say("parked %d jobs in waiting_external before the crashes" % len(parked))
    return parked


def check_parked(conn, parked):
    """After the crashes: every parked job still waits under its callback id; three complete
    by callback, three time out in a maintenance round."""
    errs = []
    rows = [r[0] for r in conn.execute(
        "SELECT j.id FROM awa.jobs j JOIN unnest(%s::bigint[], %s::uuid[]) AS p(id, cb) ON p.id = j.id"
        " WHERE j.state = 'waiting_external' AND j.deadline_at > now()"
        " AND j.callback_key = sha256(uuid_send(p.cb))", (list(parked), list(parked.values()))).fetchall()]
    if sorted(rows) != sorted(parked):
        return ["parked jobs lost or changed by the crashes: want %s waiting under their callbacks, got %s"
                % (sorted(parked), sorted(rows))]
    ids = sorted(parked)
    for job_id in ids[:3]:
        if not conn.execute("SELECT awa_complete_external(%s, '{\"after\": \"crash\"}')",
                            (parked[job_id],)).fetchone()[0]:
            errs.append("the callback of parked job %d did not complete it after the crashes" % job_id)
    if RING:
        # the view refuses UPDATE: the callback's heartbeat moves the wait's deadline to 1 ms from now
        for job_id in ids[3:]:
            if not conn.execute("SELECT awa_heartbeat_callback(%s, '1 millisecond')", (parked[job_id],)).fetchone()[0]:
                errs.append("the callback heartbeat of parked job %d found no waiting job" % job_id)
        time.sleep(0.01)
    else:
        conn.execute("UPDATE awa.jobs SET deadline_at = now() - interval '1 second' WHERE id = ANY(%s)", (ids[3:],))
    for _ in range(50):     # the background worker may hold the round lock, or time them out itself
        conn.execute("SELECT awa_maintain()")
        left = conn.execute("SELECT count(*) FROM awa.jobs WHERE id = ANY(%s) AND state = 'waiting_external'",
                            (ids[3:],)).fetchone()[0]
        if left == 0:
            break
        time.sleep(0.1)
    got = dict(conn.execute("SELECT id, state::text || coalesce(' ' || (result->>'after'), '')"
                            " || coalesce(' ' || (errors[cardinality(errors)]->>'error'), '')"
                            " FROM awa.jobs WHERE id = ANY(%s)", (ids,)).fetchall())
    want = {i: "completed crash" for i in ids[:3]}
    want.update({i: "retryable callback timed out" for i in ids[3:]})
    if got != want:
        errs.append("parked jobs after their callbacks and timeouts: want %s, got %s" % (want, got))
    else:
        say("parked jobs: all 6 survived both crashes; 3 completed by callback, 3 timed out and retryable")
    return errs


def drain(conn):
    """Claim and complete until the queue is empty; check no completed job is claimed again."""
    n = 0
    empty = 0
    end = time.monotonic() + 60
    while empty < 2 and time.monotonic() < end:
        rows = conn.execute("SELECT id, run_lease FROM awa_claim(%s, worker => 'finisher', batch => 500)",
                            (QUEUE,)).fetchall()
        if not rows:
            empty += 1
            continue
        ids = [r[0] for r in rows]
        bad = [i for i in ids if i in S.completed]
        if bad:
            S.violations.append("claim returned jobs whose completion had committed: %s" % bad[:20])
        got = conn.execute("SELECT awa_complete_many(%s::bigint[], %s::bigint[])",
                           (ids, [r[1] for r in rows])).fetchone()[0]
        if got != len(ids):
            S.violations.append("finisher completed %d of %d jobs" % (got, len(ids)))
        S.completed.update(ids)
        n += len(ids)
    return n if empty >= 2 else None


def invariants(conn, when):
    errs = ["%s: %s" % (when, e) for e in awa_invariants.check(conn)]
    say("invariants %s: %s" % (when, "ok (stats equal a recount)" if not errs else "%d violations" % len(errs)))
    return errs


if __name__ == "__main__":
    sys.exit(main())
